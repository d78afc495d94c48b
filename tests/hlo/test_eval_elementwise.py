"""The reference evaluator's elementwise and conversion kernels against direct formulas.

Each XLA edge case (integer division by zero, oversized shifts, NaN-propagating max,
total-order compare, saturating convert, reduce-precision, ...) has its own test; the
corpus cases of the elementwise and convert categories check the same kernels against
JAX/XLA's own outputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import hlo
from hlo import eval_rules  # noqa: F401  (fills EVAL)
from hlo.dtypes import PrimitiveType, from_numpy
from hlo.evaluator import EVAL, evaluate
from hlo.module import HloModule
from hlo.opcodes import Opcode
from hlo.shape import Shape

T = PrimitiveType
BF16 = ml_dtypes.bfloat16
I32 = np.iinfo(np.int32)


def run(op: Opcode, args: list[Any], out: PrimitiveType, dims: Any = None, **attrs: Any) -> Any:
    """Evaluate one `op` instruction on parameters bound to `args`; returns its value."""
    arrays = [np.asarray(a) for a in args]
    module = HloModule("m")
    comp = module.new_computation("main", entry=True)
    params = [
        comp.add(Opcode.PARAMETER, shape=Shape.array(from_numpy(a.dtype), a.shape),
                 parameter_number=i)
        for i, a in enumerate(arrays)
    ]
    if dims is None:
        dims = np.broadcast_shapes(*[a.shape for a in arrays]) if arrays else ()
    comp.set_root(comp.add(op, params, shape=Shape.array(out, dims), **attrs))
    (value,) = evaluate(module, *arrays)
    return value


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def i32(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int32)


def bits_equal(got: np.ndarray, want: np.ndarray) -> bool:
    """Exact equality of the bit patterns (distinguishes -0.0 and NaN payloads)."""
    got, want = np.asarray(got), np.asarray(want)
    return got.dtype == want.dtype and got.tobytes() == want.tobytes()


# --- coverage ---------------------------------------------------------------------------------

MY_OPCODES = [
    Opcode.ABS, Opcode.ADD, Opcode.AFTER_ALL, Opcode.ALL_REDUCE, Opcode.AND, Opcode.ATAN2,
    Opcode.BITCAST_CONVERT, Opcode.CALL, Opcode.CBRT, Opcode.CEIL, Opcode.CLAMP, Opcode.CLZ,
    Opcode.COMPARE, Opcode.COMPLEX, Opcode.CONDITIONAL, Opcode.CONSTANT, Opcode.CONVERT,
    Opcode.COPY, Opcode.COSINE, Opcode.CROSS_REPLICA_SUM, Opcode.CUSTOM_CALL, Opcode.DIVIDE,
    Opcode.ERF, Opcode.EXPONENTIAL, Opcode.EXPONENTIAL_MINUS_ONE, Opcode.FLOOR, Opcode.FUSION,
    Opcode.GET_TUPLE_ELEMENT, Opcode.IMAG, Opcode.IOTA, Opcode.IS_FINITE, Opcode.LOG,
    Opcode.LOG_PLUS_ONE, Opcode.LOGISTIC, Opcode.MAP, Opcode.MAXIMUM, Opcode.MINIMUM,
    Opcode.MULTIPLY, Opcode.NEGATE, Opcode.NOT, Opcode.OPTIMIZATION_BARRIER, Opcode.OR,
    Opcode.PARAMETER, Opcode.PARTITION_ID, Opcode.POPCNT, Opcode.POWER, Opcode.REAL,
    Opcode.REDUCE_PRECISION, Opcode.REMAINDER, Opcode.REPLICA_ID, Opcode.RNG,
    Opcode.RNG_BIT_GENERATOR, Opcode.ROUND_NEAREST_AFZ, Opcode.ROUND_NEAREST_EVEN,
    Opcode.RSQRT, Opcode.SELECT, Opcode.SHIFT_LEFT, Opcode.SHIFT_RIGHT_ARITHMETIC,
    Opcode.SHIFT_RIGHT_LOGICAL, Opcode.SIGN, Opcode.SINE, Opcode.SQRT, Opcode.SUBTRACT,
    Opcode.TAN, Opcode.TANH, Opcode.TUPLE, Opcode.WHILE, Opcode.XOR,
]


def test_every_opcode_of_part_a_has_a_kernel() -> None:
    missing = [op.value for op in MY_OPCODES if op not in EVAL]
    assert not missing, missing


# --- float unary ops against numpy/math in f64 ------------------------------------------------

UNARY_F32: list[tuple[Opcode, Callable[[np.ndarray], np.ndarray], float, float]] = [
    (Opcode.ABS, np.abs, -5, 5),
    (Opcode.CBRT, np.cbrt, -8, 8),
    (Opcode.CEIL, np.ceil, -5, 5),
    (Opcode.COSINE, np.cos, -6, 6),
    (Opcode.ERF, np.vectorize(math.erf), -3, 3),
    (Opcode.EXPONENTIAL, np.exp, -20, 20),
    (Opcode.EXPONENTIAL_MINUS_ONE, np.expm1, -3, 3),
    (Opcode.FLOOR, np.floor, -5, 5),
    (Opcode.LOG, np.log, 0.01, 100),
    (Opcode.LOG_PLUS_ONE, np.log1p, -0.9, 10),
    (Opcode.LOGISTIC, lambda x: 1 / (1 + np.exp(-x)), -30, 30),
    (Opcode.NEGATE, np.negative, -5, 5),
    (Opcode.RSQRT, lambda x: 1 / np.sqrt(x), 0.01, 100),
    (Opcode.SINE, np.sin, -6, 6),
    (Opcode.SQRT, np.sqrt, 0, 100),
    (Opcode.TAN, np.tan, -1.5, 1.5),
    (Opcode.TANH, np.tanh, -5, 5),
]


@pytest.mark.parametrize("op,fn,lo,hi", UNARY_F32, ids=[u[0].value for u in UNARY_F32])
def test_float_unary_matches_f64_formula_rounded_once(op, fn, lo, hi) -> None:
    x = np.random.default_rng(1).uniform(lo, hi, 64).astype(np.float32)
    got = run(op, [x], T.F32)
    want = np.asarray(fn(x.astype(np.float64))).astype(np.float32)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-7, atol=0)


def test_f64_unary_is_computed_in_f64() -> None:
    x = np.array([1e-10, 0.5, 3.0])
    np.testing.assert_array_equal(run(Opcode.LOG_PLUS_ONE, [x], T.F64), np.log1p(x))
    np.testing.assert_array_equal(run(Opcode.TANH, [x], T.F64), np.tanh(x))


def test_expm1_and_log1p_keep_precision_near_zero() -> None:
    x = f32(1e-7, -1e-7, 1e-30)
    np.testing.assert_allclose(run(Opcode.EXPONENTIAL_MINUS_ONE, [x], T.F32), x, rtol=1e-6)
    np.testing.assert_allclose(run(Opcode.LOG_PLUS_ONE, [x], T.F32), x, rtol=1e-6)


def test_logistic_saturates_without_nan() -> None:
    got = run(Opcode.LOGISTIC, [f32(-1000, 0, 1000)], T.F32)
    np.testing.assert_array_equal(got, f32(0, 0.5, 1))


def test_float_basic_arithmetic_is_exactly_ieee_f32() -> None:
    rng = np.random.default_rng(2)
    a = (rng.standard_normal(200) * 10.0 ** rng.integers(-20, 20, 200)).astype(np.float32)
    b = (rng.standard_normal(200) * 10.0 ** rng.integers(-20, 20, 200)).astype(np.float32)
    with np.errstate(all="ignore"):
        for op, fn in [(Opcode.ADD, np.add), (Opcode.SUBTRACT, np.subtract),
                       (Opcode.MULTIPLY, np.multiply), (Opcode.DIVIDE, np.divide)]:
            assert bits_equal(run(op, [a, b], T.F32), fn(a, b)), op
        assert bits_equal(run(Opcode.SQRT, [np.abs(a)], T.F32), np.sqrt(np.abs(a)))


def test_float_division_by_zero_is_ieee() -> None:
    got = run(Opcode.DIVIDE, [f32(1, -1, 0), f32(0, 0, 0)], T.F32)
    assert got[0] == np.inf and got[1] == -np.inf and np.isnan(got[2])


def test_f16_and_bf16_ops_compute_in_f32_and_round_once() -> None:
    rng = np.random.default_rng(3)
    for dtype, t in [(np.float16, T.F16), (BF16, T.BF16)]:
        a = rng.uniform(-100, 100, 64).astype(dtype)
        b = rng.uniform(0.5, 100, 64).astype(dtype)
        for op, fn in [(Opcode.ADD, np.add), (Opcode.MULTIPLY, np.multiply),
                       (Opcode.DIVIDE, np.divide), (Opcode.POWER, None)]:
            if fn is None:
                a_, b_ = np.abs(a.astype(np.float32)), (b.astype(np.float32) / 50)
                want = np.power(a_, b_).astype(dtype)
                got = run(op, [a_.astype(dtype), b_.astype(dtype)], t)
                np.testing.assert_allclose(got.astype(np.float32),
                                           np.power(a_.astype(dtype).astype(np.float32),
                                                    b_.astype(dtype).astype(np.float32))
                                           .astype(dtype).astype(np.float32), rtol=1e-2)
                assert got.dtype == want.dtype
                continue
            want = fn(a.astype(np.float32), b.astype(np.float32)).astype(dtype)
            got = run(op, [a, b], t)
            assert bits_equal(got, want), (t, op)


def test_bf16_addition_rounds_ties_to_even() -> None:
    one = np.array([1.0, 1.0], dtype=BF16)
    # 2**-8 is half an ulp of 1 in bf16: 1 + 2**-8 ties to 1; (1 + 2**-7) + 2**-8 ties up.
    tiny = np.array([2.0**-8, 2.0**-8], dtype=BF16)
    base = np.array([1.0, 1.0 + 2.0**-7], dtype=BF16)
    got = run(Opcode.ADD, [base, tiny], T.BF16)
    assert got.astype(np.float32).tolist() == [1.0, 1.0 + 2.0**-6]
    assert run(Opcode.MULTIPLY, [one, one], T.BF16).dtype == BF16


# --- integer arithmetic edge cases ------------------------------------------------------------


def test_integer_divide_truncates_and_defines_the_c_undefined_cases() -> None:
    got = run(Opcode.DIVIDE, [i32(7, -7, 7, -7, 5, -5, I32.min, I32.min),
                              i32(2, 2, -2, -2, 0, 0, -1, 1)], T.S32)
    np.testing.assert_array_equal(got, i32(3, -3, -3, 3, -1, -1, I32.min, I32.min))


def test_unsigned_divide_by_zero_is_all_ones() -> None:
    got = run(Opcode.DIVIDE, [np.array([7, 0], np.uint32), np.array([0, 0], np.uint32)], T.U32)
    np.testing.assert_array_equal(got, np.array([2**32 - 1] * 2, np.uint32))
    got8 = run(Opcode.DIVIDE, [np.array([200], np.uint8), np.array([7], np.uint8)], T.U8)
    assert got8.tolist() == [28]


def test_integer_remainder_takes_the_dividends_sign() -> None:
    got = run(Opcode.REMAINDER, [i32(7, -7, 7, -7, 5, -5, I32.min),
                                 i32(3, 3, -3, -3, 0, 0, -1)], T.S32)
    np.testing.assert_array_equal(got, i32(1, -1, 1, -1, 5, -5, 0))
    got_u = run(Opcode.REMAINDER, [np.array([9, 9], np.uint16), np.array([4, 0], np.uint16)],
                T.U16)
    assert got_u.tolist() == [1, 9]


def test_float_remainder_is_fmod() -> None:
    a, b = f32(5.5, -5.5, 5.5, 1.0), f32(2.0, 2.0, -2.0, 0.0)
    got = run(Opcode.REMAINDER, [a, b], T.F32)
    np.testing.assert_array_equal(got[:3], f32(1.5, -1.5, 1.5))
    assert np.isnan(got[3])


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64])
def test_signed_overflow_wraps(dtype) -> None:
    info = np.iinfo(dtype)
    t = from_numpy(dtype)
    mx, mn = np.array([info.max], dtype), np.array([info.min], dtype)
    assert run(Opcode.ADD, [mx, np.array([1], dtype)], t).tolist() == [info.min]
    assert run(Opcode.SUBTRACT, [mn, np.array([1], dtype)], t).tolist() == [info.max]
    assert run(Opcode.MULTIPLY, [mx, np.array([2], dtype)], t).tolist() == [-2]
    assert run(Opcode.NEGATE, [mn], t).tolist() == [info.min]
    assert run(Opcode.ABS, [mn], t).tolist() == [info.min]


def test_unsigned_negate_wraps() -> None:
    assert run(Opcode.NEGATE, [np.array([1, 0], np.uint8)], T.U8).tolist() == [255, 0]


def test_scalar_integer_overflow_wraps_without_warnings() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = run(Opcode.MULTIPLY, [np.int32(I32.max), np.int32(I32.max)], T.S32)
        assert got.shape == () and int(got) == 1
        assert int(run(Opcode.POWER, [np.int32(3), np.int32(40)], T.S32)) == \
            (3**40 + 2**31) % 2**32 - 2**31


@pytest.mark.parametrize("op", [Opcode.DIVIDE, Opcode.REMAINDER, Opcode.POWER,
                                Opcode.SHIFT_LEFT, Opcode.SHIFT_RIGHT_ARITHMETIC,
                                Opcode.SHIFT_RIGHT_LOGICAL, Opcode.MAXIMUM])
def test_rank0_binary_integer_ops_match_their_rank1_results(op) -> None:
    import warnings

    a, b = i32(I32.min, 7, -9, 3), i32(-1, 0, 2, 33)
    vector = run(op, [a, b], T.S32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for k in range(len(a)):
            got = run(op, [a[k], b[k]], T.S32)
            assert got.shape == () and got.dtype == np.int32 and got == vector[k], (op, k)


@pytest.mark.parametrize("op", [Opcode.CLZ, Opcode.POPCNT, Opcode.NOT, Opcode.SIGN,
                                Opcode.ABS, Opcode.NEGATE])
def test_rank0_unary_integer_ops_match_their_rank1_results(op) -> None:
    x = i32(I32.min, -5, 0, 77)
    vector = run(op, [x], T.S32)
    for k in range(len(x)):
        got = run(op, [x[k]], T.S32)
        assert got.shape == () and got == vector[k], (op, k)


def test_integer_power() -> None:
    base = i32(2, 3, 0, 5, 1, -1, -1, 2, -2, 7)
    expo = i32(10, 3, 0, 0, -5, -1, -2, -1, 3, 1)
    want = i32(1024, 27, 1, 1, 1, 0, 0, 0, -8, 7)
    np.testing.assert_array_equal(run(Opcode.POWER, [base, expo], T.S32), want)


def test_integer_power_wraps_like_repeated_multiplication() -> None:
    base = np.array([3, 7, 2, 255], np.uint8)
    expo = np.array([5, 9, 8, 3], np.uint8)
    want = [pow(int(b), int(e), 256) for b, e in zip(base, expo, strict=True)]
    assert run(Opcode.POWER, [base, expo], T.U8).tolist() == want
    big = run(Opcode.POWER, [np.array([3], np.int64), np.array([100], np.int64)], T.S64)
    assert int(big[0]) == (3**100 + 2**63) % 2**64 - 2**63


def test_float_power_follows_c_pow() -> None:
    got = run(Opcode.POWER, [f32(np.nan, 1, 2, -8, 0, -2), f32(0, np.nan, -1, 1 / 3, -1, 0.5)],
              T.F32)
    assert got[0] == 1 and got[1] == 1 and got[2] == 0.5
    assert np.isnan(got[3]) and got[4] == np.inf and np.isnan(got[5])


# --- shifts -----------------------------------------------------------------------------------


def test_shift_left() -> None:
    got = run(Opcode.SHIFT_LEFT, [i32(1, 1, 1, 1, -1), i32(0, 31, 32, -1, 4)], T.S32)
    np.testing.assert_array_equal(got, i32(1, I32.min, 0, 0, -16))


def test_shift_right_logical() -> None:
    got = run(Opcode.SHIFT_RIGHT_LOGICAL, [i32(-1, -1, 256, -8), i32(28, 32, 4, -3)], T.S32)
    np.testing.assert_array_equal(got, i32(15, 0, 16, 0))


def test_shift_right_arithmetic_fills_with_the_sign() -> None:
    got = run(Opcode.SHIFT_RIGHT_ARITHMETIC, [i32(-8, 8, -8, 8, -1), i32(1, 1, 40, 40, -1)],
              T.S32)
    np.testing.assert_array_equal(got, i32(-4, 4, -1, 0, -1))


def test_shifts_of_unsigned_types_read_the_top_bit_for_arithmetic_shift() -> None:
    x = np.array([0x80, 0x80, 0x40, 0x80], np.uint8)
    n = np.array([1, 9, 1, 8], np.uint8)
    assert run(Opcode.SHIFT_RIGHT_ARITHMETIC, [x, n], T.U8).tolist() == [0xC0, 0xFF, 0x20, 0xFF]
    assert run(Opcode.SHIFT_RIGHT_LOGICAL, [x, n], T.U8).tolist() == [0x40, 0, 0x20, 0]
    assert run(Opcode.SHIFT_LEFT, [x, n], T.U8).tolist() == [0, 0, 0x80, 0]


def test_shifts_on_64_bit() -> None:
    x = np.array([1, -(2**62)], np.int64)
    assert run(Opcode.SHIFT_LEFT, [x, np.array([63, 1], np.int64)], T.S64).tolist() == \
        [-(2**63), -(2**63)]
    assert run(Opcode.SHIFT_RIGHT_LOGICAL, [x, np.array([64, 62], np.int64)], T.S64).tolist() \
        == [0, 3]


# --- bitwise, clz, popcnt, not ----------------------------------------------------------------


def _clz_ref(v: int, width: int) -> int:
    return width - (v % 2**width).bit_length()


def _popcnt_ref(v: int, width: int) -> int:
    return bin(v % 2**width).count("1")


@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.int32, np.uint32, np.int64, np.uint64])
def test_clz_and_popcnt(dtype) -> None:
    info = np.iinfo(dtype)
    width = info.bits
    values = [0, 1, 2, 3, info.max, info.min, info.max // 3, -1 if info.min < 0 else 12345]
    x = np.array(values, dtype=np.int64 if info.min < 0 else np.uint64).astype(dtype)
    t = from_numpy(dtype)
    clz = run(Opcode.CLZ, [x], t)
    pop = run(Opcode.POPCNT, [x], t)
    assert clz.dtype == x.dtype and pop.dtype == x.dtype
    assert clz.tolist() == [_clz_ref(int(v), width) for v in x]
    assert pop.tolist() == [_popcnt_ref(int(v), width) for v in x]


def test_not_is_logical_on_pred_and_bitwise_on_integers() -> None:
    p = np.array([True, False])
    assert run(Opcode.NOT, [p], T.PRED).tolist() == [False, True]
    assert run(Opcode.NOT, [i32(0, -1, 5)], T.S32).tolist() == [-1, 0, -6]
    assert run(Opcode.NOT, [np.array([0, 255], np.uint8)], T.U8).tolist() == [255, 0]


def test_bitwise_ops_on_pred_and_integers() -> None:
    p, q = np.array([True, True, False, False]), np.array([True, False, True, False])
    assert run(Opcode.AND, [p, q], T.PRED).tolist() == [True, False, False, False]
    assert run(Opcode.OR, [p, q], T.PRED).tolist() == [True, True, True, False]
    assert run(Opcode.XOR, [p, q], T.PRED).tolist() == [False, True, True, False]
    a, b = i32(12, -1), i32(10, 5)
    assert run(Opcode.AND, [a, b], T.S32).tolist() == [8, 5]
    assert run(Opcode.OR, [a, b], T.S32).tolist() == [14, -1]
    assert run(Opcode.XOR, [a, b], T.S32).tolist() == [6, -6]


def test_pred_arithmetic_is_logical() -> None:
    p, q = np.array([True, False, False]), np.array([True, True, False])
    assert run(Opcode.ADD, [p, q], T.PRED).tolist() == [True, True, False]
    assert run(Opcode.MULTIPLY, [p, q], T.PRED).tolist() == [True, False, False]
    assert run(Opcode.MAXIMUM, [p, q], T.PRED).tolist() == [True, True, False]


# --- max/min, rounding, sign ------------------------------------------------------------------


def test_maximum_and_minimum_propagate_nan_from_either_side() -> None:
    a, b = f32(np.nan, 1, 2, -np.inf), f32(1, np.nan, 3, 0)
    mx, mn = run(Opcode.MAXIMUM, [a, b], T.F32), run(Opcode.MINIMUM, [a, b], T.F32)
    assert np.isnan(mx[:2]).all() and np.isnan(mn[:2]).all()
    assert mx[2:].tolist() == [3, 0] and mn[2:].tolist() == [2, -np.inf]
    assert run(Opcode.MAXIMUM, [i32(-3, 4), i32(2, -9)], T.S32).tolist() == [2, 4]
    u = run(Opcode.MINIMUM, [np.array([200], np.uint8), np.array([3], np.uint8)], T.U8)
    assert u.tolist() == [3]


def test_round_nearest_afz_rounds_halves_away_from_zero() -> None:
    x = f32(0.5, -0.5, 1.5, 2.5, -2.5, 0.49999997, -0.3, 1e10, np.inf)
    want = f32(1, -1, 2, 3, -3, 0, -0.0, 1e10, np.inf)
    got = run(Opcode.ROUND_NEAREST_AFZ, [x], T.F32)
    assert bits_equal(got, want)
    big = np.array([2.0**52 + 1, -(2.0**52 + 1), 4503599627370495.5])
    np.testing.assert_array_equal(run(Opcode.ROUND_NEAREST_AFZ, [big], T.F64),
                                  [2.0**52 + 1, -(2.0**52 + 1), 4503599627370496.0])


def test_round_nearest_even_rounds_halves_to_even() -> None:
    x = f32(0.5, 1.5, 2.5, -0.5, -2.5, 3.7, -0.2)
    got = run(Opcode.ROUND_NEAREST_EVEN, [x], T.F32)
    assert bits_equal(got, f32(0, 2, 2, -0.0, -2, 4, -0.0))


def test_sign() -> None:
    got = run(Opcode.SIGN, [f32(-0.0, 0.0, -3, 7, np.nan, -np.inf)], T.F32)
    assert bits_equal(got[:4], f32(-0.0, 0.0, -1, 1))
    assert np.isnan(got[4]) and got[5] == -1
    assert run(Opcode.SIGN, [i32(-9, 0, 4, I32.min)], T.S32).tolist() == [-1, 0, 1, -1]
    assert run(Opcode.SIGN, [np.array([0, 9], np.uint8)], T.U8).tolist() == [0, 1]
    z = np.array([3 + 4j, 0j, -2j], np.complex64)
    np.testing.assert_allclose(run(Opcode.SIGN, [z], T.C64), [0.6 + 0.8j, 0, -1j], rtol=1e-6)


def test_abs_of_complex_is_real() -> None:
    got = run(Opcode.ABS, [np.array([3 + 4j], np.complex64)], T.F32)
    assert got.dtype == np.float32 and got.tolist() == [5.0]


# --- compare, select, clamp -------------------------------------------------------------------


@pytest.mark.parametrize("direction,fn", [("EQ", np.equal), ("NE", np.not_equal),
                                          ("LT", np.less), ("LE", np.less_equal),
                                          ("GT", np.greater), ("GE", np.greater_equal)])
def test_default_float_compare_is_ieee(direction, fn) -> None:
    a, b = f32(1, np.nan, np.nan, -0.0, 2, -np.inf), f32(1, 1, np.nan, 0.0, 1, np.inf)
    got = run(Opcode.COMPARE, [a, b], T.PRED, direction=direction)
    np.testing.assert_array_equal(got, fn(a, b))
    if direction == "NE":
        assert got[1] and got[2]


@pytest.mark.parametrize("dtype", [np.float16, BF16, np.float32, np.float64])
def test_totalorder_compare_orders_nan_and_signed_zeros(dtype) -> None:
    order = [-np.nan, -np.inf, -1.0, -0.0, 0.0, 1e-3, np.inf, np.nan]
    x = np.array(order, dtype=np.float64).astype(dtype)
    x[0] = -np.abs(x[0])  # keep the sign bit of -NaN through the cast
    a = np.repeat(x, len(x))
    b = np.tile(x, len(x))
    idx_a = np.repeat(np.arange(len(x)), len(x))
    idx_b = np.tile(np.arange(len(x)), len(x))
    for direction, fn in [("LT", np.less), ("EQ", np.equal), ("GE", np.greater_equal)]:
        got = run(Opcode.COMPARE, [a, b], T.PRED, direction=direction, type="TOTALORDER")
        np.testing.assert_array_equal(got, fn(idx_a, idx_b), err_msg=direction)


def test_integer_compare_is_signed_or_unsigned_by_type() -> None:
    assert run(Opcode.COMPARE, [i32(-1), i32(1)], T.PRED, direction="LT").tolist() == [True]
    u = run(Opcode.COMPARE, [np.array([2**32 - 1], np.uint32), np.array([1], np.uint32)],
            T.PRED, direction="LT")
    assert u.tolist() == [False]
    assert run(Opcode.COMPARE, [i32(-1), i32(1)], T.PRED, direction="LT",
               type="UNSIGNED").tolist() == [False]


def test_select_with_array_and_scalar_predicates() -> None:
    p = np.array([True, False, True])
    got = run(Opcode.SELECT, [p, f32(1, 2, 3), f32(-1, -2, -3)], T.F32)
    assert got.tolist() == [1, -2, 3]
    got = run(Opcode.SELECT, [np.bool_(False), f32(1, 2, 3), f32(-1, -2, -3)], T.F32, dims=(3,))
    assert got.tolist() == [-1, -2, -3]


def test_clamp_broadcasts_scalar_bounds_and_propagates_nan() -> None:
    got = run(Opcode.CLAMP, [np.float32(0), f32(-1, 0.5, 2, np.nan), np.float32(1)], T.F32,
              dims=(4,))
    assert got[:3].tolist() == [0, 0.5, 1] and np.isnan(got[3])
    got = run(Opcode.CLAMP, [i32(0, 0), i32(-5, 9), i32(3, 3)], T.S32)
    assert got.tolist() == [0, 3]
    got = run(Opcode.CLAMP, [np.float32(np.nan), f32(0.5), np.float32(1)], T.F32, dims=(1,))
    assert np.isnan(got[0])


# --- convert ----------------------------------------------------------------------------------


def test_float_to_int_truncates_saturates_and_maps_nan_to_zero() -> None:
    x = f32(3.7, -3.7, 1e20, -1e20, np.nan, np.inf, -np.inf, 2.0**31, -(2.0**31))
    got = run(Opcode.CONVERT, [x], T.S32)
    want = [3, -3, I32.max, I32.min, 0, I32.max, I32.min, I32.max, I32.min]
    assert got.tolist() == want
    got8 = run(Opcode.CONVERT, [f32(300, -300, 127.9, -128.9)], T.S8)
    assert got8.tolist() == [127, -128, 127, -128]
    gotu = run(Opcode.CONVERT, [f32(-5, 300, 255.9, np.nan)], T.U8)
    assert gotu.tolist() == [0, 255, 255, 0]
    got64 = run(Opcode.CONVERT, [np.array([1e300, -1e300, 2.0**62], np.float64)], T.S64)
    assert got64.tolist() == [2**63 - 1, -(2**63), 2**62]
    gotu64 = run(Opcode.CONVERT, [np.array([1e300, -1.0, 2.0**63], np.float64)], T.U64)
    assert gotu64.tolist() == [2**64 - 1, 0, 2**63]


def test_convert_to_pred_is_nonzero() -> None:
    got = run(Opcode.CONVERT, [f32(0, -0.0, 0.1, np.nan)], T.PRED)
    assert got.tolist() == [False, False, True, True]
    assert run(Opcode.CONVERT, [i32(0, 7, -1)], T.PRED).tolist() == [False, True, True]


def test_convert_from_pred_is_zero_or_one() -> None:
    p = np.array([True, False])
    assert run(Opcode.CONVERT, [p], T.F32).tolist() == [1.0, 0.0]
    assert run(Opcode.CONVERT, [p], T.S32).tolist() == [1, 0]
    assert run(Opcode.CONVERT, [p], T.BF16).astype(np.float32).tolist() == [1.0, 0.0]


def test_int_to_int_wraps() -> None:
    assert run(Opcode.CONVERT, [i32(300, -1, 128)], T.S8).tolist() == [44, -1, -128]
    assert run(Opcode.CONVERT, [i32(-1)], T.U32).tolist() == [2**32 - 1]
    assert run(Opcode.CONVERT, [np.array([2**32 - 1], np.uint32)], T.S64).tolist() == [2**32 - 1]


def _rne_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round f32 to bf16 by the bit formula (add 0x7fff plus the kept lsb, truncate)."""
    bits = x.view(np.uint32).astype(np.uint64)
    lsb = (bits >> 16) & 1
    return (((bits + 0x7FFF + lsb) >> 16) & 0xFFFF).astype(np.uint16)


