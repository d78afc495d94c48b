"""Reverse-mode automatic differentiation over traced HLO: `grad`, `value_and_grad`, and
`grad_module` for HLO modules.

The forward function is traced into the current computation as usual. The backward pass
then walks the instructions the forward pass added, last to first (`backprop`), and asks
the VJP rule of each instruction's opcode (the `VJP` table in compiler/vjp_rules, one
rule per differentiable opcode) for its operands' cotangents, given its result's. The
backward instructions are appended to the same computation, so the primal values they need
are simply the forward instructions. Loops are differentiated by their rule (a reverse
`while` over stacked per-iteration state, see vjp_rules/control.py), never unrolled.

Differentiated arguments get a `copy` as a marker, so each argument is a distinct node
even when the same value is passed twice. Instructions made by `lax.stop_gradient` pass
no cotangent.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from compiler import numpy_prims as prims
from compiler import pytree
from compiler.tracing import (
    ModuleState,
    Trace,
    Tracer,
    active,
    current_trace,
    kind_rank,
    to_tracer,
)
from compiler.vjp_rules import VJP, ZERO_VJP, Cot, VjpContext, has_float
from hlo.errors import ArgumentError, ShapeError, UnsupportedOpError
from hlo.instruction import HloInstruction
from hlo.module import HloModule
from hlo.opcodes import Opcode


def backprop(ctx: VjpContext, region: Sequence[HloInstruction],
             seeds: Sequence[tuple[HloInstruction, Cot]],
             wrt: Sequence[HloInstruction]) -> list[Cot]:
    """Propagate cotangents backwards through `region` and return those of `wrt`.

    Args:
        ctx: where backward instructions go (the computation `region` belongs to).
        region: forward instructions in creation (topological) order.
        seeds: starting cotangents, e.g. ones for the loss; a seed on a `wrt` node is an
            initial value its cotangent accumulates onto.
        wrt: the nodes to differentiate with respect to; nothing propagates past them.

    Raises:
        UnsupportedOpError: an instruction on the path has no VJP rule.
    """
    wrt_ids = {id(w) for w in wrt}
    blocked = ctx.trace.state.no_gradient
    depends = set(wrt_ids)
    for instr in region:
        if id(instr) in wrt_ids or id(instr) in blocked or not has_float(instr.shape):
            continue
        if any(id(o) in depends for o in instr.operands):
            depends.add(id(instr))
    cts: dict[int, Cot] = {}
    for node, ct in seeds:
        if id(node) in depends:
            cts[id(node)] = ctx.add(cts.get(id(node)), ct)
    for instr in reversed(region):
        key = id(instr)
        if key not in depends or key in wrt_ids:
            continue
        ct = cts.pop(key, None)
        if ct is None or instr.opcode in ZERO_VJP:
            continue
        rule = VJP.get(instr.opcode)
        if rule is None:
            raise _no_rule(ctx, instr)
        operand_cts = rule(ctx, instr, ct)
        for operand, oct in zip(instr.operands, operand_cts, strict=True):
            if oct is not None and id(operand) in depends:
                cts[id(operand)] = ctx.add(cts.get(id(operand)), oct)
    return [cts.get(id(w)) for w in wrt]


def _no_rule(ctx: VjpContext, instr: HloInstruction) -> UnsupportedOpError:
    where = ctx.trace.state.locations.get(id(instr))
    at = f"\n  (traced at {where})" if where else ""
    return UnsupportedOpError(
        f"reverse-mode differentiation of {instr.opcode.value} ({instr.name}) is not "
        f"supported{at}"
    )


# --- grad and value_and_grad ---------------------------------------------------------------


def _argnums(argnums: int | Sequence[int]) -> tuple[tuple[int, ...], bool]:
    if isinstance(argnums, int):
        return (argnums,), True
    nums = tuple(int(a) for a in argnums)
    if not nums:
        raise ArgumentError("argnums must name at least one argument")
    return nums, False


def _markers(trace: Trace, value: Any, what: str) -> tuple[list[Tracer], Any]:
    """Distinct `copy` nodes for the float leaves of a differentiated argument."""
    leaves, treedef = pytree.tree_flatten(value)
    markers = []
    for path, leaf in zip(pytree.leaf_paths(treedef), leaves, strict=True):
        t = to_tracer(leaf)
        if kind_rank(t.dtype) != 2:
            raise ArgumentError(
                f"grad: {what}{path} has dtype {t.dtype}; only floating-point arguments can "
                "be differentiated (pass integers through another argument)")
        markers.append(prims.emit(Opcode.COPY, [t]))
    return markers, treedef


def _vjp_of_call(fun: Callable[..., Any], argnums: tuple[int, ...], has_aux: bool,
                 args: tuple[Any, ...], kwargs: dict[str, Any]
                 ) -> tuple[Tracer, Any, list[Any]]:
    """Trace fun in the current trace; returns (value, aux, gradient pytrees per argnum)."""
    trace = current_trace()
    assert trace is not None
    for i in argnums:
        if not -len(args) <= i < len(args):
            raise ArgumentError(f"grad: argnums {argnums} but only {len(args)} arguments")
    call_args = list(args)
    marked = []
    for i in argnums:
        markers, treedef = _markers(trace, args[i], f"argument {i}")
        call_args[i] = pytree.tree_unflatten(treedef, markers)
        marked.append((markers, treedef))
    start = len(trace.comp.instructions)
    out = fun(*call_args, **kwargs)
    aux = None
    if has_aux:
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise ArgumentError("grad(has_aux=True): the function must return a pair "
                                "(value, aux)")
        out, aux = out
    value = to_tracer(out)
    if value.shape != () or kind_rank(value.dtype) != 2:
        raise ShapeError(f"grad: the function must return a float scalar, got "
                         f"{value.aval_text()} (use value_and_grad on a sum, or has_aux)")
    region = trace.comp.instructions[start:]
    ctx = VjpContext(trace)
    wrt = [m.instr for markers, _ in marked for m in markers]
    seed = prims.full((), 1, value.dtype)
    cts = backprop(ctx, region, [(value.instr, seed)], wrt)
    grads, k = [], 0
    for markers, treedef in marked:
        leaves = [ctx.materialize(cts[k + j], m.instr.shape) for j, m in enumerate(markers)]
        k += len(markers)
        grads.append(pytree.tree_unflatten(treedef, leaves))
    _drop_markers(marked)
    return value, aux, grads


def _drop_markers(marked: Sequence[tuple[list[Tracer], Any]]) -> None:
    """Make the users of each marker use the marked value itself.

    The markers only keep the arguments apart while cotangents propagate; left in place
    they would be copies of every parameter materialised on every call (no pass removes a
    `copy`). A marker a Tracer still holds stays in the computation, so a later use of it
    (an aux output, say) remains valid; unused, it is dead code.
    """
    for markers, _ in marked:
        for m in markers:
            m.instr.replace_all_uses_with(m.instr.operands[0])


def value_and_grad(fun: Callable[..., Any], argnums: int | Sequence[int] = 0,
                   has_aux: bool = False) -> Callable[..., Any]:
    """A function returning `(fun(*args), gradient)`; with has_aux `((value, aux), grad)`.

    The gradient has the structure of argument `argnums` (a tuple of them for a sequence of
    argnums). Inside a traced function it adds the backward pass to the trace; called
    with numpy arrays it compiles (through `jit`) and runs.
    """
    nums, single = _argnums(argnums)

    @functools.wraps(fun)
    def value_and_grad_fn(*args: Any, **kwargs: Any) -> Any:
        if current_trace() is None:
            return _eager(value_and_grad_fn)(*args, **kwargs)
        value, aux, grads = _vjp_of_call(fun, nums, has_aux, args, kwargs)
        g = grads[0] if single else tuple(grads)
        return ((value, aux), g) if has_aux else (value, g)

    return value_and_grad_fn


def grad(fun: Callable[..., Any], argnums: int | Sequence[int] = 0,
         has_aux: bool = False) -> Callable[..., Any]:
    """A function returning the gradient of the scalar `fun` (with has_aux: `(grad, aux)`)."""
    vg = value_and_grad(fun, argnums, has_aux)

    @functools.wraps(fun)
    def grad_fn(*args: Any, **kwargs: Any) -> Any:
        if current_trace() is None:
            return _eager(grad_fn)(*args, **kwargs)
        out, g = vg(*args, **kwargs)
        return (g, out[1]) if has_aux else g

    return grad_fn


@functools.lru_cache(maxsize=256)
def _eager(fn: Callable[..., Any]) -> Any:
    from compiler.jit import jit

    return jit(fn)


# --- modules -----------------------------------------------------------------------------------


def grad_module(module: HloModule, argnums: int | Sequence[int] = 0) -> HloModule:
    """A module computing `(value, d value / d parameter_i for i in argnums)`.

    The entry must return a float scalar (or a tuple whose element 0 is one: that element
    is differentiated). The input module is not changed; the result is a new module.
    """
    from compiler.jit import finish_module
    from hlo.parser import parse
    from hlo.printer import to_text

    nums, _ = _argnums(argnums)
    copy = parse(to_text(module))
    state = ModuleState(copy.name)
    state.module = copy
    comp = copy.entry_computation
    trace = Trace(state, comp)
    params = comp.parameters
    root = comp.root
    assert root is not None
    value = root.operands[0] if root.opcode is Opcode.TUPLE else root
    if value.shape.rank != 0 or not value.shape.element_type.is_float:
        raise ShapeError(f"grad_module: {copy.name} must return a float scalar, returns "
                         f"{value.shape}")
    region = [i for i in comp.post_order() if i.opcode is not Opcode.PARAMETER]
    with active(trace):
        markers = []
        for i in nums:
            if not 0 <= i < len(params):
                raise ArgumentError(f"grad_module: no parameter {i} in {copy.name}")
            p = params[i]
            marker = trace.add(Opcode.COPY, [p])
            for user in list(p.users):
                if user is not marker:
                    user.replace_operand_with(p, marker)
            markers.append(marker)
        ctx = VjpContext(trace)
        seed = prims.full((), 1, value.shape.element_type.numpy)
        cts = backprop(ctx, region, [(value, seed)], markers)
        grads = [ctx.materialize(ct, m.shape).instr for ct, m in zip(cts, markers, strict=True)]
        new_root = trace.add(Opcode.TUPLE, [value, *grads])
    comp.set_root(new_root)
    copy.entry_layout = None  # the signature changed; the printer derives the new one
    return finish_module(copy)
