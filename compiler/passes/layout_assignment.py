"""Layout assignment: give every array value a physical layout (minor_to_major).

The default, and what the backends accept today, is row-major (major-to-minor) everywhere:
the CPU backend stores every value as a dense row-major buffer and the runtime's contract
is row-major arguments and results (DESIGN.md, "Generated library contract"). So this pass
normalises every shape in every computation, fused ones included, and the module's
`entry_computation_layout`, to the default layout. A layout that text or an earlier pass
left behind (JAX prints `f32[8,6]{0,1}` for a transpose) would otherwise be a promise no
backend keeps.

With `fold_transposes=True` (off by default until a backend honours non-default layouts),
a transpose whose every user is a dot or convolution gets the layout that makes it a
physical no-op (the bytes of its operand, re-labelled), so those kernels read the operand
in place instead of a transposed copy. Layouts never change values: the evaluator ignores
them, so this pass preserves evaluated results by construction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

from hlo.instruction import HloInstruction
from hlo.module import HloModule
from hlo.opcodes import Opcode
from hlo.shape import ProgramShape, Shape

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayoutOptions:
    """Attributes:
        fold_transposes: let transposes feeding only dots/convolutions be layout no-ops.
    """

    fold_transposes: bool = False


def transposed_layout(operand: Shape, permutation: tuple[int, ...]) -> tuple[int, ...]:
    """The result layout that makes `transpose(operand, permutation)` a physical no-op.

    Result dim i is operand dim permutation[i]; walking the operand's dims from minor to
    major and naming each by its result position gives the result's minor_to_major.
    """
    assert operand.layout is not None
    inverse = {d: i for i, d in enumerate(permutation)}
    return tuple(inverse[d] for d in operand.layout)


def _foldable_transpose(instr: HloInstruction) -> bool:
    return (instr.opcode is Opcode.TRANSPOSE and bool(instr.users) and not instr.is_root
            and all(u.opcode in (Opcode.DOT, Opcode.CONVOLUTION) for u in instr.users))


class LayoutAssignment:
    """Row-major layouts everywhere (optionally: transposes into dots as layout no-ops)."""

    name: ClassVar[str] = "layout_assignment"

    def __init__(self, options: LayoutOptions | None = None) -> None:
        self.options = options or LayoutOptions()

    def run(self, module: HloModule) -> bool:
        changed = False
        for comp in module.computations:
            for instr in comp.post_order():
                wanted = instr.shape.with_default_layout()
                if self.options.fold_transposes and _foldable_transpose(instr):
                    operand = instr.operands[0].shape.with_default_layout()
                    wanted = Shape(wanted.element_type, wanted.dims,
                                   transposed_layout(operand, instr.attrs["dimensions"]))
                if instr.shape != wanted:
                    log.debug("layout_assignment: %s %s -> %s", instr.name, instr.shape,
                              wanted)
                    instr.shape = wanted
                    changed = True
        if module.entry_layout is not None:
            default = ProgramShape(
                tuple(p.with_default_layout() for p in module.entry_layout.parameters),
                module.entry_layout.result.with_default_layout(),
            )
            if default != module.entry_layout:
                module.entry_layout = default
                changed = True
        return changed
