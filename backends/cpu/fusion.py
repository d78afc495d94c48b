"""Fusions on the CPU: one kernel per fusion, its intermediate values never in memory.

The fused computation's elemental instructions become generators (`FusedEmitter`); only
the instructions that need a kernel are computed into buffers:
- kLoop (and multi-output loop fusions): no kernel at all, one loop nest over the output
  storing every root generator's value at each index;
- kInput: the reduce kernel reads its input through the fused generator (`GeneratedArray`)
  instead of a buffer, so the producers run inside the reduction loop;
- kOutput: the dot (or convolution) is written into the fusion's output buffer, then one
  loop applies the epilogue (bias, activation) in place, reading element i of the dot
  just before writing element i of the result: one extra pass over the (cache-warm)
  output, none over a temporary; a kernel that takes the epilogue
  (backends/cpu/fused_expression.py) applies it before its own stores instead: no pass.
A fusion these rules do not cover (hand-written HLO with tuples inside, kernels without
an opcode here) is called like `call`, each instruction materialised by the driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llvmlite import ir

from backends.cpu import loops
from backends.cpu.fused_expression import FusedExpression
from backends.cpu.kernels import CPU_KERNELS, BufferValue, KernelContext, emits
from backends.cpu.loops import emit_elemental_loop, emit_linear_range_loop, emit_multi_output_loop
from backends.elemental import EMIT, GeneratedArray, Generator
from backends.elemental_fused import FusedEmitter
from backends.elemental_movement import constant_global
from backends.llvm.ir_array import IrArray
from hlo.computation import HloComputation
from hlo.errors import InternalError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode, Trait

# Kernels that read their operands only through `load`/`load_linear`, so a fused producer
# can be handed to them as a GeneratedArray instead of a buffer.
READS_GENERATED = frozenset({Opcode.REDUCE})


def _root_leaves(comp: HloComputation) -> list[HloInstruction]:
    root = comp.root
    if root is None:
        raise InternalError(f"fused computation {comp.name} has no root")
    return list(root.operands) if root.opcode is Opcode.TUPLE else [root]


def _is_elemental(instr: HloInstruction) -> bool:
    return instr.opcode in EMIT and instr.shape.is_array


def fused_kernels(comp: HloComputation) -> list[HloInstruction] | None:
    """The instructions of `comp` that a kernel computes into a buffer, operands first;
    None when the fusion cannot be emitted as one kernel (see the module docstring)."""
    root = comp.root
    if root is None:
        return None
    leaves = _root_leaves(comp)
    # A tuple-shaped root other than `tuple` (a variadic reduce) writes the whole output.
    whole = root.opcode is not Opcode.TUPLE and root.shape.is_tuple
    if not whole and any(not leaf.shape.is_array for leaf in leaves):
        return None
    found = []
    for instr in root.walk_operands():
        if instr is root and root.opcode is Opcode.TUPLE:
            continue
        if _is_elemental(instr):
            continue
        if instr.opcode is Opcode.GET_TUPLE_ELEMENT and not _is_elemental(instr.operands[0]) \
                and instr.operands[0].opcode is not Opcode.PARAMETER:
            continue  # an element of a kernel's tuple result: a buffer leaf
        if instr.opcode not in CPU_KERNELS or instr.opcode in (Opcode.FUSION, Opcode.TUPLE):
            return None
        found.append(instr)
    return found


def reads_linear_only(roots: Sequence[HloInstruction], bound: set[int]) -> bool:
    """True when computing `roots` at an index needs only its linear offset: every
    instruction on the way is elementwise over the roots' dimensions, a parameter or a
    kernel's buffer (`bound`) of those dimensions, a scalar constant, or a broadcast of a
    scalar. Then one flat loop can replace the loop nest."""
    dims = roots[0].shape.dims
    stack, seen = list(roots), set()
    while stack:
        instr = stack.pop()
        if id(instr) in seen:
            continue
        seen.add(id(instr))
        if instr.opcode is Opcode.CONSTANT and instr.shape.rank == 0:
            continue
        if instr.opcode is Opcode.BROADCAST and instr.operands[0].shape.rank == 0:
            continue
        if instr.shape.dims != dims:
            return False
        if instr.opcode is Opcode.PARAMETER or id(instr) in bound:
            continue
        if not instr.has(Trait.ELEMENTWISE):
            return False
        stack.extend(instr.operands)
    return True


def _reads_at_own_index(instr: HloInstruction, root: HloInstruction) -> bool:
    """True when every path from `instr` to `root` goes through elementwise ops of root's
    dimensions only, so `root` at index i reads `instr` at index i and nowhere else."""
    if instr.shape.dims != root.shape.dims:
        return False
    stack, seen = list(instr.users), set()
    while stack:
        user = stack.pop()
        if id(user) in seen:
            continue
        seen.add(id(user))
        if not user.has(Trait.ELEMENTWISE) or user.shape.dims != root.shape.dims:
            return False
        stack.extend(user.users)
    return True


def _loader(b: ir.IRBuilder, buf: IrArray) -> Generator:
    """A generator reading `buf`."""
    return lambda index: buf.load(b, index)


class FusedContext:
    """The KernelContext of a kernel inside a fusion: the fusion's own, except that
    `elemental` knows the fused instructions."""

    def __init__(self, ctx: KernelContext, kernel: FusionKernel) -> None:
        self._ctx = ctx
        self._kernel = kernel
        self.builder = ctx.builder
        self.module = ctx.module
        self.math = ctx.math
        # The thread count a fused product may split across (None: serial only).
        self.threads = getattr(ctx, "threads", None)
        # The emitter behind the fusion's scope: kernels read the compile target through it
        # (`gemm.kernel_target`), so a fused dot or convolution is tiled for the target, not
        # for the host.
        self.parent = getattr(ctx, "parent", None)
        # The fusion's epilogue, for a kernel that writes the fusion's output (see
        # backends/cpu/fused_expression.py); None when there is none to apply.
        self.epilogue: FusedExpression | None = None

    def elemental(self, instr: HloInstruction) -> Generator:
        return self._kernel.fused.generator(instr)

    def portable(self, instr: HloInstruction) -> FusedExpression | None:
        """`instr` (a fused producer a kernel reads) as code another function can emit from
        the fusion's operand buffers (see backends/cpu/fused_expression.py), or None."""
        return FusedExpression.value(instr, self._kernel.operands, self.math)

    def call_scalar_computation(self, comp: HloComputation, args: Sequence[ir.Value]
                                ) -> list[ir.Value]:
        return self._ctx.call_scalar_computation(comp, args)

    def call_computation(self, comp: HloComputation, args: Sequence[BufferValue],
                         out: BufferValue) -> None:
        self._ctx.call_computation(comp, args, out)

    def temp_array(self, shape: Any, name: str = "tmp") -> BufferValue:
        return self._ctx.temp_array(shape, name)


