"""The host-side execution plan of a compiled GPU module: buffers, launches, copies, control flow.

A `GpuProgram` is plain data. Every array value lives in a `Slot`: a byte range of the
per-call arena (parameters, temporaries, results) or of the constant pool (uploaded once
per executable). The plan is a list of `Step`s that the runtime interprets in order on one
stream: kernel `Launch`es with their slots as pointer arguments, device-to-device `Copy`s,
and the control flow that the host drives (`While` reads its predicate back after each
condition, `Conditional` reads its branch index). Tuples are Python tuples of slots and
tokens are None, so get-tuple-element, tuple, bitcast and copy cost nothing at run time.
This file builds no IR and runs nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

from backends.gpu.launch import LaunchDims
from backends.gpu.ptx import PtxModule
from hlo.shape import Shape


class Pool(enum.Enum):
    ARENA = "arena"          # allocated per executable, rewritten by every call
    CONSTANTS = "constants"  # uploaded once per executable, never written


@dataclass(frozen=True)
class Slot:
    """The device buffer of one array value: `shape.byte_size` bytes at `offset` in `pool`."""

    pool: Pool
    offset: int
    shape: Shape

    @property
    def nbytes(self) -> int:
        return self.shape.byte_size

    def reinterpret(self, shape: Shape) -> Slot:
        """The same bytes seen with another shape of the same size (reshape, bitcast)."""
        return Slot(self.pool, self.offset, shape)

    def overlaps(self, other: Slot) -> bool:
        return (self.pool is other.pool and self.offset < other.offset + other.nbytes
                and other.offset < self.offset + self.nbytes)


# A compile-time value: a Slot for arrays, a tuple of values for tuples, None for tokens.
BufferValue = Slot | tuple["BufferValue", ...] | None


def leaves(value: BufferValue) -> list[Slot]:
    """The slots of a buffer value, depth first."""
    if value is None:
        return []
    if isinstance(value, tuple):
        return [leaf for v in value for leaf in leaves(v)]
    return [value]


@dataclass(frozen=True)
class Launch:
    """Launch `kernel` with `dims`; argument k is the device address of `args[k]`."""

    kernel: str
    dims: LaunchDims
    args: tuple[Slot, ...]
    instr: str


@dataclass(frozen=True)
class Copy:
    """Copy `src` into `dst` (same size, not overlapping)."""

    dst: Slot
    src: Slot


@dataclass(frozen=True)
class While:
    """Run `cond`; while the PRED at `pred` is true, run `body` and `cond` again."""

    cond: tuple[Step, ...]
    pred: Slot
    body: tuple[Step, ...]
    instr: str


@dataclass(frozen=True)
class Conditional:
    """Run `branches[i]` for the branch index read from `selector`.

    A PRED selector picks branch 0 when true and 1 when false; an integer selector out of
    range picks the last branch, as XLA does.
    """

    selector: Slot
    branches: tuple[tuple[Step, ...], ...]
    instr: str


Step = Launch | Copy | While | Conditional


def walk_steps(steps: tuple[Step, ...] | list[Step]) -> Iterator[Step]:
    """Every step, nested ones included, in program order."""
    for step in steps:
        yield step
        if isinstance(step, While):
            yield from walk_steps(step.cond)
            yield from walk_steps(step.body)
        elif isinstance(step, Conditional):
            for branch in step.branches:
                yield from walk_steps(branch)


@dataclass(frozen=True)
class GpuProgram:
    """A compiled module: PTX, the plan, and the buffers the host must fill and read.

    Attributes:
        name: the HLO module name.
        ptx: the lowered kernels (all stages' texts).
        steps: the plan, run in order.
        arena_bytes: size of the per-call arena.
        constants: the bytes of the constant pool.
        params: the buffer value of each entry parameter (arena slots to upload into).
        result: the buffer value of the entry's root (slots to download from).
        param_shapes / result_shape: the entry's program shape.
        arg_shapes / result_shapes: the array leaves, flattened.
        param_names: the entry parameters' names (for argument errors).
    """

    name: str
    ptx: PtxModule
    steps: tuple[Step, ...]
    arena_bytes: int
    constants: bytes
    params: tuple[BufferValue, ...]
    result: BufferValue
    param_shapes: tuple[Shape, ...]
    result_shape: Shape
    arg_shapes: tuple[Shape, ...]
    result_shapes: tuple[Shape, ...]
    param_names: tuple[str, ...] = ()

    @property
    def kernel_names(self) -> tuple[str, ...]:
        return self.ptx.kernels

    def launches(self) -> list[Launch]:
        return [s for s in walk_steps(self.steps) if isinstance(s, Launch)]

    def describe(self) -> str:
        """A readable listing of the plan (for dumps and debugging)."""
        lines: list[str] = [f"program {self.name}: arena {self.arena_bytes} B, "
                            f"constants {len(self.constants)} B"]
        _describe(self.steps, 1, lines)
        return "\n".join(lines)


def _slot_text(s: Slot) -> str:
    return f"{s.pool.value}+{s.offset}:{s.shape.to_text(with_layout=False)}"


def _describe(steps: tuple[Step, ...], depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    for step in steps:
        if isinstance(step, Launch):
            args = ", ".join(_slot_text(a) for a in step.args)
            lines.append(f"{pad}launch {step.kernel} grid={step.dims.grid} "
                         f"block={step.dims.block} ({args})  # {step.instr}")
        elif isinstance(step, Copy):
            lines.append(f"{pad}copy {_slot_text(step.dst)} <- {_slot_text(step.src)}")
        elif isinstance(step, While):
            lines.append(f"{pad}while {step.instr}: cond")
            _describe(step.cond, depth + 1, lines)
            lines.append(f"{pad}  pred {_slot_text(step.pred)}; body")
            _describe(step.body, depth + 1, lines)
        else:
            lines.append(f"{pad}conditional {step.instr} on {_slot_text(step.selector)}")
            for k, branch in enumerate(step.branches):
                lines.append(f"{pad}  branch {k}")
                _describe(branch, depth + 2, lines)

