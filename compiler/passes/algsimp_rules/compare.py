"""Comparison and selection rules: compare of an operand with itself, select on a constant.

Comparisons of a value with itself are only decided for integers and preds: for floats
NaN == NaN is false, so `compare(A, A, EQ)` depends on the data.
"""

from __future__ import annotations

from compiler.passes.algsimp_rules import rule
from compiler.passes.algsimp_rules.match import comp_of, is_all, make, same_dims, splat
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode

_REFLEXIVE = {"EQ": True, "LE": True, "GE": True, "NE": False, "LT": False, "GT": False}
_NEGATED = {"EQ": "NE", "NE": "EQ", "LT": "GE", "GE": "LT", "GT": "LE", "LE": "GT"}


def _exact_compare(x: HloInstruction) -> bool:
    t = x.shape.element_type
    return t.is_integer or t.is_pred


@rule(Opcode.COMPARE)
def compare_same(instr: HloInstruction) -> HloInstruction | None:
    """compare(A, A, EQ) => true;  compare(A, A, LT) => false  (integers and preds)"""
    lhs, rhs = instr.operands
    if lhs is not rhs or not _exact_compare(lhs):
        return None
    value = _REFLEXIVE[instr.attrs["direction"]]
    return splat(comp_of(instr), instr.shape.element_type, value, instr.shape.dims)


@rule(Opcode.NOT)
def not_compare(instr: HloInstruction) -> HloInstruction | None:
    """not(compare(A, B, LT)) => compare(A, B, GE)  (integers and preds; one use)"""
    (x,) = instr.operands
    if x.opcode is not Opcode.COMPARE or len(x.users) != 1 or not _exact_compare(x.operands[0]):
        return None
    attrs = dict(x.attrs)
    attrs["direction"] = _NEGATED[attrs["direction"]]
    return make(instr, Opcode.COMPARE, x.operands, shape=instr.shape, **attrs)


@rule(Opcode.SELECT)
def select_constant_predicate(instr: HloInstruction) -> HloInstruction | None:
    """select(true, A, B) => A;  select(false, A, B) => B"""
    predicate, on_true, on_false = instr.operands
    if is_all(predicate, True):
        return on_true if same_dims(on_true, instr) else None
    if is_all(predicate, False):
        return on_false if same_dims(on_false, instr) else None
    return None


@rule(Opcode.SELECT)
def select_same(instr: HloInstruction) -> HloInstruction | None:
    """select(P, A, A) => A"""
    _, on_true, on_false = instr.operands
    return on_true if on_true is on_false and same_dims(on_true, instr) else None


@rule(Opcode.SELECT)
def select_not(instr: HloInstruction) -> HloInstruction | None:
    """select(not(P), A, B) => select(P, B, A)"""
    predicate, on_true, on_false = instr.operands
    if predicate.opcode is not Opcode.NOT:
        return None
    return make(instr, Opcode.SELECT, [predicate.operands[0], on_false, on_true],
                shape=instr.shape)
