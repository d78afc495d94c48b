"""Small IR helpers the passes share: cloning, inlining, constants, call-graph queries.

Only mechanics live here (how to copy an instruction, how to splice a computation into a
caller); every decision about *whether* to do so belongs to the pass that calls them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType
from hlo.errors import InternalError
from hlo.instruction import HloInstruction
from hlo.module import HloModule
from hlo.opcodes import Opcode, Trait
from hlo.shape import Shape


def clone_into(comp: HloComputation, instr: HloInstruction,
               operands: Sequence[HloInstruction], name: str | None = None) -> HloInstruction:
    """A copy of `instr` in `comp` over `operands`, keeping its shape and attributes."""
    copy = comp.add(instr.opcode, list(operands), shape=instr.shape,
                    name=name or instr.name, **instr.attrs)
    copy.shape = instr.shape  # `add` gives tuple shapes default layouts; keep this one
    return copy


def live_instructions(comp: HloComputation) -> list[HloInstruction]:
    """What must survive a copy of `comp`: the root's operands, parameters and side effects,
    operands before users."""
    assert comp.root is not None
    keep: list[HloInstruction] = []
    seen: set[int] = set()
    extra = [i for i in comp.instructions
             if i.opcode is Opcode.PARAMETER or i.has(Trait.SIDE_EFFECTING)]
    for start in [comp.root, *extra]:
        for node in start.walk_operands():
            if id(node) not in seen:
                seen.add(id(node))
                keep.append(node)
    return keep


def inline_computation(target: HloComputation, callee: HloComputation,
                       operands: Sequence[HloInstruction]) -> HloInstruction:
    """Copy `callee`'s live instructions into `target`, parameter i bound to operands[i].

    Returns the copy of the callee's root; the caller redirects uses to it. Called
    computations (to_apply, body, ...) are shared with the callee, not copied.
    """
    mapping: dict[int, HloInstruction] = {}
    for p in callee.parameters:
        mapping[id(p)] = operands[p.attrs["parameter_number"]]
    for instr in live_instructions(callee):
        if id(instr) in mapping:
            continue
        mapping[id(instr)] = clone_into(target, instr, [mapping[id(o)] for o in instr.operands])
    assert callee.root is not None
    return mapping[id(callee.root)]


def clone_computation(module: HloModule, comp: HloComputation, name: str | None = None
                      ) -> HloComputation:
    """A copy of `comp` added to `module` under a fresh name (fresh instruction names too)."""
    copy = HloComputation(module.unique_computation_name(name or comp.name),
                          is_fusion=comp.is_fusion)
    module.add_computation(copy)
    mapping: dict[int, HloInstruction] = {}
    for instr in live_instructions(comp):
        mapping[id(instr)] = clone_into(copy, instr, [mapping[id(o)] for o in instr.operands])
    assert comp.root is not None
    copy.set_root(mapping[id(comp.root)])
    return copy


def callers(module: HloModule) -> dict[int, list[HloInstruction]]:
    """For each computation (by id), the instructions anywhere in the module that call it."""
    found: dict[int, list[HloInstruction]] = {}
    for comp in module.computations:
        for instr in comp.instructions:
            for callee in instr.called_computations():
                found.setdefault(id(callee), []).append(instr)
    return found


def replace(old: HloInstruction, new: HloInstruction) -> None:
    """Redirect every use of `old` to `new` and remove `old` (it must not be side-effecting)."""
    if old is new:
        return
    comp = old.parent
    if comp is None:
        raise InternalError(f"{old.name} is not in a computation")
    if not old.shape.compatible(new.shape):
        raise InternalError(f"replacing {old.name} ({old.shape}) by {new.name} ({new.shape}) "
                            "would change its shape")
    comp.replace_instruction(old, new)


def remove_dead(comp: HloComputation, instrs: Iterable[HloInstruction]) -> None:
    """Remove those of `instrs` (and then their operands) that became unused."""
    work = [i for i in instrs]
    while work:
        instr = work.pop()
        if instr.parent is not comp or instr.users or instr is comp.root:
            continue
        if instr.opcode is Opcode.PARAMETER or instr.has(Trait.SIDE_EFFECTING):
            continue
        operands = list(instr.operands)
        comp.remove(instr)
        work.extend(operands)


# --- constants -----------------------------------------------------------------------------


def scalar_constant(comp: HloComputation, element_type: PrimitiveType, value: Any,
                    name: str = "constant") -> HloInstruction:
    """A new rank-0 constant."""
    literal = np.asarray(value).astype(element_type.numpy)
    return comp.add(Opcode.CONSTANT, shape=Shape.scalar(element_type), literal=literal,
                    name=name)


def splat(comp: HloComputation, element_type: PrimitiveType, value: Any,
          dims: Sequence[int]) -> HloInstruction:
    """`value` at every position of an array of `dims`: a constant broadcast if rank > 0."""
    scalar = scalar_constant(comp, element_type, value)
    if not dims:
        return scalar
    return comp.add(Opcode.BROADCAST, [scalar], shape=Shape.array(element_type, dims),
                    dimensions=())


def splat_value(instr: HloInstruction) -> np.ndarray | None:
    """The one value every element of `instr` has, when that is known statically.

    True for a constant whose elements are all equal (bitwise, so NaN payloads and -0.0
    count) and for a broadcast of such a value. None otherwise, and for empty arrays.
    """
    while instr.opcode is Opcode.BROADCAST:
        instr = instr.operands[0]
    if instr.opcode is not Opcode.CONSTANT or not instr.shape.is_array:
        return None
    literal = np.ascontiguousarray(instr.attrs["literal"])
    if literal.size == 0:
        return None
    raw = literal.reshape(-1).view(np.uint8).reshape(literal.size, -1)
    if not (raw == raw[0]).all():
        return None
    return literal.reshape(-1)[0:1].reshape(())


def is_all(instr: HloInstruction, value: float | int | bool) -> bool:
    """Whether every element of `instr` is statically equal to `value` (-0.0 counts as 0)."""
    v = splat_value(instr)
    if v is None:
        return False
    element_type = instr.shape.element_type
    if element_type.is_complex:
        return bool(complex(v[()]) == value)
    if element_type.is_float:
        return float(v[()]) == float(value)
    if element_type.is_pred:
        return bool(v[()]) == bool(value)
    return int(v[()]) == int(value)


def is_constant_like(instr: HloInstruction) -> bool:
    """A constant, or a broadcast of one (what canonicalisation moves to the right)."""
    while instr.opcode is Opcode.BROADCAST:
        instr = instr.operands[0]
    return instr.opcode is Opcode.CONSTANT


def has_side_effects(instr: HloInstruction) -> bool:
    """Whether `instr`, or anything in a computation it calls (transitively), has effects."""
    if instr.has(Trait.SIDE_EFFECTING):
        return True
    stack = list(instr.called_computations())
    seen: set[int] = set()
    while stack:
        comp = stack.pop()
        if id(comp) in seen:
            continue
        seen.add(id(comp))
        for inner in comp.instructions:
            if inner.has(Trait.SIDE_EFFECTING):
                return True
            stack.extend(inner.called_computations())
    return False


def clone_module(module: HloModule) -> HloModule:
    """A deep copy of `module` with the same names (prints identically); literals shared.

    Faster than printing and parsing; passes may then change the copy freely (the
    compile API optimises a copy, never the caller's module).
    """
    copy = HloModule(module.name)
    copy.attrs = dict(module.attrs)
    copy.entry_layout = module.entry_layout
    comps: dict[int, HloComputation] = {}
    for comp in module.computations:
        comps[id(comp)] = copy.add_computation(
            HloComputation(comp.name, is_fusion=comp.is_fusion), entry=comp is module.entry)

    def remap(value: Any) -> Any:
        if isinstance(value, HloComputation):
            return comps.get(id(value), value)
        if isinstance(value, tuple) and value and isinstance(value[0], HloComputation):
            return tuple(comps.get(id(c), c) for c in value)
        return value

    for comp in module.computations:
        target = comps[id(comp)]
        mapping: dict[int, HloInstruction] = {}
        for instr in comp.post_order():
            attrs = {k: remap(v) for k, v in instr.attrs.items()}
            new = target.add(instr.opcode, [mapping[id(o)] for o in instr.operands],
                             shape=instr.shape, name=instr.name, **attrs)
            new.shape = instr.shape  # `add` gives tuple shapes default layouts; keep these
            mapping[id(instr)] = new
        # Keep the original instruction order (printing follows it where operands allow).
        target.instructions = [mapping[id(i)] for i in comp.instructions]
        if comp.root is not None:
            target.set_root(mapping[id(comp.root)])
    return copy
