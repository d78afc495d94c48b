"""CPU loops around elemental generators, and buffer copies.

The only place on the CPU that wraps a generator in loops: a loop nest over the output
shape, outermost dimension first, so the innermost loop walks contiguous memory and LLVM
can vectorise it. When no generator needs the per-dimension index (elementwise work over
operands of the output's shape, scalar broadcasts), the nest is collapsed into one loop
over the linear index: one long vectorisable loop instead of many short ones. Long
innermost loops ask LLVM to interleave a few vector iterations, which hides the latency
of the long dependency chains of fused math (polynomials) that one iteration alone leaves
idle. Copies of whole buffers (while-loop state, results) are `llvm.memcpy`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from llvmlite import ir

from backends.llvm.index import IrIndex
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import (
    I1,
    I32,
    I64,
    PTR,
    declare_function,
    for_range,
    i64,
    loop_nest,
)
from hlo.errors import InternalError

Generator = Callable[[IrIndex], ir.Value]

# An innermost loop of at least this many iterations is interleaved INTERLEAVE_COUNT times.
INTERLEAVE_MIN_TRIP = 4096
INTERLEAVE_COUNT = 4

# Elementwise loops over at least this many elements are split across threads, in chunks
# of at least this many (smaller chunks cost more in the fork-join than they save: with the
# pool spinning, 2 chunks of 8K f32 win for an add, 4K ones tie).
PARALLEL_MIN_ELEMENTS = 1 << 13


def emit_elemental_loop(b: ir.IRBuilder, out: IrArray, generator: Generator,
                        name: str = "i", linear: bool = False) -> None:
    """Store generator(index) at every index of `out` (a loop nest; none for rank 0).

    With `linear`, one loop over the row-major linear index (for generators that read
    only the linear offset; the per-dimension index is still given, LLVM drops it when
    unused).
    """
    emit_multi_output_loop(b, [out], [generator], name=name, linear=linear)


def emit_multi_output_loop(b: ir.IRBuilder, outs: Sequence[IrArray],
                           generators: Sequence[Generator], name: str = "i",
                           linear: bool = False) -> None:
    """One loop nest over the (common) dimensions of `outs`, storing each generator's value
    in its output (a multi-output loop fusion). `linear` as in `emit_elemental_loop`."""
    if not outs:
        return
    dims = outs[0].shape.dims
    if any(o.shape.dims != dims for o in outs):
        raise InternalError("multi-output loop over outputs of different dimensions")
    with _index_loop(b, dims, name, linear) as index:
        # Computed before the generators run: a generator that branches must not be the
        # first to compute (and cache) the linear offset inside one of its branches.
        index.linear(b)
        for out, gen in zip(outs, generators, strict=True):
            out.store(b, index, gen(index))


def emit_linear_range_loop(b: ir.IRBuilder, outs: Sequence[IrArray],
                           generators: Sequence[Generator], begin: ir.Value, end: ir.Value,
                           name: str = "i") -> None:
    """Store each generator's value at the linear indices [begin, end) of its output (one
    chunk of a parallel elementwise loop; the generators read only the linear offset)."""
    dims = outs[0].shape.dims
    if any(o.shape.dims != dims for o in outs):
        raise InternalError("multi-output loop over outputs of different dimensions")
    with for_range(b, begin, end, name=name) as flat:
        index = IrIndex.from_linear(b, flat, dims)
        index.linear(b)
        for out, gen in zip(outs, generators, strict=True):
            out.store(b, index, gen(index))
    _set_loop_hints(b.module, flat, name, INTERLEAVE_COUNT)


@contextmanager
def _index_loop(b: ir.IRBuilder, dims: tuple[int, ...], name: str,
                linear: bool) -> Iterator[IrIndex]:
    """Loops over every index of `dims`, yielding it as an IrIndex."""
    if linear and len(dims) > 1:
        total = math.prod(dims)
        with loop_nest(b, [total], name=name) as (flat,):
            yield IrIndex.from_linear(b, flat, dims)
        inner, trip = flat, total
    else:
        with loop_nest(b, dims, name=name) as indices:
            yield IrIndex(indices, dims)
        if not indices:
            return
        inner, trip = indices[-1], dims[-1]
    if trip >= INTERLEAVE_MIN_TRIP:
        _set_loop_hints(b.module, inner, name, INTERLEAVE_COUNT)


def _set_loop_hints(module: ir.Module, induction: ir.Value, name: str,
                    interleave: int) -> None:
    """Attach `llvm.loop.interleave.count` to the loop of the phi `induction`.

    The loop ID must be distinct and refer to itself; a unique string operand keeps
    llvmlite's metadata cache from sharing one ID between loops.
    """
    if not isinstance(induction, ir.PhiInstr) or len(induction.incomings) != 2:
        return
    latch = induction.incomings[1][1]
    branch = latch.terminator
    if branch is None:
        return
    hint = module.add_metadata([ir.MetaDataString(module, "llvm.loop.interleave.count"),
                                ir.Constant(I32, interleave)])
    unique = ir.MetaDataString(module, module.get_unique_name(f"tfcompile.loop.{name}"))
    loop_id = module.add_metadata([unique, hint])
    loop_id.operands = (loop_id, hint)
    branch.set_metadata("llvm.loop", loop_id)


def memcpy(b: ir.IRBuilder, dst: ir.Value, src: ir.Value, nbytes: int) -> None:
    """Copy `nbytes` bytes between non-overlapping buffers."""
    if nbytes == 0:
        return
    fn = declare_function(b.module, "llvm.memcpy.p0.p0.i64", ir.VoidType(), [PTR, PTR, I64, I1])
    b.call(fn, [dst, src, i64(nbytes), ir.Constant(I1, 0)])


def copy_value(b: ir.IRBuilder, src: Any, dst: Any) -> None:
    """Copy a buffer value (an IrArray, a tuple of them, or None for tokens) into `dst`."""
    if src is None and dst is None:
        return
    if isinstance(src, tuple) and isinstance(dst, tuple):
        if len(src) != len(dst):
            raise InternalError(f"copying a {len(src)}-tuple into a {len(dst)}-tuple")
        for s, d in zip(src, dst, strict=True):
            copy_value(b, s, d)
        return
    if isinstance(src, IrArray) and isinstance(dst, IrArray):
        if src is dst or src.ptr is dst.ptr:
            return
        memcpy(b, dst.ptr, src.ptr, dst.shape.byte_size)
        return
    raise InternalError(f"cannot copy {src!r} into {dst!r}")
