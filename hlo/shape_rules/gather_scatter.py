"""Shape rules of gather and scatter: the dimension numbers (offset, collapsed, start-index
map, batching dims, index_vector_dim) are checked against the operand and index ranks, and the
result dimensions are assembled from the index batch dims and the slice sizes; scatter also
checks its to_apply computation as a reducer over the operands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hlo.shape import Shape
from hlo.shape_rules.common import (
    _arity,
    _array,
    _arrays,
    _bare,
    _bool,
    _dims_in_range,
    _err,
    _int,
    _ints,
    _program,
    _reducer,
    _sorted,
)


def _combine(
    op: str,
    operands: Sequence[Shape],
    rank: int,
    placed: Sequence[int],
    placed_sizes: Sequence[int],
    rest: Sequence[int],
) -> tuple[int, ...]:
    """Dims of rank `rank`: `placed_sizes` at positions `placed`, `rest` elsewhere in order."""
    if len(placed) != len(placed_sizes) or rank - len(placed) != len(rest):
        raise _err(op, operands, "dimension numbers do not add up to the result rank")
    sizes, rest_iter = dict(zip(placed, placed_sizes, strict=True)), iter(rest)
    return tuple(sizes[i] if i in sizes else next(rest_iter) for i in range(rank))


def _index_dims(op: str, operands: Sequence[Shape], indices: Shape, ivd: int) -> tuple[int, ...]:
    """Index dims with the implicit trailing 1 when index_vector_dim == rank."""
    if not indices.element_type.is_integer:
        raise _err(op, operands, "indices must be integers")
    if not 0 <= ivd <= indices.rank:
        raise _err(op, operands, f"index_vector_dim {ivd} is not within [0, {indices.rank}]")
    return indices.dims + (1,) if ivd == indices.rank else indices.dims


def _batching(
    op: str,
    operands: Sequence[Shape],
    x: Shape,
    x_dims: Sequence[int],
    indices: Shape,
    index_dims: Sequence[int],
    ivd: int,
    names: tuple[str, str],
) -> None:
    """Operand batching dims pair up with index batching dims of equal size."""
    _dims_in_range(op, operands, names[1], index_dims, indices.rank)
    if ivd in index_dims:
        raise _err(op, operands, f"{names[1]} must not contain index_vector_dim {ivd}")
    if len(x_dims) != len(index_dims):
        raise _err(op, operands, f"{names[0]} and {names[1]} must have the same length")
    for a, b in zip(x_dims, index_dims, strict=True):
        if x.dims[a] != indices.dims[b]:
            raise _err(
                op,
                operands,
                f"batching dims differ in size: operand dim {a} is "
                f"{x.dims[a]}, indices dim {b} is {indices.dims[b]}",
            )


def gather(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Slices of slice_sizes at gathered starts; offset_dims place the slice dims (minus
    collapsed and operand batching dims), the other result dims are the index batch dims:
    `gather f32[5,3] s32[4,1], offset_dims={1}, collapsed_slice_dims={0},
    start_index_map={0}, index_vector_dim=1, slice_sizes={1,3} -> f32[4,3]`."""
    op = "gather"
    _arity(op, operands, 2)
    x = _array(op, operands, 0)
    indices = _array(op, operands, 1, "start_indices")
    offset_dims = _ints(op, attrs, "offset_dims")
    collapsed = _ints(op, attrs, "collapsed_slice_dims")
    start_map = _ints(op, attrs, "start_index_map")
    x_batch = _ints(op, attrs, "operand_batching_dims", ())
    i_batch = _ints(op, attrs, "start_indices_batching_dims", ())
    ivd = _int(op, attrs, "index_vector_dim")
    slice_sizes = _ints(op, attrs, "slice_sizes")
    _bool(op, attrs, "indices_are_sorted", False)
    index_dims = _index_dims(op, operands, indices, ivd)
    batch_sizes = [d for i, d in enumerate(index_dims) if i != ivd]
    if len(slice_sizes) != x.rank:
        raise _err(op, operands, f"slice_sizes {list(slice_sizes)} must have rank {x.rank}")
    if len(offset_dims) + len(collapsed) + len(x_batch) != x.rank:
        raise _err(
            op,
            operands,
            "offset_dims, collapsed_slice_dims and operand_batching_dims "
            "must together cover the operand's rank",
        )
    if len(start_map) != index_dims[ivd]:
        raise _err(
            op,
            operands,
            f"start_index_map has {len(start_map)} entries but the index "
            f"vector has {index_dims[ivd]}",
        )
    result_rank = len(offset_dims) + len(batch_sizes)
    _sorted(op, operands, "offset_dims", offset_dims)
    _dims_in_range(op, operands, "offset_dims", offset_dims, result_rank)
    _sorted(op, operands, "collapsed_slice_dims", collapsed)
    _sorted(op, operands, "operand_batching_dims", x_batch)
    _dims_in_range(
        op, operands, "collapsed_slice_dims + operand_batching_dims", collapsed + x_batch, x.rank
    )
    _dims_in_range(
        op, operands, "start_index_map + operand_batching_dims", start_map + x_batch, x.rank
    )
    _batching(
        op,
        operands,
        x,
        x_batch,
        indices,
        i_batch,
        ivd,
        ("operand_batching_dims", "start_indices_batching_dims"),
    )
    for i, (s, d) in enumerate(zip(slice_sizes, x.dims, strict=True)):
        if not 0 <= s <= d:
            raise _err(op, operands, f"slice size {s} in dim {i} is not within [0, {d}]")
    for d in collapsed + x_batch:
        if slice_sizes[d] > 1:
            raise _err(
                op, operands, f"collapsed or batching dim {d} has slice size {slice_sizes[d]} > 1"
            )
    offset_sizes = [s for i, s in enumerate(slice_sizes) if i not in collapsed + x_batch]
    dims = _combine(op, operands, result_rank, offset_dims, offset_sizes, batch_sizes)
    return Shape(x.element_type, dims)


