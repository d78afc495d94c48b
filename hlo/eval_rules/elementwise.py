"""Evaluator kernels for elementwise ops and conversions.

Covers every unary, binary and ternary elementwise opcode, `compare`, `convert`,
`bitcast-convert` and `reduce-precision`. It does not cover leaves, tuples, control flow
or random numbers (`control.py`, `random.py`).

Numeric policy (the oracle's, written down once):
- f16 and bf16 ops are computed in f32 and rounded to the type once per op, as XLA's CPU
  backend does. f32 ops are computed in f64 and rounded once: for + - * / sqrt fmod this is
  exactly IEEE f32 arithmetic (f64 has more than 2*24+2 bits), and transcendentals come out
  as accurate as numpy's f64 ones. c64 ops are computed in c128.
- Integer arithmetic wraps; the undefined cases of C (x/0, INT_MIN/-1, oversized shifts)
  take the values XLA's elemental emitter and HloEvaluator give them (see each helper).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from hlo.dtypes import PrimitiveType, complex_component
from hlo.errors import EvaluationError, InternalError
from hlo.evaluator import Evaluator, Value, evaluates
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode

T = PrimitiveType
Array = np.ndarray
UnaryFn = Callable[[Array], Array]
BinaryFn = Callable[[Array, Array], Array]


# --- shared helpers ---------------------------------------------------------------------------


def _quiet() -> Any:
    """Silence numpy's floating-point warnings for one op: IEEE results are the point."""
    return np.errstate(all="ignore")


def _result(instr: HloInstruction, value: Any) -> Array:
    """`value` as an array of exactly the instruction's element type and dims.

    Float results computed in a wider type are rounded (to nearest even) here.
    """
    want = instr.shape.element_type.numpy
    arr = np.asarray(value)
    if arr.dtype != want:
        with _quiet():
            arr = arr.astype(want)
    if arr.shape != instr.shape.dims:
        raise InternalError(
            f"evaluator kernel for {instr.name} ({instr.opcode.value}) produced shape "
            f"{list(arr.shape)}, expected {list(instr.shape.dims)}"
        )
    return arr


def _etype(instr: HloInstruction, i: int = 0) -> PrimitiveType:
    return instr.operands[i].shape.element_type


# The dtype an op on a float or complex type is computed in (see the module docstring).
_WIDE: dict[PrimitiveType, np.dtype] = {
    T.F16: np.dtype(np.float32),
    T.BF16: np.dtype(np.float32),
    T.F32: np.dtype(np.float64),
    T.F64: np.dtype(np.float64),
    T.C64: np.dtype(np.complex128),
    T.C128: np.dtype(np.complex128),
}


def _wide(x: Array, t: PrimitiveType) -> Array:
    return np.asarray(x).astype(_WIDE[t])


def _unsigned(dtype: np.dtype) -> np.dtype:
    return np.dtype(f"u{dtype.itemsize}")


def _signed(dtype: np.dtype) -> np.dtype:
    return np.dtype(f"i{dtype.itemsize}")


# --- unary ops --------------------------------------------------------------------------------


def _float_sign(x: Array) -> Array:
    """copysign(x != 0, x), NaN stays NaN: sign(-0.0) = -0.0 as in XLA's emitter."""
    return np.where(np.isnan(x), x, np.copysign((x != 0).astype(x.dtype), x))


def _complex_sign(z: Array) -> Array:
    """z / |z|, and 0 for 0."""
    mag = np.abs(z)
    return np.where(mag == 0, 0, z / np.where(mag == 0, 1, mag))


def _round_afz(x: Array) -> Array:
    """Round half away from zero (C `round`), exact for every magnitude.

    `x - trunc(x)` is exact, unlike `floor(x + 0.5)`, which rounds wrongly near 2**52.
    """
    whole = np.trunc(x)
    frac = x - whole
    return np.asarray(np.where(np.abs(frac) >= 0.5, whole + np.copysign(1.0, x), whole))


_ERF = np.frompyfunc(math.erf, 1, 1)


def _erf(x: Array) -> Array:
    """erf through `math.erf` (correctly rounded in practice; numpy has no erf)."""
    return np.asarray(_ERF(x.astype(np.float64)), dtype=np.float64).astype(x.dtype)


