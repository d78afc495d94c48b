"""Scalar arithmetic of contractions (dot, convolution, linear algebra), shared by the backends.

A contraction sums products in an accumulation type that may differ from its operands' and
its result's: `accumulation_type` and `dot_accumulation_type` choose it (f16/bf16 sum in f32;
a result narrower than float operands is computed in the operands' type and rounded once,
as XLA's ResultCaster does). The operations here work on register values of one element
type: integers wrap, PRED adds as OR and multiplies as AND, complex values are {re, im}
structs, and `multiply_add` of floats is `llvm.fmuladd` so that the target may use one FMA.
Both the CPU kernels and the GPU kernels emit exactly these instructions, which keeps their
results identical up to the order of summation.
"""

from __future__ import annotations

from collections.abc import Sequence

from llvmlite import ir

from backends.elemental_convert import convert
from backends.llvm.irutil import intrinsic
from hlo.dtypes import PrimitiveType

_T = PrimitiveType


def accumulation_type(t: PrimitiveType) -> PrimitiveType:
    """The type a sum of products of `t` accumulates in: f32 for f16/bf16, else `t` itself."""
    if t in (_T.F16, _T.BF16):
        return _T.F32
    return t


def dot_accumulation_type(
    out_t: PrimitiveType, operand_types: Sequence[PrimitiveType]
) -> PrimitiveType:
    """The type a dot accumulates in: that of its result, widened to wider float operands.

    A result narrower than the operands is computed in the operands' type and rounded at
    the end (XLA's ResultCaster); integers may use the result type, as wrapping commutes
    with truncation.
    """
    acc = accumulation_type(out_t)
    for t in operand_types:
        wide = accumulation_type(t)
        if (acc.is_float and wide.is_float) or (acc.is_complex and wide.is_complex):
            if wide.bits > acc.bits:
                acc = wide
    return acc


def convert_scalar(
    b: ir.IRBuilder, value: ir.Value, src: PrimitiveType, dst: PrimitiveType
) -> ir.Value:
    """`value` of element type `src` converted to `dst` with XLA's convert semantics."""
    return convert(b, src, dst, value)


def add_scalar(b: ir.IRBuilder, t: PrimitiveType, x: ir.Value, y: ir.Value) -> ir.Value:
    """x + y in type `t` (integers wrap, PRED is OR, complex adds componentwise)."""
    if t.is_float:
        return b.fadd(x, y)
    if t.is_pred:
        return b.or_(x, y)
    if t.is_complex:
        re = b.fadd(b.extract_value(x, 0), b.extract_value(y, 0))
        im = b.fadd(b.extract_value(x, 1), b.extract_value(y, 1))
        return b.insert_value(b.insert_value(ir.Constant(x.type, ir.Undefined), re, 0), im, 1)
    return b.add(x, y)


def mul_scalar(b: ir.IRBuilder, t: PrimitiveType, x: ir.Value, y: ir.Value) -> ir.Value:
    """x * y in type `t` (integers wrap, PRED is AND, complex multiplies as complex)."""
    if t.is_float:
        return b.fmul(x, y)
    if t.is_pred:
        return b.and_(x, y)
    if t.is_complex:
        xr, xi = b.extract_value(x, 0), b.extract_value(x, 1)
        yr, yi = b.extract_value(y, 0), b.extract_value(y, 1)
        re = b.fsub(b.fmul(xr, yr), b.fmul(xi, yi))
        im = b.fadd(b.fmul(xr, yi), b.fmul(xi, yr))
        return b.insert_value(b.insert_value(ir.Constant(x.type, ir.Undefined), re, 0), im, 1)
    return b.mul(x, y)


def multiply_add(
    b: ir.IRBuilder, t: PrimitiveType, acc: ir.Value, x: ir.Value, y: ir.Value
) -> ir.Value:
    """acc + x * y; floats use llvm.fmuladd so the target may fuse it into one FMA.

    `x`, `y` and `acc` may also be vectors of `t` (floats and integers only).
    """
    if t.is_float:
        return intrinsic(b, f"llvm.fmuladd.{float_suffix(x.type)}", x.type, [x, y, acc])
    return add_scalar(b, t, acc, mul_scalar(b, t, x, y))


def float_suffix(ty: ir.Type) -> str:
    """The intrinsic name suffix of a scalar or vector float type (f32, v8f32, ...)."""
    if isinstance(ty, ir.VectorType):
        return f"v{ty.count}{float_suffix(ty.element)}"
    return {"half": "f16", "float": "f32", "double": "f64"}[str(ty)]


__all__ = [
    "accumulation_type",
    "add_scalar",
    "convert_scalar",
    "dot_accumulation_type",
    "float_suffix",
    "multiply_add",
    "mul_scalar",
]
