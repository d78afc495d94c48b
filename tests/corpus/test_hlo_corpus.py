"""Every module of ../shared/corpus/hlo parses, verifies, round-trips and evaluates correctly.

The expectations were produced by JAX/XLA, not by this project: this is the oracle from
outside. Integers and bools must match exactly; floats within the case's rtol/atol.
"""

from __future__ import annotations

import numpy as np
import pytest

import hlo
from tests.conftest import CORPUS, corpus_cases

CASES = corpus_cases("hlo")


def load_case(case: dict) -> tuple[str, list[np.ndarray], list[np.ndarray]]:
    text = (CORPUS / "hlo" / case["hlo"]).read_text()
    data = np.load(CORPUS / "hlo" / case["npz"])
    args = [data[f"arg{i}"] for i in range(len(case["inputs"]))]
    want = [data[f"out{i}"] for i in range(len(case["outputs"]))]
    return text, args, want


def assert_outputs_match(case: dict, got: tuple, want: list[np.ndarray]) -> None:
    """The corpus comparison rule; the message names the case and the output."""
    name = case["name"]
    assert len(got) == len(want), f"{name}: {len(got)} outputs, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        g = np.asarray(g)
        assert g.dtype == w.dtype, f"{name} out{i}: dtype {g.dtype}, expected {w.dtype}"
        assert g.shape == w.shape, f"{name} out{i}: shape {g.shape}, expected {w.shape}"
        if np.issubdtype(w.dtype, np.floating) or np.issubdtype(w.dtype, np.complexfloating):
            ok = np.allclose(g.astype(np.complex128), w.astype(np.complex128),
                             rtol=case["rtol"], atol=case["atol"], equal_nan=True)
            if not ok:
                err = np.nanmax(np.abs(g.astype(np.float64) - w.astype(np.float64)))
                pytest.fail(f"{name} out{i}: max abs error {err} beyond rtol={case['rtol']} "
                            f"atol={case['atol']}")
        else:
            mism = int(np.sum(g != w))
            assert mism == 0, f"{name} out{i}: {mism} element(s) differ"


@pytest.mark.skipif(not CASES, reason="../shared/corpus is not present")
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_corpus_case_parses_verifies_round_trips_and_evaluates(case: dict) -> None:
    from hlo.parser import parse
    from hlo.printer import to_text
    from hlo.verifier import verify

    text, args, want = load_case(case)
    module = parse(text)
    verify(module)
    printed = to_text(module)
    again = parse(printed)
    verify(again)
    assert to_text(again) == printed, f"{case['name']}: print/parse is not a fixed point"
    assert_outputs_match(case, hlo.evaluate(module, *args), want)
