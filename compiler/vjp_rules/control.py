"""VJP rules of control flow: while (static trip counts), conditional and call.

while. Only loops with a static trip count are differentiable: state element k counts
from a constant by 1 while `k < constant` (what `lax.scan` and `fori_loop` with Python
bounds produce; `static_trip_count` recognises it). The rule replaces the forward loop by
one that also records, per iteration, each state element the backward pass needs and
cannot recompute (stacked residuals), then emits a reverse `while` over the same trip
count. Its body recomputes one forward iteration from the residuals (a clone of the
forward body) and runs `backprop` through it. Loop-invariant elements (weights, the xs of
a scan) are not stacked; their cotangents accumulate across iterations, slice by slice
when only dynamic slices of them are read. Elements only ever overwritten by
dynamic-update-slice (a scan's ys) need no residuals either.

conditional. Each branch gets a VJP branch computing, from (operand, result cotangent),
the cotangents of every branch's operand (zeros for the others).

call. The callee is cloned inline and differentiated there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from compiler import numpy_prims as prims
from compiler.tracing import Trace, Tracer, active
from compiler.vjp_rules.base import Cot, VjpContext, defvjp, has_float
from hlo.computation import HloComputation
from hlo.errors import UnsupportedOpError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

# A parameter's replacement when cloning: one instruction, or one per tuple element.
ParamValue = HloInstruction | list[HloInstruction]


def clone_into(trace: Trace, comp: HloComputation, params: Sequence[ParamValue]
               ) -> tuple[dict[int, HloInstruction], list[HloInstruction]]:
    """Copy `comp`'s instructions into `trace`, parameters replaced by `params`.

    Returns the map from original instruction ids to copies and the copies in
    topological order. Called computations are shared, not copied.
    """
    state = trace.state
    mapping: dict[int, HloInstruction] = {}
    elements: dict[int, list[HloInstruction]] = {}
    created: list[HloInstruction] = []

    def value(o: HloInstruction) -> HloInstruction:
        if id(o) not in mapping and id(o) in elements:
            mapping[id(o)] = trace.add(Opcode.TUPLE, elements[id(o)])
            created.append(mapping[id(o)])
        return mapping[id(o)]

    for instr in comp.post_order():
        if instr.opcode is Opcode.PARAMETER:
            given = params[instr.attrs["parameter_number"]]
            if isinstance(given, list):
                elements[id(instr)] = given
            else:
                mapping[id(instr)] = given
            continue
        source = instr.operands[0] if instr.operands else None
        if instr.opcode is Opcode.GET_TUPLE_ELEMENT and id(source) in elements:
            mapping[id(instr)] = elements[id(source)][instr.attrs["index"]]
            continue
        copy = trace.add(instr.opcode, [value(o) for o in instr.operands], shape=instr.shape,
                         **dict(instr.attrs))
        if id(instr) in state.no_gradient:
            state.no_gradient.add(id(copy))
        if id(instr) in state.locations:
            state.locations[id(copy)] = state.locations[id(instr)]
        mapping[id(instr)] = copy
        created.append(copy)
    return mapping, created


def _constant_int(instr: HloInstruction) -> int | None:
    if instr.opcode is not Opcode.CONSTANT or instr.shape.rank != 0:
        return None
    if not instr.shape.element_type.is_integer:
        return None
    return int(np.asarray(instr.attrs["literal"]))


def _is_element(instr: HloInstruction, param: HloInstruction, index: int) -> bool:
    return (instr.opcode is Opcode.GET_TUPLE_ELEMENT and instr.operands[0] is param
            and instr.attrs["index"] == index)


def static_trip_count(loop: HloInstruction) -> tuple[int, int, int] | None:
    """(counter element, start, trip count) of a counted `while`, else None."""
    cond, body = loop.attrs["condition"], loop.attrs["body"]
    init = loop.operands[0]
    root = cond.root
    if root is None or root.opcode is not Opcode.COMPARE or root.attrs["direction"] != "LT":
        return None
    if not cond.parameters or init.opcode is not Opcode.TUPLE:
        return None
    counter, limit = root.operands
    if counter.opcode is not Opcode.GET_TUPLE_ELEMENT or counter.operands[0] is not \
            cond.parameters[0]:
        return None
    k = counter.attrs["index"]
    bound = _constant_int(limit)
    start = _constant_int(init.operands[k])
    step = body.root
    if bound is None or start is None or step is None or step.opcode is not Opcode.TUPLE:
        return None
    increment = step.operands[k]
    p = body.parameters[0]
    if increment.opcode is not Opcode.ADD:
        return None
    a, b = increment.operands
    if not ((_is_element(a, p, k) and _constant_int(b) == 1)
            or (_is_element(b, p, k) and _constant_int(a) == 1)):
        return None
    return k, start, max(bound - start, 0)


def _element_uses(body: HloComputation, j: int) -> list[tuple[HloInstruction, int]]:
    """(user, operand index) of every use of state element j in the body."""
    p = body.parameters[0]
    uses = []
    for gte in p.users:
        if gte.opcode is not Opcode.GET_TUPLE_ELEMENT:
            return [(gte, -1)]
        if gte.attrs["index"] != j:
            continue
        for user in gte.users:
            uses += [(user, i) for i, o in enumerate(user.operands) if o is gte]
        if gte is body.root:
            uses.append((gte, -1))
    return uses


class _Layout:
    """How each state element of a counted loop is handled by its reverse loop."""

    def __init__(self, loop: HloInstruction, k: int) -> None:
        body = loop.attrs["body"]
        p = body.parameters[0]
        out = body.root.operands
        self.shapes = list(loop.shape.tuple_shapes)
        m = len(self.shapes)
        self.invariant = [_is_element(out[j], p, j) for j in range(m)]
        self.float = [s.is_array and s.element_type.is_float for s in self.shapes]
        # Elements only overwritten by dynamic-update-slice, whose result goes straight to
        # the next state: old values are never read.
        self.overwritten = [
            self.float[j] and not self.invariant[j] and j != k
            and all(u.opcode is Opcode.DYNAMIC_UPDATE_SLICE and i == 0
                    and all(v is body.root for v in u.users)
                    for u, i in _element_uses(body, j))
            for j in range(m)
        ]
        self.stacked = [j for j in range(m)
                        if j != k and not self.invariant[j] and not self.overwritten[j]]
        self.carried = [j for j in range(m) if self.float[j] and not self.invariant[j]]
        self.accumulated = [j for j in range(m) if self.float[j] and self.invariant[j]]
        self.passed = [j for j in range(m) if self.invariant[j] or self.overwritten[j]]


def _element(trace: Trace, tuple_value: HloInstruction, index: int) -> HloInstruction:
    if tuple_value.opcode is Opcode.TUPLE:
        return tuple_value.operands[index]
    return trace.add(Opcode.GET_TUPLE_ELEMENT, [tuple_value], index=index)


def _new_trace(ctx: VjpContext, name: str, param_shape: Shape) -> tuple[Trace, HloInstruction]:
    comp = ctx.trace.module.new_computation(name)
    trace = Trace(ctx.trace.state, comp)
    param = comp.add(Opcode.PARAMETER, shape=param_shape, name="state", parameter_number=0)
    return trace, param


def _augmented_loop(ctx: VjpContext, loop: HloInstruction, lay: _Layout, k: int, start: int,
                    n: int) -> Tracer:
    """The forward loop, also stacking the stacked elements' per-iteration values."""
    m = len(lay.shapes)
    stack_shapes = [Shape.array(lay.shapes[j].element_type, (n, *lay.shapes[j].dims))
                    for j in lay.stacked]
    shape = Shape.tuple_of(lay.shapes + stack_shapes)
    body, p = _new_trace(ctx, "fwd_body", shape)
    with active(body):
        elems = [body.add(Opcode.GET_TUPLE_ELEMENT, [p], index=j) for j in range(m)]
        mapping, _ = clone_into(body, loop.attrs["body"], [elems])
        row = prims.binary(Opcode.SUBTRACT, body.wrap(elems[k]), np.asarray(start, np.int32)
                           .astype(lay.shapes[k].element_type.numpy))
        stacks = []
        for s, j in enumerate(lay.stacked):
            buf = body.wrap(body.add(Opcode.GET_TUPLE_ELEMENT, [p], index=m + s))
            value = prims.reshape(body.wrap(elems[j]), (1, *lay.shapes[j].dims))
            stacks.append(prims.dynamic_update_slice(buf, value,
                                                     [row] + [0] * lay.shapes[j].rank).instr)
        outs = [mapping.get(id(o), o) for o in loop.attrs["body"].root.operands]
        body.comp.set_root(body.add(Opcode.TUPLE, outs + stacks))
    cond, q = _new_trace(ctx, "fwd_cond", shape)
    with active(cond):
        elems = [cond.add(Opcode.GET_TUPLE_ELEMENT, [q], index=j) for j in range(m)]
        mapping, _ = clone_into(cond, loop.attrs["condition"], [elems])
        cond.comp.set_root(mapping.get(id(loop.attrs["condition"].root),
                                       loop.attrs["condition"].root))
    trace = ctx.trace
    init = loop.operands[0]
    zeros = [ctx.zeros(s).instr for s in stack_shapes]
    first = trace.add(Opcode.TUPLE, [_element(trace, init, j) for j in range(m)] + zeros)
    return Tracer(trace, trace.add(Opcode.WHILE, [first], condition=cond.comp, body=body.comp))


