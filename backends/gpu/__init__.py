"""The GPU backend: HLO -> LLVM NVPTX kernels -> PTX, run by the host plan of runtime/cuda.

`compile_to_program(module, **options)` returns a `GpuProgram` (PTX, launches, buffers);
`compile(module, **options)` also loads it, returning a `runtime.cuda.GpuExecutable`
(which needs a GPU and pycuda or the CUDA driver library).
"""

from __future__ import annotations

from dataclasses import replace
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
    from runtime.cuda import GpuExecutable

    return GpuExecutable(compile_to_program(module, resolve_options(GpuOptions.from_kwargs(
        **options))))


def resolve_options(options: GpuOptions) -> GpuOptions:
    """`options` with the architecture filled in from the current device (needs a GPU when
    it is None), so that a compile-cache key names the real target.

    Raises:
        CompileError: no GPU can be used and no architecture was given.
    """
    if options.arch is not None:
        return options
    from runtime.cuda import device_arch

    return replace(options, arch=device_arch())


__all__ = [
    "GpuOptions", "GpuProgram", "GpuTarget", "assemble", "compile", "compile_to_program",
    "ptxas_path", "resolve_options",
]
