"""GPU kernels for dot: a tiled shared-memory GEMM, and one thread per output for the rest.

Any dot_general is seen as a batch of matrix products C[b, m, n] = sum_k A[b, m, k] B[b, k, n]
where b, m, k and n each stand for a group of operand dimensions (`DotView`); element
offsets into the operands are computed from those groups, so no operand is transposed
or copied first. Sums of f16/bf16 products accumulate in f32, as XLA does.

The GEMM kernel gives each block of 16 x 16 threads a 64 x 64 tile of C (128 x 128 for
large products); the K dimension is walked in steps of 16 (8), staging a tile of A and one
of B in shared memory (zero-padded at the edges), and each thread accumulates a 4 x 4
(8 x 8) register tile whose rows and columns are 16 apart, so that a warp's shared-memory
reads are broadcasts (A) or consecutive (B). Consecutive threads load consecutive k of A
and consecutive n of B, which is coalesced for row-major [M, K] x [K, N]. Small products
(M or N below 16), and PRED and complex dots, use one thread per output element.
f16/bf16 dots that qualify run on the tensor cores instead (dot_mma.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from llvmlite import ir

from backends.gpu.dot_mma import try_emit_mma
from backends.gpu.kernels import KernelContext, KernelFunction, emits_gpu, operand_slots, out_slot
from backends.gpu.launch import (
    LaunchDims,
    barrier,
    block_id,
    ceil_div,
    for_elements,
    grid_stride_loop,
    shared_array,
    shared_element,
    thread_id,
    wide,
)
from backends.llvm.arith import convert_scalar, dot_accumulation_type, multiply_add
from backends.llvm.index import delinearize, row_major_strides
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import for_range, i64, llvm_type, zero
from hlo.dtypes import PrimitiveType
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode

_NOWRAP = ("nuw", "nsw")
THREADS = 16    # threads per block edge (16 x 16 = 256)


@dataclass(frozen=True)
class GemmTile:
    """A block's C tile edge and K step; each thread holds (edge / 16)^2 accumulators."""

    edge: int
    depth: int

    @property
    def per_thread(self) -> int:
        return self.edge // THREADS


SMALL_TILE = GemmTile(64, 16)   # 4 x 4 accumulators per thread
LARGE_TILE = GemmTile(128, 8)   # 8 x 8: twice the arithmetic per shared-memory load
LARGE_MIN = 1024                # rows and columns from which the large tile fills the GPU


@dataclass(frozen=True)
class DotView:
    """Which operand dimensions form the batch (b), row (m), contracted (k) and column (n)
    groups of a dot, with their sizes."""

    lhs_batch: tuple[int, ...]
    lhs_rows: tuple[int, ...]
    lhs_contract: tuple[int, ...]
    rhs_batch: tuple[int, ...]
    rhs_cols: tuple[int, ...]
    rhs_contract: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    row_sizes: tuple[int, ...]
    k_sizes: tuple[int, ...]
    col_sizes: tuple[int, ...]

    @property
    def batch(self) -> int:
        return math.prod(self.batch_sizes)

    @property
    def rows(self) -> int:
        return math.prod(self.row_sizes)

    @property
    def depth(self) -> int:
        return math.prod(self.k_sizes)

    @property
    def cols(self) -> int:
        return math.prod(self.col_sizes)


def dot_view(instr: HloInstruction) -> DotView:
    lhs, rhs = (o.shape for o in instr.operands)
    lb = tuple(instr.attrs.get("lhs_batch_dims") or ())
    lc = tuple(instr.attrs.get("lhs_contracting_dims") or ())
    rb = tuple(instr.attrs.get("rhs_batch_dims") or ())
    rc = tuple(instr.attrs.get("rhs_contracting_dims") or ())
    lm = tuple(d for d in range(lhs.rank) if d not in lb and d not in lc)
    rn = tuple(d for d in range(rhs.rank) if d not in rb and d not in rc)
    return DotView(
        lb, lm, lc, rb, rn, rc,
        batch_sizes=tuple(lhs.dims[d] for d in lb),
        row_sizes=tuple(lhs.dims[d] for d in lm),
        k_sizes=tuple(lhs.dims[d] for d in lc),
        col_sizes=tuple(rhs.dims[d] for d in rn),
    )


def group_offset(b: ir.IRBuilder, value: ir.Value, sizes: Sequence[int],
                 dims: Sequence[int], strides: Sequence[int]) -> ir.Value:
    """The element offset contributed by `value`, a row-major position in the group of
    operand dimensions `dims` (of `sizes`), in an operand with element `strides`."""
    if not dims:
        return i64(0)
    digits = delinearize(b, value, sizes) if len(dims) > 1 else [value]
    total: ir.Value = i64(0)
    for digit, d in zip(digits, dims, strict=True):
        if strides[d] != 0:
            term = digit if strides[d] == 1 else b.mul(digit, i64(strides[d]), flags=_NOWRAP)
            total = b.add(total, term, flags=_NOWRAP)
    return total


