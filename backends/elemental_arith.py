"""Scalar arithmetic by element-type family: the type-dispatch layer of the elemental emitter.

`arith(e, opcode, t, values)` sends an operation on register values of element type `t` to
one of five families: float (f16/bf16 widened to f32 and rounded back), signed integer,
unsigned integer, pred and complex. Each family is a table keyed by opcode. The semantics
are XLA's: integer division by zero gives -1 (all ones for unsigned), INT_MIN / -1 gives
INT_MIN, x % 0 gives x, shifts by at least the bit width give 0 (or the sign fill),
maximum/minimum propagate NaN, sign keeps -0 and NaN. Conversions and comparisons live in
`elemental_convert.py`. This file builds no loops and reads no instructions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from llvmlite import ir

from backends.elemental_convert import narrow_from_f32, widen_to_f32
from backends.llvm.irutil import I1, intrinsic
from hlo.dtypes import Kind, PrimitiveType
from hlo.errors import UnsupportedOpError
from hlo.opcodes import Opcode

if TYPE_CHECKING:
    from backends.elemental import ElementalEmitter

ScalarOp = Callable[["ElementalEmitter", Sequence[ir.Value]], ir.Value]
IntOp = Callable[["ElementalEmitter", Sequence[ir.Value], bool], ir.Value]

_O = Opcode


def arith(
    e: ElementalEmitter, op: Opcode, t: PrimitiveType, values: Sequence[ir.Value]
) -> ir.Value:
    """Apply `op` to register values of element type `t`; returns a register value.

    The result has type `t`, except for `abs` of a complex number (its component type).

    Raises:
        UnsupportedOpError: `op` is not defined on `t`.
    """
    kind = t.kind
    if kind is Kind.FLOAT:
        fn = FLOAT_OPS.get(op)
        if fn is None:
            raise _unsupported(op, t)
        if t in (PrimitiveType.F16, PrimitiveType.BF16):
            # f16/bf16 arithmetic is done in f32 and rounded once, as XLA's CPU backend does.
            wide = [widen_to_f32(e.b, t, v) for v in values]
            return narrow_from_f32(e.b, t, fn(e, wide))
        return fn(e, values)
    if kind in (Kind.SIGNED, Kind.UNSIGNED):
        int_fn = INT_OPS.get(op)
        if int_fn is None:
            raise _unsupported(op, t)
        return int_fn(e, values, kind is Kind.SIGNED)
    if kind is Kind.PRED:
        fn = PRED_OPS.get(op)
        if fn is None:
            raise _unsupported(op, t)
        return fn(e, values)
    if kind is Kind.COMPLEX:
        fn = COMPLEX_OPS.get(op)
        if fn is None:
            raise _unsupported(op, t)
        return fn(e, values)
    raise _unsupported(op, t)


def _unsupported(op: Opcode, t: PrimitiveType) -> UnsupportedOpError:
    return UnsupportedOpError(f"{op.value} on element type {t.value} is not supported by the "
                              "elemental emitter")


# --- float ---------------------------------------------------------------------------------


def _fname(v: ir.Value) -> str:
    return "f32" if v.type == ir.FloatType() else "f64"


def _fconst(v: ir.Value, value: float) -> ir.Constant:
    return ir.Constant(v.type, value)


def _fintrinsic(e: ElementalEmitter, name: str, args: Sequence[ir.Value]) -> ir.Value:
    return intrinsic(e.b, f"llvm.{name}.{_fname(args[0])}", args[0].type, args)


def _math1(name: str) -> ScalarOp:
    return lambda e, xs: e.math.unary(e.b, name, xs[0])


def _fsign(e: ElementalEmitter, xs: Sequence[ir.Value]) -> ir.Value:
    """sign(x) = copysign(x != 0, x); NaN stays NaN, -0 stays -0."""
    x = xs[0]
    nonzero = e.b.uitofp(e.b.fcmp_ordered("!=", x, _fconst(x, 0.0)), x.type)
    signed = _fintrinsic(e, "copysign", [nonzero, x])
    return e.b.select(e.b.fcmp_unordered("uno", x, x), x, signed)


def _frsqrt(e: ElementalEmitter, xs: Sequence[ir.Value]) -> ir.Value:
    return e.b.fdiv(_fconst(xs[0], 1.0), e.math.unary(e.b, "sqrt", xs[0]))


def _flogistic(e: ElementalEmitter, xs: Sequence[ir.Value]) -> ir.Value:
    """logistic(x) = 1 / (1 + exp(-x)), computed as t / (1 + t) with t = exp(-|x|) for
    negative x, so that exp never overflows and tiny results keep their precision."""
    b = e.b
    x = xs[0]
    one = _fconst(x, 1.0)
    t = e.math.unary(b, "exp", b.fneg(_fintrinsic(e, "fabs", [x])))
    denom = b.fadd(one, t)
    negative = b.fcmp_ordered("<", x, _fconst(x, 0.0))
    return b.select(negative, b.fdiv(t, denom), b.fdiv(one, denom))


FLOAT_OPS: dict[Opcode, ScalarOp] = {
    _O.ADD: lambda e, xs: e.b.fadd(xs[0], xs[1]),
    _O.SUBTRACT: lambda e, xs: e.b.fsub(xs[0], xs[1]),
    _O.MULTIPLY: lambda e, xs: e.b.fmul(xs[0], xs[1]),
    _O.DIVIDE: lambda e, xs: e.b.fdiv(xs[0], xs[1]),
    # frem has C fmod semantics: the result takes the sign of the dividend.
    _O.REMAINDER: lambda e, xs: e.b.frem(xs[0], xs[1]),
    # llvm.maximum/minimum propagate NaN and order -0 < +0, as XLA's maximum/minimum.
    _O.MAXIMUM: lambda e, xs: _fintrinsic(e, "maximum", xs),
    _O.MINIMUM: lambda e, xs: _fintrinsic(e, "minimum", xs),
    _O.POWER: lambda e, xs: e.math.binary(e.b, "pow", xs[0], xs[1]),
    _O.ATAN2: lambda e, xs: e.math.binary(e.b, "atan2", xs[0], xs[1]),
    _O.ABS: lambda e, xs: _fintrinsic(e, "fabs", xs),
    _O.NEGATE: lambda e, xs: e.b.fneg(xs[0]),
    _O.SIGN: _fsign,
    _O.CEIL: lambda e, xs: _fintrinsic(e, "ceil", xs),
    _O.FLOOR: lambda e, xs: _fintrinsic(e, "floor", xs),
    _O.ROUND_NEAREST_AFZ: lambda e, xs: _fintrinsic(e, "round", xs),
    _O.ROUND_NEAREST_EVEN: lambda e, xs: _fintrinsic(e, "roundeven", xs),
    _O.SQRT: _math1("sqrt"),
    _O.RSQRT: _frsqrt,
    _O.CBRT: _math1("cbrt"),
    _O.EXPONENTIAL: _math1("exp"),
    _O.EXPONENTIAL_MINUS_ONE: _math1("expm1"),
    _O.LOG: _math1("log"),
    _O.LOG_PLUS_ONE: _math1("log1p"),
    _O.SINE: _math1("sin"),
    _O.COSINE: _math1("cos"),
    _O.TAN: _math1("tan"),
    _O.TANH: _math1("tanh"),
    _O.ERF: _math1("erf"),
    _O.LOGISTIC: _flogistic,
}


# --- integers ------------------------------------------------------------------------------


def _iconst(v: ir.Value, value: int) -> ir.Constant:
    bits = v.type.width
    return ir.Constant(v.type, value & ((1 << bits) - 1))


def _int_min(v: ir.Value) -> ir.Constant:
    return _iconst(v, 1 << (v.type.width - 1))


def _idivide(e: ElementalEmitter, xs: Sequence[ir.Value], signed: bool) -> ir.Value:
    """x / 0 = -1 (all ones); INT_MIN / -1 = INT_MIN; otherwise truncating division."""
    b = e.b
    lhs, rhs = xs
    zero = b.icmp_unsigned("==", rhs, _iconst(rhs, 0))
    if signed:
        overflow = b.and_(
            b.icmp_unsigned("==", lhs, _int_min(lhs)),
            b.icmp_unsigned("==", rhs, _iconst(rhs, -1)),
        )
        # A divisor of 1 in the special cases keeps the division defined (no UB, no trap);
        # INT_MIN / 1 is already the answer for the overflow case.
        safe = b.select(b.or_(zero, overflow), _iconst(rhs, 1), rhs)
        quotient = b.sdiv(lhs, safe)
    else:
        safe = b.select(zero, _iconst(rhs, 1), rhs)
        quotient = b.udiv(lhs, safe)
    return b.select(zero, _iconst(lhs, -1), quotient)


def _iremainder(e: ElementalEmitter, xs: Sequence[ir.Value], signed: bool) -> ir.Value:
    """x % 0 = x; INT_MIN % -1 = 0; otherwise the remainder takes the dividend's sign."""
    b = e.b
    lhs, rhs = xs
    zero = b.icmp_unsigned("==", rhs, _iconst(rhs, 0))
    if signed:
        overflow = b.and_(
            b.icmp_unsigned("==", lhs, _int_min(lhs)),
            b.icmp_unsigned("==", rhs, _iconst(rhs, -1)),
        )
        safe = b.select(b.or_(zero, overflow), _iconst(rhs, 1), rhs)
        rem = b.srem(lhs, safe)
    else:
        safe = b.select(zero, _iconst(rhs, 1), rhs)
        rem = b.urem(lhs, safe)
    return b.select(zero, lhs, rem)


