"""Attribute value types of HLO instructions, and the schema kinds used by the opcode table.

Each `AttrKind` names one textual syntax of XLA's HLO format; the parser and printer each
have one table keyed by `AttrKind`. Structured values (windows, slices, padding,
convolution dimension labels) are small frozen dataclasses defined here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class AttrKind(enum.Enum):
    """Textual syntax of an attribute value; the example is how XLA prints it."""

    INT = "int"                    # index=3
    INTS = "ints"                  # dimensions={1,0}
    FLOAT = "float"                # epsilon=0.001
    BOOL = "bool"                  # is_stable=true
    ENUM = "enum"                  # direction=LT, fft_type=RFFT, algorithm=rng_three_fry
    STRING = "string"              # custom_call_target="foo" (quoted in text)
    COMPUTATION = "computation"    # to_apply=region_0.1
    COMPUTATIONS = "computations"  # branch_computations={a, b}
    WINDOW = "window"              # window={size=3x3 stride=2x2 pad=1_1x1_1 rhs_dilate=2x2}
    SLICE = "slice"                # slice={[0:2], [1:5:2]}
    PADDING = "padding"            # padding=1_-1_1x0_0
    DIM_LABELS = "dim_labels"      # dim_labels=b01f_01io->b01f
    RAW = "raw"                    # metadata={...}, sharding={...}: kept verbatim
    INTS_LIST = "ints_list"        # replica_groups={{0,1},{2,3}}
    LITERAL = "literal"            # constant({ {1, 2}, {3, 4} }): an ndarray (or tuple of them)


class Required(enum.Enum):
    """Marker default: the attribute must be given."""

    YES = "required"


REQUIRED = Required.YES


@dataclass(frozen=True, slots=True)
class AttrSpec:
    """One attribute of an opcode: its text name, syntax and default (REQUIRED if none)."""

    name: str
    kind: AttrKind
    default: Any = None  # None = optional and absent unless given; REQUIRED = must be given
    choices: tuple[str, ...] = ()  # allowed spellings for ENUM kinds (empty = any)
    always_print: bool = False  # XLA prints it even at its default (topk's largest=true)


# --- structured values ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowDim:
    size: int
    stride: int = 1
    padding_low: int = 0
    padding_high: int = 0
    window_dilation: int = 1  # rhs_dilate
    base_dilation: int = 1  # lhs_dilate
    window_reversal: bool = False  # rhs_reversal


@dataclass(frozen=True, slots=True)
class Window:
    dims: tuple[WindowDim, ...]


@dataclass(frozen=True, slots=True)
class SliceDim:
    start: int
    limit: int
    stride: int = 1


@dataclass(frozen=True, slots=True)
class PadDim:
    low: int
    high: int
    interior: int = 0


@dataclass(frozen=True, slots=True)
class PaddingConfig:
    dims: tuple[PadDim, ...]


@dataclass(frozen=True, slots=True)
class ConvDimLabels:
    """Convolution dimension numbers, as in `dim_labels=b01f_01io->b01f`.

    Spatial dimensions are listed in spatial order (0, 1, 2, ...); each entry is the
    position of that logical dimension in the operand/kernel/result shape.
    """

    input_batch: int
    input_feature: int
    input_spatial: tuple[int, ...]
    kernel_input_feature: int
    kernel_output_feature: int
    kernel_spatial: tuple[int, ...]
    output_batch: int
    output_feature: int
    output_spatial: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Raw:
    """An attribute value kept verbatim (metadata, sharding, backend_config, ...)."""

    text: str
