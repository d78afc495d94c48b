"""GPU kernels for gather and scatter, and the atomic read-modify-write they share.

Semantics are XLA's with the full dimension numbers (batching dimensions included), as in
the CPU kernels: gather clamps each start index so the slice lies inside the operand;
scatter skips every update window that does not fit whole.

* gather: one thread per output element computes its operand index and copies it.
* scatter: the output starts as a copy of the operand (a device copy); then one thread per
  update element combines it into its target with `atomic_update`: a plain store when the
  combiner returns the update, `atomicrmw` for add/max/min where the GPU has it, and a
  compare-and-swap loop around the inlined combiner otherwise. Duplicate indices are
  therefore combined in an unspecified order, as on XLA's GPU backend. Variadic scatters
  and 128-bit complex elements run on one thread, in the row-major order of the updates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from llvmlite import ir

from backends.elemental_convert import from_bits, to_bits
from backends.gpu.kernels import KernelContext, KernelFunction, emits_gpu, operand_slots, out_slot
from backends.gpu.launch import for_elements, grid_stride_loop, single_thread
from backends.gpu.plan import leaves
from backends.llvm.index import delinearize
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import I1, I32, I64, for_range, i64, llvm_type
from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType
from hlo.errors import UnsupportedOpError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode

_NOWRAP = ("nuw", "nsw")
_T = PrimitiveType


def index_to_i64(b: ir.IRBuilder, value: ir.Value, t: PrimitiveType) -> ir.Value:
    """An integer index of type `t` as i64 (sign- or zero-extended as `t` demands)."""
    if not t.is_integer:
        raise UnsupportedOpError(f"indices of type {t.value}; expected an integer type")
    if t.bits == 64:
        return value
    return b.sext(value, I64) if t.is_signed else b.zext(value, I64)


def clamp_index(b: ir.IRBuilder, value: ir.Value, high: int) -> ir.Value:
    """min(max(value, 0), high) on i64 (high >= 0)."""
    value = b.select(b.icmp_signed("<", value, i64(0)), i64(0), value)
    return b.select(b.icmp_signed(">", value, i64(high)), i64(high), value)


def index_vector(b: ir.IRBuilder, indices: IrArray, vector_dim: int,
                 batch: Sequence[ir.Value], count: int) -> list[ir.Value]:
    """The `count` components (i64) of the index vector at batch position `batch`.

    `batch` holds one value per dimension of `indices` other than `vector_dim`; a
    `vector_dim` equal to the rank of `indices` means an implicit vector of length 1.
    """
    out: list[ir.Value] = []
    for j in range(count):
        index = list(batch)
        if vector_dim < indices.shape.rank:
            index.insert(vector_dim, i64(j))
        out.append(index_to_i64(b, indices.load(b, index), indices.element_type))
    return out


def _batch_value(batch: Sequence[ir.Value], indices_dim: int, vector_dim: int) -> ir.Value:
    return batch[indices_dim if indices_dim < vector_dim else indices_dim - 1]


# --- gather ------------------------------------------------------------------------------------


@emits_gpu(Opcode.GATHER)
def emit_gather(ctx: KernelContext, instr: HloInstruction) -> None:
    out = out_slot(ctx)
    if out.shape.num_elements == 0:
        return
    kernel = ctx.kernel("gather", [out], operand_slots(ctx))
    if kernel.is_new:
        _fill_gather(kernel, instr)
    ctx.launch(kernel, for_elements(out.shape.num_elements))


def _fill_gather(kernel: KernelFunction, instr: HloInstruction) -> None:
    """out[batch, offsets] = operand[clamped start(batch) + offsets]."""
    b = kernel.builder
    operand, indices = kernel.inputs
    out = kernel.outputs[0]
    a = instr.attrs
    offset_dims = tuple(a["offset_dims"])
    collapsed = tuple(a["collapsed_slice_dims"])
    start_map = tuple(a["start_index_map"])
    operand_batching = tuple(a.get("operand_batching_dims") or ())
    indices_batching = tuple(a.get("start_indices_batching_dims") or ())
    vector_dim = a["index_vector_dim"]
    slice_sizes = tuple(a["slice_sizes"])
    op_dims = operand.shape.dims
    batch_dims = [d for d in range(out.shape.rank) if d not in offset_dims]
    window_dims = [d for d in range(len(op_dims))
                   if d not in collapsed and d not in operand_batching]
    with grid_stride_loop(b, out.shape.num_elements) as o:
        oi = delinearize(b, o, out.shape.dims)
        batch = [oi[d] for d in batch_dims]
        start: list[ir.Value] = [i64(0)] * len(op_dims)
        components = index_vector(b, indices, vector_dim, batch, len(start_map))
        for d, v in zip(start_map, components, strict=True):
            start[d] = clamp_index(b, v, op_dims[d] - slice_sizes[d])
        for od, idim in zip(operand_batching, indices_batching, strict=True):
            start[od] = _batch_value(batch, idim, vector_dim)
        index = list(start)
        for od, out_dim in zip(window_dims, offset_dims, strict=True):
            index[od] = b.add(start[od], oi[out_dim], flags=_NOWRAP)
        out.store_linear(b, o, operand.load(b, index))
    kernel.finish()


# --- atomics -----------------------------------------------------------------------------------

Combine = Callable[[ir.IRBuilder, list[ir.Value]], list[ir.Value]]


def returns_update(comp: HloComputation) -> bool:
    """True for a combiner `(current, update) -> update`."""
    root = comp.root
    return (root is not None and root.opcode is Opcode.PARAMETER
            and root.attrs["parameter_number"] == 1 and len(comp.parameters) == 2)


def _plain_binary(comp: HloComputation) -> Opcode | None:
    """op for a combiner `(x, y) -> op(x, y)` or `op(y, x)`, else None."""
    root = comp.root
    if root is None or len(comp.parameters) != 2 or len(root.operands) != 2:
        return None
    if {id(o) for o in root.operands} != {id(p) for p in comp.parameters}:
        return None
    return root.opcode


# (opcode, element type) -> atomicrmw operation
_RMW: dict[tuple[Opcode, PrimitiveType], str] = {
    **{(Opcode.ADD, t): "fadd" for t in (_T.F32, _T.F64)},
    **{(Opcode.ADD, t): "add" for t in (_T.S32, _T.S64, _T.U32, _T.U64)},
    **{(Opcode.MAXIMUM, t): "max" for t in (_T.S32, _T.S64)},
    **{(Opcode.MINIMUM, t): "min" for t in (_T.S32, _T.S64)},
    **{(Opcode.MAXIMUM, t): "umax" for t in (_T.U32, _T.U64)},
    **{(Opcode.MINIMUM, t): "umin" for t in (_T.U32, _T.U64)},
    **{(Opcode.AND, t): "and" for t in (_T.S32, _T.S64, _T.U32, _T.U64)},
    **{(Opcode.OR, t): "or" for t in (_T.S32, _T.S64, _T.U32, _T.U64)},
    **{(Opcode.XOR, t): "xor" for t in (_T.S32, _T.S64, _T.U32, _T.U64)},
}


def atomic_supported(t: PrimitiveType) -> bool:
    """True when `atomic_update` can update elements of `t` (not 128-bit complex)."""
    return t is not _T.C128


def _pack(b: ir.IRBuilder, t: PrimitiveType, v: ir.Value) -> ir.Value:
    """The bits of a register value as one integer (c64 as {im:re} in an i64)."""
    if t is _T.C64:
        re = b.zext(b.bitcast(b.extract_value(v, 0), I32), I64)
        im = b.zext(b.bitcast(b.extract_value(v, 1), I32), I64)
        return b.or_(re, b.shl(im, i64(32)))
    return to_bits(b, t, v)


def _unpack(b: ir.IRBuilder, t: PrimitiveType, bits: ir.Value) -> ir.Value:
    if t is _T.C64:
        re = b.bitcast(b.trunc(bits, I32), ir.FloatType())
        im = b.bitcast(b.trunc(b.lshr(bits, i64(32)), I32), ir.FloatType())
        z = ir.Constant(llvm_type(t), ir.Undefined)
        return b.insert_value(b.insert_value(z, re, 0), im, 1)
    return from_bits(b, t, bits)


def atomic_update(ctx: KernelContext, b: ir.IRBuilder, target: IrArray, linear: ir.Value,
                  comp: HloComputation, update: ir.Value) -> None:
    """target[linear] = comp(target[linear], update), atomically with respect to other
    threads doing the same."""
    t = target.element_type
    ptr = target.element_ptr_linear(b, linear)
    if returns_update(comp):
        target.store_linear(b, linear, update)
        return
    op = _plain_binary(comp)
    rmw = _RMW.get((op, t)) if op is not None else None
    if rmw is not None:
        b.atomic_rmw(rmw, ptr, update, "monotonic")
        return
    bits_ty = ir.IntType(8 if t.is_pred else t.bits)
    old = b.load(ptr, typ=bits_ty, align=target.alignment)
    pre = b.block
    loop = b.append_basic_block("cas.loop")
    done = b.append_basic_block("cas.done")
    b.branch(loop)
    b.position_at_end(loop)
    seen = b.phi(bits_ty, name="cas.seen")
    seen.add_incoming(old, pre)
    (new,) = ctx.scalar_computation(b, comp, [_unpack(b, t, seen), update])
    result = b.cmpxchg(ptr, seen, _pack(b, t, new), "monotonic", "monotonic")
    observed = b.extract_value(result, 0)
    swapped = b.extract_value(result, 1)
    seen.add_incoming(observed, b.block)
    b.cbranch(swapped, done, loop)
    b.position_at_end(done)


# --- scatter -----------------------------------------------------------------------------------


@emits_gpu(Opcode.SCATTER)
def emit_scatter(ctx: KernelContext, instr: HloInstruction) -> None:
    n = (len(instr.operands) - 1) // 2
    slots = operand_slots(ctx)
    inputs, indices, updates = slots[:n], slots[n], slots[n + 1:]
    outs = leaves(ctx.out)
    for dst, src in zip(outs, inputs, strict=True):
        ctx.copy(dst, src)
    count = updates[0].shape.num_elements
    if count == 0 or outs[0].shape.num_elements == 0:
        return
    parallel = n == 1 and atomic_supported(outs[0].shape.element_type)
    kernel = ctx.kernel("atomic" if parallel else "serial", outs, [indices, *updates])
    if kernel.is_new:
        _fill_scatter(ctx, kernel, instr, n, parallel)
    ctx.launch(kernel, for_elements(count) if parallel else single_thread())


def _fill_scatter(ctx: KernelContext, kernel: KernelFunction, instr: HloInstruction, n: int,
                  parallel: bool) -> None:
    """Per update element u: out[start(u's batch) + window(u)] = comp(out[...], updates[u])."""
    b = kernel.builder
    outs = kernel.outputs
    indices, updates = kernel.inputs[0], kernel.inputs[1:]
    a = instr.attrs
    update_window_dims = tuple(a["update_window_dims"])
    inserted = tuple(a["inserted_window_dims"])
    to_operand = tuple(a["scatter_dims_to_operand_dims"])
    input_batching = tuple(a.get("input_batching_dims") or ())
    indices_batching = tuple(a.get("scatter_indices_batching_dims") or ())
    vector_dim = a["index_vector_dim"]
    comp: HloComputation = a["to_apply"]
    op_dims = outs[0].shape.dims
    upd_dims = updates[0].shape.dims
    scatter_dims = [d for d in range(len(upd_dims)) if d not in update_window_dims]
    window_operand_dims = [d for d in range(len(op_dims))
                           if d not in inserted and d not in input_batching]
    window_size = [1] * len(op_dims)
    for od, ud in zip(window_operand_dims, update_window_dims, strict=True):
        window_size[od] = upd_dims[ud]
    count = updates[0].shape.num_elements

    def element(u: ir.Value) -> None:
        ui = delinearize(b, u, upd_dims)
        batch = [ui[d] for d in scatter_dims]
        start: list[ir.Value] = [i64(0)] * len(op_dims)
        components = index_vector(b, indices, vector_dim, batch, len(to_operand))
        for d, v in zip(to_operand, components, strict=True):
            start[d] = v
        for od, idim in zip(input_batching, indices_batching, strict=True):
            start[od] = _batch_value(batch, idim, vector_dim)
        fits: ir.Value = ir.Constant(I1, 1)
        for d in range(len(op_dims)):
            inside = b.and_(b.icmp_signed(">=", start[d], i64(0)),
                            b.icmp_signed("<=", start[d], i64(op_dims[d] - window_size[d])))
            fits = b.and_(fits, inside)
        with b.if_then(fits):
            target = list(start)
            for od, ud in zip(window_operand_dims, update_window_dims, strict=True):
                target[od] = b.add(start[od], ui[ud], flags=_NOWRAP)
            linear = outs[0].linear_of(b, target)
            values = [x.load_linear(b, u) for x in updates]
            if parallel:
                atomic_update(ctx, b, outs[0], linear, comp, values[0])
            else:
                current = [o.load_linear(b, linear) for o in outs]
                combined = ctx.scalar_computation(b, comp, [*current, *values])
                for o, v in zip(outs, combined, strict=True):
                    o.store_linear(b, linear, v)

    if parallel:
        with grid_stride_loop(b, count) as u:
            element(u)
    else:
        with for_range(b, 0, count, name="u") as u:
            element(u)
    kernel.finish()


__all__ = ["atomic_update", "clamp_index", "emit_gather", "emit_scatter", "index_to_i64",
           "index_vector", "returns_update"]
