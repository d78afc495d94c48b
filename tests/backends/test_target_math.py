"""The CPU TargetMath: accuracy of the inline f32 approximations, their special values, and
that loops over them vectorise.

Accuracy is measured as in libm's own tests: each op is compiled (compiler.compile) over a
large array of points, and the results are compared, in ulp, with numpy's float64 function
rounded to f32. The points sweep the whole f32 range: random bit patterns (every exponent,
subnormals, infinities and NaN), a dense uniform sweep of the interesting domain,
log-uniform magnitudes of both signs, runs of consecutive floats around each function's
thresholds, and exact special points. NaN must match NaN, and a zero result must have the
sign that libm gives it. Every case runs twice: with fused multiply-add (the host) and
without it (-fma), since the approximations use llvm.fmuladd.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import llvmlite.binding as llvm
import numpy as np
import pytest

import compiler
from backends.cpu import CpuOptions, compile_to_object
from backends.cpu_math import INLINE_F32_BINARY, INLINE_F32_UNARY
from backends.target_math import BINARY_FUNCTIONS, UNARY_FUNCTIONS
from hlo.parser import parse

MAX_ULP = 4
F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = 2.0**-149

Reference = Callable[..., np.ndarray]


def _host_features_without_fma() -> str:
    llvm.initialize_native_target()
    features = llvm.get_host_cpu_features().flatten().split(",")
    return ",".join("-fma" if f == "+fma" else f for f in features)


# Compile options of the two variants every accuracy test runs under.
VARIANTS = {"fma": {}, "nofma": {"target_features": _host_features_without_fma()}}


@dataclass(frozen=True)
class Case:
    """One f32 op: its HLO name, float64 reference, domain and critical points."""

    op: str
    reference: Reference
    domain: tuple[float, float]
    critical: tuple[float, ...] = ()


def _logistic(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _erf(x: np.ndarray) -> np.ndarray:
    return np.frompyfunc(math.erf, 1, 1)(x).astype(np.float64)


# Multiples of pi/4 (quadrant boundaries), large and huge arguments, and the f32 closest to a
# multiple of pi/2 (16367173 * 2^72, within 2^-29.2 of one), which needs 60 bits of reduction.
TRIG_CRITICAL = (math.pi / 4, math.pi / 2, 3 * math.pi / 4, math.pi, 2.0**24, 1.0e20,
                 16367173 * 2.0**72, F32_MAX, 0.0)

UNARY_CASES = [
    # -86.99 and -87.68 (ln 2 times -125.5, -126.5): where the scaling by 2^n starts to
    # split off a second factor for the subnormal range.
    Case("exponential", np.exp, (-104.0, 89.0),
         (88.72283, -87.33654, -103.27893, -103.97208, 0.0, -86.99021, -87.683357)),
    Case("exponential-minus-one", np.expm1, (-20.0, 89.0),
         (88.72283, -17.32868, 2.0**-25, -(2.0**-25), 0.34657359, -0.34657359)),
    Case("log", np.log, (0.0, 16.0), (1.0, 0.70710677, 1.4142135, F32_TINY, 2.0**-126)),
    Case("log-plus-one", np.log1p, (-1.0, 16.0), (-1.0, 0.0, 2.0**-24, -0.29289323, 0.41421357)),
    # 8.3178 (12 ln 2): from there on, 1 - 2^n (n = round(2x / ln 2)) rounds; 10: the clamp.
    Case("tanh", np.tanh, (-10.0, 10.0), (0.0, 9.0109, 2.0**-25, 0.5493061, 8.3177662, 10.0)),
    Case("logistic", _logistic, (-110.0, 20.0), (0.0, -87.33654, -103.27893, 16.635532)),
    Case("erf", _erf, (-5.0, 5.0), (1.0, -1.0, 3.9, 4.0, 0.0)),
    Case("sine", np.sin, (-100.0, 100.0), TRIG_CRITICAL),
    Case("cosine", np.cos, (-100.0, 100.0), TRIG_CRITICAL),
    Case("tan", np.tan, (-10.0, 10.0), TRIG_CRITICAL),
    Case("cbrt", np.cbrt, (-100.0, 100.0), (1.0, 8.0, F32_TINY, 2.0**-126, F32_MAX)),
    Case("sqrt", np.sqrt, (0.0, 100.0), (1.0, 4.0, F32_TINY, F32_MAX)),
    Case("rsqrt", lambda x: 1.0 / np.sqrt(x), (0.0, 100.0), (1.0, 4.0, F32_TINY, F32_MAX)),
]

SPECIAL_POINTS = np.array(
    [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0,
     F32_TINY, -F32_TINY, 2.0**-126, -(2.0**-126), F32_MAX, -F32_MAX, 2.0**24, -(2.0**24)],
    np.float32,
)


# --- measuring ------------------------------------------------------------------------------


def ordered(a: np.ndarray) -> np.ndarray:
    """f32 bit patterns mapped to integers that count ulps (+0 and -0 both 0)."""
    i = a.view(np.int32).astype(np.int64)
    return np.where(i < 0, -(i & 0x7FFFFFFF), i)


def ulp_errors(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """|got - want| in ulp; NaN against NaN is 0, NaN against a number infinite."""
    d = np.abs(ordered(got) - ordered(want)).astype(np.float64)
    got_nan, want_nan = np.isnan(got), np.isnan(want)
    d[got_nan & want_nan] = 0.0
    d[got_nan != want_nan] = np.inf
    # A zero must carry libm's sign.
    zero = (want == 0) & (got == 0) & (np.signbit(got) != np.signbit(want))
    d[zero] = np.inf
    return d


def check_ulps(label: str, inputs: tuple[np.ndarray, ...], got: np.ndarray, want: np.ndarray,
               max_ulp: int) -> None:
    """Fail with the worst point if any error exceeds max_ulp."""
    errors = ulp_errors(got, want)
    worst = int(np.argmax(errors))
    args = ", ".join(repr(float(a[worst])) for a in inputs)
    assert errors[worst] <= max_ulp, (
        f"{label}({args}) = {got[worst]!r}, want {want[worst]!r}: {errors[worst]} ulp; "
        f"{int(np.sum(errors > max_ulp))} of {errors.size} points above {max_ulp} ulp"
    )


def f32_runs(centres: tuple[float, ...], count: int = 512) -> np.ndarray:
    """`count` consecutive f32 values centred on each point and on its negation."""
    runs = []
    for c in centres:
        for v in (c, -c):
            bits = np.array([v], np.float32).view(np.int32)[0].astype(np.int64)
            span = np.arange(bits - count // 2, bits + count // 2)
            # Keep the span inside int32 (around -0 it would wrap to +NaN patterns).
            span = span[(span >= np.iinfo(np.int32).min) & (span <= np.iinfo(np.int32).max)]
            runs.append(span.astype(np.int32).view(np.float32))
    return np.concatenate(runs)


def sweep(rng: np.random.Generator, domain: tuple[float, float],
          critical: tuple[float, ...], n: int = 1 << 17) -> np.ndarray:
    """The test points of one unary op (see the module docstring)."""
    random_bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)
    dense = rng.uniform(*domain, n).astype(np.float32)
    magnitudes = np.exp2(rng.uniform(-149.0, 128.0, n // 2)).astype(np.float32)
    signs = rng.choice(np.array([-1.0, 1.0], np.float32), n // 2)
    with np.errstate(over="ignore"):
        logarithmic = magnitudes * signs
    return np.concatenate([random_bits, dense, logarithmic, f32_runs(critical), SPECIAL_POINTS])


def unary_module(op: str, n: int, dtype: str = "f32") -> str:
    return f"HloModule m\nENTRY main {{\n  x = {dtype}[{n}] parameter(0)\n" \
           f"  ROOT y = {dtype}[{n}] {op}(x)\n}}\n"


def binary_module(op: str, n: int, dtype: str = "f32") -> str:
    return f"HloModule m\nENTRY main {{\n  x = {dtype}[{n}] parameter(0)\n" \
           f"  y = {dtype}[{n}] parameter(1)\n  ROOT z = {dtype}[{n}] {op}(x, y)\n}}\n"


def reference_f32(fn: Reference, *args: np.ndarray) -> np.ndarray:
    """fn on float64 copies of `args`, rounded to f32."""
    with np.errstate(all="ignore"):
        return np.asarray(fn(*(a.astype(np.float64) for a in args))).astype(np.float32)


# --- accuracy -------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("case", UNARY_CASES, ids=lambda c: c.op)
def test_unary_within_4_ulp_over_the_f32_range(case: Case, variant: str) -> None:
    x = sweep(np.random.default_rng(7), case.domain, case.critical)
    exe = compiler.compile(unary_module(case.op, x.size), **VARIANTS[variant])
    check_ulps(case.op, (x,), exe(x), reference_f32(case.reference, x), MAX_ULP)


def _pow_points(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) pairs: random bits, results across the f32 range, integer powers of negative
    bases, bases near 1 with large exponents, and every pair of special values."""
    n = 1 << 16
    parts_x, parts_y = [], []
    parts_x.append(rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32))
    parts_y.append(rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32))
    # |x|^y spread over the whole f32 range: y = t / log2|x| with t in [-150, 130].
    x = np.exp2(rng.uniform(-149.0, 128.0, n)).astype(np.float32)
    x = x[(x != 1) & np.isfinite(x)]
    parts_x.append(x)
    parts_y.append((rng.uniform(-152.0, 130.0, x.size) / np.log2(x.astype(np.float64)))
                   .astype(np.float32))
    parts_x.append(rng.uniform(-4.0, 4.0, n).astype(np.float32))
    parts_y.append(np.round(rng.uniform(-60.0, 60.0, n)).astype(np.float32))
    parts_x.append((1.0 + rng.uniform(-1e-3, 1e-3, n)).astype(np.float32))
    parts_y.append(rng.uniform(-1e5, 1e5, n).astype(np.float32))
    specials = np.concatenate([SPECIAL_POINTS, np.array([1.5, -1.5, 1 / 3, 2.0**24 + 2,
                                                         -(2.0**24) - 2, 0.3], np.float32)])
    sx, sy = np.meshgrid(specials, specials)
    parts_x.append(sx.ravel())
    parts_y.append(sy.ravel())
    return np.concatenate(parts_x), np.concatenate(parts_y)


