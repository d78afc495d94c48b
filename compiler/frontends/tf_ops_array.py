"""TF op lowerings, family "array": shapes, data movement, slicing, padding, gathers,
scatters, selection and top-k.

Shape-like inputs (Reshape's shape, Transpose's perm, Slice's begin/size, Tile's
multiples, Pad's paddings, ...) must be compile-time constants: `NodeCtx.const_ints`
folds the producing subgraph (Const, Shape, arithmetic, Pack, ...) or names the input
that is not constant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from compiler.frontends.tf_hlo import HloEmitter, Instr
from compiler.frontends.tf_ops import tf_op
from compiler.frontends.tf_scope import NodeCtx
from hlo.dtypes import PrimitiveType, from_numpy
from hlo.errors import ImportGraphError, UnsupportedOpError
from hlo.opcodes import Opcode


def _axis(axis: int, rank: int, what: str = "axis") -> int:
    """A possibly negative axis normalised to [0, rank)."""
    if not -rank <= axis < rank:
        raise ImportGraphError(f"{what} {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def _scalar_int(ctx: NodeCtx, i: int, what: str) -> int:
    values = ctx.const_ints(i, what)
    if len(values) != 1:
        raise ImportGraphError(f"{what} must be a single integer, got {values}")
    return values[0]


# --- shapes -----------------------------------------------------------------------------------


@tf_op("Shape", outputs=("output",))
def _shape(ctx: NodeCtx) -> Instr:
    t = ctx.type_attr("out_type", PrimitiveType.S32)
    return ctx.hlo.constant(np.asarray(ctx.input(0).shape.dims, dtype=t.numpy), t)


@tf_op("ShapeN", outputs=("output",))
def _shape_n(ctx: NodeCtx) -> list[Instr]:
    t = ctx.type_attr("out_type", PrimitiveType.S32)
    return [ctx.hlo.constant(np.asarray(x.shape.dims, dtype=t.numpy), t) for x in ctx.inputs()]


@tf_op("Size", outputs=("output",))
def _size(ctx: NodeCtx) -> Instr:
    t = ctx.type_attr("out_type", PrimitiveType.S32)
    return ctx.hlo.scalar(ctx.input(0).shape.num_elements, t)


@tf_op("Rank", outputs=("output",))
def _rank(ctx: NodeCtx) -> Instr:
    return ctx.hlo.scalar(ctx.input(0).shape.rank, PrimitiveType.S32)


def resolve_shape(dims: Sequence[int], count: int, what: str) -> list[int]:
    """`dims` with one -1 inferred so that the product is `count`."""
    dims = list(dims)
    unknown = [i for i, d in enumerate(dims) if d == -1]
    if len(unknown) > 1 or any(d < -1 for d in dims):
        raise ImportGraphError(f"{what} {dims} has more than one -1 or a negative size")
    known = math.prod(d for d in dims if d != -1)
    if unknown:
        if known == 0 or count % known:
            raise ImportGraphError(f"cannot infer the -1 in {what} {dims} for {count} elements")
        dims[unknown[0]] = count // known
    if math.prod(dims) != count:
        raise ImportGraphError(f"{what} {dims} does not hold {count} elements")
    return dims


@tf_op("Reshape", outputs=("output",))
def _reshape(ctx: NodeCtx) -> Instr:
    ctx.expect_inputs(2)
    x = ctx.input(0)
    dims = resolve_shape(ctx.const_ints(1, "shape"), x.shape.num_elements, "shape")
    return ctx.hlo.reshape(x, dims)


@tf_op("Squeeze", outputs=("output",))
def _squeeze(ctx: NodeCtx) -> Instr:
    x = ctx.input(0)
    dims = x.shape.dims
    axes = ctx.ints_attr("squeeze_dims", []) or ctx.ints_attr("axis", [])
    if axes:
        drop = {_axis(a, len(dims)) for a in axes}
    else:
        drop = {i for i, d in enumerate(dims) if d == 1}
    for a in drop:
        if dims[a] != 1:
            raise ImportGraphError(f"cannot squeeze dimension {a} of size {dims[a]}")
    return ctx.hlo.reshape(x, [d for i, d in enumerate(dims) if i not in drop])


@tf_op("ExpandDims", outputs=("output",))
def _expand_dims(ctx: NodeCtx) -> Instr:
    x = ctx.input(0)
    dims = list(x.shape.dims)
    axis = _axis(_scalar_int(ctx, 1, "dim"), len(dims) + 1)
    dims.insert(axis, 1)
    return ctx.hlo.reshape(x, dims)


@tf_op("Transpose", "ConjugateTranspose", outputs=("y",))
def _transpose(ctx: NodeCtx) -> Instr:
    x = ctx.input(0)
    perm = ctx.const_ints(1, "perm")
    if sorted(perm) != list(range(x.shape.rank)):
        raise ImportGraphError(f"perm {perm} is not a permutation of {x.shape.rank} dims")
    return ctx.hlo.transpose(x, perm)


@tf_op("InvertPermutation", outputs=("y",))
def _invert_permutation(ctx: NodeCtx) -> Instr:
    perm = ctx.const_ints(0, "x")
    if sorted(perm) != list(range(len(perm))):
        raise ImportGraphError(f"{perm} is not a permutation")
    t = ctx.input(0).shape.element_type
    return ctx.hlo.constant(np.argsort(perm).astype(t.numpy), t)


@tf_op("BroadcastTo", outputs=("output",))
def _broadcast_to(ctx: NodeCtx) -> Instr:
    return ctx.hlo.broadcast_to(ctx.input(0), ctx.const_ints(1, "shape"))


@tf_op("BroadcastArgs", outputs=("r0",))
def _broadcast_args(ctx: NodeCtx) -> Instr:
    from compiler.frontends.tf_hlo import broadcast_dims

    a, b = ctx.const_ints(0, "s0"), ctx.const_ints(1, "s1")
    t = ctx.input(0).shape.element_type
    return ctx.hlo.constant(np.asarray(broadcast_dims(a, b, "BroadcastArgs"), t.numpy), t)


@tf_op("Fill", outputs=("output",))
def _fill(ctx: NodeCtx) -> Instr:
    dims = ctx.const_ints(0, "dims")
    value = ctx.input(1)
    if value.shape.rank != 0:
        raise ImportGraphError("Fill's value must be a scalar")
    if any(d < 0 for d in dims):
        raise ImportGraphError(f"Fill dims {dims} has a negative size")
    return ctx.hlo.broadcast_in_dim(value, dims, [])


@tf_op("Range", outputs=("output",))
def _range(ctx: NodeCtx) -> Instr:
    start, limit, delta = (ctx.const_input(i, w) for i, w in enumerate(("start", "limit", "delta")))
    t = ctx.type_attr("Tidx", from_numpy(start.dtype))
    if any(v.size != 1 for v in (start, limit, delta)):
        raise ImportGraphError("Range's start, limit and delta must be scalars")
    s, lim, d = (v.reshape(()).item() for v in (start, limit, delta))
    if d == 0:
        raise ImportGraphError("Range's delta must not be 0")
    count = max(0, math.ceil((lim - s) / d))
    if count > 1 << 24:
        raise ImportGraphError(f"Range of {count} elements is too large")
    values = np.asarray([s + i * d for i in range(count)], dtype=t.numpy)
    return ctx.hlo.constant(values.reshape(count), t)


@tf_op("Where", outputs=("index",))
def _where(ctx: NodeCtx) -> Instr:
    if ctx.num_inputs != 1:
        raise UnsupportedOpError("Where with three inputs is SelectV2; only Where(x) is here")
    value = ctx.hlo.constant_value(ctx.input(0))
    if value is None:
        raise UnsupportedOpError(
            "Where(x) has a data-dependent shape; supported only when x is a constant"
        )
    return ctx.hlo.constant(np.argwhere(value).astype(np.int64), PrimitiveType.S64)


@tf_op("Bitcast", outputs=("output",))
def _bitcast(ctx: NodeCtx) -> Instr:
    x = ctx.input(0)
    t = ctx.type_attr("type")
    old, new = x.shape.element_type, t
    dims = list(x.shape.dims)
    if old.bits == new.bits:
        shape = x.shape.with_element_type(t)
    elif old.bits > new.bits:
        shape = x.shape.with_dims([*dims, old.bits // new.bits]).with_element_type(t)
    else:
        if not dims or dims[-1] != new.bits // old.bits:
            raise ImportGraphError(f"cannot bitcast {list(dims)} {old.value} to {new.value}")
        shape = x.shape.with_dims(dims[:-1]).with_element_type(t)
    return ctx.hlo.add(Opcode.BITCAST_CONVERT, [x], shape)


# --- joining and splitting --------------------------------------------------------------------


def _concat(ctx: NodeCtx, values: list[Instr], axis: int) -> Instr:
    if not values:
        raise ImportGraphError("nothing to concatenate")
    return ctx.hlo.concat(values, _axis(axis, values[0].shape.rank))


@tf_op("ConcatV2", outputs=("output",))
def _concat_v2(ctx: NodeCtx) -> Instr:
    n = ctx.num_inputs - 1
    return _concat(ctx, ctx.inputs(0, n), _scalar_int(ctx, n, "axis"))


@tf_op("Concat", outputs=("output",))
def _concat_v1(ctx: NodeCtx) -> Instr:
    return _concat(ctx, ctx.inputs(1), _scalar_int(ctx, 0, "concat_dim"))


@tf_op("Pack", outputs=("output",))
def _pack(ctx: NodeCtx) -> Instr:
    values = ctx.inputs()
    if not values:
        raise ImportGraphError("Pack needs inputs")
    dims = list(values[0].shape.dims)
    axis = _axis(ctx.int_attr("axis", 0), len(dims) + 1)
    dims.insert(axis, 1)
    return ctx.hlo.concat([ctx.hlo.reshape(v, dims) for v in values], axis)


@tf_op("Unpack", outputs=("output",))
def _unpack(ctx: NodeCtx) -> list[Instr]:
    x = ctx.input(0)
    dims = list(x.shape.dims)
    axis = _axis(ctx.int_attr("axis", 0), len(dims))
    num = ctx.int_attr("num", dims[axis])
    if num != dims[axis]:
        raise ImportGraphError(f"num={num} but dimension {axis} has size {dims[axis]}")
    rest = dims[:axis] + dims[axis + 1:]
    return [ctx.hlo.reshape(ctx.hlo.slice_in_dim(x, i, i + 1, axis), rest) for i in range(num)]


def _split_sizes(ctx: NodeCtx, x: Instr, axis: int, sizes: list[int]) -> list[Instr]:
    outs = []
    start = 0
    for size in sizes:
        outs.append(ctx.hlo.slice_in_dim(x, start, start + size, axis))
        start += size
    return outs


@tf_op("Split", outputs=("output",))
def _split(ctx: NodeCtx) -> list[Instr]:
    x = ctx.input(1)
    axis = _axis(_scalar_int(ctx, 0, "split_dim"), x.shape.rank)
    num = ctx.int_attr("num_split")
    size = x.shape.dims[axis]
    if num <= 0 or size % num:
        raise ImportGraphError(f"cannot split dimension {axis} of size {size} into {num}")
    return _split_sizes(ctx, x, axis, [size // num] * num)


@tf_op("SplitV", outputs=("output",))
def _split_v(ctx: NodeCtx) -> list[Instr]:
    x = ctx.input(0)
    axis = _axis(_scalar_int(ctx, 2, "split_dim"), x.shape.rank)
    sizes = ctx.const_ints(1, "size_splits")
    total = x.shape.dims[axis]
    unknown = [i for i, s in enumerate(sizes) if s == -1]
    known = sum(s for s in sizes if s != -1)
    if len(unknown) > 1 or any(s < -1 for s in sizes) or known > total:
        raise ImportGraphError(f"size_splits {sizes} does not split dimension {total}")
    if unknown:
        sizes[unknown[0]] = total - known
    if sum(sizes) != total:
        raise ImportGraphError(f"size_splits {sizes} does not add up to {total}")
    return _split_sizes(ctx, x, axis, sizes)


# --- slicing ----------------------------------------------------------------------------------


@tf_op("Slice", outputs=("output",))
def _slice(ctx: NodeCtx) -> Instr:
    x = ctx.input(0)
    begin, size = ctx.const_ints(1, "begin"), ctx.const_ints(2, "size")
    dims = x.shape.dims
    if len(begin) != len(dims) or len(size) != len(dims):
        raise ImportGraphError(f"begin {begin} and size {size} must have rank {len(dims)}")
    limits = []
    for b, s, d in zip(begin, size, dims, strict=True):
        end = d if s == -1 else b + s
        if not 0 <= b <= end <= d:
            raise ImportGraphError(f"slice begin {begin} size {size} is out of bounds for {dims}")
        limits.append(end)
    return ctx.hlo.slice(x, begin, limits)


def strided_slice_plan(
    dims: Sequence[int], begin: Sequence[int], end: Sequence[int], strides: Sequence[int],
    masks: dict[str, int],
) -> tuple[list[tuple[int, int, int]], list[int]]:
    """TF StridedSlice semantics: per input dim (start, limit, stride) in the input's
    coordinates (stride may be negative), and the final shape (shrunk axes removed, new
    axes inserted)."""
    n = len(begin)
    if len(end) != n or len(strides) != n:
        raise ImportGraphError("begin, end and strides must have the same length")
    rank = len(dims)
    ellipsis = masks["ellipsis_mask"]
    if ellipsis & (ellipsis - 1):
        raise ImportGraphError("more than one ellipsis in a strided slice")
    entries = list(range(n))
    has_ellipsis = bool(ellipsis)
    if not has_ellipsis:
        entries.append(-1)  # an implicit ellipsis after the given entries
    new_after = 0
    seen = False
    for i in range(n):
        if ellipsis >> i & 1:
            seen = True
        elif seen and masks["new_axis_mask"] >> i & 1:
            new_after += 1
    plan: list[tuple[int, int, int]] = []
    final: list[int] = []
    full = 0
    specified = n if has_ellipsis else n + 1
    for pos, i in enumerate(entries):
        if i == -1 or ellipsis >> i & 1:
            upto = min(rank - (specified - pos) + 1 + new_after, rank)
            while full < upto:
                plan.append((0, dims[full], 1))
                final.append(dims[full])
                full += 1
            continue
        if masks["new_axis_mask"] >> i & 1:
            final.append(1)
            continue
        if full >= rank:
            raise ImportGraphError(f"strided slice has more entries than rank {rank}")
        d = dims[full]
        s = strides[i]
        if s == 0:
            raise ImportGraphError("strided slice stride must not be 0")
        if masks["shrink_axis_mask"] >> i & 1:
            b = begin[i] + d if begin[i] < 0 else begin[i]
            if not 0 <= b < d:
                raise ImportGraphError(f"index {begin[i]} is out of range for dimension of {d}")
            plan.append((b, b + 1, 1))
            full += 1
            continue
        lo, hi = (0, d) if s > 0 else (-1, d - 1)
        if masks["begin_mask"] >> i & 1:
            b = 0 if s > 0 else d - 1
        else:
            b = begin[i] + d if begin[i] < 0 else begin[i]
            b = min(max(b, lo), hi)
        if masks["end_mask"] >> i & 1:
            e = d if s > 0 else -1
        else:
            e = end[i] + d if end[i] < 0 else end[i]
            e = min(max(e, lo), hi)
        length = max(0, -(-(e - b) // s)) if s > 0 else max(0, -(-(b - e) // -s))
        plan.append((b, e, s))
        final.append(length)
        full += 1
    return plan, final


@tf_op("StridedSlice", outputs=("output",))
def _strided_slice(ctx: NodeCtx) -> Instr:
    h = ctx.hlo
    x = ctx.input(0)
    masks = {k: ctx.int_attr(k, 0) for k in
             ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")}
    plan, final = strided_slice_plan(x.shape.dims, ctx.const_ints(1, "begin"),
                                     ctx.const_ints(2, "end"), ctx.const_ints(3, "strides"),
                                     masks)
    reversed_dims = [i for i, (_, _, s) in enumerate(plan) if s < 0]
    x = h.reverse(x, reversed_dims)
    starts, limits, steps = [], [], []
    for i, (b, e, s) in enumerate(plan):
        d = x.shape.dims[i]
        if s < 0:
            b, e, s = d - 1 - b, d - 1 - e, -s
        e = max(e, b)
        starts.append(b)
        limits.append(e)
        steps.append(s)
    return h.reshape(h.slice(x, starts, limits, steps), final)


# --- tiling and padding -----------------------------------------------------------------------


@tf_op("Tile", outputs=("output",))
def _tile(ctx: NodeCtx) -> Instr:
    x = ctx.input(0)
    multiples = ctx.const_ints(1, "multiples")
    dims = x.shape.dims
    if len(multiples) != len(dims) or any(m < 0 for m in multiples):
        raise ImportGraphError(f"multiples {multiples} must be {len(dims)} non-negative ints")
    wide: list[int] = []
    for m, d in zip(multiples, dims, strict=True):
        wide += [m, d]
    spread = ctx.hlo.broadcast_in_dim(x, wide, [2 * i + 1 for i in range(len(dims))])
    return ctx.hlo.reshape(spread, [m * d for m, d in zip(multiples, dims, strict=True)])


def _paddings(ctx: NodeCtx, x: Instr) -> list[tuple[int, int]]:
    flat = ctx.const_ints(1, "paddings")
    rank = x.shape.rank
    if len(flat) != 2 * rank:
        raise ImportGraphError(f"paddings must be [{rank}, 2], got {len(flat)} values")
    pairs = [(flat[2 * i], flat[2 * i + 1]) for i in range(rank)]
    if any(a < 0 or b < 0 for a, b in pairs):
        raise ImportGraphError(f"paddings {pairs} must not be negative")
    return pairs


@tf_op("Pad", "PadV2", outputs=("output",))
def _pad(ctx: NodeCtx) -> Instr:
    x = ctx.input(0)
    pairs = _paddings(ctx, x)
    if ctx.node.op == "PadV2":
        value = ctx.input(2)
        if value.shape.rank != 0:
            raise ImportGraphError("constant_values must be a scalar")
    else:
        value = ctx.hlo.scalar(0, x.shape.element_type)
    return ctx.hlo.pad(x, value, [a for a, _ in pairs], [b for _, b in pairs])


@tf_op("MirrorPad", outputs=("output",))
def _mirror_pad(ctx: NodeCtx) -> Instr:
    h = ctx.hlo
    x = ctx.input(0)
    pairs = _paddings(ctx, x)
    mode = ctx.str_attr("mode")
    if mode not in ("REFLECT", "SYMMETRIC"):
        raise ImportGraphError(f"unknown MirrorPad mode {mode!r}")
    skip = 1 if mode == "REFLECT" else 0
    for axis, (lo, hi) in enumerate(pairs):
        d = x.shape.dims[axis]
        if lo + skip > d or hi + skip > d:
            raise ImportGraphError(f"paddings {lo},{hi} too large for dimension {d} ({mode})")
        parts = []
        if lo:
            parts.append(h.reverse(h.slice_in_dim(x, skip, skip + lo, axis), [axis]))
        parts.append(x)
        if hi:
            parts.append(h.reverse(h.slice_in_dim(x, d - skip - hi, d - skip, axis), [axis]))
        x = h.concat(parts, axis)
    return x


@tf_op("Reverse", outputs=("output",))
def _reverse_v1(ctx: NodeCtx) -> Instr:
    x = ctx.input(0)
    flags = ctx.const_input(1, "dims").reshape(-1)
    if len(flags) != x.shape.rank:
        raise ImportGraphError(f"dims must have {x.shape.rank} flags")
    return ctx.hlo.reverse(x, [i for i, f in enumerate(flags) if f])


@tf_op("ReverseV2", outputs=("output",))
def _reverse(ctx: NodeCtx) -> Instr:
    x = ctx.input(0)
    axes = sorted({_axis(a, x.shape.rank) for a in ctx.const_ints(1, "axis")})
    return ctx.hlo.reverse(x, axes)


# --- selection, one-hot, gathers, scatters, top-k ---------------------------------------------


@tf_op("Select", outputs=("output",))
def _select(ctx: NodeCtx) -> Instr:
    h = ctx.hlo
    cond, a, b = ctx.input(0), ctx.input(1), ctx.input(2)
    if cond.shape.rank == 1 and a.shape.rank > 1:
        # v1 Select: a vector condition picks whole rows.
        if cond.shape.dims[0] != a.shape.dims[0]:
            raise ImportGraphError("the condition vector must match the first dimension")
        cond = h.broadcast_in_dim(cond, a.shape.dims, [0])
    elif cond.shape.rank and cond.shape.dims != a.shape.dims:
        raise ImportGraphError("Select's condition must be a scalar, a vector or match x")
    if a.shape.dims != b.shape.dims:
        raise ImportGraphError("Select's x and y must have the same shape")
    return h.select(cond, a, b)


@tf_op("SelectV2", outputs=("output",))
def _select_v2(ctx: NodeCtx) -> Instr:
    return ctx.hlo.select(ctx.input(0), ctx.input(1), ctx.input(2))


@tf_op("OneHot", outputs=("output",))
def _one_hot(ctx: NodeCtx) -> Instr:
    h = ctx.hlo
    indices = ctx.input(0)
    depth = _scalar_int(ctx, 1, "depth")
    on, off = ctx.input(2), ctx.input(3)
    rank = indices.shape.rank
    axis = ctx.int_attr("axis", -1)
    axis = rank if axis == -1 else _axis(axis, rank + 1)
    dims = list(indices.shape.dims)
    dims.insert(axis, depth)
    kept = [i for i in range(rank + 1) if i != axis]
    hit = h.compare("EQ", h.iota(indices.shape.element_type, dims, axis),
                    h.broadcast_in_dim(indices, dims, kept))
    return h.select(hit, h.broadcast_to(on, dims), h.broadcast_to(off, dims))


def gather(h: HloEmitter, params: Instr, indices: Instr, axis: int, batch_dims: int) -> Instr:
    """TF GatherV2: params[:axis] + indices.shape[batch_dims:] + params[axis+1:]."""
    pr, ir = params.shape.rank, indices.shape.rank
    if not 0 <= batch_dims <= min(axis, ir):
        raise ImportGraphError(f"batch_dims {batch_dims} must be in [0, min(axis, rank(indices))]")
    out_rank = pr - 1 + ir - batch_dims
    offset = list(range(batch_dims, axis)) + list(range(axis + ir - batch_dims, out_rank))
    sizes = list(params.shape.dims)
    for d in (*range(batch_dims), axis):
        sizes[d] = 1
    return h.add(
        Opcode.GATHER,
        [params, indices],
        offset_dims=tuple(offset),
        collapsed_slice_dims=(axis,),
        start_index_map=(axis,),
        operand_batching_dims=tuple(range(batch_dims)),
        start_indices_batching_dims=tuple(range(batch_dims)),
        index_vector_dim=ir,
        slice_sizes=tuple(sizes),
    )


@tf_op("GatherV2", outputs=("output",))
def _gather_v2(ctx: NodeCtx) -> Instr:
    params, indices = ctx.input(0), ctx.input(1)
    axis = _axis(_scalar_int(ctx, 2, "axis"), params.shape.rank)
    batch_dims = ctx.int_attr("batch_dims", 0)
    if batch_dims < 0:
        batch_dims += indices.shape.rank
    return gather(ctx.hlo, params, indices, axis, batch_dims)


@tf_op("Gather", outputs=("output",))
def _gather_v1(ctx: NodeCtx) -> Instr:
    params = ctx.input(0)
    if params.shape.rank == 0:
        raise ImportGraphError("Gather's params must have rank >= 1")
    return gather(ctx.hlo, params, ctx.input(1), 0, 0)


@tf_op("GatherNd", outputs=("output",))
def _gather_nd(ctx: NodeCtx) -> Instr:
    params, indices = ctx.input(0), ctx.input(1)
    if indices.shape.rank == 0:
        raise ImportGraphError("GatherNd's indices must have rank >= 1")
    k = indices.shape.dims[-1]
    pr, ir = params.shape.rank, indices.shape.rank
    if k > pr:
        raise ImportGraphError(f"index depth {k} exceeds the params rank {pr}")
    return ctx.hlo.add(
        Opcode.GATHER,
        [params, indices],
        offset_dims=tuple(range(ir - 1, ir - 1 + pr - k)),
        collapsed_slice_dims=tuple(range(k)),
        start_index_map=tuple(range(k)),
        index_vector_dim=ir - 1,
        slice_sizes=(1,) * k + tuple(params.shape.dims[k:]),
    )


@tf_op("ScatterNd", outputs=("output",))
def _scatter_nd(ctx: NodeCtx) -> Instr:
    h = ctx.hlo
    indices, updates = ctx.input(0), ctx.input(1)
    dims = ctx.const_ints(2, "shape")
    if indices.shape.rank == 0:
        raise ImportGraphError("ScatterNd's indices must have rank >= 1")
    k = indices.shape.dims[-1]
    ir = indices.shape.rank
    if k > len(dims):
        raise ImportGraphError(f"index depth {k} exceeds the output rank {len(dims)}")
    zeros = h.full(0, updates.shape.element_type, dims)
    return h.add(
        Opcode.SCATTER,
        [zeros, indices, updates],
        update_window_dims=tuple(range(ir - 1, ir - 1 + len(dims) - k)),
        inserted_window_dims=tuple(range(k)),
        scatter_dims_to_operand_dims=tuple(range(k)),
        index_vector_dim=ir - 1,
        to_apply=h.reducer("add", updates.shape.element_type),
    )


@tf_op("TopKV2", "TopK", outputs=("values", "indices"))
def _top_k(ctx: NodeCtx) -> list[Instr]:
    x = ctx.input(0)
    k = _scalar_int(ctx, 1, "k") if ctx.node.op == "TopKV2" else ctx.int_attr("k")
    if x.shape.rank == 0 or not 0 <= k <= x.shape.dims[-1]:
        raise ImportGraphError(f"k={k} must be within the last dimension of {list(x.shape.dims)}")
    result = ctx.hlo.add(Opcode.TOPK, [x], k=k)
    values, indices = ctx.hlo.gte(result, 0), ctx.hlo.gte(result, 1)
    t = ctx.type_attr("index_type", PrimitiveType.S32)
    return [values, ctx.hlo.convert(indices, t)]
