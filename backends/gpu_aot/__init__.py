"""Standalone GPU libraries: an HLO module to an object whose entry runs the kernels.

`compile_gpu_program` compiles the module with the GPU backend; `build_gpu_artifact` writes
its host plan as C (`plan_c`, over the driver text of `driver_c`) and compiles it into an
object that `compiler.export.write_library` packages with tfcompile's header and class.
"""

from __future__ import annotations

from backends.gpu_aot.artifact import (
    DEFAULT_GPU_ARCH,
    LINK_LIBRARIES,
    GpuArtifact,
    build_gpu_artifact,
    compile_gpu_program,
    device_entry,
)
from backends.gpu_aot.plan_c import c_literal, host_source

__all__ = [
    "DEFAULT_GPU_ARCH", "LINK_LIBRARIES", "GpuArtifact", "build_gpu_artifact", "c_literal",
    "compile_gpu_program", "device_entry", "host_source",
]
