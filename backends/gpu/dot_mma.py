"""Tensor-core GEMM for f16/bf16 dots: mma.sync, ldmatrix and cp.async through inline PTX.

A dot whose operands are both f16 or both bf16 (and whose result is f32, f16 or bf16) is a
batch of products C[b, m, n] = sum_k A[b, m, k] B[b, k, n] accumulated in f32. When each
operand is a plain strided matrix in memory (its free and contracted dimension groups each
merge into one strided dimension, one of them contiguous, with 16-byte aligned rows), the
product runs on the tensor cores (sm_80+):

* A block of `MmaTile.threads` threads computes a `block_m x block_n` tile of C; each warp
  owns a `warp_m x warp_n` sub-tile, held as m16n8 accumulator fragments in registers.
* K is walked in steps of `block_k`. Each step's A and B tiles are copied global -> shared
  with `cp.async` (16 bytes per thread and copy) into a ring of `stages` buffers, so the
  copies of later steps overlap the arithmetic of the current one; out-of-range chunks are
  zero-filled by the copy itself (src-size 0), which makes ragged edges free.
* Shared tiles keep the operand's own memory order (rows of 16-byte chunks along its
  contiguous dimension); chunk positions are XOR-swizzled by row, so that the eight rows an
  `ldmatrix` phase reads fall in distinct banks. `ldmatrix` (with `.trans` when the free
  dimension is the contiguous one) yields exactly the mma operand fragments.
* `mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}` accumulates; the epilogue converts and
  stores pairs of C elements with bounds checks.

Blocks are ordered in groups of `group_m` tile rows, so that concurrently running blocks
share A and B tiles in L2. The index formulas (`chunk_coords`, `swizzle`, `fragment_coords`,
`accumulator_coords`) are written once over Python operators and evaluated on `Reg` (emitting
IR) in the kernel, or on ints by a model of the kernel in the tests. This file does not
choose between this kernel and the others: `backends/gpu/dot.py` asks `try_emit_mma` first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llvmlite import ir

from backends.gpu.kernels import KernelContext, KernelFunction, operand_slots, out_slot
from backends.gpu.launch import (
    MAX_STATIC_SHARED_BYTES,
    WARP,
    LaunchDims,
    barrier,
    block_id,
    ceil_div,
    thread_id,
)
from backends.llvm.arith import convert_scalar
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import F32, I8, I32, I64, for_range, i64, storage_type
from hlo.dtypes import PrimitiveType
from hlo.errors import InternalError
from hlo.instruction import HloInstruction

if TYPE_CHECKING:
    from backends.gpu.dot import DotView

_NOWRAP = ("nuw", "nsw")
CHUNK_BYTES = 16          # one cp.async copy; one ldmatrix row (8 x 16-bit elements)
CHUNK_ELEMS = 8
MMA_M, MMA_N, MMA_K = 16, 8, 16
# Below these sizes the SIMT kernels of dot.py are as fast and waste no padded tile.
MIN_ROWS = 32
MIN_COLS = 32
MIN_DEPTH = 32
_MMA_TYPES = {PrimitiveType.BF16: "bf16", PrimitiveType.F16: "f16"}
_OUT_TYPES = frozenset({PrimitiveType.F32, PrimitiveType.F16, PrimitiveType.BF16})


@dataclass(frozen=True)
class MmaTile:
    """The blocking of the tensor-core GEMM.

    Attributes:
        block_m / block_n: the C tile of one block.
        block_k: the K step staged in shared memory per pipeline stage.
        warps_m / warps_n: the warp grid of a block; warp (wm, wn) owns rows
            wm * warp_m ... and columns wn * warp_n ... of the block tile.
        stages: shared-memory buffers in the cp.async ring (2 = double buffering).
        group_m: tile rows per rasterisation group (L2 reuse between blocks).
    """

    block_m: int = 128
    block_n: int = 128
    block_k: int = 32
    warps_m: int = 2
    warps_n: int = 2
    stages: int = 3
    group_m: int = 8

    def __post_init__(self) -> None:
        ok = (
            self.warp_m % MMA_M == 0 and self.warp_n % (2 * MMA_N) == 0
            and self.block_k % MMA_K == 0 and self.stages >= 2 and self.group_m >= 1
            and self.shared_bytes <= MAX_STATIC_SHARED_BYTES
        )
        for rows in (self.block_m, self.block_n):
            chunks = rows * self.block_k // CHUNK_ELEMS
            ok = ok and chunks % self.threads == 0
        for p in (self.block_k // CHUNK_ELEMS, self.block_m // CHUNK_ELEMS,
                  self.block_n // CHUNK_ELEMS):
            ok = ok and p >= 2 and p & (p - 1) == 0
        if not ok:
            raise InternalError(f"unusable tensor-core tile {self}")

    @property
    def threads(self) -> int:
        return self.warps_m * self.warps_n * WARP

    @property
    def warp_m(self) -> int:
        return self.block_m // self.warps_m

    @property
    def warp_n(self) -> int:
        return self.block_n // self.warps_n

    @property
    def a_bytes(self) -> int:
        return self.block_m * self.block_k * 2

    @property
    def stage_bytes(self) -> int:
        return (self.block_m + self.block_n) * self.block_k * 2

    @property
    def shared_bytes(self) -> int:
        return self.stages * self.stage_bytes


# 128 x 128 x 32 with four 64 x 64 warps and three stages: 48 KiB of shared memory, the most a
# kernel may use statically, and two blocks per SM at about 200 registers per thread.
DEFAULT_TILE = MmaTile()


# --- operands ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatrixOperand:
    """An operand seen as a strided [free, k] matrix per batch element.

    Attributes:
        k_contiguous: K is the unit-stride dimension (else the free dimension is).
        free_size / k_size: the sizes of the merged free and contracted groups.
        free_stride / k_stride: their element strides.
        batch: (size, stride) of each batch dimension, in the dot's batch order.
    """

    k_contiguous: bool
    free_size: int
    k_size: int
    free_stride: int
    k_stride: int
    batch: tuple[tuple[int, int], ...]

    @property
    def row_stride(self) -> int:
        """The stride of the non-contiguous dimension (between 16-byte chunk rows)."""
        return self.free_stride if self.k_contiguous else self.k_stride


def _merged(dims: tuple[int, ...], sizes: tuple[int, ...], strides: list[int]
            ) -> tuple[int, int] | None:
    """(size, stride) of the dimension group `dims` read row-major, if it is one strided
    dimension in memory; size-1 dimensions do not matter."""
    live = [d for d in dims if sizes[d] != 1]
    total = math.prod(sizes[d] for d in dims)
    if not live:
        return total, 0
    for outer, inner in zip(live, live[1:], strict=False):
        if strides[outer] != strides[inner] * sizes[inner]:
            return None
    return total, strides[live[-1]]


def _matrix(shape_dims: tuple[int, ...], batch: tuple[int, ...], free: tuple[int, ...],
            contract: tuple[int, ...]) -> MatrixOperand | None:
    strides = [1] * len(shape_dims)
    for d in range(len(shape_dims) - 2, -1, -1):
        strides[d] = strides[d + 1] * shape_dims[d + 1]
    f = _merged(free, shape_dims, strides)
    k = _merged(contract, shape_dims, strides)
    if f is None or k is None:
        return None
    (f_size, f_stride), (k_size, k_stride) = f, k
    if k_stride == 1 and f_size > 1:
        k_contiguous = True
    elif f_stride == 1 and k_size > 1:
        k_contiguous = False
    else:
        return None
    contiguous = k_size if k_contiguous else f_size
    row_stride = f_stride if k_contiguous else k_stride
    batch_pairs = tuple((shape_dims[d], strides[d]) for d in batch)
    # cp.async moves aligned 16-byte chunks: rows of whole chunks starting at 16-byte offsets.
    aligned = [contiguous, row_stride] + [s for n, s in batch_pairs if n > 1]
    if any(v % CHUNK_ELEMS for v in aligned):
        return None
    return MatrixOperand(k_contiguous, f_size, k_size, f_stride, k_stride, batch_pairs)


@dataclass(frozen=True)
class MmaPlan:
    """Everything the tensor-core kernel needs to know about one dot."""

    a: MatrixOperand
    b: MatrixOperand
    batch: int
    rows: int
    cols: int
    depth: int
    in_type: PrimitiveType
    out_type: PrimitiveType
    tile: MmaTile

    @property
    def tiles_m(self) -> int:
        return ceil_div(self.rows, self.tile.block_m)

    @property
    def tiles_n(self) -> int:
        return ceil_div(self.cols, self.tile.block_n)

    @property
    def blocks(self) -> int:
        return self.batch * self.tiles_m * self.tiles_n


def mma_plan(instr: HloInstruction, view: DotView, tile: MmaTile | None = None
             ) -> MmaPlan | None:
    """The tensor-core plan of a dot, or None when the dot does not qualify."""
    lhs, rhs = (o.shape for o in instr.operands)
    in_t = lhs.element_type
    if in_t not in _MMA_TYPES or rhs.element_type is not in_t:
        return None
    if instr.shape.element_type not in _OUT_TYPES:
        return None
    if view.rows < MIN_ROWS or view.cols < MIN_COLS or view.depth < MIN_DEPTH:
        return None
    a = _matrix(lhs.dims, view.lhs_batch, view.lhs_rows, view.lhs_contract)
    b = _matrix(rhs.dims, view.rhs_batch, view.rhs_cols, view.rhs_contract)
    if a is None or b is None:
        return None
    return MmaPlan(a, b, view.batch, view.rows, view.cols, view.depth, in_t,
                   instr.shape.element_type, tile or DEFAULT_TILE)


def try_emit_mma(ctx: KernelContext, instr: HloInstruction, view: DotView) -> bool:
    """Emit and launch the tensor-core GEMM for `instr` if it qualifies; True if it did."""
    plan = mma_plan(instr, view)
    if plan is None:
        return False
    t = plan.tile
    role = f"mma{t.block_m}x{t.block_n}"
    kernel = ctx.kernel(role, [out_slot(ctx)], operand_slots(ctx))
    if kernel.is_new:
        MmaKernel(kernel, plan).emit()
    ctx.launch(kernel, LaunchDims((plan.blocks, 1, 1), (t.threads, 1, 1)))
    return True


# --- index formulas (ints in the model, Reg in the kernel) ---------------------------------------


class Reg:
    """An i32 IR value whose Python operators emit instructions, so that one formula serves
    the kernel and the integer model of the tests. All values are non-negative."""

    __slots__ = ("b", "v")

    def __init__(self, b: ir.IRBuilder, v: ir.Value) -> None:
        self.b = b
        self.v = v

    def _of(self, other: Index) -> ir.Value:
        return other.v if isinstance(other, Reg) else ir.Constant(I32, other)

    def __add__(self, o: Index) -> Reg:
        return Reg(self.b, self.b.add(self.v, self._of(o), flags=_NOWRAP))

    __radd__ = __add__

    def __mul__(self, o: Index) -> Reg:
        return Reg(self.b, self.b.mul(self.v, self._of(o), flags=_NOWRAP))

    __rmul__ = __mul__

    def __floordiv__(self, o: Index) -> Reg:
        return Reg(self.b, self.b.udiv(self.v, self._of(o)))

    def __mod__(self, o: Index) -> Reg:
        return Reg(self.b, self.b.urem(self.v, self._of(o)))

    def __xor__(self, o: Index) -> Reg:
        return Reg(self.b, self.b.xor(self.v, self._of(o)))

    __rxor__ = __xor__

    def __and__(self, o: Index) -> Reg:
        return Reg(self.b, self.b.and_(self.v, self._of(o)))

    def __rshift__(self, o: Index) -> Reg:
        return Reg(self.b, self.b.lshr(self.v, self._of(o)))


Index = int | Reg


def chunks_per_row(k_contiguous: bool, free_edge: int, block_k: int) -> int:
    """16-byte chunks in one shared-memory row of an operand tile ([free][k] or [k][free])."""
    return (block_k if k_contiguous else free_edge) // CHUNK_ELEMS


def chunk_coords(q: Index, per_row: int) -> tuple[Index, Index]:
    """(row, chunk) of the q-th chunk of a tile stored row by row."""
    return q // per_row, q % per_row


def swizzle(row: Index, chunk: Index, per_row: int) -> Index:
    """The physical chunk of logical `chunk` in `row`.

    A bank-conflict-free ldmatrix phase needs the eight rows it reads (eight consecutive
    rows, at one logical chunk) to fall into the eight distinct 16-byte bank groups of a
    128-byte line; XOR with a row key permutes chunks within each row, so copies stay 1:1.
    """
    if per_row >= 8:
        key = row % 8
    elif per_row == 4:
        key = (row // 2) % 4
    else:
        key = (row // 4) % 2
    return chunk ^ key


def tile_offset(row: Index, chunk: Index, per_row: int) -> Index:
    """The byte offset of a logical (row, chunk) in a tile stored with `swizzle`."""
    return row * (per_row * CHUNK_BYTES) + swizzle(row, chunk, per_row) * CHUNK_BYTES


def fragment_coords(lane: Index, free: Index, kk: int, k_contiguous: bool, is_b: bool
                    ) -> tuple[Index, Index]:
    """(row, chunk) whose address `lane` gives to an ldmatrix.x4 of a 16 x 16 operand block
    at tile position (free, kk), both multiples of 8 (free relative to the block tile).

    The four 8 x 8 matrices are ordered as the mma fragments want them: for A (m x k) the
    registers are (m0, k0), (m8, k0), (m0, k8), (m8, k8); for B two n8 tiles, (n0, k0),
    (n0, k8), (n8, k0), (n8, k8). Lane l addresses row l % 8 of matrix l // 8.
    """
    matrix = lane // 8
    r = lane % 8
    if is_b:
        free_off, k_off = (matrix // 2) * 8, (matrix % 2) * 8
    else:
        free_off, k_off = (matrix % 2) * 8, (matrix // 2) * 8
    if k_contiguous:
        return free + free_off + r, (k_off + kk) // CHUNK_ELEMS
    return k_off + kk + r, (free + free_off) // CHUNK_ELEMS


def accumulator_coords(lane: Index, reg: int) -> tuple[Index, Index]:
    """(row, column) within an m16n8 tile of accumulator register `reg` (0-3) of `lane`."""
    return lane // 4 + (reg // 2) * 8, (lane % 4) * 2 + reg % 2


# --- inline PTX ----------------------------------------------------------------------------------


def _asm(b: ir.IRBuilder, ret: ir.Type, args: list[ir.Value], text: str, constraints: str,
         side_effect: bool) -> ir.Value:
    fn_type = ir.FunctionType(ret, [a.type for a in args])
    asm = ir.InlineAsm(fn_type, text, constraints, side_effect=side_effect)
    # Warp-synchronous instructions must not be moved into divergent control flow.
    return b.call(asm, args, attrs=("convergent",))


def ldmatrix_x4(b: ir.IRBuilder, address: ir.Value, trans: bool) -> list[ir.Value]:
    """Four 8 x 8 b16 matrices from shared memory (`address`: an i64 shared address)."""
    suffix = ".trans" if trans else ""
    ret = ir.LiteralStructType([I32] * 4)
    # Volatile: the tile is written by cp.async, which LLVM cannot see, so the load must stay
    # between the barrier that publishes the tile and the one that recycles it.
    value = _asm(b, ret, [address],
                 f"ldmatrix.sync.aligned.m8n8.x4{suffix}.shared.b16 {{$0, $1, $2, $3}}, [$4];",
                 "=r,=r,=r,=r,l,~{memory}", side_effect=True)
    return [b.extract_value(value, k) for k in range(4)]


def mma_16816(b: ir.IRBuilder, in_type: str, a: list[ir.Value], bb: list[ir.Value],
              c: list[ir.Value]) -> list[ir.Value]:
    """D = A x B + C for one m16n8k16 tile; f32 accumulators, `in_type` bf16 or f16."""
    ret = ir.LiteralStructType([F32] * 4)
    text = (f"mma.sync.aligned.m16n8k16.row.col.f32.{in_type}.{in_type}.f32 "
            "{$0, $1, $2, $3}, {$4, $5, $6, $7}, {$8, $9}, {$10, $11, $12, $13};")
    value = _asm(b, ret, [*a, *bb, *c], text, "=f,=f,=f,=f,r,r,r,r,r,r,0,1,2,3",
                 side_effect=False)
    return [b.extract_value(value, k) for k in range(4)]


def cp_async_16(b: ir.IRBuilder, shared: ir.Value, source: ir.Value, src_bytes: ir.Value
                ) -> None:
    """Copy 16 bytes global -> shared asynchronously; bytes past `src_bytes` are zeroed."""
    _asm(b, ir.VoidType(), [shared, source, src_bytes],
         "cp.async.cg.shared.global [$0], [$1], 16, $2;", "l,l,r,~{memory}", side_effect=True)


def cp_async_commit(b: ir.IRBuilder) -> None:
    _asm(b, ir.VoidType(), [], "cp.async.commit_group;", "~{memory}", side_effect=True)


def cp_async_wait(b: ir.IRBuilder, pending: int) -> None:
    """Wait until at most `pending` committed copy groups of this thread are in flight."""
    _asm(b, ir.VoidType(), [], f"cp.async.wait_group {pending};", "~{memory}",
         side_effect=True)


# --- the kernel ----------------------------------------------------------------------------------


# accumulator slots: [m16 fragment][n8 fragment][register]
Accumulators = list[list[list[ir.Value]]]


@dataclass
class _Chunk:
    """One 16-byte copy a thread issues per K step for one operand."""

    shared: ir.Value      # i32 byte offset within a stage
    source: ir.Value      # i64 element offset at K step 0
    step: int             # element offset added per K step
    k_local: ir.Value     # i64 K position within the step
    free_ok: ir.Value     # i1


class MmaKernel:
    """Fills one KernelFunction with the tensor-core GEMM of an MmaPlan."""

    def __init__(self, kernel: KernelFunction, plan: MmaPlan) -> None:
        self.kernel = kernel
        self.plan = plan
        self.tile = plan.tile
        self.b = kernel.builder

    def emit(self) -> None:
        b = self.b
        plan, t = self.plan, self.tile
        smem = ir.GlobalVariable(self.kernel.module, ir.ArrayType(I8, t.shared_bytes),
                                 name=f"{self.kernel.name}_smem", addrspace=3)
        smem.initializer = ir.Constant(smem.value_type, ir.Undefined)
        smem.linkage = "internal"
        # 128-byte alignment: the swizzle reasons about bank groups of absolute addresses.
        smem.align = 128
        self.smem = b.ptrtoint(smem, I64)
        tid = Reg(b, thread_id(b))
        lane = tid % WARP
        warp = tid // WARP
        batch, m0, n0 = self._block_origin()
        lhs, rhs = self.kernel.inputs
        a_chunks = self._chunks(plan.a, tid, batch, m0, t.block_m)
        b_chunks = self._chunks(plan.b, tid, batch, n0, t.block_n)
        a_frags = self._fragment_offsets(plan.a, lane, (warp % t.warps_m) * t.warp_m,
                                         t.block_m, t.warp_m // MMA_M, is_b=False)
        b_frags = self._fragment_offsets(plan.b, lane, (warp // t.warps_m) * t.warp_n,
                                         t.block_n, t.warp_n // (2 * MMA_N), is_b=True)
        entry = self.kernel.entry_builder()
        n_frags = t.warp_n // MMA_N
        accs = [[[entry.alloca(F32, name=f"c{i}_{j}_{r}") for r in range(4)]
                 for j in range(n_frags)] for i in range(t.warp_m // MMA_M)]
        for slot in (s for row in accs for frag in row for s in frag):
            entry.store(ir.Constant(F32, 0.0), slot)

        k_steps = ceil_div(plan.depth, t.block_k)
        for s in range(t.stages - 1):
            self._load_stage(lhs, rhs, a_chunks, b_chunks, i64(s), s)
        with for_range(b, 0, k_steps, name="kt") as kt:
            # Step kt's group has landed once at most stages-2 younger groups are pending; the
            # barrier publishes every thread's copies and ends all reads of step kt-1's buffer,
            # which the copies issued next (for step kt + stages - 1) overwrite.
            cp_async_wait(b, t.stages - 2)
            barrier(b)
            ahead = b.add(kt, i64(t.stages - 1), flags=_NOWRAP)
            self._load_stage(lhs, rhs, a_chunks, b_chunks, ahead,
                             b.trunc(b.urem(ahead, i64(t.stages)), I32))
            stage = b.trunc(b.urem(kt, i64(t.stages)), I32)
            self._multiply(stage, a_frags, b_frags, accs)
        cp_async_wait(b, 0)
        self._store(accs, batch, m0, n0, lane, warp)
        self.kernel.finish()

    def _block_origin(self) -> tuple[ir.Value, ir.Value, ir.Value]:
        """(batch, m0, n0) of this block as i64; consecutive blocks walk a group of group_m
        tile rows column by column, so that they share B tiles and A rows in L2."""
        b, plan, t = self.b, self.plan, self.tile
        block = b.zext(block_id(b), I64)
        per_batch = plan.tiles_m * plan.tiles_n
        batch = b.udiv(block, i64(per_batch))
        pid = b.urem(block, i64(per_batch))
        span = t.group_m * plan.tiles_n
        first_m = b.mul(b.udiv(pid, i64(span)), i64(t.group_m), flags=_NOWRAP)
        left = b.sub(i64(plan.tiles_m), first_m, flags=_NOWRAP)
        group_rows = b.select(b.icmp_unsigned("<", left, i64(t.group_m)), left,
                              i64(t.group_m))
        in_group = b.urem(pid, i64(span))
        pid_m = b.add(first_m, b.urem(in_group, group_rows), flags=_NOWRAP)
        pid_n = b.udiv(in_group, group_rows)
        m0 = b.mul(pid_m, i64(t.block_m), flags=_NOWRAP)
        n0 = b.mul(pid_n, i64(t.block_n), flags=_NOWRAP)
        return batch, m0, n0

    def _chunks(self, op: MatrixOperand, tid: Reg, batch: ir.Value, free0: ir.Value,
                free_edge: int) -> list[_Chunk]:
        """The copies of this thread for one operand tile: chunk tid + j * threads."""
        b, t = self.b, self.tile
        per_row = chunks_per_row(op.k_contiguous, free_edge, t.block_k)
        count = free_edge * t.block_k // CHUNK_ELEMS
        batch_offset = self._batch_offset(op, batch)
        out = []
        for j in range(count // t.threads):
            row, chunk = chunk_coords(tid + j * t.threads, per_row)
            shared = tile_offset(row, chunk, per_row)
            assert isinstance(row, Reg) and isinstance(chunk, Reg) and isinstance(shared, Reg)
            row64 = b.zext(row.v, I64)
            chunk64 = b.mul(b.zext(chunk.v, I64), i64(CHUNK_ELEMS), flags=_NOWRAP)
            free_local, k_local = (row64, chunk64) if op.k_contiguous else (chunk64, row64)
            free = b.add(free0, free_local, flags=_NOWRAP)
            free_ok = b.icmp_unsigned("<", free, i64(op.free_size))
            safe_free = b.select(free_ok, free, i64(0))
            source = b.add(batch_offset, b.mul(safe_free, i64(op.free_stride), flags=_NOWRAP),
                           flags=_NOWRAP)
            source = b.add(source, b.mul(k_local, i64(op.k_stride), flags=_NOWRAP),
                           flags=_NOWRAP)
            out.append(_Chunk(shared.v, source, t.block_k * op.k_stride, k_local, free_ok))
        return out

    def _batch_offset(self, op: MatrixOperand, batch: ir.Value) -> ir.Value:
        b = self.b
        total: ir.Value = i64(0)
        rest = batch
        for size, stride in reversed(op.batch):
            digit = b.urem(rest, i64(size))
            rest = b.udiv(rest, i64(size))
            total = b.add(total, b.mul(digit, i64(stride), flags=_NOWRAP), flags=_NOWRAP)
        return total

    def _load_stage(self, lhs: IrArray, rhs: IrArray, a_chunks: list[_Chunk],
                    b_chunks: list[_Chunk], k_step: ir.Value, stage: ir.Value | int) -> None:
        """Issue (and commit as one group) the copies of K step `k_step` into `stage`."""
        b, t = self.b, self.tile
        stage_v = ir.Constant(I32, stage) if isinstance(stage, int) else stage
        stage_base = b.mul(stage_v, ir.Constant(I32, t.stage_bytes), flags=_NOWRAP)
        k0 = b.mul(k_step, i64(t.block_k), flags=_NOWRAP)
        for array, chunks, tile_base in ((lhs, a_chunks, 0), (rhs, b_chunks, t.a_bytes)):
            for c in chunks:
                k_ok = b.icmp_unsigned("<", b.add(k0, c.k_local, flags=_NOWRAP),
                                       i64(self.plan.depth))
                ok = b.and_(c.free_ok, k_ok)
                moved = b.add(c.source, b.mul(k_step, i64(c.step), flags=_NOWRAP),
                              flags=_NOWRAP)
                # A chunk outside the operand reads nothing (src-size 0) from a valid address.
                element = b.select(ok, moved, i64(0))
                source = array.element_ptr_linear(b, element)
                offset = b.add(b.add(stage_base, ir.Constant(I32, tile_base), flags=_NOWRAP),
                               c.shared, flags=_NOWRAP)
                shared = b.add(self.smem, b.zext(offset, I64), flags=_NOWRAP)
                size = b.select(ok, ir.Constant(I32, CHUNK_BYTES), ir.Constant(I32, 0))
                cp_async_16(b, shared, source, size)
        cp_async_commit(b)

    def _fragment_offsets(self, op: MatrixOperand, lane: Reg, warp_origin: Reg, free_edge: int,
                          count: int, is_b: bool) -> dict[tuple[int, int], ir.Value]:
        """(fragment, kk) -> this lane's ldmatrix byte offset within the operand tile."""
        t = self.tile
        per_row = chunks_per_row(op.k_contiguous, free_edge, t.block_k)
        out = {}
        for f in range(count):
            for kk in range(0, t.block_k, MMA_K):
                row, chunk = fragment_coords(lane, warp_origin + f * 16, kk, op.k_contiguous,
                                             is_b)
                offset = tile_offset(row, chunk, per_row)
                assert isinstance(offset, Reg)
                out[(f, kk)] = offset.v
        return out

    def _multiply(self, stage: ir.Value, a_frags: dict[tuple[int, int], ir.Value],
                  b_frags: dict[tuple[int, int], ir.Value], accs: Accumulators) -> None:
        b, t, plan = self.b, self.tile, self.plan
        stage_base = b.mul(stage, ir.Constant(I32, t.stage_bytes), flags=_NOWRAP)
        in_type = _MMA_TYPES[plan.in_type]
        values = [[[b.load(s) for s in frag] for frag in row] for row in accs]
        for kk in range(0, t.block_k, MMA_K):
            a_regs = []
            for i in range(t.warp_m // MMA_M):
                a_regs.append(ldmatrix_x4(b, self._address(stage_base, 0, a_frags[(i, kk)]),
                                          trans=not plan.a.k_contiguous))
            b_regs = []
            for j in range(t.warp_n // (2 * MMA_N)):
                regs = ldmatrix_x4(b, self._address(stage_base, t.a_bytes, b_frags[(j, kk)]),
                                   trans=not plan.b.k_contiguous)
                b_regs += [regs[0:2], regs[2:4]]
            for i, a in enumerate(a_regs):
                for j, bb in enumerate(b_regs):
                    values[i][j] = mma_16816(b, in_type, a, bb, values[i][j])
        for row, vrow in zip(accs, values, strict=True):
            for frag, vfrag in zip(row, vrow, strict=True):
                for slot, v in zip(frag, vfrag, strict=True):
                    b.store(v, slot)

    def _address(self, stage_base: ir.Value, tile_base: int, offset: ir.Value) -> ir.Value:
        b = self.b
        local = b.add(b.add(stage_base, ir.Constant(I32, tile_base), flags=_NOWRAP), offset,
                      flags=_NOWRAP)
        return b.add(self.smem, b.zext(local, I64), flags=_NOWRAP)

    def _store(self, accs: Accumulators, batch: ir.Value, m0: ir.Value, n0: ir.Value,
               lane: Reg, warp: Reg) -> None:
        """C[batch, m, n] = the accumulators, converted; pairs of columns per store."""
        b, t, plan = self.b, self.tile, self.plan
        out = self.kernel.outputs[0]
        out_t = plan.out_type
        elem = storage_type(out_t)
        paired = plan.cols % 2 == 0
        row0 = b.add(m0, b.zext(((warp % t.warps_m) * t.warp_m).v, I64), flags=_NOWRAP)
        col0 = b.add(n0, b.zext(((warp // t.warps_m) * t.warp_n).v, I64), flags=_NOWRAP)
        base = b.mul(batch, i64(plan.rows * plan.cols), flags=_NOWRAP)
        for i, row in enumerate(accs):
            for j, frag in enumerate(row):
                for half in range(2):
                    r, c = accumulator_coords(lane, 2 * half)
                    assert isinstance(r, Reg) and isinstance(c, Reg)
                    m = b.add(row0, b.zext((r + i * MMA_M).v, I64), flags=_NOWRAP)
                    n = b.add(col0, b.zext((c + j * MMA_N).v, I64), flags=_NOWRAP)
                    at = b.add(base, b.add(b.mul(m, i64(plan.cols), flags=_NOWRAP), n,
                                           flags=_NOWRAP), flags=_NOWRAP)
                    values = [convert_scalar(b, b.load(frag[2 * half + e]), PrimitiveType.F32,
                                             out_t) for e in range(2)]
                    m_ok = b.icmp_unsigned("<", m, i64(plan.rows))
                    if paired:
                        # Even column, even row length: both columns are in or both are out,
                        # and the pair is aligned for one vector store.
                        inside = b.and_(m_ok, b.icmp_unsigned("<", n, i64(plan.cols)))
                        with b.if_then(inside):
                            pair_t = ir.VectorType(elem, 2)
                            pair = ir.Constant(pair_t, ir.Undefined)
                            for e, v in enumerate(values):
                                pair = b.insert_element(pair, v, ir.Constant(I32, e))
                            ptr = out.element_ptr_linear(b, at)
                            b.store(pair, ptr, align=2 * out_t.byte_size)
                        continue
                    for e, v in enumerate(values):
                        n_e = b.add(n, i64(e), flags=_NOWRAP)
                        inside = b.and_(m_ok, b.icmp_unsigned("<", n_e, i64(plan.cols)))
                        with b.if_then(inside):
                            out.store_linear(b, b.add(at, i64(e), flags=_NOWRAP), v)


__all__ = [
    "DEFAULT_TILE", "MatrixOperand", "MmaPlan", "MmaTile", "Reg", "accumulator_coords",
    "chunk_coords", "chunks_per_row", "fragment_coords", "mma_plan", "swizzle", "tile_offset",
    "try_emit_mma",
]
