"""CPU gather, scatter and dynamic-update-slice kernels against the reference evaluator.

Gather: row and column slices, clamping of out-of-range starts, an index vector dimension
in the middle, an implicit index vector, and batching dimensions. Scatter: duplicates
combined in order, overwrite, windows that do not fit (skipped whole), batching dimensions
and variadic scatter. dynamic-update-slice: clamped starts of several index types.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.backends.cpu.test_kernels_common import check, module_text
from tests.backends.hlo_text import scalar_computation

RNG = np.random.default_rng(3)
ADD_F32 = scalar_computation("add", "f32", "add")
SET_F32 = """set {
  a = f32[] parameter(0)
  ROOT b = f32[] parameter(1)
}

"""


def test_gather_rows_clamps_starts() -> None:
    x = RNG.standard_normal((5, 3)).astype(np.float32)
    idx = np.array([[0], [4], [7], [-2]], np.int32)
    text = module_text(
        ["f32[5,3]", "s32[4,1]"],
        ["g = f32[4,3] gather(p0, p1), offset_dims={1}, collapsed_slice_dims={0}, "
         "start_index_map={0}, index_vector_dim=1, slice_sizes={1,3}"],
    )
    (got,) = check(text, x, idx)
    np.testing.assert_array_equal(got, x[np.clip(idx[:, 0], 0, 4)])


def test_gather_column_windows_with_implicit_index_vector() -> None:
    x = RNG.standard_normal((5, 6)).astype(np.float32)
    idx = np.array([0, 1, 4, 9], np.int64)
    text = module_text(
        ["f32[5,6]", "s64[4]"],
        ["g = f32[5,4,2] gather(p0, p1), offset_dims={0,2}, collapsed_slice_dims={}, "
         "start_index_map={1}, index_vector_dim=1, slice_sizes={5,2}"],
    )
    check(text, x, idx)


def test_gather_index_vector_in_the_middle() -> None:
    x = RNG.standard_normal((4, 5, 6)).astype(np.float32)
    idx = RNG.integers(-1, 7, (3, 2, 2)).astype(np.int32)
    text = module_text(
        ["f32[4,5,6]", "s32[3,2,2]"],
        ["g = f32[3,2,4,2] gather(p0, p1), offset_dims={2,3}, collapsed_slice_dims={1}, "
         "start_index_map={1,2}, index_vector_dim=1, slice_sizes={4,1,2}"],
    )
    check(text, x, idx)


def test_gather_batching_dims() -> None:
    x = RNG.standard_normal((2, 5, 3)).astype(np.float32)
    idx = RNG.integers(-1, 7, (2, 4, 1)).astype(np.int32)
    text = module_text(
        ["f32[2,5,3]", "s32[2,4,1]"],
        ["g = f32[2,4,3] gather(p0, p1), offset_dims={2}, collapsed_slice_dims={1}, "
         "start_index_map={1}, operand_batching_dims={0}, start_indices_batching_dims={0}, "
         "index_vector_dim=2, slice_sizes={1,1,3}"],
    )
    (got,) = check(text, x, idx)
    for b in range(2):
        np.testing.assert_array_equal(got[b], x[b][np.clip(idx[b, :, 0], 0, 4)])


def test_gather_unsigned_indices() -> None:
    x = RNG.standard_normal((6,)).astype(np.float32)
    idx = np.array([[1], [5], [4000000000]], np.uint32)
    text = module_text(
        ["f32[6]", "u32[3,1]"],
        ["g = f32[3,2] gather(p0, p1), offset_dims={1}, collapsed_slice_dims={}, "
         "start_index_map={0}, index_vector_dim=1, slice_sizes={2}"],
    )
    check(text, x, idx)


def test_scatter_add_combines_duplicates_and_skips_out_of_range() -> None:
    x = RNG.standard_normal(6).astype(np.float32)
    idx = np.array([[1], [3], [1], [9], [-1], [1]], np.int32)
    updates = RNG.standard_normal(6).astype(np.float32)
    text = module_text(
        ["f32[6]", "s32[6,1]", "f32[6]"],
        ["s = f32[6] scatter(p0, p1, p2), update_window_dims={}, inserted_window_dims={0}, "
         "scatter_dims_to_operand_dims={0}, index_vector_dim=1, to_apply=add"],
        ADD_F32,
    )
    (got,) = check(text, x, idx, updates)
    want = x.copy()
    np.add.at(want, np.array([1, 3, 1, 1]), updates[[0, 1, 2, 5]])
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_scatter_set_last_duplicate_wins() -> None:
    x = np.zeros(4, np.float32)
    idx = np.array([[2], [2], [2]], np.int32)
    updates = np.array([1.0, 2.0, 3.0], np.float32)
    text = module_text(
        ["f32[4]", "s32[3,1]", "f32[3]"],
        ["s = f32[4] scatter(p0, p1, p2), update_window_dims={}, inserted_window_dims={0}, "
         "scatter_dims_to_operand_dims={0}, index_vector_dim=1, to_apply=set"],
        SET_F32,
    )
    (got,) = check(text, x, idx, updates)
    assert got[2] == 3.0


def test_scatter_windows_that_do_not_fit_are_skipped_whole() -> None:
    x = RNG.standard_normal((5, 4)).astype(np.float32)
    idx = np.array([[0, 0], [3, 2], [4, 1], [1, -1], [2, 3]], np.int32)
    updates = RNG.standard_normal((5, 2, 2)).astype(np.float32)
    text = module_text(
        ["f32[5,4]", "s32[5,2]", "f32[5,2,2]"],
        ["s = f32[5,4] scatter(p0, p1, p2), update_window_dims={1,2}, "
         "inserted_window_dims={}, scatter_dims_to_operand_dims={0,1}, index_vector_dim=1, "
         "to_apply=set"],
        SET_F32,
    )
    (got,) = check(text, x, idx, updates)
    want = x.copy()
    want[0:2, 0:2] = updates[0]
    want[3:5, 2:4] = updates[1]
    np.testing.assert_array_equal(got, want)


def test_scatter_window_dims_not_leading() -> None:
    x = RNG.standard_normal((3, 6)).astype(np.float32)
    idx = np.array([4, 0, 5], np.int32)
    updates = RNG.standard_normal((3, 3)).astype(np.float32)
    text = module_text(
        ["f32[3,6]", "s32[3]", "f32[3,3]"],
        ["s = f32[3,6] scatter(p0, p1, p2), update_window_dims={0}, "
         "inserted_window_dims={1}, scatter_dims_to_operand_dims={1}, index_vector_dim=1, "
         "to_apply=add"],
        ADD_F32,
    )
    check(text, x, idx, updates, rtol=1e-6, atol=1e-6)


def test_scatter_batching_dims() -> None:
    x = RNG.standard_normal((2, 5)).astype(np.float32)
    idx = RNG.integers(0, 5, (2, 3, 1)).astype(np.int32)
    updates = RNG.standard_normal((2, 3)).astype(np.float32)
    text = module_text(
        ["f32[2,5]", "s32[2,3,1]", "f32[2,3]"],
        ["s = f32[2,5] scatter(p0, p1, p2), update_window_dims={}, inserted_window_dims={1}, "
         "input_batching_dims={0}, scatter_indices_batching_dims={0}, "
         "scatter_dims_to_operand_dims={1}, index_vector_dim=2, to_apply=add"],
        ADD_F32,
    )
    check(text, x, idx, updates, rtol=1e-6, atol=1e-6)


def test_variadic_scatter() -> None:
    pair_add = """pair_add {
  a0 = f32[] parameter(0)
  a1 = s32[] parameter(1)
  b0 = f32[] parameter(2)
  b1 = s32[] parameter(3)
  s0 = f32[] add(a0, b0)
  s1 = s32[] multiply(a1, b1)
  ROOT t = (f32[], s32[]) tuple(s0, s1)
}

