"""ComputationBuilder against the broadcasting document (TF 1.8, ../shared/xla-docs-zh.md):
binary ops broadcast through `broadcast_dimensions`, degenerate dimensions, the rules that make
a broadcast illegal, and the explicit broadcast instructions the builder puts in the IR; plus
the binary arithmetic, comparison, logical and shift ops that broadcast this way. Each case is
built, verified, printed and parsed back, and evaluated with the reference evaluator.
"""

from __future__ import annotations

import numpy as np
import pytest

from hlo.builder import ComputationBuilder
from hlo.errors import ShapeError
from hlo.opcodes import Opcode
from tests.hlo.builder_helpers import F32, assert_equal, f32, param, run, s32, shape

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
