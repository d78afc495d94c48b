"""Tracing Python functions into HLO: traces (computations being built) and Tracer arrays.

A `Trace` is one HloComputation under construction; `Tracer` is an array value in it (an
HloInstruction plus its trace). Operations on tracers append instructions; nothing is
computed. Traces nest: the body of a `scan`, `while_loop` or `cond` is a child trace, and a
tracer of an enclosing trace used inside it (a closure) is *captured*: it becomes an extra
element of the body's tuple parameter, fed from outside (`CaptureScope`).

Element types follow numpy's kinds with JAX's "weak" Python scalars: `x * 2.0` keeps
x's type; two arrays promote to the wider type of the higher kind (bool < int < float <
complex). This module also places errors: a `TfcompileError` raised while tracing gets
the file and line of the innermost frame of user code appended (`locate_error`).

It does not define the array operations themselves (compiler.numpy and compiler.lax do,
and install the Python operators on Tracer), nor compile or run anything.
"""

from __future__ import annotations

import contextlib
import functools
import linecache
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, TypeVar, cast

import ml_dtypes
import numpy as np

from hlo import dtypes
from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType
from hlo.errors import ArgumentError, InternalError, TfcompileError, UnsupportedOpError
from hlo.instruction import HloInstruction
from hlo.module import HloModule
from hlo.opcodes import Opcode
from hlo.shape import Shape

# Frames in these directories are not the user's code: tfcompile-py's own packages, and
# the Python installation (numpy, the standard library) calling back into a tracer.
_LIBRARY_DIRS = tuple(
    str(Path(__file__).resolve().parent.parent / d) + "/"
    for d in ("compiler", "hlo", "backends", "runtime")
) + tuple(sorted({str(Path(p).resolve()) + "/" for p in (sys.prefix, sys.base_prefix)}))

# --- element types -------------------------------------------------------------------------

_KIND_ORDER = {"b": 0, "u": 1, "i": 1, "f": 2, "V": 2, "c": 3}
DEFAULT_INT = np.dtype(np.int32)
DEFAULT_FLOAT = np.dtype(np.float32)
DEFAULT_COMPLEX = np.dtype(np.complex64)
BF16 = np.dtype(ml_dtypes.bfloat16)


def kind_rank(dt: np.dtype) -> int:
    """0 for bool, 1 for integers, 2 for floats (bf16 included), 3 for complex."""
    return _KIND_ORDER[np.dtype(dt).kind]


def promote_dtypes(a: np.dtype, b: np.dtype) -> np.dtype:
    """The common type of two array types: the higher kind wins, then the wider type."""
    a, b = np.dtype(a), np.dtype(b)
    if a == b:
        return a
    ka, kb = kind_rank(a), kind_rank(b)
    if ka != kb:
        return a if ka > kb else b
    if BF16 in (a, b):
        other = b if a == BF16 else a
        return other if other.itemsize > 2 else np.dtype(np.float32)
    return np.promote_types(a, b)


def weak_dtype(value: Any) -> np.dtype:
    """The type a Python scalar takes when nothing else decides it."""
    if isinstance(value, (bool, np.bool_)):
        return np.dtype(np.bool_)
    if isinstance(value, (int, np.integer)):
        return DEFAULT_INT
    if isinstance(value, (float, np.floating)):
        return DEFAULT_FLOAT
    return DEFAULT_COMPLEX


def is_weak(value: Any) -> bool:
    """Python (and numpy) scalars adapt to the arrays they meet."""
    return isinstance(value, (bool, int, float, complex, np.generic))


def element_type_of(dt: Any) -> PrimitiveType:
    """The PrimitiveType of a numpy dtype, or ArgumentError naming the dtype."""
    try:
        return dtypes.from_numpy(np.dtype(dt))
    except (TfcompileError, TypeError) as e:
        raise ArgumentError(f"unsupported element type {dt!r}: {e}") from None


# --- errors with the user's line -------------------------------------------------------------


def _is_library(filename: str) -> bool:
    return filename.startswith(_LIBRARY_DIRS) or filename.startswith("<frozen")