def _ishift(kind: str) -> IntOp:
    """Shifts; an amount >= the bit width (as unsigned) gives 0, or the sign fill for sra."""

    def emit(e: ElementalEmitter, xs: Sequence[ir.Value], signed: bool) -> ir.Value:
        b = e.b
        lhs, rhs = xs
        width = _iconst(rhs, lhs.type.width)
        too_far = b.icmp_unsigned(">=", rhs, width)
        if kind == "sra":
            amount = b.select(too_far, _iconst(rhs, lhs.type.width - 1), rhs)
            return b.ashr(lhs, amount)
        # The unselected arm may be poison (over-wide shift); select does not propagate it.
        shifted = b.shl(lhs, rhs) if kind == "shl" else b.lshr(lhs, rhs)
        return b.select(too_far, _iconst(lhs, 0), shifted)

    return emit


def _ipower(e: ElementalEmitter, xs: Sequence[ir.Value], signed: bool) -> ir.Value:
    """Wrapping base**exponent by squaring over every exponent bit.

    A negative (signed) exponent gives 1 when the base is 1 and 0 otherwise, as in XLA.
    """
    b = e.b
    base, exponent = xs
    one = _iconst(base, 1)
    acc: ir.Value = one
    power = base
    bits = exponent.type.width
    for k in range(bits):
        bit_set = b.icmp_unsigned("!=", b.and_(exponent, _iconst(exponent, 1 << k)),
                                  _iconst(exponent, 0))
        acc = b.select(bit_set, b.mul(acc, power), acc)
        if k + 1 < bits:
            power = b.mul(power, power)
    if not signed:
        return acc
    negative = b.icmp_signed("<", exponent, _iconst(exponent, 0))
    base_is_one = b.icmp_unsigned("==", base, one)
    fallback = b.select(base_is_one, one, _iconst(base, 0))
    return b.select(negative, fallback, acc)


