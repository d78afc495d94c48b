"""VJP rules of data movement: broadcast, reshape, transpose, slices, pad, concatenate,
reverse, gather/scatter, tuples.

Movement is linear, so each rule is the transpose of its instruction: broadcast sums,
slice pads with zeros, dynamic-slice writes into zeros (a *sparse* cotangent, see
VjpContext.add), gather scatter-adds, tuple and get-tuple-element route elements.
"""

from __future__ import annotations

from compiler import numpy_prims as prims
from compiler.tracing import Tracer
from compiler.vjp_rules.base import Cot, VjpContext, defvjp, tuple_cotangent
from hlo.errors import UnsupportedOpError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode


@defvjp(Opcode.BROADCAST)
def _broadcast_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    """Sum over the new dims; reorder if `dimensions` was not increasing."""
    dims = list(instr.attrs["dimensions"])
    summed = prims.reduce_sum(ct, [d for d in range(instr.shape.rank) if d not in dims])
    order = sorted(dims)
    return [prims.transpose(summed, [order.index(d) for d in dims])]


@defvjp(Opcode.RESHAPE, Opcode.BITCAST)
def _reshape_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    return [prims.reshape(ct, instr.operands[0].shape.dims)]


@defvjp(Opcode.TRANSPOSE)
def _transpose_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    perm = list(instr.attrs["dimensions"])
    inverse = [perm.index(i) for i in range(len(perm))]
    return [prims.transpose(ct, inverse)]


@defvjp(Opcode.REVERSE)
def _reverse_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    return [prims.reverse(ct, instr.attrs["dimensions"])]


@defvjp(Opcode.SLICE)
def _slice_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    """Zero-pad back: low = start, interior = stride - 1, high = what remains."""
    config = []
    for s, n, out in zip(instr.attrs["slice"], instr.operands[0].shape.dims, instr.shape.dims,
                         strict=True):
        covered = s.start + (out - 1) * s.stride + 1 if out else s.start
        config.append((s.start, n - covered, s.stride - 1 if out else 0))
    return [prims.pad(ct, prims.full((), 0, ct.dtype), config)]


@defvjp(Opcode.DYNAMIC_SLICE)
def _dynamic_slice_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    starts = ctx.operands(instr)[1:]
    dense = ctx.sparse_update(instr.operands[0].shape, ct, starts)
    return [dense] + [None] * len(starts)


@defvjp(Opcode.DYNAMIC_UPDATE_SLICE)
def _dynamic_update_slice_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    """The operand gets ct with the update's window zeroed; the update gets that window."""
    _, update, *starts = ctx.operands(instr)
    ct_operand = prims.dynamic_update_slice(ct, prims.zeros_like(update), starts)
    ct_update = prims.dynamic_slice(ct, starts, update.shape)
    return [ct_operand, ct_update] + [None] * len(starts)


@defvjp(Opcode.CONCATENATE)
def _concatenate_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    axis = instr.attrs["dimensions"][0]
    out, offset = [], 0
    for o in instr.operands:
        starts, limits = [0] * ct.ndim, list(ct.shape)
        starts[axis], limits[axis] = offset, offset + o.shape.dims[axis]
        out.append(prims.slice_(ct, starts, limits))
        offset += o.shape.dims[axis]
    return out


@defvjp(Opcode.PAD)
def _pad_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    """Undo negative edge padding with zeros, then take every (interior+1)-th element from
    the low pad on. The padding value gets the sum of all positions not from the operand."""
    x, value = ctx.operands(instr)
    config = instr.attrs["padding"].dims
    restore = [(max(-p.low, 0), max(-p.high, 0), 0) for p in config]
    full = prims.pad(ct, prims.full((), 0, ct.dtype), restore)
    starts, limits, strides = [], [], []
    for p, n in zip(config, x.shape, strict=True):
        start = max(p.low, 0)
        step = p.interior + 1
        starts.append(start)
        limits.append(start + (n - 1) * step + 1 if n else start)
        strides.append(step)
    ct_x = prims.slice_(full, starts, limits, strides)
    everything = prims.reduce_sum(ct, range(ct.ndim))
    from_x = prims.reduce_sum(ct_x, range(ct_x.ndim))
    return [ct_x, prims.binary(Opcode.SUBTRACT, everything, from_x)]


@defvjp(Opcode.TUPLE)
def _tuple_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    return list(ct)


@defvjp(Opcode.GET_TUPLE_ELEMENT)
def _gte_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    return [tuple_cotangent(instr.operands[0].shape, instr.attrs["index"], ct)]


@defvjp(Opcode.GATHER)
def _gather_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    """Scatter-add the cotangent back to the gathered positions."""
    a = instr.attrs
    x, indices = ctx.operands(instr)
    ct_x = prims.scatter(
        prims.zeros_like(x), indices, ct, Opcode.ADD,
        update_window_dims=a["offset_dims"], inserted_window_dims=a["collapsed_slice_dims"],
        scatter_dims_to_operand_dims=a["start_index_map"],
        index_vector_dim=a["index_vector_dim"],
        input_batching_dims=a.get("operand_batching_dims", ()),
        scatter_indices_batching_dims=a.get("start_indices_batching_dims", ()),
    )
    return [ct_x, None]


def _scatter_combiner(instr: HloInstruction) -> str:
    comp = instr.attrs["to_apply"]
    root = comp.root
    params = comp.parameters
    if root is params[1]:
        return "set"
    if root.opcode is Opcode.ADD and set(map(id, root.operands)) == {id(p) for p in params}:
        return "add"
    return "other"


def _gather_updates(instr: HloInstruction, source: Tracer, indices: Tracer,
                    updates: Tracer) -> Tracer:
    """The update-shaped window of `source` each update element was combined into."""
    a = instr.attrs
    inserted = tuple(a["inserted_window_dims"])
    batching = tuple(a.get("input_batching_dims", ()))
    window = iter(a["update_window_dims"])
    sizes = []
    for d in range(source.ndim):
        sizes.append(1 if d in inserted or d in batching else updates.shape[next(window)])
    return prims.gather(
        source, indices, offset_dims=a["update_window_dims"], collapsed_slice_dims=inserted,
        start_index_map=a["scatter_dims_to_operand_dims"],
        index_vector_dim=a["index_vector_dim"], slice_sizes=sizes,
        operand_batching_dims=batching,
        start_indices_batching_dims=a.get("scatter_indices_batching_dims", ()),
    )


@defvjp(Opcode.SCATTER)
def _scatter_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    """Scatter-add: the operand passes ct through, updates gather it. Overwriting scatter
    (indices assumed unique): the overwritten positions get nothing."""
    if len(instr.operands) != 3:
        raise UnsupportedOpError(f"differentiating a multi-operand scatter ({instr.name})")
    x, indices, updates = ctx.operands(instr)
    kind = _scatter_combiner(instr)
    ct_updates = _gather_updates(instr, ct, indices, updates)
    if kind == "add":
        return [ct, None, ct_updates]
    if kind == "set":
        a = instr.attrs
        cleared = prims.scatter(
            ct, indices, prims.zeros_like(updates), None,
            update_window_dims=a["update_window_dims"],
            inserted_window_dims=a["inserted_window_dims"],
            scatter_dims_to_operand_dims=a["scatter_dims_to_operand_dims"],
            index_vector_dim=a["index_vector_dim"],
            input_batching_dims=a.get("input_batching_dims", ()),
            scatter_indices_batching_dims=a.get("scatter_indices_batching_dims", ()),
        )
        return [cleared, None, ct_updates]
    raise UnsupportedOpError(
        f"differentiating scatter {instr.name}: only add and overwrite combiners are supported")
