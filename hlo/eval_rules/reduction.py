"""Evaluator kernels for reductions, windows and ordering: reduce, reduce-window,
select-and-scatter, sort and topk.

Also home of `Combiner`, the one way evaluator kernels apply a called scalar computation
(`to_apply`, `select`, `scatter`, sort comparators) to many elements at once; scatter in
movement.py uses it too. Element-wise semantics of the ops inside those computations stay
with the element-wise kernels; nothing here re-implements them except the few plain
combiners (`add`, `maximum`, ...) recognised for speed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np

from hlo.attributes import Window
from hlo.computation import HloComputation
from hlo.errors import EvaluationError, TfcompileError
from hlo.evaluator import Evaluator, Value, evaluates, flatten
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode, Trait
from hlo.shape import Shape

# Combiners recognised as one numpy ufunc: the root applies the opcode to the two
# parameters. All are commutative, so the operand order does not matter.
_UFUNCS: dict[Opcode, np.ufunc] = {
    Opcode.ADD: np.add,
    Opcode.MULTIPLY: np.multiply,
    Opcode.MAXIMUM: np.maximum,
    Opcode.MINIMUM: np.minimum,
    Opcode.AND: np.bitwise_and,
    Opcode.OR: np.bitwise_or,
    Opcode.XOR: np.bitwise_xor,
}

# Opcodes whose kernels work unchanged on arrays of any shape, so a scalar computation
# made only of them can be evaluated on whole arrays of lanes at once.
_LANE_SAFE_EXTRA = frozenset(
    {Opcode.PARAMETER, Opcode.CONSTANT, Opcode.TUPLE, Opcode.GET_TUPLE_ELEMENT, Opcode.COPY}
)


def _is_lane_safe(comp: HloComputation, seen: frozenset[int] = frozenset()) -> bool:
    """True if every instruction of `comp` is a scalar element-wise op (or a call of one)."""
    if id(comp) in seen:
        return False
    for instr in comp.instructions:
        if instr.shape.is_tuple:
            if any(leaf.rank != 0 for leaf in instr.shape.leaves()):
                return False
        elif instr.shape.rank != 0:
            return False
        if instr.opcode is Opcode.CALL:
            if not _is_lane_safe(instr.attrs["to_apply"], seen | {id(comp)}):
                return False
        elif not (instr.has(Trait.ELEMENTWISE) or instr.opcode in _LANE_SAFE_EXTRA):
            return False
    return True


def _recognise_ufunc(comp: HloComputation) -> np.ufunc | None:
    """The ufunc of a combiner `f(p0, p1) = op(p0, p1)` over one element type, else None."""
    params = comp.parameters
    root = comp.root
    if len(params) != 2 or root is None or root.opcode not in _UFUNCS:
        return None
    if {id(o) for o in root.operands} != {id(p) for p in params} or len(root.operands) != 2:
        return None
    etype = root.shape.element_type
    if root.shape.rank != 0 or any(not p.shape.compatible(Shape.scalar(etype)) for p in params):
        return None
    if etype.is_pred and root.opcode in (Opcode.ADD, Opcode.MULTIPLY):
        return None  # leave XLA's pred arithmetic to the element-wise kernels
    if root.opcode in (Opcode.AND, Opcode.OR, Opcode.XOR) and not (
        etype.is_pred or etype.is_integer
    ):
        return None
    return _UFUNCS[root.opcode]


def _recognise_passthrough(comp: HloComputation) -> tuple[int, ...] | None:
    """Parameter numbers a computation returns unchanged (`ROOT p1`, `ROOT tuple(p2, p3)`)."""
    root = comp.root
    if root is None:
        return None
    leaves = root.operands if root.opcode is Opcode.TUPLE else [root]
    if not leaves or any(leaf.opcode is not Opcode.PARAMETER for leaf in leaves):
        return None
    return tuple(leaf.attrs["parameter_number"] for leaf in leaves)


def _lane_shape(shape: Shape, lanes: tuple[int, ...]) -> Shape:
    """A scalar (or tuple of scalars) shape widened to arrays of `lanes`."""
    if shape.is_tuple:
        return Shape.tuple_of([_lane_shape(s, lanes) for s in shape.tuple_shapes])
    return Shape.array(shape.element_type, lanes)


def lane_clone(comp: HloComputation, lanes: tuple[int, ...]) -> HloComputation:
    """A copy of a lane-safe scalar computation working on arrays of shape `lanes`.

    Every instruction keeps its opcode and attributes; scalar shapes become `lanes`
    and scalar constants are broadcast, so the clone is ordinary element-wise HLO that
    any kernel evaluates, computing the original computation once per lane.
    """
    clone = HloComputation(f"{comp.name}.lanes")
    new: dict[int, HloInstruction] = {}
    assert comp.root is not None
    for instr in comp.post_order():
        attrs = dict(instr.attrs)
        if instr.opcode is Opcode.CONSTANT:
            attrs["literal"] = np.broadcast_to(attrs["literal"], lanes).copy()
        elif instr.opcode is Opcode.CALL:
            attrs["to_apply"] = lane_clone(attrs["to_apply"], lanes)
        new[id(instr)] = clone.add(
            instr.opcode,
            [new[id(o)] for o in instr.operands],
            shape=_lane_shape(instr.shape, lanes),
            name=instr.name,
            **attrs,
        )
    clone.set_root(new[id(comp.root)])
    return clone


class Combiner:
    """A called scalar computation applied element by element to arrays.

    `combiner(*arrays)` returns the list of result leaves, each with the broadcast shape of
    the arguments; element i of each result is the computation applied to element i of
    each argument. Plain `op(p0, p1)` combiners and pass-through computations run as numpy
    directly. Other computations made of element-wise ops run once on whole arrays of
    lanes (see `lane_clone`); anything else runs once per element, exactly as called.
    """

    def __init__(self, ev: Evaluator, comp: HloComputation) -> None:
        self.ev = ev
        self.comp = comp
        self.param_types = [p.shape.element_type.numpy for p in comp.parameters]
        assert comp.root is not None
        self.result_types = [s.element_type.numpy for s in comp.root.shape.leaves()]
        self.ufunc = _recognise_ufunc(comp)
        self.passthrough = _recognise_passthrough(comp)
        self._lanes_ok = _is_lane_safe(comp)
        self._clones: dict[tuple[int, ...], HloComputation] = {}

    def __call__(self, *args: np.ndarray) -> list[np.ndarray]:
        if len(args) != len(self.param_types):
            raise EvaluationError(
                f"{self.comp.name} takes {len(self.param_types)} argument(s), got {len(args)}"
            )
        arrays = [np.asarray(a, dtype=t) for a, t in zip(args, self.param_types, strict=True)]
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
        if self.ufunc is not None:
            with np.errstate(all="ignore"):
                out = self.ufunc(arrays[0], arrays[1])
            return [np.asarray(out, dtype=self.result_types[0])]
        if self.passthrough is not None:
            return [
                np.broadcast_to(arrays[i], shape).astype(t)
                for i, t in zip(self.passthrough, self.result_types, strict=True)
            ]
        if int(np.prod(shape)) == 0:
            return [np.empty(shape, dtype=t) for t in self.result_types]
        if self._lanes_ok:
            result = self._call_lanes(arrays, shape)
            if result is not None:
                return result
            self._lanes_ok = False
        return self._call_per_element(arrays, shape)

    def _call_lanes(
        self, arrays: list[np.ndarray], shape: tuple[int, ...]
    ) -> list[np.ndarray] | None:
        clone = self._clones.get(shape)
        if clone is None:
            clone = self._clones[shape] = lane_clone(self.comp, shape)
        lanes = [np.ascontiguousarray(np.broadcast_to(a, shape)) for a in arrays]
        try:
            leaves = flatten(self.ev.call(clone, *lanes))
        except TfcompileError:
            return None  # a kernel refused the array form: use the exact scalar path
        if any(np.shape(leaf) != shape for leaf in leaves):
            return None
        return [
            np.asarray(leaf, dtype=t) for leaf, t in zip(leaves, self.result_types, strict=True)
        ]

    def _call_per_element(
        self, arrays: list[np.ndarray], shape: tuple[int, ...]
    ) -> list[np.ndarray]:
        flat = [np.broadcast_to(a, shape).reshape(-1) for a in arrays]
        outs = [np.empty(int(np.prod(shape)), dtype=t) for t in self.result_types]
        for i in range(outs[0].size if outs else 0):
            leaves = flatten(self.ev.call(self.comp, *(np.asarray(f[i]) for f in flat)))
            for out, leaf in zip(outs, leaves, strict=True):
                out[i] = leaf
        return [o.reshape(shape) for o in outs]


def scatter_combine(
    combiner: Combiner,
    outs: Sequence[np.ndarray],
    flat_index: np.ndarray,
    updates: Sequence[np.ndarray],
) -> None:
    """In place: `outs[k][i] = combiner(outs..[i], updates..[j])[k]` for each j in order.

    `flat_index[j]` is the flat position updated by element j of every array in `updates`;
    all arrays are 1-d. Repeated positions are combined in the order given, as XLA does.
    """
    if flat_index.size == 0:
        return
    if combiner.ufunc is not None and len(outs) == 1:
        with np.errstate(all="ignore"):
            combiner.ufunc.at(outs[0], flat_index, updates[0])
        return
    # Apply in rounds: round r updates every position for the r-th time, so each round
    # touches distinct positions and keeps, per position, the original order.
    order = np.argsort(flat_index, kind="stable")
    sorted_index = flat_index[order]
    starts = np.ones(sorted_index.size, dtype=bool)
    starts[1:] = sorted_index[1:] != sorted_index[:-1]
    positions = np.arange(sorted_index.size)
    first = np.maximum.accumulate(np.where(starts, positions, 0))
    occurrence = np.empty_like(positions)
    occurrence[order] = positions - first
    for r in range(int(occurrence.max()) + 1):
        lanes = np.nonzero(occurrence == r)[0]
        target = flat_index[lanes]
        new = combiner(*(o[target] for o in outs), *(u[lanes] for u in updates))
        for out, value in zip(outs, new, strict=True):
            out[target] = value


def check_result(
    instr: HloInstruction, value: np.ndarray, shape: Shape | None = None
) -> np.ndarray:
    """`value` as the declared array shape of `instr` (or `shape`); raises on a mismatch."""
    want = instr.shape if shape is None else shape
    dtype = want.element_type.numpy
    if value.shape != want.dims:
        raise EvaluationError(
            f"{instr.name} ({instr.opcode.value}): computed {list(value.shape)} but the "
            f"instruction declares {want.to_text(with_layout=False)}"
        )
    return value if value.dtype == dtype else value.astype(dtype)


# --- reduce ------------------------------------------------------------------------------


@evaluates(Opcode.REDUCE)
def _reduce(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """reduce(inputs..., inits...): acc = init; acc = f(acc..., x...) in row-major order."""
    n = len(vals) // 2
    inputs, inits = vals[:n], vals[n:]
    reduced = sorted(instr.attrs["dimensions"])
    kept = [d for d in range(inputs[0].ndim) if d not in reduced]
    out_dims = tuple(inputs[0].shape[d] for d in kept)
    count = int(np.prod([inputs[0].shape[d] for d in reduced], dtype=np.int64))
    # Kept dims first, reduced dims flattened last: column r is the r-th reduced element
    # in XLA's (row-major) iteration order.
    rows = [np.transpose(x, kept + reduced).reshape(out_dims + (count,)) for x in inputs]
    combiner = Combiner(ev, instr.attrs["to_apply"])
    if n == 1 and combiner.ufunc is not None:
        etype = instr.shape.element_type
        results = [
            _reduce_ufunc(combiner.ufunc, rows[0], inits[0], etype.is_float, etype.is_complex)
        ]
    else:
        results = [np.broadcast_to(init, out_dims).copy() for init in inits]
        for r in range(count):
            results = combiner(*results, *(x[..., r] for x in rows))
    shapes = instr.shape.leaves() if instr.shape.is_tuple else [instr.shape]
    checked = [check_result(instr, res, s) for res, s in zip(results, shapes, strict=True)]
    return tuple(checked) if instr.shape.is_tuple else checked[0]


def _reduce_ufunc(
    ufunc: np.ufunc, rows: np.ndarray, init: np.ndarray, is_float: bool, is_complex: bool
) -> np.ndarray:
    """Reduce the last axis of `rows` with `ufunc`, starting from `init`."""
    dtype = rows.dtype
    with np.errstate(all="ignore"):
        if ufunc is np.add and (is_float or is_complex):
            # As XLA's evaluator: float sums accumulate in double and round once.
            wide = np.complex128 if is_complex else np.float64
            total = rows.astype(wide).sum(axis=-1) + init.astype(wide)
            return np.asarray(total.astype(dtype))
        start = np.broadcast_to(init, rows.shape[:-1] + (1,))
        reduced = ufunc.reduce(np.concatenate([start, rows], axis=-1), axis=-1)
        return np.asarray(reduced, dtype=dtype)


# --- windows -----------------------------------------------------------------------------


def window_table(
    window: Window, in_dims: Sequence[int], out_dims: Sequence[int]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per dimension, (input index, valid) tables of shape [out_size, window_size].

    Output position o and window offset w read the padded, base-dilated input at
    `o * stride + w * window_dilation - padding_low`; positions in the padding or in the
    holes of base dilation are invalid (XLA skips them rather than combining a pad value).
    """
    if not len(window.dims) == len(in_dims) == len(out_dims):
        raise EvaluationError(
            f"window has {len(window.dims)} dimension(s) for an operand of rank {len(in_dims)}"
        )
    tables = []
    for wd, n, o in zip(window.dims, in_dims, out_dims, strict=True):
        pos = (
            np.arange(o, dtype=np.int64)[:, None] * wd.stride
            + np.arange(wd.size, dtype=np.int64)[None, :] * wd.window_dilation
            - wd.padding_low
        )
        valid = (pos >= 0) & (pos <= (n - 1) * wd.base_dilation) & (pos % wd.base_dilation == 0)
        tables.append((np.where(valid, pos // wd.base_dilation, 0), valid))
    return tables


def _window_offsets(
    tables: list[tuple[np.ndarray, np.ndarray]],
) -> Iterator[tuple[int, ...]]:
    return itertools.product(*(range(index.shape[1]) for index, _ in tables))


def _window_slice(
    tables: list[tuple[np.ndarray, np.ndarray]], offset: tuple[int, ...]
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Open-mesh input indices and the validity mask for one window offset."""
    index = np.ix_(*(t[0][:, w] for t, w in zip(tables, offset, strict=True)))
    rank = len(tables)
    valid = np.ones((1,) * rank, dtype=bool)
    for axis, (t, w) in enumerate(zip(tables, offset, strict=True)):
        shape = [1] * rank
        shape[axis] = t[1].shape[0]
        valid = valid & t[1][:, w].reshape(shape)
    return index, valid


@evaluates(Opcode.REDUCE_WINDOW)
def _reduce_window(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """reduce-window: per output, acc = init; acc = f(acc, x) over valid window elements."""
    n = len(vals) // 2
    inputs, inits = vals[:n], vals[n:]
    shapes = instr.shape.leaves() if instr.shape.is_tuple else [instr.shape]
    out_dims = shapes[0].dims
    tables = window_table(instr.attrs["window"], inputs[0].shape, out_dims)
    combiner = Combiner(ev, instr.attrs["to_apply"])
    accs = [np.broadcast_to(init, out_dims).copy() for init in inits]
    if int(np.prod(out_dims)) > 0:
        for offset in _window_offsets(tables):
            index, valid = _window_slice(tables, offset)
            if not valid.any():
                continue
            new = combiner(*accs, *(x[index] for x in inputs))
            accs = [np.where(valid, v, a) for v, a in zip(new, accs, strict=True)]
    checked = [check_result(instr, a, s) for a, s in zip(accs, shapes, strict=True)]
    return tuple(checked) if instr.shape.is_tuple else checked[0]


@evaluates(Opcode.SELECT_AND_SCATTER)
def _select_and_scatter(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """select-and-scatter(operand, source, init), as XLA's CPU emitter and evaluator do.

    For each source element, its window over the operand picks `selected` = the first
    valid element, then each later valid element `e` replaces it when
    `select(selected, e)` is false. The output starts as `init` everywhere and
    `out[selected] = scatter(out[selected], source)`, in row-major source order.
    """
    operand, source, init = vals
    tables = window_table(instr.attrs["window"], operand.shape, source.shape)
    select = Combiner(ev, instr.attrs["select"])
    scatter = Combiner(ev, instr.attrs["scatter"])
    flat_positions = np.arange(operand.size, dtype=np.int64).reshape(operand.shape)
    chosen_value = np.zeros(source.shape, dtype=operand.dtype)
    chosen_index = np.zeros(source.shape, dtype=np.int64)
    have = np.zeros(source.shape, dtype=bool)
    if source.size > 0:
        for offset in _window_offsets(tables):
            index, valid = _window_slice(tables, offset)
            if not valid.any():
                continue
            current = operand[index]
            keep = select(chosen_value, current)[0]
            take = valid & (~have | ~keep)
            chosen_value = np.where(take, current, chosen_value)
            chosen_index = np.where(take, flat_positions[index], chosen_index)
            have |= valid
    out = np.full(operand.size, init, dtype=operand.dtype)
    scatter_combine(scatter, [out], chosen_index[have], [source[have]])
    return check_result(instr, out.reshape(operand.shape))


# --- sort and topk -----------------------------------------------------------------------


def total_order_key(x: np.ndarray) -> np.ndarray:
    """Integer keys ordering `x` as XLA's TOTALORDER (-NaN < -inf < -0 < +0 < inf < NaN).

    Integers and pred map to themselves (as int64 / uint64 where needed).
    """
    if x.dtype == np.bool_:
        return x.astype(np.int8)
    if x.dtype.kind in "iu":
        return x
    bits = x.view(np.dtype(f"i{x.dtype.itemsize}"))
    # Negative floats: flip the magnitude bits so larger magnitudes sort lower.
    magnitude = np.array(np.iinfo(bits.dtype).max, dtype=bits.dtype)
    return np.asarray(bits ^ ((bits >> (8 * x.dtype.itemsize - 1)) & magnitude))


def _plain_compare_sort(comp: HloComputation, keys: list[np.ndarray]) -> np.ndarray | None:
    """Stable argsort along the last axis when the comparator is `compare(p2k, p2k+1)`.

    Returns None when the comparator is anything else, or compares floats with the IEEE
    (partial) order while NaNs are present: then the generic path decides.
    """
    root = comp.root
    if root is None or root.opcode is not Opcode.COMPARE:
        return None
    a, b = root.operands
    if a.opcode is not Opcode.PARAMETER or b.opcode is not Opcode.PARAMETER:
        return None
    pa, pb = a.attrs["parameter_number"], b.attrs["parameter_number"]
    if pa // 2 != pb // 2 or pa == pb:
        return None
    direction = root.attrs["direction"]
    if direction not in ("LT", "GT"):
        return None
    descending = (direction == "GT") == (pa < pb)
    key = keys[pa // 2]
    kind = root.attrs.get("type")
    etype = a.shape.element_type
    if etype.is_float and kind == "TOTALORDER":
        key = total_order_key(key)
    elif etype.is_float and kind in (None, "FLOAT"):
        key = key.astype(np.float64)
        if np.isnan(key).any():
            return None
        key = -key if descending else key
        return np.argsort(key, axis=-1, kind="stable")
    elif etype.is_integer or etype.is_pred:
        expected = "UNSIGNED" if etype.is_unsigned or etype.is_pred else "SIGNED"
        if kind not in (None, expected):
            return None
        key = total_order_key(key)
    else:
        return None
    return np.argsort(np.invert(key) if descending else key, axis=-1, kind="stable")


def _network_sort(comparator: Combiner, keys: list[np.ndarray]) -> np.ndarray:
    """Stable argsort of rows (last axis) under an arbitrary comparator computation.

    A bitonic sorting network runs the comparator on all pairs of a stage at once. Ties
    (neither element less) keep the original order, which makes any network stable;
    the rows are padded to a power of two with elements greater than everything.
    """
    rows, n = keys[0].shape
    size = 1 << max(n - 1, 0).bit_length()
    pad = size - n
    vals = [np.concatenate([k, np.repeat(k[:, :1], pad, axis=1)], axis=1) for k in keys]
    pos = np.broadcast_to(np.arange(size, dtype=np.int64), (rows, size)).copy()

    def less(
        a: list[np.ndarray], pa: np.ndarray, b: list[np.ndarray], pb: np.ndarray
    ) -> np.ndarray:
        args_ab = [v for pair in zip(a, b, strict=True) for v in pair]
        args_ba = [v for pair in zip(b, a, strict=True) for v in pair]
        ab = comparator(*args_ab)[0].astype(bool)
        ba = comparator(*args_ba)[0].astype(bool)
        real_a, real_b = pa < n, pb < n
        strict = ab | (~ba & (pa < pb))
        return np.where(real_a & real_b, strict, np.where(real_a | real_b, real_a, pa < pb))

    k = 2
    while k <= size:
        j = k // 2
        while j >= 1:
            i = np.arange(size)
            lo = i[(i ^ j) > i]
            hi = lo ^ j
            a, b = [v[:, lo] for v in vals], [v[:, hi] for v in vals]
            pa, pb = pos[:, lo], pos[:, hi]
            ascending = (lo & k) == 0
            swap = np.where(ascending, less(b, pb, a, pa), less(a, pa, b, pb))
            for v in [*vals, pos]:
                first, second = v[:, lo].copy(), v[:, hi]
                v[:, lo] = np.where(swap, second, first)
                v[:, hi] = np.where(swap, first, second)
            j //= 2
        k *= 2
    return pos[:, :n]


@evaluates(Opcode.SORT)
def _sort(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """sort(operands...) along dimensions[0] with the comparator `to_apply` (stable)."""
    dim = instr.attrs["dimensions"][0]
    moved = [np.moveaxis(v, dim, -1) for v in vals]
    batch_shape, n = moved[0].shape[:-1], moved[0].shape[-1]
    rows = [m.reshape(int(np.prod(batch_shape, dtype=np.int64)), n) for m in moved]
    comp = instr.attrs["to_apply"]
    order = None if rows[0].size == 0 else _plain_compare_sort(comp, rows)
    if order is None:
        if rows[0].size == 0:
            order = np.zeros(rows[0].shape, dtype=np.int64)
        else:
            order = _network_sort(Combiner(ev, comp), rows)
    results = []
    for r, shape in zip(rows, instr.shape.leaves(), strict=True):
        sorted_rows = np.take_along_axis(r, order, axis=-1).reshape(batch_shape + (n,))
        results.append(check_result(instr, np.moveaxis(sorted_rows, -1, dim), shape))
    return tuple(results) if instr.shape.is_tuple else results[0]


@evaluates(Opcode.TOPK)
def _topk(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """topk: the k largest (or smallest) along the last dim in TOTALORDER, lower index first
    among equals; returns (values, s32 indices)."""
    x = vals[0]
    k = instr.attrs["k"]
    key = total_order_key(x)
    if instr.attrs.get("largest", True):
        key = np.invert(key)
    order = np.argsort(key, axis=-1, kind="stable")[..., :k]
    values_shape, index_shape = instr.shape.tuple_shapes
    values = check_result(instr, np.take_along_axis(x, order, axis=-1), values_shape)
    return values, check_result(instr, order.astype(np.int32), index_shape)