def test_f32_to_bf16_rounds_to_nearest_even() -> None:
    x = np.random.default_rng(4).standard_normal(500).astype(np.float32)
    x = np.concatenate([x, f32(1 + 2**-8, 1 + 3 * 2**-8, 3.0e38, -3.0e38)])
    got = run(Opcode.CONVERT, [x], T.BF16)
    assert got.dtype == BF16
    np.testing.assert_array_equal(got.view(np.uint16), _rne_bf16_bits(x))


def test_f32_to_f16_rounds_to_nearest_even_and_overflows_to_inf() -> None:
    x = f32(1 + 2**-11, 1 + 3 * 2**-11, 65520, -1e6, 65519)
    got = run(Opcode.CONVERT, [x], T.F16)
    assert got.dtype == np.float16
    assert got.astype(np.float64).tolist() == [1.0, 1 + 2**-9, np.inf, -np.inf, 65504.0]


def test_conversions_to_bf16_go_through_f32_as_in_xla() -> None:
    # 2**24 + 2**16 + 1 rounds directly to 2**24 + 2**17 in bf16, but XLA converts to f32
    # first (2**24 + 2**16, a tie) and then rounds to even: 2**24.
    got = run(Opcode.CONVERT, [i32(2**24 + 2**16 + 1)], T.BF16)
    assert got.astype(np.float64).tolist() == [2.0**24]
    got = run(Opcode.CONVERT, [np.array([1 + 2**-8 + 2**-40])], T.BF16)
    assert got.astype(np.float64).tolist() == [1.0]


