"""ComputationBuilder against the operation-semantics document's data-movement examples (TF
1.8, ../shared/xla-docs-zh.md): Broadcast and BroadcastInDim, Collapse, Concatenate, Slice,
DynamicSlice and DynamicUpdateSlice, Gather (and Scatter), Pad, Reshape, Rev and Transpose.
Where the document shows an example only as a figure (Pad, Gather), the test rebuilds the
figure's configuration with its own numbers and says so.
"""

from __future__ import annotations

import numpy as np
import pytest

from hlo.builder import ComputationBuilder
from hlo.errors import ShapeError
from hlo.opcodes import Opcode
from tests.hlo.builder_helpers import F32, S32, adder, assert_equal, f32, param, run, s32, shape

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
