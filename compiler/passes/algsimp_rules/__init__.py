"""The algebraic simplifier's rule table: `RULES[opcode]` lists rewrite functions in order.

A rule takes an instruction and returns its replacement (a new or existing instruction of
a compatible shape), the instruction itself when it rewrote it in place (canonicalisation
swaps operands), or None when it does not apply. Its docstring is the rewrite, `A + 0 =>
A`. Rules register with `@rule(Opcode.ADD, ...)`; a rule that needs a semantics-changing
option names it (`@rule(Opcode.ADD, option="reassociate")`) and runs only when that option
is on. Families live one per file and are loaded canonicalisation first.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode

RuleFn = Callable[[HloInstruction], "HloInstruction | None"]


@dataclass(frozen=True)
class Rule:
    fn: RuleFn
    option: str | None = None

    @property
    def name(self) -> str:
        return self.fn.__name__

    @property
    def rewrite(self) -> str:
        return (self.fn.__doc__ or self.fn.__name__).strip().splitlines()[0]


RULES: dict[Opcode, list[Rule]] = {}

# Loaded in this order: canonical forms first, so later rules see constants on the right.
FAMILIES = ("canonical", "arith", "compare", "movement", "reduce")


RuleTable = dict[Opcode, list[Rule]]


def rule(*opcodes: Opcode, option: str | None = None,
         table: RuleTable | None = None) -> Callable[[RuleFn], RuleFn]:
    """Register `fn` as a rewrite of each of `opcodes` (after those registered before).

    `table` defaults to algsimp's RULES; kindred passes (reshape_transpose) keep their own.
    """
    target = RULES if table is None else table

    def register(fn: RuleFn) -> RuleFn:
        if not fn.__doc__ or "=>" not in fn.__doc__:
            raise AssertionError(f"rule {fn.__name__} needs its rewrite as docstring (X => Y)")
        for op in opcodes:
            target.setdefault(op, []).append(Rule(fn, option))
        return fn

    return register


def load_rules() -> dict[Opcode, list[Rule]]:
    """Import every rule family (once) and return the table."""
    for family in FAMILIES:
        importlib.import_module(f"{__name__}.{family}")
    return RULES
