"""Fuzzing the TensorFlow importer: mutated GraphDefs and configs raise only TfcompileError.

Starting from the corpus graphs, each round mutates one input (bytes of a binary GraphDef,
text of a .pbtxt graph or config, or the decoded messages: nodes dropped or duplicated,
inputs rewired, ops swapped, attributes and shapes corrupted) and imports it. Anything but
a clean import or a TfcompileError subclass fails, with the seed that reproduces it. The
rounds are seeded, so a run is deterministic.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

import compiler.tf as tf
from compiler.frontends import tf_ops
from compiler.frontends.tf_graphdef import read_config, read_graph
from compiler.frontends.tf_proto import graph_pb2, tf2xla_pb2
from hlo.errors import TfcompileError
from hlo.verifier import verify
from tests.conftest import CORPUS, corpus_cases

CASES = corpus_cases("tf")
TF = CORPUS / "tf"
ROUNDS_PER_STRATEGY = 550  # four strategies: > 2,000 mutated inputs per run

# Small graphs first: the fuzzer's time is best spent on structure, not on big weights.
SMALL = [c for c in CASES if (TF / c["pb"]).stat().st_size < 20_000]


def _mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not b:
            break
        kind = rng.random()
        i = rng.randrange(len(b))
        if kind < 0.5:
            b[i] = rng.randrange(256)
        elif kind < 0.7:
            del b[i: i + rng.randint(1, 8)]
        elif kind < 0.85:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        else:
            del b[i:]
    return bytes(b)


_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_WEIRD_NUMBERS = ["0", "-1", "1", "2", "3", "-7", "100000000", "4294967296", "0.5", "17"]


def _mutate_text(rng: random.Random, text: str, names: list[str]) -> str:
    lines = text.splitlines()
    for _ in range(rng.randint(1, 3)):
        if not lines:
            break
        i = rng.randrange(len(lines))
        kind = rng.random()
        if kind < 0.35 and _NUMBER.search(lines[i]):
            lines[i] = _NUMBER.sub(lambda m: rng.choice(_WEIRD_NUMBERS), lines[i], count=1)
        elif kind < 0.5:
            del lines[i]
        elif kind < 0.6:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif kind < 0.8 and '"' in lines[i] and names:
            lines[i] = re.sub(r'"[^"]*"', f'"{rng.choice(names)}"', lines[i], count=1)
        elif kind < 0.9 and "DT_" in lines[i]:
            dtype = rng.choice(list(graph_pb2.DataType.keys()))
            lines[i] = re.sub(r"DT_\w+", dtype, lines[i])
        else:
            lines[i] = lines[i].replace("true", "false") if "true" in lines[i] else lines[i][:-1]
    return "\n".join(lines)


def _mutate_message(rng: random.Random, graph: graph_pb2.GraphDef) -> None:
    """Structural damage to a decoded GraphDef (in place)."""
    ops = sorted(tf_ops.load())
    nodes = graph.node
    for _ in range(rng.randint(1, 3)):
        if not len(nodes):
            return
        n = nodes[rng.randrange(len(nodes))]
        kind = rng.randrange(9)
        if kind == 0:
            nodes.remove(n)
        elif kind == 1:
            nodes.add().CopyFrom(n)
        elif kind == 2 and len(n.input):
            other = nodes[rng.randrange(len(nodes))].name
            n.input[rng.randrange(len(n.input))] = rng.choice(
                [other, f"{other}:{rng.randint(0, 3)}", f"^{other}", n.name])
        elif kind == 3:
            n.op = rng.choice(ops)
        elif kind == 4 and len(n.attr):
            key = rng.choice(sorted(n.attr))
            value = n.attr[key]
            choice = rng.randrange(5)
            if choice == 0:
                del n.attr[key]
            elif choice == 1:
                value.type = rng.choice(list(graph_pb2.DataType.values()))
            elif choice == 2:
                value.i = rng.choice([-1, 0, 5, 1 << 40])
            elif choice == 3:
                value.shape.dim.add(size=rng.choice([-1, 0, 3]))
            else:
                value.list.i.extend([rng.randint(-3, 3) for _ in range(rng.randint(0, 5))])
        elif kind == 5 and "value" in n.attr:
            t = n.attr["value"].tensor
            t.tensor_shape.dim.add(size=rng.choice([0, 1, 2, 5]))
            if rng.random() < 0.5:
                t.dtype = rng.choice(list(graph_pb2.DataType.values()))
        elif kind == 6:
            n.input.append(nodes[rng.randrange(len(nodes))].name)
        elif kind == 7 and len(n.input):
            del n.input[rng.randrange(len(n.input))]
        elif kind == 8 and len(graph.library.function):
            f = graph.library.function[rng.randrange(len(graph.library.function))]
            if len(f.node_def):
                f.node_def[rng.randrange(len(f.node_def))].op = rng.choice(ops)
            elif len(f.signature.input_arg):
                del f.signature.input_arg[0]


def _import(graph: Path, config: Path) -> None:
    module = tf.import_graph(graph, config)
    verify(module)


def _run(seed: int, make: Callable[[random.Random, Path], tuple[Path, Path]],
         tmp: Path) -> None:
    rng = random.Random(seed)
    graph, config = make(rng, tmp)
    try:
        _import(graph, config)
    except TfcompileError:
        pass
    except Exception as e:  # noqa: BLE001  (the point: anything else is a bug)
        pytest.fail(f"seed {seed}: {type(e).__name__}: {e}")


def _names(case: dict) -> list[str]:
    return [n["node"] for n in case["feeds"] + case["fetches"]] + ["nope", ""]


def _bytes_strategy(rng: random.Random, tmp: Path) -> tuple[Path, Path]:
    case = rng.choice(SMALL)
    out = tmp / "g.pb"
    out.write_bytes(_mutate_bytes(rng, (TF / case["pb"]).read_bytes()))
    return out, TF / case["config"]


def _graph_text_strategy(rng: random.Random, tmp: Path) -> tuple[Path, Path]:
    case = rng.choice(SMALL)
    out = tmp / "g.pbtxt"
    out.write_text(_mutate_text(rng, (TF / case["pbtxt"]).read_text(), _names(case)))
    return out, TF / case["config"]


def _config_strategy(rng: random.Random, tmp: Path) -> tuple[Path, Path]:
    case = rng.choice(CASES)
    out = tmp / "c.pbtxt"
    out.write_text(_mutate_text(rng, (TF / case["config"]).read_text(), _names(case)))
    return TF / case["pb"], out


_PARSED = {c["name"]: read_graph(TF / c["pb"]) for c in SMALL}


def _message_strategy(rng: random.Random, tmp: Path) -> tuple[Path, Path]:
    case = rng.choice(SMALL)
    graph = graph_pb2.GraphDef()
    graph.CopyFrom(_PARSED[case["name"]])
    _mutate_message(rng, graph)
    out = tmp / "g.pb"
    out.write_bytes(graph.SerializeToString())
    return out, TF / case["config"]


STRATEGIES = {
    "bytes": _bytes_strategy,
    "graph_text": _graph_text_strategy,
    "config_text": _config_strategy,
    "message": _message_strategy,
}


@pytest.mark.skipif(not CASES, reason="the TF corpus is absent")
@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_mutations_raise_only_tfcompile_errors(strategy: str, tmp_path: Path) -> None:
    make = STRATEGIES[strategy]
    base = sorted(STRATEGIES).index(strategy) * 1_000_000
    for seed in range(base, base + ROUNDS_PER_STRATEGY):
        _run(seed, make, tmp_path)


def test_config_round_trip_is_lossless() -> None:
    # The fuzzer's config mutations start from text; binary configs decode the same way.
    for case in CASES:
        config = read_config(TF / case["config"])
        again = tf2xla_pb2.Config()
        again.ParseFromString(config.SerializeToString())
        assert text_format.MessageToString(again) == text_format.MessageToString(config)
        assert np.all([f.id.node_name for f in again.feed] == [f["node"] for f in case["feeds"]])