def user_location(tb: TracebackType | None) -> str | None:
    """`file:line in function: source` of the innermost user-code frame of a traceback."""
    found = None
    for frame in traceback.extract_tb(tb):
        if not _is_library(frame.filename):
            found = frame
    if found is None:
        return None
    line = (found.line or linecache.getline(found.filename, found.lineno or 0)).strip()
    return f"{found.filename}:{found.lineno} in {found.name}: {line}"


def caller_location() -> str | None:
    """`file:line in function` of the innermost user-code frame on the current stack."""
    frame = sys._getframe(1)
    while frame is not None and _is_library(frame.f_code.co_filename):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return None
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"


def locate_error(e: TfcompileError) -> TfcompileError:
    """Append the user-code location to an error raised while tracing (once)."""
    if getattr(e, "_located", False):
        return e
    where = user_location(e.__traceback__)
    if where is not None and e.args:
        e.args = (f"{e.args[0]}\n  (traced at {where})", *e.args[1:])
    e._located = True  # type: ignore[attr-defined]
    return e


# --- traces ----------------------------------------------------------------------------------


class ModuleState:
    """What all traces of one module share: the module and its scalar helper computations."""

    def __init__(self, name: str) -> None:
        self.module = HloModule(name)
        # ids of instructions made by lax.stop_gradient: autodiff does not look through them.
        self.no_gradient: set[int] = set()
        # id of instruction -> the user's source line that made it, for later errors
        # (an op the backend cannot compile, or one autodiff cannot differentiate).
        self.locations: dict[int, str] = {}
        self._scalar_fns: dict[
            tuple[Opcode | None, PrimitiveType, str | None], HloComputation
        ] = {}

    def scalar_computation(self, opcode: Opcode | None, etype: PrimitiveType,
                           direction: str | None = None) -> HloComputation:
        """`(a, b) -> opcode(a, b)` on scalars of `etype` (reducers of reduce, scatter...).

        `opcode=None` gives `(a, b) -> b` (scatter that overwrites); `Opcode.COMPARE` needs
        a `direction` (the comparators of select-and-scatter and sort).
        """
        key = (opcode, etype, direction)
        comp = self._scalar_fns.get(key)
        if comp is None:
            label = "second" if opcode is None else opcode.value
            if direction is not None:
                label += "_" + direction.lower()
            comp = self.module.new_computation(f"{label}_{etype.value}")
            scalar = Shape.scalar(etype)
            a = comp.add(Opcode.PARAMETER, shape=scalar, name="a", parameter_number=0)
            b = comp.add(Opcode.PARAMETER, shape=scalar, name="b", parameter_number=1)
            if opcode is None:
                comp.set_root(b)
            elif direction is not None:
                comp.set_root(comp.add(opcode, [a, b], direction=direction))
            else:
                comp.set_root(comp.add(opcode, [a, b]))
            self._scalar_fns[key] = comp
        return comp


class CaptureScope:
    """Outer values captured by the child traces of one loop or conditional.

    Each child trace has a tuple parameter whose first `base` elements are the explicit
    state; captured values follow, in capture order, the same for every child. A child's
    parameter shape grows as values are captured (appending keeps GTE indices valid);
    `finish` gives every child the final shape.
    """

    def __init__(self, parent: Trace, base_shapes: Sequence[Shape]) -> None:
        self.parent = parent
        self.base_shapes = list(base_shapes)
        self.values: list[HloInstruction] = []  # in the parent trace
        self.tail_shapes: list[Shape] = []
        self.closed = False
        self._index: dict[int, int] = {}
        self.children: list[Trace] = []

    def index_of(self, outer: HloInstruction) -> int:
        idx = self._index.get(id(outer))
        if idx is None:
            if self.closed:
                raise InternalError("a value was captured after the capture scope closed")
            idx = len(self.values)
            self.values.append(outer)
            self._index[id(outer)] = idx
            for child in self.children:
                child.grow_parameter()
        return idx

    def close(self, tail_shapes: Sequence[Shape] = ()) -> int:
        """End capturing; append `tail_shapes` (state known only after tracing, such as
        scan outputs) after the captures. Returns the index of the first tail element."""
        self.closed = True
        self.tail_shapes = list(tail_shapes)
        for child in self.children:
            child.grow_parameter()
        return self.base + len(self.values)

    def tuple_shape(self) -> Shape:
        return Shape.tuple_of(
            self.base_shapes + [v.shape for v in self.values] + self.tail_shapes
        )

    @property
    def base(self) -> int:
        return len(self.base_shapes)


