"""A register-tiled matrix product that reads its operands in place: no packing, no scratch.

C[b] = A[b] @ B[b] for strided operands, for the products where the packed GEMM of
`backends/cpu/gemm.py` does not pay: thin ones (a few rows: matrix-vector products of a
batch-1 MLP) and small ones (the products of a training step at batch 8), where copying the
operands into panels costs about as much as the product and needs scratch memory.

C is cut into tiles of R rows by V vectors of columns. A tile keeps its R x V accumulators
in vector registers over K (or a pass's block of K), broadcasting one element of A per row
and loading V vectors of B's row k straight from B; then it is stored, converted to C's
type. Every dimension is known at compile time, so the edge tiles (fewer rows, fewer vectors, a
partial last vector) are separate straight-line variants rather than masked full tiles: a
partial vector is gathered and scattered lane by lane, never read past B's or C's end.

When C is of the accumulation type, the tiles are swept in passes over blocks of B's rows
(`DirectPlan.k_blocks`), C holding the partial sums in between: a large B is then read a
cache-sized block at a time rather than a few lines of every row (a new page per row);
thin tiles take passes of a few rows, so that a thread reads its slice of B row after row.

Tiles are numbered (batch, row block, column block), column blocks fastest, and the range
function `void f(ptr a, ptr b, ptr c, i64 t0, i64 t1)` computes tiles [t0, t1). Each tile is
computed the same way whoever computes it, so splitting the tiles across threads
(`DirectPlan.emit_call` given a thread count) gives bit-identical results; a split into
contiguous ranges of column blocks gives each core its own share of B's columns (for a
matrix-vector product, its half of the weights stays in its own L2 from call to call).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llvmlite import ir

from backends.cpu import gemm
from backends.cpu.gemm import (
    PARALLEL_MAX_CHUNKS,
    MatrixOperand,
    vector_unit,
)
from backends.cpu.object import Target
from backends.cpu.threads import emit_parallel_for, new_body, pack_context, unpack_context
from backends.elemental_convert import convert
from backends.llvm.arith import multiply_add
from backends.llvm.irutil import (
    I32,
    I64,
    PTR,
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

# At most this many vectors per tile row: enough independent FMA chains to hide the FMA
# latency when R is 1, few enough that a tile's slice of B's row stays a few cache lines.
MAX_VECTORS = 8

# B's rows are prefetched this many rows (iterations of the K loop) ahead, a line at a time.
PREFETCH_ROWS = 8
CACHE_LINE = 64

# A pass over the tiles reads about this many bytes of B (at least MIN_BLOCK_ROWS rows).
# Measured on Zen 3: 32 to 128 KiB are equally fast, 512 KiB and more lose up to 30% on a
# 2048-wide B.
B_BLOCK_BYTES = 64 * 1024
MIN_BLOCK_ROWS = 16

# Rows of B a pass reads when the tiles have at most THIN_TILE_ROWS rows (matrix-vector
# products and the like: each element of B is used once or twice, and C's partial sums are
# a few vectors per tile). Short passes make consecutive tiles read the same few rows, so a
# thread streams its whole slice of each row in turn, and the line two tiles share (rows of
# a misaligned B: numpy's large arrays start 16 bytes into a line) is still in L1 when the
# second tile reads it. Measured on Zen 3 (AVX2, one thread, 16-byte misaligned B), against
# 64 KiB passes: a 784 x 128 slice from L2 in 5.0 us instead of 5.8 us (one row) and 8.2
# instead of 9.5 us (two rows), a core's half of a 784-256-256 MLP's weights (532 KB) in
# 7.1 us instead of 8.4 us; four rows gain nothing.
THIN_TILE_ROWS = 2
THIN_BLOCK_ROWS = 16

# Registers a tile leaves free (the broadcast A element, B vectors in flight, addresses).
RESERVED_REGISTERS = 4


@dataclass(frozen=True, slots=True)
class TileShape:
    """One tile variant: `rows` rows of A, `vectors` vectors of C's columns of which the last
    holds `last_lanes` valid lanes (all lanes when it is full)."""

    rows: int
    vectors: int
    last_lanes: int


@dataclass(frozen=True, slots=True)
class DirectPlan:
    """One product site read in place: C[batch, m, n] = sum_k A[batch, m, k] * B[batch, k, n].

    Attributes:
        acc_t: the accumulation type (A and B are converted to it as they are read).
        lanes: elements per vector.
        batch, m, n, k: the product's sizes.
        a, b: the operands; B is read with vector loads when its columns are contiguous
            and of the accumulation type, else lane by lane.
        c: the result, of any type the accumulation type converts to; its column stride
            must be 1.
        rows, vectors: the full tile (R rows by V vectors).
        k_block: rows of B a pass over the tiles reads (see `k_blocks`).
    """

    acc_t: PrimitiveType
    lanes: int
    batch: int
    m: int
    n: int
    k: int
    a: MatrixOperand
    b: MatrixOperand
    c: MatrixOperand
    rows: int
    vectors: int
    k_block: int

    @staticmethod
    def create(target: Target, acc_t: PrimitiveType, batch: int, m: int, n: int, k: int,
               a: MatrixOperand, b: MatrixOperand, c: MatrixOperand) -> DirectPlan:
        """The plan for one product, its tile shaped by the target's vector registers."""
        unit = vector_unit(target)
        lanes = max(1, unit.bits // max(acc_t.bits, 32))
        budget = unit.registers - RESERVED_REGISTERS
        # Row blocks of equal height (8 rows: two blocks of 4, not 6 and 2) so that the
        # tile is as wide as the registers allow.
        tallest = 6 if unit.registers < 32 else 12
        row_blocks = -(-max(m, 1) // tallest)
        rows = -(-max(m, 1) // row_blocks)
        vectors = max(1, min(MAX_VECTORS, budget // rows, -(-max(n, 1) // lanes)))
        k_block = max(1, k)
        if c.element_type is acc_t:
            k_block = _k_block(rows, n, k, acc_t)
        return DirectPlan(acc_t, lanes, batch, m, n, k, a, b, c, rows, vectors, k_block)

    @property
    def width(self) -> int:
        """Columns of a full tile."""
        return self.vectors * self.lanes

    @property
    def row_blocks(self) -> int:
        return -(-self.m // self.rows)

    @property
    def column_blocks(self) -> int:
        return -(-self.n // self.width)

    @property
    def k_blocks(self) -> int:
        """Passes over the tiles, each over the next k_block rows of B (at least one).

        A tile reads a few lines of each of B's rows, a row apart; over all of a large B
        that is a new page per row. A pass reads a block of B small enough for the cache and
        the TLB, in full, and adds its products to C: every element of C still sums its
        products in order of k, so the result does not depend on the blocks.
        """
        return max(1, -(-self.k // self.k_block))

    @property
    def tiles(self) -> int:
        """Tiles of the whole product: batch x row blocks x column blocks."""
        return self.batch * self.row_blocks * self.column_blocks

    @property
    def parallel_chunks(self) -> int:
        """How many chunks a parallel call may use: 1 for products too small for threads
        (the packed GEMM's threshold, read at emission time like the GEMM reads it)."""
        if self.batch * self.m * self.n * self.k < gemm.PARALLEL_MIN_WORK:
            return 1
        return max(1, min(PARALLEL_MAX_CHUNKS, self.tiles))

    def emit_range_function(self, module: ir.Module, name: str) -> ir.Function:
        """`void f(ptr a, ptr b, ptr c, i64 t0, i64 t1)`: tiles [t0, t1) of this product."""
        fnty = ir.FunctionType(ir.VoidType(), [PTR] * 3 + [I64] * 2)
        fn = internal_function(module, module.get_unique_name(name), fnty,
                               ("a", "b", "c", "t0", "t1"), noinline=True, noalias=True)
        _TileEmitter(self, fn).emit()
        return fn

    def emit_call(self, b: ir.IRBuilder, fn: ir.Function, a: ir.Value, bmat: ir.Value,
                  c: ir.Value, threads: ir.Value | None = None) -> None:
        """Compute the whole product by `fn`, split across up to `threads` threads when
        given and the product is large enough (see `parallel_chunks`)."""
        chunks = self.parallel_chunks if threads is not None else 1
        if chunks <= 1:
            b.call(fn, [a, bmat, c, i64(0), i64(self.tiles)])
            return
        body = new_body(b.module, f"{fn.name}.chunk")
        bb = ir.IRBuilder(body.append_basic_block("entry"))
        ctx, begin, end, _chunk = body.args
        bb.call(fn, [*unpack_context(bb, ctx, 3), begin, end])
        bb.ret_void()
        emit_parallel_for(b, body, pack_context(b, [a, bmat, c]), self.tiles, 1, threads,
                          max_chunks=chunks)


def _k_block(rows: int, n: int, k: int, acc_t: PrimitiveType) -> int:
    """Rows of B per pass for tiles of `rows` rows (C of the accumulation type, which keeps
    the partial sums between passes): about B_BLOCK_BYTES, or THIN_BLOCK_ROWS for thin
    tiles; the passes split K into blocks of equal size."""
    if rows <= THIN_TILE_ROWS:
        per_block = THIN_BLOCK_ROWS
    else:
        per_block = max(MIN_BLOCK_ROWS, B_BLOCK_BYTES // max(1, n * acc_t.byte_size))
    k = max(1, k)
    return -(-k // -(-k // per_block))


class _TileEmitter:
    """Emits the range function: the tile loop, the tile variants and their stores."""

    def __init__(self, plan: DirectPlan, fn: ir.Function) -> None:
        self.plan = plan
        self.acc_t = plan.acc_t
        self.elem = llvm_type(plan.acc_t)
        self.vec = ir.VectorType(self.elem, plan.lanes)
        self.fn = fn
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.a, self.bmat, self.c, self.t0, self.t1 = fn.args
        # B's row segments are plain vector loads only when contiguous and of acc_t.
        self.b_vector_loads = (plan.b.column_stride == 1
                               and plan.b.element_type is plan.acc_t)

    def emit(self) -> None:
        b, plan = self.b, self.plan
        with for_range(b, 0, plan.k_blocks, name="kpass") as pass_:
            self.k0 = nowrap_mul(b, pass_, plan.k_block)
            end = nowrap_add(b, self.k0, i64(plan.k_block))
            self.k1 = smin(b, end, i64(plan.k))
            self.first = b.icmp_signed("==", pass_, i64(0))
            with for_range(b, self.t0, self.t1, name="tile") as t:
                n_block = b.urem(t, i64(plan.column_blocks))
                rest = b.udiv(t, i64(plan.column_blocks))
                m_block = b.urem(rest, i64(plan.row_blocks))
                batch = b.udiv(rest, i64(plan.row_blocks))
                self.dispatch(batch, m_block, n_block)
        b.ret_void()

    def dispatch(self, batch: ir.Value, m_block: ir.Value, n_block: ir.Value) -> None:
        """Run the tile variant for (m_block, n_block): full, or an edge in M and/or N."""
        b, plan = self.b, self.plan
        last_rows = plan.m - (plan.row_blocks - 1) * plan.rows
        last_cols = plan.n - (plan.column_blocks - 1) * plan.width
        edge_vectors = -(-last_cols // plan.lanes)
        edge_lanes = last_cols - (edge_vectors - 1) * plan.lanes
        m0 = nowrap_mul(b, m_block, plan.rows)
        n0 = nowrap_mul(b, n_block, plan.width)

        def by_columns(rows: int) -> None:
            self.last_block_apart(
                n_block, plan.column_blocks,
                lambda: self.tile(TileShape(rows, plan.vectors, plan.lanes), batch, m0, n0),
                lambda: self.tile(TileShape(rows, edge_vectors, edge_lanes), batch, m0, n0),
                full_is_edge=last_cols == plan.width)

        self.last_block_apart(m_block, plan.row_blocks, lambda: by_columns(plan.rows),
                              lambda: by_columns(last_rows), full_is_edge=last_rows == plan.rows)

    def last_block_apart(self, block: ir.Value, blocks: int, full: Callable[[], None],
                         edge: Callable[[], None], full_is_edge: bool) -> None:
        """Emit `edge` for the last of `blocks` blocks and `full` for the others; only one of
        them when the other is never run or is the same code."""
        if full_is_edge or blocks == 1:
            (full if full_is_edge else edge)()
            return
        with if_else(self.b, self.b.icmp_unsigned("==", block, i64(blocks - 1))) as (
                last, other):
            with last:
                edge()
            with other:
                full()

    def tile(self, shape: TileShape, batch: ir.Value, m0: ir.Value, n0: ir.Value) -> None:
        """C[batch, m0:m0+rows, n0:...] = the tile's product over all of K."""
        b, plan = self.b, self.plan
        zero = ir.Constant(self.vec, [const(self.acc_t, 0)] * plan.lanes)
        initial = [[zero] * shape.vectors for _ in range(shape.rows)]
        if plan.k_blocks > 1:
            # Later passes go on from C's partial sums (the first pass's loads are unused).
            initial = [[b.select(self.first, zero, self.load_c(
                batch, nowrap_add(b, m0, i64(r)), nowrap_add(b, n0, i64(v * plan.lanes)),
                plan.lanes if v < shape.vectors - 1 else shape.last_lanes))
                for v in range(shape.vectors)] for r in range(shape.rows)]
        entry = b.block
        header = b.append_basic_block("k.header")
        body = b.append_basic_block("k.body")
        done = b.append_basic_block("k.exit")
        b.branch(header)
        # The accumulators are phis: registers across the K loop, no memory traffic.
        b.position_at_end(header)
        k = b.phi(I64, name="k")
        k.add_incoming(self.k0, entry)
        accs = [[b.phi(self.vec, name=f"acc{r}.{v}") for v in range(shape.vectors)]
                for r in range(shape.rows)]
        for r, row in enumerate(accs):
            for v, acc in enumerate(row):
                acc.add_incoming(initial[r][v], entry)
        b.cbranch(b.icmp_signed("<", k, self.k1), body, done)
        b.position_at_end(body)
        self.prefetch_b(batch, k, n0, shape)
        b_vecs = [self.load_b(batch, k, nowrap_add(b, n0, i64(v * plan.lanes)),
                              plan.lanes if v < shape.vectors - 1 else shape.last_lanes)
                  for v in range(shape.vectors)]
        updated = []
        for r in range(shape.rows):
            a_val = plan.a.load(b, self.a, batch, nowrap_add(b, m0, i64(r)), k, self.acc_t)
            a_vec = splat(b, a_val, plan.lanes)
            updated.append([multiply_add(b, self.acc_t, accs[r][v], a_vec, b_vecs[v])
                            for v in range(shape.vectors)])
        k_next = b.add(k, i64(1), flags=["nsw", "nuw"])
        latch = b.block
        k.add_incoming(k_next, latch)
        for r in range(shape.rows):
            for v in range(shape.vectors):
                accs[r][v].add_incoming(updated[r][v], latch)
        b.branch(header)
        b.position_at_end(done)
        for r in range(shape.rows):
            for v in range(shape.vectors):
                lanes = plan.lanes if v < shape.vectors - 1 else shape.last_lanes
                self.store_c(accs[r][v], batch, nowrap_add(b, m0, i64(r)),
                             nowrap_add(b, n0, i64(v * plan.lanes)), lanes)

    def prefetch_b(self, batch: ir.Value, k: ir.Value, n0: ir.Value, shape: TileShape) -> None:
        """Ask for the tile's segment of B's row k + PREFETCH_ROWS, one request per line.

        A tile reads a few lines of each of B's rows, a row apart: a stride the hardware
        prefetchers follow late, and B of a thin product comes from L3 or memory.
        """
        if not self.b_vector_loads:
            return
        b, plan = self.b, self.plan
        row = nowrap_add(b, k, i64(PREFETCH_ROWS))
        per_line = max(1, CACHE_LINE // plan.acc_t.byte_size)
        for col in range(0, shape.vectors * plan.lanes, per_line):
            offset = plan.b.offset(b, batch, row, nowrap_add(b, n0, i64(col)))
            # Not inbounds: the rows past K's end lie past B; a prefetch never faults.
            ptr = b.gep(self.bmat, [offset], source_etype=self.elem)
            intrinsic(b, "llvm.prefetch.p0", ir.VoidType(),
                      [ptr, ir.Constant(I32, 0), ir.Constant(I32, 3), ir.Constant(I32, 1)])

    def load_b(self, batch: ir.Value, k: ir.Value, col: ir.Value, lanes: int) -> ir.Value:
        """B[batch, k, col:col+lanes] as a vector (lanes past `lanes` are zero)."""
        b, plan = self.b, self.plan
        if self.b_vector_loads and lanes == plan.lanes:
            ptr = element_pointer(b, self.bmat, self.elem, plan.b.offset(b, batch, k, col))
            return b.load(ptr, typ=self.vec, align=self.acc_t.byte_size)
        value = ir.Constant(self.vec, [const(self.acc_t, 0)] * plan.lanes)
        for lane in range(lanes):
            x = plan.b.load(b, self.bmat, batch, k, nowrap_add(b, col, i64(lane)), self.acc_t)
            value = b.insert_element(value, x, ir.Constant(I32, lane))
        return value

    def load_c(self, batch: ir.Value, row: ir.Value, col: ir.Value, lanes: int) -> ir.Value:
        """C[batch, row, col:col+lanes] as a vector (C is of the accumulation type here)."""
        b, plan = self.b, self.plan
        ptr = element_pointer(b, self.c, self.elem, plan.c.offset(b, batch, row, col))
        if lanes == plan.lanes:
            return b.load(ptr, typ=self.vec, align=self.acc_t.byte_size)
        value = ir.Constant(self.vec, [const(self.acc_t, 0)] * plan.lanes)
        for lane in range(lanes):
            at = element_pointer(b, ptr, self.elem, i64(lane)) if lane else ptr
            x = b.load(at, typ=self.elem, align=self.acc_t.byte_size)
            value = b.insert_element(value, x, ir.Constant(I32, lane))
        return value

    def store_c(self, value: ir.Value, batch: ir.Value, row: ir.Value, col: ir.Value,
                lanes: int) -> None:
        """C[batch, row, col:col+lanes] = the first `lanes` lanes of `value`."""
        b, plan = self.b, self.plan
        out_t = plan.c.element_type
        out_elem = llvm_type(out_t)
        ptr = element_pointer(b, self.c, out_elem, plan.c.offset(b, batch, row, col))
        if out_t is self.acc_t and lanes == plan.lanes:
            b.store(value, ptr, align=out_t.byte_size)
            return
        for lane in range(lanes):
            x = b.extract_element(value, ir.Constant(I32, lane))
            at = element_pointer(b, ptr, out_elem, i64(lane)) if lane else ptr
            b.store(convert(b, self.acc_t, out_t, x), at, align=out_t.byte_size)


__all__ = [
    "DirectPlan",
    "TileShape",
]
