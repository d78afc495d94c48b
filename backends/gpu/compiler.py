"""The GPU compiler driver: HloModule -> kernels in one LLVM module -> PTX, plus the host plan.

Buffer convention. Every array value lives in a dense row-major device buffer, a `Slot`
of the per-call arena or of the constant pool (see `plan.py`); no buffer is reused yet.
Entry parameters get arena slots that the runtime fills; the entry result is wherever the
root's slots are. Tuple, get-tuple-element, bitcast, reshape, copy and opt-barrier only
rename slots (buffers are immutable once written), constants are slots of the pool.

Instructions that compute become kernel launches: an opcode of `GPU_KERNELS` runs its
emitter; an elemental one gets a per-element kernel (`kernels.emit_elemental`); a loop
fusion one such kernel over the fused expression, and an input fusion (a reduce of fused
producers) the reduce's kernels reading the fused expression (`input_fusion.py`);
an opcode of `misc.SERIAL_KERNELS` runs the CPU backend's loop code on one GPU thread;
an opcode of `expand.EXPANSIONS` (batch normalisation) becomes a computation of other ops.
Anything else is an UnsupportedOpError. Kernels are emitted once per instruction; called
computations (call, while, conditional, other fusions) are instantiated at each
call site with the caller's slots, so their kernels are launched with different buffers.
While and conditional are driven by the host, which reads the predicate or branch index
back after computing it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from llvmlite import ir

from backends.elemental import EMIT
from backends.elemental_movement import literal_bytes
from backends.gpu import kernels as gk
from backends.gpu.expand import EXPANSIONS
from backends.gpu.input_fusion import emit_input_fusion, is_input_fusion
from backends.gpu.kernels import GPU_KERNELS, KernelFunction
from backends.gpu.launch import LaunchDims
from backends.gpu.plan import (
    BufferValue,
    Conditional,
    Copy,
    GpuProgram,
    Launch,
    Pool,
    Slot,
    Step,
    While,
    leaves,
)
from backends.gpu.ptx import DEFAULT_ARCH, DEFAULT_PTX_VERSION, GpuTarget, compile_to_ptx
from backends.gpu.target_math import GpuMath, legalize_math_calls
from backends.scalar_computation import emit_scalar_computation
from hlo import debug_options
from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType
from hlo.errors import CompileError, InternalError, TfcompileError, UnsupportedOpError
from hlo.instruction import HloInstruction
from hlo.module import HloModule
from hlo.opcodes import Opcode
from hlo.shape import Shape

ALIGNMENT = 256
_KERNEL_MODULES = ("misc", "gather_scatter", "reduction", "dot", "conv", "sort", "fft")


def load_kernels() -> None:
    """Import the GPU kernel modules; each registers its opcodes in GPU_KERNELS."""
    for name in _KERNEL_MODULES:
        importlib.import_module(f"backends.gpu.{name}")


@dataclass(frozen=True)
class GpuOptions:
    """Options of the GPU backend.

    Attributes:
        arch: PTX target architecture (`sm_80`, `sm_90`, ...); None = the current device's,
            or sm_80 without one.
        ptx_version: PTX ISA version times ten.
        opt_level: LLVM optimisation level 0-3.
    """

    arch: str | None = None
    ptx_version: int = DEFAULT_PTX_VERSION
    opt_level: int = 3

    @staticmethod
    def from_kwargs(**options: Any) -> GpuOptions:
        """GpuOptions from keyword arguments; unknown names raise CompileError."""
        known = {f.name for f in fields(GpuOptions)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise CompileError(f"unknown GPU backend option(s) {unknown}; known: {sorted(known)}")
        return GpuOptions(**options)

    def target(self, default_arch: str = DEFAULT_ARCH) -> GpuTarget:
        return GpuTarget(self.arch or default_arch, self.ptx_version, self.opt_level)


def _identifier(name: str) -> str:
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return ident[:48]


def _align(n: int) -> int:
    return -(-max(n, 1) // ALIGNMENT) * ALIGNMENT


class GpuCompiler:
    """Builds the kernels and the plan of one HloModule (one instance per compilation)."""

    def __init__(self, module: HloModule) -> None:
        load_kernels()
        self.hlo = module
        self.llmod = ir.Module(name=module.name)
        self.math = GpuMath()
        self.arena_bytes = 0
        self.constants = bytearray()
        self._constant_slots: dict[int, BufferValue] = {}
        self._kernels: dict[tuple[int, str], KernelFunction] = {}
        self.kernel_names: list[str] = []
        self._active: set[int] = set()
        self._expansions: dict[int, HloComputation] = {}

    # --- buffers ---------------------------------------------------------------------------
    def alloc(self, shape: Shape) -> BufferValue:
        """Fresh arena slots for a value of `shape`."""
        if shape.is_tuple:
            return tuple(self.alloc(s) for s in shape.tuple_shapes)
        if not shape.is_array:
            return None
        slot = Slot(Pool.ARENA, self.arena_bytes, shape)
        self.arena_bytes += _align(shape.byte_size)
        return slot

    def constant(self, instr: HloInstruction) -> BufferValue:
        """The pool slots of a constant (added once)."""
        key = id(instr)
        if key not in self._constant_slots:
            self._constant_slots[key] = self._pool(instr.shape, instr.attrs["literal"])
        return self._constant_slots[key]

    def _pool(self, shape: Shape, literal: Any) -> BufferValue:
        if shape.is_tuple:
            parts = zip(shape.tuple_shapes, literal, strict=True)
            return tuple(self._pool(s, lit) for s, lit in parts)
        if not shape.is_array:
            return None
        offset = len(self.constants)
        data = literal_bytes(literal)
        self.constants += data
        self.constants += bytes(_align(len(data)) - len(data))
        return Slot(Pool.CONSTANTS, offset, shape)

    # --- kernels ---------------------------------------------------------------------------
    def kernel(self, instr: HloInstruction, role: str, outputs: Sequence[Shape],
               inputs: Sequence[Shape], scratch: bool) -> KernelFunction:
        key = (id(instr), role)
        found = self._kernels.get(key)
        if found is not None:
            return found
        name = f"k{len(self.kernel_names)}_{_identifier(instr.name)}_{role}"
        kernel = KernelFunction(self.llmod, name, outputs, inputs, scratch)
        self._kernels[key] = kernel
        self.kernel_names.append(name)
        return kernel

    def expansion(self, instr: HloInstruction) -> HloComputation:
        """The computation that replaces `instr` (see expand.py), built once."""
        key = id(instr)
        if key not in self._expansions:
            self._expansions[key] = EXPANSIONS[instr.opcode](instr)
        return self._expansions[key]

    # --- computations ----------------------------------------------------------------------
    def instantiate(self, comp: HloComputation, args: Sequence[BufferValue],
                    into: BufferValue = None) -> tuple[list[Step], BufferValue]:
        """The steps of one call of `comp` with parameter buffers `args`, and its result.

        With `into`, root leaves computed by kernels write straight into those buffers
        (the caller still copies the leaves that are aliases, such as parameters).
        """
        key = id(comp)
        if key in self._active:
            raise CompileError(f"computation {comp.name} calls itself")
        if len(args) != len(comp.parameters):
            raise InternalError(f"{comp.name} takes {len(comp.parameters)} arguments, "
                                f"got {len(args)}")
        self._active.add(key)
        try:
            site = CallSite(self, comp, args, into)
            result = site.run()
        finally:
            self._active.discard(key)
        return site.steps, result


class CallSite:
    """One instantiation of a computation: the values of its instructions and its steps."""

    def __init__(self, compiler: GpuCompiler, comp: HloComputation,
                 args: Sequence[BufferValue], into: BufferValue = None) -> None:
        self.compiler = compiler
        self.comp = comp
        self.args = list(args)
        self.steps: list[Step] = []
        self.values: dict[int, BufferValue] = {}
        self.targets: dict[int, Slot] = {}
        if into is not None and comp.root is not None:
            self.targets = _result_targets(comp.root, into)

    def run(self) -> BufferValue:
        root = self.comp.root
        if root is None:
            raise CompileError(f"computation {self.comp.name} has no root")
        for instr in root.walk_operands():
            try:
                self.values[id(instr)] = self._emit(instr)
            except TfcompileError:
                raise
            except Exception as e:  # a kernel bug: name the instruction
                raise CompileError(
                    f"emitting {instr.name} ({instr.opcode.value}) in {self.comp.name} for "
                    f"the GPU failed: {type(e).__name__}: {e}"
                ) from e
        return self.values[id(root)]

    def _emit(self, instr: HloInstruction) -> BufferValue:
        op = instr.opcode
        operands = [self.values[id(o)] for o in instr.operands]
        rule = VALUE_RULES.get(op)
        if rule is not None:
            return rule(self, instr, operands)
        host = HOST_RULES.get(op)
        if host is not None and not (op is Opcode.FUSION and _is_kernel_fusion(instr)):
            return host(self, instr, operands)
        if op in EXPANSIONS:
            steps, result = self.compiler.instantiate(self.compiler.expansion(instr), operands)
            self.steps.extend(steps)
            return result
        emitter = _emitter_for(instr)
        target = self.targets.get(id(instr))
        out = target if target is not None else self.compiler.alloc(instr.shape)
        ctx = EmitContext(self, instr, operands, out)
        emitter(ctx, instr)
        return out


def _result_targets(root: HloInstruction, into: BufferValue) -> dict[int, Slot]:
    """Root leaves that may compute straight into the caller's buffers `into`.

    A leaf qualifies when a kernel computes it (not an alias, parameter, constant, call or
    control flow) and it appears once among the root's leaves.
    """
    found: list[tuple[HloInstruction, BufferValue]] = []

    def walk(instr: HloInstruction, slot: BufferValue) -> None:
        if instr.opcode is Opcode.TUPLE and isinstance(slot, tuple):
            for operand, part in zip(instr.operands, slot, strict=True):
                walk(operand, part)
        else:
            found.append((instr, slot))

    walk(root, into)
    counts: dict[int, int] = {}
    for instr, _ in found:
        counts[id(instr)] = counts.get(id(instr), 0) + 1
    targets: dict[int, Slot] = {}
    for instr, slot in found:
        op = instr.opcode
        if (counts[id(instr)] == 1 and isinstance(slot, Slot) and instr.shape.is_array
                and op not in VALUE_RULES and op not in HOST_RULES and op not in EXPANSIONS):
            targets[id(instr)] = slot
    return targets


def _is_loop_fusion(instr: HloInstruction) -> bool:
    return gk.is_elemental_computation(instr.attrs["calls"]) and instr.shape.is_array


def _is_kernel_fusion(instr: HloInstruction) -> bool:
    """A fusion that becomes kernels of its own: a loop fusion or an input (reduce) fusion.
    Other fusions run their instructions one by one, as a call does."""
    return _is_loop_fusion(instr) or is_input_fusion(instr)


def _emitter_for(instr: HloInstruction) -> gk.GpuKernelEmitter:
    from backends.gpu.misc import SERIAL_KERNELS, emit_serial

    op = instr.opcode
    if op is Opcode.FUSION:
        return gk.emit_loop_fusion if _is_loop_fusion(instr) else emit_input_fusion
    if op in GPU_KERNELS:
        return GPU_KERNELS[op]
    if op in EMIT and instr.shape.is_array:
        return gk.emit_elemental
    if op in SERIAL_KERNELS:
        return emit_serial
    raise UnsupportedOpError(
        f"the GPU backend cannot compile {op.value}: no kernel for instruction {instr.name}"
    )


class EmitContext:
    """The KernelContext of one instruction at one call site (see kernels.KernelContext)."""

    def __init__(self, site: CallSite, instr: HloInstruction, operands: list[BufferValue],
                 out: BufferValue) -> None:
        self.site = site
        self.instr = instr
        self.operands = operands
        self.out = out
        self.module = site.compiler.llmod
        self.math = site.compiler.math
        self._bound: dict[str, tuple[Slot, ...]] = {}

    def kernel(self, role: str, outputs: Sequence[Slot], inputs: Sequence[Slot],
               scratch: bool = False) -> KernelFunction:
        kernel = self.site.compiler.kernel(self.instr, role, [s.shape for s in outputs],
                                           [s.shape for s in inputs], scratch)
        if len(kernel.outputs) != len(outputs) or len(kernel.inputs) != len(inputs):
            raise InternalError(f"kernel {kernel.name} rebound with other arguments")
        self._bound[kernel.name] = (*outputs, *inputs)
        return kernel

    def launch(self, kernel: KernelFunction, dims: LaunchDims) -> None:
        if not kernel.finished:
            raise InternalError(f"kernel {kernel.name} launched before it was finished")
        slots = self._bound[kernel.name]
        if kernel.scratch is not None:
            scratch = self.site.compiler.alloc(
                Shape.array(PrimitiveType.U8, (max(kernel.scratch_bytes, 1),)))
            assert isinstance(scratch, Slot)
            slots = (*slots, scratch)
        self.site.steps.append(Launch(kernel.name, dims, slots, self.instr.name))

    def temp(self, shape: Shape) -> BufferValue:
        return self.site.compiler.alloc(shape)

    def copy(self, dst: BufferValue, src: BufferValue) -> None:
        self.site.steps.extend(copy_steps(dst, src))

    def scalar_computation(self, b: ir.IRBuilder, comp: HloComputation,
                           args: Sequence[ir.Value]) -> list[ir.Value]:
        return emit_scalar_computation(b, self.math, comp, args)


def copy_steps(dst: BufferValue, src: BufferValue) -> list[Step]:
    """Copies of every leaf of `src` into the matching leaf of `dst` (none onto itself)."""
    dst_leaves, src_leaves = leaves(dst), leaves(src)
    if len(dst_leaves) != len(src_leaves):
        raise InternalError(f"copying {len(src_leaves)} buffers into {len(dst_leaves)}")
    steps: list[Step] = []
    for d, s in zip(dst_leaves, src_leaves, strict=True):
        if d.nbytes != s.nbytes:
            raise InternalError(f"copying {s.nbytes} bytes into {d.nbytes}")
        if d == s or d.nbytes == 0:
            continue
        steps.append(Copy(d, s))
    return steps


# --- instructions that only rename buffers -----------------------------------------------------

ValueRule = Callable[[CallSite, HloInstruction, list[BufferValue]], BufferValue]


def _parameter(site: CallSite, instr: HloInstruction, ops: list[BufferValue]) -> BufferValue:
    return site.args[int(instr.attrs["parameter_number"])]


def _tuple(site: CallSite, instr: HloInstruction, ops: list[BufferValue]) -> BufferValue:
    return tuple(ops)


def _get_tuple_element(site: CallSite, instr: HloInstruction, ops: list[BufferValue]
                       ) -> BufferValue:
    value = ops[0]
    if not isinstance(value, tuple):
        raise InternalError(f"{instr.name}: get-tuple-element of a non-tuple value")
    return value[int(instr.attrs["index"])]


def _reinterpret(site: CallSite, instr: HloInstruction, ops: list[BufferValue]) -> BufferValue:
    src = ops[0]
    if not isinstance(src, Slot) or src.nbytes != instr.shape.byte_size:
        raise CompileError(f"{instr.name}: {instr.opcode.value} changes the buffer size")
    return src.reinterpret(instr.shape)


def _alias(site: CallSite, instr: HloInstruction, ops: list[BufferValue]) -> BufferValue:
    return ops[0]


def _token(site: CallSite, instr: HloInstruction, ops: list[BufferValue]) -> BufferValue:
    return None


def _constant(site: CallSite, instr: HloInstruction, ops: list[BufferValue]) -> BufferValue:
    return site.compiler.constant(instr)


def _single_replica(site: CallSite, instr: HloInstruction, ops: list[BufferValue]
                    ) -> BufferValue:
    # One device is one replica: reducing across replicas leaves each operand unchanged.
    return tuple(ops) if instr.shape.is_tuple else ops[0]


VALUE_RULES: dict[Opcode, ValueRule] = {
    Opcode.PARAMETER: _parameter,
    Opcode.TUPLE: _tuple,
    Opcode.GET_TUPLE_ELEMENT: _get_tuple_element,
    Opcode.BITCAST: _reinterpret,
    Opcode.RESHAPE: _reinterpret,
    Opcode.COPY: _alias,
    Opcode.OPTIMIZATION_BARRIER: _alias,
    Opcode.AFTER_ALL: _token,
    Opcode.CONSTANT: _constant,
    Opcode.ALL_REDUCE: _single_replica,
    Opcode.CROSS_REPLICA_SUM: _single_replica,
}


# --- control flow driven by the host -----------------------------------------------------------


def _call(site: CallSite, instr: HloInstruction, ops: list[BufferValue]) -> BufferValue:
    steps, result = site.compiler.instantiate(instr.attrs["to_apply"], ops)
    site.steps.extend(steps)
    return result


def _fusion(site: CallSite, instr: HloInstruction, ops: list[BufferValue]) -> BufferValue:
    # Not a loop fusion: its instructions run as kernels of their own, as in a call.
    steps, result = site.compiler.instantiate(instr.attrs["calls"], ops)
    site.steps.extend(steps)
    return result


def _while(site: CallSite, instr: HloInstruction, ops: list[BufferValue]) -> BufferValue:
    """state = init; while cond(state): state = body(state), the state in fixed buffers."""
    compiler = site.compiler
    state = compiler.alloc(instr.shape)
    site.steps.extend(copy_steps(state, ops[0]))
    cond_steps, pred = compiler.instantiate(instr.attrs["condition"], [state])
    body_steps, result = compiler.instantiate(instr.attrs["body"], [state])
    if not isinstance(pred, Slot):
        raise InternalError(f"{instr.name}: the condition does not return a PRED array")
    body_steps.extend(_write_back(compiler, state, result))
    site.steps.append(While(tuple(cond_steps), pred, tuple(body_steps), instr.name))
    return state


def _write_back(compiler: GpuCompiler, state: BufferValue, result: BufferValue) -> list[Step]:
    """Copies of the body's result into the loop state.

    A result leaf that is a state buffer at another position (the body permutes its state)
    is staged through a temporary first, so no copy reads what an earlier one overwrote.
    """
    state_leaves = leaves(state)
    staged: list[Slot] = []
    steps: list[Step] = []
    for k, src in enumerate(leaves(result)):
        if any(src.overlaps(s) for j, s in enumerate(state_leaves) if j != k):
            tmp = compiler.alloc(src.shape)
            assert isinstance(tmp, Slot)
            steps.append(Copy(tmp, src))
            staged.append(tmp)
        else:
            staged.append(src)
    for dst, src in zip(state_leaves, staged, strict=True):
        if dst != src and dst.nbytes:
            steps.append(Copy(dst, src))
    return steps


def _conditional(site: CallSite, instr: HloInstruction, ops: list[BufferValue]) -> BufferValue:
    """Each branch runs on its operand and writes the conditional's own buffers."""
    compiler = site.compiler
    branches = instr.attrs.get("branch_computations")
    if branches is None:
        # The pred form: true_computation is branch 0, as the runtime reads PRED true as 0.
        branches = (instr.attrs["true_computation"], instr.attrs["false_computation"])
    selector = ops[0]
    if not isinstance(selector, Slot):
        raise InternalError(f"{instr.name}: the branch selector has no buffer")
    out = compiler.alloc(instr.shape)
    plans: list[tuple[Step, ...]] = []
    for k, comp in enumerate(branches):
        steps, result = compiler.instantiate(comp, [ops[k + 1]], into=out)
        steps.extend(copy_steps(out, result))
        plans.append(tuple(steps))
    site.steps.append(Conditional(selector, tuple(plans), instr.name))
    return out


