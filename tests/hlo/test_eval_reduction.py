"""Evaluator kernels of hlo/eval_rules/reduction.py: reduce, reduce-window,
select-and-scatter, sort, topk and the Combiner that applies called computations.

References are direct loops over the definitions, written here independently of the
kernels. The corpus cases of every category owned by part B of the evaluator run at the
end of this file.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from hlo.attributes import Window, WindowDim
from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType, from_numpy
from hlo.eval_rules.reduction import Combiner, lane_clone
from hlo.evaluator import Evaluator, evaluate
from hlo.module import HloModule
from hlo.opcodes import Opcode
from hlo.shape import Shape

T = PrimitiveType
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "hlo"


# --- building modules by hand ------------------------------------------------------------


def scalar(t: PrimitiveType) -> Shape:
    return Shape.scalar(t)


def array_shape(a: np.ndarray) -> Shape:
    return Shape.array(from_numpy(a.dtype), a.shape)


def binary(op: Opcode, t: PrimitiveType, name: str = "combine") -> HloComputation:
    """f(p0, p1) = op(p0, p1) on scalars of type t."""
    comp = HloComputation(name)
    p0 = comp.add(Opcode.PARAMETER, shape=scalar(t), parameter_number=0)
    p1 = comp.add(Opcode.PARAMETER, shape=scalar(t), parameter_number=1)
    comp.set_root(comp.add(op, [p0, p1], shape=scalar(t)))
    return comp


def double_then_add(t: PrimitiveType) -> HloComputation:
    """f(acc, x) = acc * 2 + x: order-sensitive, so it checks the application order."""
    comp = HloComputation("double_then_add")
    p0 = comp.add(Opcode.PARAMETER, shape=scalar(t), parameter_number=0)
    p1 = comp.add(Opcode.PARAMETER, shape=scalar(t), parameter_number=1)
    two = comp.add(Opcode.CONSTANT, shape=scalar(t), literal=np.asarray(2, t.numpy))
    doubled = comp.add(Opcode.MULTIPLY, [p0, two], shape=scalar(t))
    comp.set_root(comp.add(Opcode.ADD, [doubled, p1], shape=scalar(t)))
    return comp


def compare_comp(
    t: PrimitiveType, direction: str, kind: str | None = None, operands: int = 1, key: int = 0
) -> HloComputation:
    """A sort comparator compare(p[2*key], p[2*key+1]) over `operands` operands."""
    comp = HloComputation("cmp")
    params = [
        comp.add(Opcode.PARAMETER, shape=scalar(t), parameter_number=i) for i in range(2 * operands)
    ]
    attrs = {"direction": direction} if kind is None else {"direction": direction, "type": kind}
    comp.set_root(
        comp.add(
            Opcode.COMPARE, [params[2 * key], params[2 * key + 1]], shape=scalar(T.PRED), **attrs
        )
    )
    return comp


def jax_float_less(t: PrimitiveType = T.F32) -> HloComputation:
    """JAX's sort comparator for floats: canonicalise -0 and NaN, then LT TOTALORDER."""
    comp = HloComputation("jax_lt")
    nan = comp.add(Opcode.CONSTANT, shape=scalar(t), literal=np.asarray(np.nan, t.numpy))
    zero = comp.add(Opcode.CONSTANT, shape=scalar(t), literal=np.asarray(0, t.numpy))
    canon = []
    for i in range(2):
        p = comp.add(Opcode.PARAMETER, shape=scalar(t), parameter_number=i)
        is_nan = comp.add(Opcode.COMPARE, [p, p], shape=scalar(T.PRED), direction="NE")
        is_zero = comp.add(Opcode.COMPARE, [p, zero], shape=scalar(T.PRED), direction="EQ")
        no_neg_zero = comp.add(Opcode.SELECT, [is_zero, zero, p], shape=scalar(t))
        canon.append(comp.add(Opcode.SELECT, [is_nan, nan, no_neg_zero], shape=scalar(t)))
    comp.set_root(
        comp.add(Opcode.COMPARE, canon, shape=scalar(T.PRED), direction="LT", type="TOTALORDER")
    )
    return comp


