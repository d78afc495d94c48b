"""Arithmetic rules: identities of add/sub/mul/div/pow, negation, logic ops, broadcasts.

Floating-point care: a rule that is not exact in IEEE arithmetic either stays on integers
(`A * 0 => 0` is wrong for NaN and infinities) or needs the `reassociate` option (fast
math, off by default). `A + 0 => A` is applied to floats as XLA does, although -0.0 + 0.0
is +0.0: the values compare equal.
"""

from __future__ import annotations

from compiler.passes.algsimp_rules import rule
from compiler.passes.algsimp_rules.match import (
    comp_of,
    exact_arithmetic,
    is_all,
    is_constant_like,
    like,
    make,
    same_dims,
    splat,
)
from hlo.instruction import HloInstruction
from hlo.opcodes import OPS, Opcode, Trait
from hlo.shape import Shape

_ELEMENTWISE_UNARY = tuple(
    op for op, d in OPS.items() if Trait.ELEMENTWISE in d.traits and d.arity == 1
)
_ELEMENTWISE_BINARY = tuple(
    op for op, d in OPS.items() if Trait.ELEMENTWISE in d.traits and d.arity == 2
)


# --- identities ---------------------------------------------------------------------------


@rule(Opcode.ADD)
def add_zero(instr: HloInstruction) -> HloInstruction | None:
    """A + 0 => A"""
    lhs, rhs = instr.operands
    return lhs if is_all(rhs, 0) and same_dims(lhs, instr) else None


@rule(Opcode.SUBTRACT)
def subtract_zero(instr: HloInstruction) -> HloInstruction | None:
    """A - 0 => A"""
    lhs, rhs = instr.operands
    return lhs if is_all(rhs, 0) and same_dims(lhs, instr) else None


@rule(Opcode.SUBTRACT)
def subtract_same(instr: HloInstruction) -> HloInstruction | None:
    """A - A => 0  (integers only: inf - inf is NaN)"""
    lhs, rhs = instr.operands
    if lhs is not rhs or not instr.shape.element_type.is_integer:
        return None
    return splat(comp_of(instr), instr.shape.element_type, 0, instr.shape.dims)


@rule(Opcode.MULTIPLY)
def multiply_one(instr: HloInstruction) -> HloInstruction | None:
    """A * 1 => A"""
    lhs, rhs = instr.operands
    return lhs if is_all(rhs, 1) and same_dims(lhs, instr) else None


@rule(Opcode.MULTIPLY)
def multiply_zero(instr: HloInstruction) -> HloInstruction | None:
    """A * 0 => 0  (integers only: NaN * 0 is NaN)"""
    _, rhs = instr.operands
    if not instr.shape.element_type.is_integer or not is_all(rhs, 0):
        return None
    return rhs if same_dims(rhs, instr) else None


@rule(Opcode.MULTIPLY)
def multiply_minus_one(instr: HloInstruction) -> HloInstruction | None:
    """A * -1 => -A"""
    lhs, rhs = instr.operands
    t = instr.shape.element_type
    if not (t.is_signed or t.is_float) or not is_all(rhs, -1):
        return None
    return make(instr, Opcode.NEGATE, [lhs])


@rule(Opcode.DIVIDE)
def divide_one(instr: HloInstruction) -> HloInstruction | None:
    """A / 1 => A"""
    lhs, rhs = instr.operands
    return lhs if is_all(rhs, 1) and same_dims(lhs, instr) else None


@rule(Opcode.POWER)
def power_zero(instr: HloInstruction) -> HloInstruction | None:
    """A ** 0 => 1  (also for NaN and 0, as pow defines)"""
    _, rhs = instr.operands
    if not is_all(rhs, 0) or instr.shape.element_type.is_complex:
        return None
    return splat(comp_of(instr), instr.shape.element_type, 1, instr.shape.dims)


@rule(Opcode.POWER)
def power_one(instr: HloInstruction) -> HloInstruction | None:
    """A ** 1 => A"""
    lhs, rhs = instr.operands
    return lhs if is_all(rhs, 1) and same_dims(lhs, instr) else None


@rule(Opcode.POWER)
def power_two(instr: HloInstruction) -> HloInstruction | None:
    """A ** 2 => A * A"""
    lhs, rhs = instr.operands
    if not is_all(rhs, 2) or not instr.shape.element_type.is_float:
        return None
    return make(instr, Opcode.MULTIPLY, [lhs, lhs])


@rule(Opcode.NEGATE)
def negate_negate(instr: HloInstruction) -> HloInstruction | None:
    """-(-A) => A"""
    (x,) = instr.operands
    return x.operands[0] if x.opcode is Opcode.NEGATE else None


@rule(Opcode.ABS)
def abs_abs(instr: HloInstruction) -> HloInstruction | None:
    """abs(abs(A)) => abs(A)"""
    (x,) = instr.operands
    return x if x.opcode is Opcode.ABS else None


@rule(Opcode.NOT)
def not_not(instr: HloInstruction) -> HloInstruction | None:
    """not(not(A)) => A"""
    (x,) = instr.operands
    return x.operands[0] if x.opcode is Opcode.NOT else None


@rule(Opcode.MAXIMUM, Opcode.MINIMUM, Opcode.AND, Opcode.OR)
def idempotent_same(instr: HloInstruction) -> HloInstruction | None:
    """max(A, A) => A  (also min, and, or)"""
    lhs, rhs = instr.operands
    return lhs if lhs is rhs else None


