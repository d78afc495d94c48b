"""Buffer assignment: pack the entry computation's temporaries into one arena.

Every array value the entry computation creates is a logical buffer. Entry parameters
are the caller's buffers and constants are static data; neither is in the arena. Values
that reach the entry root are written straight into the caller's result buffers (outputs
alias results), so they are not in the arena either. get-tuple-element, tuple, reshape,
bitcast and opt-barrier make no buffer: they name (part of) their operand's, as the CPU
backend treats them.

Liveness uses one sequential order of the instructions, which the backend must follow: a
list schedule (as XLA's memory scheduler) that, among the instructions whose operands are
computed, runs first the one that frees the most bytes net of what it defines, ties going
to post order; side-effecting instructions keep their relative order. A buffer lives from
the step that defines it to the last step that reads it (through any alias). An elementwise
instruction, a loop fusion (kLoop) through an operand that reaches its root only through
elementwise ops (read at the very index it writes), or a dynamic-update-slice's operand 0,
may write in place into an operand buffer that dies at that very step and has the same
size. So may a reduce-window into the start of a larger dying operand when no window reads
behind the element it writes (no low padding or base dilation; see `_reads_ahead`): its
output then shares that buffer's offset, and the rest of the operand's space is free from
that step on. Remaining buffers are packed
greedily, largest first, at the lowest offset not overlapping any buffer live at the same
time. In the entry computation, the caller's result buffers hold temporaries too before
their result is written (XLA counts output allocations apart from its temporaries as
well): a buffer that dies before the step that writes a result, or that this step updates
in place, may live in that result's buffer, when it fits and the result's element type is
at least as aligned. Computations called by while/call/conditional are handled
conservatively: each
gets one block, the sum of its own temporaries, live for the whole run; fused
computations need none (their values stay in registers).

A backend assigns each computation it emits as a function (`computation=`), leaves out
the conservative callee blocks (`callee_blocks=False`) and instead adds, with
`place_scratch`, the bytes each instruction needs only while it runs (kernel scratch, the
arenas of the computations it calls), packed around the buffers live at that step.

Donation: the module header's `input_output_alias={ {k}: (p, {}, may-alias) }` asks that
result leaf k be returned in parameter p's buffer. The result is written straight into the
parameter (`OutputAlias.direct`) when every other read of the parameter happens before the
step that writes the result and that step reads the parameter only at the index it writes
(as an in-place update), or not at all; otherwise it is computed in the arena and copied
into the parameter once every instruction has run, and `OutputAlias.note` says why.

`assign_buffers(module)` returns a BufferAssignment (compiler/passes/buffers.py) with
offsets, the arena size, the no-reuse size and `explain()`. `BufferAssignmentPass` runs
it in a pipeline without changing the module and keeps the result.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from compiler.passes.buffers import (
    Allocation,
    BufferAssignment,
    LogicalBuffer,
    aligned,
    buffer_leaves,
    lowest_common_gap,
    lowest_gap,
)
from compiler.passes.buffers import ValueBuffers as _Value
from compiler.passes.copy_insertion import OutputAlias, input_output_aliases
from compiler.passes.scheduling import ALIASING_OPCODES as _ALIASING
from compiler.passes.scheduling import memory_schedule
from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType
from hlo.errors import CompileError
from hlo.instruction import HloInstruction
from hlo.module import HloModule
from hlo.opcodes import Opcode, Trait
from hlo.shape import Shape

log = logging.getLogger(__name__)

ALIGNMENT = 64
_CALLS_CODE = frozenset({Opcode.WHILE, Opcode.CALL, Opcode.CONDITIONAL})


def _define(instr: HloInstruction, shape: Shape, kind: str, step: int,
            index: tuple[int, ...] = ()) -> _Value:
    """Buffers for every array leaf of `shape`."""
    if shape.is_tuple:
        return tuple(_define(instr, s, kind, step, (*index, i))
                     for i, s in enumerate(shape.tuple_shapes))
    if not shape.is_array:
        return None
    return LogicalBuffer(instr.name, shape, kind, index, step, step, shape.byte_size)


def _alias(instr: HloInstruction, operands: list[_Value]) -> _Value:
    if instr.opcode is Opcode.TUPLE:
        return tuple(operands)
    if instr.opcode is Opcode.GET_TUPLE_ELEMENT:
        source = operands[0]
        assert isinstance(source, tuple)
        element: _Value = source[instr.attrs["index"]]
        return element
    if instr.opcode is Opcode.AFTER_ALL:
        return None
    return operands[0]


def _elementwise_operands(fusion: HloInstruction) -> set[int]:
    """Operand numbers of a loop fusion that are read only at the index being written:
    their fused parameter reaches the root through elementwise ops alone."""
    comp = fusion.attrs["calls"]
    root = comp.root
    if root is None or not root.shape.is_array:
        return set()
    safe = set()
    for param in comp.parameters:
        if param.shape.dims != root.shape.dims:
            continue
        stack, seen, ok = list(param.users), set(), True
        while stack and ok:
            user = stack.pop()
            if id(user) in seen:
                continue
            seen.add(id(user))
            ok = user.has(Trait.ELEMENTWISE) and user.shape.dims == root.shape.dims
            stack.extend(user.users)
        if ok:
            safe.add(param.attrs["parameter_number"])
    return safe


def _reads_ahead(instr: HloInstruction) -> bool:
    """Whether a single-input reduce-window, run in row-major output order, reads every
    input element at or after the position (in elements) of the output it writes, so that
    it may overwrite the start of its input as it goes.

    Output j's window starts at input j_d * stride_d - padding_low_d in each dimension d;
    with no low padding and no base dilation its linear position is at least
    sum_d j_d * stride_d * (input stride of d), which is at least j's own linear position
    sum_d j_d * (output stride of d) when stride_d * (input stride of d) >= (output stride
    of d) for every d.
    """
    if instr.opcode is not Opcode.REDUCE_WINDOW or len(instr.operands) != 2:
        return False
    source = instr.operands[0].shape
    if not source.is_array or source.element_type != instr.shape.element_type:
        return False
    dims = instr.attrs["window"].dims
    if any(wd.padding_low > 0 or wd.base_dilation != 1 for wd in dims):
        return False
    in_stride = out_stride = 1
    for d in reversed(range(len(dims))):
        if dims[d].stride * in_stride < out_stride:
            return False
        in_stride *= source.dims[d]
        out_stride *= instr.shape.dims[d]
    return True


def callee_bytes(comp: HloComputation, alignment: int = ALIGNMENT) -> int:
    """Conservative temporaries of a called computation: every buffer it makes, no reuse."""
    total = 0
    for instr in comp.instructions:
        if instr.opcode in _ALIASING or instr.opcode in (Opcode.PARAMETER, Opcode.CONSTANT):
            continue
        if instr is not comp.root:
            total += sum(aligned(s.byte_size, alignment) for s in instr.shape.leaves()
                         if s.is_array)
        if instr.opcode in _CALLS_CODE:
            total += sum(callee_bytes(c, alignment) for c in instr.called_computations())
    return total


def _definers(value: HloInstruction) -> list[HloInstruction]:
    """The instruction that computes each array leaf of `value` (looking through tuple,
    get-tuple-element, reshape and bitcast, which make no buffer)."""
    if value.opcode is Opcode.TUPLE:
        return [d for o in value.operands for d in _definers(o)]
    instr = value
    while instr.opcode in (Opcode.GET_TUPLE_ELEMENT, Opcode.RESHAPE, Opcode.BITCAST):
        source = instr.operands[0]
        if instr.opcode is Opcode.GET_TUPLE_ELEMENT and source.opcode is Opcode.TUPLE:
            source = source.operands[instr.attrs["index"]]
        instr = source
    return [instr] * sum(1 for s in value.shape.leaves() if s.is_array)


def _element_alignment(b: LogicalBuffer) -> int:
    return int(b.shape.element_type.numpy.alignment)


class _Assigner:
    def __init__(self, module: HloModule, alignment: int, computation: HloComputation | None,
                 callee_blocks: bool, result_space: bool = True,
                 windows_in_place_below: int | None = None) -> None:
        self.module = module
        self.windows_in_place_below = windows_in_place_below
        self.alignment = alignment
        self.entry = computation if computation is not None else module.entry_computation
        self.callee_blocks = callee_blocks
        # Only the entry's results are the caller's own, distinct buffers: a called
        # computation's result buffers may be its caller's (loop state updated in place).
        self.is_entry = self.entry is module.entry_computation
        self.result_space = result_space and self.is_entry
        self.aliases = input_output_aliases(module) if self.is_entry else []
        self.order = memory_schedule(self.entry, self._reads_first())
        self.values: dict[int, _Value] = {}
        self.buffers: list[LogicalBuffer] = []
        self.readers: dict[int, list[tuple[int, str]]] = {}  # buffer -> (step, reader)
        self.roots: list[LogicalBuffer] = []  # the root's leaves, one per result

    def _reads_first(self) -> list[tuple[HloInstruction, HloInstruction]]:
        """(parameter, writer of its aliased result) for the schedule: the other reads of a
        donated parameter go first where they can, so the result can be written in place."""
        if not self.aliases:
            return []
        assert self.entry.root is not None
        writers = _definers(self.entry.root)
        params = {p.attrs["parameter_number"]: p for p in self.entry.parameters}
        return [(params[a.parameter], writers[a.result]) for a in self.aliases
                if params[a.parameter].shape.is_array]

    def run(self) -> BufferAssignment:
        self._build_values()
        self._decide_aliases()
        allocations = self._allocations()
        in_results = self._pack(allocations)
        arena = [a for a in allocations if a.result is None]
        steps = [i.name for i in self.order]
        return BufferAssignment(self.module.name, self.buffers, arena, self.alignment,
                                steps, self.order, self.values, self.aliases, in_results)

    # --- values and liveness ----------------------------------------------------------------

    def _build_values(self) -> None:
        last = len(self.order)
        for step, instr in enumerate(self.order):
            operands = [self.values[id(o)] for o in instr.operands]
            for value in operands:
                for b in buffer_leaves(value):
                    b.end = max(b.end, step)
                    self.readers.setdefault(id(b), []).append((step, instr.name))
            if instr.opcode in _ALIASING:
                value = _alias(instr, operands)
            else:
                kind = {Opcode.PARAMETER: "parameter", Opcode.CONSTANT: "constant"}.get(
                    instr.opcode, "temp")
                value = _define(instr, instr.shape, kind, step)
                self.buffers.extend(buffer_leaves(value))
            self.values[id(instr)] = value
        assert self.entry.root is not None
        self.roots = buffer_leaves(self.values[id(self.entry.root)])
        for k, b in enumerate(self.roots):
            b.end = last
            if b.kind == "temp":
                b.kind = "output"
                b.note = f"written straight into result {k}"
        for b in self.buffers:
            if b.kind == "parameter":
                b.note, b.end = "the caller's argument buffer", last
            elif b.kind == "constant":
                b.note = "static data in the object file"

    # --- donation -----------------------------------------------------------------------------

    def _decide_aliases(self) -> None:
        """Whether each aliased result can be written straight into its argument."""
        arguments = [b for p in sorted(self.entry.parameters,
                                       key=lambda p: p.attrs["parameter_number"])
                     for b in buffer_leaves(self.values[id(p)])]
        for alias in self.aliases:
            arg, out = arguments[alias.argument], self.roots[alias.result]
            others = [k for k, b in enumerate(self.roots) if b is arg and k != alias.result]
            if others:
                raise CompileError(
                    f"{self.module.name}: result {alias.result} is to be returned in "
                    f"parameter {alias.parameter}'s buffer, which is also returned as "
                    f"result {others[0]}: copy one of them first")
            alias.direct, alias.note = self._alias_verdict(alias, arg, out)
            if not alias.direct and out.kind == "output":
                out.kind = "temp"  # computed in the arena, copied into the argument
            out.note = f"aliased with {arg.label}: {alias.note}"

    def _alias_verdict(self, alias: OutputAlias, arg: LogicalBuffer,
                       out: LogicalBuffer) -> tuple[bool, str]:
        if out is arg:
            return True, "the argument itself is returned"
        if out.kind != "output":
            return False, f"the result is a {out.kind} buffer"
        first = next(k for k, b in enumerate(self.roots) if b is out)
        if first != alias.result:
            return False, f"the result's buffer is result {first}'s"
        writer = self.order[out.start]
        later = [(s, n) for s, n in self.readers.get(id(arg), []) if s > out.start]
        if later:
            return False, (f"not in place: {arg.label} is still read by {later[0][1]} "
                           f"(step {later[0][0]}) after {writer.name} writes the result "
                           f"(step {out.start})")
        if not any(s == out.start for s, _ in self.readers.get(id(arg), [])):
            return True, (f"{writer.name} writes the result after every read of "
                          f"{arg.label}")
        reason = self._in_place_refusal(writer, out, arg)
        if reason is not None:
            return False, f"not in place: {reason}"
        return True, f"{writer.name} updates {arg.label} in place (read at the index written)"

    # --- in place and allocations -----------------------------------------------------------

    def _allocations(self) -> list[Allocation]:
        allocations: list[Allocation] = []
        for step, instr in enumerate(self.order):
            value = self.values[id(instr)]
            if not isinstance(value, LogicalBuffer) or value.kind != "temp" \
                    or value.start != step:
                for b in buffer_leaves(value):
                    if b.kind == "temp" and b.start == step and b.allocation is None:
                        allocations.append(self._new_allocation(b))
                continue
            host = self._in_place_host(step, instr, value)
            if host is not None and host.allocation is not None and host.size == value.size:
                alloc = host.allocation
                alloc.buffers.append(value)
                alloc.end = max(alloc.end, value.end)
                value.allocation = alloc
                value.note = (f"in place of {host.label} (it dies here and has the same "
                              "size)")
            elif host is not None and host.allocation is not None:
                alloc = self._new_allocation(value)
                host.allocation.pinned.append(alloc)
                allocations.append(alloc)
                value.note = (f"in place over the start of {host.label} (it dies here, and "
                              "no window reads behind the element written)")
            else:
                allocations.append(self._new_allocation(value))
        for comp in self._called() if self.callee_blocks else []:
            size = callee_bytes(comp, self.alignment)
            b = LogicalBuffer(comp.name, Shape.array(PrimitiveType.U8, (size,)), "callee", (), 0,
                              len(self.order), size,
                              note="temporaries of a called computation, live throughout "
                                   "(handled conservatively)")
            self.buffers.append(b)
            allocations.append(self._new_allocation(b))
        return allocations

    def _new_allocation(self, b: LogicalBuffer) -> Allocation:
        alloc = Allocation([b], aligned(b.size, self.alignment), b.start, b.end)
        b.allocation = alloc
        return alloc

    def _in_place_operands(self, instr: HloInstruction) -> tuple[list[HloInstruction],
                                                                 set[int]]:
        """The operands `instr` reads only at the index it writes (so it may overwrite
        them), and the buffers it also reads at other indices."""
        if instr.has(Trait.ELEMENTWISE):
            return list(instr.operands), set()
        if instr.opcode is Opcode.DYNAMIC_UPDATE_SLICE:
            others = {id(leaf) for o in instr.operands[1:]
                      for leaf in buffer_leaves(self.values[id(o)])}
            return [instr.operands[0]], others
        if _reads_ahead(instr) and (self.windows_in_place_below is None
                                    or instr.shape.num_elements < self.windows_in_place_below):
            init = {id(leaf) for leaf in buffer_leaves(self.values[id(instr.operands[1])])}
            return [instr.operands[0]], init
        if instr.opcode is Opcode.FUSION and instr.attrs.get("kind") == "kLoop":
            safe = _elementwise_operands(instr)
            others = {id(leaf) for k, o in enumerate(instr.operands) if k not in safe
                      for leaf in buffer_leaves(self.values[id(o)])}
            return [instr.operands[k] for k in sorted(safe)], others
        return [], set()

    def _in_place_refusal(self, instr: HloInstruction, value: LogicalBuffer,
                          host: LogicalBuffer) -> str | None:
        """Why `instr` cannot write `value` over `host` at its own step (None: it can)."""
        candidates, others = self._in_place_operands(instr)
        if not any(self.values[id(o)] is host for o in candidates):
            return f"{instr.name} ({instr.opcode.value}) reads {host.label} at other indices"
        if id(host) in others:
            what = "the update or an index" if instr.opcode is Opcode.DYNAMIC_UPDATE_SLICE \
                else "an operand read at other indices"
            return f"{host.label} is also read as {what}"
        if host.size != value.size and not (host.size > value.size and _reads_ahead(instr)):
            return f"{host.label} has a different size"
        return None

    def _in_place_host(self, step: int, instr: HloInstruction,
                       value: LogicalBuffer) -> LogicalBuffer | None:
        """The operand buffer `instr` can overwrite, or None (with the reason noted)."""
        candidates, _ = self._in_place_operands(instr)
        reasons = []
        for o in candidates:
            host = self.values[id(o)]
            if not isinstance(host, LogicalBuffer):
                continue
            refusal = self._in_place_refusal(instr, value, host)
            if refusal is not None:
                reasons.append(refusal)
            elif host.kind != "temp":
                reasons.append(f"{host.label} is a {host.kind} buffer")
            elif host.end > step:
                later = [n for s, n in self.readers.get(id(host), []) if s > step]
                reasons.append(f"{host.label} is still read later by {later[0]}")
            else:
                return host
        if reasons:
            value.note = "not in place: " + "; ".join(reasons)
        return None

    def _called(self) -> list[HloComputation]:
        found: list[HloComputation] = []
        seen: set[int] = set()
        for instr in self.order:
            if instr.opcode not in _CALLS_CODE:
                continue
            for comp in instr.called_computations():
                if id(comp) not in seen:
                    seen.add(id(comp))
                    found.append(comp)
        return found

    # --- packing ------------------------------------------------------------------------------

    def _pack(self, allocations: list[Allocation]) -> list[Allocation]:
        """Place every allocation, largest first: in a result's buffer if one is free while
        it lives, else at the lowest arena offset free while it lives. Returns the former."""
        pinned = {id(p) for a in allocations for p in a.pinned}
        ordered = sorted((a for a in allocations if id(a) not in pinned),
                         key=lambda a: (-a.size, a.start))
        slots = self._result_slots()
        placed: list[Allocation] = []
        in_results: list[Allocation] = []
        for alloc in ordered:
            if not alloc.pinned and self._into_result(alloc, slots):
                in_results.append(alloc)
                continue
            group = alloc.group()
            live = [p for p in placed if p.start <= alloc.end and alloc.start <= p.end]
            offset = lowest_gap(live, alloc.size) if len(group) == 1 \
                else lowest_common_gap(group, placed)
            for member in group:
                member.offset = offset
            alloc.note = self._why(alloc, placed, live)
            placed.extend(group)
            first = alloc.buffers[0]
            first.note = f"{alloc.note}; {first.note}" if first.note else alloc.note
        return in_results

    def _result_slots(self) -> list[tuple[int, LogicalBuffer, list[Allocation]]]:
        """(result number, its buffer, the allocations it holds) of each result buffer free
        for temporaries before it is written: the entry's own outputs, not aliased ones."""
        if not self.result_space:
            return []
        aliased = {a.result for a in self.aliases}
        slots = []
        for k, b in enumerate(self.roots):
            first = next(j for j, r in enumerate(self.roots) if r is b)
            if b.kind == "output" and first == k and k not in aliased and b.size > 0:
                slots.append((k, b, []))
        return sorted(slots, key=lambda s: s[1].size)  # best fit: smallest first

    def _into_result(self, alloc: Allocation,
                     slots: list[tuple[int, LogicalBuffer, list[Allocation]]]) -> bool:
        """Place `alloc` in a result buffer that is free while it lives, if one is."""
        need = alloc.bytes_used
        if alloc.size == 0 or any(b.kind != "temp" for b in alloc.buffers):
            return False
        align = max(_element_alignment(b) for b in alloc.buffers)
        for k, out, held in slots:
            if need > out.size or align > _element_alignment(out):
                continue
            if alloc.end == out.start and self._updated_in_place(alloc, out):
                limit = 0  # the result overwrites its last buffer element by element
            elif alloc.end < out.start:
                limit = out.size - need
            else:
                continue
            live = [a for a in held if a.start <= alloc.end and alloc.start <= a.end]
            offset = lowest_gap(live, need)
            if offset > limit:
                continue
            alloc.offset, alloc.result = offset, k
            alloc.note = (f"in result {k}'s buffer ({out.label}), which is written only "
                          f"at step {out.start}")
            first = alloc.buffers[0]
            first.note = f"{alloc.note}; {first.note}" if first.note else alloc.note
            held.append(alloc)
            return True
        return False

    def _updated_in_place(self, alloc: Allocation, out: LogicalBuffer) -> bool:
        """Whether `out`'s writer overwrites the buffer of `alloc` that dies at its step."""
        last = max(alloc.buffers, key=lambda b: b.end)
        return last.size == out.size and self._in_place_refusal(
            self.order[out.start], out, last) is None

    def _why(self, alloc: Allocation, placed: list[Allocation], live: list[Allocation]) -> str:
        reused = [p for p in placed if p not in live and p.offset < alloc.offset + alloc.size
                  and alloc.offset < p.offset + p.size]
        if reused:
            other = reused[0]
            return (f"reuses the space of {other.name} (live at steps {other.start}-"
                    f"{other.end} only, apart from this one)")
        if not placed:
            return "fresh space (the first, largest buffer)"
        big_enough = [p.name for p in live if p.size >= alloc.size]
        if big_enough:
            return f"not reused: live ranges overlap with {', '.join(big_enough[:4])}"
        return "fresh space (no earlier buffer is large enough)"


