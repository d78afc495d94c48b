"""What the CPU convolution kernels (backends/cpu/conv.py, conv_tiled.py) share: the
geometry of a convolution instruction (window, groups, sizes, accumulation type), the
index of an output element, and the row-major [pixels, features] result they may compute
into before storing it in out's layout and type (with a fusion's epilogue applied)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from llvmlite import ir

from backends.cpu.fused_expression import ExpressionFunction
from backends.cpu.kernels import KernelContext
from backends.llvm.arith import convert_scalar, dot_accumulation_type
from backends.llvm.index import IrIndex, delinearize
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import for_range, i64
from backends.llvm.window import place, window_dims
from hlo.attributes import ConvDimLabels, WindowDim
from hlo.dtypes import PrimitiveType
from hlo.instruction import HloInstruction


@dataclass(frozen=True)
class ConvGeometry:
    """The geometry of one convolution instruction, read off its shapes and attributes."""

    labels: ConvDimLabels
    window: list[WindowDim]
    feature_groups: int
    batch_groups: int
    acc_t: PrimitiveType
    in_sizes: list[int]
    out_sizes: list[int]
    kernel_sizes: list[int]
    out_batch: int
    in_features: int
    kernel_in: int
    kernel_out: int

    @staticmethod
    def of(instr: HloInstruction, lhs: IrArray, rhs: IrArray, out: IrArray) -> ConvGeometry:
        labels: ConvDimLabels = instr.attrs["dim_labels"]
        kernel_sizes = [rhs.shape.dims[d] for d in labels.kernel_spatial]
        return ConvGeometry(
            labels=labels,
            window=window_dims(instr.attrs.get("window"), kernel_sizes),
            feature_groups=instr.attrs.get("feature_group_count") or 1,
            batch_groups=instr.attrs.get("batch_group_count") or 1,
            acc_t=dot_accumulation_type(out.element_type, [lhs.element_type, rhs.element_type]),
            in_sizes=[lhs.shape.dims[d] for d in labels.input_spatial],
            out_sizes=[out.shape.dims[d] for d in labels.output_spatial],
            kernel_sizes=kernel_sizes,
            out_batch=out.shape.dims[labels.output_batch],
            in_features=lhs.shape.dims[labels.input_feature],
            kernel_in=rhs.shape.dims[labels.kernel_input_feature],
            kernel_out=rhs.shape.dims[labels.kernel_output_feature],
        )

    @property
    def groups(self) -> int:
        return self.feature_groups * self.batch_groups

    @property
    def output_dims(self) -> tuple[int, ...]:
        """The dimensions of the result, in the order of its shape."""
        labels = self.labels
        dims = [0] * (len(self.out_sizes) + 2)
        dims[labels.output_batch] = self.out_batch
        dims[labels.output_feature] = self.kernel_out
        for d, size in zip(labels.output_spatial, self.out_sizes, strict=True):
            dims[d] = size
        return tuple(dims)

    @property
    def pixels(self) -> int:
        """Output positions: batch times output spatial sizes (the GEMM's M)."""
        return self.out_batch * math.prod(self.out_sizes)


def element_offset(b: ir.IRBuilder, strides: Sequence[int],
            pairs: Sequence[tuple[int, ir.Value]]) -> ir.Value:
    """The element offset sum(value * strides[dim]) of (dimension, value) pairs."""
    total: ir.Value = i64(0)
    for dim, value in pairs:
        if strides[dim]:
            total = b.add(total, b.mul(value, i64(strides[dim])))
    return total


def direct_output(conv: ConvGeometry, out: IrArray) -> bool:
    """True when `out` is row-major [pixels, features] of the accumulation type."""
    order = (conv.labels.output_batch, *conv.labels.output_spatial, conv.labels.output_feature)
    return order == tuple(range(out.shape.rank)) and out.element_type is conv.acc_t


def pixel_coordinates(b: ir.IRBuilder, conv: ConvGeometry, m: ir.Value) -> list[ir.Value]:
    """Output pixel m (row-major over batch and output spatial) as [batch, spatial...]."""
    return delinearize(b, m, [conv.out_batch, *conv.out_sizes])


def output_index(conv: ConvGeometry, dims: Sequence[int], pixel: Sequence[ir.Value],
                 feature: ir.Value, linear: ir.Value | None = None) -> IrIndex:
    """The index into the output (of `dims`) of feature `feature` of the pixel whose
    coordinates are `pixel` (see pixel_coordinates); `linear` is its row-major offset when
    the caller knows it."""
    labels = conv.labels
    ob, *opos = pixel
    values = place(len(dims), [
        (labels.output_batch, ob),
        (labels.output_feature, feature),
        *zip(labels.output_spatial, opos, strict=True),
    ])
    return IrIndex(values, dims, linear)


def store_output(ctx: KernelContext, conv: ConvGeometry, c: IrArray, out: IrArray,
                 epilogue: ExpressionFunction | None = None) -> None:
    """out[batch, spatial, feature] = C[pixel, feature], converted to out's type (then
    through `epilogue`, when given)."""
    b = ctx.builder
    with for_range(b, 0, conv.pixels, name="conv.pixel") as m:
        pixel = pixel_coordinates(b, conv, m)
        with for_range(b, 0, conv.kernel_out, name="conv.f") as f:
            value = c.load_linear(b, b.add(b.mul(m, i64(conv.kernel_out)), f))
            value = convert_scalar(b, value, conv.acc_t, out.element_type)
            index = output_index(conv, out.shape.dims, pixel, f)
            if epilogue is not None:
                value = epilogue(index, value)
            out.store(b, index, value)
