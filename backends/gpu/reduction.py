"""GPU kernels for reduce, reduce-window and select-and-scatter.

Combiners are arbitrary scalar computations (variadic reduce included), inlined on register
values; as in XLA's GPU backend they are applied in a tree order, which the operation
semantics leave unspecified. The initial value is combined once, at the end.

* Row reduction (the reduced dimensions are the innermost ones, so each output reduces one
  contiguous row): T = 32, 256 or 1024 threads per row stride over it, so consecutive
  threads read consecutive elements; each warp combines its lanes with `shfl.sync.down`,
  and for T > 32 the warps meet in shared memory after a barrier. Few long rows are cut
  into segments, one block each, whose partials a second kernel combines.
* Any other reduction: one thread per output element walks the reduced elements. When the
  kept dimensions are innermost, neighbouring threads read neighbouring addresses (a
  column reduction, coalesced). With few outputs and many reduced elements the walk is
  split into chunks: a first kernel writes one partial per (chunk, output), a second one
  combines the partials with the initial value.

Each thread carries a `has` flag with its partial, so that lanes with no element (rows
shorter than the warp) never feed a value into the combiner.

Reduce-window runs one thread per output element over its window, in row-major order as
on the CPU; select-and-scatter fills the output with the initial value, then one thread
per source element selects its window position and scatters into it atomically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from llvmlite import ir

from backends.gpu.gather_scatter import atomic_supported, atomic_update
from backends.gpu.kernels import KernelContext, KernelFunction, emits_gpu
from backends.gpu.launch import (
    WARP,
    LaunchDims,
    barrier,
    block_id,
    ceil_div,
    for_elements,
    grid_stride_loop,
    shared_array,
    shared_element,
    shuffle_down,
    single_thread,
    storage_register,
    thread_id,
    wide,
)
from backends.gpu.plan import Slot, leaves
from backends.llvm.index import delinearize, linearize
from backends.llvm.irutil import I1, I8, I64, NOWRAP, for_range, i64, llvm_type, loop_nest
from backends.llvm.window import window_input_index
from hlo.attributes import Window
from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

# Split the per-output walk when fewer outputs than this would leave the GPU idle ...
SPLIT_MAX_OUTPUTS = 4096
# ... and there are at least this many reduced elements per output; chunks are this long.
SPLIT_MIN_REDUCED = 2048
CHUNK = 512
# Rows are cut into segments of this many elements, one block each, when there are fewer
# rows than SEGMENT_MAX_ROWS (at most MAX_SEGMENTS per row).
SEGMENT = 16384
SEGMENT_MAX_ROWS = 256
MAX_SEGMENTS = 1024


class Partial:
    """A running (variadic) value and its `has` flag, kept in stack slots of a kernel."""

    def __init__(self, kernel: KernelFunction, types: Sequence[ir.Type], name: str) -> None:
        entry = kernel.entry_builder()
        self.b = kernel.builder
        self.slots = [entry.alloca(t, name=f"{name}{k}") for k, t in enumerate(types)]
        self.has = entry.alloca(I1, name=f"{name}.has")
        for slot, t in zip(self.slots, types, strict=True):
            entry.store(ir.Constant(t, None), slot)
        entry.store(ir.Constant(I1, 0), self.has)

    def values(self) -> list[ir.Value]:
        return [self.b.load(s) for s in self.slots]

    def flag(self) -> ir.Value:
        return self.b.load(self.has)

    def set(self, values: Sequence[ir.Value], has: ir.Value) -> None:
        for slot, v in zip(self.slots, values, strict=True):
            self.b.store(v, slot)
        self.b.store(has, self.has)

    def add(self, ctx: KernelContext, comp: HloComputation, values: Sequence[ir.Value],
            valid: ir.Value | None = None) -> None:
        """partial = has ? comp(partial, values) : values (only where `valid`)."""
        b = self.b
        current = self.values()
        has = self.flag()
        combined = ctx.scalar_computation(b, comp, [*current, *values])
        merged = [b.select(has, c, v) for c, v in zip(combined, values, strict=True)]
        if valid is not None:
            merged = [b.select(valid, m, c) for m, c in zip(merged, current, strict=True)]
            has = b.or_(has, valid)
        else:
            has = ir.Constant(I1, 1)
        self.set(merged, has)


def _finish(ctx: KernelContext, b: ir.IRBuilder, comp: HloComputation, partial: Partial,
            inits: Sequence[ir.Value]) -> list[ir.Value]:
    """comp(init, partial) when the partial has a value, else init."""
    values = partial.values()
    combined = ctx.scalar_computation(b, comp, [*inits, *values])
    has = partial.flag()
    return [b.select(has, c, i) for c, i in zip(combined, inits, strict=True)]


def _scalar_loads(b: ir.IRBuilder, arrays: Sequence[Any]) -> list[ir.Value]:
    return [a.load(b, []) for a in arrays]


class ReduceSource(Protocol):
    """Where the kernels of a reduce read its inputs and initial values.

    `BufferSource` reads the reduce's operand buffers; a reduce fused with the elementwise
    producers of its inputs (`input_fusion.py`) computes them from the fusion's operands.
    """

    @property
    def slots(self) -> list[Slot]:
        """The buffers bound as the inputs of the kernel that walks the reduced elements."""

    @property
    def init_slots(self) -> list[Slot]:
        """The buffers a combining kernel binds after its partials and flags."""

    def inputs(self, kernel: KernelFunction) -> list[Any]:
        """The reduce's inputs as arrays (`load`, `load_linear`, `element_type`, `shape`)
        over the walking kernel's inputs."""

    def walk_inits(self, kernel: KernelFunction) -> list[Any]:
        """The initial values as rank-0 arrays, in the walking kernel (inputs `slots`)."""

    def combine_inits(self, kernel: KernelFunction, first: int) -> list[Any]:
        """The initial values as rank-0 arrays, in a combining kernel that bound
        `init_slots` from its input `first` on."""


