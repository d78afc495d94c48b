"""While-loop simplification: loops that never run, invariant code, dead state elements.

Three rewrites, each on one loop at a time (the pass runs in the simplification fixed
point, which repeats them):
- A loop whose condition is false on its (statically known) initial state is replaced by
  that state. The condition is evaluated by the reference evaluator, and only when every
  state element it reads is a constant in the init tuple.
- Loop-invariant code motion: body instructions computed only from constants and from
  state elements the body passes through unchanged are computed once before the loop;
  their values ride along as new state elements. Cheap or aliasing ops (constants,
  broadcasts, reshapes, tuple plumbing) are not worth a state element and stay inside.
  Hoisted code runs even if the loop runs zero times, so nothing with side effects moves.
- Dead state elements: an element that the condition does not read, that no other
  element's next value depends on, and that nobody reads after the loop, is removed.
Condition and body computations shared with another caller are copied first, so that
changing one loop's state never changes another's.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np

from compiler.passes.hlo_utils import callers, clone_computation, clone_into, has_side_effects
from compiler.pipeline import ComputationPass
from hlo.computation import HloComputation
from hlo.errors import TfcompileError
from hlo.evaluator import Evaluator
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

log = logging.getLogger(__name__)

# Not worth a loop state element: free or nearly free to recompute every iteration.
_NOT_WORTH_HOISTING = frozenset({
    Opcode.CONSTANT, Opcode.IOTA, Opcode.PARAMETER, Opcode.GET_TUPLE_ELEMENT, Opcode.TUPLE,
    Opcode.BROADCAST, Opcode.RESHAPE, Opcode.BITCAST, Opcode.COPY,
})


class WhileLoopSimplifier(ComputationPass):
    """Removes zero-trip loops, hoists invariant code and drops dead loop state."""

    name: ClassVar[str] = "while_loop_simplifier"

    def run_on(self, comp: HloComputation) -> bool:
        changed = False
        for loop in [i for i in comp.instructions if i.opcode is Opcode.WHILE]:
            if _never_runs(loop):
                log.debug("while_loop_simplifier: %s never runs", loop.name)
                loop.replace_all_uses_with(loop.operands[0])
                comp.remove(loop)
                changed = True
                continue
            hoisted = _hoist_invariants(loop)
            if hoisted is not None:
                loop = hoisted
                changed = True
            if _remove_dead_elements(loop):
                changed = True
        if changed:
            comp.remove_dead()
            if comp.parent is not None:
                comp.parent.remove_unreachable_computations()
        return changed


# --- shared checks ------------------------------------------------------------------------


def _state_via_gte_only(comp: HloComputation) -> bool:
    """The computation reads its (tuple) state parameter only through get-tuple-element."""
    (param,) = comp.parameters
    return param.shape.is_tuple and all(u.opcode is Opcode.GET_TUPLE_ELEMENT
                                        for u in param.users)


def _make_private(loop: HloInstruction) -> None:
    """Give `loop` its own condition and body if another instruction also calls them."""
    comp = loop.parent
    assert comp is not None and comp.parent is not None
    module = comp.parent
    uses = callers(module)
    for key in ("condition", "body"):
        called = loop.attrs[key]
        if len(uses.get(id(called), [])) > 1:
            loop.attrs[key] = clone_computation(module, called)


def _element(comp: HloComputation, init: HloInstruction, index: int) -> HloInstruction:
    """Element `index` of a tuple value, without a get-tuple-element if it is a tuple op."""
    if init.opcode is Opcode.TUPLE:
        return init.operands[index]
    return comp.add(Opcode.GET_TUPLE_ELEMENT, [init], index=index)


# --- zero-trip loops ------------------------------------------------------------------------


def _never_runs(loop: HloInstruction) -> bool:
    """Whether the condition is statically false on the loop's initial state."""
    cond = loop.attrs["condition"]
    init = loop.operands[0]
    if has_side_effects(loop) or cond.root is None:
        return False
    (param,) = cond.parameters
    live = list(cond.root.walk_operands())
    if init.opcode is Opcode.CONSTANT:
        state = init.attrs["literal"]
    elif init.opcode is Opcode.TUPLE and _state_via_gte_only(cond):
        read = {i.attrs["index"] for i in live
                if i.opcode is Opcode.GET_TUPLE_ELEMENT and i.operands[0] is param}
        elements: list[np.ndarray | None] = [None] * len(init.operands)
        for index in read:
            source = init.operands[index]
            if source.opcode is not Opcode.CONSTANT or not source.shape.is_array:
                return False
            elements[index] = source.attrs["literal"]
        state = tuple(elements)  # unread elements stay None: the condition never sees them
    else:
        return False
    try:
        with np.errstate(all="ignore"):
            value = np.asarray(Evaluator(loop.parent.parent if loop.parent else None)
                               .run(cond, [state]))
    except TfcompileError:
        return False
    return value.dtype == np.bool_ and value.shape == () and not bool(value)


