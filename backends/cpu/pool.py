"""The thread pool behind `tfcompile.parallel_for` (backends/cpu/threads.py), emitted as
LLVM IR into every module that has a parallel region.

The threads come from a pool private to the module (the module is the library: an object
file alone, a shared library, and code the JIT loads into this process all carry it; it
needs only libc/libpthread). The pool's control block (`POOL`) is allocated on the first
region wanting more than one thread; workers are created then, and more when a later region
asks for more (up to MAX_THREADS - 1), and they persist. A region publishes its job by
bumping a generation counter; workers spin a while on it (so back-to-back regions cost no
system call), then sleep on a condition variable (so idle workers cost no CPU).

Chunks are claimed with a compare-and-swap on one word packing (generation, end of the
unclaimed chunks, start of the unclaimed chunks): the caller claims chunks too, so a region
completes even when no worker wakes (or none could be created), and a worker that arrives
late cannot claim a chunk of the wrong region. The caller waits only for the chunks to be
done, never for a worker to arrive. Workers claim from the front and the caller from the
back, and the last chunk is always the caller's: with two threads the caller runs the
second chunk and the worker the first (unless it comes too late), so each core reads the
same part of the operands on every call (a matrix-vector product split by columns keeps
each core's half of the weights in its own L2 from call to call).

Re-entrancy: the thread count is a value passed down the call chain, and the pool has one
owner at a time, taken with an atomic try-lock; a region that finds it taken (a concurrent
caller, or a region nested in a chunk) runs its chunks serially on the calling thread.

Fork: a child process has none of its parent's workers, so a pool created by another
process id is forgotten (leaked, as its mutex may be in any state) and a new one created.

Teardown: a module destructor (`llvm.global_dtors`) stops and joins the workers, so that
dlclose of a shared library leaves no thread running unmapped code. Code the JIT loads runs
no destructors: its workers stay asleep on a control block that is never freed (so no later
pool can share, and wake, their condition variable) until the process exits.
"""

from __future__ import annotations

from llvmlite import ir

from backends.llvm.irutil import I32, I64, PTR, declare_function, i64, internal_function

# The most chunks one parallel region runs (and so the most scratch slices a body needs).
MAX_THREADS = 64

# How many times an idle worker polls for work before it goes to sleep: with a pause
# instruction per poll, some tens of microseconds, longer than the gap between the regions
# of one call or between calls of a small kernel.
WORKER_SPINS = 1 << 12
# How many times a caller polls for its region's chunks before yielding the CPU on each
# further poll (a worker may have been descheduled when there are more threads than cores).
CALLER_SPINS = 1 << 14

# Exported (hidden, weak) functions a JIT loader calls, since it runs no constructors and
# destructors: START_HOOK after loading (workers may then spin between regions), STOP_HOOK
# before unloading (joins the workers). See `_emit_start`.
START_HOOK = "tfcompile_pool_start"
STOP_HOOK = "tfcompile_pool_stop"
_PREFIX = "tfcompile.pool"

# The body a parallel loop calls for each chunk.
BODY_TYPE = ir.FunctionType(ir.VoidType(), [PTR, I64, I64, I64])
_CHUNK_TYPE = ir.FunctionType(ir.VoidType(), [PTR, PTR, I64, I64, I64])
_VOID = ir.VoidType()
_NULL = ir.Constant(PTR, None)

# Room for a pthread_mutex_t / pthread_cond_t on every supported libc (40 to 64 bytes).
_PTHREAD_OBJECT = ir.ArrayType(I64, 16)
# The pool's control block, by field; `claim` packs generation << 32 | back << 16 | front:
# chunks [front, back) are unclaimed.
_FIELDS = {
    "claim": I64,       # the chunk-claiming word of the current region
    "done": I64,        # chunks of the current region finished
    "body": PTR,        # the current region's job: body, ctx, n and its chunk count
    "ctx": PTR,
    "n": I64,
    "count": I64,
    "sleepers": I32,    # workers asleep (or about to sleep) on `cond`
    "parked": I32,      # workers gone to sleep since the current region was published
    "exit": I32,        # set by the destructor: workers return
    "workers": I32,     # workers created (touched only by the pool's owner)
    "pid": I32,         # the process that created the workers
    "mutex": _PTHREAD_OBJECT,
    "cond": _PTHREAD_OBJECT,
    "threads": ir.ArrayType(I64, MAX_THREADS),  # pthread_t: 8 bytes on Linux and macOS
}
POOL = ir.LiteralStructType(list(_FIELDS.values()))
_INDEX = {name: k for k, name in enumerate(_FIELDS)}

