"""Register-tiled direct convolution for float convolutions of one group (see the
`register tiles` path in backends/cpu/conv.py): a zero-padded copy of the input, then MR
pixels x NR output features accumulated in vector registers straight from it and the
(HWIO) kernel, without packing; split across threads over pixel tiles. An output fusion's
epilogue (bias, activation: backends/cpu/fused_expression.py) is applied to each tile's
accumulators before they are stored, so the fused output is written once."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from llvmlite import ir

from backends.cpu import gemm as cpu_gemm
from backends.cpu.conv_geometry import (
    ConvGeometry,
    direct_output,
    element_offset,
    output_index,
    pixel_coordinates,
    store_output,
)
from backends.cpu.dot import group_strides
from backends.cpu.fused_expression import ExpressionFunction, FusedExpression
from backends.cpu.gemm import (
    Caches,
    GemmConfig,
    kernel_target,
    target_caches,
)
from backends.cpu.gemm_macro import K_UNROLL
from backends.cpu.kernels import KernelContext
from backends.cpu.threads import call_ranges, range_function
from backends.llvm.arith import (
    add_scalar,
    convert_scalar,
    multiply_add,
)
from backends.llvm.index import delinearize, row_major_strides
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import (
    NOWRAP,
    alloca_at_entry,
    const,
    for_range,
    i64,
    if_else,
    llvm_type,
    loop_nest,
    map_lanes,
    smin,
    splat,
)
from backends.llvm.window import kernel_positions, place
from hlo.shape import Shape

# --- register-tiled direct convolution --------------------------------------------------------

# Padded input copies of at least this many elements are split across threads. The copy
# is memory-bound, so threads gain little on it: splitting the batch-32 bench CNN's copies
# (111K and 332K elements) made the whole network slower (min 2.17 -> 2.23 ms, 2-core
# Zen 3 VM, thread pool already warm), so copies that size stay serial.
PARALLEL_MIN_COPY = 1 << 19
# Contiguous window segments up to this long are unrolled completely.
MAX_UNROLLED_SEGMENT = 32


# Convolutions of fewer multiply-adds take the direct loop nest: for them the padded input
# copy (arena bytes) outweighs the time the tiles save (a few microseconds at most).
TILED_MIN_MACS = 1 << 15


def tiled_applies(conv: ConvGeometry) -> bool:
    """Whether the register-tiled path computes `conv`: one float group, enough work."""
    macs = conv.pixels * conv.kernel_out * conv.kernel_in * math.prod(conv.kernel_sizes)
    return (conv.acc_t.is_float and conv.groups == 1 and macs > 0
            and macs >= TILED_MIN_MACS)


@dataclass(frozen=True)
class _Tiled:
    """The register-tiled direct convolution of one instruction.

    The input is first copied, in the accumulation type, into a buffer `xp` laid out
    [batch, spatial..., feature] with its padding and lhs-dilation holes written out as
    zeros, so that output pixel (b, o) reads window position w at
    xp[b, o * stride + w * rhs_dilation, :] with no test at all. The kernel is the matrix
    B[(window position, input feature), output feature] with unit column stride (in place
    for HWIO kernels whose output features fill whole register tiles, else a zero-padded
    copy). A tile of MR output pixels x NR output features is accumulated in vector
    registers, as the GEMM micro-kernel does, but reading the rows of A straight from `xp`:
    window positions along the innermost spatial dimension are adjacent in `xp` (without
    rhs dilation or reversal there), so K runs over `segment` contiguous elements per
    outer window position. K is blocked as the GEMM's is (a block of B stays in L1): a
    block is `positions` outer window positions times a `piece` of their segments; later
    blocks add to C.
    """

    conv: ConvGeometry
    config: GemmConfig
    padded: tuple[int, ...]       # spatial sizes of xp
    segment: int                  # contiguous K elements per outer window position
    outer: tuple[int, ...]        # kernel sizes of the window dims walked by the outer loop
    piece: int                    # segment elements per K block (divides segment)
    positions: int                # outer window positions per K block
    n_padded: int                 # output features rounded up to whole tiles

    @staticmethod
    def create(conv: ConvGeometry, config: GemmConfig) -> _Tiled:
        padded = tuple((o - 1) * wd.stride + (k - 1) * wd.window_dilation + 1
                       for o, k, wd in zip(conv.out_sizes, conv.kernel_sizes, conv.window,
                                           strict=True))
        # A K block of B (kc x NR) may fill up to 3/4 of L1: the A rows are read as
        # broadcasts, and one block over 3x3 windows of 32 features saves a pass over C.
        k_limit = config.kc * 3 // 2
        last = conv.window[-1] if conv.window else None
        merge = (last is not None and last.window_dilation == 1 and not last.window_reversal
                 and conv.kernel_sizes[-1] * conv.kernel_in <= k_limit)
        segment = conv.kernel_in * (conv.kernel_sizes[-1] if merge else 1)
        outer = tuple(conv.kernel_sizes[:-1] if merge else conv.kernel_sizes)
        pieces = -(-segment // k_limit)
        while segment % pieces:
            pieces += 1
        piece = segment // pieces
        # Equal blocks of outer positions, as few as fit.
        blocks = -(-math.prod(outer) * piece // k_limit)
        positions = -(-math.prod(outer) // blocks)
        n_padded = -(-conv.kernel_out // config.nr) * config.nr
        return _Tiled(conv, config, padded, segment, outer, piece, positions, n_padded)

    @property
    def depth(self) -> int:
        """K: window positions times input features."""
        return math.prod(self.conv.kernel_sizes) * self.conv.kernel_in

    @property
    def tiles(self) -> int:
        """Tiles of MR output pixels (the unit of the parallel split)."""
        return -(-self.conv.pixels // self.config.mr)

    @property
    def position_blocks(self) -> int:
        return -(-math.prod(self.outer) // self.positions)

    @property
    def k_blocks(self) -> int:
        return self.position_blocks * (self.segment // self.piece)

    @property
    def xp_dims(self) -> tuple[int, ...]:
        return (self.conv.out_batch, *self.padded, self.conv.kernel_in)

    def block_tiles(self, caches: Caches) -> int:
        """Pixel tiles per block: what a block reads of A for one K block, and its rows of
        C, stay in half of L2 while every output feature tile passes over them."""
        k_block = self.positions * self.piece
        row_bytes = self.config.mr * (k_block + self.conv.kernel_out) * self.config.acc_t.byte_size
        return max(1, caches.l2 // 2 // row_bytes)


def emit_tiled(ctx: KernelContext, conv: ConvGeometry, lhs: IrArray, rhs: IrArray,
               out: IrArray, epilogue: FusedExpression | None = None) -> None:
    """out = convolution by register tiles over a padded copy of the input (see _Tiled),
    then `epilogue` (when given; it is marked applied) on every element before its store.

    With a thread count, the copy is split over its rows and the tiles over pixel tiles
    (products of at least the GEMM's PARALLEL_MIN_WORK multiply-adds): every output
    element is computed by the same operations whatever the split.
    """
    b = ctx.builder
    target = kernel_target(ctx)
    tiled = _Tiled.create(conv, GemmConfig.for_target(target, conv.acc_t))
    threads = getattr(ctx, "threads", None)
    xp = ctx.temp_array(Shape.array(conv.acc_t, tiled.xp_dims), name="conv.xp")
    copy = _padded_copy_function(ctx.module, f"{b.function.name}.pad", tiled, lhs)
    rows = math.prod(tiled.xp_dims[:-1])
    grain = max(1, PARALLEL_MIN_COPY // 2 // conv.kernel_in)
    parallel = threads is not None and rows * conv.kernel_in >= PARALLEL_MIN_COPY
    call_ranges(b, copy, [lhs.ptr, xp.ptr], rows, grain, threads if parallel else None)
    kernel, ldb = _tiled_kernel(ctx, tiled, rhs)
    direct = direct_output(conv, out)
    c = out if direct else ctx.temp_array(Shape.array(conv.acc_t, (conv.pixels, conv.kernel_out)),
                                          name="conv.c")
    # The tiles apply the epilogue when they store the output itself, else store_output.
    tile_epilogue = epilogue if direct else None
    fn = _tiled_range_function(ctx.module, f"{b.function.name}.tiles", tiled, ldb,
                               tiled.block_tiles(target_caches(target)), tile_epilogue)
    min_work = cpu_gemm.PARALLEL_MIN_WORK
    tile_work = conv.kernel_out * tiled.depth * tiled.config.mr
    parallel = threads is not None and tiled.tiles * tile_work >= min_work
    pointers = [xp.ptr, kernel.ptr, c.ptr]
    if tile_epilogue is not None:
        pointers += tile_epilogue.pointers()
    call_ranges(b, fn, pointers, tiled.tiles, max(1, min_work // 2 // tile_work),
                threads if parallel else None)
    if not direct:
        finish = None if epilogue is None else epilogue.bind(b, epilogue.pointers())
        store_output(ctx, conv, c, out, finish)
    if epilogue is not None:
        epilogue.applied = True


def _padded_copy_function(module: ir.Module, name: str, tiled: _Tiled,
                          lhs: IrArray) -> ir.Function:
    """`void f(ptr lhs, ptr xp, i64 r0, i64 r1)`: rows [r0, r1) of xp (one per batch and
    padded spatial position): xp[b, q..., i] = lhs at the input position window coordinate
    q reads, or zero where q falls on padding or a lhs-dilation hole."""
    fn, b = range_function(module, name, ["lhs", "xp"])
    src_arr = IrArray(fn.args[0], lhs.shape)
    xp = IrArray(fn.args[1], Shape.array(tiled.conv.acc_t, tiled.xp_dims))
    conv = tiled.conv
    labels = conv.labels
    acc_t = conv.acc_t
    x_strides = row_major_strides(lhs.shape.dims)
    features = conv.kernel_in
    zero = const(acc_t, 0)
    with for_range(b, fn.args[2], fn.args[3], name="pad.row") as row:
        ob, *qs = delinearize(b, row, list(tiled.xp_dims[:-1]))
        valid: ir.Value = ir.Constant(ir.IntType(1), 1)
        positions = []
        for q, wd, size in zip(qs, conv.window, conv.in_sizes, strict=True):
            p = b.sub(q, i64(wd.padding_low))
            ok = b.icmp_signed(">=", p, i64(0))
            if wd.base_dilation != 1:
                ok = b.and_(ok, b.icmp_signed("==", b.srem(p, i64(wd.base_dilation)), i64(0)))
                p = b.sdiv(p, i64(wd.base_dilation))
            valid = b.and_(valid, b.and_(ok, b.icmp_signed("<", p, i64(size))))
            positions.append(p)
        at = b.mul(row, i64(features))
        with if_else(b, valid) as (then, otherwise):
            with then:
                src = element_offset(b, x_strides, [(labels.input_batch, ob),
                                             *zip(labels.input_spatial, positions, strict=True)])
                with for_range(b, 0, features, name="pad.i") as i:
                    offset = b.add(src, b.mul(i, i64(x_strides[labels.input_feature])))
                    value = src_arr.load_linear(b, offset)
                    xp.store_linear(b, b.add(at, i), convert_scalar(b, value, lhs.element_type,
                                                                    acc_t))
            with otherwise:
                with for_range(b, 0, features, name="pad.z") as i:
                    xp.store_linear(b, b.add(at, i), zero)
    b.ret_void()
    return fn


def _tiled_kernel(ctx: KernelContext, tiled: _Tiled, rhs: IrArray) -> tuple[IrArray, int]:
    """The kernel as B [K, n_padded] with unit column stride, and its row stride: rhs
    itself when it already is one, else a copy with zero columns past the features."""
    conv = tiled.conv
    labels = conv.labels
    rows = (*labels.kernel_spatial, labels.kernel_input_feature)
    strides = group_strides(rhs.shape, [rows, (labels.kernel_output_feature,)])
    if (strides is not None and strides[1] == 1 and rhs.element_type is conv.acc_t
            and tiled.n_padded == conv.kernel_out):
        return rhs, strides[0]
    b = ctx.builder
    dims = [*conv.kernel_sizes, conv.kernel_in, tiled.n_padded]
    copy: IrArray = ctx.temp_array(Shape.array(conv.acc_t, tuple(dims)), name="conv.kernel")
    zero = const(conv.acc_t, 0)
    with loop_nest(b, dims, name="conv.kcopy") as idx:
        inside = b.icmp_signed("<", idx[-1], i64(conv.kernel_out))
        feature = b.select(inside, idx[-1], i64(0))
        index = place(rhs.shape.rank, [*zip(rows, idx[:-1], strict=True),
                                        (labels.kernel_output_feature, feature)])
        value = convert_scalar(b, rhs.load(b, index), rhs.element_type, conv.acc_t)
        copy.store(b, idx, b.select(inside, value, zero))
    return copy, tiled.n_padded


def _tiled_range_function(module: ir.Module, name: str, tiled: _Tiled, ldb: int,
                          block: int, epilogue: FusedExpression | None) -> ir.Function:
    """`void f(ptr xp, ptr kernel, ptr c, ptr epilogue operands..., i64 t0, i64 t1)`: C
    for pixel tiles [t0, t1) (the epilogue's values when there is one)."""
    names = ["xp", "kernel", "c"]
    if epilogue is not None:
        names += [f"epi{k}" for k in epilogue.parameters]
    fn, b = range_function(module, name, names)
    finish = None
    if epilogue is not None:
        finish = epilogue.bind(b, fn.args[3:len(names)])
    _TileEmitter(b, tiled, ldb, block, finish).emit()
    return fn


class _TileEmitter:
    """Emits a tiled range function: blocks of pixel tiles, output feature tiles, then
    one MR x NR register tile per (pixel tile, feature tile); with `finish` (an epilogue),
    the last K block stores finish(index, sum) instead of the sum."""

    def __init__(self, b: ir.IRBuilder, tiled: _Tiled, ldb: int, block: int,
                 finish: ExpressionFunction | None) -> None:
        self.tiled = tiled
        self.finish = finish
        self.out_dims = tiled.conv.output_dims
        self.cfg = tiled.config
        self.ldb = ldb
        self.block = block
        self.acc_t = tiled.config.acc_t
        self.elem = llvm_type(self.acc_t)
        self.vec = ir.VectorType(self.elem, self.cfg.lanes)
        self.xp, self.kernel, self.c = b.function.args[:3]
        self.t0, self.t1 = b.function.args[-2:]
        self.b = b
        self.acc = [[alloca_at_entry(self.b, self.vec, name=f"acc{r}.{v}")
                     for v in range(self.cfg.nr_vectors)] for r in range(self.cfg.mr)]
        # The edge tile, written by vectors and read by elements.
        self.tile_vectors = alloca_at_entry(self.b, self.vec,
                                            count=self.cfg.mr * self.cfg.nr_vectors,
                                            name="tile")
        self.tile = self.b.bitcast(self.tile_vectors, self.elem.as_pointer())

    def emit(self) -> None:
        b, cfg, tiled = self.b, self.cfg, self.tiled
        pieces = tiled.segment // tiled.piece
        with for_range(b, self.t0, self.t1, step=self.block, name="tb") as tb:
            te = smin(b, b.add(tb, i64(self.block)), self.t1)
            with for_range(b, 0, tiled.position_blocks, name="kp") as kp:
                p0 = b.mul(kp, i64(tiled.positions))
                p1 = smin(b, b.add(p0, i64(tiled.positions)), i64(math.prod(tiled.outer)))
                with for_range(b, 0, pieces, name="kj") as kj:
                    j0 = b.mul(kj, i64(tiled.piece))
                    first = b.and_(b.icmp_signed("==", kp, i64(0)),
                                   b.icmp_signed("==", kj, i64(0)))
                    last = b.and_(b.icmp_signed("==", kp, i64(tiled.position_blocks - 1)),
                                  b.icmp_signed("==", kj, i64(pieces - 1)))
                    with for_range(b, 0, tiled.n_padded, step=cfg.nr, name="tn") as n0:
                        with for_range(b, tb, te, name="tm") as t:
                            self.emit_tile(t, n0, (p0, p1, j0), (first, last))
        b.ret_void()

    def emit_tile(self, t: ir.Value, n0: ir.Value, k_block: tuple[ir.Value, ...],
                  order: tuple[ir.Value, ir.Value]) -> None:
        """C[tile t's pixels, n0:n0+NR] (+)= A rows @ B columns over one K block (outer
        window positions [p0, p1), segment elements [j0, j0 + piece)), in registers;
        `order` tells whether the K block is the first and whether it is the last."""
        b, cfg, conv = self.b, self.cfg, self.tiled.conv
        p0, p1, j0 = k_block
        m0 = b.mul(t, i64(cfg.mr))
        rows = smin(b, i64(cfg.mr), b.sub(i64(conv.pixels), m0))
        # Rows past the last pixel read the last pixel again (and are not stored).
        bases = [self.pixel_base(smin(b, b.add(m0, i64(r)), i64(conv.pixels - 1)), j0)
                 for r in range(cfg.mr)]
        zero = ir.Constant(self.vec, [const(self.acc_t, 0)] * cfg.lanes)
        for row in self.acc:
            for slot in row:
                b.store(zero, slot)
        b_col = b.gep(self.kernel, [b.add(b.mul(j0, i64(self.ldb)), n0)], inbounds=True,
                      source_etype=self.elem)
        with for_range(b, p0, p1, name="win") as p:
            x_off, k_row = self.window_offsets(delinearize(b, p, list(self.tiled.outer)))
            a_ptrs = [b.gep(base, [x_off], inbounds=True, source_etype=self.elem)
                      for base in bases]
            b_ptr = b.gep(b_col, [b.mul(k_row, i64(self.ldb))], inbounds=True,
                          source_etype=self.elem)
            self.emit_segment(a_ptrs, b_ptr)
        cols = smin(b, i64(cfg.nr), b.sub(i64(conv.kernel_out), n0))
        c_tile = b.gep(self.c, [b.add(b.mul(m0, i64(conv.kernel_out)), n0)], inbounds=True,
                       source_etype=self.elem)
        full = b.and_(b.icmp_signed("==", rows, i64(cfg.mr)),
                      b.icmp_signed("==", cols, i64(cfg.nr)))
        with if_else(b, full, likely=True) as (then, otherwise):
            with then:
                self.store_full(c_tile, m0, n0, order)
            with otherwise:
                self.store_edge(c_tile, (m0, n0), (rows, cols), order)

    def pixel_base(self, m: ir.Value, j0: ir.Value) -> ir.Value:
        """Pointer to element j0 of window position 0 of output pixel m in xp."""
        b, tiled = self.b, self.tiled
        conv = tiled.conv
        ob, *opos = delinearize(b, m, [conv.out_batch, *conv.out_sizes])
        strides = row_major_strides(tiled.xp_dims)
        at = b.add(b.mul(ob, i64(strides[0])), j0)
        for d, (o, wd) in enumerate(zip(opos, conv.window, strict=True)):
            at = b.add(at, b.mul(o, i64(wd.stride * strides[d + 1])))
        return b.gep(self.xp, [at], inbounds=True, source_etype=self.elem)

    def window_offsets(self, wpos: list[ir.Value]) -> tuple[ir.Value, ir.Value]:
        """The xp offset and the first kernel row of one outer window position."""
        b, tiled = self.b, self.tiled
        conv = tiled.conv
        strides = row_major_strides(tiled.xp_dims)
        x_off: ir.Value = i64(0)
        k_index: ir.Value = i64(0)
        kpos = kernel_positions(b, conv.window[:len(wpos)], wpos)
        for d, (w, k) in enumerate(zip(wpos, kpos, strict=True)):
            wd = conv.window[d]
            x_off = b.add(x_off, b.mul(w, i64(wd.window_dilation * strides[d + 1])))
            k_index = b.add(b.mul(k_index, i64(conv.kernel_sizes[d])), k)
        # A merged innermost window dim (not among wpos) is walked by the segment itself.
        k_row = b.mul(k_index, i64(math.prod(conv.kernel_sizes[len(wpos):]) * conv.kernel_in))
        return x_off, k_row

    def emit_segment(self, a_ptrs: list[ir.Value], b_ptr: ir.Value) -> None:
        """acc += A[:, j] * B[j, :] for the contiguous j of one piece of a segment."""
        b, segment = self.b, self.tiled.piece
        if segment <= MAX_UNROLLED_SEGMENT:
            for j in range(segment):
                self.rank_one(a_ptrs, b_ptr, i64(j))
            return
        main = segment - segment % K_UNROLL
        with for_range(b, 0, main, step=K_UNROLL, name="k") as k:
            for u in range(K_UNROLL):
                self.rank_one(a_ptrs, b_ptr, b.add(k, i64(u)))
        for j in range(main, segment):
            self.rank_one(a_ptrs, b_ptr, i64(j))

    def rank_one(self, a_ptrs: list[ir.Value], b_ptr: ir.Value, j: ir.Value) -> None:
        b, cfg = self.b, self.cfg
        row = b.gep(b_ptr, [b.mul(j, i64(self.ldb))], inbounds=True, source_etype=self.elem)
        b_vecs = [b.load(b.gep(row, [i64(v * cfg.lanes)], inbounds=True,
                               source_etype=self.elem), typ=self.vec,
                         align=self.acc_t.byte_size)
                  for v in range(cfg.nr_vectors)]
        for r, a_ptr in enumerate(a_ptrs):
            a = b.load(b.gep(a_ptr, [j], inbounds=True, source_etype=self.elem), typ=self.elem,
                       align=self.acc_t.byte_size)
            a_vec = splat(b, a, cfg.lanes)
            for v, slot in enumerate(self.acc[r]):
                b.store(multiply_add(b, self.acc_t, b.load(slot), a_vec, b_vecs[v]), slot)

    def store_full(self, c_tile: ir.Value, m0: ir.Value, n0: ir.Value,
                   order: tuple[ir.Value, ir.Value]) -> None:
        """C tile = accumulators (first K block) or C tile += accumulators; the last K
        block stores them through the epilogue."""
        b, cfg = self.b, self.cfg
        first, last = order
        ldc = self.tiled.conv.kernel_out
        align = self.acc_t.byte_size
        pointers = [[b.gep(c_tile, [i64(r * ldc + v * cfg.lanes)], inbounds=True,
                           source_etype=self.elem) for v in range(cfg.nr_vectors)]
                    for r in range(cfg.mr)]

        def store(values: list[list[ir.Value]], finish: bool) -> None:
            if finish and self.finish is not None:
                values = self.finish_tile(values, m0, n0)
            for r, v in itertools.product(range(cfg.mr), range(cfg.nr_vectors)):
                b.store(values[r][v], pointers[r][v], align=align)

        acc = [[b.load(slot) for slot in row] for row in self.acc]
        if self.tiled.k_blocks == 1:
            store(acc, True)
            return
        with if_else(b, first) as (then, otherwise):
            with then:
                store(acc, False)
            with otherwise:
                totals = [[add_scalar(b, self.acc_t,
                                      b.load(pointers[r][v], typ=self.vec, align=align),
                                      acc[r][v])
                           for v in range(cfg.nr_vectors)] for r in range(cfg.mr)]
                if self.finish is None:
                    store(totals, False)
                    return
                with if_else(b, last) as (then_last, otherwise_last):
                    with then_last:
                        store(totals, True)
                    with otherwise_last:
                        store(totals, False)

    def finish_tile(self, values: list[list[ir.Value]], m0: ir.Value,
                    n0: ir.Value) -> list[list[ir.Value]]:
        """The epilogue of a full tile, element by element on its vectors' lanes (LLVM's
        SLP vectoriser turns the lanes back into vector operations). The features are
        computed once per tile, so loads that depend only on them (a bias) are shared
        by the rows."""
        b, cfg, conv = self.b, self.cfg, self.tiled.conv
        finish = self.finish
        assert finish is not None
        features = [b.add(n0, i64(j), flags=NOWRAP) for j in range(cfg.nr)]
        pixels = [b.add(m0, i64(r), flags=NOWRAP) for r in range(len(values))]
        coordinates = [pixel_coordinates(b, conv, m) for m in pixels]
        bases = [b.mul(m, i64(conv.kernel_out), flags=NOWRAP) for m in pixels]

        def element(r: int, j: int, value: ir.Value) -> ir.Value:
            f = features[j]
            index = output_index(conv, self.out_dims, coordinates[r], f,
                                 b.add(bases[r], f, flags=NOWRAP))
            return finish(index, value)

        return map_lanes(b, values, cfg.lanes, element)

    def store_edge(self, c_tile: ir.Value, origin: tuple[ir.Value, ir.Value],
                   extent: tuple[ir.Value, ir.Value], order: tuple[ir.Value, ir.Value]) -> None:
        """The valid rows x cols corner of the tile at pixel m0, feature n0, through the
        stack tile."""
        b, cfg, conv = self.b, self.cfg, self.tiled.conv
        (m0, n0), (rows, cols), (first, last) = origin, extent, order
        for r, v in itertools.product(range(cfg.mr), range(cfg.nr_vectors)):
            ptr = b.gep(self.tile_vectors, [i64(r * cfg.nr_vectors + v)], inbounds=True,
                        source_etype=self.vec)
            b.store(b.load(self.acc[r][v]), ptr)
        with for_range(b, 0, rows, name="er") as r:
            m = b.add(m0, r, flags=NOWRAP)
            pixel = pixel_coordinates(b, conv, m) if self.finish is not None else []
            with for_range(b, 0, cols, name="ec") as j:
                src = b.gep(self.tile, [b.add(b.mul(r, i64(cfg.nr)), j)], inbounds=True,
                            source_etype=self.elem)
                dst = b.gep(c_tile, [b.add(b.mul(r, i64(conv.kernel_out)), j)],
                            inbounds=True, source_etype=self.elem)
                value = b.load(src, typ=self.elem)
                total = add_scalar(b, self.acc_t, b.load(dst, typ=self.elem), value)
                value = b.select(first, value, total)
                if self.finish is not None:
                    f = b.add(n0, j, flags=NOWRAP)
                    linear = b.add(b.mul(m, i64(conv.kernel_out), flags=NOWRAP), f,
                                   flags=NOWRAP)
                    index = output_index(conv, self.out_dims, pixel, f, linear)
                    value = b.select(last, self.finish(index, value), value)
                b.store(value, dst)
