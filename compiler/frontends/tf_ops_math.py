"""TF op lowerings, family "math": element-wise arithmetic with numpy broadcasting,
comparisons and logic, unary math, activations, casts, softmax and cross-entropy.

TF broadcasts both operands of a binary op; HLO wants equal shapes, so every binary op
goes through `HloEmitter.binary`, which inserts the reshape + broadcast.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from compiler.frontends.tf_hlo import HloEmitter, Instr, lowest
from compiler.frontends.tf_ops import tf_op
from compiler.frontends.tf_scope import NodeCtx
from hlo.errors import ImportGraphError
from hlo.opcodes import Opcode

# --- binary arithmetic ------------------------------------------------------------------------

# TF op -> the HLO opcode it is after broadcasting (integer Div truncates, as in TF)
_BINARY: dict[str, Opcode] = {
    "Add": Opcode.ADD,
    "AddV2": Opcode.ADD,
    "Sub": Opcode.SUBTRACT,
    "Mul": Opcode.MULTIPLY,
    "RealDiv": Opcode.DIVIDE,
    "Div": Opcode.DIVIDE,
    "TruncateDiv": Opcode.DIVIDE,
    "TruncateMod": Opcode.REMAINDER,
    "Maximum": Opcode.MAXIMUM,
    "Minimum": Opcode.MINIMUM,
    "Pow": Opcode.POWER,
    "Atan2": Opcode.ATAN2,
    "LogicalAnd": Opcode.AND,
    "LogicalOr": Opcode.OR,
    "BitwiseAnd": Opcode.AND,
    "BitwiseOr": Opcode.OR,
    "BitwiseXor": Opcode.XOR,
    "LeftShift": Opcode.SHIFT_LEFT,
}


def _same_types(ctx: NodeCtx, a: Instr, b: Instr) -> None:
    if a.shape.element_type is not b.shape.element_type:
        raise ImportGraphError(
            f"operands have different types {a.shape.element_type.value} and "
            f"{b.shape.element_type.value}"
        )


@tf_op(*_BINARY, outputs=("z",))
def _binary(ctx: NodeCtx) -> Instr:
    ctx.expect_inputs(2)
    a, b = ctx.input(0), ctx.input(1)
    _same_types(ctx, a, b)
    if ctx.node.op == "AddV2" and a.shape.element_type.is_pred:
        return ctx.hlo.binary(Opcode.OR, a, b)
    return ctx.hlo.binary(_BINARY[ctx.node.op], a, b)


@tf_op("RightShift", outputs=("z",))
def _right_shift(ctx: NodeCtx) -> Instr:
    a, b = ctx.input(0), ctx.input(1)
    signed = a.shape.element_type.is_signed
    op = Opcode.SHIFT_RIGHT_ARITHMETIC if signed else Opcode.SHIFT_RIGHT_LOGICAL
    return ctx.hlo.binary(op, a, b)


@tf_op("SquaredDifference", outputs=("z",))
def _squared_difference(ctx: NodeCtx) -> Instr:
    d = ctx.hlo.binary(Opcode.SUBTRACT, ctx.input(0), ctx.input(1))
    return ctx.hlo.add(Opcode.MULTIPLY, [d, d])


@tf_op("DivNoNan", "MulNoNan", outputs=("z",))
def _no_nan(ctx: NodeCtx) -> Instr:
    h = ctx.hlo
    x, y = h.broadcast_all([ctx.input(0), ctx.input(1)], ctx.node.op)
    op = Opcode.DIVIDE if ctx.node.op == "DivNoNan" else Opcode.MULTIPLY
    zero = h.full_like(0, x)
    return h.select(h.compare("EQ", y, zero), zero, h.add(op, [x, y]))


def floor_div(h: HloEmitter, x: Instr, y: Instr) -> Instr:
    """x // y rounding toward negative infinity (TF FloorDiv)."""
    x, y = h.broadcast_all([x, y], "FloorDiv")
    if x.shape.element_type.is_float:
        return h.add(Opcode.FLOOR, [h.add(Opcode.DIVIDE, [x, y])])
    q = h.add(Opcode.DIVIDE, [x, y])
    if not x.shape.element_type.is_signed:
        return q
    zero = h.full_like(0, x)
    r = h.add(Opcode.REMAINDER, [x, y])
    inexact = h.compare("NE", r, zero)
    signs_differ = h.compare("NE", h.compare("LT", x, zero), h.compare("LT", y, zero))
    fix = h.add(Opcode.AND, [inexact, signs_differ])
    return h.select(fix, h.add(Opcode.SUBTRACT, [q, h.full_like(1, q)]), q)


