"""Coverage of the one-table-per-concept design: every opcode has a record that parses,
prints, verifies and evaluates; every opcode has an evaluator kernel."""

from __future__ import annotations

import numpy as np
import pytest

import hlo
from hlo.opcodes import OPS, Opcode
from tests.op_records import BY_OPCODE, NOT_EVALUATED, RECORDS


def test_every_opcode_has_a_record() -> None:
    missing = sorted(op.value for op in Opcode if op not in BY_OPCODE)
    assert not missing, f"opcodes without an op record: {missing}"


def test_every_opcode_has_an_evaluator_kernel() -> None:
    from hlo import eval_rules  # noqa: F401
    from hlo.evaluator import EVAL

    missing = sorted(op.value for op in Opcode if op not in EVAL)
    assert not missing, f"opcodes without an evaluator kernel: {missing}"


def test_every_opdef_has_a_callable_shape_rule() -> None:
    for op, d in OPS.items():
        assert callable(d.shape_rule), op


@pytest.mark.parametrize("rec", RECORDS, ids=[r.name for r in RECORDS])
def test_record_parses_prints_verifies_and_evaluates(rec) -> None:
    from hlo.parser import parse
    from hlo.printer import to_text
    from hlo.verifier import verify

    module = parse(rec.text)
    verify(module)
    assert to_text(parse(to_text(module))) == to_text(module)
    assert any(i.opcode is rec.opcode for c in module.computations for i in c.instructions)
    args = rec.args(np.random.default_rng(0))
    if rec.opcode in NOT_EVALUATED:
        if rec.opcode is Opcode.CUSTOM_CALL:
            with pytest.raises(hlo.UnsupportedOpError):
                hlo.evaluate(module, *args)
        return
    results = hlo.evaluate(module, *args)
    leaves = module.entry_computation.root.shape.leaves()
    assert len(results) == len(leaves)
    for got, shape in zip(results, leaves, strict=True):
        assert got.dtype == shape.element_type.numpy and got.shape == shape.dims
