"""Element-wise builder operations: unary functions, binary arithmetic and comparisons with
the document's broadcasting, Select, Clamp, ConvertElementType, BitcastConvertType and
ReducePrecision.

Binary operations take `broadcast_dimensions` as in ComputationBuilder::Add; the operands
are brought to one shape with explicit `reshape`/`broadcast` instructions (see
`BuilderBase._broadcast_pair`), because HLO element-wise instructions take equal shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hlo.builder_core import ElementTypeLike, XlaOp, element_type, int_arg, shape_text
from hlo.builder_leaves import LeafOps
from hlo.errors import ArgumentError, ShapeError
from hlo.opcodes import Opcode
from hlo.shape import Shape

# Comparison directions, as HLO's `compare` spells them.
_DIRECTIONS = ("EQ", "NE", "LT", "LE", "GT", "GE")


class ElementwiseOps(LeafOps):
    """Element-wise operations of the operation-semantics document."""

    # --- drivers -----------------------------------------------------------------------------
    def _unary(self, what: str, opcode: Opcode, operand: XlaOp) -> XlaOp:
        return self._add(what, opcode, [operand])

    def _binary(self, what: str, opcode: Opcode, lhs: XlaOp, rhs: XlaOp,
                broadcast_dimensions: Sequence[int], **attrs: Any) -> XlaOp:
        lhs, rhs = self._broadcast_pair(what, lhs, rhs, broadcast_dimensions)
        return self._add(what, opcode, [lhs, rhs], **attrs)

    # --- unary functions ---------------------------------------------------------------------
    def abs(self, operand: XlaOp) -> XlaOp:
        """x -> |x| (complex: the modulus)."""
        return self._unary("abs", Opcode.ABS, operand)

    def ceil(self, operand: XlaOp) -> XlaOp:
        return self._unary("ceil", Opcode.CEIL, operand)

    def floor(self, operand: XlaOp) -> XlaOp:
        return self._unary("floor", Opcode.FLOOR, operand)

    def round(self, operand: XlaOp) -> XlaOp:
        """Round to nearest, halves away from zero (XLA's Round)."""
        return self._unary("round", Opcode.ROUND_NEAREST_AFZ, operand)

    def round_nearest_even(self, operand: XlaOp) -> XlaOp:
        return self._unary("round_nearest_even", Opcode.ROUND_NEAREST_EVEN, operand)

    def cos(self, operand: XlaOp) -> XlaOp:
        return self._unary("cos", Opcode.COSINE, operand)

    def sin(self, operand: XlaOp) -> XlaOp:
        return self._unary("sin", Opcode.SINE, operand)

    def tan(self, operand: XlaOp) -> XlaOp:
        return self._unary("tan", Opcode.TAN, operand)

    def exp(self, operand: XlaOp) -> XlaOp:
        return self._unary("exp", Opcode.EXPONENTIAL, operand)

    def expm1(self, operand: XlaOp) -> XlaOp:
        return self._unary("expm1", Opcode.EXPONENTIAL_MINUS_ONE, operand)

    def log(self, operand: XlaOp) -> XlaOp:
        return self._unary("log", Opcode.LOG, operand)

    def log1p(self, operand: XlaOp) -> XlaOp:
        return self._unary("log1p", Opcode.LOG_PLUS_ONE, operand)

    def logistic(self, operand: XlaOp) -> XlaOp:
        return self._unary("logistic", Opcode.LOGISTIC, operand)

    def tanh(self, operand: XlaOp) -> XlaOp:
        return self._unary("tanh", Opcode.TANH, operand)

    def sqrt(self, operand: XlaOp) -> XlaOp:
        return self._unary("sqrt", Opcode.SQRT, operand)

    def rsqrt(self, operand: XlaOp) -> XlaOp:
        return self._unary("rsqrt", Opcode.RSQRT, operand)

    def cbrt(self, operand: XlaOp) -> XlaOp:
        return self._unary("cbrt", Opcode.CBRT, operand)

    def erf(self, operand: XlaOp) -> XlaOp:
        return self._unary("erf", Opcode.ERF, operand)

    def is_finite(self, operand: XlaOp) -> XlaOp:
        """PRED array: true where the element is neither infinite nor NaN."""
        return self._unary("is_finite", Opcode.IS_FINITE, operand)

    def neg(self, operand: XlaOp) -> XlaOp:
        return self._unary("neg", Opcode.NEGATE, operand)

    def not_(self, operand: XlaOp) -> XlaOp:
        """Logical not of PRED, bitwise not of integers (LogicalNot)."""
        return self._unary("not", Opcode.NOT, operand)

    def sign(self, operand: XlaOp) -> XlaOp:
        """-1, 0 or 1 by the element type's comparison with zero."""
        return self._unary("sign", Opcode.SIGN, operand)

    def real(self, operand: XlaOp) -> XlaOp:
        return self._unary("real", Opcode.REAL, operand)

    def imag(self, operand: XlaOp) -> XlaOp:
        return self._unary("imag", Opcode.IMAG, operand)

    def clz(self, operand: XlaOp) -> XlaOp:
        return self._unary("clz", Opcode.CLZ, operand)

    def popcnt(self, operand: XlaOp) -> XlaOp:
        return self._unary("popcnt", Opcode.POPCNT, operand)

    def copy(self, operand: XlaOp) -> XlaOp:
        return self._unary("copy", Opcode.COPY, operand)

    logical_not = not_

    # --- binary arithmetic -------------------------------------------------------------------
    def add(self, lhs: XlaOp, rhs: XlaOp, broadcast_dimensions: Sequence[int] = ()) -> XlaOp:
        return self._binary("add", Opcode.ADD, lhs, rhs, broadcast_dimensions)

    def sub(self, lhs: XlaOp, rhs: XlaOp, broadcast_dimensions: Sequence[int] = ()) -> XlaOp:
        return self._binary("sub", Opcode.SUBTRACT, lhs, rhs, broadcast_dimensions)

    def mul(self, lhs: XlaOp, rhs: XlaOp, broadcast_dimensions: Sequence[int] = ()) -> XlaOp:
        return self._binary("mul", Opcode.MULTIPLY, lhs, rhs, broadcast_dimensions)

    def div(self, lhs: XlaOp, rhs: XlaOp, broadcast_dimensions: Sequence[int] = ()) -> XlaOp:
        return self._binary("div", Opcode.DIVIDE, lhs, rhs, broadcast_dimensions)

    def rem(self, lhs: XlaOp, rhs: XlaOp, broadcast_dimensions: Sequence[int] = ()) -> XlaOp:
        """Remainder with the sign of the dividend (C's fmod / %)."""
        return self._binary("rem", Opcode.REMAINDER, lhs, rhs, broadcast_dimensions)

    def max(self, lhs: XlaOp, rhs: XlaOp, broadcast_dimensions: Sequence[int] = ()) -> XlaOp:
        return self._binary("max", Opcode.MAXIMUM, lhs, rhs, broadcast_dimensions)

    def min(self, lhs: XlaOp, rhs: XlaOp, broadcast_dimensions: Sequence[int] = ()) -> XlaOp:
        return self._binary("min", Opcode.MINIMUM, lhs, rhs, broadcast_dimensions)

    def pow(self, lhs: XlaOp, rhs: XlaOp, broadcast_dimensions: Sequence[int] = ()) -> XlaOp:
        return self._binary("pow", Opcode.POWER, lhs, rhs, broadcast_dimensions)

    def atan2(self, lhs: XlaOp, rhs: XlaOp, broadcast_dimensions: Sequence[int] = ()) -> XlaOp:
        return self._binary("atan2", Opcode.ATAN2, lhs, rhs, broadcast_dimensions)

    def complex(self, real: XlaOp, imag: XlaOp,
                broadcast_dimensions: Sequence[int] = ()) -> XlaOp:
        return self._binary("complex", Opcode.COMPLEX, real, imag, broadcast_dimensions)

    def and_(self, lhs: XlaOp, rhs: XlaOp, broadcast_dimensions: Sequence[int] = ()) -> XlaOp:
        """Logical and of PRED, bitwise and of integers (LogicalAnd)."""
        return self._binary("and", Opcode.AND, lhs, rhs, broadcast_dimensions)

    def or_(self, lhs: XlaOp, rhs: XlaOp, broadcast_dimensions: Sequence[int] = ()) -> XlaOp:
        """Logical or of PRED, bitwise or of integers (LogicalOr)."""
        return self._binary("or", Opcode.OR, lhs, rhs, broadcast_dimensions)

    def xor(self, lhs: XlaOp, rhs: XlaOp, broadcast_dimensions: Sequence[int] = ()) -> XlaOp:
        return self._binary("xor", Opcode.XOR, lhs, rhs, broadcast_dimensions)

    def shift_left(self, lhs: XlaOp, rhs: XlaOp,
                   broadcast_dimensions: Sequence[int] = ()) -> XlaOp:
        return self._binary("shift_left", Opcode.SHIFT_LEFT, lhs, rhs, broadcast_dimensions)

    def shift_right_arithmetic(self, lhs: XlaOp, rhs: XlaOp,
                               broadcast_dimensions: Sequence[int] = ()) -> XlaOp:
        return self._binary("shift_right_arithmetic", Opcode.SHIFT_RIGHT_ARITHMETIC, lhs, rhs,
                            broadcast_dimensions)

    def shift_right_logical(self, lhs: XlaOp, rhs: XlaOp,
                            broadcast_dimensions: Sequence[int] = ()) -> XlaOp:
        return self._binary("shift_right_logical", Opcode.SHIFT_RIGHT_LOGICAL, lhs, rhs,
                            broadcast_dimensions)

    logical_and = and_
    logical_or = or_

    # --- comparisons -------------------------------------------------------------------------
    def compare(self, lhs: XlaOp, rhs: XlaOp, direction: str,
                broadcast_dimensions: Sequence[int] = ()) -> XlaOp:
        """Element-wise comparison to PRED; `direction` is EQ, NE, LT, LE, GT or GE.

        Floating-point comparisons follow IEEE 754 (NaN compares unequal to everything).
        """
        if not isinstance(direction, str) or direction.upper() not in _DIRECTIONS:
            raise ArgumentError(f"compare: direction must be one of {', '.join(_DIRECTIONS)}, "
                                f"got {direction!r}")
        direction = direction.upper()
        return self._binary(f"compare {direction}", Opcode.COMPARE, lhs, rhs,
                            broadcast_dimensions, direction=direction)

    def eq(self, lhs: XlaOp, rhs: XlaOp, broadcast_dimensions: Sequence[int] = ()) -> XlaOp:
        return self.compare(lhs, rhs, "EQ", broadcast_dimensions)

    def ne(self, lhs: XlaOp, rhs: XlaOp, broadcast_dimensions: Sequence[int] = ()) -> XlaOp:
        return self.compare(lhs, rhs, "NE", broadcast_dimensions)

    def lt(self, lhs: XlaOp, rhs: XlaOp, broadcast_dimensions: Sequence[int] = ()) -> XlaOp:
        return self.compare(lhs, rhs, "LT", broadcast_dimensions)

    def le(self, lhs: XlaOp, rhs: XlaOp, broadcast_dimensions: Sequence[int] = ()) -> XlaOp:
        return self.compare(lhs, rhs, "LE", broadcast_dimensions)

    def gt(self, lhs: XlaOp, rhs: XlaOp, broadcast_dimensions: Sequence[int] = ()) -> XlaOp:
        return self.compare(lhs, rhs, "GT", broadcast_dimensions)

    def ge(self, lhs: XlaOp, rhs: XlaOp, broadcast_dimensions: Sequence[int] = ()) -> XlaOp:
        return self.compare(lhs, rhs, "GE", broadcast_dimensions)

    # --- ternary -----------------------------------------------------------------------------
    def select(self, pred: XlaOp, on_true: XlaOp, on_false: XlaOp) -> XlaOp:
        """Pick on_true where pred holds, else on_false.

        A scalar pred selects whole arrays (it is broadcast). Tuples are selected as units
        with a scalar pred: the builder selects each leaf and rebuilds the tuple, since HLO
        `select` takes arrays only.
        """
        what = "select"
        self._check_operands(what, [pred, on_true, on_false])
        if not on_true.shape.compatible(on_false.shape):
            raise ShapeError(
                f"{what}: on_true {shape_text(on_true.shape)} and on_false "
                f"{shape_text(on_false.shape)} must have the same shape"
            )
        if not pred.shape.is_array or not pred.shape.element_type.is_pred:
            raise ShapeError(f"{what}: pred must be a PRED array, got {shape_text(pred.shape)}")
        if on_true.shape.is_tuple:
            self._require_scalar(what, pred, "pred (selecting tuples)")
            return self._select_tuple(pred, on_true, on_false)
        if pred.shape.rank == 0 and on_true.shape.rank > 0:
            pred = self._expand(what, pred, (), on_true.shape.dims)
        return self._add(what, Opcode.SELECT, [pred, on_true, on_false])

    def _select_tuple(self, pred: XlaOp, on_true: XlaOp, on_false: XlaOp) -> XlaOp:
        elements = []
        for i in range(len(on_true.shape.tuple_shapes)):
            t = self.get_tuple_element(on_true, i)
            f = self.get_tuple_element(on_false, i)
            elements.append(self.select(pred, t, f))
        return self.tuple(elements)

    def clamp(self, min: XlaOp, operand: XlaOp, max: XlaOp) -> XlaOp:
        """min(max(operand, min), max); `min` and `max` may be scalars."""
        what = "clamp"
        self._check_operands(what, [min, operand, max])
        bounds = []
        for role, bound in (("min", min), ("max", max)):
            self._require_array(what, bound, role)
            if bound.shape.rank == 0 and operand.shape.is_array and operand.shape.rank > 0:
                bound = self._expand(what, bound, (), operand.shape.dims)
            bounds.append(bound)
        return self._add(what, Opcode.CLAMP, [bounds[0], operand, bounds[1]])

    # --- element type changes ----------------------------------------------------------------
    def convert(self, operand: XlaOp, new_element_type: ElementTypeLike) -> XlaOp:
        """ConvertElementType: an element-wise static_cast to `new_element_type`."""
        what = "convert"
        self._check_operands(what, [operand])
        et = element_type(new_element_type)
        self._require_array(what, operand)
        if not et.is_array:
            raise ShapeError(f"{what}: cannot convert to {et.value}")
        if operand.shape.element_type.is_complex and not et.is_complex:
            raise ShapeError(
                f"{what}: cannot convert complex {shape_text(operand.shape)} to {et.value}; "
                f"take real() or imag() first"
            )
        shape = Shape.array(et, operand.shape.dims)
        return self._add(what, Opcode.CONVERT, [operand], shape=shape)

    def bitcast_convert(self, operand: XlaOp, new_element_type: ElementTypeLike) -> XlaOp:
        """BitcastConvertType: reinterpret each element's bits; the bit widths must agree."""
        what = "bitcast_convert"
        self._check_operands(what, [operand])
        et = element_type(new_element_type)
        self._require_array(what, operand)
        src = operand.shape.element_type
        if not et.is_array or src.bits != et.bits or src.is_pred or et.is_pred:
            raise ShapeError(
                f"{what}: cannot bitcast {shape_text(operand.shape)} ({src.bits} bits) to "
                f"{et.value} ({et.bits} bits); the element types must have equal bit widths"
            )
        shape = Shape.array(et, operand.shape.dims)
        return self._add(what, Opcode.BITCAST_CONVERT, [operand], shape=shape)

    def reduce_precision(self, operand: XlaOp, exponent_bits: int, mantissa_bits: int) -> XlaOp:
        """Round to a float format with the given exponent and mantissa bits and back."""
        what = "reduce_precision"
        exponent_bits = int_arg(what, "exponent_bits", exponent_bits)
        mantissa_bits = int_arg(what, "mantissa_bits", mantissa_bits)
        if exponent_bits < 1 or mantissa_bits < 0:
            raise ShapeError(
                f"{what}: needs exponent_bits >= 1 and mantissa_bits >= 0, got "
                f"{exponent_bits} and {mantissa_bits}"
            )
        return self._add(what, Opcode.REDUCE_PRECISION, [operand],
                         exponent_bits=exponent_bits, mantissa_bits=mantissa_bits)
