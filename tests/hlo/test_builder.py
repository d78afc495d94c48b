"""ComputationBuilder: every worked example of the operation-semantics and broadcasting
documents (TF 1.8, ../shared/xla-docs-zh.md), built with the builder, verified, and
evaluated with the reference evaluator; plus the builder's own contracts (module assembly,
sub-computation forms, errors).

Where the document shows an example only as a figure (2-D Reduce, ReduceWindow, Pad,
SelectAndScatter, Gather), the test rebuilds the figure's configuration with its own
numbers and says so.
"""

from __future__ import annotations

import numpy as np
import pytest

from hlo.builder import ComputationBuilder, DotDimensionNumbers, make_padding
from hlo.dtypes import PrimitiveType
from hlo.errors import ArgumentError, HloVerificationError, ShapeError
from hlo.evaluator import evaluate
from hlo.opcodes import Opcode
from hlo.parser import parse
from hlo.printer import to_text
from hlo.shape import Shape
from hlo.verifier import verify

F32 = PrimitiveType.F32
S32 = PrimitiveType.S32
PRED = PrimitiveType.PRED


def shape(t: PrimitiveType, *dims: int) -> Shape:
    return Shape.array(t, dims)


def run(b: ComputationBuilder, *args: np.ndarray, root=None):
    """Build, verify, check the printed text round-trips, and evaluate.

    A single result leaf is returned bare.
    """
    module = b.build(root)
    verify(module)
    text = to_text(module)
    assert to_text(parse(text)) == text
    out = evaluate(module, *args)
    return out[0] if len(out) == 1 else out


def param(b: ComputationBuilder, number: int, value: np.ndarray, name: str | None = None):
    """A parameter shaped like `value` (whose dtype names the element type)."""
    t = {np.dtype(np.float32): F32, np.dtype(np.int32): S32, np.dtype(np.bool_): PRED}[
        value.dtype
    ]
    return b.parameter(number, Shape.array(t, value.shape), name or f"arg{number}")


def f32(values) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def s32(values) -> np.ndarray:
    return np.array(values, dtype=np.int32)


def assert_equal(got, want) -> None:
    want = np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_array_equal(got, want)


def adder(sb, a, c):
    return sb.add(a, c)


# The document's 24-element array v (Collapse and Reshape).
V = f32([[[10, 11, 12], [15, 16, 17]],
         [[20, 21, 22], [25, 26, 27]],
         [[30, 31, 32], [35, 36, 37]],
         [[40, 41, 42], [45, 46, 47]]])

# The 4x3 array b of Slice / DynamicSlice / DynamicUpdateSlice.
B43 = f32([[0.0, 1.0, 2.0],
           [3.0, 4.0, 5.0],
           [6.0, 7.0, 8.0],
           [9.0, 10.0, 11.0]])


# === broadcasting semantics ===================================================================


def test_matrix_plus_vector_with_broadcast_dimension_1() -> None:
    # |1 2 3| + |7 8 9| = |8  10 12|
    # |4 5 6|             |11 13 15|
    b = ComputationBuilder("mat_vec")
    x = param(b, 0, f32([[1, 2, 3], [4, 5, 6]]))
    b.add(x, b.constant_r1(f32([7, 8, 9])), broadcast_dimensions=[1])
    assert_equal(run(b, f32([[1, 2, 3], [4, 5, 6]])), [[8, 10, 12], [11, 13, 15]])


def test_matrix_plus_scalar_needs_no_broadcast_dimensions() -> None:
    # |1 2 3| + 7 = |8  9  10|
    # |4 5 6|       |11 12 13|
    b = ComputationBuilder("mat_scalar")
    x = param(b, 0, f32([[1, 2, 3], [4, 5, 6]]))
    b.add(x, b.constant_r0(np.float32(7)))
    assert_equal(run(b, f32([[1, 2, 3], [4, 5, 6]])), [[8, 9, 10], [11, 12, 13]])


def test_scalar_on_the_left_broadcasts_too() -> None:
    b = ComputationBuilder("scalar_left")
    x = param(b, 0, f32([[1, 2, 3], [4, 5, 6]]))
    b.sub(b.constant_r0(np.float32(7)), x)
    assert_equal(run(b, f32([[1, 2, 3], [4, 5, 6]])), [[6, 5, 4], [3, 2, 1]])


@pytest.mark.parametrize(
    "dims, want",
    [
        # (1): each vector element becomes a column; the vector is repeated per row.
        ((1,), [[7, 8, 9], [7, 8, 9], [7, 8, 9]]),
        # (0): each vector element becomes a row; the vector is repeated per column.
        ((0,), [[7, 7, 7], [8, 8, 8], [9, 9, 9]]),
    ],
)
def test_vector_to_3x3_both_ways(dims, want) -> None:
    b = ComputationBuilder("vec_3x3")
    z = param(b, 0, np.zeros((3, 3), np.float32))
    b.add(z, b.constant_r1(f32([7, 8, 9])), broadcast_dimensions=dims)
    assert_equal(run(b, np.zeros((3, 3), np.float32)), want)


def test_dimension_0_broadcast_of_3_vector_to_2x3_is_illegal() -> None:
    b = ComputationBuilder("illegal")
    x = b.parameter(0, shape(F32, 2, 3), "x")
    with pytest.raises(ShapeError, match=r"add.*f32\[2,3\].*f32\[3\]"):
        b.add(x, b.constant_r1(f32([7, 8, 9])), broadcast_dimensions=[0])


def test_rank_mismatch_without_broadcast_dimensions_is_illegal() -> None:
    b = ComputationBuilder("no_dims")
    x = b.parameter(0, shape(F32, 2, 3), "x")
    v = b.parameter(1, shape(F32, 3), "v")
    with pytest.raises(ShapeError, match=r"broadcast_dimensions"):
        b.add(x, v)


def test_cube_plus_matrix_with_dimensions_1_2() -> None:
    # A 2x3x4 array and a 3x4 matrix, broadcast tuple (1,2).
    cube = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    mat = np.arange(12, dtype=np.float32).reshape(3, 4) * 100
    b = ComputationBuilder("cube_mat")
    b.add(param(b, 0, cube), param(b, 1, mat), broadcast_dimensions=(1, 2))
    assert_equal(run(b, cube, mat), cube + mat[None])


@pytest.mark.parametrize("dims", [(3,), (2,), (1,), (0,)])
def test_formal_definition_vector_matches_each_dimension(dims) -> None:
    # MxNxPxQ with a vector T matched on dimension 3, 2, 1 or 0 (T equals that size).
    big = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    t = np.arange(big.shape[dims[0]], dtype=np.float32) * 1000
    b = ComputationBuilder("formal_vec")
    b.add(param(b, 0, big), param(b, 1, t), broadcast_dimensions=dims)
    view = [1, 1, 1, 1]
    view[dims[0]] = t.size
    assert_equal(run(b, big, t), big + t.reshape(view))


@pytest.mark.parametrize("dims", [(2, 3), (1, 2), (0, 3)])
def test_formal_definition_matrix_pairs(dims) -> None:
    # A TxV matrix matched to dimensions (2,3), (1,2) or (0,3) of an MxNxPxQ array.
    big = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    tv = np.arange(big.shape[dims[0]] * big.shape[dims[1]], dtype=np.float32).reshape(
        big.shape[dims[0]], big.shape[dims[1]]
    )
    b = ComputationBuilder("formal_mat")
    b.mul(param(b, 0, big), param(b, 1, tv), broadcast_dimensions=dims)
    view = [1, 1, 1, 1]
    view[dims[0]], view[dims[1]] = tv.shape
    assert_equal(run(b, big, tv), big * tv.reshape(view))


@pytest.mark.parametrize("dims", [(2, 1), (1, 1)])
def test_broadcast_dimensions_must_strictly_increase(dims) -> None:
    # V on N and T on P (order reversed) is illegal; so is V on both P and N.
    b = ComputationBuilder("not_increasing")
    big = b.parameter(0, shape(F32, 2, 4, 4, 5), "big")
    tv = b.parameter(1, shape(F32, 4, 4), "tv")
    with pytest.raises(ShapeError, match="strictly increasing"):
        b.add(big, tv, broadcast_dimensions=dims)


