"""An elementwise epilogue applied by the packed GEMM (backends/cpu/gemm.py) to C's final
values while they are in registers, so an output fusion's result (bias, activation,
residual: backends/cpu/fused_expression.py) is stored once, with no pass over C after it.

The GEMM knows nothing of HLO: the expression is anything with `pointers()` (the buffers it
reads, as values of the caller's function) and `bind(b, pointers)` (its code at b, as a
function of (output index, C's value there)). `GemmEpilogue` says how C's (batch, row,
column) map to the output's index; `EpilogueEmitter` emits it inside a macro kernel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from llvmlite import ir

from backends.llvm.index import IrIndex, delinearize
from backends.llvm.irutil import i64, map_lanes, nowrap_add, nowrap_mul

# (index of one output element, C's final value there) -> the value stored.
Finish = Callable[[IrIndex, ir.Value | None], ir.Value]


class ElementExpression(Protocol):
    """An elementwise expression of C's final values (a FusedExpression epilogue)."""

    def pointers(self) -> list[ir.Value]:
        """The buffers it reads, as values of the function calling the GEMM."""

    def bind(self, b: ir.IRBuilder, pointers: Sequence[ir.Value]) -> Finish:
        """Its code at `b`, reading through `pointers` (`pointers()` in b's function)."""


@dataclass(frozen=True)
class GemmEpilogue:
    """What a product stores instead of C's final values: `expression` at the output index
    of (batch, row, column), the output being dense row-major over batch_dims + row_dims +
    col_dims (C itself, of the same element type)."""

    expression: ElementExpression
    batch_dims: tuple[int, ...]
    row_dims: tuple[int, ...]
    col_dims: tuple[int, ...]

    @property
    def dims(self) -> tuple[int, ...]:
        return self.batch_dims + self.row_dims + self.col_dims


class EpilogueEmitter:
    """The epilogue of one macro-kernel call: C's block starts at (`batch`, `row0`, `col0`).

    Index values are built once per tile row and per tile column and shared by the tile's
    elements, so the expression's loads that depend only on the column (a bias) are
    emitted once per tile (the expression memoises per index values and basic block).
    """

    def __init__(self, b: ir.IRBuilder, epilogue: GemmEpilogue, pointers: Sequence[ir.Value],
                 origin: tuple[ir.Value, ir.Value, ir.Value]) -> None:
        self.b = b
        self.epilogue = epilogue
        self.finish = epilogue.expression.bind(b, pointers)
        batch, self.row0, self.col0 = origin
        self.batch_values = delinearize(b, batch, epilogue.batch_dims)
        self.columns = math.prod(epilogue.col_dims)
        # Rows of all batch elements before this one: C's linear offset is (that + row) * N.
        self.batch_rows = nowrap_mul(b, batch, i64(math.prod(epilogue.row_dims)))

    def column(self, n: ir.Value) -> tuple[ir.Value, list[ir.Value]]:
        """Column n of the block: its column in C and its output index values."""
        col = nowrap_add(self.b, self.col0, n)
        return col, delinearize(self.b, col, self.epilogue.col_dims)

    def row(self, m: ir.Value) -> tuple[ir.Value, list[ir.Value]]:
        """Row m of the block: the linear offset of its first element in C and its index
        values (batch included)."""
        b = self.b
        row = nowrap_add(b, self.row0, m)
        base = nowrap_mul(b, nowrap_add(b, self.batch_rows, row), i64(self.columns))
        return base, [*self.batch_values, *delinearize(b, row, self.epilogue.row_dims)]

    def apply(self, row: tuple[ir.Value, list[ir.Value]], column: tuple[ir.Value, list[ir.Value]],
              value: ir.Value) -> ir.Value:
        """The value stored for C's final `value` at (row, column)."""
        (base, row_values), (col, col_values) = row, column
        index = IrIndex([*row_values, *col_values], self.epilogue.dims,
                        nowrap_add(self.b, base, col))
        return self.finish(index, value)

    def tile(self, values: list[list[ir.Value]], m0: ir.Value, n0: ir.Value,
             lanes: int) -> list[list[ir.Value]]:
        """A full tile's vectors (rows of vectors of `lanes`) at block row m0, column n0
        through the expression, lane by lane (LLVM's SLP vectoriser turns the lanes back
        into vector operations)."""
        b = self.b
        width = len(values[0]) * lanes
        columns = [self.column(nowrap_add(b, n0, i64(j))) for j in range(width)]
        rows = [self.row(nowrap_add(b, m0, i64(r))) for r in range(len(values))]
        return map_lanes(b, values, lanes, lambda r, j, x: self.apply(rows[r], columns[j], x))
