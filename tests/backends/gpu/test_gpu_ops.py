"""Numeric tests of the GPU backend against the reference evaluator, per op and per kernel shape.

Marked `gpu`: skipped without a usable CUDA device (every elementwise op on every element
type is in test_gpu_elementwise.py). Two groups:
* every op record of tests/op_records.py (one small module per opcode);
* the GPU kernels' own cases: row reductions of each block size, split column reductions,
  GEMM tiles with ragged edges, atomics with duplicate indices, bitonic sorts of each size,
  host-driven control flow that permutes its state, and argument errors.
Transcendental functions come from libdevice, so float tolerances allow a few ulp more than
exact arithmetic would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import hlo
from hlo.errors import ArgumentError
from hlo.parser import parse
from tests.backends.gpu.gpu_checks import Compile, check, numpy_dtype, run
from tests.backends.hlo_text import ARGMAX, scalar_computation
from tests.op_records import NOT_EVALUATED, RECORDS

pytestmark = pytest.mark.gpu

# --- one record per opcode -----------------------------------------------------------------------

_RECORDS = [r for r in RECORDS if r.opcode not in NOT_EVALUATED]


@pytest.mark.parametrize("record", _RECORDS, ids=[r.name for r in _RECORDS])
def test_op_record(record: Any, gpu_compile: Compile) -> None:
    args = record.args(np.random.default_rng(0))
    run(gpu_compile, record.text, args, scale=4.0)


# --- reductions ----------------------------------------------------------------------------------

_ADD = scalar_computation("add", "f32", "add")


def _reduce_text(shape: Sequence[int], dims: Sequence[int], init: str = "0") -> str:
    out = [d for k, d in enumerate(shape) if k not in dims]
    src = ",".join(map(str, shape))
    dst = ",".join(map(str, out))
    reduced = ",".join(map(str, dims))
    return (f"HloModule r\n{_ADD}\nENTRY e {{\n  x = f32[{src}] parameter(0)\n"
            f"  c = f32[] constant({init})\n"
            f"  ROOT r = f32[{dst}] reduce(x, c), dimensions={{{reduced}}}, to_apply=add\n}}\n")


@pytest.mark.parametrize("shape,dims", [
    ((3, 7), (1,)),            # short rows: one thread per output
    ((100, 33), (1,)),         # warp per row, ragged last lanes
    ((5, 1000), (1,)),         # warp per row, several strides
    ((3, 5000), (1,)),         # 256 threads per row
    ((2, 70000), (1,)),        # few long rows: segments, then a combine kernel
    ((260, 70000), (1,)),      # 1024 threads per row
    ((300, 400), (0, 1)),      # to a scalar
    ((10000, 3), (0,)),        # column reduction, split into chunks
    ((40, 50, 6), (1,)),       # middle dimension
    ((4, 3000, 5), (0, 1)),    # split, outer dims reduced
    ((0, 5), (0,)),            # nothing to reduce
])
def test_reduce_shapes(shape: tuple[int, ...], dims: tuple[int, ...],
                       gpu_compile: Compile) -> None:
    x = np.random.default_rng(2).uniform(-1, 1, shape).astype(np.float32)
    text = _reduce_text(shape, dims, init="0.5")
    got = gpu_compile(text)(x)
    want = np.sum(x.astype(np.float64), axis=dims) + 0.5
    # Tree and sequential f32 sums both err by about sqrt(count) roundings of the partials.
    count = max(1, math.prod(shape[d] for d in dims))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6 * math.sqrt(count) * 10)
    assert got.dtype == np.float32


def test_variadic_argmax_rows(gpu_compile: Compile) -> None:
    text = "HloModule argmax\n" + ARGMAX + """ENTRY e {
  x = f32[64,300] parameter(0)
  n = s32[64,300] iota(), iota_dimension=1
  lo = f32[] constant(-inf)
  z = s32[] constant(0)
  ROOT r = (f32[64], s32[64]) reduce(x, n, lo, z), dimensions={1}, to_apply=argmax
}
"""
    x = np.random.default_rng(3).integers(0, 20, (64, 300)).astype(np.float32)
    run(gpu_compile, text, [x])


def test_integer_and_f16_reductions(gpu_compile: Compile) -> None:
    text = """HloModule red
