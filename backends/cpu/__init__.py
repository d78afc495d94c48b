"""The CPU backend: HLO -> LLVM IR -> optimised IR -> object code for x86-64 or AArch64.

`compile_to_object(module, options)` returns a `CpuArtifact` (object code, IR, shapes,
arena size) with the ABI `void <symbol>(void* const* args, void* const* results, void* temps)`.
"""

from backends.cpu.compiler import CpuArtifact, CpuOptions, compile_to_object

__all__ = ["CpuArtifact", "CpuOptions", "compile_to_object"]
