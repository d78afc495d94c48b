"""Native fast calls: a CPython builtin that checks numpy arguments and runs compiled code.

Calling compiled code through ctypes costs microseconds per call: ctypes converts every
argument, builds pointer arrays and dispatches through libffi, and the Python code around it
reads data pointers and allocates results. This file emits, once per process, one small
native function with LLVM (the *trampoline*) that does that work in machine code, and wraps
it, per compiled entry point, in a CPython builtin (`PyCFunction_NewEx`, `METH_FASTCALL |
METH_KEYWORDS`). A call then costs a fraction of a microsecond, less than a numpy ufunc call.

What the trampoline does, driven by a *descriptor* (an int64 array, the builtin's `self`):
  1. the fast check: exactly the expected number of positional arguments, no keywords, and
     each argument an exact `numpy.ndarray` with the expected dtype object (by identity),
     rank and dimensions, C-contiguous and aligned;
  2. allocates the results by calling the allocator given for each (`numpy.empty`, say);
  3. takes the descriptor's cached temporary arena (or `aligned_alloc`s one when another
     thread holds it), optionally releases the GIL, calls the entry point, gives the arena
     back (or frees it), counts the call;
  4. returns the one result, the tuple of results, or `post(tuple)`.
Anything else - a mismatch of any kind - calls the descriptor's Python `fallback` with the
original arguments, which checks them fully (and raises the precise ArgumentError) or, for
`jit`, dispatches to another signature.

The trampoline reads CPython and numpy object layouts directly (`ob_type`, the fields of
`PyArrayObject`, a ctypes object's buffer pointer, a tuple's size). Each offset is checked
against live objects before anything is built (`unavailable_reason`); where any check fails
(another Python implementation, a free-threaded build, an unexpected numpy), nothing native
is used and callers keep their pure-Python path. Every touch of the arena slot and counter
happens with the GIL held, so concurrent calls need no atomics.

This file does not check argument values beyond their metadata and knows nothing of HLO.
"""

from __future__ import annotations

import ctypes
import enum
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

from backends.cpu.object import LLVM_LOCK, Target, target_machine
from backends.llvm.irutil import I32, I64, PTR, for_range, i64

# CPython constants (Include/methodobject.h, Include/cpython/abstract.h).
METH_FASTCALL = 0x0080
METH_KEYWORDS = 0x0002
NARGS_MASK = (1 << 63) - 1  # clears PY_VECTORCALL_ARGUMENTS_OFFSET
NPY_ARRAY_C_CONTIGUOUS = 0x0001
NPY_ARRAY_ALIGNED = 0x0100
REQUIRED_FLAGS = NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED
ARENA_ALIGNMENT = 64

# Byte offsets read by the trampoline; each is verified by `unavailable_reason`.
OB_TYPE = 8  # PyObject.ob_type
OB_SIZE = 16  # PyVarObject.ob_size (the size of the kwnames tuple)
CDATA_PTR = 16  # CDataObject.b_ptr: the descriptor's int64 words
ARRAY_DATA = 16  # PyArrayObject.data
ARRAY_ND = 24  # PyArrayObject.nd (int)
ARRAY_DIMS = 32  # PyArrayObject.dimensions (npy_intp *)
ARRAY_DESCR = 56  # PyArrayObject.descr
ARRAY_FLAGS = 64  # PyArrayObject.flags (int)


class Word(enum.IntEnum):
    """The descriptor's words (int64 each); the argument and result specs are arrays of
    their own, found through ARG_SPECS and RESULT_SPECS."""

    ENTRY = 0  # address of void entry(void* const* args, void* const* results, void* temps)
    # (or of its `_mt` form: see THREADS)
    NARGS = 1
    NRESULTS = 2
    RETURNS = 3  # a Returns
    RELEASE_GIL = 4  # 0 or 1
    TEMP_BYTES = 5  # arena size, a multiple of ARENA_ALIGNMENT (0: no arena)
    ARENA = 6  # the cached arena (owned by the descriptor), or 0 while a call holds it
    FALLBACK = 7  # PyObject*: called with the original arguments on any mismatch
    NDARRAY = 8  # PyObject*: numpy.ndarray
    CALLS = 9  # calls that took the fast path
    POST = 10  # PyObject*: called on the result tuple in Returns.POST
    ARG_SPECS = 11  # address of NARGS x ArgSpec words
    RESULT_SPECS = 12  # address of NRESULTS x ResultSpec words
    # 0: ENTRY is as above; n > 0: ENTRY is the `_mt` form, which takes a fourth argument,
    # the thread count (int32), and is called with n.
    THREADS = 13


