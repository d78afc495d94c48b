"""Evaluator kernels of hlo/eval_rules/movement.py.

Gather and scatter are checked against per-element loops written from XLA's operation
semantics (including batching dims), and against hand-worked examples.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hlo.attributes import PadDim, PaddingConfig, SliceDim
from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType, from_numpy
from hlo.errors import EvaluationError
from hlo.evaluator import evaluate
from hlo.module import HloModule
from hlo.opcodes import Opcode
from hlo.shape import Shape

T = PrimitiveType


def array_shape(a: np.ndarray, layout: tuple[int, ...] | None = None) -> Shape:
    return Shape.array(from_numpy(a.dtype), a.shape, layout)


def run(
    opcode: Opcode,
    args: list[np.ndarray],
    shape: Shape,
    layouts: list[tuple[int, ...] | None] | None = None,
    **attrs,
) -> tuple:
    """Evaluate a one-instruction module whose operands are parameters."""
    comp = HloComputation("entry")
    layouts = layouts or [None] * len(args)
    params = [
        comp.add(Opcode.PARAMETER, shape=array_shape(a, lay), parameter_number=i)
        for i, (a, lay) in enumerate(zip(args, layouts, strict=True))
    ]
    comp.set_root(comp.add(opcode, params, shape=shape, **attrs))
    module = HloModule("test")
    for c in attrs.values():
        if isinstance(c, HloComputation):
            module.add_computation(c)
    module.add_computation(comp, entry=True)
    return evaluate(module, *args)


def binary(op: Opcode, t: PrimitiveType, operands: int = 1) -> HloComputation:
    """Element-wise op(p_i, p_{n+i}) for each of `operands` operand pairs (a tuple if > 1)."""
    comp = HloComputation(f"{op.value}_comb")
    s = Shape.scalar(t)
    p = [comp.add(Opcode.PARAMETER, shape=s, parameter_number=i) for i in range(2 * operands)]
    outs = [comp.add(op, [p[i], p[operands + i]], shape=s) for i in range(operands)]
    if operands == 1:
        comp.set_root(outs[0])
    else:
        comp.set_root(comp.add(Opcode.TUPLE, outs, shape=Shape.tuple_of([s] * operands)))
    return comp


def keep_update(t: PrimitiveType) -> HloComputation:
    comp = HloComputation("set")
    comp.add(Opcode.PARAMETER, shape=Shape.scalar(t), parameter_number=0)
    comp.set_root(comp.add(Opcode.PARAMETER, shape=Shape.scalar(t), parameter_number=1))
    return comp


def double_then_add(t: PrimitiveType) -> HloComputation:
    """f(cur, upd) = cur * 2 + upd: order-sensitive."""
    comp = HloComputation("double_then_add")
    s = Shape.scalar(t)
    p0 = comp.add(Opcode.PARAMETER, shape=s, parameter_number=0)
    p1 = comp.add(Opcode.PARAMETER, shape=s, parameter_number=1)
    two = comp.add(Opcode.CONSTANT, shape=s, literal=np.asarray(2, t.numpy))
    doubled = comp.add(Opcode.MULTIPLY, [p0, two], shape=s)
    comp.set_root(comp.add(Opcode.ADD, [doubled, p1], shape=s))
    return comp


# --- simple movement ---------------------------------------------------------------------


def test_broadcast_maps_operand_dims_in_any_order() -> None:
    x = np.arange(6, dtype=np.int32).reshape(2, 3)
    (got,) = run(Opcode.BROADCAST, [x], Shape.array(T.S32, [3, 4, 2]), dimensions=(2, 0))
    for i, j, k in itertools.product(range(3), range(4), range(2)):
        assert got[i, j, k] == x[k, i]


def test_broadcast_scalar_and_zero_size() -> None:
    (got,) = run(
        Opcode.BROADCAST, [np.asarray(np.float32(2.5))], Shape.array(T.F32, [2, 0]), dimensions=()
    )
    assert got.shape == (2, 0) and got.dtype == np.float32
    (got,) = run(
        Opcode.BROADCAST, [np.asarray(np.float32(2.5))], Shape.array(T.F32, [3]), dimensions=()
    )
    np.testing.assert_array_equal(got, np.full(3, 2.5, np.float32))


def test_reshape_transpose_slice_reverse_concatenate() -> None:
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    (got,) = run(Opcode.RESHAPE, [x], Shape.array(T.F32, [4, 6]))
    np.testing.assert_array_equal(got, x.ravel().reshape(4, 6))
    (got,) = run(Opcode.TRANSPOSE, [x], Shape.array(T.F32, [4, 2, 3]), dimensions=(2, 0, 1))
    assert all(got[k, i, j] == x[i, j, k] for i, j, k in np.ndindex(2, 3, 4))
    sl = (SliceDim(1, 2), SliceDim(0, 3, 2), SliceDim(3, 0 + 4, 1))
    (got,) = run(Opcode.SLICE, [x], Shape.array(T.F32, [1, 2, 1]), slice=sl)
    np.testing.assert_array_equal(got, x[1:2, 0:3:2, 3:4])
    (got,) = run(Opcode.REVERSE, [x], x_shape := Shape.array(T.F32, [2, 3, 4]), dimensions=(0, 2))
    assert x_shape.dims == got.shape
    assert all(got[i, j, k] == x[1 - i, j, 3 - k] for i, j, k in np.ndindex(2, 3, 4))
    y = np.ones((2, 1, 4), dtype=np.float32)
    (got,) = run(Opcode.CONCATENATE, [x, y], Shape.array(T.F32, [2, 4, 4]), dimensions=(1,))
    np.testing.assert_array_equal(got[:, :3], x)
    np.testing.assert_array_equal(got[:, 3:], y)


def test_bitcast_follows_layouts() -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    # Column-major operand: memory holds x[0,0], x[1,0], x[0,1], ...
    (got,) = run(Opcode.BITCAST, [x], Shape.array(T.F32, [6], (0,)), layouts=[(0, 1)])
    np.testing.assert_array_equal(got, x.T.ravel())
    # Default layouts: a row-major reshape.
    (got,) = run(Opcode.BITCAST, [x], Shape.array(T.F32, [3, 2], (1, 0)), layouts=[(1, 0)])
    np.testing.assert_array_equal(got, x.reshape(3, 2))
    # Column-major result: element [i, j] sits at memory position i + 3 * j.
    (got,) = run(Opcode.BITCAST, [x], Shape.array(T.F32, [3, 2], (0, 1)), layouts=[(1, 0)])
    assert all(got[i, j] == x.ravel()[i + 3 * j] for i, j in np.ndindex(3, 2))


def test_bitcast_cannot_change_element_type() -> None:
    x = np.zeros(4, np.float32)
    with pytest.raises(EvaluationError, match="bitcast"):
        run(Opcode.BITCAST, [x], Shape.array(T.S32, [4], (0,)))


@pytest.mark.parametrize("start", [-3, 0, 2, 7, 2**31 - 1])
def test_dynamic_slice_clamps_start(start: int) -> None:
    x = np.arange(20, dtype=np.float32).reshape(4, 5)
    i = np.asarray(np.int32(start))
    j = np.asarray(np.uint32(1))
    (got,) = run(
        Opcode.DYNAMIC_SLICE, [x, i, j], Shape.array(T.F32, [2, 3]), dynamic_slice_sizes=(2, 3)
    )
    row = min(max(start, 0), 2)
    np.testing.assert_array_equal(got, x[row : row + 2, 1:4])


@pytest.mark.parametrize("start", [-1, 1, 9])
def test_dynamic_update_slice_clamps_start(start: int) -> None:
    x = np.zeros((4, 5), dtype=np.int32)
    u = np.arange(6, dtype=np.int32).reshape(2, 3) + 1
    (got,) = run(
        Opcode.DYNAMIC_UPDATE_SLICE,
        [x, u, np.asarray(np.int64(start)), np.asarray(np.int64(start))],
        Shape.array(T.S32, [4, 5]),
    )
    row, col = min(max(start, 0), 2), min(max(start, 0), 2)
    want = x.copy()
    want[row : row + 2, col : col + 3] = u
    np.testing.assert_array_equal(got, want)
    assert not x.any(), "the operand must not be modified in place"


def naive_pad(x: np.ndarray, value, dims: list[PadDim]) -> np.ndarray:
    out_shape = [
        max(d.low + d.high + n + max(n - 1, 0) * d.interior, 0)
        for d, n in zip(dims, x.shape, strict=True)
    ]
    out = np.full(out_shape, value, dtype=x.dtype)
    for index in np.ndindex(*x.shape):
        target = tuple(d.low + i * (d.interior + 1) for d, i in zip(dims, index, strict=True))
        if all(0 <= t < s for t, s in zip(target, out_shape, strict=True)):
            out[target] = x[index]
    return out


@pytest.mark.parametrize(
    "dims",
    [
        [PadDim(1, -1, 1), PadDim(-1, 2, 0)],
        [PadDim(0, 0, 2), PadDim(2, 1, 1)],
        [PadDim(-3, -2, 1), PadDim(0, -4, 0)],
        [PadDim(-8, 1, 0), PadDim(1, 1, 3)],
    ],
)
def test_pad_edges_negative_and_interior(dims: list[PadDim]) -> None:
    x = np.arange(1, 13, dtype=np.float32).reshape(3, 4)
    want = naive_pad(x, np.float32(-1), dims)
    (got,) = run(
        Opcode.PAD,
        [x, np.asarray(np.float32(-1))],
        Shape.array(T.F32, want.shape),
        padding=PaddingConfig(tuple(dims)),
    )
    np.testing.assert_array_equal(got, want)


# --- gather ------------------------------------------------------------------------------


def naive_gather(
    operand,
    indices,
    offset_dims,
    collapsed,
    start_index_map,
    operand_batching,
    indices_batching,
    ivd,
    slice_sizes,
    out_shape,
) -> np.ndarray:
    """Per output element, straight from XLA's gather semantics."""
    out = np.empty(out_shape, dtype=operand.dtype)
    batch_dims = [d for d in range(len(out_shape)) if d not in offset_dims]
    window = [d for d in range(operand.ndim) if d not in collapsed and d not in operand_batching]
    index_dims = [d for d in range(indices.ndim + (ivd == indices.ndim)) if d != ivd]
    for out_index in np.ndindex(*out_shape):
        g = [out_index[d] for d in batch_dims]
        full = {dim: v for dim, v in zip(index_dims, g, strict=True)}
        start = [0] * operand.ndim
        for k, od in enumerate(start_index_map):
            at = dict(full)
            if ivd < indices.ndim:
                at[ivd] = k
            vec = indices[tuple(at[d] for d in range(indices.ndim))]
            start[od] = min(max(int(vec), 0), operand.shape[od] - slice_sizes[od])
        for od, idim in zip(operand_batching, indices_batching, strict=True):
            start[od] = full[idim]
        src = list(start)
        for k, od in enumerate(window):
            src[od] += out_index[offset_dims[k]]
        out[out_index] = operand[tuple(src)]
    return out