addi {
  a = s32[] parameter(0)
  b = s32[] parameter(1)
  ROOT r = s32[] add(a, b)
}
maxh {
  a = f16[] parameter(0)
  b = f16[] parameter(1)
  ROOT r = f16[] maximum(a, b)
}
ENTRY e {
  x = s32[17,2000] parameter(0)
  h = f16[9,100] parameter(1)
  z = s32[] constant(7)
  m = f16[] constant(-inf)
  a = s32[17] reduce(x, z), dimensions={1}, to_apply=addi
  b = f16[100] reduce(h, m), dimensions={0}, to_apply=maxh
  ROOT t = (s32[17], f16[100]) tuple(a, b)
}
"""
    rng = np.random.default_rng(4)
    run(gpu_compile, text, [rng.integers(-1000, 1000, (17, 2000)).astype(np.int32),
                             rng.uniform(-5, 5, (9, 100)).astype(np.float16)])


# --- dot -----------------------------------------------------------------------------------------


def _dot_text(t: str, lhs: Sequence[int], rhs: Sequence[int], out: Sequence[int],
              dnums: str, out_t: str | None = None) -> str:
    def s(dims: Sequence[int]) -> str:
        return ",".join(map(str, dims))

    return (f"HloModule d\nENTRY e {{\n  a = {t}[{s(lhs)}] parameter(0)\n"
            f"  b = {t}[{s(rhs)}] parameter(1)\n"
            f"  ROOT d = {out_t or t}[{s(out)}] dot(a, b), {dnums}\n}}\n")


_MATMUL = "lhs_contracting_dims={1}, rhs_contracting_dims={0}"


@pytest.mark.parametrize("t,lhs,rhs,out,dnums", [
    ("f32", (64, 64), (64, 64), (64, 64), _MATMUL),
    ("f32", (100, 37), (37, 130), (100, 130), _MATMUL),
    ("f32", (3, 70, 20), (3, 20, 65), (3, 70, 65),
     "lhs_batch_dims={0}, lhs_contracting_dims={2}, rhs_batch_dims={0}, "
     "rhs_contracting_dims={1}"),
    ("f32", (40, 90), (40, 33), (90, 33), "lhs_contracting_dims={0}, rhs_contracting_dims={0}"),
    ("f32", (50, 30), (20, 30), (50, 20), "lhs_contracting_dims={1}, rhs_contracting_dims={1}"),
    ("f64", (33, 45), (45, 17), (33, 17), _MATMUL),
    ("f16", (48, 64), (64, 40), (48, 40), _MATMUL),
    ("bf16", (32, 16), (16, 32), (32, 32), _MATMUL),
    ("s32", (20, 30), (30, 25), (20, 25), _MATMUL),
    ("f32", (300, 200), (200,), (300,), "lhs_contracting_dims={1}, rhs_contracting_dims={0}"),
    ("f32", (4, 0), (0, 5), (4, 5), _MATMUL),
    ("c64", (6, 5), (5, 4), (6, 4), _MATMUL),
])
def test_dot(t: str, lhs: tuple[int, ...], rhs: tuple[int, ...], out: tuple[int, ...],
             dnums: str, gpu_compile: Compile) -> None:
    rng = np.random.default_rng(5)
    dt = numpy_dtype(t)
    if t == "s32":
        args = [rng.integers(-50, 50, s).astype(dt) for s in (lhs, rhs)]
    elif t == "c64":
        args = [(rng.uniform(-1, 1, s) + 1j * rng.uniform(-1, 1, s)).astype(dt)
                for s in (lhs, rhs)]
    else:
        args = [rng.uniform(-1, 1, s).astype(dt) for s in (lhs, rhs)]
    run(gpu_compile, _dot_text(t, lhs, rhs, out, dnums), args, scale=5.0)


# --- convolution ---------------------------------------------------------------------------------


@pytest.mark.parametrize("lhs,rhs,out,attrs", [
    ((2, 9, 9, 6), (3, 3, 6, 8), (2, 9, 9, 8),
     "window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f"),
    ((1, 3, 11, 10), (5, 3, 3, 2), (1, 5, 5, 4),
     "window={size=3x2 stride=2x2 rhs_dilate=1x2}, dim_labels=bf01_oi01->bf01"),
    ((2, 7, 7, 4), (3, 3, 1, 8), (2, 7, 7, 8),
     "window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f, feature_group_count=4"),
    ((1, 4, 4, 3), (3, 3, 3, 2), (1, 9, 9, 2),
     "window={size=3x3 pad=2_2x2_2 lhs_dilate=2x2}, dim_labels=b01f_01io->b01f"),
    ((4, 5, 5, 2), (3, 3, 2, 6), (2, 3, 3, 6),
     "window={size=3x3}, dim_labels=b01f_01io->b01f, batch_group_count=2"),
])
def test_convolution(lhs: tuple[int, ...], rhs: tuple[int, ...], out: tuple[int, ...],
                     attrs: str, gpu_compile: Compile) -> None:
    def s(dims: Sequence[int]) -> str:
        return ",".join(map(str, dims))

    text = (f"HloModule c\nENTRY e {{\n  x = f32[{s(lhs)}] parameter(0)\n"
            f"  w = f32[{s(rhs)}] parameter(1)\n"
            f"  ROOT c = f32[{s(out)}] convolution(x, w), {attrs}\n}}\n")
    rng = np.random.default_rng(6)
    args = [rng.uniform(-1, 1, lhs).astype(np.float32), rng.uniform(-1, 1, rhs).astype(np.float32)]
    run(gpu_compile, text, args, scale=5.0)


# --- scatter (atomics), gather -------------------------------------------------------------------

_SCATTER_1D = ("update_window_dims={}, inserted_window_dims={0}, "
               "scatter_dims_to_operand_dims={0}, index_vector_dim=1")


def _combiner(name: str, t: str, body: str) -> str:
    if body == "b":
        return f"{name} {{\n  a = {t}[] parameter(0)\n  ROOT b = {t}[] parameter(1)\n}}\n"
    return (f"{name} {{\n  a = {t}[] parameter(0)\n  b = {t}[] parameter(1)\n"
            f"  ROOT r = {t}[] {body}\n}}\n")


@pytest.mark.parametrize("t,body", [
    ("f32", "add(a, b)"),
    ("f64", "add(a, b)"),
    ("s32", "add(a, b)"),
    ("s32", "maximum(a, b)"),
    ("u64", "minimum(a, b)"),
    ("f16", "add(a, b)"),         # 16-bit compare-and-swap
    ("f32", "multiply(a, b)"),    # compare-and-swap around the combiner
    ("s8", "add(a, b)"),
    ("f32", "b"),                 # plain store (no duplicates below for this one)
])
def test_scatter_with_duplicates(t: str, body: str, gpu_compile: Compile) -> None:
    rng = np.random.default_rng(7)
    dt = numpy_dtype(t)
    n, updates = 64, 5000
    if body == "b":
        index = rng.permutation(n)[:40].reshape(-1, 1).astype(np.int32)
        updates = 40
    else:
        index = rng.integers(-3, n + 3, (updates, 1)).astype(np.int32)  # some out of bounds
    if dt.kind == "f":
        x = rng.uniform(-1, 1, n).astype(dt)
        u = (rng.uniform(0.999, 1.001, updates) if "multiply" in body
             else rng.uniform(-1, 1, updates)).astype(dt)
    else:
        x = rng.integers(0, 50, n).astype(dt)
        u = rng.integers(0, 3, updates).astype(dt)
    text = (f"HloModule s\n{_combiner('comb', t, body)}\nENTRY e {{\n"
            f"  x = {t}[{n}] parameter(0)\n  i = s32[{updates},1] parameter(1)\n"
            f"  u = {t}[{updates}] parameter(2)\n"
            f"  ROOT s = {t}[{n}] scatter(x, i, u), {_SCATTER_1D}, to_apply=comb\n}}\n")
    # Atomic float sums add in another order than the evaluator does.
    run(gpu_compile, text, [x, index, u], scale=200.0 if t == "f16" else 20.0)


def test_scatter_windows_and_gather(gpu_compile: Compile) -> None:
    text = """HloModule sg
