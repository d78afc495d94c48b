"""Running compiled GPU programs: the CUDA context, device memory, and the GpuExecutable.

A `GpuExecutable` loads a `GpuProgram`'s PTX into the primary context of device 0, uploads
its constant pool once and keeps one device arena, reused by every call (calls on one
executable are serialised by a lock). A call checks its arguments (`runtime.checks`),
copies them into their arena slots, runs the plan and copies the results out into fresh
numpy arrays. Runs of launches and copies are recorded into CUDA graphs on first use and
replayed afterwards (the buffers never move); host-driven while and conditional steps read
their predicate back and pick what to replay next.

The CUDA driver is reached through pycuda when it is installed, and otherwise through
`libcuda` with ctypes (the same driver API calls: cuModuleLoadDataEx, cuLaunchKernel, ...),
so a machine with an NVIDIA driver and no pycuda still runs GPU code.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np

from backends.gpu.launch import LaunchDims
from backends.gpu.plan import (
    Conditional,
    Copy,
    GpuProgram,
    Launch,
    Pool,
    Slot,
    Step,
    While,
    leaves,
)
from hlo.dtypes import PrimitiveType
from hlo.errors import CompileError, InternalError
from runtime.checks import check_arguments


class Driver(Protocol):
    """The CUDA driver operations the executable needs (device addresses are ints)."""

    name: str

    def alloc(self, nbytes: int) -> int: ...
    def free(self, address: int) -> None: ...
    def htod(self, dst: int, src: np.ndarray) -> None: ...
    def dtoh(self, dst: np.ndarray, src: int) -> None: ...
    def dtod(self, dst: int, src: int, nbytes: int, stream: Any = None) -> None: ...
    def load_module(self, ptx: str) -> Any: ...
    def function(self, module: Any, name: str) -> Any: ...
    def launch(self, function: Any, dims: LaunchDims, addresses: Sequence[int],
               stream: Any = None) -> None: ...
    def new_stream(self) -> Any: ...
    def free_stream(self, stream: Any) -> None: ...
    def stream_handle(self, stream: Any) -> int: ...
    def synchronize(self) -> None: ...
    def compute_capability(self) -> tuple[int, int]: ...
    def active(self) -> Any: ...


# --- ctypes over libcuda -------------------------------------------------------------------------

_CU_JIT_ERROR_LOG_BUFFER = 5
_CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6
_CC_MAJOR, _CC_MINOR = 75, 76


def check_status(lib: ctypes.CDLL, status: int, what: str) -> None:
    """Raise InternalError naming the driver call `what` unless `status` is CUDA_SUCCESS."""
    if status == 0:
        return
    text = ctypes.c_char_p()
    lib.cuGetErrorString(status, ctypes.byref(text))
    message = text.value.decode() if text.value else "unknown error"
    raise InternalError(f"CUDA driver call {what} failed: {message} ({status})")


class CtypesDriver:
    """The CUDA driver API through ctypes (libcuda.so.1), on device 0's primary context."""

    name = "libcuda"

    def __init__(self) -> None:
        try:
            self.lib = ctypes.CDLL("libcuda.so.1")
        except OSError as e:
            raise CompileError(f"no CUDA driver library (libcuda.so.1): {e}") from None
        self._check(self.lib.cuInit(0), "cuInit")
        device = ctypes.c_int()
        self._check(self.lib.cuDeviceGet(ctypes.byref(device), 0), "cuDeviceGet")
        self.device = device.value
        context = ctypes.c_void_p()
        self._check(self.lib.cuDevicePrimaryCtxRetain(ctypes.byref(context), self.device),
                    "cuDevicePrimaryCtxRetain")
        self.context = context
        self.lib.cuLaunchKernel.argtypes = [
            ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        for fn in ("cuMemcpyHtoD_v2", "cuMemcpyDtoH_v2", "cuMemcpyDtoD_v2"):
            getattr(self.lib, fn).argtypes = [ctypes.c_uint64, ctypes.c_uint64, ctypes.c_size_t]
        self.lib.cuMemcpyDtoDAsync_v2.argtypes = [ctypes.c_uint64, ctypes.c_uint64,
                                                  ctypes.c_size_t, ctypes.c_void_p]
        self.lib.cuMemFree_v2.argtypes = [ctypes.c_uint64]
        self.lib.cuMemAlloc_v2.argtypes = [ctypes.c_void_p, ctypes.c_size_t]

    def _check(self, status: int, what: str) -> None:
        check_status(self.lib, status, what)

    @contextmanager
    def active(self) -> Iterator[None]:
        self._check(self.lib.cuCtxSetCurrent(self.context), "cuCtxSetCurrent")
        yield

    def alloc(self, nbytes: int) -> int:
        address = ctypes.c_uint64()
        self._check(self.lib.cuMemAlloc_v2(ctypes.byref(address), max(nbytes, 1)),
                    f"cuMemAlloc({nbytes})")
        return address.value

    def free(self, address: int) -> None:
        self._check(self.lib.cuMemFree_v2(address), "cuMemFree")

    def htod(self, dst: int, src: np.ndarray) -> None:
        self._check(self.lib.cuMemcpyHtoD_v2(dst, src.ctypes.data, src.nbytes), "cuMemcpyHtoD")

    def dtoh(self, dst: np.ndarray, src: int) -> None:
        self._check(self.lib.cuMemcpyDtoH_v2(dst.ctypes.data, src, dst.nbytes), "cuMemcpyDtoH")

    def dtod(self, dst: int, src: int, nbytes: int, stream: Any = None) -> None:
        if stream is None:
            self._check(self.lib.cuMemcpyDtoD_v2(dst, src, nbytes), "cuMemcpyDtoD")
        else:
            self._check(self.lib.cuMemcpyDtoDAsync_v2(dst, src, nbytes, stream),
                        "cuMemcpyDtoDAsync")

    def load_module(self, ptx: str) -> Any:
        module = ctypes.c_void_p()
        log = ctypes.create_string_buffer(1 << 16)
        options = (ctypes.c_int * 2)(_CU_JIT_ERROR_LOG_BUFFER, _CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES)
        values = (ctypes.c_void_p * 2)(ctypes.cast(log, ctypes.c_void_p), len(log))
        image = ptx.encode() + b"\0"
        status = self.lib.cuModuleLoadDataEx(ctypes.byref(module), image, 2, options, values)
        if status != 0:
            raise CompileError(f"the CUDA driver rejected the PTX ({status}): "
                               f"{log.value.decode(errors='replace').strip()}")
        return module

    def function(self, module: Any, name: str) -> Any:
        fn = ctypes.c_void_p()
        self._check(self.lib.cuModuleGetFunction(ctypes.byref(fn), module, name.encode()),
                    f"cuModuleGetFunction({name})")
        return fn

    def launch(self, function: Any, dims: LaunchDims, addresses: Sequence[int],
               stream: Any = None) -> None:
        values = (ctypes.c_uint64 * max(len(addresses), 1))(*addresses)
        base = ctypes.addressof(values)
        pointers = (ctypes.c_void_p * max(len(addresses), 1))(
            *[base + 8 * k for k in range(len(addresses))])
        status = self.lib.cuLaunchKernel(function, *dims.grid, *dims.block, dims.shared_bytes,
                                         stream, pointers, None)
        self._check(status, "cuLaunchKernel")

    def new_stream(self) -> Any:
        # Flags 0: a blocking stream, ordered with the legacy default stream's copies.
        stream = ctypes.c_void_p()
        self._check(self.lib.cuStreamCreate(ctypes.byref(stream), 0), "cuStreamCreate")
        return stream

    def free_stream(self, stream: Any) -> None:
        self._check(self.lib.cuStreamDestroy_v2(stream), "cuStreamDestroy")

    def stream_handle(self, stream: Any) -> int:
        return int(stream.value or 0)

    def synchronize(self) -> None:
        self._check(self.lib.cuCtxSynchronize(), "cuCtxSynchronize")

    def compute_capability(self) -> tuple[int, int]:
        out = []
        for attribute in (_CC_MAJOR, _CC_MINOR):
            value = ctypes.c_int()
            self._check(self.lib.cuDeviceGetAttribute(ctypes.byref(value), attribute,
                                                      self.device), "cuDeviceGetAttribute")
            out.append(value.value)
        return out[0], out[1]


# --- pycuda -----------------------------------------------------------------------------------


class PyCudaDriver:
    """The CUDA driver through pycuda, on device 0's primary context."""

    name = "pycuda"

    def __init__(self) -> None:
        import pycuda.driver as cuda

        self.cuda = cuda
        cuda.init()
        self.device = cuda.Device(0)
        self.context = self.device.retain_primary_context()
        self._allocations: dict[int, Any] = {}

    @contextmanager
    def active(self) -> Iterator[None]:
        self.context.push()
        try:
            yield
        finally:
            self.cuda.Context.pop()

    def alloc(self, nbytes: int) -> int:
        allocation = self.cuda.mem_alloc(max(nbytes, 1))
        self._allocations[int(allocation)] = allocation
        return int(allocation)

    def free(self, address: int) -> None:
        allocation = self._allocations.pop(address, None)
        if allocation is not None:
            allocation.free()

    def htod(self, dst: int, src: np.ndarray) -> None:
        self.cuda.memcpy_htod(dst, src)

    def dtoh(self, dst: np.ndarray, src: int) -> None:
        self.cuda.memcpy_dtoh(dst, src)

    def dtod(self, dst: int, src: int, nbytes: int, stream: Any = None) -> None:
        if stream is None:
            self.cuda.memcpy_dtod(dst, src, nbytes)
        else:
            self.cuda.memcpy_dtod_async(dst, src, nbytes, stream)

    def load_module(self, ptx: str) -> Any:
        try:
            return self.cuda.module_from_buffer(ptx.encode())
        except self.cuda.Error as e:
            raise CompileError(f"the CUDA driver rejected the PTX: {e}") from None

    def function(self, module: Any, name: str) -> Any:
        fn = module.get_function(name)
        return fn

    def launch(self, function: Any, dims: LaunchDims, addresses: Sequence[int],
               stream: Any = None) -> None:
        args = [np.uintp(a) for a in addresses]
        function(*args, grid=dims.grid[:2] if dims.grid[2] == 1 else dims.grid,
                 block=dims.block, shared=dims.shared_bytes, stream=stream)

    def new_stream(self) -> Any:
        # pycuda's default flags make a blocking stream (see CtypesDriver.new_stream).
        return self.cuda.Stream()

    def free_stream(self, stream: Any) -> None:
        pass  # pycuda destroys a Stream when its last reference goes

    def stream_handle(self, stream: Any) -> int:
        return int(stream.handle)

    def synchronize(self) -> None:
        self.cuda.Context.synchronize()

    def compute_capability(self) -> tuple[int, int]:
        major, minor = self.device.compute_capability()
        return int(major), int(minor)


_driver: Driver | None = None
_driver_lock = threading.Lock()


def driver() -> Driver:
    """The process's CUDA driver (pycuda if installed, else libcuda), initialised once.

    Raises:
        CompileError: no CUDA driver or no device.
    """
    global _driver
    with _driver_lock:
        if _driver is None:
            try:
                _driver = PyCudaDriver()
            except Exception:  # no pycuda, or it cannot initialise: use libcuda directly
                _driver = CtypesDriver()
        return _driver


def gpu_available() -> bool:
    """True when a CUDA device can be used from this process."""
    try:
        driver()
    except Exception:
        return False
    return True


def device_arch() -> str:
    """The PTX architecture of device 0, e.g. `sm_90`."""
    major, minor = driver().compute_capability()
    return f"sm_{major}{minor}"


# --- CUDA graphs ---------------------------------------------------------------------------------

_CAPTURE_MODE_THREAD_LOCAL = 1


class GraphApi:
    """Stream capture and graph replay through libcuda with ctypes, for either driver.

    pycuda has no graph API; libcuda is the same library it uses, so graphs captured here
    record pycuda's launches too, in whichever context is current.
    """

    def __init__(self) -> None:
        self.lib = ctypes.CDLL("libcuda.so.1")
        vp = ctypes.c_void_p
        self.lib.cuStreamBeginCapture_v2.argtypes = [vp, ctypes.c_int]
        self.lib.cuStreamEndCapture.argtypes = [vp, vp]
        self.lib.cuGraphInstantiateWithFlags.argtypes = [vp, vp, ctypes.c_ulonglong]
        self.lib.cuGraphLaunch.argtypes = [vp, vp]
        self.lib.cuGraphDestroy.argtypes = [vp]
        self.lib.cuGraphExecDestroy.argtypes = [vp]

    def _check(self, status: int, what: str) -> None:
        check_status(self.lib, status, what)

    def capture(self, stream: int, record: Callable[[], None]) -> ctypes.c_void_p:
        """The executable graph of the work `record()` issues on `stream`."""
        self._check(self.lib.cuStreamBeginCapture_v2(stream, _CAPTURE_MODE_THREAD_LOCAL),
                    "cuStreamBeginCapture")
        graph = ctypes.c_void_p()
        try:
            record()
        finally:
            # Ends the capture even when recording failed, so the stream is usable again.
            ended = self.lib.cuStreamEndCapture(stream, ctypes.byref(graph))
        self._check(ended, "cuStreamEndCapture")
        executable = ctypes.c_void_p()
        try:
            self._check(self.lib.cuGraphInstantiateWithFlags(ctypes.byref(executable), graph, 0),
                        "cuGraphInstantiateWithFlags")
        finally:
            self.lib.cuGraphDestroy(graph)
        return executable

    def launch(self, executable: ctypes.c_void_p, stream: int) -> None:
        self._check(self.lib.cuGraphLaunch(executable, stream), "cuGraphLaunch")

    def destroy(self, executable: ctypes.c_void_p) -> None:
        self.lib.cuGraphExecDestroy(executable)


_graph_api: GraphApi | None = None


def graph_api() -> GraphApi:
    """The process's GraphApi (libcuda loaded once)."""
    global _graph_api
    with _driver_lock:
        if _graph_api is None:
            _graph_api = GraphApi()
        return _graph_api


def straight_end(steps: Sequence[Step], start: int) -> int:
    """The end of the run of launches and copies that starts at `steps[start]`: work with no
    host decision inside, which one recorded graph replays (the buffers never move)."""
    end = start
    while end < len(steps) and isinstance(steps[end], (Launch, Copy)):
        end += 1
    return end


# --- the executable ------------------------------------------------------------------------------


class GpuExecutable:
    """A compiled GPU program callable on numpy arrays: `exe(*arrays)`.

    Returns one ndarray for an array result, or the tuple of result leaves (nested tuples
    flattened) for a tuple result.

    Each run of launches and copies between host decisions (the whole plan, when it has no
    while or conditional) is recorded once into a CUDA graph and replayed by one
    `cuGraphLaunch`, which removes the host's cost per kernel (most of a small model's
    step). Set `use_graphs` False to launch step by step; `graph_error` tells why a capture
    failed (the executable then launches step by step for good).
    """

    def __init__(self, program: GpuProgram) -> None:
        self.program = program
        self._driver = driver()
        self._lock = threading.Lock()
        self._functions: dict[str, Any] = {}
        self._launch_args: dict[int, list[int]] = {}
        self._arena = 0
        self._constants = 0
        self.use_graphs = True
        self.graph_error: str | None = None
        self._graphs: dict[tuple[int, int], Any] = {}
        # The executable's own stream: the legacy default stream cannot be captured, and a
        # stream shared with another executable could record that one's work in our graph.
        self._stream: Any = None
        with self._driver.active():
            self._module = self._driver.load_module(program.ptx.ptx)
            for name in program.kernel_names:
                self._functions[name] = self._driver.function(self._module, name)
            self._arena = self._driver.alloc(program.arena_bytes)
            self._constants = self._driver.alloc(len(program.constants))
            if program.constants:
                self._driver.htod(self._constants, np.frombuffer(program.constants, np.uint8))
        self._param_slots = [s for p in program.params for s in leaves(p)]
        self._result_slots = leaves(program.result)

    def address(self, slot: Slot) -> int:
        base = self._arena if slot.pool is Pool.ARENA else self._constants
        return base + slot.offset

    def __call__(self, *args: Any) -> np.ndarray | tuple[np.ndarray, ...]:
        program = self.program
        arrays = check_arguments(program.param_shapes, args, program.param_names)
        d = self._driver
        with self._lock, d.active():
            for slot, array in zip(self._param_slots, arrays, strict=True):
                if array.nbytes:
                    d.htod(self.address(slot), array)
            self._execute()
            results = []
            for slot in self._result_slots:
                out = np.empty(slot.shape.dims, slot.shape.element_type.numpy)
                if out.nbytes:
                    d.dtoh(out, self.address(slot))
                results.append(out)
            d.synchronize()
        if program.result_shape.is_tuple or not results:
            return tuple(results)
        return results[0]

    def time_plan(self, *args: Any, repeats: int = 10) -> float:
        """Mean seconds of one run of the plan on `args`, without argument or result copies.

        For benchmarks: the arguments are copied in once, the plan runs once to warm up and
        then `repeats` times back to back, and the host waits for the device only at the end,
        so the launches of one run overlap the kernels of the previous one as in a real loop.
        Runs never write parameter buffers, so every run sees the same inputs.
        """
        program = self.program
        arrays = check_arguments(program.param_shapes, args, program.param_names)
        d = self._driver
        with self._lock, d.active():
            for slot, array in zip(self._param_slots, arrays, strict=True):
                if array.nbytes:
                    d.htod(self.address(slot), array)
            self._execute()
            d.synchronize()
            start = time.perf_counter()
            for _ in range(max(repeats, 1)):
                self._execute()
            d.synchronize()
            return (time.perf_counter() - start) / max(repeats, 1)

    @property
    def uses_graph(self) -> bool:
        """True once part of the plan has been recorded into a CUDA graph that runs replay."""
        return bool(self._graphs)

    def _execute(self) -> None:
        """Run the plan once."""
        self._run(self.program.steps)

    def _run(self, steps: tuple[Step, ...]) -> None:
        k = 0
        while k < len(steps):
            step = steps[k]
            if isinstance(step, (Launch, Copy)):
                end = straight_end(steps, k)
                self._run_straight(steps, k, end)
                k = end
                continue
            if isinstance(step, While):
                self._run(step.cond)
                while self._read_scalar(step.pred):
                    self._run(step.body)
                    self._run(step.cond)
            elif isinstance(step, Conditional):
                self._run(step.branches[self._branch_index(step)])
            else:
                raise InternalError(f"unknown plan step {step!r}")
            k += 1

    def _run_straight(self, steps: tuple[Step, ...], start: int, end: int) -> None:
        """steps[start:end], launches and copies: replayed from their graph (recorded on
        first use, keyed by their place in the plan) unless graphs are off or failed."""
        if self.use_graphs and self.graph_error is None:
            key = (id(steps), start)
            try:
                if self._stream is None:
                    self._stream = self._driver.new_stream()
                stream = self._stream
                handle = self._driver.stream_handle(stream)
                graph = self._graphs.get(key)
                if graph is None:
                    graph = graph_api().capture(
                        handle, lambda: self._issue(steps[start:end], stream))
                    self._graphs[key] = graph
                graph_api().launch(graph, handle)
                return
            except Exception as e:  # no graph support: launching step by step still works
                self.graph_error = f"{type(e).__name__}: {e}"
        self._issue(steps[start:end], None)

    def _issue(self, steps: Sequence[Step], stream: Any) -> None:
        """Launch or copy each of `steps` (launches and copies only) on `stream`."""
        d = self._driver
        for step in steps:
            if isinstance(step, Launch):
                addresses = self._launch_args.get(id(step))
                if addresses is None:
                    addresses = [self.address(s) for s in step.args]
                    self._launch_args[id(step)] = addresses
                d.launch(self._functions[step.kernel], step.dims, addresses, stream)
            else:
                assert isinstance(step, Copy)
                d.dtod(self.address(step.dst), self.address(step.src), step.dst.nbytes,
                       stream)

    def _read_scalar(self, slot: Slot) -> Any:
        value = np.empty((), slot.shape.element_type.numpy)
        self._driver.dtoh(value, self.address(slot))
        return value.item()

    def _branch_index(self, step: Conditional) -> int:
        value = self._read_scalar(step.selector)
        last = len(step.branches) - 1
        if step.selector.shape.element_type is PrimitiveType.PRED:
            return 0 if value else 1
        return value if 0 <= value < last else last

    def close(self) -> None:
        """Free the device memory and forget the module (also done on garbage collection)."""
        d = getattr(self, "_driver", None)
        if d is None:
            return
        try:
            with d.active():
                for graph in self._graphs.values():
                    graph_api().destroy(graph)
                self._graphs.clear()
                if self._stream is not None:
                    d.free_stream(self._stream)
                    self._stream = None
                for address in (self._arena, self._constants):
                    if address:
                        d.free(address)
        except Exception:  # the context may already be gone at interpreter exit
            pass
        self._arena = self._constants = 0
        self._driver = None  # type: ignore[assignment]

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<GpuExecutable {self.program.name} ({self.program.ptx.target.arch})>"
