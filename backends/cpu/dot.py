"""CPU kernel for `dot` with general dimension numbers.

Every dot is viewed as a batch of matrix products `C[b] = A[b] @ B[b]` with A: [M, K],
B: [K, N] and C: [M, N], where b runs over the batch dimensions, M over the lhs free
dimensions, N over the rhs free dimensions and K over the contracting dimensions. Since the
result is laid out as (batch, lhs free, rhs free), the output buffer already is C. Each
operand whose batch, free and contracting dimensions each merge into one stride (row-major
and transposed matrices, batched or not) is read in place by the packed GEMM of
`backends/cpu/gemm.py`, whose packing also converts to the accumulation type; any other
operand is first copied row-major. f16/bf16 accumulate in f32, integers wrap in the result
type, and a result narrower than float operands is computed in the operands' type and
rounded once. Small products and thin ones (a few rows, B's columns contiguous) take the
in-place kernel of `backends/cpu/gemm_direct.py` instead: no packing and no scratch.
Matrix-vector products (N == 1) take a loop over K; PRED and complex dots take a plain
scalar loop nest.

The scalar arithmetic (`dot_accumulation_type`, `convert_scalar`, `multiply_add`, ...)
lives in `backends/llvm/arith.py`, shared with the GPU kernels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llvmlite import ir

from backends.cpu.gemm import GemmPlan, MatrixOperand, kernel_target
from backends.cpu.gemm_direct import DirectPlan
from backends.cpu.gemm_epilogue import GemmEpilogue
from backends.cpu.kernels import BufferValue, KernelContext, emits
from backends.llvm.arith import (
    add_scalar,
    convert_scalar,
    dot_accumulation_type,
    multiply_add,
)
from backends.llvm.index import row_major_strides
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import (
    I32,
    alloca_at_entry,
    const,
    element_pointer,
    for_range,
    i64,
    llvm_type,
    loop_nest,
    nowrap_add,
    nowrap_mul,
)
from hlo.dtypes import PrimitiveType
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

# --- the dot view ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DotView:
    """A dot as a batch of matrix products: which operand dimensions form B, M, K and N."""

    lhs_batch: tuple[int, ...]
    lhs_free: tuple[int, ...]
    lhs_contract: tuple[int, ...]
    rhs_batch: tuple[int, ...]
    rhs_free: tuple[int, ...]
    rhs_contract: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    m_sizes: tuple[int, ...]
    k_sizes: tuple[int, ...]
    n_sizes: tuple[int, ...]

    @property
    def B(self) -> int:  # noqa: N802  (matrix-product names)
        return math.prod(self.batch_sizes)

    @property
    def M(self) -> int:  # noqa: N802
        return math.prod(self.m_sizes)

    @property
    def K(self) -> int:  # noqa: N802
        return math.prod(self.k_sizes)

    @property
    def N(self) -> int:  # noqa: N802
        return math.prod(self.n_sizes)


def dot_view(instr: HloInstruction) -> DotView:
    """The batch-of-matrix-products view of a dot instruction."""
    lhs, rhs = (o.shape for o in instr.operands)
    lb = tuple(instr.attr("lhs_batch_dims", ()))
    lc = tuple(instr.attr("lhs_contracting_dims", ()))
    rb = tuple(instr.attr("rhs_batch_dims", ()))
    rc = tuple(instr.attr("rhs_contracting_dims", ()))
    lf = tuple(d for d in range(lhs.rank) if d not in lb and d not in lc)
    rf = tuple(d for d in range(rhs.rank) if d not in rb and d not in rc)
    return DotView(
        lb, lf, lc, rb, rf, rc,
        batch_sizes=tuple(lhs.dims[d] for d in lb),
        m_sizes=tuple(lhs.dims[d] for d in lf),
        k_sizes=tuple(lhs.dims[d] for d in lc),
        n_sizes=tuple(rhs.dims[d] for d in rf),
    )


def _operand_index(order: Sequence[int], loop_values: Sequence[ir.Value]) -> list[ir.Value]:
    """Place loop indices (given in `order` of operand dimensions) at their dimensions."""
    index: list[ir.Value] = [i64(0)] * len(order)
    for dim, v in zip(order, loop_values, strict=True):
        index[dim] = v
    return index


def _is_direct(arr: IrArray, order: tuple[int, ...], acc_t: PrimitiveType) -> bool:
    """True when `arr` read in `order` already is the packed operand: row-major, acc_t."""
    return order == tuple(range(arr.shape.rank)) and arr.element_type is acc_t


# --- helpers ----------------------------------------------------------------------------------


def _vector_width(t: PrimitiveType) -> int:
    """Lanes per vector of the matrix-vector loops: 256-bit vectors, 8 lanes for narrow types."""
    return 4 if t.bits == 64 else 8


# --- packing ----------------------------------------------------------------------------------


def _pack_lhs(
    ctx: KernelContext, view: DotView, lhs: IrArray, acc_t: PrimitiveType
) -> IrArray:
    """A = lhs as acc_t[B, M, K] row-major; lhs itself when it already has that form."""
    order = view.lhs_batch + view.lhs_free + view.lhs_contract
    if _is_direct(lhs, order, acc_t):
        return lhs
    b = ctx.builder
    dims = view.batch_sizes + view.m_sizes + view.k_sizes
    packed: IrArray = ctx.temp_array(Shape.array(acc_t, dims), name="dot.lhs")
    with loop_nest(b, dims, name="pack_a") as idx:
        value = lhs.load(b, _operand_index(order, idx))
        packed.store(b, idx, convert_scalar(b, value, lhs.element_type, acc_t))
    return packed


def _pack_rhs(
    ctx: KernelContext, view: DotView, rhs: IrArray, acc_t: PrimitiveType
) -> IrArray:
    """B = rhs as acc_t[B, K, N] row-major (for operands whose dimensions do not merge)."""
    b = ctx.builder
    dims = view.batch_sizes + view.k_sizes + view.n_sizes
    packed: IrArray = ctx.temp_array(Shape.array(acc_t, dims), name="dot.rhs")
    order = view.rhs_batch + view.rhs_contract + view.rhs_free
    with loop_nest(b, dims, name="pack_b") as idx:
        value = rhs.load(b, _operand_index(order, idx))
        packed.store(b, idx, convert_scalar(b, value, rhs.element_type, acc_t))
    return packed


def group_strides(shape: Shape, groups: Sequence[Sequence[int]]) -> list[int] | None:
    """One element stride per group of dimensions of a row-major array, if each group
    (its dimensions in the given order, flattened row-major) is one strided dimension.

    Dimensions of size 1 never matter; None when some group does not merge.
    """
    strides = row_major_strides(shape.dims)
    merged = []
    for group in groups:
        dims = [d for d in group if shape.dims[d] != 1]
        for outer, inner in zip(dims, dims[1:], strict=False):
            if strides[outer] != strides[inner] * shape.dims[inner]:
                return None
        merged.append(strides[dims[-1]] if dims else 0)
    return merged


def _matrix_operand(
    arr: IrArray, groups: tuple[tuple[int, ...], ...], rows: int, cols: int,
    pack: Callable[[], IrArray],
) -> tuple[IrArray, MatrixOperand]:
    """The operand as a strided (batch, row, column) matrix of `rows` x `cols`: in place
    when its dimension groups merge into single strides, else a row-major copy by `pack`."""
    strides = group_strides(arr.shape, groups)
    if strides is None:
        arr = pack()
        strides = [rows * cols, cols, 1]
    return arr, MatrixOperand(arr.element_type, *strides)


def _emit_gemm(
    ctx: KernelContext, view: DotView, lhs: IrArray, rhs: IrArray, out: IrArray,
    acc_t: PrimitiveType,
) -> None:
    """C = A @ B by the packed GEMM of backends/cpu/gemm.py; C is rounded into `out` when
    the types differ."""
    b = ctx.builder
    a_arr, a = _matrix_operand(lhs, (view.lhs_batch, view.lhs_free, view.lhs_contract),
                               view.M, view.K, lambda: _pack_lhs(ctx, view, lhs, acc_t))
    b_arr, bm = _matrix_operand(rhs, (view.rhs_batch, view.rhs_contract, view.rhs_free),
                                view.K, view.N, lambda: _pack_rhs(ctx, view, rhs, acc_t))
    direct = out.element_type is acc_t
    c = out if direct else ctx.temp_array(
        Shape.array(acc_t, (view.B, view.M, view.N)), name="dot.c")
    # An output fusion's epilogue (f32, one matrix) goes into the tiles' last stores.
    fused = getattr(ctx, "epilogue", None)
    epilogue = None
    if fused is not None and direct and acc_t is PrimitiveType.F32 and view.B == 1:
        epilogue = GemmEpilogue(fused, view.batch_sizes, view.m_sizes, view.n_sizes)
    plan = GemmPlan.create(kernel_target(ctx), acc_t, view.B, view.M, view.N, view.K, a, bm,
                           epilogue=epilogue)
    # One scratch slice per chunk the product may be split into (threads, when given).
    threads = getattr(ctx, "threads", None)
    chunks = plan.parallel_chunks if threads is not None else 1
    scratch = ctx.temp_array(Shape.array(acc_t, (chunks * plan.scratch_elements,)),
                             name="dot.scratch")
    fn = plan.emit_range_function(ctx.module, f"{b.function.name}.gemm")
    if chunks > 1:
        plan.emit_parallel_call(b, fn, a_arr.ptr, b_arr.ptr, c.ptr, scratch.ptr, threads)
    else:
        plan.emit_call(b, fn, a_arr.ptr, b_arr.ptr, c.ptr, scratch.ptr)
    if plan.epilogue is not None:
        fused.applied = True
    if not direct:
        with for_range(b, 0, view.B * view.M * view.N, name="dot.round") as e:
            value = c.load_linear(b, e)
            out.store_linear(b, e, convert_scalar(b, value, acc_t, out.element_type))


# --- products read in place -------------------------------------------------------------------

# Products of at most this many multiply-adds are too small for packing to pay: they take the
# in-place kernel whatever their operands' layouts (a 64 x 64 x 64 product).
SMALL_WORK = 1 << 18


def _is_small(view: DotView) -> bool:
    return view.B * view.M * view.N * view.K <= SMALL_WORK


def _lhs_rows_contiguous(view: DotView, lhs: IrArray, acc_t: PrimitiveType) -> bool:
    """True when A's rows are acc_t and contiguous over K (the GEMV reads A in place)."""
    strides = group_strides(lhs.shape, (view.lhs_batch, view.lhs_free, view.lhs_contract))
    return strides is not None and strides[2] in (0, 1) and lhs.element_type is acc_t


