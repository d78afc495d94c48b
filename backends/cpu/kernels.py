"""The table of CPU kernel emitters for instructions that are not elemental.

Elemental instructions (see `backends.elemental.EMIT`) are emitted as loops over the root
generator by `backends.cpu.loops`. Everything else (dot, convolution, reductions, sort,
gather/scatter, control flow, ...) has one entry here, keyed by opcode, registered with
`@emits(...)`. This file fixes the interface between the CPU compiler driver and the kernels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from llvmlite import ir

from hlo.computation import HloComputation
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode

# A compile-time value of an instruction: an IrArray for arrays (see
# backends/llvm/ir_array.py), or a tuple of such values for tuple shapes.
BufferValue = Any


class KernelContext(Protocol):
    """What the CPU driver offers a kernel emitter while it emits one instruction."""

    builder: ir.IRBuilder          # positioned where the kernel's code goes
    module: ir.Module              # the LLVM module being built
    math: Any                      # backends.target_math.TargetMath for this target

    def elemental(self, instr: HloInstruction) -> Callable[[Any], ir.Value]:
        """The per-element generator (IrIndex -> value) of an elemental `instr`."""

    def call_scalar_computation(
        self, comp: HloComputation, args: Sequence[ir.Value]
    ) -> list[ir.Value]:
        """Emit `comp` (a combiner/comparator over scalars) on register values at the
        builder's position; returns the root's scalar value(s) (several for tuple roots)."""

    def call_computation(
        self, comp: HloComputation, args: Sequence[BufferValue], out: BufferValue
    ) -> None:
        """Emit a call of a (non-scalar) computation that reads `args` buffers and writes its
        result into the `out` buffers (used by while/conditional/call/map)."""

    def temp_array(self, shape: Any, name: str = "tmp") -> BufferValue:
        """A scratch buffer of `shape` for the duration of this kernel."""


# kernel(ctx, instr, operand buffer values, output buffer value) -> None
KernelEmitter = Callable[[KernelContext, HloInstruction, list[BufferValue], BufferValue], None]

CPU_KERNELS: dict[Opcode, KernelEmitter] = {}


def emits(*opcodes: Opcode) -> Callable[[KernelEmitter], KernelEmitter]:
    """Register a kernel emitter for `opcodes` in CPU_KERNELS."""

    def register(fn: KernelEmitter) -> KernelEmitter:
        for op in opcodes:
            if op in CPU_KERNELS:
                raise AssertionError(f"two CPU kernels for {op.value}")
            CPU_KERNELS[op] = fn
        return fn

    return register