# libc/libpthread functions the pool calls: (return type, argument types).
_LIBC = {
    "calloc": (PTR, [I64, I64]),
    "free": (_VOID, [PTR]),
    "getpid": (I32, []),
    "sched_yield": (I32, []),
    "pthread_create": (I32, [PTR, PTR, PTR, PTR]),
    "pthread_join": (I32, [I64, PTR]),
    "pthread_mutex_init": (I32, [PTR, PTR]),
    "pthread_mutex_destroy": (I32, [PTR]),
    "pthread_mutex_lock": (I32, [PTR]),
    "pthread_mutex_unlock": (I32, [PTR]),
    "pthread_cond_init": (I32, [PTR, PTR]),
    "pthread_cond_destroy": (I32, [PTR]),
    "pthread_cond_wait": (I32, [PTR, PTR]),
    "pthread_cond_broadcast": (I32, [PTR]),
}

# The intrinsic a spin-wait calls per poll, by target architecture (triple prefix): it tells
# the core this is a spin loop (saving power, and the pipeline flush on exit). Intrinsics,
# not inline assembly: the JIT's streamer has no assembly parser.
_RELAX = {"x86_64": ("llvm.x86.sse2.pause", ()), "i386": ("llvm.x86.sse2.pause", ()),
          "i686": ("llvm.x86.sse2.pause", ()), "aarch64": ("llvm.aarch64.hint", (1,)),
          "arm64": ("llvm.aarch64.hint", (1,))}


# ---------------------------------------------------------------------------------------
# The functions and globals of the pool, each defined once per module.


def _pool_function(module: ir.Module, name: str) -> ir.Function:
    """The pool function `tfcompile.pool.<name>`, emitted by its builder on first use."""
    full = f"{_PREFIX}.{name}"
    existing = module.globals.get(full)
    if isinstance(existing, ir.Function):
        return existing
    fnty, arg_names, emit = _POOL_FUNCTIONS[name]
    fn = internal_function(module, full, fnty, arg_names)
    emit(fn)
    return fn


def _global(module: ir.Module, name: str, ty: ir.Type) -> ir.GlobalVariable:
    """The zero-initialised internal global `tfcompile.pool.<name>`."""
    full = f"{_PREFIX}.{name}"
    existing = module.globals.get(full)
    if isinstance(existing, ir.GlobalVariable):
        return existing
    var = ir.GlobalVariable(module, ty, name=full)
    var.linkage = "internal"
    var.initializer = ir.Constant(ty, None)
    var.align = 8
    return var


def _libc(b: ir.IRBuilder, name: str, *args: ir.Value) -> ir.Value:
    """Call the libc function `name` (declared on first use)."""
    ret, arg_types = _LIBC[name]
    return b.call(declare_function(b.module, name, ret, arg_types), list(args))


def _field(b: ir.IRBuilder, pool: ir.Value, name: str) -> ir.Value:
    """The address of field `name` of the control block `pool`."""
    return b.gep(pool, [ir.Constant(I32, 0), ir.Constant(I32, _INDEX[name])], inbounds=True,
                 source_etype=POOL)


