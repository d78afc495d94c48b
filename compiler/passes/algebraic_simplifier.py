"""The algebraic simplifier's driver: applies the first matching rule to each instruction.

The rules are in `compiler/passes/algsimp_rules/` (one file per op family, each rule's
docstring its rewrite). This driver only walks: post order over each non-fusion
computation, the first rule of `RULES[opcode]` that returns something wins, uses are
redirected, and what became dead is removed. It runs inside a FixedPoint in the default
pipeline, because one rewrite often enables another (sinking a broadcast exposes a
constant to fold, which exposes `A + 0`).

Options that change results are explicit and off by default: `reassociate` allows
floating-point reassociation ((A + c1) + c2 => A + (c1 + c2), (A + B) - B => A).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import ClassVar

from compiler.passes.algsimp_rules import Rule, RuleTable, load_rules
from compiler.pipeline import ComputationPass
from hlo.computation import HloComputation
from hlo.errors import InternalError
from hlo.instruction import HloInstruction


@dataclass(frozen=True)
class AlgsimpOptions:
    """Semantics-changing rewrites, each off by default.

    Attributes:
        reassociate: fast-math reassociation of float adds and multiplies.
    """

    reassociate: bool = False


class RewritePass(ComputationPass):
    """Applies a rule table: for each instruction, the first rule that returns something.

    Args:
        rules: the table (opcode -> rules in order).
        enabled: the options that gated rules may use.
    """

    name: ClassVar[str] = "rewrite"

    def __init__(self, rules: RuleTable, enabled: frozenset[str] = frozenset()) -> None:
        self.rules = rules
        self._enabled = enabled
        self.applied: list[str] = []
        # Each rewrite pass logs under its own module's name (TFCOMPILE_LOG=<pass>).
        self.log = logging.getLogger(type(self).__module__)

    def run_on(self, comp: HloComputation) -> bool:
        changed = False
        for instr in comp.post_order():
            if instr.parent is not comp:
                continue  # removed by an earlier rewrite in this sweep
            for r in self.rules.get(instr.opcode, ()):
                if r.option is not None and r.option not in self._enabled:
                    continue
                result = r.fn(instr)
                if result is None:
                    continue
                self._apply(comp, instr, result, r)
                changed = True
                break
        if changed:
            comp.remove_dead()
        return changed

    def _apply(self, comp: HloComputation, instr: HloInstruction, result: HloInstruction,
               r: Rule) -> None:
        self.applied.append(r.name)
        if result is instr:
            self.log.debug("%s %s: %s rewritten in place (%s)", self.name, r.name, instr.name,
                      r.rewrite)
            return
        if not result.shape.compatible(instr.shape):
            raise InternalError(
                f"{self.name} rule {r.name} replaced {instr.name} ({instr.shape}) by "
                f"{result.name} ({result.shape}): the shapes differ"
            )
        self.log.debug("%s %s: %s => %s (%s)", self.name, r.name, instr.name, result.name,
                  r.rewrite)
        instr.replace_all_uses_with(result)
        if not instr.users and instr is not comp.root:
            comp.remove(instr)


class AlgebraicSimplifier(RewritePass):
    """Rewrites instructions by the rules in algsimp_rules (canonical forms first)."""

    name: ClassVar[str] = "algsimp"

    def __init__(self, options: AlgsimpOptions | None = None) -> None:
        self.options = options or AlgsimpOptions()
        enabled = frozenset(f.name for f in fields(self.options) if getattr(self.options, f.name))
        super().__init__(load_rules(), enabled)