def test_f64_to_f16_rounds_once() -> None:
    # Through f32 this would tie and round to 1.0; LLVM's fptrunc rounds once, upward.
    got = run(Opcode.CONVERT, [np.array([1 + 2**-11 + 2**-40])], T.F16)
    assert got.astype(np.float64).tolist() == [1 + 2**-10]


def test_bf16_and_f16_convert_to_each_other_through_f32() -> None:
    x = np.array([1.5, -3.25, 1e-3, 70000.0], dtype=np.float32)
    b = run(Opcode.CONVERT, [x.astype(BF16)], T.F16)
    with np.errstate(over="ignore"):  # 70000 overflows f16 to inf, as it should
        want = x.astype(BF16).astype(np.float32).astype(np.float16)
    np.testing.assert_array_equal(b, want)
    assert b[3] == np.inf
    h = run(Opcode.CONVERT, [x[:3].astype(np.float16)], T.BF16)
    np.testing.assert_array_equal(h.view(np.uint16),
                                  _rne_bf16_bits(x[:3].astype(np.float16).astype(np.float32)))


def test_convert_to_and_between_complex() -> None:
    got = run(Opcode.CONVERT, [i32(3, -2)], T.C64)
    assert got.dtype == np.complex64 and got.tolist() == [3 + 0j, -2 + 0j]
    got = run(Opcode.CONVERT, [np.array([1.5 + 2j], np.complex128)], T.C64)
    assert got.tolist() == [1.5 + 2j]


