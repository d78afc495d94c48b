"""Building blocks of the inline approximations: constants, fused multiply-add, polynomials,
clamps, bit fields and the scaling by powers of two, on one f32, f64 or integer value.

Everything here emits straight-line code (selects, never branches or calls to libm), so that
the loop vectoriser turns a loop over an approximation into vector code. Helpers take the
value they work on and derive the LLVM type from it; which function an approximation
computes, and how accurately, is the business of the modules that use them.
"""

from __future__ import annotations

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


def pow2(b: ir.IRBuilder, n: ir.Value, ty: ir.Type) -> ir.Value:
    """2^n as a float of type `ty`, for an integer n (i32 for f32, i64 for f64) in the
    normal exponent range of `ty` (n outside it gives garbage, so callers clamp)."""
    mantissa, bias, _ = _LAYOUT[str(ty)]
    return from_bits(b, b.shl(b.add(n, iconst(n, bias)), iconst(n, mantissa)), ty)


def scale_by_pow2(b: ir.IRBuilder, x: ir.Value, n: ir.Value) -> ir.Value:
    """x * 2^n for an integer n that may exceed the normal exponent range by up to its
    width again, in two exact halves, so that a result in the subnormal range is rounded
    once and a result beyond the largest finite value becomes infinity."""
    half = b.ashr(n, iconst(n, 1))
    rest = b.sub(n, half)
    return b.fmul(b.fmul(x, pow2(b, half, x.type)), pow2(b, rest, x.type))


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


def round_product_to_int(b: ir.IRBuilder, x: ir.Value, factor: float
                         ) -> tuple[ir.Value, ir.Value]:
    """(n, int(n)) with n = x * factor rounded to an integer, int(n) an integer of x's width.

    Adding 1.5 * 2^p (p the mantissa width) rounds the product to an integer in the
    floating-point unit itself (to nearest, ties to even; with FMA the product is not
    rounded first), and leaves that integer in the low bits of the sum's bit pattern, so
    no float-to-integer conversion is needed: one multiply-add, one subtraction each way.
    |x * factor| must stay below 2^(p-1); a NaN x gives a NaN n and an unspecified
    (but defined) integer, never poison as `fptosi` would.
    """
    mantissa, bias, ity = _LAYOUT[str(x.type)]
    magic = fconst(x, 1.5 * 2.0**mantissa)
    shifted = fma(b, x, fconst(x, factor), magic)
    n = b.fsub(shifted, magic)
    # The bits of 1.5 * 2^p: the exponent p + bias, then the mantissa's top bit.
    magic_bits = iconst(ity, ((mantissa + bias) << mantissa) | (1 << (mantissa - 1)))
    return n, b.sub(bits(b, shifted), magic_bits)


def exponent_and_mantissa(b: ir.IRBuilder, x: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(e, m) with x = m * 2^e, m in [sqrt(1/2), sqrt(2)), e an i32, for a positive normal
    float x of either width (what it returns for other x is unspecified)."""
    mantissa, bias, ity = _LAYOUT[str(x.type)]
    raw = bits(b, x)
    # Keep the mantissa bits and give m the exponent of [1, 2) ...
    one = iconst(ity, bias << mantissa)
    frac_mask = iconst(ity, (1 << mantissa) - 1)
    m = from_bits(b, b.or_(b.and_(raw, frac_mask), one), x.type)
    e = b.sub(b.lshr(raw, iconst(ity, mantissa)), iconst(ity, bias))
    if ity != I32:
        e = b.trunc(e, I32)
    # ... then move m from [sqrt(2), 2) down to [sqrt(1/2), 1).
    big = b.fcmp_ordered(">", m, fconst(x, 1.4142135623730951))
    m = b.select(big, b.fmul(m, fconst(x, 0.5)), m)
    return b.add(e, b.zext(big, I32)), m
