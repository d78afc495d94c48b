"""Property: for random small f32 graphs, the compiled result equals the evaluated one."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings

import compiler
import hlo
from tests.strategies import random_modules


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_modules(max_ops=8))
def test_compiled_equals_evaluated(case) -> None:
    module, args = case
    want = hlo.evaluate(module, *args)
    got = compiler.compile(module)(*args)
    if not isinstance(got, tuple):
        got = (got,)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        # Reductions may associate differently (split accumulators); elementwise ops agree.
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, equal_nan=True)