def test_convert_from_complex_to_real_is_rejected() -> None:
    with pytest.raises(hlo.EvaluationError, match="c64 to f32"):
        run(Opcode.CONVERT, [np.array([1j], np.complex64)], T.F32)


def test_int64_to_f32_rounds_to_nearest_even() -> None:
    x = np.array([2**24 + 1, 2**24 + 3, 2**63 - 1], np.int64)
    got = run(Opcode.CONVERT, [x], T.F32)
    assert got.astype(np.float64).tolist() == [2.0**24, 2.0**24 + 4, 2.0**63]


# --- bitcast-convert --------------------------------------------------------------------------


def test_bitcast_convert_same_width_reinterprets_bits() -> None:
    x = f32(1.0, -2.0, np.inf)
    got = run(Opcode.BITCAST_CONVERT, [x], T.S32)
    assert got.tolist() == [0x3F800000, -0x40000000, 0x7F800000]
    back = run(Opcode.BITCAST_CONVERT, [got], T.F32)
    assert bits_equal(back, x)


def test_bitcast_convert_between_widths_uses_a_trailing_dimension() -> None:
    words = np.array([[1, 2], [3, 4]], np.uint32)
    wide = run(Opcode.BITCAST_CONVERT, [words], T.U64, dims=(2,))
    assert wide.tolist() == [1 | (2 << 32), 3 | (4 << 32)]
    narrow = run(Opcode.BITCAST_CONVERT, [wide], T.U32, dims=(2, 2))
    np.testing.assert_array_equal(narrow, words)
    scalar = run(Opcode.BITCAST_CONVERT, [np.float32(1.0)], T.U8, dims=(4,))
    assert scalar.tolist() == [0, 0, 0x80, 0x3F]
    back = run(Opcode.BITCAST_CONVERT, [scalar], T.F32, dims=())
    assert back.shape == () and float(back) == 1.0