def _direct_operands(view: DotView, lhs: IrArray, rhs: IrArray,
                     acc_t: PrimitiveType) -> tuple[MatrixOperand, MatrixOperand] | None:
    """A and B as strided matrices read in place, when the in-place kernel suits the dot.

    It does when the product is small, or thin (few enough rows for one or two register
    tiles: B is then streamed about once, so packing it would only add a copy) with B's
    columns contiguous in the accumulation type, as vector loads need. None otherwise, and
    when an operand's dimension groups do not merge into single strides.
    """
    a_strides = group_strides(lhs.shape, (view.lhs_batch, view.lhs_free, view.lhs_contract))
    b_strides = group_strides(rhs.shape, (view.rhs_batch, view.rhs_contract, view.rhs_free))
    if a_strides is None or b_strides is None:
        return None
    a = MatrixOperand(lhs.element_type, *a_strides)
    bm = MatrixOperand(rhs.element_type, *b_strides)
    small = _is_small(view)
    b_vectors = bm.column_stride == 1 and bm.element_type is acc_t
    thin = view.M <= THIN_ROWS and b_vectors
    return (a, bm) if small or thin else None


# Products of at most this many rows (per batch element) read B in place when it is
# contiguous: two row blocks of the in-place kernel's tile on AVX2.
THIN_ROWS = 12