HOST_RULES: dict[Opcode, ValueRule] = {
    Opcode.CALL: _call,
    Opcode.FUSION: _fusion,
    Opcode.WHILE: _while,
    Opcode.CONDITIONAL: _conditional,
}


# --- the entry point ---------------------------------------------------------------------------


def compile_to_program(module: HloModule, options: GpuOptions | None = None,
                       **kwargs: Any) -> GpuProgram:
    """Compile `module` into PTX and a host plan for NVIDIA GPUs.

    Raises:
        UnsupportedOpError: an instruction has no GPU kernel.
        CompileError: bad options, or LLVM rejected the generated code.
    """
    if options is None:
        options = GpuOptions.from_kwargs(**kwargs)
    target = options.target()
    compiler = GpuCompiler(module)
    entry = module.entry_computation
    params = [compiler.alloc(p.shape) for p in entry.parameters]
    steps, result = compiler.instantiate(entry, params)
    legalize_math_calls(compiler.llmod)
    llvm_ir = str(compiler.llmod)
    ptx = compile_to_ptx(llvm_ir, target, compiler.kernel_names)
    result_shape = entry.program_shape().result
    program = GpuProgram(
        name=module.name,
        ptx=ptx,
        steps=tuple(steps),
        arena_bytes=compiler.arena_bytes,
        constants=bytes(compiler.constants),
        params=tuple(params),
        result=result,
        param_shapes=tuple(p.shape for p in entry.parameters),
        result_shape=result_shape,
        arg_shapes=tuple(s.shape for p in params for s in leaves(p)),
        result_shapes=tuple(s for s in result_shape.leaves() if s.is_array),
        param_names=tuple(p.name for p in entry.parameters),
    )
    directory = debug_options.get().dump_dir
    if directory:
        dump_stages(program, Path(directory))
    return program


def dump_stages(program: GpuProgram, directory: Path) -> list[Path]:
    """Write each lowering stage (`llvm.ll`, `llvm_opt.ll`, `ptx`) and the plan of
    `program` as `<module>.gpu.<stage>` files in `directory`; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", program.name)
    texts = {**program.ptx.stages(), "plan.txt": program.describe()}
    paths = []
    for stage, text in texts.items():
        path = directory / f"{stem}.gpu.{stage}"
        path.write_text(text)
        paths.append(path)
    return paths