def test_bitcast_convert_rejects_mismatched_sizes() -> None:
    with pytest.raises(hlo.EvaluationError, match="byte size"):
        run(Opcode.BITCAST_CONVERT, [i32(1, 2, 3)], T.U64, dims=(2,))


# --- reduce-precision -------------------------------------------------------------------------


def test_reduce_precision_to_bf16_format_equals_rounding_to_bf16() -> None:
    x = np.random.default_rng(5).standard_normal(400).astype(np.float32) * 1e3
    got = run(Opcode.REDUCE_PRECISION, [x], T.F32, exponent_bits=8, mantissa_bits=7)
    np.testing.assert_array_equal(got, x.astype(BF16).astype(np.float32))


def test_reduce_precision_to_f16_format_rounds_flushes_and_overflows() -> None:
    x = np.random.default_rng(6).uniform(-60000, 60000, 400).astype(np.float32)
    got = run(Opcode.REDUCE_PRECISION, [x], T.F32, exponent_bits=5, mantissa_bits=10)
    np.testing.assert_array_equal(got, x.astype(np.float16).astype(np.float32))
    edge = f32(1e-6, -1e-6, 7e4, -7e4, 65504, 6.2e-5, np.inf)
    got = run(Opcode.REDUCE_PRECISION, [edge], T.F32, exponent_bits=5, mantissa_bits=10)
    # f16 denormals (below 2**-14 ~ 6.1e-5) are flushed to signed zero, not rounded.
    assert bits_equal(got, f32(0.0, -0.0, np.inf, -np.inf, 65504, 6.198883e-05, np.inf))


