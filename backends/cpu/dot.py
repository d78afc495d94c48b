"""CPU kernel for `dot` with general dimension numbers, and the scalar arithmetic it shares.

Every dot is viewed as a batch of matrix products `C[b] = A[b] @ B[b]` with A: [M, K],
B: [K, N] and C: [M, N], where b runs over the batch dimensions, M over the lhs free
dimensions, N over the rhs free dimensions and K over the contracting dimensions. Since the
result is laid out as (batch, lhs free, rhs free), the output buffer already is C. The
operands are packed into that form first (A row-major, B into column panels) in the
accumulation type, so that one register-tiled loop nest serves every dimension numbering and
element type: f16/bf16 accumulate in f32, integers wrap in the result type. PRED and complex
dots take a plain scalar loop nest. A packed GEMM tuned to peak FLOP/s is a later issue.

The small scalar helpers here (`accumulation_type`, `convert_scalar`, `add_scalar`,
`mul_scalar`) are also used by the convolution and linear-algebra kernels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from llvmlite import ir

from backends.cpu.kernels import BufferValue, KernelContext, emits
from backends.elemental_convert import convert
from backends.llvm.index import linearize
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import (
    I32,
    alloca_at_entry,
    const,
    for_range,
    i64,
    if_else,
    intrinsic,
    llvm_type,
    loop_nest,
)
from hlo.dtypes import PrimitiveType
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

_T = PrimitiveType
_NOWRAP = ("nuw", "nsw")

# Register tile of the matrix kernel: MR rows of C by NR_VECTORS vectors of W lanes.
MR = 4
NR_VECTORS = 2


# --- scalar arithmetic shared by the contraction kernels --------------------------------------


def accumulation_type(t: PrimitiveType) -> PrimitiveType:
    """The type a sum of products of `t` accumulates in: f32 for f16/bf16, else `t` itself."""
    if t in (_T.F16, _T.BF16):
        return _T.F32
    return t


def convert_scalar(
    b: ir.IRBuilder, value: ir.Value, src: PrimitiveType, dst: PrimitiveType
) -> ir.Value:
    """`value` of element type `src` converted to `dst` with XLA's convert semantics."""
    return convert(b, src, dst, value)


def add_scalar(b: ir.IRBuilder, t: PrimitiveType, x: ir.Value, y: ir.Value) -> ir.Value:
    """x + y in type `t` (integers wrap, PRED is OR, complex adds componentwise)."""
    if t.is_float:
        return b.fadd(x, y)
    if t.is_pred:
        return b.or_(x, y)
    if t.is_complex:
        re = b.fadd(b.extract_value(x, 0), b.extract_value(y, 0))
        im = b.fadd(b.extract_value(x, 1), b.extract_value(y, 1))
        return b.insert_value(b.insert_value(ir.Constant(x.type, ir.Undefined), re, 0), im, 1)
    return b.add(x, y)


def mul_scalar(b: ir.IRBuilder, t: PrimitiveType, x: ir.Value, y: ir.Value) -> ir.Value:
    """x * y in type `t` (integers wrap, PRED is AND, complex multiplies as complex)."""
    if t.is_float:
        return b.fmul(x, y)
    if t.is_pred:
        return b.and_(x, y)
    if t.is_complex:
        xr, xi = b.extract_value(x, 0), b.extract_value(x, 1)
        yr, yi = b.extract_value(y, 0), b.extract_value(y, 1)
        re = b.fsub(b.fmul(xr, yr), b.fmul(xi, yi))
        im = b.fadd(b.fmul(xr, yi), b.fmul(xi, yr))
        return b.insert_value(b.insert_value(ir.Constant(x.type, ir.Undefined), re, 0), im, 1)
    return b.mul(x, y)


def multiply_add(
    b: ir.IRBuilder, t: PrimitiveType, acc: ir.Value, x: ir.Value, y: ir.Value
) -> ir.Value:
    """acc + x * y; floats use llvm.fmuladd so the target may fuse it into one FMA."""
    if t.is_float:
        return intrinsic(b, f"llvm.fmuladd.{_suffix(x.type)}", x.type, [x, y, acc])
    return add_scalar(b, t, acc, mul_scalar(b, t, x, y))


def _suffix(ty: ir.Type) -> str:
    """The intrinsic name suffix of a scalar or vector float type (f32, v8f32, ...)."""
    if isinstance(ty, ir.VectorType):
        return f"v{ty.count}{_suffix(ty.element)}"
    return {"half": "f16", "float": "f32", "double": "f64"}[str(ty)]


