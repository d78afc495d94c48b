"""Emission of a scalar computation (a combiner, comparator or mapped function) inline.

Reductions, scatters, sorts and `map` apply an HLO computation to single elements. Both
backends emit such a computation on register values at the builder's position, through the
elemental emitter (`backends.elemental`) and the backend's TargetMath; nothing here is
specific to a target.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llvmlite import ir

from backends.elemental import EMIT, ElementalEmitter, Generator
from backends.llvm.index import IrIndex
from backends.target_math import TargetMath
from hlo.computation import HloComputation
from hlo.errors import CompileError, InternalError, UnsupportedOpError
from hlo.opcodes import Opcode


def fixed_generator(value: ir.Value) -> Generator:
    """A generator that yields `value` at every index (a scalar operand in a register)."""
    return lambda index: value


def emit_scalar_computation(b: ir.IRBuilder, math: TargetMath, comp: HloComputation,
                            args: Sequence[Any]) -> list[ir.Value]:
    """Emit `comp` on register values at the builder's position; returns the root leaves.

    `args` holds one register value per parameter (a tuple of values for a tuple-shaped
    one). Every instruction must be rank 0, or a tuple of rank-0 values: elemental ops,
    constants, tuples, get-tuple-element, and calls of other scalar computations.

    Raises:
        UnsupportedOpError: an instruction that is not scalar.
        CompileError: the computation has no root.
    """
    params = comp.parameters
    if len(args) != len(params):
        raise InternalError(f"{comp.name} takes {len(params)} scalars, got {len(args)}")
    root = comp.root
    if root is None:
        raise CompileError(f"computation {comp.name} has no root")
    values: dict[int, Any] = {}
    scalar = IrIndex([], ())
    for instr in root.walk_operands():
        op = instr.opcode
        operand_values = [values[id(o)] for o in instr.operands]
        if op is Opcode.PARAMETER:
            values[id(instr)] = args[instr.attrs["parameter_number"]]
        elif op is Opcode.TUPLE:
            values[id(instr)] = tuple(operand_values)
        elif op is Opcode.GET_TUPLE_ELEMENT:
            values[id(instr)] = operand_values[0][instr.attrs["index"]]
        elif op is Opcode.CALL:
            result = emit_scalar_computation(b, math, instr.attrs["to_apply"], operand_values)
            values[id(instr)] = tuple(result) if instr.shape.is_tuple else result[0]
        elif op in EMIT and instr.shape.is_array and instr.shape.rank == 0:
            gens = {o: fixed_generator(values[id(o)]) for o in instr.operands}
            values[id(instr)] = ElementalEmitter(b, math).generator(instr, gens)(scalar)
        else:
            raise UnsupportedOpError(
                f"{op.value} ({instr.name}, shape {instr.shape}) is not supported in the "
                f"scalar computation {comp.name}"
            )
    return _flatten(values[id(root)])


def _flatten(value: Any) -> list[ir.Value]:
    """The register leaves of a value or (nested) tuple of values, in order."""
    if isinstance(value, tuple):
        return [leaf for v in value for leaf in _flatten(v)]
    return [value]


__all__ = ["emit_scalar_computation", "fixed_generator"]
