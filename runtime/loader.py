"""Loading compiled CPU code into this process and calling it: the Executable.

`Executable(artifact)` links the artifact's object code with LLVM's MCJIT (libm and other
C library symbols resolve from the symbols already loaded in the process) and calls the
entry point through ctypes, which releases the GIL for the duration of the call. Each
call allocates its own results and temporary arena, so one Executable may be called from
several threads at once. The per-call work is the argument check, the allocations and
one foreign call; the ctypes types are built once.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from typing import Any

import llvmlite.binding as llvm
import numpy as np

from backends.cpu import CpuArtifact
from backends.cpu.object import LLVM_LOCK, Target, target_machine
from hlo.errors import ArgumentError, CompileError
from runtime.buffers import ALIGNMENT, aligned_empty
from runtime.checks import check_arguments

_ENTRY_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


def _runs_here(triple: str) -> bool:
    host = llvm.get_process_triple()
    return bool(llvm.Target.from_triple(triple).name == llvm.Target.from_triple(host).name)


class LoadedCode:
    """Object code linked into this process; owns the JIT engine that keeps it alive."""

    def __init__(self, artifact: CpuArtifact) -> None:
        if not _runs_here(artifact.triple):
            raise CompileError(
                f"cannot load code compiled for {artifact.triple} into this "
                f"{llvm.get_process_triple()} process"
            )
        # LLVM's JIT setup is not thread-safe; calls into loaded code are.
        with LLVM_LOCK:
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


def data_address(a: np.ndarray) -> int:
    """The address of a C-contiguous array's first element.

    `ndarray.ctypes.data` costs microseconds; a ctypes view of a writeable buffer is several
    times cheaper, so it is tried first (read-only and zero-size arrays fall back).
    """
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(a))  # type: ignore[arg-type]
    except (TypeError, ValueError, BufferError):
        return int(a.ctypes.data)


class Executable:
    """A compiled module callable on numpy arrays: `exe(*arrays)`.

    Returns one ndarray for an array result, or the tuple of result leaves (nested tuples
    flattened) for a tuple result. Results share one fresh 64-byte-aligned allocation per
    call; the temporary arena is allocated once per thread and reused.
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
        # Fast argument check when every parameter is an array: exact type, dtype, dims.
        self._fast: list[tuple[np.dtype, tuple[int, ...]]] | None = None
        if all(p.is_array for p in self._params):
            self._fast = [(p.element_type.numpy, p.dims) for p in self._params]
        # Result k lives at byte offset _offsets[k] of one allocation of _result_bytes.
        self._offsets: list[int] = []
        total = 0
        for dims, dtype in self._results:
            self._offsets.append(total)
            nbytes = int(np.prod(dims, dtype=np.int64)) * np.dtype(dtype).itemsize
            total += -(-max(nbytes, 1) // ALIGNMENT) * ALIGNMENT
        self._result_bytes = total
        self._local = threading.local()

    @property
    def symbol(self) -> str:
        return self.artifact.symbol

    def __call__(self, *args: Any) -> np.ndarray | tuple[np.ndarray, ...]:
        pointers = self._fast_pointers(args)
        leaves: list[np.ndarray] = []
        if pointers is None:
            leaves = check_arguments(self._params, args, self._names)
            pointers = [data_address(a) for a in leaves]
        results, result_pointers = self._new_results()
        self._call(pointers, result_pointers)
        # `leaves` (copies of non-contiguous arguments) lived until the call returned.
        del leaves
        if self._tuple_result or not results:
            return tuple(results)
        return results[0]

    def run_into(self, args: Sequence[Any], results: Sequence[np.ndarray]) -> None:
        """Run writing into caller-owned result arrays (C-contiguous, right shape/dtype)."""
        leaves = check_arguments(self._params, args, self._names)
        if len(results) != len(self._results):
            raise ArgumentError(f"expected {len(self._results)} result array(s), "
                                f"got {len(results)}")
        for k, (r, (dims, dtype)) in enumerate(zip(results, self._results, strict=True)):
            if (not isinstance(r, np.ndarray) or r.shape != dims or r.dtype != dtype
                    or not r.flags.c_contiguous or not r.flags.writeable):
                raise ArgumentError(f"result {k}: expected a writeable C-contiguous "
                                    f"{dtype}{list(dims)} array")
        self._call([data_address(a) for a in leaves], [data_address(r) for r in results])

    def _fast_pointers(self, args: tuple[Any, ...]) -> list[int] | None:
        """Argument addresses when every argument is exactly right, else None."""
        fast = self._fast
        if fast is None or len(args) != len(fast):
            return None
        pointers = []
        for a, (dtype, dims) in zip(args, fast, strict=True):
            if (type(a) is not np.ndarray or a.dtype != dtype or a.shape != dims
                    or not a.flags.c_contiguous):
                return None
            pointers.append(data_address(a))
        return pointers

    def _new_results(self) -> tuple[list[np.ndarray], list[int]]:
        raw = np.empty(self._result_bytes + ALIGNMENT, np.uint8)
        base = data_address(raw)
        start = (-base) % ALIGNMENT
        results = [
            np.ndarray(dims, dtype=dtype, buffer=raw, offset=start + offset)
            for (dims, dtype), offset in zip(self._results, self._offsets, strict=True)
        ]
        return results, [base + start + offset for offset in self._offsets]

    def _temps(self) -> int | None:
        """This thread's arena address (allocated on first use, then reused)."""
        if not self._temp_bytes:
            return None
        address = getattr(self._local, "address", None)
        if address is None:
            arena = aligned_empty((self._temp_bytes,), np.uint8)
            self._local.arena = arena
            address = self._local.address = data_address(arena)
        return int(address)

    def _call(self, pointers: list[int], result_pointers: list[int]) -> None:
        self._fn(self._arg_array(*pointers), self._result_array(*result_pointers),
                 self._temps())

    def __repr__(self) -> str:
        return f"<Executable {self.artifact.symbol} ({self.artifact.triple})>"


def load(artifact: CpuArtifact) -> Executable:
    """An Executable for `artifact` (which must target this machine's architecture)."""
    return Executable(artifact)