@dataclass(frozen=True)
class BufferSource:
    """The inputs and initial values of a reduce, read from their buffers."""

    input_slots: list[Slot]
    init_buffers: list[Slot]

    @property
    def slots(self) -> list[Slot]:
        return [*self.input_slots, *self.init_buffers]

    @property
    def init_slots(self) -> list[Slot]:
        return list(self.init_buffers)

    def inputs(self, kernel: KernelFunction) -> list[Any]:
        return list(kernel.inputs[:len(self.input_slots)])

    def walk_inits(self, kernel: KernelFunction) -> list[Any]:
        return list(kernel.inputs[len(self.input_slots):])

    def combine_inits(self, kernel: KernelFunction, first: int) -> list[Any]:
        return list(kernel.inputs[first:])


@emits_gpu(Opcode.REDUCE)
def emit_reduce(ctx: KernelContext, instr: HloInstruction) -> None:
    n = len(instr.operands) // 2
    slots = [s for v in ctx.operands for s in leaves(v)]
    emit_reduce_from(ctx, instr, BufferSource(slots[:n], slots[n:]))


def emit_reduce_from(ctx: KernelContext, instr: HloInstruction, source: ReduceSource) -> None:
    """The kernels of the reduce `instr` writing `ctx.out`, reading through `source`."""
    outs = leaves(ctx.out)
    outputs = outs[0].shape.num_elements
    if outputs == 0:
        return
    dims = instr.operands[0].shape.dims
    reduced = sorted(instr.attrs["dimensions"])
    rank = len(dims)
    size = math.prod(dims[d] for d in reduced)
    if size == 0 or not reduced:
        _emit_per_output(ctx, instr, source, outs, reduced, split=1)
        return
    innermost = reduced == list(range(rank - len(reduced), rank))
    if innermost and size >= WARP:
        _emit_rows(ctx, instr, source, outs, size)
        return
    split = 1
    if outputs < SPLIT_MAX_OUTPUTS and size >= SPLIT_MIN_REDUCED:
        split = ceil_div(size, CHUNK)
    _emit_per_output(ctx, instr, source, outs, reduced, split)


# --- rows ------------------------------------------------------------------------------------


def _threads_per_row(size: int) -> int:
    if size >= 1 << 16:
        return 1024
    if size >= 1024:
        return 256
    return WARP


def _segments(rows: int, size: int) -> int:
    """How many blocks share one row: enough to fill the GPU when rows are few and long."""
    if rows >= SEGMENT_MAX_ROWS or size < 2 * SEGMENT:
        return 1
    return min(ceil_div(size, SEGMENT), MAX_SEGMENTS)


