"""CPU kernel for `convolution`: im2col + packed GEMM, a depthwise loop, and a direct loop nest.

Three paths, chosen per instruction:

* **im2col + GEMM** when there are no batch groups and a group has more than one input
  feature, and the kernel's non-output dimensions merge into one stride (its output feature
  dimension is outermost or innermost, as in HWIO and OIHW). Output pixels (batch x output
  spatial) are the GEMM's M, the window positions times the group's input features its K,
  the group's output features its N. Chunks of output pixels are expanded into a row-major
  scratch A (im2col: zeros where the window reads padding or lhs-dilation holes; any
  stride, rhs dilation and reversal), then multiplied by the kernel in place with the
  packed GEMM of `backends/cpu/gemm.py`, straight into the output when it is laid out
  (batch, spatial..., feature) in the accumulation type; otherwise through a scratch C.
  Chunks are sized so that one fits in L2 while packing B stays amortised.
* **depthwise** when every input feature is its own group (feature_group_count equal to
  the input features): per output pixel, a row of accumulators over the output features,
  updated once per valid window position by a loop over features that vectorises when the
  feature dimensions are contiguous (NHWC/HWIO).
* **direct** for everything else (batch groups, kernels whose output feature dimension sits
  in the middle): for every output position a row of accumulators over the output features
  is cleared; each window position is checked once against padding and dilation holes, then
  every input feature of every group adds `x * kernel[window, i, :]` to its slice of the row.

All paths follow XLA's semantics for any dim_labels layout, strides, padding (negative too),
lhs (base) dilation, rhs (window) dilation, window reversal, feature_group_count and
batch_group_count. Accumulation types are the dot kernel's (f16/bf16 accumulate in f32).
Groups follow the StableHLO definition: feature group g reads input features
[g*Ci/G, (g+1)*Ci/G) and writes output features [g*Co/G, (g+1)*Co/G); batch group g reads
input batches [g*N/B, (g+1)*N/B) and writes output features [g*Co/B, (g+1)*Co/B).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from llvmlite import ir

from backends.cpu.dot import convert_scalar, dot_accumulation_type, multiply_add
from backends.cpu.gemm import GemmPlan, MatrixOperand, kernel_target, target_caches
from backends.cpu.kernels import BufferValue, KernelContext, emits
from backends.llvm.index import delinearize, row_major_strides
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import I1, const, for_range, i64, if_else, if_then, llvm_type, loop_nest
from hlo.attributes import ConvDimLabels, Window, WindowDim
from hlo.dtypes import PrimitiveType
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

_NOWRAP = ("nuw", "nsw")

# An im2col chunk has at least this many output pixels, so that packing the kernel once per
# chunk stays small next to the chunk's multiply-adds.
MIN_CHUNK_ROWS = 128


def _window_dims(window: Window | None, kernel_sizes: Sequence[int]) -> list[WindowDim]:
    """The window, or the default one (size = kernel size, unit strides, no padding)."""
    if window is None or not window.dims:
        return [WindowDim(size) for size in kernel_sizes]
    return list(window.dims)


@dataclass(frozen=True)
class _Conv:
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
    def of(instr: HloInstruction, lhs: IrArray, rhs: IrArray, out: IrArray) -> _Conv:
        labels: ConvDimLabels = instr.attrs["dim_labels"]
        kernel_sizes = [rhs.shape.dims[d] for d in labels.kernel_spatial]
        return _Conv(
            labels=labels,
            window=_window_dims(instr.attrs.get("window"), kernel_sizes),
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
    def pixels(self) -> int:
        """Output positions: batch times output spatial sizes (the GEMM's M)."""
        return self.out_batch * math.prod(self.out_sizes)


def _input_positions(
    b: ir.IRBuilder,
    dims: Sequence[WindowDim],
    in_sizes: Sequence[int],
    out_pos: Sequence[ir.Value],
    win_pos: Sequence[ir.Value],
) -> tuple[list[ir.Value], ir.Value]:
    """Input spatial indices read at a window position, and an i1 'is real data' flag.

    Position p = out * stride + win * rhs_dilation - pad_low lies in the lhs-dilated,
    padded input; it is data when p >= 0, p % lhs_dilation == 0 and p / lhs_dilation < size.
    """
    positions: list[ir.Value] = []
    valid: ir.Value = ir.Constant(I1, 1)
    for wd, size, o, w in zip(dims, in_sizes, out_pos, win_pos, strict=True):
        p = b.mul(o, i64(wd.stride))
        p = b.add(p, b.mul(w, i64(wd.window_dilation)))
        p = b.sub(p, i64(wd.padding_low))
        ok = b.icmp_signed(">=", p, i64(0))
        if wd.base_dilation != 1:
            ok = b.and_(ok, b.icmp_signed("==", b.srem(p, i64(wd.base_dilation)), i64(0)))
            p = b.sdiv(p, i64(wd.base_dilation))
        ok = b.and_(ok, b.icmp_signed("<", p, i64(size)))
        valid = b.and_(valid, ok)
        positions.append(p)
    return positions, valid


def _kernel_positions(b: ir.IRBuilder, window: Sequence[WindowDim],
                      wpos: Sequence[ir.Value]) -> list[ir.Value]:
    """Kernel indices at window positions: a reversed window reads the kernel back to front."""
    return [
        b.sub(i64(wd.size - 1), w) if wd.window_reversal else w
        for wd, w in zip(window, wpos, strict=True)
    ]


def _place(rank: int, pairs: Sequence[tuple[int, ir.Value]]) -> list[ir.Value]:
    """An index of `rank` values with each (dimension, value) pair placed."""
    index: list[ir.Value] = [i64(0)] * rank
    for dim, value in pairs:
        index[dim] = value
    return index


def _offset(b: ir.IRBuilder, strides: Sequence[int],
            pairs: Sequence[tuple[int, ir.Value]]) -> ir.Value:
    """The element offset sum(value * strides[dim]) of (dimension, value) pairs."""
    total: ir.Value = i64(0)
    for dim, value in pairs:
        if strides[dim]:
            total = b.add(total, b.mul(value, i64(strides[dim])))
    return total


@emits(Opcode.CONVOLUTION)
def emit_convolution(
    ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue], out: BufferValue
) -> None:
    """out = convolution(lhs, rhs) with XLA's semantics (see the module docstring)."""
    lhs, rhs = operands
    conv = _Conv.of(instr, lhs, rhs, out)
    if out.shape.num_elements == 0:
        return
    supported = not (conv.acc_t.is_complex or conv.acc_t.is_pred)
    kernel = _kernel_matrix(conv, rhs) if supported else None
    if conv.batch_groups == 1 and conv.kernel_in > 1 and kernel is not None:
        _emit_im2col_gemm(ctx, conv, lhs, rhs, out, kernel)
    elif conv.batch_groups == 1 and conv.feature_groups > 1 and conv.kernel_in == 1:
        _emit_depthwise(ctx, conv, lhs, rhs, out)
    else:
        _emit_direct(ctx, conv, lhs, rhs, out)


