"""Indexing traced arrays: `x[key]`, `take`, `take_along_axis` and `x.at[key].set/add(...)`.

`getitem` follows numpy. Basic indices (Python ints, slices with static bounds, None,
Ellipsis) become `slice`, `reverse` and `reshape`. Integer arrays (traced or not) are
advanced indices and become one `gather`; their broadcast dimensions go where the first
advanced index was when the advanced indices are adjacent, else in front (numpy's rule).
Traced scalar indices alone become a `dynamic-slice`. Out-of-range traced indices clamp,
as in XLA; negative ones count from the end. Boolean masks have data-dependent shapes and
are refused.

`x.at[key].op(v)` computes the flat positions `key` selects (by indexing an iota the same
way) and scatters `v` there, so it supports every key `getitem` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from compiler import numpy_prims as prims
from compiler.numpy_elementwise import add, broadcast_shapes, broadcast_to, less, where
from compiler.numpy_shape import normalize_axis
from compiler.tracing import DEFAULT_INT, ArrayLike, Tracer, to_tracer, traceable
from hlo.errors import ArgumentError, ShapeError, UnsupportedOpError
from hlo.opcodes import Opcode


def _is_array_index(k: Any) -> bool:
    if isinstance(k, Tracer):
        return k.ndim > 0 or k.dtype == np.bool_
    return isinstance(k, (np.ndarray, list)) and not (
        isinstance(k, np.ndarray) and k.ndim == 0)


def _is_scalar_int(k: Any) -> bool:
    if isinstance(k, Tracer):
        return k.ndim == 0
    if isinstance(k, np.ndarray):
        return k.ndim == 0 and k.dtype.kind in "iu"
    return isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_))


def _expand_key(key: Any, ndim: int) -> list[Any]:
    """The key as a list with Ellipsis replaced by full slices."""
    items = list(key) if isinstance(key, tuple) else [key]
    consumed = 0
    for k in items:
        if k is None or k is Ellipsis:
            continue
        if isinstance(k, (bool, np.bool_)) or (
                isinstance(k, (Tracer, np.ndarray)) and k.dtype == np.bool_):
            raise UnsupportedOpError(
                "boolean mask indexing gives a data-dependent shape; use "
                "compiler.numpy.where(mask, x, 0) instead")
        consumed += 1
    # Identity tests only: `==` on an index array would compare elementwise.
    ellipses = [i for i, k in enumerate(items) if k is Ellipsis]
    if len(ellipses) > 1:
        raise ArgumentError("an index can only have a single ellipsis ('...')")
    if consumed > ndim:
        raise ShapeError(f"too many indices for array: array is {ndim}-dimensional, but "
                         f"{consumed} were indexed")
    if ellipses:
        i = ellipses[0]
        items[i:i + 1] = [slice(None)] * (ndim - consumed)
    else:
        items += [slice(None)] * (ndim - consumed)
    return items


def _static_slice(x: Tracer, axis: int, s: slice) -> Tracer:
    for v in (s.start, s.stop, s.step):
        if v is not None and not isinstance(v, (int, np.integer)):
            raise ArgumentError(
                "slice bounds must be Python ints (use compiler.lax.dynamic_slice for traced "
                "start indices)")
    n = x.shape[axis]
    r = range(*s.indices(n))
    starts, limits, strides = [0] * x.ndim, list(x.shape), [1] * x.ndim
    if len(r) == 0:
        limits[axis] = 0
        return prims.slice_(x, starts, limits)
    if r.step < 0:
        x = prims.reverse(x, [axis])
        first, step = n - 1 - r.start, -r.step
    else:
        first, step = r.start, r.step
    starts[axis], limits[axis], strides[axis] = first, first + (len(r) - 1) * step + 1, step
    return prims.slice_(x, starts, limits, strides)


def _wrap_index(index: Any, size: int) -> Tracer:
    """An int32 index tracer with negative values counted from the end."""
    if isinstance(index, Tracer):
        if index.dtype.kind not in "iu":
            raise ArgumentError(f"array indices must be integers, got {index.dtype}")
        t = prims.convert(index, DEFAULT_INT)
        return where(less(t, 0), add(t, size), t)
    a = np.asarray(index)
    if a.dtype.kind not in "iu":
        raise ArgumentError(f"array indices must be integers, got {a.dtype}")
    if a.size and (a.max() >= size or a.min() < -size):
        raise ShapeError(f"index {int(a.max() if a.max() >= size else a.min())} is out of "
                         f"bounds for an axis of size {size}")
    return to_tracer(np.where(a < 0, a + size, a).astype(np.int32))


@traceable
def getitem(x: ArrayLike, key: Any) -> Tracer:
    """`x[key]` with numpy's semantics (see the module docstring)."""
    x = to_tracer(x)
    items = _expand_key(key, x.ndim)
    has_array = any(_is_array_index(k) for k in items)
    advanced: list[tuple[int, int, Any]] = []  # (key position, dim of y, index)
    dynamic_scalars = False
    y, dim = x, 0
    new_shape_marks: list[int] = []
    for pos, k in enumerate(items):
        if k is None:
            y = prims.reshape(y, y.shape[:dim] + (1,) + y.shape[dim:])
            new_shape_marks.append(dim)
            dim += 1
        elif isinstance(k, slice):
            y = _static_slice(y, dim, k)
            dim += 1
        elif _is_array_index(k) or (_is_scalar_int(k) and (has_array or isinstance(k, Tracer))):
            dynamic_scalars |= not _is_array_index(k)
            advanced.append((pos, dim, k))
            dim += 1
        elif _is_scalar_int(k):
            n = y.shape[dim]
            i = int(k)
            if not -n <= i < n:
                raise ShapeError(f"index {i} is out of bounds for axis {dim} with size {n}")
            i %= n
            starts, limits = [0] * y.ndim, list(y.shape)
            starts[dim], limits[dim] = i, i + 1
            y = prims.slice_(y, starts, limits)
            y = prims.reshape(y, y.shape[:dim] + y.shape[dim + 1:])
        else:
            raise ArgumentError(f"unsupported index {k!r} of type {type(k).__name__}")
    if not advanced:
        return y
    if not has_array:
        return _dynamic_scalar_index(y, advanced)
    return _gather_index(y, advanced)


