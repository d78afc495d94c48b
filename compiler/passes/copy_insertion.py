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
Results that the module header aliases with a parameter (`input_output_alias`, donation)
are read here as `OutputAlias` records (`input_output_aliases`); buffer assignment decides
whether each is written in place or copied in at the end.
The evaluator sees copies as identities, so results are unchanged. Runs after fusion
(copies are not fused) and before buffer assignment. Idempotent: the copies it adds are
used once and are neither parameters nor constants.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

from compiler.pipeline import computations_to_visit
from hlo.attributes import Raw
from hlo.computation import HloComputation
from hlo.errors import CompileError
from hlo.instruction import HloInstruction
from hlo.module import HloModule
from hlo.opcodes import Opcode
from hlo.shape import Shape

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


@dataclass
class OutputAlias:
    """Result leaf `result` returned in the buffer of argument leaf `argument` (entry
    parameter `parameter`), as the module's input_output_alias asks.

    Attributes:
        direct: the result is written straight into the argument (no copy); False: it is
            copied there after every instruction has run.
        note: why (not) direct, for `explain()`.
    """

    result: int
    argument: int
    parameter: int
    direct: bool = False
    note: str = ""


_ALIAS_ENTRY = re.compile(r"\{([\d,\s]*)\}\s*:\s*\(\s*(\d+)\s*,\s*\{([\d,\s]*)\}[^)]*\)")


def input_output_aliases(module: HloModule) -> list[OutputAlias]:
    """The module header's input_output_alias as (result leaf, argument leaf) pairs.

    Raises:
        CompileError: an entry that names no array leaf of the entry's results/parameters,
            a result and parameter leaf of different shapes, or a leaf named twice.
    """
    raw = module.attrs.get("input_output_alias")
    if raw is None:
        return []
    text = raw.text if isinstance(raw, Raw) else str(raw)
    entry = module.entry_computation
    results = entry.program_shape().result
    params = sorted(entry.parameters, key=lambda p: p.attrs["parameter_number"])
    aliases = []
    for out_index, number, in_index in _ALIAS_ENTRY.findall(text):
        out = tuple(int(i) for i in out_index.replace(",", " ").split())
        arg = tuple(int(i) for i in in_index.replace(",", " ").split())
        parameter = int(number)
        result = _leaf_number(results, out)
        argument = None
        if parameter < len(params):
            before = sum(_leaf_count(p.shape) for p in params[:parameter])
            inside = _leaf_number(params[parameter].shape, arg)
            argument = None if inside is None else before + inside
        if result is None or argument is None:
            raise CompileError(f"{module.name}: input_output_alias {{{out_index}}}: "
                               f"({number}, {{{in_index}}}) names no array result and "
                               "parameter leaf")
        where = f"{module.name}: input_output_alias {{{out_index}}}: ({number}, {{{in_index}}})"
        out_shape = [s for s in results.leaves() if s.is_array][result]
        arg_shape = [s for p in params for s in p.shape.leaves() if s.is_array][argument]
        if not out_shape.compatible(arg_shape):
            raise CompileError(f"{where}: the result is {out_shape.to_text(with_layout=False)}"
                               f" but the parameter {arg_shape.to_text(with_layout=False)}")
        if any(a.result == result or a.argument == argument for a in aliases):
            raise CompileError(f"{where}: the result or the parameter is aliased twice")
        aliases.append(OutputAlias(result, argument, parameter))
    return aliases


def _leaf_count(shape: Shape) -> int:
    return sum(1 for s in shape.leaves() if s.is_array)


def _leaf_number(shape: Shape, index: tuple[int, ...]) -> int | None:
    """The position among `shape`'s array leaves of the leaf at shape index `index`."""
    number = 0
    for i in index:
        if not shape.is_tuple or i >= len(shape.tuple_shapes):
            return None
        number += sum(_leaf_count(s) for s in shape.tuple_shapes[:i])
        shape = shape.tuple_shapes[i]
    return number if shape.is_array else None
