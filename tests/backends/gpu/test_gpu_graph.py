"""Runs of launches and copies replay as CUDA graphs, between the host's while and
conditional decisions too. `straight_end` needs no GPU; the others are marked `gpu` and run
under both drivers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import runtime.cuda
from backends.gpu import compile_to_program
from backends.gpu.plan import While
from hlo.parser import parse
from runtime.cuda import straight_end

CHAIN = """HloModule chain
ENTRY main {
  x = f32[1000] parameter(0)
  y = f32[1000] parameter(1)
  a = f32[1000] multiply(x, y)
  b = f32[1000] add(a, x)
  c = f32[1000] copy(b)
  ROOT t = (f32[1000], f32[1000]) tuple(c, x)
}
"""

LOOP = """HloModule loop
cond {
  s = (s32[], f32[8]) parameter(0)
  i = s32[] get-tuple-element(s), index=0
  n = s32[] constant(5)
  ROOT lt = pred[] compare(i, n), direction=LT
}
body {
  s = (s32[], f32[8]) parameter(0)
  i = s32[] get-tuple-element(s), index=0
  v = f32[8] get-tuple-element(s), index=1
  one = s32[] constant(1)
  j = s32[] add(i, one)
  w = f32[8] add(v, v)
  ROOT r = (s32[], f32[8]) tuple(j, w)
}
ENTRY main {
  v = f32[8] parameter(0)
  zero = s32[] constant(0)
  s = (s32[], f32[8]) tuple(zero, v)
  ROOT out = (s32[], f32[8]) while(s), condition=cond, body=body
}
"""


def test_straight_runs_stop_at_host_steps() -> None:
    chain = compile_to_program(parse(CHAIN), arch="sm_90").steps
    loop = compile_to_program(parse(LOOP), arch="sm_90").steps
    assert straight_end(chain, 0) == len(chain) > 1
    at = next(k for k, s in enumerate(loop) if isinstance(s, While))
    assert straight_end(loop, at) == at
    assert straight_end((), 0) == 0


@pytest.fixture(params=["default", "libcuda"])
def driver_kind(request: pytest.FixtureRequest, gpu_compile: Any,
                monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test with the process's driver (pycuda when installed) and with ctypes."""
    if request.param == "libcuda":
        monkeypatch.setattr(runtime.cuda, "_driver", runtime.cuda.CtypesDriver())
    return str(request.param)


@pytest.mark.gpu
def test_graph_replay_matches_step_by_step(driver_kind: str) -> None:
    import backends.gpu

    exe = backends.gpu.compile(parse(CHAIN))
    rng = np.random.default_rng(3)
    for _ in range(3):  # the first call records the graph, the others replay it
        x = rng.uniform(-1, 1, 1000).astype(np.float32)
        y = rng.uniform(-1, 1, 1000).astype(np.float32)
        got = exe(x, y)
        assert exe.uses_graph, exe.graph_error
        np.testing.assert_allclose(got[0], x * y + x, rtol=1e-6)
        np.testing.assert_array_equal(got[1], x)
    exe.use_graphs = False
    np.testing.assert_allclose(exe(x, y)[0], x * y + x, rtol=1e-6)
    assert exe.time_plan(x, y, repeats=3) > 0
    exe.close()


@pytest.mark.gpu
@pytest.mark.parametrize("graphs", [True, False])
def test_host_driven_plan_replays_its_straight_runs(driver_kind: str, graphs: bool) -> None:
    import backends.gpu

    exe = backends.gpu.compile(parse(LOOP))
    exe.use_graphs = graphs
    for k in range(2):
        v = np.arange(8, dtype=np.float32) + k
        count, out = exe(v)
        assert int(count) == 5
        np.testing.assert_array_equal(out, v * 32)
    assert exe.uses_graph == graphs and exe.graph_error is None