@defvjp(Opcode.WHILE)
def _while_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    counted = static_trip_count(instr)
    if counted is None:
        where = ctx.trace.state.locations.get(id(instr))
        raise UnsupportedOpError(
            f"reverse-mode differentiation of while loop {instr.name} needs a static trip "
            "count: use lax.scan, or lax.fori_loop with Python int bounds"
            + (f"\n  (traced at {where})" if where else ""))
    k, start, n = counted
    if n == 0:
        return [ct]
    lay = _Layout(instr, k)
    forward = _augmented_loop(ctx, instr, lay, k, start, n)
    instr.replace_all_uses_with(forward.instr)
    m = len(lay.shapes)
    stacks = [prims.get_tuple_element(forward, m + s) for s in range(len(lay.stacked))]
    passed = [prims.get_tuple_element(forward, j) for j in lay.passed]
    cts = [ctx.materialize(ct[j], lay.shapes[j]) for j in lay.carried]
    accs = [ctx.materialize(ct[j], lay.shapes[j]) for j in lay.accumulated]
    counter = prims.full((), 0, np.int32)
    init = prims.make_tuple([counter, *cts, *accs, *stacks, *passed])
    body = _reverse_body(ctx, instr, lay, k, start, n, init.instr.shape)
    cond, q = _new_trace(ctx, "bwd_cond", init.instr.shape)
    with active(cond):
        u = cond.wrap(cond.add(Opcode.GET_TUPLE_ELEMENT, [q], index=0))
        cond.comp.set_root(prims.compare(u, np.int32(n), "LT").instr)
    result = prims.emit(Opcode.WHILE, [init], condition=cond.comp, body=body)
    out: list[Cot] = [None] * m
    for pos, j in enumerate(lay.carried):
        out[j] = prims.get_tuple_element(result, 1 + pos)
    for pos, j in enumerate(lay.accumulated):
        out[j] = prims.get_tuple_element(result, 1 + len(lay.carried) + pos)
    return [out]


