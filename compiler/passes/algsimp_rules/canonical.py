"""Canonicalisation rules, applied before every other family: constants to the right.

With constants always on the right, the other rules match one operand order only
(`A + 0`, never `0 + A`), and CSE sees `c + x` and `x + c` as the same expression.
"""

from __future__ import annotations

from compiler.passes.algsimp_rules import rule
from compiler.passes.algsimp_rules.match import is_constant_like
from hlo.instruction import HloInstruction
from hlo.opcodes import OPS, Opcode, Trait

_COMMUTATIVE_BINARY = tuple(
    op for op, d in OPS.items() if Trait.COMMUTATIVE in d.traits and d.arity == 2
)

# compare(C, A, d) == compare(A, C, _MIRRORED[d])
_MIRRORED = {"EQ": "EQ", "NE": "NE", "LT": "GT", "GT": "LT", "LE": "GE", "GE": "LE"}


def _swap_operands(instr: HloInstruction) -> None:
    lhs, rhs = instr.operands
    instr.replace_operand(0, rhs)
    instr.replace_operand(1, lhs)


@rule(*_COMMUTATIVE_BINARY)
def constant_to_right(instr: HloInstruction) -> HloInstruction | None:
    """C op A => A op C  (canonical: constants to the right of commutative ops)"""
    lhs, rhs = instr.operands
    if not is_constant_like(lhs) or is_constant_like(rhs):
        return None
    _swap_operands(instr)
    return instr


@rule(Opcode.COMPARE)
def compare_constant_to_right(instr: HloInstruction) -> HloInstruction | None:
    """compare(C, A, LT) => compare(A, C, GT)  (canonical: constants to the right)"""
    lhs, rhs = instr.operands
    if not is_constant_like(lhs) or is_constant_like(rhs):
        return None
    instr.attrs["direction"] = _MIRRORED[instr.attrs["direction"]]
    _swap_operands(instr)
    return instr
