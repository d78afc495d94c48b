"""compiler.numpy's reductions: sum, mean, max, min, prod, any, all, argmax, var, cumsum, ...

Each lowers to one HLO `reduce` (with a shared scalar reducer computation) plus, for
`keepdims`, a reshape. Integer sums keep their type (bool sums count in int32); `mean`,
`var` and `std` of integers are computed in the default float type.
"""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np

from compiler import numpy_prims as prims
from compiler.numpy_elementwise import (
    broadcast_to,
    equal,
    multiply,
    sqrt,
    subtract,
    true_divide,
    where,
)
from compiler.numpy_shape import normalize_axes, normalize_axis
from compiler.tracing import DEFAULT_FLOAT, DEFAULT_INT, Tracer, kind_rank, to_tracer, traceable
from hlo.errors import ShapeError
from hlo.opcodes import Opcode


def _keep(t: Tracer, reduced: Tracer, axes: tuple[int, ...], keepdims: bool) -> Tracer:
    if not keepdims:
        return reduced
    return prims.reshape(reduced, [1 if i in axes else d for i, d in enumerate(t.shape)])


def _lowest(dtype: np.dtype) -> Any:
    if kind_rank(dtype) >= 2:
        return -np.inf
    if dtype == np.bool_:
        return False
    return np.iinfo(dtype).min


def _highest(dtype: np.dtype) -> Any:
    if kind_rank(dtype) >= 2:
        return np.inf
    if dtype == np.bool_:
        return True
    return np.iinfo(dtype).max


@traceable
def sum(x: Any, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Tracer:  # noqa: A001
    t = to_tracer(x)
    if dtype is None and t.dtype == np.bool_:
        dtype = DEFAULT_INT
    if dtype is not None:
        t = prims.convert(t, dtype)
    axes = normalize_axes(axis, t.ndim)
    return _keep(t, prims.reduce(t, 0, Opcode.ADD, axes), axes, keepdims)


@traceable
def prod(x: Any, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Tracer:
    t = to_tracer(x)
    if dtype is None and t.dtype == np.bool_:
        dtype = DEFAULT_INT
    if dtype is not None:
        t = prims.convert(t, dtype)
    axes = normalize_axes(axis, t.ndim)
    return _keep(t, prims.reduce(t, 1, Opcode.MULTIPLY, axes), axes, keepdims)


def _extreme(x: Any, axis: Any, keepdims: bool, opcode: Opcode, what: str) -> Tracer:
    t = to_tracer(x)
    axes = normalize_axes(axis, t.ndim)
    if builtins.any(t.shape[a] == 0 for a in axes):
        raise ShapeError(f"{what} of an empty axis has no identity (shape {t.shape})")
    init = _lowest(t.dtype) if opcode is Opcode.MAXIMUM else _highest(t.dtype)
    if t.dtype == np.bool_:
        opcode = Opcode.OR if opcode is Opcode.MAXIMUM else Opcode.AND
    return _keep(t, prims.reduce(t, init, opcode, axes), axes, keepdims)


@traceable
def max(x: Any, axis: Any = None, keepdims: bool = False) -> Tracer:  # noqa: A001
    return _extreme(x, axis, keepdims, Opcode.MAXIMUM, "max")


@traceable
def min(x: Any, axis: Any = None, keepdims: bool = False) -> Tracer:  # noqa: A001
    return _extreme(x, axis, keepdims, Opcode.MINIMUM, "min")


amax = max
amin = min


@traceable
def any(x: Any, axis: Any = None, keepdims: bool = False) -> Tracer:  # noqa: A001
    t = to_tracer(x)
    b = t if t.dtype == np.bool_ else prims.compare(t, prims.zeros_like(t), "NE")
    axes = normalize_axes(axis, t.ndim)
    return _keep(t, prims.reduce(b, False, Opcode.OR, axes), axes, keepdims)


@traceable
def all(x: Any, axis: Any = None, keepdims: bool = False) -> Tracer:  # noqa: A001
    t = to_tracer(x)
    b = t if t.dtype == np.bool_ else prims.compare(t, prims.zeros_like(t), "NE")
    axes = normalize_axes(axis, t.ndim)
    return _keep(t, prims.reduce(b, True, Opcode.AND, axes), axes, keepdims)


def _float(t: Tracer) -> Tracer:
    return t if kind_rank(t.dtype) >= 2 else prims.convert(t, DEFAULT_FLOAT)


@traceable
def mean(x: Any, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Tracer:
    t = _float(to_tracer(x)) if dtype is None else prims.convert(to_tracer(x), dtype)
    axes = normalize_axes(axis, t.ndim)
    count = math.prod(t.shape[a] for a in axes)
    return true_divide(sum(t, axes, keepdims=keepdims), float(count))


@traceable
def var(x: Any, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Tracer:
    t = _float(to_tracer(x))
    axes = normalize_axes(axis, t.ndim)
    count = math.prod(t.shape[a] for a in axes)
    centered = subtract(t, mean(t, axes, keepdims=True))
    return true_divide(sum(multiply(centered, centered), axes, keepdims=keepdims),
                       float(count - ddof))


@traceable
def std(x: Any, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Tracer:
    return sqrt(var(x, axis, ddof, keepdims))


def _arg_extreme(x: Any, axis: Any, keepdims: bool, extreme: Any) -> Tracer:
    """The first index of the extreme value along `axis`, as int32."""
    t = to_tracer(x)
    if axis is None:
        t = prims.reshape(t, (t.size,))
        axis = 0
    ax = normalize_axis(axis, t.ndim)
    if t.shape[ax] == 0:
        raise ShapeError(f"attempt to get argmax/argmin of an empty axis (shape {t.shape})")
    best = extreme(t, ax, keepdims=True)
    index = prims.iota(DEFAULT_INT, t.shape, ax)
    candidates = where(equal(t, broadcast_to(best, t.shape)), index, t.shape[ax])
    return min(candidates, ax, keepdims=keepdims)


@traceable
def argmax(x: Any, axis: Any = None, keepdims: bool = False) -> Tracer:
    return _arg_extreme(x, axis, keepdims, max)


@traceable
def argmin(x: Any, axis: Any = None, keepdims: bool = False) -> Tracer:
    return _arg_extreme(x, axis, keepdims, min)


@traceable
def cumsum(x: Any, axis: Any = None, dtype: Any = None) -> Tracer:
    """Running sums along `axis` (None: of the flattened array), as a reduce-window."""
    t = to_tracer(x)
    if axis is None:
        t, axis = prims.reshape(t, (t.size,)), 0
    if dtype is not None or t.dtype == np.bool_:
        t = prims.convert(t, dtype or DEFAULT_INT)
    ax = normalize_axis(axis, t.ndim)
    n = t.shape[ax]
    sizes = [n if i == ax else 1 for i in range(t.ndim)]
    padding = [(n - 1, 0) if i == ax else (0, 0) for i in range(t.ndim)]
    return prims.reduce_window(t, 0, Opcode.ADD, prims.make_window(sizes, padding=padding))


@traceable
def count_nonzero(x: Any, axis: Any = None, keepdims: bool = False) -> Tracer:
    t = to_tracer(x)
    nz = prims.compare(t, prims.zeros_like(t), "NE")
    return sum(nz, axis, keepdims=keepdims)
