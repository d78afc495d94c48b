"""Data-movement builder operations: Broadcast, BroadcastInDim, Reshape, Collapse, Transpose,
Rev, Slice, DynamicSlice, DynamicUpdateSlice, ConcatInDim, Pad, Gather and Scatter.

The 2018 API differs from today's HLO in a few places, which the builder bridges:
Broadcast prepends dimensions (HLO `broadcast` names where operand dimensions land);
Reshape with `dimensions` transposes first; DynamicSlice takes its start indices as one
rank-1 array (HLO takes one scalar per dimension); Gather uses the document's names
(`output_window_dims`, `elided_window_dims`, `window_bounds`,
`gather_dims_to_operand_dims`) for HLO's `offset_dims`, `collapsed_slice_dims`,
`slice_sizes` and `start_index_map`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from hlo.attributes import PadDim, PaddingConfig, SliceDim
from hlo.builder_core import ComputationLike, XlaOp, handle_list, int_arg, int_list, shape_text
from hlo.builder_elementwise import ElementwiseOps
from hlo.dtypes import PrimitiveType
from hlo.errors import ArgumentError, ShapeError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

# Start indices of DynamicSlice / DynamicUpdateSlice: one rank-1 integer array (the
# document's form), or one scalar handle or Python int per dimension.
StartIndices = XlaOp | Sequence[XlaOp | int]

# A padding configuration: PaddingConfig, or one (low, high) / (low, high, interior) per dim.
PaddingLike = PaddingConfig | Sequence[Sequence[int]]


def as_padding_config(what: str, padding: PaddingLike) -> PaddingConfig:
    """`padding` as a PaddingConfig (tuples are (edge low, edge high[, interior]))."""
    if isinstance(padding, PaddingConfig):
        return padding
    if not isinstance(padding, (list, tuple)):
        raise ArgumentError(
            f"{what}: padding_config must be a PaddingConfig or a list of (low, high[, "
            f"interior]) tuples, got {type(padding).__name__}"
        )
    dims: list[PadDim] = []
    for entry in padding:
        if isinstance(entry, PadDim):
            dims.append(entry)
            continue
        values = int_list(what, "padding_config entry", entry)
        if len(values) not in (2, 3):
            raise ArgumentError(
                f"{what}: padding entry {entry!r} must be (low, high) or (low, high, interior)"
            )
        dims.append(PadDim(*values))
    return PaddingConfig(tuple(dims))


class MovementOps(ElementwiseOps):
    """Operations that move elements without computing on them (plus Gather/Scatter)."""

    # --- broadcast ---------------------------------------------------------------------------
    def broadcast(self, operand: XlaOp, broadcast_sizes: Sequence[int]) -> XlaOp:
        """New dimensions of `broadcast_sizes` PREPENDED: {a0..aN} x {b0..bM} -> {a.., b..}.

        output[i0, ..., iN, j0, ..., jM] = operand[j0, ..., jM].
        """
        what = "broadcast"
        self._check_operands(what, [operand])
        self._require_array(what, operand)
        sizes = int_list(what, "broadcast_sizes", broadcast_sizes)
        if any(s < 0 for s in sizes):
            raise ShapeError(f"{what}: negative size in broadcast_sizes {list(sizes)}")
        rank = operand.shape.rank
        shape = Shape.array(operand.shape.element_type, sizes + operand.shape.dims)
        return self._add(what, Opcode.BROADCAST, [operand], shape=shape,
                         dimensions=tuple(range(len(sizes), len(sizes) + rank)))

    def broadcast_in_dim(self, operand: XlaOp, out_dim_sizes: Sequence[int],
                         broadcast_dimensions: Sequence[int]) -> XlaOp:
        """Broadcast to `out_dim_sizes`; operand dimension i lands on broadcast_dimensions[i].

        Operand dimensions must equal the output dimension they land on, or be 1.
        """
        what = "broadcast_in_dim"
        self._check_operands(what, [operand])
        self._require_array(what, operand)
        out = int_list(what, "out_dim_sizes", out_dim_sizes)
        bdims = int_list(what, "broadcast_dimensions", broadcast_dimensions)
        if any(s < 0 for s in out):
            raise ShapeError(f"{what}: negative size in out_dim_sizes {list(out)}")
        if len(bdims) != operand.shape.rank:
            raise ShapeError(
                f"{what}: broadcast_dimensions {list(bdims)} needs one entry per dimension of "
                f"{shape_text(operand.shape)}"
            )
        self._check_dims_in_range(what, "broadcast_dimensions", bdims, len(out))
        if list(bdims) != sorted(bdims):
            raise ShapeError(f"{what}: broadcast_dimensions {list(bdims)} must be increasing")
        return self._expand(what, operand, bdims, out)

    # --- reshape family ----------------------------------------------------------------------
    def reshape(self, operand: XlaOp, new_sizes: Sequence[int],
                dimensions: Sequence[int] | None = None) -> XlaOp:
        """Reshape to `new_sizes`; with `dimensions`, first transpose into that order.

        `dimensions` lists the operand's dimensions from slowest- to fastest-varying in the
        order the elements are collapsed (a permutation; default: 0..rank-1).
        """
        what = "reshape"
        self._check_operands(what, [operand])
        self._require_array(what, operand)
        sizes = int_list(what, "new_sizes", new_sizes)
        if any(s < 0 for s in sizes):
            raise ShapeError(f"{what}: negative size in new_sizes {list(sizes)}")
        if dimensions is not None:
            perm = self._permutation(what, "dimensions", dimensions, operand.shape)
            if perm != tuple(range(operand.shape.rank)):
                operand = self.transpose(operand, perm)
        if math.prod(sizes) != operand.shape.num_elements:
            raise ShapeError(
                f"{what}: {shape_text(operand.shape)} has {operand.shape.num_elements} elements, "
                f"new_sizes {list(sizes)} has {math.prod(sizes)}"
            )
        shape = Shape.array(operand.shape.element_type, sizes)
        return self._add(what, Opcode.RESHAPE, [operand], shape=shape)

    def collapse(self, operand: XlaOp, dimensions: Sequence[int]) -> XlaOp:
        """Collapse consecutive, in-order `dimensions` into one (a reshape).

        Collapse(f32[4,2,3], {1,2}) -> f32[4,6]; Collapse(f32[4,2,3], {0,1}) -> f32[8,3].
        """
        what = "collapse"
        self._check_operands(what, [operand])
        self._require_array(what, operand)
        dims = int_list(what, "dimensions", dimensions)
        shape = operand.shape
        if not dims:
            return operand
        self._check_dims_in_range(what, "dimensions", dims, shape.rank)
        if list(dims) != list(range(dims[0], dims[0] + len(dims))):
            raise ShapeError(
                f"{what}: dimensions {list(dims)} of {shape_text(shape)} must be consecutive "
                f"and in order"
            )
        first, last = dims[0], dims[-1]
        collapsed = math.prod(shape.dims[first:last + 1])
        return self.reshape(operand, shape.dims[:first] + (collapsed,) + shape.dims[last + 1:])

    def _permutation(
        self, what: str, name: str, perm: Sequence[int], shape: Shape
    ) -> tuple[int, ...]:
        p = int_list(what, name, perm)
        if sorted(p) != list(range(shape.rank)):
            raise ShapeError(
                f"{what}: {name} {list(p)} is not a permutation of the {shape.rank} dimensions "
                f"of {shape_text(shape)}"
            )
        return p

    def transpose(self, operand: XlaOp, permutation: Sequence[int]) -> XlaOp:
        """Permute dimensions: output dimension i is input dimension permutation[i]."""
        what = "transpose"
        self._check_operands(what, [operand])
        self._require_array(what, operand)
        perm = self._permutation(what, "permutation", permutation, operand.shape)
        return self._add(what, Opcode.TRANSPOSE, [operand], dimensions=perm)

    def rev(self, operand: XlaOp, dimensions: Sequence[int]) -> XlaOp:
        """Reverse the order of elements along `dimensions` (index i -> N-1-i)."""
        what = "rev"
        self._check_operands(what, [operand])
        self._require_array(what, operand)
        dims = int_list(what, "dimensions", dimensions)
        self._check_dims_in_range(what, "dimensions", dims, operand.shape.rank)
        return self._add(what, Opcode.REVERSE, [operand], dimensions=dims)

    # --- slicing -----------------------------------------------------------------------------
    def slice(self, operand: XlaOp, start_indices: Sequence[int], limit_indices: Sequence[int],
              strides: Sequence[int] | None = None) -> XlaOp:
        """The sub-array [start, limit) (with optional strides) in every dimension."""
        what = "slice"
        self._check_operands(what, [operand])
        self._require_array(what, operand)
        starts = int_list(what, "start_indices", start_indices)
        limits = int_list(what, "limit_indices", limit_indices)
        steps = (1,) * len(starts) if strides is None else int_list(what, "strides", strides)
        rank = operand.shape.rank
        if not len(starts) == len(limits) == len(steps) == rank:
            raise ShapeError(
                f"{what}: {shape_text(operand.shape)} needs {rank} start, limit and stride "
                f"values, got {len(starts)}, {len(limits)} and {len(steps)}"
            )
        for d, (s, lim, st) in enumerate(zip(starts, limits, steps, strict=True)):
            if not (0 <= s <= lim <= operand.shape.dims[d]) or st < 1:
                raise ShapeError(
                    f"{what}: [{s}:{lim}:{st}] is not a valid slice of dimension {d} (size "
                    f"{operand.shape.dims[d]}) of {shape_text(operand.shape)}"
                )
        spec = tuple(
            SliceDim(s, lim, st) for s, lim, st in zip(starts, limits, steps, strict=True)
        )
        return self._add(what, Opcode.SLICE, [operand], slice=spec)

    def slice_in_dim(self, operand: XlaOp, start_index: int, limit_index: int, stride: int,
                     dimno: int) -> XlaOp:
        """Slice along dimension `dimno` only; the other dimensions are kept whole."""
        what = "slice_in_dim"
        start_index = int_arg(what, "start_index", start_index)
        limit_index = int_arg(what, "limit_index", limit_index)
        stride = int_arg(what, "stride", stride)
        dimno = int_arg(what, "dimno", dimno)
        self._check_operands(what, [operand])
        self._require_array("slice_in_dim", operand)
        dims = operand.shape.dims
        if not 0 <= dimno < len(dims):
            raise ShapeError(
                f"slice_in_dim: dimno {dimno} is out of range for {shape_text(operand.shape)}"
            )
        starts = [0] * len(dims)
        limits = list(dims)
        strides = [1] * len(dims)
        starts[dimno], limits[dimno], strides[dimno] = start_index, limit_index, stride
        return self.slice(operand, starts, limits, strides)

    def _scalar_indices(self, what: str, start_indices: StartIndices, rank: int) -> list[XlaOp]:
        """One scalar integer handle per dimension, from any StartIndices form."""
        if isinstance(start_indices, HloInstruction):
            self._check_operands(what, [start_indices])
            shape = start_indices.shape
            if not shape.is_array or shape.rank != 1 or not shape.element_type.is_integer:
                raise ShapeError(
                    f"{what}: start_indices must be a rank-1 integer array, got "
                    f"{shape_text(shape)}"
                )
            if shape.dims[0] != rank:
                raise ShapeError(
                    f"{what}: start_indices {shape_text(shape)} needs one entry per operand "
                    f"dimension ({rank})"
                )
            return [
                self._reshape_to(self.slice(start_indices, [i], [i + 1]), ())
                for i in range(rank)
            ]
        if not isinstance(start_indices, (list, tuple)):
            raise ArgumentError(
                f"{what}: start_indices must be a rank-1 array handle or a list of scalar "
                f"handles and ints, got {type(start_indices).__name__}"
            )
        items: list[Any] = list(start_indices)
        if len(items) != rank:
            raise ShapeError(f"{what}: {len(items)} start indices for an operand of rank {rank}")
        # Python ints take the type of the given handles: HLO wants one index type.
        handles = [x for x in items if isinstance(x, HloInstruction)]
        index_type = handles[0].shape.element_type if handles else PrimitiveType.S32
        out = []
        for i, item in enumerate(items):
            if isinstance(item, (int, np.integer)):
                item = self.constant_r0(int(item), index_type)
            self._check_operands(what, [item])
            if item.shape.rank != 0 or not item.shape.element_type.is_integer:
                raise ShapeError(
                    f"{what}: start index {i} must be an integer scalar, got "
                    f"{shape_text(item.shape)}"
                )
            out.append(item)
        return out

    def dynamic_slice(self, operand: XlaOp, start_indices: StartIndices,
                      size_indices: Sequence[int]) -> XlaOp:
        """The sub-array [start, start + size) with run-time starts.

        Out-of-range starts are clamped into the operand at run time (HLO semantics; the
        document leaves them undefined).
        """
        what = "dynamic_slice"
        self._check_operands(what, [operand])
        self._require_array(what, operand)
        sizes = int_list(what, "size_indices", size_indices)
        shape = operand.shape
        if len(sizes) != shape.rank:
            raise ShapeError(f"{what}: {len(sizes)} sizes for {shape_text(shape)}")
        for d, size in enumerate(sizes):
            if not 0 <= size <= shape.dims[d]:
                raise ShapeError(
                    f"{what}: size {size} does not fit dimension {d} of {shape_text(shape)}"
                )
        starts = self._scalar_indices(what, start_indices, shape.rank)
        return self._add(what, Opcode.DYNAMIC_SLICE, [operand, *starts],
                         dynamic_slice_sizes=sizes)

    def dynamic_update_slice(self, operand: XlaOp, update: XlaOp,
                             start_indices: StartIndices) -> XlaOp:
        """`operand` with the block at run-time `start_indices` overwritten by `update`."""
        what = "dynamic_update_slice"
        self._check_operands(what, [operand, update])
        self._require_array(what, operand)
        self._require_array(what, update, "update")
        starts = self._scalar_indices(what, start_indices, operand.shape.rank)
        return self._add(what, Opcode.DYNAMIC_UPDATE_SLICE, [operand, update, *starts])

    def concat_in_dim(self, operands: Sequence[XlaOp], dimension: int) -> XlaOp:
        """Concatenate along `dimension`; all other dimensions must agree."""
        what = "concat_in_dim"
        ops = self._check_operands(what, handle_list(what, "operands", operands))
        dim = int_arg(what, "dimension", dimension)
        if not ops:
            raise ShapeError(f"{what}: needs at least one operand")
        for o in ops:
            self._require_array(what, o)
        return self._add(what, Opcode.CONCATENATE, ops, dimensions=(dim,))

    def pad(self, operand: XlaOp, padding_value: XlaOp, padding_config: PaddingLike) -> XlaOp:
        """Edge padding (low, high; negative removes) and interior padding per dimension."""
        what = "pad"
        config = as_padding_config(what, padding_config)
        self._check_operands(what, [operand, padding_value])
        self._require_scalar(what, padding_value, "padding_value")
        return self._add(what, Opcode.PAD, [operand, padding_value], padding=config)

    # --- gather / scatter --------------------------------------------------------------------
    def gather(self, operand: XlaOp, gather_indices: XlaOp, *, index_vector_dim: int,
               output_window_dims: Sequence[int], elided_window_dims: Sequence[int],
               window_bounds: Sequence[int],
               gather_dims_to_operand_dims: Sequence[int]) -> XlaOp:
        """Gather with the document's dimension numbers (see the module docstring)."""
        what = "gather"
        return self._add(
            what, Opcode.GATHER, [operand, gather_indices],
            offset_dims=int_list(what, "output_window_dims", output_window_dims),
            collapsed_slice_dims=int_list(what, "elided_window_dims", elided_window_dims),
            start_index_map=int_list(
                what, "gather_dims_to_operand_dims", gather_dims_to_operand_dims
            ),
            index_vector_dim=int_arg(what, "index_vector_dim", index_vector_dim),
            slice_sizes=int_list(what, "window_bounds", window_bounds),
        )

    def scatter(self, operand: XlaOp, scatter_indices: XlaOp, updates: XlaOp,
                update_computation: ComputationLike, *, update_window_dims: Sequence[int],
                inserted_window_dims: Sequence[int],
                scatter_dims_to_operand_dims: Sequence[int], index_vector_dim: int) -> XlaOp:
        """Scatter `updates` into `operand`, combining with `update_computation` (T, T -> T)."""
        what = "scatter"
        self._check_operands(what, [operand, scatter_indices, updates])
        self._require_array(what, operand)
        scalar = Shape.array(operand.shape.element_type, ())
        comp = self._computation(what, "update_computation", update_computation,
                                 [scalar, scalar])
        return self._add(
            what, Opcode.SCATTER, [operand, scatter_indices, updates],
            update_window_dims=int_list(what, "update_window_dims", update_window_dims),
            inserted_window_dims=int_list(what, "inserted_window_dims", inserted_window_dims),
            scatter_dims_to_operand_dims=int_list(
                what, "scatter_dims_to_operand_dims", scatter_dims_to_operand_dims
            ),
            index_vector_dim=int_arg(what, "index_vector_dim", index_vector_dim),
            to_apply=comp,
        )
