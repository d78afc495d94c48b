"""Property tests of the shape rules (hlo/shape_inference.py) through `infer_shape`.

Every opcode is fed random shapes and attribute values, and near misses of the valid cases,
and must give a Shape or a ShapeError, nothing else; transpose, slice, reduce, dot and pad must
agree with the shapes numpy computes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hlo.attributes import (
    AttrKind,
    ConvDimLabels,
    PadDim,
    PaddingConfig,
    Raw,
    SliceDim,
    Window,
    WindowDim,
)
from hlo.errors import ShapeError
from hlo.instruction import infer_shape
from hlo.opcodes import OPS, Opcode
from hlo.shape import ProgramShape, Shape
from tests.hlo.shape_cases import VALID, O, T, _split, sh

# --- property: any shapes and attribute values give a Shape or a ShapeError ---------------

# A few element types, so that operands often agree and rules get past their first checks.
_TYPES = [T.F32, T.F32, T.S32, T.PRED, T.U64, T.C64, T.F64, T.U32]

small = st.integers(min_value=-2, max_value=5)


@st.composite
def array_shapes(draw: st.DrawFn, rank: int | None = None) -> Shape:
    n = draw(st.integers(0, 3)) if rank is None else rank
    dims = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    layout = draw(st.one_of(st.none(), st.permutations(range(n))))
    return Shape.array(draw(st.sampled_from(_TYPES)), dims, layout)


any_shapes = st.recursive(
    st.one_of(array_shapes(), array_shapes(0), st.just(Shape.token())),
    lambda inner: st.lists(inner, max_size=3).map(Shape.tuple_of),
    max_leaves=4,
)
programs = st.builds(
    lambda params, result: ProgramShape(tuple(params), result),
    st.lists(st.one_of(array_shapes(0), any_shapes), max_size=4),
    st.one_of(array_shapes(0), any_shapes),
)
window_dims = st.builds(WindowDim, small, small, small, small, small, small, st.booleans())
ints = st.lists(small, max_size=4).map(tuple)

_VALUES: dict[AttrKind, st.SearchStrategy[Any]] = {
    AttrKind.INT: small,
    AttrKind.INTS: ints,
    AttrKind.FLOAT: st.floats(allow_nan=True),
    AttrKind.BOOL: st.booleans(),
    AttrKind.STRING: st.text(max_size=5),
    AttrKind.COMPUTATION: programs,
    AttrKind.COMPUTATIONS: st.lists(programs, max_size=3).map(tuple),
    AttrKind.WINDOW: st.lists(window_dims, max_size=4).map(lambda d: Window(tuple(d))),
    AttrKind.SLICE: st.lists(st.builds(SliceDim, small, small, small), max_size=4).map(tuple),
    AttrKind.PADDING: st.lists(st.builds(PadDim, small, small, small), max_size=4).map(
        lambda d: PaddingConfig(tuple(d))
    ),
    AttrKind.DIM_LABELS: st.builds(
        ConvDimLabels, small, small, ints, small, small, ints, small, small, ints
    ),
    AttrKind.RAW: st.text(max_size=5).map(Raw),
    AttrKind.LITERAL: st.builds(
        lambda d: np.zeros(d, np.float32), st.lists(st.integers(0, 3), max_size=2).map(tuple)
    ),
    AttrKind.INTS_LIST: st.lists(ints, max_size=3).map(tuple),
}
# Values of the wrong kind, to check that attribute readers reject them as ShapeErrors.
_WRONG = st.sampled_from(["x", 1.5, (1, "a"), ("a",), 7, Window(()), Raw("r"), (None,)])


def attribute_values(spec: Any) -> st.SearchStrategy[Any]:
    """Values of the attribute's own kind (and choices), most of the time."""
    if spec.choices:
        good = st.sampled_from(spec.choices)
    elif spec.kind is AttrKind.ENUM:
        good = st.sampled_from(["EQ", "FLOAT", "RFFT", "kLoop", "?"])
    else:
        good = _VALUES[spec.kind]
    return st.one_of(good, good, good, _WRONG)


