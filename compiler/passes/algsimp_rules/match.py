"""Tiny matching and building helpers for the rewrite rules (not a pattern language)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from compiler.passes.hlo_utils import is_all, is_constant_like, splat, splat_value
from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType
from hlo.instruction import HloInstruction
from hlo.opcodes import COMMON_ATTRS, Opcode
from hlo.shape import Shape

# Attributes any instruction may carry (metadata, sharding, ...): they change no value.
_VERBATIM = frozenset(spec.name for spec in COMMON_ATTRS)

__all__ = ["is_all", "is_constant_like", "splat", "splat_value", "comp_of", "same_dims",
           "make", "like", "binary_combiner", "identity_of", "is_identity", "exact_arithmetic"]


def comp_of(instr: HloInstruction) -> HloComputation:
    assert instr.parent is not None, f"{instr.name} is not in a computation"
    return instr.parent


def same_dims(a: HloInstruction, b: HloInstruction) -> bool:
    return a.shape.dims == b.shape.dims and a.shape.element_type is b.shape.element_type


def make(instr: HloInstruction, opcode: Opcode, operands: Sequence[HloInstruction],
         shape: Shape | None = None, **attrs: Any) -> HloInstruction:
    """A new instruction next to `instr` (same computation); shape inferred unless given."""
    return comp_of(instr).add(opcode, list(operands), shape=shape, **attrs)


def like(instr: HloInstruction, operands: Sequence[HloInstruction],
         dims: Sequence[int] | None = None) -> HloInstruction:
    """`instr`'s opcode, element type and attributes over new operands (and dims)."""
    shape = Shape.array(instr.shape.element_type,
                        instr.shape.dims if dims is None else dims)
    return make(instr, instr.opcode, operands, shape=shape, **instr.attrs)


def exact_arithmetic(instr: HloInstruction) -> bool:
    """Integer (and pred) arithmetic wraps exactly, so reassociating it is always safe."""
    t = instr.shape.element_type
    return t.is_integer or t.is_pred


def binary_combiner(comp: HloComputation) -> Opcode | None:
    """The opcode of a scalar combiner `ROOT op(p0, p1)` (either operand order), or None."""
    root = comp.root
    params = comp.parameters
    if root is None or len(params) != 2 or len(root.operands) != 2:
        return None
    if any(p.shape.rank != 0 or not p.shape.is_array for p in params):
        return None
    if {id(o) for o in root.operands} != {id(p) for p in params}:
        return None
    if any(k not in _VERBATIM for k in root.attrs):  # compare direction etc.: not plain
        return None
    return root.opcode


def identity_of(opcode: Opcode, element_type: PrimitiveType) -> Any | None:
    """The identity element of a reduction combiner for `element_type`, if it has one."""
    dtype = element_type.numpy
    low: Any
    high: Any
    if element_type.is_float:
        low, high = -np.inf, np.inf
    elif element_type.is_integer:
        info = np.iinfo(dtype)
        low, high = info.min, info.max
    elif element_type.is_pred:
        low, high = False, True
    else:
        low = high = None
    table: dict[Opcode, Any] = {
        Opcode.ADD: 0,
        Opcode.MULTIPLY: 1,
        Opcode.MAXIMUM: low,
        Opcode.MINIMUM: high,
        Opcode.OR: False if element_type.is_pred else 0,
        Opcode.AND: True if element_type.is_pred else (-1 if element_type.is_signed else high),
    }
    value = table.get(opcode)
    if value is None or element_type.is_complex and opcode not in (Opcode.ADD,
                                                                   Opcode.MULTIPLY):
        return None
    return value


def is_identity(instr: HloInstruction, opcode: Opcode) -> bool:
    """Whether `instr` is statically the identity of combiner `opcode` (bitwise for -inf)."""
    value = identity_of(opcode, instr.shape.element_type)
    v = splat_value(instr)
    if value is None or v is None:
        return False
    if instr.shape.element_type.is_float and np.isinf(value):
        x = float(v[()])
        return bool(np.isinf(x) and (x > 0) == (value > 0))
    return is_all(instr, value)
