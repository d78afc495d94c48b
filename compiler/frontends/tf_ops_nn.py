"""TF op lowerings, family "nn": matrix products, convolutions, pooling, batch
normalisation, local response normalisation, reductions, arg-max/min and cumulative sums.

Layouts follow the ops' `data_format` (NHWC by default, NCHW, NDHWC, NCDHW); filters are
always spatial-dims-first (HWIO, DHWIO) as in TensorFlow. Padding is SAME, VALID or
EXPLICIT (`explicit_paddings`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from compiler.frontends.tf_hlo import HloEmitter, Instr, broadcast_dims, highest, lowest
from compiler.frontends.tf_ops import tf_op
from compiler.frontends.tf_scope import NodeCtx
from hlo.attributes import ConvDimLabels, Window, WindowDim
from hlo.dtypes import PrimitiveType
from hlo.errors import ImportGraphError
from hlo.opcodes import Opcode

# --- matrix products --------------------------------------------------------------------------


@tf_op("MatMul", outputs=("product",))
def _matmul(ctx: NodeCtx) -> Instr:
    ctx.expect_inputs(2)
    a, b = ctx.input(0), ctx.input(1)
    if a.shape.rank != 2 or b.shape.rank != 2:
        raise ImportGraphError("MatMul needs two matrices")
    ta, tb = ctx.bool_attr("transpose_a", False), ctx.bool_attr("transpose_b", False)
    return ctx.hlo.add(Opcode.DOT, [a, b], lhs_contracting_dims=(0 if ta else 1,),
                       rhs_contracting_dims=(1 if tb else 0,))


@tf_op("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", outputs=("output",))
def _batch_matmul(ctx: NodeCtx) -> Instr:
    h = ctx.hlo
    x, y = ctx.input(0), ctx.input(1)
    if x.shape.rank < 2 or y.shape.rank < 2:
        raise ImportGraphError("BatchMatMul needs operands of rank >= 2")
    if ctx.node.op == "BatchMatMulV3":
        t = ctx.type_attr("Tout", x.shape.element_type)
        x, y = h.convert(x, t), h.convert(y, t)
    batch = broadcast_dims(x.shape.dims[:-2], y.shape.dims[:-2], "BatchMatMul batch dims")
    x = h.broadcast_to(x, (*batch, *x.shape.dims[-2:]))
    y = h.broadcast_to(y, (*batch, *y.shape.dims[-2:]))
    r = len(batch) + 2
    adj_x, adj_y = ctx.bool_attr("adj_x", False), ctx.bool_attr("adj_y", False)
    return h.add(
        Opcode.DOT,
        [x, y],
        lhs_batch_dims=tuple(range(len(batch))),
        lhs_contracting_dims=(r - 2 if adj_x else r - 1,),
        rhs_batch_dims=tuple(range(len(batch))),
        rhs_contracting_dims=(r - 1 if adj_y else r - 2,),
    )


# --- convolution and pooling windows ----------------------------------------------------------


def same_padding(size: int, window: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF SAME padding (low, high) of one dimension; the extra cell goes high."""
    effective = (window - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _layout(fmt: str, rank: int) -> tuple[int, int, list[int]]:
    """(batch dim, feature dim, spatial dims) of an activation in data format `fmt`."""
    if fmt in ("NHWC", "NDHWC", "NWC"):
        return 0, rank - 1, list(range(1, rank - 1))
    if fmt in ("NCHW", "NCDHW", "NCW"):
        return 0, 1, list(range(2, rank))
    raise ImportGraphError(f"unsupported data_format {fmt!r}")


def _per_dim(ctx: NodeCtx, name: str, rank: int, default: int) -> list[int]:
    values = ctx.ints_attr(name, [default] * rank)
    if len(values) != rank or any(v <= 0 for v in values):
        raise ImportGraphError(f"attribute {name!r} must hold {rank} positive ints, got {values}")
    return values


def _paddings(ctx: NodeCtx, sizes: Sequence[int], windows: Sequence[int],
              strides: Sequence[int], dilations: Sequence[int],
              spatial: Sequence[int]) -> list[tuple[int, int]]:
    """(low, high) padding of each dim in `spatial` per the node's padding attribute."""
    padding = ctx.str_attr("padding")
    if padding == "VALID":
        return [(0, 0)] * len(spatial)
    if padding == "SAME":
        return [same_padding(sizes[d], windows[i], strides[d], dilations[d])
                for i, d in enumerate(spatial)]
    if padding == "EXPLICIT":
        flat = ctx.ints_attr("explicit_paddings")
        if len(flat) != 2 * len(sizes):
            raise ImportGraphError(f"explicit_paddings must hold {2 * len(sizes)} ints")
        return [(flat[2 * d], flat[2 * d + 1]) for d in spatial]
    raise ImportGraphError(f"unsupported padding {padding!r}")


def _conv(ctx: NodeCtx, x: Instr, kernel: Instr, groups: int) -> Instr:
    """N-d convolution of `x` (data_format) with a spatial-first kernel [..., in, out]."""
    rank = x.shape.rank
    if kernel.shape.rank != rank:
        raise ImportGraphError(f"the filter must have rank {rank}")
    fmt = ctx.str_attr("data_format", "NHWC" if rank == 4 else "NDHWC")
    batch, feature, spatial = _layout(fmt, rank)
    strides = _per_dim(ctx, "strides", rank, 1)
    dilations = _per_dim(ctx, "dilations", rank, 1)
    kspatial = list(range(rank - 2))
    windows = [kernel.shape.dims[k] for k in kspatial]
    pads = _paddings(ctx, x.shape.dims, windows, strides, dilations, spatial)
    window = Window(tuple(
        WindowDim(size=windows[i], stride=strides[d], padding_low=pads[i][0],
                  padding_high=pads[i][1], window_dilation=dilations[d])
        for i, d in enumerate(spatial)
    ))
    labels = ConvDimLabels(batch, feature, tuple(spatial), rank - 2, rank - 1, tuple(kspatial),
                           batch, feature, tuple(spatial))
    return ctx.hlo.add(Opcode.CONVOLUTION, [x, kernel], window=window, dim_labels=labels,
                       feature_group_count=groups)


@tf_op("Conv2D", "Conv3D", "Conv1D", outputs=("output",))
def _conv_nd(ctx: NodeCtx) -> Instr:
    x, kernel = ctx.input(0), ctx.input(1)
    fmt = ctx.str_attr("data_format", "NHWC")
    _, feature, _ = _layout(fmt, x.shape.rank)
    k_in = kernel.shape.dims[-2] if kernel.shape.rank >= 2 else 0
    if k_in <= 0 or x.shape.dims[feature] % k_in:
        raise ImportGraphError("the filter's input depth must divide the input's channels")
    return _conv(ctx, x, kernel, x.shape.dims[feature] // k_in)


@tf_op("DepthwiseConv2dNative", outputs=("output",))
def _depthwise(ctx: NodeCtx) -> Instr:
    x, kernel = ctx.input(0), ctx.input(1)
    if kernel.shape.rank != 4:
        raise ImportGraphError("the depthwise filter must be [H, W, in, multiplier]")
    kh, kw, cin, mult = kernel.shape.dims
    kernel = ctx.hlo.reshape(kernel, [kh, kw, 1, cin * mult])
    return _conv(ctx, x, kernel, cin)


@tf_op("Conv2DBackpropInput", outputs=("output",))
def _conv_backprop_input(ctx: NodeCtx) -> Instr:
    h = ctx.hlo
    sizes = ctx.const_ints(0, "input_sizes")
    kernel, grad = ctx.input(1), ctx.input(2)
    rank = grad.shape.rank
    if len(sizes) != rank or kernel.shape.rank != rank:
        raise ImportGraphError("input_sizes, filter and out_backprop ranks disagree")
    fmt = ctx.str_attr("data_format", "NHWC")
    batch, feature, spatial = _layout(fmt, rank)
    strides = _per_dim(ctx, "strides", rank, 1)
    dilations = _per_dim(ctx, "dilations", rank, 1)
    kspatial = list(range(rank - 2))
    windows = [kernel.shape.dims[k] for k in kspatial]
    forward = _paddings(ctx, sizes, windows, strides, dilations, spatial)
    dims = []
    for i, d in enumerate(spatial):
        effective = (windows[i] - 1) * dilations[d] + 1
        low = effective - 1 - forward[i][0]
        high = sizes[d] + effective - 1 - ((grad.shape.dims[d] - 1) * strides[d] + 1) - low
        dims.append(WindowDim(size=windows[i], padding_low=low, padding_high=high,
                              base_dilation=strides[d], window_dilation=dilations[d]))
    flipped = h.reverse(kernel, kspatial)
    # The gradient is a convolution with the kernel flipped and its in/out features swapped.
    labels = ConvDimLabels(batch, feature, tuple(spatial), rank - 1, rank - 2, tuple(kspatial),
                           batch, feature, tuple(spatial))
    out = h.add(Opcode.CONVOLUTION, [grad, flipped], window=Window(tuple(dims)),
                dim_labels=labels)
    if list(out.shape.dims) != sizes:
        raise ImportGraphError(f"the gradient has shape {list(out.shape.dims)}, not {sizes}")
    return out


def _pool_window(ctx: NodeCtx, x: Instr, ksize: list[int], strides: list[int]) -> list[WindowDim]:
    rank = x.shape.rank
    if len(ksize) != rank or len(strides) != rank or min(ksize + strides) <= 0:
        raise ImportGraphError(f"ksize and strides must hold {rank} positive ints")
    pads = _paddings(ctx, x.shape.dims, ksize, strides, [1] * rank, list(range(rank)))
    return [WindowDim(size=k, stride=s, padding_low=lo, padding_high=hi)
            for k, s, (lo, hi) in zip(ksize, strides, pads, strict=True)]


def _pool_params(ctx: NodeCtx) -> tuple[list[int], list[int]]:
    if ctx.node.op.endswith("V2"):
        return ctx.const_ints(1, "ksize"), ctx.const_ints(2, "strides")
    return ctx.ints_attr("ksize"), ctx.ints_attr("strides")


@tf_op("MaxPool", "MaxPoolV2", "MaxPool3D", outputs=("output",))
def _max_pool(ctx: NodeCtx) -> Instr:
    x = ctx.input(0)
    ksize, strides = _pool_params(ctx)
    window = _pool_window(ctx, x, ksize, strides)
    return ctx.hlo.reduce_window(x, lowest(x.shape.element_type), "max", window)


@tf_op("AvgPool", "AvgPool3D", outputs=("output",))
def _avg_pool(ctx: NodeCtx) -> Instr:
    h = ctx.hlo
    x = ctx.input(0)
    ksize, strides = _pool_params(ctx)
    window = _pool_window(ctx, x, ksize, strides)
    total = h.reduce_window(x, 0, "add", window)
    # TF divides by the number of input cells each window covers (padding excluded).
    counts = np.ones((), dtype=np.float64)
    for w, size, out in zip(window, x.shape.dims, total.shape.dims, strict=True):
        starts = np.arange(out) * w.stride - w.padding_low
        covered = np.minimum(starts + w.size, size) - np.maximum(starts, 0)
        counts = np.multiply.outer(counts, np.maximum(covered, 1))
    divisor = h.constant(counts.astype(x.shape.element_type.numpy), x.shape.element_type)
    return h.add(Opcode.DIVIDE, [total, divisor])


# --- normalisation ----------------------------------------------------------------------------


@tf_op("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3",
       outputs=("y", "batch_mean", "batch_variance", "reserve_space_1", "reserve_space_2",
                "reserve_space_3"))
def _fused_batch_norm(ctx: NodeCtx) -> list[Instr]:
    h = ctx.hlo
    x, scale, offset, mean, var = (ctx.input(i) for i in range(5))
    if x.shape.rank != 4:
        raise ImportGraphError("FusedBatchNorm needs a rank-4 input")
    _, feature, _ = _layout(ctx.str_attr("data_format", "NHWC"), 4)
    t = scale.shape.element_type
    xt = h.convert(x, t)
    eps = ctx.float_attr("epsilon", 1e-4)
    channels = x.shape.dims[feature]
    for p in (scale, offset):
        if p.shape.dims != (channels,):
            raise ImportGraphError(f"scale and offset must be [{channels}]")
    others = [d for d in range(4) if d != feature]
    if ctx.bool_attr("is_training", True):
        n = math.prod(x.shape.dims[d] for d in others)
        batch_mean = h.with_scalar(Opcode.DIVIDE, h.reduce(xt, others, "add", 0), n)
        centered = h.add(Opcode.SUBTRACT, [xt, h.broadcast_in_dim(batch_mean, xt.shape.dims,
                                                                   [feature])])
        squares = h.add(Opcode.MULTIPLY, [centered, centered])
        batch_var = h.with_scalar(Opcode.DIVIDE, h.reduce(squares, others, "add", 0), n)
        use_mean, use_var = batch_mean, batch_var
        corrected = h.with_scalar(Opcode.MULTIPLY, batch_var, n / max(n - 1, 1))
        factor = ctx.float_attr("exponential_avg_factor", 1.0)
        if factor != 1.0 and mean.shape.num_elements:
            corrected = _blend(h, var, corrected, factor)
            batch_mean = _blend(h, mean, batch_mean, factor)
        outs_mean, outs_var = batch_mean, corrected
    else:
        use_mean, use_var = mean, var
        outs_mean, outs_var = mean, var
    inv = h.add(Opcode.RSQRT, [h.with_scalar(Opcode.ADD, use_var, eps)])
    gain = h.add(Opcode.MULTIPLY, [scale, inv])
    shift = h.add(Opcode.SUBTRACT, [offset, h.add(Opcode.MULTIPLY, [use_mean, gain])])
    y = h.add(Opcode.ADD, [
        h.add(Opcode.MULTIPLY, [xt, h.broadcast_in_dim(gain, xt.shape.dims, [feature])]),
        h.broadcast_in_dim(shift, xt.shape.dims, [feature]),
    ])
    y = h.convert(y, x.shape.element_type)
    return [y, outs_mean, outs_var, use_mean, use_var, use_var]


def _blend(h: HloEmitter, old: Instr, new: Instr, factor: float) -> Instr:
    """(1 - factor) * old + factor * new: TF's running-average update."""
    return h.add(Opcode.ADD, [h.with_scalar(Opcode.MULTIPLY, old, 1.0 - factor),
                              h.with_scalar(Opcode.MULTIPLY, new, factor)])


@tf_op("LRN", outputs=("output",))
def _lrn(ctx: NodeCtx) -> Instr:
    h = ctx.hlo
    x = ctx.input(0)
    if x.shape.rank != 4:
        raise ImportGraphError("LRN needs a rank-4 NHWC input")
    radius = ctx.int_attr("depth_radius", 5)
    bias, alpha = ctx.float_attr("bias", 1.0), ctx.float_attr("alpha", 1.0)
    beta = ctx.float_attr("beta", 0.5)
    window = [WindowDim(1), WindowDim(1), WindowDim(1),
              WindowDim(2 * radius + 1, padding_low=radius, padding_high=radius)]
    sums = h.reduce_window(h.add(Opcode.MULTIPLY, [x, x]), 0, "add", window)
    base = h.with_scalar(Opcode.ADD, h.with_scalar(Opcode.MULTIPLY, sums, alpha), bias)
    return h.add(Opcode.DIVIDE, [x, h.with_scalar(Opcode.POWER, base, beta)])


# --- reductions -------------------------------------------------------------------------------


def _zero(t: PrimitiveType) -> object:
    return False if t.is_pred else 0


def _one(t: PrimitiveType) -> object:
    return True if t.is_pred else 1


# TF reduction -> (reducer kind, its identity for an element type)
_REDUCTIONS: dict[str, tuple[str, Callable[[PrimitiveType], object]]] = {
    "Sum": ("add", _zero),
    "Mean": ("add", _zero),
    "Prod": ("mul", _one),
    "Max": ("max", lowest),
    "Min": ("min", highest),
    "All": ("and", _one),
    "Any": ("or", _zero),
}


def _reduction_axes(ctx: NodeCtx, rank: int) -> list[int]:
    axes = ctx.const_ints(1, "reduction_indices")
    if any(not -rank <= a < max(rank, 1) for a in axes):
        raise ImportGraphError(f"reduction axes {axes} are out of range for rank {rank}")
    return sorted({a % rank for a in axes}) if rank else []


@tf_op(*_REDUCTIONS, outputs=("output",))
def _reduce(ctx: NodeCtx) -> Instr:
    h = ctx.hlo
    x = ctx.input(0)
    axes = _reduction_axes(ctx, x.shape.rank)
    kind, init = _REDUCTIONS[ctx.node.op]
    t = x.shape.element_type
    out = h.reduce(x, axes, kind, init(t))
    if ctx.node.op == "Mean":
        count = math.prod(x.shape.dims[a] for a in axes)
        out = h.with_scalar(Opcode.DIVIDE, out, max(count, 1))
    if ctx.bool_attr("keep_dims", False):
        out = h.reshape(out, [1 if i in axes else d for i, d in enumerate(x.shape.dims)])
    return out


@tf_op("L2Loss", outputs=("output",))
def _l2_loss(ctx: NodeCtx) -> Instr:
    h = ctx.hlo
    x = ctx.input(0)
    total = h.reduce(h.add(Opcode.MULTIPLY, [x, x]), range(x.shape.rank), "add", 0)
    return h.with_scalar(Opcode.DIVIDE, total, 2)


@tf_op("ArgMax", "ArgMin", outputs=("output",))
def _arg_max(ctx: NodeCtx) -> Instr:
    h = ctx.hlo
    x = ctx.input(0)
    if x.shape.rank == 0:
        raise ImportGraphError("ArgMax/ArgMin need an input of rank >= 1")
    axis = ctx.const_ints(1, "dimension")
    if len(axis) != 1 or not -x.shape.rank <= axis[0] < x.shape.rank:
        raise ImportGraphError(f"dimension {axis} is not one axis of rank {x.shape.rank}")
    a = axis[0] % x.shape.rank
    t = ctx.type_attr("output_type", PrimitiveType.S64)
    is_max = ctx.node.op == "ArgMax"
    xt = x.shape.element_type
    best = h.reduce(x, [a], "max" if is_max else "min", lowest(xt) if is_max else highest(xt))
    kept = [d for d in range(x.shape.rank) if d != a]
    hit = h.compare("EQ", x, h.broadcast_in_dim(best, x.shape.dims, kept))
    index = h.iota(t, x.shape.dims, a)
    candidates = h.select(hit, index, h.full(highest(t), t, x.shape.dims))
    # The first index holding the extreme value, as TensorFlow returns.
    return h.reduce(candidates, [a], "min", highest(t))


@tf_op("Cumsum", "Cumprod", outputs=("out",))
def _cumulative(ctx: NodeCtx) -> Instr:
    h = ctx.hlo
    x = ctx.input(0)
    rank = x.shape.rank
    axis = ctx.const_ints(1, "axis")
    if len(axis) != 1 or not -rank <= axis[0] < rank:
        raise ImportGraphError(f"axis {axis} is not one axis of rank {rank}")
    a = axis[0] % rank
    kind, init = ("add", 0) if ctx.node.op == "Cumsum" else ("mul", 1)
    reverse = ctx.bool_attr("reverse", False)
    if reverse:
        x = h.reverse(x, [a])
    n = x.shape.dims[a]
    window = [WindowDim(n, padding_low=n - 1) if d == a else WindowDim(1) for d in range(rank)]
    out = h.reduce_window(x, init, kind, window)
    if ctx.bool_attr("exclusive", False) and n:
        first = h.full(init, x.shape.element_type,
                       [1 if d == a else s for d, s in enumerate(x.shape.dims)])
        out = h.concat([first, h.slice_in_dim(out, 0, n - 1, a)], a)
    return h.reverse(out, [a]) if reverse else out


# --- einsum ------------------------------------------------------------------------------------


def _einsum_labels(equation: str, ranks: list[int]) -> tuple[list[list[str]], list[str]]:
    """Operand and output labels of `equation`, ellipses expanded to private labels
    (right-aligned across operands, as numpy does)."""
    lhs, arrow, out = equation.replace(" ", "").partition("->")
    specs = lhs.split(",")
    if len(specs) != len(ranks):
        raise ImportGraphError(f"equation {equation!r} names {len(specs)} operands, "
                               f"the node has {len(ranks)}")
    widths = []
    for spec, rank in zip(specs, ranks, strict=True):
        named = len(spec.replace("...", ""))
        widths.append(rank - named if "..." in spec else 0)
        if (named if "..." in spec else len(spec)) > rank or widths[-1] < 0:
            raise ImportGraphError(f"{spec!r} does not fit an operand of rank {rank}")
    common = [chr(0x100 + k) for k in range(max(widths, default=0))]

    def expand(spec: str, width: int) -> list[str]:
        head, dots, tail = spec.partition("...")
        middle = common[len(common) - width:] if dots else []
        return [*head, *middle, *tail]

    labels = [expand(s, w) for s, w in zip(specs, widths, strict=True)]
    if not arrow:
        counts = {c: sum(lab.count(c) for lab in labels) for lab in labels for c in lab}
        out_labels = common + sorted(c for c, k in counts.items() if k == 1 and c not in common)
    else:
        out_labels = expand(out, len(common))
    for lab in labels:
        if len(set(lab)) != len(lab):
            raise ImportGraphError(f"einsum {equation!r}: repeated labels (diagonals) "
                                   "are not supported")
    return labels, out_labels


@tf_op("Einsum", outputs=("output",))
def _einsum(ctx: NodeCtx) -> Instr:
    h = ctx.hlo
    xs = ctx.inputs()
    if len(xs) not in (1, 2):
        raise ImportGraphError("Einsum supports one or two operands")
    labels, out = _einsum_labels(ctx.str_attr("equation"), [x.shape.rank for x in xs])
    sizes: dict[str, int] = {}
    for x, lab in zip(xs, labels, strict=True):
        for c, d in zip(lab, x.shape.dims, strict=True):
            if sizes.get(c, d) not in (d, 1) and d != 1:
                raise ImportGraphError(f"label {c!r} has sizes {sizes[c]} and {d}")
            sizes[c] = max(sizes.get(c, d), d)
    missing = [c for c in out if c not in sizes]
    if missing or len(set(out)) != len(out):
        raise ImportGraphError(f"output labels {out} must be distinct input labels")
    # Broadcast size-1 dims (ellipsis broadcasting), then sum out private labels.
    operands = []
    for i, (x, lab) in enumerate(zip(xs, labels, strict=True)):
        x = h.broadcast_to(x, [sizes[c] for c in lab])
        others = {c for j, other in enumerate(labels) if j != i for c in other}
        gone = [k for k, c in enumerate(lab) if c not in out and c not in others]
        if gone:
            x = h.reduce(x, gone, "add", 0)
            lab = [c for k, c in enumerate(lab) if k not in gone]
        operands.append((x, lab))
    if len(operands) == 1:
        x, lab = operands[0]
        return h.transpose(x, [lab.index(c) for c in out])
    (a, la), (b, lb) = operands
    batch = [c for c in out if c in la and c in lb]
    contract = [c for c in la if c in lb and c not in out]
    result = h.add(
        Opcode.DOT,
        [a, b],
        lhs_batch_dims=tuple(la.index(c) for c in batch),
        lhs_contracting_dims=tuple(la.index(c) for c in contract),
        rhs_batch_dims=tuple(lb.index(c) for c in batch),
        rhs_contracting_dims=tuple(lb.index(c) for c in contract),
    )
    got = batch + [c for c in la if c not in lb] + [c for c in lb if c not in la]
    return h.transpose(result, [got.index(c) for c in out])
