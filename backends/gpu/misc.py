"""Serial GPU kernels (the CPU backend's loop code on one GPU thread), and tiled transposes.

For the operations that have no parallel GPU kernel yet, `emit_serial` builds a kernel of
one thread whose body is the CPU kernel emitter of `backends.cpu.kernels.CPU_KERNELS`
(its loops are plain LLVM IR, which NVPTX compiles as well as x86). The adapter below
offers those emitters the CPU `KernelContext`: the builder of the GPU kernel, its operand
and output buffers, scratch arrays carved from one scratch argument, and scalar
computations emitted inline. Calls of whole computations are not available (control flow
is driven by the host). This is correct but slow for large inputs: every opcode listed in
SERIAL_KERNELS is a candidate for a parallel kernel of its own.

A transpose that moves the minor dimension is staged through shared-memory tiles, so that
neighbouring threads read neighbouring input elements and write neighbouring outputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from llvmlite import ir

from backends.cpu.kernels import CPU_KERNELS
from backends.elemental_movement import scalar_constant
from backends.gpu.kernels import (
    KernelContext,
    KernelFunction,
    emit_elemental,
    emits_gpu,
    operand_slots,
    out_slot,
)
from backends.gpu.launch import (
    LaunchDims,
    barrier,
    block_id,
    ceil_div,
    shared_array,
    shared_element,
    single_thread,
    storage_register,
    thread_id,
    wide,
)
from backends.gpu.plan import BufferValue, Slot, leaves
from backends.gpu.target_math import GpuMath
from backends.llvm.index import IrIndex, delinearize
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import I1, I8, i64, llvm_type
from backends.scalar_computation import emit_scalar_computation
from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType
from hlo.errors import InternalError, UnsupportedOpError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

# Opcodes run serially on one thread, and why there is no parallel kernel yet.
SERIAL_KERNELS: dict[Opcode, str] = {
    Opcode.CHOLESKY: "a sequential factorisation; one thread per matrix would do",
    Opcode.TRIANGULAR_SOLVE: "a sequential substitution; one thread per right-hand side",
    Opcode.RNG_BIT_GENERATOR: "TODO(#8): one thread per counter block",
    Opcode.RNG: "TODO(#8): one thread per counter block",
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
        self._by_operand = {id(o): v for o, v in zip(instr.operands, self.operands, strict=True)}

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


# --- transpose through shared memory -----------------------------------------------------------

TILE = 32
TILE_ROWS = 8  # threads per block are TILE x TILE_ROWS; each moves TILE / TILE_ROWS elements


@emits_gpu(Opcode.TRANSPOSE)
def emit_transpose(ctx: KernelContext, instr: HloInstruction) -> None:
    """A transpose that moves the minor dimension goes through 32 x 32 shared-memory tiles,
    so that both its reads and its writes are coalesced; any other one is elemental."""
    out = out_slot(ctx)
    perm = tuple(instr.attrs["dimensions"])
    rank = len(perm)
    if out.shape.num_elements == 0:
        return
    if rank < 2 or perm[-1] == rank - 1:
        emit_elemental(ctx, instr)
        return
    dims = instr.operands[0].shape.dims
    minor, outer = rank - 1, perm[-1]
    rest = [d for d in range(rank) if d not in (minor, outer)]
    blocks = ceil_div(dims[minor], TILE) * ceil_div(dims[outer], TILE) * math.prod(
        dims[d] for d in rest)
    kernel = ctx.kernel("tiled", [out], operand_slots(ctx))
    if kernel.is_new:
        _fill_transpose(kernel, perm, minor, outer, rest)
    ctx.launch(kernel, LaunchDims((blocks, 1, 1), (TILE, TILE_ROWS, 1)))


def _fill_transpose(kernel: KernelFunction, perm: Sequence[int], minor: int, outer: int,
                    rest: Sequence[int]) -> None:
    b = kernel.builder
    src = kernel.inputs[0]
    dst = kernel.outputs[0]
    dims = src.shape.dims
    elem = storage_register(llvm_type(src.element_type))
    tile = shared_array(kernel.module, f"{kernel.name}_tile", elem, TILE * (TILE + 1))
    tiles_minor = ceil_div(dims[minor], TILE)
    tiles_outer = ceil_div(dims[outer], TILE)
    block = wide(b, block_id(b))
    minor0 = b.mul(b.urem(block, i64(tiles_minor)), i64(TILE))
    block = b.udiv(block, i64(tiles_minor))
    outer0 = b.mul(b.urem(block, i64(tiles_outer)), i64(TILE))
    rest_index = delinearize(b, b.udiv(block, i64(tiles_outer)), [dims[d] for d in rest])
    tx = wide(b, thread_id(b, "x"))
    ty = wide(b, thread_id(b, "y"))

    def index(minor_value: ir.Value, outer_value: ir.Value) -> list[ir.Value]:
        values = [i64(0)] * len(dims)
        values[minor] = minor_value
        values[outer] = outer_value
        for d, v in zip(rest, rest_index, strict=True):
            values[d] = v
        return values

    def inside(minor_value: ir.Value, outer_value: ir.Value) -> ir.Value:
        return b.and_(b.icmp_unsigned("<", minor_value, i64(dims[minor])),
                      b.icmp_unsigned("<", outer_value, i64(dims[outer])))

    for j in range(0, TILE, TILE_ROWS):
        row = b.add(ty, i64(j))
        m, o = b.add(minor0, tx), b.add(outer0, row)
        with b.if_then(inside(m, o)):
            value = src.load(b, index(m, o))
            slot = b.add(b.mul(row, i64(TILE + 1)), tx)
            b.store(_stored(b, value), shared_element(b, tile, slot))
    barrier(b)
    for j in range(0, TILE, TILE_ROWS):
        row = b.add(ty, i64(j))
        m, o = b.add(minor0, row), b.add(outer0, tx)
        with b.if_then(inside(m, o)):
            slot = b.add(b.mul(tx, i64(TILE + 1)), row)
            value = _loaded(b, b.load(shared_element(b, tile, slot)), src.element_type)
            source = index(m, o)
            dst.store(b, [source[p] for p in perm], value)
    kernel.finish()


def _stored(b: ir.IRBuilder, value: ir.Value) -> ir.Value:
    return b.zext(value, I8) if value.type == I1 else value


def _loaded(b: ir.IRBuilder, value: ir.Value, t: PrimitiveType) -> ir.Value:
    return b.icmp_unsigned("!=", value, ir.Constant(I8, 0)) if t is PrimitiveType.PRED else value
