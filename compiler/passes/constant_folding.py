"""Constant folding: replace an instruction whose operands are all constants by its value.

The value comes from the reference evaluator's kernel for the opcode (XLA's constant
folding calls its HloEvaluator the same way), so folding can never disagree with the
oracle. Limits keep compile time and module size bounded: results above
`max_result_elements` and operands above `max_operand_elements` are left alone.

Deliberately not folded:
- `broadcast(constant)` and `iota`: they are cheap to compute where they are used, and
  the algebraic simplifier sinks broadcasts below elementwise ops (op(broadcast(c)) =>
  broadcast(op(c))) so that the scalar op folds here; materialising the broadcast instead
  would undo that and fight algsimp in the fixed point.
- control flow and calls (while, conditional, call, fusion, custom-call): a while loop
  might not terminate, and the simplifiers for calls and conditionals do better.
- copies: copy_insertion adds them so that a value gets a buffer of its own.
- anything with side effects, and tuple- or token-shaped results (tuple constants help
  nobody; tuple_simplifier forwards tuple elements instead).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from compiler.passes.hlo_utils import has_side_effects
from compiler.pipeline import ComputationPass
from hlo.computation import HloComputation
from hlo.errors import TfcompileError
from hlo.evaluator import EVAL, Evaluator
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode

log = logging.getLogger(__name__)

_NEVER_FOLDED = frozenset({
    Opcode.BROADCAST,  # see the module docstring: algsimp sinks broadcasts instead
    Opcode.IOTA,
    Opcode.CONSTANT,
    Opcode.PARAMETER,
    Opcode.WHILE,
    Opcode.CONDITIONAL,
    Opcode.CALL,
    Opcode.FUSION,
    Opcode.CUSTOM_CALL,
    Opcode.TUPLE,
    Opcode.AFTER_ALL,
    Opcode.RNG,
    Opcode.RNG_BIT_GENERATOR,
    Opcode.OPTIMIZATION_BARRIER,
    Opcode.COPY,  # copy insertion's copies give a value its own buffer; keep them
})


@dataclass(frozen=True)
class FoldingOptions:
    """Size caps: folding is skipped above them."""

    max_result_elements: int = 1 << 16
    max_operand_elements: int = 1 << 20


class ConstantFolding(ComputationPass):
    """Evaluates instructions over constants at compile time."""

    name: ClassVar[str] = "constant_folding"

    def __init__(self, options: FoldingOptions | None = None) -> None:
        self.options = options or FoldingOptions()

    def run_on(self, comp: HloComputation) -> bool:
        from hlo import eval_rules  # noqa: F401  (registers the evaluator kernels)

        evaluator = Evaluator(comp.parent)
        changed = False
        for instr in comp.post_order():
            if instr.parent is not comp or not self._foldable(instr):
                continue
            value = self._evaluate(evaluator, instr)
            if value is None:
                continue
            folded = comp.add(Opcode.CONSTANT, shape=instr.shape, literal=value)
            log.debug("constant_folding: %s (%s) => %s", instr.name, instr.opcode.value,
                      folded.name)
            instr.replace_all_uses_with(folded)
            comp.remove(instr)
            changed = True
        if changed:
            comp.remove_dead()
        return changed

    def _foldable(self, instr: HloInstruction) -> bool:
        if instr.opcode in _NEVER_FOLDED or not instr.operands:
            return False
        if not instr.shape.is_array or instr.shape.num_elements > self.options.max_result_elements:
            return False
        if any(o.opcode is not Opcode.CONSTANT or not o.shape.is_array
               or o.shape.num_elements > self.options.max_operand_elements
               for o in instr.operands):
            return False
        return not has_side_effects(instr)

    def _evaluate(self, evaluator: Evaluator, instr: HloInstruction) -> np.ndarray | None:
        kernel = EVAL.get(instr.opcode)
        if kernel is None:
            return None
        try:
            with np.errstate(all="ignore"):
                value = kernel(evaluator, instr, [o.attrs["literal"] for o in instr.operands])
        except (TfcompileError, ArithmeticError, ValueError) as e:
            # The evaluator refuses this input; leave the instruction for run time, where
            # the backend reports the problem with its own context.
            log.debug("constant_folding: %s not folded: %s", instr.name, e)
            return None
        dtype = instr.shape.element_type.numpy
        array = np.asarray(value)
        if array.dtype != dtype or array.shape != instr.shape.dims:
            return None
        return array.copy(order="C")
