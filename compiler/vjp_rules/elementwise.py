"""VJP rules of elementwise instructions: arithmetic, math functions, select, clamp, convert.

Each rule is the textbook derivative written with HLO primitives of the same shape as the
instruction (HLO elementwise operands are never broadcast). Rules reuse the forward result
where the derivative is a function of it (exp, tanh, logistic, sqrt, divide).
maximum/minimum split ties evenly between the operands.
"""

from __future__ import annotations

import math

from compiler import numpy_prims as prims
from compiler.tracing import Tracer
from compiler.vjp_rules.base import Cot, VjpContext, defvjp
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode


def _mul(a: Tracer, b: Tracer) -> Tracer:
    return prims.binary(Opcode.MULTIPLY, a, b)


def _div(a: Tracer, b: Tracer) -> Tracer:
    return prims.binary(Opcode.DIVIDE, a, b)


def _add(a: Tracer, b: Tracer) -> Tracer:
    return prims.binary(Opcode.ADD, a, b)


def _sub(a: Tracer, b: Tracer) -> Tracer:
    return prims.binary(Opcode.SUBTRACT, a, b)


def _neg(a: Tracer) -> Tracer:
    return prims.unary(Opcode.NEGATE, a)


def _const(like: Tracer, value: float) -> Tracer:
    return prims.full(like.shape, value, like.dtype)


def _zeros(like: Tracer) -> Tracer:
    return prims.zeros_like(like)


@defvjp(Opcode.ADD)
def _add_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    return [ct, ct]


@defvjp(Opcode.SUBTRACT)
def _subtract_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    return [ct, _neg(ct)]


@defvjp(Opcode.MULTIPLY)
def _multiply_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    x, y = ctx.operands(instr)
    return [_mul(ct, y), _mul(ct, x)]


@defvjp(Opcode.DIVIDE)
def _divide_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    """d(x/y) = dx / y - dy * (x/y) / y."""
    _, y = ctx.operands(instr)
    ct_x = _div(ct, y)
    return [ct_x, _neg(_mul(ct_x, ctx.val(instr)))]


@defvjp(Opcode.NEGATE)
def _negate_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    return [_neg(ct)]


@defvjp(Opcode.COPY, Opcode.REDUCE_PRECISION, Opcode.OPTIMIZATION_BARRIER)
def _identity_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    return [ct]


@defvjp(Opcode.EXPONENTIAL)
def _exp_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    return [_mul(ct, ctx.val(instr))]


@defvjp(Opcode.EXPONENTIAL_MINUS_ONE)
def _expm1_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    out = ctx.val(instr)
    return [_mul(ct, _add(out, _const(out, 1)))]


@defvjp(Opcode.LOG)
def _log_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    (x,) = ctx.operands(instr)
    return [_div(ct, x)]


@defvjp(Opcode.LOG_PLUS_ONE)
def _log1p_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    (x,) = ctx.operands(instr)
    return [_div(ct, _add(x, _const(x, 1)))]


@defvjp(Opcode.TANH)
def _tanh_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    """d tanh = 1 - tanh^2."""
    out = ctx.val(instr)
    return [_mul(ct, _sub(_const(out, 1), _mul(out, out)))]


@defvjp(Opcode.LOGISTIC)
def _logistic_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    """d sigmoid = sigmoid * (1 - sigmoid)."""
    out = ctx.val(instr)
    return [_mul(ct, _mul(out, _sub(_const(out, 1), out)))]


@defvjp(Opcode.SQRT)
def _sqrt_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    out = ctx.val(instr)
    return [_div(_mul(ct, _const(out, 0.5)), out)]


@defvjp(Opcode.RSQRT)
def _rsqrt_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    """d x^-1/2 = -1/2 x^-1/2 / x."""
    (x,) = ctx.operands(instr)
    out = ctx.val(instr)
    return [_mul(ct, _div(_mul(out, _const(out, -0.5)), x))]


@defvjp(Opcode.CBRT)
def _cbrt_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    """d x^1/3 = x^1/3 / (3x)."""
    (x,) = ctx.operands(instr)
    return [_mul(ct, _div(ctx.val(instr), _mul(x, _const(x, 3))))]


@defvjp(Opcode.SINE)
def _sin_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    (x,) = ctx.operands(instr)
    return [_mul(ct, prims.unary(Opcode.COSINE, x))]


@defvjp(Opcode.COSINE)
def _cos_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    (x,) = ctx.operands(instr)
    return [_neg(_mul(ct, prims.unary(Opcode.SINE, x)))]


