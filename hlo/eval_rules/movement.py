"""Evaluator kernels for data movement: broadcast, reshape, bitcast, transpose, slice,
dynamic-slice, dynamic-update-slice, concatenate, pad, reverse, gather and scatter.

These kernels only move elements; the one computation they run (scatter's combiner)
goes through `Combiner` from reduction.py. Results are fresh arrays, never views of an
operand, so no kernel can change another's value by writing in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hlo.errors import EvaluationError
from hlo.eval_rules.reduction import Combiner, check_result, scatter_combine
from hlo.evaluator import Evaluator, Value, evaluates
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape


def as_index(x: np.ndarray) -> np.ndarray:
    """Integer index values as int64; unsigned values past int64 saturate (then clamp)."""
    if x.dtype.kind == "u" and x.dtype.itemsize == 8:
        return np.asarray(np.minimum(x, np.iinfo(np.int64).max), dtype=np.int64)
    if x.dtype.kind not in "iub":
        raise EvaluationError(f"index operand has non-integer element type {x.dtype}")
    return x.astype(np.int64)


def _scalar_index(x: np.ndarray) -> int:
    return int(as_index(np.asarray(x)).reshape(-1)[0])


@evaluates(Opcode.BROADCAST)
def _broadcast(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """broadcast: operand dim i becomes result dim dimensions[i]; the rest replicate."""
    x = vals[0]
    dims = list(instr.attrs["dimensions"])
    out_dims = instr.shape.dims
    if len(dims) != x.ndim:
        raise EvaluationError(f"{instr.name}: dimensions={dims} for an operand of rank {x.ndim}")
    order = sorted(range(len(dims)), key=lambda i: dims[i])
    aligned = np.transpose(x, order)
    expanded_shape = [1] * len(out_dims)
    for i in order:
        expanded_shape[dims[i]] = x.shape[i]
    expanded = aligned.reshape(expanded_shape)
    return check_result(instr, np.array(np.broadcast_to(expanded, out_dims)))


@evaluates(Opcode.RESHAPE)
def _reshape(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """reshape: the row-major element sequence, re-cut to the result dimensions."""
    x = vals[0]
    if x.size != instr.shape.num_elements:
        raise EvaluationError(
            f"{instr.name}: cannot reshape {list(x.shape)} to {list(instr.shape.dims)}"
        )
    return check_result(instr, np.array(x).reshape(instr.shape.dims))


def _physical_order(shape: Shape) -> list[int]:
    """Dimensions from major to minor under the shape's layout (default: row-major)."""
    if shape.layout is None or len(shape.layout) != shape.rank:
        return list(range(shape.rank))
    return list(reversed(shape.layout))