GATHER_CASES = [
    # Rows of a matrix (jnp x[idx]), with an out-of-bounds index that clamps.
    dict(
        operand=(5, 3),
        indices=np.array([[4], [0], [9], [-2]]),
        offset_dims=(1,),
        collapsed=(0,),
        start_index_map=(0,),
        ob=(),
        ib=(),
        ivd=1,
        slice_sizes=(1, 3),
        out=(4, 3),
    ),
    # Scalar indices (index_vector_dim == rank), gathering columns of width 2.
    dict(
        operand=(4, 6),
        indices=np.array([5, 1, 3]),
        offset_dims=(0, 2),
        collapsed=(),
        start_index_map=(1,),
        ob=(),
        ib=(),
        ivd=1,
        slice_sizes=(4, 2),
        out=(4, 3, 2),
    ),
    # take_along_axis: batching dims pair operand dim 0 with indices dim 0.
    dict(
        operand=(3, 5),
        indices=np.array([[[4], [0]], [[2], [2]], [[1], [3]]]),
        offset_dims=(),
        collapsed=(1,),
        start_index_map=(1,),
        ob=(0,),
        ib=(0,),
        ivd=2,
        slice_sizes=(1, 1),
        out=(3, 2),
    ),
    # Two-component index vectors in dim 0 of the indices, 2x2 windows kept whole.
    dict(
        operand=(4, 5, 2),
        indices=np.array([[0, 3, 2], [1, 4, -1]]),
        offset_dims=(0, 1),
        collapsed=(2,),
        start_index_map=(0, 1),
        ob=(),
        ib=(),
        ivd=0,
        slice_sizes=(2, 2, 1),
        out=(2, 2, 3),
    ),
    # Batching dim at operand dim 1 / indices dim 1, index vector in the middle.
    dict(
        operand=(6, 3, 2),
        indices=np.array([[[1, 5, 0]], [[2, 2, 4]]]).transpose(0, 2, 1),
        offset_dims=(2,),
        collapsed=(0,),
        start_index_map=(0,),
        ob=(1,),
        ib=(1,),
        ivd=2,
        slice_sizes=(1, 1, 2),
        out=(2, 3, 2),
    ),
]


