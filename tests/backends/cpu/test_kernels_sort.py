"""CPU sort and topk kernels (backends/cpu/sort.py) against the reference evaluator.

Sort: along the last and the first dimension, of short rows (insertion-sort runs only),
long rows (merge passes) and a row of 1e5 elements (which a quadratic sort could not finish
in a test), several operands with a key among them, stability with many equal keys, and a
descending comparator. Topk: largest and smallest, ties (lower index first), NaN (sorted
above everything), integers, k equal to the row length.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.backends.cpu.test_kernels_common import check, module_text
from tests.backends.hlo_text import comparator

RNG = np.random.default_rng(9)


def sort_module(dtypes: list[str], dims: tuple[int, ...], dim: int, key: int = 0,
                direction: str = "LT") -> str:
    shape = ",".join(map(str, dims))
    operands = ", ".join(f"p{k}" for k in range(len(dtypes)))
    result = (f"({', '.join(f'{t}[{shape}]' for t in dtypes)})" if len(dtypes) > 1
              else f"{dtypes[0]}[{shape}]")
    return module_text(
        [f"{t}[{shape}]" for t in dtypes],
        [f"s = {result} sort({operands}), dimensions={{{dim}}}, is_stable=true, "
         f"to_apply=cmp"],
        comparator("cmp", dtypes, key, direction),
    )


@pytest.mark.parametrize("dims,dim", [
    ((3, 8), 1), ((10, 4), 0), ((2, 37, 3), 1), ((1000,), 0), ((5, 16), 1), ((4, 33), 1),
    ((1,), 0), ((0, 4), 1),
])
def test_sort_f32(dims: tuple[int, ...], dim: int) -> None:
    x = RNG.integers(0, 50, dims).astype(np.float32)
    (got,) = check(sort_module(["f32"], dims, dim), x)
    np.testing.assert_array_equal(got, np.sort(x, axis=dim))


def test_sort_long_row() -> None:
    x = RNG.standard_normal(100000).astype(np.float32)
    (got,) = check(sort_module(["f32"], x.shape, 0), x)
    np.testing.assert_array_equal(got, np.sort(x))


def test_sort_is_stable_with_payload() -> None:
    keys = RNG.integers(0, 5, (4, 300)).astype(np.int32)
    payload = np.broadcast_to(np.arange(300, dtype=np.int32), (4, 300)).copy()
    got_keys, got_payload = check(sort_module(["s32", "s32"], (4, 300), 1), keys, payload)
    order = np.argsort(keys, axis=1, kind="stable")
    np.testing.assert_array_equal(got_payload, order)
    np.testing.assert_array_equal(got_keys, np.take_along_axis(keys, order, 1))


def test_sort_by_second_operand_descending() -> None:
    values = RNG.standard_normal((3, 20)).astype(np.float32)
    keys = RNG.integers(0, 4, (3, 20)).astype(np.int32)
    check(sort_module(["f32", "s32"], (3, 20), 1, key=1, direction="GT"), values, keys)


def test_sort_u8_along_first_dimension() -> None:
    x = RNG.integers(0, 256, (40, 3)).astype(np.uint8)
    check(sort_module(["u8"], (40, 3), 0), x)


def topk_module(dtype: str, rows: int, n: int, k: int, largest: bool) -> str:
    return module_text(
        [f"{dtype}[{rows},{n}]"],
        [f"t = ({dtype}[{rows},{k}], s32[{rows},{k}]) topk(p0), k={k}, "
         f"largest={'true' if largest else 'false'}"],
    )


@pytest.mark.parametrize("largest", [True, False])
def test_topk_f32_with_ties_and_nan(largest: bool) -> None:
    x = RNG.integers(0, 6, (4, 40)).astype(np.float32)
    x[0, 3] = np.nan
    x[2, :] = 1.0
    values, indices = check(topk_module("f32", 4, 40, 5, largest), x)
    np.testing.assert_array_equal(indices[2], np.arange(5))
    if largest:
        assert np.isnan(values[0, 0]) and indices[0, 0] == 3


def test_topk_integers_whole_row() -> None:
    x = RNG.integers(-100, 100, (3, 17)).astype(np.int32)
    values, indices = check(topk_module("s32", 3, 17, 17, True), x)
    np.testing.assert_array_equal(values, -np.sort(-x, axis=1))


def test_topk_long_rows() -> None:
    x = RNG.standard_normal((2, 5000)).astype(np.float32)
    check(topk_module("f32", 2, 5000, 10, True), x)
