"""CPU kernel for `convolution`: packed GEMM, register tiles, depthwise and direct loops.

Four paths, chosen per instruction (the first that applies):

* **im2col + GEMM** when there are no batch groups and a group has more than one input
  feature, and the kernel's non-output dimensions merge into one stride (its output feature
  dimension is outermost or innermost, as in HWIO and OIHW). Output pixels (batch x output
  spatial) are the GEMM's M, the window positions times the group's input features its K,
  the group's output features its N. Chunks of output pixels are expanded into a row-major
  scratch A (im2col: zeros where the window reads padding or lhs-dilation holes; any
  stride, rhs dilation and reversal), then multiplied by the kernel in place with the
  packed GEMM of `backends/cpu/gemm.py`, straight into the output when it is laid out
  (batch, spatial..., feature) in the accumulation type; otherwise through a scratch C.
  Chunks are sized so that one fits in L2 while packing B stays amortised. Taken when the
  kernel no longer fits in a quarter of L2; split across threads as dot products are.
* **register tiles** for other float convolutions of one group: a zero-padded copy of the
  input, then MR pixels x NR output features accumulated in vector registers straight
  from it and the (HWIO) kernel, without packing (see `_Tiled`); split across threads
  over pixel tiles.
* **depthwise** when every input feature is its own group (feature_group_count equal to
  the input features): per output pixel, a row of accumulators over the output features,
  updated once per valid window position by a loop over features that vectorises when the
  feature dimensions are contiguous (NHWC/HWIO).
* **direct** for everything else (batch groups, grouped convolutions with small kernels,
  integer and complex types): for every output position a row of accumulators over the
  output features is cleared; each window position is checked once against padding and
  dilation holes, then every input feature of every group adds `x * kernel[window, i, :]`
  to its slice of the row.

All paths follow XLA's semantics for any dim_labels layout, strides, padding (negative too),
lhs (base) dilation, rhs (window) dilation, window reversal, feature_group_count and
batch_group_count. Accumulation types are the dot kernel's (f16/bf16 accumulate in f32).
Groups follow the StableHLO definition: feature group g reads input features
[g*Ci/G, (g+1)*Ci/G) and writes output features [g*Co/G, (g+1)*Co/G); batch group g reads
input batches [g*N/B, (g+1)*N/B) and writes output features [g*Co/B, (g+1)*Co/B).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from llvmlite import ir

from backends.cpu import gemm as cpu_gemm
from backends.cpu.dot import group_strides
from backends.cpu.gemm import (
    K_UNROLL,
    Caches,
    GemmConfig,
    GemmPlan,
    MatrixOperand,
    kernel_target,
    target_caches,
)
from backends.cpu.kernels import BufferValue, KernelContext, emits
from backends.cpu.threads import emit_parallel_for, new_body, pack_context, unpack_context
from backends.llvm.arith import (
    add_scalar,
    convert_scalar,
    dot_accumulation_type,
    multiply_add,
)
from backends.llvm.index import delinearize, row_major_strides
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import (
    I32,
    I64,
    PTR,
    alloca_at_entry,
    const,
    for_range,
    i64,
    if_else,
    if_then,
    llvm_type,
    loop_nest,
)
from backends.llvm.window import input_positions, kernel_positions, place, window_dims
from hlo.attributes import ConvDimLabels, WindowDim
from hlo.dtypes import PrimitiveType
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

_NOWRAP = ("nuw", "nsw")

# Depthwise windows up to this many positions are unrolled (7x7 and smaller).
MAX_UNROLLED_WINDOW = 49


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
    def pixels(self) -> int:
        """Output positions: batch times output spatial sizes (the GEMM's M)."""
        return self.out_batch * math.prod(self.out_sizes)


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
    gemm = supported and conv.batch_groups == 1 and conv.kernel_in > 1 and _prefers_gemm(
        conv, target_caches(kernel_target(ctx)))
    if gemm:
        _emit_gemm(ctx, conv, lhs, rhs, out)
    elif supported and _tiled_applies(conv):
        _emit_tiled(ctx, conv, lhs, rhs, out)
    elif conv.batch_groups == 1 and conv.feature_groups > 1 and conv.kernel_in == 1:
        _emit_depthwise(ctx, conv, lhs, rhs, out)
    else:
        _emit_direct(ctx, conv, lhs, rhs, out)


# --- implicit im2col GEMM ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Im2col:
    """The im2col matrix of one feature group as the GEMM's A, packed straight from lhs.

    Row m is output pixel m (batch, output spatial..., row-major); column k is window
    position s = k // Ci (row-major over the kernel's spatial sizes) and input feature
    i = k % Ci of the group. The range function's A pointer is lhs advanced to the group's
    first input feature. Elements where the window reads padding or an lhs-dilation hole
    are zeros.
    """

    conv: _Conv
    element_type: PrimitiveType
    strides: tuple[int, ...]

    def emit_pack(self, b: ir.IRBuilder, config: GemmConfig, base: ir.Value, dst: ir.Value,
                  batch: ir.Value, row0: ir.Value, rows: ir.Value, col0: ir.Value,
                  cols: ir.Value) -> None:
        del batch  # the GEMM has one batch element: the images are part of M
        conv, mr = self.conv, config.mr
        labels = conv.labels
        features = conv.kernel_in
        feature_stride = self.strides[labels.input_feature]
        elem = llvm_type(config.acc_t)
        zero = const(config.acc_t, 0)
        panels = b.udiv(b.add(rows, i64(mr - 1)), i64(mr))
        with for_range(b, 0, panels, name="im2col.p") as p:
            first = b.add(row0, b.mul(p, i64(mr)))
            panel = b.mul(b.mul(p, i64(mr)), cols)
            # Each row's output pixel, once per panel (rows past the edge read pixel row0).
            pixels = []
            for r in range(mr):
                inside = b.icmp_signed("<", b.add(b.mul(p, i64(mr)), i64(r)), rows)
                m = b.select(inside, b.add(first, i64(r)), row0)
                pixels.append((inside, delinearize(b, m, [conv.out_batch, *conv.out_sizes])))
            # The window positions whose features overlap columns [col0, col0 + cols).
            s_first = b.udiv(col0, i64(features))
            s_end = b.add(b.udiv(b.sub(b.add(col0, cols), i64(1)), i64(features)), i64(1))
            with for_range(b, s_first, s_end, name="im2col.s") as s:
                kidx = delinearize(b, s, conv.kernel_sizes)
                wpos = kernel_positions(b, conv.window, kidx)
                seg = b.mul(s, i64(features))
                lo = b.sub(_max(b, seg, col0), seg)
                hi = b.sub(_min(b, b.add(seg, i64(features)), b.add(col0, cols)), seg)
                # Column of feature 0 of this window position, relative to the panel.
                seg_at = b.add(panel, b.mul(b.sub(seg, col0), i64(mr)))
                # Per row: where its features start, or (padding, dilation hole, row past the
                # edge) a flag to store zeros while reading feature 0 of pixel row0's image.
                sources = []
                for inside, (ob, *opos) in pixels:
                    positions, valid = input_positions(b, conv.window, conv.in_sizes, opos,
                                                        wpos)
                    valid = b.and_(inside, valid)
                    src = _offset(b, self.strides, [
                        (labels.input_batch, ob),
                        *zip(labels.input_spatial, positions, strict=True),
                    ])
                    sources.append((valid, b.select(valid, src, i64(0))))
                with for_range(b, lo, hi, name="im2col.i") as i:
                    feature = b.mul(i, i64(feature_stride))
                    at = b.add(seg_at, b.mul(i, i64(mr)))
                    for r, (valid, src) in enumerate(sources):
                        ptr = b.gep(base, [b.add(src, feature)], inbounds=True,
                                    source_etype=llvm_type(self.element_type))
                        value = b.load(ptr, typ=llvm_type(self.element_type),
                                       align=self.element_type.byte_size)
                        value = convert_scalar(b, value, self.element_type, config.acc_t)
                        b.store(b.select(valid, value, zero),
                                b.gep(dst, [b.add(at, i64(r))], inbounds=True, source_etype=elem))


def _prefers_gemm(conv: _Conv, caches: Caches) -> bool:
    """Whether the packed GEMM beats the other paths: once a group's kernel no longer sits
    in a quarter of L2, packing A and B pays (measured on AVX2, one core: the GEMM is 10 to
    20% faster than the register tiles for 3x3 kernels of 64->64 features and more, the
    tiles up to 2x faster for 3x3 32->64 and 1x1 64->256)."""
    depth = math.prod(conv.kernel_sizes) * conv.kernel_in
    group_out = conv.kernel_out // conv.groups
    return depth * group_out * conv.acc_t.byte_size >= caches.l2 // 4


def _min(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed("<", x, y), x, y)


def _max(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed(">", x, y), x, y)


def _kernel_matrix(ctx: KernelContext, conv: _Conv, rhs: IrArray
                   ) -> tuple[IrArray, MatrixOperand]:
    """The kernel as the GEMM's B [window positions x input features, output features]:
    in place when those dimensions merge (HWIO), else a row-major copy."""
    labels = conv.labels
    rows = (*labels.kernel_spatial, labels.kernel_input_feature)
    strides = group_strides(rhs.shape, [rows, (labels.kernel_output_feature,)])
    if strides is not None:
        return rhs, MatrixOperand(rhs.element_type, 0, strides[0], strides[1])
    b = ctx.builder
    dims = [*conv.kernel_sizes, conv.kernel_in, conv.kernel_out]
    copy: IrArray = ctx.temp_array(Shape.array(conv.acc_t, tuple(dims)), name="conv.kernel")
    with loop_nest(b, dims, name="conv.kcopy") as idx:
        index = place(rhs.shape.rank, [*zip(rows, idx[:-1], strict=True),
                                        (labels.kernel_output_feature, idx[-1])])
        value = convert_scalar(b, rhs.load(b, index), rhs.element_type, conv.acc_t)
        copy.store(b, idx, value)
    return copy, MatrixOperand(conv.acc_t, 0, conv.kernel_out, 1)


def _direct_output(conv: _Conv, out: IrArray) -> bool:
    """True when `out` is row-major [pixels, features] of the accumulation type."""
    order = (conv.labels.output_batch, *conv.labels.output_spatial, conv.labels.output_feature)
    return order == tuple(range(out.shape.rank)) and out.element_type is conv.acc_t


def _emit_gemm(ctx: KernelContext, conv: _Conv, lhs: IrArray, rhs: IrArray,
               out: IrArray) -> None:
    """out = im2col(lhs) @ kernel, one GEMM per feature group over all output pixels."""
    b = ctx.builder
    acc_t = conv.acc_t
    depth = math.prod(conv.kernel_sizes) * conv.kernel_in
    group_out = conv.kernel_out // conv.groups
    kernel, kernel_b = _kernel_matrix(ctx, conv, rhs)
    x_strides = tuple(row_major_strides(lhs.shape.dims))
    a = _Im2col(conv, lhs.element_type, x_strides)
    plan = GemmPlan.create(kernel_target(ctx), acc_t, 1, conv.pixels, group_out, depth, a,
                           kernel_b, c_batch_stride=0, c_row_stride=conv.kernel_out)
    gemm = plan.emit_range_function(ctx.module, f"{b.function.name}.gemm")
    # One scratch slice per chunk the product may be split into (threads, when given).
    threads = getattr(ctx, "threads", None)
    chunks = plan.parallel_chunks if threads is not None else 1
    scratch = ctx.temp_array(Shape.array(acc_t, (chunks * plan.scratch_elements,)),
                             name="conv.gemm")
    direct = _direct_output(conv, out)
    c = out if direct else ctx.temp_array(Shape.array(acc_t, (conv.pixels, conv.kernel_out)),
                                          name="conv.c")
    feature_stride = x_strides[conv.labels.input_feature]
    with for_range(b, 0, conv.feature_groups, name="conv.group") as g:
        x_ptr = b.gep(lhs.ptr, [b.mul(g, i64(conv.kernel_in * feature_stride))],
                      inbounds=True, source_etype=lhs.storage)
        k_ptr = b.gep(kernel.ptr, [b.mul(g, i64(group_out * kernel_b.column_stride))],
                      inbounds=True, source_etype=kernel.storage)
        c_ptr = b.gep(c.ptr, [b.mul(g, i64(group_out))], inbounds=True,
                      source_etype=llvm_type(acc_t))
        if chunks > 1:
            plan.emit_parallel_call(b, gemm, x_ptr, k_ptr, c_ptr, scratch.ptr, threads)
        else:
            plan.emit_call(b, gemm, x_ptr, k_ptr, c_ptr, scratch.ptr)
    if not direct:
        _store_output(ctx, conv, c, out)


def _store_output(ctx: KernelContext, conv: _Conv, c: IrArray, out: IrArray) -> None:
    """out[batch, spatial, feature] = C[pixel, feature], converted to out's type."""
    b = ctx.builder
    labels = conv.labels
    with for_range(b, 0, conv.pixels, name="conv.pixel") as m:
        ob, *opos = delinearize(b, m, [conv.out_batch, *conv.out_sizes])
        with for_range(b, 0, conv.kernel_out, name="conv.f") as f:
            value = c.load_linear(b, b.add(b.mul(m, i64(conv.kernel_out)), f))
            index = place(out.shape.rank, [
                (labels.output_batch, ob),
                (labels.output_feature, f),
                *zip(labels.output_spatial, opos, strict=True),
            ])
            out.store(b, index, convert_scalar(b, value, conv.acc_t, out.element_type))


# --- depthwise --------------------------------------------------------------------------------


def _emit_depthwise(ctx: KernelContext, conv: _Conv, lhs: IrArray, rhs: IrArray,
                    out: IrArray) -> None:
    """Each input feature c is its own group: out features [c*mult, (c+1)*mult) read only c."""
    mult = conv.kernel_out // conv.feature_groups
    if mult == 1 and math.prod(conv.kernel_sizes) <= MAX_UNROLLED_WINDOW:
        _emit_depthwise_unrolled(ctx, conv, lhs, rhs, out)
    else:
        _emit_depthwise_rows(ctx, conv, lhs, rhs, out, mult)


def _emit_depthwise_unrolled(ctx: KernelContext, conv: _Conv, lhs: IrArray, rhs: IrArray,
                             out: IrArray) -> None:
    """One output feature per input feature, the window unrolled: per output pixel, a loop
    over features whose accumulator stays in a register across the whole window (and
    which vectorises when features are contiguous, as in NHWC / HWIO).

    A window position over padding or a dilation hole reads a row of zeros instead of the
    input (when features are contiguous; otherwise its values are selected away), so the
    feature loop has no branches.
    """
    b = ctx.builder
    labels = conv.labels
    acc_t = conv.acc_t
    x_strides = row_major_strides(lhs.shape.dims)
    w_strides = row_major_strides(rhs.shape.dims)
    o_strides = row_major_strides(out.shape.dims)
    x_feature = x_strides[labels.input_feature]
    zero = const(acc_t, 0)
    zeros = None
    if x_feature == 1:
        zeros = ctx.temp_array(Shape.array(lhs.element_type, (conv.kernel_out,)), name="dw.0")
        with for_range(b, 0, conv.kernel_out, name="dw.zero") as c:
            zeros.store_linear(b, c, const(lhs.element_type, 0))
    with loop_nest(b, [conv.out_batch, *conv.out_sizes], name="dw.out") as (ob, *opos):
        # Each window position: whether it reads data, the address of its feature 0 (the
        # zero row when it does not), and where its kernel row starts; fixed per pixel.
        taps = []
        for kidx in itertools.product(*(range(k) for k in conv.kernel_sizes)):
            wpos = [i64(wd.size - 1 - k if wd.window_reversal else k)
                    for wd, k in zip(conv.window, kidx, strict=True)]
            positions, valid = input_positions(b, conv.window, conv.in_sizes, opos, wpos)
            x_at = _offset(b, x_strides, [(labels.input_batch, ob),
                                          *zip(labels.input_spatial, positions, strict=True)])
            x_ptr = lhs.element_ptr_linear(b, b.select(valid, x_at, i64(0)))
            if zeros is not None:
                x_ptr = b.select(valid, x_ptr, zeros.ptr)
            w_at = sum(k * w_strides[d] for k, d in zip(kidx, labels.kernel_spatial, strict=True))
            taps.append((valid, x_ptr, w_at))
        out_at = _offset(b, o_strides, [(labels.output_batch, ob),
                                        *zip(labels.output_spatial, opos, strict=True)])
        with for_range(b, 0, conv.kernel_out, name="dw.c") as c:
            x_c = b.mul(c, i64(x_feature))
            w_c = b.mul(c, i64(w_strides[labels.kernel_output_feature]))
            total: ir.Value = zero
            for valid, x_ptr, w_at in taps:
                x_elem = b.gep(x_ptr, [x_c], inbounds=True, source_etype=lhs.storage)
                x = b.load(x_elem, typ=lhs.storage, align=lhs.alignment)
                x = convert_scalar(b, x, lhs.element_type, acc_t)
                if zeros is None:
                    x = b.select(valid, x, zero)
                w = convert_scalar(b, rhs.load_linear(b, b.add(i64(w_at), w_c)),
                                   rhs.element_type, acc_t)
                total = multiply_add(b, acc_t, total, x, w)
            at = b.add(out_at, b.mul(c, i64(o_strides[labels.output_feature])))
            out.store_linear(b, at, convert_scalar(b, total, acc_t, out.element_type))


def _emit_depthwise_rows(ctx: KernelContext, conv: _Conv, lhs: IrArray, rhs: IrArray,
                         out: IrArray, mult: int) -> None:
    """Depthwise with a channel multiplier or a large window: a row of accumulators per
    output pixel, updated once per valid window position."""
    b = ctx.builder
    labels = conv.labels
    acc_t = conv.acc_t
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
            positions, valid = input_positions(b, conv.window, conv.in_sizes, opos, wpos)
            kpos = kernel_positions(b, conv.window, wpos)
            with if_then(b, valid):
                x_base = _offset(b, x_strides, [
                    (labels.input_batch, ob), *zip(labels.input_spatial, positions, strict=True)])
                w_base = _offset(b, w_strides, list(zip(labels.kernel_spatial, kpos, strict=True)))
                with for_range(b, 0, conv.feature_groups, name="dw.c") as c:
                    x = lhs.load_linear(b, b.add(x_base, b.mul(c, i64(x_feature))))
                    x = convert_scalar(b, x, lhs.element_type, acc_t)
                    with for_range(b, 0, mult, name="dw.j") as j:
                        f = b.add(b.mul(c, i64(mult)), j)
                        w = rhs.load_linear(b, b.add(w_base, b.mul(f, i64(w_feature))))
                        w = convert_scalar(b, w, rhs.element_type, acc_t)
                        row.store_linear(b, f, multiply_add(b, acc_t, row.load_linear(b, f), x, w))
        with for_range(b, 0, conv.kernel_out, name="dw.store") as f:
            index = place(out.shape.rank, [
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
            positions, valid = input_positions(b, conv.window, conv.in_sizes, opos, wpos)
            kpos = kernel_positions(b, conv.window, wpos)
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
            index = place(out.shape.rank, [
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
        x_index = place(lhs.shape.rank, [
            (labels.input_batch, batch),
            (labels.input_feature, feature),
            *zip(labels.input_spatial, positions, strict=True),
        ])
        x = convert_scalar(b, lhs.load(b, x_index), lhs.element_type, acc_t)
        with for_range(b, 0, out_features, name=f"conv.o{group}") as j:
            f = b.add(j, i64(out_feature_offset), flags=_NOWRAP) if out_feature_offset else j
            k_index = place(rhs.shape.rank, [
                (labels.kernel_input_feature, ki),
                (labels.kernel_output_feature, f),
                *zip(labels.kernel_spatial, kpos, strict=True),
            ])
            k = convert_scalar(b, rhs.load(b, k_index), rhs.element_type, acc_t)
            row.store_linear(b, f, multiply_add(b, acc_t, row.load_linear(b, f), x, k))


# --- register-tiled direct convolution --------------------------------------------------------

# Padded input copies of at least this many elements are split across threads: starting
# and joining a thread costs about 25 us (measured, 2-core Zen 3 VM), as much as copying
# some 100K elements, so smaller copies stay serial.
PARALLEL_MIN_COPY = 1 << 19
# Contiguous window segments up to this long are unrolled completely.
MAX_UNROLLED_SEGMENT = 32


def _tiled_applies(conv: _Conv) -> bool:
    """Whether the register-tiled path computes `conv`: one float group, data to read."""
    return (conv.acc_t.is_float and conv.groups == 1 and conv.kernel_in > 0
            and math.prod(conv.kernel_sizes) > 0)


@dataclass(frozen=True)
class _Tiled:
    """The register-tiled direct convolution of one instruction.

    The input is first copied, in the accumulation type, into a buffer `xp` laid out
    [batch, spatial..., feature] with its padding and lhs-dilation holes written out as
    zeros, so that output pixel (b, o) reads window position w at
    xp[b, o * stride + w * rhs_dilation, :] with no test at all. The kernel is the matrix
    B[(window position, input feature), output feature] with unit column stride (in place
    for HWIO kernels whose output features fill whole register tiles, else a zero-padded
    copy). A tile of MR output pixels x NR output features is accumulated in vector
    registers, as the GEMM micro-kernel does, but reading the rows of A straight from `xp`:
    window positions along the innermost spatial dimension are adjacent in `xp` (without
    rhs dilation or reversal there), so K runs over `segment` contiguous elements per
    outer window position. K is blocked as the GEMM's is (a block of B stays in L1): a
    block is `positions` outer window positions times a `piece` of their segments; later
    blocks add to C.
    """

    conv: _Conv
    config: GemmConfig
    padded: tuple[int, ...]       # spatial sizes of xp
    segment: int                  # contiguous K elements per outer window position
    outer: tuple[int, ...]        # kernel sizes of the window dims walked by the outer loop
    piece: int                    # segment elements per K block (divides segment)
    positions: int                # outer window positions per K block
    n_padded: int                 # output features rounded up to whole tiles

    @staticmethod
    def create(conv: _Conv, config: GemmConfig) -> _Tiled:
        padded = tuple((o - 1) * wd.stride + (k - 1) * wd.window_dilation + 1
                       for o, k, wd in zip(conv.out_sizes, conv.kernel_sizes, conv.window,
                                           strict=True))
        # A K block of B (kc x NR) may fill up to 3/4 of L1: the A rows are read as
        # broadcasts, and one block over 3x3 windows of 32 features saves a pass over C.
        k_limit = config.kc * 3 // 2
        last = conv.window[-1] if conv.window else None
        merge = (last is not None and last.window_dilation == 1 and not last.window_reversal
                 and conv.kernel_sizes[-1] * conv.kernel_in <= k_limit)
        segment = conv.kernel_in * (conv.kernel_sizes[-1] if merge else 1)
        outer = tuple(conv.kernel_sizes[:-1] if merge else conv.kernel_sizes)
        pieces = -(-segment // k_limit)
        while segment % pieces:
            pieces += 1
        piece = segment // pieces
        # Equal blocks of outer positions, as few as fit.
        blocks = -(-math.prod(outer) * piece // k_limit)
        positions = -(-math.prod(outer) // blocks)
        n_padded = -(-conv.kernel_out // config.nr) * config.nr
        return _Tiled(conv, config, padded, segment, outer, piece, positions, n_padded)

    @property
    def depth(self) -> int:
        """K: window positions times input features."""
        return math.prod(self.conv.kernel_sizes) * self.conv.kernel_in

    @property
    def tiles(self) -> int:
        """Tiles of MR output pixels (the unit of the parallel split)."""
        return -(-self.conv.pixels // self.config.mr)

    @property
    def position_blocks(self) -> int:
        return -(-math.prod(self.outer) // self.positions)

    @property
    def k_blocks(self) -> int:
        return self.position_blocks * (self.segment // self.piece)

    @property
    def xp_dims(self) -> tuple[int, ...]:
        return (self.conv.out_batch, *self.padded, self.conv.kernel_in)

    def block_tiles(self, caches: Caches) -> int:
        """Pixel tiles per block: what a block reads of A for one K block, and its rows of
        C, stay in half of L2 while every output feature tile passes over them."""
        k_block = self.positions * self.piece
        row_bytes = self.config.mr * (k_block + self.conv.kernel_out) * self.config.acc_t.byte_size
        return max(1, caches.l2 // 2 // row_bytes)


def _emit_tiled(ctx: KernelContext, conv: _Conv, lhs: IrArray, rhs: IrArray,
                out: IrArray) -> None:
    """out = convolution by register tiles over a padded copy of the input (see _Tiled).

    With a thread count, the copy is split over its rows and the tiles over pixel tiles
    (products of at least the GEMM's PARALLEL_MIN_WORK multiply-adds): every output
    element is computed by the same operations whatever the split.
    """
    b = ctx.builder
    target = kernel_target(ctx)
    tiled = _Tiled.create(conv, GemmConfig.for_target(target, conv.acc_t))
    threads = getattr(ctx, "threads", None)
    xp = ctx.temp_array(Shape.array(conv.acc_t, tiled.xp_dims), name="conv.xp")
    copy = _padded_copy_function(ctx.module, f"{b.function.name}.pad", tiled, lhs)
    rows = math.prod(tiled.xp_dims[:-1])
    grain = max(1, PARALLEL_MIN_COPY // 2 // conv.kernel_in)
    parallel = threads is not None and rows * conv.kernel_in >= PARALLEL_MIN_COPY
    call_ranges(b, copy, [lhs.ptr, xp.ptr], rows, grain, threads if parallel else None)
    kernel, ldb = _tiled_kernel(ctx, tiled, rhs)
    direct = _direct_output(conv, out)
    c = out if direct else ctx.temp_array(Shape.array(conv.acc_t, (conv.pixels, conv.kernel_out)),
                                          name="conv.c")
    fn = _tiled_range_function(ctx.module, f"{b.function.name}.tiles", tiled, ldb,
                               tiled.block_tiles(target_caches(target)))
    min_work = cpu_gemm.PARALLEL_MIN_WORK
    tile_work = conv.kernel_out * tiled.depth * tiled.config.mr
    parallel = threads is not None and tiled.tiles * tile_work >= min_work
    call_ranges(b, fn, [xp.ptr, kernel.ptr, c.ptr], tiled.tiles,
                max(1, min_work // 2 // tile_work), threads if parallel else None)
    if not direct:
        _store_output(ctx, conv, c, out)


def call_ranges(b: ir.IRBuilder, fn: ir.Function, pointers: list[ir.Value], n: int,
                grain: int, threads: ir.Value | None) -> None:
    """Call `void fn(pointers..., i64 begin, i64 end)` over [0, n): once, or split into
    chunks of at least `grain` on up to `threads` threads."""
    if threads is None or n < 2 * grain:
        b.call(fn, [*pointers, i64(0), i64(n)])
        return
    body = new_body(b.module, f"{fn.name}.chunk")
    bb = ir.IRBuilder(body.append_basic_block("entry"))
    ctx, begin, end, _ = body.args
    bb.call(fn, [*unpack_context(bb, ctx, len(pointers)), begin, end])
    bb.ret_void()
    emit_parallel_for(b, body, pack_context(b, pointers), n, grain, threads)


def range_function(module: ir.Module, name: str, pointers: Sequence[str]
                   ) -> tuple[ir.Function, ir.IRBuilder]:
    """An internal `void f(ptr..., i64 begin, i64 end)` and a builder in its body block
    (its entry block, for allocas, branches there)."""
    fnty = ir.FunctionType(ir.VoidType(), [PTR] * len(pointers) + [I64, I64])
    fn = ir.Function(module, fnty, name=module.get_unique_name(name))
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    fn.attributes.add("noinline")
    for arg, arg_name in zip(fn.args, [*pointers, "begin", "end"], strict=True):
        arg.name = arg_name
        if arg.type == PTR:
            arg.add_attribute("noalias")
    entry = fn.append_basic_block("entry")
    b = ir.IRBuilder(fn.append_basic_block("body"))
    ir.IRBuilder(entry).branch(fn.blocks[1])
    return fn, b


def _padded_copy_function(module: ir.Module, name: str, tiled: _Tiled,
                          lhs: IrArray) -> ir.Function:
    """`void f(ptr lhs, ptr xp, i64 r0, i64 r1)`: rows [r0, r1) of xp (one per batch and
    padded spatial position): xp[b, q..., i] = lhs at the input position window coordinate
    q reads, or zero where q falls on padding or a lhs-dilation hole."""
    fn, b = range_function(module, name, ["lhs", "xp"])
    src_arr = IrArray(fn.args[0], lhs.shape)
    xp = IrArray(fn.args[1], Shape.array(tiled.conv.acc_t, tiled.xp_dims))
    conv = tiled.conv
    labels = conv.labels
    acc_t = conv.acc_t
    x_strides = row_major_strides(lhs.shape.dims)
    features = conv.kernel_in
    zero = const(acc_t, 0)
    with for_range(b, fn.args[2], fn.args[3], name="pad.row") as row:
        ob, *qs = delinearize(b, row, list(tiled.xp_dims[:-1]))
        valid: ir.Value = ir.Constant(ir.IntType(1), 1)
        positions = []
        for q, wd, size in zip(qs, conv.window, conv.in_sizes, strict=True):
            p = b.sub(q, i64(wd.padding_low))
            ok = b.icmp_signed(">=", p, i64(0))
            if wd.base_dilation != 1:
                ok = b.and_(ok, b.icmp_signed("==", b.srem(p, i64(wd.base_dilation)), i64(0)))
                p = b.sdiv(p, i64(wd.base_dilation))
            valid = b.and_(valid, b.and_(ok, b.icmp_signed("<", p, i64(size))))
            positions.append(p)
        at = b.mul(row, i64(features))
        with if_else(b, valid) as (then, otherwise):
            with then:
                src = _offset(b, x_strides, [(labels.input_batch, ob),
                                             *zip(labels.input_spatial, positions, strict=True)])
                with for_range(b, 0, features, name="pad.i") as i:
                    offset = b.add(src, b.mul(i, i64(x_strides[labels.input_feature])))
                    value = src_arr.load_linear(b, offset)
                    xp.store_linear(b, b.add(at, i), convert_scalar(b, value, lhs.element_type,
                                                                    acc_t))
            with otherwise:
                with for_range(b, 0, features, name="pad.z") as i:
                    xp.store_linear(b, b.add(at, i), zero)
    b.ret_void()
    return fn


def _tiled_kernel(ctx: KernelContext, tiled: _Tiled, rhs: IrArray) -> tuple[IrArray, int]:
    """The kernel as B [K, n_padded] with unit column stride, and its row stride: rhs
    itself when it already is one, else a copy with zero columns past the features."""
    conv = tiled.conv
    labels = conv.labels
    rows = (*labels.kernel_spatial, labels.kernel_input_feature)
    strides = group_strides(rhs.shape, [rows, (labels.kernel_output_feature,)])
    if (strides is not None and strides[1] == 1 and rhs.element_type is conv.acc_t
            and tiled.n_padded == conv.kernel_out):
        return rhs, strides[0]
    b = ctx.builder
    dims = [*conv.kernel_sizes, conv.kernel_in, tiled.n_padded]
    copy: IrArray = ctx.temp_array(Shape.array(conv.acc_t, tuple(dims)), name="conv.kernel")
    zero = const(conv.acc_t, 0)
    with loop_nest(b, dims, name="conv.kcopy") as idx:
        inside = b.icmp_signed("<", idx[-1], i64(conv.kernel_out))
        feature = b.select(inside, idx[-1], i64(0))
        index = place(rhs.shape.rank, [*zip(rows, idx[:-1], strict=True),
                                        (labels.kernel_output_feature, feature)])
        value = convert_scalar(b, rhs.load(b, index), rhs.element_type, conv.acc_t)
        copy.store(b, idx, b.select(inside, value, zero))
    return copy, tiled.n_padded


def _tiled_range_function(module: ir.Module, name: str, tiled: _Tiled, ldb: int,
                          block: int) -> ir.Function:
    """`void f(ptr xp, ptr kernel, ptr c, i64 t0, i64 t1)`: C for pixel tiles [t0, t1)."""
    fn, b = range_function(module, name, ["xp", "kernel", "c"])
    _TileEmitter(b, tiled, ldb, block).emit()
    return fn


class _TileEmitter:
    """Emits a tiled range function: blocks of pixel tiles, output feature tiles, then
    one MR x NR register tile per (pixel tile, feature tile)."""

    def __init__(self, b: ir.IRBuilder, tiled: _Tiled, ldb: int, block: int) -> None:
        self.tiled = tiled
        self.cfg = tiled.config
        self.ldb = ldb
        self.block = block
        self.acc_t = tiled.config.acc_t
        self.elem = llvm_type(self.acc_t)
        self.vec = ir.VectorType(self.elem, self.cfg.lanes)
        self.xp, self.kernel, self.c, self.t0, self.t1 = b.function.args
        self.b = b
        self.acc = [[alloca_at_entry(self.b, self.vec, name=f"acc{r}.{v}")
                     for v in range(self.cfg.nr_vectors)] for r in range(self.cfg.mr)]
        # The edge tile, written by vectors and read by elements.
        self.tile_vectors = alloca_at_entry(self.b, self.vec,
                                            count=self.cfg.mr * self.cfg.nr_vectors,
                                            name="tile")
        self.tile = self.b.bitcast(self.tile_vectors, self.elem.as_pointer())

    def emit(self) -> None:
        b, cfg, tiled = self.b, self.cfg, self.tiled
        pieces = tiled.segment // tiled.piece
        with for_range(b, self.t0, self.t1, step=self.block, name="tb") as tb:
            te = _min(b, b.add(tb, i64(self.block)), self.t1)
            with for_range(b, 0, tiled.position_blocks, name="kp") as kp:
                p0 = b.mul(kp, i64(tiled.positions))
                p1 = _min(b, b.add(p0, i64(tiled.positions)), i64(math.prod(tiled.outer)))
                with for_range(b, 0, pieces, name="kj") as kj:
                    j0 = b.mul(kj, i64(tiled.piece))
                    first = b.and_(b.icmp_signed("==", kp, i64(0)),
                                   b.icmp_signed("==", kj, i64(0)))
                    with for_range(b, 0, tiled.n_padded, step=cfg.nr, name="tn") as n0:
                        with for_range(b, tb, te, name="tm") as t:
                            self.emit_tile(t, n0, (p0, p1, j0), first)
        b.ret_void()

    def emit_tile(self, t: ir.Value, n0: ir.Value, k_block: tuple[ir.Value, ...],
                  first: ir.Value) -> None:
        """C[tile t's pixels, n0:n0+NR] (+)= A rows @ B columns over one K block (outer
        window positions [p0, p1), segment elements [j0, j0 + piece)), in registers."""
        b, cfg, conv = self.b, self.cfg, self.tiled.conv
        p0, p1, j0 = k_block
        m0 = b.mul(t, i64(cfg.mr))
        rows = _min(b, i64(cfg.mr), b.sub(i64(conv.pixels), m0))
        # Rows past the last pixel read the last pixel again (and are not stored).
        bases = [self.pixel_base(_min(b, b.add(m0, i64(r)), i64(conv.pixels - 1)), j0)
                 for r in range(cfg.mr)]
        zero = ir.Constant(self.vec, [const(self.acc_t, 0)] * cfg.lanes)
        for row in self.acc:
            for slot in row:
                b.store(zero, slot)
        b_col = b.gep(self.kernel, [b.add(b.mul(j0, i64(self.ldb)), n0)], inbounds=True,
                      source_etype=self.elem)
        with for_range(b, p0, p1, name="win") as p:
            x_off, k_row = self.window_offsets(delinearize(b, p, list(self.tiled.outer)))
            a_ptrs = [b.gep(base, [x_off], inbounds=True, source_etype=self.elem)
                      for base in bases]
            b_ptr = b.gep(b_col, [b.mul(k_row, i64(self.ldb))], inbounds=True,
                          source_etype=self.elem)
            self.emit_segment(a_ptrs, b_ptr)
        cols = _min(b, i64(cfg.nr), b.sub(i64(conv.kernel_out), n0))
        c_tile = b.gep(self.c, [b.add(b.mul(m0, i64(conv.kernel_out)), n0)], inbounds=True,
                       source_etype=self.elem)
        full = b.and_(b.icmp_signed("==", rows, i64(cfg.mr)),
                      b.icmp_signed("==", cols, i64(cfg.nr)))
        with if_else(b, full, likely=True) as (then, otherwise):
            with then:
                self.store_full(c_tile, first)
            with otherwise:
                self.store_edge(c_tile, rows, cols, first)

    def pixel_base(self, m: ir.Value, j0: ir.Value) -> ir.Value:
        """Pointer to element j0 of window position 0 of output pixel m in xp."""
        b, tiled = self.b, self.tiled
        conv = tiled.conv
        ob, *opos = delinearize(b, m, [conv.out_batch, *conv.out_sizes])
        strides = row_major_strides(tiled.xp_dims)
        at = b.add(b.mul(ob, i64(strides[0])), j0)
        for d, (o, wd) in enumerate(zip(opos, conv.window, strict=True)):
            at = b.add(at, b.mul(o, i64(wd.stride * strides[d + 1])))
        return b.gep(self.xp, [at], inbounds=True, source_etype=self.elem)

    def window_offsets(self, wpos: list[ir.Value]) -> tuple[ir.Value, ir.Value]:
        """The xp offset and the first kernel row of one outer window position."""
        b, tiled = self.b, self.tiled
        conv = tiled.conv
        strides = row_major_strides(tiled.xp_dims)
        x_off: ir.Value = i64(0)
        k_index: ir.Value = i64(0)
        kpos = kernel_positions(b, conv.window[:len(wpos)], wpos)
        for d, (w, k) in enumerate(zip(wpos, kpos, strict=True)):
            wd = conv.window[d]
            x_off = b.add(x_off, b.mul(w, i64(wd.window_dilation * strides[d + 1])))
            k_index = b.add(b.mul(k_index, i64(conv.kernel_sizes[d])), k)
        # A merged innermost window dim (not among wpos) is walked by the segment itself.
        k_row = b.mul(k_index, i64(math.prod(conv.kernel_sizes[len(wpos):]) * conv.kernel_in))
        return x_off, k_row

    def emit_segment(self, a_ptrs: list[ir.Value], b_ptr: ir.Value) -> None:
        """acc += A[:, j] * B[j, :] for the contiguous j of one piece of a segment."""
        b, segment = self.b, self.tiled.piece
        if segment <= MAX_UNROLLED_SEGMENT:
            for j in range(segment):
                self.rank_one(a_ptrs, b_ptr, i64(j))
            return
        main = segment - segment % K_UNROLL
        with for_range(b, 0, main, step=K_UNROLL, name="k") as k:
            for u in range(K_UNROLL):
                self.rank_one(a_ptrs, b_ptr, b.add(k, i64(u)))
        for j in range(main, segment):
            self.rank_one(a_ptrs, b_ptr, i64(j))

    def rank_one(self, a_ptrs: list[ir.Value], b_ptr: ir.Value, j: ir.Value) -> None:
        b, cfg = self.b, self.cfg
        row = b.gep(b_ptr, [b.mul(j, i64(self.ldb))], inbounds=True, source_etype=self.elem)
        b_vecs = [b.load(b.gep(row, [i64(v * cfg.lanes)], inbounds=True,
                               source_etype=self.elem), typ=self.vec,
                         align=self.acc_t.byte_size)
                  for v in range(cfg.nr_vectors)]
        for r, a_ptr in enumerate(a_ptrs):
            a = b.load(b.gep(a_ptr, [j], inbounds=True, source_etype=self.elem), typ=self.elem,
                       align=self.acc_t.byte_size)
            a_vec = _splat(b, a, cfg.lanes)
            for v, slot in enumerate(self.acc[r]):
                b.store(multiply_add(b, self.acc_t, b.load(slot), a_vec, b_vecs[v]), slot)

    def store_full(self, c_tile: ir.Value, first: ir.Value) -> None:
        """C tile = accumulators (first K block) or C tile += accumulators."""
        b, cfg = self.b, self.cfg
        ldc = self.tiled.conv.kernel_out
        align = self.acc_t.byte_size
        pointers = [[b.gep(c_tile, [i64(r * ldc + v * cfg.lanes)], inbounds=True,
                           source_etype=self.elem) for v in range(cfg.nr_vectors)]
                    for r in range(cfg.mr)]
        if self.tiled.k_blocks == 1:
            for r, v in itertools.product(range(cfg.mr), range(cfg.nr_vectors)):
                b.store(b.load(self.acc[r][v]), pointers[r][v], align=align)
            return
        with if_else(b, first) as (then, otherwise):
            with then:
                for r, v in itertools.product(range(cfg.mr), range(cfg.nr_vectors)):
                    b.store(b.load(self.acc[r][v]), pointers[r][v], align=align)
            with otherwise:
                for r, v in itertools.product(range(cfg.mr), range(cfg.nr_vectors)):
                    old = b.load(pointers[r][v], typ=self.vec, align=align)
                    total = add_scalar(b, self.acc_t, old, b.load(self.acc[r][v]))
                    b.store(total, pointers[r][v], align=align)

    def store_edge(self, c_tile: ir.Value, rows: ir.Value, cols: ir.Value,
                   first: ir.Value) -> None:
        """The valid rows x cols corner of the tile, through the stack tile."""
        b, cfg = self.b, self.cfg
        for r, v in itertools.product(range(cfg.mr), range(cfg.nr_vectors)):
            ptr = b.gep(self.tile_vectors, [i64(r * cfg.nr_vectors + v)], inbounds=True,
                        source_etype=self.vec)
            b.store(b.load(self.acc[r][v]), ptr)
        with for_range(b, 0, rows, name="er") as r:
            with for_range(b, 0, cols, name="ec") as j:
                src = b.gep(self.tile, [b.add(b.mul(r, i64(cfg.nr)), j)], inbounds=True,
                            source_etype=self.elem)
                dst = b.gep(c_tile, [b.add(b.mul(r, i64(self.tiled.conv.kernel_out)), j)],
                            inbounds=True, source_etype=self.elem)
                value = b.load(src, typ=self.elem)
                total = add_scalar(b, self.acc_t, b.load(dst, typ=self.elem), value)
                b.store(b.select(first, value, total), dst)


def _splat(b: ir.IRBuilder, value: ir.Value, width: int) -> ir.Value:
    vec_ty = ir.VectorType(value.type, width)
    one = b.insert_element(ir.Constant(vec_ty, ir.Undefined), value, ir.Constant(I32, 0))
    mask = ir.Constant(ir.VectorType(I32, width), [0] * width)
    return b.shuffle_vector(one, ir.Constant(vec_ty, ir.Undefined), mask)
