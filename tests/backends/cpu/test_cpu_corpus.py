"""Every module of ../shared/corpus/hlo, compiled for this CPU, reproduces JAX/XLA's outputs.

A case fails if compiling or running raises. Cases that need a CPU kernel not written yet
are listed in XFAIL_UNTIL_KERNELS and marked strict xfail, so they flip loudly the day the
kernel lands (then remove them from the list).
"""

from __future__ import annotations

import numpy as np
import pytest

import compiler
from hlo.parser import parse
from tests.conftest import CORPUS, corpus_cases

CASES = corpus_cases("hlo")

# case name -> the kernel it waits for.
XFAIL_UNTIL_KERNELS: dict[str, str] = {}


def _param(case: dict) -> object:
    name = case["name"]
    if name in XFAIL_UNTIL_KERNELS:
        reason = f"needs the {XFAIL_UNTIL_KERNELS[name]} CPU kernel"
        return pytest.param(case, id=name, marks=pytest.mark.xfail(strict=True, reason=reason))
    return pytest.param(case, id=name)


def _load(case: dict) -> tuple[str, list[np.ndarray], list[np.ndarray]]:
    text = (CORPUS / "hlo" / case["hlo"]).read_text()
    data = np.load(CORPUS / "hlo" / case["npz"])
    args = [data[f"arg{i}"] for i in range(len(case["inputs"]))]
    want = [data[f"out{i}"] for i in range(len(case["outputs"]))]
    return text, args, want


def test_xfail_list_names_real_cases() -> None:
    names = {c["name"] for c in CASES}
    stale = sorted(set(XFAIL_UNTIL_KERNELS) - names)
    assert not stale, f"XFAIL_UNTIL_KERNELS names unknown cases: {stale}"


@pytest.mark.skipif(not CASES, reason="../shared/corpus is not present")
@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_corpus_case_compiles_and_matches(case: dict) -> None:
    text, args, want = _load(case)
    exe = compiler.compile(parse(text))
    got = exe(*args)
    if not isinstance(got, tuple):
        got = (got,)
    name = case["name"]
    assert len(got) == len(want), f"{name}: {len(got)} outputs, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.dtype == w.dtype, f"{name} out{i}: dtype {g.dtype}, expected {w.dtype}"
        assert g.shape == w.shape, f"{name} out{i}: shape {g.shape}, expected {w.shape}"
        if w.dtype.kind in "fc":
            ok = np.allclose(g.astype(np.complex128), w.astype(np.complex128),
                             rtol=case["rtol"], atol=case["atol"], equal_nan=True)
            if not ok:
                err = np.nanmax(np.abs(g.astype(np.complex128) - w.astype(np.complex128)))
                pytest.fail(f"{name} out{i}: max abs error {err} beyond rtol={case['rtol']} "
                            f"atol={case['atol']}")
        else:
            mismatches = int(np.sum(g != w))
            assert mismatches == 0, f"{name} out{i}: {mismatches} element(s) differ"
