"""llvmlite helpers shared by the CPU and GPU backends: types, loops, indices, arrays."""

from backends.llvm.index import IrIndex
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import (
    const,
    for_range,
    i64,
    if_else,
    if_then,
    llvm_type,
    loop_nest,
    storage_type,
)

__all__ = [
    "IrArray", "IrIndex", "const", "for_range", "i64", "if_else", "if_then", "llvm_type",
    "loop_nest", "storage_type",
]
