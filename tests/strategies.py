"""Hypothesis strategies: shapes, arrays and small random HLO graphs.

Random graphs are built through `HloComputation.add` (so through the shape rules), from a
menu of op builders, each of which either applies to the values at hand or declines.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st

from hlo.attributes import SliceDim
from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType as T
from hlo.instruction import HloInstruction
from hlo.module import HloModule
from hlo.opcodes import Opcode as O
from hlo.shape import Shape

dims_strategy = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)


def f32_shape(dims: tuple[int, ...]) -> Shape:
    return Shape.array(T.F32, dims)


def _scalar_add(module: HloModule) -> HloComputation:
    comp = module.new_computation("add_f32")
    a = comp.add(O.PARAMETER, shape=Shape.scalar(T.F32), parameter_number=0)
    b = comp.add(O.PARAMETER, shape=Shape.scalar(T.F32), parameter_number=1)
    comp.set_root(comp.add(O.ADD, [a, b]))
    return comp


Builder = Callable[[st.DataObject, HloModule, HloComputation, list[HloInstruction]],
                   HloInstruction | None]


def _unary(data, module, comp, values):
    x = data.draw(st.sampled_from(values))
    op = data.draw(st.sampled_from([O.NEGATE, O.ABS, O.TANH, O.FLOOR, O.SIGN, O.LOGISTIC,
                                    O.COSINE]))
    return comp.add(op, [x])


def _binary(data, module, comp, values):
    x = data.draw(st.sampled_from(values))
    same = [v for v in values if v.shape.compatible(x.shape)]
    y = data.draw(st.sampled_from(same))
    op = data.draw(st.sampled_from([O.ADD, O.SUBTRACT, O.MULTIPLY, O.MAXIMUM, O.MINIMUM]))
    return comp.add(op, [x, y])


def _transpose(data, module, comp, values):
    x = data.draw(st.sampled_from(values))
    perm = tuple(data.draw(st.permutations(range(x.shape.rank))))
    return comp.add(O.TRANSPOSE, [x], dimensions=perm)


def _reshape(data, module, comp, values):
    x = data.draw(st.sampled_from(values))
    return comp.add(O.RESHAPE, [x], shape=f32_shape((x.shape.num_elements,)))


def _broadcast(data, module, comp, values):
    x = data.draw(st.sampled_from(values))
    if x.shape.rank >= 3:
        return None
    new = data.draw(st.integers(1, 3))
    pos = data.draw(st.integers(0, x.shape.rank))
    dims = list(x.shape.dims)
    dims.insert(pos, new)
    mapping = tuple(i if i < pos else i + 1 for i in range(x.shape.rank))
    return comp.add(O.BROADCAST, [x], shape=f32_shape(tuple(dims)), dimensions=mapping)


def _slice(data, module, comp, values):
    x = data.draw(st.sampled_from(values))
    spec = []
    for d in x.shape.dims:
        start = data.draw(st.integers(0, d - 1))
        limit = data.draw(st.integers(start + 1, d))
        stride = data.draw(st.integers(1, 2))
        spec.append(SliceDim(start, limit, stride))
    return comp.add(O.SLICE, [x], slice=tuple(spec))


def _reduce(data, module, comp, values):
    x = data.draw(st.sampled_from([v for v in values if v.shape.rank > 0] or values))
    if x.shape.rank == 0:
        return None
    dims = tuple(sorted(data.draw(st.sets(st.integers(0, x.shape.rank - 1), min_size=1))))
    zero = comp.add(O.CONSTANT, shape=Shape.scalar(T.F32), literal=np.array(0, np.float32))
    add = next((c for c in module.computations if c.name.startswith("add_f32")), None)
    add = add or _scalar_add(module)
    return comp.add(O.REDUCE, [x, zero], dimensions=dims, to_apply=add)


def _concatenate(data, module, comp, values):
    x = data.draw(st.sampled_from([v for v in values if v.shape.rank > 0] or values))
    if x.shape.rank == 0:
        return None
    dim = data.draw(st.integers(0, x.shape.rank - 1))
    return comp.add(O.CONCATENATE, [x, x], dimensions=(dim,))


def _select(data, module, comp, values):
    x = data.draw(st.sampled_from(values))
    y = data.draw(st.sampled_from([v for v in values if v.shape.compatible(x.shape)]))
    p = comp.add(O.COMPARE, [x, y], direction=data.draw(st.sampled_from(["LT", "GE", "EQ"])))
    return comp.add(O.SELECT, [p, x, y])


BUILDERS: list[Builder] = [_unary, _binary, _transpose, _reshape, _broadcast, _slice,
                           _reduce, _concatenate, _select]


@st.composite
def random_modules(draw, max_ops: int = 8) -> tuple[HloModule, list[np.ndarray]]:
    """A random f32 module over 1-3 parameters, and matching random inputs."""
    data = draw(st.data())
    module = HloModule("random")
    comp = HloComputation("main")
    nparams = draw(st.integers(1, 3))
    values: list[HloInstruction] = []
    args = []
    for i in range(nparams):
        dims = draw(dims_strategy)
        values.append(comp.add(O.PARAMETER, shape=f32_shape(dims), parameter_number=i,
                               name=f"p{i}"))
        seed = draw(st.integers(0, 2**16))
        args.append(np.random.default_rng(seed).uniform(-2, 2, dims).astype(np.float32))
    module.add_computation(comp, entry=True)
    for _ in range(draw(st.integers(1, max_ops))):
        builder = draw(st.sampled_from(BUILDERS))
        made = builder(data, module, comp, values)
        if made is not None:
            values.append(made)
    comp.set_root(values[-1])
    # callee computations first, as printed
    module.computations.sort(key=lambda c: c is module.entry)
    return module, args
