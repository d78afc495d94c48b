"""The VJP table and what its rules share: cotangent values, accumulation, zeros.

A VJP rule is `rule(ctx, instr, ct) -> operand cotangents`: given an instruction of the
forward computation and the cotangent of its result, it emits the backward instructions
(as tracers of `ctx.trace`) and returns one cotangent per operand. A cotangent is a
Tracer, None (zero: nothing flows), or for tuple-shaped values a list with one cotangent
per element. Rules read primal values (`ctx.val`): they are instructions of the same
computation, computed by the forward pass.

Opcodes whose results are piecewise constant or not real numbers (compare, floor, iota,
integer ops, ...) are listed in `ZERO_VJP`: nothing flows through them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from compiler import numpy_prims as prims
from compiler.tracing import Trace, Tracer
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

Cot = Any  # Tracer | None | list[Cot]
VjpRule = Callable[["VjpContext", HloInstruction, Cot], Sequence[Cot]]

VJP: dict[Opcode, VjpRule] = {}

ZERO_VJP: frozenset[Opcode] = frozenset({
    Opcode.AND, Opcode.CEIL, Opcode.CLZ, Opcode.COMPARE, Opcode.CONSTANT, Opcode.FLOOR,
    Opcode.IOTA, Opcode.IS_FINITE, Opcode.NOT, Opcode.OR, Opcode.PARTITION_ID,
    Opcode.POPCNT, Opcode.REPLICA_ID, Opcode.RNG, Opcode.RNG_BIT_GENERATOR,
    Opcode.ROUND_NEAREST_AFZ, Opcode.ROUND_NEAREST_EVEN, Opcode.SHIFT_LEFT,
    Opcode.SHIFT_RIGHT_ARITHMETIC, Opcode.SHIFT_RIGHT_LOGICAL, Opcode.SIGN, Opcode.XOR,
    Opcode.AFTER_ALL, Opcode.BITCAST_CONVERT,
})


def defvjp(*opcodes: Opcode) -> Callable[[VjpRule], VjpRule]:
    """Register a VJP rule for `opcodes`."""

    def register(fn: VjpRule) -> VjpRule:
        for op in opcodes:
            if op in VJP or op in ZERO_VJP:
                raise AssertionError(f"two VJP rules for {op.value}")
            VJP[op] = fn
        return fn

    return register


def has_float(shape: Shape) -> bool:
    """Whether a (possibly tuple) shape has a floating-point leaf (cotangents exist)."""
    return any(leaf.is_array and leaf.element_type.is_float for leaf in shape.leaves())


class VjpContext:
    """Where a backward pass emits instructions, and its bookkeeping.

    Attributes:
        trace: the trace (computation) the backward instructions go to.
        sparse: cotangents known to be `dynamic-update-slice(zeros, update, starts)`, by
            tracer instruction id: adding one into an accumulator updates only the slice.
    """

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.sparse: dict[int, tuple[Tracer, list[Tracer]]] = {}

    def val(self, instr: HloInstruction) -> Tracer:
        """The primal value of a forward instruction."""
        return Tracer(self.trace, instr)

    def operands(self, instr: HloInstruction) -> list[Tracer]:
        return [Tracer(self.trace, o) for o in instr.operands]

    def zeros(self, shape: Shape) -> Tracer:
        """Zeros of an array shape, or a tuple value of zeros for a tuple shape."""
        if shape.is_tuple:
            return prims.make_tuple([self.zeros(s) for s in shape.tuple_shapes])
        return prims.full(shape.dims, 0, shape.element_type.numpy)

    def materialize(self, ct: Cot, shape: Shape) -> Tracer:
        """The cotangent as one value of `shape` (zeros where it is None)."""
        if not shape.is_tuple:
            return ct if ct is not None else self.zeros(shape)
        parts = ct if ct is not None else [None] * len(shape.tuple_shapes)
        return prims.make_tuple([self.materialize(c, s)
                                 for c, s in zip(parts, shape.tuple_shapes, strict=True)])

    def sparse_update(self, operand_shape: Shape, update: Tracer, starts: list[Tracer]
                      ) -> Tracer:
        """`dynamic-update-slice(zeros, update, starts)`, remembered as sparse."""
        dense = prims.dynamic_update_slice(self.zeros(operand_shape), update, starts)
        self.sparse[id(dense.instr)] = (update, starts)
        return dense

    def add(self, a: Cot, b: Cot) -> Cot:
        """The sum of two cotangents of one value."""
        if a is None:
            return b
        if b is None:
            return a
        if isinstance(a, list):
            return [self.add(x, y) for x, y in zip(a, b, strict=True)]
        for dense, sparse in ((a, b), (b, a)):
            found = self.sparse.get(id(sparse.instr))
            if found is not None:
                # Add only into the slice the sparse cotangent covers: O(slice), not O(array).
                update, starts = found
                current = prims.dynamic_slice(dense, starts, update.shape)
                summed = prims.binary(Opcode.ADD, current, update)
                return prims.dynamic_update_slice(dense, summed, starts)
        return prims.binary(Opcode.ADD, a, b)


def tuple_cotangent(shape: Shape, index: int, ct: Cot) -> list[Cot]:
    """The cotangent of a tuple whose element `index` has cotangent `ct`."""
    out: list[Cot] = [None] * len(shape.tuple_shapes)
    out[index] = ct
    return out


def is_zero(ct: Cot) -> bool:
    if ct is None:
        return True
    if isinstance(ct, list):
        return all(is_zero(c) for c in ct)
    return False
