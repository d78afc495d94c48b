"""Helpers shared by every shape-rule family: error messages that name the op and list the
operand shapes, attribute readers that turn a wrong kind of value into ShapeError (never
TypeError), operand checks (arity, arrays, scalars, declared results, dimension lists), and the
reducer and window-size checks that reductions, scatter and convolution all apply.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from hlo.attributes import Window, WindowDim
from hlo.dtypes import PrimitiveType
from hlo.errors import ShapeError
from hlo.shape import ProgramShape, Shape

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


# --- checks shared by several families ---------------------------------------------------


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