def _emit_direct(
    ctx: KernelContext, view: DotView, lhs: IrArray, rhs: IrArray, out: IrArray,
    acc_t: PrimitiveType,
) -> bool:
    """C = A @ B by the in-place kernel of backends/cpu/gemm_direct.py, converted to out's
    type as it is stored; False (and nothing emitted) when the dot does not suit it."""
    operands = _direct_operands(view, lhs, rhs, acc_t)
    if operands is None:
        return False
    a, bm = operands
    c = MatrixOperand(out.element_type, view.M * view.N, view.N, 1)
    plan = DirectPlan.create(kernel_target(ctx), acc_t, view.B, view.M, view.N, view.K, a,
                             bm, c)
    b = ctx.builder
    fn = plan.emit_range_function(ctx.module, f"{b.function.name}.dot")
    plan.emit_call(b, fn, lhs.ptr, rhs.ptr, out.ptr, getattr(ctx, "threads", None))
    return True


# --- matrix-vector products -------------------------------------------------------------------


# Rows of a matrix-vector product computed together: their independent FMA chains hide the
# FMA latency, and the vector's loads are shared.
GEMV_ROWS = 4


@dataclass(frozen=True, slots=True)
class _RowDots:
    """out[b * rows + r] = sum_k P[b, r, k] * q[b, k], P's rows and q contiguous over k.

    Strides are in elements of `p` and `q`, both of the accumulation type.
    """

    p: IrArray
    p_batch: int
    p_row: int
    q: IrArray
    q_batch: int
    batch: int
    rows: int
    k: int


