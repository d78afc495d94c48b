"""Shape rules of tuples, calls, control flow and collectives: tuple, get-tuple-element, copy,
after-all, call, map, while, conditional (predicated or indexed branches), all-reduce and
rng-bit-generator. Called computations arrive as ProgramShape and their parameters must match
the operands passed to them.
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
    _declared,
    _enum,
    _err,
    _int,
    _ints,
    _program,
    _scalar,
    _text,
)

_T = PrimitiveType


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
