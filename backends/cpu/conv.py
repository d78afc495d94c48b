"""CPU kernel for `convolution` in full generality, as a direct loop nest.

Any dim_labels layout, strides, padding (negative too), lhs (base) dilation, rhs (window)
dilation, window reversal, feature_group_count and batch_group_count. For every output
position (all output dimensions but the feature one) a row of accumulators over the output
features is cleared; each window position is checked once against padding and dilation
holes, then every input feature of every group adds `x * kernel[window, i, :]` to its slice
of the row. That innermost loop runs over output features, contiguous in the common kernel
layouts (`..io`), so it vectorises. Accumulation types are the dot kernel's (f16/bf16
accumulate in f32). Groups follow the StableHLO definition: feature group g reads input
features [g*Ci/G, (g+1)*Ci/G) and writes output features [g*Co/G, (g+1)*Co/G); batch group
g reads input batches [g*N/B, (g+1)*N/B) and writes output features [g*Co/B, (g+1)*Co/B).
"""

from __future__ import annotations

from collections.abc import Sequence

from llvmlite import ir

from backends.cpu.dot import convert_scalar, dot_accumulation_type, multiply_add
from backends.cpu.kernels import BufferValue, KernelContext, emits
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import I1, const, for_range, i64, if_then, loop_nest
from hlo.attributes import ConvDimLabels, Window, WindowDim
from hlo.dtypes import PrimitiveType
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

_NOWRAP = ("nuw", "nsw")


def _window_dims(window: Window | None, kernel_sizes: Sequence[int]) -> list[WindowDim]:
    """The window, or the default one (size = kernel size, unit strides, no padding)."""
    if window is None or not window.dims:
        return [WindowDim(size) for size in kernel_sizes]
    return list(window.dims)


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


def _place(rank: int, pairs: Sequence[tuple[int, ir.Value]]) -> list[ir.Value]:
    """An index of `rank` values with each (dimension, value) pair placed."""
    index: list[ir.Value] = [i64(0)] * rank
    for dim, value in pairs:
        index[dim] = value
    return index


@emits(Opcode.CONVOLUTION)
def emit_convolution(
    ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue], out: BufferValue
) -> None:
    """out = convolution(lhs, rhs) with XLA's semantics (see the module docstring)."""
    b = ctx.builder
    lhs, rhs = operands
    labels: ConvDimLabels = instr.attrs["dim_labels"]
    feature_groups = instr.attrs.get("feature_group_count") or 1
    batch_groups = instr.attrs.get("batch_group_count") or 1
    kernel_sizes = [rhs.shape.dims[d] for d in labels.kernel_spatial]
    window = _window_dims(instr.attrs.get("window"), kernel_sizes)
    acc_t = dot_accumulation_type(out.element_type, [lhs.element_type, rhs.element_type])
    in_sizes = [lhs.shape.dims[d] for d in labels.input_spatial]
    out_sizes = [out.shape.dims[d] for d in labels.output_spatial]
    out_batch = out.shape.dims[labels.output_batch]
    kernel_in = rhs.shape.dims[labels.kernel_input_feature]
    kernel_out = rhs.shape.dims[labels.kernel_output_feature]
    groups = feature_groups * batch_groups
    per_group_out = kernel_out // groups
    if out.shape.num_elements == 0:
        return
    row = ctx.temp_array(Shape.array(acc_t, (kernel_out,)), name="conv.row")
    zero = const(acc_t, 0)
    with loop_nest(b, [out_batch, *out_sizes], name="conv.out") as (ob, *opos):
        with for_range(b, 0, kernel_out, name="conv.clear") as f:
            row.store_linear(b, f, zero)
        with loop_nest(b, kernel_sizes, name="conv.win") as wpos:
            positions, valid = _input_positions(b, window, in_sizes, opos, wpos)
            # A reversed window reads the kernel back to front at the same input positions.
            kpos = [
                b.sub(i64(wd.size - 1), w) if wd.window_reversal else w
                for wd, w in zip(window, wpos, strict=True)
            ]
            with if_then(b, valid):
                for g in range(groups):
                    _accumulate_group(
                        ctx, instr, lhs, rhs, row, acc_t, g, ob, positions, kpos,
                        in_batch_offset=g * out_batch if batch_groups > 1 else 0,
                        in_feature_offset=g * kernel_in if feature_groups > 1 else 0,
                        out_feature_offset=g * per_group_out,
                        out_features=per_group_out,
                        kernel_in=kernel_in,
                    )
        with for_range(b, 0, kernel_out, name="conv.store") as f:
            index = _place(out.shape.rank, [
                (labels.output_batch, ob),
                (labels.output_feature, f),
                *zip(labels.output_spatial, opos, strict=True),
            ])
            value = row.load_linear(b, f)
            out.store(b, index, convert_scalar(b, value, acc_t, out.element_type))


def _accumulate_group(
    ctx: KernelContext,
    instr: HloInstruction,
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
    labels: ConvDimLabels = instr.attrs["dim_labels"]
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
