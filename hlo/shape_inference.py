"""Pure shape rules, one function per op family; no IR imports.

Each rule takes the operand shapes, the attributes (called computations given as
`ProgramShape`) and the declared result shape (None when not declared) and returns the
result shape, or raises ShapeError naming the op, the operand shapes and the violated rule.
Rules follow XLA's ShapeInference (modern HLO semantics: explicit broadcasts, so elementwise
operands have identical dimensions). Inferred results carry no layout; a declared shape that
a rule returns as-is keeps its layout. Rules never raise anything but ShapeError, whatever
the attribute values, so the verifier and the builder can call them on untrusted input.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from hlo.attributes import ConvDimLabels, PadDim, PaddingConfig, SliceDim, Window, WindowDim
from hlo.dtypes import PrimitiveType, complex_component
from hlo.errors import ShapeError
from hlo.shape import ProgramShape, Shape

_T = PrimitiveType
_MISSING: Any = object()


# --- messages ----------------------------------------------------------------------------


def _text(shape: Shape) -> str:
    return shape.to_text(with_layout=False)


def _err(op: str, operands: Sequence[Shape], rule: str) -> ShapeError:
    """A ShapeError for `op`: the violated rule, then the operand shapes."""
    listed = ", ".join(_text(s) for s in operands)
    return ShapeError(f"{op}: {rule}; operands: ({listed})")


# --- attribute readers: wrong kinds become ShapeError, never TypeError ---------------------


def _get(op: str, attrs: Mapping[str, Any], name: str, default: Any) -> Any:
    value = attrs.get(name)
    if value is None:
        if default is _MISSING:
            raise ShapeError(f"{op}: missing attribute '{name}'")
        return default
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _int(op: str, attrs: Mapping[str, Any], name: str, default: Any = _MISSING) -> int:
    value = _get(op, attrs, name, default)
    if not _is_int(value):
        raise ShapeError(f"{op}: attribute '{name}' must be an integer, got {value!r}")
    return int(value)


def _ints(op: str, attrs: Mapping[str, Any], name: str, default: Any = _MISSING) -> tuple[int, ...]:
    value = _get(op, attrs, name, default)
    if not isinstance(value, (tuple, list)) or not all(_is_int(v) for v in value):
        raise ShapeError(f"{op}: attribute '{name}' must be a list of integers, got {value!r}")
    return tuple(int(v) for v in value)


def _bool(op: str, attrs: Mapping[str, Any], name: str, default: Any = _MISSING) -> bool:
    value = _get(op, attrs, name, default)
    if not isinstance(value, bool):
        raise ShapeError(f"{op}: attribute '{name}' must be true or false, got {value!r}")
    return value


def _enum(
    op: str, attrs: Mapping[str, Any], name: str, choices: Sequence[str], default: Any = _MISSING
) -> str:
    value = _get(op, attrs, name, default)
    if value not in choices:
        raise ShapeError(
            f"{op}: attribute '{name}' must be one of {', '.join(choices)}, got {value!r}"
        )
    return str(value)


def _program(op: str, attrs: Mapping[str, Any], name: str) -> ProgramShape:
    value = _get(op, attrs, name, _MISSING)
    if not isinstance(value, ProgramShape):
        raise ShapeError(f"{op}: attribute '{name}' must be a computation, got {value!r}")
    return value


def _window(op: str, attrs: Mapping[str, Any], default: Any = _MISSING) -> tuple[WindowDim, ...]:
    value = _get(op, attrs, "window", default)
    if not isinstance(value, Window) or not isinstance(value.dims, tuple):
        raise ShapeError(f"{op}: attribute 'window' must be a window, got {value!r}")
    for d in value.dims:
        fields = (
            (d.size, d.stride, d.padding_low, d.padding_high, d.window_dilation, d.base_dilation)
            if isinstance(d, WindowDim)
            else ()
        )
        if not fields or not all(_is_int(f) for f in fields):
            raise ShapeError(f"{op}: malformed window dimension {d!r}")
    return value.dims


# --- operand checks ------------------------------------------------------------------------


def _arity(op: str, operands: Sequence[Shape], count: int) -> None:
    if len(operands) != count:
        raise _err(op, operands, f"takes {count} operand(s), got {len(operands)}")


def _array(op: str, operands: Sequence[Shape], i: int, what: str = "operand") -> Shape:
    shape = operands[i]
    if not shape.is_array:
        raise _err(op, operands, f"{what} must be an array, got {_text(shape)}")
    return shape


def _arrays(op: str, operands: Sequence[Shape]) -> None:
    for i in range(len(operands)):
        _array(op, operands, i, f"operand {i}")


def _scalar(op: str, operands: Sequence[Shape], i: int, what: str) -> Shape:
    shape = _array(op, operands, i, what)
    if shape.rank != 0:
        raise _err(op, operands, f"{what} must be a scalar, got {_text(shape)}")
    return shape


def _declared(op: str, declared: Shape | None) -> Shape:
    if declared is None:
        raise ShapeError(f"{op}: the result shape must be declared")
    return declared


def _declared_array(op: str, operands: Sequence[Shape], declared: Shape | None) -> Shape:
    shape = _declared(op, declared)
    if not shape.is_array:
        raise _err(op, operands, f"declared result must be an array, got {_text(shape)}")
    return shape


def _dims_in_range(
    op: str, operands: Sequence[Shape], what: str, dims: Sequence[int], rank: int
) -> None:
    """Every entry of `dims` is a dimension number < rank, none repeated."""
    for d in dims:
        if not 0 <= d < rank:
            raise _err(
                op, operands, f"{what} {list(dims)}: dimension {d} is out of range for rank {rank}"
            )
    if len(set(dims)) != len(dims):
        raise _err(op, operands, f"{what} {list(dims)} repeats a dimension")


def _sorted(op: str, operands: Sequence[Shape], what: str, dims: Sequence[int]) -> None:
    if list(dims) != sorted(dims):
        raise _err(op, operands, f"{what} {list(dims)} must be sorted")


def _bare(shape: Shape) -> Shape:
    return shape.without_layout()


def _is_numeric(t: PrimitiveType) -> bool:
    return t.is_integer or t.is_float or t.is_complex


# =========================================================================================
# Elementwise
# =========================================================================================


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


# =========================================================================================
# Leaves
# =========================================================================================


def _literal_matches(literal: Any, shape: Shape) -> bool:
    """Whether a constant's value (ndarray, or tuple of them) has `shape`'s structure."""
    if shape.is_tuple:
        return (
            isinstance(literal, (tuple, list))
            and len(literal) == len(shape.tuple_shapes)
            and all(
                _literal_matches(v, s) for v, s in zip(literal, shape.tuple_shapes, strict=True)
            )
        )
    dims = getattr(literal, "shape", None)
    dtype = getattr(literal, "dtype", None)
    if not shape.is_array or not isinstance(dims, tuple) or dtype is None:
        return shape.is_token
    return tuple(dims) == shape.dims and dtype == shape.element_type.numpy


def constant(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """The declared shape, which the literal must match: `constant({1, 2}) -> s32[2]`."""
    op = "constant"
    _arity(op, operands, 0)
    shape = _declared(op, declared)
    literal = attrs.get("literal")
    if literal is not None and not _literal_matches(literal, shape):
        found = getattr(literal, "shape", type(literal).__name__)
        raise ShapeError(f"{op}: literal {found} does not match declared shape {_text(shape)}")
    return shape


def parameter(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """The declared shape: `parameter(0) -> f32[2,3]`."""
    op = "parameter"
    _arity(op, operands, 0)
    if _int(op, attrs, "parameter_number") < 0:
        raise ShapeError(f"{op}: parameter_number must not be negative")
    return _declared(op, declared)


def iota(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """The declared numeric array, counting along iota_dimension:
    `iota(), iota_dimension=1 -> s32[2,3]`."""
    op = "iota"
    _arity(op, operands, 0)
    shape = _declared_array(op, operands, declared)
    if shape.rank == 0 or not _is_numeric(shape.element_type):
        raise ShapeError(f"{op}: result must be a numeric array of rank >= 1, got {_text(shape)}")
    dim = _int(op, attrs, "iota_dimension")
    if not 0 <= dim < shape.rank:
        raise ShapeError(f"{op}: iota_dimension {dim} is out of range for {_text(shape)}")
    return shape


def replica_id(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """The id of this replica or partition: `replica-id() -> u32[]`."""
    _arity("replica-id/partition-id", operands, 0)
    return Shape(_T.U32, ())


def rng(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Random numbers of the declared shape from two scalar parameters of its type:
    `rng f32[] f32[], distribution=rng_uniform -> f32[3,4]`."""
    op = "rng"
    _arity(op, operands, 2)
    a = _scalar(op, operands, 0, "first parameter")
    b = _scalar(op, operands, 1, "second parameter")
    result = _declared_array(op, operands, declared)
    t = result.element_type
    if a.element_type is not t or b.element_type is not t:
        raise _err(op, operands, f"parameters must have the result's element type {t.value}")
    dist = _enum(op, attrs, "distribution", ("rng_uniform", "rng_normal"))
    if dist == "rng_normal" and not t.is_float:
        raise _err(op, operands, "rng_normal needs a floating-point result")
    if not (t.is_float or t.is_integer):
        raise _err(op, operands, "rng needs an integer or floating-point result")
    return result


