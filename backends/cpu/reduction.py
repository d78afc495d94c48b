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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from llvmlite import ir

from backends.cpu import loops
from backends.cpu.fused_expression import FusedExpression
from backends.cpu.kernels import BufferValue, KernelContext, emits
from backends.cpu.threads import call_ranges, range_function
from backends.elemental import GeneratedArray
from backends.llvm.index import IrIndex, delinearize, linearize
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
from hlo.shape import Shape

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

    def __init__(self, ctx: Any, arrays: Sequence[IrArray], name: str) -> None:
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


class _Scope:
    """Where reduce code goes: a builder and the scalar computations emitted at it (the
    kernel's own context, or a range function of the reduction split across threads)."""

    def __init__(self, builder: ir.IRBuilder, math_: TargetMath) -> None:
        self.builder = builder
        self.math = math_

    def call_scalar_computation(self, comp: HloComputation,
                                args: Sequence[ir.Value]) -> list[ir.Value]:
        return emit_scalar_computation(self.builder, self.math, comp, list(args))


@dataclass(frozen=True)
class _ReducePlan:
    """A reduce over its input viewed as [rows, dims after the row prefix...]: the row
    prefix is the leading run of kept dimensions, merged into one. Every row holds its own
    outputs and the input behind them, so rows split across threads compute each output
    exactly as the serial loop does (no reduced dimension is ever split)."""

    comp: HloComputation
    dims: tuple[int, ...]          # the merged input dimensions, rows first
    reduced: tuple[int, ...]       # reduced dimensions of the merged input (all > 0)
    suffix: int                    # trailing reduced dimensions, reduced in registers

    @staticmethod
    def create(comp: HloComputation, dims: Sequence[int], reduced: Sequence[int]) -> _ReducePlan:
        prefix = 0
        while prefix < len(dims) and prefix not in reduced:
            prefix += 1
        merged = (math.prod(dims[:prefix]), *dims[prefix:])
        shifted = tuple(sorted(d - prefix + 1 for d in reduced))
        suffix = 0
        while suffix < len(merged) and len(merged) - 1 - suffix in shifted:
            suffix += 1
        return _ReducePlan(comp, merged, shifted, suffix)

    @property
    def rows(self) -> int:
        return self.dims[0]

    @property
    def row_elements(self) -> int:
        """Input elements per row."""
        return math.prod(self.dims[1:])

    @property
    def row_outputs(self) -> int:
        """Output elements per row (contiguous in the output)."""
        return math.prod(d for k, d in enumerate(self.dims) if k and k not in self.reduced)

    def emit_rows(self, scope: _Scope, inputs: list[Any], inits: list[Any],
                  outs: list[IrArray], begin: ir.Value, end: ir.Value) -> None:
        """The outputs of rows [begin, end), from `inputs` viewed with the merged dims."""
        if self.suffix == len(self.reduced):
            _reduce_innermost(scope, self, inputs, inits, outs, begin, end)
        elif self.suffix:
            _reduce_blocks_into_output(scope, self, inputs, inits, outs, begin, end)
        else:
            _reduce_into_output(scope, self, inputs, inits, outs, begin, end)