def _isign(e: ElementalEmitter, xs: Sequence[ir.Value], signed: bool) -> ir.Value:
    b = e.b
    x = xs[0]
    zero = _iconst(x, 0)
    if not signed:
        return b.zext(b.icmp_unsigned("!=", x, zero), x.type)
    pos = b.zext(b.icmp_signed(">", x, zero), x.type)
    neg = b.zext(b.icmp_signed("<", x, zero), x.type)
    return b.sub(pos, neg)


def _iabs(e: ElementalEmitter, xs: Sequence[ir.Value], signed: bool) -> ir.Value:
    if not signed:
        return xs[0]
    # abs(INT_MIN) wraps to INT_MIN: the intrinsic's flag says INT_MIN is not poison.
    x = xs[0]
    return intrinsic(e.b, f"llvm.abs.i{x.type.width}", x.type, [x, ir.Constant(I1, 0)])


def _iminmax(which: str) -> IntOp:
    def emit(e: ElementalEmitter, xs: Sequence[ir.Value], signed: bool) -> ir.Value:
        lhs, rhs = xs
        cmp = (">" if which == "max" else "<")
        take_lhs = (e.b.icmp_signed if signed else e.b.icmp_unsigned)(cmp, lhs, rhs)
        return e.b.select(take_lhs, lhs, rhs)

    return emit


def _ibit_count(name: str) -> IntOp:
    def emit(e: ElementalEmitter, xs: Sequence[ir.Value], signed: bool) -> ir.Value:
        x = xs[0]
        args = [x, ir.Constant(I1, 0)] if name == "ctlz" else [x]
        return intrinsic(e.b, f"llvm.{name}.i{x.type.width}", x.type, args)

    return emit


