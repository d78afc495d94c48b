"""What buffer assignment produces (compiler/passes/buffer_assignment.py decides it): the
logical buffers of a computation's values, the arena allocations they share, and the
assignment as a whole, with its sizes and its explanation."""

from __future__ import annotations

from dataclasses import dataclass, field

from compiler.passes.copy_insertion import OutputAlias
from hlo.dtypes import PrimitiveType
from hlo.instruction import HloInstruction
from hlo.shape import Shape


def aligned(size: int, alignment: int) -> int:
    """`size` rounded up to a multiple of `alignment`."""
    return (size + alignment - 1) // alignment * alignment


def lowest_gap(live: list[Allocation], size: int) -> int:
    """The lowest offset where `size` bytes overlap none of the `live` allocations."""
    offset = 0
    for a in sorted(live, key=lambda a: a.offset):
        if a.size == 0:
            continue
        if offset + size <= a.offset:
            break  # fits in the gap below a (and so below every later one)
        offset = max(offset, a.offset + a.size)
    return offset


def lowest_common_gap(group: list[Allocation], placed: list[Allocation]) -> int:
    """The lowest offset at which every allocation of `group` overlaps none of the `placed`
    allocations live at the same time as it (they all take that one offset)."""

    def fits(offset: int) -> bool:
        return all(p.size == 0 or m.size == 0 or offset + m.size <= p.offset
                   or p.offset + p.size <= offset
                   for m in group for p in placed if p.start <= m.end and m.start <= p.end)

    candidates = sorted({0, *(p.offset + p.size for p in placed)})
    return next(c for c in candidates if fits(c))


@dataclass(eq=False)
class LogicalBuffer:
    """One array buffer: who defines it, how big, when it lives, where it went.

    Attributes:
        kind: "temp" (in the arena), "output", "parameter", "constant" or "callee".
        index: position of the leaf within a tuple-shaped value (() for arrays).
        start, end: the steps (schedule positions) of the definition and the last use.
        note: why it ended where it did, for `explain()`.
    """

    name: str
    shape: Shape
    kind: str
    index: tuple[int, ...] = ()
    start: int = 0
    end: int = 0
    size: int = 0
    allocation: Allocation | None = None
    note: str = ""

    @property
    def label(self) -> str:
        suffix = "".join(f"[{i}]" for i in self.index)
        return f"{self.name}{suffix}"


@dataclass(eq=False)
class Allocation:
    """A slice of the arena shared by buffers that follow one another (in place)."""

    buffers: list[LogicalBuffer]
    size: int
    start: int
    end: int
    offset: int = -1
    note: str = ""
    # The result leaf whose buffer holds this allocation (at `offset`), None for the arena.
    result: int | None = None
    # Smaller allocations written in place over this one's start as it dies: they take the
    # same offset (a reduce-window over its dying input).
    pinned: list[Allocation] = field(default_factory=list)

    def group(self) -> list[Allocation]:
        """This allocation and every one pinned to it, directly or not."""
        members = [self]
        for p in self.pinned:
            members.extend(p.group())
        return members

    @property
    def name(self) -> str:
        return self.buffers[0].label

    @property
    def bytes_used(self) -> int:
        """The largest buffer it holds (`size` is that rounded up to the alignment)."""
        return max(b.size for b in self.buffers)


@dataclass
class BufferAssignment:
    """The result: buffers, allocations, sizes and the reasons behind them.

    `allocations` are the arena's; `in_results` those placed in the entry's result buffers
    before the results are written (`Allocation.result` says which)."""

    module: str
    buffers: list[LogicalBuffer]
    allocations: list[Allocation]
    alignment: int
    steps: list[str] = field(default_factory=list)
    # The schedule: the order in which the instructions run (`steps` are their names).
    order: list[HloInstruction] = field(default_factory=list)
    # id(instruction) -> its value: a LogicalBuffer, a tuple of values, or None (tokens).
    values: dict[int, ValueBuffers] = field(default_factory=dict)
    aliases: list[OutputAlias] = field(default_factory=list)
    in_results: list[Allocation] = field(default_factory=list)

    @property
    def temp_bytes(self) -> int:
        """Size of the arena: the end of the highest allocation."""
        return max((a.offset + a.size for a in self.allocations), default=0)

    @property
    def no_reuse_bytes(self) -> int:
        """What the arena would take with one slice per temporary and no in-place writes."""
        return sum(aligned(b.size, self.alignment) for b in self.buffers
                   if b.kind in ("temp", "callee", "scratch"))

    def offset_of(self, name: str, index: tuple[int, ...] = ()) -> int | None:
        """The arena offset of an instruction's buffer (None if it is not in the arena)."""
        for b in self.buffers:
            if b.name == name and b.index == index and b.allocation is not None:
                return None if b.allocation.result is not None else b.allocation.offset
        return None

    def value_of(self, instr: HloInstruction) -> ValueBuffers:
        """The buffers of `instr`'s value (the same objects for aliases of one buffer)."""
        return self.values[id(instr)]

    def place_scratch(self, step: int, size: int, name: str) -> int:
        """Arena offset of `size` bytes used only during `step` (kernel scratch, a called
        computation's arena): the lowest gap among allocations live at that step. The
        space joins the assignment, so `temp_bytes` includes it."""
        b = LogicalBuffer(name, Shape.array(PrimitiveType.U8, (size,)), "scratch", (), step,
                          step, size)
        alloc = Allocation([b], aligned(size, self.alignment), step, step)
        b.allocation = alloc
        live = [a for a in self.allocations if a.start <= step <= a.end]
        offset = lowest_gap(live, alloc.size)
        alloc.offset = offset
        b.note = "scratch of this step only"
        self.buffers.append(b)
        self.allocations.append(alloc)
        return offset

    def explain(self) -> str:
        """For each buffer: where it went and why not otherwise."""
        lines = [f"buffer assignment of module {self.module}: arena {self.temp_bytes} bytes "
                 f"(no reuse: {self.no_reuse_bytes} bytes), {self.alignment}-byte aligned"]
        for b in sorted(self.buffers, key=lambda b: (b.start, b.label)):
            place = "-"
            if b.allocation is not None:
                place = f"@{b.allocation.offset}"
                if b.allocation.result is not None:
                    place = f"r{b.allocation.result}@{b.allocation.offset}"
            lines.append(f"  step {b.start:>4}-{b.end:<4} {b.label:<28} "
                         f"{b.shape.to_text(with_layout=False):<20} {b.size:>9} B {place:>8}  "
                         f"{b.kind}: {b.note}")
        for a in self.aliases:
            how = "written in place" if a.direct else "copied at the end"
            lines.append(f"  result {a.result} aliases argument {a.argument} "
                         f"(parameter {a.parameter}): {how}: {a.note}")
        return "\n".join(lines) + "\n"


# A value: one buffer for an array, a tuple of values for a tuple, None for a token.
ValueBuffers = LogicalBuffer | tuple["ValueBuffers", ...] | None


def buffer_leaves(value: ValueBuffers) -> list[LogicalBuffer]:
    """The buffers of a value (an instruction's `BufferAssignment.value_of`), in order."""
    if value is None:
        return []
    if isinstance(value, LogicalBuffer):
        return [value]
    return [leaf for v in value for leaf in buffer_leaves(v)]
