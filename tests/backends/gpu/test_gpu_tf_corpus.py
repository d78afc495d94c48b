"""Every TensorFlow graph of ../shared/corpus/tf, imported and compiled for the GPU,
reproduces TF's outputs; without a GPU, its PTX still assembles with ptxas.

The device test is marked `gpu` (skipped without a usable CUDA device); the ptxas test runs
in CI. Tolerances are the case's own, widened 4x for graphs with transcendental ops, whose
libdevice implementations may differ from TF's CPU kernels by a few ulp.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import compiler
import compiler.tf as tf
from backends.gpu import assemble, compile_to_program, ptxas_path
from compiler.api import optimize_module
from tests.conftest import CORPUS, corpus_cases

CASES = corpus_cases("tf")
TF = CORPUS / "tf"
TRANSCENDENTAL = {"Exp", "Tanh", "Sigmoid", "Elu", "Sqrt", "Softmax", "FusedBatchNormV3"}
WIDEN = 4.0
PTXAS = ptxas_path()

needs_corpus = pytest.mark.skipif(not CASES, reason="../shared/corpus is not present")


def _load(case: dict) -> tuple[Any, list[np.ndarray], list[np.ndarray]]:
    module = tf.import_graph(TF / case["pb"], TF / case["config"])
    data = np.load(TF / case["npz"])
    args = [data[f"arg{i}"] for i in range(len(case["args"]))]
    want = [data[f"out{i}"] for i in range(len(case["results"]))]
    return module, args, want


@pytest.mark.gpu
@needs_corpus
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_tf_case_on_gpu(case: dict, gpu_compile: Callable[..., Any]) -> None:
    module, args, want = _load(case)
    got = compiler.compile(module, backend="gpu")(*args)
    got = got if isinstance(got, tuple) else (got,)
    scale = WIDEN if TRANSCENDENTAL & set(case["ops"]) else 1.0
    name = case["name"]
    assert len(got) == len(want), f"{name}: {len(got)} outputs, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        g = np.asarray(g)
        assert (g.dtype, g.shape) == (w.dtype, w.shape), f"{name} out{i}: {g.dtype}{g.shape}"
        if w.dtype.kind in "fc":
            ok = np.allclose(g, w, rtol=case["rtol"] * scale, atol=case["atol"] * scale,
                             equal_nan=True)
            assert ok, f"{name} out{i}: max abs error {np.nanmax(np.abs(g - w))}"
        else:
            assert np.array_equal(g, w), f"{name} out{i}: {g} != {w}"


@pytest.mark.skipif(PTXAS is None, reason="ptxas is not installed")
@needs_corpus
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_tf_case_ptx_assembles(case: dict) -> None:
    module, _, _ = _load(case)
    optimized, _ = optimize_module(module)
    program = compile_to_program(optimized, arch="sm_90")
    assert assemble(program.ptx.ptx, "sm_90", PTXAS)[:4] == b"\x7fELF", case["name"]
