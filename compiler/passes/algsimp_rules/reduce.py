"""Reduction rules: reductions over nothing or over single elements.

Only single-operand (non-variadic) reductions are touched. A combiner is recognised when
its computation is exactly `ROOT op(p0, p1)` on scalars (see match.binary_combiner).
"""

from __future__ import annotations

import math

from compiler.passes.algsimp_rules import rule
from compiler.passes.algsimp_rules.match import binary_combiner, is_identity, make
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode


def _single(instr: HloInstruction) -> bool:
    return len(instr.operands) == 2 and not instr.shape.is_tuple


@rule(Opcode.REDUCE)
def reduce_empty(instr: HloInstruction) -> HloInstruction | None:
    """reduce(A, init) over zero elements => broadcast(init)"""
    if not _single(instr):
        return None
    x, init = instr.operands
    if math.prod(x.shape.dims[d] for d in instr.attrs["dimensions"]) != 0:
        return None
    if instr.shape.rank == 0:
        return init
    return make(instr, Opcode.BROADCAST, [init], shape=instr.shape, dimensions=())


@rule(Opcode.REDUCE)
def reduce_single_elements(instr: HloInstruction) -> HloInstruction | None:
    """reduce(A, identity) over dimensions of size 1 => reshape(A)"""
    if not _single(instr):
        return None
    x, init = instr.operands
    if math.prod(x.shape.dims[d] for d in instr.attrs["dimensions"]) != 1:
        return None
    combiner = binary_combiner(instr.attrs["to_apply"])
    if combiner is None or not is_identity(init, combiner):
        return None
    if x.shape.dims == instr.shape.dims:
        return x
    return make(instr, Opcode.RESHAPE, [x], shape=instr.shape)