"""
    x = RNG.standard_normal(5).astype(np.float32)
    y = RNG.integers(1, 4, 5).astype(np.int32)
    idx = np.array([[0], [4], [0]], np.int32)
    u = RNG.standard_normal(3).astype(np.float32)
    v = RNG.integers(1, 4, 3).astype(np.int32)
    text = module_text(
        ["f32[5]", "s32[5]", "s32[3,1]", "f32[3]", "s32[3]"],
        ["s = (f32[5], s32[5]) scatter(p0, p1, p2, p3, p4), update_window_dims={}, "
         "inserted_window_dims={0}, scatter_dims_to_operand_dims={0}, index_vector_dim=1, "
         "to_apply=pair_add"],
        pair_add,
    )
    check(text, x, y, idx, u, v, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("index_type,starts", [
    ("s32", (1, 2)), ("s32", (4, 5)), ("s32", (-3, 1)), ("s64", (2, -7)), ("u32", (9, 0)),
])
def test_dynamic_update_slice(index_type: str, starts: tuple[int, int]) -> None:
    x = RNG.standard_normal((5, 6)).astype(np.float32)
    update = RNG.standard_normal((2, 3)).astype(np.float32)
    numpy_type = {"s32": np.int32, "s64": np.int64, "u32": np.uint32}[index_type]
    text = module_text(
        ["f32[5,6]", "f32[2,3]", f"{index_type}[]", f"{index_type}[]"],
        ["u = f32[5,6] dynamic-update-slice(p0, p1, p2, p3)"],
    )
    (got,) = check(text, x, update, np.array(starts[0], numpy_type),
                   np.array(starts[1], numpy_type))
    row = min(max(starts[0], 0), 3)
    col = min(max(starts[1], 0), 3)
    want = x.copy()
    want[row:row + 2, col:col + 3] = update
    np.testing.assert_array_equal(got, want)


def test_dynamic_update_slice_of_a_scalar_into_a_vector() -> None:
    x = RNG.standard_normal(4).astype(np.float32)
    text = module_text(
        ["f32[4]", "f32[1]", "s32[]"],
        ["u = f32[4] dynamic-update-slice(p0, p1, p2)"],
    )
    check(text, x, np.array([7.0], np.float32), np.array(3, np.int32))