def assign_buffers(module: HloModule, alignment: int = ALIGNMENT, *,
                   computation: HloComputation | None = None,
                   callee_blocks: bool = True, result_space: bool = True,
                   windows_in_place_below: int | None = None) -> BufferAssignment:
    """Assign arena offsets to the temporaries of `computation` (default: the entry).

    Args:
        module: the module that holds the computation.
        alignment: every allocation's offset and size are multiples of this.
        computation: the computation whose values to assign; its parameters are the
            caller's buffers and its root's leaves the caller's result buffers.
        callee_blocks: reserve a conservative block for each computation called by
            while/call/conditional (False: the caller adds what they need with
            `place_scratch`).
        result_space: let temporaries live in the entry's result buffers before the
            results are written (False: only in the arena).
        windows_in_place_below: write a reduce-window over its input only when it has
            fewer output elements than this (None: any size). A window written in place
            must run on one thread, so a backend that splits larger ones across threads
            keeps them out of place.
    """
    assignment = _Assigner(module, alignment, computation, callee_blocks, result_space,
                           windows_in_place_below).run()
    log.debug("buffer_assignment: %s: arena %d bytes, %d without reuse", module.name,
              assignment.temp_bytes, assignment.no_reuse_bytes)
    return assignment


class BufferAssignmentPass:
    """Runs `assign_buffers` in a pipeline; keeps the result and never changes the module."""

    name: ClassVar[str] = "buffer_assignment"

    def __init__(self, alignment: int = ALIGNMENT) -> None:
        self.alignment = alignment
        self.assignment: BufferAssignment | None = None

    def run(self, module: HloModule) -> bool:
        self.assignment = assign_buffers(module, self.alignment)
        return False

    def explain(self) -> str:
        return self.assignment.explain() if self.assignment is not None else ""
