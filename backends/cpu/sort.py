"""CPU kernels for sort (multi-operand, any comparator) and topk.

Both sort a permutation of each row's positions with a stable merge sort (insertion sort on
short runs, then bottom-up merge passes between the permutation and a scratch buffer), so
rows of 1e5 elements cost O(n log n) comparator calls, never O(n^2). The comparator is the
instruction's scalar computation, emitted inline. The sorted permutation is then applied to
every operand. Topk sorts by value in IEEE total order (NaN above +inf, -0 below +0),
larger first when `largest`, keeping the lower index first among equal values.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from llvmlite import ir

from backends.cpu.kernels import BufferValue, KernelContext, emits
from backends.elemental_convert import compare
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import (
    I1,
    I64,
    NOWRAP,
    alloca_at_entry,
    for_range,
    i64,
    if_else,
    if_then,
    llvm_type,
    loop_nest,
    smin,
)
from hlo.dtypes import PrimitiveType
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

_T = PrimitiveType

# Runs of this length are insertion-sorted before the merge passes.
RUN = 16

# less(b, p, q) -> i1: does row position p sort strictly before row position q?
Less = Callable[[ir.IRBuilder, ir.Value, ir.Value], ir.Value]


def _insertion_sort_runs(b: ir.IRBuilder, n: int, less: Less, perm: IrArray) -> None:
    """Sort perm[s : s + RUN] for every run start s, stably."""
    slot = alloca_at_entry(b, I64, name="isort.j")
    with for_range(b, 0, n, step=RUN, name="run") as start:
        stop = smin(b, b.add(start, i64(RUN)), i64(n))
        with for_range(b, b.add(start, i64(1)), stop, name="isort.i") as i:
            moving = perm.load_linear(b, i)
            b.store(i, slot)
            # while j > start and less(moving, perm[j - 1]): shift perm[j - 1] up
            header = b.append_basic_block("isort.header")
            check = b.append_basic_block("isort.check")
            shift = b.append_basic_block("isort.shift")
            done = b.append_basic_block("isort.done")
            b.branch(header)
            b.position_at_end(header)
            j = b.load(slot)
            b.cbranch(b.icmp_signed(">", j, start), check, done)
            b.position_at_end(check)
            before = perm.load_linear(b, b.sub(j, i64(1)))
            b.cbranch(less(b, moving, before), shift, done)
            b.position_at_end(shift)
            perm.store_linear(b, j, before)
            b.store(b.sub(j, i64(1)), slot)
            b.branch(header)
            b.position_at_end(done)
            perm.store_linear(b, b.load(slot), moving)


def _merge_pass(
    b: ir.IRBuilder, n: int, less: Less, src: IrArray, dst: IrArray, width: ir.Value,
    cursors: tuple[ir.Value, ir.Value],
) -> None:
    """Merge the sorted runs src[lo:lo+width], src[lo+width:lo+2*width] into dst, stably."""
    left_slot, right_slot = cursors
    pair = b.mul(width, i64(2))
    groups = b.udiv(b.add(i64(n), b.sub(pair, i64(1))), pair)
    with for_range(b, 0, groups, name="merge.group") as group:
        lo = b.mul(group, pair)
        mid = smin(b, b.add(lo, width), i64(n))
        hi = smin(b, b.add(mid, width), i64(n))
        b.store(lo, left_slot)
        b.store(mid, right_slot)
        with for_range(b, lo, hi, name="merge.k") as k:
            left = b.load(left_slot)
            right = b.load(right_slot)
            take_right = alloca_at_entry(b, I1, name="merge.right")
            b.store(ir.Constant(I1, 0), take_right)
            with if_else(b, b.icmp_signed(">=", left, mid)) as (left_done, both):
                with left_done:
                    b.store(ir.Constant(I1, 1), take_right)
                with both:
                    with if_then(b, b.icmp_signed("<", right, hi)):
                        r_val = src.load_linear(b, right)
                        l_val = src.load_linear(b, left)
                        b.store(less(b, r_val, l_val), take_right)
            with if_else(b, b.load(take_right)) as (from_right, from_left):
                with from_right:
                    dst.store_linear(b, k, src.load_linear(b, right))
                    b.store(b.add(right, i64(1)), right_slot)
                with from_left:
                    dst.store_linear(b, k, src.load_linear(b, left))
                    b.store(b.add(left, i64(1)), left_slot)


def stable_sort_positions(
    ctx: KernelContext, n: int, less: Less, perm: IrArray, scratch: IrArray
) -> IrArray:
    """Fill perm with 0..n-1 and sort it stably by `less`; returns the buffer holding the result.

    `perm` and `scratch` are s64[n] buffers; the merge passes alternate between them, and
    the number of passes (hence which buffer ends up sorted) is known at compile time.
    """
    b = ctx.builder
    with for_range(b, 0, n, name="perm.init") as i:
        perm.store_linear(b, i, i)
    if n <= 1:
        return perm
    _insertion_sort_runs(b, n, less, perm)
    if n <= RUN:
        return perm
    # Each pass doubles the sorted run length, from RUN until one run covers the row.
    passes = math.ceil(math.log2(-(-n // RUN)))
    cursors = (alloca_at_entry(b, I64, name="merge.i"), alloca_at_entry(b, I64, name="merge.j"))
    with for_range(b, 0, passes, name="merge.pass") as p:
        odd = b.trunc(p, I1)
        src = IrArray(b.select(odd, scratch.ptr, perm.ptr), perm.shape)
        dst = IrArray(b.select(odd, perm.ptr, scratch.ptr), perm.shape)
        width = b.shl(i64(RUN), p)
        _merge_pass(b, n, less, src, dst, width, cursors)
    return scratch if passes % 2 == 1 else perm


def _rows(shape: Shape, dim: int) -> tuple[int, int, int]:
    """(outer, n, inner): a row along `dim` starts at o*n*inner + i and has stride inner."""
    dims = shape.dims
    return math.prod(dims[:dim]), dims[dim], math.prod(dims[dim + 1:])


@emits(Opcode.SORT)
def emit_sort(
    ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue], out: BufferValue
) -> None:
    """Sort every row along `dimensions[0]` of all operands by the comparator, stably."""
    b = ctx.builder
    outs = list(out) if isinstance(out, tuple) else [out]
    comp = instr.attrs["to_apply"]
    dim = instr.attrs["dimensions"][0]
    outer, n, inner = _rows(operands[0].shape, dim)
    if outer * n * inner == 0:
        return
    index_shape = Shape.array(_T.S64, (n,))
    perm = ctx.temp_array(index_shape, name="sort.perm")
    scratch = ctx.temp_array(index_shape, name="sort.scratch")
    aliased = [o.ptr is x.ptr for o, x in zip(outs, operands, strict=True)]
    rows = [
        ctx.temp_array(Shape.array(x.element_type, (n,)), name="sort.row") if alias else None
        for x, alias in zip(operands, aliased, strict=True)
    ]
    with loop_nest(b, (outer, inner), name="sort.row") as (o, i):
        base = b.add(b.mul(o, i64(n * inner), flags=NOWRAP), i, flags=NOWRAP)

        def at(position: ir.Value) -> ir.Value:
            return b.add(base, b.mul(position, i64(inner), flags=NOWRAP), flags=NOWRAP)

        def less(bb: ir.IRBuilder, p: ir.Value, q: ir.Value) -> ir.Value:
            args: list[ir.Value] = []
            for x in operands:
                args.append(x.load_linear(bb, at(p)))
                args.append(x.load_linear(bb, at(q)))
            (result,) = ctx.call_scalar_computation(comp, args)
            return result

        sorted_perm = stable_sort_positions(ctx, n, less, perm, scratch)
        for x, row in zip(operands, rows, strict=True):
            if row is not None:
                with for_range(b, 0, n, name="sort.save") as t:
                    row.store_linear(b, t, x.load_linear(b, at(t)))
        with for_range(b, 0, n, name="sort.apply") as t:
            p = sorted_perm.load_linear(b, t)
            for x, y, row in zip(operands, outs, rows, strict=True):
                value = row.load_linear(b, p) if row is not None else x.load_linear(b, at(p))
                y.store_linear(b, at(t), value)


@emits(Opcode.TOPK)
def emit_topk(
    ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue], out: BufferValue
) -> None:
    """(values, indices) of the k largest (or smallest) entries of each last-dim row."""
    b = ctx.builder
    (x,) = operands
    values, indices = out
    k = instr.attrs["k"]
    largest = instr.attrs.get("largest", True)
    t = x.element_type
    n = x.shape.dims[-1] if x.shape.rank else 1
    rows = x.shape.num_elements // n if n else 0
    if rows == 0 or k == 0:
        return
    index_shape = Shape.array(_T.S64, (n,))
    perm = ctx.temp_array(index_shape, name="topk.perm")
    scratch = ctx.temp_array(index_shape, name="topk.scratch")
    order = "TOTALORDER" if t.is_float else None
    with for_range(b, 0, rows, name="topk.row") as r:
        base = b.mul(r, i64(n), flags=NOWRAP)

        def less(bb: ir.IRBuilder, p: ir.Value, q: ir.Value) -> ir.Value:
            xp = x.load_linear(bb, bb.add(base, p))
            xq = x.load_linear(bb, bb.add(base, q))
            return compare(bb, t, "GT" if largest else "LT", order, xp, xq)

        sorted_perm = stable_sort_positions(ctx, n, less, perm, scratch)
        out_base = b.mul(r, i64(k), flags=NOWRAP)
        with for_range(b, 0, k, name="topk.out") as j:
            p = sorted_perm.load_linear(b, j)
            at = b.add(out_base, j, flags=NOWRAP)
            values.store_linear(b, at, x.load_linear(b, b.add(base, p)))
            indices.store_linear(b, at, b.trunc(p, llvm_type(indices.element_type))
                                 if indices.element_type.bits < 64 else p)
