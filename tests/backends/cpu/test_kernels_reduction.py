"""CPU reduction kernels (backends/cpu/reduction.py) against the reference evaluator.

reduce: reduced dims innermost (register accumulators), outermost (accumulation in the
output), before and after a kept dim (register blocks combined into the output), all or
none of the dims, a non-identity init, variadic argmax, zero-size inputs, random dims, and
the split accumulation of long reductions (which must stay within f32 rounding of the exact
sum), and results bit-identical for 1, 2 and 3 threads (rows of leading kept dims split,
plain and fused inputs). reduce-window: padding, strides, base and window dilation,
variadic windows, non-identity inits, and results bit-identical for 1, 2 and 3 threads.
select-and-scatter: overlapping windows, padding, and the first-selected-wins rule for ties.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backends.cpu.loops as cpu_loops
import backends.cpu.reduction as cpu_reduction
from backends.cpu.compiler import CpuOptions
from compiler.api import compile_artifact
from hlo.evaluator import evaluate
from hlo.opcodes import Opcode
from hlo.parser import parse
from runtime.loader import Executable
from tests.backends.cpu.test_kernels_common import (
    assert_close,
    check,
    compile_and_run,
    module_text,
)
from tests.backends.hlo_text import ARGMAX, scalar_computation

RNG = np.random.default_rng(5)
ADD_F32 = scalar_computation("add", "f32", "add")


def reduce_module(dtype: str, dims: tuple[int, ...], reduced: tuple[int, ...], op: str,
                  init: str) -> str:
    kept = [d for k, d in enumerate(dims) if k not in reduced]
    shape = ",".join(map(str, dims))
    out = ",".join(map(str, kept))
    return module_text(
        [f"{dtype}[{shape}]"],
        [f"init = {dtype}[] constant({init})",
         f"r = {dtype}[{out}] reduce(p0, init), dimensions={{{','.join(map(str, reduced))}}}, "
         f"to_apply=comb"],
        scalar_computation("comb", dtype, op),
    )


@pytest.mark.parametrize("dims,reduced", [
    ((4, 10), (1,)), ((4, 10), (0,)), ((3, 4, 5), (0, 2)), ((3, 4, 5), (1,)),
    ((2, 3, 4, 5), (1, 2, 3)), ((7, 300), (1,)), ((300, 7), (0,)), ((6,), ()),
    ((2, 3, 2, 3, 2, 3), (0, 2, 4)), ((4, 3, 40), (0, 2)), ((2, 3, 4, 5), (1, 3)),
])
def test_reduce_sum_layouts(dims: tuple[int, ...], reduced: tuple[int, ...]) -> None:
    x = RNG.standard_normal(dims).astype(np.float32)
    check(reduce_module("f32", dims, reduced, "add", "0.25"), x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ["add", "multiply", "maximum", "minimum", "and", "or", "xor"])
def test_reduce_integer_combiners(op: str) -> None:
    x = RNG.integers(-9, 9, (5, 100)).astype(np.int32)
    check(reduce_module("s32", (5, 100), (1,), op, "3"), x)


def test_reduce_nonidentity_init_is_applied_once() -> None:
    # 40 elements take the split path; the init must still count exactly once.
    x = np.ones((3, 40), np.float32)
    (got,) = check(reduce_module("f32", (3, 40), (1,), "add", "100"), x)
    np.testing.assert_array_equal(got, np.full(3, 140.0, np.float32))


def test_long_f32_sum_is_accurate() -> None:
    x = RNG.uniform(0.0, 1.0, 1 << 20).astype(np.float32)
    (got,) = compile_and_run(reduce_module("f32", (1 << 20,), (0,), "add", "0"), x)
    exact = x.astype(np.float64).sum()
    assert abs(float(got) - exact) <= 1e-5 * exact


def test_long_s32_sum_is_exact() -> None:
    x = RNG.integers(-1000, 1000, 100003).astype(np.int32)
    check(reduce_module("s32", (100003,), (0,), "add", "0"), x)


def test_reduce_max_propagates_nan() -> None:
    x = RNG.standard_normal((2, 64)).astype(np.float32)
    x[1, 37] = np.nan
    (got,) = check(reduce_module("f32", (2, 64), (1,), "maximum", "-inf"), x)
    assert np.isnan(got[1]) and not np.isnan(got[0])


def test_reduce_f16_max() -> None:
    x = RNG.standard_normal((4, 10)).astype(np.float16)
    check(reduce_module("f16", (4, 10), (1,), "maximum", "-inf"), x)


@pytest.mark.parametrize("dims,reduced", [((0, 3), (0,)), ((3, 0), (1,)), ((0, 3), (1,))])
def test_reduce_zero_size(dims: tuple[int, ...], reduced: tuple[int, ...]) -> None:
    x = np.zeros(dims, np.float32)
    check(reduce_module("f32", dims, reduced, "add", "1.5"), x)


@pytest.mark.parametrize("axis", [0, 1])
def test_variadic_argmax(axis: int) -> None:
    x = RNG.integers(0, 4, (6, 37)).astype(np.float32)
    iota_dim = axis
    kept = 37 if axis == 0 else 6
    text = module_text(
        ["f32[6,37]"],
        [f"iota = s32[6,37] iota(), iota_dimension={iota_dim}",
         "minus_inf = f32[] constant(-inf)",
         "zero = s32[] constant(0)",
         f"r = (f32[{kept}], s32[{kept}]) reduce(p0, iota, minus_inf, zero), "
         f"dimensions={{{axis}}}, to_apply=argmax"],
        ARGMAX,
    )
    values, indices = check(text, x)
    np.testing.assert_array_equal(indices, x.argmax(axis=axis))


# --- reduce across threads ------------------------------------------------------------------

# (dims, reduced): the leading kept dims are the rows split across threads.
THREADED_REDUCES = [
    ((4, 3, 5, 6), (2,)),       # kept innermost dim: accumulated in the output, 12 rows
    ((4, 3, 5, 6), (1, 3)),     # register blocks combined into the output, 4 rows
    ((4, 3, 5, 40), (2, 3)),    # reduced innermost, split partial sums, 12 rows
    ((5, 4, 6), (0,)),          # no leading kept dim: stays serial
]


def run_threads(text: str, *args: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """`text` compiled now (past the compile caches: thresholds are patched), run with 1,
    2 and 3 threads; asserts the results are bit-identical and returns them, then the
    artifact."""
    exe = Executable(compile_artifact(parse(text), CpuOptions()))
    results = []
    for threads in (1, 2, 3):
        exe.threads = threads
        got = exe(*args)
        results.append(got if isinstance(got, tuple) else (got,))
    for got in results[1:]:
        assert all(g.tobytes() == f.tobytes() for g, f in zip(got, results[0], strict=True))
    results.append(exe.artifact)
    return results


@pytest.mark.parametrize("dims,reduced", THREADED_REDUCES,
                         ids=["into_output", "blocks", "innermost", "serial"])
def test_reduce_identical_for_any_thread_count(monkeypatch: pytest.MonkeyPatch,
                                               dims: tuple[int, ...],
                                               reduced: tuple[int, ...]) -> None:
    monkeypatch.setattr(cpu_loops, "PARALLEL_MIN_ELEMENTS", 2)
    text = reduce_module("f32", dims, reduced, "add", "0.25")
    x = RNG.standard_normal(dims).astype(np.float32)
    *results, artifact = run_threads(text, x)
    assert ("tfcompile.parallel_for" in artifact.llvm_ir) == (0 not in reduced)
    assert_close(results[0][0], evaluate(parse(text), x)[0], rtol=1e-5, atol=1e-5)


def test_fused_reduce_identical_for_any_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """relu(x + bias) summed over space, as an input fusion: each chunk re-emits the fused
    producer from the fusion's operands."""
    monkeypatch.setattr(cpu_loops, "PARALLEL_MIN_ELEMENTS", 2)
    text = module_text(["f32[4,5,6,8]", "f32[8]"], [
        "bb = f32[4,5,6,8] broadcast(p1), dimensions={3}",
        "a = f32[4,5,6,8] add(p0, bb)",
        "z = f32[] constant(0)",
        "zb = f32[4,5,6,8] broadcast(z), dimensions={}",
        "h = f32[4,5,6,8] maximum(a, zb)",
        "r = f32[4,8] reduce(h, z), dimensions={1,2}, to_apply=comb",
    ], ADD_F32.replace("add {", "comb {"))
    args = [RNG.standard_normal(s).astype(np.float32) for s in ((4, 5, 6, 8), (8,))]
    *results, artifact = run_threads(text, *args)
    assert ".reduce.chunk" in artifact.llvm_ir
    assert [i.attrs["kind"] for i in artifact.extra["optimized_module"].entry_computation
            .instructions if i.opcode is Opcode.FUSION] == ["kInput"]
    assert_close(results[0][0], evaluate(parse(text), *args)[0], rtol=1e-5, atol=1e-5)