HEADER_WORDS = len(Word)


class ArgSpec(enum.IntEnum):
    """Words per argument: the dtype object expected (by identity), rank, dims address."""

    DESCR = 0
    NDIM = 1
    DIMS = 2


class ResultSpec(enum.IntEnum):
    """Words per result: the allocator called as `alloc(shape, dtype)`, and its arguments."""

    ALLOC = 0
    SHAPE = 1
    DTYPE = 2


class Returns(enum.IntEnum):
    """What a fast call returns."""

    SINGLE = 0  # the one result
    TUPLE = 1  # the tuple of results
    POST = 2  # post(tuple of results)


# The C functions the trampoline calls, under private names bound to their addresses with
# llvm.add_symbol (so nothing depends on how the process exports them).
_EXTERNALS: dict[str, tuple[str, ir.FunctionType]] = {
    "vectorcall": ("PyObject_Vectorcall", ir.FunctionType(PTR, [PTR, PTR, I64, PTR])),
    "save_thread": ("PyEval_SaveThread", ir.FunctionType(PTR, [])),
    "restore_thread": ("PyEval_RestoreThread", ir.FunctionType(ir.VoidType(), [PTR])),
    "tuple_new": ("PyTuple_New", ir.FunctionType(PTR, [I64])),
    "tuple_setitem": ("PyTuple_SetItem", ir.FunctionType(I32, [PTR, I64, PTR])),
    "decref": ("Py_DecRef", ir.FunctionType(ir.VoidType(), [PTR])),
    "no_memory": ("PyErr_NoMemory", ir.FunctionType(PTR, [])),
    "aligned_alloc": ("aligned_alloc", ir.FunctionType(PTR, [I64, I64])),
    "free": ("free", ir.FunctionType(ir.VoidType(), [PTR])),
}
_LIBC_FUNCTIONS = ("aligned_alloc", "free")


class _MethodDef(ctypes.Structure):
    """CPython's PyMethodDef."""

    _fields_ = [
        ("ml_name", ctypes.c_char_p),
        ("ml_meth", ctypes.c_void_p),
        ("ml_flags", ctypes.c_int),
        ("ml_doc", ctypes.c_char_p),
    ]


class NativeCall:
    """A builtin running one entry point natively, with the descriptor that drives it.

    Attributes:
        function: the builtin; call it like the Python callable it stands for.
    """

    def __init__(self, function: Callable[..., Any], descriptor: _Descriptor) -> None:
        self.function = function
        self._descriptor = descriptor

    @property
    def calls(self) -> int:
        """How many calls took the native fast path so far."""
        return int(self._descriptor[Word.CALLS])

    @property
    def releases_gil(self) -> bool:
        return bool(self._descriptor[Word.RELEASE_GIL])

    def retarget(self, entry: int, threads: int = 0) -> None:
        """Run the entry point at `entry` from the next call on: with `threads` > 0 the
        `_mt` form `entry(args, results, temps, threads)` (same arena), else the plain one.
        Calls read these words with the GIL held, so a running call is not affected."""
        self._descriptor[Word.ENTRY] = entry
        self._descriptor[Word.THREADS] = threads


class _Descriptor(ctypes.Array):  # type: ignore[type-arg]
    """Base of the per-call-site descriptor types (int64 arrays with a __dict__).

    `keep` holds every Python object whose address the words hold; the cached arena is freed
    when the descriptor dies, which is after the last call returned (a running call holds a
    reference to the builtin, and the builtin to its descriptor).
    """

    _type_ = ctypes.c_int64
    _length_ = 0
    keep: list[Any]

    def __del__(self) -> None:
        arena = int(self[Word.ARENA])
        if arena and _native is not None:
            self[Word.ARENA] = 0
            _native.libc.free(ctypes.c_void_p(arena))