@rule(Opcode.XOR)
def xor_same(instr: HloInstruction) -> HloInstruction | None:
    """A ^ A => 0"""
    lhs, rhs = instr.operands
    if lhs is not rhs:
        return None
    return splat(comp_of(instr), instr.shape.element_type, 0, instr.shape.dims)


@rule(Opcode.AND)
def and_pred_constant(instr: HloInstruction) -> HloInstruction | None:
    """A & true => A;  A & false => false  (pred)"""
    lhs, rhs = instr.operands
    if not instr.shape.element_type.is_pred:
        return None
    if is_all(rhs, True):
        return lhs
    return rhs if is_all(rhs, False) else None


@rule(Opcode.OR)
def or_pred_constant(instr: HloInstruction) -> HloInstruction | None:
    """A | false => A;  A | true => true  (pred)"""
    lhs, rhs = instr.operands
    if not instr.shape.element_type.is_pred:
        return None
    if is_all(rhs, False):
        return lhs
    return rhs if is_all(rhs, True) else None


@rule(Opcode.CONVERT)
def convert_same_type(instr: HloInstruction) -> HloInstruction | None:
    """convert(A) to A's own type => A"""
    (x,) = instr.operands
    return x if same_dims(x, instr) else None


# --- broadcasts sink below elementwise ops ------------------------------------------------
# op(broadcast(a)) computes op once per output element; broadcast(op(a)) once per input
# element. Constant folding then folds op(constant) (it deliberately leaves broadcasts).


@rule(*_ELEMENTWISE_UNARY)
def sink_broadcast_unary(instr: HloInstruction) -> HloInstruction | None:
    """op(broadcast(A)) => broadcast(op(A))"""
    (x,) = instr.operands
    if x.opcode is not Opcode.BROADCAST:
        return None
    inner = x.operands[0]
    new = like(instr, [inner], inner.shape.dims)
    return make(instr, Opcode.BROADCAST, [new], shape=Shape.array(
        instr.shape.element_type, instr.shape.dims), dimensions=x.attrs["dimensions"])


@rule(*_ELEMENTWISE_BINARY)
def sink_broadcast_binary(instr: HloInstruction) -> HloInstruction | None:
    """op(broadcast(A), broadcast(B)) => broadcast(op(A, B))  (same broadcast dimensions)"""
    lhs, rhs = instr.operands
    if lhs.opcode is not Opcode.BROADCAST or rhs.opcode is not Opcode.BROADCAST:
        return None
    a, b = lhs.operands[0], rhs.operands[0]
    if lhs.attrs["dimensions"] != rhs.attrs["dimensions"] or a.shape.dims != b.shape.dims:
        return None
    new = like(instr, [a, b], a.shape.dims)
    return make(instr, Opcode.BROADCAST, [new], shape=Shape.array(
        instr.shape.element_type, instr.shape.dims), dimensions=lhs.attrs["dimensions"])


# --- reassociation: exact on integers, fast math on floats ----------------------------------


def _reassociable(instr: HloInstruction) -> bool:
    return exact_arithmetic(instr)


@rule(Opcode.ADD, Opcode.MULTIPLY)
def fold_constant_chain_exact(instr: HloInstruction) -> HloInstruction | None:
    """(A op C1) op C2 => A op (C1 op C2)  (integers: wrap-around arithmetic is exact)"""
    if not _reassociable(instr):
        return None
    return _fold_constant_chain(instr)


@rule(Opcode.ADD, Opcode.MULTIPLY, option="reassociate")
def fold_constant_chain_fast(instr: HloInstruction) -> HloInstruction | None:
    """(A op C1) op C2 => A op (C1 op C2)  (floats, fast math: rounds differently)"""
    if _reassociable(instr) or not instr.shape.element_type.is_float:
        return None
    return _fold_constant_chain(instr)


def _fold_constant_chain(instr: HloInstruction) -> HloInstruction | None:
    lhs, c2 = instr.operands
    if lhs.opcode is not instr.opcode or not is_constant_like(c2) or len(lhs.users) != 1:
        return None
    a, c1 = lhs.operands
    if not is_constant_like(c1) or is_constant_like(a):
        return None
    folded = make(instr, instr.opcode, [c1, c2])
    return make(instr, instr.opcode, [a, folded])


@rule(Opcode.SUBTRACT, Opcode.ADD)
def cancel_add_sub_exact(instr: HloInstruction) -> HloInstruction | None:
    """(A + B) - B => A;  (A - B) + B => A  (integers: exact)"""
    return _cancel(instr) if _reassociable(instr) else None


@rule(Opcode.SUBTRACT, Opcode.ADD, option="reassociate")
def cancel_add_sub_fast(instr: HloInstruction) -> HloInstruction | None:
    """(A + B) - B => A;  (A - B) + B => A  (floats, fast math: wrong for inf and rounding)"""
    if _reassociable(instr) or not instr.shape.element_type.is_float:
        return None
    return _cancel(instr)


def _cancel(instr: HloInstruction) -> HloInstruction | None:
    lhs, b = instr.operands
    inverse = Opcode.ADD if instr.opcode is Opcode.SUBTRACT else Opcode.SUBTRACT
    if lhs.opcode is not inverse or lhs.operands[1] is not b:
        return None
    a = lhs.operands[0]
    return a if same_dims(a, instr) else None