def _emit_gemv(
    ctx: KernelContext, view: DotView, lhs: IrArray, rhs: IrArray, out: IrArray,
    acc_t: PrimitiveType,
) -> None:
    """C[b, m] = sum_k A[b, m, k] * B[b, k] (N == 1): A's rows dotted with B's column."""
    a_strides = group_strides(lhs.shape, (view.lhs_batch, view.lhs_free, view.lhs_contract))
    if a_strides is None or not _lhs_rows_contiguous(view, lhs, acc_t):
        lhs = _pack_lhs(ctx, view, lhs, acc_t)
        a_strides = [view.M * view.K, view.K, 1]
    q, q_batch = _contiguous_vector(ctx, rhs, view.batch_sizes, view.k_sizes,
                                    view.rhs_batch + view.rhs_contract + view.rhs_free, acc_t)
    dots = _RowDots(lhs, a_strides[0], a_strides[1], q, q_batch, view.B, view.M, view.K)
    _emit_row_dots(ctx.builder, dots, out, acc_t)


def _emit_vector_times_rows(
    ctx: KernelContext, view: DotView, lhs: IrArray, rhs: IrArray, out: IrArray,
    acc_t: PrimitiveType,
) -> bool:
    """C[b, 0, n] = sum_k A[b, 0, k] * B[b, k, n] (M == 1) as B's columns dotted with A's
    row, when B's columns are contiguous over K (B given transposed, as [N, K] weights
    are): False (nothing emitted) otherwise."""
    b_strides = group_strides(rhs.shape, (view.rhs_batch, view.rhs_free, view.rhs_contract))
    if b_strides is None or b_strides[2] != 1 or rhs.element_type is not acc_t:
        return False
    q, q_batch = _contiguous_vector(ctx, lhs, view.batch_sizes, view.k_sizes,
                                    view.lhs_batch + view.lhs_contract + view.lhs_free, acc_t)
    dots = _RowDots(rhs, b_strides[0], b_strides[1], q, q_batch, view.B, view.N, view.K)
    _emit_row_dots(ctx.builder, dots, out, acc_t)
    return True


