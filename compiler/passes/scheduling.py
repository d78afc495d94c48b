"""The memory schedule: one sequential order of a computation's instructions that keeps few
bytes live, which buffer assignment computes liveness over and the backend then follows.

A greedy list schedule (as XLA's memory scheduler): among the instructions whose operands
are computed, run first the one that frees the most bytes net of what it defines, ties
going to post order; side-effecting instructions keep their relative order.
"""

from __future__ import annotations

from collections.abc import Sequence

from hlo.computation import HloComputation
from hlo.errors import InternalError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode, Trait

# Opcodes that make no buffer of their own: they name (part of) their operands' buffers,
# as the CPU backend treats them.
ALIASING_OPCODES = frozenset({Opcode.GET_TUPLE_ELEMENT, Opcode.TUPLE, Opcode.RESHAPE,
                              Opcode.BITCAST, Opcode.OPTIMIZATION_BARRIER, Opcode.AFTER_ALL})

# Above this many instructions the schedule is the post order: the list scheduler looks
# at every ready instruction at every step (quadratic), and compile time matters more.
_SCHEDULE_LIMIT = 4000


def memory_schedule(comp: HloComputation,
                    reads_first: Sequence[tuple[HloInstruction, HloInstruction]] = ()
                    ) -> list[HloInstruction]:
    """Every instruction of `comp` (dead ones too), operands first, in an order that keeps
    few bytes live: a greedy list schedule (see the module docstring).

    Each (parameter, writer) of `reads_first` asks that every other reader of the parameter
    that does not depend on the writer run before it (so that the writer may update the
    parameter's buffer in place: donation); dropped if they cannot all hold at once."""
    order = comp.post_order()
    if len(order) > _SCHEDULE_LIMIT:
        return order
    position = {id(i): k for k, i in enumerate(order)}
    # The buffers (defining instructions) each value names, through aliases.
    sources: dict[int, tuple[HloInstruction, ...]] = {}
    for instr in order:
        if instr.opcode in ALIASING_OPCODES:
            found = {id(s): s for o in instr.operands for s in sources[id(o)]}
            sources[id(instr)] = tuple(found.values())
        else:
            sources[id(instr)] = (instr,)
    reads = {id(i): {id(s): s for o in i.operands for s in sources[id(o)]} for i in order}
    remaining = {id(i): 0 for i in order}
    for instr in order:
        for key in reads[id(instr)]:
            remaining[key] += 1
    # Dependencies: operands, and the previous side-effecting instruction.
    waiting = {id(i): len({id(o) for o in i.operands}) for i in order}
    after: dict[int, list[HloInstruction]] = {id(i): [] for i in order}
    for instr in order:
        for user in {id(u): u for u in instr.users if id(u) in position}.values():
            after[id(instr)].append(user)
    effects = [i for i in order if i.has(Trait.SIDE_EFFECTING)]
    for first, then in zip(effects, effects[1:], strict=False):
        after[id(first)].append(then)
        waiting[id(then)] += 1
    for param, writer in reads_first:
        downstream = _dependents(writer)
        for instr in order:
            if instr is not writer and id(param) in reads[id(instr)] \
                    and id(instr) not in downstream:
                after[id(instr)].append(writer)
                waiting[id(writer)] += 1

    def own_bytes(instr: HloInstruction) -> int:
        if instr.opcode in ALIASING_OPCODES or instr.opcode in (Opcode.PARAMETER, Opcode.CONSTANT):
            return 0
        return sum(s.byte_size for s in instr.shape.leaves() if s.is_array)

    def priority(instr: HloInstruction) -> tuple[int, int]:
        freed = sum(own_bytes(s) for key, s in reads[id(instr)].items() if remaining[key] == 1)
        return freed - own_bytes(instr), -position[id(instr)]

    ready = [i for i in order if waiting[id(i)] == 0]
    scheduled: list[HloInstruction] = []
    while ready:
        best = max(ready, key=priority)
        ready.remove(best)
        scheduled.append(best)
        for key in reads[id(best)]:
            remaining[key] -= 1
        for user in after[id(best)]:
            waiting[id(user)] -= 1
            if waiting[id(user)] == 0:
                ready.append(user)
    if len(scheduled) != len(order):
        if reads_first:  # the requests contradict one another: schedule without them
            return memory_schedule(comp)
        raise InternalError(f"{comp.name}: cannot schedule (a cycle?)")
    return scheduled


def _dependents(instr: HloInstruction) -> set[int]:
    """Every instruction that (transitively) uses `instr`'s value, by id."""
    found: set[int] = set()
    stack = list(instr.users)
    while stack:
        user = stack.pop()
        if id(user) not in found:
            found.add(id(user))
            stack.extend(user.users)
    return found
