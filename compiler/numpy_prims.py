"""Primitive operations on tracers: one thin function per HLO opcode family, no promotion.

These are the building blocks of compiler.numpy (which adds numpy's broadcasting and type
promotion) and of the VJP rules in compiler/vjp_rules (which need exact HLO semantics).
Operands must already agree in shape and element type as the HLO shape rules require;
violations raise ShapeError from the rule. `compiler.lax` re-exports the public ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from compiler.tracing import ArrayLike, Tracer, element_type_of, require_trace, to_tracer
from hlo.attributes import ConvDimLabels, PadDim, PaddingConfig, SliceDim, Window, WindowDim
from hlo.errors import ArgumentError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape


def emit(opcode: Opcode, operands: Sequence[Any], shape: Shape | None = None,
         **attrs: Any) -> Tracer:
    """Append `opcode(operands)` to the current trace; operands may be tracers or constants."""
    trace = require_trace(opcode.value)
    instrs: list[HloInstruction] = [to_tracer(o).instr for o in operands]
    return Tracer(trace, trace.add(opcode, instrs, shape=shape, **attrs))


def _etype(x: Tracer) -> Any:
    return x.instr.shape.element_type


def unary(opcode: Opcode, x: Any) -> Tracer:
    return emit(opcode, [x])


def binary(opcode: Opcode, x: Any, y: Any) -> Tracer:
    return emit(opcode, [x, y])


def compare(x: ArrayLike, y: Any, direction: str) -> Tracer:
    """Elementwise comparison (EQ, NE, LT, LE, GT, GE) -> pred; floats compare as IEEE."""
    x = to_tracer(x)
    return emit(Opcode.COMPARE, [x, y], direction=direction)


def select(pred: Any, on_true: Any, on_false: Any) -> Tracer:
    return emit(Opcode.SELECT, [pred, on_true, on_false])


def convert(x: ArrayLike, dtype: Any) -> Tracer:
    """`x` converted to `dtype` (no-op when it already has it)."""
    x = to_tracer(x)
    etype = element_type_of(dtype)
    if _etype(x) is etype:
        return x
    return emit(Opcode.CONVERT, [x], shape=Shape.array(etype, x.shape))


def full(shape: Sequence[int], value: Any, dtype: Any) -> Tracer:
    """An array of `shape` filled with the scalar `value` (a broadcast constant)."""
    if isinstance(value, Tracer):
        scalar = convert(value, dtype)
    else:
        scalar = to_tracer(np.asarray(value, dtype=dtype))
    return broadcast_in_dim(scalar, shape, ())


def zeros_like(x: Tracer) -> Tracer:
    return full(x.shape, 0, x.dtype)


def broadcast_in_dim(x: ArrayLike, shape: Sequence[int], dims: Sequence[int]) -> Tracer:
    """Operand dim i becomes result dim dims[i] (sizes equal); other dims are new."""
    x = to_tracer(x)
    shape = tuple(int(d) for d in shape)
    if x.shape == shape and tuple(dims) == tuple(range(x.ndim)):
        return x
    return emit(Opcode.BROADCAST, [x], shape=Shape.array(_etype(x), shape),
                dimensions=tuple(int(d) for d in dims))


def reshape(x: ArrayLike, shape: Sequence[int]) -> Tracer:
    x = to_tracer(x)
    shape = tuple(int(d) for d in shape)
    if x.shape == shape:
        return x
    return emit(Opcode.RESHAPE, [x], shape=Shape.array(_etype(x), shape))


def transpose(x: ArrayLike, perm: Sequence[int]) -> Tracer:
    """Result dim i is operand dim perm[i]."""
    x = to_tracer(x)
    perm = tuple(int(p) for p in perm)
    if perm == tuple(range(x.ndim)):
        return x
    return emit(Opcode.TRANSPOSE, [x], dimensions=perm)


def slice_(x: ArrayLike, starts: Sequence[int], limits: Sequence[int],
           strides: Sequence[int] | None = None) -> Tracer:
    x = to_tracer(x)
    strides = strides or [1] * x.ndim
    spec = tuple(SliceDim(int(a), int(b), int(s)) for a, b, s in zip(starts, limits, strides,
                                                                        strict=True))
    if all(s.start == 0 and s.limit == d and s.stride == 1
           for s, d in zip(spec, x.shape, strict=True)):
        return x
    return emit(Opcode.SLICE, [x], slice=spec)


def _index_scalars(starts: Sequence[Any]) -> list[Tracer]:
    """Start indices as s32 scalars (tracers are converted, Python ints become constants)."""
    out = []
    for s in starts:
        t = to_tracer(s, np.int32) if not isinstance(s, Tracer) else convert(s, np.int32)
        if t.ndim != 0:
            raise ArgumentError(f"start indices must be scalars, got shape {t.shape}")
        out.append(t)
    return out


def dynamic_slice(x: ArrayLike, starts: Sequence[Any], sizes: Sequence[int]) -> Tracer:
    """The window of `sizes` at `starts` (clamped into bounds, as in XLA)."""
    x = to_tracer(x)
    return emit(Opcode.DYNAMIC_SLICE, [x, *_index_scalars(starts)],
                dynamic_slice_sizes=tuple(int(s) for s in sizes))


def dynamic_update_slice(x: ArrayLike, update: Any, starts: Sequence[Any]) -> Tracer:
    """`x` with `update` written at `starts` (clamped so the update fits)."""
    return emit(Opcode.DYNAMIC_UPDATE_SLICE, [x, update, *_index_scalars(starts)])


def pad(x: ArrayLike, value: Any, config: Sequence[tuple[int, int, int]]) -> Tracer:
    """Edge (low, high; may be negative) and interior padding with the scalar `value`."""
    x = to_tracer(x)
    if all(c == (0, 0, 0) for c in config):
        return x
    padding = PaddingConfig(tuple(PadDim(int(lo), int(hi), int(i)) for lo, hi, i in config))
    value = to_tracer(value, x.dtype) if not isinstance(value, Tracer) else value
    return emit(Opcode.PAD, [x, value], padding=padding)


def concatenate(xs: Sequence[Any], axis: int) -> Tracer:
    if len(xs) == 1:
        return to_tracer(xs[0])
    return emit(Opcode.CONCATENATE, list(xs), dimensions=(int(axis),))


def reverse(x: ArrayLike, dims: Sequence[int]) -> Tracer:
    x = to_tracer(x)
    if not dims:
        return x
    return emit(Opcode.REVERSE, [x], dimensions=tuple(int(d) for d in dims))


def iota(dtype: Any, shape: Sequence[int], dimension: int) -> Tracer:
    """Counts 0, 1, 2, ... along `dimension` of an array of `shape`."""
    return emit(Opcode.IOTA, [], shape=Shape.array(element_type_of(dtype), shape),
                iota_dimension=int(dimension))


def reduce(x: ArrayLike, init: Any, opcode: Opcode, axes: Sequence[int]) -> Tracer:
    """Reduce `axes` of `x` with the binary `opcode` (add, maximum, minimum, and, or...)."""
    x = to_tracer(x)
    axes = tuple(sorted(int(a) for a in axes))
    if not axes:
        return x
    trace = require_trace("reduce")
    fn = trace.state.scalar_computation(opcode, _etype(x))
    init_t = to_tracer(np.asarray(init, dtype=x.dtype)) if not isinstance(init, Tracer) else init
    return emit(Opcode.REDUCE, [x, init_t], dimensions=axes, to_apply=fn)


def reduce_sum(x: ArrayLike, axes: Sequence[int]) -> Tracer:
    return reduce(x, 0, Opcode.ADD, axes)


def make_window(sizes: Sequence[int], strides: Sequence[int] | None = None,
                padding: Sequence[tuple[int, int]] | None = None,
                base_dilation: Sequence[int] | None = None,
                window_dilation: Sequence[int] | None = None) -> Window:
    """A Window from per-dimension lists (defaults: stride 1, no padding, no dilation)."""
    n = len(sizes)
    strides = strides or [1] * n
    padding = padding or [(0, 0)] * n
    base_dilation = base_dilation or [1] * n
    window_dilation = window_dilation or [1] * n
    return Window(tuple(
        WindowDim(int(s), int(st), int(p[0]), int(p[1]), int(wd), int(bd))
        for s, st, p, bd, wd in zip(sizes, strides, padding, base_dilation, window_dilation,
                                    strict=True)
    ))


def reduce_window(x: ArrayLike, init: Any, opcode: Opcode, window: Window) -> Tracer:
    """Reduce each window of `x` with the binary `opcode` (padding takes `init`)."""
    x = to_tracer(x)
    trace = require_trace("reduce_window")
    fn = trace.state.scalar_computation(opcode, _etype(x))
    init_t = to_tracer(np.asarray(init, dtype=x.dtype)) if not isinstance(init, Tracer) else init
    return emit(Opcode.REDUCE_WINDOW, [x, init_t], window=window, to_apply=fn)


def select_and_scatter_add(operand: Any, source: Any, window: Window,
                           direction: str = "GE") -> Tracer:
    """Add each `source` element to the element its window of `operand` selects (max: GE)."""
    operand = to_tracer(operand)
    trace = require_trace("select_and_scatter")
    etype = _etype(operand)
    select_fn = trace.state.scalar_computation(Opcode.COMPARE, etype, direction)
    scatter_fn = trace.state.scalar_computation(Opcode.ADD, etype)
    init = to_tracer(np.zeros((), operand.dtype))
    return emit(Opcode.SELECT_AND_SCATTER, [operand, source, init], window=window,
                select=select_fn, scatter=scatter_fn)


def dot_general(x: ArrayLike, y: Any, contracting: tuple[Sequence[int], Sequence[int]],
                batch: tuple[Sequence[int], Sequence[int]] = ((), ())) -> Tracer:
    """Contract dims contracting[0] of x with contracting[1] of y, batch dims paired;
    result dims: batch, x's free dims, y's free dims."""
    return emit(
        Opcode.DOT, [x, y],
        lhs_batch_dims=tuple(int(d) for d in batch[0]),
        lhs_contracting_dims=tuple(int(d) for d in contracting[0]),
        rhs_batch_dims=tuple(int(d) for d in batch[1]),
        rhs_contracting_dims=tuple(int(d) for d in contracting[1]),
    )


def convolution(lhs: Any, rhs: Any, window: Window, labels: ConvDimLabels,
                feature_group_count: int = 1, batch_group_count: int = 1) -> Tracer:
    """The HLO convolution with explicit window and dimension labels."""
    return emit(Opcode.CONVOLUTION, [lhs, rhs], window=window, dim_labels=labels,
                feature_group_count=int(feature_group_count),
                batch_group_count=int(batch_group_count))


def gather(x: ArrayLike, indices: Any, *, offset_dims: Sequence[int],
           collapsed_slice_dims: Sequence[int], start_index_map: Sequence[int],
           index_vector_dim: int, slice_sizes: Sequence[int],
           operand_batching_dims: Sequence[int] = (),
           start_indices_batching_dims: Sequence[int] = ()) -> Tracer:
    """XLA gather with explicit dimension numbers."""
    return emit(
        Opcode.GATHER, [x, indices],
        offset_dims=tuple(offset_dims), collapsed_slice_dims=tuple(collapsed_slice_dims),
        start_index_map=tuple(start_index_map),
        operand_batching_dims=tuple(operand_batching_dims),
        start_indices_batching_dims=tuple(start_indices_batching_dims),
        index_vector_dim=int(index_vector_dim), slice_sizes=tuple(int(s) for s in slice_sizes),
    )


def scatter(x: ArrayLike, indices: Any, updates: Any, combiner: Opcode | None, *,
            update_window_dims: Sequence[int], inserted_window_dims: Sequence[int],
            scatter_dims_to_operand_dims: Sequence[int], index_vector_dim: int,
            input_batching_dims: Sequence[int] = (),
            scatter_indices_batching_dims: Sequence[int] = ()) -> Tracer:
    """XLA scatter; `combiner` is the binary opcode (ADD...) or None to overwrite."""
    x = to_tracer(x)
    trace = require_trace("scatter")
    fn = trace.state.scalar_computation(combiner, _etype(x))
    return emit(
        Opcode.SCATTER, [x, indices, updates],
        update_window_dims=tuple(update_window_dims),
        inserted_window_dims=tuple(inserted_window_dims),
        scatter_dims_to_operand_dims=tuple(scatter_dims_to_operand_dims),
        input_batching_dims=tuple(input_batching_dims),
        scatter_indices_batching_dims=tuple(scatter_indices_batching_dims),
        index_vector_dim=int(index_vector_dim), to_apply=fn,
    )


def make_tuple(xs: Sequence[Any]) -> Tracer:
    return emit(Opcode.TUPLE, list(xs))


def get_tuple_element(x: Tracer, index: int) -> Tracer:
    return emit(Opcode.GET_TUPLE_ELEMENT, [x], index=int(index))