class Trace:
    """One computation under construction.

    Args:
        state: the module being built.
        comp: the computation instructions go to.
        parent: the enclosing trace for a loop/branch body, else None.
        scope: for a body, the capture scope shared with its sibling bodies.
    """

    def __init__(self, state: ModuleState, comp: HloComputation, parent: Trace | None = None,
                 scope: CaptureScope | None = None) -> None:
        self.state = state
        self.comp = comp
        self.parent = parent
        self.scope = scope
        self.param: HloInstruction | None = None  # a body's tuple parameter
        self.finished = False
        self._captured: dict[int, HloInstruction] = {}
        if scope is not None:
            self.param = comp.add(Opcode.PARAMETER, shape=scope.tuple_shape(), name="state",
                                  parameter_number=0)
            scope.children.append(self)

    @property
    def module(self) -> HloModule:
        return self.state.module

    # --- instructions ----------------------------------------------------------------------
    def add(self, opcode: Opcode, operands: Sequence[HloInstruction] = (),
            shape: Shape | None = None, **attrs: Any) -> HloInstruction:
        """Append an instruction (shape inferred unless given); ShapeError on bad operands."""
        instr = self.comp.add(opcode, operands, shape=shape, **attrs)
        where = caller_location()
        if where is not None:
            self.state.locations[id(instr)] = where
        return instr

    def constant(self, value: Any, dtype: Any = None) -> HloInstruction:
        """A constant instruction holding `value` (converted to `dtype` when given)."""
        array = np.asarray(value, dtype=dtype)
        etype = element_type_of(array.dtype)
        array = np.array(array, order="C", copy=True)
        return self.add(Opcode.CONSTANT, shape=Shape.array(etype, array.shape), literal=array)

    def state_element(self, index: int) -> HloInstruction:
        """Element `index` of a body's tuple parameter."""
        assert self.param is not None
        return self.add(Opcode.GET_TUPLE_ELEMENT, [self.param], index=index)

    def grow_parameter(self) -> None:
        # The parameter's declared shape is the one piece of state that must follow the
        # captures; appending elements leaves every existing get-tuple-element valid.
        assert self.param is not None and self.scope is not None
        self.param.shape = self.scope.tuple_shape().with_default_layout()

    # --- values from other traces -------------------------------------------------------
    def value_of(self, t: Tracer) -> HloInstruction:
        """The instruction of tracer `t` in this trace, capturing it from an outer trace."""
        if t.trace is self:
            return t.instr
        known = self._captured.get(id(t.instr))
        if known is not None:
            return known
        if self.parent is None or self.scope is None or not self._is_ancestor(t.trace):
            raise UnsupportedOpError(
                "a traced value was used outside the function that computed it (a leaked "
                f"tracer of {t.trace.comp.name}, shape {t.aval_text()}); return it from the "
                "function instead of storing it"
            )
        outer = self.parent.value_of(t)
        idx = self.scope.base + self.scope.index_of(outer)
        inner = self.state_element(idx)
        self._captured[id(t.instr)] = inner
        return inner

    def _is_ancestor(self, other: Trace) -> bool:
        node = self.parent
        while node is not None:
            if node is other:
                return not other.finished
            node = node.parent
        return False

    def wrap(self, instr: HloInstruction) -> Tracer:
        return Tracer(self, instr)


# The stack of active traces (innermost last), per thread.
_local = threading.local()


def _stack() -> list[Trace]:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


def current_trace() -> Trace | None:
    """The innermost active trace, or None outside any traced function."""
    stack = _stack()
    return stack[-1] if stack else None


