"""Vector accesses for per-element GPU kernels: each thread handles `width` consecutive elements.

A per-element kernel whose thread computes elements `first .. first + width - 1` of its
output reads every same-size operand at exactly those linear offsets, unless the fused
expression re-indexes it (broadcast, transpose, slice, ...). `LaneLoads` serves the first
case with one vector load per operand (`ld.global.nc.v4.f32` for f32) and leaves the
others to scalar loads; `store_lanes` writes the thread's results with one vector store.

LLVM's load/store vectoriser is not relied upon: it stops at any instruction that is not
known to return, and libdevice's `__nv_tanhf` contains such an instruction (an inline
`rcp.approx` asm without `willreturn`), which left a fused tanh chain with scalar accesses
and about half of the copy bandwidth.

The vector loads are emitted in a block of their own at the start of each item (`begin`),
which dominates all the item's code, so a load requested from inside a branch of the
expression is still usable by the lanes computed after that branch.
"""

from __future__ import annotations

from collections.abc import Sequence

from llvmlite import ir

from backends.llvm.index import IrIndex
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import I1, I8, I32, i64, storage_type
from hlo.dtypes import PrimitiveType

# Widest access a thread makes at once (bytes): the largest PTX vector load, ld.v4.b32.
MAX_VECTOR_BYTES = 16


def vectorizable(t: PrimitiveType) -> bool:
    """True when elements of `t` can travel in an LLVM vector (integers and reals)."""
    storage = storage_type(t)
    if isinstance(storage, ir.IntType):
        return storage.width in (8, 16, 32, 64)
    return isinstance(storage, (ir.HalfType, ir.FloatType, ir.DoubleType))


def vector_alignment(t: PrimitiveType, width: int) -> int:
    """The alignment of `width` elements starting at a multiple of `width` (slots are
    256-byte aligned, kernel arguments promise 16 bytes)."""
    return min(MAX_VECTOR_BYTES, width * t.byte_size)


class LaneLoads:
    """Vector loads of the operands a thread reads at its own `width` elements.

    Attributes:
        n: the output's element count; only operands of that many elements are candidates.
        width: elements per thread (the vector width).
    """

    def __init__(self, n: int, width: int) -> None:
        self.n = n
        self.width = width
        self._lanes: dict[int, int] = {}
        self._vectors: dict[int, ir.Value] = {}
        self._preload: ir.IRBuilder | None = None
        self._first: ir.Value | None = None

    def begin(self, b: ir.IRBuilder, first: ir.Value) -> list[ir.Value]:
        """Start an item at linear offset `first`; returns the lanes' linear offsets.

        Leaves `b` in a fresh block; the loads go before the branch into it.
        """
        offsets = [first] + [b.add(first, i64(k), flags=["nuw", "nsw"])
                             for k in range(1, self.width)]
        body = b.append_basic_block("lanes.body")
        branch = b.branch(body)
        self._preload = ir.IRBuilder(b.block)
        self._preload.position_before(branch)
        self._lanes = {id(v): k for k, v in enumerate(offsets)}
        self._first = first
        self._vectors = {}
        b.position_at_end(body)
        return offsets

    def end(self) -> None:
        """Close the item: later loads are scalar again."""
        self._preload = None
        self._first = None
        self._lanes = {}
        self._vectors = {}

    def load(self, b: ir.IRBuilder, array: IrArray, index: IrIndex) -> ir.Value:
        """The element of `array` at `index`: a lane of a vector load when `index` is one of
        the item's own offsets, else a scalar load."""
        lane = self._lane_of(array, index)
        if lane is None:
            return array.load(b, index)
        vector = self._vector(array)
        value = b.extract_element(vector, ir.Constant(I32, lane))
        if array.element_type is PrimitiveType.PRED:
            return b.icmp_unsigned("!=", value, ir.Constant(I8, 0))
        return value

    def _lane_of(self, array: IrArray, index: IrIndex) -> int | None:
        if self._preload is None or index.linear_value is None:
            return None
        if array.shape.num_elements != self.n or not vectorizable(array.element_type):
            return None
        return self._lanes.get(id(index.linear_value))

    def _vector(self, array: IrArray) -> ir.Value:
        key = id(array)
        found = self._vectors.get(key)
        if found is not None:
            return found
        b = self._preload
        assert b is not None and self._first is not None
        vector_type = ir.VectorType(array.storage, self.width)
        ptr = array.element_ptr_linear(b, self._first)
        load = b.load(ptr, typ=vector_type,
                      align=vector_alignment(array.element_type, self.width))
        if array.invariant:
            load.set_metadata("invariant.load", b.module.add_metadata([]))
        self._vectors[key] = load
        return load


def store_lanes(b: ir.IRBuilder, array: IrArray, first: ir.Value,
                values: Sequence[ir.Value]) -> None:
    """Store `values` (register values) at linear offsets `first`, `first + 1`, ... of
    `array` with one vector store."""
    storage = array.storage
    vector: ir.Value = ir.Constant(ir.VectorType(storage, len(values)), ir.Undefined)
    for k, value in enumerate(values):
        if value.type == I1 and storage == I8:
            value = b.zext(value, I8)
        vector = b.insert_element(vector, value, ir.Constant(I32, k))
    ptr = array.element_ptr_linear(b, first)
    b.store(vector, ptr, align=vector_alignment(array.element_type, len(values)))