def _emit_rows(ctx: KernelContext, instr: HloInstruction, source: ReduceSource,
               outs: list[Slot], size: int) -> None:
    """One row of `size` contiguous elements per output; T threads per row (segment).

    A long row is cut into segments reduced by different blocks into partials, which a
    second kernel combines with the initial value.
    """
    comp: HloComputation = instr.attrs["to_apply"]
    rows = outs[0].shape.num_elements
    segments = _segments(rows, size)
    seg_len = ceil_div(size, segments)
    per_row = _threads_per_row(seg_len)
    rows_per_block = max(1, 256 // per_row)
    grid = ceil_div(rows, rows_per_block) * segments
    dims = LaunchDims((grid, 1, 1), (per_row, rows_per_block, 1))
    geometry = RowGeometry(rows, size, per_row, rows_per_block, segments, seg_len)
    if segments == 1:
        kernel = ctx.kernel(f"rows{per_row}", outs, source.slots)
        if kernel.is_new:
            _fill_rows(ctx, kernel, comp, source, geometry)
        ctx.launch(kernel, dims)
        return
    partials = [ctx.temp(Shape.array(s.shape.element_type, (segments, rows))) for s in outs]
    flags = ctx.temp(Shape.array(PrimitiveType.PRED, (segments, rows)))
    partial_slots = [p for p in partials if isinstance(p, Slot)]
    assert isinstance(flags, Slot) and len(partial_slots) == len(outs)
    first = ctx.kernel(f"segments{per_row}", [*partial_slots, flags], source.slots)
    if first.is_new:
        _fill_rows(ctx, first, comp, source, geometry)
    ctx.launch(first, dims)
    second = ctx.kernel("combine", outs, [*partial_slots, flags, *source.init_slots])
    if second.is_new:
        _fill_combine(ctx, second, comp, source, len(outs), segments, rows)
    ctx.launch(second, for_elements(rows))


@dataclass(frozen=True)
class RowGeometry:
    """How a row reduction is laid out over blocks and threads."""

    rows: int
    size: int
    per_row: int          # threads per row (segment)
    rows_per_block: int
    segments: int         # blocks per row
    seg_len: int          # elements per segment


def _fill_rows(ctx: KernelContext, kernel: KernelFunction, comp: HloComputation,
               source: ReduceSource, g: RowGeometry) -> None:
    """Segment s of row r: partial over [s * seg_len, min((s + 1) * seg_len, size)).

    With one segment the kernel writes comp(init, partial) to out[r]; otherwise it writes
    the partial and its has-flag to [s, r] of its two outputs.
    """
    b = kernel.builder
    xs = source.inputs(kernel)
    n = len(xs)
    types = [llvm_type(x.element_type) for x in xs]
    lane = wide(b, thread_id(b, "x"))
    block = wide(b, block_id(b))
    row_blocks = ceil_div(g.rows, g.rows_per_block)
    segment = b.udiv(block, i64(row_blocks))
    row_block = b.urem(block, i64(row_blocks))
    row = b.add(b.mul(row_block, i64(g.rows_per_block), flags=NOWRAP),
                wide(b, thread_id(b, "y")), flags=NOWRAP)
    partial = Partial(kernel, types, "acc")
    # Rows past the end (last block) keep an empty partial but still take part in the
    # shuffles and barriers, which every thread of a warp or block must reach.
    active = b.icmp_unsigned("<", row, i64(g.rows))
    base = b.mul(b.select(active, row, i64(0)), i64(g.size), flags=NOWRAP)
    start = b.mul(segment, i64(g.seg_len), flags=NOWRAP)
    stop = b.add(start, i64(g.seg_len), flags=NOWRAP)
    stop = b.select(b.icmp_unsigned("<", stop, i64(g.size)), stop, i64(g.size))
    with for_range(b, b.add(start, lane, flags=NOWRAP), stop, step=g.per_row, name="k") as k:
        at = b.add(base, k, flags=NOWRAP)
        partial.add(ctx, comp, [x.load_linear(b, at) for x in xs], active)
    _warp_reduce(ctx, b, comp, partial)
    if g.per_row > WARP:
        _block_reduce(ctx, kernel, comp, partial, types, g.per_row)
    is_writer = b.and_(active, b.icmp_unsigned("==", lane, i64(0)))
    with b.if_then(is_writer):
        if g.segments == 1:
            inits = source.walk_inits(kernel)
            results = _finish(ctx, b, comp, partial, _scalar_loads(b, inits))
            for out, v in zip(kernel.outputs, results, strict=True):
                out.store_linear(b, row, v)
        else:
            at = b.add(b.mul(segment, i64(g.rows), flags=NOWRAP), row, flags=NOWRAP)
            for out, v in zip(kernel.outputs[:n], partial.values(), strict=True):
                out.store_linear(b, at, v)
            kernel.outputs[n].store_linear(b, at, partial.flag())
    kernel.finish()


def _warp_reduce(ctx: KernelContext, b: ir.IRBuilder, comp: HloComputation,
                 partial: Partial) -> None:
    """Lane 0 ends with the combination of the warp's partials."""
    offset = WARP // 2
    while offset:
        values = [shuffle_down(b, v, offset) for v in partial.values()]
        has = shuffle_down(b, partial.flag(), offset)
        partial.add(ctx, comp, values, has)
        offset //= 2


def _block_reduce(ctx: KernelContext, kernel: KernelFunction, comp: HloComputation,
                  partial: Partial, types: Sequence[ir.Type], per_row: int) -> None:
    """Warp leaders meet in shared memory; warp 0 combines them (lane 0 holds the result)."""
    b = kernel.builder
    warps = per_row // WARP
    module = kernel.module
    shared = [shared_array(module, f"{kernel.name}_sv{k}", storage_register(t), warps)
              for k, t in enumerate(types)]
    shared_has = shared_array(module, f"{kernel.name}_sh", I8, warps)
    lane = wide(b, thread_id(b, "x"))
    warp = b.udiv(lane, i64(WARP))
    within = b.urem(lane, i64(WARP))
    with b.if_then(b.icmp_unsigned("==", within, i64(0))):
        for gv, v in zip(shared, partial.values(), strict=True):
            b.store(_to_storage(b, v), shared_element(b, gv, warp))
        b.store(b.zext(partial.flag(), I8), shared_element(b, shared_has, warp))
    barrier(b)
    with b.if_then(b.icmp_unsigned("==", warp, i64(0))):
        present = b.icmp_unsigned("<", within, i64(warps))
        index = b.select(present, within, i64(0))
        values = [_from_storage(b, b.load(shared_element(b, gv, index)), t)
                  for gv, t in zip(shared, types, strict=True)]
        stored = b.load(shared_element(b, shared_has, index))
        flag = b.icmp_unsigned("!=", stored, ir.Constant(I8, 0))
        partial.set(values, b.and_(present, flag))
        _warp_reduce(ctx, b, comp, partial)


def _to_storage(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
    return b.zext(v, I8) if v.type == I1 else v


def _from_storage(b: ir.IRBuilder, v: ir.Value, t: ir.Type) -> ir.Value:
    return b.icmp_unsigned("!=", v, ir.Constant(I8, 0)) if t == I1 else v


# --- one thread per output (optionally per chunk of the reduced elements) ----------------------


def _emit_per_output(ctx: KernelContext, instr: HloInstruction, source: ReduceSource,
                     outs: list[Slot], reduced: list[int], split: int) -> None:
    comp: HloComputation = instr.attrs["to_apply"]
    outputs = outs[0].shape.num_elements
    if split <= 1:
        kernel = ctx.kernel("walk", outs, source.slots)
        if kernel.is_new:
            _fill_walk(ctx, kernel, comp, source, reduced, outputs, split=1)
        ctx.launch(kernel, for_elements(outputs))
        return
    partial_shapes = [Shape.array(s.shape.element_type, (split, outputs)) for s in outs]
    flags_shape = Shape.array(PrimitiveType.PRED, (split, outputs))
    partials = [ctx.temp(s) for s in partial_shapes]
    flags = ctx.temp(flags_shape)
    partial_slots = [p for p in partials if isinstance(p, Slot)]
    assert isinstance(flags, Slot) and len(partial_slots) == len(outs)
    first = ctx.kernel("chunks", [*partial_slots, flags], source.slots)
    if first.is_new:
        _fill_walk(ctx, first, comp, source, reduced, outputs, split)
    ctx.launch(first, for_elements(outputs * split))
    second = ctx.kernel("combine", outs, [*partial_slots, flags, *source.init_slots])
    if second.is_new:
        _fill_combine(ctx, second, comp, source, len(outs), split, outputs)
    ctx.launch(second, for_elements(outputs))


def _fill_walk(ctx: KernelContext, kernel: KernelFunction, comp: HloComputation,
               source: ReduceSource, reduced: list[int], outputs: int, split: int) -> None:
    """Per (chunk, output) thread: combine the chunk's reduced elements.

    split == 1: the whole reduced space, written with the init to the outputs. Otherwise
    chunk c covers reduced linear indices [c * CHUNK, (c + 1) * CHUNK) and the kernel
    writes its partial and has-flag at [c, output].
    """
    b = kernel.builder
    xs = source.inputs(kernel)
    n = len(xs)
    dims = xs[0].shape.dims
    kept = [d for d in range(len(dims)) if d not in reduced]
    kept_dims = [dims[d] for d in kept]
    red_dims = [dims[d] for d in reduced]
    size = math.prod(red_dims)
    types = [llvm_type(x.element_type) for x in xs]
    partial = Partial(kernel, types, "acc")
    with grid_stride_loop(b, outputs * split) as item:
        o = b.urem(item, i64(outputs)) if split > 1 else item
        kept_index = delinearize(b, o, kept_dims)
        partial.set([ir.Constant(t, None) for t in types], ir.Constant(I1, 0))

        def visit(red_index: Sequence[ir.Value]) -> None:
            index = [i64(0)] * len(dims)
            for d, v in zip(kept, kept_index, strict=True):
                index[d] = v
            for d, v in zip(reduced, red_index, strict=True):
                index[d] = v
            partial.add(ctx, comp, [x.load(b, index) for x in xs])

        if split == 1:
            with loop_nest(b, red_dims, name="r") as red_index:
                visit(red_index)
            inits = source.walk_inits(kernel)
            results = _finish(ctx, b, comp, partial, _scalar_loads(b, inits))
            for out, v in zip(kernel.outputs, results, strict=True):
                out.store_linear(b, o, v)
        else:
            chunk = b.udiv(item, i64(outputs))
            start = b.mul(chunk, i64(CHUNK), flags=NOWRAP)
            stop = b.add(start, i64(CHUNK), flags=NOWRAP)
            stop = b.select(b.icmp_unsigned("<", stop, i64(size)), stop, i64(size))
            with for_range(b, start, stop, name="r") as r:
                visit(delinearize(b, r, red_dims))
            for out, v in zip(kernel.outputs[:n], partial.values(), strict=True):
                out.store_linear(b, item, v)
            kernel.outputs[n].store_linear(b, item, partial.flag())
    kernel.finish()


def _fill_combine(ctx: KernelContext, kernel: KernelFunction, comp: HloComputation,
                  source: ReduceSource, n: int, split: int, outputs: int) -> None:
    """out[o] = comp(init, combination of the partials [c, o] that have a value)."""
    b = kernel.builder
    parts = kernel.inputs[:n]
    flags = kernel.inputs[n]
    inits = source.combine_inits(kernel, n + 1)
    types = [llvm_type(p.element_type) for p in parts]
    partial = Partial(kernel, types, "acc")
    with grid_stride_loop(b, outputs) as o:
        partial.set([ir.Constant(t, None) for t in types], ir.Constant(I1, 0))
        with for_range(b, 0, split, name="c") as c:
            at = linearize(b, [c, o], (split, outputs))
            partial.add(ctx, comp, [p.load_linear(b, at) for p in parts],
                        flags.load_linear(b, at))
        results = _finish(ctx, b, comp, partial, _scalar_loads(b, inits))
        for out, v in zip(kernel.outputs, results, strict=True):
            out.store_linear(b, o, v)
    kernel.finish()


# --- windows -----------------------------------------------------------------------------------


@emits_gpu(Opcode.REDUCE_WINDOW)
def emit_reduce_window(ctx: KernelContext, instr: HloInstruction) -> None:
    """One thread per output: init, then the window's real elements in row-major order."""
    n = len(instr.operands) // 2
    slots = [s for v in ctx.operands for s in leaves(v)]
    outs = leaves(ctx.out)
    count = outs[0].shape.num_elements
    if count == 0:
        return
    kernel = ctx.kernel("window", outs, slots)
    if kernel.is_new:
        _fill_reduce_window(ctx, kernel, instr, n)
    ctx.launch(kernel, for_elements(count))


def _fill_reduce_window(ctx: KernelContext, kernel: KernelFunction, instr: HloInstruction,
                        n: int) -> None:
    b = kernel.builder
    xs, inits = kernel.inputs[:n], kernel.inputs[n:]
    comp: HloComputation = instr.attrs["to_apply"]
    window: Window = instr.attrs["window"]
    in_dims = xs[0].shape.dims
    out_dims = kernel.outputs[0].shape.dims
    entry = kernel.entry_builder()
    accs = [entry.alloca(llvm_type(x.element_type), name=f"acc{k}") for k, x in enumerate(xs)]
    with grid_stride_loop(b, math.prod(out_dims)) as o:
        oi = delinearize(b, o, out_dims)
        for slot, v in zip(accs, _scalar_loads(b, inits), strict=True):
            b.store(v, slot)
        with loop_nest(b, [wd.size for wd in window.dims], name="w") as wi:
            index, valid = window_input_index(b, window, in_dims, out_dims, oi, wi)

            def combine() -> None:
                current = [b.load(slot) for slot in accs]
                values = [x.load(b, index) for x in xs]
                combined = ctx.scalar_computation(b, comp, [*current, *values])
                for slot, v in zip(accs, combined, strict=True):
                    b.store(v, slot)

            if valid is None:
                combine()
            else:
                with b.if_then(valid):
                    combine()
        for out, slot in zip(kernel.outputs, accs, strict=True):
            out.store_linear(b, o, b.load(slot))
    kernel.finish()


@emits_gpu(Opcode.SELECT_AND_SCATTER)
def emit_select_and_scatter(ctx: KernelContext, instr: HloInstruction) -> None:
    """out = init everywhere; then per source element, its window's selected operand
    position receives scatter(out[pos], source) (atomically, see gather_scatter)."""
    operand, source, init = (s for v in ctx.operands for s in leaves(v))
    out = leaves(ctx.out)[0]
    if out.shape.num_elements == 0:
        return
    fill = ctx.kernel("init", [out], [init])
    if fill.is_new:
        b = fill.builder
        value = fill.inputs[0].load(b, [])
        with grid_stride_loop(b, out.shape.num_elements) as i:
            fill.outputs[0].store_linear(b, i, value)
        fill.finish()
    ctx.launch(fill, for_elements(out.shape.num_elements))
    count = source.shape.num_elements
    if count == 0:
        return
    parallel = atomic_supported(out.shape.element_type)
    kernel = ctx.kernel("scatter" if parallel else "serial", [out], [operand, source])
    if kernel.is_new:
        _fill_select_and_scatter(ctx, kernel, instr, parallel)
    ctx.launch(kernel, for_elements(count) if parallel else single_thread())


def _fill_select_and_scatter(ctx: KernelContext, kernel: KernelFunction,
                             instr: HloInstruction, parallel: bool) -> None:
    b = kernel.builder
    operand, source = kernel.inputs
    out = kernel.outputs[0]
    select: HloComputation = instr.attrs["select"]
    scatter: HloComputation = instr.attrs["scatter"]
    window: Window = instr.attrs["window"]
    in_dims = operand.shape.dims
    src_dims = source.shape.dims
    entry = kernel.entry_builder()
    chosen_value = entry.alloca(llvm_type(operand.element_type), name="sel.value")
    chosen_at = entry.alloca(I64, name="sel.at")
    have = entry.alloca(I1, name="sel.have")

    def element(s: ir.Value) -> None:
        si = delinearize(b, s, src_dims)
        b.store(ir.Constant(I1, 0), have)
        b.store(ir.Constant(llvm_type(operand.element_type), None), chosen_value)
        b.store(i64(0), chosen_at)
        with loop_nest(b, [wd.size for wd in window.dims], name="w") as wi:
            index, valid = window_input_index(b, window, in_dims, src_dims, si, wi)
            inside = valid if valid is not None else ir.Constant(I1, 1)
            with b.if_then(inside):
                candidate = operand.load(b, index)
                first = b.not_(b.load(have))
                (keep,) = ctx.scalar_computation(b, select, [b.load(chosen_value), candidate])
                with b.if_then(b.or_(first, b.not_(keep))):
                    b.store(candidate, chosen_value)
                    b.store(out.linear_of(b, index), chosen_at)
                    b.store(ir.Constant(I1, 1), have)
        with b.if_then(b.load(have)):
            at = b.load(chosen_at)
            value = source.load_linear(b, s)
            if parallel:
                atomic_update(ctx, b, out, at, scatter, value)
            else:
                (updated,) = ctx.scalar_computation(b, scatter, [out.load_linear(b, at), value])
                out.store_linear(b, at, updated)

    if parallel:
        with grid_stride_loop(b, source.shape.num_elements) as s:
            element(s)
    else:
        with for_range(b, 0, source.shape.num_elements, name="s") as s:
            element(s)
    kernel.finish()
