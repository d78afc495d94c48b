"""Tuple simplification: forward tuple elements and drop tuples rebuilt from their parts.

`get-tuple-element(tuple(a0, ..., an), i) => ai` and `tuple(gte(X, 0), ..., gte(X, n)) =>
X` when that rebuilds all of X in order. Both are pure bookkeeping, but they let other
passes see through the tuples that calls, loops and inlining leave behind.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from compiler.pipeline import ComputationPass
from hlo.computation import HloComputation
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode

log = logging.getLogger(__name__)


def _forwarded(instr: HloInstruction) -> HloInstruction | None:
    """What a get-tuple-element or tuple can be replaced by, if anything."""
    if instr.opcode is Opcode.GET_TUPLE_ELEMENT:
        (source,) = instr.operands
        if source.opcode is Opcode.TUPLE:
            element: HloInstruction = source.operands[instr.attrs["index"]]
            return element
        return None
    if instr.opcode is not Opcode.TUPLE or not instr.operands:
        return None
    first = instr.operands[0]
    if first.opcode is not Opcode.GET_TUPLE_ELEMENT:
        return None
    whole = first.operands[0]
    if len(whole.shape.tuple_shapes) != len(instr.operands):
        return None
    for i, o in enumerate(instr.operands):
        if (o.opcode is not Opcode.GET_TUPLE_ELEMENT or o.operands[0] is not whole
                or o.attrs["index"] != i):
            return None
    return whole if whole.shape.compatible(instr.shape) else None


class TupleSimplifier(ComputationPass):
    """Forwards tuple elements through get-tuple-element and removes rebuilt tuples."""

    name: ClassVar[str] = "tuple_simplifier"

    def run_on(self, comp: HloComputation) -> bool:
        changed = False
        for instr in comp.post_order():
            if instr.parent is not comp:
                continue
            replacement = _forwarded(instr)
            if replacement is None:
                continue
            log.debug("tuple_simplifier: %s => %s", instr.name, replacement.name)
            instr.replace_all_uses_with(replacement)
            changed = True
        if changed:
            comp.remove_dead()
        return changed
