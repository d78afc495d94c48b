"""Loading compiled CPU code into this process and calling it: the Executable.

`Executable(artifact)` links the artifact's object code with LLVM's MCJIT (libm and other
C library symbols resolve from the symbols already loaded in the process). Calls take one
of two paths:
  * the native fast path (runtime/fastcall.py): a CPython builtin that checks exact
    C-contiguous ndarray arguments, allocates the results and calls the entry point in
    machine code, holding the GIL for short kernels and releasing it for long ones;
  * the Python path, which the native one falls back to for anything else (numpy scalars,
    tuples, non-contiguous or mistyped arguments) and which is used alone where native
    calls are unavailable: full argument checks with precise errors, then one ctypes call
    (which releases the GIL).
Results are fresh arrays on every call; the temporary arena is cached (per descriptor on
the native path, per thread on the Python path), so one Executable may be called from
several threads at once.

Threads: `exe.threads = n` makes later calls run the entry point `<symbol>_mt` with n
threads (results are identical for every n), through the same native call (or Python
path); the count the code was compiled with (`threads=` compile option, default 1) runs
the plain entry point.
"""

from __future__ import annotations

import ctypes
import functools
import inspect
import operator
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import llvmlite.binding as llvm
import numpy as np

from backends.cpu import CpuArtifact
from backends.cpu.compiler import MT_SUFFIX
from backends.cpu.object import LLVM_LOCK, Target, target_machine
from backends.cpu.threads import MAX_THREADS, START_HOOK, STOP_HOOK
from hlo import debug_options
from hlo.errors import ArgumentError, CompileError
from hlo.shape import Shape
from runtime import fastcall
from runtime.buffers import aligned_empty, result_allocator
from runtime.checks import check_arguments
from runtime.fastcall import NativeCall, Returns

_ENTRY_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
# `<symbol>_mt`: the entry point with a thread count.
_MT_ENTRY_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                  ctypes.c_int32)
# Kernels touching less memory than this (arguments, results and temporaries) run with the
# GIL held on the native path: releasing and re-taking it costs a few hundred nanoseconds,
# as much as the whole call of a small kernel, and such kernels finish in microseconds.
HOLD_GIL_BELOW_BYTES = 64 * 1024
_CALL_SIGNATURE = inspect.Signature([inspect.Parameter("arrays", inspect.Parameter.VAR_POSITIONAL)])


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
            mt_address = self._engine.get_function_address(artifact.symbol + MT_SUFFIX)
            start = self._engine.get_function_address(START_HOOK)
            stop = self._engine.get_function_address(STOP_HOOK)
        if start and stop:
            # The JIT runs no module constructors or destructors: start the thread pool's
            # fast mode here, and join its workers before the engine unmaps their code
            # (weakref callbacks run before the instance, and so the engine, is released).
            ctypes.CFUNCTYPE(None)(start)()
            weakref.finalize(self, ctypes.CFUNCTYPE(None)(stop))
        if not address:
            raise CompileError(f"symbol {artifact.symbol} not found in the object code")
        self.address = address
        self.function = _ENTRY_TYPE(address)
        # None for code compiled before entry points took a thread count.
        self.mt_address = mt_address or 0
        self.mt_function = _MT_ENTRY_TYPE(mt_address) if mt_address else None


def data_address(a: np.ndarray) -> int:
    """The address of a C-contiguous array's first element.

    `ndarray.ctypes.data` costs microseconds; a ctypes view of a writeable buffer is several
    times cheaper, so it is tried first (read-only and zero-size arrays fall back).
    """
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(a))  # type: ignore[arg-type]
    except (TypeError, ValueError, BufferError):
        return int(a.ctypes.data)


def _nbytes(shape: Shape) -> int:
    count = 1
    for d in shape.dims:
        count *= d
    return count * shape.element_type.numpy.itemsize


