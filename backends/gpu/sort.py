"""GPU kernels for sort and topk: a bitonic sort of each row's positions in shared memory.

One block sorts one row (rows along the sort dimension, any number of operands). The row's
positions 0..n-1, padded to a power of two P <= MAX_ROW, are sorted in shared memory by a
bitonic network whose stages are a run-time loop (so the comparator is inlined once).
Positions compare by the instruction's comparator on the operands' elements, and equal
elements by position, which makes the order strict and total: the network then produces
exactly the stable order XLA's `is_stable` asks for (and a valid order otherwise). Padding
sorts last. The sorted permutation is finally applied to every operand. Topk sorts by value
in IEEE total order (larger first when `largest`, lower index first among equals) and keeps
the first k. Rows longer than MAX_ROW run the CPU backend's merge sort on one thread.
TODO(#8): a multi-block merge sort for long rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from llvmlite import ir

from backends.elemental_convert import compare
from backends.gpu.kernels import KernelContext, KernelFunction, emits_gpu
from backends.gpu.launch import (
    LaunchDims,
    barrier,
    block_id,
    shared_array,
    shared_element,
    thread_id,
    wide,
)
from backends.gpu.misc import emit_serial
from backends.gpu.plan import leaves
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import I1, I32, I64, for_range, i64, llvm_type
from hlo.computation import HloComputation
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode

_NOWRAP = ("nuw", "nsw")
MAX_ROW = 2048
MAX_THREADS = 1024

# before(b, p, q) -> i1 for real positions p != q of the current row.
Before = Callable[[ir.IRBuilder, ir.Value, ir.Value], ir.Value]


def _padded(n: int) -> int:
    return 1 << max(1, math.ceil(math.log2(max(n, 2))))


def _row_geometry(dims: Sequence[int], dim: int) -> tuple[int, int, int]:
    """(outer, n, inner): a row along `dim` starts at o*n*inner + i with stride inner."""
    return math.prod(dims[:dim]), dims[dim], math.prod(dims[dim + 1:])


def _bitonic(kernel: KernelFunction, n: int, before: Before) -> tuple[ir.GlobalVariable, int]:
    """Sort positions 0..n-1 of the block's row into the shared array it returns."""
    b = kernel.builder
    size = _padded(n)
    threads = min(size, MAX_THREADS)
    perm = shared_array(kernel.module, f"{kernel.name}_perm", I32, size)
    tid = wide(b, thread_id(b))
    with for_range(b, tid, size, step=threads, name="init") as i:
        b.store(b.trunc(i, I32), shared_element(b, perm, i))
    barrier(b)
    stages = int(math.log2(size))
    with for_range(b, 1, stages + 1, name="stage") as s:
        k = b.shl(i64(1), s)
        with for_range(b, 0, s, name="step") as t:
            j = b.lshr(k, b.add(t, i64(1)))
            with for_range(b, tid, size, step=threads, name="item") as i:
                partner = b.xor(i, j)
                with b.if_then(b.icmp_unsigned(">", partner, i)):
                    a_ptr = shared_element(b, perm, i)
                    c_ptr = shared_element(b, perm, partner)
                    a = b.zext(b.load(a_ptr), I64)
                    c = b.zext(b.load(c_ptr), I64)
                    ascending = b.icmp_unsigned("==", b.and_(i, k), i64(0))
                    # Swap when the pair is out of order for this half of the network.
                    first, second = b.select(ascending, c, a), b.select(ascending, a, c)
                    swap = _ordered(b, n, before, first, second)
                    with b.if_then(swap):
                        b.store(b.trunc(c, I32), a_ptr)
                        b.store(b.trunc(a, I32), c_ptr)
            barrier(b)
    return perm, threads


def _ordered(b: ir.IRBuilder, n: int, before: Before, p: ir.Value, q: ir.Value) -> ir.Value:
    """Does position p sort strictly before q? Padding (>= n) sorts after everything."""
    limit = i64(n)
    p_real = b.icmp_unsigned("<", p, limit)
    q_real = b.icmp_unsigned("<", q, limit)
    safe_p = b.select(p_real, p, i64(0))
    safe_q = b.select(q_real, q, i64(0))
    less = before(b, safe_p, safe_q)
    greater = before(b, safe_q, safe_p)
    tie = b.and_(b.not_(greater), b.icmp_unsigned("<", p, q))
    real_order = b.or_(less, tie)
    return b.select(p_real, b.select(q_real, real_order, ir.Constant(I1, 1)),
                    ir.Constant(I1, 0))


