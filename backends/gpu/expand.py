"""Expansions: ops the GPU runs as a small computation of other ops (batch normalisation).

`EXPANSIONS` maps an opcode to a function that builds, for one instruction, an equivalent
HloComputation of elementwise ops, broadcasts and reductions; the driver instantiates it
like a called computation, so the work runs on the reduction and elementwise kernels
instead of one thread. The formulas are those of XLA's BatchNormExpander (the biased
variance, `rsqrt(var + epsilon)`); f16 and bf16 are computed in f32.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

_O = Opcode
Expansion = Callable[[HloInstruction], HloComputation]


class _Builder:
    """A computation under construction with the helpers batch normalisation needs."""

    def __init__(self, instr: HloInstruction) -> None:
        self.comp = HloComputation(f"{instr.name}.expanded")
        x_shape = instr.operands[0].shape
        self.t = x_shape.element_type
        self.ct = PrimitiveType.F64 if self.t is PrimitiveType.F64 else PrimitiveType.F32
        self.dims = x_shape.dims
        self.feature = instr.attrs["feature_index"]
        self.epsilon = float(instr.attrs["epsilon"])
        self.features = self.dims[self.feature]
        self.count = math.prod(d for k, d in enumerate(self.dims) if k != self.feature)
        self.params = [
            self.comp.add(_O.PARAMETER, [], shape=o.shape, name=f"p{k}", parameter_number=k)
            for k, o in enumerate(instr.operands)
        ]
        self._add = self._adder()

    def _adder(self) -> HloComputation:
        add = HloComputation(f"{self.comp.name}.add")
        scalar = Shape.scalar(self.ct)
        a = add.add(_O.PARAMETER, [], shape=scalar, name="a", parameter_number=0)
        b = add.add(_O.PARAMETER, [], shape=scalar, name="b", parameter_number=1)
        add.set_root(add.add(_O.ADD, [a, b]))
        return add

    def param(self, k: int) -> HloInstruction:
        """Parameter k in the compute type."""
        return self.to(self.params[k], self.ct)

    def to(self, x: HloInstruction, t: PrimitiveType) -> HloInstruction:
        if x.shape.element_type is t:
            return x
        return self.comp.add(_O.CONVERT, [x], shape=x.shape.with_element_type(t))

    def scalar(self, value: float) -> HloInstruction:
        literal = np.array(value, dtype=self.ct.numpy)
        return self.comp.add(_O.CONSTANT, [], shape=Shape.scalar(self.ct), literal=literal)

    def per_feature(self, value: float) -> HloInstruction:
        """A [features] vector filled with `value`."""
        return self.comp.add(_O.BROADCAST, [self.scalar(value)],
                             shape=Shape.array(self.ct, (self.features,)), dimensions=())

    def spread(self, v: HloInstruction) -> HloInstruction:
        """A [features] vector broadcast along the operand's feature dimension."""
        return self.comp.add(_O.BROADCAST, [v], shape=Shape.array(self.ct, self.dims),
                             dimensions=(self.feature,))

    def op(self, opcode: Opcode, *operands: HloInstruction) -> HloInstruction:
        return self.comp.add(opcode, list(operands))

    def feature_sum(self, x: HloInstruction) -> HloInstruction:
        reduced = tuple(k for k in range(len(self.dims)) if k != self.feature)
        return self.comp.add(_O.REDUCE, [x, self.scalar(0.0)],
                             shape=Shape.array(self.ct, (self.features,)),
                             dimensions=reduced, to_apply=self._add)

    def feature_mean(self, x: HloInstruction) -> HloInstruction:
        return self.op(_O.DIVIDE, self.feature_sum(x), self.per_feature(float(self.count)))

    def rstd(self, var: HloInstruction) -> HloInstruction:
        return self.op(_O.RSQRT, self.op(_O.ADD, var, self.per_feature(self.epsilon)))

    def finish(self, *results: HloInstruction) -> HloComputation:
        outs = [self.to(r, self.t) for r in results]
        root = outs[0] if len(outs) == 1 else self.comp.add(_O.TUPLE, outs)
        self.comp.set_root(root)
        return self.comp


def _batch_norm_training(instr: HloInstruction) -> HloComputation:
    """(x, scale, offset) => (scale * (x - mean) * rsqrt(var + eps) + offset, mean, var)."""
    e = _Builder(instr)
    x, scale, offset = e.param(0), e.param(1), e.param(2)
    mean = e.feature_mean(x)
    centered = e.op(_O.SUBTRACT, x, e.spread(mean))
    var = e.feature_mean(e.op(_O.MULTIPLY, centered, centered))
    normal = e.op(_O.MULTIPLY, centered, e.spread(e.rstd(var)))
    y = e.op(_O.ADD, e.op(_O.MULTIPLY, normal, e.spread(scale)), e.spread(offset))
    return e.finish(y, mean, var)


def _batch_norm_inference(instr: HloInstruction) -> HloComputation:
    """(x, scale, offset, mean, var) => scale * (x - mean) * rsqrt(var + eps) + offset."""
    e = _Builder(instr)
    x, scale, offset, mean, var = (e.param(k) for k in range(5))
    centered = e.op(_O.SUBTRACT, x, e.spread(mean))
    factor = e.op(_O.MULTIPLY, e.rstd(var), scale)
    y = e.op(_O.ADD, e.op(_O.MULTIPLY, centered, e.spread(factor)), e.spread(offset))
    return e.finish(y)


def _batch_norm_grad(instr: HloInstruction) -> HloComputation:
    """(x, scale, mean, var, dy) => (grad x, grad scale, grad offset) with c = x - mean,
    r = rsqrt(var + eps): grad scale = sum(dy c) r, grad offset = sum(dy),
    grad x = scale r (dy - mean(dy) - c mean(dy c) r^2)."""
    e = _Builder(instr)
    x, scale, mean, var, dy = (e.param(k) for k in range(5))
    centered = e.op(_O.SUBTRACT, x, e.spread(mean))
    r = e.rstd(var)
    sum_dy = e.feature_sum(dy)
    sum_dy_c = e.feature_sum(e.op(_O.MULTIPLY, dy, centered))
    count = e.per_feature(float(e.count))
    mean_dy = e.op(_O.DIVIDE, sum_dy, count)
    mean_dy_c_r2 = e.op(_O.MULTIPLY, e.op(_O.DIVIDE, sum_dy_c, count), e.op(_O.MULTIPLY, r, r))
    inner = e.op(_O.SUBTRACT, e.op(_O.SUBTRACT, dy, e.spread(mean_dy)),
                 e.op(_O.MULTIPLY, centered, e.spread(mean_dy_c_r2)))
    grad_x = e.op(_O.MULTIPLY, e.spread(e.op(_O.MULTIPLY, scale, r)), inner)
    return e.finish(grad_x, e.op(_O.MULTIPLY, sum_dy_c, r), sum_dy)


EXPANSIONS: dict[Opcode, Expansion] = {
    _O.BATCH_NORM_TRAINING: _batch_norm_training,
    _O.BATCH_NORM_INFERENCE: _batch_norm_inference,
    _O.BATCH_NORM_GRAD: _batch_norm_grad,
}
