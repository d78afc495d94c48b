"""Import a TensorFlow GraphDef with a tfcompile config into an HloModule.

The driver: validates the config against the graph (feeds, fetches and variables name
existing nodes; shapes are fully known; types are known), reports every unsupported op of
the pruned graph at once, then builds the entry computation the way tfcompile lays it out
(parameters: feeds then variables, in config order; result tuple: fetches then the final
values of the variables that are not readonly) and records the signature the generated
header needs as `module.attrs["tf_signature"]`. Lowering itself is `tf_scope.py` and the
`tf_ops*.py` table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compiler.frontends import tf_ops
from compiler.frontends.tf_graphdef import (
    TensorRef,
    TfGraph,
    TfNode,
    element_type,
    read_config,
    read_graph,
    shape_dims,
)
from compiler.frontends.tf_hlo import ModuleState
from compiler.frontends.tf_ops import TfOp
from compiler.frontends.tf_scope import Resource, Scope
from hlo.dtypes import PrimitiveType
from hlo.errors import ImportGraphError, UnsupportedOpError
from hlo.instruction import HloInstruction
from hlo.module import HloModule
from hlo.shape import Shape


@dataclass(frozen=True, slots=True)
class TfTensor:
    """A feed or fetch: accessor `name`, the tensor `node:output_index`, its type."""

    name: str
    node: str
    output_index: int
    element_type: PrimitiveType
    dims: tuple[int, ...]

    def text(self) -> str:
        return f"{self.name}:{self.element_type.value}[{','.join(map(str, self.dims))}]"


@dataclass(frozen=True, slots=True)
class TfVariable:
    """A config variable: an argument after the feeds; unless `readonly`, also a result
    after the fetches (its value after the run)."""

    name: str
    node: str
    element_type: PrimitiveType
    dims: tuple[int, ...]
    readonly: bool

    def text(self) -> str:
        ro = "(readonly)" if self.readonly else ""
        return f"{self.name}:{self.element_type.value}[{','.join(map(str, self.dims))}]{ro}"


@dataclass(frozen=True, slots=True)
class TfSignature:
    """The argument and result layout of an imported graph, for header generation.

    `args` is feeds then variables; `results` is fetches then updated variables (those not
    readonly), each in config order, as tfcompile numbers them.
    """

    feeds: tuple[TfTensor, ...]
    fetches: tuple[TfTensor, ...]
    variables: tuple[TfVariable, ...]

    @property
    def args(self) -> tuple[TfTensor | TfVariable, ...]:
        return (*self.feeds, *self.variables)

    @property
    def results(self) -> tuple[TfTensor | TfVariable, ...]:
        return (*self.fetches, *(v for v in self.variables if not v.readonly))

    def __str__(self) -> str:
        # Printed in the HLO module header: brace-balanced, deterministic, no quotes.
        def group(items: Iterable[Any]) -> str:
            return "{" + ",".join(i.text() for i in items) + "}"

        return (f"{{feeds={group(self.feeds)} fetches={group(self.fetches)} "
                f"variables={group(self.variables)}}}")


_IDENT = re.compile(r"[^A-Za-z0-9_]")


def identifier(text: str, fallback: str) -> str:
    """`text` as a C/HLO identifier (other characters become '_')."""
    out = _IDENT.sub("_", text)
    if not out or not (out[0].isalpha() or out[0] == "_"):
        out = f"{fallback}_{out}"
    return out


class Importer:
    """State of one import: the graph, its library, the config, the module being built."""

    def __init__(self, graph_def: Any, config: Any, name: str = "tf_graph") -> None:
        tf_ops.load()
        self.graph_def = graph_def
        self.config = config
        self.name = identifier(name, "graph")
        self.library: dict[str, Any] = {}
        for f in graph_def.library.function:
            fname = f.signature.name
            if not fname or fname in self.library:
                raise ImportGraphError(f"library: missing or duplicate function name {fname!r}")
            self.library[fname] = f
        self.graph = TfGraph.from_graph_def(graph_def)
        self._function_graphs: dict[str, TfGraph] = {}
        self._call_ops: dict[str, TfOp] = {}
        self.signature = self._signature()
        self.variables: dict[str, TfVariable] = {v.node: v for v in self.signature.variables}
        self.assigned: set[str] = set()
        self.call_stack: list[str] = []
        self.module = HloModule(self.name)
        self.state = ModuleState(self.module)

    # --- lookups ------------------------------------------------------------------------------
    def lookup(self, op: str) -> TfOp | None:
        """The table row for `op`, or a call row when `op` names a library function."""
        row = tf_ops.TF_OPS.get(op)
        if row is not None:
            return row
        if op in self.library:
            found = self._call_ops.get(op)
            if found is None:
                from compiler.frontends.tf_ops_control import lower_function_call

                outs = tuple(a.name for a in self.library[op].signature.output_arg)
                found = TfOp(lower_function_call, outs)
                self._call_ops[op] = found
            return found
        return None

    def output_index(self, op: str, arg: str, index: int) -> int | None:
        pos = tf_ops.output_position(op, arg)
        if pos is None and op in self.library:
            names = [a.name for a in self.library[op].signature.output_arg]
            pos = names.index(arg) if arg in names else None
        return None if pos is None else pos + index

    def function_graph(self, name: str) -> TfGraph:
        found = self._function_graphs.get(name)
        if found is None:
            fdef = self.library.get(name)
            if fdef is None:
                raise ImportGraphError(f"the graph's library has no function {name!r}")
            found = TfGraph.from_function(fdef, self.output_index)
            self._function_graphs[name] = found
        return found

    # --- config -------------------------------------------------------------------------------
    def _config_node(self, name: str, what: str) -> TfNode:
        if not name:
            raise ImportGraphError(f"config: {what} has no node_name")
        node = self.graph.nodes.get(name)
        if node is None:
            raise ImportGraphError(f"config: {what} names node {name!r}, which is not in the graph")
        return node

    def _signature(self) -> TfSignature:
        feeds: list[TfTensor] = []
        seen_feeds: set[TensorRef] = set()
        for i, feed in enumerate(self.config.feed):
            what = f"feed #{i}"
            node = self._config_node(feed.id.node_name, what)
            ref = TensorRef(node.name, int(feed.id.output_index))
            if ref.index < 0:
                raise ImportGraphError(f"config: {what} has a negative output_index")
            if ref in seen_feeds:
                raise ImportGraphError(f"config: tensor {ref} is fed twice")
            seen_feeds.add(ref)
            # An absent shape is the empty TensorShapeProto: a scalar.
            dims = shape_dims(feed.shape, f"config: {what} ({ref})")
            assert dims is not None
            etype = self._feed_type(feed, node, ref, what)
            self._check_placeholder_shape(node, dims, what)
            feeds.append(TfTensor(feed.name or node.name, node.name, ref.index, etype, dims))
        if not self.config.fetch:
            raise ImportGraphError("config: no fetch; at least one result is needed")
        fetches: list[TfTensor] = []
        for i, fetch in enumerate(self.config.fetch):
            what = f"fetch #{i}"
            node = self._config_node(fetch.id.node_name, what)
            if fetch.id.output_index < 0:
                raise ImportGraphError(f"config: {what} has a negative output_index")
            # Types and shapes of fetches are known only after lowering; filled in later.
            fetches.append(TfTensor(fetch.name or node.name, node.name,
                                    int(fetch.id.output_index), PrimitiveType.F32, ()))
        variables: list[TfVariable] = []
        for i, var in enumerate(self.config.variable):
            what = f"variable #{i}"
            node = self._config_node(var.node_name, what)
            if node.op not in ("VarHandleOp", "VariableV2", "Variable"):
                raise ImportGraphError(
                    f"config: {what} names {node}, which is not a variable (VarHandleOp)"
                )
            if any(v.node == node.name for v in variables):
                raise ImportGraphError(f"config: variable {node.name!r} is listed twice")
            if var.HasField("shape"):
                dims = shape_dims(var.shape, f"config: {what}")
            else:
                dims = shape_dims(node.attr["shape"].shape, f"config: {what} (node shape)")
            assert dims is not None
            dtype = var.type if var.type else node.attr["dtype"].type
            etype = element_type(dtype, f"config: {what}")
            variables.append(TfVariable(var.name or node.name, node.name, etype, dims,
                                        bool(var.readonly)))
        return TfSignature(tuple(feeds), tuple(fetches), tuple(variables))

    def _feed_type(self, feed: Any, node: TfNode, ref: TensorRef, what: str) -> PrimitiveType:
        if feed.type:
            return element_type(feed.type, f"config: {what}")
        for key in ("dtype", "T") if ref.index == 0 else ("dtype",):
            if key in node.attr and node.attr[key].WhichOneof("value") == "type":
                return element_type(node.attr[key].type, f"config: {what} ({node})")
        raise ImportGraphError(
            f"config: {what}: cannot tell the type of {ref} ({node.op}); set 'type' in the feed"
        )

    @staticmethod
    def _check_placeholder_shape(node: TfNode, dims: tuple[int, ...], what: str) -> None:
        if node.op not in ("Placeholder", "PlaceholderWithDefault") or "shape" not in node.attr:
            return
        declared = shape_dims(node.attr["shape"].shape, f"{node}", allow_unknown=True)
        if declared is None:
            return
        if len(declared) != len(dims) or any(
            d != -1 and d != g for d, g in zip(declared, dims, strict=True)
        ):
            raise ImportGraphError(
                f"config: {what} gives shape {list(dims)}, but {node} has shape {list(declared)}"
            )

    # --- pruning and support check ------------------------------------------------------------
    def _fed(self) -> set[TensorRef]:
        return {TensorRef(f.node, f.output_index) for f in self.signature.feeds}

    def needed_nodes(self) -> list[TfNode]:
        """The nodes the fetches need, in graph order: data edges are cut at fed tensors and
        control edges at fed nodes, as the emission driver does."""
        fed = {TensorRef(f.node, f.output_index) for f in self.signature.feeds}
        fed_nodes = {f.node for f in self.signature.feeds}
        stack = [f.node for f in self.signature.fetches
                 if TensorRef(f.node, f.output_index) not in fed]
        seen: set[str] = set()
        while stack:
            name = stack.pop()
            if name in seen or name not in self.graph.nodes:
                continue
            seen.add(name)
            node = self.graph.nodes[name]
            stack.extend(r.node for r in node.inputs if r not in fed)
            stack.extend(c for c in node.controls if c not in fed_nodes)
        return sorted((self.graph.nodes[n] for n in seen), key=lambda n: n.order)

    def unsupported(self) -> list[tuple[str, str]]:
        """(node, op) of every op in the pruned graph and the functions it calls that the
        table cannot lower; function nodes are named "function/node"."""
        missing: list[tuple[str, str]] = []
        todo: list[str] = []
        for node in self.needed_nodes():
            if self.lookup(node.op) is None:
                missing.append((node.name, node.op))
            todo.extend(self._called_functions(node))
        done: set[str] = set()
        while todo:
            fname = todo.pop()
            if fname in done or fname not in self.library:
                continue
            done.add(fname)
            for nd in self.library[fname].node_def:
                if self.lookup(nd.op) is None:
                    missing.append((f"{fname}/{nd.name}", nd.op))
                if nd.op in self.library:
                    todo.append(nd.op)
                todo.extend(_func_attrs(nd.attr))
        return missing

    def _called_functions(self, node: TfNode) -> list[str]:
        names = _func_attrs(node.attr)
        if node.op in self.library:
            names.append(node.op)
        return names

    # --- building -----------------------------------------------------------------------------
    def build(self) -> HloModule:
        missing = self.unsupported()
        if missing:
            listed = ", ".join(f"{n} ({op})" for n, op in missing)
            ops = sorted({op for _, op in missing})
            raise UnsupportedOpError(
                f"the graph uses {len(missing)} node(s) with unsupported ops "
                f"[{', '.join(ops)}]: {listed}"
            )
        comp = self.module.new_computation(self.name, entry=True)
        scope = Scope(self, self.graph, comp)
        number = 0
        for feed in self.signature.feeds:
            p = scope.hlo.parameter(number, Shape.array(feed.element_type, feed.dims),
                                    identifier(feed.name, "arg"))
            scope.bind(TensorRef(feed.node, feed.output_index), p)
            number += 1
        for var in self.signature.variables:
            p = scope.hlo.parameter(number, Shape.array(var.element_type, var.dims),
                                    identifier(var.name, "var"))
            scope.var_values[var.node] = p
            number += 1
        results: list[HloInstruction] = []
        fetches: list[TfTensor] = []
        for fetch in self.signature.fetches:
            ref = TensorRef(fetch.node, fetch.output_index)
            value = scope.value(ref)
            if isinstance(value, Resource):
                if not value.is_ref:
                    raise ImportGraphError(
                        f"config: fetch {ref} is a variable handle, not a tensor"
                    )
                value = scope.read_var(value)
            if value is None:
                raise ImportGraphError(f"config: fetch {ref} has no value (a control-only node)")
            results.append(value)
            fetches.append(TfTensor(fetch.name, fetch.node, fetch.output_index,
                                    value.shape.element_type, value.shape.dims))
        for var in self.signature.variables:
            if var.readonly:
                if var.node in self.assigned:
                    raise ImportGraphError(
                        f"config: variable {var.name!r} is readonly, but the graph assigns it"
                    )
                continue
            results.append(scope.var_values[var.node])
        comp.set_root(scope.hlo.tuple(results))
        self.module.remove_unreachable_computations()
        for c in self.module.computations:
            c.remove_dead()
        self.signature = TfSignature(self.signature.feeds, tuple(fetches),
                                     self.signature.variables)
        self.module.attrs["tf_signature"] = self.signature
        return self.module


def _func_attrs(attrs: Any) -> list[str]:
    """Names of functions referenced by attribute values (f, then_branch, body, ...)."""
    names: list[str] = []
    for value in attrs.values():
        kind = value.WhichOneof("value")
        if kind == "func":
            names.append(value.func.name)
        elif kind == "list":
            names.extend(f.name for f in value.list.func)
    return names


def import_graph_def(graph_def: Any, config: Any, name: str = "tf_graph") -> HloModule:
    """Import a GraphDef message with a tfcompile Config message (see module doc)."""
    return Importer(graph_def, config, name).build()


def import_graph(graph_path: str | Path, config_path: str | Path) -> HloModule:
    """Import the graph in `graph_path` (.pb or .pbtxt) with the tfcompile config in
    `config_path` (text or binary).

    Raises:
        ImportGraphError: unreadable or malformed files, a config that does not fit the graph.
        UnsupportedOpError: ops without a lowering (all of them, listed at once).
        ShapeError: operands whose shapes do not fit an op.
    """
    graph = read_graph(graph_path)
    config = read_config(config_path)
    return import_graph_def(graph, config, Path(graph_path).stem)


def check_graph(graph_path: str | Path, config_path: str | Path) -> list[tuple[str, str]]:
    """The (node, op) pairs of the pruned graph (and its functions) that cannot be lowered;
    empty when the graph is supported. Malformed inputs raise ImportGraphError."""
    graph = read_graph(graph_path)
    config = read_config(config_path)
    return Importer(graph, config, Path(graph_path).stem).unsupported()
