"""The PrimitiveType table: XLA element types with their numpy dtype, bit width and kind.

This is the only place element types are listed; everything else looks them up here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import ml_dtypes
import numpy as np

from hlo.errors import TfcompileError


class Kind(enum.Enum):
    PRED = "pred"
    SIGNED = "signed"
    UNSIGNED = "unsigned"
    FLOAT = "float"
    COMPLEX = "complex"
    TUPLE = "tuple"
    TOKEN = "token"


@dataclass(frozen=True, slots=True)
class TypeInfo:
    numpy: np.dtype | None
    bits: int
    kind: Kind


class PrimitiveType(enum.Enum):
    """XLA element types; the value is the name in HLO text (`f32`, `pred`, ...)."""

    PRED = "pred"
    S8 = "s8"
    S16 = "s16"
    S32 = "s32"
    S64 = "s64"
    U8 = "u8"
    U16 = "u16"
    U32 = "u32"
    U64 = "u64"
    F16 = "f16"
    BF16 = "bf16"
    F32 = "f32"
    F64 = "f64"
    C64 = "c64"
    C128 = "c128"
    TUPLE = "tuple"
    TOKEN = "token"

    @property
    def info(self) -> TypeInfo:
        return _INFO[self]

    @property
    def numpy(self) -> np.dtype:
        dt = _INFO[self].numpy
        if dt is None:
            raise TfcompileError(f"element type {self.value} has no numpy dtype")
        return dt

    @property
    def bits(self) -> int:
        return _INFO[self].bits

    @property
    def kind(self) -> Kind:
        return _INFO[self].kind

    @property
    def is_float(self) -> bool:
        return self.kind is Kind.FLOAT

    @property
    def is_complex(self) -> bool:
        return self.kind is Kind.COMPLEX

    @property
    def is_integer(self) -> bool:
        return self.kind in (Kind.SIGNED, Kind.UNSIGNED)

    @property
    def is_signed(self) -> bool:
        return self.kind is Kind.SIGNED

    @property
    def is_unsigned(self) -> bool:
        return self.kind is Kind.UNSIGNED

    @property
    def is_pred(self) -> bool:
        return self is PrimitiveType.PRED

    @property
    def is_array(self) -> bool:
        """True for types that can be array elements (not TUPLE or TOKEN)."""
        return self.kind not in (Kind.TUPLE, Kind.TOKEN)

    @property
    def byte_size(self) -> int:
        return max(self.bits // 8, 1)


_T = PrimitiveType
_INFO: dict[PrimitiveType, TypeInfo] = {
    _T.PRED: TypeInfo(np.dtype(np.bool_), 8, Kind.PRED),
    _T.S8: TypeInfo(np.dtype(np.int8), 8, Kind.SIGNED),
    _T.S16: TypeInfo(np.dtype(np.int16), 16, Kind.SIGNED),
    _T.S32: TypeInfo(np.dtype(np.int32), 32, Kind.SIGNED),
    _T.S64: TypeInfo(np.dtype(np.int64), 64, Kind.SIGNED),
    _T.U8: TypeInfo(np.dtype(np.uint8), 8, Kind.UNSIGNED),
    _T.U16: TypeInfo(np.dtype(np.uint16), 16, Kind.UNSIGNED),
    _T.U32: TypeInfo(np.dtype(np.uint32), 32, Kind.UNSIGNED),
    _T.U64: TypeInfo(np.dtype(np.uint64), 64, Kind.UNSIGNED),
    _T.F16: TypeInfo(np.dtype(np.float16), 16, Kind.FLOAT),
    _T.BF16: TypeInfo(np.dtype(ml_dtypes.bfloat16), 16, Kind.FLOAT),
    _T.F32: TypeInfo(np.dtype(np.float32), 32, Kind.FLOAT),
    _T.F64: TypeInfo(np.dtype(np.float64), 64, Kind.FLOAT),
    _T.C64: TypeInfo(np.dtype(np.complex64), 64, Kind.COMPLEX),
    _T.C128: TypeInfo(np.dtype(np.complex128), 128, Kind.COMPLEX),
    _T.TUPLE: TypeInfo(None, 0, Kind.TUPLE),
    _T.TOKEN: TypeInfo(None, 0, Kind.TOKEN),
}
assert set(_INFO) == set(PrimitiveType), "every PrimitiveType needs a TypeInfo row"

_BY_NUMPY: dict[np.dtype, PrimitiveType] = {
    info.numpy: t for t, info in _INFO.items() if info.numpy is not None
}


def from_numpy(dtype: np.dtype | type) -> PrimitiveType:
    """The PrimitiveType of a numpy dtype; raises TfcompileError for unsupported dtypes."""
    dt = np.dtype(dtype)
    try:
        return _BY_NUMPY[dt]
    except KeyError:
        raise TfcompileError(f"numpy dtype {dt} has no XLA element type") from None


def from_name(name: str) -> PrimitiveType:
    """The PrimitiveType named `name` in HLO text (`f32`); raises TfcompileError."""
    try:
        return PrimitiveType(name)
    except ValueError:
        raise TfcompileError(f"unknown element type '{name}'") from None


def complex_component(t: PrimitiveType) -> PrimitiveType:
    """The real type of a complex type's components (c64 -> f32)."""
    return {_T.C64: _T.F32, _T.C128: _T.F64}[t]
