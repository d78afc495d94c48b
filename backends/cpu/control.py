"""Tuples, aliases and control flow on the CPU: call, while, conditional, map, fusion.

Two tables. `VALUE_RULES` holds the instructions that emit no code: tuple and
get-tuple-element pick compile-time buffer values, bitcast/reshape reinterpret a row-major
buffer, opt-barrier aliases its operand, after-all makes a token (no buffer), constant
points at an LLVM global; the buffer assignment treats exactly these as aliases. The kernels
registered in `CPU_KERNELS` below copy (`copy` is a real copy: copy insertion adds copies
precisely so that two values get two buffers), call computations as functions (call, while,
conditional) or inline a scalar computation per element (map). Fusions are in `fusion.py`.

While loops keep their state in the while's own output buffers; the body writes a second
set of buffers, which is copied back after each iteration so that the body never reads
what it is writing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llvmlite import ir

from backends.cpu.kernels import BufferValue, KernelContext, emits
from backends.cpu.loops import copy_value, emit_elemental_loop
from backends.elemental_movement import constant_global
from backends.llvm.index import IrIndex
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import I32, I64
from hlo.dtypes import PrimitiveType
from hlo.errors import CompileError, InternalError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

# rule(context, instruction, operand buffer values) -> the instruction's buffer value
ValueRule = Callable[[Any, HloInstruction, list[BufferValue]], BufferValue]

VALUE_RULES: dict[Opcode, ValueRule] = {}


def value_rule(*opcodes: Opcode) -> Callable[[ValueRule], ValueRule]:
    """Register a no-code rule for `opcodes` in VALUE_RULES."""

    def register(fn: ValueRule) -> ValueRule:
        for op in opcodes:
            if op in VALUE_RULES:
                raise AssertionError(f"two value rules for {op.value}")
            VALUE_RULES[op] = fn
        return fn

    return register


@value_rule(Opcode.TUPLE)
def _tuple(ctx: Any, instr: HloInstruction, operands: list[BufferValue]) -> BufferValue:
    return tuple(operands)


@value_rule(Opcode.GET_TUPLE_ELEMENT)
def _get_tuple_element(ctx: Any, instr: HloInstruction, operands: list[BufferValue]
                       ) -> BufferValue:
    value = operands[0]
    if not isinstance(value, tuple):
        raise InternalError(f"{instr.name}: get-tuple-element of a non-tuple value")
    return value[instr.attrs["index"]]


@value_rule(Opcode.BITCAST, Opcode.RESHAPE)
def _reinterpret(ctx: Any, instr: HloInstruction, operands: list[BufferValue]) -> BufferValue:
    # Row-major buffers: a reshape (and our bitcast) keeps every element at its offset.
    src = operands[0]
    if not isinstance(src, IrArray) or src.shape.byte_size != instr.shape.byte_size:
        raise CompileError(f"{instr.name}: {instr.opcode.value} changes the buffer size")
    return IrArray(src.ptr, instr.shape, src.invariant)


@value_rule(Opcode.OPTIMIZATION_BARRIER)
def _alias(ctx: Any, instr: HloInstruction, operands: list[BufferValue]) -> BufferValue:
    return operands[0]


@value_rule(Opcode.AFTER_ALL)
def _token(ctx: Any, instr: HloInstruction, operands: list[BufferValue]) -> BufferValue:
    return None


@value_rule(Opcode.CONSTANT)
def _constant(ctx: Any, instr: HloInstruction, operands: list[BufferValue]) -> BufferValue:
    if instr.shape.is_tuple:
        return _tuple_constant(ctx, instr, instr.shape, instr.attrs["literal"], instr.name)
    return constant_global(ctx.module, instr)


def _tuple_constant(ctx: Any, instr: HloInstruction, shape: Shape, literal: Any,
                    name: str) -> BufferValue:
    """Globals for each leaf of a tuple-shaped constant."""
    if shape.is_tuple:
        return tuple(
            _tuple_constant(ctx, instr, s, lit, f"{name}.{k}")
            for k, (s, lit) in enumerate(zip(shape.tuple_shapes, literal, strict=True))
        )
    if not shape.is_array:
        return None
    leaf = HloInstruction(name=name, opcode=Opcode.CONSTANT, shape=shape,
                          attrs={"literal": literal})
    return constant_global(ctx.module, leaf)


# --- calls ---------------------------------------------------------------------------------


@emits(Opcode.CALL)
def _call(ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue],
          out: BufferValue) -> None:
    ctx.call_computation(instr.attrs["to_apply"], operands, out)


@emits(Opcode.COPY)
def _copy(ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue],
          out: BufferValue) -> None:
    """out = operand, byte for byte (every buffer is row-major)."""
    copy_value(ctx.builder, operands[0], out)


@emits(Opcode.WHILE)
def _while(ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue],
           out: BufferValue) -> None:
    """state = init; while cond(state): state = body(state)."""
    b = ctx.builder
    condition = instr.attrs["condition"]
    body = instr.attrs["body"]
    copy_value(b, operands[0], out)
    next_state = ctx.temp_array(instr.shape)
    flag = ctx.temp_array(Shape.scalar(PrimitiveType.PRED))
    header = b.append_basic_block(f"{instr.name}.cond")
    loop = b.append_basic_block(f"{instr.name}.body")
    done = b.append_basic_block(f"{instr.name}.done")
    b.branch(header)
    b.position_at_end(header)
    ctx.call_computation(condition, [out], flag)
    b.cbranch(flag.load(b, IrIndex([], ())), loop, done)
    b.position_at_end(loop)
    ctx.call_computation(body, [out], next_state)
    copy_value(b, next_state, out)
    b.branch(header)
    b.position_at_end(done)


@emits(Opcode.CONDITIONAL)
def _conditional(ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue],
                 out: BufferValue) -> None:
    """Run one branch computation on its operand; an out-of-range index runs the last."""
    b = ctx.builder
    branches = instr.attrs.get("branch_computations")
    selector = instr.operands[0].shape.element_type
    if branches is None:
        # The pred form: true_computation first, so that branch index = !pred.
        branches = (instr.attrs["true_computation"], instr.attrs["false_computation"])
    selector_buf = operands[0]
    if not isinstance(selector_buf, IrArray):
        raise InternalError(f"{instr.name}: branch selector has no buffer")
    raw = selector_buf.load(b, IrIndex([], ()))
    if selector is PrimitiveType.PRED:
        index = b.zext(b.not_(raw), I32)
    else:
        index = b.trunc(raw, I32) if raw.type.width > 32 else b.sext(raw, I32)
        if raw.type == I64:
            # Indices beyond i32 select the last branch, like any out-of-range index.
            big = b.icmp_signed(">", raw, ir.Constant(I64, len(branches)))
            index = b.select(big, ir.Constant(I32, len(branches) - 1), index)
    merge = b.append_basic_block(f"{instr.name}.merge")
    blocks = [b.append_basic_block(f"{instr.name}.branch{k}") for k in range(len(branches))]
    switch = b.switch(index, blocks[-1])
    for k, block in enumerate(blocks[:-1]):
        switch.add_case(ir.Constant(I32, k), block)
    for k, (block, comp) in enumerate(zip(blocks, branches, strict=True)):
        b.position_at_end(block)
        ctx.call_computation(comp, [operands[k + 1]], out)
        b.branch(merge)
    b.position_at_end(merge)


@emits(Opcode.MAP)
def _map(ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue],
         out: BufferValue) -> None:
    """out[i] = to_apply(operand_0[i], ..., operand_n[i]), inlined per element."""
    if not isinstance(out, IrArray):
        raise InternalError(f"{instr.name}: map of a tuple shape")
    comp = instr.attrs["to_apply"]
    gens = [ctx.elemental(o) for o in instr.operands]

    def element(index: IrIndex) -> ir.Value:
        args = [g(index) for g in gens]
        return ctx.call_scalar_computation(comp, args)[0]

    emit_elemental_loop(ctx.builder, out, element, name=instr.name)
