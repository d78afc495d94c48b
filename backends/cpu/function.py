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

from backends.cpu import loops
from backends.cpu.control import VALUE_RULES
from backends.cpu.kernels import CPU_KERNELS, BufferValue
from backends.cpu.loops import copy_value, emit_elemental_loop, emit_linear_range_loop
from backends.cpu.reduction import PARALLEL_MIN_OUTPUTS
from backends.cpu.threads import emit_parallel_for, new_body, pack_context, unpack_context
from backends.elemental import EMIT, ElementalEmitter, Generator
from backends.elemental_movement import scalar_constant
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import I8, I32, PTR, i64, if_else
from backends.scalar_computation import emit_scalar_computation
from backends.target_math import CpuMath
from hlo.computation import HloComputation
from hlo.errors import CompileError, InternalError, TfcompileError, UnsupportedOpError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode, Trait
from hlo.shape import Shape

if TYPE_CHECKING:
    from backends.cpu.compiler import CpuCompiler
    from compiler.passes.buffers import BufferAssignment, LogicalBuffer

ALIGNMENT = 64

# Emits one chunk of a parallel linear loop: (builder, elemental, rebind, begin, end).
ChunkEmitter = Callable[
    [ir.IRBuilder, Callable[[HloInstruction], Generator], Callable[[IrArray], IrArray],
     ir.Value, ir.Value],
    None,
]


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

    The function is `void f(ptr param leaves..., ptr result leaves..., ptr arena, i32
    threads)`, `threads` the thread count its parallel loops may use; after
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
            compiler.hlo, ALIGNMENT, computation=comp, callee_blocks=False,
            windows_in_place_below=PARALLEL_MIN_OUTPUTS)
        # The entry block holds only arena pointers (added while the body is emitted); code
        # starts in `body`, and entry branches there at the end.
        self._entry = fn.append_basic_block("entry")
        self.builder = ir.IRBuilder(fn.append_basic_block("body"))
        self.values: dict[int, BufferValue] = {}
        self.arena = fn.args[-2]
        self.threads = fn.args[-1]
        self._entry_pointers: dict[tuple[int, int], ir.Value] = {}
        args = iter(fn.args)
        self.params: dict[int, BufferValue] = {
            p.attrs["parameter_number"]: bind_buffers(p.shape, args) for p in comp.parameters
        }
        self.result: BufferValue = bind_buffers(comp.program_shape().result, args)
        # A result the assignment aliases with an argument (donation, entry only) is that
        # argument's buffer: one pointer value for both, so kernels update it in place.
        slots = flatten_buffers(self.result)
        arguments = [leaf for number in sorted(self.params)
                     for leaf in flatten_buffers(self.params[number])]
        for alias in self.assignment.aliases:
            slots[alias.result] = arguments[alias.argument]
        self.result = _rebuild(self.result, iter(slots))
        self._slots = slots
        self._result_of: dict[int, ir.Value] = self._result_pointers()

    @property
    def temp_bytes(self) -> int:
        return self.assignment.temp_bytes

    def _result_pointers(self) -> dict[int, ir.Value]:
        """Result pointer of each buffer the assignment writes straight into a result (the
        first result it reaches, when one buffer reaches several)."""
        from compiler.passes.buffers import buffer_leaves

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
        return self._entry_pointer(self.arena, offset)

    def _entry_pointer(self, base: ir.Value, offset: int) -> ir.Value:
        """`base + offset` computed once, in the entry block."""
        if offset == 0 and base is not self.arena:
            return base
        key = (id(base), offset)
        ptr = self._entry_pointers.get(key)
        if ptr is None:
            b = ir.IRBuilder(self._entry)
            ptr = b.gep(base, [i64(offset)], inbounds=True, source_etype=I8)
            self._entry_pointers[key] = ptr
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
        alloc = buffer.allocation
        if alloc is None:
            raise InternalError(f"{buffer.label} ({buffer.kind}) has no place in the arena")
        if alloc.result is not None:
            # A temporary the assignment keeps in a result's buffer before the result is
            # written (entry only).
            return self._entry_pointer(self._slots[alloc.result].ptr, alloc.offset)
        return self.arena_pointer(alloc.offset)

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
            linear = instr.has(Trait.ELEMENTWISE) and all(
                o.shape.dims == instr.shape.dims for o in instr.operands)
            gens = {o: scope.elemental(o) for o in instr.operands}
            generator = ElementalEmitter(scope.builder, self.math).generator(instr, gens)
            emit_elemental_loop(scope.builder, scope.out, generator, name="i", linear=linear)
            if linear and instr.shape.num_elements >= loops.PARALLEL_MIN_ELEMENTS:
                scope.emit_parallel_elementwise()
        else:
            raise UnsupportedOpError(f"{op.value} ({instr.name}) of tuple shape {instr.shape}")
        scope.finish()
        return out


