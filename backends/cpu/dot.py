"""CPU kernel for `dot` with general dimension numbers, and the scalar arithmetic it shares.

Every dot is viewed as a batch of matrix products `C[b] = A[b] @ B[b]` with A: [M, K],
B: [K, N] and C: [M, N], where b runs over the batch dimensions, M over the lhs free
dimensions, N over the rhs free dimensions and K over the contracting dimensions. Since the
result is laid out as (batch, lhs free, rhs free), the output buffer already is C. The
operands are packed into that form first (A row-major, B into column panels) in the
accumulation type, so that one register-tiled loop nest serves every dimension numbering and
element type: f16/bf16 accumulate in f32, integers wrap in the result type, and a result
narrower than float operands is computed in the operands' type and rounded once. That loop
nest is one internal function per accumulation type, shared by every dot of the module.
Matrix-vector (N == 1) and vector-matrix (M == 1) products skip the panel packing; PRED and
complex dots take a plain scalar loop nest. A GEMM tuned to peak FLOP/s is a later issue.

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
from backends.llvm.index import delinearize, linearize
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import (
    I32,
    I64,
    PTR,
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


def dot_accumulation_type(out_t: PrimitiveType, operand_types: Sequence[PrimitiveType]
                          ) -> PrimitiveType:
    """The type a dot accumulates in: that of its result, widened to wider float operands.

    A result narrower than the operands is computed in the operands' type and rounded at
    the end (XLA's ResultCaster); integers may use the result type, as wrapping commutes
    with truncation.
    """
    acc = accumulation_type(out_t)
    for t in operand_types:
        wide = accumulation_type(t)
        if (acc.is_float and wide.is_float) or (acc.is_complex and wide.is_complex):
            if wide.bits > acc.bits:
                acc = wide
    return acc


def _is_direct(arr: IrArray, order: tuple[int, ...], acc_t: PrimitiveType) -> bool:
    """True when `arr` read in `order` already is the packed operand: row-major, acc_t."""
    return order == tuple(range(arr.shape.rank)) and arr.element_type is acc_t


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


def _pack_rhs_panels(
    ctx: KernelContext, view: DotView, rhs: IrArray, acc_t: PrimitiveType, nr: int
) -> IrArray:
    """B = rhs as acc_t[B, P, K, nr]: column panels of width nr, zero-padded on the right."""
    b = ctx.builder
    panels = -(-view.N // nr)
    packed: IrArray = ctx.temp_array(
        Shape.array(acc_t, (view.B, panels, view.K, nr)), name="dot.rhs"
    )
    order = view.rhs_batch + view.rhs_contract + view.rhs_free
    nb = len(view.batch_sizes)
    zero = const(acc_t, 0)
    with loop_nest(b, view.batch_sizes + view.k_sizes, name="pack_b") as idx:
        bi = linearize(b, idx[:nb], view.batch_sizes)
        ki = linearize(b, idx[nb:], view.k_sizes)
        with loop_nest(b, (panels, nr), name="pack_b.n") as (panel, lane):
            n = _nsw_add(b, _nsw_mul(b, panel, i64(nr)), lane)
            inside = b.icmp_signed("<", n, i64(view.N))
            # Columns past N read column N - 1 and store zero: no branch in the copy loop.
            column = b.select(inside, n, i64(view.N - 1)) if view.N % nr else n
            loop_values = [*idx, *delinearize(b, column, view.n_sizes)]
            value = rhs.load(b, _operand_index(order, loop_values))
            value = convert_scalar(b, value, rhs.element_type, acc_t)
            if view.N % nr:
                value = b.select(inside, value, zero)
            packed.store(b, [bi, panel, ki, lane], value)
    return packed


# --- the register-tiled matrix kernel ---------------------------------------------------------
#
# One internal function per accumulation type and LLVM module,
#     void gemm.<t>(ptr a, ptr bp, ptr c, ptr tile, i64 batches, i64 m, i64 n, i64 k)
# computes C[b] = A[b] @ B[b] for packed A [batches, m, k] and panel-packed B
# [batches, ceil(n / NR), k, NR] into C [batches, m, n], all in the accumulation type. Every
# dot of the module calls it, so its loop nest is compiled once rather than once per dot.


def _vector_width(t: PrimitiveType) -> int:
    """Lanes per vector: 256-bit vectors for 32/64-bit types, 8 lanes for narrower ones."""
    return 4 if t.bits == 64 else 8


def _splat(b: ir.IRBuilder, value: ir.Value, width: int) -> ir.Value:
    vec_ty = ir.VectorType(value.type, width)
    one = b.insert_element(ir.Constant(vec_ty, ir.Undefined), value, ir.Constant(I32, 0))
    mask = ir.Constant(ir.VectorType(I32, width), [0] * width)
    return b.shuffle_vector(one, ir.Constant(vec_ty, ir.Undefined), mask)


def _at(b: ir.IRBuilder, ptr: ir.Value, elem_ty: ir.Type, linear: ir.Value) -> ir.Value:
    """Pointer to element `linear` of a buffer of `elem_ty` values."""
    return b.gep(ptr, [linear], inbounds=True, source_etype=elem_ty)


def _nsw_add(b: ir.IRBuilder, *terms: ir.Value) -> ir.Value:
    acc = terms[0]
    for t in terms[1:]:
        acc = b.add(acc, t, flags=_NOWRAP)
    return acc


def _nsw_mul(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.mul(x, y, flags=_NOWRAP)


class _Gemm:
    """Emits the body of the shared matrix-product function for one accumulation type."""

    def __init__(self, fn: ir.Function, acc_t: PrimitiveType) -> None:
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.acc_t = acc_t
        self.elem = llvm_type(acc_t)
        self.align = acc_t.byte_size
        self.width = _vector_width(acc_t)
        self.nr = self.width * NR_VECTORS
        self.vec = ir.VectorType(self.elem, self.width)
        self.a, self.bp, self.c, self.tile, self.batches, self.m, self.n, self.k = fn.args

    def emit(self) -> None:
        b = self.b
        panels = b.udiv(b.add(self.n, i64(self.nr - 1)), i64(self.nr))
        full_rows = b.sub(self.m, b.urem(self.m, i64(MR)))
        with for_range(b, 0, self.batches, name="batch") as bi:
            with for_range(b, 0, panels, name="panel") as panel:
                with for_range(b, 0, full_rows, step=MR, name="mtile") as m0:
                    self.tile_product(bi, panels, panel, m0, MR)
                with for_range(b, full_rows, self.m, name="mrest") as m0:
                    self.tile_product(bi, panels, panel, m0, 1)
        b.ret_void()

    def tile_product(
        self, bi: ir.Value, panels: ir.Value, panel: ir.Value, m0: ir.Value, rows: int
    ) -> None:
        """C[bi, m0 : m0 + rows, panel's columns] = A rows @ B panel, in vector registers."""
        b = self.b
        zero = ir.Constant(self.vec, [const(self.acc_t, 0)] * self.width)
        accs = [
            [alloca_at_entry(b, self.vec, name=f"acc{r}.{v}") for v in range(NR_VECTORS)]
            for r in range(rows)
        ]
        for row in accs:
            for slot in row:
                b.store(zero, slot)
        panel_base = _nsw_mul(b, _nsw_add(b, _nsw_mul(b, bi, panels), panel),
                              _nsw_mul(b, self.k, i64(self.nr)))
        first_row = _nsw_add(b, _nsw_mul(b, bi, self.m), m0)
        a_rows = [_nsw_mul(b, _nsw_add(b, first_row, i64(r)), self.k) for r in range(rows)]
        with for_range(b, 0, self.k, name="k") as k:
            b_at = _nsw_add(b, panel_base, _nsw_mul(b, k, i64(self.nr)))
            b_vecs = [
                b.load(_at(b, self.bp, self.elem, _nsw_add(b, b_at, i64(v * self.width))),
                       typ=self.vec, align=self.align)
                for v in range(NR_VECTORS)
            ]
            for r in range(rows):
                a_val = b.load(_at(b, self.a, self.elem, _nsw_add(b, a_rows[r], k)),
                               typ=self.elem, align=self.align)
                a_vec = _splat(b, a_val, self.width)
                for v in range(NR_VECTORS):
                    total = multiply_add(b, self.acc_t, b.load(accs[r][v]), a_vec, b_vecs[v])
                    b.store(total, accs[r][v])
        self.store_tile(accs, first_row, _nsw_mul(b, panel, i64(self.nr)))

    def store_tile(self, accs: list[list[ir.Value]], first_row: ir.Value, n0: ir.Value) -> None:
        """Vector stores for a full tile; through the tile scratch for the right edge."""
        b = self.b
        c_rows = [
            _nsw_add(b, _nsw_mul(b, _nsw_add(b, first_row, i64(r)), self.n), n0)
            for r in range(len(accs))
        ]
        full = b.icmp_signed("<=", b.add(n0, i64(self.nr)), self.n)
        with if_else(b, full, likely=True) as (then, otherwise):
            with then:
                for r, row in enumerate(accs):
                    for v, slot in enumerate(row):
                        ptr = _at(b, self.c, self.elem, _nsw_add(b, c_rows[r], i64(v * self.width)))
                        b.store(b.load(slot), ptr, align=self.align)
            with otherwise:
                count = b.sub(self.n, n0)
                for r, row in enumerate(accs):
                    for v, slot in enumerate(row):
                        ptr = _at(b, self.tile, self.elem, i64((r * NR_VECTORS + v) * self.width))
                        b.store(b.load(slot), ptr, align=self.align)
                    with for_range(b, 0, count, name="col") as j:
                        src = _at(b, self.tile, self.elem, _nsw_add(b, i64(r * self.nr), j))
                        value = b.load(src, typ=self.elem, align=self.align)
                        b.store(value, _at(b, self.c, self.elem, _nsw_add(b, c_rows[r], j)),
                                align=self.align)


def gemm_function(module: ir.Module, acc_t: PrimitiveType) -> ir.Function:
    """The shared matrix-product function of `module` for `acc_t`, emitted on first use."""
    name = f"tfcompile.gemm.{acc_t.value}"
    existing = module.globals.get(name)
    if isinstance(existing, ir.Function):
        return existing
    fnty = ir.FunctionType(ir.VoidType(), [PTR] * 4 + [I64] * 4)
    fn = ir.Function(module, fnty, name=name)
    fn.linkage = "internal"
    # Inlining it into every dot would undo the point of sharing it.
    fn.attributes.add("noinline")
    fn.attributes.add("nounwind")
    for arg, arg_name in zip(fn.args, ("a", "bp", "c", "tile", "batches", "m", "n", "k"),
                             strict=True):
        arg.name = arg_name
        if arg.type == PTR:
            arg.add_attribute("noalias")
    _Gemm(fn, acc_t).emit()
    return fn


def _emit_gemm(
    ctx: KernelContext, view: DotView, lhs: IrArray, rhs: IrArray, out: IrArray,
    acc_t: PrimitiveType,
) -> None:
    """Pack the operands, call the shared kernel, and round C into `out` if types differ."""
    b = ctx.builder
    nr = _vector_width(acc_t) * NR_VECTORS
    a = _pack_lhs(ctx, view, lhs, acc_t)
    bp = _pack_rhs_panels(ctx, view, rhs, acc_t, nr)
    tile = ctx.temp_array(Shape.array(acc_t, (MR * nr,)), name="dot.tile")
    direct = out.element_type is acc_t
    c = out if direct else ctx.temp_array(
        Shape.array(acc_t, (view.B, view.M, view.N)), name="dot.c")
    fn = gemm_function(ctx.module, acc_t)
    b.call(fn, [a.ptr, bp.ptr, c.ptr, tile.ptr, i64(view.B), i64(view.M), i64(view.N),
                i64(view.K)])
    if not direct:
        with for_range(b, 0, view.B * view.M * view.N, name="dot.round") as e:
            value = c.load_linear(b, e)
            out.store_linear(b, e, convert_scalar(b, value, acc_t, out.element_type))


# --- matrix-vector products -------------------------------------------------------------------


def _emit_gemv(
    ctx: KernelContext, view: DotView, lhs: IrArray, rhs: IrArray, out: IrArray,
    acc_t: PrimitiveType,
) -> None:
    """C[b, m] = sum_k A[b, m, k] * B[b, k] with a vector of partial sums over k (N == 1)."""
    b = ctx.builder
    a = _pack_lhs(ctx, view, lhs, acc_t)
    order = view.rhs_batch + view.rhs_contract + view.rhs_free
    if _rhs_is_direct(view, rhs, acc_t):
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
            av = b.load(_at(b, a.ptr, a.storage, _nsw_add(b, row, k)), typ=vec_ty,
                        align=a.alignment)
            xv = b.load(_at(b, vec.ptr, vec.storage, _nsw_add(b, xbase, k)), typ=vec_ty,
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


def _rhs_is_direct(view: DotView, rhs: IrArray, acc_t: PrimitiveType) -> bool:
    """True when rhs already is B as acc_t[batch, K, N] row-major."""
    order = view.rhs_batch + view.rhs_contract + view.rhs_free
    return _is_direct(rhs, order, acc_t)


def _emit_row_times_matrix(
    ctx: KernelContext, view: DotView, lhs: IrArray, rhs: IrArray, out: IrArray,
    acc_t: PrimitiveType,
) -> None:
    """C[b, 0, :] = sum_k A[b, 0, k] * B[b, k, :] for M == 1, streaming B once in place.

    Packing B into panels would cost as much as the product itself here; the row of C is
    accumulated in memory (out, or a scratch row when out has another type) by a
    contiguous, vectorisable loop over N.
    """
    b = ctx.builder
    a = _pack_lhs(ctx, view, lhs, acc_t)
    direct = out.element_type is acc_t
    row = out if direct else ctx.temp_array(Shape.array(acc_t, (view.N,)), name="dot.row")
    big_n, big_k = view.N, view.K
    zero = const(acc_t, 0)
    with for_range(b, 0, view.B, name="vm.batch") as bi:
        c_base = _nsw_mul(b, bi, i64(big_n)) if direct else i64(0)
        b_base = _nsw_mul(b, bi, i64(big_k * big_n))
        with for_range(b, 0, big_n, name="vm.clear") as j:
            row.store_linear(b, _nsw_add(b, c_base, j), zero)
        with for_range(b, 0, big_k, name="vm.k") as k:
            a_val = a.load_linear(b, _nsw_add(b, _nsw_mul(b, bi, i64(big_k)), k))
            b_row = _nsw_add(b, b_base, _nsw_mul(b, k, i64(big_n)))
            with for_range(b, 0, big_n, name="vm.n") as j:
                at = _nsw_add(b, c_base, j)
                x = rhs.load_linear(b, _nsw_add(b, b_row, j))
                row.store_linear(b, at, multiply_add(b, acc_t, row.load_linear(b, at), a_val, x))
        if not direct:
            with for_range(b, 0, big_n, name="vm.round") as j:
                value = convert_scalar(b, row.load_linear(b, j), acc_t, out.element_type)
                out.store_linear(b, _nsw_add(b, _nsw_mul(b, bi, i64(big_n)), j), value)


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
    elif view.N == 1:
        _emit_gemv(ctx, view, lhs, rhs, out, acc_t)
    elif view.M == 1 and _rhs_is_direct(view, rhs, acc_t):
        _emit_row_times_matrix(ctx, view, lhs, rhs, out, acc_t)
    else:
        _emit_gemm(ctx, view, lhs, rhs, out, acc_t)
