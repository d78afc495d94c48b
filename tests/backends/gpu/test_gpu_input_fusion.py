"""Input fusions (a reduce of fused elementwise producers) become the reduce's kernels alone.

The plan checks need no GPU; the numeric ones (marked `gpu`) cover every reduce strategy
of reduction.py: rows, rows cut into segments, per-output walks and chunked walks.
"""

from __future__ import annotations

import numpy as np
import pytest

from backends.gpu import compile_to_program
from hlo.parser import parse
from tests.backends.gpu.gpu_checks import Compile, run

_FUSION = """HloModule input_fusion

add {{
  a = f32[] parameter(0)
  b = f32[] parameter(1)
  ROOT s = f32[] add(a, b)
}}

fused {{
  x = f32[{rows},{cols}] parameter(0)
  v = f32[{cols}] parameter(1)
  vb = f32[{rows},{cols}] broadcast(v), dimensions={{1}}
  xv = f32[{rows},{cols}] multiply(x, vb)
  e = f32[{rows},{cols}] exponential(xv)
  zero = f32[] constant(0)
  ROOT r = f32[{out}] reduce(e, zero), dimensions={{{dims}}}, to_apply=add
}}

ENTRY main {{
  x = f32[{rows},{cols}] parameter(0)
  v = f32[{cols}] parameter(1)
  ROOT f = f32[{out}] fusion(x, v), kind=kInput, calls=fused
}}
"""


def _text(rows: int, cols: int, dim: int) -> str:
    out = cols if dim == 0 else rows
    return _FUSION.format(rows=rows, cols=cols, out=out, dims=dim)


@pytest.mark.parametrize("rows,cols,dim,kernels", [
    (8, 64, 1, 1),       # rows
    (2, 70000, 1, 2),    # rows in segments, then a combining kernel
    (64, 8, 0, 1),       # per-output walk (column reduction)
    (5000, 4, 0, 2),     # chunked walk, then a combining kernel
])
def test_input_fusion_is_only_the_reduce_kernels(rows: int, cols: int, dim: int,
                                                 kernels: int) -> None:
    program = compile_to_program(parse(_text(rows, cols, dim)), arch="sm_90")
    names = [launch.kernel for launch in program.launches()]
    assert len(names) == kernels, names
    assert not any("exponential" in n or "multiply" in n for n in names)


@pytest.mark.gpu
@pytest.mark.parametrize("rows,cols,dim", [(8, 64, 1), (2, 70000, 1), (64, 8, 0), (5000, 4, 0),
                                           (3, 5, 1), (3, 5, 0)])
def test_input_fusion_matches_the_evaluator(gpu_compile: Compile, rows: int, cols: int,
                                            dim: int) -> None:
    rng = np.random.default_rng(rows + cols)
    x = rng.uniform(-1, 1, (rows, cols)).astype(np.float32)
    v = rng.uniform(-1, 1, (cols,)).astype(np.float32)
    run(gpu_compile, _text(rows, cols, dim), [x, v], scale=10.0)