# --- im2col + GEMM ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _KernelMatrix:
    """The kernel as the GEMM's B: rows over its non-output dimensions in memory order.

    Attributes:
        operand: B as a strided matrix (rows: window positions x input features).
        column_of: per kernel dimension, the im2col column stride of its index.
        output_stride: the element stride of the output feature dimension.
    """

    operand: MatrixOperand
    column_of: tuple[int, ...]
    output_stride: int


def _kernel_matrix(conv: _Conv, rhs: IrArray) -> _KernelMatrix | None:
    """B = the kernel, when its non-output dimensions merge into one stride, else None."""
    dims = rhs.shape.dims
    strides = row_major_strides(dims)
    out_dim = conv.labels.kernel_output_feature
    rows = [d for d in range(len(dims)) if d != out_dim and dims[d] != 1]
    for outer, inner in zip(rows, rows[1:], strict=False):
        if strides[outer] != strides[inner] * dims[inner]:
            return None
    unit = strides[rows[-1]] if rows else 1
    column_of = tuple(strides[d] // unit if d != out_dim else 0 for d in range(len(dims)))
    operand = MatrixOperand(rhs.element_type, 0, unit, strides[out_dim])
    return _KernelMatrix(operand, column_of, strides[out_dim])


def _direct_output(conv: _Conv, out: IrArray) -> bool:
    """True when `out` is row-major [pixels, features] of the accumulation type."""
    order = (conv.labels.output_batch, *conv.labels.output_spatial, conv.labels.output_feature)
    return order == tuple(range(out.shape.rank)) and out.element_type is conv.acc_t


def _emit_im2col_gemm(ctx: KernelContext, conv: _Conv, lhs: IrArray, rhs: IrArray,
                      out: IrArray, kernel: _KernelMatrix) -> None:
    """out = im2col(lhs) @ kernel, in chunks of output pixels, group by group."""
    b = ctx.builder
    acc_t = conv.acc_t
    target = kernel_target(ctx)
    pixels = conv.pixels
    depth = math.prod(conv.kernel_sizes) * conv.kernel_in
    group_out = conv.kernel_out // conv.groups
    budget = target_caches(target).l2 // 2 // max(1, depth * acc_t.byte_size)
    rows = min(pixels, max(MIN_CHUNK_ROWS, budget))
    a = MatrixOperand(acc_t, 0, depth, 1)
    plan = GemmPlan.create(target, acc_t, 1, rows, group_out, depth, a, kernel.operand,
                           c_batch_stride=0, c_row_stride=conv.kernel_out)
    gemm = plan.emit_range_function(ctx.module, f"{b.function.name}.gemm")
    chunk: IrArray = ctx.temp_array(Shape.array(acc_t, (rows, depth)), name="conv.im2col")
    scratch = ctx.temp_array(Shape.array(acc_t, (plan.scratch_elements,)), name="conv.gemm")
    direct = _direct_output(conv, out)
    c = out if direct else ctx.temp_array(Shape.array(acc_t, (pixels, conv.kernel_out)),
                                          name="conv.c")
    chunks = -(-pixels // rows)
    with for_range(b, 0, chunks, name="conv.chunk") as ch:
        m0 = b.mul(ch, i64(rows), flags=_NOWRAP)
        count = b.sub(i64(pixels), m0)
        count = b.select(b.icmp_signed("<", count, i64(rows)), count, i64(rows))
        with for_range(b, 0, conv.feature_groups, name="conv.group") as g:
            _emit_im2col(ctx, conv, lhs, chunk, kernel, m0, count, g)
            kernel_ptr = b.gep(rhs.ptr, [b.mul(g, i64(group_out * kernel.output_stride))],
                               inbounds=True, source_etype=rhs.storage)
            c_offset = b.add(b.mul(m0, i64(conv.kernel_out)), b.mul(g, i64(group_out)))
            c_ptr = b.gep(c.ptr, [c_offset], inbounds=True, source_etype=llvm_type(acc_t))
            b.call(gemm, [chunk.ptr, kernel_ptr, c_ptr, scratch.ptr, i64(0), i64(1), i64(0),
                          count, i64(0), i64(group_out)])
    if not direct:
        _store_output(ctx, conv, c, out)


def _emit_im2col(ctx: KernelContext, conv: _Conv, lhs: IrArray, chunk: IrArray,
                 kernel: _KernelMatrix, m0: ir.Value, count: ir.Value, group: ir.Value) -> None:
    """chunk[r, column(window, i)] = lhs at output pixel m0 + r, window position, input
    feature group * Ci/G + i; zero where the window reads padding or a dilation hole."""
    b = ctx.builder
    labels = conv.labels
    depth = chunk.shape.dims[1]
    x_strides = row_major_strides(lhs.shape.dims)
    feature0 = b.mul(group, i64(conv.kernel_in))
    column_stride = kernel.column_of[labels.kernel_input_feature]
    zero = const(conv.acc_t, 0)
    with for_range(b, 0, count, name="im2col.row") as r:
        ob, *opos = delinearize(b, b.add(m0, r), [conv.out_batch, *conv.out_sizes])
        row = b.mul(r, i64(depth))
        with loop_nest(b, conv.kernel_sizes, name="im2col.win") as wpos:
            positions, valid = _input_positions(b, conv.window, conv.in_sizes, opos, wpos)
            kpos = _kernel_positions(b, conv.window, wpos)
            first = b.add(row, _offset(b, kernel.column_of,
                                       list(zip(labels.kernel_spatial, kpos, strict=True))))
            with if_else(b, valid, likely=True) as (then, otherwise):
                with then:
                    base = _offset(b, x_strides, [
                        (labels.input_batch, ob),
                        (labels.input_feature, feature0),
                        *zip(labels.input_spatial, positions, strict=True),
                    ])
                    with for_range(b, 0, conv.kernel_in, name="im2col.i") as i:
                        at = b.add(base, b.mul(i, i64(x_strides[labels.input_feature])))
                        value = convert_scalar(b, lhs.load_linear(b, at), lhs.element_type,
                                               conv.acc_t)
                        chunk.store_linear(b, b.add(first, b.mul(i, i64(column_stride))), value)
                with otherwise:
                    with for_range(b, 0, conv.kernel_in, name="im2col.z") as i:
                        chunk.store_linear(b, b.add(first, b.mul(i, i64(column_stride))), zero)


def _store_output(ctx: KernelContext, conv: _Conv, c: IrArray, out: IrArray) -> None:
    """out[batch, spatial, feature] = C[pixel, feature], converted to out's type."""
    b = ctx.builder
    labels = conv.labels
    with for_range(b, 0, conv.pixels, name="conv.pixel") as m:
        ob, *opos = delinearize(b, m, [conv.out_batch, *conv.out_sizes])
        with for_range(b, 0, conv.kernel_out, name="conv.f") as f:
            value = c.load_linear(b, b.add(b.mul(m, i64(conv.kernel_out)), f))
            index = _place(out.shape.rank, [
                (labels.output_batch, ob),
                (labels.output_feature, f),
                *zip(labels.output_spatial, opos, strict=True),
            ])
            out.store(b, index, convert_scalar(b, value, conv.acc_t, out.element_type))


# --- depthwise --------------------------------------------------------------------------------


def _emit_depthwise(ctx: KernelContext, conv: _Conv, lhs: IrArray, rhs: IrArray,
                    out: IrArray) -> None:
    """Each input feature c is its own group: out features [c*mult, (c+1)*mult) read only c."""
    b = ctx.builder
    labels = conv.labels
    acc_t = conv.acc_t
    mult = conv.kernel_out // conv.feature_groups
    x_strides = row_major_strides(lhs.shape.dims)
    w_strides = row_major_strides(rhs.shape.dims)
    x_feature = x_strides[labels.input_feature]
    w_feature = w_strides[labels.kernel_output_feature]
    row = ctx.temp_array(Shape.array(acc_t, (conv.kernel_out,)), name="conv.row")
    zero = const(acc_t, 0)
    with loop_nest(b, [conv.out_batch, *conv.out_sizes], name="dw.out") as (ob, *opos):
        with for_range(b, 0, conv.kernel_out, name="dw.clear") as f:
            row.store_linear(b, f, zero)
        with loop_nest(b, conv.kernel_sizes, name="dw.win") as wpos:
            positions, valid = _input_positions(b, conv.window, conv.in_sizes, opos, wpos)
            kpos = _kernel_positions(b, conv.window, wpos)
            with if_then(b, valid):
                x_base = _offset(b, x_strides, [
                    (labels.input_batch, ob), *zip(labels.input_spatial, positions, strict=True)])
                w_base = _offset(b, w_strides, list(zip(labels.kernel_spatial, kpos, strict=True)))
                with for_range(b, 0, conv.feature_groups, name="dw.c") as c:
                    x = lhs.load_linear(b, b.add(x_base, b.mul(c, i64(x_feature))))
                    x = convert_scalar(b, x, lhs.element_type, acc_t)
                    # mult == 1 (the common case) leaves a single loop over c, contiguous in
                    # NHWC / HWIO, which vectorises.
                    with for_range(b, 0, mult, name="dw.j") as j:
                        f = b.add(b.mul(c, i64(mult)), j)
                        w = rhs.load_linear(b, b.add(w_base, b.mul(f, i64(w_feature))))
                        w = convert_scalar(b, w, rhs.element_type, acc_t)
                        row.store_linear(b, f, multiply_add(b, acc_t, row.load_linear(b, f), x, w))
        with for_range(b, 0, conv.kernel_out, name="dw.store") as f:
            index = _place(out.shape.rank, [
                (labels.output_batch, ob),
                (labels.output_feature, f),
                *zip(labels.output_spatial, opos, strict=True),
            ])
            out.store(b, index, convert_scalar(b, row.load_linear(b, f), acc_t, out.element_type))


# --- direct loop nest -------------------------------------------------------------------------


def _emit_direct(ctx: KernelContext, conv: _Conv, lhs: IrArray, rhs: IrArray,
                 out: IrArray) -> None:
    """The general loop nest (see the module docstring)."""
    b = ctx.builder
    labels = conv.labels
    acc_t = conv.acc_t
    per_group_out = conv.kernel_out // conv.groups
    row = ctx.temp_array(Shape.array(acc_t, (conv.kernel_out,)), name="conv.row")
    zero = const(acc_t, 0)
    with loop_nest(b, [conv.out_batch, *conv.out_sizes], name="conv.out") as (ob, *opos):
        with for_range(b, 0, conv.kernel_out, name="conv.clear") as f:
            row.store_linear(b, f, zero)
        with loop_nest(b, conv.kernel_sizes, name="conv.win") as wpos:
            positions, valid = _input_positions(b, conv.window, conv.in_sizes, opos, wpos)
            kpos = _kernel_positions(b, conv.window, wpos)
            with if_then(b, valid):
                for g in range(conv.groups):
                    _accumulate_group(
                        ctx, labels, lhs, rhs, row, acc_t, g, ob, positions, kpos,
                        in_batch_offset=g * conv.out_batch if conv.batch_groups > 1 else 0,
                        in_feature_offset=g * conv.kernel_in if conv.feature_groups > 1 else 0,
                        out_feature_offset=g * per_group_out,
                        out_features=per_group_out,
                        kernel_in=conv.kernel_in,
                    )
        with for_range(b, 0, conv.kernel_out, name="conv.store") as f:
            index = _place(out.shape.rank, [
                (labels.output_batch, ob),
                (labels.output_feature, f),
                *zip(labels.output_spatial, opos, strict=True),
            ])
            value = row.load_linear(b, f)
            out.store(b, index, convert_scalar(b, value, acc_t, out.element_type))


def _accumulate_group(
    ctx: KernelContext,
    labels: ConvDimLabels,
    lhs: IrArray,
    rhs: IrArray,
    row: IrArray,
    acc_t: PrimitiveType,
    group: int,
    ob: ir.Value,
    positions: Sequence[ir.Value],
    kpos: Sequence[ir.Value],
    *,
    in_batch_offset: int,
    in_feature_offset: int,
    out_feature_offset: int,
    out_features: int,
    kernel_in: int,
) -> None:
    """row[group's features] += sum over the group's input features of x * kernel."""
    b = ctx.builder
    batch = b.add(ob, i64(in_batch_offset), flags=_NOWRAP) if in_batch_offset else ob
    with for_range(b, 0, kernel_in, name=f"conv.i{group}") as ki:
        feature = b.add(ki, i64(in_feature_offset), flags=_NOWRAP) if in_feature_offset else ki
        x_index = _place(lhs.shape.rank, [
            (labels.input_batch, batch),
            (labels.input_feature, feature),
            *zip(labels.input_spatial, positions, strict=True),
        ])
        x = convert_scalar(b, lhs.load(b, x_index), lhs.element_type, acc_t)
        with for_range(b, 0, out_features, name=f"conv.o{group}") as j:
            f = b.add(j, i64(out_feature_offset), flags=_NOWRAP) if out_feature_offset else j
            k_index = _place(rhs.shape.rank, [
                (labels.kernel_input_feature, ki),
                (labels.kernel_output_feature, f),
                *zip(labels.kernel_spatial, kpos, strict=True),
            ])
            k = convert_scalar(b, rhs.load(b, k_index), rhs.element_type, acc_t)
            row.store_linear(b, f, multiply_add(b, acc_t, row.load_linear(b, f), x, k))