@dataclass(frozen=True)
class _Native:
    """What native calls need in this process, set up once by `_setup`."""

    libc: ctypes.CDLL
    new_cfunction: Callable[[int, Any, None], Any]  # PyCFunction_NewEx
    engine: llvm.ExecutionEngine  # owns the trampoline's code
    trampoline: int


class _Unavailable(Exception):
    """Native calls cannot work here; the message says why."""


_lock = threading.Lock()
_checked = False
_native: _Native | None = None
_reason: str | None = None
_descriptor_types: dict[int, type[_Descriptor]] = {}


def unavailable_reason() -> str | None:
    """None when native fast calls work in this process, else why not (checked once)."""
    _setup()
    return _reason


def _setup() -> _Native | None:
    global _checked, _native, _reason
    with _lock:
        if not _checked:
            _checked = True
            try:
                _native = _build()
            except _Unavailable as e:
                _reason = str(e)
        return _native


def bind(entry: int, args: Sequence[tuple[np.dtype, tuple[int, ...]]],
         results: Sequence[tuple[Callable[..., Any], tuple[int, ...], np.dtype]],
         returns: Returns, temp_bytes: int, release_gil: bool, fallback: Callable[..., Any],
         post: Callable[[tuple[Any, ...]], Any] | None = None, name: str = "fastcall",
         keep: Sequence[Any] = ()) -> NativeCall | None:
    """A native call of the entry point at address `entry`, or None where unavailable.

    Args:
        entry: address of `void entry(void* const* args, void* const* results, void* temps)`.
        args: per argument, the exact dtype and dims the fast path accepts.
        results: per result, (alloc, dims, dtype): the result array is `alloc(dims, dtype)`,
            which must return a C-contiguous ndarray of that shape and dtype.
        returns: what a call returns (SINGLE needs exactly one result; POST needs `post`).
        temp_bytes: size of the temporary arena the entry point needs (0: none).
        release_gil: release the GIL around the entry point (worth it for long kernels).
        fallback: called as `fallback(*args, **kwargs)` for every call that does not match.
        post: maps the tuple of results to the return value in Returns.POST.
        name: the builtin's __name__.
        keep: objects to keep alive as long as the builtin (the loaded code, say).
    """
    native = _setup()
    if native is None:
        return None
    if returns is Returns.SINGLE and len(results) != 1:
        raise ValueError("Returns.SINGLE needs exactly one result")
    if returns is Returns.POST and post is None:
        raise ValueError("Returns.POST needs a post function")
    # The trampoline's engine too: a builtin called late in interpreter shutdown must still
    # find its code.
    kept: list[Any] = [*keep, fallback, post, np.ndarray, native.engine]
    desc = _descriptor_type(HEADER_WORDS)()
    desc[Word.ENTRY] = entry
    desc[Word.NARGS] = len(args)
    desc[Word.NRESULTS] = len(results)
    desc[Word.RETURNS] = int(returns)
    desc[Word.RELEASE_GIL] = int(release_gil)
    desc[Word.TEMP_BYTES] = -(-int(temp_bytes) // ARENA_ALIGNMENT) * ARENA_ALIGNMENT
    desc[Word.FALLBACK] = id(fallback)
    desc[Word.NDARRAY] = id(np.ndarray)
    desc[Word.POST] = id(post) if post is not None else 0
    arg_words = (ctypes.c_int64 * max(1, len(args) * len(ArgSpec)))()
    for i, (dtype, dims) in enumerate(args):
        exact = np.dtype(dtype)
        dims_words = (ctypes.c_int64 * max(1, len(dims)))(*dims)
        kept += [exact, dims_words]
        base = i * len(ArgSpec)
        arg_words[base + ArgSpec.DESCR] = id(exact)
        arg_words[base + ArgSpec.NDIM] = len(dims)
        arg_words[base + ArgSpec.DIMS] = ctypes.addressof(dims_words)
    result_words = (ctypes.c_int64 * max(1, len(results) * len(ResultSpec)))()
    for k, (alloc, dims, dtype) in enumerate(results):
        shape = tuple(int(d) for d in dims)
        exact = np.dtype(dtype)
        kept += [alloc, shape, exact]
        base = k * len(ResultSpec)
        result_words[base + ResultSpec.ALLOC] = id(alloc)
        result_words[base + ResultSpec.SHAPE] = id(shape)
        result_words[base + ResultSpec.DTYPE] = id(exact)
    desc[Word.ARG_SPECS] = ctypes.addressof(arg_words)
    desc[Word.RESULT_SPECS] = ctypes.addressof(result_words)
    method = _MethodDef(name.encode(), native.trampoline, METH_FASTCALL | METH_KEYWORDS, None)
    desc.keep = [kept, arg_words, result_words, method]
    function = native.new_cfunction(ctypes.addressof(method), desc, None)
    return NativeCall(function, desc)


def _descriptor_type(words: int) -> type[_Descriptor]:
    cls = _descriptor_types.get(words)
    if cls is None:
        cls = type(f"Descriptor{words}", (_Descriptor,), {"_type_": ctypes.c_int64,
                                                          "_length_": words})
        _descriptor_types[words] = cls
    return cls


# --- setting up: checks, then the trampoline ------------------------------------------------
def _build() -> _Native:
    """Check this process, then emit and link the trampoline; raises _Unavailable."""
    if sys.implementation.name != "cpython":
        raise _Unavailable(f"not CPython ({sys.implementation.name})")
    if ctypes.sizeof(ctypes.c_void_p) != 8:
        raise _Unavailable("not a 64-bit process")
    gil = getattr(sys, "_is_gil_enabled", None)
    if gil is not None and not gil():
        raise _Unavailable("the GIL is disabled (the arena slot relies on it)")
    try:
        libc = ctypes.CDLL(None)
        addresses = {}
        for private, (symbol, _) in _EXTERNALS.items():
            library = libc if symbol in _LIBC_FUNCTIONS else ctypes.pythonapi
            function = getattr(library, symbol)
            addresses[private] = int(ctypes.cast(function, ctypes.c_void_p).value or 0)
    except (OSError, AttributeError) as e:
        raise _Unavailable(f"a C function is missing: {e}") from None
    libc.free.argtypes = [ctypes.c_void_p]
    libc.free.restype = None
    _check_layouts()
    # PyObject *PyCFunction_NewEx(PyMethodDef *ml, PyObject *self, PyObject *module), with our
    # own prototype (setting argtypes on ctypes.pythonapi's shared one could break others).
    prototype = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.py_object,
                                  ctypes.c_void_p)
    new_cfunction = prototype(("PyCFunction_NewEx", ctypes.pythonapi))
    try:
        engine, trampoline = _link_trampoline(addresses)
    except RuntimeError as e:  # LLVM's errors
        raise _Unavailable(f"the trampoline did not link: {e}") from None
    return _Native(libc, new_cfunction, engine, trampoline)