def _load(b: ir.IRBuilder, pool: ir.Value, name: str, ordering: str | None = None) -> ir.Value:
    """Field `name` of `pool`; an atomic load when `ordering` is given."""
    ty = _FIELDS[name]
    if ordering is None:
        return b.load(_field(b, pool, name), typ=ty)
    return b.load_atomic(_field(b, pool, name), ordering, ty.width // 8, typ=ty)


def _store(b: ir.IRBuilder, pool: ir.Value, name: str, value: ir.Value,
           ordering: str | None = None) -> None:
    """Set field `name` of `pool`; an atomic store when `ordering` is given."""
    if ordering is None:
        b.store(value, _field(b, pool, name))
    else:
        _atomic_store(b, value, _field(b, pool, name), ordering)


def _atomic_store(b: ir.IRBuilder, value: ir.Value, ptr: ir.Value, ordering: str) -> None:
    """An atomic store, as an exchange: llvmlite's store_atomic needs a typed pointer."""
    b.atomic_rmw("xchg", ptr, value, ordering)


def _add(b: ir.IRBuilder, pool: ir.Value, name: str, delta: int) -> None:
    """Atomically add `delta` to the integer field `name`."""
    b.atomic_rmw("add", _field(b, pool, name), ir.Constant(_FIELDS[name], delta), "seq_cst")


def _gen_of(b: ir.IRBuilder, word: ir.Value) -> ir.Value:
    """The generation of a claim word."""
    return b.lshr(word, i64(32))


class _Relax(ir.Instruction):
    """A call of the spin-wait hint of the module's target (`_RELAX`), or nothing.

    Rendered when the module is printed, because the triple is set after code generation;
    never cached, so printing the module before the triple is set does not fix it.
    """

    def __init__(self, parent: ir.Block) -> None:
        super().__init__(parent, _VOID, "call", [])

    def __str__(self) -> str:
        hint = _RELAX.get(self.module.triple.split("-", 1)[0])
        if hint is None:
            return "; no spin-wait hint for this target"
        name, args = hint
        return f'call void @"{name}"({", ".join(f"i32 {a}" for a in args)})'

    def descr(self, buf: list[str]) -> None:
        buf.append(str(self) + "\n")


def _relax(b: ir.IRBuilder) -> None:
    """Emit the spin-wait hint (declaring every target's: unused declarations are free)."""
    for name, args in _RELAX.values():
        declare_function(b.module, name, _VOID, [I32] * len(args))
    b._insert(_Relax(b.block))


def _loop(b: ir.IRBuilder, fn: ir.Function, name: str) -> ir.Block:
    """Branch to a new block `name` and continue there (the head of a loop)."""
    head = fn.append_basic_block(name)
    b.branch(head)
    b.position_at_end(head)
    return head


def _counter(b: ir.IRBuilder, name: str, ty: ir.Type = I64) -> ir.Value:
    """A zeroed stack variable, allocated in the function's first block."""
    entry = b.function.entry_basic_block
    tmp = ir.IRBuilder(entry)
    if entry.instructions:
        tmp.position_before(entry.instructions[0])
    var = tmp.alloca(ty, name=name)
    tmp.store(ir.Constant(ty, 0), var)
    if b.block is entry:
        # `b` inserts at a fixed index: move it back behind what was just added.
        b.position_at_end(entry)
    return var


def _emit_chunk(fn: ir.Function) -> None:
    """`chunk(body, ctx, n, count, k)`: run chunk k of the split of [0, n) into `count`."""
    body, ctx, n, count, k = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    size = b.sdiv(n, count)
    extra = b.srem(n, count)
    shorter = b.icmp_signed("<", k, extra)
    begin = b.add(b.mul(size, k), b.select(shorter, k, extra))
    end = b.add(b.add(begin, size), b.zext(shorter, I64))
    b.call(_callable(body), [ctx, begin, end, k])
    b.ret_void()


def _emit_serial(fn: ir.Function) -> None:
    """`serial(body, ctx, n, count)`: every chunk in order on this thread."""
    body, ctx, n, count = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    k = _counter(b, "k")
    head = _loop(b, fn, "loop")
    index = b.load(k)
    with b.if_then(b.icmp_signed(">=", index, count)):
        b.ret_void()
    b.call(_pool_function(fn.module, "chunk"), [body, ctx, n, count, index])
    b.store(b.add(index, i64(1)), k)
    b.branch(head)


def _emit_help(fn: ir.Function) -> None:
    """`help(pool, gen, caller)`: claim and run chunks of region `gen` until none is left.

    The region's caller (`caller` set) claims the last unclaimed chunk each time, workers
    the first, but never the region's last chunk: that one is always the caller's, and with
    two threads the other chunk is the worker's unless the worker comes too late.
    """
    pool, gen, caller = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    at_back = b.icmp_unsigned("!=", caller, ir.Constant(I32, 0))
    head = _loop(b, fn, "claim")
    word = _load(b, pool, "claim", "acquire")
    back = b.and_(b.lshr(word, i64(16)), i64(0xFFFF))
    front = b.and_(word, i64(0xFFFF))
    # Read before the claim succeeds: a successful claim proves the region was still open
    # (and so its job unchanged) while these were read.
    body = _load(b, pool, "body")
    ctx = _load(b, pool, "ctx")
    n = _load(b, pool, "n")
    count = _load(b, pool, "count")
    limit = b.select(at_back, back, b.sub(count, i64(1)))
    stale = b.icmp_unsigned("!=", _gen_of(b, word), gen)
    exhausted = b.or_(b.icmp_unsigned(">=", front, back), b.icmp_signed(">=", front, limit))
    with b.if_then(b.or_(stale, exhausted)):
        b.ret_void()
    k = b.select(at_back, b.sub(back, i64(1)), front)
    claimed = b.select(at_back, b.sub(word, i64(1 << 16)), b.add(word, i64(1)))
    swap = b.cmpxchg(_field(b, pool, "claim"), word, claimed, "acq_rel", "acquire")
    with b.if_then(b.not_(b.extract_value(swap, 1))):
        b.branch(head)
    b.call(_pool_function(fn.module, "chunk"), [body, ctx, n, count, k])
    # Release: the caller sees this chunk's results once it sees the count.
    b.atomic_rmw("add", _field(b, pool, "done"), i64(1), "release")
    b.branch(head)


def _emit_worker(fn: ir.Function) -> None:
    """`worker(pool)`: the pthread start routine; helps each new region until told to exit."""
    (pool,) = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    seen = _counter(b, "seen")
    spins = _counter(b, "spins", I32)
    poll = _loop(b, fn, "poll")
    with b.if_then(b.icmp_signed("!=", _load(b, pool, "exit", "acquire"),
                                 ir.Constant(I32, 0))):
        b.ret(_NULL)
    gen = _gen_of(b, _load(b, pool, "claim", "acquire"))
    with b.if_then(b.icmp_unsigned("!=", gen, b.load(seen))):
        b.store(gen, seen)
        b.call(_pool_function(fn.module, "help"), [pool, gen, ir.Constant(I32, 0)])
        b.store(ir.Constant(I32, 0), spins)
        b.branch(poll)
    count = b.load(spins)
    managed = b.load_atomic(_global(fn.module, "managed", I32), "monotonic", 4, typ=I32)
    limit = b.select(b.icmp_signed("!=", managed, ir.Constant(I32, 0)),
                     ir.Constant(I32, WORKER_SPINS), ir.Constant(I32, 0))
    with b.if_then(b.icmp_signed("<", count, limit)):
        b.store(b.add(count, ir.Constant(I32, 1)), spins)
        _relax(b)
        b.branch(poll)
    # Sleep. `sleepers` is raised before the generation is read again, and a caller raises
    # the generation before reading `sleepers`: one of the two sees the other (both are
    # sequentially consistent), so a wake-up is never missed.
    mutex, cond = _field(b, pool, "mutex"), _field(b, pool, "cond")
    _libc(b, "pthread_mutex_lock", mutex)
    _add(b, pool, "sleepers", 1)
    _add(b, pool, "parked", 1)
    wait = _loop(b, fn, "wait")
    same = b.icmp_unsigned("==", _gen_of(b, _load(b, pool, "claim", "seq_cst")), b.load(seen))
    running = b.icmp_signed("==", _load(b, pool, "exit", "seq_cst"), ir.Constant(I32, 0))
    with b.if_then(b.and_(same, running)):
        _libc(b, "pthread_cond_wait", cond, mutex)
        b.branch(wait)
    _add(b, pool, "sleepers", -1)
    _libc(b, "pthread_mutex_unlock", mutex)
    b.store(ir.Constant(I32, 0), spins)
    b.branch(poll)


def _emit_acquire(fn: ir.Function) -> None:
    """`acquire(want)`: the pool of this process with at least `want` workers where they can
    be created (null if the control block cannot be allocated); the caller owns the pool."""
    (want,) = fn.args
    state = _global(fn.module, "state", PTR)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    grow = fn.append_basic_block("grow")
    pid = _libc(b, "getpid")
    current = b.load(state, typ=PTR)
    with b.if_then(b.icmp_unsigned("!=", current, _NULL)):
        with b.if_then(b.icmp_signed("==", _load(b, current, "pid"), pid)):
            b.branch(grow)
    # No pool, or one created by the parent of this (forked) process: a new one.
    size = b.ptrtoint(b.gep(_NULL, [i64(1)], source_etype=POOL), I64)
    fresh = _libc(b, "calloc", i64(1), size)
    with b.if_then(b.icmp_unsigned("==", fresh, _NULL)):
        b.ret(_NULL)
    _libc(b, "pthread_mutex_init", _field(b, fresh, "mutex"), _NULL)
    _libc(b, "pthread_cond_init", _field(b, fresh, "cond"), _NULL)
    _store(b, fresh, "pid", pid)
    b.store(fresh, state)
    b.branch(grow)
    b.position_at_end(grow)
    pool = b.load(state, typ=PTR)
    loop = _loop(b, fn, "spawn")
    workers = _load(b, pool, "workers")
    with b.if_then(b.icmp_signed(">=", b.sext(workers, I64), want)):
        b.ret(pool)
    slot = b.gep(_field(b, pool, "threads"), [i64(0), workers], inbounds=True,
                 source_etype=_FIELDS["threads"])
    worker = _pool_function(fn.module, "worker")
    rc = _libc(b, "pthread_create", slot, _NULL, worker, pool)
    with b.if_then(b.icmp_signed("!=", rc, ir.Constant(I32, 0))):
        # Fewer workers: the caller runs the chunks nobody else claims.
        b.ret(pool)
    _store(b, pool, "workers", b.add(workers, ir.Constant(I32, 1)))
    b.branch(loop)


def _emit_teardown(fn: ir.Function) -> None:
    """`teardown()`, the module destructor: stop and join this process's workers."""
    state = _global(fn.module, "state", PTR)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    pool = b.load(state, typ=PTR)
    with b.if_then(b.icmp_unsigned("==", pool, _NULL)):
        b.ret_void()
    b.store(_NULL, state)
    # A pool inherited through fork has no workers in this process, and its mutex may be
    # in any state: leave it.
    with b.if_then(b.icmp_signed("!=", _load(b, pool, "pid"), _libc(b, "getpid"))):
        b.ret_void()
    mutex, cond = _field(b, pool, "mutex"), _field(b, pool, "cond")
    _store(b, pool, "exit", ir.Constant(I32, 1), "seq_cst")
    _libc(b, "pthread_mutex_lock", mutex)
    _libc(b, "pthread_cond_broadcast", cond)
    _libc(b, "pthread_mutex_unlock", mutex)
    k = _counter(b, "k")
    head = _loop(b, fn, "join")
    index = b.load(k)
    with b.if_then(b.icmp_signed(">=", index, b.sext(_load(b, pool, "workers"), I64))):
        _libc(b, "pthread_cond_destroy", cond)
        _libc(b, "pthread_mutex_destroy", mutex)
        _libc(b, "free", pool)
        b.ret_void()
    slot = b.gep(_field(b, pool, "threads"), [i64(0), index], inbounds=True,
                 source_etype=_FIELDS["threads"])
    _libc(b, "pthread_join", b.load(slot, typ=I64), _NULL)
    b.store(b.add(index, i64(1)), k)
    b.branch(head)


def _emit_start(fn: ir.Function) -> None:
    """`start()`, the module constructor: mark the pool managed.

    Workers of a managed pool spin a while after each region, which is safe only where the
    module's destructor (or `STOP_HOOK`) stops them before its code is unmapped: a loader
    that runs constructors runs destructors. Where no constructor ran (code loaded by a JIT
    that runs neither), the pool is unmanaged: each region ends with every worker asleep in
    libc (`_park`), where unmapping the code cannot hurt it, at the cost of a wake-up per
    region. A JIT loader opts in to the fast mode by calling START_HOOK after loading and
    STOP_HOOK before unloading.
    """
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    _atomic_store(b, ir.Constant(I32, 1), _global(fn.module, "managed", I32), "seq_cst")
    b.ret_void()


def _emit_stop(fn: ir.Function) -> None:
    """`stop()`: join the workers (`teardown`), then leave the pool unmanaged."""
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.call(_pool_function(fn.module, "teardown"), [])
    _atomic_store(b, ir.Constant(I32, 0), _global(fn.module, "managed", I32), "seq_cst")
    b.ret_void()


def _register(fn: ir.Function, table_name: str) -> None:
    """Add `fn` to the module's `llvm.global_ctors` or `llvm.global_dtors`."""
    entry_type = ir.LiteralStructType([I32, PTR, PTR])
    entry = ir.Constant(entry_type, [ir.Constant(I32, 65535), fn, _NULL])
    table = ir.GlobalVariable(fn.module, ir.ArrayType(entry_type, 1), name=table_name)
    table.linkage = "appending"
    table.initializer = ir.Constant(ir.ArrayType(entry_type, 1), [entry])


def _export(module: ir.Module, name: str, target: ir.Function) -> None:
    """A hidden weak function `name` calling `target`: found by name in the JIT; weak so
    that several generated objects link into one program (they never call it there)."""
    fn = ir.Function(module, ir.FunctionType(_VOID, []), name=name)
    fn.linkage = "weak"
    fn.visibility = "hidden"
    fn.attributes.add("nounwind")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b.call(target, [])
    b.ret_void()


def _emit_hooks(module: ir.Module) -> None:
    """The constructor, destructor and JIT hooks of the module's pool."""
    _register(_pool_function(module, "start"), "llvm.global_ctors")
    _register(_pool_function(module, "teardown"), "llvm.global_dtors")
    _export(module, START_HOOK, _pool_function(module, "start"))
    _export(module, STOP_HOOK, _pool_function(module, "stop"))


def _emit_parallel_for(fn: ir.Function) -> None:
    """The body of `tfcompile.parallel_for` (see the module docstring)."""
    body, ctx, n, grain, threads = fn.args
    module = fn.module
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    # count = clamp(threads, 1, MAX_THREADS), then at most ceil(n / grain).
    wanted = b.sext(threads, I64)
    wanted = b.select(b.icmp_signed("<", wanted, i64(1)), i64(1), wanted)
    wanted = b.select(b.icmp_signed(">", wanted, i64(MAX_THREADS)), i64(MAX_THREADS), wanted)
    pieces = b.sdiv(b.add(n, b.sub(grain, i64(1))), grain)
    count = b.select(b.icmp_signed("<", pieces, wanted), pieces, wanted)
    with b.if_then(b.icmp_signed("<=", n, i64(0))):
        b.ret_void()
    with b.if_then(b.icmp_signed("<=", count, i64(1))):
        b.call(_callable(body), [ctx, i64(0), n, i64(0)])
        b.ret_void()
    serial = _pool_function(module, "serial")
    lock = _global(module, "lock", I32)
    taken = b.cmpxchg(lock, ir.Constant(I32, 0), ir.Constant(I32, 1), "acquire", "monotonic")
    with b.if_then(b.not_(b.extract_value(taken, 1))):
        # Busy (a concurrent caller, or a region nested in a chunk): run it all here.
        b.call(serial, [body, ctx, n, count])
        b.ret_void()
    pool = b.call(_pool_function(module, "acquire"), [b.sub(count, i64(1))])
    with b.if_then(b.icmp_unsigned("==", pool, _NULL)):
        _atomic_store(b, ir.Constant(I32, 0), lock, "release")
        b.call(serial, [body, ctx, n, count])
        b.ret_void()
    _store(b, pool, "body", body)
    _store(b, pool, "ctx", ctx)
    _store(b, pool, "n", n)
    _store(b, pool, "count", count)
    _store(b, pool, "done", i64(0))
    _store(b, pool, "parked", ir.Constant(I32, 0), "seq_cst")
    gen = b.and_(b.add(_gen_of(b, _load(b, pool, "claim")), i64(1)), i64(0xFFFFFFFF))
    _store(b, pool, "claim", b.or_(b.shl(gen, i64(32)), b.shl(count, i64(16))), "seq_cst")
    with b.if_then(b.icmp_signed("!=", _load(b, pool, "sleepers", "seq_cst"),
                                 ir.Constant(I32, 0))):
        mutex = _field(b, pool, "mutex")
        _libc(b, "pthread_mutex_lock", mutex)
        _libc(b, "pthread_cond_broadcast", _field(b, pool, "cond"))
        _libc(b, "pthread_mutex_unlock", mutex)
    b.call(_pool_function(module, "help"), [pool, gen, ir.Constant(I32, 1)])
    # Wait for the chunks workers claimed: spin, then yield the CPU on each poll.
    spins = _counter(b, "spins", I32)
    wait = _loop(b, fn, "wait")
    with b.if_then(b.icmp_signed("!=", _load(b, pool, "done", "acquire"), count)):
        polls = b.load(spins)
        b.store(b.add(polls, ir.Constant(I32, 1)), spins)
        with b.if_else(b.icmp_signed("<", polls, ir.Constant(I32, CALLER_SPINS))) as (
                spin, give):
            with spin:
                _relax(b)
            with give:
                _libc(b, "sched_yield")
        b.branch(wait)
    managed = b.load_atomic(_global(module, "managed", I32), "monotonic", 4, typ=I32)
    with b.if_then(b.icmp_signed("==", managed, ir.Constant(I32, 0))):
        _park(b, pool)
    _atomic_store(b, ir.Constant(I32, 0), lock, "release")
    b.ret_void()


def _park(b: ir.IRBuilder, pool: ir.Value) -> None:
    """Wait until every worker is asleep inside pthread_cond_wait (in libc, not in this
    module's code), so the code may be unmapped as soon as the caller returns.

    Unmanaged pools only (see `_emit_start`). A worker counts itself in `parked` holding
    the mutex, which pthread_cond_wait releases once it waits: taking the mutex after the
    count is full proves the last one is there.
    """
    fn = b.function
    wait = _loop(b, fn, "park")
    parked = _load(b, pool, "parked", "seq_cst")
    with b.if_then(b.icmp_signed("<", parked, _load(b, pool, "workers"))):
        _libc(b, "sched_yield")
        b.branch(wait)
    mutex = _field(b, pool, "mutex")
    _libc(b, "pthread_mutex_lock", mutex)
    _libc(b, "pthread_mutex_unlock", mutex)


# name -> (type, argument names, emitter) of the pool's functions.
_POOL_FUNCTIONS = {
    "chunk": (_CHUNK_TYPE, ("body", "ctx", "n", "count", "k"), _emit_chunk),
    "serial": (ir.FunctionType(_VOID, [PTR, PTR, I64, I64]), ("body", "ctx", "n", "count"),
               _emit_serial),
    "help": (ir.FunctionType(_VOID, [PTR, I64, I32]), ("pool", "gen", "caller"),
             _emit_help),
    "worker": (ir.FunctionType(PTR, [PTR]), ("pool",), _emit_worker),
    "acquire": (ir.FunctionType(PTR, [I64]), ("want",), _emit_acquire),
    "teardown": (ir.FunctionType(_VOID, []), (), _emit_teardown),
    "start": (ir.FunctionType(_VOID, []), (), _emit_start),
    "stop": (ir.FunctionType(_VOID, []), (), _emit_stop),
}


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


def emit_parallel_for_body(fn: ir.Function) -> None:
    """Emit the body of `fn`, the module's `tfcompile.parallel_for(body, ctx, n, grain,
    threads)`, and the pool it runs its chunks on (with the loader hooks)."""
    _emit_parallel_for(fn)
    _emit_hooks(fn.module)
