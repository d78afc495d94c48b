"""The HLO IR: types, shapes, opcodes, instructions, text format, verifier and evaluator.

Imports only numpy, ml_dtypes and lark. Public surface below; everything else is internal.
"""

from hlo.attributes import (
    AttrKind,
    ConvDimLabels,
    PadDim,
    PaddingConfig,
    Raw,
    SliceDim,
    Window,
    WindowDim,
)
from hlo.builder import ComputationBuilder, DotDimensionNumbers
from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType
from hlo.errors import (
    ArgumentError,
    CompileError,
    EvaluationError,
    HloParseError,
    HloVerificationError,
    ImportGraphError,
    InternalError,
    ShapeError,
    TfcompileError,
    UnsupportedOpError,
)
from hlo.evaluator import evaluate
from hlo.instruction import HloInstruction, infer_shape
from hlo.module import HloModule
from hlo.opcodes import OPS, Opcode, OpDef, Trait
from hlo.parser import parse
from hlo.printer import to_text
from hlo.shape import ProgramShape, Shape
from hlo.verifier import verify

__all__ = [
    "OPS",
    "ArgumentError",
    "AttrKind",
    "CompileError",
    "ComputationBuilder",
    "ConvDimLabels",
    "DotDimensionNumbers",
    "EvaluationError",
    "HloComputation",
    "HloInstruction",
    "HloModule",
    "HloParseError",
    "HloVerificationError",
    "ImportGraphError",
    "InternalError",
    "OpDef",
    "Opcode",
    "PadDim",
    "PaddingConfig",
    "PrimitiveType",
    "ProgramShape",
    "Raw",
    "Shape",
    "ShapeError",
    "SliceDim",
    "TfcompileError",
    "Trait",
    "UnsupportedOpError",
    "Window",
    "WindowDim",
    "evaluate",
    "infer_shape",
    "parse",
    "to_text",
    "verify",
]
