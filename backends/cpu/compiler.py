"""The CPU compiler driver: HloModule -> LLVM IR -> object code, packaged as a CpuArtifact.

Buffer convention. Every array value lives in a dense row-major buffer. Entry parameters
and results use the caller's pointers; every other instruction gets a 64-byte-aligned
slice of one temporary arena (no reuse yet: buffer assignment comes later). Tuples are
compile-time Python tuples of buffers, so tuple, get-tuple-element, bitcast, reshape and
copy emit no code. Elemental instructions become a loop nest over their output calling
the generator (`backends.elemental`); everything else is a kernel from `CPU_KERNELS` (which
wins when an opcode has both), and an opcode with neither is an UnsupportedOpError (never
an evaluator fallback). Each instruction that computes is emitted into its own small
`noinline` function with `noalias` buffer parameters, called once from its computation's
function: LLVM optimises many small functions with exact aliasing facts much faster, and
better, than one large function over a shared arena.

Called computations (call, while, conditional, fusion bodies) become internal LLVM
functions `void comp(ptr param leaves..., ptr result leaves..., ptr temps)`; their
temporaries are a slice of the caller's arena. Scalar combiners (reduce, sort, map) are
emitted inline on register values by `call_scalar_computation`.

The compiled entry point has the fixed ABI
    void <symbol>(void* const* args, void* const* results, void* temps)
with args/results the flattened parameter/result leaf buffers and temps an arena of
`temp_bytes` bytes, 64-byte aligned. The code keeps no global mutable state.
"""

from __future__ import annotations

import importlib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from llvmlite import ir

from backends.cpu import object as objcode
from backends.cpu.control import VALUE_RULES
from backends.cpu.kernels import CPU_KERNELS, BufferValue
from backends.cpu.loops import copy_value, emit_elemental_loop
from backends.elemental import EMIT, ElementalEmitter, Generator
from backends.elemental_movement import scalar_constant
from backends.llvm.index import IrIndex
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import I8, PTR, i64
from backends.target_math import CpuMath
from hlo.computation import HloComputation
from hlo.errors import CompileError, InternalError, TfcompileError, UnsupportedOpError
from hlo.instruction import HloInstruction
from hlo.module import HloModule
from hlo.opcodes import Opcode
from hlo.shape import Shape
from hlo.verifier import verify

ALIGNMENT = 64


def load_kernels() -> None:
    """Import the CPU kernel modules; each registers its opcodes in CPU_KERNELS.

    `control` is this backend's own; `all_kernels` imports the others (dot, reductions,
    sort, ...). Until it exists those opcodes raise UnsupportedOpError when compiled.
    """
    importlib.import_module("backends.cpu.control")
    try:
        importlib.import_module("backends.cpu.all_kernels")
    except ModuleNotFoundError as e:
        if e.name != "backends.cpu.all_kernels":
            raise


