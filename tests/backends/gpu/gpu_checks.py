"""Comparison helpers of the GPU numeric tests (results against the reference evaluator)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import hlo
from hlo.parser import parse

Compile = Callable[..., Any]

TOLERANCE = {  # dtype name -> (rtol, atol)
    "float16": (2e-3, 1e-3),
    "bfloat16": (1.6e-2, 1e-2),
    "float32": (2e-5, 1e-6),
    "float64": (1e-12, 1e-13),
    "complex64": (2e-5, 1e-6),
    "complex128": (1e-12, 1e-13),
}


def check(got: Any, want: Sequence[np.ndarray], names: Sequence[str] | None = None,
          scale: float = 1.0) -> None:
    """Assert that `got` (one array or a tuple) matches `want`: equal dtypes and shapes,
    exact integers and PREDs, floats within TOLERANCE times `scale` (NaN equals NaN)."""
    if not isinstance(got, tuple):
        got = (got,)
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        name = names[k] if names else f"out{k}"
        w = np.asarray(w)
        assert g.dtype == w.dtype, f"{name}: dtype {g.dtype}, expected {w.dtype}"
        assert g.shape == w.shape, f"{name}: shape {g.shape}, expected {w.shape}"
        if w.dtype.name in TOLERANCE:
            rtol, atol = TOLERANCE[w.dtype.name]
            g128 = g.astype(np.complex128)
            w128 = w.astype(np.complex128)
            close = np.isclose(g128, w128, rtol=rtol * scale, atol=atol * scale, equal_nan=True)
            assert close.all(), (f"{name}: {int((~close).sum())} of {close.size} differ; "
                                 f"got {g[~close][:4]}, want {w[~close][:4]}")
        else:
            bad = g != w
            assert not bad.any(), (f"{name}: {int(bad.sum())} differ; got {g[bad][:4]}, "
                                   f"want {w[bad][:4]}")


def run(gpu_compile: Compile, text: str, args: Sequence[Any], scale: float = 1.0) -> None:
    """Compile `text` for the GPU, run it on `args` and check it against the evaluator."""
    module = parse(text)
    want = hlo.evaluate(module, *args)
    got = gpu_compile(text)(*args)
    check(got, want, scale=scale)


def numpy_dtype(t: str) -> Any:
    """The numpy dtype of the HLO element type named `t`."""
    return hlo.PrimitiveType(t).numpy