def custom_call(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Opaque to shape inference: the declared shape, e.g. `custom-call(f32[4]) -> f32[4]`."""
    op = "custom-call"
    target = _get(op, attrs, "custom_call_target", _MISSING)
    if not isinstance(target, str):
        raise ShapeError(f"{op}: custom_call_target must be a string, got {target!r}")
    return _declared(op, declared)


# =========================================================================================
# Data movement
# =========================================================================================


def bitcast(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Same bytes, new declared shape: `bitcast f32[2,3] -> f32[6]`."""
    op = "bitcast"
    _arity(op, operands, 1)
    x = _array(op, operands, 0)
    result = _declared_array(op, operands, declared)
    if x.num_elements * x.element_type.bits != result.num_elements * result.element_type.bits:
        raise _err(op, operands, f"declared {_text(result)} has a different size in bits")
    return result


def broadcast(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Operand dim i becomes result dim dimensions[i], sizes equal; the result is declared:
    `broadcast f32[3], dimensions={1} -> f32[2,3]`."""
    op = "broadcast"
    _arity(op, operands, 1)
    x = _array(op, operands, 0)
    result = _declared_array(op, operands, declared)
    dims = _ints(op, attrs, "dimensions")
    if result.element_type is not x.element_type:
        raise _err(op, operands, f"declared {_text(result)} changes the element type")
    if len(dims) != x.rank:
        raise _err(
            op,
            operands,
            f"dimensions {list(dims)} must name one result dim per operand dim ({x.rank})",
        )
    _dims_in_range(op, operands, "dimensions", dims, result.rank)
    for i, d in enumerate(dims):
        if x.dims[i] != result.dims[d]:
            raise _err(
                op,
                operands,
                f"operand dim {i} (size {x.dims[i]}) differs from result "
                f"dim {d} (size {result.dims[d]}) of {_text(result)}",
            )
    return result


def reshape(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Same elements in a declared shape: `reshape f32[2,3] -> f32[3,2]`."""
    op = "reshape"
    _arity(op, operands, 1)
    x = _array(op, operands, 0)
    result = _declared_array(op, operands, declared)
    if result.element_type is not x.element_type:
        raise _err(op, operands, f"declared {_text(result)} changes the element type")
    if result.num_elements != x.num_elements:
        raise _err(
            op,
            operands,
            f"declared {_text(result)} has {result.num_elements} elements, "
            f"the operand {x.num_elements}",
        )
    inferred = _int(op, attrs, "inferred_dimension", -1)
    if inferred != -1 and not 0 <= inferred < result.rank:
        raise _err(op, operands, f"inferred_dimension {inferred} is out of range")
    return result


def transpose(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Result dim i is operand dim dimensions[i]:
    `transpose f32[2,3,4], dimensions={2,0,1} -> f32[4,2,3]`."""
    op = "transpose"
    _arity(op, operands, 1)
    x = _array(op, operands, 0)
    perm = _ints(op, attrs, "dimensions")
    if sorted(perm) != list(range(x.rank)):
        raise _err(
            op,
            operands,
            f"dimensions {list(perm)} are not a permutation of the operand's {x.rank} dims",
        )
    return Shape(x.element_type, tuple(x.dims[p] for p in perm))


def reverse(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Same shape, listed dims reversed: `reverse f32[2,3], dimensions={1} -> f32[2,3]`."""
    op = "reverse"
    _arity(op, operands, 1)
    x = _array(op, operands, 0)
    _dims_in_range(op, operands, "dimensions", _ints(op, attrs, "dimensions"), x.rank)
    return _bare(x)


def slice_(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Static strided window: `slice f32[32,32], slice={[0:16], [0:16]} -> f32[16,16]`."""
    op = "slice"
    _arity(op, operands, 1)
    x = _array(op, operands, 0)
    spec = _get(op, attrs, "slice", _MISSING)
    if not isinstance(spec, (tuple, list)) or not all(
        isinstance(s, SliceDim) and _is_int(s.start) and _is_int(s.limit) and _is_int(s.stride)
        for s in spec
    ):
        raise ShapeError(f"{op}: attribute 'slice' must be a list of [start:limit:stride]")
    if len(spec) != x.rank:
        raise _err(op, operands, f"slice has {len(spec)} entries for rank {x.rank}")
    dims = []
    for i, (s, size) in enumerate(zip(spec, x.dims, strict=True)):
        if s.stride <= 0:
            raise _err(op, operands, f"stride {s.stride} in dim {i} must be positive")
        if not 0 <= s.start <= s.limit <= size:
            raise _err(
                op,
                operands,
                f"dim {i}: need 0 <= start {s.start} <= limit {s.limit} <= size {size}",
            )
        dims.append((s.limit - s.start + s.stride - 1) // s.stride)
    return Shape(x.element_type, tuple(dims))


def _index_scalars(op: str, operands: Sequence[Shape], first: int, rank: int) -> None:
    """operands[first:] are `rank` integer scalars of one type (one start index per dim)."""
    indices = operands[first:]
    if len(indices) != rank:
        raise _err(
            op, operands, f"needs one start index per operand dim ({rank}), got {len(indices)}"
        )
    for i in range(first, len(operands)):
        index = _scalar(op, operands, i, f"start index {i - first}")
        if not index.element_type.is_integer:
            raise _err(op, operands, "start indices must be integers")
        if index.element_type is not operands[first].element_type:
            raise _err(op, operands, "start indices must all have the same type")


def dynamic_slice(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Window of dynamic_slice_sizes at scalar start indices:
    `dynamic-slice f32[8,8] s32[] s32[], dynamic_slice_sizes={2,4} -> f32[2,4]`."""
    op = "dynamic-slice"
    if not operands:
        raise ShapeError(f"{op}: needs an operand")
    x = _array(op, operands, 0)
    _index_scalars(op, operands, 1, x.rank)
    sizes = _ints(op, attrs, "dynamic_slice_sizes")
    if len(sizes) != x.rank:
        raise _err(op, operands, f"dynamic_slice_sizes {list(sizes)} must have rank {x.rank}")
    for i, (s, d) in enumerate(zip(sizes, x.dims, strict=True)):
        if not 0 <= s <= d:
            raise _err(op, operands, f"slice size {s} in dim {i} is not within [0, {d}]")
    return Shape(x.element_type, sizes)


def dynamic_update_slice(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Write `update` at scalar start indices; operand shape:
    `dynamic-update-slice f32[8] f32[2] s32[] -> f32[8]`."""
    op = "dynamic-update-slice"
    if len(operands) < 2:
        raise _err(op, operands, "needs an operand, an update and start indices")
    x = _array(op, operands, 0)
    update = _array(op, operands, 1, "update")
    _index_scalars(op, operands, 2, x.rank)
    if update.element_type is not x.element_type:
        raise _err(op, operands, "update must have the operand's element type")
    if update.rank != x.rank or any(u > d for u, d in zip(update.dims, x.dims, strict=True)):
        raise _err(op, operands, "update must have the operand's rank and fit inside it")
    return _bare(x)


def concatenate(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Join along one dim, others equal: `concatenate f32[2,3] f32[4,3], dimensions={0}
    -> f32[6,3]`."""
    op = "concatenate"
    if not operands:
        raise ShapeError(f"{op}: needs at least one operand")
    _arrays(op, operands)
    dims = _ints(op, attrs, "dimensions")
    first = operands[0]
    if len(dims) != 1 or not 0 <= dims[0] < first.rank:
        raise _err(op, operands, f"dimensions {list(dims)} must name one dim of the operands")
    axis = dims[0]
    for s in operands[1:]:
        if s.element_type is not first.element_type or s.rank != first.rank:
            raise _err(op, operands, "operands must have the same element type and rank")
        if any(
            a != b for i, (a, b) in enumerate(zip(s.dims, first.dims, strict=True)) if i != axis
        ):
            raise _err(op, operands, f"operands may differ only in dimension {axis}")
    size = sum(s.dims[axis] for s in operands)
    return Shape(first.element_type, (*first.dims[:axis], size, *first.dims[axis + 1 :]))


def pad(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Edge (possibly negative) and interior padding with a scalar:
    `pad f32[3] f32[], padding=1_-1_2 -> f32[7]` (1 + 3 - 1 + 2*2)."""
    op = "pad"
    _arity(op, operands, 2)
    x = _array(op, operands, 0)
    value = _scalar(op, operands, 1, "padding value")
    if value.element_type is not x.element_type:
        raise _err(op, operands, "padding value must have the operand's element type")
    config = _get(op, attrs, "padding", _MISSING)
    if not isinstance(config, PaddingConfig) or not all(
        isinstance(p, PadDim) and _is_int(p.low) and _is_int(p.high) and _is_int(p.interior)
        for p in config.dims
    ):
        raise ShapeError(f"{op}: attribute 'padding' must be a padding config")
    if len(config.dims) != x.rank:
        raise _err(op, operands, f"padding has {len(config.dims)} entries for rank {x.rank}")
    dims = []
    for i, (p, d) in enumerate(zip(config.dims, x.dims, strict=True)):
        if p.interior < 0:
            raise _err(op, operands, f"interior padding {p.interior} in dim {i} is negative")
        size = p.low + d + p.high + max(d - 1, 0) * p.interior
        if size < 0:
            raise _err(op, operands, f"padding makes dim {i} negative ({size})")
        dims.append(size)
    return Shape(x.element_type, tuple(dims))


def _combine(
    op: str,
    operands: Sequence[Shape],
    rank: int,
    placed: Sequence[int],
    placed_sizes: Sequence[int],
    rest: Sequence[int],
) -> tuple[int, ...]:
    """Dims of rank `rank`: `placed_sizes` at positions `placed`, `rest` elsewhere in order."""
    if len(placed) != len(placed_sizes) or rank - len(placed) != len(rest):
        raise _err(op, operands, "dimension numbers do not add up to the result rank")
    sizes, rest_iter = dict(zip(placed, placed_sizes, strict=True)), iter(rest)
    return tuple(sizes[i] if i in sizes else next(rest_iter) for i in range(rank))


def _index_dims(op: str, operands: Sequence[Shape], indices: Shape, ivd: int) -> tuple[int, ...]:
    """Index dims with the implicit trailing 1 when index_vector_dim == rank."""
    if not indices.element_type.is_integer:
        raise _err(op, operands, "indices must be integers")
    if not 0 <= ivd <= indices.rank:
        raise _err(op, operands, f"index_vector_dim {ivd} is not within [0, {indices.rank}]")
    return indices.dims + (1,) if ivd == indices.rank else indices.dims


def _batching(
    op: str,
    operands: Sequence[Shape],
    x: Shape,
    x_dims: Sequence[int],
    indices: Shape,
    index_dims: Sequence[int],
    ivd: int,
    names: tuple[str, str],
) -> None:
    """Operand batching dims pair up with index batching dims of equal size."""
    _dims_in_range(op, operands, names[1], index_dims, indices.rank)
    if ivd in index_dims:
        raise _err(op, operands, f"{names[1]} must not contain index_vector_dim {ivd}")
    if len(x_dims) != len(index_dims):
        raise _err(op, operands, f"{names[0]} and {names[1]} must have the same length")
    for a, b in zip(x_dims, index_dims, strict=True):
        if x.dims[a] != indices.dims[b]:
            raise _err(
                op,
                operands,
                f"batching dims differ in size: operand dim {a} is "
                f"{x.dims[a]}, indices dim {b} is {indices.dims[b]}",
            )


def gather(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Slices of slice_sizes at gathered starts; offset_dims place the slice dims (minus
    collapsed and operand batching dims), the other result dims are the index batch dims:
    `gather f32[5,3] s32[4,1], offset_dims={1}, collapsed_slice_dims={0},
    start_index_map={0}, index_vector_dim=1, slice_sizes={1,3} -> f32[4,3]`."""
    op = "gather"
    _arity(op, operands, 2)
    x = _array(op, operands, 0)
    indices = _array(op, operands, 1, "start_indices")
    offset_dims = _ints(op, attrs, "offset_dims")
    collapsed = _ints(op, attrs, "collapsed_slice_dims")
    start_map = _ints(op, attrs, "start_index_map")
    x_batch = _ints(op, attrs, "operand_batching_dims", ())
    i_batch = _ints(op, attrs, "start_indices_batching_dims", ())
    ivd = _int(op, attrs, "index_vector_dim")
    slice_sizes = _ints(op, attrs, "slice_sizes")
    _bool(op, attrs, "indices_are_sorted", False)
    index_dims = _index_dims(op, operands, indices, ivd)
    batch_sizes = [d for i, d in enumerate(index_dims) if i != ivd]
    if len(slice_sizes) != x.rank:
        raise _err(op, operands, f"slice_sizes {list(slice_sizes)} must have rank {x.rank}")
    if len(offset_dims) + len(collapsed) + len(x_batch) != x.rank:
        raise _err(
            op,
            operands,
            "offset_dims, collapsed_slice_dims and operand_batching_dims "
            "must together cover the operand's rank",
        )
    if len(start_map) != index_dims[ivd]:
        raise _err(
            op,
            operands,
            f"start_index_map has {len(start_map)} entries but the index "
            f"vector has {index_dims[ivd]}",
        )
    result_rank = len(offset_dims) + len(batch_sizes)
    _sorted(op, operands, "offset_dims", offset_dims)
    _dims_in_range(op, operands, "offset_dims", offset_dims, result_rank)
    _sorted(op, operands, "collapsed_slice_dims", collapsed)
    _sorted(op, operands, "operand_batching_dims", x_batch)
    _dims_in_range(
        op, operands, "collapsed_slice_dims + operand_batching_dims", collapsed + x_batch, x.rank
    )
    _dims_in_range(
        op, operands, "start_index_map + operand_batching_dims", start_map + x_batch, x.rank
    )
    _batching(
        op,
        operands,
        x,
        x_batch,
        indices,
        i_batch,
        ivd,
        ("operand_batching_dims", "start_indices_batching_dims"),
    )
    for i, (s, d) in enumerate(zip(slice_sizes, x.dims, strict=True)):
        if not 0 <= s <= d:
            raise _err(op, operands, f"slice size {s} in dim {i} is not within [0, {d}]")
    for d in collapsed + x_batch:
        if slice_sizes[d] > 1:
            raise _err(
                op, operands, f"collapsed or batching dim {d} has slice size {slice_sizes[d]} > 1"
            )
    offset_sizes = [s for i, s in enumerate(slice_sizes) if i not in collapsed + x_batch]
    dims = _combine(op, operands, result_rank, offset_dims, offset_sizes, batch_sizes)
    return Shape(x.element_type, dims)


def scatter(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """N operands, indices, N updates; combines updates into the operands with to_apply
    ((2N scalars) -> N); the result is the operand (a tuple when N > 1):
    `scatter f32[5,3] s32[2,1] f32[2,3], update_window_dims={1}, inserted_window_dims={0},
    scatter_dims_to_operand_dims={0}, index_vector_dim=1 -> f32[5,3]`."""
    op = "scatter"
    if len(operands) < 3 or len(operands) % 2 == 0:
        raise _err(op, operands, "takes N operands, the indices and N updates")
    _arrays(op, operands)
    n = len(operands) // 2
    inputs, indices, updates = operands[:n], operands[n], operands[n + 1 :]
    window_dims = _ints(op, attrs, "update_window_dims")
    inserted = _ints(op, attrs, "inserted_window_dims")
    to_operand = _ints(op, attrs, "scatter_dims_to_operand_dims")
    x_batch = _ints(op, attrs, "input_batching_dims", ())
    i_batch = _ints(op, attrs, "scatter_indices_batching_dims", ())
    ivd = _int(op, attrs, "index_vector_dim")
    _bool(op, attrs, "indices_are_sorted", False)
    _bool(op, attrs, "unique_indices", False)
    fn = _program(op, attrs, "to_apply")
    x, update = inputs[0], updates[0]
    for s, u in zip(inputs, updates, strict=True):
        if s.dims != x.dims or u.dims != update.dims:
            raise _err(op, operands, "all operands, and all updates, must have the same dims")
        if u.element_type is not s.element_type:
            raise _err(op, operands, "each update must have its operand's element type")
    index_dims = _index_dims(op, operands, indices, ivd)
    scatter_sizes = [d for i, d in enumerate(index_dims) if i != ivd]
    if len(window_dims) + len(inserted) + len(x_batch) != x.rank:
        raise _err(
            op,
            operands,
            "update_window_dims, inserted_window_dims and "
            "input_batching_dims must together cover the operand's rank",
        )
    if update.rank != len(scatter_sizes) + len(window_dims):
        raise _err(op, operands, f"updates must have rank {len(scatter_sizes) + len(window_dims)}")
    if len(to_operand) != index_dims[ivd]:
        raise _err(
            op,
            operands,
            f"scatter_dims_to_operand_dims has {len(to_operand)} entries "
            f"but the index vector has {index_dims[ivd]}",
        )
    _sorted(op, operands, "update_window_dims", window_dims)
    _dims_in_range(op, operands, "update_window_dims", window_dims, update.rank)
    _sorted(op, operands, "inserted_window_dims", inserted)
    _sorted(op, operands, "input_batching_dims", x_batch)
    _dims_in_range(
        op, operands, "inserted_window_dims + input_batching_dims", inserted + x_batch, x.rank
    )
    _dims_in_range(
        op,
        operands,
        "scatter_dims_to_operand_dims + input_batching_dims",
        to_operand + x_batch,
        x.rank,
    )
    _batching(
        op,
        operands,
        x,
        x_batch,
        indices,
        i_batch,
        ivd,
        ("input_batching_dims", "scatter_indices_batching_dims"),
    )
    bounds = iter(d for i, d in enumerate(x.dims) if i not in inserted + x_batch)
    sizes = iter(scatter_sizes)
    for i, size in enumerate(update.dims):
        if i in window_dims:
            bound = next(bounds)
            if size > bound:
                raise _err(
                    op,
                    operands,
                    f"update window dim {i} ({size}) exceeds the operand bound {bound}",
                )
        elif size != next(sizes):
            raise _err(
                op,
                operands,
                f"update scatter dim {i} ({size}) differs from the indices' batch dims",
            )
    _reducer(
        op,
        operands,
        fn,
        [Shape(s.element_type, ()) for s in inputs],
        [u.element_type for u in updates],
    )
    return _bare(x) if n == 1 else Shape.tuple_of([_bare(s) for s in inputs])


# =========================================================================================
# Reductions, windows, sort
# =========================================================================================


def _reducer(
    op: str,
    operands: Sequence[Shape],
    fn: ProgramShape,
    inits: Sequence[Shape],
    element_types: Sequence[PrimitiveType],
    what: str = "to_apply",
) -> list[Shape]:
    """Check a reducer ((acc_0..acc_N-1, x_0..x_N-1) -> acc scalars); returns the acc shapes.

    acc_i must be a scalar of element_types[i] and match the init value inits[i].
    """
    n = len(inits)
    if len(fn.parameters) != 2 * n:
        raise _err(
            op, operands, f"{what} must take {2 * n} parameters, takes {len(fn.parameters)}: {fn}"
        )
    result = fn.result
    accs = list(result.tuple_shapes) if result.is_tuple else [result]
    if len(accs) != n or (n != 1 and not result.is_tuple):
        raise _err(op, operands, f"{what} must return {n} scalar(s): {fn}")
    for i, acc in enumerate(accs):
        want = Shape(element_types[i], ())
        if not acc.is_array or acc.rank != 0 or not acc.compatible(fn.parameters[i]):
            raise _err(
                op, operands, f"{what} result {i} must be a scalar matching its parameter {i}: {fn}"
            )
        if not fn.parameters[n + i].compatible(want) or not acc.compatible(want):
            raise _err(
                op, operands, f"{what} parameter {n + i} and result {i} must be {_text(want)}: {fn}"
            )
        if not inits[i].compatible(acc):
            raise _err(
                op,
                operands,
                f"init value {i} {_text(inits[i])} does not match the "
                f"{what} accumulator {_text(acc)}",
            )
    return accs


def _result(shapes: Sequence[Shape], fn: ProgramShape) -> Shape:
    """One result per reducer output: a tuple exactly when the reducer returns one."""
    return Shape.tuple_of(shapes) if fn.result.is_tuple else shapes[0]


def _inputs_and_inits(
    op: str, operands: Sequence[Shape]
) -> tuple[Sequence[Shape], Sequence[Shape]]:
    """Split N arrays of equal dims followed by N init values."""
    if not operands or len(operands) % 2:
        raise _err(op, operands, "takes N inputs followed by N init values")
    _arrays(op, operands)
    n = len(operands) // 2
    inputs, inits = operands[:n], operands[n:]
    if any(s.dims != inputs[0].dims for s in inputs):
        raise _err(op, operands, "all inputs must have the same dims")
    return inputs, inits


def reduce(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """N inputs and N inits; reduced dims removed; a tuple when N > 1:
    `reduce f32[2,3] f32[], dimensions={1} -> f32[2]`."""
    op = "reduce"
    inputs, inits = _inputs_and_inits(op, operands)
    dims = _ints(op, attrs, "dimensions")
    fn = _program(op, attrs, "to_apply")
    _dims_in_range(op, operands, "dimensions", dims, inputs[0].rank)
    accs = _reducer(op, operands, fn, inits, [s.element_type for s in inputs])
    kept = tuple(d for i, d in enumerate(inputs[0].dims) if i not in dims)
    return _result([Shape(a.element_type, kept) for a in accs], fn)


def _window_dims(
    op: str, operands: Sequence[Shape], dims: Sequence[int], window: Sequence[WindowDim]
) -> tuple[int, ...]:
    """Output dims of a window sliding over `dims` (padding, stride, base/window dilation)."""
    if len(window) != len(dims):
        raise _err(op, operands, f"window has {len(window)} dims, expected {len(dims)}")
    out = []
    for i, (d, w) in enumerate(zip(dims, window, strict=True)):
        if w.size <= 0 or w.stride <= 0 or w.base_dilation < 1 or w.window_dilation < 1:
            raise _err(op, operands, f"window dim {i} needs size and stride > 0 and dilations >= 1")
        padded = w.padding_low + ((d - 1) * w.base_dilation + 1 if d else 0) + w.padding_high
        if padded < 0:
            raise _err(op, operands, f"padding makes window dim {i} negative")
        span = (w.size - 1) * w.window_dilation + 1
        out.append(0 if span > padded else (padded - span) // w.stride + 1)
    return tuple(out)


def reduce_window(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """N inputs and N inits reduced over windows (one window dim per input dim):
    `reduce-window f32[4,6] f32[], window={size=2x2 stride=2x2} -> f32[2,3]`."""
    op = "reduce-window"
    inputs, inits = _inputs_and_inits(op, operands)
    window = _window(op, attrs)
    fn = _program(op, attrs, "to_apply")
    accs = _reducer(op, operands, fn, inits, [s.element_type for s in inputs])
    dims = _window_dims(op, operands, inputs[0].dims, window)
    return _result([Shape(a.element_type, dims) for a in accs], fn)


def select_and_scatter(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Scatter `source` (shaped like the windowed operand) to the selected elements:
    `select-and-scatter f32[4] f32[2] f32[], window={size=2 stride=2} -> f32[4]`."""
    op = "select-and-scatter"
    _arity(op, operands, 3)
    x = _array(op, operands, 0)
    source = _array(op, operands, 1, "source")
    init = _array(op, operands, 2, "init value")
    window = _window(op, attrs)
    select_fn = _program(op, attrs, "select")
    scatter_fn = _program(op, attrs, "scatter")
    element = Shape(x.element_type, ())
    if (
        len(select_fn.parameters) != 2
        or not all(p.compatible(element) for p in select_fn.parameters)
        or not select_fn.result.compatible(Shape(_T.PRED, ()))
    ):
        raise _err(
            op,
            operands,
            f"select must be ({_text(element)}, {_text(element)}) -> pred[], got {select_fn}",
        )
    _reducer(op, operands, scatter_fn, [init], [source.element_type], "scatter")
    windowed = Shape(x.element_type, _window_dims(op, operands, x.dims, window))
    if not source.compatible(windowed):
        raise _err(op, operands, f"source must have the windowed operand's shape {_text(windowed)}")
    return _bare(x)


def sort(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Sort N same-dims arrays along one dim with a comparator (2N scalars) -> pred[];
    a tuple when N > 1: `sort f32[4,6], dimensions={1} -> f32[4,6]`."""
    op = "sort"
    if not operands:
        raise ShapeError(f"{op}: needs at least one operand")
    _arrays(op, operands)
    if any(s.dims != operands[0].dims for s in operands):
        raise _err(op, operands, "keys and values must have the same dims")
    dims = _ints(op, attrs, "dimensions")
    if len(dims) != 1:
        raise _err(op, operands, f"dimensions {list(dims)} must name exactly one dim")
    _dims_in_range(op, operands, "dimensions", dims, operands[0].rank)
    _bool(op, attrs, "is_stable", False)
    fn = _program(op, attrs, "to_apply")
    want = [Shape(s.element_type, ()) for s in operands for _ in range(2)]
    if (
        len(fn.parameters) != len(want)
        or not all(p.compatible(w) for p, w in zip(fn.parameters, want, strict=True))
        or not fn.result.compatible(Shape(_T.PRED, ()))
    ):
        params = ", ".join(_text(w) for w in want)
        raise _err(op, operands, f"comparator must be ({params}) -> pred[], got {fn}")
    if len(operands) == 1:
        return _bare(operands[0])
    return Shape.tuple_of([_bare(s) for s in operands])


def topk(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """The k largest (or smallest) along the last dim, with s32 indices:
    `topk f32[5,8], k=3 -> (f32[5,3], s32[5,3])`."""
    op = "topk"
    _arity(op, operands, 1)
    x = _array(op, operands, 0)
    k = _int(op, attrs, "k")
    _bool(op, attrs, "largest", True)
    if x.rank == 0 or not 0 <= k <= x.dims[-1]:
        raise _err(op, operands, f"k={k} must be within [0, last dim] of an array of rank >= 1")
    dims = (*x.dims[:-1], k)
    return Shape.tuple_of([Shape(x.element_type, dims), Shape(_T.S32, dims)])


# =========================================================================================
# Linear algebra
# =========================================================================================


def _result_type(op: str, operands: Sequence[Shape], declared: Shape | None) -> PrimitiveType:
    """The declared element type when given (preferred type), else the operands' common one."""
    lhs, rhs = operands
    if declared is not None:
        if not declared.is_array:
            raise _err(op, operands, f"declared result must be an array, got {_text(declared)}")
        return declared.element_type
    if lhs.element_type is not rhs.element_type:
        raise _err(op, operands, "operands of mixed element types need a declared result type")
    return lhs.element_type


def dot(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """General dot: result = batch dims, lhs free dims, rhs free dims:
    `dot f32[2,3] f32[3,4], lhs_contracting_dims={1}, rhs_contracting_dims={0} -> f32[2,4]`."""
    op = "dot"
    _arity(op, operands, 2)
    lhs = _array(op, operands, 0, "lhs")
    rhs = _array(op, operands, 1, "rhs")
    lb = _ints(op, attrs, "lhs_batch_dims", ())
    lc = _ints(op, attrs, "lhs_contracting_dims", ())
    rb = _ints(op, attrs, "rhs_batch_dims", ())
    rc = _ints(op, attrs, "rhs_contracting_dims", ())
    _dims_in_range(op, operands, "lhs batch + contracting dims", lb + lc, lhs.rank)
    _dims_in_range(op, operands, "rhs batch + contracting dims", rb + rc, rhs.rank)
    if len(lb) != len(rb) or len(lc) != len(rc):
        raise _err(op, operands, "lhs and rhs need as many batch and contracting dims")
    for kind, ls, rs in (("batch", lb, rb), ("contracting", lc, rc)):
        for a, b in zip(ls, rs, strict=True):
            if lhs.dims[a] != rhs.dims[b]:
                raise _err(
                    op,
                    operands,
                    f"{kind} dims differ in size: lhs dim {a} is "
                    f"{lhs.dims[a]}, rhs dim {b} is {rhs.dims[b]}",
                )
    dims = (
        [lhs.dims[d] for d in lb]
        + [d for i, d in enumerate(lhs.dims) if i not in lb + lc]
        + [d for i, d in enumerate(rhs.dims) if i not in rb + rc]
    )
    return Shape(_result_type(op, operands, declared), tuple(dims))


def _labels(op: str, attrs: Mapping[str, Any]) -> ConvDimLabels:
    labels = _get(op, attrs, "dim_labels", _MISSING)
    ok = (
        isinstance(labels, ConvDimLabels)
        and all(
            _is_int(v)
            for v in (
                labels.input_batch,
                labels.input_feature,
                labels.kernel_input_feature,
                labels.kernel_output_feature,
                labels.output_batch,
                labels.output_feature,
            )
        )
        and all(
            isinstance(t, tuple) and all(_is_int(v) for v in t)
            for t in (labels.input_spatial, labels.kernel_spatial, labels.output_spatial)
        )
    )
    if not ok:
        raise ShapeError(f"{op}: attribute 'dim_labels' must be convolution dimension labels")
    assert isinstance(labels, ConvDimLabels)
    return labels


def convolution(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Windowed contraction per dim_labels, with groups:
    `convolution f32[1,8,8,3] f32[3,3,3,4], window={size=3x3 pad=1_1x1_1},
    dim_labels=b01f_01io->b01f -> f32[1,8,8,4]`."""
    op = "convolution"
    _arity(op, operands, 2)
    lhs = _array(op, operands, 0, "lhs")
    rhs = _array(op, operands, 1, "rhs")
    window = _window(op, attrs, Window(()))
    lab = _labels(op, attrs)
    groups = _int(op, attrs, "feature_group_count", 1)
    batch_groups = _int(op, attrs, "batch_group_count", 1)
    if groups < 1 or batch_groups < 1 or (groups > 1 and batch_groups > 1):
        raise _err(
            op,
            operands,
            f"feature_group_count {groups} and batch_group_count "
            f"{batch_groups} must be >= 1 and not both > 1",
        )
    n = len(lab.input_spatial)
    if len(lab.kernel_spatial) != n or len(lab.output_spatial) != n or len(window) != n:
        raise _err(op, operands, "dim_labels and window disagree on the number of spatial dims")
    rank = n + 2
    if lhs.rank != rank or rhs.rank != rank:
        raise _err(op, operands, f"lhs and rhs must have rank {rank}")
    for what, dims in (
        ("input", (lab.input_batch, lab.input_feature, *lab.input_spatial)),
        ("kernel", (lab.kernel_input_feature, lab.kernel_output_feature, *lab.kernel_spatial)),
        ("output", (lab.output_batch, lab.output_feature, *lab.output_spatial)),
    ):
        if sorted(dims) != list(range(rank)):
            raise _err(op, operands, f"{what} dim_labels must name each of {rank} dims once")
    batch = lhs.dims[lab.input_batch]
    features = lhs.dims[lab.input_feature]
    kernel_in = rhs.dims[lab.kernel_input_feature]
    kernel_out = rhs.dims[lab.kernel_output_feature]
    if features % groups or features // groups != kernel_in:
        raise _err(
            op,
            operands,
            f"input features {features} / feature_group_count {groups} "
            f"must equal kernel input features {kernel_in}",
        )
    if kernel_out % groups or kernel_out % batch_groups:
        raise _err(
            op,
            operands,
            f"kernel output features {kernel_out} must be divisible by the group counts",
        )
    if batch % batch_groups:
        raise _err(
            op, operands, f"batch {batch} must be divisible by batch_group_count {batch_groups}"
        )
    kernel_spatial = [rhs.dims[d] for d in lab.kernel_spatial]
    if kernel_spatial != [w.size for w in window]:
        raise _err(
            op,
            operands,
            f"window sizes {[w.size for w in window]} differ from the "
            f"kernel's spatial dims {kernel_spatial}",
        )
    spatial = _window_dims(op, operands, [lhs.dims[d] for d in lab.input_spatial], window)
    out = [0] * rank
    out[lab.output_batch] = batch // batch_groups
    out[lab.output_feature] = kernel_out
    for d, size in zip(lab.output_spatial, spatial, strict=True):
        out[d] = size
    return Shape(_result_type(op, operands, declared), tuple(out))


def fft(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """FFT/IFFT c->c; RFFT real->complex with last dim n/2+1; IRFFT complex->real with last
    dim n: `fft f32[3,8], fft_type=RFFT, fft_length={8} -> c64[3,5]`."""
    op = "fft"
    _arity(op, operands, 1)
    x = _array(op, operands, 0)
    kind = _enum(op, attrs, "fft_type", ("FFT", "IFFT", "RFFT", "IRFFT"))
    lengths = _ints(op, attrs, "fft_length")
    if not 1 <= len(lengths) <= 3 or any(n < 0 for n in lengths):
        raise _err(op, operands, f"fft_length {list(lengths)} must have 1 to 3 sizes >= 0")
    if x.rank < len(lengths):
        raise _err(op, operands, f"operand rank must be at least {len(lengths)}")
    t, inner, last = x.element_type, x.dims[x.rank - len(lengths) :], lengths[-1]
    if kind in ("FFT", "IFFT"):
        if not t.is_complex:
            raise _err(op, operands, f"{kind} needs a complex operand")
        return _bare(x)
    if kind == "RFFT":
        if t not in (_T.F32, _T.F64):
            raise _err(op, operands, "RFFT needs an f32 or f64 operand")
        if inner != lengths:
            raise _err(
                op, operands, f"RFFT needs the inner dims to equal fft_length {list(lengths)}"
            )
        size = last // 2 + 1 if last else 0
        return Shape(_T.C64 if t is _T.F32 else _T.C128, (*x.dims[:-1], size))
    if not t.is_complex:
        raise _err(op, operands, "IRFFT needs a complex operand")
    if inner[:-1] != lengths[:-1] or (inner[-1] != last // 2 + 1 and (inner[-1] or last)):
        raise _err(
            op,
            operands,
            f"IRFFT needs the inner dims to be fft_length {list(lengths)} with the last one n/2+1",
        )
    return Shape(complex_component(t), (*x.dims[:-1], last))


def _float_or_complex(op: str, operands: Sequence[Shape], shape: Shape) -> None:
    t = shape.element_type
    if not (t.is_float or t.is_complex):
        raise _err(op, operands, "operands must be floating-point or complex")


def _square_minor(op: str, operands: Sequence[Shape], a: Shape) -> None:
    if a.rank < 2 or a.dims[-1] != a.dims[-2]:
        raise _err(op, operands, "'a' must have rank >= 2 and square minor dims")


def cholesky(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Factor of (batched) square matrices, same shape: `cholesky f32[4,4] -> f32[4,4]`."""
    op = "cholesky"
    _arity(op, operands, 1)
    a = _array(op, operands, 0, "a")
    _float_or_complex(op, operands, a)
    _square_minor(op, operands, a)
    _bool(op, attrs, "lower", False)
    return _bare(a)


def triangular_solve(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Solve op(a) x = b (left_side) or x op(a) = b; result shaped like b:
    `triangular-solve f32[4,4] f32[4,2], left_side=true -> f32[4,2]`."""
    op = "triangular-solve"
    _arity(op, operands, 2)
    a = _array(op, operands, 0, "a")
    b = _array(op, operands, 1, "b")
    _float_or_complex(op, operands, a)
    if a.element_type is not b.element_type:
        raise _err(op, operands, "a and b must have the same element type")
    _square_minor(op, operands, a)
    left = _bool(op, attrs, "left_side", False)
    for name in ("lower", "unit_diagonal"):
        _bool(op, attrs, name, False)
    _enum(op, attrs, "transpose_a", ("NO_TRANSPOSE", "TRANSPOSE", "ADJOINT"), "NO_TRANSPOSE")
    if b.rank != a.rank or b.dims[:-2] != a.dims[:-2]:
        raise _err(op, operands, "a and b must have the same rank and batch dims")
    if a.dims[-1] != b.dims[-2 if left else -1]:
        raise _err(op, operands, "the shared dimension of a and b differs")
    return _bare(b)


def _batch_norm(
    op: str, operands: Sequence[Shape], attrs: Mapping[str, Any], count: int
) -> tuple[Shape, Shape]:
    """Checks shared by the batch-norm ops; returns (operand, per-feature shape)."""
    _arity(op, operands, count)
    _arrays(op, operands)
    x = operands[0]
    epsilon = _get(op, attrs, "epsilon", _MISSING)
    if not isinstance(epsilon, numbers.Real) or isinstance(epsilon, bool):
        raise ShapeError(f"{op}: attribute 'epsilon' must be a number, got {epsilon!r}")
    feature = _int(op, attrs, "feature_index")
    if not x.element_type.is_float:
        raise _err(op, operands, "operand must be floating-point")
    if not 0 <= feature < x.rank:
        raise _err(op, operands, f"feature_index {feature} is out of range")
    if any(s.element_type is not x.element_type for s in operands):
        raise _err(op, operands, "all operands must have the same element type")
    return x, Shape(x.element_type, (x.dims[feature],))


def batch_norm_training(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """(operand, scale[F], offset[F]) -> (normalized, mean[F], variance[F]):
    `batch-norm-training f32[2,4,3] f32[3] f32[3], feature_index=2
    -> (f32[2,4,3], f32[3], f32[3])`."""
    op = "batch-norm-training"
    x, feature = _batch_norm(op, operands, attrs, 3)
    if any(not s.compatible(feature) for s in operands[1:]):
        raise _err(op, operands, f"scale and offset must be {_text(feature)}")
    return Shape.tuple_of([_bare(x), feature, feature])


def batch_norm_inference(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """(operand, scale, offset, mean, variance; all [F]) -> operand shape:
    `batch-norm-inference f32[2,3] f32[3] f32[3] f32[3] f32[3], feature_index=1 -> f32[2,3]`."""
    op = "batch-norm-inference"
    x, feature = _batch_norm(op, operands, attrs, 5)
    if any(not s.compatible(feature) for s in operands[1:]):
        raise _err(op, operands, f"scale, offset, mean and variance must be {_text(feature)}")
    return _bare(x)


def batch_norm_grad(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """(operand, scale[F], mean[F], variance[F], grad_output) -> (grad_operand, grad_scale[F],
    grad_offset[F]): `batch-norm-grad f32[2,3] f32[3] f32[3] f32[3] f32[2,3], feature_index=1
    -> (f32[2,3], f32[3], f32[3])`."""
    op = "batch-norm-grad"
    x, feature = _batch_norm(op, operands, attrs, 5)
    if any(not s.compatible(feature) for s in operands[1:4]):
        raise _err(op, operands, f"scale, mean and variance must be {_text(feature)}")
    if not operands[4].compatible(x):
        raise _err(op, operands, "grad_output must have the operand's shape")
    return Shape.tuple_of([_bare(x), feature, feature])


# =========================================================================================
# Tuples, calls, control flow, collectives
# =========================================================================================


def tuple_(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """The operands as one tuple: `tuple f32[2] s32[] -> (f32[2], s32[])`."""
    return Shape.tuple_of([_bare(s) for s in operands])


def get_tuple_element(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Element `index` of a tuple: `get-tuple-element (f32[2], s32[]), index=1 -> s32[]`."""
    op = "get-tuple-element"
    _arity(op, operands, 1)
    t = operands[0]
    index = _int(op, attrs, "index")
    if not t.is_tuple:
        raise _err(op, operands, "operand must be a tuple")
    if not 0 <= index < len(t.tuple_shapes):
        raise _err(op, operands, f"index {index} is out of range")
    return _bare(t.tuple_shapes[index])


def copy(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """The operand's shape, tuples and tokens included: `copy f32[2,3] -> f32[2,3]`."""
    _arity("copy/opt-barrier", operands, 1)
    return _bare(operands[0])


def after_all(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Join tokens: `after-all token[] token[] -> token[]`."""
    if not all(s.is_token for s in operands):
        raise _err("after-all", operands, "operands must be tokens")
    return Shape.token()


def _arguments(op: str, operands: Sequence[Shape], fn: ProgramShape, what: str) -> None:
    """The operands are valid arguments of `fn` (count and shapes, layouts ignored)."""
    if len(fn.parameters) != len(operands):
        raise _err(op, operands, f"{what} takes {len(fn.parameters)} argument(s): {fn}")
    for i, (arg, param) in enumerate(zip(operands, fn.parameters, strict=True)):
        if not arg.compatible(param):
            raise _err(op, operands, f"argument {i} does not match {what} parameter {_text(param)}")


def call(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """The callee's result; operands must match its parameters:
    `call f32[2] f32[2], to_apply=(f32[2], f32[2])->f32[2] -> f32[2]` (fusion: `calls=`)."""
    op = "call/fusion"
    fn = _program(op, attrs, "calls" if attrs.get("calls") is not None else "to_apply")
    _arguments(op, operands, fn, "the callee")
    return _bare(fn.result)


def map_(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Apply a scalar computation elementwise over same-dims operands:
    `map f32[3] f32[3], to_apply=(f32[], f32[])->f32[] -> f32[3]`."""
    op = "map"
    if not operands:
        raise ShapeError(f"{op}: needs at least one operand")
    _arrays(op, operands)
    dims = operands[0].dims
    if any(s.dims != dims for s in operands):
        raise _err(op, operands, "operands must have the same dims")
    mapped = _ints(op, attrs, "dimensions", tuple(range(len(dims))))
    if mapped != tuple(range(len(dims))):
        raise _err(op, operands, f"dimensions {list(mapped)} must be all dims in order")
    fn = _program(op, attrs, "to_apply")
    _arguments(op, [Shape(s.element_type, ()) for s in operands], fn, "to_apply")
    if not fn.result.is_array or fn.result.rank != 0:
        raise _err(op, operands, f"to_apply must return a scalar: {fn}")
    return Shape(fn.result.element_type, dims)


def while_(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Loop state T: condition (T)->pred[], body (T)->T:
    `while (s32[], f32[4]) -> (s32[], f32[4])`."""
    op = "while"
    _arity(op, operands, 1)
    cond = _program(op, attrs, "condition")
    body = _program(op, attrs, "body")
    _arguments(op, operands, cond, "condition")
    _arguments(op, operands, body, "body")
    if not cond.result.compatible(Shape(_T.PRED, ())):
        raise _err(op, operands, f"condition must return pred[]: {cond}")
    if not body.result.compatible(operands[0]):
        raise _err(op, operands, f"body must return the loop state shape: {body}")
    return _bare(operands[0])


def _branches(op: str, attrs: Mapping[str, Any]) -> tuple[tuple[ProgramShape, ...], bool]:
    """The branch computations and whether the pred (true/false) form is used."""
    listed = attrs.get("branch_computations")
    pair = (attrs.get("true_computation"), attrs.get("false_computation"))
    if listed is not None:
        if pair != (None, None):
            raise ShapeError(f"{op}: give branch_computations or true/false_computation, not both")
        if (
            not isinstance(listed, (tuple, list))
            or not listed
            or not all(isinstance(b, ProgramShape) for b in listed)
        ):
            raise ShapeError(f"{op}: branch_computations must be a non-empty computation list")
        return tuple(listed), False
    if None in pair:
        raise ShapeError(
            f"{op}: needs true_computation and false_computation, or branch_computations"
        )
    return (_program(op, attrs, "true_computation"), _program(op, attrs, "false_computation")), True


def conditional(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Run one branch on its operand; all branches return the same shape. Pred form
    `conditional pred[] f32[3] f32[3], true_computation=.., false_computation=.. -> f32[3]`;
    indexed form `conditional s32[] f32[3] f32[3] f32[3], branch_computations={..}`."""
    op = "conditional"
    branches, pred_form = _branches(op, attrs)
    if not operands:
        raise ShapeError(f"{op}: needs a branch index")
    index = _scalar(op, operands, 0, "branch index").element_type
    if pred_form and index is not _T.PRED:
        raise _err(op, operands, "the true/false form needs a pred[] predicate")
    if index is not _T.S32 and not (index is _T.PRED and len(branches) == 2):
        raise _err(op, operands, "the branch index must be s32[] (or pred[] with 2 branches)")
    if len(operands) != 1 + len(branches):
        raise _err(op, operands, f"needs one operand per branch ({len(branches)})")
    for j, (fn, arg) in enumerate(zip(branches, operands[1:], strict=True)):
        _arguments(op, [arg], fn, f"branch {j}")
        if not fn.result.compatible(branches[0].result):
            raise _err(
                op,
                operands,
                f"branch {j} returns {_text(fn.result)}, branch 0 {_text(branches[0].result)}",
            )
    return _bare(branches[0].result)


def all_reduce(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """The operands' shapes (a tuple when several): `all-reduce f32[4] -> f32[4]`."""
    op = "all-reduce"
    if not operands:
        raise ShapeError(f"{op}: needs at least one operand")
    _arrays(op, operands)
    fn = attrs.get("to_apply")
    if fn is not None:
        fn = _program(op, attrs, "to_apply")
        if (
            len(fn.parameters) != 2
            or not fn.result.is_array
            or fn.result.rank != 0
            or not all(p.compatible(fn.result) for p in fn.parameters)
        ):
            raise _err(op, operands, f"to_apply must be a binary scalar reducer: {fn}")
    if len(operands) == 1:
        return _bare(operands[0])
    return Shape.tuple_of([_bare(s) for s in operands])


def rng_bit_generator(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """(new state, declared random bits) from a u64 state:
    `rng-bit-generator u64[2] -> (u64[2], u32[5])`."""
    op = "rng-bit-generator"
    _arity(op, operands, 1)
    state = _array(op, operands, 0, "state")
    _enum(op, attrs, "algorithm", ("rng_default", "rng_three_fry", "rng_philox"), "rng_default")
    if state.element_type is not _T.U64 or state.rank != 1:
        raise _err(op, operands, "state must be a u64 vector")
    result = _declared(op, declared)
    if (
        not result.is_tuple
        or len(result.tuple_shapes) != 2
        or not result.tuple_shapes[0].compatible(state)
    ):
        raise _err(op, operands, f"declared {_text(result)} must be (state shape, output)")
    output = result.tuple_shapes[1]
    if not output.is_array or not output.element_type.is_integer:
        raise _err(op, operands, f"output {_text(output)} must be an integer array")
    return result
