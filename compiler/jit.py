"""`jit`: trace a Python function into an HLO module per argument signature, compile it,
cache it, and call the compiled code afterwards.

The cache key is the argument structure (a pytree treedef), one (shape, dtype) per array
leaf, and the static arguments' values. A miss traces and compiles (through
`compiler.api.compile`, whose disk cache lets a second process skip code generation: the
traced module's text is deterministic, so its fingerprint repeats); `stats` counts hits
and misses and says why each miss happened.

The common call (positional numpy arrays of the signature called last, no static or donated
arguments) goes straight to a native builtin of the compiled entry (runtime/fastcall.py),
which checks the arrays and runs the code without running any Python; anything else falls
back to `_dispatch`, whose own fast path is keyed by a flat tuple of shapes and dtypes and
which makes the entry it runs the new native one.

Donated arguments (`donate_argnums`) are updated in place: a result leaf with the shape
and dtype of a donated argument leaf is returned in the caller's array. The traced module
says so in its header (`input_output_alias`), and the compiled code then writes that
result straight into the argument's buffer when buffer assignment proves it safe (every
other read of the argument comes first, and the writer reads it only at the index it
writes), or computes it aside and copies it in at the end; `stats.donations` says which
and why. Below ALIAS_FROM_BYTES donated bytes the result is instead copied into the
argument after a (faster) native call. An argument that cannot be updated (not a
writeable, aligned, C-contiguous array of the parameter's dtype) is copied first, and the
copy is returned.

Inside another trace a jitted function is simply inlined.
"""

from __future__ import annotations

import functools
import inspect
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compiler import pytree
from compiler.tracing import (
    Tracer,
    active,
    current_trace,
    element_type_of,
    is_weak,
    locate_error,
    new_module_trace,
    to_tracer,
    weak_dtype,
)
from hlo import debug_options
from hlo.attributes import Raw
from hlo.errors import ArgumentError, TfcompileError
from hlo.module import HloModule
from hlo.opcodes import Opcode
from hlo.shape import Shape
from runtime import Executable, NativeCall, Returns

BACKENDS = ("cpu", "interpreter")
# numpy scalars of these types usually come from Python-style arithmetic (np.cos(0.5) is a
# float64): as arguments they are weakly typed like Python numbers, so that they do not
# promote an f32 computation to f64.
_PYTHON_LIKE = (np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.bool_))
# Donated results of at least this many bytes (in all) are passed to the compiled code as
# the arguments' own buffers (no copy, through the Python calling path); smaller ones take
# the native call and are copied into the arguments after it, which costs less than the
# ~15 us more that the Python path takes per call (break-even near 200 KB at ~27 GB/s).
ALIAS_FROM_BYTES = 128 * 1024


@dataclass
class CacheStats:
    """What the compile cache of one jitted function did.

    Attributes:
        hits: calls that reused a compiled entry.
        misses: calls that traced and compiled a new entry.
        miss_reasons: one line per miss, in order ("first call", "argument 'x': shape
            f32[3] -> f32[4]", "static argument 'n': 3 -> 4", ...).
    """

    hits: int = 0
    misses: int = 0
    miss_reasons: list[str] = field(default_factory=list)
    # One line per donated argument leaf of each compiled entry: how its result got there.
    donations: list[str] = field(default_factory=list)


@dataclass
class _Entry:
    run: Callable[..., Any]
    module: HloModule
    out_treedef: Any
    donations: list[tuple[int, int]]  # (argument leaf, result leaf)
    rebuild: Callable[[Any], Any] = field(init=False)
    # Pass the donated arguments as their results' buffers (compiled code, at least
    # ALIAS_FROM_BYTES donated), rather than copying the results into them after the call.
    in_place: bool = field(init=False)
    # The native call of the compiled code returning what the jitted function returns, with
    # `_dispatch` as its fallback; None for the interpreter and with donated arguments.
    native: NativeCall | None = None

    def __post_init__(self) -> None:
        self.rebuild = pytree.unflattener(self.out_treedef)
        self.in_place = (bool(self.donations) and isinstance(self.run, Executable)
                         and _donated_bytes(self.run, self.donations) >= ALIAS_FROM_BYTES)


@dataclass(frozen=True)
class _Signature:
    treedef: Any
    leaves: tuple[Any, ...]  # (shape, dtype) or ("weak", python type) per dynamic leaf
    statics: tuple[Any, ...]