@tf_op("FloorDiv", outputs=("z",))
def _floor_div(ctx: NodeCtx) -> Instr:
    return floor_div(ctx.hlo, ctx.input(0), ctx.input(1))


@tf_op("FloorMod", "Mod", outputs=("z",))
def _floor_mod(ctx: NodeCtx) -> Instr:
    h = ctx.hlo
    x, y = h.broadcast_all([ctx.input(0), ctx.input(1)], "FloorMod")
    r = h.add(Opcode.REMAINDER, [x, y])
    if x.shape.element_type.is_unsigned:
        return r
    zero = h.full_like(0, r)
    nonzero = h.compare("NE", r, zero)
    signs_differ = h.compare("NE", h.compare("LT", r, zero), h.compare("LT", y, zero))
    return h.select(h.add(Opcode.AND, [nonzero, signs_differ]), h.add(Opcode.ADD, [r, y]), r)


@tf_op("AddN", outputs=("sum",))
def _add_n(ctx: NodeCtx) -> Instr:
    xs = ctx.inputs()
    if not xs:
        raise ImportGraphError("AddN needs at least one input")
    total = xs[0]
    for x in xs[1:]:
        total = ctx.hlo.binary(Opcode.ADD, total, x)
    return total


@tf_op("BiasAdd", "BiasAddV1", outputs=("output",))
def _bias_add(ctx: NodeCtx) -> Instr:
    ctx.expect_inputs(2)
    x, bias = ctx.input(0), ctx.input(1)
    fmt = ctx.str_attr("data_format", "NHWC")
    if bias.shape.rank != 1 or x.shape.rank < 2:
        raise ImportGraphError("BiasAdd needs a rank-1 bias and a value of rank >= 2")
    dim = 1 if fmt.startswith("NC") else x.shape.rank - 1
    if x.shape.dims[dim] != bias.shape.dims[0]:
        raise ImportGraphError(
            f"bias of size {bias.shape.dims[0]} does not match dimension {dim} of "
            f"{list(x.shape.dims)} ({fmt})"
        )
    return ctx.hlo.add(Opcode.ADD, [x, ctx.hlo.broadcast_in_dim(bias, x.shape.dims, [dim])])


# --- comparisons and logic --------------------------------------------------------------------

_COMPARE = {
    "Less": "LT",
    "LessEqual": "LE",
    "Greater": "GT",
    "GreaterEqual": "GE",
    "Equal": "EQ",
    "NotEqual": "NE",
}


@tf_op(*_COMPARE, outputs=("z",))
def _compare(ctx: NodeCtx) -> Instr:
    ctx.expect_inputs(2)
    a, b = ctx.input(0), ctx.input(1)
    _same_types(ctx, a, b)
    return ctx.hlo.compare(_COMPARE[ctx.node.op], a, b)


@tf_op("LogicalNot", "Invert", outputs=("y",))
def _not(ctx: NodeCtx) -> Instr:
    return ctx.hlo.add(Opcode.NOT, [ctx.input(0)])


# --- unary math -------------------------------------------------------------------------------

_UNARY: dict[str, Opcode] = {
    "Neg": Opcode.NEGATE,
    "Abs": Opcode.ABS,
    "Sign": Opcode.SIGN,
    "Exp": Opcode.EXPONENTIAL,
    "Expm1": Opcode.EXPONENTIAL_MINUS_ONE,
    "Log": Opcode.LOG,
    "Log1p": Opcode.LOG_PLUS_ONE,
    "Sqrt": Opcode.SQRT,
    "Rsqrt": Opcode.RSQRT,
    "Tanh": Opcode.TANH,
    "Sigmoid": Opcode.LOGISTIC,
    "Erf": Opcode.ERF,
    "Floor": Opcode.FLOOR,
    "Ceil": Opcode.CEIL,
    "Sin": Opcode.SINE,
    "Cos": Opcode.COSINE,
    "Tan": Opcode.TAN,
    "IsFinite": Opcode.IS_FINITE,
    "Real": Opcode.REAL,
    "Imag": Opcode.IMAG,
}


@tf_op(*_UNARY, outputs=("y",))
def _unary(ctx: NodeCtx) -> Instr:
    ctx.expect_inputs(1)
    return ctx.hlo.add(_UNARY[ctx.node.op], [ctx.input(0)])


@tf_op("Round", "Rint", outputs=("y",))
def _round(ctx: NodeCtx) -> Instr:
    x = ctx.input(0)
    if not x.shape.element_type.is_float:
        return x
    return ctx.hlo.add(Opcode.ROUND_NEAREST_EVEN, [x])  # TF rounds half to even


