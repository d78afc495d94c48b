"""Data-movement rules that remove no-op or nested slices, pads, concatenates and reverses.

Transposes, reshapes and broadcasts have their own pass (reshape_transpose.py), which
also folds transposes into dot dimension numbers.
"""

from __future__ import annotations

from compiler.passes.algsimp_rules import rule
from compiler.passes.algsimp_rules.match import make, same_dims
from hlo.attributes import SliceDim
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode


@rule(Opcode.SLICE)
def slice_whole(instr: HloInstruction) -> HloInstruction | None:
    """slice(A) of all of A => A"""
    (x,) = instr.operands
    return x if same_dims(x, instr) else None


@rule(Opcode.SLICE)
def slice_slice(instr: HloInstruction) -> HloInstruction | None:
    """slice(slice(A, s1), s2) => slice(A, s1 then s2)"""
    (inner,) = instr.operands
    if inner.opcode is not Opcode.SLICE:
        return None
    merged = []
    for outer_dim, inner_dim, size in zip(instr.attrs["slice"], inner.attrs["slice"],
                                          instr.shape.dims, strict=True):
        start = inner_dim.start + outer_dim.start * inner_dim.stride
        stride = inner_dim.stride * outer_dim.stride
        limit = start + (size - 1) * stride + 1 if size else start
        merged.append(SliceDim(start, limit, stride))
    return make(instr, Opcode.SLICE, inner.operands, shape=instr.shape, slice=tuple(merged))


@rule(Opcode.SLICE)
def slice_of_scalar_broadcast(instr: HloInstruction) -> HloInstruction | None:
    """slice(broadcast(s)) => broadcast(s)  (s a scalar)"""
    (x,) = instr.operands
    if x.opcode is not Opcode.BROADCAST or x.operands[0].shape.rank != 0:
        return None
    return make(instr, Opcode.BROADCAST, x.operands, shape=instr.shape, dimensions=())


@rule(Opcode.PAD)
def pad_nothing(instr: HloInstruction) -> HloInstruction | None:
    """pad(A, v) with no padding => A"""
    x, _ = instr.operands
    if any(d.low or d.high or d.interior for d in instr.attrs["padding"].dims):
        return None
    return x if same_dims(x, instr) else None


@rule(Opcode.CONCATENATE)
def concatenate_one(instr: HloInstruction) -> HloInstruction | None:
    """concatenate(A) => A"""
    if len(instr.operands) != 1:
        return None
    (x,) = instr.operands
    return x if same_dims(x, instr) else None


@rule(Opcode.CONCATENATE)
def concatenate_drop_empty(instr: HloInstruction) -> HloInstruction | None:
    """concatenate(A, empty, B) => concatenate(A, B)"""
    (dim,) = instr.attrs["dimensions"]
    kept = [o for o in instr.operands if o.shape.dims[dim] != 0]
    if len(kept) == len(instr.operands) or not kept:
        return None
    return make(instr, Opcode.CONCATENATE, kept, shape=instr.shape,
                dimensions=instr.attrs["dimensions"])


@rule(Opcode.REVERSE)
def reverse_trivial(instr: HloInstruction) -> HloInstruction | None:
    """reverse(A) over dimensions of size <= 1 => A"""
    (x,) = instr.operands
    if any(x.shape.dims[d] > 1 for d in instr.attrs["dimensions"]):
        return None
    return x


@rule(Opcode.REVERSE)
def reverse_reverse(instr: HloInstruction) -> HloInstruction | None:
    """reverse(reverse(A, d), d) => A"""
    (x,) = instr.operands
    if x.opcode is not Opcode.REVERSE:
        return None
    if sorted(x.attrs["dimensions"]) != sorted(instr.attrs["dimensions"]):
        return None
    return x.operands[0]


@rule(Opcode.DYNAMIC_SLICE)
def dynamic_slice_whole(instr: HloInstruction) -> HloInstruction | None:
    """dynamic-slice(A, i...) of A's full size => A  (start indices clamp to 0)"""
    x = instr.operands[0]
    return x if same_dims(x, instr) else None


@rule(Opcode.DYNAMIC_UPDATE_SLICE)
def dynamic_update_slice_whole(instr: HloInstruction) -> HloInstruction | None:
    """dynamic-update-slice(A, U, i...) with U as large as A => U  (indices clamp to 0)"""
    update = instr.operands[1]
    return update if same_dims(update, instr) else None