def _sanitize(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", text).strip("._-") or "arg"
    return name if re.match(r"[A-Za-z_]", name) else f"p{name}"


class JitFunction:
    """A jitted function; call it like the original. See `jit`."""

    def __init__(self, fn: Callable[..., Any], static_argnums: Sequence[int],
                 static_argnames: Sequence[str], donate_argnums: Sequence[int], backend: str,
                 options: dict[str, Any]) -> None:
        if backend not in BACKENDS:
            raise ArgumentError(f"jit: unknown backend {backend!r}; available: "
                                f"{', '.join(BACKENDS)}")
        self.fn = fn
        self._arg_names = _arg_names(fn)
        # A static parameter may be passed by position or by name: each list completes the
        # other through the signature, as in JAX.
        names = self._arg_names
        nums = {int(i) for i in static_argnums}
        nums |= {names.index(n) for n in static_argnames if n in names}
        self.static_argnums = tuple(sorted(nums))
        self.static_argnames = tuple(dict.fromkeys(
            [*static_argnames, *(names[i] for i in self.static_argnums if i < len(names))]))
        self.donate_argnums = frozenset(int(i) for i in donate_argnums)
        self.backend = backend
        self.options = dict(options)
        self._stats = CacheStats()
        self._cache: dict[_Signature, _Entry] = {}
        self._fast: dict[tuple[Any, ...], _Entry] = {}
        # Keyed by `_tree_key`: calls with pytrees (dicts of parameters) or Python numbers.
        self._tree_fast: dict[tuple[Any, ...], _Entry] = {}
        self._last: _Signature | None = None
        self._simple = not self.static_argnums and not self.static_argnames
        self._python_hits = 0
        # Hits counted by native calls of entries since dropped by clear_cache.
        self._dropped_native_hits = 0
        functools.update_wrapper(self, fn)
        # What a call runs: the native call of the entry used last, or `_dispatch`.
        self._hot: Callable[..., Any] = self._dispatch

    @property
    def stats(self) -> CacheStats:
        """Cache statistics, including the hits of native calls."""
        native = sum(e.native.calls for e in self._cache.values() if e.native is not None)
        self._stats.hits = self._python_hits + self._dropped_native_hits + native
        return self._stats

    # --- calling ---------------------------------------------------------------------------
    # A call runs `self._hot` with no Python frame in between: __call__ is a property returning
    # it, where a `def __call__` forwarding the arguments would cost about 200 ns per call, a
    # third of a whole native call.
    __call__ = property(operator.attrgetter("_hot"))

    def _dispatch(self, *args: Any, **kwargs: Any) -> Any:
        """Find (or trace and compile) the entry for these arguments and run it."""
        if self._simple and not kwargs:
            key = []
            for a in args:
                if type(a) is not np.ndarray:
                    break
                key.append(a.shape)
                key.append(a.dtype)
            else:
                entry = self._fast.get(tuple(key))
                if entry is not None:
                    self._python_hits += 1
                    return self._run(entry, list(args))
            if self._tree_fast and current_trace() is None:
                leaves, tree_key = _tree_key(args)
                entry = self._tree_fast.get(tree_key) if tree_key is not None else None
                if entry is not None:
                    arrays = _tree_arrays(leaves)
                    if arrays is not None:
                        self._python_hits += 1
                        return self._run(entry, arrays)
        if current_trace() is not None:
            return self.fn(*args, **kwargs)
        return self._call_slow(args, kwargs)

    def _call_slow(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        sig, leaves = self._signature(args, kwargs)
        entry = self._cache.get(sig)
        if entry is None:
            self._stats.misses += 1
            self._stats.miss_reasons.append(self._miss_reason(sig))
            entry = self._compile(args, kwargs, sig)
            self._cache[sig] = entry
        else:
            self._python_hits += 1
        self._last = sig
        if self._simple and not kwargs:
            if all(type(a) is np.ndarray for a in args):
                self._fast[tuple(x for a in args for x in (a.shape, a.dtype))] = entry
            else:
                tree_key = _tree_key(args)[1]
                if tree_key is not None:
                    self._tree_fast[tree_key] = entry
        return self._run(entry, leaves)

    def _run(self, entry: _Entry, leaves: list[Any]) -> Any:
        self._hot = self._dispatch if entry.native is None else entry.native.function
        if entry.in_place:
            return entry.rebuild(_run_donated(entry.run, entry.donations, leaves))
        results = entry.run(*leaves)
        if entry.donations:
            results = list(results)
            for i, j in entry.donations:
                target = leaves[i]
                if (type(target) is np.ndarray and target.flags.writeable
                        and target.flags.c_contiguous):
                    np.copyto(target, results[j])
                    results[j] = target
        return entry.rebuild(results)

    # --- keys --------------------------------------------------------------------------------
    def _split(self, args: tuple[Any, ...], kwargs: dict[str, Any]
               ) -> tuple[Any, tuple[Any, ...]]:
        """(dynamic arguments as a pytree, static values) of one call."""
        statics = tuple(args[i] for i in self.static_argnums if i < len(args)) + tuple(
            (k, kwargs[k]) for k in self.static_argnames if k in kwargs)
        dyn_args = tuple(a for i, a in enumerate(args) if i not in self.static_argnums)
        dyn_kwargs = {k: v for k, v in kwargs.items() if k not in self.static_argnames}
        dynamic = (dyn_args, dyn_kwargs)
        try:
            hash(statics)
        except TypeError:
            raise ArgumentError(f"{self._where()}: static arguments must be hashable, got "
                                f"{[type(s).__name__ for s in statics]}") from None
        return dynamic, statics

    def _signature(self, args: tuple[Any, ...], kwargs: dict[str, Any]
                   ) -> tuple[_Signature, list[Any]]:
        dynamic, statics = self._split(args, kwargs)
        leaves, treedef = pytree.tree_flatten(dynamic)
        sig_leaves = []
        arrays = []
        for k, leaf in enumerate(leaves):
            if type(leaf) is np.ndarray:
                _check_dtype(leaf.dtype, functools.partial(self._leaf_name, treedef, k), self)
                sig_leaves.append((leaf.shape, leaf.dtype))
                arrays.append(leaf)
            elif is_weak(leaf) and (not isinstance(leaf, np.generic)
                                    or leaf.dtype in _PYTHON_LIKE):
                value = leaf.item() if isinstance(leaf, np.generic) else leaf
                sig_leaves.append(("weak", type(value)))
                arrays.append(_weak_array(
                    value, functools.partial(self._leaf_name, treedef, k), self))
            elif isinstance(leaf, (np.ndarray, np.generic)):
                a = np.asarray(leaf)
                _check_dtype(a.dtype, functools.partial(self._leaf_name, treedef, k), self)
                sig_leaves.append((a.shape, a.dtype))
                arrays.append(a)
            elif isinstance(leaf, Tracer):
                raise ArgumentError(f"{self._where()}: argument {self._leaf_name(treedef, k)} "
                                    "is a traced value from another function")
            else:
                raise ArgumentError(
                    f"{self._where()}: argument {self._leaf_name(treedef, k)} is a "
                    f"{type(leaf).__name__}, not an array; pass numpy arrays or Python "
                    "numbers, or mark it static (static_argnums/static_argnames)")
        return _Signature(treedef, tuple(sig_leaves), statics), arrays

    def _leaf_name(self, treedef: Any, k: int) -> str:
        return _describe_path(pytree.leaf_paths(treedef)[k], self._arg_names, self)

    def _where(self) -> str:
        code = getattr(self.fn, "__code__", None)
        name = getattr(self.fn, "__name__", "function")
        if code is None:
            return f"jit({name})"
        return f"jit({name}) defined at {code.co_filename}:{code.co_firstlineno}"

    def _miss_reason(self, sig: _Signature) -> str:
        last = self._last
        if last is None or not self._cache:
            return "first call"
        if last.treedef != sig.treedef:
            return (f"argument structure changed: {pytree.tree_repr(last.treedef)} -> "
                    f"{pytree.tree_repr(sig.treedef)}")
        for old, new in zip(last.statics, sig.statics, strict=False):
            if old != new:
                return f"static argument changed: {old!r} -> {new!r}"
        for k, (old, new) in enumerate(zip(last.leaves, sig.leaves, strict=True)):
            if old != new:
                return (f"argument {self._leaf_name(sig.treedef, k)}: {_sig_text(old)} -> "
                        f"{_sig_text(new)}")
        return "signature seen before but evicted"

    # --- tracing and compiling ----------------------------------------------------------------
    def lower(self, *args: Any, **kwargs: Any) -> HloModule:
        """The HLO module `jit` would compile for these arguments (traced, not compiled)."""
        sig, _ = self._signature(args, kwargs)
        return self._trace(args, kwargs, sig)[0]

    def _trace(self, args: tuple[Any, ...], kwargs: dict[str, Any], sig: _Signature
               ) -> tuple[HloModule, Any, list[tuple[int, int]], dict[int, str]]:
        name = _sanitize(f"jit_{getattr(self.fn, '__name__', 'fn')}")
        trace = new_module_trace(name)
        paths = pytree.leaf_paths(sig.treedef)
        with active(trace):
            params = []
            for k, (path, leaf_sig) in enumerate(zip(paths, sig.leaves, strict=True)):
                dtype = weak_dtype(leaf_sig[1](0)) if leaf_sig[0] == "weak" else leaf_sig[1]
                dims = () if leaf_sig[0] == "weak" else leaf_sig[0]
                shape = Shape.array(element_type_of(dtype), dims)
                pname = _param_name(_describe_path(path, self._arg_names, self))
                params.append(trace.wrap(trace.add(Opcode.PARAMETER, shape=shape, name=pname,
                                                   parameter_number=k)))
            dynamic = pytree.tree_unflatten(sig.treedef, params)
            call_args, call_kwargs = self._merge(args, kwargs, dynamic)
            try:
                out = self.fn(*call_args, **call_kwargs)
                out_leaves, out_treedef = pytree.tree_flatten(out)
                outs = [to_tracer(o).instr for o in out_leaves]
            except TfcompileError as e:
                raise locate_error(e) from None
            root = trace.add(Opcode.TUPLE, outs)
        trace.comp.set_root(root)
        trace.finished = True
        module = finish_module(trace.module)
        donations = self._donations(sig, paths, [o.shape for o in outs])
        if donations and self.backend == "cpu":
            # Parameter k is argument leaf k; result j is element {j} of the root tuple.
            pairs = ", ".join(f"{{{j}}}: ({k}, {{}}, may-alias)" for k, j in donations)
            module.attrs["input_output_alias"] = Raw(f"{{ {pairs} }}")
        return module, out_treedef, donations, trace.state.locations

    def _merge(self, args: tuple[Any, ...], kwargs: dict[str, Any], dynamic: Any
               ) -> tuple[list[Any], dict[str, Any]]:
        """The call's arguments with the dynamic ones replaced by parameters."""
        dyn_args, dyn_kwargs = dynamic
        it = iter(dyn_args)
        call_args = [a if i in self.static_argnums else next(it) for i, a in enumerate(args)]
        call_kwargs = {k: (v if k in self.static_argnames else dyn_kwargs[k])
                       for k, v in kwargs.items()}
        return call_args, call_kwargs

    def _donations(self, sig: _Signature, paths: list[str], out_shapes: list[Shape]
                   ) -> list[tuple[int, int]]:
        if not self.donate_argnums:
            return []
        donated = [k for k, p in enumerate(paths) if _top_index(p) in self._dynamic_donated()]
        taken: set[int] = set()
        pairs = []
        for k in donated:
            shape, dtype = sig.leaves[k]
            if shape == "weak":
                continue
            for j, out in enumerate(out_shapes):
                if j not in taken and out.dims == tuple(shape) and out.element_type.numpy == dtype:
                    taken.add(j)
                    pairs.append((k, j))
                    break
        return pairs

    def _dynamic_donated(self) -> set[int]:
        """Donated positions renumbered among the dynamic (non-static) positional args."""
        out = set()
        for i in self.donate_argnums:
            if i not in self.static_argnums:
                out.add(i - sum(1 for s in self.static_argnums if s < i))
        return out

    def _compile(self, args: tuple[Any, ...], kwargs: dict[str, Any], sig: _Signature
                 ) -> _Entry:
        module, out_treedef, donations, locations = self._trace(args, kwargs, sig)
        if self.backend == "interpreter":
            from hlo.evaluator import evaluate

            run: Callable[..., Any] = functools.partial(evaluate, module)
        else:
            run = _compile_cpu(module, locations, self.options, self._where())
        entry = _Entry(run, module, out_treedef, donations)
        if isinstance(run, Executable) and donations:
            self._stats.donations += _donation_lines(run, donations, sig, self)
        if isinstance(run, Executable) and not donations:
            entry.native = self._native_call(run, entry)
        return entry

    def _native_call(self, exe: Executable, entry: _Entry) -> NativeCall | None:
        """The entry's native call, returning what `_run` would (None if unavailable)."""
        if entry.out_treedef == pytree.LEAF:
            return exe.native_call(self._dispatch, Returns.SINGLE)
        if entry.rebuild is tuple:
            return exe.native_call(self._dispatch, Returns.TUPLE)
        return exe.native_call(self._dispatch, Returns.POST, post=entry.rebuild)

    def clear_cache(self) -> None:
        """Forget every compiled entry (the compile API's own caches are kept)."""
        self._dropped_native_hits = self.stats.hits - self._python_hits
        self._cache.clear()
        self._fast.clear()
        self._tree_fast.clear()
        self._last = None
        self._hot = self._dispatch

    def __repr__(self) -> str:
        return f"<jit {getattr(self.fn, '__name__', 'fn')} backend={self.backend}>"


def _donated_bytes(exe: Executable, donations: list[tuple[int, int]]) -> int:
    shapes = exe.artifact.result_shapes
    return sum(shapes[j].byte_size for _, j in donations)


def _run_donated(exe: Executable, donations: list[tuple[int, int]], leaves: list[Any]
                 ) -> list[np.ndarray]:
    """Run `exe` passing each donated argument's array as its result's buffer, so that the
    compiled code (whose module aliases them) updates it in place."""
    args = list(leaves)
    results = exe.new_results()
    for i, j in donations:
        target, fresh = args[i], results[j]
        if not (type(target) is np.ndarray and target.dtype == fresh.dtype
                and target.shape == fresh.shape and target.flags.writeable
                and target.flags.c_contiguous and target.flags.aligned):
            # Not ours to update: work on (and return) a copy.
            np.copyto(fresh, np.asarray(target), casting="same_kind")
            target = fresh
        args[i] = results[j] = target
    exe.run_into(args, results)
    return results


def _donation_lines(exe: Executable, donations: list[tuple[int, int]], sig: _Signature,
                    fn: JitFunction) -> list[str]:
    """How each donated argument leaf receives its result, from the buffer assignment."""
    assignment = exe.artifact.extra.get("buffer_assignment")
    decided = {a.result: a for a in getattr(assignment, "aliases", [])}
    lines = []
    for i, j in donations:
        name = fn._leaf_name(sig.treedef, i)
        alias = decided.get(j)
        if _donated_bytes(exe, donations) < ALIAS_FROM_BYTES:
            how = (f"copied after the call (under {ALIAS_FROM_BYTES} bytes donated, a copy "
                   "costs less than the slower call that passes the argument as the result)")
        elif alias is None:
            how = "aliased (the decision is not recorded: compiled code from the disk cache)"
        elif alias.direct:
            how = f"written in place, no copy: {alias.note}"
        else:
            how = f"copied in at the end: {alias.note}"
        lines.append(f"argument {name} <- result {j}: {how}")
    return lines


def _compile_cpu(module: HloModule, locations: dict[int, str], options: dict[str, Any],
                 where: str) -> Callable[..., Any]:
    from compiler.api import compile as compile_module

    try:
        return compile_module(module, backend="cpu", **options)
    except TfcompileError as e:
        raise with_source(e, module, locations, where) from None


def with_source(e: TfcompileError, module: HloModule, locations: dict[int, str],
                where: str) -> TfcompileError:
    """Name the user's line of the instruction an error message mentions, when known."""
    message = str(e)
    for comp in module.computations:
        for instr in comp.instructions:
            if re.search(rf"(?<![\w.\-]){re.escape(instr.name)}(?![\w.\-])", message):
                loc = locations.get(id(instr))
                if loc is not None:
                    e.args = (f"{message}\n  (traced at {loc}; compiling {where})",)
                    return e
    e.args = (f"{message}\n  (compiling {where})",)
    return e


def finish_module(module: HloModule) -> HloModule:
    """Drop dead instructions and unused computations, order callees first, and verify
    when checks are on."""
    for comp in module.computations:
        comp.remove_dead()
    module.computations = module.computations_post_order()
    if debug_options.get().checks >= 1:
        from hlo.verifier import verify

        verify(module)
    return module


def _check_dtype(dtype: np.dtype, name: Callable[[], str], fn: JitFunction) -> None:
    try:
        element_type_of(dtype)
    except ArgumentError:
        raise ArgumentError(f"{fn._where()}: argument {name()} has dtype {dtype}, which has no "
                            "XLA element type") from None


def _weak_array(value: Any, name: Callable[[], str], fn: JitFunction) -> np.ndarray:
    try:
        return np.asarray(value, dtype=weak_dtype(value))
    except (OverflowError, ValueError, TypeError) as e:
        raise ArgumentError(f"{fn._where()}: argument {name()}: {e}") from None


# Leaves the pytree fast path takes as they are (arrays) or as weakly typed scalars.
_TREE_SCALARS = (float, int, bool)


def _tree_key(args: tuple[Any, ...]) -> tuple[list[Any], tuple[Any, ...] | None]:
    """(leaves, key) of positional arguments for the pytree fast path.

    The key holds what `_signature` would for a call without statics or keywords: the
    treedef of (args, {}), then (shape, dtype) per array leaf (numpy scalars of types other
    than float64, int64 and bool included) or the type of a Python scalar leaf. It is None
    when some leaf is anything else (the slow path decides then).
    """
    leaves, treedef = pytree.tree_flatten((args, {}))
    key: list[Any] = [treedef]
    for leaf in leaves:
        kind = type(leaf)
        if kind is np.ndarray:
            key.append((leaf.shape, leaf.dtype))
        elif kind in _TREE_SCALARS:
            key.append(kind)
        elif isinstance(leaf, np.generic) and leaf.dtype not in _PYTHON_LIKE:
            key.append(((), leaf.dtype))
        else:
            return leaves, None
    return leaves, tuple(key)


def _tree_arrays(leaves: list[Any]) -> list[np.ndarray] | None:
    """The leaves as the entry's arguments (None if a scalar does not fit its weak type)."""
    try:
        return [leaf if type(leaf) is np.ndarray
                else np.asarray(leaf) if isinstance(leaf, np.generic)
                else np.asarray(leaf, dtype=weak_dtype(leaf)) for leaf in leaves]
    except (OverflowError, ValueError, TypeError):
        return None


def _param_name(described: str) -> str:
    """An HLO parameter name for a described leaf: `'params'[0]['w']` -> `params.0.w`."""
    parts = [p for p in re.split(r"[\[\]'\"]+", described) if p]
    return _sanitize(".".join(parts))


def _sig_text(leaf_sig: Any) -> str:
    if leaf_sig[0] == "weak":
        return f"Python {leaf_sig[1].__name__}"
    shape, dtype = leaf_sig
    return f"{element_type_of(dtype).value}[{','.join(map(str, shape))}]"


def _arg_names(fn: Callable[..., Any]) -> list[str]:
    try:
        return [p.name for p in inspect.signature(fn).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return []


def _top_index(path: str) -> int | None:
    """The dynamic positional argument a leaf path `[0][i]...` belongs to."""
    m = re.match(r"\[0\]\[(\d+)\]", path)
    return int(m.group(1)) if m else None


def _describe_path(path: str, names: list[str], fn: JitFunction) -> str:
    """`'params'['w']` for the leaf path `[0][0]['w']` of (dynamic args, dynamic kwargs)."""
    m = re.match(r"\[0\]\[(\d+)\](.*)", path)
    if m is None:
        kw = re.match(r"\[1\]\[(.*?)\](.*)", path)
        return f"{kw.group(1)}{kw.group(2)}" if kw else path
    i = int(m.group(1))
    positions = [j for j in range(len(names) + i + 1) if j not in fn.static_argnums]
    if positions[i] < len(names):
        return f"'{names[positions[i]]}'{m.group(2)}"
    return f"{positions[i]}{m.group(2)}"


def jit(fn: Callable[..., Any] | None = None, *, static_argnums: int | Sequence[int] = (),
        static_argnames: str | Sequence[str] = (), donate_argnums: int | Sequence[int] = (),
        backend: str = "cpu", **options: Any) -> Any:
    """Compile `fn` per argument signature; usable as `@jit` or `@jit(static_argnums=1)`.

    Args:
        fn: a function of arrays (numpy arrays or Python numbers, in nested tuples, lists
            and dicts), returning a pytree of arrays.
        static_argnums / static_argnames: arguments passed as Python values at trace time
            (hashable; each new value compiles a new entry).
        donate_argnums: positional arguments whose buffers may be updated in place.
        backend: "cpu" (compiled) or "interpreter" (the reference evaluator).
        **options: compile options for the backend (see compiler.compile).
    """
    nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    names = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
    donate = (donate_argnums,) if isinstance(donate_argnums, int) else tuple(donate_argnums)

    def wrap(f: Callable[..., Any]) -> JitFunction:
        return JitFunction(f, nums, names, donate, backend, options)

    return wrap if fn is None else wrap(fn)
