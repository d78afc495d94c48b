"""Importing the TensorFlow GraphDef corpus (../shared/corpus/tf) and the importer's errors.

Every case is imported from its binary and its text GraphDef with its tfcompile config,
evaluated with the reference evaluator and compared with what a real TensorFlow Session
computed: integers and bools exactly, floats within the case's rtol/atol, dtypes and
shapes equal. The program shape must be the one the real tfcompile reported.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import compiler.tf as tf
import hlo
from compiler.frontends.tf_proto import graph_pb2, tf2xla_pb2
from hlo.errors import ImportGraphError, TfcompileError, UnsupportedOpError
from hlo.parser import parse
from hlo.printer import to_text
from hlo.verifier import verify
from tests.conftest import CORPUS, corpus_cases

CASES = corpus_cases("tf")
TF = CORPUS / "tf"


def _compare(case: dict, got: tuple, want: list[np.ndarray]) -> None:
    name = case["name"]
    assert len(got) == len(want), f"{name}: {len(got)} outputs, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.dtype == w.dtype, f"{name} out{i}: dtype {g.dtype}, expected {w.dtype}"
        assert g.shape == w.shape, f"{name} out{i}: shape {g.shape}, expected {w.shape}"
        if w.dtype.kind in "fc":
            ok = np.allclose(g, w, rtol=case["rtol"], atol=case["atol"], equal_nan=True)
            assert ok, f"{name} out{i}: max abs error {np.nanmax(np.abs(g - w))}"
        else:
            assert np.array_equal(g, w), f"{name} out{i}: {g} != {w}"


def _program_shape(module: hlo.HloModule) -> str:
    """The entry signature in tfcompile's `(arg0: f32[2]) -> (f32[2])` form."""
    shape = module.program_shape()
    args = ", ".join(f"arg{i}: {p.to_text(with_layout=False)}"
                     for i, p in enumerate(shape.parameters))
    results = ", ".join(s.to_text(with_layout=False) for s in shape.result.tuple_shapes)
    return f"({args}) -> ({results})"


@pytest.mark.parametrize("fmt", ["pb", "pbtxt"])
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_corpus_case(case: dict, fmt: str) -> None:
    module = tf.import_graph(TF / case[fmt], TF / case["config"])
    verify(module)
    assert _program_shape(module) == case["tfcompile_program_shape"]
    data = np.load(TF / case["npz"])
    args = [data[f"arg{i}"] for i in range(len(case["args"]))]
    want = [data[f"out{i}"] for i in range(len(case["results"]))]
    _compare(case, hlo.evaluate(module, *args), want)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_corpus_case_compiled_for_cpu(case: dict) -> None:
    """Imported, optimised and compiled to native code, each case reproduces TF's outputs."""
    import compiler

    module = tf.import_graph(TF / case["pb"], TF / case["config"])
    data = np.load(TF / case["npz"])
    args = [data[f"arg{i}"] for i in range(len(case["args"]))]
    want = [data[f"out{i}"] for i in range(len(case["results"]))]
    got = compiler.compile(module, backend="cpu")(*args)
    _compare(case, got if isinstance(got, tuple) else (got,), want)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_corpus_signature_and_round_trip(case: dict) -> None:
    module = tf.import_graph(TF / case["pb"], TF / case["config"])
    sig = module.attrs["tf_signature"]
    args = [f"feed:{f.name}" for f in sig.feeds] + [f"variable:{v.name}" for v in sig.variables]
    results = [f"fetch:{f.name}" for f in sig.fetches]
    results += [f"variable:{v.name}" for v in sig.variables if not v.readonly]
    assert args == case["args"]
    assert results == case["results"]
    for fetch, meta in zip(sig.fetches, case["fetches"], strict=True):
        assert (fetch.node, fetch.output_index) == (meta["node"], meta["output_index"])
    text = to_text(module)
    assert to_text(parse(text)) == text


def test_corpus_has_every_listed_op() -> None:
    listed = {op for c in CASES for op in c["ops"]}
    missing = {op for op in listed if tf_op_row(op) is None}
    assert not missing


def tf_op_row(op: str) -> object:
    from compiler.frontends import tf_ops

    return tf_ops.load().get(op)


# --- errors -----------------------------------------------------------------------------------


def _write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text)
    return p


ADD_GRAPH = """
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "y" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } }
       attr { key: "shape" value { shape { dim { size: 2 } } } } }
node { name: "sum" op: "AddV2" input: "x" input: "y" attr { key: "T" value { type: DT_FLOAT } } }
"""
ADD_CONFIG = """
feed { id { node_name: "x" } shape { dim { size: 2 } } }
feed { id { node_name: "y" } shape { dim { size: 2 } } }
fetch { id { node_name: "sum" } }
"""


def test_text_graph_and_binary_config(tmp_path: Path) -> None:
    graph = _write(tmp_path, "g.pbtxt", ADD_GRAPH)
    config = tf2xla_pb2.Config()
    from google.protobuf import text_format

    text_format.Parse(ADD_CONFIG, config)
    binary = tmp_path / "c.pb"
    binary.write_bytes(config.SerializeToString())
    module = tf.import_graph(graph, binary)
    out = hlo.evaluate(module, np.float32([1, 2]), np.float32([3, 4]))
    np.testing.assert_array_equal(out[0], [4, 6])


