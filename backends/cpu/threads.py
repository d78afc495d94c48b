"""Fork-join parallel loops inside generated CPU code, on pthreads.

Every generated module that has a parallel region defines its own internal

    void tfcompile.parallel_for(ptr body, ptr ctx, i64 n, i64 grain, i32 threads)

which splits [0, n) into `count = min(threads, ceil(n / grain), MAX_THREADS)` contiguous
chunks of sizes differing by at most one, runs chunks 1.. on fresh pthreads and chunk 0 on
the calling thread, then joins them. A chunk whose thread could not be started runs on the
calling thread after the others, so the loop always completes. `body` is

    void body(ptr ctx, i64 begin, i64 end, i64 chunk)

with `chunk` in [0, count): bodies index private scratch by it. The function is defined in
the module itself (not in a runtime library) so that an object file alone, and code loaded
into this process by the JIT, both have it; it needs only `pthread_create`/`pthread_join`.

The thread count is a value passed down the call chain (never global state): generated
code stays re-entrant. The split never changes what one element's value is computed from,
so results are bit-identical for every thread count.
"""

from __future__ import annotations

from collections.abc import Sequence

from llvmlite import ir

from backends.llvm.irutil import I32, I64, PTR, alloca_at_entry, for_range, i64, if_else

# The most chunks one parallel region runs (and so the most scratch slices a body needs).
MAX_THREADS = 64

PARALLEL_FOR = "tfcompile.parallel_for"
_TRAMPOLINE = "tfcompile.parallel_for.chunk"

# The body a parallel loop calls for each chunk.
BODY_TYPE = ir.FunctionType(ir.VoidType(), [PTR, I64, I64, I64])

# One chunk as the trampoline sees it: five i64 slots holding body, ctx (as integers),
# begin, end and the chunk index.
_CHUNK_FIELDS = 5
# pthread_t is an unsigned long (Linux) or a pointer (macOS): 8 bytes either way.
_PTHREAD_T = I64


def new_body(module: ir.Module, name: str) -> ir.Function:
    """An internal, empty parallel-loop body function named after `name`."""
    fn = ir.Function(module, BODY_TYPE, name=module.get_unique_name(name))
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    fn.attributes.add("noinline")
    for arg, arg_name in zip(fn.args, ("ctx", "begin", "end", "chunk"), strict=True):
        arg.name = arg_name
    return fn


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
    fn = ir.Function(module, fnty, name=PARALLEL_FOR)
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    fn.attributes.add("noinline")
    body, ctx, n, grain, threads = fn.args
    for arg, arg_name in zip(fn.args, ("body", "ctx", "n", "grain", "threads"), strict=True):
        arg.name = arg_name
    _emit_parallel_for_body(fn, _trampoline(module), body, ctx, n, grain, threads)
    return fn


def _trampoline(module: ir.Module) -> ir.Function:
    """`ptr chunk(ptr c)`: runs one chunk record; the pthread start routine."""
    fn = ir.Function(module, ir.FunctionType(PTR, [PTR]), name=_TRAMPOLINE)
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    (record,) = fn.args
    fields = [b.load(_field(b, record, k), typ=I64, align=8) for k in range(_CHUNK_FIELDS)]
    body_int, ctx_int, begin, end, chunk = fields
    body_ptr, ctx = b.inttoptr(body_int, PTR), b.inttoptr(ctx_int, PTR)
    b.call(_callable(body_ptr), [ctx, begin, end, chunk])
    b.ret(ir.Constant(PTR, None))
    return fn


