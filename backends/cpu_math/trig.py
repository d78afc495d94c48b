"""Inline f32 sin, cos, tan and atan2, evaluated in f64 after an exact argument reduction.

sin/cos/tan reduce x to r = x - n pi/2 with |r| <= pi/4 by Payne and Hanek's method for
every |x| >= pi/4, so the result is right for huge arguments too. x = m 2^(e-23) with an
integer m < 2^24, and x * 2/pi mod 4 only depends on a 96-bit window of the bits of 2/pi
starting at bit e - 24: earlier bits contribute multiples of 4, later ones less than 2^-70.
The window is cut from eight constant words with selects and shifts (no table in memory,
so no gathers), multiplied by m in 64-bit integer lanes, and the 64 bits of the product
around the binary point give n mod 4 and the fraction, r to within 2^-60. That is enough:
no finite f32 comes closer than 2^-29.2 to a multiple of pi/2 (the closest is
16367173 * 2^72; continued fractions of 2^k * 2/pi bound every exponent), so r keeps a
relative error below 2^-30.

The polynomials then run in f64, where Taylor series to modest degree leave the rounding to
f32 as the only sizeable error. atan2 divides the smaller magnitude by the larger, reduces
to |t| <= tan(pi/8) and fixes the octant, also in f64.
"""

from __future__ import annotations

import math

from llvmlite import ir

from backends.cpu_math.scalar import (
    bits,
    call,
    fconst,
    fma,
    horner,
    iconst,
    is_nan,
    to_f32,
    to_f64,
)
from backends.llvm.irutil import F64, I32, I64

# 2/pi in binary, 32 bits a word, after one word of zeros (so that the window of an x in
# [1/2, 1), which starts 25 bits before the binary point, is cut like any other).
_TWO_OVER_PI_WORDS = (
    0x00000000, 0xA2F9836E, 0x4E441529, 0xFC2757D1,
    0xF534DDC0, 0xDB629599, 0x3C439041, 0xFE5163AB,
)
# Word pairs as 64-bit values: the window's three 32-bit parts are each cut from one pair.
_WORD_PAIRS = tuple(
    (hi << 32) | lo for hi, lo in zip(_TWO_OVER_PI_WORDS, _TWO_OVER_PI_WORDS[1:], strict=False)
)
# The reduction works on 62 bits after the binary point: r = fraction * (pi/2) / 2^62.
_PIO2_SCALED = (math.pi / 2) / 2.0**62
_PIO4 = math.pi / 4

# sin r = r + r^3 S(r^2), Taylor to r^11: < 2^-36 relative for |r| <= pi/4.
_SIN_TAIL = [(-1) ** (k + 1) / math.factorial(2 * k + 3) for k in range(5)]
# cos r = 1 - r^2/2 + ..., Taylor to r^10: < 2^-32 relative for |r| <= pi/4.
_COS_SERIES = [(-1) ** k / math.factorial(2 * k) for k in range(6)]
# atan t = t + t^3 A(t^2), Taylor to t^23: < 2^-35 relative for |t| <= tan(pi/8).
_ATAN_TAIL = [(-1) ** (k + 1) / (2 * k + 3) for k in range(11)]
_TAN_PI_8 = math.sqrt(2.0) - 1.0


