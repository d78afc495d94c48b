"""LLVM IR -> optimised IR -> object code (and assembly) for one target.

Owns the target machine (triple, CPU, features; position-independent code), verification
of the IR, optimisation with LLVM's new pass manager (`create_pass_builder` with
`PipelineTuningOptions`, loop and SLP vectorisation on) and object emission. It knows
nothing of HLO. Every LLVM target is initialised, so cross-compiling (for example to
`aarch64-unknown-linux-gnu`) works from any host.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import llvmlite.binding as llvm

from hlo.errors import CompileError

# LLVM's global context is shared by parsing, optimisation, emission and JIT linking; one
# lock serialises them across threads (Python-side IR building needs none).
LLVM_LOCK = threading.RLock()
_initialised = False


def _ensure_llvm() -> None:
    global _initialised
    with LLVM_LOCK:
        if not _initialised:
            llvm.initialize_all_targets()
            llvm.initialize_all_asmprinters()
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            _initialised = True


@dataclass(frozen=True)
class Target:
    """What code is generated for: an LLVM triple, a CPU name and a feature string."""

    triple: str
    cpu: str
    features: str

    @staticmethod
    def resolve(triple: str | None = None, cpu: str | None = None,
                features: str | None = None) -> Target:
        """Fill in host defaults.

        For the host, the features come from `llvm.get_host_cpu_features()` rather than from
        the CPU name, since LLVM may name a newer CPU after an older model (and so miss,
        say, AVX-512). A cross target defaults to the generic CPU and no extra features.
        """
        _ensure_llvm()
        host = llvm.get_process_triple()
        triple = triple or host
        is_host = llvm_target(triple).name == llvm_target(host).name
        if cpu is None:
            cpu = llvm.get_host_cpu_name() if is_host else "generic"
        if features is None:
            features = llvm.get_host_cpu_features().flatten() if is_host else ""
        return Target(triple, cpu, features)


def llvm_target(triple: str) -> llvm.Target:
    """LLVM's target for `triple`; raises CompileError for a triple LLVM does not know."""
    _ensure_llvm()
    try:
        return llvm.Target.from_triple(triple)
    except RuntimeError as e:
        raise CompileError(f"unknown target triple '{triple}': {e}") from None


def target_machine(target: Target, opt_level: int = 3, jit: bool = False
                   ) -> llvm.TargetMachine:
    """A target machine generating position-independent code for `target`."""
    return llvm_target(target.triple).create_target_machine(
        cpu=target.cpu,
        features=target.features,
        opt=max(0, min(3, opt_level)),
        reloc="pic",
        codemodel="default",
        jit=jit,
    )


def data_layout(target: Target) -> str:
    """The LLVM data layout string of `target`."""
    return str(target_machine(target).target_data)


def parse_and_verify(llvm_ir: str) -> llvm.ModuleRef:
    """Parse textual IR and run LLVM's verifier; a failure is a compiler bug."""
    _ensure_llvm()
    try:
        mod = llvm.parse_assembly(llvm_ir)
        mod.verify()
    except RuntimeError as e:
        raise CompileError(f"generated LLVM IR is invalid: {e}") from None
    return mod


def optimize(mod: llvm.ModuleRef, tm: llvm.TargetMachine, opt_level: int = 3) -> None:
    """Run the default new-pass-manager pipeline at `opt_level` on `mod`, in place."""
    if opt_level <= 0:
        return
    pto = llvm.PipelineTuningOptions(speed_level=min(opt_level, 3))
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_interleaving = True
    pto.loop_unrolling = True
    pb = llvm.create_pass_builder(tm, pto)
    mpm = pb.getModulePassManager()
    mpm.run(mod, pb)


@dataclass(frozen=True)
class ObjectCode:
    """The products of compiling one LLVM module."""

    optimized_ir: str
    object_code: bytes


def compile_ir(llvm_ir: str, target: Target, opt_level: int = 3) -> ObjectCode:
    """Verify, optimise and emit an object file for `llvm_ir` (which must name no triple)."""
    with LLVM_LOCK:
        tm = target_machine(target, opt_level)
        mod = parse_and_verify(llvm_ir)
        mod.triple = target.triple
        mod.data_layout = str(tm.target_data)
        optimize(mod, tm, opt_level)
        optimized = str(mod)
        return ObjectCode(optimized, tm.emit_object(mod))


def emit_assembly(optimized_ir: str, target: Target, opt_level: int = 3) -> str:
    """Assembly text for already-optimised IR."""
    with LLVM_LOCK:
        tm = target_machine(target, opt_level)
        mod = parse_and_verify(optimized_ir)
        return str(tm.emit_assembly(mod))
