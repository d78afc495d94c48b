"""FusedEmitter: one generator for a whole fused computation (a loop fusion).

The generator of a fusion's root is built recursively from the generators of the fused
instructions; fusion parameters read the fusion's operands. Nothing in between is
materialised: a backend wraps the root generator in one loop nest (CPU) or thread grid
(GPU). This is the only place that knows about fusions.

Values are memoised per instruction, output index and basic block: an instruction used
twice at the same index is computed once, and a value is never reused outside the block
that computed it (concatenate emits its operands in branches, which do not dominate what
follows).

A fusion that is not one loop nest (a reduction, a dot with its epilogue) computes some
instructions with kernels into buffers; `bind` makes their generators read those buffers.
"""

from __future__ import annotations

from collections.abc import Mapping

from llvmlite import ir

from backends.elemental import EMIT, ElementalEmitter, Generator
from backends.llvm.index import IrIndex
from backends.target_math import TargetMath
from hlo.computation import HloComputation
from hlo.errors import InternalError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode


def is_loop_fusible(comp: HloComputation) -> bool:
    """True when every instruction reachable from the root has an elemental emitter and
    produces an array (the root may be a tuple of same-dimension arrays)."""
    root = comp.root
    if root is None:
        return False
    leaves = root.operands if root.opcode is Opcode.TUPLE else [root]
    if not leaves or any(not leaf.shape.is_array for leaf in leaves):
        return False
    if any(leaf.shape.dims != leaves[0].shape.dims for leaf in leaves):
        return False
    for instr in root.walk_operands():
        if instr is root and root.opcode is Opcode.TUPLE:
            continue
        if instr.opcode not in EMIT or not instr.shape.is_array:
            return False
    return True


class FusedEmitter:
    """Memoised generators for the instructions of one fused computation.

    Args:
        builder: where element code goes.
        math: the target's transcendental functions.
        parameters: generators of the fusion's operands, keyed by parameter number.
    """

    def __init__(self, builder: ir.IRBuilder, math: TargetMath,
                 parameters: Mapping[int, Generator]) -> None:
        self.b = builder
        self._emitter = ElementalEmitter(builder, math, parameters)
        self._generators: dict[int, Generator] = {}

    def bind(self, instr: HloInstruction, generator: Generator) -> None:
        """Use `generator` for `instr` (a value computed into a buffer by a kernel)."""
        if id(instr) in self._generators:
            raise InternalError(f"{instr.name} already has a generator")
        self._generators[id(instr)] = generator

    def generator(self, instr: HloInstruction) -> Generator:
        """The (memoised) generator of `instr`, with its operands' generators inside."""
        gen = self._generators.get(id(instr))
        if gen is not None:
            return gen
        operands = {o: self.generator(o) for o in instr.operands}
        raw = self._emitter.generator(instr, operands)
        # key -> (the index values, the value): keeping the index values alive keeps their
        # ids from being reused by other values while the key is in the cache.
        cache: dict[tuple[int, tuple[int, ...]], tuple[list[ir.Value], ir.Value]] = {}

        def memoised(index: IrIndex) -> ir.Value:
            key = (id(self.b.block), tuple(id(v) for v in index.values))
            hit = cache.get(key)
            if hit is not None:
                return hit[1]
            value = raw(index)
            # Remember the value only where it was computed: the builder may have moved to
            # a new block while computing it (concatenate, conditionals).
            cache[(id(self.b.block), key[1])] = (index.values, value)
            return value

        self._generators[id(instr)] = memoised
        return memoised

    def root_generators(self, comp: HloComputation) -> list[Generator]:
        """Generators of the root's array leaves (one, or one per tuple element)."""
        root = comp.root
        if root is None:
            raise InternalError(f"fused computation {comp.name} has no root")
        leaves = root.operands if root.opcode is Opcode.TUPLE else [root]
        return [self.generator(leaf) for leaf in leaves]
