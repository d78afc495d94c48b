"""Inline f32 exp, expm1, tanh, log and log1p, and the f64 cores (exp2, log) that the
higher-accuracy approximations (pow, log1p, erf) evaluate their inner steps with.

Each f32 function is within a few ulp of the correctly rounded result over the whole f32
range, with NaN, infinities, -0 and subnormals as C's libm has them (the tests sweep the
range). exp, expm1, tanh and log compute in f32 because they are the hot ones (an AVX2
instruction takes 8 f32 lanes but only 4 f64 ones); log1p and the cores used by pow and erf
work in f64, where a polynomial of modest degree leaves the final rounding to f32 as the
only sizeable error.

Range reduction follows Cody and Waite: x = n ln 2 + r with ln 2 split into a short high
part (n * high is exact) and a low part, so r carries no cancellation error.
"""

from __future__ import annotations

import math

from llvmlite import ir

from backends.cpu_math.scalar import (
    call,
    clamp,
    clamp_keeping_nan,
    exponent_and_mantissa,
    fconst,
    fma,
    horner,
    iconst,
    is_nan,
    pairwise,
    pow2,
    round_product_to_biased_int,
    round_to_int,
    scale_half_by_pow2,
    to_f32,
    to_f64,
)
from backends.llvm.irutil import F32, F64, I64

LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453
# ln 2 = LN2_HI + LN2_LO with LN2_HI = 355/512 (9 significant bits), so n * LN2_HI is exact
# for |n| < 2^15 in f32.
LN2_HI = 0.693359375
LN2_LO = LN2 - LN2_HI

# P(r) ~ (e^r - 1 - r) / r^2 for |r| <= 0.3535 (ln(2)/2 and the slack of an unfused
# rounding to n): minimax polynomials of degree 4 (Lawson's iteration against 120-bit
# references, coefficients then rounded to f32), one weighted for e^r = 1 + r + r^2 P(r)
# (relative error < 2^-28), one for expm1 r = r + r^2 P(r) (< 2^-26). Taylor series of the
# same accuracy need one (exp) and two (expm1, tanh) more multiply-adds per element.
_EXP_TAIL = [0.4999999403953552, 0.16666509211063385, 0.04166853055357933,
             0.008370140567421913, 0.0013811651151627302]
# 2 e^r, the polynomial times two (exactly): scale_half_by_pow2 takes twice the value.
_TWICE_EXP_POLY = [2.0 * c for c in (1.0, 1.0, *_EXP_TAIL)]
_EXPM1_TAIL = [0.4999999701976776, 0.16666533052921295, 0.04166724532842636,
               0.00836785975843668, 0.0013882266357541084]
# W(h) = -2 P(-2h) for P = _EXPM1_TAIL (tanh_f32): each coefficient times a power of two.
_TANH_TAIL = [-2.0 * c * (-2.0) ** k for k, c in enumerate(_EXPM1_TAIL)]
# 2^f = sum (f ln 2)^k / k! for |f| <= 1/2, to f^10: truncation < 2^-37 relative.
_EXP2_TAYLOR = [LN2**k / math.factorial(k) for k in range(11)]


def _atanh_tail(terms: int) -> list[float]:
    """R(z) / z for log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)), s = f / (2 + f):
    R(z) = 2z/3 + 2z^2/5 + ..., the series of 2 atanh(s) - 2s in z = s^2."""
    return [2.0 / (2 * k + 3) for k in range(terms)]


# |s| <= 0.1716 on [sqrt(1/2), sqrt(2)): 4 terms leave < 2^-28 relative error, 6 < 2^-39.
_LOG_TAIL_F32 = _atanh_tail(4)
_LOG_TAIL_F64 = _atanh_tail(6)


# --- exponentials --------------------------------------------------------------------------