def test_reduce_precision_keeps_nan_unless_no_mantissa_bit_is_left() -> None:
    x = f32(np.nan, 1.0)
    got = run(Opcode.REDUCE_PRECISION, [x], T.F32, exponent_bits=5, mantissa_bits=2)
    assert np.isnan(got[0]) and got[1] == 1.0
    got = run(Opcode.REDUCE_PRECISION, [x], T.F32, exponent_bits=5, mantissa_bits=0)
    assert got.tolist() == [np.inf, 1.0]


def test_reduce_precision_rounding_carries_into_the_exponent() -> None:
    x = f32(1.9999999, 1.75, 1.25)  # 1.75 is a tie at one mantissa bit: to even (2.0)
    got = run(Opcode.REDUCE_PRECISION, [x], T.F32, exponent_bits=8, mantissa_bits=1)
    assert got.tolist() == [2.0, 2.0, 1.0]


def test_reduce_precision_on_f64_and_f16() -> None:
    x = np.array([1 / 3, 1e-300, 1e300])
    got = run(Opcode.REDUCE_PRECISION, [x], T.F64, exponent_bits=8, mantissa_bits=23)
    np.testing.assert_array_equal(got, [np.float32(1 / 3), 0.0, np.inf])
    h = np.array([1 / 3], np.float16)
    assert run(Opcode.REDUCE_PRECISION, [h], T.F16, exponent_bits=5, mantissa_bits=10) == h


