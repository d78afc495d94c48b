"""compiler.lax: structured control flow, convolutions and windows, and the HLO primitives.

`scan`, `while_loop`, `fori_loop`, `cond` and `switch` trace their Python functions into
HLO `while` and `conditional` computations. Values the functions close over are captured
as extra loop state or branch operands (see tracing.CaptureScope). A `scan` over n steps
is a `while` whose state is (counter, carry..., xs..., captured..., ys...): each step
dynamic-slices its x out of the xs and dynamic-update-slices its y into the ys. With
Python-int bounds `fori_loop` and `scan` have static trip counts, which is what reverse-mode
autodiff needs to differentiate them.

`conv_general_dilated` and `reduce_window` take JAX-style arguments (dimension-number
strings such as ("NHWC", "HWIO", "NHWC"), "SAME"/"VALID" or explicit padding). The thin
per-opcode primitives of compiler.numpy_prims are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from compiler import numpy_prims as prims
from compiler import pytree
from compiler.numpy_prims import (  # noqa: F401  (re-exported primitives)
    broadcast_in_dim,
    compare,
    concatenate,
    convert,
    dot_general,
    dynamic_slice,
    dynamic_update_slice,
    gather,
    iota,
    make_window,
    pad,
    reduce,
    reshape,
    reverse,
    scatter,
    select,
    select_and_scatter_add,
    slice_,
    transpose,
)
from compiler.tracing import (
    DEFAULT_INT,
    CaptureScope,
    Trace,
    Tracer,
    active,
    child_trace,
    require_trace,
    to_tracer,
    traceable,
)
from hlo.attributes import ConvDimLabels
from hlo.dtypes import PrimitiveType
from hlo.errors import ArgumentError, ShapeError
from hlo.opcodes import Opcode
from hlo.shape import Shape

rev = reverse

# --- gradients -------------------------------------------------------------------------------


@traceable
def stop_gradient(x: Any) -> Any:
    """`x`, seen by autodiff as a constant (its gradient is zero)."""
    def stop(leaf: Any) -> Tracer:
        t = to_tracer(leaf)
        out = prims.emit(Opcode.COPY, [t])
        out.trace.state.no_gradient.add(id(out.instr))
        return out

    return pytree.tree_map(stop, x)


@traceable
def clamp(lo: Any, x: Any, hi: Any) -> Tracer:
    """`x` limited to [lo, hi]; the bounds are scalars or shaped like x (HLO clamp)."""
    t = to_tracer(x)
    low = lo if isinstance(lo, Tracer) else to_tracer(lo, t.dtype)
    high = hi if isinstance(hi, Tracer) else to_tracer(hi, t.dtype)
    return prims.emit(Opcode.CLAMP, [low, t, high])


# --- convolution and windows -------------------------------------------------------------------


def _dilate(size: int, dilation: int) -> int:
    return 0 if size == 0 else 1 + dilation * (size - 1)


def padtype_to_pads(in_shape: Sequence[int], window: Sequence[int], strides: Sequence[int],
                    padding: Any) -> list[tuple[int, int]]:
    """Explicit (low, high) pads for "SAME"/"VALID" or a given list (window sizes already
    include any dilation). SAME keeps ceil(in / stride) outputs, extra padding high."""
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return [(0, 0)] * len(in_shape)
        if mode == "SAME":
            pads = []
            for n, w, s in zip(in_shape, window, strides, strict=True):
                out = -(-n // s)
                total = max((out - 1) * s + w - n, 0)
                pads.append((total // 2, total - total // 2))
            return pads
        raise ArgumentError(f"padding must be 'SAME', 'VALID' or (low, high) pairs, got "
                            f"{padding!r}")
    pads = [(int(lo), int(hi)) for lo, hi in padding]
    if len(pads) != len(in_shape):
        raise ShapeError(f"padding {padding} has {len(pads)} entries for {len(in_shape)} dims")
    return pads


def conv_dim_labels(lhs_spec: str, rhs_spec: str, out_spec: str) -> ConvDimLabels:
    """ConvDimLabels from JAX-style specs: N/C (batch/feature), O/I (kernel out/in features);
    other letters are spatial, ordered as in the kernel spec."""
    specs = (lhs_spec, rhs_spec, out_spec)
    if len({len(s) for s in specs}) != 1 or any(len(set(s)) != len(s) for s in specs):
        raise ArgumentError(f"conv dimension numbers {specs} must be three strings of one "
                            "length without repeated letters")
    spatial = [c for c in rhs_spec if c not in "OI"]
    for spec, fixed in ((lhs_spec, "NC"), (rhs_spec, "OI"), (out_spec, "NC")):
        if set(spec) != set(fixed) | set(spatial):
            raise ArgumentError(f"conv dimension numbers {specs}: {spec!r} must hold "
                                f"{fixed} and the kernel's spatial letters {''.join(spatial)}")
    return ConvDimLabels(
        input_batch=lhs_spec.index("N"), input_feature=lhs_spec.index("C"),
        input_spatial=tuple(lhs_spec.index(c) for c in spatial),
        kernel_input_feature=rhs_spec.index("I"), kernel_output_feature=rhs_spec.index("O"),
        kernel_spatial=tuple(rhs_spec.index(c) for c in spatial),
        output_batch=out_spec.index("N"), output_feature=out_spec.index("C"),
        output_spatial=tuple(out_spec.index(c) for c in spatial),
    )


def _default_specs(ndim: int) -> tuple[str, str, str]:
    spatial = "HWDUVXYZ"[: ndim - 2] if ndim <= 4 else "".join(chr(ord("a") + i)
                                                                  for i in range(ndim - 2))
    return "NC" + spatial, "OI" + spatial, "NC" + spatial


@traceable
def conv_general_dilated(lhs: Any, rhs: Any, window_strides: Sequence[int], padding: Any,
                         lhs_dilation: Sequence[int] | None = None,
                         rhs_dilation: Sequence[int] | None = None,
                         dimension_numbers: Sequence[str] | None = None,
                         feature_group_count: int = 1, batch_group_count: int = 1) -> Tracer:
    """N-d convolution with strides, padding, input (lhs) and kernel (rhs) dilation and
    groups; dimension_numbers default to ("NCHW", "OIHW", "NCHW")."""
    x, w = to_tracer(lhs), to_tracer(rhs)
    if x.dtype != w.dtype:
        raise ArgumentError(f"conv: input {x.dtype} and kernel {w.dtype} types differ")
    specs = tuple(dimension_numbers) if dimension_numbers is not None else _default_specs(
        x.ndim)
    if len(specs[0]) != x.ndim or len(specs[1]) != w.ndim:
        raise ShapeError(f"conv: dimension numbers {specs} do not fit input {x.shape} and "
                         f"kernel {w.shape}")
    labels = conv_dim_labels(*specs)
    n = len(labels.input_spatial)
    strides = list(window_strides) if window_strides else [1] * n
    lhs_dil = list(lhs_dilation or [1] * n)
    rhs_dil = list(rhs_dilation or [1] * n)
    in_sizes = [_dilate(x.shape[d], r) for d, r in zip(labels.input_spatial, lhs_dil,
                                                        strict=True)]
    k_sizes = [w.shape[d] for d in labels.kernel_spatial]
    pads = padtype_to_pads(in_sizes, [_dilate(k, r) for k, r in zip(k_sizes, rhs_dil,
                                                                       strict=True)],
                           strides, padding)
    window = prims.make_window(k_sizes, strides, pads, lhs_dil, rhs_dil)
    return prims.convolution(x, w, window, labels, feature_group_count, batch_group_count)


_REDUCERS = {"add": Opcode.ADD, "sum": Opcode.ADD, "max": Opcode.MAXIMUM,
             "min": Opcode.MINIMUM, "mul": Opcode.MULTIPLY}


@traceable
def reduce_window(x: Any, init_value: Any, computation: str | Opcode,
                  window_dimensions: Sequence[int], window_strides: Sequence[int] | None = None,
                  padding: Any = "VALID", base_dilation: Sequence[int] | None = None,
                  window_dilation: Sequence[int] | None = None) -> Tracer:
    """Reduce windows of `x` with "add", "max", "min" or "mul" (padding holds init_value)."""
    t = to_tracer(x)
    opcode = computation if isinstance(computation, Opcode) else _REDUCERS.get(computation)
    if opcode is None:
        raise ArgumentError(f"reduce_window: computation must be one of {sorted(_REDUCERS)}, "
                            f"got {computation!r}")
    dims = list(window_dimensions)
    strides = list(window_strides or [1] * t.ndim)
    base = list(base_dilation or [1] * t.ndim)
    wdil = list(window_dilation or [1] * t.ndim)
    pads = padtype_to_pads([_dilate(s, b) for s, b in zip(t.shape, base, strict=True)],
                           [_dilate(d, r) for d, r in zip(dims, wdil, strict=True)], strides,
                           padding)
    return prims.reduce_window(t, init_value, opcode,
                               prims.make_window(dims, strides, pads, base, wdil))


# --- control flow ----------------------------------------------------------------------------


def _leaves(tree: Any, what: str) -> tuple[list[Tracer], Any]:
    leaves, treedef = pytree.tree_flatten(tree)
    out = []
    for path, leaf in zip(pytree.leaf_paths(treedef), leaves, strict=True):
        try:
            out.append(to_tracer(leaf))
        except ArgumentError as e:
            raise ArgumentError(f"{what}{path}: {e}") from None
    return out, treedef


def _check_same(what: str, want_def: Any, want: Sequence[Tracer], got_def: Any,
                got: Sequence[Tracer]) -> None:
    if want_def != got_def:
        raise ShapeError(f"{what}: structure {pytree.tree_repr(got_def)} differs from "
                         f"{pytree.tree_repr(want_def)}")
    for path, a, b in zip(pytree.leaf_paths(want_def), want, got, strict=True):
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ShapeError(f"{what}: leaf {path or '(root)'} is {b.aval_text()}, expected "
                             f"{a.aval_text()} (convert it with .astype if only the type "
                             "differs)")


def _elements(trace: Trace, start: int, count: int) -> list[Tracer]:
    return [trace.wrap(trace.state_element(start + k)) for k in range(count)]


def _finish(body: Trace, root_values: Sequence[Any]) -> None:
    with active(body):
        root = body.add(Opcode.TUPLE, [to_tracer(v).instr for v in root_values])
    body.comp.set_root(root)
    body.finished = True


def _passthrough(body: Trace, scope: CaptureScope) -> list[Tracer]:
    return _elements(body, scope.base, len(scope.values))


@traceable
def scan(f: Callable[[Any, Any], tuple[Any, Any]], init: Any, xs: Any = None,
         length: int | None = None, reverse: bool = False) -> tuple[Any, Any]:
    """Loop `carry, y = f(carry, x)` over the leading axis of `xs`; returns the final carry
    and the stacked ys. `length` is needed when xs is None."""
    trace = require_trace("scan")
    carry, carry_def = _leaves(init, "scan init")
    x_seqs, x_def = _leaves(xs, "scan xs")
    n = length
    for x in x_seqs:
        if x.ndim == 0 or (n is not None and x.shape[0] != n):
            raise ShapeError(f"scan: every xs leaf needs leading dimension {n}, got "
                             f"{x.aval_text()}")
        n = x.shape[0]
    if n is None:
        raise ArgumentError("scan: give xs or length")
    counter_shape = Shape.scalar(PrimitiveType.S32)
    scope = CaptureScope(trace, [counter_shape] + [t.instr.shape for t in carry + x_seqs])
    body = child_trace(scope, "scan_body")
    nc = len(carry)
    with active(body):
        i = body.wrap(body.state_element(0))
        idx = prims.binary(Opcode.SUBTRACT, to_tracer(np.int32(n - 1)), i) if reverse else i
        carry_in = _elements(body, 1, nc)
        x_bufs = _elements(body, 1 + nc, len(x_seqs))
        x_in = [prims.reshape(prims.dynamic_slice(b, [idx] + [0] * (b.ndim - 1),
                                                  (1,) + b.shape[1:]), b.shape[1:])
                for b in x_bufs]
        out = f(pytree.tree_unflatten(carry_def, carry_in), pytree.tree_unflatten(x_def, x_in))
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise ArgumentError("scan: f must return a pair (new carry, y)")
        new_carry, new_def = _leaves(out[0], "scan carry")
        _check_same("scan: the carry f returns", carry_def, carry, new_def, new_carry)
        ys, y_def = _leaves(out[1], "scan y")
    tail = scope.close([Shape.array(y.instr.shape.element_type, (n, *y.shape)) for y in ys])
    with active(body):
        y_bufs = _elements(body, tail, len(ys))
        new_ys = [prims.dynamic_update_slice(buf, prims.reshape(y, (1, *y.shape)),
                                             [idx] + [0] * y.ndim)
                  for buf, y in zip(y_bufs, ys, strict=True)]
        next_i = prims.binary(Opcode.ADD, i, to_tracer(np.int32(1)))
        captured = _passthrough(body, scope)
    _finish(body, [next_i, *new_carry, *x_bufs, *captured, *new_ys])
    cond = child_trace(scope, "scan_cond")
    with active(cond):
        done = prims.compare(cond.wrap(cond.state_element(0)), to_tracer(np.int32(n)), "LT")
    _finish_cond(cond, done)
    zeros = [prims.full((n, *y.shape), 0, y.dtype) for y in ys]
    start = to_tracer(np.int32(0))
    state = _while(trace, cond, body, [start, *carry, *x_seqs], scope, zeros)
    out_carry = [prims.get_tuple_element(state, 1 + k) for k in range(nc)]
    out_ys = [prims.get_tuple_element(state, tail + k) for k in range(len(ys))]
    return pytree.tree_unflatten(carry_def, out_carry), pytree.tree_unflatten(y_def, out_ys)


def _finish_cond(cond: Trace, t: Tracer) -> None:
    if t.shape != () or t.dtype != np.bool_:
        raise ShapeError(f"the loop condition must return a boolean scalar, got "
                         f"{t.aval_text()}")
    cond.comp.set_root(t.instr)
    cond.finished = True


def _while(trace: Trace, cond: Trace, body: Trace, explicit: Sequence[Tracer],
           scope: CaptureScope, tail: Sequence[Tracer] = ()) -> Tracer:
    """The `while` instruction in `trace`, its init the explicit state, captures and tail."""
    with active(trace):
        init = prims.make_tuple([*explicit, *[trace.wrap(v) for v in scope.values], *tail])
        return prims.emit(Opcode.WHILE, [init], condition=cond.comp, body=body.comp)


@traceable
def while_loop(cond_fun: Callable[[Any], Any], body_fun: Callable[[Any], Any],
               init_val: Any) -> Any:
    """Repeat `val = body_fun(val)` while `cond_fun(val)` is true; returns the final val."""
    trace = require_trace("while_loop")
    init, init_def = _leaves(init_val, "while_loop init_val")
    scope = CaptureScope(trace, [t.instr.shape for t in init])
    cond = child_trace(scope, "while_cond")
    with active(cond):
        done = to_tracer(cond_fun(pytree.tree_unflatten(init_def,
                                                        _elements(cond, 0, len(init)))))
    body = child_trace(scope, "while_body")
    with active(body):
        out, out_def = _leaves(body_fun(pytree.tree_unflatten(init_def,
                                                              _elements(body, 0, len(init)))),
                               "while_loop body_fun result")
        _check_same("while_loop: the value body_fun returns", init_def, init, out_def, out)
    scope.close()
    _finish_cond(cond, done)
    with active(body):
        captured = _passthrough(body, scope)
    _finish(body, [*out, *captured])
    state = _while(trace, cond, body, init, scope)
    return pytree.tree_unflatten(init_def, [prims.get_tuple_element(state, k)
                                            for k in range(len(init))])


@traceable
def fori_loop(lower: Any, upper: Any, body_fun: Callable[[Any, Any], Any],
              init_val: Any) -> Any:
    """`val = body_fun(i, val)` for i in [lower, upper). Python-int bounds give a static
    trip count (differentiable); traced bounds a general while loop."""
    def cond_fun(state: Any) -> Any:
        return state[0] < upper

    def step(state: Any) -> Any:
        i, val = state
        return (i + 1, body_fun(i, val))

    lo = to_tracer(lower, DEFAULT_INT) if not isinstance(lower, Tracer) else lower
    return while_loop(cond_fun, step, (lo, init_val))[1]


@traceable
def cond(pred: Any, true_fun: Callable[..., Any], false_fun: Callable[..., Any],
         *operands: Any) -> Any:
    """`true_fun(*operands)` if pred else `false_fun(*operands)`; both branches are traced
    and must return the same structure, shapes and types."""
    if isinstance(pred, (bool, np.bool_)):
        return (true_fun if pred else false_fun)(*operands)
    p = to_tracer(pred)
    if p.shape != ():
        raise ShapeError(f"cond: the predicate must be a scalar, got {p.aval_text()}")
    if p.dtype != np.bool_:
        p = prims.compare(p, prims.zeros_like(p), "NE")
    return _conditional(p, [true_fun, false_fun], ["cond_true", "cond_false"], operands)


@traceable
def switch(index: Any, branches: Sequence[Callable[..., Any]], *operands: Any) -> Any:
    """`branches[index](*operands)`, the index clamped into range."""
    if not branches:
        raise ArgumentError("switch needs at least one branch")
    i = prims.convert(to_tracer(index), DEFAULT_INT)
    if i.shape != ():
        raise ShapeError(f"switch: the index must be a scalar, got {i.aval_text()}")
    lo, hi = to_tracer(np.int32(0)), to_tracer(np.int32(len(branches) - 1))
    i = prims.emit(Opcode.CLAMP, [lo, i, hi])
    return _conditional(i, list(branches), [f"branch_{k}" for k in range(len(branches))],
                        operands)


def _conditional(selector: Tracer, fns: Sequence[Callable[..., Any]], names: Sequence[str],
                 operands: Sequence[Any]) -> Any:
    trace = require_trace("cond")
    ops, ops_def = _leaves(tuple(operands), "cond operands")
    scope = CaptureScope(trace, [t.instr.shape for t in ops])
    results: list[tuple[Trace, list[Tracer], Any]] = []
    for fn, name in zip(fns, names, strict=True):
        branch = child_trace(scope, name)
        with active(branch):
            args = pytree.tree_unflatten(ops_def, _elements(branch, 0, len(ops)))
            out, out_def = _leaves(fn(*args), f"{name} result")
        if results:
            _check_same(f"cond: {name} returns a different value than {names[0]}",
                        results[0][2], results[0][1], out_def, out)
        results.append((branch, out, out_def))
    scope.close()
    for branch, out, _ in results:
        _finish(branch, out)
    with active(trace):
        operand = prims.make_tuple([*ops, *[trace.wrap(v) for v in scope.values]])
        comps = [b.comp for b, _, _ in results]
        if selector.dtype == np.bool_:
            c = prims.emit(Opcode.CONDITIONAL, [selector, operand, operand],
                           true_computation=comps[0], false_computation=comps[1])
        else:
            c = prims.emit(Opcode.CONDITIONAL, [selector] + [operand] * len(comps),
                           branch_computations=tuple(comps))
        out_def = results[0][2]
        return pytree.tree_unflatten(out_def, [prims.get_tuple_element(c, k)
                                               for k in range(len(results[0][1]))])


def map(f: Callable[[Any], Any], xs: Any) -> Any:  # noqa: A001  (JAX's name)
    """`stack([f(x) for x in xs])` as a scan over the leading axis."""
    _, ys = scan(lambda c, x: (c, f(x)), (), xs)
    return ys