def _reverse_body(ctx: VjpContext, loop: HloInstruction, lay: _Layout, k: int, start: int,
                  n: int, shape: Shape) -> HloComputation:
    """One reverse iteration: rebuild the state of forward iteration t = n-1-u, clone the
    forward body on it, backprop the carried cotangents through the clone."""
    from compiler.autodiff import backprop

    trace, q = _new_trace(ctx, "bwd_body", shape)
    nc, na, ns = len(lay.carried), len(lay.accumulated), len(lay.stacked)

    def element(i: int) -> Tracer:
        return trace.wrap(trace.add(Opcode.GET_TUPLE_ELEMENT, [q], index=i))

    with active(trace):
        u = element(0)
        t = prims.binary(Opcode.SUBTRACT, np.int32(n - 1), u)
        primal: list[Any] = [None] * len(lay.shapes)
        counter_type = lay.shapes[k].element_type.numpy
        primal[k] = prims.binary(Opcode.ADD, prims.convert(t, counter_type),
                                 np.asarray(start, counter_type))
        for s, j in enumerate(lay.stacked):
            buf = element(1 + nc + na + s)
            dims = lay.shapes[j].dims
            row = prims.dynamic_slice(buf, [t] + [0] * len(dims), (1, *dims))
            primal[j] = prims.reshape(row, dims)
        for pos, j in enumerate(lay.passed):
            primal[j] = element(1 + nc + na + ns + pos)
        # A fresh node per element, so that each is its own backprop target.
        nodes = [prims.emit(Opcode.COPY, [v]).instr for v in primal]
        mapping, created = clone_into(trace, loop.attrs["body"], [nodes])
        outs = [mapping.get(id(o), o) for o in loop.attrs["body"].root.operands]
        seeds = [(outs[j], element(1 + pos)) for pos, j in enumerate(lay.carried)]
        seeds += [(nodes[j], element(1 + nc + pos)) for pos, j in enumerate(lay.accumulated)]
        wrt = [nodes[j] for j in lay.carried] + [nodes[j] for j in lay.accumulated]
        inner = VjpContext(trace)
        got = backprop(inner, created, seeds, wrt)
        new_cts = [inner.materialize(c, lay.shapes[j]) for c, j in
                   zip(got, lay.carried + lay.accumulated, strict=True)]
        rest = [element(i) for i in range(1 + nc + na, len(shape.tuple_shapes))]
        next_u = prims.binary(Opcode.ADD, u, np.int32(1))
        root = prims.make_tuple([next_u, *new_cts, *rest])
    trace.comp.set_root(root.instr)
    return trace.comp