def test_variadic_argmax_identical_for_any_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """A variadic reduce whose fused iota is re-emitted in every chunk."""
    monkeypatch.setattr(cpu_loops, "PARALLEL_MIN_ELEMENTS", 2)
    x = RNG.integers(0, 4, (6, 37)).astype(np.float32)
    text = module_text(
        ["f32[6,37]"],
        ["iota = s32[6,37] iota(), iota_dimension=1",
         "minus_inf = f32[] constant(-inf)",
         "zero = s32[] constant(0)",
         "r = (f32[6], s32[6]) reduce(p0, iota, minus_inf, zero), dimensions={1}, "
         "to_apply=argmax"],
        ARGMAX,
    )
    *results, artifact = run_threads(text, x)
    assert ".reduce.chunk" in artifact.llvm_ir
    np.testing.assert_array_equal(results[0][1], x.argmax(axis=1))
    np.testing.assert_array_equal(results[0][0], x.max(axis=1))


def window_module(dtype: str, in_dims: tuple[int, ...], out_dims: tuple[int, ...],
                  window: str, op: str, init: str) -> str:
    shape = ",".join(map(str, in_dims))
    out = ",".join(map(str, out_dims))
    return module_text(
        [f"{dtype}[{shape}]"],
        [f"init = {dtype}[] constant({init})",
         f"r = {dtype}[{out}] reduce-window(p0, init), window={{{window}}}, to_apply=comb"],
        scalar_computation("comb", dtype, op),
    )