class PythonCall:
    """The Python calling path: full argument checks, then one ctypes call.

    Calling it is calling the Executable; the native path falls back to it for every call
    it does not handle itself, so that errors are reported in one place.
    """

    def __init__(self, artifact: CpuArtifact, code: LoadedCode) -> None:
        self._fn = code.function
        self._fn_mt = code.mt_function
        # The thread count to pass `<symbol>_mt`, or None to call `<symbol>`.
        self.threads: int | None = None
        self._params = artifact.param_shapes
        self._names = artifact.param_names
        # (allocator, dims, dtype) per result leaf.
        self.results = [(result_allocator(_nbytes(s)), s.dims, s.element_type.numpy)
                        for s in artifact.result_shapes]
        self._single = not artifact.result_shape.is_tuple and len(self.results) == 1
        self._temp_bytes = artifact.temp_bytes
        self._arg_array = ctypes.c_void_p * max(len(artifact.arg_shapes), 1)
        self._result_array = ctypes.c_void_p * max(len(self.results), 1)
        # Exact (dtype, dims) per parameter when every parameter is an array, for the quick
        # check; None when some parameter is a tuple.
        self.exact: list[tuple[np.dtype, tuple[int, ...]]] | None = None
        if all(p.is_array for p in self._params):
            self.exact = [(p.element_type.numpy, p.dims) for p in self._params]
        self._local = threading.local()

    def __call__(self, *args: Any) -> np.ndarray | tuple[np.ndarray, ...]:
        leaves: Sequence[np.ndarray] | None = self._quick_leaves(args)
        if leaves is None:
            leaves = check_arguments(self._params, args, self._names)
        results = self.new_results()
        self.run(leaves, results)
        if self._single:
            return results[0]
        return tuple(results)

    def new_results(self) -> list[np.ndarray]:
        """Fresh arrays for the results (64-byte aligned when large)."""
        return [alloc(dims, dtype) for alloc, dims, dtype in self.results]

    def run(self, leaves: Sequence[np.ndarray], results: Sequence[np.ndarray]) -> None:
        """Call the entry point on checked, C-contiguous argument and result arrays."""
        args = self._arg_array(*[data_address(a) for a in leaves])
        outs = self._result_array(*[data_address(r) for r in results])
        if self.threads is None or self._fn_mt is None:
            self._fn(args, outs, self._temps())
        else:
            self._fn_mt(args, outs, self._temps(), self.threads)

    def check_results(self, results: Sequence[Any]) -> None:
        """Raise ArgumentError unless `results` can receive this entry point's results."""
        if len(results) != len(self.results):
            raise ArgumentError(f"expected {len(self.results)} result array(s), "
                                f"got {len(results)}")
        for k, (r, (_, dims, dtype)) in enumerate(zip(results, self.results, strict=True)):
            if (not isinstance(r, np.ndarray) or r.shape != dims or r.dtype != dtype
                    or not (r.flags.c_contiguous and r.flags.writeable and r.flags.aligned)):
                raise ArgumentError(f"result {k}: expected a writeable, aligned C-contiguous "
                                    f"{dtype}{list(dims)} array")

    def check(self, args: Sequence[Any]) -> list[np.ndarray]:
        """The checked, C-contiguous argument leaves of `args`."""
        return check_arguments(self._params, args, self._names)

    def _quick_leaves(self, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """`args` when every one is exactly right as it is, else None."""
        exact = self.exact
        if exact is None or len(args) != len(exact):
            return None
        for a, (dtype, dims) in zip(args, exact, strict=True):
            if type(a) is not np.ndarray or a.dtype != dtype or a.shape != dims:
                return None
            flags = a.flags
            if not (flags.c_contiguous and flags.aligned):
                return None
        return args

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


class Executable:
    """A compiled module callable on numpy arrays: `exe(*arrays)`.

    Returns one ndarray for an array result, or the tuple of result leaves (nested tuples
    flattened) for a tuple result. Results are fresh arrays on every call, 64-byte aligned
    when large (see `runtime.buffers.result_allocator`), naturally aligned otherwise.

    Attributes:
        native: the native fast call, or None where unavailable (or not asked for).
    """

    def __init__(self, artifact: CpuArtifact, native: bool = True) -> None:
        self.artifact = artifact
        self._code = LoadedCode(artifact)
        self._python = PythonCall(artifact, self._code)
        use_native = native and debug_options.get().native_calls
        self.native = self.native_call(self._python) if use_native else None
        self._call = self._python if self.native is None else self.native.function
        self._compiled_threads = int(artifact.extra.get("threads", 1))
        self._threads = self._compiled_threads
        # inspect.signature cannot see through the __call__ property below.
        self.__signature__ = _CALL_SIGNATURE

    @property
    def symbol(self) -> str:
        return self.artifact.symbol

    @property
    def threads(self) -> int:
        """The number of threads calls may use (results are the same for every count)."""
        return self._threads

    @threads.setter
    def threads(self, count: int) -> None:
        if (not isinstance(count, (int, np.integer)) or isinstance(count, bool)
                or not 1 <= int(count) <= MAX_THREADS):
            raise ArgumentError(f"threads must be an integer 1..{MAX_THREADS}, got {count!r}")
        count = int(count)
        if count != self._compiled_threads and self._code.mt_function is None:
            raise ArgumentError(f"{self.artifact.symbol} has no {MT_SUFFIX} entry point "
                                f"(compiled by an older version): recompile to set threads")
        self._threads = count
        compiled = count == self._compiled_threads
        self._python.threads = None if compiled else count
        if self.native is not None:
            # The native call switches to the `_mt` entry with this count (same arena).
            if compiled:
                self.native.retarget(self._code.address)
            else:
                self.native.retarget(self._code.mt_address, count)

    # `exe(*arrays)` runs `self._call` (the native builtin, or the Python path) with no Python
    # frame in between: __call__ is a property returning it, where a `def __call__` forwarding
    # the arguments would cost about 150 ns per call, a third of a whole native call.
    __call__ = property(operator.attrgetter("_call"))

    def native_call(self, fallback: Callable[..., Any],
                    returns: Returns | None = None,
                    post: Callable[[tuple[np.ndarray, ...]], Any] | None = None
                    ) -> NativeCall | None:
        """A native call of this entry point (None where native calls are unavailable).

        Args:
            fallback: called with the original arguments of any call the fast path does not
                take (anything but exact C-contiguous ndarrays of the parameter shapes).
            returns: what a call returns; by default what calling the Executable returns.
            post: maps the tuple of results to the return value (Returns.POST).
        """
        exact = self._python.exact
        if exact is None:
            return None
        results = self._python.results
        if returns is None:
            single = not self.artifact.result_shape.is_tuple and len(results) == 1
            returns = Returns.SINGLE if single else Returns.TUPLE
        touched = (sum(_nbytes(s) for s in self.artifact.arg_shapes)
                   + sum(_nbytes(s) for s in self.artifact.result_shapes)
                   + self.artifact.temp_bytes)
        return fastcall.bind(self._code.address, exact, results, returns,
                             self.artifact.temp_bytes, touched >= HOLD_GIL_BELOW_BYTES,
                             fallback, post=post, name=self.artifact.symbol, keep=[self._code])

    def run_into(self, args: Sequence[Any], results: Sequence[np.ndarray]) -> None:
        """Run writing into caller-owned result arrays (C-contiguous, right shape/dtype).

        A result array must not share memory with an argument (the code may keep
        temporaries in a result's buffer before writing it), except that a result the
        module aliases with a parameter (`input_output_alias`: donation) may be that
        parameter's own array, which is then updated in place.
        """
        leaves = self._python._quick_leaves(tuple(args)) or self._python.check(args)
        self._python.check_results(results)
        donated = self._donated
        for j, r in enumerate(results):
            for i, a in enumerate(leaves):
                if r is a and (donated is None or (i, j) in donated):
                    continue
                if np.may_share_memory(r, a):
                    raise ArgumentError(f"result {j} shares memory with argument {i}, and "
                                        "the module does not alias them")
        self._python.run(leaves, results)

    def new_results(self) -> list[np.ndarray]:
        """Fresh arrays for the results, as a call would allocate them (for `run_into`)."""
        return self._python.new_results()

    @functools.cached_property
    def _donated(self) -> set[tuple[int, int]] | None:
        """(argument leaf, result leaf) pairs the code aliases, or None if not recorded
        (code from the disk cache: the caller is trusted)."""
        assignment = self.artifact.extra.get("buffer_assignment")
        if assignment is None:
            return None
        return {(a.argument, a.result) for a in getattr(assignment, "aliases", [])}

    def __repr__(self) -> str:
        return f"<Executable {self.artifact.symbol} ({self.artifact.triple})>"


def load(artifact: CpuArtifact) -> Executable:
    """An Executable for `artifact` (which must target this machine's architecture)."""
    return Executable(artifact)
