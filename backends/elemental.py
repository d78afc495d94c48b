"""The elemental emitter: per-element LLVM generators for HLO instructions.

A generator is a closure `IrIndex -> ir.Value`: given the index of one output element it
emits the IR computing that element at the builder's position. `EMIT` maps each opcode to
its emitter, registered with `@emits_elemental`; elementwise ops live here, movement ops
(broadcast, reshape, transpose, slice, pad, concatenate, ...) in `elemental_movement.py`.
Type dispatch is `ElementalEmitter.arith` (see `elemental_arith.py`), conversions and
comparisons are in `elemental_convert.py`, and transcendental functions go through a
`TargetMath`. This file builds no loops; CPU loops and GPU thread grids call generators.

Every `Trait.ELEMENTWISE` opcode has an EMIT entry; opcodes deliberately not emitted here
are listed in NOT_ELEMENTAL with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from llvmlite import ir

from backends import elemental_convert as conv
from backends.elemental_arith import arith, complex_abs, make_complex
from backends.llvm.index import IrIndex
from backends.llvm.irutil import llvm_type
from backends.target_math import TargetMath
from hlo.dtypes import PrimitiveType
from hlo.errors import UnsupportedOpError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

Generator = Callable[[IrIndex], ir.Value]


class GeneratedArray:
    """An array operand that is computed, not stored: each load runs the generator.

    It offers the reading half of IrArray (shape, element type, `load`, `load_linear`), so
    a kernel that reads its input through it (a reduce of an input fusion, on either
    backend) evaluates the fused producers where it would have loaded.
    """

    __slots__ = ("shape", "generator", "invariant")

    def __init__(self, generator: Generator, shape: Shape) -> None:
        self.generator = generator
        self.shape = shape
        self.invariant = True

    @property
    def element_type(self) -> PrimitiveType:
        return self.shape.element_type

    def load(self, b: ir.IRBuilder, index: IrIndex | Sequence[ir.Value]) -> ir.Value:
        if not isinstance(index, IrIndex):
            index = IrIndex(list(index), self.shape)
        return self.generator(index)

    def load_linear(self, b: ir.IRBuilder, linear: ir.Value) -> ir.Value:
        return self.generator(IrIndex.from_linear(b, linear, self.shape))


Operands = Mapping[HloInstruction, Generator]
# emit(emitter, instruction, operand generators, output index) -> register value
ElementEmitter = Callable[["ElementalEmitter", HloInstruction, Operands, IrIndex], ir.Value]

EMIT: dict[Opcode, ElementEmitter] = {}

# Opcodes the elemental emitter does not handle, and why. Every other elementwise or
# movement opcode must have an EMIT entry (checked by the coverage test).
NOT_ELEMENTAL: dict[Opcode, str] = {
    Opcode.GATHER: "reads data-dependent windows; a CPU kernel (gather_scatter.py)",
    Opcode.SCATTER: "writes data-dependent positions; a CPU kernel (gather_scatter.py)",
    Opcode.RNG: "side-effecting and stateful; a CPU kernel (rng.py)",
}


def emits_elemental(*opcodes: Opcode) -> Callable[[ElementEmitter], ElementEmitter]:
    """Register an element emitter for `opcodes` in EMIT."""

    def register(fn: ElementEmitter) -> ElementEmitter:
        for op in opcodes:
            if op in EMIT:
                raise AssertionError(f"two elemental emitters for {op.value}")
            EMIT[op] = fn
        return fn

    return register


class ElementalEmitter:
    """Builds per-element LLVM generators for HLO instructions.

    Attributes:
        b: the builder where element code is emitted.
        math: the target's transcendental functions.
        parameters: generators for `parameter(n)` instructions, keyed by parameter number
            (the driver gives buffer loads; a fused emitter gives the fusion's operands).
    """

    b: ir.IRBuilder
    math: TargetMath
    parameters: Mapping[int, Generator]

    def __init__(
        self,
        builder: ir.IRBuilder,
        math: TargetMath,
        parameters: Mapping[int, Generator] | None = None,
    ) -> None:
        self.b = builder
        self.math = math
        self.parameters = parameters or {}

    @property
    def module(self) -> ir.Module:
        return self.b.module

    def generator(self, instr: HloInstruction, operands: Operands) -> Generator:
        """The generator of `instr`, reading its operands through `operands`.

        Raises:
            UnsupportedOpError: the opcode has no elemental emitter.
        """
        emit = EMIT.get(instr.opcode)
        if emit is None:
            reason = NOT_ELEMENTAL.get(instr.opcode, "no elemental emitter")
            raise UnsupportedOpError(
                f"{instr.opcode.value} ({instr.name}) cannot be emitted elementally: {reason}"
            )
        return lambda index: emit(self, instr, operands, index)

    def arith(self, op: Opcode, t: PrimitiveType, values: Sequence[ir.Value]) -> ir.Value:
        """Apply `op` to register values of element type `t` (see elemental_arith)."""
        return arith(self, op, t, values)

    def convert(self, src: PrimitiveType, dst: PrimitiveType, x: ir.Value) -> ir.Value:
        return conv.convert(self.b, src, dst, x)


def operand_at(
    instr: HloInstruction, operands: Operands, k: int, index: IrIndex
) -> ir.Value:
    """Operand k's element at `index`; a rank-0 operand of a ranked op is read at []."""
    operand = instr.operands[k]
    gen = operands[operand]
    if operand.shape.rank == 0 and index.rank != 0:
        return gen(IrIndex([], ()))
    return gen(index)


def _all_operands(instr: HloInstruction, operands: Operands, index: IrIndex) -> list[ir.Value]:
    return [operand_at(instr, operands, k, index) for k in range(len(instr.operands))]


# --- elementwise arithmetic ----------------------------------------------------------------

_SAME_TYPE_OPS = (
    Opcode.ABS, Opcode.CBRT, Opcode.CEIL, Opcode.CLZ, Opcode.COSINE, Opcode.ERF,
    Opcode.EXPONENTIAL, Opcode.EXPONENTIAL_MINUS_ONE, Opcode.FLOOR, Opcode.LOG,
    Opcode.LOG_PLUS_ONE, Opcode.LOGISTIC, Opcode.NEGATE, Opcode.NOT, Opcode.POPCNT,
    Opcode.ROUND_NEAREST_AFZ, Opcode.ROUND_NEAREST_EVEN, Opcode.RSQRT, Opcode.SIGN,
    Opcode.SINE, Opcode.SQRT, Opcode.TAN, Opcode.TANH,
    Opcode.ADD, Opcode.AND, Opcode.ATAN2, Opcode.DIVIDE, Opcode.MAXIMUM, Opcode.MINIMUM,
    Opcode.MULTIPLY, Opcode.OR, Opcode.POWER, Opcode.REMAINDER, Opcode.SHIFT_LEFT,
    Opcode.SHIFT_RIGHT_ARITHMETIC, Opcode.SHIFT_RIGHT_LOGICAL, Opcode.SUBTRACT, Opcode.XOR,
)


@emits_elemental(*_SAME_TYPE_OPS)
def _elementwise(
    e: ElementalEmitter, instr: HloInstruction, operands: Operands, index: IrIndex
) -> ir.Value:
    values = _all_operands(instr, operands, index)
    return e.arith(instr.opcode, instr.operands[0].shape.element_type, values)


@emits_elemental(Opcode.CLAMP)
def _clamp(e: ElementalEmitter, instr: HloInstruction, operands: Operands, index: IrIndex
           ) -> ir.Value:
    """clamp(lo, x, hi) = min(max(x, lo), hi); lo and hi may be scalars."""
    lo, x, hi = _all_operands(instr, operands, index)
    t = instr.shape.element_type
    return e.arith(Opcode.MINIMUM, t, [e.arith(Opcode.MAXIMUM, t, [x, lo]), hi])


@emits_elemental(Opcode.SELECT)
def _select(e: ElementalEmitter, instr: HloInstruction, operands: Operands, index: IrIndex
            ) -> ir.Value:
    pred, on_true, on_false = _all_operands(instr, operands, index)
    return e.b.select(pred, on_true, on_false)


@emits_elemental(Opcode.COMPARE)
def _compare(e: ElementalEmitter, instr: HloInstruction, operands: Operands, index: IrIndex
             ) -> ir.Value:
    lhs, rhs = _all_operands(instr, operands, index)
    t = instr.operands[0].shape.element_type
    return conv.compare(e.b, t, instr.attrs["direction"], instr.attrs.get("type"), lhs, rhs)


@emits_elemental(Opcode.IS_FINITE)
def _is_finite(e: ElementalEmitter, instr: HloInstruction, operands: Operands, index: IrIndex
               ) -> ir.Value:
    return conv.is_finite(e.b, instr.operands[0].shape.element_type,
                          operand_at(instr, operands, 0, index))


@emits_elemental(Opcode.CONVERT)
def _convert(e: ElementalEmitter, instr: HloInstruction, operands: Operands, index: IrIndex
             ) -> ir.Value:
    x = operand_at(instr, operands, 0, index)
    return e.convert(instr.operands[0].shape.element_type, instr.shape.element_type, x)


@emits_elemental(Opcode.REDUCE_PRECISION)
def _reduce_precision(
    e: ElementalEmitter, instr: HloInstruction, operands: Operands, index: IrIndex
) -> ir.Value:
    x = operand_at(instr, operands, 0, index)
    t = instr.shape.element_type
    if t not in conv.FLOAT_FORMATS:
        raise UnsupportedOpError(f"reduce-precision ({instr.name}) on {t.value}")
    return conv.reduce_precision(e.b, t, x, instr.attrs["exponent_bits"],
                                 instr.attrs["mantissa_bits"])


@emits_elemental(Opcode.REAL, Opcode.IMAG)
def _real_imag(e: ElementalEmitter, instr: HloInstruction, operands: Operands, index: IrIndex
               ) -> ir.Value:
    x = operand_at(instr, operands, 0, index)
    if not instr.operands[0].shape.element_type.is_complex:
        # real(x) = x and imag(x) = 0 for real x, as XLA defines them.
        if instr.opcode is Opcode.REAL:
            return x
        return ir.Constant(llvm_type(instr.shape.element_type), 0.0)
    return e.b.extract_value(x, 0 if instr.opcode is Opcode.REAL else 1)


@emits_elemental(Opcode.COMPLEX)
def _complex(e: ElementalEmitter, instr: HloInstruction, operands: Operands, index: IrIndex
             ) -> ir.Value:
    re, im = _all_operands(instr, operands, index)
    return make_complex(e, re, im)


@emits_elemental(Opcode.BITCAST_CONVERT)
def _bitcast_convert(
    e: ElementalEmitter, instr: HloInstruction, operands: Operands, index: IrIndex
) -> ir.Value:
    """Reinterpret bits. Between widths, the narrower side has an extra minor dimension."""
    b = e.b
    src = instr.operands[0].shape.element_type
    dst = instr.shape.element_type
    gen = operands[instr.operands[0]]
    if src.bits == dst.bits:
        return conv.from_bits(b, dst, conv.to_bits(b, src, gen(index)))
    if src.bits > dst.bits:
        # One wide source element holds `ratio` narrow results, least significant first.
        src_index = IrIndex(index.values[:-1], instr.operands[0].shape)
        bits = conv.to_bits(b, src, gen(src_index))
        lane = _resize_int(b, index.values[-1], bits.type)
        shift = b.mul(lane, ir.Constant(bits.type, dst.bits))
        part = b.trunc(b.lshr(bits, shift), ir.IntType(dst.bits))
        return conv.from_bits(b, dst, part)
    ratio = dst.bits // src.bits
    wide = ir.IntType(dst.bits)
    acc: ir.Value = ir.Constant(wide, 0)
    for k in range(ratio):
        src_index = IrIndex([*index.values, ir.Constant(ir.IntType(64), k)],
                            instr.operands[0].shape)
        part = b.zext(conv.to_bits(b, src, gen(src_index)), wide)
        acc = b.or_(acc, b.shl(part, ir.Constant(wide, k * src.bits)))
    return conv.from_bits(b, dst, acc)


def _resize_int(b: ir.IRBuilder, v: ir.Value, ty: ir.IntType) -> ir.Value:
    """The non-negative integer `v` as type `ty`."""
    if v.type.width > ty.width:
        return b.trunc(v, ty)
    if v.type.width < ty.width:
        return b.zext(v, ty)
    return v


def complex_modulus(e: ElementalEmitter, z: ir.Value) -> ir.Value:
    """|z| for a complex register value (exported for kernels)."""
    return complex_abs(e, z)


# Movement ops register themselves on import; keep this import last.
from backends import elemental_movement  # noqa: E402,F401