@pytest.mark.parametrize("in_dims,out_dims,window", [
    ((3, 6), (3, 6), "size=1x6 pad=0_0x5_0"),
    ((2, 8, 8, 3), (2, 4, 4, 3), "size=1x2x2x1 stride=1x2x2x1"),
    ((2, 7, 7, 3), (2, 4, 4, 3), "size=1x3x3x1 stride=1x2x2x1 pad=0_0x1_1x1_1x0_0"),
    ((4, 6), (8, 3), "size=2x3 stride=1x2 pad=1_1x1_2 lhs_dilate=2x1 rhs_dilate=1x2"),
    ((5,), (2,), "size=3 stride=2 pad=-1_2"),
])
@pytest.mark.parametrize("op,init", [("add", "0.5"), ("maximum", "-inf")])
def test_reduce_window(in_dims: tuple[int, ...], out_dims: tuple[int, ...], window: str,
                       op: str, init: str) -> None:
    x = RNG.standard_normal(in_dims).astype(np.float32)
    check(window_module("f32", in_dims, out_dims, window, op, init), x, rtol=1e-5, atol=1e-5)


def test_variadic_reduce_window() -> None:
    x = RNG.integers(0, 5, (3, 8)).astype(np.float32)
    check(VARIADIC_WINDOW, x)


VARIADIC_WINDOW = module_text(
    ["f32[3,8]"],
    ["iota = s32[3,8] iota(), iota_dimension=1",
     "minus_inf = f32[] constant(-inf)",
     "zero = s32[] constant(0)",
     "r = (f32[3,4], s32[3,4]) reduce-window(p0, iota, minus_inf, zero), "
     "window={size=1x3 stride=1x2 pad=0_0x1_0}, to_apply=argmax"],
    ARGMAX,
)


