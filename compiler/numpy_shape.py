"""compiler.numpy's array creation and shape manipulation functions.

Creation functions (`zeros`, `arange`, `eye`, ...) emit constants, broadcasts and iotas;
shape functions (`reshape`, `transpose`, `concatenate`, `stack`, `pad`, ...) lower to the
HLO movement instructions. Shapes are static: every size must be a Python int.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from compiler import numpy_prims as prims
from compiler.numpy_elementwise import broadcast_to, where
from compiler.tracing import DEFAULT_FLOAT, DEFAULT_INT, Tracer, to_tracer, traceable, tracers
from hlo.errors import ArgumentError, ShapeError


def normalize_axis(axis: Any, ndim: int, what: str = "axis") -> int:
    """`axis` as a non-negative int below `ndim` (negative counts from the end)."""
    if isinstance(axis, Tracer) or not isinstance(axis, (int, np.integer)) or isinstance(
            axis, bool):
        raise ArgumentError(f"{what} must be a Python int, got {type(axis).__name__}")
    a = int(axis)
    if not -ndim <= a < ndim:
        raise ShapeError(f"{what} {a} is out of bounds for an array of dimension {ndim}")
    return a % ndim if ndim else 0


def normalize_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """`axis` (None = all, an int, or a sequence of ints) as sorted distinct axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        axes = tuple(normalize_axis(a, ndim) for a in axis)
    else:
        axes = (normalize_axis(axis, ndim),)
    if len(set(axes)) != len(axes):
        raise ShapeError(f"repeated axis in {axis}")
    return tuple(sorted(axes))