@emits(Opcode.REDUCE)
def emit_reduce(
    ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue], out: BufferValue
) -> None:
    """out[kept] = combine over the reduced dims of inputs, starting from the init values.

    With a thread count and at least loops.PARALLEL_MIN_ELEMENTS input elements, the rows
    (the leading kept dimensions, see _ReducePlan) are split across threads in a range
    function; a fused input is re-emitted there from the fusion's operands.
    """
    n = len(operands) // 2
    inputs, inits = operands[:n], operands[n:]
    outs = as_list(out)
    comp: HloComputation = instr.attrs["to_apply"]
    dims = inputs[0].shape.dims
    if math.prod(outs[0].shape.dims) == 0:
        return
    plan = _ReducePlan.create(comp, dims, instr.attrs["dimensions"])
    threads = getattr(ctx, "threads", None)
    sources = None
    if (threads is not None and plan.rows > 1 and math.prod(dims) >= loops.PARALLEL_MIN_ELEMENTS
            and all(isinstance(o, IrArray) for o in outs)):
        sources = _portable_sources(ctx, instr, operands)
    if sources is None:
        scope = _Scope(ctx.builder, ctx.math)
        plan.emit_rows(scope, [_merged(scope, x, plan) for x in inputs], inits, outs, i64(0),
                       i64(plan.rows))
        return
    pointers = [p for source in sources for p in source.pointers] + [o.ptr for o in outs]
    fn, b = range_function(ctx.module, f"{ctx.builder.function.name}.reduce",
                           [f"buf{k}" for k in range(len(pointers))])
    scope = _Scope(b, ctx.math)
    args = iter(fn.args[:len(pointers)])
    local = [source.rebuild(b, [next(args) for _ in source.pointers]) for source in sources]
    local_outs = [IrArray(next(args), o.shape) for o in outs]
    plan.emit_rows(scope, [_merged(scope, x, plan) for x in local[:n]], local[n:], local_outs,
                   fn.args[-2], fn.args[-1])
    b.ret_void()
    grain = max(1, -(-loops.PARALLEL_MIN_ELEMENTS // plan.row_elements))
    call_ranges(ctx.builder, fn, pointers, plan.rows, grain, threads)


@dataclass(frozen=True)
class _Source:
    """An operand of a reduce as pointers of the kernel's function and a way to rebuild it
    over those pointers in another function."""

    pointers: list[ir.Value]
    rebuild: Callable[[ir.IRBuilder, list[ir.Value]], Any]


def _portable_sources(ctx: KernelContext, instr: HloInstruction,
                      operands: list[BufferValue]) -> list[_Source] | None:
    """Each operand as a _Source: a buffer as itself, a fused producer (GeneratedArray)
    through the fusion's FusedExpression; None when one cannot be moved."""
    sources = []
    for operand, value in zip(instr.operands, operands, strict=True):
        if isinstance(value, IrArray):
            sources.append(_Source([value.ptr], _array_rebuilder(value)))
            continue
        portable = getattr(ctx, "portable", None)
        expression = portable(operand) if portable is not None else None
        if not isinstance(value, GeneratedArray) or expression is None:
            return None
        sources.append(_Source(expression.pointers(), _expression_rebuilder(expression,
                                                                            value.shape)))
    return sources


def _array_rebuilder(array: IrArray) -> Callable[[ir.IRBuilder, list[ir.Value]], Any]:
    return lambda b, pointers: IrArray(pointers[0], array.shape, array.invariant)


def _expression_rebuilder(expression: FusedExpression,
                          shape: Shape) -> Callable[[ir.IRBuilder, list[ir.Value]], Any]:
    def rebuild(b: ir.IRBuilder, pointers: list[ir.Value]) -> GeneratedArray:
        function = expression.bind(b, pointers)
        return GeneratedArray(lambda index: function(index, None), shape)

    return rebuild


def _merged(scope: _Scope, x: Any, plan: _ReducePlan) -> Any:
    """`x` (an input of the reduce) viewed with the plan's merged dimensions."""
    if tuple(x.shape.dims) == plan.dims:
        return x
    merged = Shape.array(x.element_type, plan.dims)
    if isinstance(x, IrArray):
        return IrArray(x.ptr, merged, x.invariant)
    b = scope.builder
    dims = x.shape.dims
    prefix = len(dims) - len(plan.dims) + 1

    def generator(index: IrIndex) -> ir.Value:
        rows = delinearize(b, index.values[0], dims[:prefix])
        return x.load(b, IrIndex([*rows, *index.values[1:]], dims))

    return GeneratedArray(generator, merged)


def _combine_block(
    scope: _Scope,
    comp: HloComputation,
    inputs: list[Any],
    acc: Accumulators,
    base: ir.Value,
    size: int,
) -> None:
    """acc = comp(acc, x) for x = inputs[base : base + size], in registers."""
    b = scope.builder
    start = 0
    if len(inputs) == 1 and size >= MIN_SPLIT and is_reorderable(comp):
        acc.combine(comp, [_split_sum(scope, comp, inputs[0], base, size)])
        start = size - size % PARTIALS
    with for_range(b, start, size, name="red.k") as k:
        at = b.add(base, k, flags=NOWRAP)
        acc.combine(comp, [x.load_linear(b, at) for x in inputs])


def _reduce_innermost(scope: _Scope, plan: _ReducePlan, inputs: list[Any], inits: list[Any],
                      outs: list[IrArray], begin: ir.Value, end: ir.Value) -> None:
    """All reduced dims innermost: input = [rows, size] row-major, one block per output."""
    b = scope.builder
    size = plan.row_elements
    acc = Accumulators(scope, outs, "red.acc")
    with for_range(b, begin, end, name="red.out") as o:
        acc.store([init.load(b, []) for init in inits])
        _combine_block(scope, plan.comp, inputs, acc, b.mul(o, i64(size), flags=NOWRAP), size)
        for arr, v in zip(outs, acc.load(), strict=True):
            arr.store_linear(b, o, v)


def _split_sum(
    scope: _Scope, comp: HloComputation, x: Any, base: ir.Value, size: int
) -> ir.Value:
    """Combine x[base : base + size - size % PARTIALS] over PARTIALS interleaved partials."""
    b = scope.builder
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
            (combined,) = scope.call_scalar_computation(comp, [b.load(slot), value])
            b.store(combined, slot)
    values = [b.load(slot) for slot in parts]
    while len(values) > 1:
        values = [
            scope.call_scalar_computation(comp, [values[i], values[i + 1]])[0]
            for i in range(0, len(values), 2)
        ]
    return values[0]


def _init_outputs(scope: _Scope, plan: _ReducePlan, inits: list[Any], outs: list[IrArray],
                  begin: ir.Value, end: ir.Value) -> None:
    """The outputs of rows [begin, end) = the init values."""
    b = scope.builder
    per_row = i64(plan.row_outputs)
    first = b.mul(begin, per_row, flags=NOWRAP)
    with for_range(b, first, b.mul(end, per_row, flags=NOWRAP), name="red.init") as o:
        for arr, init in zip(outs, inits, strict=True):
            arr.store_linear(b, o, init.load(b, []))


def _reduce_blocks_into_output(scope: _Scope, plan: _ReducePlan, inputs: list[Any],
                               inits: list[Any], outs: list[IrArray], begin: ir.Value,
                               end: ir.Value) -> None:
    """Reduced dims both before and after a kept one: each innermost block is reduced in
    registers, starting from (and ending in) its output element."""
    b = scope.builder
    _init_outputs(scope, plan, inits, outs, begin, end)
    dims = plan.dims
    outer = dims[: len(dims) - plan.suffix]
    size = math.prod(dims[len(dims) - plan.suffix:])
    kept = [d for d in range(len(outer)) if d not in plan.reduced]
    acc = Accumulators(scope, outs, "red.acc")
    with for_range(b, begin, end, name="red.row") as row:
        with loop_nest(b, outer[1:], name="red.outer") as rest:
            idx = [row, *rest]
            o = linearize(b, [idx[d] for d in kept], [dims[d] for d in kept])
            acc.store([arr.load_linear(b, o) for arr in outs])
            base = b.mul(linearize(b, idx, outer), i64(size), flags=NOWRAP)
            _combine_block(scope, plan.comp, inputs, acc, base, size)
            for arr, v in zip(outs, acc.load(), strict=True):
                arr.store_linear(b, o, v)


def _reduce_into_output(scope: _Scope, plan: _ReducePlan, inputs: list[Any], inits: list[Any],
                        outs: list[IrArray], begin: ir.Value, end: ir.Value) -> None:
    """The innermost dim is kept: walk the input in order, accumulating in `out` (the loop
    over the kept innermost dim vectorises)."""
    b = scope.builder
    _init_outputs(scope, plan, inits, outs, begin, end)
    dims = plan.dims
    kept = [d for d in range(len(dims)) if d not in plan.reduced]
    with for_range(b, begin, end, name="red.row") as row:
        with loop_nest(b, dims[1:], name="red.in") as rest:
            idx = [row, *rest]
            o = linearize(b, [idx[d] for d in kept], [dims[d] for d in kept])
            accs = [arr.load_linear(b, o) for arr in outs]
            xs = [x.load(b, idx) for x in inputs]
            results = scope.call_scalar_computation(plan.comp, [*accs, *xs])
            for arr, v in zip(outs, results, strict=True):
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
