"""A reduce-window written over the start of its dying input (buffer assignment's in-place
windows), compiled and run against the reference evaluator.

Buffer assignment places the output at the input's offset when no window reads behind the
element written; the kernel must then read each window before writing its element, on one
thread, through one pointer. The producer is a transpose, which is never fused into the
window, so its buffer exists and dies at the reduce-window.
"""

from __future__ import annotations

import numpy as np
import pytest

import backends.cpu.reduction as cpu_reduction
from backends.cpu.compiler import CpuOptions
from compiler.api import compile_artifact
from hlo.evaluator import evaluate
from hlo.parser import parse
from runtime.loader import Executable

RNG = np.random.default_rng(7)

# (input dims after the transpose, window, output dims, combiner)
CASES = [
    ((2, 16, 16, 8), "size=1x2x2x1 stride=1x2x2x1", (2, 8, 8, 8), "maximum"),
    ((2, 12, 12, 4), "size=1x3x3x1", (2, 10, 10, 4), "add"),  # overlapping windows
    ((3, 9, 5, 2), "size=1x3x2x1 stride=1x2x2x1 pad=0_0x0_2x0_1x0_0", (3, 5, 3, 2), "add"),
    ((64,), "size=5 stride=3 rhs_dilate=2", (19,), "maximum"),
]


def _module(dims: tuple[int, ...], window: str, out: tuple[int, ...], combiner: str) -> str:
    shape = ",".join(map(str, dims))
    flipped = ",".join(map(str, reversed(dims)))
    order = ",".join(str(d) for d in reversed(range(len(dims))))
    out_shape = ",".join(map(str, out))
    init = "-inf" if combiner == "maximum" else "0"
    return f"""
HloModule in_place_window
combine {{
  x = f32[] parameter(0)
  y = f32[] parameter(1)
  ROOT r = f32[] {combiner}(x, y)
}}
ENTRY main {{
  p = f32[{flipped}] parameter(0)
  t = f32[{shape}] transpose(p), dimensions={{{order}}}
  init = f32[] constant({init})
  w = f32[{out_shape}] reduce-window(t, init), window={{{window}}}, to_apply=combine
  ROOT n = f32[{out_shape}] negate(w)
}}
"""


@pytest.mark.parametrize("dims, window, out, combiner", CASES)
def test_in_place_reduce_window_matches_the_evaluator(monkeypatch: pytest.MonkeyPatch,
                                                      dims: tuple[int, ...], window: str,
                                                      out: tuple[int, ...],
                                                      combiner: str) -> None:
    # Low enough that the window would be split across threads were it not in place.
    monkeypatch.setattr(cpu_reduction, "PARALLEL_MIN_OUTPUTS", 2)
    text = _module(dims, window, out, combiner)
    artifact = compile_artifact(parse(text), CpuOptions(), optimize=False)
    assignment = artifact.extra["buffer_assignment"]
    assert assignment.offset_of("w") == assignment.offset_of("t") is not None
    assert "tfcompile.parallel_for" not in artifact.llvm_ir
    exe = Executable(artifact)
    x = RNG.standard_normal(tuple(reversed(dims))).astype(np.float32)
    (want,) = evaluate(parse(text), x)
    for threads in (1, 2):
        exe.threads = threads
        np.testing.assert_allclose(exe(x), want, rtol=1e-6, atol=1e-6)
