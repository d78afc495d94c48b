"""Element type conversions and comparisons on register values, with XLA's semantics.

- f16 is LLVM `half`; bf16 is kept as its raw 16 bits (i16) because llvmlite has no bfloat
  type. Both widen exactly to f32; narrowing rounds to nearest even and keeps NaN a
  (quiet) NaN. f64 narrows to f16/bf16 through f32 with round-to-odd, so the result is
  rounded once, as a direct conversion would be.
- float -> integer saturates and maps NaN to 0 (`llvm.fpto[su]i.sat`).
- x -> pred is `x != 0` (NaN is true); pred -> x is 0 or 1.
- Comparisons follow the comparison type: FLOAT (IEEE; NE is unordered), TOTALORDER
  (-NaN < -inf < ... < -0 < +0 < ... < inf < NaN), SIGNED, UNSIGNED.
- reduce-precision rounds the mantissa to nearest even and clamps the exponent range
  on the bit pattern of the value's own type.
"""

from __future__ import annotations

from llvmlite import ir

from backends.llvm.irutil import F16, F32, F64, I16, I32, intrinsic, llvm_type
from hlo.dtypes import Kind, PrimitiveType, complex_component
from hlo.errors import UnsupportedOpError

_T = PrimitiveType

# (exponent bits, mantissa bits) of each float type's encoding.
FLOAT_FORMATS: dict[PrimitiveType, tuple[int, int]] = {
    _T.F16: (5, 10),
    _T.BF16: (8, 7),
    _T.F32: (8, 23),
    _T.F64: (11, 52),
}


# --- f16 / bf16 ----------------------------------------------------------------------------


def widen_to_f32(b: ir.IRBuilder, t: PrimitiveType, x: ir.Value) -> ir.Value:
    """An f16 or bf16 register value as an exact f32 (other types are returned as is)."""
    if t is _T.F16:
        return b.fpext(x, F32)
    if t is _T.BF16:
        return b.bitcast(b.shl(b.zext(x, I32), ir.Constant(I32, 16)), F32)
    return x


def narrow_from_f32(b: ir.IRBuilder, t: PrimitiveType, x: ir.Value) -> ir.Value:
    """Round the f32 value `x` to f16 or bf16 (nearest even); other types unchanged."""
    if t is _T.F16:
        return b.fptrunc(x, F16)
    if t is _T.BF16:
        return f32_to_bf16(b, x)
    return x


