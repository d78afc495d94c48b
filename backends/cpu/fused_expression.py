"""Fused expressions that a kernel emits in a function of its own.

A fusion (backends/cpu/fusion.py) computes its elementwise instructions as generators in
the fusion's function. A kernel that runs its work in range functions (split across
threads) needs them there instead: a `FusedExpression` is a fused instruction as a function
of the fusion's operand buffers, which the kernel passes to its range function as pointers
(`pointers`) and emits there (`bind`). Two uses:

* the epilogue of an output fusion (kOutput): the root as an elementwise expression of a
  dot's or convolution's value at the same index (bias broadcasts, activations, residual
  adds). The fusion hands it to the kernel that writes the fusion's output
  (`FusedContext.epilogue`); a kernel that applies it to its results while they are in
  registers sets `applied`, and the fusion skips its own in-place pass over the output. A
  kernel that ignores it leaves `applied` false and the pass runs as before;
* the fused input of a reduction (kInput): the producers a reduce reads through a
  GeneratedArray, re-emitted in each chunk of a reduction split across threads
  (`FusedContext.portable`).

Only an expression's own operands travel: the fusion parameters reachable from its root
without going through the kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llvmlite import ir

from backends.elemental import EMIT
from backends.elemental_fused import FusedEmitter
from backends.llvm.index import IrIndex
from backends.llvm.ir_array import IrArray
from backends.target_math import TargetMath
from hlo.computation import HloComputation
from hlo.errors import InternalError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode

# (index of one element, the kernel's value there or None) -> the expression's value there.
ExpressionFunction = Callable[[IrIndex, ir.Value | None], ir.Value]


@dataclass
class FusedExpression:
    """A fused instruction as code over the fusion's operand buffers.

    Attributes:
        root: the instruction computed.
        kernel: the kernel whose value the expression reads (an epilogue's dot or
            convolution), or None.
        operands: the fusion's operand buffers, in the fusion's function.
        parameters: the parameter numbers the expression reads (ascending).
        math: the target's transcendental functions.
        applied: set by a kernel once its stores apply the (epilogue) expression.
    """

    root: HloInstruction
    kernel: HloInstruction | None
    operands: Sequence[IrArray]
    parameters: tuple[int, ...]
    math: TargetMath
    applied: bool = False

    @staticmethod
    def epilogue(comp: HloComputation, kernel: HloInstruction, operands: Sequence[IrArray],
                 math: TargetMath) -> FusedExpression | None:
        """The root of `comp` as a function of `kernel`'s value, or None when it is not an
        elemental expression of that value and the fusion's parameters of the kernel's
        shape (element type included: the kernel stores the root's values as its own)."""
        root = comp.root
        if root is None or root is kernel or not root.shape.is_array:
            return None
        if (root.shape.dims != kernel.shape.dims
                or root.shape.element_type is not kernel.shape.element_type):
            return None
        return FusedExpression._of(root, kernel, operands, math)

    @staticmethod
    def value(instr: HloInstruction, operands: Sequence[IrArray],
              math: TargetMath) -> FusedExpression | None:
        """`instr` (a fused instruction) as a function of the fusion's parameters, or None
        when something on the way is not elemental."""
        return FusedExpression._of(instr, None, operands, math)

    @staticmethod
    def _of(root: HloInstruction, kernel: HloInstruction | None, operands: Sequence[IrArray],
            math: TargetMath) -> FusedExpression | None:
        parameters: set[int] = set()
        stack, seen, reaches = [root], set(), kernel is None
        while stack:
            instr = stack.pop()
            if id(instr) in seen:
                continue
            seen.add(id(instr))
            if instr is kernel:
                reaches = True
                continue
            if instr.opcode is Opcode.PARAMETER:
                parameters.add(instr.attrs["parameter_number"])
                continue
            if instr.opcode not in EMIT or not instr.shape.is_array:
                return None
            stack.extend(instr.operands)
        if not reaches:
            return None
        return FusedExpression(root, kernel, operands, tuple(sorted(parameters)), math)

    def pointers(self) -> list[ir.Value]:
        """The buffers the expression reads, as pointers of the fusion's function (pass
        them to the function that emits it, in this order)."""
        return [self.operands[k].ptr for k in self.parameters]

    def bind(self, b: ir.IRBuilder, pointers: Sequence[ir.Value]) -> ExpressionFunction:
        """The expression as code at `b`, reading its operands through `pointers` (the
        values of `pointers()` in b's function).

        The function emits the root's value at an index (from the kernel's value there,
        for an epilogue). Values are memoised per index (see FusedEmitter): call it once
        per distinct index in a block; indices that share values (the same feature in
        several rows) share the loads that depend only on them.
        """
        if len(pointers) != len(self.parameters):
            raise InternalError(f"fused {self.root.name}: {len(pointers)} pointers for "
                                f"{len(self.parameters)} operands")
        params = {}
        for k, ptr in zip(self.parameters, pointers, strict=True):
            local = IrArray(ptr, self.operands[k].shape, self.operands[k].invariant)
            params[k] = _loader(b, local)
        fused = FusedEmitter(b, self.math, params)
        current: list[ir.Value | None] = [None]
        if self.kernel is not None:
            fused.bind(self.kernel, lambda index: current[0])
        root = fused.generator(self.root)

        def apply(index: IrIndex, value: ir.Value | None) -> ir.Value:
            current[0] = value
            return root(index)

        return apply


def _loader(b: ir.IRBuilder, array: IrArray) -> Callable[[IrIndex], ir.Value]:
    return lambda index: array.load(b, index)
