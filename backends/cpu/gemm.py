"""A packed, cache-blocked, register-tiled matrix product for the CPU, emitted as LLVM IR.

C[b] = A[b] @ B[b] for strided operands (any element type the accumulation type converts
from) into a row-major C of the accumulation type, following the BLIS form of Goto's
algorithm:

    for jc in N, step NC:                 a KC x NC block of B stays in L2/L3
        for pc in K, step KC:
            pack B[pc:pc+kc, jc:jc+nc] into NR-wide column panels (zero-padded)
            for ic in M, step MC:         an MC x KC block of A stays in L2
                pack A[ic:ic+mc, pc:pc+kc] into MR-tall row panels (zero-padded)
                macro kernel: for each B panel (kept in L1), for each A panel:
                    an MR x NR tile of C accumulated in vector registers over kc

The micro-tile comes from the target's vector unit (AVX-512: 12 x 32 f32, AVX2 + FMA:
6 x 16, NEON: 8 x 12, otherwise SSE-sized 4 x 8) and KC/MC/NC from its cache sizes. Packing
converts to the accumulation type and pads edges with zeros, so the micro-kernel always
computes a full tile; edge tiles are stored through a small scratch tile.

The macro kernel (the loops over micro-panels and the register-tiled micro-kernel) is
emitted by backends/cpu/gemm_macro.py, one internal function per module and tile
configuration; this file emits the blocking loops and the packing around it. Each product
site gets its own *range function*, `void f(ptr a, ptr b, ptr c, ptr scratch, i64 b0, i64 b1,
i64 m0, i64 m1, i64 n0, i64 n1)`, computing C[b0:b1, m0:m1, n0:n1] with the operand strides
built in; the scratch (`GemmPlan.scratch_elements`) is private to one call, so disjoint
ranges may run on different threads. This file knows nothing of HLO instructions: the dot
and convolution kernels describe their operands as `MatrixOperand`s. `emit_parallel_call`
splits one product across threads (`backends.cpu.threads`), each chunk with its own scratch.

A product given an elementwise epilogue (an output fusion's bias and activation:
backends/cpu/gemm_epilogue.py) gets a macro kernel of its own, which stores the epilogue of
each tile's complete sums (in the last K block) instead of the sums: C is written once.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from llvmlite import ir

from backends.cpu.gemm_epilogue import GemmEpilogue
from backends.cpu.gemm_macro import K_UNROLL, epilogue_macro_kernel, macro_kernel
from backends.cpu.object import Target
from backends.cpu.threads import emit_parallel_for, new_body, pack_context, unpack_context
from backends.elemental_convert import convert
from backends.llvm.irutil import (
    I64,
    PTR,
    const,
    element_pointer,
    for_range,
    i64,
    if_then,
    internal_function,
    llvm_type,
    nowrap_add,
    nowrap_mul,
    smin,
)
from hlo.dtypes import PrimitiveType
from hlo.errors import InternalError

# Products of at least this many multiply-adds are split across threads when asked, into
# at most PARALLEL_MAX_CHUNKS chunks (each needs its own packing scratch). Measured with the
# thread pool spinning between regions (threads.py, managed): 2 threads win from about
# 1x256x256 (4.8 -> 3.5 us) and tie at half that.
PARALLEL_MIN_WORK = 1 << 16
PARALLEL_MAX_CHUNKS = 8


# --- the target: vector unit and caches ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VectorUnit:
    """What the micro-kernel is shaped for: vector width, register count, fused multiply-add."""

    bits: int
    registers: int
    fma: bool


# CPU names (LLVM's) whose feature sets a feature string may leave implicit.
_AVX512_CPUS = ("skylake-avx512", "cascadelake", "cooperlake", "cannonlake", "icelake",
                "tigerlake", "sapphirerapids", "graniterapids", "emeraldrapids", "znver4",
                "znver5", "x86-64-v4")
_AVX2_CPUS = ("haswell", "broadwell", "skylake", "alderlake", "raptorlake", "meteorlake",
              "arrowlake", "lunarlake", "znver1", "znver2", "znver3", "x86-64-v3")


def vector_unit(target: Target) -> VectorUnit:
    """The vector unit of `target` from its triple, feature string and CPU name."""
    arch = target.triple.split("-", 1)[0]
    enabled = {f[1:] for f in target.features.split(",") if f.startswith("+")}
    disabled = {f[1:] for f in target.features.split(",") if f.startswith("-")}
    if arch in ("aarch64", "arm64", "aarch64_be"):
        return VectorUnit(128, 32, True)
    if arch not in ("x86_64", "amd64") and not (arch.startswith("i") and arch.endswith("86")):
        return VectorUnit(128, 16, False)
    cpu = target.cpu
    avx512_cpu = cpu.startswith(_AVX512_CPUS)
    avx2_cpu = avx512_cpu or cpu.startswith(_AVX2_CPUS)
    if "avx512f" in enabled or (avx512_cpu and "avx512f" not in disabled):
        return VectorUnit(512, 32, True)
    if {"avx", "avx2"} & enabled or (avx2_cpu and "avx" not in disabled):
        fma = "fma" in enabled or (avx2_cpu and "fma" not in disabled)
        return VectorUnit(256, 16, fma)
    return VectorUnit(128, 16, False)


@dataclass(frozen=True, slots=True)
class Caches:
    """Data cache bytes available to one core: L1, L2 and a share of the last level."""

    l1: int
    l2: int
    l3: int


_KIB = 1024
_MIB = 1024 * 1024
DEFAULT_CACHES = Caches(32 * _KIB, 512 * _KIB, 2 * _MIB)
# Per-core cache sizes of CPUs (LLVM names, matched by prefix) that differ from the default.
_CACHES: tuple[tuple[str, Caches], ...] = (
    ("znver5", Caches(48 * _KIB, 1 * _MIB, 4 * _MIB)),
    ("znver4", Caches(32 * _KIB, 1 * _MIB, 4 * _MIB)),
    ("znver3", Caches(32 * _KIB, 512 * _KIB, 4 * _MIB)),
    ("znver2", Caches(32 * _KIB, 512 * _KIB, 4 * _MIB)),
    ("skylake-avx512", Caches(32 * _KIB, 1 * _MIB, 1 * _MIB)),
    ("cascadelake", Caches(32 * _KIB, 1 * _MIB, 1 * _MIB)),
    ("icelake", Caches(48 * _KIB, 1 * _MIB, 1 * _MIB)),
    ("sapphirerapids", Caches(48 * _KIB, 2 * _MIB, 2 * _MIB)),
    ("haswell", Caches(32 * _KIB, 256 * _KIB, 2 * _MIB)),
    ("skylake", Caches(32 * _KIB, 256 * _KIB, 2 * _MIB)),
    ("apple", Caches(128 * _KIB, 4 * _MIB, 4 * _MIB)),
    ("neoverse", Caches(64 * _KIB, 1 * _MIB, 2 * _MIB)),
)


def target_caches(target: Target) -> Caches:
    """Per-core cache sizes of `target`'s CPU, or the default for CPUs not in the table."""
    for prefix, caches in _CACHES:
        if target.cpu.startswith(prefix):
            return caches
    return DEFAULT_CACHES