def _reduce(b: ir.IRBuilder, x: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(r, n): |x| = (4k + n) pi/2 + r with |r| <= pi/4 (an f64) and n in 0..3 (an i32).

    For a finite f32 x; |x| < pi/4 gives r = |x| and n = 0 without rounding.
    """
    a = call(b, "fabs", x)
    raw = b.zext(bits(b, a), I64)
    # Where the window starts: bit e - 24 of 2/pi is bit e + 7 of the padded words. Inputs
    # below pi/4 (e < -1) do not use the window; clamping keeps their shifts in range.
    start = b.sub(b.lshr(raw, iconst(raw, 23)), iconst(raw, 127 - 7))
    start = b.select(b.icmp_signed("<", start, iconst(raw, 0)), iconst(raw, 0), start)
    word = b.lshr(start, iconst(raw, 5))
    shift = b.and_(start, iconst(raw, 31))
    parts = [_window_part(b, word, shift, k) for k in range(3)]
    m = b.or_(b.and_(raw, iconst(raw, 0x7FFFFF)), iconst(raw, 0x800000))
    # Bits 32..95 of m * window: the integer part mod 4 in the top two bits, then the
    # fraction (the bits below 32 and beyond the window change r by less than 2^-60).
    hi, mid, lo = (b.mul(m, p) for p in parts)
    acc = b.add(b.add(b.shl(hi, iconst(raw, 32)), mid), b.lshr(lo, iconst(raw, 32)))
    n = b.lshr(b.add(acc, iconst(raw, 1 << 61)), iconst(raw, 62))
    fraction = _i64_to_f64(b, b.sub(acc, b.shl(n, iconst(raw, 62))))
    r = b.fmul(fraction, fconst(F64, _PIO2_SCALED))
    small = b.fcmp_unordered("<", a, fconst(a, _PIO4))
    r = b.select(small, to_f64(b, a), r)
    n = b.select(small, iconst(I32, 0), b.trunc(n, I32))
    return r, n


def _i64_to_f64(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
    """An i64 as the nearest f64, by halves of 32 bits converted exactly with the 2^52
    trick: x86 before AVX-512 has no vector instruction for sitofp i64, and LLVM would
    convert lane by lane."""
    # 1.5 * 2^52 + k has the bits of 1.5 * 2^52 plus k for |k| < 2^51.
    magic = 0x4338000000000000
    magic_value = fconst(F64, 1.5 * 2.0**52)
    high = b.ashr(v, iconst(v, 32))
    low = b.and_(v, iconst(v, 0xFFFFFFFF))
    high_f = b.fsub(b.bitcast(b.add(high, iconst(v, magic)), F64), magic_value)
    low_f = b.fsub(b.bitcast(b.add(low, iconst(v, magic)), F64), magic_value)
    return fma(b, high_f, fconst(F64, 2.0**32), low_f)


def _window_part(b: ir.IRBuilder, word: ir.Value, shift: ir.Value, k: int) -> ir.Value:
    """Bits [32 (word + k) + shift, +32) of the padded words of 2/pi, as an i64 < 2^32."""
    pair: ir.Value = iconst(I64, _WORD_PAIRS[k])
    for w in range(1, 5):
        chosen = b.icmp_unsigned("==", word, iconst(I64, w))
        pair = b.select(chosen, iconst(I64, _WORD_PAIRS[w + k]), pair)
    return b.lshr(b.shl(pair, shift), iconst(I64, 32))


def _sin_cos_f64(b: ir.IRBuilder, r: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(sin r, cos r) for |r| <= pi/4 (r = -0 gives sin -0)."""
    r2 = b.fmul(r, r)
    sin = fma(b, b.fmul(r, r2), horner(b, r2, _SIN_TAIL), r)
    cos = horner(b, r2, _COS_SERIES)
    return sin, cos


def _finish(b: ir.IRBuilder, x: ir.Value, value: ir.Value, odd: bool) -> ir.Value:
    """value (f64, computed for |x|) rounded to f32, with x's sign for an odd function and
    NaN for infinite or NaN x."""
    y = to_f32(b, value)
    if odd:
        sign = b.and_(bits(b, x), iconst(I32, -(2**31)))
        y = b.bitcast(b.xor(bits(b, y), sign), x.type)
    return b.select(is_nan(b, b.fsub(x, x)), fconst(x, float("nan")), y)


def sin_f32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """sin x: +-sin r or +-cos r by quadrant."""
    r, n = _reduce(b, x)
    sin, cos = _sin_cos_f64(b, r)
    value = b.select(b.trunc(n, ir.IntType(1)), cos, sin)
    value = b.select(b.icmp_unsigned(">=", n, iconst(n, 2)), b.fneg(value), value)
    return _finish(b, x, value, odd=True)


def cos_f32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """cos x: +-cos r or -+sin r by quadrant."""
    r, n = _reduce(b, x)
    sin, cos = _sin_cos_f64(b, r)
    value = b.select(b.trunc(n, ir.IntType(1)), b.fneg(sin), cos)
    value = b.select(b.icmp_unsigned(">=", n, iconst(n, 2)), b.fneg(value), value)
    return _finish(b, x, value, odd=False)


def tan_f32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """tan x = sin r / cos r in even quadrants, -cos r / sin r in odd ones."""
    r, n = _reduce(b, x)
    sin, cos = _sin_cos_f64(b, r)
    odd = b.trunc(n, ir.IntType(1))
    value = b.fdiv(b.select(odd, b.fneg(cos), sin), b.select(odd, sin, cos))
    return _finish(b, x, value, odd=True)


def atan2_f32(b: ir.IRBuilder, y: ir.Value, x: ir.Value) -> ir.Value:
    """atan2(y, x) with C's special cases (signed zeros, infinities, NaN)."""
    ax = to_f64(b, call(b, "fabs", x))
    ay = to_f64(b, call(b, "fabs", y))
    steep = b.fcmp_ordered(">", ay, ax)
    num = b.select(steep, ax, ay)
    den = b.select(steep, ay, ax)
    # inf/inf (both infinite) means the diagonal, 0/0 the axis.
    inf = fconst(F64, float("inf"))
    both_inf = b.fcmp_ordered("==", num, inf)
    num = b.select(both_inf, fconst(F64, 1.0), num)
    den = b.select(both_inf, fconst(F64, 1.0), den)
    den = b.select(b.fcmp_ordered("==", den, fconst(F64, 0.0)), fconst(F64, 1.0), den)
    t = b.fdiv(num, den)
    # atan t = pi/4 + atan((t - 1) / (t + 1)) moves t in (tan(pi/8), 1] to (-tan(pi/8), 0].
    upper = b.fcmp_ordered(">", t, fconst(F64, _TAN_PI_8))
    one = fconst(F64, 1.0)
    t = b.select(upper, b.fdiv(b.fsub(t, one), b.fadd(t, one)), t)
    t2 = b.fmul(t, t)
    angle = fma(b, b.fmul(t, t2), horner(b, t2, _ATAN_TAIL), t)
    angle = b.select(upper, b.fadd(angle, fconst(F64, _PIO4)), angle)
    angle = b.select(steep, b.fsub(fconst(F64, math.pi / 2), angle), angle)
    x_negative = b.icmp_signed("<", bits(b, x), iconst(I32, 0))
    angle = b.select(x_negative, b.fsub(fconst(F64, math.pi), angle), angle)
    result = call(b, "copysign", to_f32(b, angle), y)
    invalid = b.or_(is_nan(b, x), is_nan(b, y))
    return b.select(invalid, fconst(y, float("nan")), result)
