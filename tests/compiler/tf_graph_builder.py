"""A small GraphDef builder for importer tests: write TF graphs by hand, run them.

    g = GraphBuilder()
    x = g.feed(np.float32([1, 2]))
    y = g.op("Mul", x, g.const(np.float32(3)), T=np.float32)
    (out,) = g.run(y)

`run` imports the graph with a config feeding every `feed` (in order) and fetching the
given tensors ("node" or "node:i"), evaluates it with the reference evaluator and returns
the results (fetches, then updated variables).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import hlo
from compiler.frontends import import_graph_def
from compiler.frontends.tf_proto import graph_pb2, tf2xla_pb2

DTYPES: dict[Any, int] = {
    np.dtype(np.float32): graph_pb2.DT_FLOAT,
    np.dtype(np.float64): graph_pb2.DT_DOUBLE,
    np.dtype(np.float16): graph_pb2.DT_HALF,
    np.dtype(np.int32): graph_pb2.DT_INT32,
    np.dtype(np.int64): graph_pb2.DT_INT64,
    np.dtype(np.int16): graph_pb2.DT_INT16,
    np.dtype(np.int8): graph_pb2.DT_INT8,
    np.dtype(np.uint8): graph_pb2.DT_UINT8,
    np.dtype(np.bool_): graph_pb2.DT_BOOL,
}


def dt(dtype: Any) -> int:
    return DTYPES[np.dtype(dtype)]


@dataclass(frozen=True)
class Func:
    """An attribute value naming a library function."""

    name: str


@dataclass(frozen=True)
class TShape:
    """An attribute value that is a shape (None dims are unknown)."""

    dims: tuple[int | None, ...] | None


def tensor_proto(value: np.ndarray, out: Any) -> None:
    out.dtype = dt(value.dtype)
    for d in value.shape:
        out.tensor_shape.dim.add(size=d)
    out.tensor_content = np.ascontiguousarray(value).tobytes()


def set_attr(attr: Any, value: Any) -> None:
    if isinstance(value, bool):
        attr.b = value
    elif isinstance(value, int):
        attr.i = value
    elif isinstance(value, float):
        attr.f = value
    elif isinstance(value, str):
        attr.s = value.encode()
    elif isinstance(value, Func):
        attr.func.name = value.name
    elif isinstance(value, TShape):
        if value.dims is None:
            attr.shape.unknown_rank = True
        else:
            for d in value.dims:
                attr.shape.dim.add(size=-1 if d is None else d)
    elif isinstance(value, (np.ndarray, np.generic)):
        tensor_proto(np.asarray(value), attr.tensor)
    elif isinstance(value, list):
        if value and all(isinstance(v, str) for v in value):
            attr.list.s.extend(v.encode() for v in value)
        elif value and all(isinstance(v, float) for v in value):
            attr.list.f.extend(value)
        elif all(isinstance(v, int) for v in value):
            attr.list.i.extend(value)
        else:
            attr.list.type.extend(dt(v) for v in value)
    else:
        attr.type = dt(value)


class GraphBuilder:
    """Builds a GraphDef, its feeds and a library of functions."""

    def __init__(self) -> None:
        self.graph = graph_pb2.GraphDef()
        self.feeds: list[tuple[str, np.ndarray]] = []
        self.variables: list[tuple[str, np.ndarray, bool]] = []
        self._count = 0

    def _name(self, op: str) -> str:
        self._count += 1
        return f"{op.lower()}_{self._count}"

    def op(self, op: str, *inputs: str, name: str | None = None,
           controls: tuple[str, ...] = (), **attrs: Any) -> str:
        node = self.graph.node.add(name=name or self._name(op), op=op)
        node.input.extend(inputs)
        node.input.extend(f"^{c}" for c in controls)
        for key, value in attrs.items():
            set_attr(node.attr[key], value)
        return node.name

    def const(self, value: Any, dtype: Any = None, name: str | None = None) -> str:
        array = np.asarray(value, dtype=dtype)
        return self.op("Const", name=name, dtype=array.dtype, value=array)

    def feed(self, value: np.ndarray, name: str | None = None) -> str:
        value = np.asarray(value)
        n = self.op("Placeholder", name=name, dtype=value.dtype,
                    shape=TShape(tuple(None for _ in value.shape)))
        self.feeds.append((n, value))
        return n

    def variable(self, value: np.ndarray, name: str, readonly: bool = False,
                 ref: bool = False) -> str:
        value = np.asarray(value)
        op = "VariableV2" if ref else "VarHandleOp"
        n = self.op(op, name=name, dtype=value.dtype, shape=TShape(value.shape))
        self.variables.append((n, value, readonly))
        return n

    def function(self, name: str, args: list[tuple[str, Any]], rets: list[tuple[str, Any, str]],
                 body: list[tuple[str, str, list[str], dict[str, Any]]]) -> Func:
        """Add library function `name`: args (name, dtype), rets (name, dtype, tensor) and
        body nodes (name, op, inputs in function syntax, attrs)."""
        f = self.graph.library.function.add()
        f.signature.name = name
        for arg, dtype in args:
            a = f.signature.input_arg.add(name=arg)
            a.type = graph_pb2.DT_RESOURCE if dtype == "resource" else dt(dtype)
        for ret, dtype, tensor in rets:
            r = f.signature.output_arg.add(name=ret)
            r.type = graph_pb2.DT_RESOURCE if dtype == "resource" else dt(dtype)
            f.ret[ret] = tensor
        for node_name, op, inputs, attrs in body:
            nd = f.node_def.add(name=node_name, op=op)
            nd.input.extend(inputs)
            for key, value in attrs.items():
                set_attr(nd.attr[key], value)
        return Func(name)

    def config(self, fetches: tuple[str, ...]) -> Any:
        config = tf2xla_pb2.Config()
        for node, value in self.feeds:
            feed = config.feed.add()
            feed.id.node_name = node
            for d in value.shape:
                feed.shape.dim.add(size=d)
        for tensor in fetches:
            node, _, index = tensor.partition(":")
            fetch = config.fetch.add()
            fetch.id.node_name = node
            fetch.id.output_index = int(index or 0)
        for node, value, readonly in self.variables:
            var = config.variable.add(node_name=node, readonly=readonly)
            var.type = dt(value.dtype)
            for d in value.shape:
                var.shape.dim.add(size=d)
        return config

    def module(self, *fetches: str) -> hlo.HloModule:
        return import_graph_def(self.graph, self.config(fetches), "test_graph")

    def run(self, *fetches: str) -> list[np.ndarray]:
        module = self.module(*fetches)
        args = [v for _, v in self.feeds] + [v for _, v, _ in self.variables]
        return list(hlo.evaluate(module, *args))
