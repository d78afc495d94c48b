"""Index arithmetic of gather and scatter (XLA's full dimension numbers), on i64 values.

Shared by the CPU and GPU kernels, which differ only in how they walk the elements (loop
nests on the CPU, one thread per element on the GPU) and in how scatter combines. A
*batch position* names one index vector of the start indices: one value per dimension of
`indices` other than `index_vector_dim` (an `index_vector_dim` equal to the rank of
`indices` means implicit vectors of length 1). Gather clamps every start index so that the
slice lies inside the operand; scatter keeps the start and reports whether the whole
update window fits, since XLA skips a window that does not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llvmlite import ir

from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import I1, I64, i64
from hlo.dtypes import PrimitiveType
from hlo.errors import UnsupportedOpError

_NOWRAP = ("nuw", "nsw")


def index_to_i64(b: ir.IRBuilder, value: ir.Value, t: PrimitiveType) -> ir.Value:
    """An integer index of type `t` as i64 (sign- or zero-extended as `t` demands)."""
    if not t.is_integer:
        raise UnsupportedOpError(f"indices of type {t.value}; expected an integer type")
    if t.bits == 64:
        return value
    return b.sext(value, I64) if t.is_signed else b.zext(value, I64)


def clamp_index(b: ir.IRBuilder, value: ir.Value, high: int) -> ir.Value:
    """min(max(value, 0), high) on i64 (high >= 0)."""
    value = b.select(b.icmp_signed("<", value, i64(0)), i64(0), value)
    return b.select(b.icmp_signed(">", value, i64(high)), i64(high), value)


def index_vector(b: ir.IRBuilder, indices: IrArray, vector_dim: int,
                 batch: Sequence[ir.Value], count: int) -> list[ir.Value]:
    """The `count` components (i64) of the index vector at batch position `batch`."""
    out: list[ir.Value] = []
    for j in range(count):
        index = list(batch)
        if vector_dim < indices.shape.rank:
            index.insert(vector_dim, i64(j))
        out.append(index_to_i64(b, indices.load(b, index), indices.element_type))
    return out


def batch_value(batch: Sequence[ir.Value], indices_dim: int, vector_dim: int) -> ir.Value:
    """The batch-position value of `indices` dimension `indices_dim` (not the vector one)."""
    return batch[indices_dim if indices_dim < vector_dim else indices_dim - 1]


def _optional(attrs: Mapping[str, Any], name: str) -> tuple[int, ...]:
    """An optional INTS attribute as a tuple (batching dimensions default to none)."""
    return tuple(attrs.get(name) or ())


# --- gather ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GatherDims:
    """A gather's dimension numbers, with the dimension lists its index arithmetic needs."""

    offset_dims: tuple[int, ...]
    start_map: tuple[int, ...]
    operand_batching: tuple[int, ...]
    indices_batching: tuple[int, ...]
    vector_dim: int
    slice_sizes: tuple[int, ...]
    operand_dims: tuple[int, ...]
    # Output dimensions that index the start indices (all but offset_dims).
    batch_dims: tuple[int, ...]
    # Operand dimensions the offset dimensions walk (neither collapsed nor batching).
    window_operand_dims: tuple[int, ...]

    @staticmethod
    def of(attrs: Mapping[str, Any], operand_dims: Sequence[int], out_rank: int) -> GatherDims:
        """The dimensions of a gather with attributes `attrs` on an operand of
        `operand_dims`, whose result has rank `out_rank`."""
        offset_dims = tuple(attrs["offset_dims"])
        collapsed = tuple(attrs["collapsed_slice_dims"])
        operand_batching = _optional(attrs, "operand_batching_dims")
        return GatherDims(
            offset_dims=offset_dims,
            start_map=tuple(attrs["start_index_map"]),
            operand_batching=operand_batching,
            indices_batching=_optional(attrs, "start_indices_batching_dims"),
            vector_dim=attrs["index_vector_dim"],
            slice_sizes=tuple(attrs["slice_sizes"]),
            operand_dims=tuple(operand_dims),
            batch_dims=tuple(d for d in range(out_rank) if d not in offset_dims),
            window_operand_dims=tuple(d for d in range(len(operand_dims))
                              if d not in collapsed and d not in operand_batching),
        )