add {
  a = f32[] parameter(0)
  b = f32[] parameter(1)
  ROOT r = f32[] add(a, b)
}
ENTRY e {
  x = f32[50,8] parameter(0)
  i = s32[30] parameter(1)
  u = f32[30,8] parameter(2)
  s = f32[50,8] scatter(x, i, u), update_window_dims={1}, inserted_window_dims={0},
      scatter_dims_to_operand_dims={0}, index_vector_dim=1, to_apply=add
  g = f32[30,8] gather(s, i), offset_dims={1}, collapsed_slice_dims={0},
      start_index_map={0}, index_vector_dim=1, slice_sizes={1,8}
  ROOT t = (f32[50,8], f32[30,8]) tuple(s, g)
}
"""
    rng = np.random.default_rng(8)
    args = [rng.uniform(-1, 1, (50, 8)).astype(np.float32),
            rng.integers(-2, 52, 30).astype(np.int32),
            rng.uniform(-1, 1, (30, 8)).astype(np.float32)]
    run(gpu_compile, text, args, scale=10.0)


# --- sort ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("rows,n", [(1, 1), (3, 7), (50, 64), (4, 1000), (2, 2048), (2, 2500)])
def test_sort_is_stable_by_key(rows: int, n: int, gpu_compile: Compile) -> None:
    text = f"""HloModule s