def argmax_comp(t: PrimitiveType = T.F32) -> HloComputation:
    """JAX's variadic argmax combiner: (value, index) pairs, NaN wins, ties -> lower index."""
    comp = HloComputation("argmax")
    av = comp.add(Opcode.PARAMETER, shape=scalar(t), parameter_number=0)
    ai = comp.add(Opcode.PARAMETER, shape=scalar(T.S32), parameter_number=1)
    bv = comp.add(Opcode.PARAMETER, shape=scalar(t), parameter_number=2)
    bi = comp.add(Opcode.PARAMETER, shape=scalar(T.S32), parameter_number=3)
    pred = scalar(T.PRED)
    gt = comp.add(Opcode.COMPARE, [av, bv], shape=pred, direction="GT")
    nan = comp.add(Opcode.COMPARE, [av, av], shape=pred, direction="NE")
    pick_a = comp.add(Opcode.OR, [gt, nan], shape=pred)
    value = comp.add(Opcode.SELECT, [pick_a, av, bv], shape=scalar(t))
    eq = comp.add(Opcode.COMPARE, [av, bv], shape=pred, direction="EQ")
    lower = comp.add(Opcode.COMPARE, [ai, bi], shape=pred, direction="LT")
    tie = comp.add(Opcode.AND, [eq, lower], shape=pred)
    pick_ai = comp.add(Opcode.OR, [pick_a, tie], shape=pred)
    index = comp.add(Opcode.SELECT, [pick_ai, ai, bi], shape=scalar(T.S32))
    comp.set_root(
        comp.add(Opcode.TUPLE, [value, index], shape=Shape.tuple_of([scalar(t), scalar(T.S32)]))
    )
    return comp


def run(opcode: Opcode, args: list[np.ndarray], shape: Shape, **attrs) -> tuple:
    """Evaluate a one-instruction module whose operands are parameters."""
    comp = HloComputation("entry")
    params = [
        comp.add(Opcode.PARAMETER, shape=array_shape(a), parameter_number=i)
        for i, a in enumerate(args)
    ]
    comp.set_root(comp.add(opcode, params, shape=shape, **attrs))
    module = HloModule("test")
    for c in attrs.values():
        if isinstance(c, HloComputation):
            module.add_computation(c)
    module.add_computation(comp, entry=True)
    return evaluate(module, *args)


def window(*dims: WindowDim) -> Window:
    return Window(tuple(dims))


# --- reduce ------------------------------------------------------------------------------


def test_reduce_sum_over_two_axes_matches_wide_sum() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    init = np.float32(0.5)
    (got,) = run(
        Opcode.REDUCE,
        [x, np.asarray(init)],
        Shape.array(T.F32, [4]),
        dimensions=(0, 2),
        to_apply=binary(Opcode.ADD, T.F32),
    )
    want = np.array([x[:, j, :].astype(np.float64).sum() + 0.5 for j in range(4)])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want.astype(np.float32))


@pytest.mark.parametrize(
    "op,ref",
    [(Opcode.MAXIMUM, max), (Opcode.MINIMUM, min), (Opcode.MULTIPLY, lambda a, b: a * b)],
)
def test_reduce_plain_combiners_with_init(op: Opcode, ref) -> None:
    x = np.array([[3, -1, 7], [2, 5, -4]], dtype=np.int32)
    init = np.int32(4)
    (got,) = run(
        Opcode.REDUCE,
        [x, np.asarray(init)],
        Shape.array(T.S32, [2]),
        dimensions=(1,),
        to_apply=binary(op, T.S32),
    )
    want = [int(init) for _ in range(2)]
    for i in range(2):
        for v in x[i]:
            want[i] = ref(want[i], int(v))
    np.testing.assert_array_equal(got, np.array(want, dtype=np.int32))


