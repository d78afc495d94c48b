"""GPU kernels: the kernel function, the kernel table, and one-thread-per-element kernels.

A `KernelFunction` is an LLVM function with the `ptx_kernel` calling convention and one
pointer argument per buffer (outputs first, then inputs), each `noalias`; inputs are read
with `!invariant.load` so that NVPTX uses the read-only data path. Kernels are built once
per instruction and launched once per call site, with that site's buffers.

`GPU_KERNELS` maps an opcode to its emitter `(ctx, instr) -> None`, registered with
`@emits_gpu`; the emitter asks the context for kernels, fills the new ones with IR and
records their launches (see `KernelContext`). Elemental instructions (`backends.elemental`)
need no entry: `emit_elemental` wraps their generator in a grid-stride loop, one thread
per output element, which is the only place the GPU turns a generator into a kernel. Loop
fusions become one such kernel over the fused expression, and `map` one over its scalar
computation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from llvmlite import ir

from backends.elemental import EMIT, ElementalEmitter, Generator
from backends.elemental_movement import scalar_constant
from backends.gpu.lanes import LaneLoads, store_lanes, vectorizable
from backends.gpu.launch import LaunchDims, for_elements, grid_stride_loop
from backends.gpu.plan import BufferValue, Slot
from backends.gpu.target_math import GpuMath
from backends.llvm.index import IrIndex
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import I8, PTR, i64
from backends.scalar_computation import fixed_generator
from hlo.computation import HloComputation
from hlo.errors import CompileError, InternalError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

Operands = Mapping[HloInstruction, Generator]

# The alignment promised for every buffer argument (lets NVPTX use 16-byte vector accesses).
ARG_ALIGNMENT = 16
# Consecutive elements per thread in per-element kernels (one 16-byte access for f32).
UNROLL = 4


class KernelFunction:
    """One PTX kernel under construction: `void name(ptr outputs..., ptr inputs...[, scratch])`.

    Attributes:
        name: the kernel's symbol (a valid PTX identifier).
        fn: the LLVM function.
        builder: positioned in the body; the entry block is kept for allocas.
        outputs / inputs: the buffer arguments as IrArrays.
        scratch: the i8 pointer of the scratch buffer argument, or None.
        scratch_bytes: bytes of scratch the kernel uses (grown by `scratch_array`).
        is_new: True until the kernel has been filled once; a kernel found in the cache
            must not be filled again.
    """

    def __init__(self, module: ir.Module, name: str, outputs: Sequence[Shape],
                 inputs: Sequence[Shape], scratch: bool = False) -> None:
        count = len(outputs) + len(inputs) + (1 if scratch else 0)
        self.name = name
        self.fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR] * count), name=name)
        self.fn.calling_convention = "ptx_kernel"
        self.fn.attributes.add("nounwind")
        for arg in self.fn.args:
            arg.add_attribute("noalias")
            # Every slot starts at a multiple of 256 bytes of a pool (see compiler.ALIGNMENT).
            arg.attributes.align = ARG_ALIGNMENT
        self._entry = self.fn.append_basic_block("entry")
        self.builder = ir.IRBuilder(self.fn.append_basic_block("body"))
        args = list(self.fn.args)
        self.outputs = [IrArray(a, s) for a, s in zip(args, outputs, strict=False)]
        self.inputs = [IrArray(a, s, invariant=True)
                       for a, s in zip(args[len(outputs):], inputs, strict=False)]
        self.scratch: ir.Value | None = args[-1] if scratch else None
        self.scratch_bytes = 0
        self.is_new = True
        self.finished = False

    @property
    def module(self) -> ir.Module:
        return self.fn.module

    def scratch_array(self, shape: Shape) -> IrArray:
        """A fresh region of the scratch argument for an array of `shape` (256-byte aligned)."""
        if self.scratch is None:
            raise InternalError(f"kernel {self.name} has no scratch argument")
        offset = self.scratch_bytes
        self.scratch_bytes += -(-max(shape.byte_size, 1) // 256) * 256
        ptr = ir.IRBuilder(self._entry).gep(self.scratch, [i64(offset)], inbounds=True,
                                            source_etype=I8)
        return IrArray(ptr, shape)

    def entry_builder(self) -> ir.IRBuilder:
        """A builder at the end of the entry block (for allocas and hoisted pointers)."""
        return ir.IRBuilder(self._entry)

    def finish(self) -> None:
        """Close the body and link the entry block to it."""
        if self.finished:
            raise InternalError(f"kernel {self.name} finished twice")
        self.builder.ret_void()
        ir.IRBuilder(self._entry).branch(self.fn.blocks[1])
        self.finished = True
        self.is_new = False


class KernelContext(Protocol):
    """What the GPU driver offers a kernel emitter for one instruction at one call site."""

    instr: HloInstruction
    operands: list[BufferValue]   # the operands' slots
    out: BufferValue              # the slots the instruction writes
    module: ir.Module
    math: GpuMath

    def kernel(self, role: str, outputs: Sequence[Slot], inputs: Sequence[Slot],
               scratch: bool = False) -> KernelFunction:
        """The kernel `role` of this instruction, bound to these slots for `launch`.

        Built on first request (is_new True: the emitter fills it and calls finish),
        reused afterwards for other call sites of the same instruction.
        """

    def launch(self, kernel: KernelFunction, dims: LaunchDims) -> None:
        """Record a launch of `kernel` with the slots given to `kernel()`."""

    def temp(self, shape: Shape) -> BufferValue:
        """Fresh device buffers for a value of `shape`, for this call site."""

    def copy(self, dst: BufferValue, src: BufferValue) -> None:
        """Record device-to-device copies of every leaf of `src` into `dst`."""

    def scalar_computation(self, b: ir.IRBuilder, comp: HloComputation,
                           args: Sequence[ir.Value]) -> list[ir.Value]:
        """Emit `comp` on register values at `b`; returns the root's leaves."""