def require_trace(what: str) -> Trace:
    trace = current_trace()
    if trace is None:
        raise UnsupportedOpError(f"{what} can only be used inside a traced function (jit)")
    return trace


@contextlib.contextmanager
def active(trace: Trace) -> Iterator[Trace]:
    """Make `trace` the current trace for the duration of the block."""
    stack = _stack()
    stack.append(trace)
    try:
        yield trace
    finally:
        stack.pop()


def new_module_trace(name: str) -> Trace:
    """A fresh module with an empty entry computation `main`, and its trace."""
    state = ModuleState(name)
    comp = state.module.new_computation("main", entry=True)
    return Trace(state, comp)


def child_trace(scope: CaptureScope, name: str) -> Trace:
    """A body computation of the loop or conditional whose captures `scope` collects."""
    parent = scope.parent
    comp = parent.module.new_computation(name)
    return Trace(parent.state, comp, parent, scope)


# --- tracers ---------------------------------------------------------------------------------


class Tracer:
    """An array value of a traced function: shape and dtype are known, contents are not.

    Supports numpy-style attributes and Python operators (installed by compiler.numpy).
    Converting to bool, int or a numpy array needs the contents, and raises an error
    that names the line.
    """

    __slots__ = ("trace", "instr")
    # numpy must hand binary operators with a tracer operand back to us (`arr * tracer`).
    __array_ufunc__ = None

    def __init__(self, trace: Trace, instr: HloInstruction) -> None:
        self.trace = trace
        self.instr = instr

    @property
    def shape(self) -> tuple[int, ...]:
        return self.instr.shape.dims

    @property
    def dtype(self) -> np.dtype:
        return self.instr.shape.element_type.numpy

    @property
    def ndim(self) -> int:
        return self.instr.shape.rank

    @property
    def size(self) -> int:
        return self.instr.shape.num_elements

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d traced array")
        return self.shape[0]

    def __iter__(self) -> Iterator[Tracer]:
        if not self.shape:
            raise TypeError("iteration over a 0-d traced array")
        return (self[i] for i in range(self.shape[0]))  # type: ignore[index]

    def aval_text(self) -> str:
        return self.instr.shape.to_text(with_layout=False)

    def __repr__(self) -> str:
        return f"Tracer<{self.aval_text()}>"

    def _concrete(self, what: str) -> NoReturn:
        raise UnsupportedOpError(
            f"{what} needs the value of a traced array {self.aval_text()}, which is only known "
            "when the compiled function runs. Use compiler.numpy.where or compiler.lax.cond "
            "instead of a Python `if`, compiler.lax.while_loop/fori_loop instead of a Python "
            "loop over values, or mark the argument static (static_argnums/static_argnames)"
        )

    def __bool__(self) -> bool:
        return self._concrete("bool() (a Python `if`, `while`, `and`, `or` or `not`)")

    def __int__(self) -> int:
        return self._concrete("int()")

    def __float__(self) -> float:
        return self._concrete("float()")

    def __index__(self) -> int:
        return self._concrete("using it as a Python index")

    def __complex__(self) -> complex:
        return self._concrete("complex()")

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise UnsupportedOpError(
            f"a traced array {self.aval_text()} cannot become a numpy array; use "
            "compiler.numpy instead of numpy inside traced functions"
        )

    def __hash__(self) -> int:
        raise TypeError("traced arrays are not hashable (they cannot be static arguments)")


# What compiler.numpy functions accept as an array.
ArrayLike = Tracer | np.ndarray | np.generic | float | int | bool | list[Any] | tuple[Any, ...]


F = TypeVar("F", bound=Callable[..., Any])


