"""One HLO computation as one LLVM function: buffers from the buffer assignment, and one
small kernel function per instruction that computes.

Buffers. `compiler.passes.buffer_assignment` assigns each computation emitted here
(`callee_blocks=False`): parameters are the function's parameter pointers, values that reach
the root are written straight into the function's result pointers, and every other array
value lives at its assigned offset of the function's arena (the last parameter). Several
values share an offset when their lifetimes do not overlap, or when one updates another in
place. What a kernel needs only while it runs (scratch buffers, the arenas of the
computations it calls) is placed by `BufferAssignment.place_scratch` around the buffers
live at its step, so the arena size is the assignment's total. Instructions run in the
order of the assignment's schedule, which its liveness assumes.

Kernels. Each instruction that computes is emitted into its own internal `noinline`
function, called once. Its parameters are the distinct buffers it reads or writes, each
`noalias`: a buffer updated in place is passed once and read and written through one
pointer, so LLVM sees that element i is read before it is written, and all other
pointers provably never overlap (no run-time overlap checks before vector loops). LLVM
optimises many such small functions with exact aliasing facts much faster, and better, than
one large function over a shared arena. Tuples are compile-time Python tuples of buffers,
so tuple, get-tuple-element, bitcast and reshape emit no code (`control.VALUE_RULES`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from llvmlite import ir

from backends.cpu.control import VALUE_RULES
from backends.cpu.kernels import CPU_KERNELS, BufferValue
from backends.cpu.loops import copy_value, emit_elemental_loop
from backends.elemental import EMIT, ElementalEmitter, Generator
from backends.elemental_movement import scalar_constant
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import I8, PTR, i64
from backends.scalar_computation import emit_scalar_computation
from backends.target_math import CpuMath
from hlo.computation import HloComputation
from hlo.errors import CompileError, InternalError, TfcompileError, UnsupportedOpError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode, Trait
from hlo.shape import Shape

if TYPE_CHECKING:
    from backends.cpu.compiler import CpuCompiler
    from compiler.passes.buffer_assignment import BufferAssignment, LogicalBuffer

ALIGNMENT = 64


def array_leaves(shape: Shape) -> list[Shape]:
    """The array leaves of a (possibly tuple) shape, in order; tokens have no buffer."""
    return [s for s in shape.leaves() if s.is_array]


def c_identifier(name: str) -> str:
    """`name` made into a valid C identifier."""
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return ident if ident and not ident[0].isdigit() else f"_{ident}"


def flatten_buffers(value: BufferValue) -> list[IrArray]:
    """The IrArrays of a buffer value, in order (none for tokens)."""
    if value is None:
        return []
    if isinstance(value, tuple):
        return [leaf for v in value for leaf in flatten_buffers(v)]
    if isinstance(value, IrArray):
        return [value]
    raise InternalError(f"not a buffer value: {value!r}")


class FunctionEmitter:
    """Emits one computation into one LLVM function: a sequence of kernel calls.

    The function is `void f(ptr param leaves..., ptr result leaves..., ptr arena)`; after
    `emit`, `temp_bytes` is the arena it needs and `assignment` the buffer assignment.
    """

    def __init__(self, compiler: CpuCompiler, comp: HloComputation, fn: ir.Function) -> None:
        # Imported here: `compiler` (the package) imports this backend for its API.
        from compiler.passes.buffer_assignment import assign_buffers

        if comp.root is None:
            raise CompileError(f"computation {comp.name} has no root")
        self.compiler = compiler
        self.comp = comp
        self.fn = fn
        self.module = compiler.llmod
        self.math: CpuMath = compiler.math
        self.assignment: BufferAssignment = assign_buffers(
            compiler.hlo, ALIGNMENT, computation=comp, callee_blocks=False)
        # The entry block holds only arena pointers (added while the body is emitted); code
        # starts in `body`, and entry branches there at the end.
        self._entry = fn.append_basic_block("entry")
        self.builder = ir.IRBuilder(fn.append_basic_block("body"))
        self.values: dict[int, BufferValue] = {}
        self.arena = fn.args[-1]
        self._arena_pointers: dict[int, ir.Value] = {}
        args = iter(fn.args)
        self.params: dict[int, BufferValue] = {
            p.attrs["parameter_number"]: bind_buffers(p.shape, args) for p in comp.parameters
        }
        self.result: BufferValue = bind_buffers(comp.program_shape().result, args)
        self._result_of: dict[int, ir.Value] = self._result_pointers()

    @property
    def temp_bytes(self) -> int:
        return self.assignment.temp_bytes

    def _result_pointers(self) -> dict[int, ir.Value]:
        """Result pointer of each buffer the assignment writes straight into a result (the
        first result it reaches, when one buffer reaches several)."""
        from compiler.passes.buffer_assignment import buffer_leaves

        root = self.comp.root
        assert root is not None
        found: dict[int, ir.Value] = {}
        leaves = buffer_leaves(self.assignment.value_of(root))
        slots = flatten_buffers(self.result)
        if len(leaves) != len(slots):
            raise InternalError(f"{self.comp.name}: {len(leaves)} root buffers for "
                                f"{len(slots)} results")
        for buffer, slot in zip(leaves, slots, strict=True):
            if buffer.kind == "output" and id(buffer) not in found:
                found[id(buffer)] = slot.ptr
        return found

    def arena_pointer(self, offset: int) -> ir.Value:
        """`arena + offset`, one value per offset, in the entry block (dominating all uses).

        One value per offset matters: kernels pass each distinct pointer once, and a buffer
        updated in place must reach its kernel as one parameter."""
        ptr = self._arena_pointers.get(offset)
        if ptr is None:
            b = ir.IRBuilder(self._entry)
            ptr = b.gep(self.arena, [i64(offset)], inbounds=True, source_etype=I8)
            self._arena_pointers[offset] = ptr
        return ptr

    def emit(self) -> None:
        root = self.comp.root
        assert root is not None
        # The assignment's schedule: its liveness (and so every offset) assumes this order.
        live = {id(i) for i in root.walk_operands()}
        for step, instr in enumerate(self.assignment.order):
            if id(instr) not in live:
                continue  # dead code: its buffer (if any) is never written nor read
            try:
                self.values[id(instr)] = self._emit_instruction(step, instr)
            except TfcompileError:
                raise
            except Exception as e:  # a kernel bug: name the instruction
                raise CompileError(
                    f"emitting {instr.name} ({instr.opcode.value}) in {self.comp.name} "
                    f"failed: {type(e).__name__}: {e}"
                ) from e
        # Results the assignment could not put in place (parameters, constants, a value
        # returned twice) are copied into their slots.
        copy_value(self.builder, self.values[id(root)], self.result)
        self.builder.ret_void()
        ir.IRBuilder(self._entry).branch(self.fn.blocks[1])

    def _buffers(self, instr: HloInstruction) -> BufferValue:
        """The output buffers of a computing instruction, from the assignment."""

        def build(value: Any) -> BufferValue:
            if value is None:
                return None
            if isinstance(value, tuple):
                return tuple(build(v) for v in value)
            return IrArray(self._pointer(value), value.shape)

        return build(self.assignment.value_of(instr))

    def _pointer(self, buffer: LogicalBuffer) -> ir.Value:
        if buffer.kind == "output":
            return self._result_of[id(buffer)]
        if buffer.allocation is None:
            raise InternalError(f"{buffer.label} ({buffer.kind}) has no place in the arena")
        return self.arena_pointer(buffer.allocation.offset)

    def _emit_instruction(self, step: int, instr: HloInstruction) -> BufferValue:
        op = instr.opcode
        operands = [self.values[id(o)] for o in instr.operands]
        if op is Opcode.PARAMETER:
            return self.params[instr.attrs["parameter_number"]]
        if op in VALUE_RULES:
            return VALUE_RULES[op](self, instr, operands)
        kernel = CPU_KERNELS.get(op)
        if kernel is None and op not in EMIT:
            raise UnsupportedOpError(
                f"the CPU backend cannot compile {op.value}: no kernel for instruction "
                f"{instr.name} in computation {self.comp.name}"
            )
        out = self._buffers(instr)
        scope = KernelScope(self, instr, step, operands, out)
        if kernel is not None:
            kernel(scope, instr, scope.operands, scope.out)
        elif isinstance(scope.out, IrArray):
            gens = {o: scope.elemental(o) for o in instr.operands}
            generator = ElementalEmitter(scope.builder, self.math).generator(instr, gens)
            linear = instr.has(Trait.ELEMENTWISE) and all(
                o.shape.dims == instr.shape.dims for o in instr.operands)
            emit_elemental_loop(scope.builder, scope.out, generator, name="i", linear=linear)
        else:
            raise UnsupportedOpError(f"{op.value} ({instr.name}) of tuple shape {instr.shape}")
        scope.finish()
        return out


class KernelScope:
    """The KernelContext of one instruction: its own LLVM function, called once.

    The function takes each distinct operand/output buffer pointer once, then a pointer to
    this kernel's scratch space; `operands` and `out` are rebound to those parameters.
    Scratch buffers and the arenas of called computations are bump-allocated in the
    scratch space, whose size the assignment learns (and places) in `finish`.
    """

    def __init__(self, parent: FunctionEmitter, instr: HloInstruction, step: int,
                 operands: list[BufferValue], out: BufferValue) -> None:
        self.parent = parent
        self.instr = instr
        self.step = step
        self.module = parent.module
        self.math = parent.math
        self.scratch_bytes = 0
        self._pointers: list[ir.Value] = []
        index: dict[int, int] = {}
        for leaf in [*(x for v in operands for x in flatten_buffers(v)), *flatten_buffers(out)]:
            if id(leaf.ptr) not in index:
                index[id(leaf.ptr)] = len(self._pointers)
                self._pointers.append(leaf.ptr)
        fnty = ir.FunctionType(ir.VoidType(), [PTR] * (len(self._pointers) + 1))
        name = f"{parent.fn.name}.{c_identifier(instr.name)}"
        self.fn = ir.Function(self.module, fnty, name=self.module.get_unique_name(name))
        self.fn.linkage = "internal"
        self.fn.attributes.add("nounwind")
        self.fn.attributes.add("noinline")
        for arg in self.fn.args:
            arg.add_attribute("noalias")
        self._entry = self.fn.append_basic_block("entry")
        self.builder = ir.IRBuilder(self.fn.append_basic_block("body"))
        self.temps = self.fn.args[-1]
        args = self.fn.args
        self.operands = [_rebind(v, args, index) for v in operands]
        self.out = _rebind(out, args, index)
        self._by_operand = {id(o): v for o, v in zip(instr.operands, self.operands, strict=True)}

    def finish(self) -> None:
        """Close the kernel, place its scratch space and call it from the computation."""
        self.builder.ret_void()
        ir.IRBuilder(self._entry).branch(self.fn.blocks[1])
        offset = 0
        if self.scratch_bytes:
            offset = self.parent.assignment.place_scratch(
                self.step, self.scratch_bytes, f"{self.instr.name}.scratch")
        self.parent.builder.call(self.fn, [*self._pointers, self.parent.arena_pointer(offset)])

    # --- KernelContext -----------------------------------------------------------------------
    def temp_array(self, shape: Any, name: str = "tmp") -> BufferValue:
        return arena_buffers(shape, self._alloc)

    def _alloc(self, nbytes: int) -> ir.Value:
        offset = self.scratch_bytes
        self.scratch_bytes += -(-max(nbytes, 1) // ALIGNMENT) * ALIGNMENT
        return ir.IRBuilder(self._entry).gep(self.temps, [i64(offset)], inbounds=True,
                                             source_etype=I8)

    def elemental(self, instr: HloInstruction) -> Generator:
        """A generator reading the value of operand `instr` element by element."""
        if instr.opcode is Opcode.CONSTANT and instr.shape.rank == 0:
            value = scalar_constant(instr)
            return lambda index: value
        buf = self._by_operand.get(id(instr))
        if not isinstance(buf, IrArray):
            raise InternalError(f"{instr.name} is not an array operand of {self.instr.name}")
        b = self.builder
        return lambda index: buf.load(b, index)

    def call_computation(self, comp: HloComputation, args: Sequence[BufferValue],
                         out: BufferValue) -> None:
        compiled = self.parent.compiler.function_for(comp)
        arena = self._alloc(compiled.temp_bytes)
        pointers = [leaf.ptr for a in args for leaf in flatten_buffers(a)]
        pointers += [leaf.ptr for leaf in flatten_buffers(out)]
        if len(pointers) + 1 != len(compiled.fn.args):
            raise InternalError(
                f"call of {comp.name} with {len(pointers)} buffers, expected "
                f"{len(compiled.fn.args) - 1}"
            )
        self.builder.call(compiled.fn, [*pointers, arena])

    def call_scalar_computation(self, comp: HloComputation,
                                args: Sequence[ir.Value]) -> list[ir.Value]:
        return emit_scalar_computation(self.builder, self.math, comp, list(args))


def bind_buffers(shape: Shape, args: Any) -> BufferValue:
    """Buffer values of `shape` over successive pointer arguments of a function."""
    if shape.is_tuple:
        return tuple(bind_buffers(s, args) for s in shape.tuple_shapes)
    if not shape.is_array:
        return None
    return IrArray(next(args), shape)


def _rebind(value: BufferValue, args: Sequence[ir.Argument], index: dict[int, int]
            ) -> BufferValue:
    """`value` with every leaf's pointer replaced by the kernel parameter bound to it."""
    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(_rebind(v, args, index) for v in value)
    return IrArray(args[index[id(value.ptr)]], value.shape, value.invariant)


def arena_buffers(shape: Shape, alloc: Callable[[int], ir.Value]) -> BufferValue:
    """Buffers for a value of `shape`, each leaf's pointer from `alloc(nbytes)`."""
    if shape.is_tuple:
        return tuple(arena_buffers(s, alloc) for s in shape.tuple_shapes)
    if not shape.is_array:
        return None
    return IrArray(alloc(shape.byte_size), shape)
