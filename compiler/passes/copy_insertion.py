"""Copy insertion: add the copies that make in-place updates of buffers safe.

A backend that updates loop state in place, or writes results into their own buffers,
must never overwrite a value someone else still reads. This pass makes that explicit:
- while: each array element of the initial state that is an entry parameter, a constant,
  or a value used elsewhere too, is copied first, so the loop owns its state buffers;
- while bodies: a root element that is a parameter element moved to another position, a
  constant, or an element that appears twice, is copied, so that writing one element of
  the next state never clobbers another that is still to be read;
- the entry root: an element that is an entry parameter or a constant, or appears twice,
  is copied, so entry parameters are never written and every result has its own buffer.
The evaluator sees copies as identities, so results are unchanged. Runs after fusion
(copies are not fused) and before buffer assignment. Idempotent: the copies it adds are
used once and are neither parameters nor constants.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import ClassVar

from compiler.pipeline import computations_to_visit
from hlo.computation import HloComputation
from hlo.instruction import HloInstruction
from hlo.module import HloModule
from hlo.opcodes import Opcode

log = logging.getLogger(__name__)


def _copy(comp: HloComputation, value: HloInstruction) -> HloInstruction:
    return comp.add(Opcode.COPY, [value], shape=value.shape, name=f"{value.name}.copy")


# Instructions whose value is (part of) their operand's buffer, not a new one.
_ALIASING = frozenset({Opcode.GET_TUPLE_ELEMENT, Opcode.RESHAPE, Opcode.BITCAST})


def _is_read_only(value: HloInstruction, entry: bool) -> bool:
    """Whether `value` is, or aliases, a buffer nobody may write: a constant, or a
    parameter of the entry computation."""
    while value.opcode in _ALIASING:
        source = value.operands[0]
        if value.opcode is Opcode.GET_TUPLE_ELEMENT and source.opcode is Opcode.TUPLE:
            source = source.operands[value.attrs["index"]]
        value = source
    return value.opcode is Opcode.CONSTANT or (entry and value.opcode is Opcode.PARAMETER)


def _elements(comp: HloComputation, value: HloInstruction) -> list[HloInstruction]:
    """The elements of a tuple value as instructions (reading a tuple op directly)."""
    if value.opcode is Opcode.TUPLE:
        return list(value.operands)
    return [comp.add(Opcode.GET_TUPLE_ELEMENT, [value], index=i)
            for i in range(len(value.shape.tuple_shapes))]


def _rebuild(comp: HloComputation, value: HloInstruction, fix: list[bool],
             elements: list[HloInstruction]) -> HloInstruction:
    """A tuple like `value` whose flagged elements are copies."""
    parts = [_copy(comp, e) if f else e for e, f in zip(elements, fix, strict=True)]
    return comp.add(Opcode.TUPLE, parts, shape=value.shape)


class CopyInsertion:
    """Inserts copies at loop state and entry results (see the module docstring)."""

    name: ClassVar[str] = "copy_insertion"

    def run(self, module: HloModule) -> bool:
        changed = False
        entry = module.entry_computation
        for comp in computations_to_visit(module):
            for loop in [i for i in comp.instructions if i.opcode is Opcode.WHILE]:
                changed |= self._loop_init(comp, loop, comp is entry)
                changed |= self._loop_body(loop.attrs["body"])
        changed |= self._entry_root(entry)
        return changed

    def _loop_init(self, comp: HloComputation, loop: HloInstruction, entry: bool) -> bool:
        init = loop.operands[0]
        if not init.shape.is_tuple:
            if init.opcode is Opcode.COPY or not (_is_read_only(init, entry)
                                                  or len(init.users) > 1):
                return False
            loop.replace_operand(0, _copy(comp, init))
            return True
        if init.opcode is not Opcode.TUPLE:
            return False  # a tuple-shaped parameter or call result: its elements are fresh
        counts = Counter(id(o) for o in init.operands)
        fix = [o.shape.is_array and o.opcode is not Opcode.COPY
               and (_is_read_only(o, entry) or len(o.users) > 1 or counts[id(o)] > 1)
               for o in init.operands]
        if not any(fix):
            return False
        if len(init.users) > 1:  # others read this tuple too: give the loop its own
            loop.replace_operand(0, _rebuild(comp, init, fix, list(init.operands)))
        else:
            for i, f in enumerate(fix):
                if f:
                    init.replace_operand(i, _copy(comp, init.operands[i]))
        log.debug("copy_insertion: copied %d element(s) of %s's initial state",
                  sum(fix), loop.name)
        return True

    def _loop_body(self, body: HloComputation) -> bool:
        root = body.root
        if root is None or root.opcode is not Opcode.TUPLE:
            return False
        counts = Counter(id(o) for o in root.operands)
        fix = []
        for i, o in enumerate(root.operands):
            moved = (o.opcode is Opcode.GET_TUPLE_ELEMENT
                     and o.operands[0].opcode is Opcode.PARAMETER and o.attrs["index"] != i)
            fix.append(o.shape.is_array and o.opcode is not Opcode.COPY
                       and (moved or o.opcode is Opcode.CONSTANT or counts[id(o)] > 1))
        if not any(fix):
            return False
        for i, f in enumerate(fix):
            if f:
                root.replace_operand(i, _copy(body, root.operands[i]))
        log.debug("copy_insertion: copied %d element(s) of %s's next state", sum(fix),
                  body.name)
        return True

    def _entry_root(self, entry: HloComputation) -> bool:
        root = entry.root
        assert root is not None
        if not root.shape.is_tuple:
            if root.shape.is_array and _is_read_only(root, entry=True):
                entry.set_root(_copy(entry, root))
                return True
            return False
        if root.opcode is not Opcode.TUPLE:
            return False
        counts = Counter(id(o) for o in root.operands)
        fix = [o.shape.is_array and o.opcode is not Opcode.COPY
               and (_is_read_only(o, entry=True) or counts[id(o)] > 1)
               for o in root.operands]
        if not any(fix):
            return False
        entry.set_root(_rebuild(entry, root, fix, list(root.operands)))
        entry.remove_dead()
        log.debug("copy_insertion: copied %d entry result element(s)", sum(fix))
        return True
