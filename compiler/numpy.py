"""compiler.numpy: the numpy-style API for traced functions (`import compiler.numpy as cnp`).

The functions live in the compiler/numpy_*.py files by family (elementwise, shape and
creation, reductions, indexing, products, neural-network functions); this module gathers
them into one namespace and installs the Python operators and numpy-style methods on
`Tracer` (`x + y`, `x @ w`, `x[i]`, `x.sum(axis=0)`, `x.T`, `x.at[i].add(v)`, ...).

Inside a traced function every call appends HLO instructions; outside one, a call runs
eagerly on the reference evaluator and returns numpy arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as _np

from compiler import numpy_index as _index
from compiler.numpy_dot import (
    dot,
    einsum,
    inner,
    matmul,
    outer,
    tensordot,
    vdot,
)
from compiler.numpy_elementwise import (
    abs,
    absolute,
    add,
    arctan,
    arctan2,
    around,
    astype,
    bitwise_and,
    bitwise_or,
    bitwise_xor,
    broadcast_shapes,
    broadcast_to,
    cbrt,
    ceil,
    clip,
    cos,
    cosh,
    divide,
    equal,
    erf,
    exp,
    exp2,
    expm1,
    floor,
    floor_divide,
    fmod,
    greater,
    greater_equal,
    invert,
    isfinite,
    isinf,
    isnan,
    less,
    less_equal,
    log,
    log1p,
    log2,
    log10,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    maximum,
    minimum,
    mod,
    multiply,
    negative,
    not_equal,
    positive,
    power,
    reciprocal,
    remainder,
    rint,
    round,
    rsqrt,
    sigmoid,
    sign,
    sin,
    sinh,
    sqrt,
    square,
    subtract,
    tan,
    tanh,
    true_divide,
    trunc,
    where,
)
from compiler.numpy_index import (
    getitem,
    take,
    take_along_axis,
)
from compiler.numpy_nn import (
    avg_pool,
    conv,
    conv2d,
    gelu,
    log_softmax,
    logsumexp,
    max_pool,
    one_hot,
    relu,
    silu,
    softmax,
    softplus,
)
from compiler.numpy_reduce import (
    all,
    amax,
    amin,
    any,
    argmax,
    argmin,
    count_nonzero,
    cumsum,
    max,
    mean,
    min,
    prod,
    std,
    sum,
    var,
)
from compiler.numpy_shape import (
    arange,
    array,
    asarray,
    atleast_1d,
    concatenate,
    expand_dims,
    eye,
    flip,
    full,
    full_like,
    hstack,
    linspace,
    moveaxis,
    ones,
    ones_like,
    pad,
    ravel,
    repeat,
    reshape,
    split,
    squeeze,
    stack,
    swapaxes,
    tile,
    transpose,
    tri,
    tril,
    triu,
    vstack,
    zeros,
    zeros_like,
)
from compiler.tracing import Tracer

# numpy's constants and type names, so `cnp.float32` and `cnp.pi` read as in numpy.
pi = _np.pi
e = _np.e
inf = _np.inf
nan = _np.nan
newaxis = None
bool_ = _np.bool_
int8, int16, int32, int64 = _np.int8, _np.int16, _np.int32, _np.int64
uint8, uint32 = _np.uint8, _np.uint32
float16, float32, float64 = _np.float16, _np.float32, _np.float64
dtype = _np.dtype


def ndim(x: Any) -> int:
    return x.ndim if isinstance(x, Tracer) else _np.ndim(x)


def shape(x: Any) -> tuple[int, ...]:
    return x.shape if isinstance(x, Tracer) else _np.shape(x)


def size(x: Any) -> int:
    return x.size if isinstance(x, Tracer) else _np.size(x)


# --- Tracer operators and methods ---------------------------------------------------------------


def _swap(fn: Callable[[Any, Any], Tracer]) -> Callable[[Tracer, Any], Tracer]:
    def reflected(self: Tracer, other: Any) -> Tracer:
        return fn(other, self)

    return reflected


def _method(fn: Any) -> Any:
    def method(self: Tracer, *args: Any, **kwargs: Any) -> Any:
        return fn(self, *args, **kwargs)

    method.__name__ = fn.__name__
    method.__doc__ = fn.__doc__
    return method


def _reshape_method(self: Tracer, *shape_args: Any) -> Tracer:
    new_shape = shape_args[0] if len(shape_args) == 1 else shape_args
    return reshape(self, new_shape)


def _transpose_method(self: Tracer, *axes: Any) -> Tracer:
    if not axes:
        return transpose(self)
    return transpose(self, axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list))
                     else axes)


_OPERATORS = {
    "__add__": add, "__radd__": _swap(add),
    "__sub__": subtract, "__rsub__": _swap(subtract),
    "__mul__": multiply, "__rmul__": _swap(multiply),
    "__truediv__": true_divide, "__rtruediv__": _swap(true_divide),
    "__floordiv__": floor_divide, "__rfloordiv__": _swap(floor_divide),
    "__mod__": mod, "__rmod__": _swap(mod),
    "__pow__": power, "__rpow__": _swap(power),
    "__matmul__": matmul, "__rmatmul__": _swap(matmul),
    "__and__": bitwise_and, "__rand__": _swap(bitwise_and),
    "__or__": bitwise_or, "__ror__": _swap(bitwise_or),
    "__xor__": bitwise_xor, "__rxor__": _swap(bitwise_xor),
    "__lt__": less, "__le__": less_equal, "__gt__": greater, "__ge__": greater_equal,
    "__eq__": equal, "__ne__": not_equal,
    "__neg__": negative, "__pos__": positive, "__abs__": absolute, "__invert__": invert,
    "__getitem__": getitem,
}

_METHODS = {
    "sum": sum, "mean": mean, "max": max, "min": min, "prod": prod, "any": any, "all": all,
    "argmax": argmax, "argmin": argmin, "var": var, "std": std, "cumsum": cumsum,
    "astype": astype, "squeeze": squeeze, "ravel": ravel, "flatten": ravel,
    "swapaxes": swapaxes, "clip": clip, "dot": dot, "round": round, "take": take,
    "repeat": repeat,
}


def _install() -> None:
    for name, fn in _OPERATORS.items():
        setattr(Tracer, name, fn)
    for name, fn in _METHODS.items():
        setattr(Tracer, name, _method(fn))
    Tracer.reshape = _reshape_method  # type: ignore[attr-defined]
    Tracer.transpose = _transpose_method  # type: ignore[attr-defined]
    Tracer.T = property(lambda self: transpose(self))  # type: ignore[attr-defined]
    Tracer.at = property(_index.at)  # type: ignore[attr-defined]


_install()

__all__ = [
    "abs", "absolute", "add", "all", "amax", "amin", "any", "arange", "arctan", "arctan2",
    "argmax", "argmin", "around", "array", "asarray", "astype", "atleast_1d", "avg_pool",
    "bitwise_and", "bitwise_or", "bitwise_xor", "bool_", "broadcast_shapes", "broadcast_to",
    "cbrt", "ceil", "clip", "concatenate", "conv", "conv2d", "cos", "cosh", "count_nonzero",
    "cumsum", "divide", "dot", "dtype", "e", "einsum", "equal", "erf", "exp", "exp2",
    "expand_dims", "expm1", "eye", "flip", "float16", "float32", "float64", "floor",
    "floor_divide", "fmod", "full", "full_like", "gelu", "getitem", "greater", "greater_equal",
    "hstack", "inf", "inner", "int16", "int32", "int64", "int8", "invert", "isfinite", "isinf",
    "isnan", "less", "less_equal", "linspace", "log", "log10", "log1p", "log2", "log_softmax",
    "logical_and", "logical_not", "logical_or", "logical_xor", "logsumexp", "matmul", "max",
    "max_pool", "maximum", "mean", "min", "minimum", "mod", "moveaxis", "multiply", "nan", "ndim",
    "negative", "newaxis", "not_equal", "one_hot", "ones", "ones_like", "outer", "pad", "pi",
    "positive", "power", "prod", "ravel", "reciprocal", "relu", "remainder", "repeat", "reshape",
    "rint", "round", "rsqrt", "shape", "sigmoid", "sign", "silu", "sin", "sinh", "size", "softmax",
    "softplus", "split", "sqrt", "square", "squeeze", "stack", "std", "subtract", "sum",
    "swapaxes", "take", "take_along_axis", "tan", "tanh", "tensordot", "tile", "transpose", "tri",
    "tril", "triu", "true_divide", "trunc", "uint32", "uint8", "var", "vdot", "vstack", "where",
    "zeros", "zeros_like",
]