# --- loop-invariant code motion ------------------------------------------------------------


def _invariants(body: HloComputation) -> tuple[list[HloInstruction], set[int]]:
    """Body instructions whose value is the same in every iteration, and the hoist set."""
    (param,) = body.parameters
    root = body.root
    assert root is not None
    passed = {i for i, o in enumerate(root.operands)
              if o.opcode is Opcode.GET_TUPLE_ELEMENT and o.operands[0] is param
              and o.attrs["index"] == i}
    invariant: set[int] = set()
    order = body.post_order()
    for instr in order:
        if instr.opcode is Opcode.PARAMETER or instr is root:
            continue
        if instr.opcode is Opcode.GET_TUPLE_ELEMENT and instr.operands[0] is param:
            if instr.attrs["index"] in passed:
                invariant.add(id(instr))
            continue
        if has_side_effects(instr) or instr.opcode is Opcode.RNG_BIT_GENERATOR:
            continue
        if all(id(o) in invariant for o in instr.operands):
            invariant.add(id(instr))
    hoist = {id(i) for i in order if id(i) in invariant and _worth_hoisting(i)}
    return order, hoist


def _worth_hoisting(instr: HloInstruction) -> bool:
    """Whether computing `instr` once saves more than a state element costs."""
    if instr.shape.is_tuple or instr.opcode in _NOT_WORTH_HOISTING:
        return False
    if instr.opcode is Opcode.FUSION:  # worth it only if it fuses real work
        return any(_worth_hoisting(i) for i in instr.attrs["calls"].instructions)
    return True


def _hoist_invariants(loop: HloInstruction) -> HloInstruction | None:
    """Move invariant body code before the loop; returns the new loop, or None."""
    body = loop.attrs["body"]
    if body.root is None or body.root.opcode is not Opcode.TUPLE or not _state_via_gte_only(body):
        return None
    order, hoist = _invariants(body)
    frontier = [i for i in order if id(i) in hoist and any(id(u) not in hoist for u in i.users)]
    if not frontier:
        return None
    _make_private(loop)
    body = loop.attrs["body"]
    order, hoist = _invariants(body)
    frontier = [i for i in order if id(i) in hoist and any(id(u) not in hoist for u in i.users)]
    comp = loop.parent
    assert comp is not None
    (param,) = body.parameters
    init = loop.operands[0]
    count = len(loop.shape.tuple_shapes)
    # Outside: a copy of each frontier value's invariant subgraph over the initial state.
    outside: dict[int, HloInstruction] = {}
    for top in frontier:
        for instr in top.walk_operands():
            if id(instr) in outside or instr is param:
                continue  # the state parameter itself is only read through its elements
            if instr.opcode is Opcode.GET_TUPLE_ELEMENT and instr.operands[0] is param:
                outside[id(instr)] = _element(comp, init, instr.attrs["index"])
            else:
                outside[id(instr)] = clone_into(comp, instr,
                                                [outside[id(o)] for o in instr.operands])
    elements = [_element(comp, init, i) for i in range(count)]
    elements += [outside[id(top)] for top in frontier]
    new_shape = Shape.tuple_of([e.shape for e in elements])
    new_init = comp.add(Opcode.TUPLE, elements, shape=new_shape)
    # Inside: the hoisted values come from the new state elements and are passed through.
    param.shape = new_shape
    carried = []
    for k, top in enumerate(frontier):
        value = body.add(Opcode.GET_TUPLE_ELEMENT, [param], index=count + k,
                         name=f"{top.name}.hoisted")
        top.replace_all_uses_with(value)
        carried.append(value)
    old_root = body.root
    assert old_root is not None
    body.set_root(body.add(Opcode.TUPLE, [*old_root.operands, *carried], shape=new_shape))
    body.remove_dead()
    cond = loop.attrs["condition"]
    cond.parameters[0].shape = new_shape
    log.debug("while_loop_simplifier: hoisted %s out of %s",
              [t.name for t in frontier], loop.name)
    return _replace_loop(loop, new_init, new_shape, {i: i for i in range(count)})