@pytest.mark.parametrize(
    "lhs, rhs, want",
    [
        ((2, 1), (2, 3), (2, 3)),
        ((1, 2, 5), (7, 2, 5), (7, 2, 5)),
        ((7, 2, 5), (7, 1, 5), (7, 2, 5)),
        ((2, 1), (1, 3), (2, 3)),  # the "outer operation" special case
    ],
)
def test_degenerate_dimension_broadcasting(lhs, rhs, want) -> None:
    a = np.arange(np.prod(lhs), dtype=np.float32).reshape(lhs)
    c = (np.arange(np.prod(rhs), dtype=np.float32) * 10).reshape(rhs)
    b = ComputationBuilder("degenerate")
    b.add(param(b, 0, a), param(b, 1, c))
    got = run(b, a, c)
    assert got.shape == want
    assert_equal(got, a + c)


def test_degenerate_outer_product_2x1_plus_1x3_values() -> None:
    b = ComputationBuilder("outer")
    b.add(b.constant_r2(f32([[1], [2]])), b.constant_r2(f32([[10, 20, 30]])))
    assert_equal(run(b), [[11, 21, 31], [12, 22, 32]])


def test_incompatible_same_rank_shapes_raise() -> None:
    # (7,2,5) and (7,2,6) are incompatible.
    b = ComputationBuilder("incompatible")
    x = b.parameter(0, shape(F32, 7, 2, 5), "x")
    y = b.parameter(1, shape(F32, 7, 2, 6), "y")
    with pytest.raises(ShapeError, match=r"f32\[7,2,5\].*f32\[7,2,6\].*5 and 6"):
        b.add(x, y)


def test_composition_vector_4_plus_1x2_with_dimension_0() -> None:
    # |1 2 3 4| + [5 6] with broadcast dimensions (0) = |6 7; 7 8; 8 9; 9 10|
    b = ComputationBuilder("composition")
    b.add(b.constant_r1(f32([1, 2, 3, 4])), b.constant_r2(f32([[5, 6]])),
          broadcast_dimensions=[0])
    assert_equal(run(b), [[6, 7], [7, 8], [8, 9], [9, 10]])


def test_composition_1x2_plus_4x3x1_with_dimensions_1_2() -> None:
    small = f32([[5, 6]])
    big = np.arange(12, dtype=np.float32).reshape(4, 3, 1)
    b = ComputationBuilder("composition3")
    b.add(param(b, 0, small), param(b, 1, big), broadcast_dimensions=[1, 2])
    got = run(b, small, big)
    assert got.shape == (4, 3, 2)
    assert_equal(got, small[None, :, :] + big)


def test_broadcasts_are_explicit_in_the_ir() -> None:
    b = ComputationBuilder("explicit")
    b.add(b.constant_r1(f32([1, 2, 3, 4])), b.constant_r2(f32([[5, 6]])),
          broadcast_dimensions=[0])
    module = b.build()
    add = module.entry_computation.root
    assert add.opcode is Opcode.ADD
    assert [o.shape.dims for o in add.operands] == [(4, 2), (4, 2)]
    assert all(o.opcode is Opcode.BROADCAST for o in add.operands)
    # The 1x2 operand loses its degenerate dimension through a reshape first.
    assert add.operands[1].operands[0].opcode is Opcode.RESHAPE
    assert add.operands[1].attrs["dimensions"] == (1,)
    assert add.operands[0].attrs["dimensions"] == (0,)


def test_equal_shapes_add_no_broadcast() -> None:
    b = ComputationBuilder("plain")
    x = b.parameter(0, shape(F32, 2), "x")
    root = b.add(x, x)
    assert root.operands == [x, x]
    assert [i.opcode for i in b.computation.instructions] == [Opcode.PARAMETER, Opcode.ADD]


def test_comparisons_broadcast_like_arithmetic() -> None:
    b = ComputationBuilder("cmp")
    x = param(b, 0, f32([[1, 2, 3], [4, 5, 6]]))
    b.gt(x, b.constant_r1(f32([2, 5, 3])), broadcast_dimensions=[1])
    assert_equal(run(b, f32([[1, 2, 3], [4, 5, 6]])),
                 [[False, False, False], [True, False, True]])


@pytest.mark.parametrize(
    "method, fn",
    [("eq", np.equal), ("ne", np.not_equal), ("lt", np.less), ("le", np.less_equal),
     ("gt", np.greater), ("ge", np.greater_equal)],
)
def test_each_comparison(method, fn) -> None:
    x, y = f32([1, 2, 3, np.nan]), f32([2, 2, 2, np.nan])
    b = ComputationBuilder("cmp_" + method)
    getattr(b, method)(param(b, 0, x), param(b, 1, y))
    assert_equal(run(b, x, y), fn(x, y))


