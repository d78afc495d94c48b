"""Common subexpression elimination: one instruction per distinct (opcode, operands, attrs).

Two instructions are the same expression when they have the same opcode, shape (layout
included), operands and attributes; for commutative binary ops the operand order does not
matter. Called computations compare by identity, constants by their bytes (so -0.0 and
0.0 stay apart), and the verbatim attributes every instruction may carry (metadata,
sharding, ...) are ignored, as XLA's CSE ignores metadata. Parameters, copies (copy
insertion adds them to give a value its own buffer) and instructions with side effects
(their own or in a called computation) are never merged. The later duplicate is replaced
by the earlier one and removed. Identical called computations are not merged.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Any, ClassVar

import numpy as np

from compiler.passes.hlo_utils import has_side_effects
from compiler.pipeline import ComputationPass
from hlo.computation import HloComputation
from hlo.instruction import HloInstruction
from hlo.opcodes import COMMON_ATTRS, Opcode, Trait

log = logging.getLogger(__name__)

_IGNORED_ATTRS = frozenset(spec.name for spec in COMMON_ATTRS)


def _attr_key(value: Any) -> Hashable:
    """A hashable stand-in for an attribute value."""
    if isinstance(value, np.ndarray):
        data = value.copy(order="C")
        return ("array", str(data.dtype), data.shape, data.tobytes())
    if isinstance(value, (list, tuple)):
        return tuple(_attr_key(v) for v in value)
    if hasattr(value, "program_shape"):  # an HloComputation: identity, not structure
        return ("computation", id(value))
    hashable: Hashable = value
    return hashable


def expression_key(instr: HloInstruction) -> Hashable:
    """What makes two instructions interchangeable (see the module docstring)."""
    operands = [id(o) for o in instr.operands]
    if instr.has(Trait.COMMUTATIVE) and len(operands) == 2:
        operands.sort()
    attrs = tuple(sorted((k, _attr_key(v)) for k, v in instr.attrs.items()
                         if k not in _IGNORED_ATTRS))
    return (instr.opcode, instr.shape, tuple(operands), attrs)


def _mergeable(instr: HloInstruction) -> bool:
    if instr.opcode in (Opcode.PARAMETER, Opcode.COPY) or has_side_effects(instr):
        return False  # copies exist to give a value its own buffer (copy_insertion)
    # Tokens order side effects; two after-alls are two orderings, not one value.
    return not instr.shape.is_token


class CommonSubexpressionElimination(ComputationPass):
    """Merges identical instructions in each non-fusion computation."""

    name: ClassVar[str] = "cse"

    def run_on(self, comp: HloComputation) -> bool:
        seen: dict[Hashable, HloInstruction] = {}
        changed = False
        # Post order: an instruction's operands are already canonical when it is keyed.
        for instr in comp.post_order():
            if instr.parent is not comp or not _mergeable(instr):
                continue
            key = expression_key(instr)
            first = seen.get(key)
            if first is None:
                seen[key] = instr
                continue
            log.debug("cse: %s is the same as %s", instr.name, first.name)
            instr.replace_all_uses_with(first)
            if not instr.users and instr is not comp.root:
                comp.remove(instr)
            changed = True
        return changed
