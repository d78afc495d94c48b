"""Serial GPU kernels: the CPU backend's loop code for an instruction, run on one GPU thread.

For the operations that have no parallel GPU kernel yet, `emit_serial` builds a kernel of
one thread whose body is the CPU kernel emitter of `backends.cpu.kernels.CPU_KERNELS`
(its loops are plain LLVM IR, which NVPTX compiles as well as x86). The adapter below
offers those emitters the CPU `KernelContext`: the builder of the GPU kernel, its operand
and output buffers, scratch arrays carved from one scratch argument, and scalar
computations emitted inline. Calls of whole computations are not available (control flow
is driven by the host). This is correct but slow for large inputs: every opcode listed in
SERIAL_KERNELS is a candidate for a parallel kernel of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from llvmlite import ir

from backends.cpu.kernels import CPU_KERNELS
from backends.elemental_movement import scalar_constant
from backends.gpu.kernels import KernelContext, KernelFunction, emit_scalar_computation
from backends.gpu.launch import single_thread
from backends.gpu.plan import BufferValue, Slot, leaves
from backends.llvm.index import IrIndex
from backends.llvm.ir_array import IrArray
from backends.gpu.target_math import GpuMath
from hlo.computation import HloComputation
from hlo.errors import InternalError, UnsupportedOpError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

# Opcodes run serially on one thread, and why there is no parallel kernel yet.
SERIAL_KERNELS: dict[Opcode, str] = {
    Opcode.FFT: "TODO(#8): a parallel DFT per output element",
    Opcode.CHOLESKY: "a sequential factorisation; one thread per matrix would do",
    Opcode.TRIANGULAR_SOLVE: "a sequential substitution; one thread per right-hand side",
    Opcode.RNG_BIT_GENERATOR: "TODO(#8): one thread per counter block",
    Opcode.RNG: "TODO(#8): one thread per counter block",
    Opcode.BATCH_NORM_TRAINING: "TODO(#8): expand into elementwise ops and reductions",
    Opcode.BATCH_NORM_INFERENCE: "TODO(#8): expand into elementwise ops",
    Opcode.BATCH_NORM_GRAD: "TODO(#8): expand into elementwise ops and reductions",
}


class SerialContext:
    """The CPU KernelContext over one single-thread GPU kernel."""

    def __init__(self, kernel: KernelFunction, instr: HloInstruction, math: GpuMath,
                 operands: Sequence[BufferValue]) -> None:
        self.kernel = kernel
        self.instr = instr
        self.builder = kernel.builder
        self.module = kernel.module
        self.math = math
        arrays = iter(kernel.inputs)
        self.operands = [_rebuild(v, arrays) for v in operands]
        self._by_operand = {id(o): v for o, v in zip(instr.operands, self.operands)}

    def elemental(self, instr: HloInstruction) -> Callable[[IrIndex], ir.Value]:
        if instr.opcode is Opcode.CONSTANT and instr.shape.rank == 0:
            value = scalar_constant(instr)
            return lambda index: value
        array = self._by_operand.get(id(instr))
        if not isinstance(array, IrArray):
            raise InternalError(f"{instr.name} is not an array operand of {self.instr.name}")
        b = self.builder
        return lambda index: array.load(b, index)

    def call_scalar_computation(self, comp: HloComputation, args: Sequence[ir.Value]
                                ) -> list[ir.Value]:
        return emit_scalar_computation(self.builder, self.math, comp, args)

    def call_computation(self, comp: HloComputation, args: Sequence[Any], out: Any) -> None:
        raise UnsupportedOpError(
            f"{self.instr.name}: a GPU kernel cannot call the computation {comp.name}"
        )

    def temp_array(self, shape: Shape, name: str = "tmp") -> Any:
        if shape.is_tuple:
            return tuple(self.temp_array(s, name) for s in shape.tuple_shapes)
        if not shape.is_array:
            return None
        return self.kernel.scratch_array(shape)


def _rebuild(value: BufferValue, arrays: Iterator[IrArray]) -> Any:
    """`value`'s structure with each slot replaced by the next kernel argument array."""
    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(_rebuild(v, arrays) for v in value)
    return next(arrays)


def emit_serial(ctx: KernelContext, instr: HloInstruction) -> None:
    """Run the CPU kernel of `instr` on one GPU thread."""
    from backends.cpu.compiler import load_kernels

    load_kernels()
    cpu_kernel = CPU_KERNELS.get(instr.opcode)
    if cpu_kernel is None:
        raise UnsupportedOpError(f"the GPU backend has no kernel for {instr.opcode.value} "
                                 f"({instr.name})")
    outputs = leaves(ctx.out)
    if all(s.shape.num_elements == 0 for s in outputs):
        return
    inputs: list[Slot] = [s for v in ctx.operands for s in leaves(v)]
    kernel = ctx.kernel("serial", outputs, inputs, scratch=True)
    if kernel.is_new:
        serial = SerialContext(kernel, instr, ctx.math, ctx.operands)
        out = _rebuild(ctx.out, iter(kernel.outputs))
        cpu_kernel(serial, instr, serial.operands, out)
        kernel.finish()
    ctx.launch(kernel, single_thread())
