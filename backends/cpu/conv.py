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
  over pixel tiles. An output fusion's epilogue (bias, activation) is applied to each
  tile's accumulators before they are stored.
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

from backends.cpu.conv_geometry import (
    ConvGeometry,
    direct_output,
    element_offset,
    store_output,
)
from backends.cpu.conv_tiled import emit_tiled, tiled_applies
from backends.cpu.dot import group_strides
from backends.cpu.gemm import (
    Caches,
    GemmConfig,
    GemmPlan,
    MatrixOperand,
    kernel_target,
    target_caches,
)
from backends.cpu.kernels import BufferValue, KernelContext, emits
from backends.llvm.arith import (
    convert_scalar,
    multiply_add,
)
from backends.llvm.index import delinearize, row_major_strides
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import (
    NOWRAP,
    const,
    for_range,
    i64,
    if_then,
    llvm_type,
    loop_nest,
    smax,
    smin,
)
from backends.llvm.window import input_positions, kernel_positions, place
from hlo.attributes import ConvDimLabels
from hlo.dtypes import PrimitiveType
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

# Depthwise windows up to this many positions are unrolled (7x7 and smaller).
MAX_UNROLLED_WINDOW = 49


@emits(Opcode.CONVOLUTION)
def emit_convolution(
    ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue], out: BufferValue
) -> None:
    """out = convolution(lhs, rhs) with XLA's semantics (see the module docstring)."""
    lhs, rhs = operands
    conv = ConvGeometry.of(instr, lhs, rhs, out)
    if out.shape.num_elements == 0:
        return
    supported = not (conv.acc_t.is_complex or conv.acc_t.is_pred)
    gemm = supported and conv.batch_groups == 1 and conv.kernel_in > 1 and _prefers_gemm(
        conv, target_caches(kernel_target(ctx)))
    if gemm:
        _emit_gemm(ctx, conv, lhs, rhs, out)
    elif supported and tiled_applies(conv):
        # An output fusion's epilogue (backends/cpu/fusion.py) goes into the tiles' stores.
        emit_tiled(ctx, conv, lhs, rhs, out, getattr(ctx, "epilogue", None))
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

    conv: ConvGeometry
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
                lo = b.sub(smax(b, seg, col0), seg)
                hi = b.sub(smin(b, b.add(seg, i64(features)), b.add(col0, cols)), seg)
                # Column of feature 0 of this window position, relative to the panel.
                seg_at = b.add(panel, b.mul(b.sub(seg, col0), i64(mr)))
                # Per row: where its features start, or (padding, dilation hole, row past the
                # edge) a flag to store zeros while reading feature 0 of pixel row0's image.
                sources = []
                for inside, (ob, *opos) in pixels:
                    positions, valid = input_positions(b, conv.window, conv.in_sizes, opos,
                                                        wpos)
                    valid = b.and_(inside, valid)
                    src = element_offset(b, self.strides, [
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


def _prefers_gemm(conv: ConvGeometry, caches: Caches) -> bool:
    """Whether the packed GEMM beats the other paths: once a group's kernel no longer sits
    in a quarter of L2, packing A and B pays (measured on AVX2, one core: the GEMM is 10 to
    20% faster than the register tiles for 3x3 kernels of 64->64 features and more, the
    tiles up to 2x faster for 3x3 32->64 and 1x1 64->256)."""
    depth = math.prod(conv.kernel_sizes) * conv.kernel_in
    group_out = conv.kernel_out // conv.groups
    return depth * group_out * conv.acc_t.byte_size >= caches.l2 // 4


def _kernel_matrix(ctx: KernelContext, conv: ConvGeometry, rhs: IrArray
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


def _emit_gemm(ctx: KernelContext, conv: ConvGeometry, lhs: IrArray, rhs: IrArray,
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
    direct = direct_output(conv, out)
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
        store_output(ctx, conv, c, out)


# --- depthwise --------------------------------------------------------------------------------


def _emit_depthwise(ctx: KernelContext, conv: ConvGeometry, lhs: IrArray, rhs: IrArray,
                    out: IrArray) -> None:
    """Each input feature c is its own group: out features [c*mult, (c+1)*mult) read only c."""
    mult = conv.kernel_out // conv.feature_groups
    if mult == 1 and math.prod(conv.kernel_sizes) <= MAX_UNROLLED_WINDOW:
        _emit_depthwise_unrolled(ctx, conv, lhs, rhs, out)
    else:
        _emit_depthwise_rows(ctx, conv, lhs, rhs, out, mult)


def _emit_depthwise_unrolled(ctx: KernelContext, conv: ConvGeometry, lhs: IrArray, rhs: IrArray,
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
            x_at = element_offset(b, x_strides, [(labels.input_batch, ob),
                                          *zip(labels.input_spatial, positions, strict=True)])
            x_ptr = lhs.element_ptr_linear(b, b.select(valid, x_at, i64(0)))
            if zeros is not None:
                x_ptr = b.select(valid, x_ptr, zeros.ptr)
            w_at = sum(k * w_strides[d] for k, d in zip(kidx, labels.kernel_spatial, strict=True))
            taps.append((valid, x_ptr, w_at))
        out_at = element_offset(b, o_strides, [(labels.output_batch, ob),
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


def _emit_depthwise_rows(ctx: KernelContext, conv: ConvGeometry, lhs: IrArray, rhs: IrArray,
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
                x_base = element_offset(b, x_strides, [
                    (labels.input_batch, ob), *zip(labels.input_spatial, positions, strict=True)])
                w_base = element_offset(
                    b, w_strides, list(zip(labels.kernel_spatial, kpos, strict=True)))
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


def _emit_direct(ctx: KernelContext, conv: ConvGeometry, lhs: IrArray, rhs: IrArray,
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
    batch = b.add(ob, i64(in_batch_offset), flags=NOWRAP) if in_batch_offset else ob
    with for_range(b, 0, kernel_in, name=f"conv.i{group}") as ki:
        feature = b.add(ki, i64(in_feature_offset), flags=NOWRAP) if in_feature_offset else ki
        x_index = place(lhs.shape.rank, [
            (labels.input_batch, batch),
            (labels.input_feature, feature),
            *zip(labels.input_spatial, positions, strict=True),
        ])
        x = convert_scalar(b, lhs.load(b, x_index), lhs.element_type, acc_t)
        with for_range(b, 0, out_features, name=f"conv.o{group}") as j:
            f = b.add(j, i64(out_feature_offset), flags=NOWRAP) if out_feature_offset else j
            k_index = place(rhs.shape.rank, [
                (labels.kernel_input_feature, ki),
                (labels.kernel_output_feature, f),
                *zip(labels.kernel_spatial, kpos, strict=True),
            ])
            k = convert_scalar(b, rhs.load(b, k_index), rhs.element_type, acc_t)
            row.store_linear(b, f, multiply_add(b, acc_t, row.load_linear(b, f), x, k))