def traceable(fn: F) -> F:
    """Mark a compiler.numpy/lax function: outside any trace it runs eagerly.

    Eagerly means: traced into a module of its own (array arguments become constants),
    run on the reference evaluator, the result returned as numpy arrays.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _stack():
            return fn(*args, **kwargs)
        return _run_eagerly(fn, args, kwargs)

    return cast(F, wrapper)


def _run_eagerly(fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    from compiler import pytree
    from hlo.evaluator import evaluate

    trace = new_module_trace(f"eager_{getattr(fn, '__name__', 'op')}")
    with active(trace):
        try:
            out = fn(*args, **kwargs)
        except TfcompileError as e:
            raise locate_error(e) from None
        leaves, treedef = pytree.tree_flatten(out)
        instrs = [as_instr(trace, leaf) for leaf in leaves]
        root = trace.add(Opcode.TUPLE, instrs)
    trace.comp.set_root(root)
    trace.finished = True
    values = evaluate(trace.module)
    return pytree.tree_unflatten(treedef, list(values))


# --- conversions -----------------------------------------------------------------------------


def as_instr(trace: Trace, value: Any, dtype: Any = None) -> HloInstruction:
    """The instruction of a tracer, or a constant for a numpy array or Python scalar."""
    if isinstance(value, Tracer):
        return trace.value_of(value)
    return trace.constant(_as_array(value, dtype))


def _as_array(value: Any, dtype: Any) -> np.ndarray:
    if isinstance(value, (list, tuple)) and any(isinstance(v, Tracer) for v in value):
        raise ArgumentError(
            "a list containing traced arrays is not an array; use compiler.numpy.stack"
        )
    try:
        array = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise ArgumentError(f"cannot use {type(value).__name__} as an array: {e}") from None
    if array.dtype == object or array.dtype.kind in "USMmO":
        raise ArgumentError(f"cannot use {type(value).__name__} {value!r:.60} as an array")
    if dtype is None and is_weak(value):
        array = array.astype(weak_dtype(value))
    elif dtype is None and array.dtype == np.float64 and not isinstance(value, np.ndarray):
        # Nested Python lists of floats: JAX's default float type, not numpy's.
        array = array.astype(DEFAULT_FLOAT)
    elif dtype is None and array.dtype == np.int64 and not isinstance(value, np.ndarray):
        array = array.astype(DEFAULT_INT)
    return array


def to_tracer(value: Any, dtype: Any = None) -> Tracer:
    """`value` as a tracer of the current trace (constants for non-traced values)."""
    trace = require_trace("compiler.numpy")
    if isinstance(value, Tracer) and dtype is None:
        if value.trace is trace:
            return value
        return Tracer(trace, trace.value_of(value))
    instr = as_instr(trace, value, None if isinstance(value, Tracer) else dtype)
    t = Tracer(trace, instr)
    if dtype is not None and t.dtype != np.dtype(dtype):
        from compiler import numpy_prims as prims

        t = prims.convert(t, dtype)
    return t


def dtype_of(value: Any) -> np.dtype:
    """The element type an argument has (weak scalars: their default type)."""
    if isinstance(value, (Tracer, np.ndarray)):
        return value.dtype
    if is_weak(value):
        return weak_dtype(value)
    return _as_array(value, None).dtype


def result_dtype(*values: Any) -> np.dtype:
    """The common element type of operands, with weak Python scalars adapting."""
    strong = [v.dtype for v in values if isinstance(v, (Tracer, np.ndarray))]
    weak = [v for v in values if not isinstance(v, (Tracer, np.ndarray))]
    if strong:
        dt = functools.reduce(promote_dtypes, strong)
    else:
        dt = functools.reduce(promote_dtypes, [dtype_of(w) for w in weak])
        return dt
    for w in weak:
        wd = dtype_of(w)
        if kind_rank(wd) > kind_rank(dt):
            dt = {2: DEFAULT_FLOAT, 3: DEFAULT_COMPLEX}.get(kind_rank(wd), wd)
    return dt


def tracers(*values: Any, dtype: Any = None) -> list[Tracer]:
    """Operands as tracers of the current trace, all of one (promoted or given) type."""
    dt = np.dtype(dtype) if dtype is not None else result_dtype(*values)
    out = []
    for v in values:
        if isinstance(v, Tracer):
            t = to_tracer(v)
            out.append(t if t.dtype == dt else to_tracer(t, dt))
        else:
            out.append(to_tracer(v, dt))
    return out


# Installs the Python operators and numpy-style methods on Tracer.
import compiler.numpy  # noqa: E402,F401  (at the end: compiler.numpy imports this module)
