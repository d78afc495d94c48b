"""Shape rules of the data-movement ops: bitcast, broadcast, reshape, transpose, reverse,
static and dynamic slices, dynamic-update-slice, concatenate and pad. Each moves or copies
elements without computing on them, so the element type passes through and only the dimensions
are derived from the attributes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hlo.attributes import PadDim, PaddingConfig, SliceDim
from hlo.errors import ShapeError
from hlo.shape import Shape
from hlo.shape_rules.common import (
    _MISSING,
    _arity,
    _array,
    _arrays,
    _bare,
    _declared_array,
    _dims_in_range,
    _err,
    _get,
    _int,
    _ints,
    _is_int,
    _scalar,
    _text,
)


def bitcast(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Same bytes, new declared shape: `bitcast f32[2,3] -> f32[6]`."""
    op = "bitcast"
    _arity(op, operands, 1)
    x = _array(op, operands, 0)
    result = _declared_array(op, operands, declared)
    if x.num_elements * x.element_type.bits != result.num_elements * result.element_type.bits:
        raise _err(op, operands, f"declared {_text(result)} has a different size in bits")
    return result


def broadcast(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Operand dim i becomes result dim dimensions[i], sizes equal; the result is declared:
    `broadcast f32[3], dimensions={1} -> f32[2,3]`."""
    op = "broadcast"
    _arity(op, operands, 1)
    x = _array(op, operands, 0)
    result = _declared_array(op, operands, declared)
    dims = _ints(op, attrs, "dimensions")
    if result.element_type is not x.element_type:
        raise _err(op, operands, f"declared {_text(result)} changes the element type")
    if len(dims) != x.rank:
        raise _err(
            op,
            operands,
            f"dimensions {list(dims)} must name one result dim per operand dim ({x.rank})",
        )
    _dims_in_range(op, operands, "dimensions", dims, result.rank)
    for i, d in enumerate(dims):
        if x.dims[i] != result.dims[d]:
            raise _err(
                op,
                operands,
                f"operand dim {i} (size {x.dims[i]}) differs from result "
                f"dim {d} (size {result.dims[d]}) of {_text(result)}",
            )
    return result


def reshape(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Same elements in a declared shape: `reshape f32[2,3] -> f32[3,2]`."""
    op = "reshape"
    _arity(op, operands, 1)
    x = _array(op, operands, 0)
    result = _declared_array(op, operands, declared)
    if result.element_type is not x.element_type:
        raise _err(op, operands, f"declared {_text(result)} changes the element type")
    if result.num_elements != x.num_elements:
        raise _err(
            op,
            operands,
            f"declared {_text(result)} has {result.num_elements} elements, "
            f"the operand {x.num_elements}",
        )
    inferred = _int(op, attrs, "inferred_dimension", -1)
    if inferred != -1 and not 0 <= inferred < result.rank:
        raise _err(op, operands, f"inferred_dimension {inferred} is out of range")
    return result


def transpose(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Result dim i is operand dim dimensions[i]:
    `transpose f32[2,3,4], dimensions={2,0,1} -> f32[4,2,3]`."""
    op = "transpose"
    _arity(op, operands, 1)
    x = _array(op, operands, 0)
    perm = _ints(op, attrs, "dimensions")
    if sorted(perm) != list(range(x.rank)):
        raise _err(
            op,
            operands,
            f"dimensions {list(perm)} are not a permutation of the operand's {x.rank} dims",
        )
    return Shape(x.element_type, tuple(x.dims[p] for p in perm))


def reverse(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Same shape, listed dims reversed: `reverse f32[2,3], dimensions={1} -> f32[2,3]`."""
    op = "reverse"
    _arity(op, operands, 1)
    x = _array(op, operands, 0)
    _dims_in_range(op, operands, "dimensions", _ints(op, attrs, "dimensions"), x.rank)
    return _bare(x)


def slice_(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Static strided window: `slice f32[32,32], slice={[0:16], [0:16]} -> f32[16,16]`."""
    op = "slice"
    _arity(op, operands, 1)
    x = _array(op, operands, 0)
    spec = _get(op, attrs, "slice", _MISSING)
    if not isinstance(spec, (tuple, list)) or not all(
        isinstance(s, SliceDim) and _is_int(s.start) and _is_int(s.limit) and _is_int(s.stride)
        for s in spec
    ):
        raise ShapeError(f"{op}: attribute 'slice' must be a list of [start:limit:stride]")
    if len(spec) != x.rank:
        raise _err(op, operands, f"slice has {len(spec)} entries for rank {x.rank}")
    dims = []
    for i, (s, size) in enumerate(zip(spec, x.dims, strict=True)):
        if s.stride <= 0:
            raise _err(op, operands, f"stride {s.stride} in dim {i} must be positive")
        if not 0 <= s.start <= s.limit <= size:
            raise _err(
                op,
                operands,
                f"dim {i}: need 0 <= start {s.start} <= limit {s.limit} <= size {size}",
            )
        dims.append((s.limit - s.start + s.stride - 1) // s.stride)
    return Shape(x.element_type, tuple(dims))


def _index_scalars(op: str, operands: Sequence[Shape], first: int, rank: int) -> None:
    """operands[first:] are `rank` integer scalars of one type (one start index per dim)."""
    indices = operands[first:]
    if len(indices) != rank:
        raise _err(
            op, operands, f"needs one start index per operand dim ({rank}), got {len(indices)}"
        )
    for i in range(first, len(operands)):
        index = _scalar(op, operands, i, f"start index {i - first}")
        if not index.element_type.is_integer:
            raise _err(op, operands, "start indices must be integers")
        if index.element_type is not operands[first].element_type:
            raise _err(op, operands, "start indices must all have the same type")


def dynamic_slice(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Window of dynamic_slice_sizes at scalar start indices:
    `dynamic-slice f32[8,8] s32[] s32[], dynamic_slice_sizes={2,4} -> f32[2,4]`."""
    op = "dynamic-slice"
    if not operands:
        raise ShapeError(f"{op}: needs an operand")
    x = _array(op, operands, 0)
    _index_scalars(op, operands, 1, x.rank)
    sizes = _ints(op, attrs, "dynamic_slice_sizes")
    if len(sizes) != x.rank:
        raise _err(op, operands, f"dynamic_slice_sizes {list(sizes)} must have rank {x.rank}")
    for i, (s, d) in enumerate(zip(sizes, x.dims, strict=True)):
        if not 0 <= s <= d:
            raise _err(op, operands, f"slice size {s} in dim {i} is not within [0, {d}]")
    return Shape(x.element_type, sizes)


def dynamic_update_slice(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Write `update` at scalar start indices; operand shape:
    `dynamic-update-slice f32[8] f32[2] s32[] -> f32[8]`."""
    op = "dynamic-update-slice"
    if len(operands) < 2:
        raise _err(op, operands, "needs an operand, an update and start indices")
    x = _array(op, operands, 0)
    update = _array(op, operands, 1, "update")
    _index_scalars(op, operands, 2, x.rank)
    if update.element_type is not x.element_type:
        raise _err(op, operands, "update must have the operand's element type")
    if update.rank != x.rank or any(u > d for u, d in zip(update.dims, x.dims, strict=True)):
        raise _err(op, operands, "update must have the operand's rank and fit inside it")
    return _bare(x)


def concatenate(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Join along one dim, others equal: `concatenate f32[2,3] f32[4,3], dimensions={0}
    -> f32[6,3]`."""
    op = "concatenate"
    if not operands:
        raise ShapeError(f"{op}: needs at least one operand")
    _arrays(op, operands)
    dims = _ints(op, attrs, "dimensions")
    first = operands[0]
    if len(dims) != 1 or not 0 <= dims[0] < first.rank:
        raise _err(op, operands, f"dimensions {list(dims)} must name one dim of the operands")
    axis = dims[0]
    for s in operands[1:]:
        if s.element_type is not first.element_type or s.rank != first.rank:
            raise _err(op, operands, "operands must have the same element type and rank")
        if any(
            a != b for i, (a, b) in enumerate(zip(s.dims, first.dims, strict=True)) if i != axis
        ):
            raise _err(op, operands, f"operands may differ only in dimension {axis}")
    size = sum(s.dims[axis] for s in operands)
    return Shape(first.element_type, (*first.dims[:axis], size, *first.dims[axis + 1 :]))


def pad(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Edge (possibly negative) and interior padding with a scalar:
    `pad f32[3] f32[], padding=1_-1_2 -> f32[7]` (1 + 3 - 1 + 2*2)."""
    op = "pad"
    _arity(op, operands, 2)
    x = _array(op, operands, 0)
    value = _scalar(op, operands, 1, "padding value")
    if value.element_type is not x.element_type:
        raise _err(op, operands, "padding value must have the operand's element type")
    config = _get(op, attrs, "padding", _MISSING)
    if not isinstance(config, PaddingConfig) or not all(
        isinstance(p, PadDim) and _is_int(p.low) and _is_int(p.high) and _is_int(p.interior)
        for p in config.dims
    ):
        raise ShapeError(f"{op}: attribute 'padding' must be a padding config")
    if len(config.dims) != x.rank:
        raise _err(op, operands, f"padding has {len(config.dims)} entries for rank {x.rank}")
    dims = []
    for i, (p, d) in enumerate(zip(config.dims, x.dims, strict=True)):
        if p.interior < 0:
            raise _err(op, operands, f"interior padding {p.interior} in dim {i} is negative")
        size = p.low + d + p.high + max(d - 1, 0) * p.interior
        if size < 0:
            raise _err(op, operands, f"padding makes dim {i} negative ({size})")
        dims.append(size)
    return Shape(x.element_type, tuple(dims))