def _i64(address: int) -> int:
    return int(ctypes.c_int64.from_address(address).value)


def _i32(address: int) -> int:
    return int(ctypes.c_int32.from_address(address).value)


def _check_layouts() -> None:
    """Raise _Unavailable unless every offset the trampoline reads holds what it expects."""
    c_order = np.arange(6, dtype=np.float32).reshape(2, 3)
    misaligned = np.frombuffer(np.zeros(9, np.uint8).data, np.float32, 2, offset=1)
    for a in (c_order, c_order.T, misaligned):
        base = id(a)
        if _i64(base + OB_TYPE) != id(np.ndarray):
            raise _Unavailable("PyObject.ob_type is not where expected")
        if _i64(base + ARRAY_DATA) != a.__array_interface__["data"][0]:
            raise _Unavailable("PyArrayObject.data is not where expected")
        if _i32(base + ARRAY_ND) != a.ndim:
            raise _Unavailable("PyArrayObject.nd is not where expected")
        dims = _i64(base + ARRAY_DIMS)
        if [_i64(dims + 8 * d) for d in range(a.ndim)] != list(a.shape):
            raise _Unavailable("PyArrayObject.dimensions is not where expected")
        if _i64(base + ARRAY_DESCR) != id(a.dtype):
            raise _Unavailable("PyArrayObject.descr is not where expected")
        flags = _i32(base + ARRAY_FLAGS)
        if (bool(flags & NPY_ARRAY_C_CONTIGUOUS) != a.flags.c_contiguous
                or bool(flags & NPY_ARRAY_ALIGNED) != a.flags.aligned):
            raise _Unavailable("PyArrayObject.flags is not where expected")
    words = (ctypes.c_int64 * 2)()
    if _i64(id(words) + CDATA_PTR) != ctypes.addressof(words):
        raise _Unavailable("the ctypes buffer pointer is not where expected")
    names = ("a", "b", "c")
    if _i64(id(names) + OB_SIZE) != len(names):
        raise _Unavailable("PyVarObject.ob_size is not where expected")


