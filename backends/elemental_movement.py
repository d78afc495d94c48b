"""Elemental emitters for leaves and movement ops: they rewrite the index, never copy.

`transpose(x)` at index i is `x` at `i.of_transpose(...)`; pad, concatenate and the dynamic
slices choose between operands by comparing the index with the window bounds. Loads that
might fall outside an operand are clamped into it and the value is then selected away, so
the code stays branch-free (and vectorisable) except for concatenate. Constants become
private LLVM globals (scalars are folded into the IR as immediates). Registered in
`backends.elemental.EMIT`.
"""

from __future__ import annotations

import re

import numpy as np
from llvmlite import ir

from backends.elemental import ElementalEmitter, Operands, emits_elemental, operand_at
from backends.llvm.index import IrIndex
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import I1, I8, I64, const, i64, llvm_type
from hlo.errors import InternalError, UnsupportedOpError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

_O = Opcode


# --- leaves --------------------------------------------------------------------------------


@emits_elemental(_O.PARAMETER)
def _parameter(e: ElementalEmitter, instr: HloInstruction, operands: Operands, index: IrIndex
               ) -> ir.Value:
    number = instr.attrs["parameter_number"]
    gen = e.parameters.get(number)
    if gen is None:
        raise InternalError(f"no generator for parameter {number} ({instr.name})")
    return gen(index)


def literal_bytes(literal: np.ndarray) -> bytes:
    """The row-major bytes of a constant literal, in the element type's storage encoding."""
    return np.ascontiguousarray(literal).tobytes()


def constant_global(module: ir.Module, instr: HloInstruction) -> IrArray:
    """The constant's data as a private, 64-byte-aligned LLVM global (created once)."""
    name = "const." + re.sub(r"[^A-Za-z0-9_.]", "_", instr.name)
    gv = module.globals.get(name)
    if gv is None:
        data = literal_bytes(instr.attrs["literal"])
        ty = ir.ArrayType(I8, len(data))
        gv = ir.GlobalVariable(module, ty, name=name)
        gv.initializer = ir.Constant(ty, bytearray(data))
        gv.global_constant = True
        gv.linkage = "private"
        gv.unnamed_addr = True
        gv.align = 64
    return IrArray(gv, instr.shape, invariant=True)


def scalar_constant(instr: HloInstruction) -> ir.Constant:
    """The value of a rank-0 constant as an immediate of its register type."""
    t = instr.shape.element_type
    value = instr.attrs["literal"].reshape(())
    if t.is_float and t.bits == 16:
        # f16 immediates: llvmlite prints the double; widen exactly via numpy.
        return const(t, float(np.float32(value)))
    if t.is_complex:
        return const(t, complex(value))
    if t.is_pred:
        return ir.Constant(I1, int(bool(value)))
    if t.is_integer:
        return const(t, int(value))
    return const(t, float(value))


@emits_elemental(_O.CONSTANT)
def _constant(e: ElementalEmitter, instr: HloInstruction, operands: Operands, index: IrIndex
              ) -> ir.Value:
    if instr.shape.is_tuple:
        raise UnsupportedOpError(f"tuple constant {instr.name} is not elemental")
    if instr.shape.rank == 0:
        return scalar_constant(instr)
    return constant_global(e.module, instr).load(e.b, index)


@emits_elemental(_O.IOTA)
def _iota(e: ElementalEmitter, instr: HloInstruction, operands: Operands, index: IrIndex
          ) -> ir.Value:
    from hlo.dtypes import PrimitiveType

    position = index[instr.attrs["iota_dimension"]]
    return e.convert(PrimitiveType.S64, instr.shape.element_type, position)


@emits_elemental(_O.REPLICA_ID, _O.PARTITION_ID)
def _replica_id(e: ElementalEmitter, instr: HloInstruction, operands: Operands, index: IrIndex
                ) -> ir.Value:
    # A single-device program: replica and partition are both 0.
    return ir.Constant(llvm_type(instr.shape.element_type), 0)


# --- pure index rewrites -------------------------------------------------------------------