@pytest.mark.parametrize(
    "config, pattern",
    [
        (ADD_CONFIG.replace('"sum"', '"nope"'), r"fetch #0 names node 'nope'"),
        (ADD_CONFIG.replace('node_name: "x"', 'node_name: "q"'), r"feed #0 names node 'q'"),
        (ADD_CONFIG.replace("size: 2 } } }\nfetch", "size: -1 } } }\nfetch"),
         r"dimension -1 .* not a known size"),
        (ADD_CONFIG.replace('"y" } shape { dim { size: 2', '"y" } shape { dim { size: 3'),
         r"gives shape \[3\], but node 'y'"),
        ('fetch { id { node_name: "sum" } }', r"placeholder is not fed"),
        ("feed { id { node_name: \"x\" } }\n", r"no fetch"),
        ("fetch { bogus: 1 }", r"not a valid Config"),
        (ADD_CONFIG + 'variable { node_name: "sum" }', r"not a variable"),
    ],
    ids=["missing_fetch", "missing_feed", "unknown_dim", "shape_conflict", "not_fed",
         "no_fetch", "malformed", "not_a_variable"],
)
def test_config_errors(tmp_path: Path, config: str, pattern: str) -> None:
    graph = _write(tmp_path, "g.pbtxt", ADD_GRAPH)
    with pytest.raises(ImportGraphError, match=pattern):
        tf.import_graph(graph, _write(tmp_path, "c.pbtxt", config))


def test_malformed_and_missing_files(tmp_path: Path) -> None:
    config = _write(tmp_path, "c.pbtxt", ADD_CONFIG)
    bad = tmp_path / "g.pb"
    bad.write_bytes(b"\x0a\xff\xff\xff\xff\x0f garbage")
    with pytest.raises(ImportGraphError, match=r"not a valid GraphDef"):
        tf.import_graph(bad, config)
    with pytest.raises(ImportGraphError, match=r"cannot read graph"):
        tf.import_graph(tmp_path / "absent.pb", config)


UNSUPPORTED_GRAPH = ADD_GRAPH + """
node { name: "u1" op: "FancyOp" input: "sum" }
node { name: "u2" op: "OtherOp" input: "u1" }
node { name: "out" op: "AddV2" input: "u2" input: "x" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "unused" op: "NeverNeeded" }
"""


def test_unsupported_ops_are_reported_at_once(tmp_path: Path) -> None:
    graph = _write(tmp_path, "g.pbtxt", UNSUPPORTED_GRAPH)
    config = _write(tmp_path, "c.pbtxt", ADD_CONFIG.replace('"sum"', '"out"'))
    with pytest.raises(UnsupportedOpError) as info:
        tf.import_graph(graph, config)
    message = str(info.value)
    assert "u1 (FancyOp)" in message and "u2 (OtherOp)" in message
    assert "NeverNeeded" not in message  # pruned: no fetch needs it
    assert tf.check_graph(graph, config) == [("u1", "FancyOp"), ("u2", "OtherOp")]


def test_check_graph_on_the_corpus() -> None:
    for case in CASES:
        assert tf.check_graph(TF / case["pb"], TF / case["config"]) == [], case["name"]


def test_feeding_an_inner_node_cuts_the_graph_above_it(tmp_path: Path) -> None:
    graph = _write(tmp_path, "g.pbtxt", UNSUPPORTED_GRAPH)
    config = """
    feed { id { node_name: "u2" } shape { dim { size: 2 } } type: DT_FLOAT name: "mid" }
    feed { id { node_name: "x" } shape { dim { size: 2 } } }
    fetch { id { node_name: "out" } name: "o" }
    """
    module = tf.import_graph(graph, _write(tmp_path, "c.pbtxt", config))
    out = hlo.evaluate(module, np.float32([1, 2]), np.float32([10, 20]))
    np.testing.assert_array_equal(out[0], [11, 22])
    assert str(module.attrs["tf_signature"]) == (
        "{feeds={mid:f32[2],x:f32[2]} fetches={o:f32[2]} variables={}}"
    )


def test_errors_name_the_node(tmp_path: Path) -> None:
    graph = ADD_GRAPH + """
    node { name: "r" op: "Reshape" input: "sum" input: "x"
           attr { key: "T" value { type: DT_FLOAT } } }
    """
    config = ADD_CONFIG.replace('"sum"', '"r"')
    with pytest.raises(TfcompileError, match=re.escape("node 'r' (Reshape)")):
        tf.import_graph(_write(tmp_path, "g.pbtxt", graph), _write(tmp_path, "c.pbtxt", config))


def test_graph_def_messages_directly() -> None:
    g = graph_pb2.GraphDef()
    n = g.node.add(name="c", op="Const")
    n.attr["dtype"].type = graph_pb2.DT_INT32
    t = n.attr["value"].tensor
    t.dtype = graph_pb2.DT_INT32
    t.tensor_shape.dim.add(size=3)
    t.int_val.extend([7])  # the short form: the last value fills the shape
    c = tf2xla_pb2.Config()
    c.fetch.add().id.node_name = "c"
    module = tf.import_graph_def(g, c)
    np.testing.assert_array_equal(hlo.evaluate(module)[0], [7, 7, 7])


def test_feeding_a_const_node(tmp_path: Path) -> None:
    graph = """
    node { name: "c" op: "Const" attr { key: "dtype" value { type: DT_INT32 } }
           attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape { dim { size: 2 } }
                                                int_val: 1 int_val: 2 } } } }
    node { name: "d" op: "Mul" input: "c" input: "c" attr { key: "T" value { type: DT_INT32 } } }
    """
    config = """
    feed { id { node_name: "c" } shape { dim { size: 2 } } }
    fetch { id { node_name: "d" } }
    """
    graph_path = _write(tmp_path, "g.pbtxt", graph)
    module = tf.import_graph(graph_path, _write(tmp_path, "c.pbtxt", config))
    np.testing.assert_array_equal(hlo.evaluate(module, np.int32([3, 4]))[0], [9, 16])
