"""HloComputation: an ordered set of instructions with parameters and a root.

Owns instruction creation (`add`, which runs the shape rule unless a shape is declared),
removal, post-order traversal and dead-code removal. Knows nothing of passes or backends.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from hlo.errors import HloVerificationError, InternalError
from hlo.instruction import HloInstruction, infer_shape
from hlo.opcodes import Opcode, Trait
from hlo.shape import ProgramShape, Shape

if TYPE_CHECKING:
    from hlo.module import HloModule


class HloComputation:
    """A computation: instructions in insertion order, parameters by number, a root."""

    def __init__(self, name: str, *, is_fusion: bool = False) -> None:
        self.name = name
        self.instructions: list[HloInstruction] = []
        self.root: HloInstruction | None = None
        self.parent: HloModule | None = None
        self.is_fusion = is_fusion
        self._names: set[str] = set()

    # --- construction ----------------------------------------------------------------------
    def add(
        self,
        opcode: Opcode,
        operands: Sequence[HloInstruction] = (),
        shape: Shape | None = None,
        name: str | None = None,
        **attrs: Any,
    ) -> HloInstruction:
        """Create an instruction and append it.

        When `shape` is None the opcode's shape rule computes it (raising ShapeError on
        invalid operands); a declared shape (from text) is kept as given and checked by
        the verifier. Array shapes without a layout get the default layout.
        """
        if shape is None:
            shape = infer_shape(opcode, [o.shape for o in operands], attrs, None)
        shape = shape.with_missing_layouts()
        instr = HloInstruction(
            name=self.unique_name(name or opcode.value),
            opcode=opcode,
            shape=shape,
            attrs=dict(attrs),
            parent=self,
        )
        for o in operands:
            instr.operands.append(o)
            if instr not in o.users:
                o.users.append(instr)
        self.instructions.append(instr)
        self._names.add(instr.name)
        if self.parent is not None:
            self.parent.reserve_name(instr.name)
        return instr

    def unique_name(self, base: str) -> str:
        """A name not yet used in this computation or its module, derived from `base`."""
        taken = self.parent.names if self.parent is not None else self._names
        if base not in taken and base not in self._names:
            return base
        stem = base.rsplit(".", 1)[0] if base.rsplit(".", 1)[-1].isdigit() else base
        i = 1
        while f"{stem}.{i}" in taken or f"{stem}.{i}" in self._names:
            i += 1
        return f"{stem}.{i}"

    # --- queries ------------------------------------------------------------------------------
    @property
    def parameters(self) -> list[HloInstruction]:
        """Parameter instructions sorted by parameter number."""
        params = [i for i in self.instructions if i.opcode is Opcode.PARAMETER]
        return sorted(params, key=lambda p: p.attrs["parameter_number"])

    def parameter(self, number: int) -> HloInstruction:
        for p in self.instructions:
            if p.opcode is Opcode.PARAMETER and p.attrs["parameter_number"] == number:
                return p
        raise InternalError(f"computation {self.name} has no parameter {number}")

    def program_shape(self) -> ProgramShape:
        if self.root is None:
            raise HloVerificationError(f"computation {self.name} has no root")
        return ProgramShape(tuple(p.shape for p in self.parameters), self.root.shape)

    def post_order(self) -> list[HloInstruction]:
        """All instructions, operands before users; unreachable ones included (in order)."""
        order: list[HloInstruction] = []
        seen: set[int] = set()
        roots = ([self.root] if self.root is not None else []) + self.instructions
        for r in roots:
            for node in r.walk_operands():
                if id(node) not in seen:
                    seen.add(id(node))
                    order.append(node)
        return order

    def __iter__(self) -> Iterator[HloInstruction]:
        return iter(self.instructions)

    def __len__(self) -> int:
        return len(self.instructions)

    # --- mutation ------------------------------------------------------------------------------
    def set_root(self, instr: HloInstruction) -> None:
        if instr.parent is not self:
            raise InternalError(f"{instr.name} does not belong to computation {self.name}")
        self.root = instr

    def remove(self, instr: HloInstruction) -> None:
        """Remove an instruction that has no users and is not the root."""
        if instr.users or instr is self.root:
            raise InternalError(f"cannot remove {instr.name}: it is still used")
        instr.drop_operands()
        self.instructions.remove(instr)
        instr.parent = None

    def replace_instruction(self, old: HloInstruction, new: HloInstruction) -> None:
        """Redirect all uses of `old` to `new`, then remove `old`."""
        old.replace_all_uses_with(new)
        self.remove(old)

    def remove_dead(self) -> bool:
        """Remove instructions not reachable from the root (parameters and side effects stay)."""
        live = {id(i) for i in self.root.walk_operands()} if self.root is not None else set()
        changed = False
        for instr in reversed(self.post_order()):
            if id(instr) in live or instr.opcode is Opcode.PARAMETER:
                continue
            if instr.has(Trait.SIDE_EFFECTING) or instr.users:
                continue
            self.remove(instr)
            changed = True
        return changed

    def __repr__(self) -> str:
        return f"<HloComputation {self.name}: {len(self.instructions)} instructions>"