def f32_to_bf16(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """bf16 bits (i16) of f32 `x`, rounded to nearest even; NaN becomes a quiet NaN."""
    bits = b.bitcast(x, I32)
    upper = b.lshr(bits, ir.Constant(I32, 16))
    lsb = b.and_(upper, ir.Constant(I32, 1))
    bias = b.add(ir.Constant(I32, 0x7FFF), lsb)
    rounded = b.lshr(b.add(bits, bias), ir.Constant(I32, 16))
    quiet_nan = b.or_(upper, ir.Constant(I32, 0x40))
    is_nan = b.fcmp_unordered("uno", x, x)
    return b.trunc(b.select(is_nan, quiet_nan, rounded), I16)


def f64_to_f32_round_odd(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """f64 -> f32 rounding to odd: truncate toward zero, then set the last bit if inexact.

    Rounding this result again to a format with at most 22 mantissa bits gives the
    correctly rounded conversion of `x`.
    """
    t = b.fptrunc(x, F32)
    back = b.fpext(t, F64)
    abs_back = intrinsic(b, "llvm.fabs.f64", F64, [back])
    abs_x = intrinsic(b, "llvm.fabs.f64", F64, [x])
    bits = b.bitcast(t, I32)
    # Sign-magnitude encoding: one less in the bits is one step toward zero.
    away = b.fcmp_ordered(">", abs_back, abs_x)
    bits = b.select(away, b.sub(bits, ir.Constant(I32, 1)), bits)
    inexact = b.fcmp_ordered("!=", back, x)
    bits = b.select(inexact, b.or_(bits, ir.Constant(I32, 1)), bits)
    return b.bitcast(bits, F32)


def _to_f32_or_f64(b: ir.IRBuilder, t: PrimitiveType, x: ir.Value) -> ir.Value:
    """A float register value of type `t` as f32 (f16/bf16/f32) or f64 (f64)."""
    return widen_to_f32(b, t, x)


def _float_to_float(b: ir.IRBuilder, src: PrimitiveType, dst: PrimitiveType,
                    x: ir.Value) -> ir.Value:
    if src is dst:
        return x
    wide = _to_f32_or_f64(b, src, x)
    if dst is _T.F64:
        return wide if src is _T.F64 else b.fpext(wide, F64)
    if dst is _T.F32:
        return b.fptrunc(wide, F32) if src is _T.F64 else wide
    # dst is f16 or bf16.
    if src is _T.F64:
        wide = f64_to_f32_round_odd(b, wide)
    return narrow_from_f32(b, dst, wide)


def _int_to_float(b: ir.IRBuilder, src: PrimitiveType, dst: PrimitiveType,
                  x: ir.Value) -> ir.Value:
    to_fp = b.sitofp if src.is_signed else b.uitofp
    if dst in (_T.F32, _T.F64):
        return to_fp(x, llvm_type(dst))
    if dst is _T.BF16:
        # Through f64 (exact for up to 53 significant bits) and round-to-odd, so the value is
        # rounded once to bf16.
        return f32_to_bf16(b, f64_to_f32_round_odd(b, to_fp(x, F64)))
    # f16: every integer that f32 rounds is beyond f16's range, so one rounding step remains.
    return b.fptrunc(to_fp(x, F32), F16)


def _float_to_int(b: ir.IRBuilder, src: PrimitiveType, dst: PrimitiveType,
                  x: ir.Value) -> ir.Value:
    wide = _to_f32_or_f64(b, src, x)
    fname = "f64" if src is _T.F64 else "f32"
    ity = llvm_type(dst)
    kind = "fptosi" if dst.is_signed else "fptoui"
    return intrinsic(b, f"llvm.{kind}.sat.i{ity.width}.{fname}", ity, [wide])


def _int_to_int(b: ir.IRBuilder, src: PrimitiveType, dst: PrimitiveType,
                x: ir.Value) -> ir.Value:
    ity = llvm_type(dst)
    if ity.width == x.type.width:
        return x
    if ity.width < x.type.width:
        return b.trunc(x, ity)
    return b.sext(x, ity) if src.is_signed else b.zext(x, ity)


def to_pred(b: ir.IRBuilder, src: PrimitiveType, x: ir.Value) -> ir.Value:
    """`x != 0` as i1 (NaN != 0 is true; a complex number is true if either part is)."""
    if src.is_pred:
        return x
    if src.is_integer:
        return b.icmp_unsigned("!=", x, ir.Constant(x.type, 0))
    if src.is_complex:
        re = b.extract_value(x, 0)
        im = b.extract_value(x, 1)
        zero = ir.Constant(re.type, 0.0)
        return b.or_(b.fcmp_unordered("!=", re, zero), b.fcmp_unordered("!=", im, zero))
    wide = _to_f32_or_f64(b, src, x)
    return b.fcmp_unordered("!=", wide, ir.Constant(wide.type, 0.0))


def convert(b: ir.IRBuilder, src: PrimitiveType, dst: PrimitiveType, x: ir.Value) -> ir.Value:
    """Convert the register value `x` of element type `src` to element type `dst`.

    Raises:
        UnsupportedOpError: complex -> real, or a non-array element type.
    """
    if src is dst:
        return x
    if dst.is_pred:
        return to_pred(b, src, x)
    if dst.is_complex:
        part = complex_component(dst)
        if src.is_complex:
            src_part = complex_component(src)
            re = convert(b, src_part, part, b.extract_value(x, 0))
            im = convert(b, src_part, part, b.extract_value(x, 1))
        else:
            re = convert(b, src, part, x)
            im = ir.Constant(llvm_type(part), 0.0)
        z = b.insert_value(ir.Constant(llvm_type(dst), ir.Undefined), re, 0)
        return b.insert_value(z, im, 1)
    if src.is_complex:
        raise UnsupportedOpError(
            f"convert from {src.value} to {dst.value}: complex to real conversion is not "
            "defined (use real/imag)"
        )
    if src.is_pred:
        # false/true as 0/1 of an unsigned source.
        return convert(b, _T.U8, dst, b.zext(x, ir.IntType(8)))
    if src.is_integer and dst.is_integer:
        return _int_to_int(b, src, dst, x)
    if src.is_integer and dst.is_float:
        return _int_to_float(b, src, dst, x)
    if src.is_float and dst.is_integer:
        return _float_to_int(b, src, dst, x)
    if src.is_float and dst.is_float:
        return _float_to_float(b, src, dst, x)
    raise UnsupportedOpError(f"convert from {src.value} to {dst.value} is not supported")


# --- bit patterns --------------------------------------------------------------------------


def to_bits(b: ir.IRBuilder, t: PrimitiveType, x: ir.Value) -> ir.Value:
    """The bit pattern of a register value as an integer of the type's width."""
    if t.is_pred:
        return b.zext(x, ir.IntType(8))
    if t in (_T.F16, _T.F32, _T.F64):
        return b.bitcast(x, ir.IntType(t.bits))
    if t.is_complex:
        raise UnsupportedOpError(f"bitcast-convert of complex type {t.value} is not supported")
    return x  # integers and bf16 already are their bits


def from_bits(b: ir.IRBuilder, t: PrimitiveType, bits: ir.Value) -> ir.Value:
    """The register value of type `t` whose bit pattern is the integer `bits`."""
    if t.is_pred:
        return b.icmp_unsigned("!=", bits, ir.Constant(bits.type, 0))
    if t in (_T.F16, _T.F32, _T.F64):
        return b.bitcast(bits, llvm_type(t))
    if t.is_complex:
        raise UnsupportedOpError(f"bitcast-convert to complex type {t.value} is not supported")
    return bits


def reduce_precision(
    b: ir.IRBuilder, t: PrimitiveType, x: ir.Value, exponent_bits: int, mantissa_bits: int
) -> ir.Value:
    """Round `x` to a float format with the given exponent and mantissa widths, in `t`.

    The mantissa is rounded to nearest even; values beyond the reduced exponent range become
    signed infinity, values at or below its smallest normal exponent become signed zero.
    NaN stays NaN when mantissa bits remain, else becomes infinity.
    """
    src_exp, src_man = FLOAT_FORMATS[t]
    nbits = t.bits
    ity = ir.IntType(nbits)

    def c(v: int) -> ir.Constant:
        return ir.Constant(ity, v & ((1 << nbits) - 1))

    original = to_bits(b, t, x)
    bits = original
    if mantissa_bits < src_man:
        drop = src_man - mantissa_bits
        last_kept = 1 << drop
        half_minus_one = (last_kept >> 1) - 1
        kept_lsb = b.and_(b.lshr(bits, c(drop)), c(1))
        bits = b.add(bits, b.add(kept_lsb, c(half_minus_one)))
        bits = b.and_(bits, c(~(last_kept - 1)))
    exp_mask = ((1 << src_exp) - 1) << src_man
    sign_mask = 1 << (nbits - 1)
    if exponent_bits < src_exp:
        bias = (1 << (src_exp - 1)) - 1
        reduced_bias = (1 << (exponent_bits - 1)) - 1
        max_exp = bias + reduced_bias
        min_exp = bias - reduced_bias
        exponent = b.and_(bits, c(exp_mask))
        overflows = b.icmp_unsigned(">", exponent, c(max_exp << src_man))
        underflows = b.icmp_unsigned("<=", exponent, c(min_exp << src_man))
        signed_zero = b.and_(bits, c(sign_mask))
        signed_inf = b.or_(signed_zero, c(exp_mask))
        bits = b.select(overflows, signed_inf, b.select(underflows, signed_zero, bits))
    magnitude = b.and_(original, c(~sign_mask))
    is_nan = b.icmp_unsigned(">", magnitude, c(exp_mask))
    if mantissa_bits > 0:
        nan_bits = original
    else:
        nan_bits = b.or_(b.and_(original, c(sign_mask)), c(exp_mask))
    bits = b.select(is_nan, nan_bits, bits)
    return from_bits(b, t, bits)


# --- comparisons ---------------------------------------------------------------------------

_DIRECTIONS = {"EQ": "==", "NE": "!=", "LT": "<", "LE": "<=", "GT": ">", "GE": ">="}


def default_comparison_type(t: PrimitiveType) -> str:
    """The comparison type XLA infers when `type=` is absent."""
    if t.kind in (Kind.FLOAT, Kind.COMPLEX):
        return "FLOAT"
    if t.is_signed:
        return "SIGNED"
    return "UNSIGNED"


def total_order_key(b: ir.IRBuilder, t: PrimitiveType, x: ir.Value) -> ir.Value:
    """A signed integer whose order is the IEEE total order of the float `x`."""
    bits = to_bits(b, t, x)
    width = bits.type.width
    # Negative floats: flip the magnitude bits so larger magnitudes compare smaller.
    sign_fill = b.ashr(bits, ir.Constant(bits.type, width - 1))
    return b.xor(bits, b.lshr(sign_fill, ir.Constant(bits.type, 1)))


def compare(
    b: ir.IRBuilder,
    t: PrimitiveType,
    direction: str,
    comparison_type: str | None,
    lhs: ir.Value,
    rhs: ir.Value,
) -> ir.Value:
    """`lhs <direction> rhs` on register values of element type `t`; returns i1."""
    cmp = _DIRECTIONS[direction]
    ctype = comparison_type or default_comparison_type(t)
    if t.is_complex:
        if direction not in ("EQ", "NE"):
            raise UnsupportedOpError(f"compare {direction} on complex numbers is not defined")
        re_eq = compare(b, complex_component(t), "EQ", "FLOAT",
                        b.extract_value(lhs, 0), b.extract_value(rhs, 0))
        im_eq = compare(b, complex_component(t), "EQ", "FLOAT",
                        b.extract_value(lhs, 1), b.extract_value(rhs, 1))
        both = b.and_(re_eq, im_eq)
        return both if direction == "EQ" else b.not_(both)
    if t.is_float and ctype == "TOTALORDER":
        return b.icmp_signed(cmp, total_order_key(b, t, lhs), total_order_key(b, t, rhs))
    if t.is_float:
        lw = _to_f32_or_f64(b, t, lhs)
        rw = _to_f32_or_f64(b, t, rhs)
        if direction == "NE":
            return b.fcmp_unordered(cmp, lw, rw)
        return b.fcmp_ordered(cmp, lw, rw)
    if ctype == "SIGNED" and not t.is_pred:
        return b.icmp_signed(cmp, lhs, rhs)
    return b.icmp_unsigned(cmp, lhs, rhs)


def is_finite(b: ir.IRBuilder, t: PrimitiveType, x: ir.Value) -> ir.Value:
    """True for values that are neither infinite nor NaN."""
    wide = _to_f32_or_f64(b, t, x)
    name = "f64" if wide.type == F64 else "f32"
    mag = intrinsic(b, f"llvm.fabs.{name}", wide.type, [wide])
    return b.fcmp_ordered("<", mag, ir.Constant(wide.type, float("inf")))


__all__ = [
    "FLOAT_FORMATS", "compare", "convert", "default_comparison_type", "f32_to_bf16",
    "f64_to_f32_round_odd", "from_bits", "is_finite", "narrow_from_f32", "reduce_precision",
    "to_bits", "to_pred", "total_order_key", "widen_to_f32",
]
