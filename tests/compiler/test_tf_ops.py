"""Op-by-op tests of the TensorFlow importer on hand-built graphs, against numpy.

Each test builds a small GraphDef (tests/compiler/tf_graph_builder.py), imports it,
evaluates it with the reference evaluator and compares with a numpy formula of the TF op's
documented semantics (broadcasting, attributes, data formats, paddings, masks).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hlo.errors import ImportGraphError
from tests.compiler.tf_graph_builder import GraphBuilder

RNG = np.random.default_rng(7)
F32 = np.float32


def rand(*shape: int, low: float = -2.0, high: float = 2.0) -> np.ndarray:
    return RNG.uniform(low, high, shape).astype(F32)


def close(got: np.ndarray, want: np.ndarray, tol: float = 1e-5) -> None:
    want = np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def run1(g: GraphBuilder, node: str) -> np.ndarray:
    return g.run(node)[0]


# --- element-wise -----------------------------------------------------------------------------

BINARY = {
    "AddV2": np.add, "Sub": np.subtract, "Mul": np.multiply, "RealDiv": np.divide,
    "Maximum": np.maximum, "Minimum": np.minimum,
    "SquaredDifference": lambda a, b: (a - b) ** 2,
    "FloorDiv": lambda a, b: np.floor(a / b), "FloorMod": np.mod,
}


@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_float_with_broadcasting(op: str) -> None:
    g = GraphBuilder()
    a, b = rand(3, 1, 4), rand(2, 1, low=0.5, high=2.0)
    out = g.op(op, g.feed(a), g.feed(b), T=F32)
    close(run1(g, out), BINARY[op](a, b).astype(F32))


@pytest.mark.parametrize("op, fn", [
    ("FloorDiv", np.floor_divide), ("FloorMod", np.mod),
    ("TruncateDiv", lambda a, b: np.trunc(a / b).astype(np.int32)),
    ("Div", lambda a, b: np.trunc(a / b).astype(np.int32)),
    ("TruncateMod", np.fmod), ("Pow", np.power),
])
def test_binary_integer_semantics(op: str, fn: object) -> None:
    g = GraphBuilder()
    a = np.int32([7, -7, 7, -7, 0, 5])
    b = np.int32([2, 2, -2, -2, 3, 1]) if op != "Pow" else np.int32([2, 1, 0, 3, 4, 2])
    out = g.op(op, g.feed(a), g.feed(b), T=np.int32)
    np.testing.assert_array_equal(run1(g, out), fn(a, b))  # type: ignore[operator]


@pytest.mark.parametrize("op, fn", [
    ("Less", np.less), ("LessEqual", np.less_equal), ("Greater", np.greater),
    ("GreaterEqual", np.greater_equal), ("Equal", np.equal), ("NotEqual", np.not_equal),
])
def test_comparisons(op: str, fn: object) -> None:
    g = GraphBuilder()
    a, b = np.int32([[1, 2, 3]]), np.int32([[2], [1]])
    out = g.op(op, g.feed(a), g.feed(b), T=np.int32)
    np.testing.assert_array_equal(run1(g, out), fn(a, b))  # type: ignore[operator]


def test_logical_ops_and_add_n_and_bias_add_nchw() -> None:
    g = GraphBuilder()
    p, q = np.bool_([True, False, True]), np.bool_([True, True, False])
    fp, fq = g.feed(p), g.feed(q)
    land, lor = g.op("LogicalAnd", fp, fq), g.op("LogicalOr", fp, fq)
    lnot = g.op("LogicalNot", fp)
    xs = [rand(2, 3) for _ in range(3)]
    total = g.op("AddN", *[g.feed(x) for x in xs], T=F32, N=3)
    x, bias = rand(2, 3, 2, 2), rand(3)
    nchw = g.op("BiasAdd", g.feed(x), g.feed(bias), T=F32, data_format="NCHW")
    outs = g.run(land, lor, lnot, total, nchw)
    np.testing.assert_array_equal(outs[0], p & q)
    np.testing.assert_array_equal(outs[1], p | q)
    np.testing.assert_array_equal(outs[2], ~p)
    close(outs[3], xs[0] + xs[1] + xs[2])
    close(outs[4], x + bias.reshape(1, 3, 1, 1))


def _selu(x: np.ndarray) -> np.ndarray:
    scale, alpha = 1.0507009873554804934193349852946, 1.6732632423543772848170429916717
    return np.where(x > 0, scale * x, scale * alpha * np.expm1(x))


UNARY = {
    "Neg": np.negative, "Abs": np.abs, "Sign": np.sign, "Exp": np.exp, "Expm1": np.expm1,
    "Tanh": np.tanh, "Sigmoid": lambda x: 1 / (1 + np.exp(-x)), "Floor": np.floor,
    "Ceil": np.ceil, "Round": np.rint, "Square": np.square, "Relu": lambda x: np.maximum(x, 0),
    "Relu6": lambda x: np.clip(x, 0, 6), "Elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "Selu": _selu, "Softplus": lambda x: np.log1p(np.exp(x)),
    "Softsign": lambda x: x / (1 + np.abs(x)), "Sin": np.sin, "Cos": np.cos,
    "Erf": lambda x: np.vectorize(math.erf)(x),
    "Reciprocal": lambda x: 1 / x, "IsNan": np.isnan, "IsFinite": np.isfinite,
}
POSITIVE = {"Log": np.log, "Log1p": np.log1p, "Sqrt": np.sqrt, "Rsqrt": lambda x: 1 / np.sqrt(x)}


@pytest.mark.parametrize("op", sorted(UNARY) + sorted(POSITIVE))
def test_unary(op: str) -> None:
    g = GraphBuilder()
    x = rand(2, 5, low=0.1, high=3.0) if op in POSITIVE else rand(2, 5, low=-4, high=4)
    if op == "Round":
        x = F32([[0.5, 1.5, 2.5, -0.5, -1.5], [0.4, 0.6, -2.5, 3.5, 7.0]])
    out = g.op(op, g.feed(x), T=F32)
    want = (UNARY.get(op) or POSITIVE[op])(x)
    close(run1(g, out), want.astype(F32) if want.dtype != np.bool_ else want)


def test_leaky_relu_clip_and_like() -> None:
    g = GraphBuilder()
    x = rand(3, 4)
    fx = g.feed(x)
    leaky = g.op("LeakyRelu", fx, T=F32, alpha=0.1)
    clip = g.op("ClipByValue", fx, g.const(F32(-0.5)), g.const(F32([0.1, 0.2, 0.3, 0.4])), T=F32)
    zeros, ones = g.op("ZerosLike", fx, T=F32), g.op("OnesLike", fx, T=F32)
    outs = g.run(leaky, clip, zeros, ones)
    close(outs[0], np.where(x > 0, x, 0.1 * x).astype(F32))
    close(outs[1], np.clip(x, -0.5, F32([0.1, 0.2, 0.3, 0.4])))
    close(outs[2], np.zeros_like(x))
    close(outs[3], np.ones_like(x))


@pytest.mark.parametrize("src, dst", [
    (F32, np.int32), (F32, np.bool_), (np.bool_, F32), (np.int32, F32), (np.int64, np.int32),
    (F32, np.float16),
])
def test_cast(src: type, dst: type) -> None:
    g = GraphBuilder()
    x = np.asarray([[-2.7, 0.0, 1.5], [3.2, -0.4, 9.0]]).astype(src)
    out = g.op("Cast", g.feed(x), SrcT=src, DstT=dst)
    want = (x != 0) if dst is np.bool_ else x.astype(dst)
    np.testing.assert_array_equal(run1(g, out), want)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    s = x - x.max(-1, keepdims=True)
    return s - np.log(np.exp(s).sum(-1, keepdims=True))


def test_softmax_family_and_cross_entropy() -> None:
    g = GraphBuilder()
    x = rand(2, 3, 5, low=-5, high=5)
    fx = g.feed(x)
    sm, lsm = g.op("Softmax", fx, T=F32), g.op("LogSoftmax", fx, T=F32)
    logits, labels = rand(4, 3), np.int32([0, 2, 1, 2])
    dense = np.eye(3, dtype=F32)[labels]
    fl = g.feed(logits)
    xent = g.op("SoftmaxCrossEntropyWithLogits", fl, g.feed(dense), T=F32)
    sparse = g.op("SparseSoftmaxCrossEntropyWithLogits", fl, g.feed(labels), T=F32,
                  Tlabels=np.int32)
    outs = g.run(sm, lsm, xent, f"{xent}:1", sparse, f"{sparse}:1")
    close(outs[0], np.exp(_log_softmax(x)).astype(F32))
    close(outs[1], _log_softmax(x).astype(F32))
    loss = -(dense * _log_softmax(logits)).sum(-1)
    back = np.exp(_log_softmax(logits)) - dense
    for got_loss, got_back in ((outs[2], outs[3]), (outs[4], outs[5])):
        close(got_loss, loss.astype(F32))
        close(got_back, back.astype(F32))


# --- reductions -------------------------------------------------------------------------------

REDUCE = {"Sum": np.sum, "Mean": np.mean, "Max": np.max, "Min": np.min, "Prod": np.prod}


@pytest.mark.parametrize("op", sorted(REDUCE))
@pytest.mark.parametrize("axes, keep", [([0], False), ([-1, 0], True), ([], False)])
def test_reductions(op: str, axes: list[int], keep: bool) -> None:
    g = GraphBuilder()
    x = rand(2, 3, 4, low=0.5, high=1.5)
    out = g.op(op, g.feed(x), g.const(np.int32(axes)), T=F32, Tidx=np.int32, keep_dims=keep)
    want = REDUCE[op](x, axis=tuple(axes), keepdims=keep)
    close(run1(g, out), np.asarray(want, dtype=F32))


def test_all_any_argmax_argmin_and_l2loss() -> None:
    g = GraphBuilder()
    b = np.bool_([[True, False, True], [True, True, True]])
    fb = g.feed(b)
    axis = g.const(np.int32(1))
    all_, any_ = g.op("All", fb, axis, Tidx=np.int32), g.op("Any", fb, axis, Tidx=np.int32)
    x = F32([[1, 5, 5, 2], [7, 0, 7, -1], [3, 3, 3, 3]])
    fx = g.feed(x)
    amax = g.op("ArgMax", fx, axis, T=F32, Tidx=np.int32, output_type=np.int32)
    amin = g.op("ArgMin", fx, g.const(np.int64(0)), T=F32, Tidx=np.int64)
    l2 = g.op("L2Loss", fx, T=F32)
    outs = g.run(all_, any_, amax, amin, l2)
    np.testing.assert_array_equal(outs[0], b.all(1))
    np.testing.assert_array_equal(outs[1], b.any(1))
    np.testing.assert_array_equal(outs[2], np.argmax(x, 1).astype(np.int32))  # first of ties
    np.testing.assert_array_equal(outs[3], np.argmin(x, 0).astype(np.int64))
    close(outs[4], F32((x**2).sum() / 2))


@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_cumsum_cumprod(exclusive: bool, reverse: bool) -> None:
    g = GraphBuilder()
    x = rand(2, 4, low=0.5, high=1.5)
    fx, axis = g.feed(x), g.const(np.int32(1))
    outs = g.run(*(g.op(op, fx, axis, T=F32, Tidx=np.int32, exclusive=exclusive,
                        reverse=reverse) for op in ("Cumsum", "Cumprod")))
    for got, fn, init in ((outs[0], np.cumsum, 0), (outs[1], np.cumprod, 1)):
        y = x[:, ::-1] if reverse else x
        want = fn(y, axis=1)
        if exclusive:
            want = np.concatenate([np.full((2, 1), init, F32), want[:, :-1]], axis=1)
        close(got, (want[:, ::-1] if reverse else want).astype(F32))


# --- shapes and movement ----------------------------------------------------------------------


def test_reshape_from_computed_shape_and_shape_ops() -> None:
    g = GraphBuilder()
    x, y = rand(2, 3, 4), rand(4, 6)
    fx = g.feed(x)
    shape = g.op("Shape", g.feed(y), T=F32, out_type=np.int32)
    # Reshape x to Shape(y) computed in the graph: constant folding must see through it.
    doubled = g.op("Mul", shape, g.const(np.int32([1, 1])), T=np.int32)
    r = g.op("Reshape", fx, doubled, T=F32, Tshape=np.int32)
    r2 = g.op("Reshape", fx, g.const(np.int64([-1, 4])), T=F32, Tshape=np.int64)
    size, rank = g.op("Size", fx, T=F32, out_type=np.int64), g.op("Rank", fx, T=F32)
    outs = g.run(r, r2, size, rank)
    close(outs[0], x.reshape(4, 6))
    close(outs[1], x.reshape(-1, 4))
    assert outs[2] == 24 and outs[2].dtype == np.int64 and outs[3] == 3


def test_squeeze_expand_transpose_concat_pack_unpack() -> None:
    g = GraphBuilder()
    x = rand(1, 3, 1, 2)
    fx = g.feed(x)
    sq = g.op("Squeeze", fx, T=F32)
    sq2 = g.op("Squeeze", fx, T=F32, squeeze_dims=[-2])
    ex = g.op("ExpandDims", fx, g.const(np.int32(-1)), T=F32, Tdim=np.int32)
    tr = g.op("Transpose", fx, g.const(np.int32([3, 1, 0, 2])), T=F32, Tperm=np.int32)
    a, b = rand(2, 3), rand(2, 5)
    cat = g.op("ConcatV2", g.feed(a), g.feed(b), g.const(np.int32(-1)), T=F32, N=2, Tidx=np.int32)
    p, q = rand(2, 3), rand(2, 3)
    pack = g.op("Pack", g.feed(p), g.feed(q), T=F32, N=2, axis=1)
    unpack = g.op("Unpack", pack, T=F32, num=2, axis=1)
    outs = g.run(sq, sq2, ex, tr, cat, pack, f"{unpack}:1")
    close(outs[0], x.squeeze())
    close(outs[1], x.squeeze(2))
    close(outs[2], x[..., None])
    close(outs[3], x.transpose(3, 1, 0, 2))
    close(outs[4], np.concatenate([a, b], -1))
    close(outs[5], np.stack([p, q], 1))
    close(outs[6], q)


def test_split_splitv_slice_tile_fill_range_broadcast_reverse() -> None:
    g = GraphBuilder()
    x = rand(4, 6)
    fx = g.feed(x)
    split = g.op("Split", g.const(np.int32(1)), fx, T=F32, num_split=3)
    splitv = g.op("SplitV", fx, g.const(np.int32([1, -1, 2])), g.const(np.int32(0)), T=F32,
                  num_split=3, Tlen=np.int32)
    sl = g.op("Slice", fx, g.const(np.int32([1, 2])), g.const(np.int32([-1, 3])), T=F32,
              Index=np.int32)
    tile = g.op("Tile", fx, g.const(np.int32([2, 1])), T=F32, Tmultiples=np.int32)
    fill = g.op("Fill", g.const(np.int32([2, 3])), g.const(F32(1.5)), T=F32)
    rng = g.op("Range", g.const(np.int32(3)), g.const(np.int32(-4)), g.const(np.int32(-2)),
               Tidx=np.int32)
    frange = g.op("Range", g.const(F32(0)), g.const(F32(1)), g.const(F32(0.25)), Tidx=F32)
    bc = g.op("BroadcastTo", g.feed(F32([[1], [2]])), g.const(np.int32([3, 2, 4])), T=F32,
              Tidx=np.int32)
    rev = g.op("ReverseV2", fx, g.const(np.int32([-1])), T=F32, Tidx=np.int32)
    outs = g.run(f"{split}:2", f"{splitv}:1", sl, tile, fill, rng, frange, bc, rev)
    close(outs[0], x[:, 4:])
    close(outs[1], x[1:2])
    close(outs[2], x[1:, 2:5])
    close(outs[3], np.tile(x, (2, 1)))
    close(outs[4], np.full((2, 3), 1.5, F32))
    np.testing.assert_array_equal(outs[5], np.int32([3, 1, -1, -3]))
    close(outs[6], F32([0, 0.25, 0.5, 0.75]))
    close(outs[7], np.broadcast_to(F32([[1], [2]]), (3, 2, 4)))
    close(outs[8], x[:, ::-1])


STRIDED = [
    # (begin, end, strides, masks, numpy index)
    ([1, 0], [3, 5], [1, 2], {}, (slice(1, 3), slice(0, 5, 2))),
    ([-1, 0], [0, 0], [-1, 1], {"end_mask": 2}, (slice(-1, 0, -1), slice(None))),
    ([0, 2], [0, 0], [1, 1], {"begin_mask": 1, "end_mask": 3}, (slice(None), slice(2, None))),
    ([2], [3], [1], {"shrink_axis_mask": 1}, (2,)),
    ([0, 1], [0, 2], [1, 1], {"ellipsis_mask": 1, "shrink_axis_mask": 2}, (..., 1)),
    ([0, 0], [2, 0], [1, 1], {"new_axis_mask": 2, "end_mask": 0}, (slice(0, 2), None)),
    ([0, 0, 3], [0, 0, -6], [1, 1, -2], {"ellipsis_mask": 1, "new_axis_mask": 2},
     (..., None, slice(3, -6, -2))),
    ([5, -100], [-100, 100], [-2, 3], {}, (slice(5, -100, -2), slice(-100, 100, 3))),
]


@pytest.mark.parametrize("begin, end, strides, masks, index", STRIDED)
def test_strided_slice(begin: list[int], end: list[int], strides: list[int],
                       masks: dict[str, int], index: tuple) -> None:
    g = GraphBuilder()
    x = rand(4, 6)
    out = g.op("StridedSlice", g.feed(x), g.const(np.int32(begin)), g.const(np.int32(end)),
               g.const(np.int32(strides)), T=F32, Index=np.int32, **masks)
    close(run1(g, out), x[index])


@pytest.mark.parametrize("mode", ["CONSTANT", "REFLECT", "SYMMETRIC"])
def test_pads(mode: str) -> None:
    g = GraphBuilder()
    x = rand(3, 4)
    pads = np.int32([[1, 2], [2, 0]])
    if mode == "CONSTANT":
        out = g.op("PadV2", g.feed(x), g.const(pads), g.const(F32(9)), T=F32, Tpaddings=np.int32)
        want = np.pad(x, pads, constant_values=9)
    else:
        out = g.op("MirrorPad", g.feed(x), g.const(pads), T=F32, Tpaddings=np.int32, mode=mode)
        want = np.pad(x, pads, mode=mode.lower())
    close(run1(g, out), want)


def test_select_one_hot_where_bitcast_topk() -> None:
    g = GraphBuilder()
    c, a, b = np.bool_([True, False]), rand(2, 3), rand(2, 3)
    rows = g.op("Select", g.feed(c), g.feed(a), g.feed(b), T=F32)
    bc = g.op("SelectV2", g.feed(np.bool_([[True], [False]])), g.feed(F32([1, 2, 3])),
              g.const(F32(0)), T=F32)
    idx = np.int32([[0, 2], [1, -1]])
    hot = g.op("OneHot", g.feed(idx), g.const(np.int32(3)), g.const(F32(5)), g.const(F32(-1)),
               T=F32, TI=np.int32, axis=1)
    where = g.op("Where", g.const(np.bool_([[True, False], [False, True]])), T=np.bool_)
    bits = g.op("Bitcast", g.feed(F32([1.0, -2.0])), T=F32, type=np.int32)
    v = F32([3, 1, 3, 2, 5, 1])
    topk = g.op("TopKV2", g.feed(v), g.const(np.int32(3)), T=F32, sorted=True)
    outs = g.run(rows, bc, hot, where, bits, topk, f"{topk}:1")
    close(outs[0], np.where(c[:, None], a, b))
    close(outs[1], F32([[1, 2, 3], [0, 0, 0]]))
    want = np.where(np.arange(3)[None, :, None] == idx[:, None, :], 5, -1).astype(F32)
    close(outs[2], want)
    np.testing.assert_array_equal(outs[3], np.int64([[0, 0], [1, 1]]))
    np.testing.assert_array_equal(outs[4], F32([1.0, -2.0]).view(np.int32))
    close(outs[5], F32([5, 3, 3]))
    np.testing.assert_array_equal(outs[6], np.int32([4, 0, 2]))


def test_gathers_and_scatter() -> None:
    g = GraphBuilder()
    params = rand(3, 4, 5)
    fp = g.feed(params)
    idx = np.int32([[2, 0], [1, 1]])
    g1 = g.op("GatherV2", fp, g.feed(idx), g.const(np.int32(1)), Tparams=F32, Tindices=np.int32,
              Taxis=np.int32)
    bidx = np.int32([[1, 0, 3], [2, 2, 0], [0, 1, 1]])
    g2 = g.op("GatherV2", fp, g.feed(bidx), g.const(np.int32(1)), Tparams=F32,
              Tindices=np.int32, Taxis=np.int32, batch_dims=1)
    nd_idx = np.int32([[0, 1], [2, 3]])
    g3 = g.op("GatherNd", fp, g.feed(nd_idx), Tparams=F32, Tindices=np.int32)
    s_idx, updates = np.int32([[1], [3], [1]]), rand(3, 2)
    sc = g.op("ScatterNd", g.feed(s_idx), g.feed(updates), g.const(np.int32([5, 2])), T=F32,
              Tindices=np.int32)
    outs = g.run(g1, g2, g3, sc)
    close(outs[0], np.take(params, idx, axis=1))
    close(outs[1], np.stack([np.take(params[i], bidx[i], axis=0) for i in range(3)]))
    close(outs[2], params[nd_idx[:, 0], nd_idx[:, 1]])
    want = np.zeros((5, 2), F32)
    np.add.at(want, s_idx[:, 0], updates)
    close(outs[3], want)


# --- matrix products, convolution, pooling, normalisation -------------------------------------


def test_matmul_flags_and_batch_matmul() -> None:
    g = GraphBuilder()
    a, b = rand(3, 2), rand(4, 3)
    mm = g.op("MatMul", g.feed(a), g.feed(b), T=F32, transpose_a=True, transpose_b=True)
    x, y = rand(2, 1, 3, 4), rand(5, 3, 4)
    bmm = g.op("BatchMatMulV2", g.feed(x), g.feed(y), T=F32, adj_y=True)
    outs = g.run(mm, bmm)
    close(outs[0], a.T @ b.T)
    close(outs[1], x @ np.swapaxes(y, -1, -2), 1e-4)


def conv_reference(x: np.ndarray, w: np.ndarray, strides: tuple[int, int],
                   pads: tuple[tuple[int, int], tuple[int, int]],
                   dilations: tuple[int, int] = (1, 1)) -> np.ndarray:
    """NHWC x HWIO -> NHWC, direct summation."""
    x = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    kh, kw, _, cout = w.shape
    eh, ew = (kh - 1) * dilations[0] + 1, (kw - 1) * dilations[1] + 1
    oh = (x.shape[1] - eh) // strides[0] + 1
    ow = (x.shape[2] - ew) // strides[1] + 1
    out = np.zeros((x.shape[0], oh, ow, cout), np.float64)
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * strides[0]: i * strides[0] + eh: dilations[0],
                      j * strides[1]: j * strides[1] + ew: dilations[1], :]
            out[:, i, j, :] = np.einsum("nhwc,hwco->no", patch, w)
    return out.astype(F32)


def test_conv2d_same_strided_dilated_and_nchw_explicit() -> None:
    g = GraphBuilder()
    x, w = rand(2, 7, 6, 3), rand(3, 2, 3, 4)
    same = g.op("Conv2D", g.feed(x), g.feed(w), T=F32, strides=[1, 2, 2, 1], padding="SAME",
                dilations=[1, 1, 2, 1])
    nchw = g.op("Conv2D", g.feed(x.transpose(0, 3, 1, 2)), g.feed(w), T=F32,
                strides=[1, 1, 1, 2], padding="EXPLICIT", data_format="NCHW",
                explicit_paddings=[0, 0, 0, 0, 1, 0, 2, 1])
    outs = g.run(same, nchw)
    # SAME, stride 2, effective window 3x3: out 4x3, padding (1, 1) rows, (0, 1) cols.
    close(outs[0], conv_reference(x, w, (2, 2), ((1, 1), (0, 1)), (1, 2)), 1e-4)
    want = conv_reference(x, w, (1, 2), ((1, 0), (2, 1)))
    close(outs[1], want.transpose(0, 3, 1, 2), 1e-4)


def test_depthwise_conv_and_backprop_input() -> None:
    g = GraphBuilder()
    x, w = rand(1, 5, 5, 2), rand(3, 3, 2, 2)
    dw = g.op("DepthwiseConv2dNative", g.feed(x), g.feed(w), T=F32, strides=[1, 1, 1, 1],
              padding="VALID")
    want = np.concatenate(
        [conv_reference(x[..., c:c + 1], w[:, :, c:c + 1, :], (1, 1), ((0, 0), (0, 0)))
         for c in range(2)], axis=-1)
    kernel, dy = rand(3, 3, 2, 4), rand(1, 3, 3, 4)
    bp = g.op("Conv2DBackpropInput", g.const(np.int32([1, 5, 5, 2])), g.feed(kernel),
              g.feed(dy), T=F32, strides=[1, 2, 2, 1], padding="SAME")
    outs = g.run(dw, bp)
    close(outs[0], want, 1e-4)
    # The input gradient: d(sum(conv(x) * dy))/dx, by finite structure (conv is linear).
    grad = np.zeros((1, 5, 5, 2), np.float64)
    for idx in np.ndindex(1, 5, 5, 2):
        e = np.zeros((1, 5, 5, 2), F32)
        e[idx] = 1
        grad[idx] = (conv_reference(e, kernel, (2, 2), ((1, 1), (1, 1))) * dy).sum()
    close(outs[1], grad.astype(F32), 1e-4)


def test_pools() -> None:
    g = GraphBuilder()
    x = rand(1, 5, 5, 2)
    fx = g.feed(x)
    mx = g.op("MaxPool", fx, T=F32, ksize=[1, 3, 3, 1], strides=[1, 2, 2, 1], padding="SAME")
    av = g.op("AvgPool", fx, T=F32, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")
    outs = g.run(mx, av)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    want_max = np.stack([np.stack([padded[0, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max((0, 1))
                                   for j in range(3)]) for i in range(3)])[None]
    close(outs[0], want_max)
    want_avg = np.stack([np.stack([x[0, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean((0, 1))
                                   for j in range(3)]) for i in range(3)])[None]
    close(outs[1], want_avg.astype(F32))  # padding cells are not counted


def test_fused_batch_norm_training_and_lrn() -> None:
    g = GraphBuilder()
    x, scale, offset = rand(2, 3, 3, 4), rand(4), rand(4)
    empty = np.zeros(0, F32)
    bn = g.op("FusedBatchNormV3", g.feed(x), g.feed(scale), g.feed(offset), g.const(empty),
              g.const(empty), T=F32, U=F32, epsilon=0.001, is_training=True)
    lrn = g.op("LRN", g.feed(x), T=F32, depth_radius=1, bias=2.0, alpha=0.5, beta=0.75)
    outs = g.run(bn, f"{bn}:1", f"{bn}:2", lrn)
    mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
    close(outs[0], ((x - mean) / np.sqrt(var + 0.001) * scale + offset).astype(F32), 1e-4)
    close(outs[1], mean.astype(F32))
    close(outs[2], (var * 18 / 17).astype(F32), 1e-4)
    sq = np.pad(x**2, ((0, 0), (0, 0), (0, 0), (1, 1)))
    sums = sq[..., :-2] + sq[..., 1:-1] + sq[..., 2:]
    close(outs[3], (x / (2 + 0.5 * sums) ** 0.75).astype(F32), 1e-4)


# --- variables, functions, control flow -------------------------------------------------------


def test_ref_variables_and_control_ordering() -> None:
    g = GraphBuilder()
    v0, x = F32([1, 2]), F32([10, 20])
    var = g.variable(v0, "v", ref=True)
    before = g.op("Identity", var, T=F32)
    assign = g.op("AssignAdd", var, g.feed(x), T=F32, controls=(before,))
    after = g.op("Identity", var, T=F32, controls=(assign,))
    total = g.op("AddV2", before, after, T=F32)
    outs = g.run(total)
    close(outs[0], v0 + (v0 + x))
    close(outs[1], v0 + x)


def test_readonly_variable_and_errors() -> None:
    g = GraphBuilder()
    var = g.variable(F32([3]), "w", readonly=True)
    read = g.op("ReadVariableOp", var, dtype=F32)
    assert len(g.run(read)) == 1  # readonly: no result for the variable
    g.op("AssignVariableOp", var, g.const(F32([1])), dtype=F32, name="set")
    out = g.op("Identity", read, T=F32, controls=("set",))
    with pytest.raises(ImportGraphError, match="readonly"):
        g.run(out)
    h = GraphBuilder()
    other = h.op("VarHandleOp", name="stray", dtype=F32, shape=[])
    with pytest.raises(ImportGraphError, match="not listed in the config"):
        h.run(h.op("ReadVariableOp", other, dtype=F32))


def test_function_call_with_constant_shape_argument_and_resource() -> None:
    g = GraphBuilder()
    f = g.function(
        "reshape_and_bump",
        [("x", F32), ("shape", np.int32), ("v", "resource")],
        [("y", F32, "r:output:0")],
        [
            ("r", "Reshape", ["x", "shape"], {"T": F32, "Tshape": np.int32}),
            ("one", "Const", [], {"dtype": F32, "value": F32(1)}),
            ("bump", "AssignAddVariableOp", ["v", "one:output:0"], {"dtype": F32}),
        ],
    )
    g.graph.library.function[0].control_ret["bump"] = "bump"
    g.graph.library.function[0].signature.control_output.append("bump")
    x = rand(2, 3)
    var = g.variable(F32(5), "counter")
    call = g.op("StatefulPartitionedCall", g.feed(x), g.const(np.int32([3, 2])), var, f=f,
                Tin=[F32, np.int32, F32], Tout=[F32])
    outs = g.run(call)
    close(outs[0], x.reshape(3, 2))
    close(outs[1], F32(6))


def test_v2_if_and_while_with_functions() -> None:
    g = GraphBuilder()
    then = g.function("double", [("a", F32)], [("out", F32, "m:z:0")],
                      [("m", "AddV2", ["a", "a"], {"T": F32})])
    other = g.function("negate", [("a", F32)], [("out", F32, "n:y:0")],
                       [("n", "Neg", ["a"], {"T": F32})])
    x = rand(3)
    p = g.feed(np.bool_(False))
    fi = g.op("StatelessIf", p, g.feed(x), then_branch=then, else_branch=other, Tcond=np.bool_,
              Tin=[F32], Tout=[F32])
    cond = g.function("below", [("i", np.int32), ("s", F32), ("n", np.int32)],
                      [("ok", np.bool_, "lt:z:0")],
                      [("lt", "Less", ["i", "n"], {"T": np.int32})])
    body = g.function(
        "step", [("i", np.int32), ("s", F32), ("n", np.int32)],
        [("i2", np.int32, "inc:z:0"), ("s2", F32, "acc:z:0"), ("n2", np.int32, "n")],
        [
            ("one", "Const", [], {"dtype": np.int32, "value": np.int32(1)}),
            ("inc", "AddV2", ["i", "one:output:0"], {"T": np.int32}),
            ("fi", "Cast", ["i"], {"SrcT": np.int32, "DstT": F32}),
            ("acc", "AddV2", ["s", "fi:y:0"], {"T": F32}),
        ],
    )
    loop = g.op("StatelessWhile", g.const(np.int32(0)), g.const(F32(0)), g.const(np.int32(5)),
                cond=cond, body=body, T=[np.int32, F32, np.int32])
    outs = g.run(fi, f"{loop}:1", f"{loop}:2")
    close(outs[0], -x)
    close(outs[1], F32(0 + 1 + 2 + 3 + 4))
    np.testing.assert_array_equal(outs[2], np.int32(5))


def test_v1_cond_with_two_outputs_and_outer_constant() -> None:
    g = GraphBuilder()
    p, x = g.feed(np.bool_(True), "p"), g.feed(F32([1, 2]), "x")
    shape = g.const(np.int32([2, 1]), name="shape")  # captured: must stay a constant
    sw = g.op("Switch", x, p, T=F32, name="sw")
    t_out = g.op("Reshape", f"{sw}:1", shape, T=F32, Tshape=np.int32, name="t")
    f_out = g.op("Reshape", g.op("Neg", sw, T=F32), shape, T=F32, Tshape=np.int32, name="f")
    merge = g.op("Merge", f_out, t_out, T=F32, N=2, name="m")
    outs = g.run(merge, f"{merge}:1")
    close(outs[0], F32([[1], [2]]))
    np.testing.assert_array_equal(outs[1], np.int32(1))


def test_v1_while_with_invariant_and_nested_cond() -> None:
    """acc = sum(i if i is even else -i for i in range(n)), written as tf.while_loop emits
    it in v1 control flow, with a tf.cond inside the body."""
    g = GraphBuilder()
    n = g.feed(np.int32(5), "n")
    i0, a0 = g.const(np.int32(0), name="i0"), g.const(F32(0), name="a0")
    frame = {"frame_name": "L", "parallel_iterations": 10}
    ei = g.op("Enter", i0, T=np.int32, is_constant=False, name="ei", **frame)
    ea = g.op("Enter", a0, T=F32, is_constant=False, name="ea", **frame)
    en = g.op("Enter", n, T=np.int32, is_constant=True, name="en", **frame)
    mi = g.op("Merge", ei, "ni", T=np.int32, N=2, name="mi")
    ma = g.op("Merge", ea, "na", T=F32, N=2, name="ma")
    lc = g.op("LoopCond", g.op("Less", mi, en, T=np.int32), name="lc")
    si = g.op("Switch", mi, lc, T=np.int32, name="si")
    sa = g.op("Switch", ma, lc, T=F32, name="sa")
    ii = g.op("Identity", f"{si}:1", T=np.int32, name="ii")
    ia = g.op("Identity", f"{sa}:1", T=F32, name="ia")
    two = g.op("Const", dtype=np.int32, value=np.asarray(np.int32(2)), controls=(ii,))
    zero = g.op("Const", dtype=np.int32, value=np.asarray(np.int32(0)), controls=(ii,))
    even = g.op("Equal", g.op("FloorMod", ii, two, T=np.int32), zero, T=np.int32)
    cs = g.op("Switch", ii, even, T=np.int32, name="cs")
    chosen = g.op("Merge", g.op("Neg", cs, T=np.int32), g.op("Identity", f"{cs}:1", T=np.int32),
                  T=np.int32, N=2)
    total = g.op("AddV2", ia, g.op("Cast", chosen, SrcT=np.int32, DstT=F32), T=F32)
    one = g.op("Const", dtype=np.int32, value=np.asarray(np.int32(1)), controls=(ii,))
    g.op("NextIteration", g.op("AddV2", ii, one, T=np.int32), T=np.int32, name="ni")
    g.op("NextIteration", total, T=F32, name="na")
    xi = g.op("Exit", si, T=np.int32, name="xi")
    xa = g.op("Exit", sa, T=F32, name="xa")
    outs = g.run(xi, xa)
    np.testing.assert_array_equal(outs[0], np.int32(5))
    close(outs[1], F32(0 - 1 + 2 - 3 + 4))


@pytest.mark.parametrize("equation, shapes", [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("bij,bkj->bki", [(2, 3, 4), (2, 5, 4)]),
    ("ij->ji", [(2, 3)]),
    ("ijk->j", [(2, 3, 4)]),
    ("...ij,...jk->...ik", [(2, 2, 3), (1, 3, 4)]),
    ("ab,cd->dacb", [(2, 3), (4, 5)]),
    ("ij,ij", [(2, 3), (2, 3)]),
    ("abc,cb->a", [(2, 3, 4), (4, 3)]),
])
def test_einsum(equation: str, shapes: list[tuple[int, ...]]) -> None:
    g = GraphBuilder()
    xs = [rand(*s) for s in shapes]
    out = g.op("Einsum", *[g.feed(x) for x in xs], T=F32, N=len(xs), equation=equation)
    close(run1(g, out), np.einsum(equation, *xs).astype(F32), 1e-4)


def test_3d_conv_and_pools_and_v1_variants() -> None:
    g = GraphBuilder()
    x, w = rand(1, 4, 5, 4, 2), rand(2, 3, 2, 2, 3)
    fx = g.feed(x)
    conv = g.op("Conv3D", fx, g.feed(w), T=F32, strides=[1, 1, 1, 1, 1], padding="VALID")
    mx = g.op("MaxPool3D", fx, T=F32, ksize=[1, 2, 2, 2, 1], strides=[1, 2, 1, 2, 1],
              padding="VALID")
    av = g.op("AvgPool3D", fx, T=F32, ksize=[1, 2, 1, 2, 1], strides=[1, 2, 1, 2, 1],
              padding="VALID")
    m = rand(3, 4)
    fm = g.feed(m)
    pad = g.op("Pad", fm, g.const(np.int32([[0, 1], [2, 0]])), T=F32, Tpaddings=np.int32)
    gather = g.op("Gather", fm, g.const(np.int32([2, 0])), Tparams=F32, Tindices=np.int32)
    rev = g.op("Reverse", fm, g.const(np.bool_([True, False])), T=F32)
    default = g.op("PlaceholderWithDefault", g.const(F32([1, 2])), dtype=F32, shape=[2])
    ident = g.op("IdentityN", fm, default, T=[F32, F32])
    bn = g.op("FusedBatchNorm", g.feed(x[..., 0].transpose(0, 3, 1, 2)), g.const(F32([2, 3, 4, 5])),
              g.const(F32([0, 1, 0, 1])), g.const(F32([0.5, 0, 0, 1])),
              g.const(F32([1, 2, 3, 4])), T=F32, epsilon=0.01, is_training=False,
              data_format="NCHW")
    outs = g.run(conv, mx, av, pad, gather, rev, f"{ident}:1", bn)
    windows = np.lib.stride_tricks.sliding_window_view(x, (2, 3, 2), axis=(1, 2, 3))
    close(outs[0], np.einsum("ndhwcxyz,xyzco->ndhwo", windows, w).astype(F32), 1e-4)
    close(outs[1], np.lib.stride_tricks.sliding_window_view(x, (2, 2, 2), axis=(1, 2, 3))
          [:, ::2, :, ::2].max((-3, -2, -1)))
    close(outs[2], x.reshape(1, 2, 2, 5, 2, 2, 2).mean((2, 5)))
    close(outs[3], np.pad(m, ((0, 1), (2, 0))))
    close(outs[4], m[[2, 0]])
    close(outs[5], m[::-1])
    close(outs[6], F32([1, 2]))
    y = x[..., 0].transpose(0, 3, 1, 2)
    shape = (1, 4, 1, 1)
    want = ((y - F32([0.5, 0, 0, 1]).reshape(shape)) / np.sqrt(F32([1, 2, 3, 4]) + 0.01)
            .reshape(shape) * F32([2, 3, 4, 5]).reshape(shape) + F32([0, 1, 0, 1]).reshape(shape))
    close(outs[7], want.astype(F32), 1e-4)