INT_OPS: dict[Opcode, IntOp] = {
    _O.ADD: lambda e, xs, s: e.b.add(xs[0], xs[1]),
    _O.SUBTRACT: lambda e, xs, s: e.b.sub(xs[0], xs[1]),
    _O.MULTIPLY: lambda e, xs, s: e.b.mul(xs[0], xs[1]),
    _O.DIVIDE: _idivide,
    _O.REMAINDER: _iremainder,
    _O.MAXIMUM: _iminmax("max"),
    _O.MINIMUM: _iminmax("min"),
    _O.POWER: _ipower,
    _O.AND: lambda e, xs, s: e.b.and_(xs[0], xs[1]),
    _O.OR: lambda e, xs, s: e.b.or_(xs[0], xs[1]),
    _O.XOR: lambda e, xs, s: e.b.xor(xs[0], xs[1]),
    _O.NOT: lambda e, xs, s: e.b.not_(xs[0]),
    _O.SHIFT_LEFT: _ishift("shl"),
    _O.SHIFT_RIGHT_LOGICAL: _ishift("srl"),
    _O.SHIFT_RIGHT_ARITHMETIC: _ishift("sra"),
    _O.ABS: _iabs,
    _O.NEGATE: lambda e, xs, s: e.b.neg(xs[0]),
    _O.SIGN: _isign,
    _O.CLZ: _ibit_count("ctlz"),
    _O.POPCNT: _ibit_count("ctpop"),
}


# --- pred ----------------------------------------------------------------------------------

PRED_OPS: dict[Opcode, ScalarOp] = {
    _O.AND: lambda e, xs: e.b.and_(xs[0], xs[1]),
    _O.OR: lambda e, xs: e.b.or_(xs[0], xs[1]),
    _O.XOR: lambda e, xs: e.b.xor(xs[0], xs[1]),
    _O.NOT: lambda e, xs: e.b.not_(xs[0]),
    # On {false < true}, maximum is `or` and minimum is `and`.
    _O.MAXIMUM: lambda e, xs: e.b.or_(xs[0], xs[1]),
    _O.MINIMUM: lambda e, xs: e.b.and_(xs[0], xs[1]),
}


# --- complex -------------------------------------------------------------------------------


def _parts(e: ElementalEmitter, z: ir.Value) -> tuple[ir.Value, ir.Value]:
    return e.b.extract_value(z, 0), e.b.extract_value(z, 1)


def make_complex(e: ElementalEmitter, re: ir.Value, im: ir.Value) -> ir.Value:
    """The complex register value {re, im}."""
    ty = ir.LiteralStructType([re.type, re.type])
    z = e.b.insert_value(ir.Constant(ty, ir.Undefined), re, 0)
    return e.b.insert_value(z, im, 1)


def complex_abs(e: ElementalEmitter, z: ir.Value) -> ir.Value:
    """|z| without overflow for large parts: m * sqrt(1 + (n/m)^2), m = max(|re|, |im|)."""
    b = e.b
    re, im = _parts(e, z)
    ar = _fintrinsic(e, "fabs", [re])
    ai = _fintrinsic(e, "fabs", [im])
    big = _fintrinsic(e, "maxnum", [ar, ai])
    small = _fintrinsic(e, "minnum", [ar, ai])
    ratio = b.fdiv(small, big)
    root = e.math.unary(b, "sqrt", b.fadd(_fconst(re, 1.0), b.fmul(ratio, ratio)))
    result = b.fmul(big, root)
    # 0/0 and inf/inf above give NaN; |0| = 0 and |inf + i*x| = inf.
    is_zero = b.fcmp_ordered("==", big, _fconst(re, 0.0))
    is_inf = b.fcmp_ordered("==", big, _fconst(re, float("inf")))
    result = b.select(is_zero, _fconst(re, 0.0), result)
    result = b.select(is_inf, big, result)
    # A NaN part makes the modulus NaN unless the other part is infinite (C99 hypot).
    any_nan = b.fcmp_unordered("uno", re, im)
    return b.select(b.and_(any_nan, b.not_(is_inf)), _fconst(re, float("nan")), result)


def _cadd(e: ElementalEmitter, xs: Sequence[ir.Value]) -> ir.Value:
    (a, b_), (c, d) = _parts(e, xs[0]), _parts(e, xs[1])
    return make_complex(e, e.b.fadd(a, c), e.b.fadd(b_, d))


def _csub(e: ElementalEmitter, xs: Sequence[ir.Value]) -> ir.Value:
    (a, b_), (c, d) = _parts(e, xs[0]), _parts(e, xs[1])
    return make_complex(e, e.b.fsub(a, c), e.b.fsub(b_, d))


def _cmul(e: ElementalEmitter, xs: Sequence[ir.Value]) -> ir.Value:
    b = e.b
    (x, y), (u, v) = _parts(e, xs[0]), _parts(e, xs[1])
    return make_complex(e, b.fsub(b.fmul(x, u), b.fmul(y, v)), b.fadd(b.fmul(x, v), b.fmul(y, u)))


