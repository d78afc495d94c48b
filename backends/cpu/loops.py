"""CPU loops around elemental generators, and buffer copies.

The only place on the CPU that wraps a generator in loops: a loop nest over the output
shape, outermost dimension first, so the innermost loop walks contiguous memory and LLVM
can vectorise it. Copies of whole buffers (while-loop state, results) are `llvm.memcpy`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from llvmlite import ir

from backends.llvm.index import IrIndex
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import I1, I64, PTR, declare_function, i64, loop_nest
from hlo.errors import InternalError

Generator = Callable[[IrIndex], ir.Value]


def emit_elemental_loop(b: ir.IRBuilder, out: IrArray, generator: Generator,
                        name: str = "i") -> None:
    """Store generator(index) at every index of `out` (a loop nest; none for rank 0)."""
    with loop_nest(b, out.shape.dims, name=name) as indices:
        index = IrIndex(indices, out.shape)
        # Computed before the generator runs: a generator that branches must not be the
        # first to compute (and cache) the linear offset inside one of its branches.
        index.linear(b)
        out.store(b, index, generator(index))


def emit_multi_output_loop(b: ir.IRBuilder, outs: Sequence[IrArray],
                           generators: Sequence[Generator], name: str = "i") -> None:
    """One loop nest over the (common) dimensions of `outs`, storing each generator's value
    in its output (a multi-output loop fusion)."""
    if not outs:
        return
    dims = outs[0].shape.dims
    if any(o.shape.dims != dims for o in outs):
        raise InternalError("multi-output loop over outputs of different dimensions")
    with loop_nest(b, dims, name=name) as indices:
        index = IrIndex(indices, outs[0].shape)
        index.linear(b)
        for out, gen in zip(outs, generators, strict=True):
            out.store(b, index, gen(index))


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
