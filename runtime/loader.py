"""Loading compiled CPU code into this process and calling it: the Executable.

`Executable(artifact)` links the artifact's object code with LLVM's MCJIT (libm and
other C library symbols resolve from the symbols already loaded in the process) and calls the entry point through
ctypes, which releases the GIL for the duration of the call. Each call allocates its own
results and temporary arena, so one Executable may be called from several threads at
once. The per-call work is the argument check, the allocations and one foreign call; the
ctypes types are built once.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from typing import Any

import llvmlite.binding as llvm
import numpy as np

from backends.cpu import CpuArtifact
from backends.cpu.object import Target, target_machine
from hlo.errors import ArgumentError, CompileError
from runtime.buffers import aligned_empty
from runtime.checks import check_arguments

_ENTRY_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
# LLVM's JIT setup is not thread-safe; calls into loaded code are.
_LINK_LOCK = threading.Lock()


def _runs_here(triple: str) -> bool:
    host = llvm.get_process_triple()
    return llvm.Target.from_triple(triple).name == llvm.Target.from_triple(host).name


class LoadedCode:
    """Object code linked into this process; owns the JIT engine that keeps it alive."""

    def __init__(self, artifact: CpuArtifact) -> None:
        if not _runs_here(artifact.triple):
            raise CompileError(
                f"cannot load code compiled for {artifact.triple} into this "
                f"{llvm.get_process_triple()} process"
            )
        with _LINK_LOCK:
            tm = target_machine(Target(artifact.triple, artifact.cpu, artifact.features),
                                artifact.opt_level, jit=True)
            host_module = llvm.parse_assembly("")
            host_module.triple = artifact.triple
            self._engine = llvm.create_mcjit_compiler(host_module, tm)
            self._object = llvm.ObjectFileRef.from_data(artifact.object_code)
            self._engine.add_object_file(self._object)
            self._engine.finalize_object()
            address = self._engine.get_function_address(artifact.symbol)
        if not address:
            raise CompileError(f"symbol {artifact.symbol} not found in the object code")
        self.address = address
        self.function = _ENTRY_TYPE(address)


class Executable:
    """A compiled module callable on numpy arrays: `exe(*arrays)`.

    Returns one ndarray for an array result, or the tuple of result leaves (nested tuples
    flattened) for a tuple result.
    """

    def __init__(self, artifact: CpuArtifact) -> None:
        self.artifact = artifact
        self._code = LoadedCode(artifact)
        self._fn = self._code.function
        self._params = artifact.param_shapes
        self._names = artifact.param_names
        self._results = [(s.dims, s.element_type.numpy) for s in artifact.result_shapes]
        self._tuple_result = artifact.result_shape.is_tuple
        self._temp_bytes = artifact.temp_bytes
        self._arg_array = ctypes.c_void_p * max(len(artifact.arg_shapes), 1)
        self._result_array = ctypes.c_void_p * max(len(self._results), 1)

    @property
    def symbol(self) -> str:
        return self.artifact.symbol

    def __call__(self, *args: Any) -> np.ndarray | tuple[np.ndarray, ...]:
        leaves = check_arguments(self._params, args, self._names)
        results = [aligned_empty(dims, dtype) for dims, dtype in self._results]
        return self._run(leaves, results)

    def run_into(self, args: Sequence[Any], results: Sequence[np.ndarray]) -> None:
        """Run writing into caller-owned result arrays (C-contiguous, right shape/dtype)."""
        leaves = check_arguments(self._params, args, self._names)
        if len(results) != len(self._results):
            raise ArgumentError(f"expected {len(self._results)} result array(s), "
                                f"got {len(results)}")
        for k, (r, (dims, dtype)) in enumerate(zip(results, self._results)):
            if (not isinstance(r, np.ndarray) or r.shape != dims or r.dtype != dtype
                    or not r.flags.c_contiguous or not r.flags.writeable):
                raise ArgumentError(f"result {k}: expected a writeable C-contiguous "
                                    f"{dtype}{list(dims)} array")
        self._run(leaves, list(results))

    def _run(self, leaves: list[np.ndarray], results: list[np.ndarray]
             ) -> np.ndarray | tuple[np.ndarray, ...]:
        temps = aligned_empty((self._temp_bytes,), np.uint8) if self._temp_bytes else None
        argv = self._arg_array(*[a.ctypes.data for a in leaves])
        resv = self._result_array(*[r.ctypes.data for r in results])
        self._fn(argv, resv, None if temps is None else temps.ctypes.data)
        # `leaves`, `results` and `temps` stay referenced until the call has returned.
        if self._tuple_result or not results:
            return tuple(results)
        return results[0]

    def __repr__(self) -> str:
        return f"<Executable {self.artifact.symbol} ({self.artifact.triple})>"


def load(artifact: CpuArtifact) -> Executable:
    """An Executable for `artifact` (which must target this machine's architecture)."""
    return Executable(artifact)
