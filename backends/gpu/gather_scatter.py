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

The index arithmetic is `backends/llvm/gather_index.py`, shared with the CPU kernels.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from backends.elemental_convert import from_bits, to_bits
from backends.gpu.kernels import KernelContext, KernelFunction, emits_gpu, operand_slots, out_slot
from backends.gpu.launch import for_elements, grid_stride_loop, single_thread
from backends.gpu.plan import leaves
from backends.llvm.gather_index import (
    GatherDims,
    ScatterDims,
    gather_operand_index,
    scatter_start,
    scatter_target,
)
from backends.llvm.index import delinearize
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import I32, I64, for_range, i64, llvm_type
from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode

_T = PrimitiveType


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
    dims = GatherDims.of(instr.attrs, operand.shape.dims, out.shape.rank)
    with grid_stride_loop(b, out.shape.num_elements) as o:
        oi = delinearize(b, o, out.shape.dims)
        out.store_linear(b, o, operand.load(b, gather_operand_index(b, dims, indices, oi)))
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
    comp: HloComputation = instr.attrs["to_apply"]
    upd_dims = updates[0].shape.dims
    dims = ScatterDims.of(instr.attrs, outs[0].shape.dims, upd_dims)
    count = updates[0].shape.num_elements

    def element(u: ir.Value) -> None:
        ui = delinearize(b, u, upd_dims)
        start, fits = scatter_start(b, dims, indices, [ui[d] for d in dims.scatter_dims])
        with b.if_then(fits):
            target = scatter_target(b, dims, start, [ui[d] for d in dims.update_window_dims])
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


__all__ = ["atomic_update", "emit_gather", "emit_scatter", "returns_update"]