def strided_offset(
    b: ir.IRBuilder, values: Sequence[ir.Value], strides: Sequence[int]
) -> ir.Value:
    """Sum of values[i] * strides[i] as an i64 (0 for no values)."""
    acc: ir.Value | None = None
    for v, s in zip(values, strides, strict=True):
        term = v if s == 1 else b.mul(v, i64(s), flags=_NOWRAP)
        acc = term if acc is None else b.add(acc, term, flags=_NOWRAP)
    return i64(0) if acc is None else acc


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


# --- packing ----------------------------------------------------------------------------------


def _pack_lhs(
    ctx: KernelContext, view: DotView, lhs: IrArray, acc_t: PrimitiveType
) -> IrArray:
    """A = lhs as acc_t[B, M, K] row-major; lhs itself when it already has that form."""
    order = view.lhs_batch + view.lhs_free + view.lhs_contract
    if order == tuple(range(lhs.shape.rank)) and lhs.element_type is acc_t:
        return lhs
    b = ctx.builder
    dims = view.batch_sizes + view.m_sizes + view.k_sizes
    packed = ctx.temp_array(Shape.array(acc_t, dims), name="dot.lhs")
    with loop_nest(b, dims, name="pack_a") as idx:
        value = lhs.load(b, _operand_index(order, idx))
        packed.store(b, idx, convert_scalar(b, value, lhs.element_type, acc_t))
    return packed