lt {{
  a = f32[] parameter(0)
  b = f32[] parameter(1)
  c = s32[] parameter(2)
  d = s32[] parameter(3)
  ROOT r = pred[] compare(a, b), direction=LT
}}
ENTRY e {{
  k = f32[{rows},{n}] parameter(0)
  v = s32[{rows},{n}] iota(), iota_dimension=1
  ROOT s = (f32[{rows},{n}], s32[{rows},{n}]) sort(k, v), dimensions={{1}}, is_stable=true,
      to_apply=lt
}}
"""
    keys = np.random.default_rng(9).integers(0, 10, (rows, n)).astype(np.float32)
    run(gpu_compile, text, [keys])


def test_sort_along_dim0_and_topk(gpu_compile: Compile) -> None:
    text = """HloModule s
gt {
  a = s32[] parameter(0)
  b = s32[] parameter(1)
  ROOT r = pred[] compare(a, b), direction=GT
}
ENTRY e {
  x = s32[33,5] parameter(0)
  y = f32[6,300] parameter(1)
  s = s32[33,5] sort(x), dimensions={0}, to_apply=gt
  t = (f32[6,10], s32[6,10]) topk(y), k=10, largest=true
  v = f32[6,10] get-tuple-element(t), index=0
  i = s32[6,10] get-tuple-element(t), index=1
  ROOT r = (s32[33,5], f32[6,10], s32[6,10]) tuple(s, v, i)
}
"""
    rng = np.random.default_rng(10)
    run(gpu_compile, text, [rng.integers(-100, 100, (33, 5)).astype(np.int32),
                             rng.uniform(-1, 1, (6, 300)).astype(np.float32)])


# --- windows -------------------------------------------------------------------------------------


def test_reduce_window_and_overlapping_select_and_scatter(gpu_compile: Compile) -> None:
    text = """HloModule w
add {
  a = f32[] parameter(0)
  b = f32[] parameter(1)
  ROOT r = f32[] add(a, b)
}
ge {
  a = f32[] parameter(0)
  b = f32[] parameter(1)
  ROOT r = pred[] compare(a, b), direction=GE
}
ENTRY e {
  x = f32[2,17,17,3] parameter(0)
  s = f32[2,8,8,3] parameter(1)
  z = f32[] constant(0)
  m = f32[] constant(-inf)
  mx = f32[2,8,8,3] reduce-window(x, m), window={size=1x3x3x1 stride=1x2x2x1}, to_apply=ge_max
  sm = f32[2,9,9,3] reduce-window(x, z),
      window={size=1x3x3x1 stride=1x2x2x1 pad=0_0x1_1x1_1x0_0}, to_apply=add
  g = f32[2,17,17,3] select-and-scatter(x, s, z), window={size=1x3x3x1 stride=1x2x2x1},
      select=ge, scatter=add
  ROOT t = (f32[2,8,8,3], f32[2,9,9,3], f32[2,17,17,3]) tuple(mx, sm, g)
}
ge_max {
  a = f32[] parameter(0)
  b = f32[] parameter(1)
  ROOT r = f32[] maximum(a, b)
}
"""
    rng = np.random.default_rng(11)
    run(gpu_compile, text, [rng.uniform(-1, 1, (2, 17, 17, 3)).astype(np.float32),
                             rng.uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)], scale=5.0)


# --- control flow, fusion, errors ----------------------------------------------------------------


def test_while_that_swaps_its_state(gpu_compile: Compile) -> None:
    text = """HloModule w
