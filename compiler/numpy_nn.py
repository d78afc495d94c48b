"""Neural-network functions of compiler.numpy: activations, softmax family, one_hot,
convolution and pooling in NHWC or NCHW layouts.

Softmax, log_softmax and logsumexp subtract the maximum first (wrapped in
`lax.stop_gradient`, so it adds nothing to gradients) to stay finite for large inputs.
Average pooling divides by the full window size, padding included.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from compiler import lax
from compiler import numpy_prims as prims
from compiler.numpy_elementwise import (
    absolute,
    add,
    equal,
    exp,
    isfinite,
    log,
    log1p,
    maximum,
    multiply,
    negative,
    sigmoid,
    subtract,
    tanh,
    true_divide,
    where,
)
from compiler.numpy_reduce import max as reduce_max
from compiler.numpy_reduce import sum as reduce_sum
from compiler.numpy_shape import normalize_axes, normalize_axis
from compiler.tracing import DEFAULT_FLOAT, Tracer, to_tracer, traceable
from hlo.errors import ArgumentError


@traceable
def relu(x: Any) -> Tracer:
    return maximum(x, 0)


@traceable
def softplus(x: Any) -> Tracer:
    """log(1 + exp(x)), computed without overflow."""
    return add(log1p(exp(negative(absolute(x)))), maximum(x, 0))


@traceable
def gelu(x: Any, approximate: bool = True) -> Tracer:
    if approximate:
        inner = multiply(add(x, multiply(multiply(multiply(x, x), x), 0.044715)),
                         math.sqrt(2.0 / math.pi))
        return multiply(multiply(x, 0.5), add(tanh(inner), 1.0))
    from compiler.numpy_elementwise import erf

    return multiply(multiply(x, 0.5), add(erf(multiply(x, 1.0 / math.sqrt(2.0))), 1.0))


@traceable
def silu(x: Any) -> Tracer:
    return multiply(x, sigmoid(x))


def _stable_max(t: Tracer, axes: tuple[int, ...]) -> Tracer:
    m = reduce_max(t, axes, keepdims=True)
    stopped: Tracer = lax.stop_gradient(where(isfinite(m), m, 0))
    return stopped


@traceable
def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Tracer:
    """log(sum(exp(x))) over `axis`, shifted by the maximum for stability."""
    t = to_tracer(x)
    axes = normalize_axes(axis, t.ndim)
    m = _stable_max(t, axes)
    s = log(reduce_sum(exp(subtract(t, m)), axes, keepdims=True))
    out = add(s, m)
    if keepdims:
        return out
    return prims.reshape(out, [d for i, d in enumerate(t.shape) if i not in axes])


@traceable
def log_softmax(x: Any, axis: Any = -1) -> Tracer:
    t = to_tracer(x)
    axes = normalize_axes(axis, t.ndim)
    shifted = subtract(t, _stable_max(t, axes))
    return subtract(shifted, log(reduce_sum(exp(shifted), axes, keepdims=True)))


@traceable
def softmax(x: Any, axis: Any = -1) -> Tracer:
    t = to_tracer(x)
    axes = normalize_axes(axis, t.ndim)
    e = exp(subtract(t, _stable_max(t, axes)))
    return true_divide(e, reduce_sum(e, axes, keepdims=True))


@traceable
def one_hot(labels: Any, num_classes: int, dtype: Any = DEFAULT_FLOAT,
            axis: int = -1) -> Tracer:
    """1 where the new axis equals the label, else 0 (labels outside range give zeros)."""
    t = to_tracer(labels)
    if t.dtype.kind not in "iu":
        raise ArgumentError(f"one_hot: labels must be integers, got {t.dtype}")
    ax = normalize_axis(axis, t.ndim + 1)
    shape = t.shape[:ax] + (int(num_classes),) + t.shape[ax:]
    classes = prims.iota(t.dtype, shape, ax)
    expanded = prims.broadcast_in_dim(t, shape, [d for d in range(len(shape)) if d != ax])
    return prims.convert(equal(expanded, classes), dtype)


# --- convolution and pooling -------------------------------------------------------------------


def _per_dim(value: Any, n: int, what: str) -> list[int]:
    if isinstance(value, (int, np.integer)):
        return [int(value)] * n
    values = [int(v) for v in value]
    if len(values) != n:
        raise ArgumentError(f"{what} {value} needs {n} entries")
    return values


def _formats(data_format: str, ndim: int) -> tuple[str, str, str]:
    spatial = "HWD"[: ndim - 2] if ndim - 2 <= 3 else None
    if spatial is None:
        raise ArgumentError(f"conv/pool: {ndim - 2} spatial dims are not supported (at most 3)")
    fmt = data_format.upper()
    if fmt in ("NHWC", "NWC", "NDHWC", "CHANNELS_LAST"):
        return "N" + spatial + "C", spatial + "IO", "N" + spatial + "C"
    if fmt in ("NCHW", "NCW", "NCDHW", "CHANNELS_FIRST"):
        return "NC" + spatial, "OI" + spatial, "NC" + spatial
    raise ArgumentError(f"data_format must be NHWC or NCHW, got {data_format!r}")


def _padding(padding: Any, n: int) -> Any:
    if isinstance(padding, str):
        return padding
    if isinstance(padding, (int, np.integer)):
        return [(int(padding), int(padding))] * n
    pads = list(padding)
    if pads and isinstance(pads[0], (int, np.integer)):
        return [(int(p), int(p)) for p in pads]
    return [(int(lo), int(hi)) for lo, hi in pads]


@traceable
def conv(x: Any, kernel: Any, strides: Any = 1, padding: Any = "SAME", dilation: Any = 1,
         groups: int = 1, data_format: str = "NHWC") -> Tracer:
    """Convolution of `x` (NHWC or NCHW) with `kernel` (HWIO for NHWC, OIHW for NCHW).

    Args:
        strides, dilation: an int or one per spatial dim (dilation is the kernel's).
        padding: "SAME", "VALID", an int, one int per spatial dim, or (low, high) pairs.
        groups: feature groups; the kernel's I dim is input channels / groups.
    """
    t = to_tracer(x)
    n = t.ndim - 2
    lhs_spec, rhs_spec, out_spec = _formats(data_format, t.ndim)
    return lax.conv_general_dilated(
        t, kernel, _per_dim(strides, n, "strides"), _padding(padding, n),
        rhs_dilation=_per_dim(dilation, n, "dilation"),
        dimension_numbers=(lhs_spec, rhs_spec, out_spec), feature_group_count=groups)


conv2d = conv


def _pool(x: Any, window: Any, strides: Any, padding: Any, data_format: str, computation: str,
          init: Any) -> tuple[Tracer, list[int]]:
    t = to_tracer(x)
    n = t.ndim - 2
    lhs_spec = _formats(data_format, t.ndim)[0]
    sizes = _per_dim(window, n, "window")
    steps = _per_dim(strides if strides is not None else window, n, "strides")
    spatial = [i for i, c in enumerate(lhs_spec) if c not in "NC"]
    dims, dim_strides = [1] * t.ndim, [1] * t.ndim
    for d, s, st in zip(spatial, sizes, steps, strict=True):
        dims[d], dim_strides[d] = s, st
    pads = _padding(padding, n)
    if not isinstance(pads, str):
        full = [(0, 0)] * t.ndim
        for d, p in zip(spatial, pads, strict=True):
            full[d] = p
        pads = full
    return lax.reduce_window(t, init, computation, dims, dim_strides, pads), sizes


@traceable
def max_pool(x: Any, window: Any, strides: Any = None, padding: Any = "VALID",
             data_format: str = "NHWC") -> Tracer:
    """Maximum over windows of the spatial dims (strides default to the window)."""
    t = to_tracer(x)
    init = -np.inf if t.dtype.kind == "f" or t.dtype.kind == "V" else np.iinfo(t.dtype).min
    return _pool(t, window, strides, padding, data_format, "max", init)[0]


@traceable
def avg_pool(x: Any, window: Any, strides: Any = None, padding: Any = "VALID",
             data_format: str = "NHWC") -> Tracer:
    """Mean over windows of the spatial dims; padded positions count as zeros."""
    summed, sizes = _pool(x, window, strides, padding, data_format, "add", 0)
    return true_divide(summed, float(math.prod(sizes)))
