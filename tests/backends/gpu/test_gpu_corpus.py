"""Every module of ../shared/corpus/hlo, compiled for the GPU, reproduces JAX/XLA's outputs.

Marked `gpu`: skipped without a usable CUDA device. Tolerances are the case's own, except for
cases that use transcendental functions (exp, log, tanh, erf, pow, ...): libdevice's
functions may differ from XLA's CPU ones by a few ulp, so their rtol/atol are widened 4x.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tests.conftest import CORPUS, corpus_cases

pytestmark = pytest.mark.gpu

CASES = corpus_cases("hlo")

# Opcodes whose results come from libdevice approximations rather than exact arithmetic.
TRANSCENDENTAL = {
    "exponential", "exponential-minus-one", "log", "log-plus-one", "sine", "cosine", "tan",
    "tanh", "erf", "cbrt", "power", "atan2", "logistic", "rsqrt", "sqrt", "fft",
    "batch-norm-training", "rng-bit-generator",
}
WIDEN = 4.0


def _load(case: dict) -> tuple[str, list[np.ndarray], list[np.ndarray]]:
    text = (CORPUS / "hlo" / case["hlo"]).read_text()
    data = np.load(CORPUS / "hlo" / case["npz"])
    args = [data[f"arg{i}"] for i in range(len(case["inputs"]))]
    want = [data[f"out{i}"] for i in range(len(case["outputs"]))]
    return text, args, want


def _tolerance(case: dict) -> tuple[float, float]:
    scale = WIDEN if TRANSCENDENTAL & set(case["ops"]) else 1.0
    return case["rtol"] * scale, case["atol"] * scale


@pytest.mark.skipif(not CASES, reason="../shared/corpus is not present")
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_corpus_case_on_gpu(case: dict, gpu_compile: Callable[..., Any]) -> None:
    text, args, want = _load(case)
    _check(case, gpu_compile(text)(*args), want)


@pytest.mark.skipif(not CASES, reason="../shared/corpus is not present")
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_optimized_corpus_case_on_gpu(case: dict, gpu_compile: Callable[..., Any]) -> None:
    """The same through compile(backend="gpu"): the default pipeline's loop, input and
    output fusions, and the CUDA graph replay, on a second call too."""
    from compiler.api import compile as compile_module

    text, args, want = _load(case)
    exe = compile_module(text, backend="gpu")
    _check(case, exe(*args), want)
    _check(case, exe(*args), want)


def _check(case: dict, got: Any, want: list[np.ndarray]) -> None:
    if not isinstance(got, tuple):
        got = (got,)
    name = case["name"]
    rtol, atol = _tolerance(case)
    assert len(got) == len(want), f"{name}: {len(got)} outputs, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.dtype == w.dtype, f"{name} out{i}: dtype {g.dtype}, expected {w.dtype}"
        assert g.shape == w.shape, f"{name} out{i}: shape {g.shape}, expected {w.shape}"
        if w.dtype.kind in "fc":
            g128, w128 = g.astype(np.complex128), w.astype(np.complex128)
            if not np.allclose(g128, w128, rtol=rtol, atol=atol, equal_nan=True):
                err = np.nanmax(np.abs(g128 - w128))
                pytest.fail(f"{name} out{i}: max abs error {err} beyond rtol={rtol} atol={atol}")
        else:
            mismatches = int(np.sum(g != w))
            assert mismatches == 0, f"{name} out{i}: {mismatches} element(s) differ"
