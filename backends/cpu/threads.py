"""Fork-join parallel loops inside generated CPU code, on a persistent pthread pool.

Every generated module that has a parallel region defines its own internal

    void tfcompile.parallel_for(ptr body, ptr ctx, i64 n, i64 grain, i32 threads)

which splits [0, n) into `count = min(threads, ceil(n / grain), MAX_THREADS)` contiguous
chunks of sizes differing by at most one and runs `body` on each:

    void body(ptr ctx, i64 begin, i64 end, i64 chunk)

with `chunk` in [0, count): bodies index private scratch by it. The split is a pure
function of (n, grain, threads), and never changes what one element's value is computed
from, so results are bit-identical for every thread count and whoever runs each chunk.

The threads come from a persistent pool private to the module (backends/cpu/pool.py): a
region costs about a microsecond, and a region that finds the pool busy (a concurrent
caller, or a region nested in a chunk) runs its chunks serially on the calling thread.
"""

from __future__ import annotations

from collections.abc import Sequence

from llvmlite import ir

from backends.cpu.pool import (
    BODY_TYPE,
    MAX_THREADS,
    START_HOOK,
    STOP_HOOK,
    emit_parallel_for_body,
)
from backends.llvm.irutil import I32, I64, PTR, alloca_at_entry, i64, internal_function

PARALLEL_FOR = "tfcompile.parallel_for"


def new_body(module: ir.Module, name: str) -> ir.Function:
    """An internal, empty parallel-loop body function named after `name`."""
    return internal_function(module, module.get_unique_name(name), BODY_TYPE,
                             ("ctx", "begin", "end", "chunk"), noinline=True)


def pack_context(b: ir.IRBuilder, values: Sequence[ir.Value]) -> ir.Value:
    """A stack array of the pointers `values` (allocated at the function's entry)."""
    ctx = alloca_at_entry(b, PTR, count=max(1, len(values)), name="par.ctx")
    for k, value in enumerate(values):
        b.store(value, b.gep(ctx, [i64(k)], inbounds=True, source_etype=PTR), align=8)
    return ctx


def unpack_context(b: ir.IRBuilder, ctx: ir.Value, count: int) -> list[ir.Value]:
    """The `count` pointers stored by `pack_context`."""
    return [b.load(b.gep(ctx, [i64(k)], inbounds=True, source_etype=PTR), typ=PTR, align=8)
            for k in range(count)]


def emit_parallel_for(b: ir.IRBuilder, body: ir.Function, ctx: ir.Value, n: int,
                      grain: int, threads: ir.Value, max_chunks: int = MAX_THREADS) -> None:
    """Call `body` over [0, n) split across at most `threads` (and `max_chunks`) chunks."""
    fn = parallel_for_function(b.module)
    count = b.select(b.icmp_signed("<", threads, ir.Constant(I32, max_chunks)), threads,
                     ir.Constant(I32, max_chunks))
    b.call(fn, [body, ctx, i64(n), i64(max(1, grain)), count])


def parallel_for_function(module: ir.Module) -> ir.Function:
    """The module's `tfcompile.parallel_for`, defined on first use."""
    existing = module.globals.get(PARALLEL_FOR)
    if isinstance(existing, ir.Function):
        return existing
    fnty = ir.FunctionType(ir.VoidType(), [PTR, PTR, I64, I64, I32])
    fn = internal_function(module, PARALLEL_FOR, fnty, ("body", "ctx", "n", "grain", "threads"))
    emit_parallel_for_body(fn)
    return fn


def call_ranges(b: ir.IRBuilder, fn: ir.Function, pointers: list[ir.Value], n: int,
                grain: int, threads: ir.Value | None) -> None:
    """Call `void fn(pointers..., i64 begin, i64 end)` over [0, n): once, or split into
    chunks of at least `grain` on up to `threads` threads."""
    if threads is None or n < 2 * grain:
        b.call(fn, [*pointers, i64(0), i64(n)])
        return
    body = new_body(b.module, f"{fn.name}.chunk")
    bb = ir.IRBuilder(body.append_basic_block("entry"))
    ctx, begin, end, _ = body.args
    bb.call(fn, [*unpack_context(bb, ctx, len(pointers)), begin, end])
    bb.ret_void()
    emit_parallel_for(b, body, pack_context(b, pointers), n, grain, threads)


def range_function(module: ir.Module, name: str, pointers: Sequence[str]
                   ) -> tuple[ir.Function, ir.IRBuilder]:
    """An internal `void f(ptr..., i64 begin, i64 end)` and a builder in its body block
    (its entry block, for allocas, branches there)."""
    fnty = ir.FunctionType(ir.VoidType(), [PTR] * len(pointers) + [I64, I64])
    fn = internal_function(module, module.get_unique_name(name), fnty,
                           [*pointers, "begin", "end"], noinline=True, noalias=True)
    entry = fn.append_basic_block("entry")
    b = ir.IRBuilder(fn.append_basic_block("body"))
    ir.IRBuilder(entry).branch(fn.blocks[1])
    return fn, b


__all__ = [
    "call_ranges",
    "range_function",
    "BODY_TYPE",
    "MAX_THREADS",
    "START_HOOK",
    "STOP_HOOK",
    "emit_parallel_for",
    "new_body",
    "pack_context",
    "parallel_for_function",
    "unpack_context",
]