@tf_op("Square", outputs=("y",))
def _square(ctx: NodeCtx) -> Instr:
    x = ctx.input(0)
    return ctx.hlo.add(Opcode.MULTIPLY, [x, x])


@tf_op("Reciprocal", "Inv", outputs=("y",))
def _reciprocal(ctx: NodeCtx) -> Instr:
    x = ctx.input(0)
    return ctx.hlo.add(Opcode.DIVIDE, [ctx.hlo.full_like(1, x), x])


@tf_op("Erfc", outputs=("y",))
def _erfc(ctx: NodeCtx) -> Instr:
    x = ctx.input(0)
    return ctx.hlo.add(Opcode.SUBTRACT, [ctx.hlo.full_like(1, x), ctx.hlo.add(Opcode.ERF, [x])])


@tf_op("IsNan", outputs=("y",))
def _is_nan(ctx: NodeCtx) -> Instr:
    x = ctx.input(0)
    return ctx.hlo.compare("NE", x, x)


@tf_op("IsInf", outputs=("y",))
def _is_inf(ctx: NodeCtx) -> Instr:
    x = ctx.input(0)
    return ctx.hlo.compare("EQ", ctx.hlo.add(Opcode.ABS, [x]), ctx.hlo.full_like(np.inf, x))


@tf_op("Cast", outputs=("y",))
def _cast(ctx: NodeCtx) -> Instr:
    x = ctx.input(0)
    if ctx.has_attr("SrcT") and ctx.type_attr("SrcT") is not x.shape.element_type:
        raise ImportGraphError(
            f"attribute SrcT is {ctx.type_attr('SrcT').value}, the input is "
            f"{x.shape.element_type.value}"
        )
    return ctx.hlo.convert(x, ctx.type_attr("DstT"))


@tf_op("ZerosLike", "OnesLike", outputs=("y",))
def _fill_like(ctx: NodeCtx) -> Instr:
    x = ctx.input(0)
    return ctx.hlo.full_like(0 if ctx.node.op == "ZerosLike" else 1, x)


@tf_op("ClipByValue", outputs=("output",))
def _clip(ctx: NodeCtx) -> Instr:
    h = ctx.hlo
    x, lo, hi = ctx.input(0), ctx.input(1), ctx.input(2)
    lo, hi = h.broadcast_to(lo, x.shape.dims), h.broadcast_to(hi, x.shape.dims)
    return h.add(Opcode.MAXIMUM, [h.add(Opcode.MINIMUM, [x, hi]), lo])


# --- activations ------------------------------------------------------------------------------

_SELU_SCALE = 1.0507009873554804934193349852946
_SELU_ALPHA = 1.6732632423543772848170429916717


def _activation(fn: Callable[[HloEmitter, Instr, NodeCtx], Instr]) -> Callable[[NodeCtx], Instr]:
    def lower(ctx: NodeCtx) -> Instr:
        ctx.expect_inputs(1)
        return fn(ctx.hlo, ctx.input(0), ctx)

    return lower


def _relu(h: HloEmitter, x: Instr, ctx: NodeCtx) -> Instr:
    return h.with_scalar(Opcode.MAXIMUM, x, 0)


def _relu6(h: HloEmitter, x: Instr, ctx: NodeCtx) -> Instr:
    return h.with_scalar(Opcode.MINIMUM, h.with_scalar(Opcode.MAXIMUM, x, 0), 6)


def _elu(h: HloEmitter, x: Instr, ctx: NodeCtx) -> Instr:
    positive = h.compare("GT", x, h.full_like(0, x))
    return h.select(positive, x, h.add(Opcode.EXPONENTIAL_MINUS_ONE, [x]))


def _selu(h: HloEmitter, x: Instr, ctx: NodeCtx) -> Instr:
    positive = h.compare("GT", x, h.full_like(0, x))
    negative = h.with_scalar(Opcode.MULTIPLY, h.add(Opcode.EXPONENTIAL_MINUS_ONE, [x]),
                             _SELU_ALPHA)
    return h.with_scalar(Opcode.MULTIPLY, h.select(positive, x, negative), _SELU_SCALE)


def _leaky_relu(h: HloEmitter, x: Instr, ctx: NodeCtx) -> Instr:
    alpha = ctx.float_attr("alpha", 0.2)
    positive = h.compare("GT", x, h.full_like(0, x))
    return h.select(positive, x, h.with_scalar(Opcode.MULTIPLY, x, alpha))


