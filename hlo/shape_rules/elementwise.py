"""Shape rules of the elementwise ops: unary and binary math by the element kinds each
accepts, conversions (convert, bitcast-convert, reduce-precision), complex construction, compare
with its comparison type, select and clamp. Operands have identical dimensions (broadcasts are
explicit in modern HLO) and the result keeps them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hlo.dtypes import PrimitiveType, complex_component
from hlo.shape import Shape
from hlo.shape_rules.common import (
    _arity,
    _array,
    _arrays,
    _bare,
    _declared_array,
    _enum,
    _err,
    _int,
    _is_numeric,
    _text,
)

_T = PrimitiveType


def _require(op: str, operands: Sequence[Shape], accepts: str, ok: bool) -> Shape:
    """The first operand's shape if `ok` (its element type is one the rule `accepts`)."""
    x = operands[0]
    if not ok:
        what = "operand" if len(operands) == 1 else "operands"
        raise _err(op, operands, f"{what} must have {accepts} elements, got {_text(x)}")
    return _bare(x)


def _unary_operand(op: str, operands: Sequence[Shape]) -> PrimitiveType:
    _arity(op, operands, 1)
    return _array(op, operands, 0).element_type


def unary_float(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Floating-point or complex math: `exponential f32[4] -> f32[4]`."""
    op = "elementwise unary op"
    t = _unary_operand(op, operands)
    return _require(op, operands, "floating-point or complex", t.is_float or t.is_complex)


def unary_real_float(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Real floating-point only (floor, ceil, rounding, erf): `floor f32[4] -> f32[4]`."""
    op = "elementwise unary op"
    t = _unary_operand(op, operands)
    return _require(op, operands, "floating-point", t.is_float)


def unary_integer(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Integer bit counting: `popcnt s32[4] -> s32[4]`."""
    op = "elementwise integer op"
    t = _unary_operand(op, operands)
    return _require(op, operands, "integer", t.is_integer)


def unary_logical(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Logical or bitwise not: `not pred[4] -> pred[4]`, `not u8[4] -> u8[4]`."""
    op = "not"
    t = _unary_operand(op, operands)
    return _require(op, operands, "pred or integer", t.is_pred or t.is_integer)


def unary_numeric(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Any number type, not pred (negate, sign): `negate s32[4] -> s32[4]`."""
    op = "elementwise unary op"
    t = _unary_operand(op, operands)
    return _require(op, operands, "integer, floating-point or complex", _is_numeric(t))


def abs_(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Signed or float keeps its type; complex gives its component: `abs c64[4] -> f32[4]`."""
    op = "abs"
    t = _unary_operand(op, operands)
    if t.is_complex:
        return Shape(complex_component(t), operands[0].dims)
    return _require(op, operands, "signed, floating-point or complex", t.is_signed or t.is_float)


def real_imag(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Component of a complex (floats pass through): `real c64[4] -> f32[4]`."""
    op = "real/imag"
    t = _unary_operand(op, operands)
    if t.is_complex:
        return Shape(complex_component(t), operands[0].dims)
    return _require(op, operands, "floating-point or complex", t.is_float)


def is_finite(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Float test giving pred: `is-finite f32[4] -> pred[4]`."""
    op = "is-finite"
    t = _unary_operand(op, operands)
    _require(op, operands, "floating-point", t.is_float)
    return Shape(_T.PRED, operands[0].dims)


def convert(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """New element type from the declared shape, same dims: `convert f32[4] -> s32[4]`."""
    op = "convert"
    _unary_operand(op, operands)
    x = operands[0]
    target = _declared_array(op, operands, declared)
    if target.dims != x.dims:
        raise _err(op, operands, f"declared {_text(target)} must keep the operand's dimensions")
    if x.element_type.is_complex and not target.element_type.is_complex:
        raise _err(
            op,
            operands,
            f"cannot convert complex to real type {target.element_type.value} (use real/imag)",
        )
    return Shape(target.element_type, x.dims)


def bitcast_convert(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Reinterpret bits: equal widths keep dims; a narrower target appends a minor dim of
    size ratio, a wider one removes it: `bitcast-convert f32[4] -> s32[4]`,
    `bitcast-convert u64[2] -> u32[2,2]`, `bitcast-convert u32[2,2] -> u64[2]`.
    """
    op = "bitcast-convert"
    old = _unary_operand(op, operands)
    x = operands[0]
    new = _declared_array(op, operands, declared).element_type
    if old.is_complex != new.is_complex:
        raise _err(op, operands, f"cannot bitcast between complex and real ({new.value})")
    wide, narrow = max(old.bits, new.bits), min(old.bits, new.bits)
    if wide % narrow:
        raise _err(op, operands, f"bit widths {old.bits} and {new.bits} do not divide")
    ratio = wide // narrow
    if old.bits > new.bits:
        return Shape(new, (*x.dims, ratio))
    if old.bits < new.bits:
        if x.rank == 0 or x.dims[-1] != ratio:
            raise _err(op, operands, f"to a {ratio}x wider type the last dimension must be {ratio}")
        return Shape(new, x.dims[:-1])
    return Shape(new, x.dims)


def reduce_precision(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Round to fewer exponent/mantissa bits, same shape:
    `reduce-precision f32[4], exponent_bits=5, mantissa_bits=10 -> f32[4]`."""
    op = "reduce-precision"
    t = _unary_operand(op, operands)
    _require(op, operands, "floating-point", t.is_float)
    if _int(op, attrs, "exponent_bits") < 1:
        raise _err(op, operands, "exponent_bits must be at least 1")
    if _int(op, attrs, "mantissa_bits") < 0:
        raise _err(op, operands, "mantissa_bits must not be negative")
    return _bare(operands[0])


def _binary(op: str, operands: Sequence[Shape]) -> Shape:
    """Two arrays of the same element type and dims (HLO has explicit broadcasts)."""
    _arity(op, operands, 2)
    lhs = _array(op, operands, 0, "lhs")
    rhs = _array(op, operands, 1, "rhs")
    if lhs.element_type is not rhs.element_type:
        raise _err(op, operands, "operands must have the same element type")
    if lhs.dims != rhs.dims:
        raise _err(
            op, operands, "operands must have the same dimensions (broadcasts are explicit in HLO)"
        )
    return _bare(lhs)


def binary_numeric(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Arithmetic on equal shapes (pred allowed, as XLA allows add/max on pred):
    `add f32[2,3] f32[2,3] -> f32[2,3]`."""
    return _binary("elementwise binary op", operands)


def binary_arithmetic(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Arithmetic that has no pred meaning (subtract, divide, power, remainder):
    `subtract s32[4] s32[4] -> s32[4]`."""
    op = "elementwise binary op"
    shape = _binary(op, operands)
    if shape.element_type.is_pred:
        raise _err(op, operands, "operands must be numbers, not pred")
    return shape


def binary_float(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Floating-point or complex binary math: `atan2 f32[4] f32[4] -> f32[4]`."""
    op = "atan2"
    shape = _binary(op, operands)
    t = shape.element_type
    return _require(op, operands, "floating-point or complex", t.is_float or t.is_complex)


def binary_integer(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Shifts, integers only: `shift-left u32[4] u32[4] -> u32[4]`."""
    op = "shift"
    shape = _binary(op, operands)
    return _require(op, operands, "integer", shape.element_type.is_integer)


def binary_logical(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """and/or/xor on pred or integers: `and pred[4] pred[4] -> pred[4]`."""
    op = "and/or/xor"
    shape = _binary(op, operands)
    t = shape.element_type
    return _require(op, operands, "pred or integer", t.is_pred or t.is_integer)


def complex_(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Compose real and imaginary parts: `complex f32[4] f32[4] -> c64[4]`."""
    op = "complex"
    shape = _binary(op, operands)
    result = {_T.F32: _T.C64, _T.F64: _T.C128}.get(shape.element_type)
    if result is None:
        raise _err(op, operands, "operands must both be f32 or both be f64")
    return Shape(result, shape.dims)


# How a comparison `type=` must agree with the element kind (XLA's Comparison::Type).
_COMPARISON_TYPES = {
    "FLOAT": lambda t: t.is_float or t.is_complex,
    "TOTALORDER": lambda t: t.is_float or t.is_complex,
    "SIGNED": lambda t: t.is_signed,
    "UNSIGNED": lambda t: t.is_unsigned or t.is_pred,
}


def compare(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Equal shapes give pred: `compare f32[4] f32[4], direction=LT -> pred[4]`."""
    op = "compare"
    shape = _binary(op, operands)
    _enum(op, attrs, "direction", ("EQ", "NE", "LT", "LE", "GT", "GE"))
    kind = attrs.get("type")
    if kind is not None:
        check = _COMPARISON_TYPES.get(kind) if isinstance(kind, str) else None
        if check is None:
            raise _err(op, operands, f"unknown comparison type {kind!r}")
        if not check(shape.element_type):
            raise _err(
                op, operands, f"comparison type {kind} does not apply to {shape.element_type.value}"
            )
    return Shape(_T.PRED, shape.dims)


def select(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Pick per element; pred has the branches' dims or is a scalar:
    `select pred[4] f32[4] f32[4] -> f32[4]`."""
    op = "select"
    _arity(op, operands, 3)
    _arrays(op, operands)
    pred, on_true, on_false = operands
    if not on_true.compatible(on_false):
        raise _err(op, operands, "on_true and on_false must have the same shape")
    if pred.element_type is not _T.PRED:
        raise _err(op, operands, "the predicate must have element type pred")
    if pred.dims != on_true.dims and pred.rank != 0:
        raise _err(op, operands, "the predicate must be a scalar or have the branches' dims")
    return _bare(on_true)


def clamp(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """min/max are scalars or shaped like the operand, same type:
    `clamp f32[] f32[4] f32[] -> f32[4]`."""
    op = "clamp"
    _arity(op, operands, 3)
    _arrays(op, operands)
    low, x, high = operands
    for bound in (low, high):
        if bound.element_type is not x.element_type:
            raise _err(op, operands, "min, operand and max must have the same element type")
        if bound.rank != 0 and bound.dims != x.dims:
            raise _err(op, operands, "min and max must be scalars or have the operand's dims")
    return _bare(x)
