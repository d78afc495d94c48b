"""Reading TensorFlow GraphDefs and tfcompile configs, and the graph model the importer uses.

This file's one job is to turn files into checked, indexed data: `read_graph` and
`read_config` decode binary or text protobufs (errors become ImportGraphError naming the
file and the cause), `TfGraph` indexes the nodes of a GraphDef or of one library function
(inputs parsed into `TensorRef`s and control edges), and answers the one structural
question v1 control flow needs: in which control-flow context (`Frame` stack of cond
branches and loop frames) does a node live. It does not lower anything to HLO; that is
`tf_scope.py` (the emission driver) and the `tf_ops*.py` rule table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import message as pb_message
from google.protobuf import text_format

from compiler.frontends.tf_proto import graph_pb2, tf2xla_pb2
from hlo.dtypes import PrimitiveType
from hlo.errors import ImportGraphError

GraphDef = graph_pb2.GraphDef
NodeDef = graph_pb2.NodeDef
FunctionDef = graph_pb2.FunctionDef
Config = tf2xla_pb2.Config

# TensorFlow DataType enum value -> our element type; the one table for that mapping.
DATA_TYPES: Mapping[int, PrimitiveType] = {
    graph_pb2.DT_FLOAT: PrimitiveType.F32,
    graph_pb2.DT_DOUBLE: PrimitiveType.F64,
    graph_pb2.DT_INT32: PrimitiveType.S32,
    graph_pb2.DT_UINT8: PrimitiveType.U8,
    graph_pb2.DT_INT16: PrimitiveType.S16,
    graph_pb2.DT_INT8: PrimitiveType.S8,
    graph_pb2.DT_COMPLEX64: PrimitiveType.C64,
    graph_pb2.DT_INT64: PrimitiveType.S64,
    graph_pb2.DT_BOOL: PrimitiveType.PRED,
    graph_pb2.DT_BFLOAT16: PrimitiveType.BF16,
    graph_pb2.DT_UINT16: PrimitiveType.U16,
    graph_pb2.DT_COMPLEX128: PrimitiveType.C128,
    graph_pb2.DT_HALF: PrimitiveType.F16,
    graph_pb2.DT_UINT32: PrimitiveType.U32,
    graph_pb2.DT_UINT64: PrimitiveType.U64,
}
_REF_OFFSET = 100  # DT_FLOAT_REF = DT_FLOAT + 100, ...


def data_type_name(value: int) -> str:
    """The DataType enum name of `value` (or the number, for values our schema lacks)."""
    try:
        return str(graph_pb2.DataType.Name(value))
    except ValueError:
        return str(value)


def element_type(value: int, what: str) -> PrimitiveType:
    """Our element type for a DataType value; reference types count as their value type.

    Raises:
        ImportGraphError: the type has no HLO element type (strings, resources, ...).
    """
    base = value - _REF_OFFSET if value > _REF_OFFSET else value
    found = DATA_TYPES.get(base)
    if found is None:
        raise ImportGraphError(f"{what}: data type {data_type_name(value)} is not supported")
    return found


# --- reading files ----------------------------------------------------------------------------

_TEXT_SUFFIXES = (".pbtxt", ".txt", ".prototxt", ".textproto")


def _parse(path: str | Path, msg: pb_message.Message, what: str) -> None:
    """Fill `msg` from a binary or text protobuf file, chosen by suffix then by content."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ImportGraphError(f"cannot read {what} {str(p)!r}: {e.strerror or e}") from None
    as_text = p.suffix.lower() in _TEXT_SUFFIXES
    errors: list[str] = []
    for text_first in ((True, False) if as_text else (False, True)):
        msg.Clear()
        try:
            if text_first:
                text_format.Parse(data.decode("utf-8"), msg)
            else:
                msg.ParseFromString(data)
            return
        except (text_format.ParseError, pb_message.DecodeError, UnicodeDecodeError) as e:
            kind = "text" if text_first else "binary"
            errors.append(f"as {kind} protobuf: {e}")
        except (ValueError, TypeError, RuntimeError, OverflowError) as e:
            kind = "text" if text_first else "binary"
            errors.append(f"as {kind} protobuf: {type(e).__name__}: {e}")
    raise ImportGraphError(
        f"{what} {str(p)!r} is not a valid {msg.DESCRIPTOR.name} ({'; '.join(errors)})"
    )