def _replace_loop(loop: HloInstruction, new_init: HloInstruction, new_shape: Shape,
                  index_map: dict[int, int]) -> HloInstruction:
    """A new while over `new_init`; old element i is new element index_map[i]."""
    comp = loop.parent
    assert comp is not None
    new = comp.add(Opcode.WHILE, [new_init], shape=new_shape, name=loop.name,
                   condition=loop.attrs["condition"], body=loop.attrs["body"])
    if all(u.opcode is Opcode.GET_TUPLE_ELEMENT for u in loop.users) and not loop.is_root:
        for user in list(loop.users):
            user.attrs["index"] = index_map[user.attrs["index"]]
            user.replace_operand(0, new)
    else:
        parts = [comp.add(Opcode.GET_TUPLE_ELEMENT, [new], index=index_map[i])
                 for i in range(len(loop.shape.tuple_shapes))]
        loop.replace_all_uses_with(comp.add(Opcode.TUPLE, parts, shape=loop.shape))
    comp.remove(loop)
    return new


# --- dead state elements -------------------------------------------------------------------


def _read_indices(comp: HloComputation, roots: list[HloInstruction]) -> set[int]:
    """State elements that `roots` (and side-effecting instructions) depend on."""
    (param,) = comp.parameters
    starts = roots + [i for i in comp.instructions if has_side_effects(i)]
    read: set[int] = set()
    seen: set[int] = set()
    for start in starts:
        for instr in start.walk_operands():
            if id(instr) in seen:
                continue
            seen.add(id(instr))
            if instr.opcode is Opcode.GET_TUPLE_ELEMENT and instr.operands[0] is param:
                read.add(instr.attrs["index"])
    return read


def _remove_dead_elements(loop: HloInstruction) -> bool:
    body, cond = loop.attrs["body"], loop.attrs["condition"]
    if (body.root is None or body.root.opcode is not Opcode.TUPLE or cond.root is None
            or not _state_via_gte_only(body) or not _state_via_gte_only(cond)):
        return False
    if loop.is_root or any(u.opcode is not Opcode.GET_TUPLE_ELEMENT for u in loop.users):
        return False
    count = len(loop.shape.tuple_shapes)
    used_after = {u.attrs["index"] for u in loop.users}
    dead = set(range(count)) - used_after - _read_indices(cond, [cond.root])
    while dead:
        kept_roots = [o for i, o in enumerate(body.root.operands) if i not in dead]
        still_read = dead & _read_indices(body, kept_roots)
        if not still_read:
            break
        dead -= still_read
    if not dead or len(dead) == count:
        return False
    _make_private(loop)
    body, cond = loop.attrs["body"], loop.attrs["condition"]
    kept = [i for i in range(count) if i not in dead]
    index_map = {old: new for new, old in enumerate(kept)}
    new_shape = Shape.tuple_of([loop.shape.tuple_shapes[i] for i in kept])
    old_root = body.root
    body.set_root(body.add(Opcode.TUPLE, [old_root.operands[i] for i in kept],
                           shape=new_shape))
    for c in (body, cond):
        c.remove_dead()
        (param,) = c.parameters
        for user in param.users:
            user.attrs["index"] = index_map[user.attrs["index"]]
        param.shape = new_shape
    comp = loop.parent
    assert comp is not None
    init = loop.operands[0]
    new_init = comp.add(Opcode.TUPLE, [_element(comp, init, i) for i in kept], shape=new_shape)
    log.debug("while_loop_simplifier: %s drops dead state elements %s", loop.name,
              sorted(dead))
    _replace_loop(loop, new_init, new_shape, index_map)
    return True