cond {
  p = (s32[], f32[4], f32[4]) parameter(0)
  i = s32[] get-tuple-element(p), index=0
  n = s32[] constant(5)
  ROOT c = pred[] compare(i, n), direction=LT
}
body {
  p = (s32[], f32[4], f32[4]) parameter(0)
  i = s32[] get-tuple-element(p), index=0
  a = f32[4] get-tuple-element(p), index=1
  b = f32[4] get-tuple-element(p), index=2
  one = s32[] constant(1)
  j = s32[] add(i, one)
  c = f32[4] add(a, b)
  ROOT t = (s32[], f32[4], f32[4]) tuple(j, b, c)
}
ENTRY e {
  x = f32[4] parameter(0)
  y = f32[4] parameter(1)
  z = s32[] constant(0)
  t = (s32[], f32[4], f32[4]) tuple(z, x, y)
  ROOT w = (s32[], f32[4], f32[4]) while(t), condition=cond, body=body
}
"""
    rng = np.random.default_rng(12)
    run(gpu_compile, text, [rng.uniform(-1, 1, 4).astype(np.float32) for _ in "xy"])


def test_conditional_index_out_of_range_runs_last_branch(gpu_compile: Compile) -> None:
    text = """HloModule c
neg {
  p = f32[3] parameter(0)
  ROOT r = f32[3] negate(p)
}
dbl {
  p = f32[3] parameter(0)
  ROOT r = f32[3] add(p, p)
}
ENTRY e {
  i = s32[] parameter(0)
  x = f32[3] parameter(1)
  ROOT c = f32[3] conditional(i, x, x), branch_computations={neg, dbl}
}
"""
    exe = gpu_compile(text)
    x = np.array([1, 2, 3], np.float32)
    for index, want in ((0, -x), (1, 2 * x), (7, 2 * x), (-1, 2 * x)):
        np.testing.assert_array_equal(exe(np.int32(index), x), want)


def test_loop_fusion_is_one_kernel(gpu_compile: Compile) -> None:
    text = """HloModule f
fused {
  a = f32[1000] parameter(0)
  b = f32[1000] parameter(1)
  m = f32[1000] multiply(a, b)
  e = f32[1000] exponential(m)
  ROOT r = f32[1000] add(e, a)
}
ENTRY e {
  x = f32[1000] parameter(0)
  y = f32[1000] parameter(1)
  ROOT f = f32[1000] fusion(x, y), kind=kLoop, calls=fused
}
"""
    rng = np.random.default_rng(13)
    args = [rng.uniform(-1, 1, 1000).astype(np.float32) for _ in "xy"]
    exe = gpu_compile(text)
    assert len(exe.program.launches()) == 1
    check(exe(*args), hlo.evaluate(parse(text), *args))


def test_bf16_arguments_and_results(gpu_compile: Compile) -> None:
    text = """HloModule b
ENTRY e {
  x = bf16[10] parameter(0)
  y = bf16[10] parameter(1)
  ROOT r = bf16[10] multiply(x, y)
}
"""
    rng = np.random.default_rng(14)
    args = [rng.uniform(-2, 2, 10).astype(ml_dtypes.bfloat16) for _ in "xy"]
    run(gpu_compile, text, args)


def test_wrong_argument_is_an_argument_error(gpu_compile: Compile) -> None:
    exe = gpu_compile("HloModule a\nENTRY e {\n  x = f32[3] parameter(0)\n"
                      "  ROOT r = f32[3] negate(x)\n}\n")
    with pytest.raises(ArgumentError, match="argument 0"):
        exe(np.zeros(4, np.float32))
    with pytest.raises(ArgumentError, match="dtype"):
        exe(np.zeros(3, np.float64))
    np.testing.assert_array_equal(exe(np.arange(3, dtype=np.float32)), -np.arange(3))


@pytest.mark.parametrize("t,feature", [("f32", 1), ("f16", 3), ("f64", 0)])
def test_batch_norm_expansions(t: str, feature: int, gpu_compile: Compile) -> None:
    shape = (4, 6, 5, 3)
    c = shape[feature]
    x = f"{t}[{','.join(map(str, shape))}]"
    v = f"{t}[{c}]"
    text = f"""HloModule bn
