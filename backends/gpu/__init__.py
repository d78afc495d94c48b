"""The GPU backend: HLO -> LLVM NVPTX kernels -> PTX, run by the host plan of runtime/cuda.

`compile_to_program(module, **options)` returns a `GpuProgram` (PTX, launches, buffers);
`compile(module, **options)` also loads it, returning a `runtime.cuda.GpuExecutable`
(which needs a GPU and pycuda or the CUDA driver library).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backends.gpu.compiler import GpuOptions, compile_to_program
from backends.gpu.plan import GpuProgram
from backends.gpu.ptx import GpuTarget, assemble, ptxas_path
from hlo.module import HloModule

if TYPE_CHECKING:
    from runtime.cuda import GpuExecutable


def compile(module: HloModule, **options: Any) -> GpuExecutable:
    """Compile `module` for the current GPU and load it.

    Options are those of `GpuOptions`; `arch` defaults to the device's architecture.

    Raises:
        UnsupportedOpError: an instruction has no GPU kernel.
        CompileError: code generation failed, or no GPU can be used.
    """
    from runtime.cuda import GpuExecutable, device_arch

    opts = GpuOptions.from_kwargs(**options)
    if opts.arch is None:
        opts = GpuOptions(device_arch(), opts.ptx_version, opts.opt_level)
    return GpuExecutable(compile_to_program(module, opts))


__all__ = [
    "GpuOptions", "GpuProgram", "GpuTarget", "assemble", "compile", "compile_to_program",
    "ptxas_path",
]