def test_reduce_integer_sum_wraps() -> None:
    x = np.full((4,), 2**30, dtype=np.int32)
    (got,) = run(
        Opcode.REDUCE,
        [x, np.asarray(np.int32(0))],
        scalar(T.S32),
        dimensions=(0,),
        to_apply=binary(Opcode.ADD, T.S32),
    )
    assert got.dtype == np.int32 and got == 0  # 4 * 2^30 wraps to 0


def test_reduce_max_propagates_nan() -> None:
    x = np.array([[1, np.nan, 3], [1, 2, 3]], dtype=np.float32)
    (got,) = run(
        Opcode.REDUCE,
        [x, np.asarray(np.float32(-np.inf))],
        Shape.array(T.F32, [2]),
        dimensions=(1,),
        to_apply=binary(Opcode.MAXIMUM, T.F32),
    )
    assert np.isnan(got[0]) and got[1] == 3


def test_reduce_generic_combiner_applies_in_row_major_order() -> None:
    x = np.arange(24, dtype=np.int64).reshape(2, 3, 4) % 5 - 2
    init = np.int64(1)
    (got,) = run(
        Opcode.REDUCE,
        [x, np.asarray(init)],
        Shape.array(T.S64, [3]),
        dimensions=(2, 0),
        to_apply=double_then_add(T.S64),
    )
    want = []
    for j in range(3):
        acc = 1
        for i in range(2):  # reduced dims in increasing order: 0 then 2
            for k in range(4):
                acc = acc * 2 + int(x[i, j, k])
        want.append(acc)
    np.testing.assert_array_equal(got, np.array(want, dtype=np.int64))


def test_variadic_argmax_reduce_picks_first_maximum() -> None:
    x = np.array([[1, 5, 5, 2], [np.nan, 0, 9, 9], [-1, -1, -1, -1]], dtype=np.float32)
    idx = np.broadcast_to(np.arange(4, dtype=np.int32), x.shape).copy()
    shape = Shape.tuple_of([Shape.array(T.F32, [3]), Shape.array(T.S32, [3])])
    values, index = run(
        Opcode.REDUCE,
        [x, idx, np.asarray(np.float32(-np.inf)), np.asarray(np.int32(0))],
        shape,
        dimensions=(1,),
        to_apply=argmax_comp(),
    )
    np.testing.assert_array_equal(index, np.array([1, 0, 0], dtype=np.int32))
    assert values[0] == 5 and np.isnan(values[1]) and values[2] == -1


def test_reduce_over_zero_size_dimension_gives_init() -> None:
    x = np.zeros((3, 0), dtype=np.float32)
    (got,) = run(
        Opcode.REDUCE,
        [x, np.asarray(np.float32(7))],
        Shape.array(T.F32, [3]),
        dimensions=(1,),
        to_apply=double_then_add(T.F32),
    )
    np.testing.assert_array_equal(got, np.full(3, 7, np.float32))


def test_reduce_f16_sum_rounds_once() -> None:
    # Adding 1 to 2048 repeatedly in f16 would stay at 2048; XLA's evaluator sums wide.
    x = np.concatenate([[2048], np.ones(16)]).astype(np.float16)
    (got,) = run(
        Opcode.REDUCE,
        [x, np.asarray(np.float16(0))],
        scalar(T.F16),
        dimensions=(0,),
        to_apply=binary(Opcode.ADD, T.F16),
    )
    assert got.dtype == np.float16 and got == np.float16(2064)


# --- reduce-window -----------------------------------------------------------------------


