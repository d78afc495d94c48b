"""HloModule: the entry computation, the computations it calls, and module attributes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hlo.computation import HloComputation
from hlo.errors import HloVerificationError, InternalError
from hlo.shape import ProgramShape


class HloModule:
    """A module: named computations in definition order (callees first), one entry.

    Attributes:
        name: module name from `HloModule <name>`.
        attrs: module header attributes other than the entry layout, kept verbatim.
        entry_layout: the `entry_computation_layout` when given in text, else None.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.computations: list[HloComputation] = []
        self.entry: HloComputation | None = None
        self.attrs: dict[str, Any] = {}
        self.entry_layout: ProgramShape | None = None
        self.names: set[str] = set()

    def add_computation(self, comp: HloComputation, *, entry: bool = False) -> HloComputation:
        """Add a computation (its instruction names become reserved); optionally as entry."""
        if any(c.name == comp.name for c in self.computations):
            raise InternalError(f"module {self.name} already has a computation {comp.name}")
        comp.parent = self
        for instr in comp.instructions:
            self.names.add(instr.name)
        self.computations.append(comp)
        if entry:
            self.entry = comp
        return comp

    def new_computation(self, name: str, *, entry: bool = False) -> HloComputation:
        return self.add_computation(HloComputation(self.unique_computation_name(name)),
                                    entry=entry)

    def unique_computation_name(self, base: str) -> str:
        taken = {c.name for c in self.computations}
        if base not in taken:
            return base
        i = 1
        while f"{base}.{i}" in taken:
            i += 1
        return f"{base}.{i}"

    def reserve_name(self, name: str) -> None:
        self.names.add(name)

    def computation(self, name: str) -> HloComputation:
        for c in self.computations:
            if c.name == name:
                return c
        raise InternalError(f"module {self.name} has no computation {name}")

    @property
    def entry_computation(self) -> HloComputation:
        if self.entry is None:
            raise HloVerificationError(f"module {self.name} has no ENTRY computation")
        return self.entry

    def program_shape(self) -> ProgramShape:
        return self.entry_computation.program_shape()

    def computations_post_order(self) -> list[HloComputation]:
        """Reachable computations, callees before callers, entry last."""
        order: list[HloComputation] = []
        seen: set[int] = set()

        def visit(c: HloComputation) -> None:
            if id(c) in seen:
                return
            seen.add(id(c))
            for instr in c.instructions:
                for callee in instr.called_computations():
                    visit(callee)
            order.append(c)

        visit(self.entry_computation)
        return order

    def remove_unreachable_computations(self) -> bool:
        reachable = {id(c) for c in self.computations_post_order()}
        before = len(self.computations)
        self.computations = [c for c in self.computations if id(c) in reachable]
        return len(self.computations) != before

    def __iter__(self) -> Iterator[HloComputation]:
        return iter(self.computations)

    def __repr__(self) -> str:
        return f"<HloModule {self.name}: {len(self.computations)} computations>"