@emits_elemental(_O.COPY)
def _copy(e: ElementalEmitter, instr: HloInstruction, operands: Operands, index: IrIndex
          ) -> ir.Value:
    return operands[instr.operands[0]](index)


@emits_elemental(_O.BROADCAST)
def _broadcast(e: ElementalEmitter, instr: HloInstruction, operands: Operands, index: IrIndex
               ) -> ir.Value:
    operand = instr.operands[0]
    return operands[operand](index.of_broadcast(operand.shape, instr.attrs["dimensions"]))


@emits_elemental(_O.RESHAPE, _O.BITCAST)
def _reshape(e: ElementalEmitter, instr: HloInstruction, operands: Operands, index: IrIndex
             ) -> ir.Value:
    # Buffers are row-major, so a bitcast is a reshape of the row-major order.
    operand = instr.operands[0]
    return operands[operand](index.of_reshape(e.b, operand.shape))


@emits_elemental(_O.TRANSPOSE)
def _transpose(e: ElementalEmitter, instr: HloInstruction, operands: Operands, index: IrIndex
               ) -> ir.Value:
    operand = instr.operands[0]
    return operands[operand](index.of_transpose(operand.shape, instr.attrs["dimensions"]))


@emits_elemental(_O.SLICE)
def _slice(e: ElementalEmitter, instr: HloInstruction, operands: Operands, index: IrIndex
           ) -> ir.Value:
    operand = instr.operands[0]
    dims = instr.attrs["slice"]
    src = index.of_slice(e.b, operand.shape, [d.start for d in dims], [d.stride for d in dims])
    return operands[operand](src)


@emits_elemental(_O.REVERSE)
def _reverse(e: ElementalEmitter, instr: HloInstruction, operands: Operands, index: IrIndex
             ) -> ir.Value:
    return operands[instr.operands[0]](index.of_reverse(e.b, instr.attrs["dimensions"]))


# --- windows: pad, concatenate, dynamic slices ---------------------------------------------


@emits_elemental(_O.PAD)
def _pad(e: ElementalEmitter, instr: HloInstruction, operands: Operands, index: IrIndex
         ) -> ir.Value:
    """Operand element where the index hits one (low/interior padding undone), else the
    padding value."""
    b = e.b
    operand, pad_value = instr.operands
    pad = operands[pad_value](IrIndex([], ()))
    if operand.shape.num_elements == 0:
        return pad
    inside: ir.Value = ir.Constant(I1, 1)
    src: list[ir.Value] = []
    for k, pd in enumerate(instr.attrs["padding"].dims):
        dim = operand.shape.dims[k]
        pos = b.sub(index[k], i64(pd.low)) if pd.low != 0 else index[k]
        ok = b.icmp_signed(">=", pos, i64(0))
        nonneg = b.select(ok, pos, i64(0))
        if pd.interior:
            step = pd.interior + 1
            q = b.udiv(nonneg, i64(step))
            on_grid = b.icmp_unsigned("==", b.urem(nonneg, i64(step)), i64(0))
            ok = b.and_(ok, on_grid)
            nonneg = q
        ok = b.and_(ok, b.icmp_signed("<", nonneg, i64(dim)))
        inside = b.and_(inside, ok)
        # Clamped so the load is always in bounds; the select below discards it.
        src.append(b.select(ok, nonneg, i64(0)))
    value = operands[operand](IrIndex(src, operand.shape))
    return b.select(inside, value, pad)


