"""Building blocks of the inline approximations: constants, fused multiply-add, polynomials,
clamps, bit fields and the scaling by powers of two, on one f32, f64 or integer value.

Everything here emits straight-line code (selects, never branches or calls to libm), so that
the loop vectoriser turns a loop over an approximation into vector code. Helpers take the
value they work on and derive the LLVM type from it; which function an approximation
computes, and how accurately, is the business of the modules that use them.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from llvmlite import ir

from backends.llvm.irutil import F32, F64, I32, I64, intrinsic

# f32 / f64 layout: (mantissa bits, exponent bias, integer type of the same width).
_LAYOUT: dict[str, tuple[int, int, ir.IntType]] = {
    "float": (23, 127, I32),
    "double": (52, 1023, I64),
}


def suffix(ty: ir.Type) -> str:
    """The intrinsic suffix of a float type: "f32" or "f64"."""
    return "f32" if ty == F32 else "f64"


def fconst(like: ir.Value | ir.Type, value: float) -> ir.Constant:
    """A float constant of the type of `like` (a value or a type)."""
    ty = like if isinstance(like, ir.Type) else like.type
    return ir.Constant(ty, value)


def iconst(like: ir.Value | ir.Type, value: int) -> ir.Constant:
    """An integer constant of the type of `like`, given as a possibly negative Python int."""
    ty = like if isinstance(like, ir.Type) else like.type
    return ir.Constant(ty, value & ((1 << ty.width) - 1))


def call(b: ir.IRBuilder, name: str, *args: ir.Value) -> ir.Value:
    """The float intrinsic `llvm.<name>.<f32|f64>` applied to `args`."""
    ty = args[0].type
    return intrinsic(b, f"llvm.{name}.{suffix(ty)}", ty, list(args))


def fma(b: ir.IRBuilder, x: ir.Value, y: ir.Value, z: ir.Value) -> ir.Value:
    """x * y + z, fused where the target has an FMA instruction (llvm.fmuladd).

    The approximations are accurate either way; fusing is only faster.
    """
    return call(b, "fmuladd", x, y, z)


def horner(b: ir.IRBuilder, x: ir.Value, coefficients: Sequence[float]) -> ir.Value:
    """c[0] + x * (c[1] + x * (c[2] + ...)) for coefficients c, in x's float type."""
    acc: ir.Value = fconst(x, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        acc = fma(b, acc, x, fconst(x, c))
    return acc


def pairwise(b: ir.IRBuilder, x: ir.Value, x2: ir.Value, coefficients: Sequence[float]
             ) -> ir.Value:
    """The polynomial of `horner`, given x2 = x * x, by Estrin's scheme:
    (c[0] + c[1] x) + x2 ((c[2] + c[3] x) + x2 (...)).

    The pairs are independent, so the chain of dependent multiply-adds is about half as
    long as Horner's, for as many of them when the count of coefficients is odd (one more
    when even): less latency for the out-of-order core to hide in long fused loop bodies.
    """
    pairs: list[ir.Value] = []
    for k in range(0, len(coefficients), 2):
        if k + 1 < len(coefficients):
            pairs.append(fma(b, x, fconst(x, coefficients[k + 1]), fconst(x, coefficients[k])))
        else:
            pairs.append(fconst(x, coefficients[k]))
    acc = pairs[-1]
    for pair in reversed(pairs[:-1]):
        acc = fma(b, x2, acc, pair)
    return acc


def is_nan(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """x != x."""
    return b.fcmp_unordered("uno", x, x)


def clamp(b: ir.IRBuilder, x: ir.Value, lo: float, hi: float) -> ir.Value:
    """x limited to [lo, hi]; NaN becomes `lo` (callers restore NaN where it matters).

    Written as compare-and-select, which x86 lowers to one min and one max instruction,
    where llvm.minnum/maxnum would add NaN fix-ups.
    """
    low = b.select(b.fcmp_unordered("<", x, fconst(x, lo)), fconst(x, lo), x)
    return b.select(b.fcmp_ordered(">", low, fconst(x, hi)), fconst(x, hi), low)


def clamp_keeping_nan(b: ir.IRBuilder, x: ir.Value, lo: float, hi: float) -> ir.Value:
    """x limited to [lo, hi], NaN kept (one max and one min instruction on x86 as well).

    For approximations whose arithmetic carries a NaN argument through to the result by
    itself, which saves the compare-and-select that would restore it at the end.
    """
    low = b.select(b.fcmp_ordered("<", x, fconst(x, lo)), fconst(x, lo), x)
    return b.select(b.fcmp_ordered(">", low, fconst(x, hi)), fconst(x, hi), low)


def bits(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """The IEEE bits of a float as an integer of the same width."""
    return b.bitcast(x, _LAYOUT[str(x.type)][2])


def from_bits(b: ir.IRBuilder, i: ir.Value, ty: ir.Type) -> ir.Value:
    """The float of type `ty` whose IEEE bits are the integer `i`."""
    return b.bitcast(i, ty)


def _magic_bits(ty: str) -> int:
    """The bits of 1.5 * 2^p (p the mantissa width): the exponent p + bias, then the
    mantissa's top bit."""
    mantissa, bias, _ = _LAYOUT[ty]
    return ((mantissa + bias) << mantissa) | (1 << (mantissa - 1))


# The bits of sqrt(1/2) rounded to nearest, per float type (exponent_and_mantissa).
_SQRT_HALF_BITS: dict[str, int] = {
    "float": struct.unpack("<I", struct.pack("<f", math.sqrt(0.5)))[0],
    "double": struct.unpack("<Q", struct.pack("<d", math.sqrt(0.5)))[0],
}


# The bias of the integers of `round_product_to_biased_int` (the bits of 1.5 * 2^p), per
# float type. It is a multiple of 2^(p - 1), so it vanishes when shifted left by the
# mantissa width p into the exponent field (modulo the integer width): `pow2` and
# `scale_half_by_pow2` give the same result for n and n + bias, and LLVM need not subtract it.
POW2_NEUTRAL_BIAS: dict[str, int] = {ty: _magic_bits(ty) for ty in _LAYOUT}


def pow2(b: ir.IRBuilder, n: ir.Value, ty: ir.Type) -> ir.Value:
    """2^n as a float of type `ty`, for an integer n (i32 for f32, i64 for f64) in the
    normal exponent range of `ty` (n outside it gives garbage, so callers clamp); n may
    carry POW2_NEUTRAL_BIAS."""
    mantissa, bias, _ = _LAYOUT[str(ty)]
    return from_bits(b, b.shl(b.add(n, iconst(n, bias)), iconst(n, mantissa)), ty)


def scale_half_by_pow2(b: ir.IRBuilder, twice_x: ir.Value, n: ir.Value) -> ir.Value:
    """x * 2^n given 2x in [1, 4), for an integer n in [-2 bias + 3, bias + 1] (f32:
    [-251, 128]; the caller clamps), possibly carrying POW2_NEUTRAL_BIAS: a result in the
    subnormal range is rounded once and one beyond the largest finite value becomes
    infinity.

    With m = max(n, 2 - bias), 2x * 2^(m - 1) is exact (normal, or infinite when x 2^n
    overflows), and the second factor 2^(n - m), 1 but in the subnormal range, rounds once.
    Both exponents come from n shifted into the exponent field once: shifted, n keeps
    its order (|n| < 2^(width - mantissa - 1)), so the maximum is taken there.
    """
    mantissa, bias, _ = _LAYOUT[str(twice_x.type)]
    shifted = b.shl(n, iconst(n, mantissa))
    lowest = iconst(n, (2 - bias) << mantissa)
    clamped = b.select(b.icmp_signed("<", shifted, lowest), lowest, shifted)
    first = b.add(clamped, iconst(n, (bias - 1) << mantissa))
    second = b.sub(b.add(shifted, iconst(n, bias << mantissa)), clamped)
    scaled = b.fmul(twice_x, from_bits(b, first, twice_x.type))
    return b.fmul(scaled, from_bits(b, second, twice_x.type))


def to_f64(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """x widened to f64 (exactly)."""
    return b.fpext(x, F64)


def to_f32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """x rounded to f32 (once, to nearest, including into the subnormal range)."""
    return b.fptrunc(x, F32)


def round_to_int(b: ir.IRBuilder, x: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(n, int(n)) with n = x rounded to the nearest integer (ties to even), int(n) an i32.

    x must be a finite float well inside the i32 range (callers clamp first).
    """
    n = call(b, "roundeven", x)
    return n, b.fptosi(n, I32)


def round_product_to_biased_int(b: ir.IRBuilder, x: ir.Value, factor: float
                                ) -> tuple[ir.Value, ir.Value]:
    """(n, n + POW2_NEUTRAL_BIAS) with n = x * factor rounded to an integer, the second an
    integer of x's width, for `pow2` and `scale_half_by_pow2`, which ignore the bias.

    Adding 1.5 * 2^p (p the mantissa width) rounds the product to an integer in the
    floating-point unit itself (to nearest, ties to even; with FMA the product is not
    rounded first), and leaves that integer in the low bits of the sum's bit pattern, so
    no float-to-integer conversion is needed: one multiply-add and one subtraction, and
    the sum's bits are the biased integer as they are. |x * factor| must stay below
    2^(p-1); a NaN x gives a NaN n and an unspecified (but defined) integer, never
    poison as `fptosi` would.
    """
    mantissa, _, _ = _LAYOUT[str(x.type)]
    magic = fconst(x, 1.5 * 2.0**mantissa)
    shifted = fma(b, x, fconst(x, factor), magic)
    return b.fsub(shifted, magic), bits(b, shifted)


def exponent_and_mantissa(b: ir.IRBuilder, x: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(e, m) with x = m * 2^e, m in [sqrt(1/2), sqrt(2)), e an i32, for a positive normal
    float x of either width (what it returns for other x is unspecified).

    Subtracting the bits of sqrt(1/2) from x's moves the lower end of m's range to zero:
    the difference's fraction bits, put back on top of sqrt(1/2)'s bits, give m in
    [sqrt(1/2), 2 sqrt(1/2)), and its bits above them (shifted down arithmetically) give
    e, with no comparison.
    """
    mantissa, _, ity = _LAYOUT[str(x.type)]
    low_end = iconst(ity, _SQRT_HALF_BITS[str(x.type)])
    offset = b.sub(bits(b, x), low_end)
    e = b.ashr(offset, iconst(ity, mantissa))
    frac_mask = iconst(ity, (1 << mantissa) - 1)
    m = from_bits(b, b.add(b.and_(offset, frac_mask), low_end), x.type)
    if ity != I32:
        e = b.trunc(e, I32)
    return e, m