def read_graph(path: str | Path) -> Any:
    """The GraphDef in `path` (binary `.pb`, or text `.pbtxt`)."""
    graph = GraphDef()
    _parse(path, graph, "graph")
    return graph


def read_config(path: str | Path) -> Any:
    """The tfcompile config (tensorflow.tf2xla.Config) in `path`, text or binary."""
    config = Config()
    _parse(path, config, "config")
    return config


# --- tensors and nodes ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TensorRef:
    """Output `index` of node `node` ("node:index" in GraphDef inputs)."""

    node: str
    index: int = 0

    def __str__(self) -> str:
        return f"{self.node}:{self.index}"


@dataclass(slots=True)
class TfNode:
    """One node: op, data inputs, control inputs (node names) and attributes."""

    name: str
    op: str
    inputs: list[TensorRef]
    controls: list[str]
    attr: Any  # map<string, AttrValue> of the NodeDef
    order: int  # position in the graph, for stable orders and messages

    def __str__(self) -> str:
        return f"node {self.name!r} ({self.op})"


def parse_graph_input(text: str, where: str) -> tuple[TensorRef | None, str | None]:
    """A GraphDef input string as (data ref, None) or (None, control node name)."""
    if text.startswith("^"):
        if len(text) == 1:
            raise ImportGraphError(f"{where}: empty control input '^'")
        return None, text[1:]
    name, sep, index = text.rpartition(":")
    if not sep:
        if not text:
            raise ImportGraphError(f"{where}: empty input name")
        return TensorRef(text, 0), None
    if not index.isdigit() or not name:
        raise ImportGraphError(f"{where}: malformed input {text!r} (expected 'node:index')")
    return TensorRef(name, int(index)), None


# --- v1 control-flow contexts -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CondFrame:
    """Inside branch `branch` (0 = false, 1 = true) of the Switches on predicate `pred`."""

    pred: TensorRef
    branch: int


@dataclass(frozen=True, slots=True)
class LoopFrame:
    """Inside the v1 while loop whose Enter nodes carry `frame_name`."""

    name: str


Frame = CondFrame | LoopFrame
Context = tuple[Frame, ...]

# Ops that only forward their single input; followed to find a Switch's real predicate.
_FORWARDING = frozenset({"Identity", "Snapshot", "StopGradient"})