def _contiguous_vector(
    ctx: KernelContext, arr: IrArray, batch_sizes: tuple[int, ...], k_sizes: tuple[int, ...],
    order: tuple[int, ...], acc_t: PrimitiveType,
) -> tuple[IrArray, int]:
    """The operand of one free element (dimensions in `order`: batch, contracting, free) as
    acc_t vectors contiguous over K, and their batch stride: in place when it already is,
    else copied into scratch."""
    strides = group_strides(arr.shape, (order[:len(batch_sizes)],
                                        order[len(batch_sizes):len(batch_sizes) + len(k_sizes)]))
    if strides is not None and strides[1] in (0, 1) and arr.element_type is acc_t:
        return arr, strides[0]
    b = ctx.builder
    vec = ctx.temp_array(Shape.array(acc_t, batch_sizes + k_sizes), name="dot.x")
    dims = batch_sizes + k_sizes + tuple(arr.shape.dims[d]
                                         for d in order[len(batch_sizes) + len(k_sizes):])
    nbk = len(batch_sizes) + len(k_sizes)
    with loop_nest(b, dims, name="pack_x") as idx:
        value = arr.load(b, _operand_index(order, idx))
        vec.store(b, idx[:nbk], convert_scalar(b, value, arr.element_type, acc_t))
    return vec, math.prod(k_sizes)


def _emit_row_dots(b: ir.IRBuilder, dots: _RowDots, out: IrArray, acc_t: PrimitiveType) -> None:
    """The row dots, GEMV_ROWS rows at a time (then the remaining rows together)."""
    groups, rest = divmod(dots.rows, GEMV_ROWS)
    with for_range(b, 0, dots.batch, name="gemv.batch") as bi:
        if groups:
            with for_range(b, 0, groups, name="gemv.rows") as g:
                _emit_row_group(b, dots, out, acc_t, bi, nowrap_mul(b, g, i64(GEMV_ROWS)),
                                GEMV_ROWS)
        if rest:
            _emit_row_group(b, dots, out, acc_t, bi, i64(groups * GEMV_ROWS), rest)


def _emit_row_group(b: ir.IRBuilder, dots: _RowDots, out: IrArray, acc_t: PrimitiveType,
                    bi: ir.Value, r0: ir.Value, count: int) -> None:
    """Rows r0 .. r0 + count: one vector of partial sums over k per row, summed across its
    lanes, then the last K % width products (the same operations for a row in any group)."""
    width = _vector_width(acc_t)
    vec_ty = ir.VectorType(llvm_type(acc_t), width)
    body_k = dots.k - dots.k % width
    p, q = dots.p, dots.q
    rows = [nowrap_add(b, nowrap_mul(b, bi, i64(dots.p_batch)),
                       nowrap_mul(b, nowrap_add(b, r0, i64(i)), i64(dots.p_row)))
            for i in range(count)]
    q_base = nowrap_mul(b, bi, i64(dots.q_batch))
    acc_v = [alloca_at_entry(b, vec_ty, name=f"gemv.accv{i}") for i in range(count)]
    acc_s = [alloca_at_entry(b, llvm_type(acc_t), name=f"gemv.acc{i}") for i in range(count)]
    for slot in acc_v:
        b.store(ir.Constant(vec_ty, [const(acc_t, 0)] * width), slot)
    with for_range(b, 0, body_k, step=width, name="kv") as k:
        xv = b.load(element_pointer(b, q.ptr, q.storage, nowrap_add(b, q_base, k)), typ=vec_ty,
                    align=q.alignment)
        for row, slot in zip(rows, acc_v, strict=True):
            av = b.load(element_pointer(b, p.ptr, p.storage, nowrap_add(b, row, k)), typ=vec_ty,
                        align=p.alignment)
            b.store(multiply_add(b, acc_t, b.load(slot), av, xv), slot)
    for slot, total_slot in zip(acc_v, acc_s, strict=True):
        lanes = b.load(slot)
        total = b.extract_element(lanes, ir.Constant(I32, 0))
        for lane in range(1, width):
            total = add_scalar(b, acc_t, total, b.extract_element(lanes, ir.Constant(I32, lane)))
        b.store(total, total_slot)
    with for_range(b, body_k, dots.k, name="kr") as k:
        xv = q.load_linear(b, nowrap_add(b, q_base, k))
        for row, slot in zip(rows, acc_s, strict=True):
            av = p.load_linear(b, nowrap_add(b, row, k))
            b.store(multiply_add(b, acc_t, b.load(slot), av, xv), slot)
    out_base = nowrap_add(b, nowrap_mul(b, bi, i64(dots.rows)), r0)
    for i, slot in enumerate(acc_s):
        value = convert_scalar(b, b.load(slot), acc_t, out.element_type)
        out.store_linear(b, nowrap_add(b, out_base, i64(i)), value)