def gather_operand_index(b: ir.IRBuilder, dims: GatherDims, indices: IrArray,
                         out_index: Sequence[ir.Value]) -> list[ir.Value]:
    """The operand index output element `out_index` copies: the clamped start of its batch
    position plus its offsets."""
    batch = [out_index[d] for d in dims.batch_dims]
    start: list[ir.Value] = [i64(0)] * len(dims.operand_dims)
    components = index_vector(b, indices, dims.vector_dim, batch, len(dims.start_map))
    for d, v in zip(dims.start_map, components, strict=True):
        start[d] = clamp_index(b, v, dims.operand_dims[d] - dims.slice_sizes[d])
    for od, idim in zip(dims.operand_batching, dims.indices_batching, strict=True):
        start[od] = batch_value(batch, idim, dims.vector_dim)
    index = list(start)
    for od, out_dim in zip(dims.window_operand_dims, dims.offset_dims, strict=True):
        index[od] = b.add(start[od], out_index[out_dim], flags=_NOWRAP)
    return index


# --- scatter -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScatterDims:
    """A scatter's dimension numbers, with the dimension lists its index arithmetic needs."""

    update_window_dims: tuple[int, ...]
    to_operand: tuple[int, ...]
    input_batching: tuple[int, ...]
    indices_batching: tuple[int, ...]
    vector_dim: int
    operand_dims: tuple[int, ...]
    # Update dimensions that index the scatter indices (all but update_window_dims).
    scatter_dims: tuple[int, ...]
    # Operand dimensions the update window walks, in the order of update_window_dims.
    window_operand_dims: tuple[int, ...]
    # The window's extent along every operand dimension (1 where it does not walk).
    window_size: tuple[int, ...]

    @staticmethod
    def of(attrs: Mapping[str, Any], operand_dims: Sequence[int],
           update_dims: Sequence[int]) -> ScatterDims:
        """The dimensions of a scatter with attributes `attrs` on operands of
        `operand_dims` and updates of `update_dims`."""
        update_window_dims = tuple(attrs["update_window_dims"])
        inserted = tuple(attrs["inserted_window_dims"])
        input_batching = _optional(attrs, "input_batching_dims")
        window_operand_dims = tuple(d for d in range(len(operand_dims))
                                    if d not in inserted and d not in input_batching)
        window_size = [1] * len(operand_dims)
        for od, ud in zip(window_operand_dims, update_window_dims, strict=True):
            window_size[od] = update_dims[ud]
        return ScatterDims(
            update_window_dims=update_window_dims,
            to_operand=tuple(attrs["scatter_dims_to_operand_dims"]),
            input_batching=input_batching,
            indices_batching=_optional(attrs, "scatter_indices_batching_dims"),
            vector_dim=attrs["index_vector_dim"],
            operand_dims=tuple(operand_dims),
            scatter_dims=tuple(d for d in range(len(update_dims))
                               if d not in update_window_dims),
            window_operand_dims=window_operand_dims,
            window_size=tuple(window_size),
        )


def scatter_start(b: ir.IRBuilder, dims: ScatterDims, indices: IrArray,
                  batch: Sequence[ir.Value]) -> tuple[list[ir.Value], ir.Value]:
    """The operand index where the update window of batch position `batch` starts, and an
    i1 that is true when the whole window lies inside the operand."""
    start: list[ir.Value] = [i64(0)] * len(dims.operand_dims)
    components = index_vector(b, indices, dims.vector_dim, batch, len(dims.to_operand))
    for d, v in zip(dims.to_operand, components, strict=True):
        start[d] = v
    for od, idim in zip(dims.input_batching, dims.indices_batching, strict=True):
        start[od] = batch_value(batch, idim, dims.vector_dim)
    fits: ir.Value = ir.Constant(I1, 1)
    for d, size in enumerate(dims.operand_dims):
        inside = b.and_(
            b.icmp_signed(">=", start[d], i64(0)),
            b.icmp_signed("<=", start[d], i64(size - dims.window_size[d])),
        )
        fits = b.and_(fits, inside)
    return start, fits


def scatter_target(b: ir.IRBuilder, dims: ScatterDims, start: Sequence[ir.Value],
                   window_index: Sequence[ir.Value]) -> list[ir.Value]:
    """The operand index of window element `window_index` (one value per update window
    dimension, in the order of update_window_dims) of a window starting at `start`."""
    target = list(start)
    for od, v in zip(dims.window_operand_dims, window_index, strict=True):
        target[od] = b.add(start[od], v, flags=_NOWRAP)
    return target


__all__ = [
    "GatherDims",
    "ScatterDims",
    "batch_value",
    "clamp_index",
    "gather_operand_index",
    "index_to_i64",
    "index_vector",
    "scatter_start",
    "scatter_target",
]