@pytest.mark.parametrize("case", GATHER_CASES, ids=range(len(GATHER_CASES)))
def test_gather_matches_per_element_definition(case: dict) -> None:
    operand = np.arange(np.prod(case["operand"]), dtype=np.float32).reshape(case["operand"])
    indices = case["indices"].astype(np.int32)
    attrs = dict(
        offset_dims=case["offset_dims"],
        collapsed_slice_dims=case["collapsed"],
        start_index_map=case["start_index_map"],
        operand_batching_dims=case["ob"],
        start_indices_batching_dims=case["ib"],
        index_vector_dim=case["ivd"],
        slice_sizes=case["slice_sizes"],
    )
    (got,) = run(Opcode.GATHER, [operand, indices], Shape.array(T.F32, case["out"]), **attrs)
    want = naive_gather(
        operand,
        indices,
        case["offset_dims"],
        case["collapsed"],
        case["start_index_map"],
        case["ob"],
        case["ib"],
        case["ivd"],
        case["slice_sizes"],
        case["out"],
    )
    np.testing.assert_array_equal(got, want)


def test_gather_docs_example_rows() -> None:
    operand = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]], dtype=np.int32)
    indices = np.array([2, 0], dtype=np.int32)
    (got,) = run(
        Opcode.GATHER,
        [operand, indices],
        Shape.array(T.S32, [2, 3]),
        offset_dims=(1,),
        collapsed_slice_dims=(0,),
        start_index_map=(0,),
        index_vector_dim=1,
        slice_sizes=(1, 3),
    )
    np.testing.assert_array_equal(got, [[6, 7, 8], [0, 1, 2]])