def _logistic(x: Array) -> Array:
    return np.asarray(1 / (1 + np.exp(-x)))


def _rsqrt(x: Array) -> Array:
    return np.asarray(1 / np.sqrt(x))


def _complex_cbrt(z: Array) -> Array:
    return np.asarray(np.power(z, 1 / 3))


# Ops on floats (computed in the wide type) and on complex numbers (computed in c128).
_FLOAT_UNARY: dict[Opcode, UnaryFn] = {
    Opcode.ABS: np.abs,
    Opcode.CBRT: np.cbrt,
    Opcode.CEIL: np.ceil,
    Opcode.COSINE: np.cos,
    Opcode.ERF: _erf,
    Opcode.EXPONENTIAL: np.exp,
    Opcode.EXPONENTIAL_MINUS_ONE: np.expm1,
    Opcode.FLOOR: np.floor,
    Opcode.LOG: np.log,
    Opcode.LOG_PLUS_ONE: np.log1p,
    Opcode.LOGISTIC: _logistic,
    Opcode.NEGATE: np.negative,
    Opcode.ROUND_NEAREST_AFZ: _round_afz,
    Opcode.ROUND_NEAREST_EVEN: np.rint,
    Opcode.RSQRT: _rsqrt,
    Opcode.SIGN: _float_sign,
    Opcode.SINE: np.sin,
    Opcode.SQRT: np.sqrt,
    Opcode.TAN: np.tan,
    Opcode.TANH: np.tanh,
}

_COMPLEX_UNARY: dict[Opcode, UnaryFn] = {
    Opcode.ABS: np.abs,
    Opcode.CBRT: _complex_cbrt,
    Opcode.COSINE: np.cos,
    Opcode.EXPONENTIAL: np.exp,
    Opcode.EXPONENTIAL_MINUS_ONE: np.expm1,
    Opcode.LOG: np.log,
    Opcode.LOG_PLUS_ONE: np.log1p,
    Opcode.LOGISTIC: _logistic,
    Opcode.NEGATE: np.negative,
    Opcode.RSQRT: _rsqrt,
    Opcode.SIGN: _complex_sign,
    Opcode.SINE: np.sin,
    Opcode.SQRT: np.sqrt,
    Opcode.TAN: np.tan,
    Opcode.TANH: np.tanh,
}


def _clz(x: Array) -> Array:
    """Leading zero bits of each element in its own width (binary search on the bit length)."""
    width = x.dtype.itemsize * 8
    v = x.view(_unsigned(x.dtype)).astype(np.uint64)
    length = np.zeros(x.shape, dtype=np.int64)
    for step in (32, 16, 8, 4, 2, 1):
        big = v >= np.uint64(1 << step)
        length += np.where(big, step, 0)
        v = np.where(big, v >> np.uint64(step), v)
    length += (v > 0).astype(np.int64)
    return (width - length).astype(x.dtype)


_BYTE_POPCOUNT = np.array([bin(b).count("1") for b in range(256)], dtype=np.int64)


def _popcnt(x: Array) -> Array:
    """Set bits of each element, counted per byte through a 256-entry table."""
    as_bytes = np.ascontiguousarray(x).view(np.uint8).reshape(x.shape + (x.dtype.itemsize,))
    return np.asarray(_BYTE_POPCOUNT[as_bytes].sum(axis=-1)).astype(x.dtype)


def _int_sign(x: Array) -> Array:
    return np.asarray(np.sign(x)).astype(x.dtype)


def _not(x: Array) -> Array:
    return np.asarray(np.logical_not(x) if x.dtype == np.bool_ else np.invert(x))


# Ops on integers and pred; numpy's integer abs and negate wrap (abs(INT_MIN) = INT_MIN).
_INTEGER_UNARY: dict[Opcode, UnaryFn] = {
    Opcode.ABS: np.abs,
    Opcode.CLZ: _clz,
    Opcode.NEGATE: np.negative,
    Opcode.NOT: _not,
    Opcode.POPCNT: _popcnt,
    Opcode.SIGN: _int_sign,
}

_UNARY_OPS = sorted(
    set(_FLOAT_UNARY) | set(_COMPLEX_UNARY) | set(_INTEGER_UNARY), key=lambda op: op.value
)


