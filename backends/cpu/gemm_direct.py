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
Single-row tiles over a B misaligned for its vectors shift their columns at run time so that
B's loads do not straddle cache lines (`shifts_columns`).

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
from dataclasses import dataclass, replace

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

# Accumulation types the run-time column shift covers (`shifts_columns`): those whose
# vectors x86 loads and stores under a mask in one instruction.
SHIFTED_TYPES = (PrimitiveType.F32, PrimitiveType.F64)
# Tile height the column shift covers (`shifts_columns`).
SHIFTED_ROWS = 1


@dataclass(frozen=True, slots=True)
class TileShape:
    """One tile variant: `rows` rows of A, `vectors` vectors of C's columns of which the last
    holds `last_lanes` valid lanes (all lanes when it is full); the first vector of a
    `wrapped` tile also holds the last columns (see `shifts_columns`)."""

    rows: int
    vectors: int
    last_lanes: int
    wrapped: bool = False


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
        shift: whether the column tiles move to B's alignment at run time (see
            `shifts_columns`).
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
    shift: bool

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
        if rows > 1 and unit.registers < 32:
            # Each B vector feeds every row's FMA, so it lives in a register beside the
            # accumulators (one row takes it straight from memory): past that the loop
            # spills. Measured on Zen 3, 784 x 256 from L2: two rows 19.2 -> 13.8 us with
            # 5 vectors instead of 6, three rows 27.0 -> 18.3 us with 3 instead of 4. (Not
            # measured with 32 registers: left as it was there.)
            vectors = max(1, min(vectors, (unit.registers - 1) // (rows + 1)))
        k_block = max(1, k)
        if c.element_type is acc_t:
            k_block = _k_block(rows, n, k, acc_t)
        shift = shifts_columns(unit.bits, acc_t, lanes, rows, batch, n, k, b, c)
        return DirectPlan(acc_t, lanes, batch, m, n, k, a, b, c, rows, vectors, k_block, shift)

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


def shifts_columns(vector_bits: int, acc_t: PrimitiveType, lanes: int, rows: int, batch: int,
                   n: int, k: int, b: MatrixOperand, c: MatrixOperand) -> bool:
    """Whether the column tiles start where B's vectors are aligned, found at run time.

    numpy places large arrays 16 bytes into a cache line (malloc's alignment), so every
    other 32-byte vector of B straddles two lines, and a load that does costs a second L1
    access: on Zen 3 a 784 x 256 matrix-vector product from L2 takes 12.4 us instead of 9.9.
    Shifted, every tile starts s columns early, s being B's misalignment in elements, and the
    first tile's first vector wraps around: its lanes [s, lanes) hold columns [0, lanes - s),
    its lanes [0, s) the last s columns, read and written with masks (`_TileEmitter.wrapped_*`).

    That needs every row of B misaligned alike (row and batch strides of whole vectors) and N
    of whole vectors (the last s columns then fill exactly the lanes the first vector leaves
    free). Not done for 16-byte vectors: every allocator aligns them. Done for tiles of one
    row (matrix-vector products), where each B vector feeds one FMA: measured on Zen 3 with
    two rows (batch 2), the shift recovers nothing (16.4 vs 16.6 us for 784 x 256, B 16 bytes
    off) and costs 0.8 us on aligned operands (the wrapped vector's masks and addresses).
    """
    if vector_bits <= 128 or acc_t not in SHIFTED_TYPES or rows != SHIFTED_ROWS:
        return False
    if b.element_type is not acc_t or c.element_type is not acc_t:
        return False
    if b.column_stride != 1 or c.column_stride != 1:
        return False
    strides = (n, b.row_stride if k > 1 else 0, b.batch_stride if batch > 1 else 0)
    return n > 0 and all(stride % lanes == 0 for stride in strides)


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
        # Set by `emit_shift` when the columns shift: s, the last s columns' first index,
        # and the lanes of the wrapped vector that hold the first columns (the others hold
        # the last s).
        self.shift: ir.Value | None = None
        self.tail_column: ir.Value | None = None
        self.head_lanes: ir.Value | None = None

    def emit(self) -> None:
        b, plan = self.b, self.plan
        if plan.shift:
            self.emit_shift()
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

    def emit_shift(self) -> None:
        """s = B's misalignment in elements (mod a vector), once per call (see
        `shifts_columns`); any s gives the same bits, only the speed depends on it."""
        b, lanes = self.b, self.plan.lanes
        elements = b.udiv(b.ptrtoint(self.bmat, I64), i64(self.acc_t.byte_size))
        self.shift = b.urem(elements, i64(lanes))
        self.tail_column = b.sub(i64(self.plan.n), self.shift, flags=["nsw"])
        lane_ids = ir.Constant(ir.VectorType(I32, lanes), list(range(lanes)))
        self.head_lanes = b.icmp_unsigned(">=", lane_ids,
                                          splat(b, b.trunc(self.shift, I32), lanes))

    def dispatch(self, batch: ir.Value, m_block: ir.Value, n_block: ir.Value) -> None:
        """Run the tile variant for (m_block, n_block): full, or an edge in M and/or N, or
        the first column block's wrapped variant."""
        b, plan = self.b, self.plan
        last_rows = plan.m - (plan.row_blocks - 1) * plan.rows
        last_cols = plan.n - (plan.column_blocks - 1) * plan.width
        edge_vectors = -(-last_cols // plan.lanes)
        edge_lanes = last_cols - (edge_vectors - 1) * plan.lanes
        m0 = nowrap_mul(b, m_block, plan.rows)
        n0 = nowrap_mul(b, n_block, plan.width)
        if self.shift is not None:
            n0 = b.sub(n0, self.shift, flags=["nsw"])

        def by_columns(rows: int) -> None:
            full = TileShape(rows, plan.vectors, plan.lanes)
            edge = TileShape(rows, edge_vectors, edge_lanes)

            def unwrapped() -> None:
                self.last_block_apart(n_block, plan.column_blocks,
                                      lambda: self.tile(full, batch, m0, n0),
                                      lambda: self.tile(edge, batch, m0, n0),
                                      full_is_edge=last_cols == plan.width)

            if self.shift is None:
                unwrapped()
            elif plan.column_blocks == 1:
                self.tile(replace(edge, wrapped=True), batch, m0, n0)
            else:
                with if_else(b, b.icmp_unsigned("==", n_block, i64(0))) as (first, other):
                    with first:
                        self.tile(replace(full, wrapped=True), batch, m0, n0)
                    with other:
                        unwrapped()

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

    def column(self, n0: ir.Value, delta: int) -> ir.Value:
        """Column n0 + delta (n0 may be negative when the columns shift)."""
        if delta == 0:
            return n0
        if self.shift is None:
            return nowrap_add(self.b, n0, i64(delta))
        return self.b.add(n0, i64(delta), flags=["nsw"])

    def pointer(self, base: ir.Value, operand: MatrixOperand, elem: ir.Type, batch: ir.Value,
                row: ir.Value, col: ir.Value) -> ir.Value:
        """The address of element (batch, row, col) of `operand` at `base`.

        Shifted columns start before their row (the first tile's first vector): that offset
        is a signed sum and the pointer may lie before the buffer (only masked lanes do).
        """
        offset = self.offset(operand, batch, row, col)
        if self.shift is None:
            return element_pointer(self.b, base, elem, offset)
        return self.b.gep(base, [offset], source_etype=elem)

    def offset(self, operand: MatrixOperand, batch: ir.Value, row: ir.Value,
               col: ir.Value) -> ir.Value:
        """The element offset of (batch, row, col) in `operand`: a signed sum when the
        columns shift (col may be negative; its column stride is then 1)."""
        b = self.b
        if self.shift is None:
            return operand.offset(b, batch, row, col)
        return b.add(operand.offset(b, batch, row, i64(0)), col, flags=["nsw"])

    def tile(self, shape: TileShape, batch: ir.Value, m0: ir.Value, n0: ir.Value) -> None:
        """C[batch, m0:m0+rows, n0:...] = the tile's product over all of K."""
        b, plan = self.b, self.plan
        zero = ir.Constant(self.vec, [const(self.acc_t, 0)] * plan.lanes)
        rows = [nowrap_add(b, m0, i64(r)) for r in range(shape.rows)]
        cols = [self.column(n0, v * plan.lanes) for v in range(shape.vectors)]
        widths = [plan.lanes] * (shape.vectors - 1) + [shape.last_lanes]
        wrapped = [shape.wrapped and v == 0 for v in range(shape.vectors)]
        initial = [[zero] * shape.vectors for _ in range(shape.rows)]
        if plan.k_blocks > 1:
            # Later passes go on from C's partial sums (the first pass's loads are unused).
            initial = [[b.select(self.first, zero,
                                 self.wrapped_load(self.c, plan.c, batch, row) if wrapped[v]
                                 else self.load_c(batch, row, cols[v], widths[v]))
                        for v in range(shape.vectors)] for row in rows]
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
        b_vecs = [self.wrapped_load(self.bmat, plan.b, batch, k) if wrapped[v]
                  else self.load_b(batch, k, cols[v], widths[v])
                  for v in range(shape.vectors)]
        updated = []
        for r in range(shape.rows):
            a_val = plan.a.load(b, self.a, batch, rows[r], k, self.acc_t)
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
                if wrapped[v]:
                    self.wrapped_store(accs[r][v], batch, rows[r])
                else:
                    self.store_c(accs[r][v], batch, rows[r], cols[v], widths[v])

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
            offset = self.offset(plan.b, batch, row, self.column(n0, col))
            # Not inbounds: the rows past K's end lie past B; a prefetch never faults.
            ptr = b.gep(self.bmat, [offset], source_etype=self.elem)
            intrinsic(b, "llvm.prefetch.p0", ir.VoidType(),
                      [ptr, ir.Constant(I32, 0), ir.Constant(I32, 3), ir.Constant(I32, 1)])

    def load_b(self, batch: ir.Value, k: ir.Value, col: ir.Value, lanes: int) -> ir.Value:
        """B[batch, k, col:col+lanes] as a vector (lanes past `lanes` are zero)."""
        b, plan = self.b, self.plan
        if self.b_vector_loads and lanes == plan.lanes:
            ptr = self.pointer(self.bmat, plan.b, self.elem, batch, k, col)
            return b.load(ptr, typ=self.vec, align=self.acc_t.byte_size)
        value = ir.Constant(self.vec, [const(self.acc_t, 0)] * plan.lanes)
        for lane in range(lanes):
            x = plan.b.load(b, self.bmat, batch, k, nowrap_add(b, col, i64(lane)), self.acc_t)
            value = b.insert_element(value, x, ir.Constant(I32, lane))
        return value

    def load_c(self, batch: ir.Value, row: ir.Value, col: ir.Value, lanes: int) -> ir.Value:
        """C[batch, row, col:col+lanes] as a vector (C is of the accumulation type here)."""
        b, plan = self.b, self.plan
        ptr = self.pointer(self.c, plan.c, self.elem, batch, row, col)
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
        ptr = self.pointer(self.c, plan.c, out_elem, batch, row, col)
        if out_t is self.acc_t and lanes == plan.lanes:
            b.store(value, ptr, align=out_t.byte_size)
            return
        for lane in range(lanes):
            x = b.extract_element(value, ir.Constant(I32, lane))
            at = element_pointer(b, ptr, out_elem, i64(lane)) if lane else ptr
            b.store(convert(b, self.acc_t, out_t, x), at, align=out_t.byte_size)

    def wrapped_ends(self, base: ir.Value, operand: MatrixOperand, batch: ir.Value,
                     row: ir.Value) -> tuple[ir.Value, ir.Value]:
        """Where the wrapped vector of `row` lies: columns -s (its head lanes hold columns
        0 to lanes - s) and N - s (its other lanes hold the last s columns)."""
        assert self.shift is not None and self.tail_column is not None
        zero_minus_s = self.b.neg(self.shift)
        return (self.pointer(base, operand, self.elem, batch, row, zero_minus_s),
                self.pointer(base, operand, self.elem, batch, row, self.tail_column))

    def wrapped_load(self, base: ir.Value, operand: MatrixOperand, batch: ir.Value,
                     row: ir.Value) -> ir.Value:
        """The wrapped vector of B's or C's `row`: two masked loads, the second filling the
        lanes the first leaves (its pass-through)."""
        b = self.b
        head, tail = self.wrapped_ends(base, operand, batch, row)
        zero = ir.Constant(self.vec, [const(self.acc_t, 0)] * self.plan.lanes)
        first = self.masked_load(head, self.head_lanes, zero)
        return self.masked_load(tail, b.not_(self.head_lanes), first)

    def wrapped_store(self, value: ir.Value, batch: ir.Value, row: ir.Value) -> None:
        """C's wrapped vector of `row` = `value`: two masked stores."""
        b = self.b
        head, tail = self.wrapped_ends(self.c, self.plan.c, batch, row)
        self.masked_store(value, head, self.head_lanes)
        self.masked_store(value, tail, b.not_(self.head_lanes))

    def masked_load(self, ptr: ir.Value, mask: ir.Value, passthru: ir.Value) -> ir.Value:
        """The lanes of the vector at `ptr` where `mask` is set, `passthru`'s elsewhere; the
        other lanes' memory is not read (it may lie outside the buffer)."""
        name = f"llvm.masked.load.{self.vector_suffix}.p0"
        align = ir.Constant(I32, self.acc_t.byte_size)
        return intrinsic(self.b, name, self.vec, [ptr, align, mask, passthru])

    def masked_store(self, value: ir.Value, ptr: ir.Value, mask: ir.Value) -> None:
        """Store the lanes of `value` where `mask` is set; the other lanes' memory is not
        touched (another thread may be writing it)."""
        name = f"llvm.masked.store.{self.vector_suffix}.p0"
        align = ir.Constant(I32, self.acc_t.byte_size)
        intrinsic(self.b, name, ir.VoidType(), [value, ptr, align, mask])

    @property
    def vector_suffix(self) -> str:
        """The accumulator vector's name in overloaded intrinsics (v8f32)."""
        return f"v{self.plan.lanes}f{self.acc_t.bits}"


__all__ = [
    "DirectPlan",
    "TileShape",
]