class FusionKernel:
    """Emits one fusion whose kernels are `kernels` (see `fused_kernels`)."""

    def __init__(self, ctx: KernelContext, instr: HloInstruction, operands: list[IrArray],
                 out: BufferValue, kernels: list[HloInstruction]) -> None:
        self.ctx = ctx
        self.instr = instr
        self.comp: HloComputation = instr.attrs["calls"]
        self.operands = operands
        self.out = out
        self.outs: list[IrArray] = list(out) if isinstance(out, tuple) else [out]
        self.kernels = kernels
        params = {k: ctx.elemental(o) for k, o in enumerate(instr.operands)}
        self.fused = FusedEmitter(ctx.builder, ctx.math, params)
        self.buffers: dict[int, BufferValue] = {}
        self._out_taken = False

    def emit(self) -> None:
        b = self.ctx.builder
        leaves = _root_leaves(self.comp)
        for kernel in self.kernels:
            self._emit_kernel(kernel, leaves)
        if self.comp.root in self.kernels and self.comp.root.shape.is_tuple:
            return  # a variadic reduce (say) wrote the whole output
        # Every root leaf not already written by its kernel: one loop per shape.
        pending: dict[tuple[int, ...], list[tuple[IrArray, Generator]]] = {}
        for k, (leaf, out) in enumerate(zip(leaves, self.outs, strict=True)):
            value = self.buffers.get(id(leaf))
            if isinstance(value, IrArray) and value.ptr is out.ptr and leaves.index(leaf) == k:
                continue
            pending.setdefault(out.shape.dims, []).append((out, self.fused.generator(leaf)))
        bound = set(self.buffers)
        for group in pending.values():
            roots = [leaves[k] for k, out in enumerate(self.outs)
                     if any(out is o for o, _ in group)]
            linear = reads_linear_only(roots, bound)
            outs = [o for o, _ in group]
            emit_multi_output_loop(b, outs, [g for _, g in group], name="fused", linear=linear)
            if linear and len(pending) == 1 and self._can_split(outs):
                self._emit_parallel(outs, roots)

    def _can_split(self, outs: list[IrArray]) -> bool:
        """True when the fusion, one flat loop writing `outs`, is worth splitting across
        threads and may be: large, and reading only its operands (no kernel scratch)."""
        return (not self.buffers and hasattr(self.ctx, "parallel_linear_loop")
                and outs[0].shape.num_elements >= loops.PARALLEL_MIN_ELEMENTS)

    def _emit_parallel(self, outs: list[IrArray], roots: list[HloInstruction]) -> None:
        """The parallel form of the fusion (run instead of the serial loop when there is
        more than one thread): the flat loop split into chunks, each with its own
        FusedEmitter over the chunk function's operand pointers."""
        operands = self.instr.operands

        def chunk(b: ir.IRBuilder, elemental: Any, rebind: Any, begin: ir.Value,
                  end: ir.Value) -> None:
            params = {k: elemental(o) for k, o in enumerate(operands)}
            fused = FusedEmitter(b, self.ctx.math, params)
            emit_linear_range_loop(b, [rebind(o) for o in outs],
                                   [fused.generator(r) for r in roots], begin, end,
                                   name="fused")

        self.ctx.parallel_linear_loop(outs[0].shape.num_elements, chunk)

    def _emit_kernel(self, instr: HloInstruction, leaves: list[HloInstruction]) -> None:
        b = self.ctx.builder
        operands = [self._operand_value(instr, o) for o in instr.operands]
        out = self._output_for(instr, leaves)
        fused_ctx = FusedContext(self.ctx, self)
        fused_ctx.epilogue = self._epilogue(instr, out)
        CPU_KERNELS[instr.opcode](fused_ctx, instr, operands, out)
        self.buffers[id(instr)] = out
        if fused_ctx.epilogue is not None and fused_ctx.epilogue.applied:
            # The kernel stored the root's values: no pass over the output is left.
            self.buffers[id(self.comp.root)] = self.outs[0]
        if isinstance(out, IrArray):
            self.fused.bind(instr, _loader(b, out))
            return
        for user in instr.users:
            if user.opcode is Opcode.GET_TUPLE_ELEMENT:
                leaf = out[user.attrs["index"]]
                self.buffers[id(user)] = leaf
                self.fused.bind(user, _loader(b, leaf))

    def _epilogue(self, instr: HloInstruction, out: BufferValue) -> FusedExpression | None:
        """The epilogue `instr` may apply: when it is the fusion's only kernel and writes
        the (single) output buffer, which the root reads at its own index."""
        if (len(self.kernels) != 1 or self.kernels[0] is not instr or len(self.outs) != 1
                or not isinstance(out, IrArray) or out.ptr is not self.outs[0].ptr):
            return None
        return FusedExpression.epilogue(self.comp, instr, self.operands, self.ctx.math)

    def _operand_value(self, kernel: HloInstruction, operand: HloInstruction) -> Any:
        """What `kernel` reads for `operand`: a buffer, or a generated array."""
        if operand.opcode is Opcode.PARAMETER:
            return self.operands[operand.attrs["parameter_number"]]
        if id(operand) in self.buffers:
            return self.buffers[id(operand)]
        if operand.opcode is Opcode.CONSTANT and operand.shape.rank > 0:
            return constant_global(self.ctx.module, operand)
        generator = self.fused.generator(operand)
        if kernel.opcode in READS_GENERATED:
            return GeneratedArray(generator, operand.shape)
        # Other kernels may read a buffer many times, or by pointer: compute it once.
        buf = self.ctx.temp_array(operand.shape, name=operand.name)
        emit_elemental_loop(self.ctx.builder, buf, generator, name="fused.operand")
        self.buffers[id(operand)] = buf
        return buf

    def _output_for(self, instr: HloInstruction, leaves: list[HloInstruction]) -> BufferValue:
        """A root leaf's output buffer; for a value only the (single) root reads, at the
        index it writes, the output buffer too (the epilogue then updates it in place);
        otherwise scratch."""
        if instr is self.comp.root and instr.shape.is_tuple:
            return self.out
        if instr in leaves:
            return self.outs[leaves.index(instr)]
        if len(leaves) == 1 and not self._out_taken:
            out = self.outs[0]
            root = leaves[0]
            shape = instr.shape
            if (shape.is_array and _is_elemental(root)
                    and shape.byte_size == out.shape.byte_size
                    and all(out.ptr is not o.ptr for o in self.operands)
                    and _reads_at_own_index(instr, root)):
                self._out_taken = True
                return IrArray(out.ptr, shape)
        return self.ctx.temp_array(instr.shape, name=instr.name)


@emits(Opcode.FUSION)
def emit_fusion(ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue],
                out: BufferValue) -> None:
    """One kernel for the fusion (see the module docstring); other fusions call their
    computation like `call`."""
    comp: HloComputation = instr.attrs["calls"]
    outs = list(out) if isinstance(out, tuple) else [out]
    kernels = fused_kernels(comp)
    if (kernels is None or not all(isinstance(v, IrArray) for v in operands)
            or not all(isinstance(v, IrArray) for v in outs)):
        ctx.call_computation(comp, operands, out)
        return
    FusionKernel(ctx, instr, operands, out, kernels).emit()