def _link_trampoline(addresses: dict[str, int]) -> tuple[llvm.ExecutionEngine, int]:
    """The engine holding the compiled trampoline, and the trampoline's address."""
    for private, address in addresses.items():
        llvm.add_symbol(f"tfc_fastcall_{private}", address)
    with LLVM_LOCK:
        target = Target.resolve()
        tm = target_machine(target, opt_level=2, jit=True)
        module = llvm.parse_assembly(str(emit_trampoline()))
        module.triple = target.triple
        module.data_layout = str(tm.target_data)
        module.verify()
        engine = llvm.create_mcjit_compiler(module, tm)
        engine.finalize_object()
        return engine, int(engine.get_function_address("tfc_fastcall"))


def emit_trampoline() -> ir.Module:
    """The trampoline's LLVM module (one function, `tfc_fastcall`)."""
    module = ir.Module(name="tfc_fastcall")
    ext = {private: ir.Function(module, fnty, f"tfc_fastcall_{private}")
           for private, (_, fnty) in _EXTERNALS.items()}
    fnty = ir.FunctionType(PTR, [PTR, PTR, I64, PTR])
    fn = ir.Function(module, fnty, "tfc_fastcall")
    self_obj, args, nargsf, kwnames = fn.args
    self_obj.name, args.name, nargsf.name, kwnames.name = "self", "args", "nargsf", "kwnames"
    _Trampoline(fn, ext, self_obj, args, nargsf, kwnames).emit()
    return module