def _softplus(h: HloEmitter, x: Instr, ctx: NodeCtx) -> Instr:
    # max(x, 0) + log1p(exp(-|x|)): no overflow for large |x|.
    tail = h.add(Opcode.EXPONENTIAL, [h.add(Opcode.NEGATE, [h.add(Opcode.ABS, [x])])])
    return h.add(Opcode.ADD, [h.with_scalar(Opcode.MAXIMUM, x, 0),
                              h.add(Opcode.LOG_PLUS_ONE, [tail])])


def _softsign(h: HloEmitter, x: Instr, ctx: NodeCtx) -> Instr:
    denominator = h.with_scalar(Opcode.ADD, h.add(Opcode.ABS, [x]), 1)
    return h.add(Opcode.DIVIDE, [x, denominator])


for _name, _fn in {
    "Relu": _relu,
    "Relu6": _relu6,
    "Elu": _elu,
    "Selu": _selu,
    "LeakyRelu": _leaky_relu,
    "Softplus": _softplus,
    "Softsign": _softsign,
}.items():
    tf_op(_name, outputs=("activations",))(_activation(_fn))


# --- softmax and cross-entropy ----------------------------------------------------------------


def _last_axis(h: HloEmitter, x: Instr, kind: str, init: object) -> Instr:
    """Reduce over the last dimension and broadcast back to x's shape."""
    rank = x.shape.rank
    reduced = h.reduce(x, [rank - 1], kind, init)
    return h.broadcast_in_dim(reduced, x.shape.dims, list(range(rank - 1)))


def log_softmax(h: HloEmitter, x: Instr) -> tuple[Instr, Instr]:
    """(log_softmax(x), softmax(x)) along the last dimension, max-shifted for stability."""
    t = x.shape.element_type
    shifted = h.add(Opcode.SUBTRACT, [x, _last_axis(h, x, "max", lowest(t))])
    exp = h.add(Opcode.EXPONENTIAL, [shifted])
    total = _last_axis(h, exp, "add", 0)
    log_probs = h.add(Opcode.SUBTRACT, [shifted, h.add(Opcode.LOG, [total])])
    return log_probs, h.add(Opcode.DIVIDE, [exp, total])


def _check_logits(x: Instr) -> None:
    if x.shape.rank < 1 or not x.shape.element_type.is_float:
        raise ImportGraphError("logits must be a floating-point tensor of rank >= 1")


@tf_op("Softmax", outputs=("softmax",))
def _softmax(ctx: NodeCtx) -> Instr:
    x = ctx.input(0)
    _check_logits(x)
    return log_softmax(ctx.hlo, x)[1]


@tf_op("LogSoftmax", outputs=("logsoftmax",))
def _log_softmax(ctx: NodeCtx) -> Instr:
    x = ctx.input(0)
    _check_logits(x)
    return log_softmax(ctx.hlo, x)[0]


def _cross_entropy(h: HloEmitter, logits: Instr, labels: Instr) -> list[Instr]:
    if logits.shape.rank != 2 or labels.shape.dims != logits.shape.dims:
        raise ImportGraphError(
            f"logits and labels must be [batch, classes], got {list(logits.shape.dims)} and "
            f"{list(labels.shape.dims)}"
        )
    log_probs, probs = log_softmax(h, logits)
    loss = h.reduce(h.add(Opcode.MULTIPLY, [labels, log_probs]), [1], "add", 0)
    return [h.add(Opcode.NEGATE, [loss]), h.add(Opcode.SUBTRACT, [probs, labels])]


@tf_op("SoftmaxCrossEntropyWithLogits", outputs=("loss", "backprop"))
def _softmax_xent(ctx: NodeCtx) -> list[Instr]:
    logits = ctx.input(0)
    _check_logits(logits)
    labels = ctx.hlo.broadcast_to(ctx.input(1), logits.shape.dims)
    return _cross_entropy(ctx.hlo, logits, labels)


@tf_op("SparseSoftmaxCrossEntropyWithLogits", outputs=("loss", "backprop"))
def _sparse_softmax_xent(ctx: NodeCtx) -> list[Instr]:
    h = ctx.hlo
    logits, labels = ctx.input(0), ctx.input(1)
    _check_logits(logits)
    if logits.shape.rank != 2 or labels.shape.dims != logits.shape.dims[:1]:
        raise ImportGraphError("logits must be [batch, classes] and labels [batch]")
    t = labels.shape.element_type
    classes = h.iota(t, logits.shape.dims, 1)
    wide = h.broadcast_in_dim(labels, logits.shape.dims, [0])
    one_hot = h.convert(h.compare("EQ", classes, wide), logits.shape.element_type)
    return _cross_entropy(h, logits, one_hot)

