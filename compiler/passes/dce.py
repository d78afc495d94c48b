"""Dead code elimination: drop instructions nothing needs, then computations nothing calls.

An instruction is dead when the root does not depend on it; parameters and side-effecting
instructions (rng, side-effecting custom-calls) always stay. Fused computations are
cleaned too, since fusion may leave unused parameters' users behind. This pass does not
remove unused parameters (that would change a computation's signature) or unused tuple
elements of loops (while_loop_simplifier does that).
"""

from __future__ import annotations

import logging
from typing import ClassVar

from hlo.module import HloModule

log = logging.getLogger(__name__)


class DeadCodeElimination:
    """Removes unreachable instructions in every computation and uncalled computations."""

    name: ClassVar[str] = "dce"

    def run(self, module: HloModule) -> bool:
        changed = False
        for comp in module.computations_post_order():
            before = len(comp.instructions)
            if comp.remove_dead():
                log.debug("dce: %s lost %d instruction(s)", comp.name,
                          before - len(comp.instructions))
                changed = True
        names = [c.name for c in module.computations]
        if module.remove_unreachable_computations():
            kept = {c.name for c in module.computations}
            log.debug("dce: removed computations %s", [n for n in names if n not in kept])
            changed = True
        return changed