class _Trampoline:
    """Builds the body of `tfc_fastcall(self, args, nargsf, kwnames)`; see the file doc."""

    def __init__(self, fn: ir.Function, ext: dict[str, ir.Function], self_obj: ir.Value,
                 args: ir.Value, nargsf: ir.Value, kwnames: ir.Value) -> None:
        self.fn = fn
        self.ext = ext
        self.args = args
        self.nargsf = nargsf
        self.kwnames = kwnames
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.fallback = fn.append_basic_block("fallback")
        self.desc = self.field(self_obj, CDATA_PTR, PTR)

    # Small accessors: a field at a byte offset, a descriptor word, an element of an array.
    def field(self, obj: ir.Value, offset: int, typ: ir.Type) -> ir.Value:
        return self.b.load(self.b.gep(obj, [i64(offset)], source_etype=ir.IntType(8)), typ=typ)

    def word(self, base: ir.Value, index: ir.Value | int, typ: ir.Type = I64) -> ir.Value:
        index = i64(index) if isinstance(index, int) else index
        return self.b.load(self.b.gep(base, [index], source_etype=I64), typ=typ)

    def slot(self, base: ir.Value, index: ir.Value | int) -> ir.Value:
        index = i64(index) if isinstance(index, int) else index
        return self.b.gep(base, [index], source_etype=PTR)

    def call(self, name: str, *operands: ir.Value) -> ir.Value:
        return self.b.call(self.ext[name], list(operands))

    def bail_unless(self, ok: ir.Value) -> None:
        """Continue when `ok`, else go to the fallback."""
        cont = self.fn.append_basic_block("ok")
        self.b.cbranch(ok, cont, self.fallback)
        self.b.position_at_end(cont)

    def emit(self) -> None:
        b = self.b
        nargs = b.and_(self.nargsf, i64(NARGS_MASK))
        n = self.word(self.desc, Word.NARGS)
        self.bail_unless(b.icmp_signed("==", nargs, n))
        self.check_no_keywords()
        pointers = b.alloca(PTR, size=n, name="arg_pointers")
        self.check_arguments(n, pointers)
        nres = self.word(self.desc, Word.NRESULTS)
        results = b.alloca(PTR, size=nres, name="results")
        result_pointers = b.alloca(PTR, size=nres, name="result_pointers")
        call_args = b.alloca(PTR, size=i64(2), name="call_args")
        self.allocate_results(nres, results, result_pointers, call_args)
        self.run_entry(nres, results, pointers, result_pointers)
        self.build_return(nres, results, call_args)
        b.position_at_end(self.fallback)
        fallback = self.word(self.desc, Word.FALLBACK, PTR)
        b.ret(self.call("vectorcall", fallback, self.args, self.nargsf, self.kwnames))

    def check_no_keywords(self) -> None:
        b = self.b
        has_names = b.icmp_unsigned("!=", self.kwnames, ir.Constant(PTR, None))
        with b.if_then(has_names, likely=False):
            count = self.field(self.kwnames, OB_SIZE, I64)
            self.bail_unless(b.icmp_signed("==", count, i64(0)))

    def check_arguments(self, n: ir.Value, pointers: ir.Value) -> None:
        """Each argument an exact ndarray with the expected dtype and dims, C order, aligned."""
        b = self.b
        specs = self.word(self.desc, Word.ARG_SPECS, PTR)
        ndarray = self.word(self.desc, Word.NDARRAY, PTR)
        with for_range(b, 0, n, name="arg") as i:
            obj = b.load(self.slot(self.args, i), typ=PTR)
            spec = b.gep(specs, [b.mul(i, i64(len(ArgSpec)))], source_etype=I64)
            self.bail_unless(b.icmp_unsigned("==", self.field(obj, OB_TYPE, PTR), ndarray))
            descr = self.field(obj, ARRAY_DESCR, PTR)
            self.bail_unless(b.icmp_unsigned("==", descr, self.word(spec, ArgSpec.DESCR, PTR)))
            nd = b.sext(self.field(obj, ARRAY_ND, I32), I64)
            self.bail_unless(b.icmp_signed("==", nd, self.word(spec, ArgSpec.NDIM)))
            flags = b.and_(self.field(obj, ARRAY_FLAGS, I32), ir.Constant(I32, REQUIRED_FLAGS))
            self.bail_unless(b.icmp_unsigned("==", flags, ir.Constant(I32, REQUIRED_FLAGS)))
            dims = self.field(obj, ARRAY_DIMS, PTR)
            want = self.word(spec, ArgSpec.DIMS, PTR)
            with for_range(b, 0, nd, name="dim") as d:
                self.bail_unless(b.icmp_signed("==", self.word(dims, d), self.word(want, d)))
            b.store(self.field(obj, ARRAY_DATA, PTR), self.slot(pointers, i))

    def allocate_results(self, nres: ir.Value, results: ir.Value, result_pointers: ir.Value,
                         call_args: ir.Value) -> None:
        """results[k] = alloc_k(shape_k, dtype_k); on failure release those made, return NULL."""
        b = self.b
        specs = self.word(self.desc, Word.RESULT_SPECS, PTR)
        failed = self.fn.append_basic_block("alloc_failed")
        with for_range(b, 0, nres, name="result") as k:
            spec = b.gep(specs, [b.mul(k, i64(len(ResultSpec)))], source_etype=I64)
            b.store(self.word(spec, ResultSpec.SHAPE, PTR), self.slot(call_args, 0))
            b.store(self.word(spec, ResultSpec.DTYPE, PTR), self.slot(call_args, 1))
            alloc = self.word(spec, ResultSpec.ALLOC, PTR)
            array = self.call("vectorcall", alloc, call_args, i64(2), ir.Constant(PTR, None))
            made = b.block
            ok = self.fn.append_basic_block("allocated")
            b.cbranch(b.icmp_unsigned("!=", array, ir.Constant(PTR, None)), ok, failed)
            b.position_at_end(ok)
            b.store(array, self.slot(results, k))
            b.store(self.field(array, ARRAY_DATA, PTR), self.slot(result_pointers, k))
        done = b.block
        b.position_at_end(failed)
        count = b.phi(I64, name="made")
        count.add_incoming(k, made)
        self.release(results, count)
        b.ret(ir.Constant(PTR, None))
        b.position_at_end(done)

    def release(self, results: ir.Value, count: ir.Value) -> None:
        """Drop the references to results[0:count]."""
        with for_range(self.b, 0, count, name="drop") as j:
            self.call("decref", self.b.load(self.slot(results, j), typ=PTR))

    def run_entry(self, nres: ir.Value, results: ir.Value, pointers: ir.Value,
                  result_pointers: ir.Value) -> None:
        """Take the arena (or allocate one), call the entry point, put the arena back."""
        b = self.b
        null = ir.Constant(PTR, None)
        slot = b.gep(self.desc, [i64(Word.ARENA)], source_etype=I64)
        cached = b.load(slot, typ=PTR)
        b.store(null, slot)
        size = self.word(self.desc, Word.TEMP_BYTES)
        need = b.and_(b.icmp_unsigned("==", cached, null), b.icmp_signed("!=", size, i64(0)))
        before = b.block
        with b.if_then(need, likely=False):
            # Another call (of another thread, with the GIL released) holds the cached arena.
            fresh = self.call("aligned_alloc", i64(ARENA_ALIGNMENT), size)
            with b.if_then(b.icmp_unsigned("==", fresh, null), likely=False):
                self.release(results, nres)
                self.call("no_memory")
                b.ret(null)
            allocated = b.block
        arena = b.phi(PTR, name="arena")
        arena.add_incoming(cached, before)
        arena.add_incoming(fresh, allocated)
        release = b.icmp_signed("!=", self.word(self.desc, Word.RELEASE_GIL), i64(0))
        with b.if_else(release) as (released, held):
            with released:
                state = self.call("save_thread")
                self.call_entry(pointers, result_pointers, arena)
                self.call("restore_thread", state)
            with held:
                self.call_entry(pointers, result_pointers, arena)
        # Keep the arena unless another call put one back meanwhile.
        empty = b.icmp_unsigned("==", b.load(slot, typ=PTR), null)
        with b.if_else(empty) as (keep, drop):
            with keep:
                b.store(arena, slot)
            with drop:
                self.call("free", arena)
        calls = b.gep(self.desc, [i64(Word.CALLS)], source_etype=I64)
        b.store(b.add(b.load(calls, typ=I64), i64(1)), calls)

    def call_entry(self, pointers: ir.Value, result_pointers: ir.Value, arena: ir.Value
                   ) -> None:
        """Call ENTRY: the plain form, or the `_mt` form with THREADS when that is set."""
        b = self.b
        threads = self.word(self.desc, Word.THREADS)
        plain = ir.FunctionType(ir.VoidType(), [PTR, PTR, PTR])
        mt = ir.FunctionType(ir.VoidType(), [PTR, PTR, PTR, I32])
        with b.if_else(b.icmp_signed("==", threads, i64(0))) as (single, counted):
            with single:
                # Typed as a pointer to the entry's function type, which `call` needs.
                entry = self.word(self.desc, Word.ENTRY, plain.as_pointer())
                b.call(entry, [pointers, result_pointers, arena])
            with counted:
                entry = self.word(self.desc, Word.ENTRY, mt.as_pointer())
                b.call(entry, [pointers, result_pointers, arena, b.trunc(threads, I32)])

    def build_return(self, nres: ir.Value, results: ir.Value, call_args: ir.Value) -> None:
        b = self.b
        returns = self.word(self.desc, Word.RETURNS)
        with b.if_then(b.icmp_signed("==", returns, i64(Returns.SINGLE))):
            b.ret(b.load(self.slot(results, 0), typ=PTR))
        packed = self.call("tuple_new", nres)
        with b.if_then(b.icmp_unsigned("==", packed, ir.Constant(PTR, None)), likely=False):
            self.release(results, nres)
            b.ret(ir.Constant(PTR, None))
        with for_range(b, 0, nres, name="pack") as k:
            # PyTuple_SetItem steals the reference, so the results need no release here.
            self.call("tuple_setitem", packed, k, b.load(self.slot(results, k), typ=PTR))
        with b.if_then(b.icmp_signed("==", returns, i64(Returns.TUPLE))):
            b.ret(packed)
        b.store(packed, self.slot(call_args, 0))
        post = self.word(self.desc, Word.POST, PTR)
        out = self.call("vectorcall", post, call_args, i64(1), ir.Constant(PTR, None))
        self.call("decref", packed)
        b.ret(out)