@defvjp(Opcode.TAN)
def _tan_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    out = ctx.val(instr)
    return [_mul(ct, _add(_const(out, 1), _mul(out, out)))]


@defvjp(Opcode.ERF)
def _erf_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    """d erf = 2/sqrt(pi) exp(-x^2)."""
    (x,) = ctx.operands(instr)
    gauss = prims.unary(Opcode.EXPONENTIAL, _neg(_mul(x, x)))
    return [_mul(ct, _mul(gauss, _const(x, 2.0 / math.sqrt(math.pi))))]


@defvjp(Opcode.ATAN2)
def _atan2_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    """atan2(y, x): dy x / (x^2 + y^2), dx -y / (x^2 + y^2)."""
    y, x = ctx.operands(instr)
    scale = _div(ct, _add(_mul(x, x), _mul(y, y)))
    return [_mul(scale, x), _neg(_mul(scale, y))]


@defvjp(Opcode.POWER)
def _power_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    """x^y: dx y x^(y-1); dy x^y log(x), taken as 0 where x == 0."""
    x, y = ctx.operands(instr)
    ct_x = _mul(ct, _mul(y, prims.binary(Opcode.POWER, x, _sub(y, _const(y, 1)))))
    zero = _zeros(x)
    is_zero = prims.compare(x, zero, "EQ")
    safe_log = prims.select(is_zero, zero,
                            prims.unary(Opcode.LOG, prims.select(is_zero, _const(x, 1), x)))
    ct_y = _mul(ct, _mul(ctx.val(instr), safe_log))
    return [ct_x, ct_y]


def _extremum(ctx: VjpContext, instr: HloInstruction, ct: Tracer, direction: str
              ) -> list[Cot]:
    x, y = ctx.operands(instr)
    zero = _zeros(ct)
    half = _mul(ct, _const(ct, 0.5))
    tie = prims.compare(x, y, "EQ")
    x_wins = prims.compare(x, y, direction)
    y_wins = prims.compare(y, x, direction)
    ct_x = prims.select(x_wins, ct, prims.select(tie, half, zero))
    ct_y = prims.select(y_wins, ct, prims.select(tie, half, zero))
    return [ct_x, ct_y]


@defvjp(Opcode.MAXIMUM)
def _maximum_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    return _extremum(ctx, instr, ct, "GT")


@defvjp(Opcode.MINIMUM)
def _minimum_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    return _extremum(ctx, instr, ct, "LT")


@defvjp(Opcode.ABS)
def _abs_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    (x,) = ctx.operands(instr)
    return [_mul(ct, prims.unary(Opcode.SIGN, x))]


@defvjp(Opcode.REMAINDER)
def _remainder_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    """rem(x, y) = x - y trunc(x / y): dx 1, dy -trunc(x / y)."""
    x, y = ctx.operands(instr)
    q = _div(x, y)
    trunc = prims.select(prims.compare(q, _zeros(q), "LT"), prims.unary(Opcode.CEIL, q),
                         prims.unary(Opcode.FLOOR, q))
    return [ct, _neg(_mul(ct, trunc))]


@defvjp(Opcode.SELECT)
def _select_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    pred = ctx.val(instr.operands[0])
    zero = _zeros(ct)
    return [None, prims.select(pred, ct, zero), prims.select(pred, zero, ct)]


@defvjp(Opcode.CLAMP)
def _clamp_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    """clamp(lo, x, hi): x's cotangent inside [lo, hi]; lo's below, hi's above (summed
    when the bound is a scalar)."""
    lo, x, hi = ctx.operands(instr)
    zero = _zeros(ct)

    def full(bound: Tracer) -> Tracer:
        return bound if bound.shape == x.shape else prims.broadcast_in_dim(bound, x.shape, ())

    below = prims.compare(x, full(lo), "LT")
    above = prims.compare(x, full(hi), "GT")
    ct_lo = prims.select(below, ct, zero)
    ct_hi = prims.select(above, ct, zero)
    inside = prims.binary(Opcode.AND, prims.unary(Opcode.NOT, below),
                          prims.unary(Opcode.NOT, above))
    ct_x = prims.select(inside, ct, zero)
    if lo.shape != x.shape:
        ct_lo = prims.reduce_sum(ct_lo, range(x.ndim))
    if hi.shape != x.shape:
        ct_hi = prims.reduce_sum(ct_hi, range(x.ndim))
    return [ct_lo, ct_x, ct_hi]


@defvjp(Opcode.CONVERT)
def _convert_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    """Between float types the cotangent converts back; from integers nothing flows."""
    source = instr.operands[0].shape.element_type
    if not source.is_float:
        return [None]
    return [prims.convert(ct, source.numpy)]
