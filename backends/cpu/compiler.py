"""The CPU compiler driver: HloModule -> LLVM IR -> object code, packaged as a CpuArtifact.

Every computation that runs as code (the entry; call, while, conditional bodies; fusions
that are not one loop nest) becomes an internal LLVM function
`void comp(ptr param leaves..., ptr result leaves..., ptr arena)`, emitted by
`backends.cpu.function.FunctionEmitter`: buffers from the buffer assignment, one small
kernel function per computing instruction. Elemental instructions become a loop nest over
their output calling the generator (`backends.elemental`); everything else is a kernel from
`CPU_KERNELS` (which wins when an opcode has both); fusions are one loop nest, a reduction
reading its fused producers, or a dot with its epilogue (`backends.cpu.fusion`). An opcode
with neither is an UnsupportedOpError (never an evaluator fallback). Scalar combiners
(reduce, sort, map) are emitted inline on register values.

The compiled entry point has the fixed ABI
    void <symbol>(void* const* args, void* const* results, void* temps)
with args/results the flattened parameter/result leaf buffers and temps an arena of
`temp_bytes` bytes (the entry's buffer assignment, scratch included), 64-byte aligned.
The code may use a result's buffer for temporaries before it writes that result, so result
buffers must not overlap arguments, except that a result the module aliases with a
parameter (`input_output_alias`, donation) may be passed as that parameter's own buffer:
the code then updates it in place; given another buffer, the parameter is copied there
first and left unchanged.
The code keeps no global mutable state. A second entry point
    void <symbol>_mt(void* const* args, void* const* results, void* temps, int32_t threads)
runs the same computation with its large loops split across `threads` pthreads
(`backends.cpu.threads`); `<symbol>` calls it with `CpuOptions.threads` (default 1).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field, fields
from typing import Any

from llvmlite import ir

from backends.cpu import object as objcode
from backends.cpu.function import FunctionEmitter, array_leaves, c_identifier
from backends.cpu.loops import memcpy
from backends.cpu.threads import MAX_THREADS
from backends.llvm.irutil import I32, PTR, i64
from backends.target_math import CpuMath
from hlo.computation import HloComputation
from hlo.errors import CompileError
from hlo.module import HloModule
from hlo.shape import Shape
from hlo.verifier import verify

# The suffix of the entry point that takes a thread count.
MT_SUFFIX = "_mt"


def load_kernels() -> None:
    """Import the CPU kernel modules; each registers its opcodes in CPU_KERNELS.

    `control` and `fusion` are this backend's own; `all_kernels` imports the others (dot,
    reductions, sort, ...). Until it exists those opcodes raise UnsupportedOpError when
    compiled.
    """
    importlib.import_module("backends.cpu.control")
    importlib.import_module("backends.cpu.fusion")
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
        threads: threads the entry point runs on (`<symbol>_mt` takes the count instead).
    """

    target_triple: str | None = None
    target_cpu: str | None = None
    target_features: str | None = None
    opt_level: int = 3
    entry_symbol: str | None = None
    threads: int = 1

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
        if (not isinstance(opts.threads, int) or isinstance(opts.threads, bool)
                or not 1 <= opts.threads <= MAX_THREADS):
            raise CompileError(f"threads must be an integer 1..{MAX_THREADS}, "
                               f"got {opts.threads!r}")
        return opts


@dataclass(frozen=True)
class CpuArtifact:
    """A compiled module: object code plus what a loader or header generator needs.

    `temp_bytes` is the arena the entry needs: the total of its buffer assignment, kernel
    scratch included (`extra["buffer_assignment"]`, absent for cached artifacts).
    """

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


@dataclass
class CompiledFunction:
    """An LLVM function for one HLO computation, the arena bytes it needs and the buffer
    assignment that placed them."""

    fn: ir.Function
    temp_bytes: int
    assignment: Any = None


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
        # Buffers, the arena, then the thread count its parallel loops may use.
        fnty = ir.FunctionType(ir.VoidType(),
                               [PTR] * (len(params) + len(results) + 1) + [I32])
        fn = ir.Function(self.llmod, fnty, name=f"comp.{c_identifier(comp.name)}")
        fn.linkage = "internal"
        fn.attributes.add("nounwind")
        for arg in fn.args[:-1]:
            arg.add_attribute("noalias")
        fn.args[-1].name = "threads"
        emitter = FunctionEmitter(self, comp, fn)
        emitter.emit()
        compiled = CompiledFunction(fn, emitter.temp_bytes, emitter.assignment)
        self._functions[key] = compiled
        self._in_progress.discard(key)
        return compiled

    def emit_entry(self, symbol: str) -> CompiledFunction:
        """The exported ABI wrappers around the entry computation's function: `symbol`
        (runs on `options.threads` threads) and `symbol_mt` (the thread count an argument)."""
        entry = self.hlo.entry_computation
        inner = self.function_for(entry)
        n_args = sum(len(array_leaves(p.shape)) for p in entry.parameters)
        n_results = len(array_leaves(entry.program_shape().result))
        mt = ir.Function(self.llmod, ir.FunctionType(ir.VoidType(), [PTR, PTR, PTR, I32]),
                         f"{symbol}{MT_SUFFIX}")
        mt.attributes.add("nounwind")
        args, results, temps, threads = mt.args
        args.name, results.name, temps.name, threads.name = "args", "results", "temps", "threads"
        b = ir.IRBuilder(mt.append_basic_block("entry"))
        pointers = []
        for table, count in ((args, n_args), (results, n_results)):
            for k in range(count):
                slot = b.gep(table, [i64(k)], inbounds=True, source_etype=PTR)
                pointers.append(b.load(slot, typ=PTR, align=8))
        for alias in inner.assignment.aliases:
            # The code updates the argument's buffer into the result. When the caller
            # passed another result buffer (no donation), the argument is copied there
            # first and the code works on the copy: arguments are never written unasked.
            arg, out = pointers[alias.argument], pointers[n_args + alias.result]
            with b.if_then(b.icmp_unsigned("!=", arg, out)):
                size = array_leaves(entry.program_shape().result)[alias.result].byte_size
                memcpy(b, out, arg, size)
            pointers[alias.argument] = out
            inner.fn.args[alias.argument].attributes.discard("noalias")
            inner.fn.args[n_args + alias.result].attributes.discard("noalias")
        b.call(inner.fn, [*pointers, temps, threads])
        b.ret_void()
        fn = ir.Function(self.llmod, ir.FunctionType(ir.VoidType(), [PTR, PTR, PTR]), symbol)
        fn.attributes.add("nounwind")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        b.call(mt, [*fn.args, ir.Constant(I32, self.options.threads)])
        b.ret_void()
        return inner


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
        extra={"buffer_assignment": inner.assignment, "threads": options.threads},
    )


def _as_dict(options: CpuOptions) -> dict[str, Any]:
    return {f.name: getattr(options, f.name) for f in fields(CpuOptions)}
