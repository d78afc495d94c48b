"""Per-element kernels read and write with 16-byte vector accesses (no GPU needed), and give
the evaluator's results on the GPU for every mix of vector lanes, re-indexed operands and
scalar tails (those tests are marked `gpu`)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from backends.gpu import compile_to_program
from hlo.parser import parse
from tests.backends.gpu.gpu_checks import Compile, run

# The bench's chain: tanh pulls in libdevice code that once stopped LLVM's vectoriser.
_CHAIN = """HloModule chain

fused {{
  x = f32[{n}] parameter(0)
  c = f32[] constant(1.5)
  cb = f32[{n}] broadcast(c), dimensions={{}}
  ax = f32[{n}] multiply(cb, x)
  t = f32[{n}] tanh(ax)
  xx = f32[{n}] multiply(x, x)
  e = f32[{n}] exponential(xx)
  ROOT y = f32[{n}] divide(t, e)
}}

ENTRY main {{
  x = f32[{n}] parameter(0)
  ROOT f = f32[{n}] fusion(x), kind=kLoop, calls=fused
}}
"""


def _ptx(text: str) -> str:
    return compile_to_program(parse(text), arch="sm_90").ptx.ptx


def test_fused_chain_uses_vector_loads_and_stores() -> None:
    ptx = _ptx(_CHAIN.format(n=4096))
    assert re.search(r"ld\.global\.nc\.v4\.(b32|f32)", ptx), "input not read with ld.v4"
    assert re.search(r"st\.global\.v4\.(b32|f32)", ptx), "output not written with st.v4"
    assert not re.search(r"ld\.global\.nc\.(b32|f32)\s", ptx), "a scalar load is left"


def test_tail_elements_use_a_scalar_loop() -> None:
    ptx = _ptx(_CHAIN.format(n=4099))
    assert re.search(r"ld\.global\.nc\.v4\.(b32|f32)", ptx)
    assert re.search(r"st\.global\.(b32|f32)\s", ptx), "no scalar store for the tail"


def test_reindexed_operand_is_read_by_scalar_loads() -> None:
    text = """HloModule tr
fused {
  x = f32[8,8] parameter(0)
  r = f32[8,8] transpose(x), dimensions={1,0}
  ROOT y = f32[8,8] add(x, r)
}
ENTRY main {
  x = f32[8,8] parameter(0)
  ROOT f = f32[8,8] fusion(x), kind=kLoop, calls=fused
}
"""
    ptx = _ptx(text)
    # x at the thread's own elements as one vector; transpose(x) element by element.
    assert re.search(r"ld\.global\.nc\.v4\.(b32|f32)", ptx)
    assert re.search(r"ld\.global\.nc\.(b32|f32)\s", ptx)
    assert re.search(r"st\.global\.v4\.(b32|f32)", ptx)


@pytest.mark.parametrize("t", ["c64", "c128"])
def test_complex_elements_are_one_per_thread(t: str) -> None:
    ptx = _ptx(f"""HloModule cplx
ENTRY main {{
  x = {t}[37] parameter(0)
  ROOT y = {t}[37] add(x, x)
}}
""")
    assert ".v4." not in ptx


_MIXED = """HloModule mixed

fused {{
  x = f32[{rows},{cols}] parameter(0)
  v = f32[{cols}] parameter(1)
  p = pred[{rows},{cols}] parameter(2)
  vb = f32[{rows},{cols}] broadcast(v), dimensions={{1}}
  r = f32[{rows},{cols}] reverse(x), dimensions={{0,1}}
  s = f32[{rows},{cols}] add(x, vb)
  ROOT y = f32[{rows},{cols}] select(p, s, r)
}}

ENTRY main {{
  x = f32[{rows},{cols}] parameter(0)
  v = f32[{cols}] parameter(1)
  p = pred[{rows},{cols}] parameter(2)
  ROOT f = f32[{rows},{cols}] fusion(x, v, p), kind=kLoop, calls=fused
}}
"""


@pytest.mark.gpu
@pytest.mark.parametrize("rows,cols", [(1, 1), (1, 3), (1, 4), (1, 5), (3, 3), (7, 9), (64, 33)])
def test_vector_lanes_and_tails_match_the_evaluator(gpu_compile: Compile, rows: int,
                                                    cols: int) -> None:
    rng = np.random.default_rng(rows * 100 + cols)
    x = rng.uniform(-2, 2, (rows, cols)).astype(np.float32)
    v = rng.uniform(-2, 2, (cols,)).astype(np.float32)
    p = rng.integers(0, 2, (rows, cols)).astype(bool)
    run(gpu_compile, _MIXED.format(rows=rows, cols=cols), [x, v, p])


@pytest.mark.gpu
@pytest.mark.parametrize("t", ["pred", "s8", "f16", "f64", "c64"])
def test_vector_lanes_of_every_width(gpu_compile: Compile, t: str) -> None:
    text = f"""HloModule widths
ENTRY main {{
  x = {t}[37] parameter(0)
  y = {t}[37] parameter(1)
  ROOT z = {t}[37] {'or' if t == 'pred' else 'add'}(x, y)
}}
"""
    rng = np.random.default_rng(7)
    if t == "pred":
        args = [rng.integers(0, 2, 37).astype(bool) for _ in range(2)]
    elif t == "c64":
        args = [(rng.uniform(-1, 1, 37) + 1j * rng.uniform(-1, 1, 37)).astype(np.complex64)
                for _ in range(2)]
    else:
        dt = {"s8": np.int8, "f16": np.float16, "f64": np.float64}[t]
        args = [rng.integers(-50, 50, 37).astype(dt) for _ in range(2)]
    run(gpu_compile, text, args)