@st.composite
def attributes(draw: st.DrawFn, op: Opcode) -> dict[str, Any]:
    return {
        spec.name: draw(attribute_values(spec)) for spec in OPS[op].attrs if draw(st.integers(0, 4))
    }  # about one in five left absent


def _signature(op: Opcode) -> tuple[Any, ...]:
    d = OPS[op]
    return (d.shape_rule, d.arity, tuple(a.name for a in d.attrs))


# One opcode per distinct (rule, arity, attribute schema): the others would repeat its test.
_FUZZED = list({_signature(op): op for op in Opcode}.values())


def _check(
    op: Opcode,
    operands: list[Shape],
    attrs: dict[str, Any],
    declared: Shape | None,
) -> None:
    try:
        result = infer_shape(op, operands, attrs, declared)
    except ShapeError:
        return
    assert isinstance(result, Shape)


@pytest.mark.parametrize("op", _FUZZED, ids=[op.value for op in _FUZZED])
@settings(max_examples=20)
@given(data=st.data())
def test_rules_raise_only_shape_errors(op: Opcode, data: st.DataObject) -> None:
    arity = OPS[op].arity
    count = arity if arity is not None else data.draw(st.integers(0, 5))
    # Operands: sometimes all alike (to reach deeper checks), sometimes anything.
    if data.draw(st.booleans()):
        operands = data.draw(st.lists(any_shapes, min_size=count, max_size=count))
    else:
        operands = [data.draw(array_shapes())] * count
    declared = data.draw(st.one_of(st.none(), any_shapes))
    _check(op, operands, data.draw(attributes(op)), declared)


@st.composite
def mutated_shape(draw: st.DrawFn, shape: Shape) -> Shape:
    """A near miss of `shape`: one dim off by one, one dim more or less, or another type."""
    if not shape.is_array:
        return draw(any_shapes)
    dims = list(shape.dims)
    how = draw(st.sampled_from(["size", "rank", "type"]))
    if how == "size" and dims:
        i = draw(st.integers(0, len(dims) - 1))
        dims[i] = max(dims[i] + draw(st.sampled_from([-1, 1])), 0)
    elif how == "rank":
        if dims and draw(st.booleans()):
            dims.pop()
        else:
            dims.append(draw(st.integers(0, 3)))
    else:
        return Shape(draw(st.sampled_from(_TYPES)), shape.dims)
    return Shape.array(shape.element_type, dims)


@st.composite
def mutated_value(draw: st.DrawFn, spec: Any, value: Any) -> Any:
    """A near miss of an attribute value (integer lists tweaked in place), or any value."""
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value) and value:
        items = list(value)
        i = draw(st.integers(0, len(items) - 1))
        items[i] += draw(st.sampled_from([-1, 1]))
        return tuple(items)
    if isinstance(value, int) and not isinstance(value, bool):
        return value + draw(st.sampled_from([-1, 1]))
    return draw(attribute_values(spec))


@settings(max_examples=400)
@given(data=st.data())
def test_mutated_valid_cases_raise_only_shape_errors(data: st.DataObject) -> None:
    """Near misses of the valid examples reach the deep checks of every rule."""
    op, operands, declared, attrs, _ = data.draw(st.sampled_from(VALID))
    shapes = [sh(s) for s in _split(operands)]
    attrs = dict(attrs)
    result = None if declared is None else sh(declared)
    for _ in range(data.draw(st.integers(1, 2))):
        what = data.draw(st.sampled_from(["attr", "attr", "operand", "declared", "drop"]))
        if what == "attr" and OPS[op].attrs:
            spec = data.draw(st.sampled_from(OPS[op].attrs))
            attrs[spec.name] = data.draw(mutated_value(spec, attrs.get(spec.name)))
        elif what == "operand" and shapes:
            i = data.draw(st.integers(0, len(shapes) - 1))
            shapes[i] = data.draw(mutated_shape(shapes[i]))
        elif what == "declared" and result is not None:
            result = data.draw(st.one_of(st.none(), mutated_shape(result)))
        elif what == "drop" and attrs:
            del attrs[data.draw(st.sampled_from(sorted(attrs)))]
    _check(op, shapes, attrs, result)


