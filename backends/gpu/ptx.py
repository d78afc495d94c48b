"""LLVM IR -> optimised IR -> PTX for NVIDIA GPUs, and PTX -> cubin through `ptxas`.

The GPU lowering stages are `llvm -> llvm_opt -> ptx (-> cubin when ptxas is installed)`.
This file owns the NVPTX target machine (`nvptx64-nvidia-cuda`, an `sm_XY` CPU and a
`+ptxNN` feature), links NVIDIA's libdevice bitcode when the IR calls `__nv_*` math
functions, internalises everything but the kernels (so that LLVM drops the hundreds of
libdevice functions that are not called), optimises with the new pass manager and emits
PTX. It knows nothing of HLO. A failing `ptxas` is reported with its stderr and the exact
command, run on a PTX file that is kept for the repro.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import llvmlite.binding as llvm

from hlo.errors import CompileError

TRIPLE = "nvptx64-nvidia-cuda"
# PTX ISA 8.0 is the oldest that knows sm_90 and is accepted by every CUDA 12+ driver.
DEFAULT_PTX_VERSION = 80
DEFAULT_ARCH = "sm_80"

_INIT_LOCK = threading.Lock()
_initialised = False


def _ensure_llvm() -> None:
    global _initialised
    with _INIT_LOCK:
        if not _initialised:
            llvm.initialize_all_targets()
            llvm.initialize_all_asmprinters()
            _initialised = True


@dataclass(frozen=True)
class GpuTarget:
    """What PTX is generated for.

    Attributes:
        arch: the virtual architecture, `sm_80`, `sm_90`, `sm_90a`, ...
        ptx_version: the PTX ISA version times ten (80 = PTX 8.0).
        opt_level: LLVM optimisation level 0-3.
    """

    arch: str = DEFAULT_ARCH
    ptx_version: int = DEFAULT_PTX_VERSION
    opt_level: int = 3

    def __post_init__(self) -> None:
        if not re.fullmatch(r"sm_[0-9]{2,3}a?", self.arch):
            raise CompileError(f"GPU architecture '{self.arch}' is not of the form sm_XY")
        if int(self.arch[3:].rstrip("a")) < 60:
            raise CompileError(f"GPU architecture {self.arch} is older than sm_60 (Pascal), "
                               "which the generated atomics need")
        if not 0 <= self.opt_level <= 3:
            raise CompileError(f"opt_level must be 0..3, got {self.opt_level!r}")

    @property
    def features(self) -> str:
        return f"+ptx{self.ptx_version}"

    @property
    def compute_capability(self) -> int:
        """The architecture as a number: sm_90 -> 90."""
        return int(self.arch[3:].rstrip("a"))


def target_machine(target: GpuTarget) -> llvm.TargetMachine:
    _ensure_llvm()
    return llvm.Target.from_triple(TRIPLE).create_target_machine(
        cpu=target.arch, features=target.features, opt=target.opt_level
    )


def data_layout(target: GpuTarget) -> str:
    return str(target_machine(target).target_data)


# --- libdevice -------------------------------------------------------------------------------


def _cuda_roots() -> list[Path]:
    roots = [os.environ.get(v, "") for v in ("CUDA_HOME", "CUDA_PATH", "CUDA_ROOT")]
    found = [Path(r) for r in roots if r]
    found.append(Path("/usr/local/cuda"))
    found += [Path(p) for p in sorted(glob.glob("/usr/local/cuda-*"), reverse=True)]
    return found


@functools.cache
def libdevice_path() -> Path | None:
    """The libdevice bitcode of the installed CUDA toolkit, or None."""
    for root in _cuda_roots():
        for candidate in sorted((root / "nvvm" / "libdevice").glob("libdevice*.bc")):
            if candidate.is_file():
                return candidate
    return None


_LIBDEVICE_LOCK = threading.Lock()
_libdevice_modules: dict[str, llvm.ModuleRef] = {}


@functools.cache
def _libdevice_bytes() -> bytes:
    path = libdevice_path()
    if path is None:
        raise CompileError(
            "the generated GPU code calls libdevice math functions, but no libdevice bitcode "
            "was found; install the CUDA toolkit or set CUDA_HOME (searched: "
            + ", ".join(str(r / "nvvm" / "libdevice") for r in _cuda_roots()) + ")"
        )
    return path.read_bytes()


def _calls_libdevice(mod: llvm.ModuleRef) -> bool:
    return any(f.is_declaration and f.name.startswith("__nv_") for f in mod.functions)


def _link_libdevice(mod: llvm.ModuleRef) -> None:
    """Link a copy of libdevice into `mod` (the parsed bitcode is kept per data layout)."""
    with _LIBDEVICE_LOCK:
        lib = _libdevice_modules.get(mod.data_layout)
        if lib is None:
            lib = llvm.parse_bitcode(_libdevice_bytes())
            lib.triple = mod.triple
            lib.data_layout = mod.data_layout
            _libdevice_modules[mod.data_layout] = lib
        mod.link_in(lib, preserve=True)


def _internalize(mod: llvm.ModuleRef, kernels: Sequence[str]) -> None:
    """Every definition but the kernels becomes internal, so unused ones are dropped."""
    keep = set(kernels)
    for fn in mod.functions:
        if not fn.is_declaration and fn.name not in keep:
            fn.linkage = llvm.Linkage.internal
    for gv in mod.global_variables:
        if not gv.is_declaration and gv.linkage != llvm.Linkage.private:
            gv.linkage = llvm.Linkage.internal


# --- compilation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PtxModule:
    """The products of lowering one LLVM module to PTX (one text per stage)."""

    llvm_ir: str
    optimized_ir: str
    ptx: str
    target: GpuTarget
    kernels: tuple[str, ...]

    def stages(self) -> dict[str, str]:
        """Stage name -> text, in lowering order (for dumps)."""
        return {"llvm.ll": self.llvm_ir, "llvm_opt.ll": self.optimized_ir, "ptx": self.ptx}


def compile_to_ptx(llvm_ir: str, target: GpuTarget, kernels: Sequence[str],
                   optimize: bool = True) -> PtxModule:
    """Verify, link libdevice if needed, optimise and emit PTX for `llvm_ir`.

    With `optimize` False the IR is lowered as it is (for IR that was optimised already,
    such as another architecture's `optimized_ir`).

    Raises:
        CompileError: the IR is invalid (a compiler bug), libdevice is needed but missing, or
            LLVM cannot select an instruction for NVPTX.
    """
    tm = target_machine(target)
    try:
        mod = llvm.parse_assembly(llvm_ir)
        mod.verify()
    except RuntimeError as e:
        raise CompileError(f"generated GPU LLVM IR is invalid: {e}") from None
    mod.triple = TRIPLE
    mod.data_layout = str(tm.target_data)
    if _calls_libdevice(mod):
        _link_libdevice(mod)
    _internalize(mod, kernels)
    if optimize and target.opt_level > 0:
        pto = llvm.PipelineTuningOptions(speed_level=target.opt_level)
        pto.loop_unrolling = True
        # PTX has no vector registers beyond small loads; the GPU parallelism is the grid.
        pto.loop_vectorization = False
        pto.slp_vectorization = False
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
    optimized = str(mod)
    try:
        ptx = tm.emit_assembly(mod)
    except RuntimeError as e:
        raise CompileError(f"NVPTX code generation for {target.arch} failed: {e}") from None
    return PtxModule(llvm_ir, optimized, ptx, target, tuple(kernels))


# --- ptxas -----------------------------------------------------------------------------------


def ptxas_path() -> str | None:
    """The `ptxas` executable on PATH or in the CUDA toolkit, or None."""
    found = shutil.which("ptxas")
    if found:
        return found
    for root in _cuda_roots():
        candidate = root / "bin" / "ptxas"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def assemble(ptx: str, arch: str, ptxas: str | None = None, timeout_s: float = 300.0) -> bytes:
    """Assemble PTX into a cubin for `arch` with ptxas.

    Raises:
        CompileError: ptxas is missing, or it rejected the PTX; the message holds ptxas's
            stderr and the exact command, whose input file is kept for the repro.
    """
    exe = ptxas or ptxas_path()
    if exe is None:
        raise CompileError("ptxas was not found on PATH or in the CUDA toolkit")
    workdir = Path(tempfile.mkdtemp(prefix="tfcompile-ptxas-"))
    source = workdir / "module.ptx"
    cubin = workdir / "module.cubin"
    source.write_text(ptx)
    command = [exe, f"-arch={arch}", str(source), "-o", str(cubin)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CompileError(f"running ptxas failed: {e}\n  command: {' '.join(command)}") from None
    if done.returncode != 0:
        raise CompileError(
            f"ptxas rejected the generated PTX for {arch} (exit {done.returncode}):\n"
            f"{done.stderr.strip()}\n  command: {' '.join(command)}"
        )
    data = cubin.read_bytes()
    shutil.rmtree(workdir, ignore_errors=True)
    return data