# --- scatter -----------------------------------------------------------------------------


def naive_scatter(
    operands,
    indices,
    updates,
    update_window_dims,
    inserted,
    sd2od,
    input_batching,
    indices_batching,
    ivd,
    fn,
) -> list[np.ndarray]:
    """Per update element in XLA's order; a window partly out of bounds is skipped."""
    outs = [o.copy() for o in operands]
    upd_shape = updates[0].shape
    scatter_dims = [d for d in range(len(upd_shape)) if d not in update_window_dims]
    window = [d for d in range(operands[0].ndim) if d not in inserted and d not in input_batching]
    index_dims = [d for d in range(indices.ndim + (ivd == indices.ndim)) if d != ivd]
    sizes = [1] * operands[0].ndim
    for od, ud in zip(window, update_window_dims, strict=True):
        sizes[od] = upd_shape[ud]
    for s in np.ndindex(*[upd_shape[d] for d in scatter_dims]):
        full = dict(zip(index_dims, s, strict=True))
        start = [0] * operands[0].ndim
        for k, od in enumerate(sd2od):
            at = dict(full)
            if ivd < indices.ndim:
                at[ivd] = k
            start[od] = int(indices[tuple(at[d] for d in range(indices.ndim))])
        for od, idim in zip(input_batching, indices_batching, strict=True):
            start[od] = full[idim]
        if any(
            st < 0 or st + sz > n for st, sz, n in zip(start, sizes, operands[0].shape, strict=True)
        ):
            continue
        for w in np.ndindex(*[upd_shape[d] for d in update_window_dims]):
            u_index = [0] * len(upd_shape)
            for d, v in zip(scatter_dims, s, strict=True):
                u_index[d] = v
            for d, v in zip(update_window_dims, w, strict=True):
                u_index[d] = v
            target = list(start)
            for od, v in zip(window, w, strict=True):
                target[od] += v
            new = fn(*(o[tuple(target)] for o in outs), *(u[tuple(u_index)] for u in updates))
            for o, v in zip(outs, new, strict=True):
                o[tuple(target)] = v
    return outs