def naive_reduce_window(x, init, fn, dims: list[WindowDim]) -> np.ndarray:
    """Direct loops over the definition; padding and dilation holes are skipped."""
    out_shape = []
    for wd, n in zip(dims, x.shape, strict=True):
        padded = (n - 1) * wd.base_dilation + 1 + wd.padding_low + wd.padding_high if n else 0
        span = (wd.size - 1) * wd.window_dilation + 1
        out_shape.append(max((padded - span) // wd.stride + 1, 0))
    out = np.empty(out_shape, dtype=x.dtype)
    for o in itertools.product(*map(range, out_shape)):
        acc = init
        for w in itertools.product(*(range(wd.size) for wd in dims)):
            index = []
            for oi, wi, wd, n in zip(o, w, dims, x.shape, strict=True):
                p = oi * wd.stride + wi * wd.window_dilation - wd.padding_low
                if p < 0 or p % wd.base_dilation or p // wd.base_dilation >= n:
                    break
                index.append(p // wd.base_dilation)
            else:
                acc = fn(acc, x[tuple(index)])
        out[o] = acc
    return out


@pytest.mark.parametrize(
    "dims",
    [
        [WindowDim(2, 2), WindowDim(3, 1, 1, 1)],
        [WindowDim(3, 2, 2, 1, base_dilation=2), WindowDim(2, 1, 0, 2, window_dilation=2)],
        [WindowDim(1), WindowDim(4, 1, 3, 0)],
    ],
)
def test_reduce_window_sum_and_max_match_loops(dims: list[WindowDim]) -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(-9, 9, size=(5, 4)).astype(np.float32)
    for op, fn, init in [
        (Opcode.ADD, lambda a, b: np.float32(a + b), np.float32(1.5)),
        (Opcode.MAXIMUM, max, np.float32(-np.inf)),
    ]:
        want = naive_reduce_window(x, init, fn, dims)
        (got,) = run(
            Opcode.REDUCE_WINDOW,
            [x, np.asarray(init)],
            Shape.array(T.F32, want.shape),
            window=window(*dims),
            to_apply=binary(op, T.F32),
        )
        np.testing.assert_array_equal(got, want)


def test_reduce_window_generic_combiner_order() -> None:
    x = np.arange(12, dtype=np.int32).reshape(3, 4) - 5
    dims = [WindowDim(2, 1, 1, 0), WindowDim(3, 1, 0, 1)]
    want = naive_reduce_window(x, np.int32(3), lambda a, b: np.int32(a * 2 + b), dims)
    (got,) = run(
        Opcode.REDUCE_WINDOW,
        [x, np.asarray(np.int32(3))],
        Shape.array(T.S32, want.shape),
        window=window(*dims),
        to_apply=double_then_add(T.S32),
    )
    np.testing.assert_array_equal(got, want)


def test_variadic_reduce_window_argmax() -> None:
    x = np.array([3, 1, 4, 1, 5, 9, 2, 6], dtype=np.float32)
    idx = np.arange(8, dtype=np.int32)
    dims = [WindowDim(3, 2, 1, 1)]
    shape = Shape.tuple_of([Shape.array(T.F32, [4]), Shape.array(T.S32, [4])])
    values, index = run(
        Opcode.REDUCE_WINDOW,
        [x, idx, np.asarray(np.float32(-np.inf)), np.asarray(np.int32(0))],
        shape,
        window=window(*dims),
        to_apply=argmax_comp(),
    )
    # windows (padded by one on each side): [_,3,1] [1,4,1] [1,5,9] [9,2,6]
    np.testing.assert_array_equal(values, np.float32([3, 4, 9, 9]))
    np.testing.assert_array_equal(index, np.int32([0, 2, 5, 5]))


# --- select-and-scatter ------------------------------------------------------------------


def naive_select_and_scatter(x, source, init, dims: list[WindowDim]) -> np.ndarray:
    """GE select (first maximum wins), add scatter, padding skipped."""
    out = np.full(x.shape, init, dtype=x.dtype)
    for s in itertools.product(*map(range, source.shape)):
        best = None
        for w in itertools.product(*(range(wd.size) for wd in dims)):
            p = tuple(
                si * wd.stride + wi - wd.padding_low for si, wi, wd in zip(s, w, dims, strict=True)
            )
            if any(q < 0 or q >= n for q, n in zip(p, x.shape, strict=True)):
                continue
            if best is None or not x[best] >= x[p]:
                best = p
        if best is not None:
            out[best] += source[s]
    return out


@pytest.mark.parametrize(
    "dims",
    [
        [WindowDim(2, 2), WindowDim(2, 2)],
        [WindowDim(3, 1, 1, 1), WindowDim(2, 1, 0, 1)],  # overlapping windows
    ],
)
def test_select_and_scatter_matches_loops(dims: list[WindowDim]) -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(0, 4, size=(4, 6)).astype(np.float32)  # many ties
    out_shape = [
        ((n + wd.padding_low + wd.padding_high - wd.size) // wd.stride) + 1
        for n, wd in zip(x.shape, dims, strict=True)
    ]
    source = rng.integers(1, 9, size=out_shape).astype(np.float32)
    select = HloComputation("ge")
    a = select.add(Opcode.PARAMETER, shape=scalar(T.F32), parameter_number=0)
    b = select.add(Opcode.PARAMETER, shape=scalar(T.F32), parameter_number=1)
    select.set_root(select.add(Opcode.COMPARE, [a, b], shape=scalar(T.PRED), direction="GE"))
    (got,) = run(
        Opcode.SELECT_AND_SCATTER,
        [x, source, np.asarray(np.float32(0.25))],
        Shape.array(T.F32, x.shape),
        window=window(*dims),
        select=select,
        scatter=binary(Opcode.ADD, T.F32),
    )
    np.testing.assert_array_equal(got, naive_select_and_scatter(x, source, 0.25, dims))


# --- sort and topk -----------------------------------------------------------------------


def test_sort_with_jax_comparator_puts_nan_last_and_is_stable() -> None:
    x = np.array(
        [[3, np.nan, -0.0, 1, 0.0, -np.inf, 1], [2, 2, 2, -1, np.inf, np.nan, 0]], dtype=np.float32
    )
    (got,) = run(
        Opcode.SORT,
        [x],
        Shape.array(T.F32, x.shape),
        dimensions=(1,),
        is_stable=True,
        to_apply=jax_float_less(),
    )
    want = np.sort(x, axis=1, kind="stable")
    np.testing.assert_array_equal(got, want)
    # -0.0 and 0.0 compare equal, so they keep their original order.
    assert np.signbit(got[0, 1]) and not np.signbit(got[0, 2])


def test_multi_operand_sort_is_stable_on_keys() -> None:
    keys = np.array([2, 1, 2, 1, 0, 2], dtype=np.int32)
    values = np.arange(6, dtype=np.float32)
    shape = Shape.tuple_of([Shape.array(T.S32, [6]), Shape.array(T.F32, [6])])
    for comparator in (compare_comp(T.S32, "LT", operands=2), _keys_then_anything()):
        k, v = run(
            Opcode.SORT, [keys, values], shape, dimensions=(0,), is_stable=True, to_apply=comparator
        )
        np.testing.assert_array_equal(k, np.int32([0, 1, 1, 2, 2, 2]))
        np.testing.assert_array_equal(v, np.float32([4, 1, 3, 0, 2, 5]))


def _keys_then_anything() -> HloComputation:
    """LT on operand 0 written so that no fast path recognises it (select(lt, true, lt))."""
    comp = HloComputation("lt_generic")
    p = [
        comp.add(Opcode.PARAMETER, shape=scalar(t), parameter_number=i)
        for i, t in enumerate([T.S32, T.S32, T.F32, T.F32])
    ]
    lt = comp.add(Opcode.COMPARE, [p[0], p[1]], shape=scalar(T.PRED), direction="LT")
    true = comp.add(Opcode.CONSTANT, shape=scalar(T.PRED), literal=np.asarray(True))
    comp.set_root(comp.add(Opcode.SELECT, [lt, true, lt], shape=scalar(T.PRED)))
    return comp


@pytest.mark.parametrize("direction", ["LT", "GT"])
def test_sort_total_order_fast_path(direction: str) -> None:
    x = np.array([np.nan, -np.nan, 1, -0.0, 0.0, -np.inf, np.inf, -2], dtype=np.float32)
    (got,) = run(
        Opcode.SORT,
        [x],
        Shape.array(T.F32, [8]),
        dimensions=(0,),
        to_apply=compare_comp(T.F32, direction, "TOTALORDER"),
    )
    bits = got.view(np.int32)
    ascending = [
        np.int32(-4194304),
        *np.float32([-np.inf, -2, -0.0, 0.0, 1, np.inf]).view(np.int32),
        np.float32(np.nan).view(np.int32),
    ]
    want = np.array(ascending if direction == "LT" else ascending[::-1], dtype=np.int32)
    np.testing.assert_array_equal(bits, want)


def test_sort_descending_along_axis0_of_ints() -> None:
    x = np.array([[5, 1, 3], [2, 8, 3], [9, 1, -3], [0, 1, 4]], dtype=np.int32)
    (got,) = run(
        Opcode.SORT,
        [x],
        Shape.array(T.S32, x.shape),
        dimensions=(0,),
        to_apply=compare_comp(T.S32, "GT"),
    )
    np.testing.assert_array_equal(got, -np.sort(-x, axis=0))


def test_generic_sort_of_long_rows_matches_stable_sort() -> None:
    rng = np.random.default_rng(3)
    keys = rng.integers(0, 20, size=(3, 45)).astype(np.int32)
    vals = rng.standard_normal((3, 45)).astype(np.float32)
    shape = Shape.tuple_of([Shape.array(T.S32, keys.shape), Shape.array(T.F32, vals.shape)])
    k, v = run(
        Opcode.SORT,
        [keys, vals],
        shape,
        dimensions=(1,),
        is_stable=True,
        to_apply=_keys_then_anything(),
    )
    order = np.argsort(keys, axis=1, kind="stable")
    np.testing.assert_array_equal(k, np.take_along_axis(keys, order, 1))
    np.testing.assert_array_equal(v, np.take_along_axis(vals, order, 1))


def test_topk_largest_and_smallest_with_ties() -> None:
    x = np.array([[1, 3, 3, 2, 3], [0, -1, 5, 5, -1]], dtype=np.float32)
    shape = Shape.tuple_of([Shape.array(T.F32, [2, 3]), Shape.array(T.S32, [2, 3])])
    values, index = run(Opcode.TOPK, [x], shape, k=3, largest=True)
    np.testing.assert_array_equal(index, np.int32([[1, 2, 4], [2, 3, 0]]))
    np.testing.assert_array_equal(values, np.float32([[3, 3, 3], [5, 5, 0]]))
    values, index = run(Opcode.TOPK, [x], shape, k=3, largest=False)
    np.testing.assert_array_equal(index, np.int32([[0, 3, 1], [1, 4, 0]]))
    np.testing.assert_array_equal(values, np.float32([[1, 2, 3], [-1, -1, 0]]))


def test_sort_comparator_that_is_not_lane_safe_runs_per_element() -> None:
    """A scalar broadcast is not element-wise, so the comparator is called per element."""
    comp = HloComputation("lt_via_broadcast")
    p0 = comp.add(Opcode.PARAMETER, shape=scalar(T.F32), parameter_number=0)
    p1 = comp.add(Opcode.PARAMETER, shape=scalar(T.F32), parameter_number=1)
    b0 = comp.add(Opcode.BROADCAST, [p0], shape=scalar(T.F32), dimensions=())
    comp.set_root(comp.add(Opcode.COMPARE, [b0, p1], shape=scalar(T.PRED), direction="GT"))
    x = np.array([[3, 1, 2, 5, 4]], dtype=np.float32)
    (got,) = run(Opcode.SORT, [x], Shape.array(T.F32, [1, 5]), dimensions=(1,), to_apply=comp)
    np.testing.assert_array_equal(got, np.float32([[5, 4, 3, 2, 1]]))


def test_sort_of_zero_size_rows() -> None:
    x = np.zeros((3, 0), dtype=np.float32)
    (got,) = run(
        Opcode.SORT, [x], Shape.array(T.F32, [3, 0]), dimensions=(1,), to_apply=jax_float_less()
    )
    assert got.shape == (3, 0) and got.dtype == np.float32


def test_bf16_reduce_and_reduce_window_keep_the_type() -> None:
    import ml_dtypes

    x = np.array([[1.5, -2, 3.25], [0.5, 8, -1]], dtype=ml_dtypes.bfloat16)
    init = np.asarray(0, dtype=ml_dtypes.bfloat16)
    (got,) = run(
        Opcode.REDUCE,
        [x, init],
        Shape.array(T.BF16, [2]),
        dimensions=(1,),
        to_apply=binary(Opcode.ADD, T.BF16),
    )
    assert got.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(got.astype(np.float32), np.float32([2.75, 7.5]))
    (got,) = run(
        Opcode.REDUCE_WINDOW,
        [x, np.asarray(-np.inf, dtype=ml_dtypes.bfloat16)],
        Shape.array(T.BF16, [2, 2]),
        window=window(WindowDim(1), WindowDim(2)),
        to_apply=binary(Opcode.MAXIMUM, T.BF16),
    )
    assert got.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(got.astype(np.float32), np.float32([[1.5, 3.25], [8, 8]]))


# --- Combiner ----------------------------------------------------------------------------


def test_combiner_lane_and_per_element_paths_agree() -> None:
    comp = jax_float_less()
    module = HloModule("m")
    module.add_computation(comp, entry=True)
    ev = Evaluator(module)
    rng = np.random.default_rng(4)
    a = rng.choice(np.float32([np.nan, -0.0, 0.0, 1, -1, np.inf]), size=(5, 7))
    b = rng.choice(np.float32([np.nan, -0.0, 0.0, 1, -1, np.inf]), size=(5, 7))
    combiner = Combiner(ev, comp)
    (lanes,) = combiner(a, b)
    assert combiner._lanes_ok, "the comparator is element-wise: lanes must work"
    (per_element,) = combiner._call_per_element([a, b], a.shape)
    np.testing.assert_array_equal(lanes, per_element)
    clone = lane_clone(comp, (5, 7))
    assert clone.root is not None and clone.root.shape.dims == (5, 7)


# --- corpus ------------------------------------------------------------------------------

PART_B_CATEGORIES = {
    "broadcast",
    "shape",
    "gather_scatter",
    "sort",
    "reduction",
    "reduce_window",
    "linalg",
    "conv",
    "fft",
    "model",
    "edge",
}


def corpus_cases() -> list[dict]:
    manifest = CORPUS / "manifest.json"
    if not manifest.exists():
        return [{"name": "corpus_missing", "category": None}]  # fails below, loudly
    cases = json.loads(manifest.read_text())["cases"]
    return [c for c in cases if c["category"] in PART_B_CATEGORIES]


@pytest.mark.parametrize("case", corpus_cases(), ids=lambda c: c["name"])
def test_corpus_case(case: dict) -> None:
    from hlo.parser import parse  # written concurrently; imported here so the rest runs

    assert case["category"] is not None, f"corpus manifest not found under {CORPUS}"
    data = np.load(CORPUS / case["npz"])
    args = [data[f"arg{i}"] for i in range(len(case["inputs"]))]
    want = [data[f"out{i}"] for i in range(len(case["outputs"]))]
    got = evaluate(parse((CORPUS / case["hlo"]).read_text()), *args)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        if w.dtype.kind in "fc":
            assert np.allclose(g, w, rtol=case["rtol"], atol=case["atol"], equal_nan=True)
        else:
            np.testing.assert_array_equal(g, w)
