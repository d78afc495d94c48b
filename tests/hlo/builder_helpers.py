"""Helpers shared by the test_builder_*.py files: build a ComputationBuilder's module, verify
it, check that its printed text parses back to the same text, and evaluate it with the
reference evaluator; plus small constructors for shapes, parameters and arrays.
"""

from __future__ import annotations

import numpy as np

from hlo.builder import ComputationBuilder
from hlo.dtypes import PrimitiveType
from hlo.evaluator import evaluate
from hlo.parser import parse
from hlo.printer import to_text
from hlo.shape import Shape
from hlo.verifier import verify

F32 = PrimitiveType.F32
S32 = PrimitiveType.S32
PRED = PrimitiveType.PRED


def shape(t: PrimitiveType, *dims: int) -> Shape:
    return Shape.array(t, dims)


def run(b: ComputationBuilder, *args: np.ndarray, root=None):
    """Build, verify, check the printed text round-trips, and evaluate.

    A single result leaf is returned bare.
    """
    module = b.build(root)
    verify(module)
    text = to_text(module)
    assert to_text(parse(text)) == text
    out = evaluate(module, *args)
    return out[0] if len(out) == 1 else out


def param(b: ComputationBuilder, number: int, value: np.ndarray, name: str | None = None):
    """A parameter shaped like `value` (whose dtype names the element type)."""
    t = {np.dtype(np.float32): F32, np.dtype(np.int32): S32, np.dtype(np.bool_): PRED}[
        value.dtype
    ]
    return b.parameter(number, Shape.array(t, value.shape), name or f"arg{number}")


def f32(values) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def s32(values) -> np.ndarray:
    return np.array(values, dtype=np.int32)


def assert_equal(got, want) -> None:
    want = np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_array_equal(got, want)


def adder(sb, a, c):
    return sb.add(a, c)
