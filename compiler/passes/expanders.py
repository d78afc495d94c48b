"""Expanders: rewrite ops the backends would rather not see as one kernel into plain HLO.

`BatchNormExpander` turns batch-norm-training, -inference and -grad into reductions and
elementwise arithmetic (each kind optional), so that fusion can merge them with their
neighbours. f16 and bf16 inputs are computed in f32 and converted back, as the evaluator
computes in higher precision too. Logistic is deliberately not expanded: every backend
emits it directly, and 1 / (1 + exp(-x)) overflows where the direct form does not.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from compiler.pipeline import computations_to_visit
from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType
from hlo.instruction import HloInstruction
from hlo.module import HloModule
from hlo.opcodes import Opcode
from hlo.shape import Shape

log = logging.getLogger(__name__)

_LOW_PRECISION = (PrimitiveType.F16, PrimitiveType.BF16)


class _Math:
    """Builds the per-feature arithmetic of one batch-norm instruction."""

    def __init__(self, comp: HloComputation, instr: HloInstruction,
                 adders: dict[PrimitiveType, HloComputation]) -> None:
        self.comp = comp
        x = instr.operands[0]
        self.io_type = x.shape.element_type
        self.type = PrimitiveType.F32 if self.io_type in _LOW_PRECISION else self.io_type
        self.dims = x.shape.dims
        self.feature = instr.attrs["feature_index"]
        self.epsilon = instr.attrs["epsilon"]
        self.others = tuple(d for d in range(len(self.dims)) if d != self.feature)
        self.count = math.prod(self.dims[d] for d in self.others)
        self.adders = adders

    def load(self, value: HloInstruction) -> HloInstruction:
        """`value` in the working type."""
        if value.shape.element_type is self.type:
            return value
        return self.comp.add(Opcode.CONVERT, [value],
                             shape=value.shape.with_element_type(self.type))

    def store(self, value: HloInstruction) -> HloInstruction:
        """`value` back in the input's type."""
        if self.type is self.io_type:
            return value
        return self.comp.add(Opcode.CONVERT, [value],
                             shape=value.shape.with_element_type(self.io_type))

    def scalar(self, value: float, dims: tuple[int, ...]) -> HloInstruction:
        c = self.comp.add(Opcode.CONSTANT, shape=Shape.scalar(self.type),
                          literal=np.asarray(value, dtype=self.type.numpy))
        if not dims:
            return c
        return self.comp.add(Opcode.BROADCAST, [c], shape=Shape.array(self.type, dims),
                             dimensions=())

    def spread(self, per_feature: HloInstruction) -> HloInstruction:
        """A per-feature vector broadcast along every other dimension of the input."""
        return self.comp.add(Opcode.BROADCAST, [per_feature],
                             shape=Shape.array(self.type, self.dims),
                             dimensions=(self.feature,))

    def sum_per_feature(self, value: HloInstruction) -> HloInstruction:
        zero = self.scalar(0.0, ())
        return self.comp.add(Opcode.REDUCE, [value, zero], dimensions=self.others,
                             to_apply=self.adder())

    def adder(self) -> HloComputation:
        found = self.adders.get(self.type)
        if found is None:
            module = self.comp.parent
            assert module is not None
            found = module.new_computation(f"bn_add_{self.type.value}")
            a = found.add(Opcode.PARAMETER, shape=Shape.scalar(self.type), parameter_number=0)
            b = found.add(Opcode.PARAMETER, shape=Shape.scalar(self.type), parameter_number=1)
            found.set_root(found.add(Opcode.ADD, [a, b]))
            self.adders[self.type] = found
        return found

    def mean_per_feature(self, value: HloInstruction) -> HloInstruction:
        total = self.sum_per_feature(value)
        return self.op(Opcode.DIVIDE, total, self.scalar(float(self.count), total.shape.dims))

    def rstd(self, variance: HloInstruction) -> HloInstruction:
        """1 / sqrt(variance + epsilon), per feature."""
        eps = self.scalar(self.epsilon, variance.shape.dims)
        return self.op(Opcode.RSQRT, self.op(Opcode.ADD, variance, eps))

    def op(self, opcode: Opcode, *operands: HloInstruction) -> HloInstruction:
        """An elementwise op or the like, its shape inferred."""
        return self.comp.add(opcode, list(operands))


