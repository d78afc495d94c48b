"""Target-independent HLO passes, one per file; `compiler/pipelines.py` orders them.

Each pass has a short stable `name` (used by pass filters, dumps and the CLI) and
`run(module) -> bool`. Public surface below.
"""

from compiler.passes.algebraic_simplifier import AlgebraicSimplifier, AlgsimpOptions
from compiler.passes.buffer_assignment import BufferAssignmentPass, assign_buffers
from compiler.passes.buffers import BufferAssignment
from compiler.passes.call_inliner import CallInliner
from compiler.passes.conditional_simplifier import ConditionalSimplifier
from compiler.passes.constant_folding import ConstantFolding, FoldingOptions
from compiler.passes.copy_insertion import CopyInsertion
from compiler.passes.cse import CommonSubexpressionElimination
from compiler.passes.dce import DeadCodeElimination
from compiler.passes.expanders import BatchNormExpander, BatchNormOptions
from compiler.passes.fusion import FusionOptions, InstructionFusion
from compiler.passes.layout_assignment import LayoutAssignment, LayoutOptions
from compiler.passes.reshape_transpose import ReshapeTransposeCanonicalizer
from compiler.passes.tuple_simplifier import TupleSimplifier
from compiler.passes.while_loop_simplifier import WhileLoopSimplifier

__all__ = [
    "AlgebraicSimplifier", "AlgsimpOptions", "BatchNormExpander", "BatchNormOptions",
    "BufferAssignment", "BufferAssignmentPass", "CallInliner", "CommonSubexpressionElimination",
    "ConditionalSimplifier", "ConstantFolding", "CopyInsertion", "DeadCodeElimination",
    "FoldingOptions", "FusionOptions", "InstructionFusion", "LayoutAssignment", "LayoutOptions",
    "ReshapeTransposeCanonicalizer", "TupleSimplifier", "WhileLoopSimplifier", "assign_buffers",
]