# --- property: rules agree with numpy on the shapes numpy can compute ---------------------


@given(shape=array_shapes(), data=st.data())
def test_transpose_matches_numpy(shape: Shape, data: st.DataObject) -> None:
    perm = tuple(data.draw(st.permutations(range(shape.rank))))
    result = infer_shape(O.TRANSPOSE, [shape], {"dimensions": perm})
    assert result.dims == np.zeros(shape.dims).transpose(perm).shape


@given(shape=array_shapes(), data=st.data())
def test_slice_matches_numpy(shape: Shape, data: st.DataObject) -> None:
    spec = []
    for d in shape.dims:
        start = data.draw(st.integers(0, d))
        spec.append(SliceDim(start, data.draw(st.integers(start, d)), data.draw(st.integers(1, 3))))
    result = infer_shape(O.SLICE, [shape], {"slice": tuple(spec)})
    expected = np.zeros(shape.dims)[tuple(slice(s.start, s.limit, s.stride) for s in spec)].shape
    assert result.dims == expected


@given(shape=array_shapes(), data=st.data())
def test_reduce_matches_numpy(shape: Shape, data: st.DataObject) -> None:
    dims = tuple(data.draw(st.sets(st.integers(0, max(shape.rank - 1, 0)), max_size=shape.rank)))
    scalar = Shape(shape.element_type, ())
    fn = ProgramShape((scalar, scalar), scalar)
    result = infer_shape(O.REDUCE, [shape, scalar], {"dimensions": dims, "to_apply": fn})
    assert result.dims == np.zeros(shape.dims).sum(axis=dims).shape


@given(lhs=array_shapes(), data=st.data())
def test_dot_matches_einsum(lhs: Shape, data: st.DataObject) -> None:
    """Random dot dimension numbers against numpy.einsum's output shape."""
    letters = "abcdefgh"
    roles = data.draw(
        st.lists(
            st.sampled_from(["batch", "contract", "free"]), min_size=lhs.rank, max_size=lhs.rank
        )
    )
    rhs_free = data.draw(st.lists(st.integers(0, 3), max_size=2))
    lhs_sub = letters[: lhs.rank]
    batch = [i for i, r in enumerate(roles) if r == "batch"]
    contract = [i for i, r in enumerate(roles) if r == "contract"]
    rhs_sub = "".join(lhs_sub[i] for i in batch + contract) + "xy"[: len(rhs_free)]
    rhs_dims = [lhs.dims[i] for i in batch + contract] + rhs_free
    rhs = Shape.array(lhs.element_type, rhs_dims)
    n = len(batch)
    attrs = {
        "lhs_batch_dims": tuple(batch),
        "lhs_contracting_dims": tuple(contract),
        "rhs_batch_dims": tuple(range(n)),
        "rhs_contracting_dims": tuple(range(n, n + len(contract))),
    }
    out_sub = (
        "".join(lhs_sub[i] for i in batch)
        + "".join(lhs_sub[i] for i, r in enumerate(roles) if r == "free")
        + "xy"[: len(rhs_free)]
    )
    expected = np.einsum(
        f"{lhs_sub},{rhs_sub}->{out_sub}", np.zeros(lhs.dims), np.zeros(rhs_dims)
    ).shape
    assert infer_shape(O.DOT, [lhs, rhs], attrs).dims == expected


@given(shape=array_shapes(), data=st.data())
def test_pad_with_non_negative_edges_matches_numpy(shape: Shape, data: st.DataObject) -> None:
    edges = [(data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))) for _ in shape.dims]
    config = PaddingConfig(tuple(PadDim(lo, hi, 0) for lo, hi in edges))
    value = Shape(shape.element_type, ())
    result = infer_shape(O.PAD, [shape, value], {"padding": config})
    expected = np.pad(np.zeros(shape.dims), edges).shape if edges else ()
    assert result.dims == expected