def _shape_arg(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    try:
        dims = tuple(int(d) for d in shape)
    except TypeError:
        raise ArgumentError(f"a shape must be a tuple of Python ints, got {shape!r}") from None
    if any(d < 0 for d in dims) and -1 not in dims:
        raise ShapeError(f"negative dimensions are not allowed: {dims}")
    return dims


# --- creation ----------------------------------------------------------------------------------


@traceable
def full(shape: Any, fill_value: Any, dtype: Any = None) -> Tracer:
    if dtype is None:
        dtype = fill_value.dtype if isinstance(fill_value, Tracer) else (
            np.asarray(fill_value).dtype)
        if dtype == np.float64 and not isinstance(fill_value, np.ndarray):
            dtype = DEFAULT_FLOAT
        if dtype == np.int64 and not isinstance(fill_value, np.ndarray):
            dtype = DEFAULT_INT
    return prims.full(_shape_arg(shape), fill_value, dtype)


@traceable
def zeros(shape: Any, dtype: Any = DEFAULT_FLOAT) -> Tracer:
    return prims.full(_shape_arg(shape), 0, dtype)


@traceable
def ones(shape: Any, dtype: Any = DEFAULT_FLOAT) -> Tracer:
    return prims.full(_shape_arg(shape), 1, dtype)


@traceable
def zeros_like(x: Any, dtype: Any = None) -> Tracer:
    t = to_tracer(x)
    return prims.full(t.shape, 0, dtype or t.dtype)


@traceable
def ones_like(x: Any, dtype: Any = None) -> Tracer:
    t = to_tracer(x)
    return prims.full(t.shape, 1, dtype or t.dtype)


@traceable
def full_like(x: Any, fill_value: Any, dtype: Any = None) -> Tracer:
    t = to_tracer(x)
    return prims.full(t.shape, fill_value, dtype or t.dtype)


@traceable
def array(x: Any, dtype: Any = None) -> Tracer:
    """A traced array from a tracer, numpy array, scalar, or (nested) list of them."""
    if isinstance(x, (list, tuple)) and any(_contains_tracer(v) for v in x):
        return stack([array(v, dtype) for v in x])
    return to_tracer(x, dtype)


asarray = array


def _contains_tracer(x: Any) -> bool:
    if isinstance(x, Tracer):
        return True
    return isinstance(x, (list, tuple)) and builtins.any(_contains_tracer(v) for v in x)


@traceable
def arange(start: Any, stop: Any = None, step: Any = None, dtype: Any = None) -> Tracer:
    """Evenly spaced values in [start, stop); the bounds must be Python numbers."""
    if stop is None:
        start, stop = 0, start
    step = 1 if step is None else step
    for v in (start, stop, step):
        if isinstance(v, Tracer):
            raise ArgumentError("arange needs Python numbers: its length must be static")
    if dtype is None:
        is_int = builtins.all(isinstance(v, (int, np.integer)) for v in (start, stop, step))
        dtype = DEFAULT_INT if is_int else DEFAULT_FLOAT
    n = builtins.max(int(math.ceil((stop - start) / step)), 0)
    values = prims.iota(dtype, (n,), 0)
    if step != 1 or start != 0:
        values = _affine(values, start, step)
    return values


def _affine(values: Tracer, start: Any, step: Any) -> Tracer:
    from compiler.numpy_elementwise import add, multiply

    return prims.convert(add(multiply(values, step), start), values.dtype)


@traceable
def linspace(start: float, stop: float, num: int = 50, endpoint: bool = True,
             dtype: Any = None) -> Tracer:
    """`num` evenly spaced values from start to stop (Python numbers)."""
    dtype = dtype or DEFAULT_FLOAT
    div = (num - 1) if endpoint else num
    step = (stop - start) / div if div > 0 else 0.0
    values = prims.iota(dtype, (num,), 0) if num > 0 else zeros((0,), dtype)
    from compiler.numpy_elementwise import add, multiply

    return prims.convert(add(multiply(values, step), start), dtype)


@traceable
def eye(n: int, m: int | None = None, k: int = 0, dtype: Any = DEFAULT_FLOAT) -> Tracer:
    m = n if m is None else m
    rows = prims.iota(DEFAULT_INT, (n, m), 0)
    cols = prims.iota(DEFAULT_INT, (n, m), 1)
    from compiler.numpy_elementwise import add, equal

    return prims.convert(equal(add(rows, k), cols), dtype)


@traceable
def tri(n: int, m: int | None = None, k: int = 0, dtype: Any = DEFAULT_FLOAT) -> Tracer:
    """Ones at and below the k-th diagonal."""
    m = n if m is None else m
    rows = prims.iota(DEFAULT_INT, (n, m), 0)
    cols = prims.iota(DEFAULT_INT, (n, m), 1)
    from compiler.numpy_elementwise import add, greater_equal

    return prims.convert(greater_equal(add(rows, k), cols), dtype)


# --- shapes -----------------------------------------------------------------------------------


@traceable
def reshape(x: Any, newshape: Any) -> Tracer:
    """Row-major reshape; one dimension may be -1 (inferred)."""
    t = to_tracer(x)
    dims = list(_shape_arg(newshape))
    if dims.count(-1) > 1:
        raise ShapeError(f"reshape: only one dimension can be -1, got {tuple(dims)}")
    if -1 in dims:
        known = math.prod(d for d in dims if d != -1)
        if known == 0 or t.size % known:
            raise ShapeError(f"cannot reshape array of shape {t.shape} into shape "
                             f"{tuple(dims)}")
        dims[dims.index(-1)] = t.size // known
    if math.prod(dims) != t.size:
        raise ShapeError(f"cannot reshape array of size {t.size} (shape {t.shape}) into shape "
                         f"{tuple(dims)}")
    return prims.reshape(t, dims)


@traceable
def ravel(x: Any) -> Tracer:
    t = to_tracer(x)
    return prims.reshape(t, (t.size,))


@traceable
def transpose(x: Any, axes: Sequence[int] | None = None) -> Tracer:
    t = to_tracer(x)
    if axes is None:
        perm = tuple(range(t.ndim - 1, -1, -1))
    else:
        perm = tuple(normalize_axis(a, t.ndim) for a in axes)
        if sorted(perm) != list(range(t.ndim)):
            raise ShapeError(f"axes {tuple(axes)} are not a permutation of {t.ndim} dimensions")
    return prims.transpose(t, perm)


@traceable
def swapaxes(x: Any, axis1: int, axis2: int) -> Tracer:
    t = to_tracer(x)
    perm = list(range(t.ndim))
    a, b = normalize_axis(axis1, t.ndim), normalize_axis(axis2, t.ndim)
    perm[a], perm[b] = perm[b], perm[a]
    return prims.transpose(t, perm)


@traceable
def moveaxis(x: Any, source: int, destination: int) -> Tracer:
    t = to_tracer(x)
    src, dst = normalize_axis(source, t.ndim), normalize_axis(destination, t.ndim)
    perm = [d for d in range(t.ndim) if d != src]
    perm.insert(dst, src)
    return prims.transpose(t, perm)


@traceable
def expand_dims(x: Any, axis: Any) -> Tracer:
    t = to_tracer(x)
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    out_ndim = t.ndim + len(axes)
    positions = normalize_axes(axes, out_ndim)
    dims = list(t.shape)
    for p in positions:
        dims.insert(p, 1)
    return prims.reshape(t, dims)


@traceable
def squeeze(x: Any, axis: Any = None) -> Tracer:
    t = to_tracer(x)
    if axis is None:
        axes = tuple(i for i, d in enumerate(t.shape) if d == 1)
    else:
        axes = normalize_axes(axis, t.ndim)
        for a in axes:
            if t.shape[a] != 1:
                raise ShapeError(f"cannot squeeze axis {a} of size {t.shape[a]} (shape "
                                 f"{t.shape})")
    return prims.reshape(t, [d for i, d in enumerate(t.shape) if i not in axes])


@traceable
def atleast_1d(x: Any) -> Tracer:
    t = to_tracer(x)
    return prims.reshape(t, (1,)) if t.ndim == 0 else t


@traceable
def concatenate(arrays: Sequence[Any], axis: int | None = 0) -> Tracer:
    if not isinstance(arrays, (list, tuple)) or not arrays:
        raise ArgumentError("concatenate needs a non-empty list of arrays")
    ts = tracers(*arrays)
    if axis is None:
        ts = [prims.reshape(t, (t.size,)) for t in ts]
        axis = 0
    if any(t.ndim == 0 for t in ts):
        raise ShapeError("zero-dimensional arrays cannot be concatenated")
    ax = normalize_axis(axis, ts[0].ndim)
    return prims.concatenate(ts, ax)


@traceable
def stack(arrays: Sequence[Any], axis: int = 0) -> Tracer:
    """Join arrays of one shape along a new axis."""
    if not isinstance(arrays, (list, tuple)) or not arrays:
        raise ArgumentError("stack needs a non-empty list of arrays")
    ts = tracers(*arrays)
    shape = ts[0].shape
    for t in ts:
        if t.shape != shape:
            raise ShapeError(f"all input arrays must have the same shape, got "
                             f"{[u.shape for u in ts]}")
    ax = normalize_axis(axis, len(shape) + 1)
    new = shape[:ax] + (1,) + shape[ax:]
    return prims.concatenate([prims.reshape(t, new) for t in ts], ax)


@traceable
def hstack(arrays: Sequence[Any]) -> Tracer:
    ts = [atleast_1d(a) for a in arrays]
    return concatenate(ts, axis=0 if ts[0].ndim == 1 else 1)


@traceable
def vstack(arrays: Sequence[Any]) -> Tracer:
    ts = [to_tracer(a) for a in arrays]
    ts = [prims.reshape(t, (1, t.size)) if t.ndim <= 1 else t for t in ts]
    return concatenate(ts, axis=0)


@traceable
def split(x: Any, indices_or_sections: Any, axis: int = 0) -> list[Tracer]:
    """Split into equal sections (an int) or at the given indices (a list)."""
    t = to_tracer(x)
    ax = normalize_axis(axis, t.ndim)
    n = t.shape[ax]
    if isinstance(indices_or_sections, (int, np.integer)):
        sections = int(indices_or_sections)
        if sections <= 0 or n % sections:
            raise ShapeError(f"array split does not result in an equal division: {n} into "
                             f"{sections}")
        cuts = [n // sections * i for i in range(1, sections)]
    else:
        cuts = [int(c) for c in indices_or_sections]
    bounds = [0, *cuts, n]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        starts = [0] * t.ndim
        limits = list(t.shape)
        starts[ax], limits[ax] = builtins.min(lo, n), builtins.min(builtins.max(hi, lo), n)
        out.append(prims.slice_(t, starts, limits))
    return out


@traceable
def flip(x: Any, axis: Any = None) -> Tracer:
    t = to_tracer(x)
    return prims.reverse(t, normalize_axes(axis, t.ndim))


@traceable
def pad(x: Any, pad_width: Any, mode: str = "constant", constant_values: Any = 0) -> Tracer:
    """Constant padding; `pad_width` is an int, a (before, after) pair, or one pair per axis."""
    if mode != "constant":
        raise ArgumentError(f"pad: only mode='constant' is supported, got {mode!r}")
    t = to_tracer(x)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (t.ndim, 2))
    value = to_tracer(constant_values, t.dtype)
    return prims.pad(t, value, [(int(lo), int(hi), 0) for lo, hi in widths])


@traceable
def repeat(x: Any, repeats: int, axis: int | None = None) -> Tracer:
    """Repeat each element `repeats` times (a Python int) along `axis` (None: flattened)."""
    t = to_tracer(x)
    if axis is None:
        t, axis = ravel(t), 0
    ax = normalize_axis(axis, t.ndim)
    expanded = broadcast_to(expand_dims(t, ax + 1),
                            t.shape[:ax + 1] + (int(repeats),) + t.shape[ax + 1:])
    return prims.reshape(expanded, t.shape[:ax] + (t.shape[ax] * int(repeats),) + t.shape[ax + 1:])


@traceable
def tile(x: Any, reps: Any) -> Tracer:
    t = to_tracer(x)
    reps_t = (int(reps),) if isinstance(reps, (int, np.integer)) else tuple(int(r) for r in reps)
    ndim = builtins.max(t.ndim, len(reps_t))
    reps_t = (1,) * (ndim - len(reps_t)) + reps_t
    t = prims.reshape(t, (1,) * (ndim - t.ndim) + t.shape)
    inter: list[int] = []
    for r, d in zip(reps_t, t.shape, strict=True):
        inter += [r, d]
    positions = [2 * i + 1 for i in range(ndim)]
    b = prims.broadcast_in_dim(t, inter, positions)
    return prims.reshape(b, [r * d for r, d in zip(reps_t, t.shape, strict=True)])


@traceable
def tril(x: Any, k: int = 0) -> Tracer:
    t = to_tracer(x)
    mask = tri(t.shape[-2], t.shape[-1], k, np.bool_)
    return where(mask, t, 0)


@traceable
def triu(x: Any, k: int = 0) -> Tracer:
    t = to_tracer(x)
    mask = tri(t.shape[-2], t.shape[-1], k - 1, np.bool_)
    return where(mask, 0, t)