def kernel_target(ctx: Any) -> Target:
    """The target the kernel context `ctx` compiles for.

    A context may carry it as `target`; otherwise it comes from the CPU options of the
    compiler behind the kernel scope, and is the host when neither is known.
    """
    target = getattr(ctx, "target", None)
    if isinstance(target, Target):
        return target
    compiler = getattr(getattr(ctx, "parent", None), "compiler", None)
    options = getattr(compiler, "options", None)
    if options is None:
        return _resolve(None, None, None)
    return _resolve(options.target_triple, options.target_cpu, options.target_features)


@functools.lru_cache(maxsize=16)
def _resolve(triple: str | None, cpu: str | None, features: str | None) -> Target:
    return Target.resolve(triple, cpu, features)


# --- configuration -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GemmConfig:
    """Register tile and cache blocking of the product for one accumulation type.

    Attributes:
        acc_t: the accumulation (and C) element type.
        lanes: elements per vector register.
        mr: rows of the register tile (broadcast elements of A).
        nr_vectors: vectors per tile row; the tile has nr = lanes * nr_vectors columns.
        kc, mc, nc: cache blocks over K (B panel in L1), M (A block in L2), N (B block).
    """

    acc_t: PrimitiveType
    lanes: int
    mr: int
    nr_vectors: int
    kc: int
    mc: int
    nc: int

    @property
    def nr(self) -> int:
        return self.lanes * self.nr_vectors

    @property
    def name(self) -> str:
        return f"{self.acc_t.value}.{self.mr}x{self.nr}"

    @staticmethod
    def for_target(target: Target, acc_t: PrimitiveType) -> GemmConfig:
        """The configuration for `acc_t` products on `target`."""
        return _config(vector_unit(target), target_caches(target), acc_t)


