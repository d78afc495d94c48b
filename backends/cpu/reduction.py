"""CPU kernels for reductions: reduce, reduce-window and select-and-scatter.

Combiners and selectors are arbitrary scalar computations, emitted inline through
`ctx.call_scalar_computation` on register values. Reduce keeps its accumulators in registers
(allocas that LLVM promotes) when the reduced dimensions are the innermost ones, and
accumulates in the output buffer otherwise, so that both loop orders walk the input in memory
order. A reduction of many elements by a plain commutative combiner (add, multiply, max, min,
and, or, xor) is split over several partial accumulators, as XLA's vectorised reduction does:
the operation semantics leave the order of combination unspecified, and the split gives
vectorisation and a smaller rounding error on long float sums. Windows skip padding and
the holes of base dilation, as XLA's evaluator does (index arithmetic in
`backends/llvm/window.py`, shared with the GPU kernels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from llvmlite import ir

from backends.cpu.kernels import BufferValue, KernelContext, emits
from backends.cpu.threads import call_ranges, range_function
from backends.llvm.index import delinearize, linearize
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import (
    I1,
    NOWRAP,
    alloca_at_entry,
    const,
    for_range,
    i64,
    if_then,
    llvm_type,
    loop_nest,
)
from backends.llvm.window import window_input_index
from backends.scalar_computation import emit_scalar_computation
from backends.target_math import TargetMath
from hlo.attributes import Window
from hlo.computation import HloComputation
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode

# Combiners whose application order may be rearranged freely (associative and commutative).
_REORDERABLE = frozenset({
    Opcode.ADD, Opcode.MULTIPLY, Opcode.MAXIMUM, Opcode.MINIMUM,
    Opcode.AND, Opcode.OR, Opcode.XOR,
})
# Partial accumulators of a split reduction, and the least reduced size worth splitting.
PARTIALS = 8
MIN_SPLIT = 4 * PARTIALS
# Reduce-windows of at least this many outputs are split across threads (when the
# caller passes a thread count), in chunks of at least half as many: a thread costs about
# 25 us to start and join, the time a 2x2 max pool takes for some 60K outputs.
PARALLEL_MIN_OUTPUTS = 1 << 17


def as_list(value: BufferValue) -> list[IrArray]:
    """The arrays of a (possibly tuple) buffer value."""
    return list(value) if isinstance(value, tuple) else [value]


def is_reorderable(comp: HloComputation) -> bool:
    """True for `f(x, y) = op(x, y)` with op one of the associative, commutative ops."""
    root = comp.root
    if root is None or len(comp.parameters) != 2 or root.opcode not in _REORDERABLE:
        return False
    return {id(o) for o in root.operands} == {id(p) for p in comp.parameters}


class Accumulators:
    """Stack slots for the running values of a (variadic) reduction, kept in registers."""

    def __init__(self, ctx: KernelContext, arrays: Sequence[IrArray], name: str) -> None:
        self.ctx = ctx
        self.slots = [
            alloca_at_entry(ctx.builder, llvm_type(a.element_type), name=f"{name}{k}")
            for k, a in enumerate(arrays)
        ]

    def load(self) -> list[ir.Value]:
        return [self.ctx.builder.load(s) for s in self.slots]

    def store(self, values: Sequence[ir.Value]) -> None:
        for slot, v in zip(self.slots, values, strict=True):
            self.ctx.builder.store(v, slot)

    def combine(self, comp: HloComputation, values: Sequence[ir.Value]) -> None:
        """acc = comp(acc..., values...)."""
        self.store(self.ctx.call_scalar_computation(comp, [*self.load(), *values]))


# --- reduce ----------------------------------------------------------------------------------


@emits(Opcode.REDUCE)
def emit_reduce(
    ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue], out: BufferValue
) -> None:
    """out[kept] = combine over the reduced dims of inputs, starting from the init values."""
    n = len(operands) // 2
    inputs, inits = operands[:n], operands[n:]
    outs = as_list(out)
    comp: HloComputation = instr.attrs["to_apply"]
    dims = inputs[0].shape.dims
    reduced = sorted(instr.attrs["dimensions"])
    rank = len(dims)
    if math.prod(outs[0].shape.dims) == 0:
        return
    # The trailing run of reduced dims is reduced in registers, one block per position of
    # the dims before it; those dims are walked in memory order.
    suffix = 0
    while suffix < rank and rank - 1 - suffix in reduced:
        suffix += 1
    if suffix == len(reduced):
        _reduce_innermost(ctx, comp, inputs, inits, outs, math.prod(dims[rank - suffix:]))
    elif suffix:
        _reduce_blocks_into_output(ctx, comp, inputs, inits, outs, reduced, suffix)
    else:
        _reduce_into_output(ctx, comp, inputs, inits, outs, reduced)


def _combine_block(
    ctx: KernelContext,
    comp: HloComputation,
    inputs: list[IrArray],
    acc: Accumulators,
    base: ir.Value,
    size: int,
) -> None:
    """acc = comp(acc, x) for x = inputs[base : base + size], in registers."""
    b = ctx.builder
    start = 0
    if len(inputs) == 1 and size >= MIN_SPLIT and is_reorderable(comp):
        acc.combine(comp, [_split_sum(ctx, comp, inputs[0], base, size)])
        start = size - size % PARTIALS
    with for_range(b, start, size, name="red.k") as k:
        at = b.add(base, k, flags=NOWRAP)
        acc.combine(comp, [x.load_linear(b, at) for x in inputs])


def _reduce_innermost(
    ctx: KernelContext,
    comp: HloComputation,
    inputs: list[IrArray],
    inits: list[IrArray],
    outs: list[IrArray],
    size: int,
) -> None:
    """All reduced dims innermost: input = [outputs, size] row-major, one block per output."""
    b = ctx.builder
    acc = Accumulators(ctx, outs, "red.acc")
    with for_range(b, 0, outs[0].shape.num_elements, name="red.out") as o:
        acc.store([init.load(b, []) for init in inits])
        _combine_block(ctx, comp, inputs, acc, b.mul(o, i64(size), flags=NOWRAP), size)
        for arr, v in zip(outs, acc.load(), strict=True):
            arr.store_linear(b, o, v)


def _split_sum(
    ctx: KernelContext, comp: HloComputation, x: IrArray, base: ir.Value, size: int
) -> ir.Value:
    """Combine x[base : base + size - size % PARTIALS] over PARTIALS interleaved partials."""
    b = ctx.builder
    parts = [
        alloca_at_entry(b, llvm_type(x.element_type), name=f"red.part{v}")
        for v in range(PARTIALS)
    ]
    for v, slot in enumerate(parts):
        b.store(x.load_linear(b, b.add(base, i64(v), flags=NOWRAP)), slot)
    with for_range(b, PARTIALS, size - size % PARTIALS, step=PARTIALS, name="red.blk") as j:
        at = b.add(base, j, flags=NOWRAP)
        for v, slot in enumerate(parts):
            value = x.load_linear(b, b.add(at, i64(v), flags=NOWRAP))
            (combined,) = ctx.call_scalar_computation(comp, [b.load(slot), value])
            b.store(combined, slot)
    values = [b.load(slot) for slot in parts]
    while len(values) > 1:
        values = [
            ctx.call_scalar_computation(comp, [values[i], values[i + 1]])[0]
            for i in range(0, len(values), 2)
        ]
    return values[0]


def _init_outputs(ctx: KernelContext, inits: list[IrArray], outs: list[IrArray]) -> None:
    b = ctx.builder
    with for_range(b, 0, outs[0].shape.num_elements, name="red.init") as o:
        for arr, init in zip(outs, inits, strict=True):
            arr.store_linear(b, o, init.load(b, []))


def _reduce_blocks_into_output(
    ctx: KernelContext,
    comp: HloComputation,
    inputs: list[IrArray],
    inits: list[IrArray],
    outs: list[IrArray],
    reduced: list[int],
    suffix: int,
) -> None:
    """Reduced dims both before and after a kept one: each innermost block is reduced in
    registers, starting from (and ending in) its output element."""
    b = ctx.builder
    _init_outputs(ctx, inits, outs)
    dims = inputs[0].shape.dims
    outer = dims[: len(dims) - suffix]
    size = math.prod(dims[len(dims) - suffix:])
    kept = [d for d in range(len(outer)) if d not in reduced]
    acc = Accumulators(ctx, outs, "red.acc")
    with loop_nest(b, outer, name="red.outer") as idx:
        o = linearize(b, [idx[d] for d in kept], [dims[d] for d in kept])
        acc.store([arr.load_linear(b, o) for arr in outs])
        base = b.mul(linearize(b, idx, outer), i64(size), flags=NOWRAP)
        _combine_block(ctx, comp, inputs, acc, base, size)
        for arr, v in zip(outs, acc.load(), strict=True):
            arr.store_linear(b, o, v)


def _reduce_into_output(
    ctx: KernelContext,
    comp: HloComputation,
    inputs: list[IrArray],
    inits: list[IrArray],
    outs: list[IrArray],
    reduced: list[int],
) -> None:
    """The innermost dim is kept: walk the input in order, accumulating in `out` (the loop
    over the kept innermost dim vectorises)."""
    b = ctx.builder
    _init_outputs(ctx, inits, outs)
    dims = inputs[0].shape.dims
    kept = [d for d in range(len(dims)) if d not in reduced]
    with loop_nest(b, dims, name="red.in") as idx:
        o = linearize(b, [idx[d] for d in kept], [dims[d] for d in kept])
        accs = [arr.load_linear(b, o) for arr in outs]
        xs = [x.load(b, idx) for x in inputs]
        for arr, v in zip(outs, ctx.call_scalar_computation(comp, [*accs, *xs]), strict=True):
            arr.store_linear(b, o, v)


# --- windows ---------------------------------------------------------------------------------


@emits(Opcode.REDUCE_WINDOW)
def emit_reduce_window(
    ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue], out: BufferValue
) -> None:
    """out[o] = combine of the inputs over the window at o (padding skipped), from init.

    Over materialised buffers the loop is a range function of its own (its pointers
    `noalias`, so that it vectorises); with a thread count and at least
    PARALLEL_MIN_OUTPUTS outputs it is split across threads, each output element computed
    as the serial loop computes it.
    """
    n = len(operands) // 2
    inputs, inits = operands[:n], operands[n:]
    outs = as_list(out)
    comp: HloComputation = instr.attrs["to_apply"]
    window: Window = instr.attrs["window"]
    out_dims = outs[0].shape.dims
    # Rows: every output dim but the innermost, whose loop (contiguous, of a known trip
    # count) is what vectorises.
    inner = out_dims[-1] if out_dims else 1
    rows = math.prod(out_dims[:-1])
    buffers = [*inputs, *inits, *outs]
    if not all(isinstance(a, IrArray) for a in buffers):
        _reduce_window_rows(ctx.builder, ctx.math, comp, window, inputs, inits, outs,
                            i64(0), i64(rows))
        return
    # Buffer assignment may place the output over the start of its dying input (no window
    # reads behind the element written): the range function then gets that buffer once,
    # as one pointer, and runs on one thread, in order, so no output is written before the
    # inputs that later outputs read.
    pointers = list(dict.fromkeys(a.ptr for a in buffers))
    fn, b = range_function(ctx.module, f"{ctx.builder.function.name}.rw",
                           [f"buf{k}" for k in range(len(pointers))])
    local = [IrArray(fn.args[pointers.index(a.ptr)], a.shape, a.invariant) for a in buffers]
    _reduce_window_rows(b, ctx.math, comp, window, local[:n], local[n:2 * n], local[2 * n:],
                        fn.args[-2], fn.args[-1])
    b.ret_void()
    threads = getattr(ctx, "threads", None)
    parallel = (threads is not None and rows * inner >= PARALLEL_MIN_OUTPUTS
                and len(pointers) == len(buffers))
    call_ranges(ctx.builder, fn, pointers, rows,
                max(1, PARALLEL_MIN_OUTPUTS // 2 // inner), threads if parallel else None)


def _reduce_window_rows(
    b: ir.IRBuilder,
    math_: TargetMath,
    comp: HloComputation,
    window: Window,
    inputs: list[IrArray],
    inits: list[IrArray],
    outs: list[IrArray],
    begin: ir.Value,
    end: ir.Value,
) -> None:
    """The reduce-window of output rows [begin, end) (a row: every output index that
    differs only in the innermost dimension)."""
    in_dims = inputs[0].shape.dims
    out_dims = outs[0].shape.dims
    slots = [alloca_at_entry(b, llvm_type(a.element_type), name=f"rw.acc{k}")
             for k, a in enumerate(outs)]

    def combine(values: list[ir.Value]) -> None:
        current = [b.load(slot) for slot in slots]
        results = emit_scalar_computation(b, math_, comp, [*current, *values])
        for slot, v in zip(slots, results, strict=True):
            b.store(v, slot)

    with for_range(b, begin, end, name="rw.row") as row:
        outer = delinearize(b, row, out_dims[:-1])
        with loop_nest(b, out_dims[-1:], name="rw.out") as last:
            oi = [*outer, *last]
            for slot, init in zip(slots, inits, strict=True):
                b.store(init.load(b, []), slot)
            with loop_nest(b, [wd.size for wd in window.dims], name="rw.win") as wi:
                index, valid = window_input_index(b, window, in_dims, out_dims, oi, wi)
                if valid is None:
                    combine([x.load(b, index) for x in inputs])
                else:
                    with if_then(b, valid):
                        combine([x.load(b, index) for x in inputs])
            for arr, slot in zip(outs, slots, strict=True):
                arr.store(b, oi, b.load(slot))


@emits(Opcode.SELECT_AND_SCATTER)
def emit_select_and_scatter(
    ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue], out: BufferValue
) -> None:
    """Scatter each source element onto the operand element its window selects.

    out starts as init everywhere. For each source index s (row-major), the window over
    the operand at s is scanned in row-major order, skipping padding; the first element is
    selected, and a later candidate c replaces the selection v when select(v, c) is false.
    Then out[selected] = scatter(out[selected], source[s]).
    """
    b = ctx.builder
    operand, source, init = operands
    select: HloComputation = instr.attrs["select"]
    scatter: HloComputation = instr.attrs["scatter"]
    window: Window = instr.attrs["window"]
    in_dims = operand.shape.dims
    with for_range(b, 0, out.shape.num_elements, name="ss.init") as o:
        out.store_linear(b, o, init.load(b, []))
    rank = len(in_dims)
    chosen_value = alloca_at_entry(b, llvm_type(operand.element_type), name="ss.value")
    chosen_index = [alloca_at_entry(b, i64(0).type, name=f"ss.idx{d}") for d in range(rank)]
    have = alloca_at_entry(b, I1, name="ss.have")
    with loop_nest(b, source.shape.dims, name="ss.src") as si:
        b.store(ir.Constant(I1, 0), have)
        # A defined value, so the select call on the first candidate reads no undef.
        b.store(const(operand.element_type, 0), chosen_value)
        with loop_nest(b, [wd.size for wd in window.dims], name="ss.win") as wi:
            index, valid = window_input_index(b, window, in_dims, source.shape.dims, si, wi)
            inside = valid if valid is not None else ir.Constant(I1, 1)
            with if_then(b, inside):
                candidate = operand.load(b, index)
                first = b.not_(b.load(have))
                (keep,) = ctx.call_scalar_computation(select, [b.load(chosen_value), candidate])
                with if_then(b, b.or_(first, b.not_(keep))):
                    b.store(candidate, chosen_value)
                    for slot, v in zip(chosen_index, index, strict=True):
                        b.store(v, slot)
                    b.store(ir.Constant(I1, 1), have)
        with if_then(b, b.load(have)):
            target = [b.load(slot) for slot in chosen_index]
            current = out.load(b, target)
            (updated,) = ctx.call_scalar_computation(scatter, [current, source.load(b, si)])
            out.store(b, target, updated)