class OperandReader:
    """Loads A[b, m, k] or B[b, k, n] of a dot view from an operand buffer."""

    def __init__(self, array: IrArray, batch_dims: Sequence[int], batch_sizes: Sequence[int],
                 free_dims: Sequence[int], free_sizes: Sequence[int],
                 k_dims: Sequence[int], k_sizes: Sequence[int]) -> None:
        self.array = array
        self.strides = row_major_strides(array.shape.dims)
        self.batch = (tuple(batch_sizes), tuple(batch_dims))
        self.free = (tuple(free_sizes), tuple(free_dims))
        self.k = (tuple(k_sizes), tuple(k_dims))

    def base(self, b: ir.IRBuilder, batch: ir.Value, free: ir.Value) -> ir.Value:
        """The offset of [batch, free, k = 0]."""
        return b.add(group_offset(b, batch, *self.batch, self.strides),
                     group_offset(b, free, *self.free, self.strides), flags=_NOWRAP)

    def load(self, b: ir.IRBuilder, base: ir.Value, k: ir.Value) -> ir.Value:
        at = b.add(base, group_offset(b, k, *self.k, self.strides), flags=_NOWRAP)
        return self.array.load_linear(b, at)


def _readers(view: DotView, lhs: IrArray, rhs: IrArray) -> tuple[OperandReader, OperandReader]:
    a = OperandReader(lhs, view.lhs_batch, view.batch_sizes, view.lhs_rows, view.row_sizes,
                      view.lhs_contract, view.k_sizes)
    b = OperandReader(rhs, view.rhs_batch, view.batch_sizes, view.rhs_cols, view.col_sizes,
                      view.rhs_contract, view.k_sizes)
    return a, b


@emits_gpu(Opcode.DOT)
def emit_dot(ctx: KernelContext, instr: HloInstruction) -> None:
    out = out_slot(ctx)
    if out.shape.num_elements == 0:
        return
    view = dot_view(instr)
    if try_emit_mma(ctx, instr, view):
        return
    t = instr.shape.element_type
    tiled = (not t.is_complex and not t.is_pred and view.rows >= 16 and view.cols >= 16
             and view.depth >= 8)
    large = view.rows >= LARGE_MIN and view.cols >= LARGE_MIN
    shape = LARGE_TILE if large else SMALL_TILE
    role = f"gemm{shape.edge}" if tiled else "dot"
    kernel = ctx.kernel(role, [out], operand_slots(ctx))
    if kernel.is_new:
        if tiled:
            _fill_gemm(kernel, instr, view, shape)
        else:
            _fill_per_output(kernel, instr, view)
    if tiled:
        tiles = view.batch * ceil_div(view.rows, shape.edge) * ceil_div(view.cols, shape.edge)
        ctx.launch(kernel, LaunchDims((tiles, 1, 1), (THREADS, THREADS, 1)))
    else:
        ctx.launch(kernel, for_elements(out.shape.num_elements))


def _types(instr: HloInstruction) -> tuple[PrimitiveType, PrimitiveType, PrimitiveType,
                                             PrimitiveType]:
    lhs_t = instr.operands[0].shape.element_type
    rhs_t = instr.operands[1].shape.element_type
    out_t = instr.shape.element_type
    return lhs_t, rhs_t, out_t, dot_accumulation_type(out_t, [lhs_t, rhs_t])


def _fill_per_output(kernel: KernelFunction, instr: HloInstruction, view: DotView) -> None:
    """One thread per C[b, m, n]: a loop over k."""
    b = kernel.builder
    lhs_t, rhs_t, out_t, acc_t = _types(instr)
    a, bb = _readers(view, *kernel.inputs)
    out = kernel.outputs[0]
    acc_slot = kernel.entry_builder().alloca(llvm_type(acc_t), name="acc")
    n_cols, n_rows = view.cols, view.rows
    with grid_stride_loop(b, out.shape.num_elements) as o:
        col = b.urem(o, i64(n_cols))
        rest = b.udiv(o, i64(n_cols))
        row = b.urem(rest, i64(n_rows))
        batch = b.udiv(rest, i64(n_rows))
        a_base = a.base(b, batch, row)
        b_base = bb.base(b, batch, col)
        b.store(zero(acc_t), acc_slot)
        with for_range(b, 0, view.depth, name="k") as k:
            x = convert_scalar(b, a.load(b, a_base, k), lhs_t, acc_t)
            y = convert_scalar(b, bb.load(b, b_base, k), rhs_t, acc_t)
            b.store(multiply_add(b, acc_t, b.load(acc_slot), x, y), acc_slot)
        out.store_linear(b, o, convert_scalar(b, b.load(acc_slot), acc_t, out_t))
    kernel.finish()