def _cdiv(e: ElementalEmitter, xs: Sequence[ir.Value]) -> ir.Value:
    """Smith's algorithm: scale by the larger divisor part to avoid overflow."""
    b = e.b
    (x, y), (u, v) = _parts(e, xs[0]), _parts(e, xs[1])
    au = _fintrinsic(e, "fabs", [u])
    av = _fintrinsic(e, "fabs", [v])
    u_bigger = b.fcmp_ordered(">=", au, av)
    # Branch 1 (|u| >= |v|): r = v/u, den = u + v r, re = (x + y r)/den, im = (y - x r)/den.
    r1 = b.fdiv(v, u)
    den1 = b.fadd(u, b.fmul(v, r1))
    re1 = b.fdiv(b.fadd(x, b.fmul(y, r1)), den1)
    im1 = b.fdiv(b.fsub(y, b.fmul(x, r1)), den1)
    # Branch 2: r = u/v, den = v + u r, re = (x r + y)/den, im = (y r - x)/den.
    r2 = b.fdiv(u, v)
    den2 = b.fadd(v, b.fmul(u, r2))
    re2 = b.fdiv(b.fadd(b.fmul(x, r2), y), den2)
    im2 = b.fdiv(b.fsub(b.fmul(y, r2), x), den2)
    return make_complex(e, b.select(u_bigger, re1, re2), b.select(u_bigger, im1, im2))


def _cneg(e: ElementalEmitter, xs: Sequence[ir.Value]) -> ir.Value:
    re, im = _parts(e, xs[0])
    return make_complex(e, e.b.fneg(re), e.b.fneg(im))


def _cexp(e: ElementalEmitter, xs: Sequence[ir.Value]) -> ir.Value:
    b = e.b
    re, im = _parts(e, xs[0])
    mag = e.math.unary(b, "exp", re)
    return make_complex(e, b.fmul(mag, e.math.unary(b, "cos", im)),
                        b.fmul(mag, e.math.unary(b, "sin", im)))


def _clog(e: ElementalEmitter, xs: Sequence[ir.Value]) -> ir.Value:
    re, im = _parts(e, xs[0])
    mag = complex_abs(e, xs[0])
    return make_complex(e, e.math.unary(e.b, "log", mag), e.math.binary(e.b, "atan2", im, re))


def _csign(e: ElementalEmitter, xs: Sequence[ir.Value]) -> ir.Value:
    """z / |z|, and 0 for z = 0."""
    b = e.b
    re, im = _parts(e, xs[0])
    mag = complex_abs(e, xs[0])
    is_zero = b.fcmp_ordered("==", mag, _fconst(re, 0.0))
    zero = _fconst(re, 0.0)
    return make_complex(e, b.select(is_zero, zero, b.fdiv(re, mag)),
                        b.select(is_zero, zero, b.fdiv(im, mag)))


def _csqrt(e: ElementalEmitter, xs: Sequence[ir.Value]) -> ir.Value:
    """Principal square root: t = sqrt((|z| + |re|)/2); the branch follows the sign of re."""
    b = e.b
    re, im = _parts(e, xs[0])
    mag = complex_abs(e, xs[0])
    half = _fconst(re, 0.5)
    t = e.math.unary(b, "sqrt", b.fmul(b.fadd(mag, _fintrinsic(e, "fabs", [re])), half))
    safe_t = b.select(b.fcmp_ordered("==", t, _fconst(re, 0.0)), _fconst(re, 1.0), t)
    other = b.fdiv(b.fmul(_fintrinsic(e, "fabs", [im]), half), safe_t)
    re_pos = b.fcmp_ordered(">=", re, _fconst(re, 0.0))
    out_re = b.select(re_pos, t, other)
    out_im_mag = b.select(re_pos, b.fdiv(b.fmul(im, half), safe_t), t)
    out_im = b.select(re_pos, out_im_mag, _fintrinsic(e, "copysign", [t, im]))
    return make_complex(e, out_re, out_im)


COMPLEX_OPS: dict[Opcode, ScalarOp] = {
    _O.ADD: _cadd,
    _O.SUBTRACT: _csub,
    _O.MULTIPLY: _cmul,
    _O.DIVIDE: _cdiv,
    _O.NEGATE: _cneg,
    _O.ABS: lambda e, xs: complex_abs(e, xs[0]),
    _O.EXPONENTIAL: _cexp,
    _O.LOG: _clog,
    _O.SIGN: _csign,
    _O.SQRT: _csqrt,
}
