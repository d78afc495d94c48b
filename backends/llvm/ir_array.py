"""IrArray: a dense row-major array in memory, seen from LLVM IR.

An IrArray pairs an opaque pointer to the first element with the HLO shape of the buffer.
Loads return register-typed values (PRED as i1) and stores take them, so kernels never
deal with the in-memory encoding. Layouts other than row-major are not supported here;
the driver materialises every buffer row-major.
"""

from __future__ import annotations

from collections.abc import Sequence

from llvmlite import ir

from backends.llvm.index import IrIndex, linearize
from backends.llvm.irutil import I1, I8, byte_alignment, storage_type
from hlo.dtypes import PrimitiveType
from hlo.errors import InternalError
from hlo.shape import Shape


class IrArray:
    """A dense row-major buffer: `ptr` (LLVM pointer to element 0) and its array `shape`.

    Attributes:
        ptr: an LLVM value of pointer type.
        shape: the HLO array shape of the buffer (not a tuple).
        invariant: True when the buffer is never written while the code runs (constants,
            parameters); loads from it are marked `!invariant.load`.
    """

    __slots__ = ("ptr", "shape", "invariant")

    def __init__(self, ptr: ir.Value, shape: Shape, invariant: bool = False) -> None:
        if shape.is_tuple:
            raise InternalError(f"IrArray of tuple shape {shape}")
        self.ptr = ptr
        self.shape = shape
        self.invariant = invariant

    def __repr__(self) -> str:
        return f"IrArray({self.ptr.name or self.ptr}, {self.shape})"

    @property
    def element_type(self) -> PrimitiveType:
        return self.shape.element_type

    @property
    def storage(self) -> ir.Type:
        """The in-memory LLVM type of one element."""
        return storage_type(self.shape.element_type)

    @property
    def alignment(self) -> int:
        return byte_alignment(self.shape.element_type)

    def linear_of(self, b: ir.IRBuilder, index: IrIndex | Sequence[ir.Value]) -> ir.Value:
        """The row-major element offset of `index` (an IrIndex or per-dimension i64s)."""
        if isinstance(index, IrIndex):
            if index.linear_value is not None or index.dims == self.shape.dims:
                return index.linear(b)
            return linearize(b, index.values, self.shape.dims)
        values = list(index)
        if len(values) != self.shape.rank:
            raise InternalError(
                f"index of rank {len(values)} into {self.shape.to_text(with_layout=False)}"
            )
        return linearize(b, values, self.shape.dims)

    def element_ptr(self, b: ir.IRBuilder, index: IrIndex | Sequence[ir.Value]) -> ir.Value:
        """Pointer to the element at `index`."""
        if self.shape.rank == 0:
            return self.ptr
        return self.element_ptr_linear(b, self.linear_of(b, index))

    def element_ptr_linear(self, b: ir.IRBuilder, linear: ir.Value) -> ir.Value:
        """Pointer to the element at row-major offset `linear` (i64)."""
        return b.gep(self.ptr, [linear], inbounds=True, source_etype=self.storage)

    def load(self, b: ir.IRBuilder, index: IrIndex | Sequence[ir.Value]) -> ir.Value:
        """The register value of the element at `index` (PRED becomes i1)."""
        return self._load_ptr(b, self.element_ptr(b, index))

    def store(self, b: ir.IRBuilder, index: IrIndex | Sequence[ir.Value], value: ir.Value) -> None:
        """Store the register value `value` at `index` (PRED i1 becomes one byte)."""
        self._store_ptr(b, self.element_ptr(b, index), value)

    def load_linear(self, b: ir.IRBuilder, linear: ir.Value) -> ir.Value:
        """The register value of the element at row-major offset `linear`."""
        return self._load_ptr(b, self.element_ptr_linear(b, linear))

    def store_linear(self, b: ir.IRBuilder, linear: ir.Value, value: ir.Value) -> None:
        """Store `value` at row-major offset `linear`."""
        self._store_ptr(b, self.element_ptr_linear(b, linear), value)

    def _load_ptr(self, b: ir.IRBuilder, ptr: ir.Value) -> ir.Value:
        raw = b.load(ptr, typ=self.storage, align=self.alignment)
        if self.invariant:
            raw.set_metadata("invariant.load", b.module.add_metadata([]))
        if self.shape.element_type is PrimitiveType.PRED:
            return b.icmp_unsigned("!=", raw, ir.Constant(I8, 0))
        return raw

    def _store_ptr(self, b: ir.IRBuilder, ptr: ir.Value, value: ir.Value) -> None:
        if self.shape.element_type is PrimitiveType.PRED and value.type == I1:
            value = b.zext(value, I8)
        if value.type != self.storage:
            raise InternalError(
                f"storing a {value.type} into a {self.shape.element_type.value} buffer"
            )
        b.store(value, ptr, align=self.alignment)