def scatter(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """N operands, indices, N updates; combines updates into the operands with to_apply
    ((2N scalars) -> N); the result is the operand (a tuple when N > 1):
    `scatter f32[5,3] s32[2,1] f32[2,3], update_window_dims={1}, inserted_window_dims={0},
    scatter_dims_to_operand_dims={0}, index_vector_dim=1 -> f32[5,3]`."""
    op = "scatter"
    if len(operands) < 3 or len(operands) % 2 == 0:
        raise _err(op, operands, "takes N operands, the indices and N updates")
    _arrays(op, operands)
    n = len(operands) // 2
    inputs, indices, updates = operands[:n], operands[n], operands[n + 1 :]
    window_dims = _ints(op, attrs, "update_window_dims")
    inserted = _ints(op, attrs, "inserted_window_dims")
    to_operand = _ints(op, attrs, "scatter_dims_to_operand_dims")
    x_batch = _ints(op, attrs, "input_batching_dims", ())
    i_batch = _ints(op, attrs, "scatter_indices_batching_dims", ())
    ivd = _int(op, attrs, "index_vector_dim")
    _bool(op, attrs, "indices_are_sorted", False)
    _bool(op, attrs, "unique_indices", False)
    fn = _program(op, attrs, "to_apply")
    x, update = inputs[0], updates[0]
    for s, u in zip(inputs, updates, strict=True):
        if s.dims != x.dims or u.dims != update.dims:
            raise _err(op, operands, "all operands, and all updates, must have the same dims")
        if u.element_type is not s.element_type:
            raise _err(op, operands, "each update must have its operand's element type")
    index_dims = _index_dims(op, operands, indices, ivd)
    scatter_sizes = [d for i, d in enumerate(index_dims) if i != ivd]
    if len(window_dims) + len(inserted) + len(x_batch) != x.rank:
        raise _err(
            op,
            operands,
            "update_window_dims, inserted_window_dims and "
            "input_batching_dims must together cover the operand's rank",
        )
    if update.rank != len(scatter_sizes) + len(window_dims):
        raise _err(op, operands, f"updates must have rank {len(scatter_sizes) + len(window_dims)}")
    if len(to_operand) != index_dims[ivd]:
        raise _err(
            op,
            operands,
            f"scatter_dims_to_operand_dims has {len(to_operand)} entries "
            f"but the index vector has {index_dims[ivd]}",
        )
    _sorted(op, operands, "update_window_dims", window_dims)
    _dims_in_range(op, operands, "update_window_dims", window_dims, update.rank)
    _sorted(op, operands, "inserted_window_dims", inserted)
    _sorted(op, operands, "input_batching_dims", x_batch)
    _dims_in_range(
        op, operands, "inserted_window_dims + input_batching_dims", inserted + x_batch, x.rank
    )
    _dims_in_range(
        op,
        operands,
        "scatter_dims_to_operand_dims + input_batching_dims",
        to_operand + x_batch,
        x.rank,
    )
    _batching(
        op,
        operands,
        x,
        x_batch,
        indices,
        i_batch,
        ivd,
        ("input_batching_dims", "scatter_indices_batching_dims"),
    )
    bounds = iter(d for i, d in enumerate(x.dims) if i not in inserted + x_batch)
    sizes = iter(scatter_sizes)
    for i, size in enumerate(update.dims):
        if i in window_dims:
            bound = next(bounds)
            if size > bound:
                raise _err(
                    op,
                    operands,
                    f"update window dim {i} ({size}) exceeds the operand bound {bound}",
                )
        elif size != next(sizes):
            raise _err(
                op,
                operands,
                f"update scatter dim {i} ({size}) differs from the indices' batch dims",
            )
    _reducer(
        op,
        operands,
        fn,
        [Shape(s.element_type, ()) for s in inputs],
        [u.element_type for u in updates],
    )
    return _bare(x) if n == 1 else Shape.tuple_of([_bare(s) for s in inputs])