@pytest.mark.parametrize(
    "method, fn",
    [("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("div", np.divide),
     ("max", np.maximum), ("min", np.minimum), ("pow", np.power)],
)
def test_binary_arithmetic(method, fn) -> None:
    x, y = f32([1.5, -2, 3, 4]), f32([2, 2, 0.5, -1])
    b = ComputationBuilder("bin_" + method)
    getattr(b, method)(param(b, 0, x), param(b, 1, y))
    np.testing.assert_allclose(run(b, x, y), fn(x, y), rtol=1e-6)


def test_rem_takes_the_sign_of_the_dividend() -> None:
    x, y = s32([7, -7, 7, -7]), s32([3, 3, -3, -3])
    b = ComputationBuilder("rem")
    b.rem(param(b, 0, x), param(b, 1, y))
    assert_equal(run(b, x, y), [1, -1, 1, -1])


def test_logical_and_or_not_on_pred() -> None:
    p, q = np.array([True, True, False, False]), np.array([True, False, True, False])
    b = ComputationBuilder("logic")
    pp, qq = param(b, 0, p), param(b, 1, q)
    b.tuple([b.logical_and(pp, qq), b.logical_or(pp, qq), b.logical_not(pp), b.xor(pp, qq)])
    got = run(b, p, q)
    assert_equal(got[0], p & q)
    assert_equal(got[1], p | q)
    assert_equal(got[2], ~p)
    assert_equal(got[3], p ^ q)


def test_integer_shifts() -> None:
    x, n = s32([1, -16, 256]), s32([3, 2, 4])
    b = ComputationBuilder("shifts")
    xx, nn = param(b, 0, x), param(b, 1, n)
    b.tuple([b.shift_left(xx, nn), b.shift_right_arithmetic(xx, nn),
             b.shift_right_logical(xx, nn)])
    got = run(b, x, n)
    assert_equal(got[0], [8, -64, 4096])
    assert_equal(got[1], [0, -4, 16])
    assert_equal(got[2], (x.view(np.uint32) >> n.view(np.uint32)).view(np.int32))


# === element-wise unary functions ==============================================================


@pytest.mark.parametrize(
    "method, fn",
    [
        ("abs", np.abs), ("ceil", np.ceil), ("cos", np.cos), ("exp", np.exp),
        ("floor", np.floor), ("neg", np.negative), ("sign", np.sign), ("tanh", np.tanh),
        ("sin", np.sin),
    ],
)
def test_unary_functions(method, fn) -> None:
    x = f32([-2.5, -1, 0, 0.5, 3])
    b = ComputationBuilder("un_" + method)
    getattr(b, method)(param(b, 0, x))
    np.testing.assert_allclose(run(b, x), fn(x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "method, fn",
    [("log", np.log), ("sqrt", np.sqrt), ("rsqrt", lambda v: 1 / np.sqrt(v)),
     ("logistic", lambda v: 1 / (1 + np.exp(-v)))],
)
def test_unary_functions_on_positive_inputs(method, fn) -> None:
    x = f32([0.25, 1, 2, 9])
    b = ComputationBuilder("un_" + method)
    getattr(b, method)(param(b, 0, x))
    np.testing.assert_allclose(run(b, x), fn(x), rtol=1e-6)


def test_round_is_half_away_from_zero() -> None:
    x = f32([-2.5, -0.5, 0.5, 1.5, 2.5])
    b = ComputationBuilder("round")
    b.round(param(b, 0, x))
    assert_equal(run(b, x), [-3, -1, 1, 2, 3])


def test_is_finite() -> None:
    x = f32([1, np.inf, -np.inf, np.nan, 0])
    b = ComputationBuilder("is_finite")
    b.is_finite(param(b, 0, x))
    assert_equal(run(b, x), [True, False, False, False, True])


def test_unary_on_a_scalar() -> None:
    # "It allows the operand to be a scalar (rank 0)."
    b = ComputationBuilder("scalar_unary")
    b.neg(b.constant_r0(np.float32(2)))
    assert_equal(run(b), np.float32(-2))


# === Broadcast, BroadcastInDim ================================================================


def test_broadcast_scalar_2_0_to_2x3() -> None:
    # A scalar 2.0f with broadcast_sizes {2, 3} gives f32[2, 3] of 2.0f.
    b = ComputationBuilder("broadcast_scalar")
    out = b.broadcast(b.constant_r0(np.float32(2.0)), [2, 3])
    assert out.shape.dims == (2, 3)
    assert_equal(run(b), np.full((2, 3), 2.0, np.float32))


def test_broadcast_prepends_dimensions() -> None:
    # {a0..aN} + {b0..bM}: output[i0, i1, j0] = operand[j0]
    b = ComputationBuilder("broadcast_prepend")
    out = b.broadcast(b.constant_r1(f32([1, 2, 3])), [2, 4])
    assert out.shape.dims == (2, 4, 3)
    assert out.attrs["dimensions"] == (2,)
    assert_equal(run(b), np.broadcast_to(f32([1, 2, 3]), (2, 4, 3)))


def test_broadcast_in_dim_with_degenerate_dimension() -> None:
    b = ComputationBuilder("bid")
    b.broadcast_in_dim(b.constant_r2(f32([[1], [2]])), [3, 2, 4], [1, 2])
    want = np.broadcast_to(f32([[1], [2]])[None], (3, 2, 4))
    assert_equal(run(b), want)


def test_broadcast_in_dim_rejects_mismatched_sizes() -> None:
    b = ComputationBuilder("bid_bad")
    with pytest.raises(ShapeError, match="broadcast_in_dim"):
        b.broadcast_in_dim(b.constant_r1(f32([1, 2, 3])), [2, 4], [1])


# === Clamp ====================================================================================


def test_clamp_with_scalar_bounds() -> None:
    # operand s32[3] = {-1, 5, 9}, min 0, max 6  ==>  {0, 5, 6}
    b = ComputationBuilder("clamp")
    x = param(b, 0, s32([-1, 5, 9]))
    b.clamp(b.constant_r0(0), x, b.constant_r0(6))
    assert_equal(run(b, s32([-1, 5, 9])), s32([0, 5, 6]))


def test_clamp_with_array_bounds() -> None:
    b = ComputationBuilder("clamp_arrays")
    x = param(b, 0, s32([-1, 5, 9]))
    b.clamp(b.constant_r1([0, 6, 0]), x, b.constant_r1([1, 7, 8]))
    assert_equal(run(b, s32([-1, 5, 9])), [0, 6, 8])


# === Collapse =================================================================================

# The document's Collapse listing swaps its two 2-D results: the 4x6 array it prints under
# `v01 = Collapse(v, {0,1})` is what collapsing dimensions {1,2} gives, and its 8x3 array
# under `v12` is Collapse(v, {0,1}). By the operation's own definition (and XLA's
# implementation, and the Reshape section's `Reshape(v, {0,1,2}, {8,3})`), Collapse merges
# the listed consecutive dimensions into one: 4x2x3 with {0,1} -> 8x3, with {1,2} -> 4x6.
# The tests keep the document's numbers and pair each array with the dimensions that
# produce it.

V_4X6 = [[10, 11, 12, 15, 16, 17],
         [20, 21, 22, 25, 26, 27],
         [30, 31, 32, 35, 36, 37],
         [40, 41, 42, 45, 46, 47]]
V_8X3 = [[10, 11, 12], [15, 16, 17], [20, 21, 22], [25, 26, 27],
         [30, 31, 32], [35, 36, 37], [40, 41, 42], [45, 46, 47]]
V_24 = [10, 11, 12, 15, 16, 17, 20, 21, 22, 25, 26, 27,
        30, 31, 32, 35, 36, 37, 40, 41, 42, 45, 46, 47]


@pytest.mark.parametrize(
    "dims, want",
    [((0, 1, 2), V_24), ((1, 2), V_4X6), ((0, 1), V_8X3)],
)
def test_collapse_document_examples(dims, want) -> None:
    b = ComputationBuilder("collapse")
    b.collapse(param(b, 0, V, "v"), dims)
    assert_equal(run(b, V), f32(want))


def test_collapse_needs_consecutive_dimensions() -> None:
    b = ComputationBuilder("collapse_bad")
    v = b.parameter(0, shape(F32, 4, 2, 3), "v")
    with pytest.raises(ShapeError, match="consecutive"):
        b.collapse(v, [0, 2])


# === Concatenate ==============================================================================


def test_concat_1d() -> None:
    # Concat({{2, 3}, {4, 5}, {6, 7}}, 0) >>> {2, 3, 4, 5, 6, 7}
    b = ComputationBuilder("concat1")
    b.concat_in_dim([b.constant_r1([2, 3]), b.constant_r1([4, 5]), b.constant_r1([6, 7])], 0)
    assert_equal(run(b), s32([2, 3, 4, 5, 6, 7]))


def test_concat_2d() -> None:
    b = ComputationBuilder("concat2")
    a = b.constant_r2([[1, 2], [3, 4], [5, 6]])
    c = b.constant_r2([[7, 8]])
    b.concat_in_dim([a, c], 0)
    assert_equal(run(b), s32([[1, 2], [3, 4], [5, 6], [7, 8]]))


def test_concat_of_scalars_is_rejected() -> None:
    b = ComputationBuilder("concat_scalars")
    with pytest.raises(ShapeError):
        b.concat_in_dim([b.constant_r0(1), b.constant_r0(2)], 0)


# === Conditional, Call, Map, While ============================================================


@pytest.mark.parametrize("flag, want", [(True, 20.0), (False, 2.0)])
def test_conditional_runs_one_computation(flag, want) -> None:
    b = ComputationBuilder("cond")
    pred = b.parameter(0, shape(PRED), "pred")
    x = b.parameter(1, shape(F32), "x")
    y = b.parameter(2, shape(S32, 2), "y")

    def on_true(sb, v):
        return sb.mul(v, sb.constant_r0(np.float32(2)))

    def on_false(sb, pair):
        total = sb.reduce(pair, sb.constant_r0(0), adder, [0])
        return sb.convert(total, F32)

    b.conditional(pred, x, on_true, y, on_false)
    got = run(b, np.bool_(flag), np.float32(10), s32([-1, 3]))
    assert got == np.float32(want)


def test_conditional_branches_must_agree() -> None:
    b = ComputationBuilder("cond_bad")
    pred = b.parameter(0, shape(PRED), "pred")
    x = b.parameter(1, shape(F32), "x")
    with pytest.raises(ShapeError, match="different shapes"):
        b.conditional(pred, x, lambda sb, v: v, x, lambda sb, v: sb.convert(v, S32))


def test_case_with_branch_index() -> None:
    b = ComputationBuilder("case")
    i = b.parameter(0, shape(S32), "i")
    x = b.parameter(1, shape(F32), "x")
    b.case(i, [(x, lambda sb, v: sb.neg(v)), (x, lambda sb, v: sb.mul(v, v))])
    assert run(b, np.int32(1), np.float32(3)) == np.float32(9)


def test_call() -> None:
    b = ComputationBuilder("outer")
    sub = b.create_sub_builder("axpy")
    a = sub.parameter(0, shape(F32), "a")
    xs = sub.parameter(1, shape(F32, 3), "xs")
    sub.add(sub.mul(xs, a), sub.constant_r0(np.float32(1)))
    b.call(sub, [b.constant_r0(np.float32(2)), param(b, 0, f32([1, 2, 3]))])
    assert_equal(run(b, f32([1, 2, 3])), f32([3, 5, 7]))


def test_call_checks_the_signature() -> None:
    b = ComputationBuilder("call_bad")
    sub = b.create_sub_builder("unary")
    sub.neg(sub.parameter(0, shape(F32), "v"))
    with pytest.raises(ShapeError, match=r"unary takes \(f32\[\]\); expected \(s32\[\]\)"):
        b.call(sub, [b.constant_r0(1)])


def test_map_with_a_static_operand() -> None:
    # Map(op1, op2, op3, computation, par1): elem_out <- computation(e1, e2, e3, par1)
    e1, e2, e3 = f32([1, 2, 3]), f32([10, 20, 30]), f32([0.5, 0.25, 2])
    b = ComputationBuilder("map")
    ops = [param(b, i, v) for i, v in enumerate((e1, e2, e3))]

    def fn(sb, a, c, d, par):
        return sb.mul(sb.add(a, sb.mul(c, d)), par)

    out = b.map(ops, fn, dimensions=[0], static_operands=[b.constant_r0(np.float32(-1))])
    assert out.opcode is Opcode.MAP
    assert_equal(run(b, e1, e2, e3), -(e1 + e2 * e3))


def test_map_changes_the_element_type() -> None:
    b = ComputationBuilder("map_type")
    x = param(b, 0, f32([-1, 0, 2]))
    b.map([x], lambda sb, v: sb.gt(v, sb.constant_r0(np.float32(0))))
    assert_equal(run(b, f32([-1, 0, 2])), [False, False, True])


def test_while_document_loop() -> None:
    # init = {0, zero_vector[10]}
    # while (result(0) < 1000) {
    #   iteration = result(0) + 1;
    #   new_vector = result(1) + constant_vector[10];
    #   result = {iteration, new_vector};
    # }
    constant_vector = np.arange(10, dtype=np.float32) * 0.5
    b = ComputationBuilder("while_loop")
    init = b.tuple([b.constant_r0(0), b.constant_r1(np.zeros(10, np.float32))])

    def condition(sb, result):
        return sb.lt(sb.get_tuple_element(result, 0), sb.constant_r0(1000))

    def body(sb, result):
        iteration = sb.add(sb.get_tuple_element(result, 0), sb.constant_r0(1))
        new_vector = sb.add(sb.get_tuple_element(result, 1), sb.constant_r1(constant_vector))
        return [iteration, new_vector]

    b.while_(condition, body, init)
    count, vector = run(b)
    assert count == 1000
    np.testing.assert_allclose(vector, constant_vector * 1000, rtol=1e-5)


def test_while_body_must_keep_the_state_shape() -> None:
    b = ComputationBuilder("while_bad")
    init = b.constant_r0(0)
    with pytest.raises(ShapeError, match="body"):
        b.while_(lambda sb, i: sb.lt(i, sb.constant_r0(3)),
                 lambda sb, i: sb.convert(i, F32), init)


def test_while_condition_must_return_pred() -> None:
    b = ComputationBuilder("while_bad_cond")
    init = b.constant_r0(0)
    with pytest.raises(ShapeError, match="condition"):
        b.while_(lambda sb, i: i, lambda sb, i: i, init)


# === ConvertElementType, BitcastConvertType, ReducePrecision ==================================


def test_convert_s32_to_f32() -> None:
    # a: s32[3] = {0, 1, 2}; b = convert(a, f32) == f32[3]{0.0, 1.0, 2.0}
    b = ComputationBuilder("convert")
    out = b.convert(param(b, 0, s32([0, 1, 2])), F32)
    assert out.shape.element_type is F32
    got = run(b, s32([0, 1, 2]))
    assert got.dtype == np.float32
    assert_equal(got, f32([0.0, 1.0, 2.0]))


def test_bitcast_convert_f32_to_s32() -> None:
    b = ComputationBuilder("bitcast")
    b.bitcast_convert(param(b, 0, f32([1.0, -2.0])), "s32")
    assert_equal(run(b, f32([1.0, -2.0])), f32([1.0, -2.0]).view(np.int32))


def test_bitcast_convert_needs_equal_bit_widths() -> None:
    b = ComputationBuilder("bitcast_bad")
    with pytest.raises(ShapeError, match="bit widths"):
        b.bitcast_convert(b.parameter(0, shape(F32, 2), "x"), PrimitiveType.S16)


def test_reduce_precision_to_half() -> None:
    x = f32([1.0, 1.0 + 2.0**-12, 3.14159, 65504.0, 1e-3])
    b = ComputationBuilder("reduce_precision")
    b.reduce_precision(param(b, 0, x), exponent_bits=5, mantissa_bits=10)
    assert_equal(run(b, x), x.astype(np.float16).astype(np.float32))


# === CrossReplicaSum ==========================================================================


def test_cross_replica_sum_on_one_replica_is_the_operand() -> None:
    b = ComputationBuilder("crs")
    b.cross_replica_sum(param(b, 0, f32([1.0, 2.5])))
    assert_equal(run(b, f32([1.0, 2.5])), f32([1.0, 2.5]))


# === Dot, DotGeneral ==========================================================================


def test_dot_vector_vector_matrix_vector_matrix_matrix() -> None:
    m = f32([[1, 2, 3], [4, 5, 6]])
    v = f32([1, 0, -1])
    n = f32([[1, 0], [0, 1], [1, 1]])
    b = ComputationBuilder("dots")
    mm, vv, nn = param(b, 0, m), param(b, 1, v), param(b, 2, n)
    outs = [b.dot(vv, vv), b.dot(mm, vv), b.dot(mm, nn)]
    assert [o.shape.dims for o in outs] == [(), (2,), (2, 2)]
    b.tuple(outs)
    vdot, mv, mn = run(b, m, v, n)
    assert vdot == 2
    assert_equal(mv, [-2, -2])
    assert_equal(mn, m @ n)


def test_dot_size_mismatch() -> None:
    b = ComputationBuilder("dot_bad")
    with pytest.raises(ShapeError, match=r"f32\[2,3\] \. f32\[2\]"):
        b.dot(b.parameter(0, shape(F32, 2, 3), "m"), b.parameter(1, shape(F32, 2), "v"))


def test_dot_general_contracting_dimensions() -> None:
    # lhs = {{1,2,3},{4,5,6}}, rhs = {{1,1,1},{2,2,2}}, contracting 1 and 1
    # -> {{6, 12}, {15, 30}}
    b = ComputationBuilder("dot_general")
    lhs = b.constant_r2(f32([[1, 2, 3], [4, 5, 6]]))
    rhs = b.constant_r2(f32([[1, 1, 1], [2, 2, 2]]))
    b.dot_general(lhs, rhs, DotDimensionNumbers([1], [1]))
    assert_equal(run(b), f32([[6, 12], [15, 30]]))


def test_dot_general_batch_dimensions() -> None:
    lhs = f32([[[1, 2], [3, 4]], [[5, 6], [7, 8]]])
    rhs = f32([[[1, 0], [0, 1]], [[1, 0], [0, 1]]])
    b = ComputationBuilder("batch_matmul")
    b.dot_general(param(b, 0, lhs), param(b, 1, rhs),
                  DotDimensionNumbers(lhs_contracting_dimensions=[2],
                                      rhs_contracting_dimensions=[1],
                                      lhs_batch_dimensions=[0], rhs_batch_dimensions=[0]))
    assert_equal(run(b, lhs, rhs), lhs)


# === DynamicSlice, DynamicUpdateSlice, Slice ==================================================


def test_dynamic_slice_1d() -> None:
    # DynamicSlice({0,1,2,3,4}, {2}, {2}) produces {2.0, 3.0}
    a = f32([0.0, 1.0, 2.0, 3.0, 4.0])
    b = ComputationBuilder("ds1")
    b.dynamic_slice(param(b, 0, a), param(b, 1, s32([2])), [2])
    assert_equal(run(b, a, s32([2])), f32([2.0, 3.0]))


def test_dynamic_slice_2d() -> None:
    b = ComputationBuilder("ds2")
    b.dynamic_slice(param(b, 0, B43), param(b, 1, s32([2, 1])), [2, 2])
    assert_equal(run(b, B43, s32([2, 1])), f32([[7.0, 8.0], [10.0, 11.0]]))


def test_dynamic_slice_with_scalar_and_python_indices() -> None:
    b = ComputationBuilder("ds_scalars")
    row = b.parameter(1, shape(S32), "row")
    b.dynamic_slice(param(b, 0, B43), [row, 1], [2, 2])
    assert_equal(run(b, B43, np.int32(2)), f32([[7.0, 8.0], [10.0, 11.0]]))


def test_dynamic_update_slice_1d() -> None:
    # DynamicUpdateSlice({0,1,2,3,4}, {5,6}, {2}) produces {0, 1, 5, 6, 4}
    a, u = f32([0.0, 1.0, 2.0, 3.0, 4.0]), f32([5.0, 6.0])
    b = ComputationBuilder("dus1")
    b.dynamic_update_slice(param(b, 0, a), param(b, 1, u), param(b, 2, s32([2])))
    assert_equal(run(b, a, u, s32([2])), f32([0.0, 1.0, 5.0, 6.0, 4.0]))


def test_dynamic_update_slice_2d() -> None:
    u = f32([[12.0, 13.0], [14.0, 15.0], [16.0, 17.0]])
    b = ComputationBuilder("dus2")
    b.dynamic_update_slice(param(b, 0, B43), param(b, 1, u), param(b, 2, s32([1, 1])))
    want = f32([[0.0, 1.0, 2.0],
                [3.0, 12.0, 13.0],
                [6.0, 14.0, 15.0],
                [9.0, 16.0, 17.0]])
    assert_equal(run(b, B43, u, s32([1, 1])), want)


def test_dynamic_slice_indices_must_cover_every_dimension() -> None:
    b = ComputationBuilder("ds_bad")
    with pytest.raises(ShapeError, match="one entry per operand dimension"):
        b.dynamic_slice(b.parameter(0, shape(F32, 4, 3), "b"),
                        b.parameter(1, shape(S32, 1), "s"), [2, 2])


def test_slice_1d() -> None:
    # Slice({0,1,2,3,4}, {2}, {4}) produces {2.0, 3.0}
    b = ComputationBuilder("slice1")
    b.slice(b.constant_r1(f32([0.0, 1.0, 2.0, 3.0, 4.0])), [2], [4])
    assert_equal(run(b), f32([2.0, 3.0]))


def test_slice_2d() -> None:
    # Slice(b, {2, 1}, {4, 3}) produces {{7, 8}, {10, 11}}
    b = ComputationBuilder("slice2")
    b.slice(param(b, 0, B43), [2, 1], [4, 3])
    assert_equal(run(b, B43), f32([[7.0, 8.0], [10.0, 11.0]]))


def test_slice_in_dim_with_stride() -> None:
    b = ComputationBuilder("slice_in_dim")
    b.slice_in_dim(param(b, 0, B43), 0, 4, 2, dimno=0)
    assert_equal(run(b, B43), B43[0:4:2])


def test_slice_out_of_bounds() -> None:
    b = ComputationBuilder("slice_bad")
    with pytest.raises(ShapeError, match=r"\[3:5:1\].*dimension 0"):
        b.slice(b.parameter(0, shape(F32, 4), "a"), [3], [5])


# === Gather ===================================================================================
# The document explains Gather with figures; these tests build the three configurations it
# describes (a batch of [8,6] slices from a [16,11] tensor with [5,2] and [4,5,2] indices,
# and tf.gather_nd's [1,11] row windows) on an iota operand.

OPERAND_16X11 = np.arange(16 * 11, dtype=np.float32).reshape(16, 11)


def test_gather_five_8x6_slices() -> None:
    indices = s32([[0, 0], [8, 5], [3, 2], [7, 1], [8, 0]])
    b = ComputationBuilder("gather_slices")
    b.gather(param(b, 0, OPERAND_16X11), param(b, 1, indices), index_vector_dim=1,
             output_window_dims=[1, 2], elided_window_dims=[], window_bounds=[8, 6],
             gather_dims_to_operand_dims=[0, 1])
    got = run(b, OPERAND_16X11, indices)
    want = np.stack([OPERAND_16X11[x:x + 8, y:y + 6] for x, y in indices])
    assert_equal(got, want)


def test_gather_with_4x5x2_indices() -> None:
    rng = np.random.default_rng(0)
    indices = np.stack([rng.integers(0, 9, (4, 5)), rng.integers(0, 6, (4, 5))], -1)
    indices = indices.astype(np.int32)
    b = ComputationBuilder("gather_batched")
    b.gather(param(b, 0, OPERAND_16X11), param(b, 1, indices), index_vector_dim=2,
             output_window_dims=[2, 3], elided_window_dims=[], window_bounds=[8, 6],
             gather_dims_to_operand_dims=[0, 1])
    got = run(b, OPERAND_16X11, indices)
    assert got.shape == (4, 5, 8, 6)
    for g0 in range(4):
        for g1 in range(5):
            x, y = indices[g0, g1]
            assert_equal(got[g0, g1], OPERAND_16X11[x:x + 8, y:y + 6])


def test_gather_nd_rows() -> None:
    # out[G0, G1, W0] = operand[indices[G0, G1, 0], W0]: window bounds [1, 11], the row
    # window dimension elided, one gather index mapped to operand dimension 0.
    indices = s32([[[1], [15]], [[0], [7]], [[3], [3]]])
    b = ComputationBuilder("gather_nd")
    b.gather(param(b, 0, OPERAND_16X11), param(b, 1, indices), index_vector_dim=2,
             output_window_dims=[2], elided_window_dims=[0], window_bounds=[1, 11],
             gather_dims_to_operand_dims=[0])
    assert_equal(run(b, OPERAND_16X11, indices), OPERAND_16X11[indices[..., 0]])


def test_scatter_add_rows() -> None:
    operand = np.zeros((3, 4), np.float32)
    indices = s32([[2], [0], [2]])
    updates = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = ComputationBuilder("scatter")
    b.scatter(param(b, 0, operand), param(b, 1, indices), param(b, 2, updates), adder,
              update_window_dims=[1], inserted_window_dims=[0],
              scatter_dims_to_operand_dims=[0], index_vector_dim=1)
    want = operand.copy()
    np.add.at(want, indices[:, 0], updates)
    assert_equal(run(b, operand, indices, updates), want)


# === GetTupleElement, Tuple ===================================================================


def test_tuple_and_get_tuple_element() -> None:
    # v: f32[10] = {0..9}; s: s32 = 5; t = tuple(v, s); element 1 is s32 5.
    v = np.arange(10, dtype=np.float32)
    b = ComputationBuilder("tuple")
    t = b.tuple([param(b, 0, v, "v"), b.constant_r0(5)])
    assert t.shape.is_tuple
    element_1 = b.get_tuple_element(t, 1)
    assert element_1.shape == Shape.scalar(S32)
    element_0 = b.get_tuple_element(t, 0)
    got = run(b, v, root=b.tuple([element_0, element_1]))
    assert_equal(got[0], v)
    assert got[1] == 5


def test_get_tuple_element_out_of_range() -> None:
    b = ComputationBuilder("gte_bad")
    t = b.tuple([b.constant_r0(1)])
    with pytest.raises(ShapeError, match="out of range"):
        b.get_tuple_element(t, 1)


# === Pad ======================================================================================
# The document's Pad figure is not reproduced in the text; these cover its cases: edge
# padding low/high, interior padding, and negative edge padding applied after interior.


def test_pad_edges_and_interior() -> None:
    x = f32([[1, 2, 3], [4, 5, 6]])
    b = ComputationBuilder("pad")
    b.pad(param(b, 0, x), b.constant_r0(np.float32(0)), [(1, 0, 0), (0, 1, 1)])
    want = f32([[0, 0, 0, 0, 0, 0],
                [1, 0, 2, 0, 3, 0],
                [4, 0, 5, 0, 6, 0]])
    assert_equal(run(b, x), want)


def test_pad_negative_edge_removes_after_interior() -> None:
    x = f32([1, 2, 3])
    b = ComputationBuilder("pad_negative")
    b.pad(param(b, 0, x), b.constant_r0(np.float32(-1)), [(-1, 2, 1)])
    # interior: 1 -1 2 -1 3; low -1 drops the 1; high 2 appends two -1s.
    assert_equal(run(b, x), f32([-1, 2, -1, 3, -1, -1]))


def test_pad_no_op() -> None:
    x = f32([[1, 2], [3, 4]])
    b = ComputationBuilder("pad_noop")
    b.pad(param(b, 0, x), b.constant_r0(np.float32(9)), [(0, 0), (0, 0)])
    assert_equal(run(b, x), x)


# === Reduce ===================================================================================

CUBE_4X2X3 = np.tile(f32([[1, 2, 3], [4, 5, 6]]), (4, 1, 1))


def test_reduce_1d_sum() -> None:
    # [10, 11, 12, 13] reduced with f = add from init_value 0 in any order: 46.
    b = ComputationBuilder("reduce1")
    b.reduce(b.constant_r1(f32([10, 11, 12, 13])), b.constant_r0(np.float32(0)), adder, [0])
    assert run(b) == np.float32(46)


@pytest.mark.parametrize("dims, want", [((0,), [5, 7, 9]), ((1,), [6, 15])])
def test_reduce_2d_sum(dims, want) -> None:
    # The figure's 2x3 array |1 2 3; 4 5 6| summed over dimension 0 or 1.
    x = f32([[1, 2, 3], [4, 5, 6]])
    b = ComputationBuilder("reduce2")
    b.reduce(param(b, 0, x), b.constant_r0(np.float32(0)), adder, dims)
    assert_equal(run(b, x), f32(want))


@pytest.mark.parametrize(
    "dims, want",
    [
        ((0,), [[4, 8, 12], [16, 20, 24]]),
        ((2,), [[6, 15], [6, 15], [6, 15], [6, 15]]),
        ((0, 1), [20, 28, 36]),
        ((0, 1, 2), 84),
    ],
)
def test_reduce_3d_sum(dims, want) -> None:
    # 1..6 replicated 4 times along dimension 0: shape (4, 2, 3).
    b = ComputationBuilder("reduce3")
    b.reduce(param(b, 0, CUBE_4X2X3), b.constant_r0(np.float32(0)), adder, dims)
    assert_equal(run(b, CUBE_4X2X3), f32(want))


def test_reduce_with_a_sub_builder_computation() -> None:
    b = ComputationBuilder("reduce_max")
    mx = b.create_sub_builder("max")
    mx.max(mx.parameter(0, shape(F32), "y"), mx.parameter(1, shape(F32), "x"))
    b.reduce(param(b, 0, CUBE_4X2X3), b.constant_r0(np.float32(-np.inf)), mx, [1, 2])
    assert_equal(run(b, CUBE_4X2X3), f32([6, 6, 6, 6]))


def test_variadic_reduce_argmax() -> None:
    values = f32([3, 9, 2, 9, 1])

    def argmax(sb, best, best_i, x, i):
        take = sb.or_(sb.gt(x, best), sb.and_(sb.eq(x, best), sb.lt(i, best_i)))
        return [sb.select(take, x, best), sb.select(take, i, best_i)]

    b = ComputationBuilder("argmax")
    b.reduce([param(b, 0, values), b.iota(S32, 5)],
             [b.constant_r0(np.float32(-np.inf)), b.constant_r0(0)], argmax, [0])
    best, index = run(b, values)
    assert best == 9 and index == 1


def test_reduce_all() -> None:
    b = ComputationBuilder("reduce_all")
    b.reduce_all(param(b, 0, CUBE_4X2X3), b.constant_r0(np.float32(0)), adder)
    assert run(b, CUBE_4X2X3) == np.float32(84)


def test_reduce_computation_signature_is_checked() -> None:
    b = ComputationBuilder("reduce_bad")
    sub = b.create_sub_builder("add_s32")
    sub.add(sub.parameter(0, shape(S32), "a"), sub.parameter(1, shape(S32), "b"))
    with pytest.raises(ShapeError, match=r"add_s32 takes \(s32\[\], s32\[\]\); expected "
                                         r"\(f32\[\], f32\[\]\)"):
        b.reduce(b.parameter(0, shape(F32, 3), "x"), b.constant_r0(np.float32(0)), sub, [0])


# === ReduceWindow =============================================================================


def test_reduce_window_max_2x3_valid() -> None:
    # The document's configuration: a [4x6] input, max, window 2x3, stride 2x3, kValid,
    # init = the lowest f32. (Its figure's numbers are not in the text; these are ours.)
    x = f32([[1, 5, 3, 2, 9, 4],
             [7, 2, 6, 8, 1, 0],
             [4, 4, 0, 3, 3, 2],
             [1, 8, 2, 5, 7, 6]])
    b = ComputationBuilder("reduce_window_2x3")
    mx = b.create_sub_builder("max")
    mx.max(mx.parameter(0, shape(F32), "y"), mx.parameter(1, shape(F32), "x"))
    b.reduce_window(param(b, 0, x, "input"), b.constant_r0(np.finfo(np.float32).min), mx,
                    window_dimensions=[2, 3], window_strides=[2, 3], padding="VALID")
    assert_equal(run(b, x), f32([[7, 9], [8, 7]]))


def test_reduce_window_same_padding_with_overlapping_windows() -> None:
    # Window 3, stride 2, SAME on 5 elements: 3 outputs, one element of padding each side.
    x = f32([10000, 1000, 100, 10, 1])
    b = ComputationBuilder("reduce_window_same")
    out = b.reduce_window(param(b, 0, x), b.constant_r0(np.float32(0)), adder, [3], [2],
                          "SAME")
    window = out.attrs["window"].dims[0]
    assert (window.padding_low, window.padding_high) == (1, 1)
    assert_equal(run(b, x), f32([11000, 1110, 11]))


def test_make_padding() -> None:
    assert make_padding([5], [3], [2], "SAME") == [(1, 1)]
    assert make_padding([4, 6], [2, 3], [2, 3], "valid") == [(0, 0), (0, 0)]
    assert make_padding([4], [2], [1], "SAME") == [(0, 1)]
    with pytest.raises(ArgumentError, match="SAME"):
        make_padding([4], [2], [1], "FULL")


# === Reshape ==================================================================================


@pytest.mark.parametrize(
    "dims, sizes, want",
    [
        ((0, 1, 2), (24,), V_24),
        ((0, 1, 2), (8, 3), V_8X3),
        ((1, 2, 0), (24,), [10, 20, 30, 40, 11, 21, 31, 41, 12, 22, 32, 42,
                            15, 25, 35, 45, 16, 26, 36, 46, 17, 27, 37, 47]),
        ((1, 2, 0), (8, 3), [[10, 20, 30], [40, 11, 21], [31, 41, 12], [22, 32, 42],
                             [15, 25, 35], [45, 16, 26], [36, 46, 17], [27, 37, 47]]),
        ((1, 2, 0), (2, 6, 2), [[[10, 20], [30, 40], [11, 21], [31, 41], [12, 22], [32, 42]],
                                [[15, 25], [35, 45], [16, 26], [36, 46], [17, 27], [37, 47]]]),
    ],
)
def test_reshape_document_examples(dims, sizes, want) -> None:
    b = ComputationBuilder("reshape")
    b.reshape(param(b, 0, V, "v"), sizes, dimensions=dims)
    assert_equal(run(b, V), f32(want))


def test_reshape_single_element_and_scalar() -> None:
    # Reshape(f32[1x1] {{5}}, {0,1}, {}) == 5;  Reshape(5, {}, {1,1}) == f32[1x1] {{5}}
    b = ComputationBuilder("reshape_scalar")
    s = b.reshape(b.constant_r2(f32([[5]])), [], dimensions=[0, 1])
    m = b.reshape(b.constant_r0(np.float32(5)), [1, 1], dimensions=[])
    got_s, got_m = run(b, root=b.tuple([s, m]))
    assert_equal(got_s, np.float32(5))
    assert_equal(got_m, f32([[5]]))


def test_reshape_with_dimensions_transposes_first() -> None:
    b = ComputationBuilder("reshape_ir")
    out = b.reshape(b.parameter(0, shape(F32, 4, 2, 3), "v"), [24], dimensions=[1, 2, 0])
    assert out.opcode is Opcode.RESHAPE
    assert out.operands[0].opcode is Opcode.TRANSPOSE
    assert out.operands[0].attrs["dimensions"] == (1, 2, 0)


def test_reshape_element_count_must_match() -> None:
    b = ComputationBuilder("reshape_bad")
    with pytest.raises(ShapeError, match=r"f32\[4,2,3\] has 24 elements.*\[5, 5\] has 25"):
        b.reshape(b.parameter(0, shape(F32, 4, 2, 3), "v"), [5, 5])


# === Rev, Transpose ===========================================================================


def test_rev() -> None:
    # Index i of a reversed dimension of size N maps to N - 1 - i.
    x = f32([[1, 2, 3], [4, 5, 6]])
    b = ComputationBuilder("rev")
    xx = param(b, 0, x)
    b.tuple([b.rev(xx, [0]), b.rev(xx, [1]), b.rev(xx, [0, 1])])
    r0, r1, r01 = run(b, x)
    assert_equal(r0, [[4, 5, 6], [1, 2, 3]])
    assert_equal(r1, [[3, 2, 1], [6, 5, 4]])
    assert_equal(r01, [[6, 5, 4], [3, 2, 1]])


def test_transpose_and_its_reshape_equivalent() -> None:
    # input_dimensions[permutation[i]] = output_dimensions[i], and Transpose equals
    # Reshape(operand, permutation, Permute(permutation, operand.shape.dimensions)).
    perm = (1, 2, 0)
    b = ComputationBuilder("transpose")
    v = param(b, 0, V, "v")
    t = b.transpose(v, perm)
    assert t.shape.dims == tuple(V.shape[p] for p in perm)
    r = b.reshape(v, [V.shape[p] for p in perm], dimensions=perm)
    got_t, got_r = run(b, V, root=b.tuple([t, r]))
    assert_equal(got_t, np.transpose(V, perm))
    assert_equal(got_r, got_t)


def test_transpose_needs_a_permutation() -> None:
    b = ComputationBuilder("transpose_bad")
    with pytest.raises(ShapeError, match="permutation"):
        b.transpose(b.parameter(0, shape(F32, 2, 3), "x"), [0, 0])


# === RngUniform, RngNormal, Iota ==============================================================


def test_rng_uniform_and_normal_shapes_and_ranges() -> None:
    b = ComputationBuilder("rng")
    u = b.rng_uniform(b.constant_r0(np.float32(2)), b.constant_r0(np.float32(3)),
                      shape(F32, 50))
    n = b.rng_normal(b.constant_r0(np.float32(0)), b.constant_r0(np.float32(1)),
                     shape(F32, 4, 5))
    assert u.shape.dims == (50,) and n.shape.dims == (4, 5)
    got_u, got_n = run(b, root=b.tuple([u, n]))
    assert got_u.dtype == np.float32 and ((got_u >= 2) & (got_u < 3)).all()
    assert got_n.shape == (4, 5) and np.isfinite(got_n).all()


def test_rng_element_types_must_match() -> None:
    b = ComputationBuilder("rng_bad")
    with pytest.raises(ShapeError, match="element types must match"):
        b.rng_uniform(b.constant_r0(0), b.constant_r0(1), shape(F32, 3))
    with pytest.raises(ShapeError, match="not floating point"):
        b.rng_normal(b.constant_r0(0), b.constant_r0(1), shape(S32, 3))


def test_iota() -> None:
    b = ComputationBuilder("iota")
    b.iota(S32, [2, 3], iota_dimension=1)
    assert_equal(run(b), s32([[0, 1, 2], [0, 1, 2]]))


# === Select, SelectAndScatter =================================================================


def test_select_with_pred_array() -> None:
    # pred {true, false, false, true}, v1 {1,2,3,4}, v2 {100,...}  ==>  {1, 200, 300, 4}
    b = ComputationBuilder("select")
    pred = param(b, 0, np.array([True, False, False, True]))
    b.select(pred, b.constant_r1([1, 2, 3, 4]), b.constant_r1([100, 200, 300, 400]))
    assert_equal(run(b, np.array([True, False, False, True])), s32([1, 200, 300, 4]))


def test_select_with_scalar_pred() -> None:
    # pred = true  ==>  {1, 2, 3, 4}
    b = ComputationBuilder("select_scalar")
    pred = b.parameter(0, shape(PRED), "pred")
    b.select(pred, b.constant_r1([1, 2, 3, 4]), b.constant_r1([100, 200, 300, 400]))
    assert_equal(run(b, np.bool_(True)), s32([1, 2, 3, 4]))
    assert_equal(run(b, np.bool_(False)), s32([100, 200, 300, 400]))


def test_select_between_tuples() -> None:
    b = ComputationBuilder("select_tuples")
    pred = b.parameter(0, shape(PRED), "pred")
    t = b.tuple([b.constant_r0(1), b.constant_r1(f32([1, 2]))])
    f = b.tuple([b.constant_r0(2), b.constant_r1(f32([3, 4]))])
    out = b.select(pred, t, f)
    assert out.shape.is_tuple
    got = run(b, np.bool_(False))
    assert got[0] == 2
    assert_equal(got[1], f32([3, 4]))


def test_select_and_scatter_overlapping_windows() -> None:
    # As in the document's figure (2): windows overlap, the 9 is selected by both top
    # windows, and scatter = add gives 2 + 6 = 8 there. (Our numbers; select = max.)
    operand = f32([[7, 2, 9, 3, 1],
                   [3, 8, 5, 4, 2],
                   [1, 5, 7, 4, 6],
                   [2, 3, 1, 9, 5]])
    source = f32([[2, 6], [3, 1]])
    b = ComputationBuilder("select_and_scatter")
    b.select_and_scatter(param(b, 0, operand), lambda sb, a, c: sb.ge(a, c), [2, 3], [2, 2],
                         "VALID", param(b, 1, source), b.constant_r0(np.float32(0)), adder)
    want = np.zeros_like(operand)
    want[0, 2] = 8
    want[2, 2] = 3
    want[3, 3] = 1
    assert_equal(run(b, operand, source), want)


def test_select_and_scatter_disjoint_windows() -> None:
    # Figure (1): non-overlapping 2x2 windows; each source value lands on its window's max.
    operand = f32([[1, 4, 0, 2],
                   [3, 2, 5, 1],
                   [9, 1, 2, 2],
                   [0, 3, 4, 8]])
    source = f32([[10, 20], [30, 40]])
    b = ComputationBuilder("select_and_scatter_disjoint")
    b.select_and_scatter(param(b, 0, operand), lambda sb, a, c: sb.ge(a, c), [2, 2], [2, 2],
                         "VALID", param(b, 1, source), b.constant_r0(np.float32(0)), adder)
    want = f32([[0, 10, 0, 0],
                [0, 0, 20, 0],
                [30, 0, 0, 0],
                [0, 0, 0, 40]])
    assert_equal(run(b, operand, source), want)


# === Sort =====================================================================================


def test_sort_ascending() -> None:
    b = ComputationBuilder("sort")
    b.sort(param(b, 0, f32([3, 1, 2, -5])))
    assert_equal(run(b, f32([3, 1, 2, -5])), f32([-5, 1, 2, 3]))


def test_sort_keys_with_values_along_last_dimension() -> None:
    keys = f32([[3, 1, 2], [0, -1, 5]])
    values = s32([[30, 10, 20], [0, -10, 50]])
    b = ComputationBuilder("sort_kv")
    out = b.sort(param(b, 0, keys), [param(b, 1, values)])
    assert out.shape.is_tuple
    got_k, got_v = run(b, keys, values)
    assert_equal(got_k, np.sort(keys, axis=1))
    assert_equal(got_v, np.take_along_axis(values, np.argsort(keys, axis=1), axis=1))


def test_sort_with_a_custom_comparator_descending() -> None:
    b = ComputationBuilder("sort_desc")
    b.sort(param(b, 0, s32([3, 1, 2])), comparator=lambda sb, a, c: sb.gt(a, c))
    assert_equal(run(b, s32([3, 1, 2])), s32([3, 2, 1]))


# === Convolution ==============================================================================


def conv_reference(lhs, rhs, strides, pads, lhs_dil=(1, 1), rhs_dil=(1, 1)):
    """The document's pseudocode (with dilation): lhs [b, z, y, x], rhs [oz, iz, ky, kx]."""
    batch, _, height, width = lhs.shape
    out_z, in_z, kh, kw = rhs.shape
    base = np.zeros((batch, in_z, (height - 1) * lhs_dil[0] + 1, (width - 1) * lhs_dil[1] + 1),
                    np.float64)
    base[:, :, ::lhs_dil[0], ::lhs_dil[1]] = lhs
    (pyl, pyh), (pxl, pxh) = pads
    eff_kh, eff_kw = (kh - 1) * rhs_dil[0] + 1, (kw - 1) * rhs_dil[1] + 1
    oh = (base.shape[2] + pyl + pyh - eff_kh) // strides[0] + 1
    ow = (base.shape[3] + pxl + pxh - eff_kw) // strides[1] + 1
    out = np.zeros((batch, out_z, oh, ow))
    for b_, oz, oy, ox in np.ndindex(out.shape):
        value = 0.0
        for iz, ky, kx in np.ndindex(in_z, kh, kw):
            iy = oy * strides[0] + ky * rhs_dil[0] - pyl
            ix = ox * strides[1] + kx * rhs_dil[1] - pxl
            if 0 <= iy < base.shape[2] and 0 <= ix < base.shape[3]:
                value += base[b_, iz, iy, ix] * rhs[oz, iz, ky, kx]
        out[b_, oz, oy, ox] = value
    return out.astype(np.float32)


LHS = np.arange(2 * 2 * 5 * 4, dtype=np.float32).reshape(2, 2, 5, 4) / 10
RHS = (np.arange(3 * 2 * 3 * 2, dtype=np.float32).reshape(3, 2, 3, 2) - 15) / 7


@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_conv_same_and_valid(padding) -> None:
    b = ComputationBuilder("conv")
    out = b.conv(param(b, 0, LHS), param(b, 1, RHS), [1, 2], padding)
    pads = make_padding([5, 4], [3, 2], [1, 2], padding)
    want = conv_reference(LHS, RHS, (1, 2), pads)
    assert out.shape.dims == want.shape
    if padding == "SAME":
        assert want.shape[2:] == (5, 2)
    np.testing.assert_allclose(run(b, LHS, RHS), want, rtol=1e-5, atol=1e-5)


def test_conv_with_general_padding_and_dilation() -> None:
    pads = [(2, 3), (-1, 1)]
    b = ComputationBuilder("conv_general")
    b.conv_with_general_padding(param(b, 0, LHS), param(b, 1, RHS), [2, 1], pads,
                                lhs_dilation=[1, 2], rhs_dilation=[2, 1])
    want = conv_reference(LHS, RHS, (2, 1), pads, (1, 2), (2, 1))
    np.testing.assert_allclose(run(b, LHS, RHS), want, rtol=1e-5, atol=1e-5)


def test_conv_rank_mismatch() -> None:
    b = ComputationBuilder("conv_bad")
    with pytest.raises(ShapeError, match="rank n\\+2"):
        b.conv(b.parameter(0, shape(F32, 1, 2, 5, 5), "x"),
               b.parameter(1, shape(F32, 3, 2, 3), "k"), [1, 1], "VALID")


# === BatchNorm ================================================================================

BN_X = (np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2) - 10) / 4
BN_SCALE, BN_OFFSET = f32([1.0, 2.0, 0.5]), f32([0.0, -1.0, 3.0])
EPS = 1e-3


def test_batch_norm_training_matches_the_formulas() -> None:
    b = ComputationBuilder("bn_training")
    b.batch_norm_training(param(b, 0, BN_X), param(b, 1, BN_SCALE), param(b, 2, BN_OFFSET),
                          EPS, feature_index=1)
    y, mean, var = run(b, BN_X, BN_SCALE, BN_OFFSET)
    x64 = BN_X.astype(np.float64)
    mu = x64.mean(axis=(0, 2, 3))
    sigma2 = ((x64 - mu[None, :, None, None]) ** 2).mean(axis=(0, 2, 3))
    norm = (x64 - mu[None, :, None, None]) / np.sqrt(sigma2[None, :, None, None] + EPS)
    want = BN_SCALE[None, :, None, None] * norm + BN_OFFSET[None, :, None, None]
    np.testing.assert_allclose(mean, mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var, sigma2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)


def test_batch_norm_inference_uses_the_given_moments() -> None:
    mean, var = f32([0.5, -1.0, 2.0]), f32([1.0, 4.0, 0.25])
    b = ComputationBuilder("bn_inference")
    b.batch_norm_inference(param(b, 0, BN_X), param(b, 1, BN_SCALE), param(b, 2, BN_OFFSET),
                           param(b, 3, mean), param(b, 4, var), EPS, feature_index=1)
    got = run(b, BN_X, BN_SCALE, BN_OFFSET, mean, var)
    c = (slice(None), None, None)
    want = (BN_SCALE[c] * (BN_X - mean[c]) / np.sqrt(var[c] + EPS) + BN_OFFSET[c])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_batch_norm_grad_shapes() -> None:
    b = ComputationBuilder("bn_grad")
    out = b.batch_norm_grad(param(b, 0, BN_X), param(b, 1, BN_SCALE),
                            param(b, 2, f32([0, 0, 0])), param(b, 3, f32([1, 1, 1])),
                            param(b, 4, np.ones_like(BN_X)), EPS, feature_index=1)
    assert [s.dims for s in out.shape.tuple_shapes] == [(2, 3, 2, 2), (3,), (3,)]
    grad_x, grad_scale, grad_offset = run(b, BN_X, BN_SCALE, f32([0, 0, 0]), f32([1, 1, 1]),
                                          np.ones_like(BN_X))
    # With a constant upstream gradient, the offset gradient is the count per feature.
    np.testing.assert_allclose(grad_offset, [8, 8, 8])
    assert grad_x.shape == BN_X.shape and grad_scale.shape == (3,)


# === builder contracts ========================================================================


def test_build_orders_computations_callee_first_and_drops_unused() -> None:
    b = ComputationBuilder("entry")
    unused = b.create_sub_builder("unused")
    unused.constant_r0(1)
    x = b.parameter(0, shape(F32, 3), "x")
    s = b.reduce(x, b.constant_r0(np.float32(0)), adder, [0])
    b.map([x], lambda sb, v: sb.mul(v, v))
    module = b.build(root=s)
    names = [c.name for c in module.computations]
    assert names[-1] == "entry" and module.entry_computation.name == "entry"
    assert "unused" not in names and "adder" in names
    assert module.entry_computation.root is s
    verify(module)


def test_root_defaults_to_the_last_instruction() -> None:
    b = ComputationBuilder("last")
    b.constant_r0(1)
    last = b.constant_r0(2)
    assert b.build().entry_computation.root is last


def test_instruction_names_are_unique_in_the_module() -> None:
    b = ComputationBuilder("names")
    x = b.parameter(0, shape(F32), "x")
    b.add(b.reduce(b.broadcast(x, [3]), x, adder, [0]), x)
    b.map([b.broadcast(x, [2])], lambda sb, v: sb.add(v, v))
    module = b.build()
    names = [i.name for c in module.computations for i in c.instructions]
    assert len(names) == len(set(names))


def test_operands_from_another_computation_are_rejected() -> None:
    b = ComputationBuilder("outer_values")
    x = b.parameter(0, shape(F32), "x")
    with pytest.raises(HloVerificationError, match="belongs to outer_values"):
        b.map([b.broadcast(x, [2])], lambda sb, v: sb.add(v, x))


def test_sub_builders_cannot_build_modules() -> None:
    b = ComputationBuilder("top")
    sub = b.create_sub_builder("sub")
    sub.constant_r0(1)
    with pytest.raises(HloVerificationError, match="sub-builder"):
        sub.build()


def test_duplicate_parameter_numbers() -> None:
    b = ComputationBuilder("dup")
    b.parameter(0, shape(F32), "a")
    with pytest.raises(HloVerificationError, match="already has parameter 0"):
        b.parameter(0, shape(F32), "b")


def test_constants_default_and_explicit_types() -> None:
    b = ComputationBuilder("constants")
    assert b.constant_r0(1).shape.element_type is S32
    assert b.constant_r0(1.5).shape.element_type is F32
    assert b.constant_r0(True).shape.element_type is PRED
    assert b.constant(np.arange(3, dtype=np.int64)).shape.element_type is PrimitiveType.S64
    assert b.constant([1, 2], dtype="f64").shape == Shape.array(PrimitiveType.F64, (2,), (0,))
    with pytest.raises(ShapeError, match="do not fit s32"):
        b.constant_r0(2**40)
    with pytest.raises(ShapeError, match="rank 1, expected 2"):
        b.constant_r2([1, 2])
    with pytest.raises(ArgumentError):
        b.constant("text")


def test_bad_computation_argument() -> None:
    b = ComputationBuilder("bad_comp")
    x = b.parameter(0, shape(F32, 3), "x")
    with pytest.raises(ArgumentError, match="computation"):
        b.reduce(x, b.constant_r0(np.float32(0)), 42, [0])
    with pytest.raises(ArgumentError, match="must return a handle"):
        b.reduce(x, b.constant_r0(np.float32(0)), lambda sb, a, c: 3.0, [0])


def test_shape_rule_errors_name_the_builder_operation() -> None:
    b = ComputationBuilder("rule_errors")
    x = b.parameter(0, shape(F32, 3), "x")
    y = b.parameter(1, shape(S32, 3), "y")
    with pytest.raises(ShapeError, match=r"add\(f32\[3\], s32\[3\]\)"):
        b.add(x, y)


def test_wrong_argument_types_raise_argument_errors() -> None:
    b = ComputationBuilder("argument_types")
    x = b.parameter(0, shape(F32, 3), "x")
    with pytest.raises(ArgumentError, match="operand 1 must be a handle"):
        b.add(x, 3)
    with pytest.raises(ArgumentError, match="list of handles"):
        b.tuple(x)
    with pytest.raises(ArgumentError, match="direction"):
        b.compare(x, x, "XX")
    with pytest.raises(ArgumentError, match="list of integers"):
        b.broadcast(x, ["two"])
    with pytest.raises(ArgumentError, match="not an element type"):
        b.convert(x, "f31")
    with pytest.raises(ArgumentError, match="not a valid HLO identifier"):
        ComputationBuilder("has space")
    assert b.shape_of(x) == x.shape