def _dynamic_scalar_index(y: Tracer, advanced: list[tuple[int, int, Any]]) -> Tracer:
    """y[..., i, ...] for traced scalars i: a dynamic-slice of size 1 there, then a reshape."""
    starts: list[Any] = [0] * y.ndim
    sizes = list(y.shape)
    for _, d, k in advanced:
        starts[d] = _wrap_index(k, y.shape[d])
        sizes[d] = 1
    sliced = prims.dynamic_slice(y, starts, sizes)
    dims = {d for _, d, _ in advanced}
    return prims.reshape(sliced, [s for i, s in enumerate(y.shape) if i not in dims])


def _gather_index(y: Tracer, advanced: list[tuple[int, int, Any]]) -> Tracer:
    """Advanced (integer array) indexing of dims of `y` as one gather."""
    indices = [_wrap_index(k, y.shape[d]) for _, d, k in advanced]
    batch = broadcast_shapes(*[i.shape for i in indices])
    stacked = prims.concatenate(
        [prims.reshape(broadcast_to(i, batch), batch + (1,)) for i in indices], len(batch))
    dims = [d for _, d, _ in advanced]
    positions = [p for p, _, _ in advanced]
    adjacent = positions == list(range(positions[0], positions[0] + len(positions)))
    first = dims[0] if adjacent else 0
    rest = [d for d in range(y.ndim) if d not in dims]
    out_rank = len(batch) + len(rest)
    offset_dims = [i for i in range(out_rank) if not first <= i < first + len(batch)]
    order = sorted(range(len(dims)), key=lambda j: dims[j])
    if order != list(range(len(dims))):
        stacked = prims.concatenate(
            [prims.slice_(stacked, [0] * len(batch) + [j], list(batch) + [j + 1])
             for j in order], len(batch))
        dims = [dims[j] for j in order]
    return prims.gather(
        y, stacked, offset_dims=offset_dims, collapsed_slice_dims=dims,
        start_index_map=dims, index_vector_dim=len(batch),
        slice_sizes=[1 if d in dims else s for d, s in enumerate(y.shape)])


@traceable
def take(x: Any, indices: Any, axis: int | None = None) -> Tracer:
    """Elements of `x` at `indices` along `axis` (None: of the flattened array)."""
    t = to_tracer(x)
    if axis is None:
        t, axis = prims.reshape(t, (t.size,)), 0
    ax = normalize_axis(axis, t.ndim)
    idx = indices if isinstance(indices, Tracer) else np.asarray(indices)
    return getitem(t, (slice(None),) * ax + (idx,))


@traceable
def take_along_axis(x: Any, indices: Any, axis: int) -> Tracer:
    """`x` indexed along `axis` by `indices`, which matches x's rank (numpy's rule)."""
    t = to_tracer(x)
    idx = to_tracer(indices)
    if idx.ndim != t.ndim:
        raise ShapeError(f"take_along_axis: indices of rank {idx.ndim} for an array of rank "
                         f"{t.ndim}")
    ax = normalize_axis(axis, t.ndim)
    key: list[Any] = []
    for d in range(t.ndim):
        if d == ax:
            key.append(idx)
        else:
            shape = [1] * t.ndim
            shape[d] = t.shape[d]
            key.append(prims.reshape(prims.iota(DEFAULT_INT, (t.shape[d],), 0), shape))
    return getitem(t, tuple(key))


class _IndexUpdate:
    """`x.at[key]`: functional updates of the elements `key` selects."""

    def __init__(self, x: Tracer, key: Any) -> None:
        self.x = x
        self.key = key

    def get(self) -> Tracer:
        return getitem(self.x, self.key)

    def set(self, values: Any) -> Tracer:
        return _scatter_at(self.x, self.key, values, None)

    def add(self, values: Any) -> Tracer:
        return _scatter_at(self.x, self.key, values, Opcode.ADD)

    def multiply(self, values: Any) -> Tracer:
        return _scatter_at(self.x, self.key, values, Opcode.MULTIPLY)

    def min(self, values: Any) -> Tracer:
        return _scatter_at(self.x, self.key, values, Opcode.MINIMUM)

    def max(self, values: Any) -> Tracer:
        return _scatter_at(self.x, self.key, values, Opcode.MAXIMUM)


class _At:
    def __init__(self, x: Tracer) -> None:
        self.x = x

    def __getitem__(self, key: Any) -> _IndexUpdate:
        return _IndexUpdate(self.x, key)


def at(x: Tracer) -> _At:
    return _At(x)


def _scatter_at(x: Tracer, key: Any, values: Any, combiner: Opcode | None) -> Tracer:
    positions = getitem(prims.reshape(prims.iota(DEFAULT_INT, (x.size,), 0), x.shape), key)
    updates = broadcast_to(to_tracer(values, x.dtype), positions.shape)
    flat = prims.reshape(x, (x.size,))
    out = prims.scatter(flat, positions, updates, combiner, update_window_dims=(),
                        inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0,),
                        index_vector_dim=positions.ndim)
    return prims.reshape(out, x.shape)
