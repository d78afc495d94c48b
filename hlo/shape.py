"""Shapes: element type, dimensions, layout (minor_to_major) and tuple shapes.

A `Shape` is immutable. Array shapes carry an optional layout; `None` means "not assigned
yet" and prints as nothing, while the default layout is major-to-minor (`{1,0}` for rank 2).
Equality (`==`) compares everything including layouts; `compatible` ignores layouts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from hlo.dtypes import PrimitiveType
from hlo.errors import ShapeError


@dataclass(frozen=True, slots=True)
class Shape:
    """An XLA shape; for TUPLE, `tuple_shapes` holds the elements and `dims` is empty."""

    element_type: PrimitiveType
    dims: tuple[int, ...] = ()
    layout: tuple[int, ...] | None = None
    tuple_shapes: tuple[Shape, ...] = ()

    def __post_init__(self) -> None:
        if any(d < 0 for d in self.dims):
            raise ShapeError(f"negative dimension in shape {self.dims}")
        if self.layout is not None and sorted(self.layout) != list(range(len(self.dims))):
            raise ShapeError(
                f"layout {{{','.join(map(str, self.layout))}}} is not a permutation of "
                f"the {len(self.dims)} dimensions of {self.element_type.value}{list(self.dims)}"
            )

    # --- construction -------------------------------------------------------------------
    @staticmethod
    def array(
        element_type: PrimitiveType, dims: Sequence[int], layout: Sequence[int] | None = None
    ) -> Shape:
        return Shape(element_type, tuple(int(d) for d in dims),
                     None if layout is None else tuple(layout))

    @staticmethod
    def tuple_of(elements: Sequence[Shape]) -> Shape:
        return Shape(PrimitiveType.TUPLE, (), None, tuple(elements))

    @staticmethod
    def token() -> Shape:
        return Shape(PrimitiveType.TOKEN)

    @staticmethod
    def scalar(element_type: PrimitiveType) -> Shape:
        return Shape(element_type, (), ())

    # --- queries ------------------------------------------------------------------------
    @property
    def is_tuple(self) -> bool:
        return self.element_type is PrimitiveType.TUPLE

    @property
    def is_token(self) -> bool:
        return self.element_type is PrimitiveType.TOKEN

    @property
    def is_array(self) -> bool:
        return self.element_type.is_array

    @property
    def rank(self) -> int:
        return len(self.dims)

    @property
    def num_elements(self) -> int:
        return math.prod(self.dims)

    @property
    def byte_size(self) -> int:
        """Bytes of a dense array of this shape (0 for tuples and tokens)."""
        return self.num_elements * self.element_type.byte_size if self.is_array else 0

    def leaves(self) -> list[Shape]:
        """The array (and token) shapes of a possibly nested tuple, in order."""
        if not self.is_tuple:
            return [self]
        return [leaf for s in self.tuple_shapes for leaf in s.leaves()]

    # --- layouts ------------------------------------------------------------------------
    def default_layout(self) -> tuple[int, ...]:
        return tuple(range(self.rank - 1, -1, -1))

    def with_default_layout(self) -> Shape:
        """This shape with major-to-minor layouts everywhere (recursively for tuples)."""
        if self.is_tuple:
            return Shape.tuple_of([s.with_default_layout() for s in self.tuple_shapes])
        if not self.is_array:
            return self
        return Shape(self.element_type, self.dims, self.default_layout())

    def with_missing_layouts(self) -> Shape:
        """This shape with default layouts where none is set (recursively); others kept."""
        if self.is_tuple:
            return Shape.tuple_of([s.with_missing_layouts() for s in self.tuple_shapes])
        if not self.is_array or self.layout is not None:
            return self
        return Shape(self.element_type, self.dims, self.default_layout())

    def without_layout(self) -> Shape:
        if self.is_tuple:
            return Shape.tuple_of([s.without_layout() for s in self.tuple_shapes])
        return Shape(self.element_type, self.dims)

    def with_element_type(self, element_type: PrimitiveType) -> Shape:
        return Shape(element_type, self.dims, self.layout)

    def with_dims(self, dims: Sequence[int]) -> Shape:
        """Same element type, new dims, default layout if this shape had a layout."""
        dims = tuple(int(d) for d in dims)
        layout = None if self.layout is None else tuple(range(len(dims) - 1, -1, -1))
        return Shape(self.element_type, dims, layout)

    def compatible(self, other: Shape) -> bool:
        """Equal element types and dimensions (recursively), layouts ignored."""
        if self.element_type is not other.element_type:
            return False
        if self.is_tuple:
            return len(self.tuple_shapes) == len(other.tuple_shapes) and all(
                a.compatible(b) for a, b in zip(self.tuple_shapes, other.tuple_shapes, strict=True)
            )
        return self.dims == other.dims

    # --- text -------------------------------------------------------------------------------
    def to_text(self, with_layout: bool = True) -> str:
        """XLA's text form: `f32[2,3]{1,0}`, `(f32[], s32[4]{0})`, `token[]`."""
        if self.is_tuple:
            inner = ", ".join(s.to_text(with_layout) for s in self.tuple_shapes)
            return f"({inner})"
        text = f"{self.element_type.value}[{','.join(map(str, self.dims))}]"
        if with_layout and self.is_array and self.layout is not None and self.rank > 0:
            text += "{" + ",".join(map(str, self.layout)) + "}"
        return text

    def __str__(self) -> str:
        return self.to_text()


@dataclass(frozen=True, slots=True)
class ProgramShape:
    """The signature of a computation: parameter shapes and result shape."""

    parameters: tuple[Shape, ...]
    result: Shape

    def to_text(self) -> str:
        return f"({', '.join(p.to_text() for p in self.parameters)})->{self.result.to_text()}"

    def __str__(self) -> str:
        return self.to_text()