@evaluates(*_UNARY_OPS)
def _unary(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    (x,) = operands
    t = _etype(instr)
    if t.is_float:
        table = _FLOAT_UNARY
    elif t.is_complex:
        table = _COMPLEX_UNARY
    else:
        table = _INTEGER_UNARY
    fn = table.get(instr.opcode)
    if fn is None:
        raise EvaluationError(f"{instr.opcode.value} is not defined on {t.value} ({instr.name})")
    with _quiet():
        if t.is_float or t.is_complex:
            return _result(instr, fn(_wide(x, t)))
        return _result(instr, fn(np.asarray(x)))


@evaluates(Opcode.REAL, Opcode.IMAG)
def _real_imag(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    x = np.asarray(operands[0])
    if instr.opcode is Opcode.REAL:
        return _result(instr, np.real(x))
    return _result(instr, np.imag(x) if np.iscomplexobj(x) else np.zeros_like(x))


@evaluates(Opcode.IS_FINITE)
def _is_finite(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    return _result(instr, np.isfinite(_wide(operands[0], _etype(instr))))


# --- binary ops -------------------------------------------------------------------------------


def _int_divide(a: Array, b: Array) -> Array:
    """Truncating division; x/0 = -1 (all bits set, UINT_MAX if unsigned); INT_MIN/-1 = INT_MIN."""
    info = np.iinfo(a.dtype)
    zero = b == 0
    overflow = (a == info.min) & (b == -1) if info.min < 0 else np.zeros_like(zero)
    safe = np.where(zero | overflow, 1, b).astype(a.dtype)
    rem = np.fmod(a, safe)
    quotient = (a - rem) // safe  # exact: a - rem is a multiple of safe
    all_ones = np.array(-1).astype(a.dtype) if info.min < 0 else np.array(info.max, a.dtype)
    return np.where(zero, all_ones, np.where(overflow, a, quotient)).astype(a.dtype)


def _int_remainder(a: Array, b: Array) -> Array:
    """Remainder with the dividend's sign; x % 0 = x; INT_MIN % -1 = 0."""
    info = np.iinfo(a.dtype)
    zero = b == 0
    overflow = (a == info.min) & (b == -1) if info.min < 0 else np.zeros_like(zero)
    safe = np.where(zero | overflow, 1, b).astype(a.dtype)
    return np.where(zero, a, np.fmod(a, safe)).astype(a.dtype)


def _int_power(a: Array, b: Array) -> Array:
    """Wrapping exponentiation by squaring over every exponent bit.

    A negative exponent gives 1 for base 1 and 0 otherwise, as XLA's HloEvaluator and
    elemental emitter both do (so (-1)**-1 is 0, not -1).
    """
    negative = b < 0
    exponent = np.where(negative, 0, b).astype(np.uint64)
    base = a.copy()
    acc = np.ones_like(a)
    while exponent.any():
        acc = np.where(exponent & np.uint64(1), np.multiply(acc, base), acc)
        base = np.multiply(base, base)
        exponent = exponent >> np.uint64(1)
    return np.where(negative, (a == 1).astype(a.dtype), acc).astype(a.dtype)


def _shift(kind: Opcode) -> BinaryFn:
    """Shifts with the amount read as unsigned; amounts >= the width give 0 (or the sign fill)."""

    def shift(a: Array, b: Array) -> Array:
        width = a.dtype.itemsize * 8
        unsigned, signed = _unsigned(a.dtype), _signed(a.dtype)
        amount = b.view(unsigned)
        out_of_range = amount >= width
        safe = np.where(out_of_range, 0, amount).astype(unsigned)
        if kind is Opcode.SHIFT_LEFT:
            moved = np.where(out_of_range, 0, a.view(unsigned) << safe).astype(unsigned)
        elif kind is Opcode.SHIFT_RIGHT_LOGICAL:
            moved = np.where(out_of_range, 0, a.view(unsigned) >> safe).astype(unsigned)
        else:
            s = a.view(signed)
            fill = np.where(s < 0, -1, 0).astype(signed)
            moved = np.where(out_of_range, fill, s >> safe.astype(signed)).astype(signed)
        return moved.view(a.dtype)

    return shift


def _float_power(a: Array, b: Array) -> Array:
    return np.asarray(np.power(a, b))  # C pow: pow(x, 0) = 1 and pow(1, y) = 1, NaN included


def _complex_power(a: Array, b: Array) -> Array:
    """Complex pow with HloEvaluator's exact cases: 1**z = 1 and z**0 = 1."""
    return np.where((a == 1) | (b == 0), 1 + 0j, np.power(a, b))


_FLOAT_BINARY: dict[Opcode, BinaryFn] = {
    Opcode.ADD: np.add,
    Opcode.ATAN2: np.arctan2,
    Opcode.DIVIDE: np.divide,
    Opcode.MAXIMUM: np.maximum,  # NaN in either operand gives NaN
    Opcode.MINIMUM: np.minimum,
    Opcode.MULTIPLY: np.multiply,
    Opcode.POWER: _float_power,
    Opcode.REMAINDER: np.fmod,  # C fmod: the dividend's sign
    Opcode.SUBTRACT: np.subtract,
}

_COMPLEX_BINARY: dict[Opcode, BinaryFn] = {
    Opcode.ADD: np.add,
    Opcode.DIVIDE: np.divide,
    Opcode.MULTIPLY: np.multiply,
    Opcode.POWER: _complex_power,
    Opcode.SUBTRACT: np.subtract,
}

_INTEGER_BINARY: dict[Opcode, BinaryFn] = {
    Opcode.ADD: np.add,
    Opcode.AND: np.bitwise_and,
    Opcode.DIVIDE: _int_divide,
    Opcode.MAXIMUM: np.maximum,
    Opcode.MINIMUM: np.minimum,
    Opcode.MULTIPLY: np.multiply,
    Opcode.OR: np.bitwise_or,
    Opcode.POWER: _int_power,
    Opcode.REMAINDER: _int_remainder,
    Opcode.SHIFT_LEFT: _shift(Opcode.SHIFT_LEFT),
    Opcode.SHIFT_RIGHT_ARITHMETIC: _shift(Opcode.SHIFT_RIGHT_ARITHMETIC),
    Opcode.SHIFT_RIGHT_LOGICAL: _shift(Opcode.SHIFT_RIGHT_LOGICAL),
    Opcode.SUBTRACT: np.subtract,
    Opcode.XOR: np.bitwise_xor,
}

# pred arithmetic behaves like int8(x) OP int8(y) != 0, as in XLA's EmitPredBinaryOp.
_PRED_BINARY: dict[Opcode, BinaryFn] = {
    Opcode.ADD: np.logical_or,
    Opcode.AND: np.logical_and,
    Opcode.MAXIMUM: np.logical_or,
    Opcode.MINIMUM: np.logical_and,
    Opcode.MULTIPLY: np.logical_and,
    Opcode.OR: np.logical_or,
    Opcode.XOR: np.logical_xor,
}

_BINARY_OPS = sorted(
    set(_FLOAT_BINARY) | set(_COMPLEX_BINARY) | set(_INTEGER_BINARY) | set(_PRED_BINARY),
    key=lambda op: op.value,
)


@evaluates(*_BINARY_OPS)
def _binary(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    a, b = (np.asarray(v) for v in operands)
    t = _etype(instr)
    if t.is_float:
        table = _FLOAT_BINARY
    elif t.is_complex:
        table = _COMPLEX_BINARY
    elif t.is_pred:
        table = _PRED_BINARY
    else:
        table = _INTEGER_BINARY
    fn = table.get(instr.opcode)
    if fn is None:
        raise EvaluationError(f"{instr.opcode.value} is not defined on {t.value} ({instr.name})")
    with _quiet():
        if t.is_float or t.is_complex:
            return _result(instr, fn(_wide(a, t), _wide(b, t)))
        return _result(instr, fn(a, b))


@evaluates(Opcode.COMPLEX)
def _complex(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    """complex(re, im), built component-wise (re + 1j*im would turn inf into NaN)."""
    re, im = (np.asarray(v) for v in operands)
    out = np.empty(instr.shape.dims, dtype=instr.shape.element_type.numpy)
    out.real = re
    out.imag = im
    return out


# --- compare, select, clamp -------------------------------------------------------------------


def _total_order_key(x: Array) -> Array:
    """Signed integers ordered like XLA's TOTALORDER: -NaN < -inf < -0 < +0 < inf < NaN.

    Sign-magnitude bits become two's complement by flipping the magnitude of negatives.
    """
    signed = _signed(x.dtype)
    bits = x.view(signed)
    width = x.dtype.itemsize * 8
    return np.asarray(bits ^ ((bits >> (width - 1)) & np.iinfo(signed).max))


_DIRECTIONS: dict[str, BinaryFn] = {
    "EQ": np.equal,
    "NE": np.not_equal,
    "LT": np.less,
    "LE": np.less_equal,
    "GT": np.greater,
    "GE": np.greater_equal,
}


@evaluates(Opcode.COMPARE)
def _compare(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    """IEEE comparison for floats (NaN unordered, NE true), or the comparison `type` names."""
    a, b = (np.asarray(v) for v in operands)
    t = _etype(instr)
    kind = instr.attrs.get("type")
    if t.is_float and kind == "TOTALORDER":
        a, b = _total_order_key(a), _total_order_key(b)
    elif t in (T.F16, T.BF16):
        a, b = a.astype(np.float32), b.astype(np.float32)
    elif t.is_integer and kind == "SIGNED":
        a, b = a.view(_signed(a.dtype)), b.view(_signed(b.dtype))
    elif t.is_integer and kind == "UNSIGNED":
        a, b = a.view(_unsigned(a.dtype)), b.view(_unsigned(b.dtype))
    fn = _DIRECTIONS[instr.attrs["direction"]]
    with _quiet():
        return _result(instr, fn(a, b))


@evaluates(Opcode.SELECT)
def _select(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    """select(pred, on_true, on_false); a scalar pred picks a whole operand (tuples too)."""
    pred, on_true, on_false = operands
    if isinstance(on_true, tuple):
        return on_true if bool(pred) else on_false
    return _result(instr, np.where(pred, on_true, on_false))


@evaluates(Opcode.CLAMP)
def _clamp(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    """min(max(x, lo), hi) with scalar bounds broadcast; a NaN anywhere gives NaN."""
    lo, x, hi = (np.asarray(v) for v in operands)
    t = instr.shape.element_type
    if t in (T.F16, T.BF16):
        lo, x, hi = (v.astype(np.float32) for v in (lo, x, hi))
    return _result(instr, np.minimum(np.maximum(x, lo), hi))


# --- conversions ------------------------------------------------------------------------------


def _float_to_int(x: Array, dst: np.dtype) -> Array:
    """Truncate toward zero, saturating at the type's range; NaN converts to 0."""
    info = np.iinfo(dst)
    t = np.trunc(x.astype(np.float64))
    low, high = float(info.min), float(info.max)  # high rounds up to a power of two
    inside = (t > low) & (t < high)
    wide = np.int64 if info.min < 0 else np.uint64
    inner = np.where(inside, t, 0).astype(wide).astype(dst)
    out = np.where(t <= low, info.min, np.where(t >= high, info.max, inner)).astype(dst)
    return np.where(np.isnan(t), 0, out).astype(dst)


def convert_array(x: Array, src: PrimitiveType, dst: PrimitiveType) -> Array:
    """XLA `convert` of an array from `src` to `dst` (the CPU elemental emitter's rules).

    float -> int truncates and saturates, NaN -> 0; anything -> pred is x != 0 (NaN -> true);
    int -> int wraps; pred -> number is 0/1; number -> complex sets the real part; conversions
    to bf16 go through f32 (as XLA's EmitF32ToBF16 does), other float narrowing is one
    round-to-nearest-even. complex -> real is undefined in XLA and raises EvaluationError.
    """
    x = np.asarray(x)
    out = dst.numpy
    if src is dst:
        return x.copy()
    with _quiet():
        if src.is_complex and not dst.is_complex and not dst.is_pred:
            raise EvaluationError(f"convert from {src.value} to {dst.value} is not defined")
        if dst.is_pred:
            wide = x.astype(_WIDE[src]) if src in _WIDE else x
            return np.asarray(wide != 0)
        if dst.is_complex:
            if src.is_complex:
                return x.astype(out)
            return convert_array(x, src, complex_component(dst)).astype(out)
        if dst.is_integer:
            if src.is_float:
                return _float_to_int(x, out)
            return x.astype(out)
        if dst is T.BF16 and src is not T.F32:
            return convert_array(x, src, T.F32).astype(out)
        if src is T.BF16:
            return x.astype(np.float32).astype(out)
        return x.astype(out)


@evaluates(Opcode.CONVERT)
def _convert(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    return _result(instr, convert_array(operands[0], _etype(instr), instr.shape.element_type))


@evaluates(Opcode.BITCAST_CONVERT)
def _bitcast_convert(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    """Reinterpret bits (little-endian, as on every host we run on).

    Narrowing adds a trailing dimension of width ratio; widening consumes the trailing one,
    which is XLA's rule. Viewing a contiguous array and reshaping implements both.
    """
    x = np.ascontiguousarray(operands[0])
    out = instr.shape.element_type.numpy
    if x.nbytes != instr.shape.num_elements * out.itemsize:
        raise EvaluationError(
            f"bitcast-convert {instr.name}: {x.dtype}{list(x.shape)} does not have the "
            f"byte size of {instr.shape.to_text(with_layout=False)}"
        )
    if x.ndim == 0:
        x = x.reshape(1)
    return _result(instr, x.view(out).reshape(instr.shape.dims))


# (exponent bits, mantissa bits) of each float type's encoding
_FLOAT_FORMAT: dict[PrimitiveType, tuple[int, int]] = {
    T.F16: (5, 10),
    T.BF16: (8, 7),
    T.F32: (8, 23),
    T.F64: (11, 52),
}


def reduce_precision(x: Array, t: PrimitiveType, exponent_bits: int, mantissa_bits: int) -> Array:
    """XLA's reduce-precision on the bits of `x` (type `t`), as its EmitReducePrecisionIR.

    The mantissa is rounded to nearest even; an exponent above the reduced range becomes a
    signed infinity, one at or below its lowest value a signed zero (denormals are flushed,
    not rounded). NaN stays NaN, or becomes +inf when no mantissa bit is kept.
    """
    src_exp, src_man = _FLOAT_FORMAT[t]
    if exponent_bits < 1 or mantissa_bits < 0:
        raise EvaluationError(
            f"reduce-precision needs exponent_bits >= 1 and mantissa_bits >= 0, "
            f"got {exponent_bits} and {mantissa_bits}"
        )
    width = t.bits
    u = np.dtype(f"u{width // 8}")
    x = np.asarray(x)
    bits = x.view(u).copy()
    with _quiet():
        if mantissa_bits < src_man:
            shift = src_man - mantissa_bits
            last_bit = u.type(1 << shift)
            base_bias = u.type((1 << (shift - 1)) - 1)
            x_last = (bits & last_bit) >> u.type(shift)
            truncation = u.type(((1 << width) - 1) ^ ((1 << shift) - 1))
            bits = (bits + x_last + base_bias) & truncation
        if exponent_bits < src_exp:
            sign_mask = u.type(1 << (width - 1))
            exp_mask = u.type(((1 << src_exp) - 1) << src_man)
            bias = (1 << (src_exp - 1)) - 1
            reduced_bias = (1 << (exponent_bits - 1)) - 1
            x_exp = bits & exp_mask
            overflows = x_exp > u.type((bias + reduced_bias) << src_man)
            underflows = x_exp <= u.type((bias - reduced_bias) << src_man)
            signed_zero = bits & sign_mask
            bits = np.where(overflows, signed_zero | exp_mask, bits)
            bits = np.where(underflows, signed_zero, bits).astype(u)
    reduced = np.asarray(bits).view(x.dtype)
    nan = np.isnan(x.astype(np.float64))
    if mantissa_bits > 0:
        return np.where(nan, x, reduced)
    return np.where(nan, np.array(np.inf, x.dtype), reduced)


@evaluates(Opcode.REDUCE_PRECISION)
def _reduce_precision(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    t = _etype(instr)
    if t not in _FLOAT_FORMAT:
        raise EvaluationError(f"reduce-precision is not defined on {t.value} ({instr.name})")
    x = reduce_precision(operands[0], t, instr.attrs["exponent_bits"], instr.attrs["mantissa_bits"])
    return _result(instr, x)


__all__ = ["convert_array", "reduce_precision"]