def _fill_gemm(kernel: KernelFunction, instr: HloInstruction, view: DotView,
               shape: GemmTile) -> None:
    b = kernel.builder
    lhs_t, rhs_t, out_t, acc_t = _types(instr)
    acc_ty = llvm_type(acc_t)
    a, bb = _readers(view, *kernel.inputs)
    out = kernel.outputs[0]
    rows, cols, depth = view.rows, view.cols, view.depth
    edge, step, per = shape.edge, shape.depth, shape.per_thread
    m_tiles, n_tiles = ceil_div(rows, edge), ceil_div(cols, edge)
    a_tile = shared_array(kernel.module, f"{kernel.name}_a", acc_ty, step * edge)
    b_tile = shared_array(kernel.module, f"{kernel.name}_b", acc_ty, step * edge)
    block = wide(b, block_id(b))
    n0 = b.mul(b.urem(block, i64(n_tiles)), i64(edge), flags=_NOWRAP)
    rest = b.udiv(block, i64(n_tiles))
    m0 = b.mul(b.urem(rest, i64(m_tiles)), i64(edge), flags=_NOWRAP)
    batch = b.udiv(rest, i64(m_tiles))
    tx = wide(b, thread_id(b, "x"))
    ty = wide(b, thread_id(b, "y"))
    tid = b.add(b.mul(ty, i64(THREADS), flags=_NOWRAP), tx, flags=_NOWRAP)
    entry = kernel.entry_builder()
    accs = [[entry.alloca(acc_ty, name=f"c{i}{j}") for j in range(per)]
            for i in range(per)]
    for row in accs:
        for slot in row:
            entry.store(zero(acc_t), slot)
    # Each thread stages (edge * step) / 256 elements of each operand tile per step.
    loads = (edge * step) // (THREADS * THREADS)
    a_plan = []
    b_plan = []
    for r in range(loads):
        e = b.add(tid, i64(r * THREADS * THREADS), flags=_NOWRAP)
        a_m = b.add(m0, b.udiv(e, i64(step)), flags=_NOWRAP)
        a_k = b.urem(e, i64(step))
        a_ok = b.icmp_unsigned("<", a_m, i64(rows))
        a_base = a.base(b, batch, b.select(a_ok, a_m, i64(0)))
        a_slot = b.add(b.mul(a_k, i64(edge), flags=_NOWRAP), b.udiv(e, i64(step)),
                       flags=_NOWRAP)
        a_plan.append((a_ok, a_base, a_k, a_slot))
        b_n = b.add(n0, b.urem(e, i64(edge)), flags=_NOWRAP)
        b_k = b.udiv(e, i64(edge))
        b_ok = b.icmp_unsigned("<", b_n, i64(cols))
        b_base = bb.base(b, batch, b.select(b_ok, b_n, i64(0)))
        b_plan.append((b_ok, b_base, b_k, e))
    with for_range(b, 0, depth, step=step, name="kt") as k0:
        for ok, base, k_local, slot in a_plan:
            _stage(b, a, ok, base, b.add(k0, k_local, flags=_NOWRAP), depth, lhs_t, acc_t,
                   shared_element(b, a_tile, slot))
        for ok, base, k_local, slot in b_plan:
            _stage(b, bb, ok, base, b.add(k0, k_local, flags=_NOWRAP), depth, rhs_t, acc_t,
                   shared_element(b, b_tile, slot))
        barrier(b)
        values = [[b.load(slot) for slot in row] for row in accs]
        for kk in range(step):
            xs = [b.load(shared_element(b, a_tile, b.add(ty, i64(kk * edge + i * THREADS))))
                  for i in range(per)]
            ys = [b.load(shared_element(b, b_tile, b.add(tx, i64(kk * edge + j * THREADS))))
                  for j in range(per)]
            values = [[multiply_add(b, acc_t, values[i][j], xs[i], ys[j])
                       for j in range(per)] for i in range(per)]
        for row, vals in zip(accs, values, strict=True):
            for slot, v in zip(row, vals, strict=True):
                b.store(v, slot)
        barrier(b)
    out_base = b.mul(batch, i64(rows * cols), flags=_NOWRAP)
    for i in range(per):
        m = b.add(m0, b.add(ty, i64(i * THREADS)), flags=_NOWRAP)
        for j in range(per):
            n = b.add(n0, b.add(tx, i64(j * THREADS)), flags=_NOWRAP)
            inside = b.and_(b.icmp_unsigned("<", m, i64(rows)), b.icmp_unsigned("<", n, i64(cols)))
            with b.if_then(inside):
                at = b.add(out_base, b.add(b.mul(m, i64(cols), flags=_NOWRAP), n), flags=_NOWRAP)
                value = convert_scalar(b, b.load(accs[i][j]), acc_t, out_t)
                out.store_linear(b, at, value)
    kernel.finish()


def _stage(b: ir.IRBuilder, reader: OperandReader, ok: ir.Value, base: ir.Value, k: ir.Value,
           depth: int, src_t: PrimitiveType, acc_t: PrimitiveType, dst: ir.Value) -> None:
    """dst = operand[base, k] converted to the accumulation type, or 0 outside the operand."""
    inside = b.and_(ok, b.icmp_unsigned("<", k, i64(depth)))
    safe_k = b.select(inside, k, i64(0))
    value = convert_scalar(b, reader.load(b, base, safe_k), src_t, acc_t)
    b.store(b.select(inside, value, zero(acc_t)), dst)


__all__ = ["DotView", "OperandReader", "dot_view", "emit_dot", "group_offset"]
