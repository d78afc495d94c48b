"""Code generation: the target-agnostic elemental emitter and the CPU (and later GPU) backends.

Public surface: `backends.cpu.compile_to_object` and the `CpuArtifact` it returns.
"""
