"""CPU kernels for indexed data movement: gather, scatter and dynamic-update-slice.

All three follow XLA's semantics with the full modern dimension numbers (including batching
dimensions). Gather and dynamic-update-slice clamp start indices so that the slice lies
inside the operand; scatter instead skips every update window that does not fit, and applies
its combiner to duplicates in the row-major order of the scatter indices. Scatter and
dynamic-update-slice work in place when the driver gives them the operand's buffer as output.
The index arithmetic is `backends/llvm/gather_index.py`, shared with the GPU kernels.
"""

from __future__ import annotations

from llvmlite import ir

from backends.cpu.kernels import BufferValue, KernelContext, emits
from backends.llvm.gather_index import (
    GatherDims,
    ScatterDims,
    clamp_index,
    gather_operand_index,
    index_to_i64,
    scatter_start,
    scatter_target,
)
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import I1, NOWRAP, i64, if_then, intrinsic, loop_nest
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode


def copy_buffer(b: ir.IRBuilder, dst: IrArray, src: IrArray) -> None:
    """dst = src (same shape); nothing when both are the same buffer value.

    memmove rather than memcpy: two different IR values may still point to one buffer.
    """
    if dst.ptr is src.ptr or dst.shape.num_elements == 0:
        return
    nbytes = dst.shape.num_elements * dst.shape.element_type.byte_size
    intrinsic(b, "llvm.memmove.p0.p0.i64", ir.VoidType(),
              [dst.ptr, src.ptr, i64(nbytes), ir.Constant(I1, 0)])


# --- gather ----------------------------------------------------------------------------------


@emits(Opcode.GATHER)
def emit_gather(
    ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue], out: BufferValue
) -> None:
    """out[batch, offsets] = operand[clamped start(batch) + offsets]."""
    b = ctx.builder
    operand, indices = operands
    dims = GatherDims.of(instr.attrs, operand.shape.dims, out.shape.rank)
    if out.shape.num_elements == 0:
        return
    with loop_nest(b, out.shape.dims, name="gather") as oi:
        out.store(b, oi, operand.load(b, gather_operand_index(b, dims, indices, oi)))


# --- scatter ---------------------------------------------------------------------------------


@emits(Opcode.SCATTER)
def emit_scatter(
    ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue], out: BufferValue
) -> None:
    """out = operands; then out[start(s) + w] = combine(out[...], updates[s, w]) per window.

    A window whose start puts any part of it outside the operand is skipped whole.
    """
    b = ctx.builder
    n = (len(operands) - 1) // 2
    inputs, indices, updates = operands[:n], operands[n], operands[n + 1:]
    outs = list(out) if isinstance(out, tuple) else [out]
    comp = instr.attrs["to_apply"]
    for dst, src in zip(outs, inputs, strict=True):
        copy_buffer(b, dst, src)
    upd_dims = updates[0].shape.dims
    dims = ScatterDims.of(instr.attrs, inputs[0].shape.dims, upd_dims)
    if updates[0].shape.num_elements == 0:
        return
    with loop_nest(b, [upd_dims[d] for d in dims.scatter_dims], name="scatter") as batch:
        start, fits = scatter_start(b, dims, indices, batch)
        with if_then(b, fits):
            window_sizes = [upd_dims[d] for d in dims.update_window_dims]
            with loop_nest(b, window_sizes, name="window") as wi:
                upd_index: list[ir.Value] = [i64(0)] * len(upd_dims)
                for d, v in zip(dims.scatter_dims, batch, strict=True):
                    upd_index[d] = v
                for d, v in zip(dims.update_window_dims, wi, strict=True):
                    upd_index[d] = v
                target = scatter_target(b, dims, start, wi)
                current = [o.load(b, target) for o in outs]
                new = [u.load(b, upd_index) for u in updates]
                combined = ctx.call_scalar_computation(comp, [*current, *new])
                for o, v in zip(outs, combined, strict=True):
                    o.store(b, target, v)


# --- dynamic-update-slice --------------------------------------------------------------------


@emits(Opcode.DYNAMIC_UPDATE_SLICE)
def emit_dynamic_update_slice(
    ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue], out: BufferValue
) -> None:
    """out = operand with update written at the start indices, clamped to fit."""
    b = ctx.builder
    operand, update, *starts = operands
    copy_buffer(b, out, operand)
    if update.shape.num_elements == 0:
        return
    op_dims = operand.shape.dims
    upd_dims = update.shape.dims
    begin = [
        clamp_index(b, index_to_i64(b, s.load(b, []), s.element_type), op_dims[d] - upd_dims[d])
        for d, s in enumerate(starts)
    ]
    with loop_nest(b, upd_dims, name="dus") as ui:
        target = [b.add(s, v, flags=NOWRAP) for s, v in zip(begin, ui, strict=True)]
        out.store(b, target, update.load(b, ui))
