"""IrIndex: a multi-dimensional element index as LLVM i64 values, and its rewrites.

Movement ops never copy in the elemental emitter: a generator for `transpose(x)` asks x's
generator for the element at the *rewritten* index. This file holds those rewrites
(broadcast, transpose, reshape, slice, reverse) and the row-major linear <-> multi-dim
conversions. It knows shapes (dimensions), never instructions or element types.

All index arithmetic is on non-negative values below the dimension sizes, so the adds and
multiplies carry `nuw nsw` and divisions are unsigned; that lets LLVM's vectoriser and
strength reduction see through them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from llvmlite import ir

from backends.llvm.irutil import I64, i64
from hlo.errors import InternalError
from hlo.shape import Shape

_NOWRAP = ("nuw", "nsw")


def _dims_of(shape: Shape | Sequence[int]) -> tuple[int, ...]:
    if isinstance(shape, Shape):
        return shape.dims
    return tuple(int(d) for d in shape)


def row_major_strides(dims: Sequence[int]) -> list[int]:
    """Element strides of a dense row-major array with `dims` (last dimension stride 1)."""
    strides = [1] * len(dims)
    for k in range(len(dims) - 2, -1, -1):
        strides[k] = strides[k + 1] * dims[k + 1]
    return strides


def common_factors(a: Sequence[int], b: Sequence[int]) -> list[tuple[int, int]]:
    """Boundaries (i, j) with prod(a[:i]) == prod(b[:j]), from (0, 0) to (len(a), len(b)).

    Between consecutive boundaries lie groups of dimensions that a reshape maps onto each
    other; indices of different groups never mix. Both inputs must have equal, non-zero
    element counts.
    """
    bounds = [(0, 0)]
    i = j = 0
    pa = pb = 1
    while i < len(a) or j < len(b):
        if i < len(a) and (pa < pb or j == len(b) or (pa == pb and a[i] == 1)):
            pa *= a[i]
            i += 1
        else:
            pb *= b[j]
            j += 1
        if pa == pb and (i == len(a) or a[i] != 1) and (j == len(b) or b[j] != 1):
            bounds.append((i, j))
    if bounds[-1] != (len(a), len(b)):
        bounds.append((len(a), len(b)))
    return bounds


def linearize(b: ir.IRBuilder, values: Sequence[ir.Value], dims: Sequence[int]) -> ir.Value:
    """Row-major linear offset of the index `values` into an array with `dims`."""
    if not values:
        return i64(0)
    acc: ir.Value | None = None
    for v, d in zip(values, dims, strict=True):
        if acc is None:
            acc = v
        elif d == 1:
            # A unit dimension contributes nothing but the scaling by 1.
            continue
        else:
            acc = b.add(b.mul(acc, i64(d), flags=_NOWRAP), v, flags=_NOWRAP)
    assert acc is not None
    return acc


def delinearize(b: ir.IRBuilder, linear: ir.Value, dims: Sequence[int]) -> list[ir.Value]:
    """The row-major multi-dimensional index of `linear` in an array with `dims`."""
    out: list[ir.Value] = []
    strides = row_major_strides(dims)
    for k, (d, s) in enumerate(zip(dims, strides, strict=True)):
        if d == 1:
            out.append(i64(0))
            continue
        v = linear if s == 1 else b.udiv(linear, i64(s))
        if k > 0:
            # The outermost index needs no wrap: linear < prod(dims).
            v = b.urem(v, i64(d))
        out.append(v)
    return out


class IrIndex:
    """An element index into an array of `shape`: one i64 value per dimension.

    Attributes:
        values: the per-dimension indices, outermost (major) first.
        dims: the dimensions of the indexed array.
        linear_value: the row-major linear offset when already known (reused by `linear`
            and by same-size reshapes), else None.
    """

    __slots__ = ("values", "dims", "linear_value")

    def __init__(
        self,
        values: Sequence[ir.Value],
        shape: Shape | Sequence[int],
        linear: ir.Value | None = None,
    ) -> None:
        self.dims = _dims_of(shape)
        self.values = list(values)
        self.linear_value = linear
        if len(self.values) != len(self.dims):
            raise InternalError(
                f"index of rank {len(self.values)} for an array of rank {len(self.dims)}"
            )

    # --- basic access ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, k: int) -> ir.Value:
        return self.values[k]

    def __iter__(self) -> Iterator[ir.Value]:
        return iter(self.values)

    @property
    def rank(self) -> int:
        return len(self.dims)

    def __repr__(self) -> str:
        return f"IrIndex({[str(v) for v in self.values]}, dims={list(self.dims)})"

    # --- conversions -------------------------------------------------------------------------
    def linear(self, b: ir.IRBuilder) -> ir.Value:
        """The row-major linear offset of this index (computed once, then reused)."""
        if self.linear_value is None:
            self.linear_value = linearize(b, self.values, self.dims)
        return self.linear_value

    @staticmethod
    def from_linear(
        b: ir.IRBuilder, linear: ir.Value, shape: Shape | Sequence[int]
    ) -> IrIndex:
        """The index whose row-major linear offset into `shape` is the i64 `linear`."""
        dims = _dims_of(shape)
        return IrIndex(delinearize(b, linear, dims), dims, linear)

    @staticmethod
    def zeros(shape: Shape | Sequence[int]) -> IrIndex:
        """The index of the first element (all zeros)."""
        dims = _dims_of(shape)
        return IrIndex([i64(0)] * len(dims), dims, i64(0))

    # --- rewrites for movement ops -----------------------------------------------------------
    def of_broadcast(
        self, operand_shape: Shape | Sequence[int], dimensions: Sequence[int]
    ) -> IrIndex:
        """The operand index read by `broadcast(operand), dimensions=...` at this index.

        Operand dimension k maps to output dimension `dimensions[k]`; an operand dimension
        of size 1 always reads index 0 (so degenerate broadcasting is accepted too).
        """
        dims = _dims_of(operand_shape)
        values = [i64(0) if d == 1 else self.values[dimensions[k]] for k, d in enumerate(dims)]
        return IrIndex(values, dims)

    def of_transpose(
        self, operand_shape: Shape | Sequence[int], dimensions: Sequence[int]
    ) -> IrIndex:
        """The operand index read by `transpose(operand), dimensions=perm` at this index.

        Output dimension i is operand dimension perm[i].
        """
        dims = _dims_of(operand_shape)
        values: list[ir.Value] = [i64(0)] * len(dims)
        for i, p in enumerate(dimensions):
            values[p] = self.values[i]
        return IrIndex(values, dims)

    def of_reshape(self, b: ir.IRBuilder, operand_shape: Shape | Sequence[int]) -> IrIndex:
        """The operand index read by `reshape(operand)` (row-major order kept) at this index.

        Dimension groups that the reshape maps onto each other (common factors) are
        converted separately, so unchanged trailing dimensions stay plain loop indices.
        """
        src = _dims_of(operand_shape)
        if math.prod(src) != math.prod(self.dims):
            raise InternalError(f"reshape of {list(src)} to {list(self.dims)}")
        if self.linear_value is not None or math.prod(src) == 0:
            return IrIndex.from_linear(b, self.linear(b), src)
        values: list[ir.Value] = []
        bounds = common_factors(src, self.dims)
        for (i0, j0), (i1, j1) in zip(bounds, bounds[1:], strict=False):
            group_src = src[i0:i1]
            group_out = self.dims[j0:j1]
            if group_src == group_out:
                values.extend(self.values[j0:j1])
                continue
            lin = linearize(b, self.values[j0:j1], group_out)
            values.extend(delinearize(b, lin, group_src))
        return IrIndex(values, src)

    def of_slice(
        self,
        b: ir.IRBuilder,
        operand_shape: Shape | Sequence[int],
        starts: Sequence[int | ir.Value],
        strides: Sequence[int] | None = None,
    ) -> IrIndex:
        """The operand index read by a slice at this index: start + index * stride.

        `starts` may hold i64 values (dynamic-slice) as well as Python ints.
        """
        dims = _dims_of(operand_shape)
        strides = strides if strides is not None else [1] * len(dims)
        values: list[ir.Value] = []
        for v, start, stride in zip(self.values, starts, strides, strict=True):
            if stride != 1:
                v = b.mul(v, i64(stride), flags=_NOWRAP)
            if isinstance(start, int):
                if start != 0:
                    v = b.add(v, i64(start), flags=_NOWRAP)
            else:
                v = b.add(v, start, flags=_NOWRAP)
            values.append(v)
        return IrIndex(values, dims)

    def of_reverse(self, b: ir.IRBuilder, dimensions: Sequence[int]) -> IrIndex:
        """The operand index read by `reverse(operand), dimensions=...` at this index."""
        values = list(self.values)
        for d in dimensions:
            values[d] = b.sub(i64(self.dims[d] - 1), values[d], flags=_NOWRAP)
        return IrIndex(values, self.dims)

    def with_dim(self, k: int, value: ir.Value, dims: Sequence[int] | None = None) -> IrIndex:
        """This index with dimension `k` replaced by `value` (into `dims` if given)."""
        values = list(self.values)
        values[k] = value
        return IrIndex(values, self.dims if dims is None else dims)


def index_type() -> ir.Type:
    """The LLVM type of every index value (i64)."""
    return I64
