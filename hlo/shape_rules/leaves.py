"""Shape rules of the ops whose result shape is declared rather than derived from array
operands: constant (the literal must match the declared shape), parameter, iota, replica-id,
rng (two scalar distribution parameters of the result's type) and custom-call, which is opaque
to shape inference and returns whatever shape the module declares.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hlo.dtypes import PrimitiveType
from hlo.errors import ShapeError
from hlo.shape import Shape
from hlo.shape_rules.common import (
    _MISSING,
    _arity,
    _declared,
    _declared_array,
    _enum,
    _err,
    _get,
    _int,
    _is_numeric,
    _scalar,
    _text,
)

_T = PrimitiveType


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
