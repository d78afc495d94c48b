"""Inline f32 pow and cbrt, evaluated in f64.

pow(x, y) = 2^(y log2|x|) with the logarithm and the exponential in f64 (log2 |x| to
2^-38 relative, so y log2|x| is right to 2^-30 absolute wherever the result is a finite
nonzero f32) and then the sign and C99's special cases applied by selects. cbrt refines a
bit-level first guess by two Halley steps in f64.
"""

from __future__ import annotations

from llvmlite import ir

from backends.cpu_math.exp_log import LN2, exp2_f64, log_f64
from backends.cpu_math.scalar import bits, call, clamp, fconst, fma, iconst, is_nan, to_f32, to_f64
from backends.llvm.irutil import F32, I32


def pow_f32(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    """x^y with C99's special cases: x^0 = 1 and 1^y = 1 even for NaN; a negative x gives
    NaN for a non-integer y and the sign of the result for an odd one; 0 and inf follow
    from log2 0 = -inf and log2 inf = inf, with -0 and -inf signed like other negatives."""
    ax = to_f64(b, call(b, "fabs", x))
    inf = fconst(ax, float("inf"))
    # f32 magnitudes are normal f64 numbers in [2^-149, 2^128].
    log2_ax = b.fmul(log_f64(b, clamp(b, ax, 2.0**-150, 2.0**129)), fconst(ax, 1 / LN2))
    zero = fconst(ax, 0.0)
    log2_ax = b.select(b.fcmp_ordered("==", ax, zero), fconst(ax, float("-inf")), log2_ax)
    log2_ax = b.select(b.fcmp_ordered("==", ax, inf), inf, log2_ax)
    z = b.fmul(to_f64(b, y), log2_ax)
    # |x| = 1 gives 1 even for infinite y (inf * 0 would be NaN).
    z = b.select(b.fcmp_ordered("==", log2_ax, zero), zero, z)
    magnitude = to_f32(b, exp2_f64(b, clamp(b, z, -400.0, 400.0)))

    y_integral = b.fcmp_ordered("==", call(b, "roundeven", y), y)
    # Every f32 from 2^24 on is even; below, the lowest bit of the integer says.
    y_small = clamp(b, y, -(2.0**24), 2.0**24)
    y_low_bit = b.trunc(b.fptosi(y_small, I32), ir.IntType(1))
    y_odd = b.and_(y_integral, y_low_bit)
    x_sign = b.icmp_signed("<", bits(b, x), iconst(I32, 0))
    result = b.select(b.and_(x_sign, y_odd), b.fneg(magnitude), magnitude)

    nan = fconst(F32, float("nan"))
    x_finite_negative = b.and_(
        b.fcmp_ordered("<", x, fconst(x, 0.0)), b.fcmp_ordered("!=", x, fconst(x, -float("inf")))
    )
    result = b.select(b.and_(x_finite_negative, b.not_(y_integral)), nan, result)
    result = b.select(b.or_(is_nan(b, x), is_nan(b, y)), nan, result)
    one_anyway = b.or_(
        b.fcmp_ordered("==", y, fconst(y, 0.0)), b.fcmp_ordered("==", x, fconst(x, 1.0))
    )
    return b.select(one_anyway, fconst(F32, 1.0), result)


# cbrt of the bits: bits(a) / 3 + _CBRT_BIAS is within 4% of bits(cbrt a) for normal a.
_CBRT_BIAS = 709_958_130


def cbrt_f32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """cbrt x = sign(x) y, y = cbrt |x| by two Halley steps y <- y (y^3 + 2a) / (2y^3 + a)
    in f64 from a guess cut from the bits (relative error 4% -> 1e-5 -> below 2^-40).

    +-0, +-inf and NaN are returned as they are.
    """
    a = call(b, "fabs", x)
    # Subnormals are scaled by 2^24 for the guess, and its cube root then by 2^-8.
    subnormal = b.fcmp_ordered("<", a, fconst(a, 2.0**-126))
    scaled = b.select(subnormal, b.fmul(a, fconst(a, 2.0**24)), a)
    guess_bits = b.add(b.udiv(bits(b, scaled), iconst(I32, 3)), iconst(I32, _CBRT_BIAS))
    guess = b.bitcast(guess_bits, F32)
    guess = b.select(subnormal, b.fmul(guess, fconst(a, 2.0**-8)), guess)
    ad = to_f64(b, a)
    yd = to_f64(b, guess)
    for _ in range(2):
        cube = b.fmul(b.fmul(yd, yd), yd)
        numerator = fma(b, ad, fconst(ad, 2.0), cube)
        denominator = fma(b, cube, fconst(ad, 2.0), ad)
        yd = b.fmul(yd, b.fdiv(numerator, denominator))
    result = call(b, "copysign", to_f32(b, yd), x)
    zero_or_nan = b.fcmp_unordered("==", x, fconst(x, 0.0))
    keep = b.or_(zero_or_nan, b.fcmp_ordered("==", a, fconst(a, float("inf"))))
    return b.select(keep, x, result)