# --- is-finite, real/imag/complex, leaves -----------------------------------------------------


def test_is_finite() -> None:
    got = run(Opcode.IS_FINITE, [f32(1, np.inf, -np.inf, np.nan, 0)], T.PRED)
    assert got.tolist() == [True, False, False, False, True]
    got = run(Opcode.IS_FINITE, [np.array([np.inf, 1], BF16)], T.PRED)
    assert got.tolist() == [False, True]


def test_complex_real_imag() -> None:
    z = run(Opcode.COMPLEX, [f32(1, np.inf), f32(np.inf, 2)], T.C64)
    assert z.dtype == np.complex64
    assert z.real.tolist() == [1, np.inf] and z.imag.tolist() == [np.inf, 2]
    assert run(Opcode.REAL, [z], T.F32).tolist() == [1, np.inf]
    assert run(Opcode.IMAG, [z], T.F32).tolist() == [np.inf, 2]
    assert run(Opcode.IMAG, [f32(5)], T.F32).tolist() == [0.0]


def test_complex_arithmetic_and_functions() -> None:
    a = np.array([1 + 2j, -0.5 + 0.25j], np.complex64)
    b = np.array([3 - 1j, 2 + 2j], np.complex64)
    np.testing.assert_allclose(run(Opcode.MULTIPLY, [a, b], T.C64), a * b, rtol=1e-6)
    np.testing.assert_allclose(run(Opcode.DIVIDE, [a, b], T.C64), a / b, rtol=1e-6)
    np.testing.assert_allclose(run(Opcode.EXPONENTIAL, [a], T.C64), np.exp(a), rtol=1e-6)
    np.testing.assert_allclose(run(Opcode.SQRT, [a], T.C64), np.sqrt(a), rtol=1e-6)
    got = run(Opcode.POWER, [np.array([0j, 1 + 0j], np.complex64),
                             np.array([0j, np.nan + 0j], np.complex64)], T.C64)
    assert got.tolist() == [1 + 0j, 1 + 0j]


