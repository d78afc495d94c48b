"""CPU kernels for indexed data movement: gather, scatter and dynamic-update-slice.

All three follow XLA's semantics with the full modern dimension numbers (including batching
dimensions). Gather and dynamic-update-slice clamp start indices so that the slice lies
inside the operand; scatter instead skips every update window that does not fit, and applies
its combiner to duplicates in the row-major order of the scatter indices. Scatter and
dynamic-update-slice work in place when the driver gives them the operand's buffer as output.
"""

from __future__ import annotations

from collections.abc import Sequence

from llvmlite import ir

from backends.cpu.kernels import BufferValue, KernelContext, emits
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import I1, i64, if_then, intrinsic, loop_nest
from hlo.dtypes import PrimitiveType
from hlo.errors import UnsupportedOpError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode

_NOWRAP = ("nuw", "nsw")


def index_to_i64(b: ir.IRBuilder, value: ir.Value, t: PrimitiveType) -> ir.Value:
    """An integer index of type `t` as i64 (sign- or zero-extended as `t` demands)."""
    if not t.is_integer:
        raise UnsupportedOpError(f"indices of type {t.value}; expected an integer type")
    if t.bits == 64:
        return value
    return b.sext(value, i64(0).type) if t.is_signed else b.zext(value, i64(0).type)


def clamp_index(b: ir.IRBuilder, value: ir.Value, high: int) -> ir.Value:
    """min(max(value, 0), high) on i64 (high >= 0)."""
    value = b.select(b.icmp_signed("<", value, i64(0)), i64(0), value)
    return b.select(b.icmp_signed(">", value, i64(high)), i64(high), value)


def copy_buffer(b: ir.IRBuilder, dst: IrArray, src: IrArray) -> None:
    """dst = src (same shape); nothing when both are the same buffer value.

    memmove rather than memcpy: two different IR values may still point to one buffer.
    """
    if dst.ptr is src.ptr or dst.shape.num_elements == 0:
        return
    nbytes = dst.shape.num_elements * dst.shape.element_type.byte_size
    intrinsic(b, "llvm.memmove.p0.p0.i64", ir.VoidType(),
              [dst.ptr, src.ptr, i64(nbytes), ir.Constant(I1, 0)])


def _index_components(
    b: ir.IRBuilder,
    indices: IrArray,
    index_vector_dim: int,
    batch: Sequence[ir.Value],
    count: int,
) -> list[ir.Value]:
    """The `count` components of the index vector at batch position `batch`, as i64.

    `batch` holds one value per dimension of `indices` other than index_vector_dim; when
    index_vector_dim equals the rank of `indices` the vector is implicit and of length 1.
    """
    rank = indices.shape.rank
    t = indices.element_type
    out: list[ir.Value] = []
    for j in range(count):
        index = list(batch)
        if index_vector_dim < rank:
            index.insert(index_vector_dim, i64(j))
        out.append(index_to_i64(b, indices.load(b, index), t))
    return out


def _batch_value(
    batch: Sequence[ir.Value], indices_dim: int, index_vector_dim: int
) -> ir.Value:
    """The batch-position value of indices dimension `indices_dim` (which is not the vector)."""
    return batch[indices_dim if indices_dim < index_vector_dim else indices_dim - 1]


# --- gather ----------------------------------------------------------------------------------


@emits(Opcode.GATHER)
def emit_gather(
    ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue], out: BufferValue
) -> None:
    """out[batch, offsets] = operand[clamped start(batch) + offsets]."""
    b = ctx.builder
    operand, indices = operands
    a = instr.attrs
    offset_dims = tuple(a["offset_dims"])
    collapsed = tuple(a["collapsed_slice_dims"])
    start_map = tuple(a["start_index_map"])
    operand_batching = tuple(a.get("operand_batching_dims") or ())
    indices_batching = tuple(a.get("start_indices_batching_dims") or ())
    ivd = a["index_vector_dim"]
    slice_sizes = tuple(a["slice_sizes"])
    op_dims = operand.shape.dims
    out_rank = out.shape.rank
    batch_dims = [d for d in range(out_rank) if d not in offset_dims]
    window_operand_dims = [
        d for d in range(len(op_dims)) if d not in collapsed and d not in operand_batching
    ]
    if out.shape.num_elements == 0:
        return
    with loop_nest(b, out.shape.dims, name="gather") as oi:
        batch = [oi[d] for d in batch_dims]
        start: list[ir.Value] = [i64(0)] * len(op_dims)
        components = _index_components(b, indices, ivd, batch, len(start_map))
        for d, v in zip(start_map, components, strict=True):
            start[d] = clamp_index(b, v, op_dims[d] - slice_sizes[d])
        for od, idim in zip(operand_batching, indices_batching, strict=True):
            start[od] = _batch_value(batch, idim, ivd)
        index = list(start)
        for od, out_dim in zip(window_operand_dims, offset_dims, strict=True):
            index[od] = b.add(start[od], oi[out_dim], flags=_NOWRAP)
        out.store(b, oi, operand.load(b, index))


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
    a = instr.attrs
    update_window_dims = tuple(a["update_window_dims"])
    inserted = tuple(a["inserted_window_dims"])
    to_operand = tuple(a["scatter_dims_to_operand_dims"])
    input_batching = tuple(a.get("input_batching_dims") or ())
    indices_batching = tuple(a.get("scatter_indices_batching_dims") or ())
    ivd = a["index_vector_dim"]
    comp = a["to_apply"]
    for dst, src in zip(outs, inputs, strict=True):
        copy_buffer(b, dst, src)
    op_dims = inputs[0].shape.dims
    upd_dims = updates[0].shape.dims
    scatter_dims = [d for d in range(len(upd_dims)) if d not in update_window_dims]
    window_operand_dims = [
        d for d in range(len(op_dims)) if d not in inserted and d not in input_batching
    ]
    window_size = [1] * len(op_dims)
    for od, ud in zip(window_operand_dims, update_window_dims, strict=True):
        window_size[od] = upd_dims[ud]
    if updates[0].shape.num_elements == 0:
        return
    with loop_nest(b, [upd_dims[d] for d in scatter_dims], name="scatter") as batch:
        start: list[ir.Value] = [i64(0)] * len(op_dims)
        components = _index_components(b, indices, ivd, batch, len(to_operand))
        for d, v in zip(to_operand, components, strict=True):
            start[d] = v
        for od, idim in zip(input_batching, indices_batching, strict=True):
            start[od] = _batch_value(batch, idim, ivd)
        fits: ir.Value = ir.Constant(I1, 1)
        for d in range(len(op_dims)):
            inside = b.and_(
                b.icmp_signed(">=", start[d], i64(0)),
                b.icmp_signed("<=", start[d], i64(op_dims[d] - window_size[d])),
            )
            fits = b.and_(fits, inside)
        with if_then(b, fits):
            with loop_nest(b, [upd_dims[d] for d in update_window_dims], name="window") as wi:
                upd_index: list[ir.Value] = [i64(0)] * len(upd_dims)
                for d, v in zip(scatter_dims, batch, strict=True):
                    upd_index[d] = v
                for d, v in zip(update_window_dims, wi, strict=True):
                    upd_index[d] = v
                target = list(start)
                for od, v in zip(window_operand_dims, wi, strict=True):
                    target[od] = b.add(start[od], v, flags=_NOWRAP)
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
        target = [b.add(s, v, flags=_NOWRAP) for s, v in zip(begin, ui, strict=True)]
        out.store(b, target, update.load(b, ui))