ENTRY e {{
  x = {x} parameter(0)
  s = {v} parameter(1)
  o = {v} parameter(2)
  dy = {x} parameter(3)
  t = ({x}, {v}, {v}) batch-norm-training(x, s, o), epsilon=0.001, feature_index={feature}
  y = {x} get-tuple-element(t), index=0
  m = {v} get-tuple-element(t), index=1
  var = {v} get-tuple-element(t), index=2
  i = {x} batch-norm-inference(x, s, o, m, var), epsilon=0.001, feature_index={feature}
  g = ({x}, {v}, {v}) batch-norm-grad(x, s, m, var, dy), epsilon=0.001, feature_index={feature}
  gx = {x} get-tuple-element(g), index=0
  gs = {v} get-tuple-element(g), index=1
  go = {v} get-tuple-element(g), index=2
  ROOT r = ({x}, {v}, {v}, {x}, {x}, {v}, {v}) tuple(y, m, var, i, gx, gs, go)
}}
"""
    rng = np.random.default_rng(15)
    dt = numpy_dtype(t)
    args = [rng.uniform(-2, 2, shape).astype(dt), rng.uniform(0.5, 1.5, c).astype(dt),
            rng.uniform(-1, 1, c).astype(dt), rng.uniform(-1, 1, shape).astype(dt)]
    run(gpu_compile, text, args, scale=10.0)


@pytest.mark.parametrize("kind,in_t,in_shape,out_t,out_shape,lengths", [
    ("FFT", "c64", (3, 16), "c64", (3, 16), (16,)),
    ("IFFT", "c128", (2, 6, 10), "c128", (2, 6, 10), (6, 10)),
    ("RFFT", "f32", (4, 12), "c64", (4, 7), (12,)),
    ("RFFT", "f64", (5, 8, 9), "c128", (5, 8, 5), (8, 9)),
    ("IRFFT", "c64", (3, 9), "f32", (3, 16), (16,)),
    ("IRFFT", "c128", (2, 4, 6), "f64", (2, 4, 11), (4, 11)),
])
def test_fft(kind: str, in_t: str, in_shape: tuple[int, ...], out_t: str,
             out_shape: tuple[int, ...], lengths: tuple[int, ...],
             gpu_compile: Compile) -> None:
    def s(dims: Sequence[int]) -> str:
        return ",".join(map(str, dims))

    text = (f"HloModule f\nENTRY e {{\n  x = {in_t}[{s(in_shape)}] parameter(0)\n"
            f"  ROOT f = {out_t}[{s(out_shape)}] fft(x), fft_type={kind}, "
            f"fft_length={{{s(lengths)}}}\n}}\n")
    rng = np.random.default_rng(16)
    dt = numpy_dtype(in_t)
    x = rng.uniform(-1, 1, in_shape)
    if in_t[0] == "c":
        x = x + 1j * rng.uniform(-1, 1, in_shape)
    run(gpu_compile, text, [x.astype(dt)], scale=10.0)


def test_large_gemm_tile(gpu_compile: Compile) -> None:
    rng = np.random.default_rng(17)
    a = rng.uniform(-1, 1, (1100, 300)).astype(np.float32)
    b = rng.uniform(-1, 1, (300, 1030)).astype(np.float32)
    exe = gpu_compile(_dot_text("f32", a.shape, b.shape, (1100, 1030), _MATMUL))
    assert "gemm128" in exe.program.launches()[0].kernel
    want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(exe(a, b), want, rtol=1e-4, atol=1e-4)