def test_atan2_quadrants() -> None:
    y, x = f32(1, 1, -1, -1, 0, -0.0), f32(1, -1, 1, -1, -1, -1)
    np.testing.assert_allclose(run(Opcode.ATAN2, [y, x], T.F32),
                               np.arctan2(y.astype(np.float64), x.astype(np.float64)),
                               rtol=1e-7)


def _leaf_module(op: Opcode, shape: Shape, **attrs: Any) -> HloModule:
    module = HloModule("m")
    comp = module.new_computation("main", entry=True)
    comp.set_root(comp.add(op, shape=shape, **attrs))
    return module


def test_iota_along_a_dimension_in_any_type() -> None:
    (got,) = evaluate(_leaf_module(Opcode.IOTA, Shape.array(T.S32, (2, 3)), iota_dimension=1))
    np.testing.assert_array_equal(got, [[0, 1, 2], [0, 1, 2]])
    (got,) = evaluate(_leaf_module(Opcode.IOTA, Shape.array(T.F32, (3, 2)), iota_dimension=0))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, [[0, 0], [1, 1], [2, 2]])
    (got,) = evaluate(_leaf_module(Opcode.IOTA, Shape.array(T.BF16, (300,)), iota_dimension=0))
    assert got.dtype == BF16 and float(got[257]) == 256.0  # 257 is not a bf16 value


def test_constant_returns_its_literal() -> None:
    lit = np.arange(6, dtype=np.float32).reshape(2, 3)
    (got,) = evaluate(_leaf_module(Opcode.CONSTANT, Shape.array(T.F32, (2, 3)), literal=lit))
    np.testing.assert_array_equal(got, lit)
    assert got.dtype == np.float32


def test_copy_does_not_share_the_buffer() -> None:
    x = f32(1, 2, 3)
    got = run(Opcode.COPY, [x], T.F32)
    np.testing.assert_array_equal(got, x)
    assert not np.shares_memory(got, x)


def test_ops_undefined_on_a_type_raise_evaluation_error() -> None:
    with pytest.raises(hlo.EvaluationError, match="count-leading-zeros"):
        run(Opcode.CLZ, [f32(1)], T.F32)
    with pytest.raises(hlo.EvaluationError, match="shift-left"):
        run(Opcode.SHIFT_LEFT, [f32(1), f32(1)], T.F32)


# --- the corpus (JAX/XLA outputs) -------------------------------------------------------------

CORPUS_CATEGORIES = ("elementwise", "convert")


def _corpus() -> list[dict]:
    from tests.conftest import corpus_cases

    return [c for c in corpus_cases("hlo") if c["category"] in CORPUS_CATEGORIES]


@pytest.mark.parametrize("case", _corpus(), ids=lambda c: c["name"])
def test_corpus_case(case: dict) -> None:
    parser = pytest.importorskip("hlo.parser", reason="hlo/parser.py is not written yet")
    from tests.corpus.test_hlo_corpus import assert_outputs_match, load_case

    text, args, want = load_case(case)
    module = parser.parse(text)
    missing = sorted({i.opcode.value for c in module.computations for i in c.instructions
                      if i.opcode not in EVAL})
    if missing:
        pytest.skip(f"kernels of another part are not written yet: {missing}")
    assert_outputs_match(case, evaluate(module, *args), want)