# --- conditional and call ------------------------------------------------------------------------


def _split(value: Tracer) -> Cot:
    """A tuple-shaped value as the list-of-elements form cotangents of tuples take."""
    shape = value.instr.shape
    if not shape.is_tuple:
        return value
    return [_split(prims.get_tuple_element(value, i)) for i in range(len(shape.tuple_shapes))]


@defvjp(Opcode.CONDITIONAL)
def _conditional_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    from compiler.autodiff import backprop

    a = instr.attrs
    branches = list(a["branch_computations"]) if a.get("branch_computations") else [
        a["true_computation"], a["false_computation"]]
    operands = instr.operands[1:]
    shapes = [o.shape for o in operands]
    ct_full = ctx.materialize(ct, instr.shape)
    vjp_branches = []
    for i, branch in enumerate(branches):
        trace, q = _new_trace(ctx, f"{branch.name}_vjp",
                              Shape.tuple_of([shapes[i], instr.shape]))
        with active(trace):
            operand = prims.emit(Opcode.COPY, [trace.wrap(
                trace.add(Opcode.GET_TUPLE_ELEMENT, [q], index=0))])
            ct_in = trace.wrap(trace.add(Opcode.GET_TUPLE_ELEMENT, [q], index=1))
            mapping, created = clone_into(trace, branch, [operand.instr])
            root = mapping.get(id(branch.root), branch.root)
            inner = VjpContext(trace)
            (got,) = backprop(inner, created, [(root, _split(ct_in))], [operand.instr])
            outs = [inner.materialize(got if j == i else None, s) for j, s in enumerate(shapes)]
            trace.comp.set_root(prims.make_tuple(outs).instr)
        vjp_branches.append(trace.comp)
    args = [prims.make_tuple([ctx.val(o), ct_full]) for o in operands]
    selector = ctx.val(instr.operands[0])
    if a.get("branch_computations"):
        result = prims.emit(Opcode.CONDITIONAL, [selector, *args],
                            branch_computations=tuple(vjp_branches))
    else:
        result = prims.emit(Opcode.CONDITIONAL, [selector, *args],
                            true_computation=vjp_branches[0],
                            false_computation=vjp_branches[1])
    return [None] + [_split(prims.get_tuple_element(result, j)) if has_float(s) else None
                     for j, s in enumerate(shapes)]


@defvjp(Opcode.CALL)
def _call_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    from compiler.autodiff import backprop

    callee = instr.attrs["to_apply"]
    marks = [prims.emit(Opcode.COPY, [ctx.val(o)]).instr for o in instr.operands]
    mapping, created = clone_into(ctx.trace, callee, marks)
    root = mapping.get(id(callee.root), callee.root)
    return backprop(ctx, created, [(root, ct)], marks)
