"""The graphs of tfcompile's own conformance tests, written by hand as GraphDefs.

tensorflow/compiler/aot/tests/make_test_graphs.py builds these with TensorFlow; where the
corpus (../shared/corpus/tf) holds a graph of the same name but a different computation
(tfcond, tfsplits, tfassert_eq, the variable graphs), the test needs tfcompile's version,
so it is rebuilt here node by node, in the form TensorFlow 2 writes it in graph mode
(resource variables, v2 control flow). `write_case(name, directory)` writes
`<name>.pbtxt` and `<name>.config.pbtxt` for the command line.

Each builder returns the graph and the text of its tfcompile config.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import text_format

from compiler.frontends.tf_proto import graph_pb2
from tests.compiler.tf_graph_builder import GraphBuilder, TShape

F32, S32 = np.float32, np.int32


def _placeholder(g: GraphBuilder, name: str, dtype: Any, rank: int | None) -> str:
    dims = None if rank is None else (None,) * rank
    return g.op("Placeholder", name=name, dtype=dtype, shape=TShape(dims))


def _resource_variable(g: GraphBuilder, name: str, initial: np.ndarray) -> str:
    """A VarHandleOp with the initializer nodes TensorFlow adds (which no fetch needs)."""
    handle = g.op("VarHandleOp", name=name, dtype=initial.dtype, shape=TShape(initial.shape),
                  shared_name=name, container="")
    init = g.const(initial, name=f"{name}/Initializer/initial_value")
    g.op("AssignVariableOp", handle, init, name=f"{name}/Assign", dtype=initial.dtype)
    g.op("VarIsInitializedOp", handle, name=f"{name}/IsInitialized/VarIsInitializedOp")
    return handle


def tfassert_eq() -> tuple[Any, str]:
    """x - y, with an Assert(x == y) ordered before it; XLA compiles the Assert away."""
    g = GraphBuilder()
    x = _placeholder(g, "x_hold", S32, None)
    y = _placeholder(g, "y_hold", S32, None)
    equal = g.op("Equal", x, y, T=S32, name="Equal")
    message = g.op("Const", name="assert_eq/data_0")
    node = next(n for n in g.graph.node if n.name == message)
    node.attr["dtype"].type = graph_pb2.DT_STRING
    node.attr["value"].tensor.dtype = graph_pb2.DT_STRING
    node.attr["value"].tensor.string_val.append(b"Expected x == y.")
    check = g.op("Assert", equal, message, name="assert_eq", T=[], summarize=3)
    g.graph.node[-1].attr["T"].list.type.append(graph_pb2.DT_STRING)
    negated = g.op("Neg", y, T=S32, name="Neg")
    g.op("AddV2", x, negated, T=S32, name="x_y_diff", controls=(check,))
    config = """
        feed { id { node_name: "x_hold" } shape { dim { size: 1 } } }
        feed { id { node_name: "y_hold" } shape { dim { size: 1 } } }
        fetch { id { node_name: "x_y_diff" } }
    """
    return g.graph, config


def tfcond() -> tuple[Any, str]:
    """result = p ? x : y, as tf.cond writes it in v2 control flow (StatelessIf)."""
    g = GraphBuilder()
    p = _placeholder(g, "p_hold", np.bool_, None)
    x = _placeholder(g, "x_hold", S32, None)
    y = _placeholder(g, "y_hold", S32, None)
    args = [("x", S32), ("y", S32)]
    then = g.function("cond_true_7", args, [("identity", S32, "Identity:output:0")],
                      [("Identity", "Identity", ["x"], {"T": S32})])
    other = g.function("cond_false_8", args, [("identity", S32, "Identity:output:0")],
                       [("Identity", "Identity", ["y"], {"T": S32})])
    branch = g.op("StatelessIf", p, x, y, name="cond", then_branch=then, else_branch=other,
                  Tcond=np.bool_, Tin=[S32, S32], Tout=[S32])
    g.op("Identity", branch, T=S32, name="result")
    config = """
        feed { id { node_name: "p_hold" } shape {} }
        feed { id { node_name: "x_hold" } shape { dim { size: 1 } } }
        feed { id { node_name: "y_hold" } shape { dim { size: 1 } } }
        fetch { id { node_name: "result" } }
    """
    return g.graph, config


def tfsplits() -> tuple[Any, str]:
    """Three rounds of Split, Concat, MatMul and Add on two 2x2 matrices."""
    g = GraphBuilder()
    x = _placeholder(g, "x", F32, 2)
    y = _placeholder(g, "y", F32, 2)
    axis = g.const(S32(0), name="split/split_dim")
    concat_axis = g.const(S32(0), name="concat/axis")
    one = g.const(F32(1), name="add/y")
    for step in range(3):
        xs = g.op("Split", axis, x, T=F32, num_split=2, name=f"split_{step}")
        ys = g.op("Split", axis, y, T=F32, num_split=2, name=f"split_{step}_y")
        x0 = g.op("AddV2", xs, one, T=F32, name=f"add_{step}")
        y0 = g.op("AddV2", ys, one, T=F32, name=f"add_{step}_y")
        z = g.op("MatMul", x, y, T=F32, transpose_a=False, transpose_b=False,
                 name=f"x_y_prod_{step}")
        a = g.op("ConcatV2", x0, f"{ys}:1", concat_axis, T=F32, N=2, Tidx=S32,
                 name=f"concat_x0_y1_{step}")
        b = g.op("ConcatV2", y0, f"{xs}:1", concat_axis, T=F32, N=2, Tidx=S32,
                 name=f"concat_y0_x1_{step}")
        x = g.op("MatMul", a, b, T=F32, transpose_a=False, transpose_b=False, name=f"a_b_{step}")
        y = g.op("AddV2", x, z, T=F32, name=f"add_xz_{step}")
    g.op("Identity", y, T=F32, name="result")
    config = """
        feed { id { node_name: "x" } shape { dim { size: 2 } dim { size: 2 } } }
        feed { id { node_name: "y" } shape { dim { size: 2 } dim { size: 2 } } }
        fetch { id { node_name: "result" } }
    """
    return g.graph, config


def tfvariable() -> tuple[Any, str]:
    """result = stack([x, x + 42]) with x += 42 ordered after the first read."""
    g = GraphBuilder()
    x = _resource_variable(g, "x", F32([1000]))
    old = g.op("ReadVariableOp", x, dtype=F32, name="ReadVariableOp")
    delta = g.const(F32([42]), name="AssignAddVariableOp/value")
    update = g.op("AssignAddVariableOp", x, delta, dtype=F32, name="AssignAddVariableOp",
                  controls=(old,))
    new = g.op("ReadVariableOp", x, dtype=F32, name="ReadVariableOp_1", controls=(update,))
    g.op("Pack", old, new, T=F32, N=2, axis=0, name="result")
    config = """
        fetch { id { node_name: "result" } }
        variable { node_name: "x" shape { dim { size: 1 } } type: DT_FLOAT }
    """
    return g.graph, config


def tfvariable_readonly() -> tuple[Any, str]:
    """result = x + 42 for a readonly x; a second variable y is not used at all."""
    g = GraphBuilder()
    x = _resource_variable(g, "x", F32(1000))
    _resource_variable(g, "y", F32(1000))
    old = g.op("ReadVariableOp", x, dtype=F32, name="ReadVariableOp")
    c = g.op("Const", dtype=F32, value=np.asarray(F32(42)), name="Add/y", controls=(old,))
    added = g.op("AddV2", old, c, T=F32, name="Add", controls=(old,))
    g.op("Identity", added, T=F32, name="result")
    config = """
        fetch { id { node_name: "result" } }
        variable { node_name: "x" shape {} type: DT_FLOAT readonly: true }
    """
    return g.graph, config


def tfvariable_sequential_updates() -> tuple[Any, str]:
    """Three ordered updates x -= 0.1 * (x + y); the result is x after them."""
    g = GraphBuilder()
    x = _resource_variable(g, "x", F32(1))
    y = _resource_variable(g, "y", F32(1))
    updates = g.op("NoOp", name="NoOp")
    for step in range(3):
        after = (updates,)
        rx = g.op("ReadVariableOp", x, dtype=F32, name=f"ReadVariableOp_{step}", controls=after)
        ry = g.op("ReadVariableOp", y, dtype=F32, name=f"ReadVariableOp_y_{step}",
                  controls=after)
        total = g.op("AddV2", rx, ry, T=F32, name=f"add_{step}", controls=after)
        scale = g.op("Const", dtype=F32, value=np.asarray(F32(0.1)), name=f"mul_{step}/x",
                     controls=after)
        delta = g.op("Mul", scale, total, T=F32, name=f"mul_{step}", controls=after)
        updates = g.op("AssignSubVariableOp", x, delta, dtype=F32,
                       name=f"AssignSubVariableOp_{step}", controls=after)
    final = g.op("ReadVariableOp", x, dtype=F32, name="ReadVariableOp_final",
                 controls=(updates,))
    g.op("Identity", final, T=F32, name="result")
    config = """
        fetch { id { node_name: "result" } }
        variable { node_name: "x" type: DT_FLOAT }
        variable { node_name: "y" type: DT_FLOAT readonly: true }
    """
    return g.graph, config


BUILDERS: dict[str, Callable[[], tuple[Any, str]]] = {
    "tfassert_eq": tfassert_eq,
    "tfcond": tfcond,
    "tfsplits": tfsplits,
    "tfvariable": tfvariable,
    "tfvariable_readonly": tfvariable_readonly,
    "tfvariable_sequential_updates": tfvariable_sequential_updates,
}


def write_case(name: str, directory: Path) -> tuple[Path, Path]:
    """Write `<name>.pbtxt` and `<name>.config.pbtxt` under `directory`; returns both paths."""
    graph, config = BUILDERS[name]()
    graph_path = directory / f"{name}.pbtxt"
    config_path = directory / f"{name}.config.pbtxt"
    graph_path.write_text(text_format.MessageToString(graph))
    config_path.write_text("# tensorflow.tf2xla.Config (text format)\n" + config.strip() + "\n")
    return graph_path, config_path