@dataclass(frozen=True)
class CpuOptions:
    """Options of the CPU backend (all optional; defaults describe the host).

    Attributes:
        target_triple: LLVM triple, e.g. `aarch64-unknown-linux-gnu` (default: host).
        target_cpu: LLVM CPU name (default: the host CPU, or `generic` for other triples).
        target_features: LLVM feature string such as `+avx2,+fma` (default: the host's).
        opt_level: LLVM optimisation level 0-3.
        entry_symbol: name of the exported function (default: from the module name).
    """

    target_triple: str | None = None
    target_cpu: str | None = None
    target_features: str | None = None
    opt_level: int = 3
    entry_symbol: str | None = None

    @staticmethod
    def from_kwargs(**options: Any) -> CpuOptions:
        """CpuOptions from keyword arguments; unknown names raise CompileError."""
        known = {f.name for f in fields(CpuOptions)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise CompileError(
                f"unknown CPU backend option(s) {unknown}; known: {sorted(known)}"
            )
        opts = CpuOptions(**options)
        if not isinstance(opts.opt_level, int) or not 0 <= opts.opt_level <= 3:
            raise CompileError(f"opt_level must be an integer 0..3, got {opts.opt_level!r}")
        return opts


@dataclass(frozen=True)
class CpuArtifact:
    """A compiled module: object code plus what a loader or header generator needs."""

    object_code: bytes
    llvm_ir: str
    optimized_ir: str
    symbol: str
    param_shapes: tuple[Shape, ...]
    result_shape: Shape
    arg_shapes: tuple[Shape, ...]
    result_shapes: tuple[Shape, ...]
    temp_bytes: int
    triple: str
    cpu: str
    features: str
    opt_level: int = 3
    module_name: str = ""
    param_names: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def asm(self) -> str:
        """The target assembly of the optimised IR (generated on demand)."""
        target = objcode.Target(self.triple, self.cpu, self.features)
        return objcode.emit_assembly(self.optimized_ir, target, self.opt_level)


def array_leaves(shape: Shape) -> list[Shape]:
    """The array leaves of a (possibly tuple) shape, in order; tokens have no buffer."""
    return [s for s in shape.leaves() if s.is_array]


def c_identifier(name: str) -> str:
    """`name` made into a valid C identifier."""
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return ident if ident and not ident[0].isdigit() else f"_{ident}"


def _flatten_buffers(value: BufferValue) -> list[IrArray]:
    if value is None:
        return []
    if isinstance(value, tuple):
        return [leaf for v in value for leaf in _flatten_buffers(v)]
    if isinstance(value, IrArray):
        return [value]
    raise InternalError(f"not a buffer value: {value!r}")


@dataclass
class CompiledFunction:
    """An LLVM function for one HLO computation and the arena bytes it needs."""

    fn: ir.Function
    temp_bytes: int


class CpuCompiler:
    """Builds one LLVM module for an HloModule (one instance per compilation)."""

    def __init__(self, module: HloModule, options: CpuOptions) -> None:
        load_kernels()
        self.hlo = module
        self.options = options
        self.llmod = ir.Module(name=module.name)
        self.math = CpuMath()
        self._functions: dict[int, CompiledFunction] = {}
        self._in_progress: set[int] = set()

    def function_for(self, comp: HloComputation) -> CompiledFunction:
        """The internal LLVM function of `comp`, emitted on first use."""
        key = id(comp)
        if key in self._functions:
            return self._functions[key]
        if key in self._in_progress:
            raise CompileError(f"computation {comp.name} calls itself")
        self._in_progress.add(key)
        params = [leaf for p in comp.parameters for leaf in array_leaves(p.shape)]
        results = array_leaves(comp.program_shape().result)
        fnty = ir.FunctionType(ir.VoidType(), [PTR] * (len(params) + len(results) + 1))
        fn = ir.Function(self.llmod, fnty, name=f"comp.{c_identifier(comp.name)}")
        fn.linkage = "internal"
        fn.attributes.add("nounwind")
        for arg in fn.args:
            arg.add_attribute("noalias")
        emitter = FunctionEmitter(self, comp, fn)
        emitter.emit()
        compiled = CompiledFunction(fn, emitter.temp_bytes)
        self._functions[key] = compiled
        self._in_progress.discard(key)
        return compiled

    def emit_entry(self, symbol: str) -> CompiledFunction:
        """The exported ABI wrapper around the entry computation's function."""
        entry = self.hlo.entry_computation
        inner = self.function_for(entry)
        n_args = sum(len(array_leaves(p.shape)) for p in entry.parameters)
        n_results = len(array_leaves(entry.program_shape().result))
        fn = ir.Function(self.llmod, ir.FunctionType(ir.VoidType(), [PTR, PTR, PTR]), symbol)
        fn.attributes.add("nounwind")
        args, results, temps = fn.args
        args.name, results.name, temps.name = "args", "results", "temps"
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        pointers = []
        for table, count in ((args, n_args), (results, n_results)):
            for k in range(count):
                slot = b.gep(table, [i64(k)], inbounds=True, source_etype=PTR)
                pointers.append(b.load(slot, typ=PTR, align=8))
        b.call(inner.fn, [*pointers, temps])
        b.ret_void()
        return inner


class FunctionEmitter:
    """Emits one computation into one LLVM function: a sequence of kernel calls.

    Each instruction that computes something becomes its own internal `noinline` function
    (see KernelScope) whose buffer parameters are `noalias`: LLVM then optimises small
    functions with exact aliasing facts (no run-time overlap checks before vector loops)
    instead of one large function over a shared arena.
    """

    def __init__(self, compiler: CpuCompiler, comp: HloComputation, fn: ir.Function) -> None:
        self.compiler = compiler
        self.comp = comp
        self.fn = fn
        self.module = compiler.llmod
        self.math = compiler.math
        # The entry block holds only arena pointers and allocas (added out of order by
        # other builders); code starts in `body`, and entry branches there at the end.
        self._entry = fn.append_basic_block("entry")
        self.builder = ir.IRBuilder(fn.append_basic_block("body"))
        self.temp_bytes = 0
        self.values: dict[int, BufferValue] = {}
        self.temps = fn.args[-1]
        args = iter(fn.args)
        self.params: dict[int, BufferValue] = {
            p.attrs["parameter_number"]: bind_buffers(p.shape, args) for p in comp.parameters
        }
        self.result: BufferValue = bind_buffers(comp.program_shape().result, args)

    def alloc_offset(self, nbytes: int) -> int:
        """The arena offset of `nbytes` fresh bytes, 64-byte aligned (no reuse yet)."""
        offset = self.temp_bytes
        self.temp_bytes += -(-max(nbytes, 1) // ALIGNMENT) * ALIGNMENT
        return offset

    def new_buffer(self, shape: Shape) -> BufferValue:
        """Fresh arena buffers for a value of `shape` (a tuple of them for tuples)."""
        return arena_buffers(shape, lambda n: arena_pointer(self._entry, self.temps,
                                                             self.alloc_offset(n)))

    def emit(self) -> None:
        root = self.comp.root
        if root is None:
            raise CompileError(f"computation {self.comp.name} has no root")
        preassigned = self._result_targets(root)
        for instr in root.walk_operands():
            try:
                self.values[id(instr)] = self._emit_instruction(instr, preassigned)
            except TfcompileError:
                raise
            except Exception as e:  # a kernel bug: name the instruction
                raise CompileError(
                    f"emitting {instr.name} ({instr.opcode.value}) in {self.comp.name} "
                    f"failed: {type(e).__name__}: {e}"
                ) from e
        copy_value(self.builder, self.values[id(root)], self.result)
        self.builder.ret_void()
        ir.IRBuilder(self._entry).branch(self.fn.blocks[1])

    def _emit_instruction(self, instr: HloInstruction,
                          preassigned: dict[int, BufferValue]) -> BufferValue:
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
        out = preassigned.get(id(instr))
        if out is None:
            out = self.new_buffer(instr.shape)
        scope = KernelScope(self, instr, operands, out)
        if kernel is not None:
            kernel(scope, instr, scope.operands, scope.out)
        elif isinstance(scope.out, IrArray):
            gens = {o: scope.elemental(o) for o in instr.operands}
            generator = ElementalEmitter(scope.builder, self.math).generator(instr, gens)
            emit_elemental_loop(scope.builder, scope.out, generator, name="i")
        else:
            raise UnsupportedOpError(f"{op.value} ({instr.name}) of tuple shape {instr.shape}")
        scope.finish()
        return out

    def _result_targets(self, root: HloInstruction) -> dict[int, BufferValue]:
        """Instructions that can write straight into this function's result buffers.

        A root leaf produced by a kernel or a loop (not an alias, parameter or constant)
        and used once among the root leaves gets its result slot as its output buffer;
        the others are copied into their slots at the end.
        """
        found: list[tuple[HloInstruction, BufferValue]] = []

        def walk(instr: HloInstruction, slot: BufferValue) -> None:
            if instr.opcode is Opcode.TUPLE:
                for o, s in zip(instr.operands, slot, strict=True):
                    walk(o, s)
            else:
                found.append((instr, slot))

        walk(root, self.result)
        uses = Counter(id(i) for i, _ in found)
        targets: dict[int, BufferValue] = {}
        for instr, slot in found:
            if uses[id(instr)] != 1 or instr.opcode in VALUE_RULES:
                continue
            if instr.opcode in (Opcode.PARAMETER, Opcode.CONSTANT):
                continue
            targets[id(instr)] = slot
        return targets


class KernelScope:
    """The KernelContext of one instruction: its own LLVM function, called once.

    The function takes the operand leaf buffers, the output leaf buffers and the arena
    pointer; `operands` and `out` are rebound to those parameters. Scratch buffers and the
    arenas of called computations are slices of the caller's arena.
    """

    def __init__(self, parent: FunctionEmitter, instr: HloInstruction,
                 operands: list[BufferValue], out: BufferValue) -> None:
        self.parent = parent
        self.instr = instr
        self.module = parent.module
        self.math = parent.math
        flat_in = [leaf for v in operands for leaf in _flatten_buffers(v)]
        flat_out = _flatten_buffers(out)
        fnty = ir.FunctionType(ir.VoidType(), [PTR] * (len(flat_in) + len(flat_out) + 1))
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
        args = iter(self.fn.args)
        self.operands = [_rebind(v, args) for v in operands]
        self.out = _rebind(out, args)
        self._by_operand = {id(o): v for o, v in zip(instr.operands, self.operands, strict=True)}
        parent.builder.call(self.fn, [*(a.ptr for a in flat_in), *(a.ptr for a in flat_out),
                                      parent.temps])

    def finish(self) -> None:
        self.builder.ret_void()
        ir.IRBuilder(self._entry).branch(self.fn.blocks[1])

    # --- KernelContext -----------------------------------------------------------------------
    def temp_array(self, shape: Any, name: str = "tmp") -> BufferValue:
        return arena_buffers(shape, self._alloc)

    def _alloc(self, nbytes: int) -> ir.Value:
        return arena_pointer(self._entry, self.temps, self.parent.alloc_offset(nbytes))

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
        pointers = [leaf.ptr for a in args for leaf in _flatten_buffers(a)]
        pointers += [leaf.ptr for leaf in _flatten_buffers(out)]
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


def _rebind(value: BufferValue, args: Any) -> BufferValue:
    """`value` with every leaf's pointer replaced by the next function argument."""
    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(_rebind(v, args) for v in value)
    return IrArray(next(args), value.shape, value.invariant)


def arena_pointer(entry: ir.Block, temps: ir.Value, offset: int) -> ir.Value:
    """`temps + offset`, emitted in the entry block so that it dominates every use."""
    return ir.IRBuilder(entry).gep(temps, [i64(offset)], inbounds=True, source_etype=I8)


def arena_buffers(shape: Shape, alloc: Callable[[int], ir.Value]) -> BufferValue:
    """Buffers for a value of `shape`, each leaf's pointer from `alloc(nbytes)`."""
    if shape.is_tuple:
        return tuple(arena_buffers(s, alloc) for s in shape.tuple_shapes)
    if not shape.is_array:
        return None
    return IrArray(alloc(shape.byte_size), shape)


def emit_scalar_computation(b: ir.IRBuilder, math: CpuMath, comp: HloComputation,
                            args: list[Any]) -> list[ir.Value]:
    """Emit `comp` on register values at the builder's position; returns the root leaves.

    Every instruction must be rank 0 (or a tuple of rank-0 values): elemental ops,
    constants, tuples, get-tuple-element and calls of other scalar computations.
    """
    params = comp.parameters
    if len(args) != len(params):
        raise InternalError(f"{comp.name} takes {len(params)} scalars, got {len(args)}")
    values: dict[int, Any] = {}
    scalar_index = IrIndex([], ())
    root = comp.root
    if root is None:
        raise CompileError(f"computation {comp.name} has no root")
    for instr in root.walk_operands():
        op = instr.opcode
        operand_values = [values[id(o)] for o in instr.operands]
        if op is Opcode.PARAMETER:
            values[id(instr)] = args[instr.attrs["parameter_number"]]
        elif op is Opcode.TUPLE:
            values[id(instr)] = tuple(operand_values)
        elif op is Opcode.GET_TUPLE_ELEMENT:
            values[id(instr)] = operand_values[0][instr.attrs["index"]]
        elif op is Opcode.CALL:
            leaves = emit_scalar_computation(b, math, instr.attrs["to_apply"], operand_values)
            values[id(instr)] = tuple(leaves) if instr.shape.is_tuple else leaves[0]
        elif op in EMIT and instr.shape.is_array and instr.shape.rank == 0:
            gens = {o: _constant_generator(values[id(o)]) for o in instr.operands}
            gen = ElementalEmitter(b, math).generator(instr, gens)
            values[id(instr)] = gen(scalar_index)
        else:
            raise UnsupportedOpError(
                f"{op.value} ({instr.name}, shape {instr.shape}) is not supported in the "
                f"scalar computation {comp.name}"
            )
    result = values[id(root)]
    return list(_flatten_registers(result))


def _constant_generator(value: ir.Value) -> Callable[[IrIndex], ir.Value]:
    return lambda index: value


def _flatten_registers(value: Any) -> list[ir.Value]:
    if isinstance(value, tuple):
        return [leaf for v in value for leaf in _flatten_registers(v)]
    return [value]


def compile_to_object(module: HloModule, options: CpuOptions | None = None,
                      **kwargs: Any) -> CpuArtifact:
    """Compile `module` for a CPU: LLVM IR, optimised IR and object code.

    Options come as a CpuOptions or as keyword arguments (see CpuOptions).

    The module is verified first: kernels trust shapes, so an inconsistent module must be
    rejected before any code reads memory by them.

    Raises:
        HloVerificationError: the module breaks an IR invariant (for example a shape).
        UnsupportedOpError: an instruction has neither a kernel nor an elemental emitter.
        CompileError: bad options, or LLVM rejected the generated code.
    """
    verify(module)
    if options is None:
        options = CpuOptions.from_kwargs(**kwargs)
    elif kwargs:
        options = CpuOptions.from_kwargs(**{**_as_dict(options), **kwargs})
    target = objcode.Target.resolve(options.target_triple, options.target_cpu,
                                    options.target_features)
    symbol = options.entry_symbol or f"tfcompile_{c_identifier(module.name)}"
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", symbol):
        raise CompileError(f"entry symbol '{symbol}' is not a C identifier")
    compiler = CpuCompiler(module, options)
    inner = compiler.emit_entry(symbol)
    compiler.llmod.triple = target.triple
    llvm_ir = str(compiler.llmod)
    code = objcode.compile_ir(llvm_ir, target, options.opt_level)
    entry = module.entry_computation
    result_shape = entry.program_shape().result
    return CpuArtifact(
        object_code=code.object_code,
        llvm_ir=llvm_ir,
        optimized_ir=code.optimized_ir,
        symbol=symbol,
        param_shapes=tuple(p.shape for p in entry.parameters),
        result_shape=result_shape,
        arg_shapes=tuple(leaf for p in entry.parameters for leaf in array_leaves(p.shape)),
        result_shapes=tuple(array_leaves(result_shape)),
        temp_bytes=inner.temp_bytes,
        triple=target.triple,
        cpu=target.cpu,
        features=target.features,
        opt_level=options.opt_level,
        module_name=module.name,
        param_names=tuple(p.name for p in entry.parameters),
    )


def _as_dict(options: CpuOptions) -> dict[str, Any]:
    return {f.name: getattr(options, f.name) for f in fields(CpuOptions)}
