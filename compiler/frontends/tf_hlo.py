"""HLO construction helpers with TensorFlow's conventions, for the TF op lowerings.

`HloEmitter` wraps one HloComputation and adds what TF lowerings keep needing: numpy-style
broadcasting of operands (TF broadcasts both sides, HLO needs equal shapes), scalar
constants of an operand's type, reductions with cached scalar reducer computations, and
compile-time constant evaluation of an instruction (`constant_value`) through the
reference evaluator. It knows nothing of TF nodes or graphs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hlo import eval_rules  # noqa: F401  (fills EVAL, used for constant folding)
from hlo.attributes import PadDim, PaddingConfig, SliceDim, Window, WindowDim
from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType, from_numpy
from hlo.errors import ShapeError, TfcompileError
from hlo.evaluator import EVAL, Evaluator
from hlo.instruction import HloInstruction
from hlo.module import HloModule
from hlo.opcodes import Opcode, Trait
from hlo.shape import Shape

Instr = HloInstruction

# Constant folding evaluates at most this many elements per instruction: shape arithmetic
# is tiny, and folding a large weight expression would only slow the import down.
FOLD_LIMIT = 1 << 16

# reducer kind -> (HLO opcode, init value for an element type)
_REDUCERS: dict[str, Opcode] = {
    "add": Opcode.ADD,
    "mul": Opcode.MULTIPLY,
    "max": Opcode.MAXIMUM,
    "min": Opcode.MINIMUM,
    "and": Opcode.AND,
    "or": Opcode.OR,
}


def lowest(t: PrimitiveType) -> Any:
    """The identity of max for element type `t` (-inf for floats)."""
    if t.is_float:
        return -np.inf
    if t.is_pred:
        return False
    return np.iinfo(t.numpy).min


def highest(t: PrimitiveType) -> Any:
    """The identity of min for element type `t` (+inf for floats)."""
    if t.is_float:
        return np.inf
    if t.is_pred:
        return True
    return np.iinfo(t.numpy).max


def broadcast_dims(a: Sequence[int], b: Sequence[int], what: str) -> tuple[int, ...]:
    """The numpy broadcast of two dimension lists; ShapeError when incompatible."""
    rank = max(len(a), len(b))
    pa = (1,) * (rank - len(a)) + tuple(a)
    pb = (1,) * (rank - len(b)) + tuple(b)
    out = []
    for x, y in zip(pa, pb, strict=True):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise ShapeError(f"{what}: shapes {list(a)} and {list(b)} are not broadcastable")
    return tuple(out)


class ModuleState:
    """Per-module caches shared by every emitter: reducer computations, folded constants."""

    def __init__(self, module: HloModule) -> None:
        self.module = module
        self.reducers: dict[tuple[str, PrimitiveType], HloComputation] = {}
        self.folded: dict[int, np.ndarray | None] = {}
        self.evaluator = Evaluator(module)


class HloEmitter:
    """Adds instructions to one computation of a module.

    Args:
        state: the module's shared caches.
        comp: the computation to add instructions to.
    """

    def __init__(self, state: ModuleState, comp: HloComputation) -> None:
        self.state = state
        self.comp = comp

    # --- basics -------------------------------------------------------------------------------
    def add(self, opcode: Opcode, operands: Sequence[Instr] = (), shape: Shape | None = None,
            **attrs: Any) -> Instr:
        return self.comp.add(opcode, list(operands), shape=shape, **attrs)

    def constant(self, value: Any, t: PrimitiveType | None = None) -> Instr:
        """A constant holding `value` (converted to `t` when given)."""
        array = np.asarray(value) if t is None else np.asarray(value, dtype=t.numpy)
        etype = t if t is not None else from_numpy(array.dtype)
        array = np.array(array, dtype=etype.numpy, order="C")
        return self.add(Opcode.CONSTANT, shape=Shape.array(etype, array.shape), literal=array)

    def scalar(self, value: Any, t: PrimitiveType) -> Instr:
        return self.constant(np.asarray(value, dtype=t.numpy), t)

    def full(self, value: Any, t: PrimitiveType, dims: Sequence[int]) -> Instr:
        """An array of `dims` filled with `value`."""
        return self.broadcast_in_dim(self.scalar(value, t), dims, ())

    def full_like(self, value: Any, x: Instr) -> Instr:
        return self.full(value, x.shape.element_type, x.shape.dims)

    def parameter(self, number: int, shape: Shape, name: str | None = None) -> Instr:
        return self.comp.add(Opcode.PARAMETER, [], shape=shape, name=name,
                             parameter_number=number)

    def tuple(self, items: Sequence[Instr]) -> Instr:
        return self.add(Opcode.TUPLE, items)

    def gte(self, t: Instr, index: int) -> Instr:
        return self.add(Opcode.GET_TUPLE_ELEMENT, [t], index=index)

    # --- shapes and movement ------------------------------------------------------------------
    def reshape(self, x: Instr, dims: Sequence[int]) -> Instr:
        dims = tuple(int(d) for d in dims)
        if x.shape.dims == dims:
            return x
        return self.add(Opcode.RESHAPE, [x], Shape.array(x.shape.element_type, dims))

    def broadcast_in_dim(self, x: Instr, dims: Sequence[int], mapping: Sequence[int]) -> Instr:
        """`x` broadcast to `dims`; operand dim i becomes result dim mapping[i]."""
        dims = tuple(int(d) for d in dims)
        if x.shape.dims == dims and tuple(mapping) == tuple(range(len(dims))):
            return x
        return self.add(Opcode.BROADCAST, [x], Shape.array(x.shape.element_type, dims),
                        dimensions=tuple(mapping))

    def broadcast_to(self, x: Instr, dims: Sequence[int]) -> Instr:
        """numpy broadcasting of `x` to `dims` (trailing alignment, size-1 dims stretch)."""
        dims = tuple(int(d) for d in dims)
        src = x.shape.dims
        if src == dims:
            return x
        offset = len(dims) - len(src)
        if offset < 0:
            raise ShapeError(f"cannot broadcast {list(src)} to {list(dims)}")
        keep = []
        for i, d in enumerate(src):
            target = dims[offset + i]
            if d == target:
                keep.append(i)
            elif d != 1:
                raise ShapeError(f"cannot broadcast {list(src)} to {list(dims)}")
        squeezed = self.reshape(x, [src[i] for i in keep])
        return self.broadcast_in_dim(squeezed, dims, [offset + i for i in keep])

    def broadcast_all(self, xs: Sequence[Instr], what: str) -> list[Instr]:
        dims: tuple[int, ...] = ()
        for x in xs:
            dims = broadcast_dims(dims, x.shape.dims, what)
        return [self.broadcast_to(x, dims) for x in xs]

    def transpose(self, x: Instr, perm: Sequence[int]) -> Instr:
        perm = tuple(int(p) for p in perm)
        if perm == tuple(range(len(perm))):
            return x
        return self.add(Opcode.TRANSPOSE, [x], dimensions=perm)

    def slice(self, x: Instr, starts: Sequence[int], limits: Sequence[int],
              strides: Sequence[int] | None = None) -> Instr:
        strides = strides if strides is not None else [1] * len(starts)
        spec = tuple(SliceDim(int(a), int(b), int(c))
                     for a, b, c in zip(starts, limits, strides, strict=True))
        if all(s.start == 0 and s.limit == d and s.stride == 1
               for s, d in zip(spec, x.shape.dims, strict=True)):
            return x
        return self.add(Opcode.SLICE, [x], slice=spec)

    def slice_in_dim(self, x: Instr, start: int, limit: int, dim: int) -> Instr:
        starts = [0] * x.shape.rank
        limits = list(x.shape.dims)
        starts[dim] = start
        limits[dim] = limit
        return self.slice(x, starts, limits)

    def concat(self, xs: Sequence[Instr], dim: int) -> Instr:
        if len(xs) == 1:
            return xs[0]
        return self.add(Opcode.CONCATENATE, xs, dimensions=(dim,))

    def pad(self, x: Instr, value: Instr, lows: Sequence[int], highs: Sequence[int],
            interiors: Sequence[int] | None = None) -> Instr:
        interiors = interiors if interiors is not None else [0] * len(lows)
        config = PaddingConfig(tuple(PadDim(int(a), int(b), int(c))
                                     for a, b, c in zip(lows, highs, interiors, strict=True)))
        return self.add(Opcode.PAD, [x, value], padding=config)

    def reverse(self, x: Instr, dims: Sequence[int]) -> Instr:
        if not dims:
            return x
        return self.add(Opcode.REVERSE, [x], dimensions=tuple(sorted(dims)))

    def iota(self, t: PrimitiveType, dims: Sequence[int], dim: int) -> Instr:
        return self.add(Opcode.IOTA, shape=Shape.array(t, dims), iota_dimension=dim)

    # --- element-wise -------------------------------------------------------------------------
    def convert(self, x: Instr, t: PrimitiveType) -> Instr:
        if x.shape.element_type is t:
            return x
        if t.is_pred:
            return self.compare("NE", x, self.full_like(0, x))
        return self.add(Opcode.CONVERT, [x], x.shape.with_element_type(t))

    def unary(self, opcode: Opcode, x: Instr) -> Instr:
        return self.add(opcode, [x])

    def binary(self, opcode: Opcode, a: Instr, b: Instr, what: str = "") -> Instr:
        """`opcode` of `a` and `b` after numpy broadcasting."""
        a, b = self.broadcast_all([a, b], what or opcode.value)
        return self.add(opcode, [a, b])

    def compare(self, direction: str, a: Instr, b: Instr) -> Instr:
        a, b = self.broadcast_all([a, b], f"compare {direction}")
        return self.add(Opcode.COMPARE, [a, b], direction=direction)

    def select(self, pred: Instr, on_true: Instr, on_false: Instr) -> Instr:
        pred, on_true, on_false = self.broadcast_all([pred, on_true, on_false], "select")
        return self.add(Opcode.SELECT, [pred, on_true, on_false])

    def with_scalar(self, opcode: Opcode, x: Instr, value: Any) -> Instr:
        """`opcode(x, value)` with `value` a scalar of x's element type."""
        return self.binary(opcode, x, self.scalar(value, x.shape.element_type))

    # --- reductions ---------------------------------------------------------------------------
    def reducer(self, kind: str, t: PrimitiveType) -> HloComputation:
        """The scalar computation `(t, t) -> t` for reducer `kind`, one per module."""
        key = (kind, t)
        found = self.state.reducers.get(key)
        if found is not None:
            return found
        comp = self.state.module.new_computation(f"{kind}_{t.value}")
        scalar = Shape.array(t, ())
        a = comp.add(Opcode.PARAMETER, [], shape=scalar, parameter_number=0)
        b = comp.add(Opcode.PARAMETER, [], shape=scalar, parameter_number=1)
        comp.set_root(comp.add(_REDUCERS[kind], [a, b]))
        self.state.reducers[key] = comp
        return comp

    def reduce(self, x: Instr, dims: Sequence[int], kind: str, init: Any) -> Instr:
        """`x` reduced over `dims` with reducer `kind` starting from `init`."""
        t = x.shape.element_type
        return self.add(Opcode.REDUCE, [x, self.scalar(init, t)],
                        dimensions=tuple(sorted(int(d) for d in dims)),
                        to_apply=self.reducer(kind, t))

    def reduce_window(self, x: Instr, init: Any, kind: str, window: Sequence[WindowDim]) -> Instr:
        t = x.shape.element_type
        return self.add(Opcode.REDUCE_WINDOW, [x, self.scalar(init, t)],
                        window=Window(tuple(window)), to_apply=self.reducer(kind, t))

    # --- constant evaluation ------------------------------------------------------------------
    def constant_value(self, x: Instr) -> np.ndarray | None:
        """The value of `x` when it depends on no parameter (and is small), else None."""
        return constant_value(self.state, x)


def constant_value(state: ModuleState, x: Instr) -> np.ndarray | None:
    """Fold `x` with the reference evaluator when all its leaves are constants."""
    memo = state.folded
    if id(x) in memo:
        return memo[id(x)]
    order = [i for i in x.walk_operands() if id(i) not in memo]
    for instr in order:
        value: np.ndarray | None = None
        foldable = (
            instr.opcode is not Opcode.PARAMETER
            and not instr.has(Trait.SIDE_EFFECTING)
            and instr.shape.is_array
            and instr.shape.num_elements <= FOLD_LIMIT
            and all(memo.get(id(o)) is not None for o in instr.operands)
            and not instr.called_computations()
        )
        if foldable:
            kernel = EVAL.get(instr.opcode)
            if kernel is not None:
                try:
                    out = kernel(state.evaluator, instr, [memo[id(o)] for o in instr.operands])
                    value = np.asarray(out, dtype=instr.shape.element_type.numpy)
                except (TfcompileError, ArithmeticError, ValueError, TypeError, IndexError):
                    value = None
        memo[id(instr)] = value
    return memo[id(x)]