def _atan2_points(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) pairs: random bits, dense angles and radii, and every pair of special values."""
    n = 1 << 16
    y = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)
    x = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)
    angle = rng.uniform(-math.pi, math.pi, n)
    radius = np.exp2(rng.uniform(-140.0, 120.0, n))
    dense_y = (radius * np.sin(angle)).astype(np.float32)
    dense_x = (radius * np.cos(angle)).astype(np.float32)
    sx, sy = np.meshgrid(SPECIAL_POINTS, SPECIAL_POINTS)
    return np.concatenate([y, dense_y, sy.ravel()]), np.concatenate([x, dense_x, sx.ravel()])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_pow_within_4_ulp(variant: str) -> None:
    x, y = _pow_points(np.random.default_rng(11))
    exe = compiler.compile(binary_module("power", x.size), **VARIANTS[variant])
    check_ulps("pow", (x, y), exe(x, y), reference_f32(np.power, x, y), MAX_ULP)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_atan2_within_4_ulp(variant: str) -> None:
    y, x = _atan2_points(np.random.default_rng(13))
    exe = compiler.compile(binary_module("atan2", x.size), **VARIANTS[variant])
    check_ulps("atan2", (y, x), exe(y, x), reference_f32(np.arctan2, y, x), MAX_ULP)


# --- exact special values -------------------------------------------------------------------

INF, NAN = math.inf, math.nan
PI32 = float(np.float32(math.pi))
HALF_PI32 = float(np.float32(math.pi / 2))

# (op, x, result) as C's libm has them; compared bit for bit (NaN: any NaN).
UNARY_SPECIALS = [
    ("exponential", -0.0, 1.0), ("exponential", -INF, 0.0), ("exponential", INF, INF),
    ("exponential", 89.0, INF), ("exponential", -104.0, 0.0), ("exponential", NAN, NAN),
    ("exponential-minus-one", -0.0, -0.0), ("exponential-minus-one", -INF, -1.0),
    ("exponential-minus-one", F32_TINY, F32_TINY), ("exponential-minus-one", 89.0, INF),
    ("log", 1.0, 0.0), ("log", -0.0, -INF), ("log", 0.0, -INF), ("log", INF, INF),
    ("log", -1.0, NAN), ("log", -INF, NAN),
    ("log-plus-one", -0.0, -0.0), ("log-plus-one", -1.0, -INF), ("log-plus-one", -2.0, NAN),
    ("log-plus-one", INF, INF), ("log-plus-one", -F32_TINY, -F32_TINY),
    ("tanh", -0.0, -0.0), ("tanh", INF, 1.0), ("tanh", -INF, -1.0), ("tanh", 20.0, 1.0),
    ("tanh", -F32_TINY, -F32_TINY), ("tanh", NAN, NAN),
    ("logistic", 0.0, 0.5), ("logistic", INF, 1.0), ("logistic", -INF, 0.0),
    ("erf", -0.0, -0.0), ("erf", INF, 1.0), ("erf", -INF, -1.0), ("erf", NAN, NAN),
    ("sine", -0.0, -0.0), ("sine", INF, NAN), ("sine", -F32_TINY, -F32_TINY),
    ("cosine", -0.0, 1.0), ("cosine", -INF, NAN), ("tan", -0.0, -0.0), ("tan", INF, NAN),
    ("cbrt", -0.0, -0.0), ("cbrt", -27.0, -3.0), ("cbrt", 0.125, 0.5), ("cbrt", -INF, -INF),
    ("sqrt", -0.0, -0.0), ("sqrt", -1.0, NAN), ("sqrt", INF, INF),
]

BINARY_SPECIALS = [
    ("power", NAN, 0.0, 1.0), ("power", 1.0, NAN, 1.0), ("power", -1.0, INF, 1.0),
    ("power", -1.0, -INF, 1.0), ("power", -0.0, -3.0, -INF), ("power", -0.0, -2.0, INF),
    ("power", -0.0, 3.0, -0.0), ("power", -0.0, 0.5, 0.0), ("power", -8.0, 1 / 3, NAN),
    ("power", -2.0, 3.0, -8.0), ("power", -INF, 3.0, -INF), ("power", -INF, -3.0, -0.0),
    ("power", -INF, 0.5, INF), ("power", 0.5, INF, 0.0), ("power", 2.0, -INF, 0.0),
    ("power", 2.0, 10.0, 1024.0), ("power", 2.0, -149.0, F32_TINY), ("power", 2.0, 128.0, INF),
    ("atan2", 0.0, 0.0, 0.0), ("atan2", -0.0, 0.0, -0.0), ("atan2", 0.0, -0.0, PI32),
    ("atan2", -0.0, -0.0, -PI32), ("atan2", 1.0, 0.0, HALF_PI32), ("atan2", -1.0, -0.0, -HALF_PI32),
    ("atan2", INF, INF, float(np.float32(math.pi / 4))), ("atan2", -1.0, INF, -0.0),
    ("atan2", 1.0, -INF, PI32), ("atan2", NAN, 1.0, NAN),
]


def _bitwise_equal(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    return (got.view(np.int32) == want.view(np.int32)) | (np.isnan(got) & np.isnan(want))


def test_unary_special_values() -> None:
    for op in sorted({op for op, _, _ in UNARY_SPECIALS}):
        rows = [(x, r) for o, x, r in UNARY_SPECIALS if o == op]
        x = np.array([x for x, _ in rows], np.float32)
        want = np.array([r for _, r in rows], np.float32)
        got = compiler.compile(unary_module(op, x.size))(x)
        bad = ~_bitwise_equal(got, want)
        assert not bad.any(), f"{op}: at {x[bad]} got {got[bad]}, want {want[bad]}"


def _every_nan_payload_bit() -> np.ndarray:
    """NaNs of both signs, quiet and signalling, with each single payload bit set, and with
    all of them set: the approximations that let a NaN flow through their arithmetic (no
    final select) must not turn any of them into a number."""
    payloads = [1 << k for k in range(22)] + [(1 << 22) - 1]
    patterns = [sign | 0x7F800000 | quiet | payload
                for sign in (0, 0x80000000) for quiet in (0, 0x400000) for payload in payloads]
    return np.array(patterns, np.uint32).view(np.float32)


@pytest.mark.parametrize("op", [c.op for c in UNARY_CASES])
def test_unary_nan_of_any_payload_stays_nan(op: str) -> None:
    x = _every_nan_payload_bit()
    got = compiler.compile(unary_module(op, x.size))(x)
    assert np.isnan(got).all(), f"{op}: NaN inputs {x[~np.isnan(got)].view(np.uint32)} " \
                                f"gave {got[~np.isnan(got)]}"


def test_binary_special_values() -> None:
    for op in ("power", "atan2"):
        rows = [(x, y, r) for o, x, y, r in BINARY_SPECIALS if o == op]
        x = np.array([x for x, _, _ in rows], np.float32)
        y = np.array([y for _, y, _ in rows], np.float32)
        want = np.array([r for _, _, r in rows], np.float32)
        got = compiler.compile(binary_module(op, x.size))(x, y)
        bad = ~_bitwise_equal(got, want)
        assert not bad.any(), f"{op}: at {x[bad]}, {y[bad]} got {got[bad]}, want {want[bad]}"


# --- narrow types, f64, coverage ------------------------------------------------------------


@pytest.mark.parametrize("dtype, np_dtype", [("f16", np.float16), ("bf16", "bfloat16")])
@pytest.mark.parametrize("op, fn", [("exponential", np.exp), ("tanh", np.tanh),
                                    ("sine", np.sin), ("log", np.log)])
def test_narrow_floats_go_through_f32(dtype: str, np_dtype: object, op: str,
                                      fn: Reference) -> None:
    """f16/bf16 widen to f32, so their results are the f32 ones rounded once more."""
    import ml_dtypes  # noqa: F401 - registers numpy's "bfloat16"

    x = np.random.default_rng(3).uniform(0.01, 8.0, 4096).astype(np_dtype)
    got = compiler.compile(unary_module(op, x.size, dtype))(x)
    want = fn(x.astype(np.float64)).astype(np_dtype)
    step = np.abs(want.astype(np.float64)) * (2.0**-10 if dtype == "f16" else 2.0**-7)
    assert np.all(np.abs(got.astype(np.float64) - want.astype(np.float64)) <= step)


def test_f64_calls_libm_and_is_accurate() -> None:
    x = np.random.default_rng(5).uniform(-20.0, 20.0, 1024)
    text = unary_module("exponential", x.size, "f64")
    llvm_ir = compile_to_object(parse(text), CpuOptions()).llvm_ir
    assert re.search(r"call[^\n]*@\"?exp\"?\(", llvm_ir)
    np.testing.assert_allclose(compiler.compile(text)(x), np.exp(x), rtol=1e-15)


def test_every_function_but_sqrt_has_an_inline_f32_version() -> None:
    assert set(INLINE_F32_UNARY) == set(UNARY_FUNCTIONS) - {"sqrt"}
    assert set(INLINE_F32_BINARY) == set(BINARY_FUNCTIONS)


# --- vectorisation --------------------------------------------------------------------------

VECTOR_OPS = [c.op for c in UNARY_CASES] + ["power", "atan2"]


def _host_has_avx2_only() -> bool:
    llvm.initialize_native_target()
    features = llvm.get_host_cpu_features()
    return bool(features.get("avx2")) and not features.get("avx512f")


@pytest.mark.parametrize("op", VECTOR_OPS)
def test_loops_over_f32_math_vectorise_without_calls(op: str) -> None:
    n = 4096
    text = binary_module(op, n) if op in ("power", "atan2") else unary_module(op, n)
    optimized = compile_to_object(parse(text), CpuOptions()).optimized_ir
    calls = set(re.findall(r"call [^@\n]*@([\w.$]+)", optimized))
    assert {c for c in calls if not c.startswith(("llvm.", "comp."))} == set()
    widths = [int(w) for w in re.findall(r"<(\d+) x (?:float|double)>", optimized)]
    assert widths and max(widths) >= 4, f"{op}: no vector float ops in\n{optimized}"


@pytest.mark.skipif(not _host_has_avx2_only(), reason="the width is that of AVX2")
@pytest.mark.parametrize("op", ["exponential", "tanh", "log", "exponential-minus-one"])
def test_f32_functions_use_eight_lanes_on_avx2(op: str) -> None:
    """The f32 approximations stay in f32, so the loop over 4M elements runs 8 lanes wide."""
    optimized = compile_to_object(parse(unary_module(op, 1 << 22)), CpuOptions()).optimized_ir
    assert "@llvm.fmuladd.v8f32" in optimized
