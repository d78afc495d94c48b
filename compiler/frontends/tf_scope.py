"""The emission driver: lowers the TF nodes a result needs, in dependency order, into HLO.

A `Scope` is one HLO computation under construction together with the TF graph (a
GraphDef or a library function body) and the v1 control-flow context it covers. Nodes are
lowered on demand: asking for a tensor lowers its node after everything it depends on
through data and control edges, so pruning falls out (unneeded nodes are never touched),
and the depth-first order is a topological order that respects control dependencies,
which is what orders variable reads and updates. Variables are `Resource` values; the
scope tracks each one's current HLO value, reads return it and assignments replace it.

`Scope.sub_computation` builds the computations that calls, conditionals and loops need:
one tuple parameter carrying the operands (resources carry their current value), and a
root holding the results plus the final value of every resource passed in.

The per-op rules live in `tf_ops*.py`; this file only drives them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from compiler.frontends.tf_graphdef import (
    Context,
    TensorRef,
    TfGraph,
    TfNode,
    element_type,
    shape_dims,
    tensor_to_array,
)
from compiler.frontends.tf_hlo import HloEmitter, Instr
from compiler.frontends.tf_ops import TfOp
from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType
from hlo.errors import ImportGraphError, TfcompileError, UnsupportedOpError
from hlo.instruction import HloInstruction
from hlo.shape import Shape

if TYPE_CHECKING:
    from compiler.frontends.tf_import import Importer

# Inline captured constants into sub-computations up to this many elements, so that
# shapes and axes computed outside a branch or loop stay compile-time constants inside.
INLINE_LIMIT = 4096

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Resource:
    """A variable handle: `key` names the variable (its config node name)."""

    key: str
    shape: Shape
    is_ref: bool = False  # a TF1 ref variable (VariableV2): plain consumers read it

    def __str__(self) -> str:
        return f"variable {self.key!r}"


Value = HloInstruction | Resource | None


@dataclass(slots=True)
class Slot:
    """One operand of a sub-computation: the inner tensors it binds and its outer value.

    `inline` allows replacing the operand by its constant value inside the computation.
    """

    refs: list[TensorRef]
    value: Value
    inline: bool = False


@dataclass(slots=True)
class SubComputation:
    """A built sub-computation: its operands (outer instructions, in parameter tuple order)
    and the variables whose final values follow its results."""

    comp: HloComputation
    operands: list[Instr]
    resources: list[Resource] = field(default_factory=list)


class Scope:
    """One computation being built from one TF graph within one control-flow context."""

    def __init__(
        self, importer: Importer, graph: TfGraph, comp: HloComputation, context: Context = ()
    ) -> None:
        self.importer = importer
        self.graph = graph
        self.context = context
        self.hlo = HloEmitter(importer.state, comp)
        self.values: dict[TensorRef, Value] = {}
        self.bound: set[str] = set()
        self.var_values: dict[str, Instr] = {}
        self.done: set[str] = set()
        self.memo: dict[Any, Any] = {}  # per-scope caches of control-flow lowerings

    # --- values -------------------------------------------------------------------------------
    def bind(self, ref: TensorRef, value: Value) -> None:
        """Give tensor `ref` a value from outside (a feed, an argument, a capture)."""
        self.values[ref] = value
        self.bound.add(ref.node)

    def value(self, ref: TensorRef) -> Value:
        """The value of tensor `ref`, lowering its node (and what it needs) first."""
        if ref not in self.values:
            if ref.node in self.done or ref.node in self.bound:
                node = self.graph.node(ref.node)
                raise ImportGraphError(f"{node} has no output {ref.index}")
            self.ensure(ref.node)
            if ref not in self.values:
                raise ImportGraphError(f"{self.graph.node(ref.node)} has no output {ref.index}")
        return self.values[ref]

    def inside(self, name: str) -> bool:
        """Whether node `name` runs in this scope's context or deeper."""
        ctx = self.graph.context(name)
        return ctx[: len(self.context)] == self.context

    def ensure(self, name: str) -> None:
        """Lower node `name` after every node it depends on (iterative depth-first)."""
        stack: list[tuple[str, bool]] = [(name, False)]
        on_path: set[str] = set()
        while stack:
            current, expanded = stack.pop()
            if current in self.done:
                continue
            if expanded:
                self._lower(self.graph.node(current))
                self.done.add(current)
                on_path.discard(current)
                continue
            if current in on_path:
                raise ImportGraphError(
                    f"{self.graph.name}: {self.graph.node(current)} depends on itself"
                )
            on_path.add(current)
            stack.append((current, True))
            for dep in reversed(self._deps(self.graph.node(current))):
                if dep not in self.done:
                    stack.append((dep, False))

    def _deps(self, node: TfNode) -> list[str]:
        op = self.importer.lookup(node.op)
        refs: Sequence[TensorRef] = node.inputs
        hook = op.deps if op is not None else None
        if hook is not None:
            refs = guarded(f"{self.graph.name}: {node}", lambda: hook(self, node))
        names = [r.node for r in refs if r not in self.values]
        depth = len(self.context)
        for c in node.controls:
            if c in self.bound or c in self.done:
                continue
            # Control edges from outside this scope are satisfied before it runs; edges
            # from deeper nodes (inside a branch) cannot order anything here.
            if self.inside(c) and len(self.graph.context(c)) == depth:
                names.append(c)
        for n in names:
            self.graph.node(n, str(node))
        return names

    def _lower(self, node: TfNode) -> None:
        op = self.importer.lookup(node.op)
        if op is None:
            raise UnsupportedOpError(f"{self.graph.name}: {node}: op {node.op!r} is not supported")
        if node.name in self.bound:
            return
        outputs = lower_with_context(op, NodeCtx(self, node))
        for i, v in enumerate(outputs):
            ref = TensorRef(node.name, i)
            if ref not in self.values:
                self.values[ref] = v

    # --- variables ----------------------------------------------------------------------------
    def read_var(self, res: Resource) -> Instr:
        found = self.var_values.get(res.key)
        if found is None:
            raise ImportGraphError(f"{res} is not available here")
        return found

    def assign_var(self, res: Resource, value: Instr, where: str) -> None:
        want = res.shape
        if not value.shape.compatible(want):
            raise ImportGraphError(
                f"{where}: assigns {value.shape.to_text(with_layout=False)} to {res} of "
                f"shape {want.to_text(with_layout=False)}"
            )
        self.var_values[res.key] = value
        self.importer.assigned.add(res.key)

    # --- sub-computations ---------------------------------------------------------------------
    def sub_computation(
        self,
        name: str,
        graph: TfGraph,
        context: Context,
        slots: Sequence[Slot],
        outputs: Sequence[TensorRef],
        *,
        single_root: bool = False,
        resource_outputs_as_values: bool = False,
        control_outputs: Sequence[str] = (),
    ) -> SubComputation:
        """Build a computation computing `outputs` of `graph` from `slots`.

        The computation takes one tuple parameter (one element per non-inlined slot) and
        returns `outputs[0]` when `single_root`, else a tuple of the outputs followed by the
        final values of the slots' resources. Resource-valued outputs become the variable's
        value when `resource_outputs_as_values` (loop state), else are refused.
        """
        comp = self.importer.module.new_computation(name)
        sub = Scope(self.importer, graph, comp, context)
        operands: list[Instr] = []
        resources: list[Resource] = []
        bindings: list[tuple[Slot, Any]] = []
        for slot in slots:
            v = slot.value
            if isinstance(v, Resource):
                bindings.append((slot, len(operands)))
                operands.append(self.read_var(v))
                resources.append(v)
                continue
            if v is None:
                raise ImportGraphError(f"{name}: an operand has no value (a control-only node)")
            folded = self.hlo.constant_value(v) if slot.inline else None
            if folded is not None and folded.size <= INLINE_LIMIT:
                bindings.append((slot, folded))
            else:
                bindings.append((slot, len(operands)))
                operands.append(v)
        param = sub.hlo.parameter(0, Shape.tuple_of([o.shape for o in operands]), "args")
        for slot, where in bindings:
            if isinstance(where, np.ndarray):
                inner: Value = sub.hlo.constant(where)
            else:
                inner = sub.hlo.gte(param, where)
                if isinstance(slot.value, Resource):
                    sub.var_values[slot.value.key] = inner
                    inner = slot.value
            for ref in slot.refs:
                sub.bind(ref, inner)
        initial = dict(sub.var_values)
        results: list[Instr] = []
        for ref in outputs:
            v = sub.value(ref)
            if isinstance(v, Resource):
                if not resource_outputs_as_values:
                    raise UnsupportedOpError(f"{name}: returning {v} from a function")
                v = sub.read_var(v)
            if v is None:
                raise ImportGraphError(f"{name}: result {ref} has no value")
            results.append(v)
        for c in control_outputs:
            sub.ensure(c)
        if single_root:
            for res in resources:
                if sub.var_values[res.key] is not initial[res.key]:
                    raise UnsupportedOpError(f"{name}: assigning {res} in a loop condition")
            comp.set_root(results[0])
        else:
            finals = [sub.read_var(r) for r in resources]
            comp.set_root(sub.hlo.tuple(results + finals))
        return SubComputation(comp, operands, resources)

    def finish_call(self, built: SubComputation, result: Instr, count: int) -> list[Instr]:
        """Split the tuple `result` of a call/conditional into `count` outputs and update
        the resources passed in from the values that follow them."""
        outs = [self.hlo.gte(result, i) for i in range(count)]
        for i, res in enumerate(built.resources):
            self.var_values[res.key] = self.hlo.gte(result, count + i)
        return outs


