"""Input fusions on the GPU: a reduce computed straight from the producers of its inputs.

The fusion pass makes a `fusion` whose root is a `reduce` and whose other instructions are
elementwise or movement ops (XLA's kInput). Running each of those instructions as a kernel
of its own would write and re-read every intermediate and cost a launch apiece (a small
training step had 6 kernels for one such fusion). Here the reduce's kernels (reduction.py)
read their inputs and initial values through `FusedSource`, whose arrays evaluate the fused
expression at each index they are asked for, from the fusion's operand buffers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from backends.elemental import EMIT, ElementalEmitter, GeneratedArray, Generator
from backends.elemental_movement import scalar_constant
from backends.gpu.kernels import (
    KernelContext,
    KernelFunction,
    buffer_operands,
    is_scalar_constant,
    operand_generators,
)
from backends.gpu.plan import Slot
from backends.gpu.reduction import emit_reduce_from
from backends.scalar_computation import fixed_generator
from hlo.computation import HloComputation
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode


def is_input_fusion(instr: HloInstruction) -> bool:
    """True for a fusion whose root is a reduce and whose other instructions all have
    elemental emitters and array shapes."""
    comp: HloComputation = instr.attrs["calls"]
    root = comp.root
    if root is None or root.opcode is not Opcode.REDUCE:
        return False
    return all(i.opcode in EMIT and i.shape.is_array for i in comp.post_order() if i is not root)


class FusedSource:
    """The ReduceSource of an input fusion: every kernel binds the fusion's operand buffers
    and evaluates the reduce's operands from them."""

    def __init__(self, ctx: KernelContext, fusion: HloInstruction) -> None:
        self.ctx = ctx
        self.fusion = fusion
        comp: HloComputation = fusion.attrs["calls"]
        assert comp.root is not None
        self.reduce = comp.root
        self.count = len(self.reduce.operands) // 2
        self.buffers = buffer_operands(fusion.operands, ctx.operands)

    @property
    def slots(self) -> list[Slot]:
        return list(self.buffers)

    @property
    def init_slots(self) -> list[Slot]:
        return list(self.buffers)

    def inputs(self, kernel: KernelFunction) -> list[Any]:
        return self._arrays(kernel, 0, self.reduce.operands[:self.count])

    def walk_inits(self, kernel: KernelFunction) -> list[Any]:
        return self._arrays(kernel, 0, self.reduce.operands[self.count:])

    def combine_inits(self, kernel: KernelFunction, first: int) -> list[Any]:
        return self._arrays(kernel, first, self.reduce.operands[self.count:])

    def _arrays(self, kernel: KernelFunction, first: int,
                targets: Sequence[HloInstruction]) -> list[Any]:
        """Generated arrays of `targets` over the fusion operands bound from input `first`."""
        operands = operand_generators(kernel, self.fusion.operands, first_input=first)
        params = {k: operands[o] for k, o in enumerate(self.fusion.operands)}
        emitter = ElementalEmitter(kernel.builder, self.ctx.math, params)
        gens: dict[HloInstruction, Generator] = {}
        for target in targets:
            for instr in target.walk_operands():
                if instr in gens:
                    continue
                if is_scalar_constant(instr):
                    gens[instr] = fixed_generator(scalar_constant(instr))
                else:
                    gens[instr] = emitter.generator(instr, {o: gens[o] for o in instr.operands})
        return [GeneratedArray(gens[t], t.shape) for t in targets]


def emit_input_fusion(ctx: KernelContext, instr: HloInstruction) -> None:
    """The reduce kernels of an input fusion, reading the fused expression."""
    source = FusedSource(ctx, instr)
    emit_reduce_from(ctx, source.reduce, source)
