"""Builder operations that make values from nothing, and tuples: parameters, constants, iota,
random numbers, Tuple and GetTupleElement.

Every instruction here declares its shape: the HLO form of these leaves carries it in the
text (`f32[2,3] parameter(0)`), so the builder computes it from the arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hlo import dtypes
from hlo.builder_core import (
    BuilderBase,
    ElementTypeLike,
    XlaOp,
    element_type,
    handle_list,
    int_arg,
    int_list,
    shape_text,
)
from hlo.dtypes import PrimitiveType
from hlo.errors import ArgumentError, HloVerificationError, ShapeError, TfcompileError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

# The element type of a constant given as Python values (no numpy dtype to keep), by numpy's
# kind letter: XLA's ConstantR0<int32> / <float> / <bool> defaults.
_PYTHON_DEFAULTS: dict[str, PrimitiveType] = {
    "b": PrimitiveType.PRED,
    "i": PrimitiveType.S32,
    "u": PrimitiveType.S32,
    "f": PrimitiveType.F32,
    "c": PrimitiveType.C64,
}


def _known_dtype(dtype: np.dtype) -> PrimitiveType | None:
    try:
        return dtypes.from_numpy(dtype)
    except TfcompileError:
        return None


def _literal(what: str, value: Any, dtype: ElementTypeLike | None) -> np.ndarray:
    """`value` as an ndarray of an XLA element type (see `LeafOps.constant`)."""
    if isinstance(value, HloInstruction):
        raise ArgumentError(f"{what}: the value must be data, not a handle ({value.name})")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:
        raise ArgumentError(f"{what}: cannot make an array of {value!r}: {e}") from None
    known = _known_dtype(arr.dtype)
    if known is None and arr.dtype.kind not in "biufc":
        raise ArgumentError(f"{what}: cannot make a constant of {value!r} (dtype {arr.dtype})")
    if dtype is not None:
        et = element_type(dtype)
    elif isinstance(value, (np.ndarray, np.generic)):
        if known is None:
            raise ArgumentError(f"{what}: numpy dtype {arr.dtype} has no XLA element type")
        et = known
    else:
        et = _PYTHON_DEFAULTS[arr.dtype.kind]
    if not et.is_array:
        raise ArgumentError(f"{what}: {et.value} is not an array element type")
    target = et.numpy
    if arr.dtype.kind in "iu" and np.dtype(target).kind in "iu" and arr.size:
        info = np.iinfo(target)
        if arr.min() < info.min or arr.max() > info.max:
            raise ShapeError(
                f"{what}: values in [{arr.min()}, {arr.max()}] do not fit {et.value} "
                f"[{info.min}, {info.max}]"
            )
    return arr.astype(target, order="C", copy=True)


class LeafOps(BuilderBase):
    """Parameter, constants, iota, RngUniform/RngNormal, Tuple, GetTupleElement."""

    def parameter(self, number: int, shape: Shape, name: str | None = None) -> XlaOp:
        """Parameter `number` of the computation, of shape `shape`.

        Raises:
            HloVerificationError: the number is already used in this computation.
        """
        what = f"parameter({number})"
        if not isinstance(number, (int, np.integer)) or isinstance(number, bool) or number < 0:
            raise ArgumentError(f"{what}: the parameter number must be an integer >= 0")
        if not isinstance(shape, Shape):
            raise ArgumentError(f"{what}: shape must be a Shape, got {type(shape).__name__}")
        for p in self._comp.parameters:
            if p.attrs["parameter_number"] == number:
                raise HloVerificationError(
                    f"{what}: computation {self._comp.name} already has parameter {number} "
                    f"({p.name})"
                )
        return self._add(
            what, Opcode.PARAMETER, [], shape=shape, name=name or "parameter",
            parameter_number=int(number),
        )

    def constant(self, value: Any, dtype: ElementTypeLike | None = None) -> XlaOp:
        """A constant array of any rank.

        numpy arrays and scalars keep their dtype; Python numbers and nested lists default
        to s32 / f32 / pred / c64 (XLA's ConstantR0<int32>, <float>, ...). `dtype`
        converts explicitly; integers that do not fit the element type raise ShapeError.
        """
        arr = _literal("constant", value, dtype)
        shape = Shape.array(dtypes.from_numpy(arr.dtype), arr.shape)
        return self._add("constant", Opcode.CONSTANT, [], shape=shape, literal=arr)

    def _constant_of_rank(self, rank: int, value: Any, dtype: ElementTypeLike | None) -> XlaOp:
        what = f"constant_r{rank}"
        arr = _literal(what, value, dtype)
        if arr.ndim != rank:
            raise ShapeError(f"{what}: the value has rank {arr.ndim}, expected {rank}")
        return self.constant(arr)

    def constant_r0(self, value: Any, dtype: ElementTypeLike | None = None) -> XlaOp:
        """A scalar constant (XLA's ConstantR0)."""
        return self._constant_of_rank(0, value, dtype)

    def constant_r1(self, values: Any, dtype: ElementTypeLike | None = None) -> XlaOp:
        """A vector constant (XLA's ConstantR1)."""
        return self._constant_of_rank(1, values, dtype)

    def constant_r2(self, values: Any, dtype: ElementTypeLike | None = None) -> XlaOp:
        """A matrix constant from a list of rows (XLA's ConstantR2)."""
        return self._constant_of_rank(2, values, dtype)

    def iota(self, dtype: ElementTypeLike, dims: Sequence[int] | int,
             iota_dimension: int = 0) -> XlaOp:
        """Values 0, 1, 2, ... along `iota_dimension` of an array of `dims` (an int: a vector)."""
        et = element_type(dtype)
        sizes = int_list("iota", "dims", dims)
        if not (et.is_integer or et.is_float or et.is_complex):
            raise ShapeError(f"iota: element type {et.value} is not numeric")
        iota_dimension = int_arg("iota", "iota_dimension", iota_dimension)
        if not 0 <= iota_dimension < len(sizes):
            raise ShapeError(
                f"iota: iota_dimension {iota_dimension} is out of range for dims {list(sizes)}"
            )
        return self._add(
            "iota", Opcode.IOTA, [], shape=Shape.array(et, sizes), iota_dimension=iota_dimension
        )

    def _rng(self, what: str, distribution: str, a: XlaOp, b: XlaOp, shape: Shape) -> XlaOp:
        self._check_operands(what, [a, b])
        if not isinstance(shape, Shape) or not shape.is_array:
            raise ShapeError(f"{what}: the result shape must be an array shape, got {shape}")
        for role, x in (("a", a), ("b", b)):
            self._require_scalar(what, x, role)
            if x.shape.element_type is not shape.element_type:
                raise ShapeError(
                    f"{what}: {role} is {shape_text(x.shape)}, but the result shape is "
                    f"{shape_text(shape)}; the element types must match"
                )
        return self._add(what, Opcode.RNG, [a, b], shape=shape, distribution=distribution)

    def rng_uniform(self, a: XlaOp, b: XlaOp, shape: Shape) -> XlaOp:
        """Uniform random numbers in [a, b) of `shape`; a, b scalars of its element type."""
        et = shape.element_type if isinstance(shape, Shape) else None
        if et is not None and not (et.is_float or et.is_integer):
            raise ShapeError(f"rng_uniform: element type {et.value} is neither float nor integer")
        return self._rng("rng_uniform", "rng_uniform", a, b, shape)

    def rng_normal(self, mu: XlaOp, sigma: XlaOp, shape: Shape) -> XlaOp:
        """Normal random numbers with mean `mu` and deviation `sigma` (float scalars)."""
        if isinstance(shape, Shape) and not shape.element_type.is_float:
            raise ShapeError(
                f"rng_normal: element type {shape.element_type.value} is not floating point"
            )
        return self._rng("rng_normal", "rng_normal", mu, sigma, shape)

    def tuple(self, elements: Sequence[XlaOp]) -> XlaOp:
        """A tuple of the given handles (each keeps its own shape)."""
        return self._add("tuple", Opcode.TUPLE, handle_list("tuple", "elements", elements))

    def get_tuple_element(self, tuple_: XlaOp, index: int) -> XlaOp:
        """Element `index` of a tuple (a compile-time constant, as std::get<N>)."""
        what = f"get_tuple_element({index})"
        index = int_arg(what, "index", index)
        self._check_operands(what, [tuple_])
        shape = tuple_.shape
        if not shape.is_tuple:
            raise ShapeError(f"{what}: the operand {shape_text(shape)} is not a tuple")
        if not 0 <= index < len(shape.tuple_shapes):
            raise ShapeError(
                f"{what}: index out of range for {shape_text(shape)} with "
                f"{len(shape.tuple_shapes)} elements"
            )
        return self._add(what, Opcode.GET_TUPLE_ELEMENT, [tuple_], index=index)
