"""VJP rules of reductions: reduce (sum, max, min, product) and reduce-window (sum, max,
min pooling).

The reducer is recognised from its computation (`add`, `maximum`, ... of the two
parameters). Max and min reductions send the cotangent to the elements equal to the
result, split evenly among ties; max pooling uses select-and-scatter, as XLA does.
"""

from __future__ import annotations

from compiler import numpy_prims as prims
from compiler.tracing import Tracer
from compiler.vjp_rules.base import Cot, VjpContext, defvjp
from hlo.computation import HloComputation
from hlo.errors import UnsupportedOpError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode


def reducer_opcode(comp: HloComputation) -> Opcode | None:
    """The binary opcode a scalar reducer computation applies to its two parameters."""
    root = comp.root
    params = comp.parameters
    if root is None or len(params) != 2 or len(root.operands) != 2:
        return None
    if {id(o) for o in root.operands} != {id(p) for p in params}:
        return None
    return root.opcode


def _expand(ct: Tracer, shape: tuple[int, ...], reduced: tuple[int, ...]) -> Tracer:
    kept = [d for d in range(len(shape)) if d not in reduced]
    return prims.broadcast_in_dim(ct, shape, kept)


@defvjp(Opcode.REDUCE)
def _reduce_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    if len(instr.operands) != 2:
        raise UnsupportedOpError(f"differentiating the variadic reduce {instr.name}")
    x, _ = ctx.operands(instr)
    dims = tuple(instr.attrs["dimensions"])
    op = reducer_opcode(instr.attrs["to_apply"])
    if op is Opcode.ADD:
        return [_expand(ct, x.shape, dims), prims.reduce_sum(ct, range(ct.ndim))]
    if op in (Opcode.MAXIMUM, Opcode.MINIMUM):
        hit = prims.compare(x, _expand(ctx.val(instr), x.shape, dims), "EQ")
        count = prims.reduce_sum(prims.convert(hit, ct.dtype), dims)
        share = _expand(prims.binary(Opcode.DIVIDE, ct, count), x.shape, dims)
        return [prims.select(hit, share, prims.zeros_like(share)), None]
    if op is Opcode.MULTIPLY:
        # d prod / d x_i = prod / x_i (the product rule; undefined where x_i == 0).
        whole = _expand(prims.binary(Opcode.MULTIPLY, ct, ctx.val(instr)), x.shape, dims)
        return [prims.binary(Opcode.DIVIDE, whole, x), None]
    raise UnsupportedOpError(
        f"differentiating reduce {instr.name} with reducer "
        f"{op.value if op else instr.attrs['to_apply'].name}")


def _dilate(size: int, dilation: int) -> int:
    return 0 if size == 0 else 1 + dilation * (size - 1)


@defvjp(Opcode.REDUCE_WINDOW)
def _reduce_window_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    if len(instr.operands) != 2:
        raise UnsupportedOpError(f"differentiating the variadic reduce-window {instr.name}")
    x, _ = ctx.operands(instr)
    window = instr.attrs["window"]
    op = reducer_opcode(instr.attrs["to_apply"])
    if any(w.base_dilation != 1 for w in window.dims):
        raise UnsupportedOpError(f"differentiating reduce-window {instr.name} with base "
                                 "dilation")
    if op is Opcode.ADD:
        return [_window_sum_transpose(ct, x.shape, window), None]
    if op in (Opcode.MAXIMUM, Opcode.MINIMUM):
        if any(w.window_dilation != 1 for w in window.dims):
            raise UnsupportedOpError(f"differentiating max/min reduce-window {instr.name} "
                                     "with window dilation")
        direction = "GE" if op is Opcode.MAXIMUM else "LE"
        return [prims.select_and_scatter_add(x, ct, window, direction), None]
    raise UnsupportedOpError(
        f"differentiating reduce-window {instr.name} with reducer "
        f"{op.value if op else instr.attrs['to_apply'].name}")


def _window_sum_transpose(ct: Tracer, in_shape: tuple[int, ...], window: object) -> Tracer:
    """Each input element receives the sum of the cotangents of the windows holding it:
    pad the cotangent (strides become interior padding) and sum stride-1 windows."""
    dims = window.dims  # type: ignore[attr-defined]
    config = []
    for w, n, out in zip(dims, in_shape, ct.shape, strict=True):
        size = _dilate(w.size, w.window_dilation)
        low = size - w.padding_low - 1
        high = n + size - 1 - _dilate(out, w.stride) - low
        config.append((low, high, w.stride - 1))
    padded = prims.pad(ct, prims.full((), 0, ct.dtype), config)
    unit = prims.make_window([w.size for w in dims],
                             window_dilation=[w.window_dilation for w in dims])
    return prims.reduce_window(padded, 0, Opcode.ADD, unit)
