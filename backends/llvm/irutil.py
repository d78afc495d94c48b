"""Small llvmlite helpers: element types, constants, and loop/branch context managers.

Every block and phi bookkeeping of the emitters goes through the context managers here
(in the style of numba's `for_range` / `if_likely`), so kernels read as structured code.
This file knows nothing of HLO instructions; it maps element types to LLVM types only.

Element type mapping. `llvm_type` is the type a value has in registers, `storage_type` the
type it has in memory. They differ for PRED (i1 in registers, one byte in memory, as numpy
stores bool). BF16 has no llvmlite type: it is kept as its 16 raw bits (i16) in registers and
memory, and the elemental emitter converts to and from f32 around every computation.
Complex numbers are literal structs {re, im}, laid out as numpy lays out complex64/128.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from llvmlite import ir

from hlo.dtypes import PrimitiveType
from hlo.errors import InternalError

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I16 = ir.IntType(16)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F16 = ir.HalfType()
F32 = ir.FloatType()
F64 = ir.DoubleType()
PTR = ir.PointerType()
C64 = ir.LiteralStructType([F32, F32])
C128 = ir.LiteralStructType([F64, F64])

_T = PrimitiveType

# Register type of each array element type.
_REGISTER_TYPES: dict[PrimitiveType, ir.Type] = {
    _T.PRED: I1,
    _T.S8: I8,
    _T.S16: I16,
    _T.S32: I32,
    _T.S64: I64,
    _T.U8: I8,
    _T.U16: I16,
    _T.U32: I32,
    _T.U64: I64,
    _T.F16: F16,
    _T.BF16: I16,
    _T.F32: F32,
    _T.F64: F64,
    _T.C64: C64,
    _T.C128: C128,
}


def llvm_type(t: PrimitiveType) -> ir.Type:
    """The register type of element type `t` (PRED -> i1, BF16 -> i16 raw bits)."""
    try:
        return _REGISTER_TYPES[t]
    except KeyError:
        raise InternalError(f"element type {t.value} has no LLVM register type") from None


def storage_type(t: PrimitiveType) -> ir.Type:
    """The in-memory type of element type `t` (PRED -> i8; otherwise as `llvm_type`)."""
    if t is PrimitiveType.PRED:
        return I8
    return llvm_type(t)


def byte_alignment(t: PrimitiveType) -> int:
    """The natural alignment in bytes of one element of `t` in memory."""
    if t.is_complex:
        return t.byte_size // 2
    return t.byte_size


def i64(value: int) -> ir.Constant:
    """An i64 constant."""
    return ir.Constant(I64, int(value))


# Index arithmetic that cannot overflow (offsets within one buffer): lets LLVM fold and
# vectorise address computations.
NOWRAP = ("nuw", "nsw")


def nowrap_add(b: ir.IRBuilder, *terms: ir.Value) -> ir.Value:
    """The sum of i64 index `terms`, marked as not wrapping."""
    acc = terms[0]
    for t in terms[1:]:
        acc = b.add(acc, t, flags=NOWRAP)
    return acc


def nowrap_mul(b: ir.IRBuilder, x: ir.Value, y: ir.Value | int) -> ir.Value:
    """x * y for i64 indices, marked as not wrapping (a constant 1 is no multiply)."""
    if isinstance(y, int):
        if y == 1:
            return x
        y = i64(y)
    return b.mul(x, y, flags=NOWRAP)


def smin(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    """The smaller of two signed integers."""
    return b.select(b.icmp_signed("<", x, y), x, y)


def smax(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    """The larger of two signed integers."""
    return b.select(b.icmp_signed(">", x, y), x, y)


def internal_function(module: ir.Module, name: str, fnty: ir.FunctionType,
                      arg_names: Sequence[str], *, noinline: bool = False,
                      noalias: bool = False) -> ir.Function:
    """A new internal nounwind function `name` with named arguments. `noinline` keeps it a
    function of its own (one shared body, or one a parallel loop calls); `noalias` marks its
    pointer arguments as not aliasing one another."""
    fn = ir.Function(module, fnty, name=name)
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    if noinline:
        fn.attributes.add("noinline")
    for arg, arg_name in zip(fn.args, arg_names, strict=True):
        arg.name = arg_name
        if noalias and arg.type == PTR:
            arg.add_attribute("noalias")
    return fn


def element_pointer(b: ir.IRBuilder, ptr: ir.Value, elem: ir.Type, offset: ir.Value
                    ) -> ir.Value:
    """Pointer to element `offset` of a buffer of `elem` values (within the buffer)."""
    return b.gep(ptr, [offset], inbounds=True, source_etype=elem)


def splat(b: ir.IRBuilder, value: ir.Value, width: int) -> ir.Value:
    """A vector of `width` copies of the scalar `value`."""
    vec_ty = ir.VectorType(value.type, width)
    one = b.insert_element(ir.Constant(vec_ty, ir.Undefined), value, ir.Constant(I32, 0))
    mask = ir.Constant(ir.VectorType(I32, width), [0] * width)
    return b.shuffle_vector(one, ir.Constant(vec_ty, ir.Undefined), mask)


def map_lanes(b: ir.IRBuilder, rows: Sequence[Sequence[ir.Value]], lanes: int,
              fn: Callable[[int, int, ir.Value], ir.Value]) -> list[list[ir.Value]]:
    """A register tile (rows of vectors of `lanes` lanes) with the element of row r and
    column j (lane `j % lanes` of vector `j // lanes`) replaced by fn(r, j, element), lane
    by lane: for scalar code such as a fused epilogue, which LLVM's SLP vectoriser turns
    back into vector operations."""
    result = []
    for r, vectors in enumerate(rows):
        out = []
        for v, vec in enumerate(vectors):
            for lane in range(lanes):
                value = fn(r, v * lanes + lane, b.extract_element(vec, i64(lane)))
                vec = b.insert_element(vec, value, i64(lane))
            out.append(vec)
        result.append(out)
    return result


def const(t: PrimitiveType, value: Any) -> ir.Constant:
    """A register-typed constant of element type `t` holding the Python number `value`.

    Integers wrap to the type's width (so `const(U32, -1)` is 0xFFFFFFFF); BF16 values are
    rounded to the nearest bf16 and given as raw bits; complex values become {re, im}.
    """
    ty = llvm_type(t)
    if t is PrimitiveType.PRED:
        return ir.Constant(I1, 1 if value else 0)
    if t.is_integer:
        return ir.Constant(ty, int(value) & ((1 << t.bits) - 1))
    if t is PrimitiveType.BF16:
        import numpy as np

        bits = np.array([value], dtype=t.numpy).view(np.uint16)[0]
        return ir.Constant(I16, int(bits))
    if t.is_complex:
        part = F32 if t is PrimitiveType.C64 else F64
        z = complex(value)
        return ir.Constant(ty, [ir.Constant(part, z.real), ir.Constant(part, z.imag)])
    if t.is_float:
        return ir.Constant(ty, float(value))
    raise InternalError(f"no constant of element type {t.value}")


def zero(t: PrimitiveType) -> ir.Constant:
    """The zero of element type `t` in its register type."""
    return const(t, 0)


@contextmanager
def for_range(
    b: ir.IRBuilder,
    start: ir.Value | int,
    stop: ir.Value | int,
    step: int = 1,
    name: str = "i",
) -> Iterator[ir.Value]:
    """A counted loop `for i in range(start, stop, step)` over i64; yields the induction value.

    The body is emitted by the `with` block at the builder's position; on exit the builder is
    positioned after the loop. `step` must be a non-zero Python int. A loop whose range is
    empty at run time executes no iteration (the test is at the top).
    """
    if step == 0:
        raise InternalError("for_range with step 0")
    start_v = i64(start) if isinstance(start, int) else start
    stop_v = i64(stop) if isinstance(stop, int) else stop
    pre = b.block
    header = b.append_basic_block(f"{name}.header")
    body = b.append_basic_block(f"{name}.body")
    exit_ = b.append_basic_block(f"{name}.exit")
    b.branch(header)

    b.position_at_end(header)
    ind = b.phi(I64, name=name)
    ind.add_incoming(start_v, pre)
    cmp = "<" if step > 0 else ">"
    b.cbranch(b.icmp_signed(cmp, ind, stop_v), body, exit_)

    b.position_at_end(body)
    yield ind
    nxt = b.add(ind, i64(step), name=f"{name}.next", flags=["nsw"])
    ind.add_incoming(nxt, b.block)
    b.branch(header)

    b.position_at_end(exit_)


@contextmanager
def loop_nest(
    b: ir.IRBuilder, dims: Sequence[int], name: str = "i"
) -> Iterator[list[ir.Value]]:
    """Nested counted loops over `dims` (outermost first); yields the i64 indices.

    A rank-0 nest yields an empty list and emits its body once, without a loop.
    """
    with _loop_nest(b, list(dims), name, []) as indices:
        yield indices


@contextmanager
def _loop_nest(
    b: ir.IRBuilder, dims: list[int], name: str, outer: list[ir.Value]
) -> Iterator[list[ir.Value]]:
    if not dims:
        yield outer
        return
    with for_range(b, 0, dims[0], name=f"{name}{len(outer)}") as idx:
        with _loop_nest(b, dims[1:], name, [*outer, idx]) as indices:
            yield indices


@contextmanager
def if_then(b: ir.IRBuilder, cond: ir.Value, likely: bool | None = None) -> Iterator[None]:
    """Emit the `with` block only when the i1 `cond` is true; continue after it."""
    with b.if_then(cond, likely=likely):
        yield


def if_else(
    b: ir.IRBuilder, cond: ir.Value, likely: bool | None = None
) -> Any:
    """Two-armed branch on the i1 `cond`: `with if_else(b, c) as (then, otherwise):`.

    Yields (then_cm, else_cm), two context managers to enter in turn, as llvmlite's
    `IRBuilder.if_else` does; the builder continues after the merge block.
    """
    return b.if_else(cond, likely=likely)


def select_phi(
    b: ir.IRBuilder, cond: ir.Value, then_value: Any, else_value: Any
) -> ir.Value:
    """`cond ? then : else` for values that are cheap to compute eagerly (an LLVM select)."""
    return b.select(cond, then_value, else_value)


def alloca_at_entry(b: ir.IRBuilder, ty: ir.Type, count: int = 1, name: str = "") -> ir.Value:
    """A stack slot allocated in the function's entry block (so loops do not grow the stack).

    The CPU driver keeps the entry block free of other code (its code starts in the next
    block), so `b` is never positioned in the entry block while this inserts there.
    """
    entry = b.function.entry_basic_block
    # A separate builder leaves `b` where it is.
    tmp = ir.IRBuilder(entry)
    if entry.instructions:
        tmp.position_before(entry.instructions[0])
    return tmp.alloca(ty, size=None if count == 1 else i64(count), name=name)


def declare_function(
    module: ir.Module, name: str, ret: ir.Type, args: Sequence[ir.Type]
) -> ir.Function:
    """The function `name` of `module`, declared with the given signature if absent."""
    existing = module.globals.get(name)
    if existing is not None:
        if not isinstance(existing, ir.Function):
            raise InternalError(f"{name} is already a non-function global")
        return existing
    return ir.Function(module, ir.FunctionType(ret, list(args)), name=name)


def intrinsic(
    b: ir.IRBuilder, name: str, ret: ir.Type, args: Sequence[ir.Value]
) -> ir.Value:
    """Call the LLVM intrinsic `name` (e.g. `llvm.fabs.f32`), declaring it on first use."""
    fn = declare_function(b.module, name, ret, [a.type for a in args])
    return b.call(fn, list(args))
