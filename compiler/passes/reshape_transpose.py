"""Reshape, transpose and broadcast canonicalisation, and transposes folded into dots.

Rewrites (each rule's docstring): identity transposes, reshapes and broadcasts vanish;
transpose(transpose), reshape(reshape) and broadcast(broadcast) compose into one; a
transpose that only moves size-1 dimensions becomes a reshape (a no-op on row-major
buffers); broadcasts look through reshapes that only add size-1 dimensions (JAX's
`broadcast_in_dim` lowering) and scalar broadcasts absorb reshapes and transposes; a
transpose feeding a dot is folded into the dot's dimension numbers when that keeps the
dot's result order. Runs with algsimp in the simplification fixed point; it does not
touch layouts (layout_assignment does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from compiler.passes.algebraic_simplifier import RewritePass
from compiler.passes.algsimp_rules import RuleFn, RuleTable, rule
from compiler.passes.algsimp_rules.match import make
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode

RESHAPE_TRANSPOSE_RULES: RuleTable = {}


def _rule(*opcodes: Opcode) -> Callable[[RuleFn], RuleFn]:
    return rule(*opcodes, table=RESHAPE_TRANSPOSE_RULES)


# --- transposes ---------------------------------------------------------------------------


@_rule(Opcode.TRANSPOSE)
def transpose_identity(instr: HloInstruction) -> HloInstruction | None:
    """transpose(A, {0,1,...}) => A"""
    perm = instr.attrs["dimensions"]
    return instr.operands[0] if list(perm) == list(range(len(perm))) else None


@_rule(Opcode.TRANSPOSE)
def transpose_transpose(instr: HloInstruction) -> HloInstruction | None:
    """transpose(transpose(A, p), q) => transpose(A, p[q])"""
    (inner,) = instr.operands
    if inner.opcode is not Opcode.TRANSPOSE:
        return None
    p, q = inner.attrs["dimensions"], instr.attrs["dimensions"]
    return make(instr, Opcode.TRANSPOSE, inner.operands, dimensions=tuple(p[i] for i in q))


@_rule(Opcode.TRANSPOSE)
def transpose_of_unit_dims(instr: HloInstruction) -> HloInstruction | None:
    """transpose(A) moving only size-1 dimensions => reshape(A)"""
    (x,) = instr.operands
    moved = [d for d in instr.attrs["dimensions"] if x.shape.dims[d] != 1]
    if moved != sorted(moved):
        return None
    return make(instr, Opcode.RESHAPE, [x], shape=instr.shape)


@_rule(Opcode.TRANSPOSE, Opcode.RESHAPE)
def scalar_broadcast_absorbs(instr: HloInstruction) -> HloInstruction | None:
    """transpose(broadcast(s)) => broadcast(s);  reshape(broadcast(s)) => broadcast(s)"""
    (x,) = instr.operands
    if x.opcode is not Opcode.BROADCAST or x.operands[0].shape.rank != 0:
        return None
    return make(instr, Opcode.BROADCAST, x.operands, shape=instr.shape, dimensions=())


# --- reshapes -----------------------------------------------------------------------------


@_rule(Opcode.RESHAPE)
def reshape_identity(instr: HloInstruction) -> HloInstruction | None:
    """reshape(A) to A's own dimensions => A"""
    (x,) = instr.operands
    return x if x.shape.dims == instr.shape.dims else None


@_rule(Opcode.RESHAPE)
def reshape_reshape(instr: HloInstruction) -> HloInstruction | None:
    """reshape(reshape(A)) => reshape(A)"""
    (inner,) = instr.operands
    if inner.opcode is not Opcode.RESHAPE:
        return None
    return make(instr, Opcode.RESHAPE, inner.operands, shape=instr.shape)


# --- broadcasts ---------------------------------------------------------------------------


@_rule(Opcode.BROADCAST)
def broadcast_identity(instr: HloInstruction) -> HloInstruction | None:
    """broadcast(A, {0,1,...}) to A's own dimensions => A"""
    (x,) = instr.operands
    dims = instr.attrs["dimensions"]
    if x.shape.dims != instr.shape.dims or list(dims) != list(range(x.shape.rank)):
        return None
    return x


@_rule(Opcode.BROADCAST)
def broadcast_broadcast(instr: HloInstruction) -> HloInstruction | None:
    """broadcast(broadcast(A, d1), d2) => broadcast(A, d2[d1])"""
    (inner,) = instr.operands
    if inner.opcode is not Opcode.BROADCAST:
        return None
    outer = instr.attrs["dimensions"]
    dims = tuple(outer[d] for d in inner.attrs["dimensions"])
    return make(instr, Opcode.BROADCAST, inner.operands, shape=instr.shape, dimensions=dims)


@_rule(Opcode.BROADCAST)
def broadcast_of_unit_reshape(instr: HloInstruction) -> HloInstruction | None:
    """broadcast(reshape(A), d) => broadcast(A, d')  (the reshape only adds size-1 dims)"""
    (reshape,) = instr.operands
    if reshape.opcode is not Opcode.RESHAPE:
        return None
    (a,) = reshape.operands
    if 1 in a.shape.dims:
        return None  # a size-1 dimension of A could not be placed in general
    kept = [j for j, size in enumerate(reshape.shape.dims) if size != 1]
    if tuple(reshape.shape.dims[j] for j in kept) != a.shape.dims:
        return None
    outer = instr.attrs["dimensions"]
    return make(instr, Opcode.BROADCAST, [a], shape=instr.shape,
                dimensions=tuple(outer[j] for j in kept))


# --- transposes folded into dots ----------------------------------------------------------


def _fold_side(dot: HloInstruction, side: str) -> dict[str, tuple[int, ...]] | None:
    """New dimension numbers for `side` (lhs/rhs) if its operand is a foldable transpose."""
    operand = dot.operands[0 if side == "lhs" else 1]
    if operand.opcode is not Opcode.TRANSPOSE:
        return None
    perm = operand.attrs["dimensions"]
    batch = tuple(dot.attrs.get(f"{side}_batch_dims", ()))
    contracting = tuple(dot.attrs.get(f"{side}_contracting_dims", ()))
    free = [d for d in range(len(perm)) if d not in batch + contracting]
    # The dot orders free dims by operand position; folding must not reorder them.
    mapped_free = [perm[d] for d in free]
    if mapped_free != sorted(mapped_free):
        return None
    return {f"{side}_batch_dims": tuple(perm[d] for d in batch),
            f"{side}_contracting_dims": tuple(perm[d] for d in contracting)}


@_rule(Opcode.DOT)
def fold_transpose_into_dot(instr: HloInstruction) -> HloInstruction | None:
    """dot(transpose(A), B) => dot(A, B) with remapped dimension numbers (also for B)"""
    lhs_numbers = _fold_side(instr, "lhs")
    rhs_numbers = _fold_side(instr, "rhs")
    if lhs_numbers is None and rhs_numbers is None:
        return None
    attrs = dict(instr.attrs)
    operands = list(instr.operands)
    if lhs_numbers is not None:
        attrs.update(lhs_numbers)
        operands[0] = operands[0].operands[0]
    if rhs_numbers is not None:
        attrs.update(rhs_numbers)
        operands[1] = operands[1].operands[0]
    return make(instr, Opcode.DOT, operands, shape=instr.shape, **attrs)


class ReshapeTransposeCanonicalizer(RewritePass):
    """Applies RESHAPE_TRANSPOSE_RULES (see the module docstring)."""

    name: ClassVar[str] = "reshape_transpose"

    def __init__(self) -> None:
        super().__init__(RESHAPE_TRANSPOSE_RULES)