@emits_gpu(Opcode.SORT)
def emit_sort(ctx: KernelContext, instr: HloInstruction) -> None:
    inputs = [s for v in ctx.operands for s in leaves(v)]
    outs = leaves(ctx.out)
    dim = instr.attrs["dimensions"][0]
    outer, n, inner = _row_geometry(inputs[0].shape.dims, dim)
    if outer * n * inner == 0:
        return
    if n > MAX_ROW:
        emit_serial(ctx, instr)
        return
    kernel = ctx.kernel("bitonic", outs, inputs)
    threads = min(_padded(n), MAX_THREADS)
    if kernel.is_new:
        _fill_sort(ctx, kernel, instr.attrs["to_apply"], n, inner)
    ctx.launch(kernel, LaunchDims((outer * inner, 1, 1), (threads, 1, 1)))


def _fill_sort(ctx: KernelContext, kernel: KernelFunction, comp: HloComputation, n: int,
               inner: int) -> None:
    b = kernel.builder
    row = wide(b, block_id(b))
    base = b.add(b.mul(b.udiv(row, i64(inner)), i64(n * inner), flags=_NOWRAP),
                 b.urem(row, i64(inner)), flags=_NOWRAP)

    def at(bb: ir.IRBuilder, position: ir.Value) -> ir.Value:
        return bb.add(base, bb.mul(position, i64(inner), flags=_NOWRAP), flags=_NOWRAP)

    def before(bb: ir.IRBuilder, p: ir.Value, q: ir.Value) -> ir.Value:
        args: list[ir.Value] = []
        for x in kernel.inputs:
            args.append(x.load_linear(bb, at(bb, p)))
            args.append(x.load_linear(bb, at(bb, q)))
        return ctx.scalar_computation(bb, comp, args)[0]

    perm, threads = _bitonic(kernel, n, before)
    tid = wide(b, thread_id(b))
    with for_range(b, tid, n, step=threads, name="apply") as t:
        p = b.zext(b.load(shared_element(b, perm, t)), I64)
        for x, y in zip(kernel.inputs, kernel.outputs, strict=True):
            y.store_linear(b, at(b, t), x.load_linear(b, at(b, p)))
    kernel.finish()


@emits_gpu(Opcode.TOPK)
def emit_topk(ctx: KernelContext, instr: HloInstruction) -> None:
    (x,) = [s for v in ctx.operands for s in leaves(v)]
    values, indices = leaves(ctx.out)
    k = instr.attrs["k"]
    n = x.shape.dims[-1] if x.shape.rank else 1
    rows = x.shape.num_elements // n if n else 0
    if rows == 0 or k == 0:
        return
    if n > MAX_ROW:
        emit_serial(ctx, instr)
        return
    kernel = ctx.kernel("bitonic", [values, indices], [x])
    if kernel.is_new:
        _fill_topk(kernel, n, k, instr.attrs.get("largest", True))
    ctx.launch(kernel, LaunchDims((rows, 1, 1), (min(_padded(n), MAX_THREADS), 1, 1)))


def _fill_topk(kernel: KernelFunction, n: int, k: int, largest: bool) -> None:
    b = kernel.builder
    x: IrArray = kernel.inputs[0]
    values, indices = kernel.outputs
    t = x.element_type
    order = "TOTALORDER" if t.is_float else None
    row = wide(b, block_id(b))
    base = b.mul(row, i64(n), flags=_NOWRAP)

    def before(bb: ir.IRBuilder, p: ir.Value, q: ir.Value) -> ir.Value:
        xp = x.load_linear(bb, bb.add(base, p))
        xq = x.load_linear(bb, bb.add(base, q))
        return compare(bb, t, "GT" if largest else "LT", order, xp, xq)

    perm, threads = _bitonic(kernel, n, before)
    tid = wide(b, thread_id(b))
    out_base = b.mul(row, i64(k), flags=_NOWRAP)
    index_ty = llvm_type(indices.element_type)
    with for_range(b, tid, k, step=threads, name="out") as j:
        p = b.zext(b.load(shared_element(b, perm, j)), I64)
        at = b.add(out_base, j, flags=_NOWRAP)
        values.store_linear(b, at, x.load_linear(b, b.add(base, p)))
        position = b.trunc(p, index_ty) if indices.element_type.bits < 64 else p
        indices.store_linear(b, at, position)
    kernel.finish()