def _pack_rhs_panels(
    ctx: KernelContext, view: DotView, rhs: IrArray, acc_t: PrimitiveType, nr: int
) -> IrArray:
    """B = rhs as acc_t[B, P, K, nr]: column panels of width nr, zero-padded on the right."""
    b = ctx.builder
    panels = -(-view.N // nr)
    packed = ctx.temp_array(
        Shape.array(acc_t, (view.B, panels, view.K, nr)), name="dot.rhs"
    )
    order = view.rhs_batch + view.rhs_contract + view.rhs_free
    nb, nk = len(view.batch_sizes), len(view.k_sizes)
    dims = view.batch_sizes + view.k_sizes + view.n_sizes
    with loop_nest(b, dims, name="pack_b") as idx:
        value = convert_scalar(b, rhs.load(b, _operand_index(order, idx)), rhs.element_type, acc_t)
        bi = linearize(b, idx[:nb], view.batch_sizes)
        ki = linearize(b, idx[nb:nb + nk], view.k_sizes)
        ni = linearize(b, idx[nb + nk:], view.n_sizes)
        panel = b.udiv(ni, i64(nr))
        lane = b.urem(ni, i64(nr))
        packed.store(b, [bi, panel, ki, lane], value)
    tail = view.N % nr
    if tail:
        zero = const(acc_t, 0)
        with loop_nest(b, (view.B, view.K, nr - tail), name="pad_b") as (bi, ki, lane):
            packed.store(b, [bi, i64(panels - 1), ki, b.add(lane, i64(tail))], zero)
    return packed


# --- the register-tiled matrix kernel ---------------------------------------------------------


def _vector_width(t: PrimitiveType) -> int:
    """Lanes per vector: 256-bit vectors for 32/64-bit types, 8 lanes for narrower ones."""
    return 4 if t.bits == 64 else 8


def _splat(b: ir.IRBuilder, value: ir.Value, width: int) -> ir.Value:
    vec_ty = ir.VectorType(value.type, width)
    one = b.insert_element(ir.Constant(vec_ty, ir.Undefined), value, ir.Constant(I32, 0))
    mask = ir.Constant(ir.VectorType(I32, width), [0] * width)
    return b.shuffle_vector(one, ir.Constant(vec_ty, ir.Undefined), mask)


def _vector_ptr(b: ir.IRBuilder, arr: IrArray, linear: ir.Value) -> ir.Value:
    return b.gep(arr.ptr, [linear], inbounds=True, source_etype=arr.storage)


def _matrix_tile(
    ctx: KernelContext,
    view: DotView,
    a: IrArray,
    bp: IrArray,
    out: IrArray,
    acc_t: PrimitiveType,
    tile: IrArray,
    bi: ir.Value,
    panel: ir.Value,
    m0: ir.Value,
    rows: int,
) -> None:
    """C[bi, m0:m0+rows, panel*NR : panel*NR+NR] = A[bi, rows, :] @ Bp[bi, panel] in registers."""
    b = ctx.builder
    width = _vector_width(acc_t)
    nr = width * NR_VECTORS
    elem_ty = llvm_type(acc_t)
    vec_ty = ir.VectorType(elem_ty, width)
    zero_vec = ir.Constant(vec_ty, [const(acc_t, 0)] * width)
    accs = [
        [alloca_at_entry(b, vec_ty, name=f"acc{r}_{v}") for v in range(NR_VECTORS)]
        for r in range(rows)
    ]
    for row in accs:
        for slot in row:
            b.store(zero_vec, slot)
    big_k = view.K
    panel_base = b.mul(b.add(b.mul(bi, i64(bp.shape.dims[1]), flags=_NOWRAP), panel,
                             flags=_NOWRAP), i64(big_k * nr), flags=_NOWRAP)
    row_bases = [
        b.mul(b.add(b.mul(bi, i64(view.M), flags=_NOWRAP), b.add(m0, i64(r), flags=_NOWRAP),
                    flags=_NOWRAP), i64(big_k), flags=_NOWRAP)
        for r in range(rows)
    ]
    with for_range(b, 0, big_k, name="k") as k:
        b_off = b.add(panel_base, b.mul(k, i64(nr), flags=_NOWRAP), flags=_NOWRAP)
        b_vecs = [
            b.load(_vector_ptr(b, bp, b.add(b_off, i64(v * width), flags=_NOWRAP)),
                   typ=vec_ty, align=bp.alignment)
            for v in range(NR_VECTORS)
        ]
        for r in range(rows):
            a_val = a.load_linear(b, b.add(row_bases[r], k, flags=_NOWRAP))
            a_vec = _splat(b, a_val, width)
            for v in range(NR_VECTORS):
                acc = b.load(accs[r][v])
                b.store(multiply_add(b, acc_t, acc, a_vec, b_vecs[v]), accs[r][v])
    _store_tile(ctx, view, out, acc_t, accs, tile, bi, panel, m0, nr, width)


def _store_tile(
    ctx: KernelContext,
    view: DotView,
    out: IrArray,
    acc_t: PrimitiveType,
    accs: list[list[ir.Value]],
    tile: IrArray,
    bi: ir.Value,
    panel: ir.Value,
    m0: ir.Value,
    nr: int,
    width: int,
) -> None:
    """Write a register tile into C: vector stores for full tiles, element stores otherwise.

    The element path goes through `tile`, a scratch buffer of MR * NR accumulator values.
    """
    b = ctx.builder
    n0 = b.mul(panel, i64(nr), flags=_NOWRAP)
    rows = len(accs)

    def row_base(r: int) -> ir.Value:
        m = b.add(m0, i64(r), flags=_NOWRAP)
        row = b.add(b.mul(bi, i64(view.M), flags=_NOWRAP), m, flags=_NOWRAP)
        return b.add(b.mul(row, i64(view.N), flags=_NOWRAP), n0, flags=_NOWRAP)

    def element_path() -> None:
        for r in range(rows):
            for v in range(NR_VECTORS):
                slot = _vector_ptr(b, tile, i64((r * NR_VECTORS + v) * width))
                b.store(b.load(accs[r][v]), slot, align=tile.alignment)
        count = b.sub(i64(view.N), n0)
        count = b.select(b.icmp_signed("<", count, i64(nr)), count, i64(nr))
        for r in range(rows):
            base = row_base(r)
            with for_range(b, 0, count, name="col") as j:
                value = tile.load_linear(b, b.add(i64(r * nr), j))
                out.store_linear(b, b.add(base, j, flags=_NOWRAP),
                                 convert_scalar(b, value, acc_t, out.element_type))

    if out.element_type is not acc_t:
        element_path()
        return
    full = b.icmp_signed("<=", b.add(n0, i64(nr)), i64(view.N))
    with if_else(b, full, likely=True) as (then, otherwise):
        with then:
            for r in range(rows):
                base = row_base(r)
                for v in range(NR_VECTORS):
                    ptr = _vector_ptr(b, out, b.add(base, i64(v * width), flags=_NOWRAP))
                    b.store(b.load(accs[r][v]), ptr, align=out.alignment)
        with otherwise:
            element_path()


def _emit_gemm(
    ctx: KernelContext, view: DotView, lhs: IrArray, rhs: IrArray, out: IrArray,
    acc_t: PrimitiveType,
) -> None:
    """C = A @ B for every batch through MR x NR register tiles."""
    b = ctx.builder
    width = _vector_width(acc_t)
    nr = width * NR_VECTORS
    a = _pack_lhs(ctx, view, lhs, acc_t)
    bp = _pack_rhs_panels(ctx, view, rhs, acc_t, nr)
    panels = -(-view.N // nr)
    full_rows = view.M - view.M % MR
    tile = ctx.temp_array(Shape.array(acc_t, (MR * nr,)), name="dot.tile")
    with for_range(b, 0, view.B, name="batch") as bi:
        with for_range(b, 0, panels, name="panel") as panel:
            if full_rows:
                with for_range(b, 0, full_rows, step=MR, name="mtile") as m0:
                    _matrix_tile(ctx, view, a, bp, out, acc_t, tile, bi, panel, m0, MR)
            for r in range(full_rows, view.M):
                _matrix_tile(ctx, view, a, bp, out, acc_t, tile, bi, panel, i64(r), 1)


# --- matrix-vector products -------------------------------------------------------------------


def _emit_gemv(
    ctx: KernelContext, view: DotView, lhs: IrArray, rhs: IrArray, out: IrArray,
    acc_t: PrimitiveType,
) -> None:
    """C[b, m] = sum_k A[b, m, k] * B[b, k] with a vector of partial sums over k (N == 1)."""
    b = ctx.builder
    a = _pack_lhs(ctx, view, lhs, acc_t)
    order = view.rhs_batch + view.rhs_contract + view.rhs_free
    if order == tuple(range(rhs.shape.rank)) and rhs.element_type is acc_t:
        vec = rhs
    else:
        vec = ctx.temp_array(Shape.array(acc_t, view.batch_sizes + view.k_sizes), name="dot.x")
        dims = view.batch_sizes + view.k_sizes + view.n_sizes
        nbk = len(view.batch_sizes) + len(view.k_sizes)
        with loop_nest(b, dims, name="pack_x") as idx:
            value = rhs.load(b, _operand_index(order, idx))
            vec.store(b, idx[:nbk], convert_scalar(b, value, rhs.element_type, acc_t))
    width = _vector_width(acc_t)
    vec_ty = ir.VectorType(llvm_type(acc_t), width)
    big_k = view.K
    body_k = big_k - big_k % width
    acc_v = alloca_at_entry(b, vec_ty, name="gemv.accv")
    acc_s = alloca_at_entry(b, llvm_type(acc_t), name="gemv.acc")
    with loop_nest(b, (view.B, view.M), name="gemv") as (bi, m):
        row = b.mul(b.add(b.mul(bi, i64(view.M), flags=_NOWRAP), m, flags=_NOWRAP),
                    i64(big_k), flags=_NOWRAP)
        xbase = b.mul(bi, i64(big_k), flags=_NOWRAP)
        b.store(ir.Constant(vec_ty, [const(acc_t, 0)] * width), acc_v)
        with for_range(b, 0, body_k, step=width, name="kv") as k:
            av = b.load(_vector_ptr(b, a, b.add(row, k, flags=_NOWRAP)), typ=vec_ty,
                        align=a.alignment)
            xv = b.load(_vector_ptr(b, vec, b.add(xbase, k, flags=_NOWRAP)), typ=vec_ty,
                        align=vec.alignment)
            b.store(multiply_add(b, acc_t, b.load(acc_v), av, xv), acc_v)
        lanes = b.load(acc_v)
        total = b.extract_element(lanes, ir.Constant(I32, 0))
        for lane in range(1, width):
            total = add_scalar(b, acc_t, total, b.extract_element(lanes, ir.Constant(I32, lane)))
        b.store(total, acc_s)
        with for_range(b, body_k, big_k, name="kr") as k:
            av = a.load_linear(b, b.add(row, k, flags=_NOWRAP))
            xv = vec.load_linear(b, b.add(xbase, k, flags=_NOWRAP))
            b.store(multiply_add(b, acc_t, b.load(acc_s), av, xv), acc_s)
        out_index = b.add(b.mul(bi, i64(view.M), flags=_NOWRAP), m, flags=_NOWRAP)
        out.store_linear(b, out_index, convert_scalar(b, b.load(acc_s), acc_t, out.element_type))


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
    acc_t = accumulation_type(out.element_type)
    if view.B * view.M * view.N == 0:
        return
    if acc_t.is_pred or acc_t.is_complex:
        _emit_scalar_dot(ctx, view, lhs, rhs, out, acc_t)
    elif view.N == 1:
        _emit_gemv(ctx, view, lhs, rhs, out, acc_t)
    else:
        _emit_gemm(ctx, view, lhs, rhs, out, acc_t)
