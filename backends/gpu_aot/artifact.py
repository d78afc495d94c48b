"""An HLO module to the object file of a standalone GPU library (`GpuArtifact`).

The GPU backend compiles the module to PTX and a host plan; `backends.gpu_aot.plan_c`
writes the plan as C around the embedded PTX (or, when asked, a cubin assembled by
ptxas); the system C compiler turns that into a position-independent object that defines
the entry functions of `backends.cglue.DeviceEntry`. `compiler.export.write_library` then
writes the header and links the shared object as for the CPU backend. The object needs
only libc, libdl and libpthread: the CUDA driver is opened with dlopen when first run.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from backends.cglue import DeviceEntry
from backends.gpu import GpuOptions, GpuProgram, assemble, compile_to_program
from backends.gpu_aot.plan_c import host_source
from backends.libspec import LibrarySpec
from hlo.module import HloModule
from hlo.shape import Shape

log = logging.getLogger(__name__)

DEFAULT_GPU_ARCH = "sm_90"
# What a program linking the object (rather than the shared library) must add.
LINK_LIBRARIES = ("-ldl", "-lpthread")


@dataclass(frozen=True)
class GpuArtifact:
    """A compiled GPU library's object file and what export needs to know about it.

    Attributes:
        object_code: the host object (x86-64 or whatever the C compiler targets).
        symbol: the entry point (also `<symbol>_device`).
        arg_shapes, result_shapes: the flattened buffers, in ABI order.
        temp_bytes: 0: the temporaries live in the device arena the library allocates.
        triple: the host triple the object was compiled for.
        device_entry: the entry ABI, for the header and the C API.
        program: the GPU program (PTX, plan).
        c_source: the C source the object was compiled from.
    """

    object_code: bytes
    symbol: str
    arg_shapes: tuple[Shape, ...]
    result_shapes: tuple[Shape, ...]
    triple: str
    device_entry: DeviceEntry
    program: GpuProgram = field(repr=False)
    c_source: str = field(repr=False)
    temp_bytes: int = 0

    # The stages --dump_hlo_dir writes, as for the CPU artifact.
    @property
    def llvm_ir(self) -> str:
        return self.program.ptx.llvm_ir

    @property
    def optimized_ir(self) -> str:
        return self.program.ptx.optimized_ir

    def asm(self) -> str:
        """The PTX."""
        return self.program.ptx.ptx


def compile_gpu_program(module: HloModule, gpu_arch: str | None = None) -> GpuProgram:
    """The GPU backend's program for `module`, for `gpu_arch` (default sm_90).

    Raises:
        UnsupportedOpError: an instruction has no GPU kernel.
        CompileError: a bad architecture, or code generation failed.
    """
    return compile_to_program(module, GpuOptions(arch=gpu_arch or DEFAULT_GPU_ARCH))


def device_entry(program: GpuProgram, cubin: bool) -> DeviceEntry:
    """The entry ABI with the header notes of `program`."""
    arch = program.ptx.target.arch
    image = f"a cubin for {arch}" if cubin else f"PTX for {arch} (JIT-compiled when loaded)"
    return DeviceEntry("CUDA", (
        f"GPU library: the kernels are embedded as {image}.",
        "Run() launches them through the CUDA driver, which is loaded with",
        "dlopen(\"libcuda.so.1\") on first use: the library links and loads without a GPU,",
        "and Run() then fails with error_msg() saying why. Arguments and results are host",
        "buffers, copied to and from device 0 around each run; RunWithDevicePointers takes",
        "device buffers instead. All runs in a process share one device arena",
        f"({program.arena_bytes} bytes; constants {len(program.constants)} bytes) and are "
        "serialised by a lock.",
        f"Linking the object file itself also needs {' '.join(LINK_LIBRARIES)}.",
    ))


def build_gpu_artifact(program: GpuProgram, spec: LibrarySpec, cubin: bool = False
                       ) -> GpuArtifact:
    """Write `program`'s host code for `spec` and compile it into an object.

    Args:
        program: from `compile_gpu_program`.
        spec: the library's spec; its entry point is the symbol the object defines.
        cubin: embed a cubin assembled by ptxas instead of the PTX.

    Raises:
        CompileError: ptxas (for a cubin) or the C compiler is missing or failed.
    """
    from llvmlite import binding

    from compiler.export import find_c_compiler, run_tool

    entry = device_entry(program, cubin)
    if cubin:
        image = assemble(program.ptx.ptx, program.ptx.target.arch)
    else:
        image = program.ptx.ptx.encode()
    source = host_source(program, spec, entry, image)
    cc = find_c_compiler()
    scratch = Path(tempfile.mkdtemp(prefix="tfcompile-gpu-"))
    c_path = scratch / f"{spec.c_prefix}_gpu.c"
    o_path = scratch / f"{spec.c_prefix}_gpu.o"
    c_path.write_text(source)
    # The scratch directory stays on failure, so that the reported command can be re-run.
    run_tool([*cc, "-std=c11", "-O2", "-fPIC", "-Wall", "-c", str(c_path), "-o", str(o_path)],
             scratch)
    object_code = o_path.read_bytes()
    shutil.rmtree(scratch, ignore_errors=True)
    return GpuArtifact(
        object_code=object_code,
        symbol=spec.entry_point,
        arg_shapes=tuple(program.arg_shapes),
        result_shapes=tuple(program.result_shapes),
        triple=binding.get_process_triple(),
        device_entry=entry,
        program=program,
        c_source=source,
    )
