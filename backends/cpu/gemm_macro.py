"""The GEMM macro kernel: C (+)= a packed A block @ a packed B block, by register tiles.

The one job of this module is emitting the innermost two loops of the packed GEMM of
backends/cpu/gemm.py (the BLIS macro kernel) and its micro-kernel: for each NR-wide panel of
the packed B block and each MR-tall panel of the packed A block, an MR x NR tile of C is
accumulated in vector registers over kc (the k loop unrolled K_UNROLL times) and then
stored, added to C after the first K block. Edge tiles go through a small scratch tile.
A product with an elementwise epilogue (backends/cpu/gemm_epilogue.py) gets a macro kernel
of its own that stores the epilogue of the complete sums in the last K block.

This module knows nothing of the blocking loops, the packing or the target: it is given
the register tile (`RegisterTile`, which gemm.GemmConfig satisfies), so gemm.py imports it
and not the other way round.
"""

from __future__ import annotations

from typing import Protocol

from llvmlite import ir

from backends.cpu.gemm_epilogue import EpilogueEmitter, GemmEpilogue
from backends.llvm.arith import add_scalar, multiply_add
from backends.llvm.irutil import (
    I32,
    I64,
    PTR,
    alloca_at_entry,
    const,
    element_pointer,
    for_range,
    i64,
    if_else,
    internal_function,
    intrinsic,
    llvm_type,
    nowrap_add,
    nowrap_mul,
    smin,
    splat,
)
from hlo.dtypes import PrimitiveType

# The k loop of the micro-kernel is unrolled this many times (then a remainder loop).
K_UNROLL = 4


class RegisterTile(Protocol):
    """The register tile and accumulation type a macro kernel is emitted for
    (`backends.cpu.gemm.GemmConfig` is one)."""

    @property
    def acc_t(self) -> PrimitiveType:
        """The accumulation (and C) element type."""

    @property
    def lanes(self) -> int:
        """Elements per vector register."""

    @property
    def mr(self) -> int:
        """Rows of the tile (broadcast elements of A)."""

    @property
    def nr_vectors(self) -> int:
        """Vectors per tile row."""

    @property
    def nr(self) -> int:
        """Columns of the tile: lanes * nr_vectors."""

    @property
    def name(self) -> str:
        """The tile's part of the kernel's function name, e.g. `f32.6x16`."""


def macro_kernel(module: ir.Module, cfg: RegisterTile) -> ir.Function:
    """The module's macro kernel for `cfg`, emitted on first use.

        void macro(ptr ap, ptr bp, ptr c, i64 ldc, i64 mc, i64 nc, i64 kc,
                   i64 accumulate, ptr tile)

    C[0:mc, 0:nc] (+)= packed A block @ packed B block, C with row stride ldc; it adds to C
    when `accumulate` is non-zero and overwrites it otherwise. `tile` is MR x NR scratch.
    """
    name = f"tfcompile.gemm.macro.{cfg.name}"
    existing = module.globals.get(name)
    if isinstance(existing, ir.Function):
        return existing
    fnty = ir.FunctionType(ir.VoidType(), [PTR, PTR, PTR] + [I64] * 5 + [PTR])
    names = ("ap", "bp", "c", "ldc", "mc", "nc", "kc", "accumulate", "tile")
    # Shared by every product of the module: inlining it would only duplicate it.
    fn = internal_function(module, name, fnty, names, noinline=True, noalias=True)
    _MacroEmitter(fn, cfg).emit()
    return fn


def epilogue_macro_kernel(module: ir.Module, name: str, cfg: RegisterTile,
                          epilogue: GemmEpilogue, single_block: bool) -> ir.Function:
    """A macro kernel of one product site that applies `epilogue` in its last K block:

        void macro(ptr ap, ptr bp, ptr c, i64 ldc, i64 mc, i64 nc, i64 kc, i64 accumulate,
                   ptr tile, i64 last, i64 batch, i64 row0, i64 col0, ptr epi...)

    as `macro_kernel`, the block being C[batch, row0:row0+mc, col0:col0+nc]; when `last`
    is non-zero it stores the epilogue of the complete sums instead of the sums. With
    `single_block` (K fits in one block) every call is the last one for its C elements,
    so the kernel stores the epilogue without testing `last`.
    """
    count = len(epilogue.expression.pointers())
    fnty = ir.FunctionType(ir.VoidType(), [PTR, PTR, PTR] + [I64] * 5 + [PTR] + [I64] * 4
                           + [PTR] * count)
    names = ("ap", "bp", "c", "ldc", "mc", "nc", "kc", "accumulate", "tile", "last", "batch",
             "row0", "col0", *(f"epi{k}" for k in range(count)))
    fn = internal_function(module, module.get_unique_name(name), fnty, names, noinline=True,
                           noalias=True)
    _MacroEmitter(fn, cfg, epilogue, single_block).emit()
    return fn