class KernelScope:
    """The KernelContext of one instruction: its own LLVM function, called once.

    The function takes each distinct operand/output buffer pointer once, then a pointer to
    this kernel's scratch space, then the thread count (`threads`, an i32 value its
    parallel loops may use); `operands` and `out` are rebound to those parameters.
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
        # The parallel form of the kernel (chunk body, linear extent), if it has one.
        self._parallel: tuple[ir.Function, int] | None = None
        self._pointers: list[ir.Value] = []
        index: dict[int, int] = {}
        for leaf in [*(x for v in operands for x in flatten_buffers(v)), *flatten_buffers(out)]:
            if id(leaf.ptr) not in index:
                index[id(leaf.ptr)] = len(self._pointers)
                self._pointers.append(leaf.ptr)
        fnty = ir.FunctionType(ir.VoidType(), [PTR] * (len(self._pointers) + 1) + [I32])
        name = f"{parent.fn.name}.{c_identifier(instr.name)}"
        self.fn = ir.Function(self.module, fnty, name=self.module.get_unique_name(name))
        self.fn.linkage = "internal"
        self.fn.attributes.add("nounwind")
        self.fn.attributes.add("noinline")
        for arg in self.fn.args[:-1]:
            arg.add_attribute("noalias")
        self._entry = self.fn.append_basic_block("entry")
        self.builder = ir.IRBuilder(self.fn.append_basic_block("body"))
        self.temps = self.fn.args[-2]
        self.threads = self.fn.args[-1]
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
        call_args = [*self._pointers, self.parent.arena_pointer(offset), self.parent.threads]
        pb = self.parent.builder
        if self._parallel is None:
            pb.call(self.fn, call_args)
            return
        # With more than one thread, the parallel form instead of the (serial) kernel.
        body, total = self._parallel
        threads = self.parent.threads
        with if_else(pb, pb.icmp_signed(">", threads, ir.Constant(I32, 1))) as (many, one):
            with many:
                context = pack_context(pb, self._pointers)
                emit_parallel_for(pb, body, context, total, loops.PARALLEL_MIN_ELEMENTS,
                                  threads)
            with one:
                pb.call(self.fn, call_args)

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
        if len(pointers) + 2 != len(compiled.fn.args):
            raise InternalError(
                f"call of {comp.name} with {len(pointers)} buffers, expected "
                f"{len(compiled.fn.args) - 2}"
            )
        self.builder.call(compiled.fn, [*pointers, arena, self.threads])

    def emit_parallel_elementwise(self) -> None:
        """The elementwise instruction's loop over its linear index, split across threads
        (see `parallel_linear_loop`)."""
        instr = self.instr

        def chunk(b: ir.IRBuilder, elemental: Callable[[HloInstruction], Generator],
                  rebind: Callable[[IrArray], IrArray], begin: ir.Value,
                  end: ir.Value) -> None:
            gens = {o: elemental(o) for o in instr.operands}
            generator = ElementalEmitter(b, self.math).generator(instr, gens)
            out = self.out
            assert isinstance(out, IrArray)
            emit_linear_range_loop(b, [rebind(out)], [generator], begin, end, name="i")

        self.parallel_linear_loop(instr.shape.num_elements, chunk)

    def parallel_linear_loop(self, total: int, emit_chunk: ChunkEmitter) -> None:
        """A parallel form of this kernel: its whole work as a loop over linear indices
        [0, total), run instead of the kernel when there is more than one thread, split
        into chunks of at least `loops.PARALLEL_MIN_ELEMENTS`.

        The kernel itself stays the serial loop (its code is unchanged for one thread).
        The chunk is a body function whose context holds the kernel's buffer pointers:
        `emit_chunk(b, elemental, rebind, begin, end)` emits the loop over [begin, end)
        with builder `b`, reading operands through `elemental(instr)` and buffers through
        `rebind(array)` (this kernel's arrays over the body's pointers). Each element is
        computed exactly as the serial loop computes it.
        """
        if self._parallel is not None:
            raise InternalError(f"{self.instr.name} already has a parallel form")
        body = new_body(self.module, "tfcompile.chunk")
        bb = ir.IRBuilder(body.append_basic_block("entry"))
        ctx, begin, end, _ = body.args
        count = len(self._pointers)
        loaded = unpack_context(bb, ctx, count)
        by_arg = {id(arg): ptr for arg, ptr in zip(self.fn.args[:count], loaded, strict=True)}

        def rebind(array: IrArray) -> IrArray:
            if id(array.ptr) not in by_arg:
                raise InternalError(f"{self.instr.name}: a buffer that is not a parameter "
                                    f"of its kernel cannot be read by a parallel loop")
            return IrArray(by_arg[id(array.ptr)], array.shape, array.invariant)

        def elemental(operand: HloInstruction) -> Generator:
            if operand.opcode is Opcode.CONSTANT and operand.shape.rank == 0:
                value = scalar_constant(operand)
                return lambda index: value
            buf = self._by_operand.get(id(operand))
            if not isinstance(buf, IrArray):
                raise InternalError(f"{operand.name} is not an array operand of "
                                    f"{self.instr.name}")
            local = rebind(buf)
            return lambda index: local.load(bb, index)

        emit_chunk(bb, elemental, rebind, begin, end)
        bb.ret_void()
        self._parallel = (body, total)

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


def _rebuild(value: Any, leaves: Any) -> Any:
    """`value` (a buffer value) with its leaves taken in order from the iterator `leaves`."""
    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(_rebuild(v, leaves) for v in value)
    return next(leaves)
