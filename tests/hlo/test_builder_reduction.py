"""ComputationBuilder against the operation-semantics document's reduction examples (TF 1.8,
../shared/xla-docs-zh.md): Reduce (including variadic reduce), ReduceWindow and make_padding,
SelectAndScatter and Sort. Where the document shows an example only as a figure (2-D Reduce,
ReduceWindow, SelectAndScatter), the test rebuilds the figure's configuration with its own
numbers and says so.
"""

from __future__ import annotations

import numpy as np
import pytest

from hlo.builder import ComputationBuilder, make_padding
from hlo.errors import ArgumentError, ShapeError
from tests.hlo.builder_helpers import F32, S32, adder, assert_equal, f32, param, run, s32, shape

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


# === SelectAndScatter =========================================================================


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