class TfGraph:
    """The nodes of a GraphDef or of one library function, indexed by name.

    Function bodies are normalised to GraphDef form: each input argument becomes a node
    of op `_Arg` (attribute-free; `arg_index` gives its position), and inputs written
    "node:out_arg:i" are resolved to flat output indices with `output_index`.

    Args:
        name: for messages ("graph" or "function 'f'").
        nodes: the node list in file order.
        args: names of `_Arg` nodes, in signature order (functions only).
        outputs: result tensors, in signature order (functions only).
        control_outputs: nodes a function must run (its control_ret), in order.
    """

    def __init__(
        self,
        name: str,
        nodes: Sequence[TfNode],
        args: Sequence[str] = (),
        outputs: Sequence[TensorRef] = (),
        control_outputs: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.nodes: dict[str, TfNode] = {}
        for n in nodes:
            if n.name in self.nodes:
                raise ImportGraphError(f"{name}: two nodes are named {n.name!r}")
            self.nodes[n.name] = n
        self.args = tuple(args)
        self.outputs = tuple(outputs)
        self.control_outputs = tuple(control_outputs)
        self._contexts: dict[str, Context] = {}
        self._consumers: dict[str, list[tuple[str, int]]] | None = None

    # --- construction -------------------------------------------------------------------------
    @staticmethod
    def from_graph_def(graph: Any) -> TfGraph:
        nodes = []
        for i, nd in enumerate(graph.node):
            if not nd.name:
                raise ImportGraphError(f"graph: node #{i} has no name")
            where = f"graph: node {nd.name!r}"
            inputs: list[TensorRef] = []
            controls: list[str] = []
            for text in nd.input:
                ref, control = parse_graph_input(text, where)
                if ref is not None:
                    if controls:
                        raise ImportGraphError(
                            f"{where}: data input {text!r} after a control input"
                        )
                    inputs.append(ref)
                else:
                    assert control is not None
                    controls.append(control)
            nodes.append(TfNode(nd.name, nd.op, inputs, controls, nd.attr, i))
        return TfGraph("graph", nodes)

    @staticmethod
    def from_function(
        fdef: Any, output_index: Callable[[str, str, int], int | None]
    ) -> TfGraph:
        """The body of library function `fdef`; `output_index(op, out_arg, i)` resolves
        "node:out_arg:i" to a flat output index (None when the op's outputs are unknown)."""
        sig = fdef.signature
        where = f"function {sig.name!r}"
        nodes: list[TfNode] = []
        args: list[str] = []
        for i, arg in enumerate(sig.input_arg):
            if not arg.name:
                raise ImportGraphError(f"{where}: input argument #{i} has no name")
            attr = graph_pb2.NodeDef().attr
            attr["T"].type = arg.type
            attr["arg_index"].i = i
            nodes.append(TfNode(arg.name, "_Arg", [], [], attr, i))
            args.append(arg.name)
        ops = {nd.name: nd.op for nd in fdef.node_def}
        arg_names = set(args)

        def resolve(text: str, whom: str) -> tuple[TensorRef | None, str | None]:
            if text.startswith("^"):
                return None, text[1:]
            parts = text.split(":")
            if len(parts) == 1:
                if parts[0] not in arg_names and parts[0] not in ops:
                    raise ImportGraphError(f"{whom}: unknown input {text!r}")
                return TensorRef(parts[0], 0), None
            if len(parts) == 2 and parts[0] in arg_names:
                if not parts[1].isdigit():
                    raise ImportGraphError(f"{whom}: malformed input {text!r}")
                return TensorRef(parts[0], int(parts[1])), None
            if len(parts) not in (2, 3) or parts[0] not in ops:
                raise ImportGraphError(f"{whom}: unknown or malformed input {text!r}")
            index = 0
            if len(parts) == 3:
                if not parts[2].isdigit():
                    raise ImportGraphError(f"{whom}: malformed input {text!r}")
                index = int(parts[2])
            flat = output_index(ops[parts[0]], parts[1], index)
            return TensorRef(parts[0], index if flat is None else flat), None

        for j, nd in enumerate(fdef.node_def):
            whom = f"{where}: node {nd.name!r}"
            if not nd.name or nd.name in arg_names:
                raise ImportGraphError(f"{whom}: missing or duplicate node name")
            inputs: list[TensorRef] = []
            controls: list[str] = []
            for text in nd.input:
                ref, control = resolve(text, whom)
                if ref is not None:
                    inputs.append(ref)
                else:
                    assert control is not None
                    controls.append(control)
            nodes.append(TfNode(nd.name, nd.op, inputs, controls, nd.attr, len(args) + j))
        outputs: list[TensorRef] = []
        for out in sig.output_arg:
            if out.name not in fdef.ret:
                raise ImportGraphError(f"{where}: output {out.name!r} has no 'ret' entry")
            ref, _ = resolve(fdef.ret[out.name], f"{where}: ret {out.name!r}")
            assert ref is not None
            outputs.append(ref)
        controls_out = [fdef.control_ret[c] for c in sig.control_output if c in fdef.control_ret]
        return TfGraph(where, nodes, args, outputs, controls_out)

    # --- queries ------------------------------------------------------------------------------
    def node(self, name: str, where: str = "") -> TfNode:
        found = self.nodes.get(name)
        if found is None:
            prefix = f"{where}: " if where else ""
            raise ImportGraphError(f"{prefix}{self.name} has no node named {name!r}")
        return found

    def consumers(self, name: str) -> list[tuple[str, int]]:
        """(consumer node, input position) pairs of data edges leaving node `name`."""
        if self._consumers is None:
            table: dict[str, list[tuple[str, int]]] = {}
            for n in self.nodes.values():
                for i, ref in enumerate(n.inputs):
                    table.setdefault(ref.node, []).append((n.name, i))
            self._consumers = table
        return self._consumers.get(name, [])

    # --- control-flow contexts ----------------------------------------------------------------
    def is_loop_switch(self, node: TfNode) -> bool:
        """A Switch of a v1 while loop (its predicate comes straight from a LoopCond)."""
        if node.op not in ("Switch", "RefSwitch") or len(node.inputs) != 2:
            return False
        pred = self.nodes.get(node.inputs[1].node)
        return pred is not None and pred.op == "LoopCond"

    def canonical(self, ref: TensorRef) -> TensorRef:
        """`ref` with forwarding ops (Identity, ...) skipped: a predicate's true source."""
        seen = 0
        while seen < len(self.nodes):
            node = self.nodes.get(ref.node)
            if node is None or node.op not in _FORWARDING or len(node.inputs) != 1:
                return ref
            ref = node.inputs[0]
            seen += 1
        return ref

    def _is_back_edge(self, node: TfNode, ref: TensorRef) -> bool:
        src = self.nodes.get(ref.node)
        return node.op == "Merge" and src is not None and src.op == "NextIteration"

    def context(self, name: str) -> Context:
        """The control-flow context node `name` runs in (empty outside v1 control flow)."""
        if name in self._contexts:
            return self._contexts[name]
        stack: list[tuple[str, bool]] = [(name, False)]
        on_path: set[str] = set()
        while stack:
            current, expanded = stack.pop()
            if current in self._contexts:
                continue
            node = self.node(current)
            if expanded:
                self._contexts[current] = self._node_context(node)
                on_path.discard(current)
                continue
            if current in on_path:
                raise ImportGraphError(
                    f"{self.name}: the graph has a cycle through {node} that is not a "
                    "v1 while loop (NextIteration -> Merge)"
                )
            on_path.add(current)
            stack.append((current, True))
            for dep in self._context_deps(node):
                if dep not in self._contexts:
                    stack.append((dep, False))
        return self._contexts[name]

    def _context_deps(self, node: TfNode) -> list[str]:
        deps = [r.node for r in node.inputs if not self._is_back_edge(node, r)]
        deps += node.controls
        for d in deps:
            self.node(d, str(node))
        return deps

    def out_context(self, ref: TensorRef) -> Context:
        """The context in which output `ref` is available (a cond Switch adds a branch)."""
        node = self.node(ref.node)
        ctx = self.context(ref.node)
        if node.op in ("Switch", "RefSwitch") and not self.is_loop_switch(node):
            if len(node.inputs) != 2 or ref.index > 1:
                raise ImportGraphError(f"{node}: a Switch has two inputs and two outputs")
            return (*ctx, CondFrame(self.canonical(node.inputs[1]), ref.index))
        return ctx

    def _node_context(self, node: TfNode) -> Context:
        if node.op in ("Enter", "RefEnter"):
            if len(node.inputs) != 1:
                raise ImportGraphError(f"{node}: Enter takes one input")
            frame = node.attr["frame_name"].s.decode("utf-8", "replace")
            return (*self.out_context(node.inputs[0]), LoopFrame(frame))
        if node.op in ("Exit", "RefExit"):
            if len(node.inputs) != 1:
                raise ImportGraphError(f"{node}: Exit takes one input")
            inner = self.out_context(node.inputs[0])
            if not inner or not isinstance(inner[-1], LoopFrame):
                raise ImportGraphError(f"{node}: Exit outside a while loop frame")
            return inner[:-1]
        if node.op in ("Merge", "RefMerge"):
            return self._merge_context(node)
        contexts = [self.out_context(r) for r in node.inputs]
        contexts += [self.context(c) for c in node.controls]
        deepest: Context = max(contexts, key=len, default=())
        for ctx in contexts:
            if deepest[: len(ctx)] != ctx:
                raise ImportGraphError(
                    f"{node}: its inputs come from different control-flow contexts "
                    "(branches of different conds or loops)"
                )
        return deepest

    def _merge_context(self, node: TfNode) -> Context:
        if not node.inputs:
            raise ImportGraphError(f"{node}: Merge needs inputs")
        sources = [self.node(r.node, str(node)) for r in node.inputs]
        if any(s.op in ("Enter", "RefEnter", "NextIteration") for s in sources):
            pairs = zip(node.inputs, sources, strict=True)
            entries = [r for r, s in pairs if s.op in ("Enter", "RefEnter")]
            if len(entries) != 1 or len(node.inputs) != 2:
                raise ImportGraphError(
                    f"{node}: a loop Merge needs one Enter and one NextIteration input"
                )
            return self.context(entries[0].node)
        outer: Context | None = None
        for r in node.inputs:
            ctx = self.out_context(r)
            if not ctx or not isinstance(ctx[-1], CondFrame):
                raise ImportGraphError(
                    f"{node}: input {r} does not come from a cond branch (Switch); only "
                    "Merges of tf.cond branches and while loops are supported"
                )
            if outer is not None and ctx[:-1] != outer:
                raise ImportGraphError(f"{node}: its inputs come from different conds")
            outer = ctx[:-1]
        assert outer is not None
        return outer


# --- tensors ----------------------------------------------------------------------------------

# Constants larger than this are refused: a corrupt shape must not exhaust memory.
MAX_CONSTANT_ELEMENTS = 1 << 28

# element type -> the TensorProto repeated field holding its values when tensor_content
# is empty (half and bfloat16 store bit patterns in half_val)
_VALUE_FIELDS: Mapping[PrimitiveType, str] = {
    PrimitiveType.F32: "float_val",
    PrimitiveType.F64: "double_val",
    PrimitiveType.S32: "int_val",
    PrimitiveType.S16: "int_val",
    PrimitiveType.S8: "int_val",
    PrimitiveType.U8: "int_val",
    PrimitiveType.U16: "int_val",
    PrimitiveType.S64: "int64_val",
    PrimitiveType.PRED: "bool_val",
    PrimitiveType.F16: "half_val",
    PrimitiveType.BF16: "half_val",
    PrimitiveType.U32: "uint32_val",
    PrimitiveType.U64: "uint64_val",
    PrimitiveType.C64: "scomplex_val",
    PrimitiveType.C128: "dcomplex_val",
}


def shape_dims(shape: Any, where: str, *, allow_unknown: bool = False) -> tuple[int, ...] | None:
    """The dimensions of a TensorShapeProto; None for unknown rank (when allowed).

    Unknown sizes (-1) are kept only when `allow_unknown`; otherwise ImportGraphError.
    """
    if shape.unknown_rank:
        if allow_unknown:
            return None
        raise ImportGraphError(f"{where}: the shape has unknown rank")
    dims = tuple(int(d.size) for d in shape.dim)
    for d in dims:
        if d < -1 or (d == -1 and not allow_unknown):
            raise ImportGraphError(
                f"{where}: dimension {d} in shape {list(dims)} is not a known size"
            )
    return dims


def tensor_to_array(tensor: Any, where: str) -> np.ndarray:
    """The value of a TensorProto as an ndarray of its element type."""
    etype = element_type(tensor.dtype, where)
    dims = shape_dims(tensor.tensor_shape, f"{where}: tensor_shape")
    assert dims is not None
    count = 1
    for d in dims:
        count *= d
    if count > MAX_CONSTANT_ELEMENTS:
        raise ImportGraphError(f"{where}: constant of shape {list(dims)} is too large")
    dtype = etype.numpy
    if tensor.tensor_content:
        data = tensor.tensor_content
        width = dtype.itemsize
        if len(data) != count * width:
            raise ImportGraphError(
                f"{where}: tensor_content has {len(data)} bytes, shape {list(dims)} of "
                f"{etype.value} needs {count * width}"
            )
        if etype is PrimitiveType.PRED:
            flat = np.frombuffer(data, dtype=np.uint8) != 0
        else:
            # tensor_content is little-endian, as are all hosts this project targets.
            flat = np.frombuffer(data, dtype=dtype).copy()
        content: np.ndarray = flat.reshape(dims)
        return content
    field = _VALUE_FIELDS[etype]
    values = list(getattr(tensor, field))
    if etype.is_complex:
        if len(values) % 2:
            raise ImportGraphError(f"{where}: {field} holds an odd number of floats")
        values = [complex(values[i], values[i + 1]) for i in range(0, len(values), 2)]
    if len(values) > count:
        raise ImportGraphError(
            f"{where}: {len(values)} values for a tensor of shape {list(dims)}"
        )
    if etype in (PrimitiveType.F16, PrimitiveType.BF16):
        bits = np.asarray(values, dtype=np.int64).astype(np.uint16)
        flat = bits.view(dtype)
    elif etype.is_integer:
        flat = np.asarray(values, dtype=np.int64 if etype is not PrimitiveType.U64
                          else np.uint64).astype(dtype)
    else:
        flat = np.asarray(values, dtype=dtype)
    if len(flat) == 0:
        return np.zeros(dims, dtype=dtype)
    if len(flat) < count:
        # TensorFlow's short form: the last value repeats to fill the shape.
        flat = np.concatenate([flat, np.full(count - len(flat), flat[-1], dtype=dtype)])
    result: np.ndarray = flat.reshape(dims)
    return result