GpuKernelEmitter = Callable[[KernelContext, HloInstruction], None]

GPU_KERNELS: dict[Opcode, GpuKernelEmitter] = {}


def emits_gpu(*opcodes: Opcode) -> Callable[[GpuKernelEmitter], GpuKernelEmitter]:
    """Register a GPU kernel emitter for `opcodes` in GPU_KERNELS."""

    def register(fn: GpuKernelEmitter) -> GpuKernelEmitter:
        for op in opcodes:
            if op in GPU_KERNELS:
                raise AssertionError(f"two GPU kernels for {op.value}")
            GPU_KERNELS[op] = fn
        return fn

    return register


def out_slot(ctx: KernelContext) -> Slot:
    """The instruction's single output slot (array-shaped instructions)."""
    if not isinstance(ctx.out, Slot):
        raise InternalError(f"{ctx.instr.name}: expected an array output, got {ctx.out!r}")
    return ctx.out


def operand_slots(ctx: KernelContext) -> list[Slot]:
    """The operands' slots (array operands only)."""
    slots = []
    for operand, value in zip(ctx.instr.operands, ctx.operands, strict=True):
        if not isinstance(value, Slot):
            raise InternalError(f"{ctx.instr.name}: operand {operand.name} is not an array")
        slots.append(value)
    return slots


# --- one thread per output element -----------------------------------------------------------


def is_scalar_constant(instr: HloInstruction) -> bool:
    return instr.opcode is Opcode.CONSTANT and instr.shape.is_array and instr.shape.rank == 0


def operand_generators(kernel: KernelFunction, operands: Sequence[HloInstruction],
                       first_input: int = 0, lanes: LaneLoads | None = None
                       ) -> dict[HloInstruction, Generator]:
    """Generators reading `operands`: rank-0 constants as immediates, the others from the
    kernel's inputs `first_input`, `first_input + 1`, ... in order (through `lanes`, which
    turns a thread's reads of its own elements into vector loads, when given)."""
    gens: dict[HloInstruction, Generator] = {}
    k = first_input
    b = kernel.builder
    for operand in operands:
        if operand in gens:
            continue
        if is_scalar_constant(operand):
            gens[operand] = fixed_generator(scalar_constant(operand))
            continue
        array = kernel.inputs[k]
        gens[operand] = _loader(b, array, lanes)
        k += 1
    return gens


def _loader(b: ir.IRBuilder, array: IrArray, lanes: LaneLoads | None) -> Generator:
    if lanes is None:
        return lambda index: array.load(b, index)
    return lambda index: lanes.load(b, array, index)


def buffer_operands(operands: Sequence[HloInstruction], slots: Sequence[BufferValue]
                    ) -> list[Slot]:
    """The slots a per-element kernel reads: each distinct non-immediate operand once."""
    seen: set[int] = set()
    out: list[Slot] = []
    for operand, slot in zip(operands, slots, strict=True):
        if id(operand) in seen or is_scalar_constant(operand):
            continue
        seen.add(id(operand))
        if not isinstance(slot, Slot):
            raise InternalError(f"operand {operand.name} of a per-element kernel is a tuple")
        out.append(slot)
    return out