def _reduce_ln2(b: ir.IRBuilder, x: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(r, n) with x = n ln 2 + r, |r| <= ln(2)/2 (slightly more after rounding), n an i32
    carrying POW2_NEUTRAL_BIAS (it only feeds pow2 and scale_half_by_pow2).

    x must be clamped to a range where n fits the exact-product bound of LN2_HI; a NaN x
    gives a NaN r (and some n).
    """
    n, biased_n = round_product_to_biased_int(b, x, LOG2E)
    r = fma(b, n, fconst(x, -LN2_HI), x)
    r = fma(b, n, fconst(x, -LN2_LO), r)
    return r, biased_n


def exp_f32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """e^x = 2^n e^r, e^r by a polynomial; 2^n is applied in two steps so that results in
    the subnormal range and up to the overflow threshold are scaled exactly."""
    # Beyond these bounds the result is 0 or inf anyway. A NaN x flows through the
    # polynomial (NaN times any scale is NaN), so no select restores it.
    r, n = _reduce_ln2(b, clamp_keeping_nan(b, x, -104.0, 89.0))
    return scale_half_by_pow2(b, horner(b, r, _TWICE_EXP_POLY), n)


def _expm1_reduced(b: ir.IRBuilder, x: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(q, n) with e^x - 1 = 2^n (q + 1) - 1, q = e^r - 1 by a polynomial, for an x
    already clamped to [-18, 89] (the exact-product range of _reduce_ln2)."""
    r, n = _reduce_ln2(b, x)
    r2 = b.fmul(r, r)
    return fma(b, r2, pairwise(b, r, r2, _EXPM1_TAIL), r), n


def expm1_f32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """e^x - 1; below -18 it is -1 and above 89 infinite in f32.

    e^x - 1 = 2^n q + (2^n - 1), both terms exact but for the final rounding when |n| <= 24
    (and the rounding of 2^n - 1 is harmless for larger |n|: the result is then 2^n (1 + q)
    or -1 to within an ulp). It is evaluated as 2 (2^(n-1) q + (2^(n-1) - 1/2)), with
    2^(n-1) and the doubling exact, since 2^n itself overflows for n = 128.
    """
    q, n = _expm1_reduced(b, clamp(b, x, -18.0, 89.0))
    half_scale = pow2(b, b.sub(n, ir.Constant(n.type, 1)), x.type)
    y = fma(b, half_scale, q, b.fsub(half_scale, fconst(x, 0.5)))
    y = b.fmul(y, fconst(x, 2.0))
    # Below 2^-25, e^x - 1 rounds to x; the select also keeps -0 and subnormals exact (the
    # halving above would round a subnormal q).
    tiny = b.fcmp_ordered("<", call(b, "fabs", x), fconst(x, 2.0**-25))
    return b.select(b.or_(tiny, is_nan(b, x)), x, y)


def tanh_f32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """tanh x = v / (2 - v) with v = 1 - e^(-2x), for x clamped to [-10, 10] (beyond 9.011,
    tanh rounds to +-1; the bound is larger so that the quotient rounds there too).

    One expm1 and one division, no cancellation anywhere: for x >= 0, v is in [0, 1) and
    2 - v in (1, 2]; for x < 0, v is negative and 2 - v = 2 + |v| has the larger
    magnitude, so the quotient tends to -1 without a subtraction that cancels. With
    -2x = n ln 2 + r and q = e^r - 1, v = (1 - 2^n) - 2^n q; 1 - 2^n is exact up to
    n = 24 and rounds harmlessly beyond (n <= 29). The reduction takes one step (ln 2
    rounded to f32): its error in r, up to about n 2^-24, is scaled by 2^n in v for
    x > 0 (n <= 0), and for x < 0 shrinks in the quotient with 2 / (2 - v), which falls
    faster than n grows. For tiny x (n = 0), v = -q = 2x exactly,
    subnormals included, so the quotient is x exactly; -0 stays -0 (see below). A NaN
    x stays NaN all the way through.

    The reduction works on x itself: with k = -n = round(2x log2 e), h = x - k ln(2)/2 =
    -r/2, and q = -2w with w = h + h^2 W(h), W(h) = -2 P(-2h) (P the expm1 tail), whose
    coefficients are P's times powers of two: every step is that of the evaluation in r
    scaled by a power of two, without the multiplication that forms -2x.
    """
    a = clamp_keeping_nan(b, x, -10.0, 10.0)
    k, biased_k = round_product_to_biased_int(b, a, 2.0 * LOG2E)
    # k * (-ln(2)/2) is -0 for k = 0, so h keeps the sign of a zero a; so do w (its
    # product term is -0 there: W(0) = -1) and v = 2 w - (2^n - 1) (+0 subtracted).
    h = fma(b, k, fconst(x, -LN2 / 2), a)
    h2 = b.fmul(h, h)
    w = fma(b, h2, pairwise(b, h, h2, _TANH_TAIL), h)
    # 2^n and 2^(n + 1) for n = -k: the f32 exponent fields bias - k and bias + 1 - k,
    # from one shift of k.
    mantissa, bias = 23, 127
    k_field = b.shl(biased_k, iconst(biased_k, mantissa))
    scale = b.bitcast(b.sub(iconst(k_field, bias << mantissa), k_field), x.type)
    twice_scale = b.bitcast(b.sub(iconst(k_field, (bias + 1) << mantissa), k_field), x.type)
    v = fma(b, twice_scale, w, b.fneg(b.fsub(scale, fconst(x, 1.0))))
    return b.fdiv(v, b.fsub(fconst(x, 2.0), v))


def exp2_f64(b: ir.IRBuilder, z: ir.Value) -> ir.Value:
    """2^z for an f64 z clamped to [-1000, 1000] by the caller, to < 2^-36 relative error
    (enough for results that are rounded to f32)."""
    n, ni = round_to_int(b, z)
    p = horner(b, b.fsub(z, n), _EXP2_TAYLOR)
    return b.fmul(p, pow2(b, b.sext(ni, I64), F64))


# --- logarithms ----------------------------------------------------------------------------


def _log_mantissa(b: ir.IRBuilder, m: ir.Value, tail: list[float]) -> ir.Value:
    """log m for m in [sqrt(1/2), sqrt(2)), as f - f^2/2 + s (f^2/2 + R(s^2)) with f = m - 1
    (exact) and s = f / (2 + f): the leading terms carry no rounding from s."""
    f = b.fsub(m, fconst(m, 1.0))
    s = b.fdiv(f, b.fadd(f, fconst(m, 2.0)))
    z = b.fmul(s, s)
    half_f2 = b.fmul(b.fmul(f, f), fconst(m, 0.5))
    tail_value = b.fmul(z, horner(b, z, tail))
    return b.fadd(b.fsub(f, half_f2), b.fmul(s, b.fadd(half_f2, tail_value)))


def log_f32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """log x = e ln 2 + log m with x = m 2^e, m in [sqrt(1/2), sqrt(2)); subnormal x are
    scaled into the normal range first; log 0 = -inf, log inf = inf, NaN for x < 0."""
    is_sub = b.fcmp_ordered("<", x, fconst(x, 1.1754943508222875e-38))
    xs = b.select(is_sub, b.fmul(x, fconst(x, 2.0**23)), x)
    e, m = exponent_and_mantissa(b, xs)
    e = b.select(is_sub, b.sub(e, ir.Constant(e.type, 23)), e)
    ef = b.sitofp(e, F32)
    log_m = _log_mantissa(b, m, _LOG_TAIL_F32)
    result = fma(b, ef, fconst(x, LN2_HI), fma(b, ef, fconst(x, LN2_LO), log_m))
    return _log_special_cases(b, x, result)


def _log_special_cases(b: ir.IRBuilder, x: ir.Value, result: ir.Value) -> ir.Value:
    """log's value at 0 (-inf, either sign), +inf (inf), below 0 and NaN (NaN)."""
    inf = fconst(x, float("inf"))
    result = b.select(b.fcmp_ordered("==", x, fconst(x, 0.0)), fconst(x, float("-inf")), result)
    result = b.select(b.fcmp_ordered("==", x, inf), inf, result)
    invalid = b.fcmp_unordered("<", x, fconst(x, 0.0))
    return b.select(invalid, fconst(x, float("nan")), result)


def log_f64(b: ir.IRBuilder, u: ir.Value) -> ir.Value:
    """log u for a positive normal f64 u, to < 2^-38 relative error (other u: unspecified)."""
    e, m = exponent_and_mantissa(b, u)
    ef = b.sitofp(e, F64)
    return fma(b, ef, fconst(u, LN2), _log_mantissa(b, m, _LOG_TAIL_F64))


def log1p_f32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """log(1 + x) = log(u) * x / (u - 1) with u = 1 + x rounded in f64 (Goldberg's trick:
    the factor x / (u - 1) undoes the rounding of u), and x itself where u = 1.

    Special cases: -1 gives -inf, below -1 NaN, +inf inf; -0 and subnormals are kept.
    """
    xd = to_f64(b, x)
    u = b.fadd(xd, fconst(xd, 1.0))
    # u is at least 2^-24 when positive, so log_f64 sees a normal number; 0, negative
    # and NaN are fixed below.
    log_u = log_f64(b, clamp(b, u, 2.0**-30, 2.0**200))
    corrected = b.fmul(log_u, b.fdiv(xd, b.fsub(u, fconst(xd, 1.0))))
    y = to_f32(b, b.select(b.fcmp_ordered("==", u, fconst(xd, 1.0)), xd, corrected))
    inf = fconst(x, float("inf"))
    y = b.select(b.fcmp_ordered("==", x, inf), inf, y)
    y = b.select(b.fcmp_ordered("==", x, fconst(x, -1.0)), fconst(x, float("-inf")), y)
    invalid = b.fcmp_unordered("<", x, fconst(x, -1.0))
    return b.select(invalid, fconst(x, float("nan")), y)
