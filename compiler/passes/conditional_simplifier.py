"""Conditional simplification: a conditional whose branch is known becomes that branch.

When the predicate (pred form) or branch index (indexed form) is a constant, the chosen
branch computation is inlined in place of the conditional. An index outside [0, N)
selects the last branch, as XLA defines. A conditional with a single branch is inlined
whatever its index. Branches with side effects are inlined too: exactly one branch runs
either way.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np

from compiler.passes.hlo_utils import inline_computation
from compiler.pipeline import ComputationPass
from hlo.computation import HloComputation
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode

log = logging.getLogger(__name__)


def chosen_branch(cond: HloInstruction) -> tuple[HloComputation, HloInstruction] | None:
    """The branch computation a conditional statically takes, and its operand."""
    selector, *operands = cond.operands
    branches = cond.attrs.get("branch_computations")
    if branches is not None and len(branches) == 1:
        return branches[0], operands[0]
    if selector.opcode is not Opcode.CONSTANT:
        return None
    value = np.asarray(selector.attrs["literal"])
    if branches is None:
        if bool(value):
            return cond.attrs["true_computation"], operands[0]
        return cond.attrs["false_computation"], operands[1]
    index = int(value)
    if not 0 <= index < len(branches):
        index = len(branches) - 1
    return branches[index], operands[index]


class ConditionalSimplifier(ComputationPass):
    """Inlines the taken branch of conditionals with a constant selector."""

    name: ClassVar[str] = "conditional_simplifier"

    def run_on(self, comp: HloComputation) -> bool:
        changed = False
        for instr in [i for i in comp.instructions if i.opcode is Opcode.CONDITIONAL]:
            chosen = chosen_branch(instr)
            if chosen is None:
                continue
            branch, operand = chosen
            result = inline_computation(comp, branch, [operand])
            log.debug("conditional_simplifier: %s takes %s", instr.name, branch.name)
            instr.replace_all_uses_with(result)
            comp.remove(instr)
            changed = True
        if changed and comp.parent is not None:
            comp.remove_dead()
            comp.parent.remove_unreachable_computations()
        return changed
