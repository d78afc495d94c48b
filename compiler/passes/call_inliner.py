"""Call inlining: replace every `call` by a copy of the called computation's body.

JAX wraps each jnp function in its own computation (`call ... to_apply=relu.1`), which
hides the body from every computation-local pass (algsimp, CSE, fusion). Computations are
visited callees first, so a callee's own calls are already inlined when it is copied into
its callers. Computations no longer called by anyone are dropped. Only `call` is inlined:
fusions, loops, conditionals and reducers keep their computations.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from compiler.passes.hlo_utils import inline_computation
from compiler.pipeline import computations_to_visit
from hlo.module import HloModule
from hlo.opcodes import Opcode

log = logging.getLogger(__name__)


class CallInliner:
    """Inlines `call` instructions in every non-fusion computation."""

    name: ClassVar[str] = "call_inliner"

    def run(self, module: HloModule) -> bool:
        changed = False
        for comp in computations_to_visit(module):
            for instr in [i for i in comp.instructions if i.opcode is Opcode.CALL]:
                callee = instr.attrs["to_apply"]
                result = inline_computation(comp, callee, instr.operands)
                log.debug("call_inliner: inlined %s into %s (%s)", callee.name, comp.name,
                          instr.name)
                instr.replace_all_uses_with(result)
                comp.remove(instr)
                changed = True
        if changed:
            module.remove_unreachable_computations()
        return changed