class _MacroEmitter:
    """Emits the macro kernel: loops over micro-tiles, the micro-kernel, and C updates;
    with an epilogue, the last K block stores the epilogue of the sums (`single_block`:
    every call is the only, hence last, K block)."""

    def __init__(self, fn: ir.Function, cfg: RegisterTile, epilogue: GemmEpilogue | None = None,
                 single_block: bool = False) -> None:
        self.cfg = cfg
        self.acc_t = cfg.acc_t
        self.elem = llvm_type(cfg.acc_t)
        self.vec = ir.VectorType(self.elem, cfg.lanes)
        self.vec_align = min(64, cfg.lanes * cfg.acc_t.byte_size)
        entry = fn.append_basic_block("entry")
        self.b = ir.IRBuilder(fn.append_basic_block("body"))
        (self.ap, self.bp, self.c, self.ldc, self.mc, self.nc, self.kc, self.accumulate,
         self.tile) = fn.args[:9]
        self.single_block = single_block
        self.finish: EpilogueEmitter | None = None
        if epilogue is not None:
            last, batch, row0, col0 = fn.args[9:13]
            self.last = self.b.icmp_signed("!=", last, i64(0))
            self.finish = EpilogueEmitter(self.b, epilogue, fn.args[13:], (batch, row0, col0))
        self.slots = [
            [alloca_at_entry(self.b, self.vec, name=f"acc{r}.{v}")
             for v in range(cfg.nr_vectors)]
            for r in range(cfg.mr)
        ]
        ir.IRBuilder(entry).branch(fn.blocks[1])

    def emit(self) -> None:
        b, cfg = self.b, self.cfg
        mr, nr = cfg.mr, cfg.nr
        n_panels = b.udiv(b.add(self.nc, i64(nr - 1)), i64(nr))
        m_panels = b.udiv(b.add(self.mc, i64(mr - 1)), i64(mr))
        accumulate = b.icmp_signed("!=", self.accumulate, i64(0))
        with for_range(b, 0, n_panels, name="jr") as jr:
            n0 = nowrap_mul(b, jr, nr)
            cols = smin(b, i64(nr), b.sub(self.nc, n0))
            b_panel = element_pointer(b, self.bp, self.elem, nowrap_mul(b, n0, self.kc))
            with for_range(b, 0, m_panels, name="ir") as ir_:
                m0 = nowrap_mul(b, ir_, mr)
                rows = smin(b, i64(mr), b.sub(self.mc, m0))
                a_panel = element_pointer(b, self.ap, self.elem, nowrap_mul(b, m0, self.kc))
                c_offset = nowrap_add(b, nowrap_mul(b, m0, self.ldc), n0)
                c_tile = element_pointer(b, self.c, self.elem, c_offset)
                self.prefetch_c(c_tile)
                self.product(a_panel, b_panel)
                full = b.and_(b.icmp_signed("==", rows, i64(mr)),
                              b.icmp_signed("==", cols, i64(nr)))
                with if_else(b, full, likely=True) as (then, otherwise):
                    with then:
                        if self.finish is None:
                            self.store_full(c_tile, accumulate)
                        else:
                            self.store_full_finished(c_tile, accumulate, (m0, n0))
                    with otherwise:
                        self.store_edge(c_tile, (m0, n0), (rows, cols), accumulate)
        b.ret_void()

    def prefetch_c(self, c_tile: ir.Value) -> None:
        """Ask for the C tile's rows (for writing) while the tile is being computed."""
        b = self.b
        for r in range(self.cfg.mr):
            # Not inbounds: the rows of an edge tile may lie past the end of C.
            ptr = b.gep(c_tile, [b.mul(i64(r), self.ldc)], source_etype=self.elem)
            intrinsic(b, "llvm.prefetch.p0", ir.VoidType(),
                      [ptr, ir.Constant(I32, 1), ir.Constant(I32, 3), ir.Constant(I32, 1)])

    def product(self, a_panel: ir.Value, b_panel: ir.Value) -> None:
        """Accumulators = A panel (kc x MR) times B panel (kc x NR), in vector registers."""
        b, cfg = self.b, self.cfg
        zero = ir.Constant(self.vec, [const(self.acc_t, 0)] * cfg.lanes)
        for row in self.slots:
            for slot in row:
                b.store(zero, slot)
        main = b.and_(self.kc, i64(-K_UNROLL))
        with for_range(b, 0, main, step=K_UNROLL, name="k") as k:
            for u in range(K_UNROLL):
                self.rank_one_update(a_panel, b_panel, nowrap_add(b, k, i64(u)))
        with for_range(b, main, self.kc, name="krest") as k:
            self.rank_one_update(a_panel, b_panel, k)

    def rank_one_update(self, a_panel: ir.Value, b_panel: ir.Value, k: ir.Value) -> None:
        """acc[r][v] += A[k, r] * B[k, v-th vector], for one k."""
        b, cfg = self.b, self.cfg
        b_row = nowrap_mul(b, k, cfg.nr)
        b_vecs = [
            b.load(element_pointer(b, b_panel, self.elem, nowrap_add(b, b_row, i64(v * cfg.lanes))),
                   typ=self.vec, align=self.vec_align)
            for v in range(cfg.nr_vectors)
        ]
        a_row = nowrap_mul(b, k, cfg.mr)
        for r in range(cfg.mr):
            a_ptr = element_pointer(b, a_panel, self.elem, nowrap_add(b, a_row, i64(r)))
            a_val = b.load(a_ptr, typ=self.elem, align=self.acc_t.byte_size)
            a_vec = splat(b, a_val, cfg.lanes)
            for v in range(cfg.nr_vectors):
                slot = self.slots[r][v]
                b.store(multiply_add(b, self.acc_t, b.load(slot), a_vec, b_vecs[v]), slot)

    def tile_pointer(self, c_tile: ir.Value, r: int, v: int) -> ir.Value:
        """Pointer to vector v of row r of the C tile at `c_tile`."""
        b = self.b
        offset = nowrap_add(b, nowrap_mul(b, i64(r), self.ldc), i64(v * self.cfg.lanes))
        return element_pointer(b, c_tile, self.elem, offset)

    def store_full(self, c_tile: ir.Value, accumulate: ir.Value) -> None:
        """C tile (+)= accumulators with vector loads and stores (C is not aligned)."""
        b, cfg = self.b, self.cfg
        align = self.acc_t.byte_size

        def pointer(r: int, v: int) -> ir.Value:
            return self.tile_pointer(c_tile, r, v)

        with if_else(b, accumulate) as (then, otherwise):
            with then:
                for r in range(cfg.mr):
                    for v in range(cfg.nr_vectors):
                        ptr = pointer(r, v)
                        old = b.load(ptr, typ=self.vec, align=align)
                        total = add_scalar(b, self.acc_t, old, b.load(self.slots[r][v]))
                        b.store(total, ptr, align=align)
            with otherwise:
                for r in range(cfg.mr):
                    for v in range(cfg.nr_vectors):
                        b.store(b.load(self.slots[r][v]), pointer(r, v), align=align)

    def store_full_finished(self, c_tile: ir.Value, accumulate: ir.Value,
                            origin: tuple[ir.Value, ir.Value]) -> None:
        """store_full with the epilogue: the sums complete in the last K block go through
        it before their one store. Only a later K block accumulates, so the first stores
        the plain accumulators unless it is the only one."""
        b, cfg = self.b, self.cfg
        align = self.acc_t.byte_size
        assert self.finish is not None
        pointers = [[self.tile_pointer(c_tile, r, v) for v in range(cfg.nr_vectors)]
                    for r in range(cfg.mr)]

        def store(values: list[list[ir.Value]], finish: bool) -> None:
            if finish:
                assert self.finish is not None
                values = self.finish.tile(values, *origin, cfg.lanes)
            for r in range(cfg.mr):
                for v in range(cfg.nr_vectors):
                    b.store(values[r][v], pointers[r][v], align=align)

        acc = [[b.load(slot) for slot in row] for row in self.slots]
        if self.single_block:
            store(acc, True)
            return
        with if_else(b, accumulate) as (then, otherwise):
            with then:
                totals = [[add_scalar(b, self.acc_t, b.load(ptr, typ=self.vec, align=align),
                                      acc[r][v]) for v, ptr in enumerate(row)]
                          for r, row in enumerate(pointers)]
                with if_else(b, self.last) as (then_last, otherwise_last):
                    with then_last:
                        store(totals, True)
                    with otherwise_last:
                        store(totals, False)
            with otherwise:
                store(acc, False)

    def store_edge(self, c_tile: ir.Value, origin: tuple[ir.Value, ir.Value],
                   extent: tuple[ir.Value, ir.Value], accumulate: ir.Value) -> None:
        """The valid rows x cols corner of the tile at block row m0, column n0 (`origin`),
        through the tile scratch; the last K block stores the epilogue of the sums."""
        b, cfg = self.b, self.cfg
        (m0, n0), (rows, cols) = origin, extent
        for r in range(cfg.mr):
            for v in range(cfg.nr_vectors):
                ptr = element_pointer(b, self.tile, self.elem, i64(r * cfg.nr + v * cfg.lanes))
                b.store(b.load(self.slots[r][v]), ptr, align=self.acc_t.byte_size)
        with for_range(b, 0, rows, name="er") as r:
            src_row = nowrap_mul(b, r, cfg.nr)
            dst_row = nowrap_mul(b, r, self.ldc)
            row = None if self.finish is None else self.finish.row(nowrap_add(b, m0, r))
            with for_range(b, 0, cols, name="ec") as j:
                src = element_pointer(b, self.tile, self.elem, nowrap_add(b, src_row, j))
                value = b.load(src, typ=self.elem)
                dst = element_pointer(b, c_tile, self.elem, nowrap_add(b, dst_row, j))
                old = b.load(dst, typ=self.elem)
                total = add_scalar(b, self.acc_t, old, value)
                value = b.select(accumulate, total, value)
                if self.finish is not None and row is not None:
                    column = self.finish.column(nowrap_add(b, n0, j))
                    finished = self.finish.apply(row, column, value)
                    value = finished if self.single_block else b.select(self.last, finished,
                                                                        value)
                b.store(value, dst)


__all__ = [
    "K_UNROLL",
    "RegisterTile",
    "epilogue_macro_kernel",
    "macro_kernel",
]
