"""Every module of ../shared/corpus/hlo, compiled for this CPU, reproduces JAX/XLA's outputs.

A case fails if compiling or running raises. Cases that need a CPU kernel not written yet
are listed in XFAIL_UNTIL_KERNELS and marked strict xfail, so they flip loudly the day the
kernel lands (then remove them from the list). The comparison rule is the corpus's own
(`tests/corpus/test_hlo_corpus.py`): integers exact, floats within the case's tolerances.
"""

from __future__ import annotations

import pytest

import compiler
from hlo.parser import parse
from tests.conftest import corpus_cases
from tests.corpus.test_hlo_corpus import assert_outputs_match, load_case

CASES = corpus_cases("hlo")

# case name -> the kernel it waits for (empty: every corpus case compiles today).
XFAIL_UNTIL_KERNELS: dict[str, str] = {}


def _param(case: dict) -> object:
    name = case["name"]
    if name in XFAIL_UNTIL_KERNELS:
        reason = f"needs the {XFAIL_UNTIL_KERNELS[name]} CPU kernel"
        return pytest.param(case, id=name, marks=pytest.mark.xfail(strict=True, reason=reason))
    return pytest.param(case, id=name)


def test_xfail_list_names_real_cases() -> None:
    names = {c["name"] for c in CASES}
    stale = sorted(set(XFAIL_UNTIL_KERNELS) - names)
    assert not stale, f"XFAIL_UNTIL_KERNELS names unknown cases: {stale}"


@pytest.mark.skipif(not CASES, reason="../shared/corpus is not present")
@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_corpus_case_compiles_and_matches(case: dict) -> None:
    text, args, want = load_case(case)
    got = compiler.compile(parse(text))(*args)
    if not isinstance(got, tuple):
        got = (got,)
    assert_outputs_match(case, got, want)