def guarded(where: str, fn: Callable[[], T]) -> T:
    """`fn()`, with errors prefixed by `where` (TfcompileErrors keep their class; Python
    errors from malformed graphs become ImportGraphError)."""
    try:
        return fn()
    except TfcompileError as e:
        text = str(e)
        if text.startswith(where):
            raise
        raise type(e)(f"{where}: {text}") from e
    except (ValueError, TypeError, IndexError, KeyError, ArithmeticError, MemoryError) as e:
        raise ImportGraphError(f"{where}: {type(e).__name__}: {e}") from e


def lower_with_context(op: TfOp, ctx: NodeCtx) -> list[Value]:
    """Run one lowering; errors name the node (and keep their class)."""
    out = guarded(f"{ctx.scope.graph.name}: {ctx.node}", lambda: op.lower(ctx))
    if out is None:
        return []
    if isinstance(out, (HloInstruction, Resource)):
        return [out]
    return list(out)


_MISSING = object()


class NodeCtx:
    """What a lowering sees of its node: inputs, attributes, the emitter, errors."""

    def __init__(self, scope: Scope, node: TfNode) -> None:
        self.scope = scope
        self.node = node
        self.hlo = scope.hlo

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def num_inputs(self) -> int:
        return len(self.node.inputs)

    def error(self, message: str) -> ImportGraphError:
        return ImportGraphError(message)

    # --- inputs -------------------------------------------------------------------------------
    def raw_input(self, i: int) -> Value:
        if not 0 <= i < len(self.node.inputs):
            raise ImportGraphError(f"needs input {i}, has {len(self.node.inputs)}")
        return self.scope.value(self.node.inputs[i])

    def input(self, i: int) -> Instr:
        """Data input `i` as an instruction (a variable input is read)."""
        v = self.raw_input(i)
        if isinstance(v, Resource):
            return self.scope.read_var(v)
        if v is None:
            raise ImportGraphError(f"input {i} ({self.node.inputs[i]}) has no value")
        return v

    def inputs(self, start: int = 0, stop: int | None = None) -> list[Instr]:
        stop = len(self.node.inputs) if stop is None else stop
        return [self.input(i) for i in range(start, stop)]

    def expect_inputs(self, count: int) -> None:
        if len(self.node.inputs) != count:
            raise ImportGraphError(f"takes {count} input(s), has {len(self.node.inputs)}")

    def const_input(self, i: int, what: str = "") -> np.ndarray:
        """Input `i` as a compile-time constant (folded from Const, Shape, arithmetic...)."""
        x = self.input(i)
        value = self.hlo.constant_value(x)
        if value is None:
            label = what or f"input {i}"
            raise ImportGraphError(
                f"{label} ({self.node.inputs[i]}) must be a compile-time constant, but it "
                "depends on a feed, a variable or a loop/branch value"
            )
        return value

    def const_ints(self, i: int, what: str = "") -> list[int]:
        value = self.const_input(i, what)
        if value.dtype.kind not in "iu":
            raise ImportGraphError(f"{what or f'input {i}'} must hold integers, got {value.dtype}")
        return [int(v) for v in value.reshape(-1)]

    # --- attributes ---------------------------------------------------------------------------
    def has_attr(self, name: str) -> bool:
        return name in self.node.attr

    def attr(self, name: str, default: Any = _MISSING) -> Any:
        """Attribute `name` as a Python value (bytes as str, types as DataType numbers,
        shapes as dim tuples, tensors as arrays, lists as lists)."""
        if name not in self.node.attr:
            if default is _MISSING:
                raise ImportGraphError(f"missing attribute {name!r}")
            return default
        value = self.node.attr[name]
        kind = value.WhichOneof("value")
        where = f"attribute {name!r}"
        if kind == "s":
            return value.s.decode("utf-8", "replace")
        if kind in ("i", "f", "b", "type"):
            return getattr(value, kind)
        if kind == "shape":
            return shape_dims(value.shape, where, allow_unknown=True)
        if kind == "tensor":
            return tensor_to_array(value.tensor, where)
        if kind == "func":
            return value.func.name
        if kind == "list":
            lst = value.list
            for f in ("s", "i", "f", "b", "type", "shape", "tensor", "func"):
                items = getattr(lst, f)
                if len(items):
                    if f == "s":
                        return [s.decode("utf-8", "replace") for s in items]
                    if f == "shape":
                        return [shape_dims(s, where, allow_unknown=True) for s in items]
                    if f == "tensor":
                        return [tensor_to_array(t, where) for t in items]
                    if f == "func":
                        return [fn.name for fn in items]
                    return list(items)
            return []
        if default is not _MISSING:
            return default
        raise ImportGraphError(f"{where} has no value")

    def _typed(self, name: str, default: Any, types: tuple[type, ...], what: str) -> Any:
        v = self.attr(name, default)
        if v is default and default is not _MISSING:
            return v
        if not isinstance(v, types) or (bool not in types and isinstance(v, bool)):
            raise ImportGraphError(f"attribute {name!r} must be {what}, got {v!r}")
        return v

    def str_attr(self, name: str, default: Any = _MISSING) -> str:
        return str(self._typed(name, default, (str,), "a string"))

    def func_attr(self, name: str) -> str:
        """The function named by attribute `name` (a `func` value)."""
        if name not in self.node.attr or self.node.attr[name].WhichOneof("value") != "func":
            raise ImportGraphError(f"attribute {name!r} must name a function")
        return str(self.node.attr[name].func.name)

    def bool_attr(self, name: str, default: Any = _MISSING) -> bool:
        return bool(self._typed(name, default, (bool,), "a bool"))

    def float_attr(self, name: str, default: Any = _MISSING) -> float:
        return float(self._typed(name, default, (float, int), "a number"))

    def tensor_attr(self, name: str) -> np.ndarray:
        value = self._typed(name, _MISSING, (np.ndarray,), "a tensor")
        assert isinstance(value, np.ndarray)
        return value

    def int_attr(self, name: str, default: Any = _MISSING) -> int:
        v = self.attr(name, default)
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise ImportGraphError(f"attribute {name!r} must be an int, got {v!r}")
        return int(v)

    def ints_attr(self, name: str, default: Any = _MISSING) -> list[int]:
        v = self.attr(name, default)
        if not isinstance(v, list) or not all(isinstance(i, int) for i in v):
            raise ImportGraphError(f"attribute {name!r} must be a list of ints, got {v!r}")
        return [int(i) for i in v]

    def type_attr(self, name: str, default: Any = _MISSING) -> PrimitiveType:
        v = self.attr(name, default)
        if isinstance(v, PrimitiveType):
            return v
        if not isinstance(v, int) or isinstance(v, bool):
            raise ImportGraphError(f"attribute {name!r} must be a data type")
        return element_type(v, f"attribute {name!r}")

