"""Property tests over random graphs: shape rules agree with evaluated shapes, and random
modules round-trip through print/parse."""

from __future__ import annotations

from hypothesis import given

import hlo
from hlo.parser import parse
from hlo.printer import to_text
from hlo.verifier import verify
from tests.strategies import random_modules


@given(random_modules())
def test_inferred_shapes_equal_evaluated_shapes(case) -> None:
    module, args = case
    verify(module)
    entry = module.entry_computation
    # Evaluate every instruction as a root of its own to compare each inferred shape.
    for instr in entry.instructions:
        saved = entry.root
        entry.root = instr
        try:
            (value,) = hlo.evaluate(module, *args) if not instr.shape.is_tuple else (None,)
        finally:
            entry.root = saved
        if value is not None:
            assert value.shape == instr.shape.dims, instr
            assert value.dtype == instr.shape.element_type.numpy, instr


@given(random_modules())
def test_random_modules_round_trip(case) -> None:
    module, _ = case
    text = to_text(module)
    again = parse(text)
    verify(again)
    assert to_text(again) == text