def element_loop_kernel(
    ctx: KernelContext,
    role: str,
    out: Slot,
    operands: Sequence[HloInstruction],
    slots: Sequence[BufferValue],
    build: Callable[[KernelFunction, dict[HloInstruction, Generator]], Generator],
) -> None:
    """A kernel storing generator(index) at every index of `out`.

    Each thread computes UNROLL consecutive elements per item, reading the operands it needs
    at those same elements with one vector load each and writing them with one vector store
    (see lanes.py); the last `n % UNROLL` elements are computed one per thread by a second
    loop. `build(kernel, operand generators)` returns the generator; it runs only when the
    kernel is new.
    """
    n = out.shape.num_elements
    if n == 0:
        return
    # Complex elements are structs, which LLVM vectors cannot hold: one element per thread.
    width = UNROLL if vectorizable(out.shape.element_type) else 1
    items, tail = divmod(n, width)
    kernel = ctx.kernel(role, [out], buffer_operands(operands, slots))
    if kernel.is_new:
        b = kernel.builder
        lanes = LaneLoads(n, width) if width > 1 else None
        generator = build(kernel, operand_generators(kernel, operands, lanes=lanes))
        target = kernel.outputs[0]
        if lanes is not None and items:
            with grid_stride_loop(b, items) as item:
                first = b.mul(item, i64(width), flags=["nuw", "nsw"])
                offsets = lanes.begin(b, first)
                values = [generator(IrIndex.from_linear(b, i, out.shape)) for i in offsets]
                store_lanes(b, target, first, values)
                lanes.end()
        # The elements past the last whole vector (all of them with width 1), one a thread.
        start = items * width if lanes is not None else 0
        if n - start:
            with grid_stride_loop(b, n - start, name="tail") as t:
                i = b.add(t, i64(start), flags=["nuw", "nsw"]) if start else t
                target.store_linear(b, i, generator(IrIndex.from_linear(b, i, out.shape)))
        kernel.finish()
    ctx.launch(kernel, for_elements(max(items, tail)))


def emit_elemental(ctx: KernelContext, instr: HloInstruction) -> None:
    """The kernel of an instruction with an elemental emitter."""

    def build(kernel: KernelFunction, gens: dict[HloInstruction, Generator]) -> Generator:
        return ElementalEmitter(kernel.builder, ctx.math).generator(instr, gens)

    element_loop_kernel(ctx, "loop", out_slot(ctx), instr.operands, ctx.operands, build)


def is_elemental_computation(comp: HloComputation) -> bool:
    """True when every instruction of `comp` has an elemental emitter and an array shape."""
    return all(
        instr.opcode in EMIT and instr.shape.is_array
        for instr in comp.post_order()
    )


def fused_generator(e: ElementalEmitter, comp: HloComputation) -> Generator:
    """The generator of `comp`'s root, built over its instructions' generators; the
    emitter's `parameters` read the fusion's operands."""
    gens: dict[HloInstruction, Generator] = {}
    root = comp.root
    if root is None:
        raise CompileError(f"fused computation {comp.name} has no root")
    for instr in root.walk_operands():
        if is_scalar_constant(instr):
            gens[instr] = fixed_generator(scalar_constant(instr))
        else:
            gens[instr] = e.generator(instr, {o: gens[o] for o in instr.operands})
    return gens[root]


def emit_loop_fusion(ctx: KernelContext, instr: HloInstruction) -> None:
    """A fusion whose computation is elemental: one kernel over the fused expression."""
    comp: HloComputation = instr.attrs["calls"]

    def build(kernel: KernelFunction, gens: dict[HloInstruction, Generator]) -> Generator:
        params = {k: gens[operand] for k, operand in enumerate(instr.operands)}
        return fused_generator(ElementalEmitter(kernel.builder, ctx.math, params), comp)

    element_loop_kernel(ctx, "fusion", out_slot(ctx), instr.operands, ctx.operands, build)


@emits_gpu(Opcode.MAP)
def emit_map(ctx: KernelContext, instr: HloInstruction) -> None:
    """out[i] = to_apply(operand_0[i], ..., operand_n[i]), the computation inlined."""
    comp: HloComputation = instr.attrs["to_apply"]

    def build(kernel: KernelFunction, gens: dict[HloInstruction, Generator]) -> Generator:
        b = kernel.builder

        def element(index: IrIndex) -> ir.Value:
            args = [gens[o](index) for o in instr.operands]
            return ctx.scalar_computation(b, comp, args)[0]

        return element

    element_loop_kernel(ctx, "map", out_slot(ctx), instr.operands, ctx.operands, build)