@evaluates(Opcode.BITCAST)
def _bitcast(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """bitcast: reinterpret the operand's bytes in memory (its layout) as the result shape
    in the result's layout; with default layouts this is a row-major reshape."""
    x = vals[0]
    src, dst = instr.operands[0].shape, instr.shape
    if x.dtype != dst.element_type.numpy or x.size != dst.num_elements:
        raise EvaluationError(
            f"{instr.name}: bitcast of {src.to_text()} to {dst.to_text()} changes the "
            "element type or count (use bitcast-convert or reshape)"
        )
    memory = np.transpose(x, _physical_order(src)).reshape(-1)
    dst_order = _physical_order(dst)
    physical = memory.reshape([dst.dims[d] for d in dst_order])
    return check_result(instr, np.array(np.transpose(physical, np.argsort(dst_order))))


@evaluates(Opcode.TRANSPOSE)
def _transpose(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """transpose: result dim i is operand dim dimensions[i]."""
    return check_result(instr, np.array(np.transpose(vals[0], instr.attrs["dimensions"])))


@evaluates(Opcode.SLICE)
def _slice(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """slice: [start:limit:stride] per dimension."""
    index = tuple(slice(d.start, d.limit, d.stride) for d in instr.attrs["slice"])
    return check_result(instr, np.array(vals[0][index]))


@evaluates(Opcode.DYNAMIC_SLICE)
def _dynamic_slice(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """dynamic-slice(operand, starts...): starts clamped to [0, dim - size], as XLA."""
    x = vals[0]
    sizes = instr.attrs["dynamic_slice_sizes"]
    starts = _start_indices(instr, vals[1:], x.ndim)
    index = []
    for start, size, dim in zip(starts, sizes, x.shape, strict=True):
        begin = min(max(start, 0), dim - size)
        index.append(slice(begin, begin + size))
    return check_result(instr, np.array(x[tuple(index)]))


@evaluates(Opcode.DYNAMIC_UPDATE_SLICE)
def _dynamic_update_slice(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """dynamic-update-slice(operand, update, starts...): starts clamped to
    [0, dim - update dim], as XLA."""
    x, update = vals[0], vals[1]
    starts = _start_indices(instr, vals[2:], x.ndim)
    out = np.array(x)
    index = []
    for start, size, dim in zip(starts, update.shape, x.shape, strict=True):
        begin = min(max(start, 0), dim - size)
        index.append(slice(begin, begin + size))
    out[tuple(index)] = update
    return check_result(instr, out)


def _start_indices(instr: HloInstruction, starts: Sequence[np.ndarray], rank: int) -> list[int]:
    """Start indices given as one scalar per dimension, or (old form) one rank-1 array."""
    if len(starts) == 1 and np.ndim(starts[0]) == 1:
        values = [int(v) for v in as_index(starts[0])]
    else:
        values = [_scalar_index(s) for s in starts]
    if len(values) != rank:
        raise EvaluationError(
            f"{instr.name}: {len(values)} start index(es) for an operand of rank {rank}"
        )
    return values


@evaluates(Opcode.CONCATENATE)
def _concatenate(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """concatenate along dimensions[0]."""
    return check_result(instr, np.concatenate(vals, axis=instr.attrs["dimensions"][0]))


@evaluates(Opcode.PAD)
def _pad(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """pad(operand, value): low/high edge padding (negative crops) and interior padding.

    Operand element i of a dimension lands at `low + i * (interior + 1)`.
    """
    x, value = vals
    config = instr.attrs["padding"].dims
    out = np.full(instr.shape.dims, value, dtype=x.dtype)
    src, dst = [], []
    for d, n, size in zip(config, x.shape, instr.shape.dims, strict=True):
        step = d.interior + 1
        positions = d.low + np.arange(n) * step
        inside = np.nonzero((positions >= 0) & (positions < size))[0]
        if inside.size == 0:
            return check_result(instr, out)
        first, last = int(inside[0]), int(inside[-1])
        src.append(slice(first, last + 1))
        dst.append(slice(int(positions[first]), int(positions[last]) + 1, step))
    out[tuple(dst)] = x[tuple(src)]
    return check_result(instr, out)


@evaluates(Opcode.REVERSE)
def _reverse(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """reverse the listed dimensions."""
    return check_result(instr, np.array(np.flip(vals[0], axis=tuple(instr.attrs["dimensions"]))))


# --- gather and scatter ------------------------------------------------------------------


def _index_vectors(indices: np.ndarray, index_vector_dim: int) -> np.ndarray:
    """Index vectors moved to the last axis: shape [batch..., vector] (a scalar index when
    index_vector_dim equals the rank)."""
    idx = as_index(indices)
    if index_vector_dim == idx.ndim:
        idx = idx[..., None]
    return np.moveaxis(idx, index_vector_dim, -1)


def _start_positions(
    vectors: np.ndarray,
    index_map: Sequence[int],
    operand_batching: Sequence[int],
    indices_batching: Sequence[int],
    index_vector_dim: int,
    operand_rank: int,
) -> np.ndarray:
    """Operand start positions [batch..., operand_rank] before any clamping.

    Mapped index components go to their operand dims; batching dims start at the batch
    coordinate of the matching indices dim; every other dim starts at 0.
    """
    batch_shape = vectors.shape[:-1]
    if vectors.shape[-1] != len(index_map):
        raise EvaluationError(
            f"index vectors have {vectors.shape[-1]} component(s) for {len(index_map)} mapped "
            "dimension(s)"
        )
    starts = np.zeros(batch_shape + (operand_rank,), dtype=np.int64)
    for k, d in enumerate(index_map):
        starts[..., d] = vectors[..., k]
    for od, idim in zip(operand_batching, indices_batching, strict=True):
        axis = idim if idim < index_vector_dim else idim - 1
        coord_shape = [1] * len(batch_shape)
        coord_shape[axis] = batch_shape[axis]
        starts[..., od] = np.arange(batch_shape[axis]).reshape(coord_shape)
    return starts


def _spread(values: np.ndarray, axes: Sequence[int], rank: int) -> np.ndarray:
    """`values` (one axis per entry of `axes`) reshaped to `rank` dims, placed at `axes`."""
    shape = [1] * rank
    for axis, size in zip(axes, values.shape, strict=True):
        shape[axis] = size
    return values.reshape(shape)


@evaluates(Opcode.GATHER)
def _gather(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """gather with XLA's GatherDimensionNumbers (batching dims included).

    Output dims not in offset_dims are batch dims, matching the indices dims (without
    index_vector_dim) in order. Start indices are clamped to [0, dim - slice_size].
    """
    operand, indices = vals
    a = instr.attrs
    offset_dims = list(a["offset_dims"])
    collapsed = set(a["collapsed_slice_dims"])
    operand_batching = list(a.get("operand_batching_dims", ()))
    slice_sizes = list(a["slice_sizes"])
    out_dims = instr.shape.dims
    out_rank = len(out_dims)
    ivd = a["index_vector_dim"]
    vectors = _index_vectors(indices, ivd)
    starts = _start_positions(
        vectors,
        a["start_index_map"],
        operand_batching,
        a.get("start_indices_batching_dims", ()),
        ivd,
        operand.ndim,
    )
    for d in a["start_index_map"]:
        starts[..., d] = np.clip(starts[..., d], 0, operand.shape[d] - slice_sizes[d])
    batch_axes = [d for d in range(out_rank) if d not in offset_dims]
    window_dims = [
        d for d in range(operand.ndim) if d not in collapsed and d not in operand_batching
    ]
    if len(window_dims) != len(offset_dims) or len(batch_axes) != starts.ndim - 1:
        raise EvaluationError(f"{instr.name}: gather dimension numbers do not fit the shapes")
    positions = []
    for d in range(operand.ndim):
        position = _spread(starts[..., d], batch_axes, out_rank)
        if d in window_dims:
            axis = offset_dims[window_dims.index(d)]
            position = position + _spread(np.arange(slice_sizes[d]), [axis], out_rank)
        positions.append(position)
    gathered = operand[tuple(positions)] if operand.ndim else operand
    return check_result(instr, np.array(np.broadcast_to(gathered, out_dims)))


@evaluates(Opcode.SCATTER)
def _scatter(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """scatter with XLA's ScatterDimensionNumbers (variadic, batching dims included).

    An update window whose start puts any part of it out of bounds is skipped whole, as
    XLA does. Updates combine as `out = to_apply(out..., update...)`, in the order of the
    scatter indices, so repeated indices apply in order.
    """
    n = (len(vals) - 1) // 2
    operands, indices, updates = vals[:n], vals[n], vals[n + 1 :]
    a = instr.attrs
    window_axes = list(a["update_window_dims"])
    inserted = set(a["inserted_window_dims"])
    input_batching = list(a.get("input_batching_dims", ()))
    operand_dims = operands[0].shape
    rank = len(operand_dims)
    upd_shape = updates[0].shape
    scatter_axes = [d for d in range(len(upd_shape)) if d not in window_axes]
    ivd = a["index_vector_dim"]
    starts = _start_positions(
        _index_vectors(indices, ivd),
        a["scatter_dims_to_operand_dims"],
        input_batching,
        a.get("scatter_indices_batching_dims", ()),
        ivd,
        rank,
    )
    window_dims = [d for d in range(rank) if d not in inserted and d not in input_batching]
    if len(window_dims) != len(window_axes) or len(scatter_axes) != starts.ndim - 1:
        raise EvaluationError(f"{instr.name}: scatter dimension numbers do not fit the shapes")
    sizes = [1] * rank
    for d, axis in zip(window_dims, window_axes, strict=True):
        sizes[d] = upd_shape[axis]
    valid = np.ones(starts.shape[:-1], dtype=bool)
    for d in range(rank):
        valid &= (starts[..., d] >= 0) & (starts[..., d] <= operand_dims[d] - sizes[d])
    strides = np.cumprod([1, *operand_dims[::-1]])[:-1][::-1]
    flat = np.zeros((1,) * len(upd_shape), dtype=np.int64)
    for d in range(rank):
        position = _spread(np.where(valid, starts[..., d], 0), scatter_axes, len(upd_shape))
        if d in window_dims:
            axis = window_axes[window_dims.index(d)]
            position = position + _spread(np.arange(sizes[d]), [axis], len(upd_shape))
        flat = flat + position * int(strides[d])
    keep = np.broadcast_to(_spread(valid, scatter_axes, len(upd_shape)), upd_shape)
    flat = np.broadcast_to(flat, upd_shape)
    # XLA's order: scatter indices outermost (row-major), window elements within.
    order = scatter_axes + window_axes
    take = np.transpose(keep, order).reshape(-1)
    target = np.transpose(flat, order).reshape(-1)[take]
    moved = [np.transpose(u, order).reshape(-1)[take] for u in updates]
    outs = [np.array(o).reshape(-1) for o in operands]
    scatter_combine(Combiner(ev, a["to_apply"]), outs, target, moved)
    shapes = instr.shape.leaves() if instr.shape.is_tuple else [instr.shape]
    results = [
        check_result(instr, o.reshape(operand_dims), s) for o, s in zip(outs, shapes, strict=True)
    ]
    return tuple(results) if instr.shape.is_tuple else results[0]