def _training(m: _Math, instr: HloInstruction) -> HloInstruction:
    """y = (x - mean) * rsqrt(var + eps) * scale + offset, with the batch statistics."""
    x, scale, offset = (m.load(o) for o in instr.operands)
    mean = m.mean_per_feature(x)
    centered = m.op(Opcode.SUBTRACT, x, m.spread(mean))
    variance = m.mean_per_feature(m.op(Opcode.MULTIPLY, centered, centered))
    factor = m.op(Opcode.MULTIPLY, m.rstd(variance), scale)
    y = m.op(Opcode.ADD, m.op(Opcode.MULTIPLY, centered, m.spread(factor)), m.spread(offset))
    parts = [m.store(y), m.store(mean), m.store(variance)]
    return m.comp.add(Opcode.TUPLE, parts, shape=instr.shape)


def _inference(m: _Math, instr: HloInstruction) -> HloInstruction:
    """y = (x - mean) * (rsqrt(var + eps) * scale) + offset, with the given statistics."""
    x, scale, offset, mean, variance = (m.load(o) for o in instr.operands)
    factor = m.op(Opcode.MULTIPLY, m.rstd(variance), scale)
    centered = m.op(Opcode.SUBTRACT, x, m.spread(mean))
    y = m.op(Opcode.ADD, m.op(Opcode.MULTIPLY, centered, m.spread(factor)), m.spread(offset))
    return m.store(y)


def _grad(m: _Math, instr: HloInstruction) -> HloInstruction:
    """grad_x = scale * r * (dy - mean(dy) - c * mean(dy * c) * r^2), c = x - mean,
    r = rsqrt(var + eps); grad_scale = sum(dy * c) * r; grad_offset = sum(dy)."""
    x, scale, mean, variance, dy = (m.load(o) for o in instr.operands)
    centered = m.op(Opcode.SUBTRACT, x, m.spread(mean))
    r = m.rstd(variance)
    sum_dy = m.sum_per_feature(dy)
    sum_dy_c = m.sum_per_feature(m.op(Opcode.MULTIPLY, dy, centered))
    grad_scale = m.op(Opcode.MULTIPLY, sum_dy_c, r)
    n = m.scalar(float(m.count), sum_dy.shape.dims)
    mean_dy = m.op(Opcode.DIVIDE, sum_dy, n)
    r_squared = m.op(Opcode.MULTIPLY, r, r)
    mean_dy_c_r2 = m.op(Opcode.MULTIPLY, m.op(Opcode.DIVIDE, sum_dy_c, n), r_squared)
    inner = m.op(Opcode.SUBTRACT, m.op(Opcode.SUBTRACT, dy, m.spread(mean_dy)),
                 m.op(Opcode.MULTIPLY, centered, m.spread(mean_dy_c_r2)))
    grad_x = m.op(Opcode.MULTIPLY, m.spread(m.op(Opcode.MULTIPLY, scale, r)), inner)
    parts = [m.store(grad_x), m.store(grad_scale), m.store(sum_dy)]
    return m.comp.add(Opcode.TUPLE, parts, shape=instr.shape)


_EXPANSIONS = {
    Opcode.BATCH_NORM_TRAINING: ("training", _training),
    Opcode.BATCH_NORM_INFERENCE: ("inference", _inference),
    Opcode.BATCH_NORM_GRAD: ("grad", _grad),
}


@dataclass(frozen=True)
class BatchNormOptions:
    """Which batch-norm kinds to expand."""

    training: bool = True
    inference: bool = True
    grad: bool = True


class BatchNormExpander:
    """Expands batch-norm-{training,inference,grad} into reductions and elementwise ops."""

    name: ClassVar[str] = "batchnorm_expander"

    def __init__(self, options: BatchNormOptions | None = None) -> None:
        self.options = options or BatchNormOptions()

    def run(self, module: HloModule) -> bool:
        adders: dict[PrimitiveType, HloComputation] = {}
        changed = False
        for comp in computations_to_visit(module):
            for instr in list(comp.instructions):
                expansion = _EXPANSIONS.get(instr.opcode)
                if expansion is None or not getattr(self.options, expansion[0]):
                    continue
                result = expansion[1](_Math(comp, instr, adders), instr)
                log.debug("batchnorm_expander: expanded %s", instr.name)
                instr.replace_all_uses_with(result)
                comp.remove(instr)
                changed = True
            if changed:
                comp.remove_dead()
        return changed