@functools.lru_cache(maxsize=64)
def _config(unit: VectorUnit, caches: Caches, acc_t: PrimitiveType) -> GemmConfig:
    if not (acc_t.is_float or acc_t.is_integer):
        raise InternalError(f"no GEMM for accumulation type {acc_t.value}")
    # Integer lanes stay as wide as f32 ones: narrower integer vectors buy nothing on the
    # targets here (x86 has no byte multiply) and keep the tile the same size.
    lanes = max(1, unit.bits // max(acc_t.bits, 32))
    if unit.registers >= 32:
        mr, nr_vectors = (12, 2) if unit.bits >= 512 else (8, 3)
    elif unit.fma:
        mr, nr_vectors = 6, 2
    else:
        # Without FMA each multiply-add needs a temporary register too.
        mr, nr_vectors = 4, 2
    nr = lanes * nr_vectors
    size = acc_t.byte_size
    # A B micro-panel (kc x nr) fills half of L1, leaving room for the A panel and C.
    kc = _clamp(_round_down(caches.l1 // 2 // (nr * size), 16), 64, 512)
    # The packed A block (mc x kc) fills half of L2.
    mc = _clamp(_round_down(caches.l2 // 2 // (kc * size), mr), mr, 1024)
    # The packed B block (kc x nc) fills half of this core's share of the last level.
    nc = _clamp(_round_down(caches.l3 // 2 // (kc * size), nr), nr, 8192)
    return GemmConfig(acc_t, lanes, mr, nr_vectors, kc, mc, nc)


def _round_down(x: int, multiple: int) -> int:
    return max(multiple, x - x % multiple)


def _round_up(x: int, multiple: int) -> int:
    return -(-x // multiple) * multiple


def _clamp(x: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, x))


# --- the problem -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MatrixOperand:
    """Where element (batch, row, column) of a strided matrix operand lies.

    Its offset from the base pointer is batch * batch_stride + row * row_stride +
    column * column_stride elements of `element_type`.
    """

    element_type: PrimitiveType
    batch_stride: int
    row_stride: int
    column_stride: int

    def offset(self, b: ir.IRBuilder, batch: ir.Value, row: ir.Value,
               column: ir.Value) -> ir.Value:
        """The element offset of (batch, row, column) as an i64."""
        pairs = ((batch, self.batch_stride), (row, self.row_stride),
                 (column, self.column_stride))
        terms = [nowrap_mul(b, v, s) for v, s in pairs if s != 0]
        return nowrap_add(b, *terms) if terms else i64(0)

    def load(self, b: ir.IRBuilder, base: ir.Value, batch: ir.Value, row: ir.Value,
             column: ir.Value, acc_t: PrimitiveType) -> ir.Value:
        """Element (batch, row, column) of the operand at `base`, converted to `acc_t`."""
        t = self.element_type
        ptr = element_pointer(b, base, llvm_type(t), self.offset(b, batch, row, column))
        return convert(b, t, acc_t, b.load(ptr, typ=llvm_type(t), align=t.byte_size))

    def emit_pack(self, b: ir.IRBuilder, config: GemmConfig, base: ir.Value, dst: ir.Value,
                  batch: ir.Value, row0: ir.Value, rows: ir.Value, col0: ir.Value,
                  cols: ir.Value) -> None:
        """Pack rows [row0, row0 + rows) x columns [col0, col0 + cols) as A panels.

        dst[p][k][r] = A[batch, row0 + p*MR + r, col0 + k], converted to the accumulation
        type; the rows of the last panel past `rows` are zeros.
        """
        acc_t = config.acc_t

        def load(row: ir.Value, column: ir.Value) -> ir.Value:
            return self.load(b, base, batch, row, column, acc_t)

        _pack_panels(b, dst, acc_t, config.mr, (row0, rows), (col0, cols), load, "pa")


def _pack_panels(b: ir.IRBuilder, dst: ir.Value, acc_t: PrimitiveType, width: int,
                lines: tuple[ir.Value, ir.Value], depth: tuple[ir.Value, ir.Value],
                load: Callable[[ir.Value, ir.Value], ir.Value], name: str) -> None:
    """Pack `width`-line panels: dst[p][k][w] = load(first + p*width + w, k0 + k) for the
    lines [first, first + count) and k < kn, where lines = (first, count) and depth =
    (k0, kn); the lines of the last panel past `count` are zeros.

    A's panels are MR rows, B's NR columns; `load` returns the element of one line and
    depth index, converted to `acc_t`. Loops are named `name`, `name.k` and `name.edge`.
    """
    (first, count), (k0, kn) = lines, depth
    elem = llvm_type(acc_t)
    full = b.udiv(count, i64(width))
    with for_range(b, 0, full, name=name) as p:
        line0 = nowrap_add(b, first, nowrap_mul(b, p, width))
        panel = nowrap_mul(b, nowrap_mul(b, p, width), kn)
        with for_range(b, 0, kn, name=f"{name}.k") as k:
            at_k = nowrap_add(b, k0, k)
            at = nowrap_add(b, panel, nowrap_mul(b, k, width))
            for w in range(width):
                value = load(nowrap_add(b, line0, i64(w)), at_k)
                b.store(value, element_pointer(b, dst, elem, nowrap_add(b, at, i64(w))))
    rest = b.sub(count, nowrap_mul(b, full, width))
    with if_then(b, b.icmp_signed(">", rest, i64(0))):
        line0 = nowrap_add(b, first, nowrap_mul(b, full, width))
        panel = nowrap_mul(b, nowrap_mul(b, full, width), kn)
        last = b.sub(nowrap_add(b, line0, rest), i64(1))
        with for_range(b, 0, kn, name=f"{name}.edge") as k:
            at_k = nowrap_add(b, k0, k)
            at = nowrap_add(b, panel, nowrap_mul(b, k, width))
            for w in range(width):
                line = nowrap_add(b, line0, i64(w))
                inside = b.icmp_signed("<", i64(w), rest)
                # Lines past the edge read the last line and store zero: no branches.
                value = load(b.select(inside, line, last), at_k)
                value = b.select(inside, value, const(acc_t, 0))
                b.store(value, element_pointer(b, dst, elem, nowrap_add(b, at, i64(w))))


class RowPanelSource(Protocol):
    """A GEMM's A operand as a packing routine: a strided MatrixOperand, or an implicit
    matrix such as the im2col view of a convolution's input."""

    def emit_pack(self, b: ir.IRBuilder, config: GemmConfig, base: ir.Value, dst: ir.Value,
                  batch: ir.Value, row0: ir.Value, rows: ir.Value, col0: ir.Value,
                  cols: ir.Value) -> None:
        """dst[p][k][r] = A[batch, row0 + p*MR + r, col0 + k] in the accumulation type, for
        p < ceil(rows / MR) and k < cols; rows past `rows` are zeros. `base` is the pointer
        the range function was given for A."""


@dataclass(frozen=True, slots=True)
class GemmPlan:
    """One product site: C[batch, m, n] = sum_k A[batch, m, k] * B[batch, k, n].

    C is of the accumulation type with unit column stride; its batch and row strides are
    given (a conv may write every group's columns into one wider row). With an `epilogue`
    (C dense), the last K block stores the epilogue's values instead of C's sums.
    """

    config: GemmConfig
    batch: int
    m: int
    n: int
    k: int
    a: RowPanelSource
    b: MatrixOperand
    c_batch_stride: int
    c_row_stride: int
    epilogue: GemmEpilogue | None = None

    @staticmethod
    def create(target: Target, acc_t: PrimitiveType, batch: int, m: int, n: int, k: int,
               a: RowPanelSource, b: MatrixOperand, c_batch_stride: int | None = None,
               c_row_stride: int | None = None,
               epilogue: GemmEpilogue | None = None) -> GemmPlan:
        """The plan for one product; C defaults to a dense row-major [batch, m, n].

        The plan drops `epilogue` for an empty K (no K block stores C): check
        `plan.epilogue` to know whether the product applies it.
        """
        base = GemmConfig.for_target(target, acc_t)
        # Blocks no larger than the problem, and K split into equal blocks (300 is two
        # blocks of 152, not 256 and 44).
        k_blocks = max(1, -(-k // base.kc))
        kc = max(1, _round_up(-(-k // k_blocks), K_UNROLL))
        mc = min(base.mc, _round_up(max(m, 1), base.mr))
        nc = min(base.nc, _round_up(max(n, 1), base.nr))
        config = GemmConfig(acc_t, base.lanes, base.mr, base.nr_vectors, kc, mc, nc)
        c_batch_stride = m * n if c_batch_stride is None else c_batch_stride
        c_row_stride = n if c_row_stride is None else c_row_stride
        if epilogue is not None:
            sizes = tuple(math.prod(d) for d in (epilogue.batch_dims, epilogue.row_dims,
                                                 epilogue.col_dims))
            if sizes != (batch, m, n) or (c_batch_stride, c_row_stride) != (m * n, n):
                raise InternalError(f"GEMM epilogue over {epilogue.dims} for a C of "
                                    f"{batch}x{m}x{n} (strides {c_batch_stride}, "
                                    f"{c_row_stride})")
        return GemmPlan(config, batch, m, n, k, a, b, c_batch_stride, c_row_stride,
                        epilogue if k > 0 else None)

    @property
    def scratch_elements(self) -> int:
        """Accumulation-type elements of scratch one call of the range function needs."""
        cfg = self.config
        return cfg.mc * cfg.kc + cfg.kc * cfg.nc + cfg.mr * cfg.nr

    def epilogue_pointers(self) -> list[ir.Value]:
        """The epilogue's buffers (values of the calling function), passed to the range
        function after the scratch; none without an epilogue."""
        return [] if self.epilogue is None else self.epilogue.expression.pointers()

    def emit_range_function(self, module: ir.Module, name: str) -> ir.Function:
        """The range function of this product (see the module docstring); with an
        epilogue, its buffers are pointer arguments after the scratch."""
        extra = [f"epi{k}" for k in range(len(self.epilogue_pointers()))]
        fnty = ir.FunctionType(ir.VoidType(), [PTR] * (4 + len(extra)) + [I64] * 6)
        names = ("a", "b", "c", "scratch", *extra, "batch_begin", "batch_end", "m_begin",
                 "m_end", "n_begin", "n_end")
        fn = internal_function(module, module.get_unique_name(name), fnty, names,
                               noinline=True, noalias=True)
        _RangeEmitter(self, fn).emit()
        return fn

    def emit_call(self, b: ir.IRBuilder, fn: ir.Function, a: ir.Value, bmat: ir.Value,
                  c: ir.Value, scratch: ir.Value) -> None:
        """Call the range function `fn` over the whole product."""
        b.call(fn, [a, bmat, c, scratch, *self.epilogue_pointers(), i64(0), i64(self.batch),
                    i64(0), i64(self.m), i64(0), i64(self.n)])

    # --- splitting across threads ----------------------------------------------------------

    def split(self) -> tuple[str, int]:
        """The axis a parallel call splits ("batch", "m" or "n") and its unit count: whole
        batch elements, MR-row or NR-column panels (so chunks keep full register tiles);
        the axis with the most units."""
        cfg = self.config
        units = {"n": -(-self.n // cfg.nr), "m": -(-self.m // cfg.mr), "batch": self.batch}
        axis = max(units, key=lambda name: units[name])
        return axis, units[axis]

    @property
    def parallel_chunks(self) -> int:
        """How many chunks (each with its own scratch) a parallel call may use: 1 for
        products too small to gain from threads."""
        if self.batch * self.m * self.n * self.k < PARALLEL_MIN_WORK:
            return 1
        return max(1, min(PARALLEL_MAX_CHUNKS, self.split()[1]))

    def emit_parallel_call(self, b: ir.IRBuilder, fn: ir.Function, a: ir.Value,
                           bmat: ir.Value, c: ir.Value, scratch: ir.Value,
                           threads: ir.Value) -> None:
        """Call the range function `fn` over the whole product split into up to
        `parallel_chunks` chunks on up to `threads` threads.

        `scratch` holds `parallel_chunks * scratch_elements` elements, one slice per chunk.
        Every element of C is computed by exactly the same operations as in a serial call
        (the K blocking does not depend on the split), so results are bit-identical.
        """
        chunks = self.parallel_chunks
        if chunks <= 1:
            self.emit_call(b, fn, a, bmat, c, scratch)
            return
        axis, units = self.split()
        body = self._parallel_body(b.module, fn, axis)
        ctx = pack_context(b, [a, bmat, c, scratch, *self.epilogue_pointers()])
        emit_parallel_for(b, body, ctx, units, 1, threads, max_chunks=chunks)

    def _parallel_body(self, module: ir.Module, fn: ir.Function, axis: str) -> ir.Function:
        """The parallel-loop body calling `fn` over one chunk of `axis` units."""
        body = new_body(module, f"{fn.name}.chunk")
        b = ir.IRBuilder(body.append_basic_block("entry"))
        ctx, begin, end, chunk = body.args
        a, bmat, c, scratch, *extra = unpack_context(b, ctx,
                                                     4 + len(self.epilogue_pointers()))
        elem = llvm_type(self.config.acc_t)
        own = element_pointer(b, scratch, elem, nowrap_mul(b, chunk, self.scratch_elements))
        ranges = {"batch": (i64(0), i64(self.batch)), "m": (i64(0), i64(self.m)),
                  "n": (i64(0), i64(self.n))}
        unit = {"batch": 1, "m": self.config.mr, "n": self.config.nr}[axis]
        extent = {"batch": self.batch, "m": self.m, "n": self.n}[axis]
        ranges[axis] = (nowrap_mul(b, begin, unit), smin(b, nowrap_mul(b, end, unit), i64(extent)))
        b.call(fn, [a, bmat, c, own, *extra, *ranges["batch"], *ranges["m"], *ranges["n"]])
        b.ret_void()
        return body


# --- the range function: blocking loops and packing ---------------------------------------


class _RangeEmitter:
    """Emits the body of one product's range function."""

    def __init__(self, plan: GemmPlan, fn: ir.Function) -> None:
        self.plan = plan
        self.cfg = plan.config
        self.acc_t = plan.config.acc_t
        self.elem = llvm_type(self.acc_t)
        self.fn = fn
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.a, self.bmat, self.c, self.scratch = fn.args[:4]
        self.epilogue_args = list(fn.args[4:-6])
        (self.batch_begin, self.batch_end, self.m_begin, self.m_end, self.n_begin,
         self.n_end) = fn.args[-6:]

    def emit(self) -> None:
        b, plan, cfg = self.b, self.plan, self.cfg
        a_packed = self.scratch
        b_packed = element_pointer(b, self.scratch, self.elem, i64(cfg.mc * cfg.kc))
        tile = element_pointer(b, self.scratch, self.elem, i64(cfg.mc * cfg.kc + cfg.kc * cfg.nc))
        if plan.epilogue is None:
            macro = macro_kernel(self.fn.module, cfg)
        else:
            # One K block: the macro kernel is called once per C element, always the last time.
            macro = epilogue_macro_kernel(self.fn.module, f"{self.fn.name}.macro.{cfg.name}",
                                          cfg, plan.epilogue, single_block=plan.k <= cfg.kc)
        with for_range(b, self.batch_begin, self.batch_end, name="batch") as bi:
            c_batch = element_pointer(b, self.c, self.elem, nowrap_mul(b, bi, plan.c_batch_stride))
            if plan.k == 0:
                self.clear(c_batch)
            else:
                self.blocks(bi, c_batch, macro, a_packed, b_packed, tile)
        b.ret_void()

    def blocks(self, bi: ir.Value, c_batch: ir.Value, macro: ir.Function, a_packed: ir.Value,
               b_packed: ir.Value, tile: ir.Value) -> None:
        """The jc / pc / ic block loops of one batch element, packing and calling `macro`."""
        b, plan, cfg = self.b, self.plan, self.cfg
        with for_range(b, self.n_begin, self.n_end, step=cfg.nc, name="jc") as jc:
            nc = smin(b, i64(cfg.nc), b.sub(self.n_end, jc))
            with for_range(b, 0, plan.k, step=cfg.kc, name="pc") as pc:
                kc = smin(b, i64(cfg.kc), b.sub(i64(plan.k), pc))
                self.pack_b(b_packed, bi, pc, kc, jc, nc)
                # The first K block overwrites C, the others add to it.
                accumulate = b.zext(b.icmp_signed("!=", pc, i64(0)), I64)
                # The last K block stores the epilogue's values (when there is one).
                last = None
                if plan.epilogue is not None:
                    last = b.zext(b.icmp_signed(">=", nowrap_add(b, pc, kc), i64(plan.k)), I64)
                with for_range(b, self.m_begin, self.m_end, step=cfg.mc, name="ic") as ic:
                    mc = smin(b, i64(cfg.mc), b.sub(self.m_end, ic))
                    plan.a.emit_pack(b, cfg, self.a, a_packed, bi, ic, mc, pc, kc)
                    c_offset = nowrap_add(b, nowrap_mul(b, ic, plan.c_row_stride), jc)
                    c_block = element_pointer(b, c_batch, self.elem, c_offset)
                    args = [a_packed, b_packed, c_block, i64(plan.c_row_stride), mc, nc, kc,
                            accumulate, tile]
                    if last is not None:
                        args += [last, bi, ic, jc, *self.epilogue_args]
                    b.call(macro, args)

    def clear(self, c_batch: ir.Value) -> None:
        """C[range] = 0 (a product over an empty K)."""
        b = self.b
        zero = const(self.acc_t, 0)
        with for_range(b, self.m_begin, self.m_end, name="zm") as m:
            row = nowrap_mul(b, m, self.plan.c_row_stride)
            with for_range(b, self.n_begin, self.n_end, name="zn") as n:
                b.store(zero, element_pointer(b, c_batch, self.elem, nowrap_add(b, row, n)))

    def pack_b(self, dst: ir.Value, bi: ir.Value, pc: ir.Value, kc: ir.Value, jc: ir.Value,
               nc: ir.Value) -> None:
        """dst[p][k][j] = B[bi, pc + k, jc + p*NR + j]; columns past nc are zeros."""
        b = self.b

        def load(column: ir.Value, row: ir.Value) -> ir.Value:
            return self.plan.b.load(b, self.bmat, bi, row, column, self.acc_t)

        _pack_panels(b, dst, self.acc_t, self.cfg.nr, (jc, nc), (pc, kc), load, "pb")


__all__ = [
    "Caches",
    "GemmConfig",
    "GemmPlan",
    "MatrixOperand",
    "RowPanelSource",
    "VectorUnit",
    "kernel_target",
    "target_caches",
    "vector_unit",
]