# --- scalar fallback --------------------------------------------------------------------------


def _emit_scalar_dot(
    ctx: KernelContext, view: DotView, lhs: IrArray, rhs: IrArray, out: IrArray,
    acc_t: PrimitiveType,
) -> None:
    """The plain loop nest, for PRED and complex dots (no vector arithmetic for them)."""
    b = ctx.builder
    acc = alloca_at_entry(b, llvm_type(acc_t), name="dot.acc")
    nb, nm = len(view.batch_sizes), len(view.m_sizes)
    out_dims = view.batch_sizes + view.m_sizes + view.n_sizes
    with loop_nest(b, out_dims, name="out") as oi:
        bidx, midx, nidx = oi[:nb], oi[nb:nb + nm], oi[nb + nm:]
        b.store(const(acc_t, 0), acc)
        with loop_nest(b, view.k_sizes, name="k") as kidx:
            lv = lhs.load(b, _operand_index(
                view.lhs_batch + view.lhs_free + view.lhs_contract, [*bidx, *midx, *kidx]))
            rv = rhs.load(b, _operand_index(
                view.rhs_batch + view.rhs_free + view.rhs_contract, [*bidx, *nidx, *kidx]))
            lv = convert_scalar(b, lv, lhs.element_type, acc_t)
            rv = convert_scalar(b, rv, rhs.element_type, acc_t)
            b.store(multiply_add(b, acc_t, b.load(acc), lv, rv), acc)
        out.store(b, oi, convert_scalar(b, b.load(acc), acc_t, out.element_type))


@emits(Opcode.DOT)
def emit_dot(
    ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue], out: BufferValue
) -> None:
    """out[batch, lhs free, rhs free] = sum over contracting dims of lhs * rhs."""
    lhs, rhs = operands
    view = dot_view(instr)
    acc_t = dot_accumulation_type(out.element_type, [lhs.element_type, rhs.element_type])
    if view.B * view.M * view.N == 0:
        return
    if acc_t.is_pred or acc_t.is_complex:
        _emit_scalar_dot(ctx, view, lhs, rhs, out, acc_t)
    elif view.N == 1 and (_lhs_rows_contiguous(view, lhs, acc_t) or not _is_small(view)):
        _emit_gemv(ctx, view, lhs, rhs, out, acc_t)
    elif view.M == 1 and _emit_vector_times_rows(ctx, view, lhs, rhs, out, acc_t):
        pass
    elif not _emit_direct(ctx, view, lhs, rhs, out, acc_t):
        _emit_gemm(ctx, view, lhs, rhs, out, acc_t)


__all__ = [
    "DotView",
    "dot_view",
    "emit_dot",
    "group_strides",
]
