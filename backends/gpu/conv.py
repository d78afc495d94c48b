"""GPU kernel for `convolution`, direct: one thread per output element.

Any dim_labels layout, strides, padding (negative too), lhs (base) dilation, rhs (window)
dilation, window reversal, feature_group_count and batch_group_count, with the semantics
of the CPU kernel (`backends/cpu/conv.py`, StableHLO's definition of groups). The thread
of output [b, spatial..., f] walks the kernel window; a window position that falls on
padding or a hole of the base dilation is skipped, otherwise the input features of f's
group are multiplied with the kernel column of f and accumulated (f16/bf16 in f32).
Neighbouring threads differ in the output feature when it is the minor output dimension
(NHWC), so they read neighbouring kernel elements and the same input element.
TODO(#8): implicit GEMM through the tiled dot kernel for large channel counts.
"""

from __future__ import annotations

from backends.gpu.kernels import KernelContext, KernelFunction, emits_gpu, operand_slots, out_slot
from backends.gpu.launch import for_elements, grid_stride_loop
from backends.llvm.arith import convert_scalar, dot_accumulation_type, multiply_add
from backends.llvm.index import delinearize
from backends.llvm.irutil import for_range, i64, llvm_type, loop_nest, zero
from backends.llvm.window import input_positions, kernel_positions, place, window_dims
from hlo.attributes import ConvDimLabels
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode

_NOWRAP = ("nuw", "nsw")


@emits_gpu(Opcode.CONVOLUTION)
def emit_convolution(ctx: KernelContext, instr: HloInstruction) -> None:
    out = out_slot(ctx)
    if out.shape.num_elements == 0:
        return
    kernel = ctx.kernel("direct", [out], operand_slots(ctx))
    if kernel.is_new:
        _fill(kernel, instr)
    ctx.launch(kernel, for_elements(out.shape.num_elements))


def _fill(kernel: KernelFunction, instr: HloInstruction) -> None:
    b = kernel.builder
    lhs, rhs = kernel.inputs
    out = kernel.outputs[0]
    labels: ConvDimLabels = instr.attrs["dim_labels"]
    feature_groups = instr.attrs.get("feature_group_count") or 1
    batch_groups = instr.attrs.get("batch_group_count") or 1
    kernel_sizes = [rhs.shape.dims[d] for d in labels.kernel_spatial]
    window = window_dims(instr.attrs.get("window"), kernel_sizes)
    lhs_t, rhs_t, out_t = lhs.element_type, rhs.element_type, out.element_type
    acc_t = dot_accumulation_type(out_t, [lhs_t, rhs_t])
    in_sizes = [lhs.shape.dims[d] for d in labels.input_spatial]
    out_batch = out.shape.dims[labels.output_batch]
    kernel_in = rhs.shape.dims[labels.kernel_input_feature]
    kernel_out = rhs.shape.dims[labels.kernel_output_feature]
    per_group_out = kernel_out // (feature_groups * batch_groups)
    acc = kernel.entry_builder().alloca(llvm_type(acc_t), name="acc")
    with grid_stride_loop(b, out.shape.num_elements) as o:
        index = delinearize(b, o, out.shape.dims)
        ob = index[labels.output_batch]
        f = index[labels.output_feature]
        opos = [index[d] for d in labels.output_spatial]
        group = b.udiv(f, i64(per_group_out))
        batch = ob
        if batch_groups > 1:
            batch = b.add(ob, b.mul(group, i64(out_batch)), flags=_NOWRAP)
        feature_base = i64(0)
        if feature_groups > 1:
            feature_base = b.mul(group, i64(kernel_in), flags=_NOWRAP)
        b.store(zero(acc_t), acc)
        with loop_nest(b, kernel_sizes, name="w") as wpos:
            # Skipped positions are clamped so that their (discarded) loads stay in bounds.
            positions, valid = input_positions(b, window, in_sizes, opos, wpos, clamp=True)
            kpos = kernel_positions(b, window, wpos)
            with b.if_then(valid):
                with for_range(b, 0, kernel_in, name="ci") as ki:
                    feature = b.add(ki, feature_base, flags=_NOWRAP)
                    x_index = place(lhs.shape.rank, [
                        (labels.input_batch, batch),
                        (labels.input_feature, feature),
                        *zip(labels.input_spatial, positions, strict=True),
                    ])
                    k_index = place(rhs.shape.rank, [
                        (labels.kernel_input_feature, ki),
                        (labels.kernel_output_feature, f),
                        *zip(labels.kernel_spatial, kpos, strict=True),
                    ])
                    x = convert_scalar(b, lhs.load(b, x_index), lhs_t, acc_t)
                    k = convert_scalar(b, rhs.load(b, k_index), rhs_t, acc_t)
                    b.store(multiply_add(b, acc_t, b.load(acc), x, k), acc)
        out.store_linear(b, o, convert_scalar(b, b.load(acc), acc_t, out_t))
    kernel.finish()