def _emit_parallel_for_body(fn: ir.Function, trampoline: ir.Function, body: ir.Value,
                            ctx: ir.Value, n: ir.Value, grain: ir.Value,
                            threads: ir.Value) -> None:
    module = fn.module
    create = _declare(module, "pthread_create", I32, [PTR, PTR, PTR, PTR])
    join = _declare(module, "pthread_join", I32, [_PTHREAD_T, PTR])
    entry = fn.append_basic_block("entry")
    b = ir.IRBuilder(fn.append_basic_block("body"))
    records = alloca_at_entry(b, I64, count=MAX_THREADS * _CHUNK_FIELDS, name="chunks")
    handles = alloca_at_entry(b, _PTHREAD_T, count=MAX_THREADS, name="handles")
    started = alloca_at_entry(b, I32, count=MAX_THREADS, name="started")
    # count = clamp(threads, 1, MAX_THREADS), then at most ceil(n / grain).
    wanted = b.sext(threads, I64)
    wanted = b.select(b.icmp_signed("<", wanted, i64(1)), i64(1), wanted)
    wanted = b.select(b.icmp_signed(">", wanted, i64(MAX_THREADS)), i64(MAX_THREADS), wanted)
    pieces = b.sdiv(b.add(n, b.sub(grain, i64(1))), grain)
    count = b.select(b.icmp_signed("<", pieces, wanted), pieces, wanted)
    serial = b.icmp_signed("<=", count, i64(1))
    with if_else(b, serial) as (then, otherwise):
        with then:
            with if_else(b, b.icmp_signed(">", n, i64(0))) as (run, skip):
                with run:
                    b.call(_callable(body), [ctx, i64(0), n, i64(0)])
                with skip:
                    pass
        with otherwise:
            size = b.sdiv(n, count)
            extra = b.srem(n, count)
            with for_range(b, 0, count, name="fill") as i:
                lead = b.select(b.icmp_signed("<", i, extra), i, extra)
                begin = b.add(b.mul(size, i), lead)
                longer = b.zext(b.icmp_signed("<", i, extra), I64)
                end = b.add(b.add(begin, size), longer)
                record = _record(b, records, i)
                words = (b.ptrtoint(body, I64), b.ptrtoint(ctx, I64), begin, end, i)
                for k, value in enumerate(words):
                    b.store(value, _field(b, record, k), align=8)
            with for_range(b, 1, count, name="spawn") as i:
                handle = b.gep(handles, [i], inbounds=True, source_etype=_PTHREAD_T)
                record = _record(b, records, i)
                rc = b.call(create, [handle, ir.Constant(PTR, None), trampoline, record])
                ok = b.zext(b.icmp_signed("==", rc, ir.Constant(I32, 0)), I32)
                b.store(ok, b.gep(started, [i], inbounds=True, source_etype=I32))
            b.call(trampoline, [records])
            with for_range(b, 1, count, name="join") as i:
                record = _record(b, records, i)
                flag = b.load(b.gep(started, [i], inbounds=True, source_etype=I32), typ=I32)
                with if_else(b, b.icmp_signed("!=", flag, ir.Constant(I32, 0))) as (ok, failed):
                    with ok:
                        handle = b.load(b.gep(handles, [i], inbounds=True,
                                              source_etype=_PTHREAD_T), typ=_PTHREAD_T)
                        b.call(join, [handle, ir.Constant(PTR, None)])
                    with failed:
                        # No thread: run the chunk here rather than lose it.
                        b.call(trampoline, [record])
    b.ret_void()
    ir.IRBuilder(entry).branch(fn.blocks[1])


class _Indirect:
    """A body function pointer as a callee for llvmlite's IRBuilder.call, which takes the
    callee's type from `function_type` (an opaque pointer value does not carry one)."""

    function_type = BODY_TYPE

    def __init__(self, pointer: ir.Value) -> None:
        self.pointer = pointer
        self.type = pointer.type

    def get_reference(self) -> str:
        return self.pointer.get_reference()


def _callable(pointer: ir.Value) -> ir.Value:
    """`pointer` as a callable value of type BODY_TYPE."""
    return _Indirect(pointer)  # type: ignore[return-value]


def _record(b: ir.IRBuilder, records: ir.Value, i: ir.Value) -> ir.Value:
    """The address of chunk record `i`."""
    return b.gep(records, [b.mul(i, i64(_CHUNK_FIELDS))], inbounds=True, source_etype=I64)


def _field(b: ir.IRBuilder, record: ir.Value, k: int) -> ir.Value:
    """The address of slot `k` of a chunk record."""
    return b.gep(record, [i64(k)], inbounds=True, source_etype=I64)


def _declare(module: ir.Module, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    existing = module.globals.get(name)
    if isinstance(existing, ir.Function):
        return existing
    return ir.Function(module, ir.FunctionType(ret, args), name=name)


__all__ = [
    "BODY_TYPE",
    "MAX_THREADS",
    "emit_parallel_for",
    "new_body",
    "pack_context",
    "parallel_for_function",
    "unpack_context",
]
