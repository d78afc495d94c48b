"""HloInstruction: one node of a computation, with operands, users and attributes.

Instructions are mutable and compared by identity. The users list is kept consistent with
operands only through the methods here (`replace_operand`, `replace_all_uses_with`); never
assign `operands` directly. Instructions are created by `HloComputation.add`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hlo.attributes import AttrKind
from hlo.errors import InternalError, ShapeError
from hlo.opcodes import OPS, Opcode, OpDef, Trait
from hlo.shape import ProgramShape, Shape

if TYPE_CHECKING:
    from hlo.computation import HloComputation


@dataclass(eq=False, slots=True)
class HloInstruction:
    """A node: `name = shape opcode(operands), attrs...`.

    Attributes:
        name: unique within its module.
        opcode: the operation.
        shape: the result shape (with layout once assigned).
        operands: inputs, in order; read-only outside this class.
        attrs: attribute values keyed by schema name (computations are HloComputation).
        users: instructions that use this one, each listed once.
        parent: the computation that owns the instruction.
    """

    name: str
    opcode: Opcode
    shape: Shape
    operands: list[HloInstruction] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    users: list[HloInstruction] = field(default_factory=list)
    parent: HloComputation | None = None

    # --- queries -----------------------------------------------------------------------------
    @property
    def opdef(self) -> OpDef:
        return OPS[self.opcode]

    def has(self, trait: Trait) -> bool:
        return trait in OPS[self.opcode].traits

    def operand(self, i: int) -> HloInstruction:
        return self.operands[i]

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def called_computations(self) -> list[HloComputation]:
        """Computations this instruction calls, in schema order."""
        called: list[HloComputation] = []
        for spec in self.opdef.attrs:
            value = self.attrs.get(spec.name)
            if value is None:
                continue
            if spec.kind is AttrKind.COMPUTATION:
                called.append(value)
            elif spec.kind is AttrKind.COMPUTATIONS:
                called.extend(value)
        return called

    @property
    def is_root(self) -> bool:
        return self.parent is not None and self.parent.root is self

    # --- shape inference ---------------------------------------------------------------------
    def infer_shape(self) -> Shape:
        """Re-run the opcode's shape rule on the current operands and attributes."""
        return infer_shape(self.opcode, [o.shape for o in self.operands], self.attrs, self.shape)

    # --- mutation (keeps users consistent) ---------------------------------------------------
    def replace_operand(self, index: int, new: HloInstruction) -> None:
        old = self.operands[index]
        self.operands[index] = new
        if self not in new.users:
            new.users.append(self)
        if old is not new and old not in self.operands and self in old.users:
            old.users.remove(self)

    def replace_operand_with(self, old: HloInstruction, new: HloInstruction) -> None:
        """Replace every occurrence of `old` among the operands by `new`."""
        for i, o in enumerate(self.operands):
            if o is old:
                self.replace_operand(i, new)

    def replace_all_uses_with(self, new: HloInstruction) -> None:
        """Make every user of this instruction (and its computation's root) use `new`."""
        if new is self:
            return
        for user in list(self.users):
            user.replace_operand_with(self, new)
        if self.parent is not None and self.parent.root is self:
            self.parent.root = new

    def drop_operands(self) -> None:
        """Detach from all operands (used when removing the instruction)."""
        for o in set(self.operands):
            if self in o.users:
                o.users.remove(self)
        self.operands.clear()

    def __repr__(self) -> str:
        ops = ", ".join(o.name for o in self.operands)
        return f"<{self.name} = {self.shape} {self.opcode.value}({ops})>"

    def walk_operands(self) -> Iterator[HloInstruction]:
        """This instruction's transitive operands in post order (operands before users)."""
        seen: set[int] = set()
        stack: list[tuple[HloInstruction, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                yield node
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            for o in reversed(node.operands):
                if id(o) not in seen:
                    stack.append((o, False))


def as_rule_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes with called computations replaced by their ProgramShape (for shape rules)."""
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        if hasattr(v, "program_shape"):
            out[k] = v.program_shape()
        elif isinstance(v, (list, tuple)) and v and hasattr(v[0], "program_shape"):
            out[k] = tuple(c.program_shape() for c in v)
        else:
            out[k] = v
    return out


def infer_shape(
    opcode: Opcode,
    operand_shapes: Sequence[Shape],
    attrs: Mapping[str, Any],
    declared: Shape | None = None,
) -> Shape:
    """Run the shape rule of `opcode`; checks arity first. Raises ShapeError."""
    opdef = OPS[opcode]
    if opdef.arity is not None and len(operand_shapes) != opdef.arity:
        raise ShapeError(
            f"{opcode.value} takes {opdef.arity} operand(s), got {len(operand_shapes)}"
        )
    try:
        shape = opdef.shape_rule(operand_shapes, as_rule_attrs(attrs), declared)
    except ShapeError as e:
        if str(e).startswith(opcode.value):
            raise
        raise ShapeError(f"{opcode.value}: {e}") from None
    if not isinstance(shape, Shape):
        raise InternalError(f"shape rule of {opcode.value} returned {shape!r}")
    return shape


__all__ = ["HloInstruction", "infer_shape", "ProgramShape"]