def scatter_attrs(uwd, inserted, sd2od, ib=(), sib=(), ivd=1) -> dict:
    return dict(
        update_window_dims=uwd,
        inserted_window_dims=inserted,
        scatter_dims_to_operand_dims=sd2od,
        input_batching_dims=ib,
        scatter_indices_batching_dims=sib,
        index_vector_dim=ivd,
    )


def test_scatter_add_with_duplicates_and_out_of_bounds() -> None:
    x = np.zeros(6, dtype=np.float32)
    idx = np.array([[1], [4], [1], [6], [-1], [1]], dtype=np.int32)
    upd = np.array([1, 2, 3, 4, 5, 6], dtype=np.float32)
    (got,) = run(
        Opcode.SCATTER,
        [x, idx, upd],
        Shape.array(T.F32, [6]),
        to_apply=binary(Opcode.ADD, T.F32),
        **scatter_attrs((), (0,), (0,)),
    )
    np.testing.assert_array_equal(got, np.float32([0, 10, 0, 0, 2, 0]))


def test_scatter_set_last_duplicate_wins() -> None:
    x = np.zeros((4, 2), dtype=np.int32)
    idx = np.array([2, 0, 2], dtype=np.int32)
    upd = np.array([[1, 1], [2, 2], [3, 3]], dtype=np.int32)
    (got,) = run(
        Opcode.SCATTER,
        [x, idx, upd],
        Shape.array(T.S32, [4, 2]),
        to_apply=keep_update(T.S32),
        **scatter_attrs((1,), (0,), (0,), ivd=1),
    )
    np.testing.assert_array_equal(got, [[2, 2], [0, 0], [3, 3], [0, 0]])


def test_scatter_partially_out_of_bounds_window_is_skipped_whole() -> None:
    x = np.zeros((3, 5), dtype=np.float32)
    idx = np.array([[0, 3], [1, 4], [1, 0]], dtype=np.int32)  # [1,4] + width 2 > 5
    upd = np.ones((3, 2), dtype=np.float32)
    (got,) = run(
        Opcode.SCATTER,
        [x, idx, upd],
        Shape.array(T.F32, [3, 5]),
        to_apply=binary(Opcode.ADD, T.F32),
        **scatter_attrs((1,), (0,), (0, 1)),
    )
    want = np.zeros((3, 5), np.float32)
    want[0, 3:5] = 1
    want[1, 0:2] = 1
    np.testing.assert_array_equal(got, want)


