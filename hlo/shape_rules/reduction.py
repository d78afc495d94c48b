"""Shape rules of reductions, windowed ops and sorting: reduce and reduce-window (N inputs,
N init values, a reducer computation, a tuple result when N > 1), select-and-scatter, sort with
its comparator, and top-k.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hlo.dtypes import PrimitiveType
from hlo.errors import ShapeError
from hlo.shape import ProgramShape, Shape
from hlo.shape_rules.common import (
    _arity,
    _array,
    _arrays,
    _bare,
    _bool,
    _dims_in_range,
    _err,
    _int,
    _ints,
    _program,
    _reducer,
    _text,
    _window,
    _window_dims,
)

_T = PrimitiveType


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