@emits_elemental(_O.CONCATENATE)
def _concatenate(e: ElementalEmitter, instr: HloInstruction, operands: Operands, index: IrIndex
                 ) -> ir.Value:
    """A chain of range tests along the concatenated dimension, merged by a phi."""
    b = e.b
    dim = instr.attrs["dimensions"][0]
    pieces: list[tuple[HloInstruction, int]] = []
    offset = 0
    for operand in instr.operands:
        size = operand.shape.dims[dim]
        if size:
            pieces.append((operand, offset))
        offset += size
    if not pieces:
        raise InternalError(f"concatenate {instr.name} of empty operands has no elements")

    def read(piece: tuple[HloInstruction, int]) -> ir.Value:
        operand, start = piece
        pos = b.sub(index[dim], i64(start)) if start else index[dim]
        return operands[operand](index.with_dim(dim, pos, operand.shape.dims))

    if len(pieces) == 1:
        return read(pieces[0])
    merge = b.append_basic_block(f"{instr.name}.merge")
    incoming: list[tuple[ir.Value, ir.Block]] = []
    for k, piece in enumerate(pieces[:-1]):
        end = pieces[k + 1][1]
        here = b.append_basic_block(f"{instr.name}.in{k}")
        later = b.append_basic_block(f"{instr.name}.after{k}")
        b.cbranch(b.icmp_signed("<", index[dim], i64(end)), here, later)
        b.position_at_end(here)
        incoming.append((read(piece), b.block))
        b.branch(merge)
        b.position_at_end(later)
    incoming.append((read(pieces[-1]), b.block))
    b.branch(merge)
    b.position_at_end(merge)
    phi = b.phi(incoming[0][0].type, name=f"{instr.name}.value")
    for value, block in incoming:
        phi.add_incoming(value, block)
    return phi


def _start_indices(
    e: ElementalEmitter, instr: HloInstruction, operands: Operands, first: int,
    operand_shape: Shape, window: tuple[int, ...],
) -> list[ir.Value]:
    """The i64 start indices of a dynamic slice, clamped to [0, dim - window] as XLA does."""
    b = e.b
    rank = operand_shape.rank
    index_ops = instr.operands[first:]
    starts: list[ir.Value] = []
    for k in range(rank):
        if len(index_ops) == 1 and index_ops[0].shape.rank == 1:
            # The old form: one rank-1 operand holding all start indices.
            holder = index_ops[0]
            raw = operands[holder](IrIndex([i64(k)], holder.shape))
        else:
            holder = index_ops[k]
            raw = operands[holder](IrIndex([], ()))
        t = holder.shape.element_type
        if not t.is_integer:
            raise UnsupportedOpError(f"{instr.name}: start index of type {t.value}")
        if raw.type.width < 64:
            raw = b.sext(raw, I64) if t.is_signed else b.zext(raw, I64)
        limit = i64(max(operand_shape.dims[k] - window[k], 0))
        low = b.select(b.icmp_signed("<", raw, i64(0)), i64(0), raw)
        starts.append(b.select(b.icmp_signed(">", low, limit), limit, low))
    return starts


@emits_elemental(_O.DYNAMIC_SLICE)
def _dynamic_slice(e: ElementalEmitter, instr: HloInstruction, operands: Operands,
                   index: IrIndex) -> ir.Value:
    operand = instr.operands[0]
    sizes = tuple(instr.attrs["dynamic_slice_sizes"])
    starts = _start_indices(e, instr, operands, 1, operand.shape, sizes)
    return operands[operand](index.of_slice(e.b, operand.shape, starts))


@emits_elemental(_O.DYNAMIC_UPDATE_SLICE)
def _dynamic_update_slice(e: ElementalEmitter, instr: HloInstruction, operands: Operands,
                          index: IrIndex) -> ir.Value:
    """The update's element inside the (clamped) window, the operand's elsewhere."""
    b = e.b
    operand, update = instr.operands[0], instr.operands[1]
    base = operands[operand](index)
    if update.shape.num_elements == 0:
        return base
    starts = _start_indices(e, instr, operands, 2, operand.shape, update.shape.dims)
    inside: ir.Value = ir.Constant(I1, 1)
    src: list[ir.Value] = []
    for k, start in enumerate(starts):
        rel = b.sub(index[k], start)
        ok = b.and_(b.icmp_signed(">=", rel, i64(0)),
                    b.icmp_signed("<", rel, i64(update.shape.dims[k])))
        inside = b.and_(inside, ok)
        src.append(b.select(ok, rel, i64(0)))
    value = operands[update](IrIndex(src, update.shape))
    return b.select(inside, value, base)


__all__ = ["constant_global", "literal_bytes", "operand_at", "scalar_constant"]