SCATTER_CASES = [
    # 2x2 windows, index vectors along dim 0 of the indices.
    # Windows 0 and 1 overlap at different window offsets, so application order shows.
    dict(
        operand=(4, 5),
        indices=np.array([[0, 1, 0, 3], [1, 1, 1, 0]]),
        upd=(4, 2, 2),
        attrs=scatter_attrs((1, 2), (), (0, 1), ivd=0),
    ),
    # Batching: operand dim 0 pairs with indices dim 0 (a batched .at[].add).
    dict(
        operand=(3, 6),
        indices=np.array([[5, 5, 0], [1, 2, 1], [4, 4, 4]]),
        upd=(3, 3),
        attrs=scatter_attrs((), (1,), (1,), ib=(0,), sib=(0,), ivd=2),
    ),
    # Scalar indices into a 3-d operand, window over the last two dims.
    dict(
        operand=(5, 2, 3),
        indices=np.array([4, 0, 4, 2]),
        upd=(2, 4, 3),
        attrs=scatter_attrs((0, 2), (0,), (0,), ivd=1),
    ),
]


@pytest.mark.parametrize("case", SCATTER_CASES, ids=range(len(SCATTER_CASES)))
def test_scatter_generic_combiner_matches_definition(case: dict) -> None:
    rng = np.random.default_rng(5)
    operand = rng.integers(-5, 5, size=case["operand"]).astype(np.int32)
    upd = rng.integers(-5, 5, size=case["upd"]).astype(np.int32)
    indices = case["indices"].astype(np.int32)
    a = case["attrs"]
    (got,) = run(
        Opcode.SCATTER,
        [operand, indices, upd],
        Shape.array(T.S32, operand.shape),
        to_apply=double_then_add(T.S32),
        **a,
    )
    (want,) = naive_scatter(
        [operand],
        indices,
        [upd],
        a["update_window_dims"],
        a["inserted_window_dims"],
        a["scatter_dims_to_operand_dims"],
        a["input_batching_dims"],
        a["scatter_indices_batching_dims"],
        a["index_vector_dim"],
        lambda cur, u: [np.int32(cur * 2 + u)],
    )
    np.testing.assert_array_equal(got, want)


def test_variadic_scatter() -> None:
    x = np.zeros(4, dtype=np.float32)
    y = np.ones(4, dtype=np.int32)
    idx = np.array([[3], [0], [3]], dtype=np.int32)
    ux = np.array([1, 2, 3], dtype=np.float32)
    uy = np.array([5, 6, 7], dtype=np.int32)
    comp = HloComputation("pair")
    p = [
        comp.add(Opcode.PARAMETER, shape=Shape.scalar(t), parameter_number=i)
        for i, t in enumerate([T.F32, T.S32, T.F32, T.S32])
    ]
    add = comp.add(Opcode.ADD, [p[0], p[2]], shape=Shape.scalar(T.F32))
    mul = comp.add(Opcode.MULTIPLY, [p[1], p[3]], shape=Shape.scalar(T.S32))
    comp.set_root(
        comp.add(
            Opcode.TUPLE,
            [add, mul],
            shape=Shape.tuple_of([Shape.scalar(T.F32), Shape.scalar(T.S32)]),
        )
    )
    shape = Shape.tuple_of([Shape.array(T.F32, [4]), Shape.array(T.S32, [4])])
    gx, gy = run(
        Opcode.SCATTER, [x, y, idx, ux, uy], shape, to_apply=comp, **scatter_attrs((), (0,), (0,))
    )
    np.testing.assert_array_equal(gx, np.float32([2, 0, 0, 4]))
    np.testing.assert_array_equal(gy, np.int32([6, 1, 1, 35]))