@pytest.mark.parametrize("text,shape", [
    (window_module("f32", (3, 9, 8, 5), (3, 5, 4, 5),
                   "size=1x3x2x1 stride=1x2x2x1 pad=0_0x1_1x0_0x0_0", "maximum", "-inf"),
     (3, 9, 8, 5)),
    (window_module("f32", (7, 6), (7, 3), "size=1x3 stride=1x2 pad=0_0x1_0", "add", "0.5"),
     (7, 6)),
    (VARIADIC_WINDOW, (3, 8)),
], ids=["pool", "rows", "variadic"])
def test_reduce_window_identical_for_any_thread_count(monkeypatch: pytest.MonkeyPatch,
                                                      text: str,
                                                      shape: tuple[int, ...]) -> None:
    """Split even these small windows across threads: bit-identical for 1, 2 and 3."""
    monkeypatch.setattr(cpu_reduction, "PARALLEL_MIN_OUTPUTS", 2)
    x = RNG.integers(-4, 5, shape).astype(np.float32)
    # Compiled now, past the compile caches: the threshold is patched.
    exe = Executable(compile_artifact(parse(text), CpuOptions()))
    assert "tfcompile.parallel_for" in exe.artifact.llvm_ir
    results = []
    for threads in (1, 2, 3):
        exe.threads = threads
        got = exe(x)
        results.append(got if isinstance(got, tuple) else (got,))
    for got in results[1:]:
        assert all(g.tobytes() == f.tobytes() for g, f in zip(got, results[0], strict=True))
    for g, w in zip(results[0], evaluate(parse(text), x), strict=True):
        assert_close(g, w)


GE_F32 = """ge {
  a = f32[] parameter(0)
  b = f32[] parameter(1)
  ROOT c = pred[] compare(a, b), direction=GE
}

"""


@pytest.mark.parametrize("in_dims,src_dims,window", [
    ((4, 6), (2, 3), "size=2x2 stride=2x2"),
    ((5, 7), (3, 4), "size=2x3 stride=2x2 pad=0_1x1_1"),
    ((6, 6), (4, 4), "size=3x3 stride=1x1"),
])
def test_select_and_scatter(in_dims: tuple[int, ...], src_dims: tuple[int, ...],
                            window: str) -> None:
    x = RNG.integers(0, 3, in_dims).astype(np.float32)  # many ties: first selected wins
    source = RNG.standard_normal(src_dims).astype(np.float32)
    text = module_text(
        [f"f32[{','.join(map(str, in_dims))}]", f"f32[{','.join(map(str, src_dims))}]"],
        ["zero = f32[] constant(0)",
         f"r = f32[{','.join(map(str, in_dims))}] select-and-scatter(p0, p1, zero), "
         f"window={{{window}}}, select=ge, scatter=add"],
        GE_F32 + ADD_F32,
    )
    check(text, x, source, rtol=1e-6, atol=1e-6)


def test_select_and_scatter_with_nonzero_init() -> None:
    x = RNG.standard_normal((4, 4)).astype(np.float32)
    source = RNG.standard_normal((2, 2)).astype(np.float32)
    text = module_text(
        ["f32[4,4]", "f32[2,2]"],
        ["init = f32[] constant(10)",
         "r = f32[4,4] select-and-scatter(p0, p1, init), window={size=2x2 stride=2x2}, "
         "select=ge, scatter=add"],
        GE_F32 + ADD_F32,
    )
    check(text, x, source)


@st.composite
def reduce_problems(draw: st.DrawFn) -> tuple[str, np.ndarray]:
    """A reduce (sum or max) over a random subset of the dims of a random f32 array."""
    dims = tuple(draw(st.lists(st.integers(0, 5), min_size=1, max_size=4)))
    reduced = tuple(d for d in range(len(dims)) if draw(st.booleans()))
    op = draw(st.sampled_from(["add", "maximum"]))
    init = "0" if op == "add" else "-inf"
    x = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal(dims)
    return reduce_module("f32", dims, reduced, op, init), x.astype(np.float32)


@settings(max_examples=25)
@given(reduce_problems())
def test_random_reductions(problem: tuple[str, np.ndarray]) -> None:
    text, x = problem
    check(text, x, rtol=1e-5, atol=1e-5)
