"""Unit and property tests of the shape rules (hlo/shape_inference.py) through `infer_shape`.

Valid cases are XLA-style examples (many taken from the corpus); invalid cases assert a
ShapeError whose message names the op and the broken rule. The hypothesis test feeds every
opcode random shapes and attribute values and requires a Shape or a ShapeError, nothing else.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hlo import shape_inference as si
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
from hlo.dtypes import PrimitiveType
from hlo.errors import ShapeError
from hlo.instruction import infer_shape
from hlo.opcodes import OPS, Opcode
from hlo.shape import ProgramShape, Shape

O = Opcode
T = PrimitiveType

# --- a tiny shape-text reader for readable tables ----------------------------------------

_ARRAY = re.compile(r"([a-z0-9]+)\[([0-9,]*)\](?:\{([0-9,]*)\})?")


def sh(text: str) -> Shape:
    """`f32[2,3]`, `f32[2,3]{0,1}`, `(f32[], s32[4])`, `token[]` -> Shape."""
    shape, rest = _read(text.strip())
    assert not rest.strip(), text
    return shape


def _read(text: str) -> tuple[Shape, str]:
    if text.startswith("("):
        elements, text = [], text[1:].lstrip()
        while not text.startswith(")"):
            element, text = _read(text)
            elements.append(element)
            text = text.lstrip().removeprefix(",").lstrip()
        return Shape.tuple_of(elements), text[1:]
    m = _ARRAY.match(text)
    assert m, text
    t = T(m.group(1))
    if t is T.TOKEN:
        return Shape.token(), text[m.end() :]
    dims = [int(d) for d in m.group(2).split(",") if d]
    layout = None if m.group(3) is None else [int(d) for d in m.group(3).split(",") if d]
    return Shape.array(t, dims, layout), text[m.end() :]


def prog(text: str) -> ProgramShape:
    """`(f32[], f32[])->f32[]` -> ProgramShape."""
    params, result = text.rsplit("->", 1)
    return ProgramShape(sh(params).tuple_shapes, sh(result))


def win(spec: str) -> Window:
    """`size=3x3 stride=2x2 pad=1_1x0_0 lhs_dilate=1x1 rhs_dilate=2x2` -> Window."""
    fields = dict(item.split("=") for item in spec.split())
    n = len(fields["size"].split("x"))

    def ints(key: str, default: int) -> list[int]:
        return [int(v) for v in fields[key].split("x")] if key in fields else [default] * n

    pads = [p.split("_") for p in fields["pad"].split("x")] if "pad" in fields else [["0", "0"]] * n
    return Window(
        tuple(
            WindowDim(
                size=s,
                stride=st_,
                padding_low=int(lo),
                padding_high=int(hi),
                base_dilation=ld,
                window_dilation=rd,
            )
            for s, st_, (lo, hi), ld, rd in zip(
                ints("size", 1),
                ints("stride", 1),
                pads,
                ints("lhs_dilate", 1),
                ints("rhs_dilate", 1),
                strict=True,
            )
        )
    )


def labels(text: str) -> ConvDimLabels:
    """`b01f_01io->b01f` -> ConvDimLabels (as XLA's parser reads dim_labels)."""
    lhs, rest = text.split("_")
    rhs, out = rest.split("->")

    def spatial(s: str) -> tuple[int, ...]:
        digits = sorted((c, i) for i, c in enumerate(s) if c.isdigit())
        return tuple(i for _, i in digits)

    return ConvDimLabels(
        lhs.index("b"),
        lhs.index("f"),
        spatial(lhs),
        rhs.index("i"),
        rhs.index("o"),
        spatial(rhs),
        out.index("b"),
        out.index("f"),
        spatial(out),
    )


def infer(op: Opcode, operands: str, declared: str | None = None, **attrs: Any) -> Shape:
    shapes = [sh(s) for s in _split(operands)] if operands else []
    return infer_shape(op, shapes, attrs, None if declared is None else sh(declared))


def _split(text: str) -> list[str]:
    """Split a `;`-separated operand list."""
    return [s for s in (p.strip() for p in text.split(";")) if s]


SUM = prog("(f32[], f32[])->f32[]")
SUM_S32 = prog("(s32[], s32[])->s32[]")
LT = prog("(f32[], f32[])->pred[]")
ARGMAX = prog("(f32[], s32[], f32[], s32[])->(f32[], s32[])")
NHWC = labels("b01f_01io->b01f")


# --- valid cases: (opcode, operands, declared, attrs, expected) ---------------------------

# fmt: off
VALID: list[tuple[Opcode, str, str | None, dict[str, Any], str]] = [
    # elementwise
    (O.EXPONENTIAL, "f32[4]{0}", None, {}, "f32[4]"),
    (O.TANH, "c64[2,3]", None, {}, "c64[2,3]"),
    (O.FLOOR, "bf16[3]", None, {}, "bf16[3]"),
    (O.ABS, "s32[4]", None, {}, "s32[4]"),
    (O.ABS, "c64[4]", None, {}, "f32[4]"),
    (O.ABS, "c128[]", None, {}, "f64[]"),
    (O.REAL, "c128[2]", None, {}, "f64[2]"),
    (O.IMAG, "f32[2]", None, {}, "f32[2]"),
    (O.IS_FINITE, "f16[2,2]", None, {}, "pred[2,2]"),
    (O.NEGATE, "u8[3]", None, {}, "u8[3]"),
    (O.SIGN, "f64[]", None, {}, "f64[]"),
    (O.NOT, "pred[4]", None, {}, "pred[4]"),
    (O.NOT, "u32[4]", None, {}, "u32[4]"),
    (O.POPCNT, "s32[12]", None, {}, "s32[12]"),
    (O.CLZ, "u64[1]", None, {}, "u64[1]"),
    (O.COPY, "(f32[2], token[])", None, {}, "(f32[2], token[])"),
    (O.OPTIMIZATION_BARRIER, "(f32[2]{0}, s32[])", None, {}, "(f32[2], s32[])"),
    (O.ADD, "f32[2,3]{1,0}; f32[2,3]{0,1}", None, {}, "f32[2,3]"),
    (O.MAXIMUM, "pred[4]; pred[4]", None, {}, "pred[4]"),
    (O.DIVIDE, "s32[4]; s32[4]", None, {}, "s32[4]"),
    (O.ATAN2, "f32[3]; f32[3]", None, {}, "f32[3]"),
    (O.SHIFT_LEFT, "u32[3]; u32[3]", None, {}, "u32[3]"),
    (O.XOR, "pred[]; pred[]", None, {}, "pred[]"),
    (O.AND, "s8[2]; s8[2]", None, {}, "s8[2]"),
    (O.COMPLEX, "f32[4]; f32[4]", None, {}, "c64[4]"),
    (O.COMPLEX, "f64[]; f64[]", None, {}, "c128[]"),
    (O.COMPARE, "f32[4]; f32[4]", None, {"direction": "LT"}, "pred[4]"),
    (O.COMPARE, "f32[4]; f32[4]", None, {"direction": "LT", "type": "TOTALORDER"}, "pred[4]"),
    (O.COMPARE, "u32[]; u32[]", None, {"direction": "GE", "type": "UNSIGNED"}, "pred[]"),
    (O.SELECT, "pred[4]; f32[4]; f32[4]", None, {}, "f32[4]"),
    (O.SELECT, "pred[]; s32[2,2]; s32[2,2]", None, {}, "s32[2,2]"),
    (O.CLAMP, "f32[]; f32[4]; f32[]", None, {}, "f32[4]"),
    (O.CLAMP, "s32[4]; s32[4]; s32[4]", None, {}, "s32[4]"),
    (O.CONVERT, "f32[2,3]", "s32[2,3]{1,0}", {}, "s32[2,3]"),
    (O.CONVERT, "pred[3]", "bf16[3]", {}, "bf16[3]"),
    (O.BITCAST_CONVERT, "f32[6]", "s32[6]", {}, "s32[6]"),
    (O.BITCAST_CONVERT, "u64[2]", "u32[2,2]", {}, "u32[2,2]"),
    (O.BITCAST_CONVERT, "u32[3,2]", "f64[3]", {}, "f64[3]"),
    (O.REDUCE_PRECISION, "f32[12]", None, {"exponent_bits": 5, "mantissa_bits": 10}, "f32[12]"),
    # leaves
    (O.CONSTANT, "", "s32[2]{0}", {"literal": np.array([1, 2], np.int32)}, "s32[2]"),
    (O.CONSTANT, "", "(f32[], pred[2])",
     {"literal": (np.float32(1.0) * np.ones((), np.float32), np.zeros(2, bool))},
     "(f32[], pred[2])"),
    (O.PARAMETER, "", "(f32[2], s32[])", {"parameter_number": 0}, "(f32[2], s32[])"),
    (O.IOTA, "", "s32[2,3]", {"iota_dimension": 1}, "s32[2,3]"),
    (O.REPLICA_ID, "", None, {}, "u32[]"),
    (O.PARTITION_ID, "", "u32[]", {}, "u32[]"),
    (O.RNG, "f32[]; f32[]", "f32[3,4]", {"distribution": "rng_normal"}, "f32[3,4]"),
    (O.RNG, "s32[]; s32[]", "s32[5]", {"distribution": "rng_uniform"}, "s32[5]"),
    (O.CUSTOM_CALL, "f32[4]", "(f32[4], s32[])", {"custom_call_target": "foo"}, "(f32[4], s32[])"),
    # movement
    (O.BITCAST, "f32[2,3]", "f32[6]", {}, "f32[6]"),
    (O.BITCAST, "f32[4]", "s32[2,2]", {}, "s32[2,2]"),
    (O.BROADCAST, "f32[3]", "f32[2,3]", {"dimensions": (1,)}, "f32[2,3]"),
    (O.BROADCAST, "f32[]", "f32[2,3]", {"dimensions": ()}, "f32[2,3]"),
    (O.BROADCAST, "s32[3,2]", "s32[2,4,3]", {"dimensions": (2, 0)}, "s32[2,4,3]"),
    (O.RESHAPE, "f32[2,3]", "f32[3,2]", {}, "f32[3,2]"),
    (O.RESHAPE, "f32[1]", "f32[]", {}, "f32[]"),
    (O.TRANSPOSE, "f32[2,3,4]", None, {"dimensions": (2, 0, 1)}, "f32[4,2,3]"),
    (O.REVERSE, "f32[2,3]", None, {"dimensions": (1, 0)}, "f32[2,3]"),
    (O.SLICE, "f32[32,32]", None, {"slice": (SliceDim(0, 16), SliceDim(0, 16))}, "f32[16,16]"),
    (O.SLICE, "f32[10]", None, {"slice": (SliceDim(1, 10, 3),)}, "f32[3]"),
    (O.SLICE, "f32[10]", None, {"slice": (SliceDim(4, 4),)}, "f32[0]"),
    (O.DYNAMIC_SLICE, "f32[8,8]; s32[]; s32[]", None, {"dynamic_slice_sizes": (2, 4)}, "f32[2,4]"),
    (O.DYNAMIC_UPDATE_SLICE, "f32[8,8]; f32[2,8]; u32[]; u32[]", None, {}, "f32[8,8]"),
    (O.CONCATENATE, "f32[2,3]; f32[4,3]; f32[0,3]", None, {"dimensions": (0,)}, "f32[6,3]"),
    (O.PAD, "f32[3]; f32[]", None, {"padding": PaddingConfig((PadDim(1, -1, 2),))}, "f32[7]"),
    (O.PAD, "f32[0,2]; f32[]", None,
     {"padding": PaddingConfig((PadDim(1, 1, 5), PadDim(-2, 0, 0)))}, "f32[2,0]"),
    (O.GATHER, "f32[5,3]; s32[4,1]", None,
     dict(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,), index_vector_dim=1,
     slice_sizes=(1, 3)), "f32[4,3]"),
    (O.GATHER, "f32[3,5]; s32[4,1]", None,
     dict(offset_dims=(0,), collapsed_slice_dims=(1,), start_index_map=(1,), index_vector_dim=1,
     slice_sizes=(3, 1)), "f32[3,4]"),
    # take_along_axis (batching dims)
    (O.GATHER, "f32[3,4]; s32[3,2,1]", None,
     dict(offset_dims=(), collapsed_slice_dims=(1,), start_index_map=(1,),
     operand_batching_dims=(0,), start_indices_batching_dims=(0,), index_vector_dim=2,
     slice_sizes=(1, 1)), "f32[3,2]"),
    # implicit trailing index vector dim
    (O.GATHER, "f32[6,7]; s32[2,3]", None,
     dict(offset_dims=(2,), collapsed_slice_dims=(0,), start_index_map=(0,), index_vector_dim=2,
     slice_sizes=(1, 7)), "f32[2,3,7]"),
    (O.SCATTER, "f32[5,3]; s32[2,1]; f32[2,3]", None,
     dict(update_window_dims=(1,), inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0,),
     index_vector_dim=1, to_apply=SUM), "f32[5,3]"),
    (O.SCATTER, "f32[6]; s32[4,1]; f32[4]", None,
     dict(update_window_dims=(), inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0,),
     index_vector_dim=1, to_apply=SUM), "f32[6]"),
    (O.SCATTER, "f32[3,4]; s32[3,4]; s32[3,4,1]; f32[3,4]; s32[3,4]", None,
     dict(update_window_dims=(), inserted_window_dims=(1,), scatter_dims_to_operand_dims=(1,),
     input_batching_dims=(0,), scatter_indices_batching_dims=(0,), index_vector_dim=2,
     to_apply=ARGMAX), "(f32[3,4], s32[3,4])"),
    # reductions, windows, sort
    (O.REDUCE, "f32[2,3]; f32[]", None, {"dimensions": (1,), "to_apply": SUM}, "f32[2]"),
    (O.REDUCE, "f32[2,3,4]; f32[]", None, {"dimensions": (0, 2), "to_apply": SUM}, "f32[3]"),
    (O.REDUCE, "f32[4,5]; s32[4,5]; f32[]; s32[]", None, {"dimensions": (1,), "to_apply": ARGMAX},
     "(f32[4], s32[4])"),
    (O.REDUCE_WINDOW, "f32[2,8,8,4]; f32[]", None,
     {"window": win("size=1x2x2x1 stride=1x2x2x1"), "to_apply": SUM}, "f32[2,4,4,4]"),
    # cumsum
    (O.REDUCE_WINDOW, "f32[3,6]; f32[]", None,
     {"window": win("size=1x6 pad=0_0x5_0"), "to_apply": SUM}, "f32[3,6]"),
    (O.REDUCE_WINDOW, "f32[5]; f32[]", None,
     {"window": win("size=3 stride=2 lhs_dilate=2 rhs_dilate=2"), "to_apply": SUM}, "f32[3]"),
    (O.REDUCE_WINDOW, "f32[4]; s32[4]; f32[]; s32[]", None,
     {"window": win("size=2 stride=2"), "to_apply": ARGMAX}, "(f32[2], s32[2])"),
    (O.SELECT_AND_SCATTER, "f32[1,4,4,2]; f32[1,2,2,2]; f32[]", None,
     {"window": win("size=1x2x2x1 stride=1x2x2x1"), "select": prog("(f32[], f32[])->pred[]"),
     "scatter": SUM}, "f32[1,4,4,2]"),
    (O.SORT, "f32[4,6]", None, {"dimensions": (1,), "is_stable": True, "to_apply": LT}, "f32[4,6]"),
    (O.SORT, "f32[5]; s32[5]", None,
     {"dimensions": (0,), "to_apply": prog("(f32[], f32[], s32[], s32[])->pred[]")},
     "(f32[5], s32[5])"),
    (O.TOPK, "f32[5,8]", None, {"k": 3}, "(f32[5,3], s32[5,3])"),
    # linear algebra
    (O.DOT, "f32[2,3]; f32[3,4]", None,
     {"lhs_contracting_dims": (1,), "rhs_contracting_dims": (0,)}, "f32[2,4]"),
    (O.DOT, "f32[3,2,4]; f32[3,4,5]", None,
     dict(lhs_batch_dims=(0,), lhs_contracting_dims=(2,), rhs_batch_dims=(0,),
     rhs_contracting_dims=(1,)), "f32[3,2,5]"),
    (O.DOT, "f32[5]; f32[5]", None, {"lhs_contracting_dims": (0,), "rhs_contracting_dims": (0,)},
     "f32[]"),
    (O.DOT, "f32[2,3]; f32[4]", None, {}, "f32[2,3,4]"),  # outer product
    (O.DOT, "s8[2,3]; s8[3]", "s32[2]",
     {"lhs_contracting_dims": (1,), "rhs_contracting_dims": (0,)}, "s32[2]"),
    (O.DOT, "bf16[2,3]; f32[3]", "f32[2]",
     {"lhs_contracting_dims": (1,), "rhs_contracting_dims": (0,)}, "f32[2]"),
    (O.CONVOLUTION, "f32[2,8,8,3]; f32[3,3,3,4]", None,
     {"window": win("size=3x3 pad=1_1x1_1"), "dim_labels": NHWC}, "f32[2,8,8,4]"),
    # NCHW, VALID, stride 2
    (O.CONVOLUTION, "f32[1,3,8,8]; f32[3,3,3,3]", None,
     {"window": win("size=3x3 stride=2x2"), "dim_labels": labels("bf01_oi01->bf01")},
     "f32[1,3,3,3]"),
    (O.CONVOLUTION, "f32[1,5,5,3]; f32[3,3,3,3]", None,
     {"window": win("size=3x3 pad=2_2x1_1 rhs_dilate=2x2"), "dim_labels": NHWC}, "f32[1,5,3,3]"),
    # transposed conv
    (O.CONVOLUTION, "f32[1,4,4,2]; f32[3,3,2,2]", None,
     {"window": win("size=3x3 pad=2_1x2_1 lhs_dilate=2x2"), "dim_labels": NHWC}, "f32[1,8,8,2]"),
    # depthwise
    (O.CONVOLUTION, "f32[2,5,5,4]; f32[3,3,1,4]", None,
     {"window": win("size=3x3 pad=1_1x1_1"), "dim_labels": NHWC, "feature_group_count": 4},
     "f32[2,5,5,4]"),
    # weight gradient
    (O.CONVOLUTION, "f32[4,6,6,3]; f32[4,6,6,6]", None,
     {"window": win("size=6x6"), "dim_labels": labels("f01b_i01o->01bf"), "batch_group_count": 1},
     "f32[1,1,3,6]"),
    # no spatial dims, batch groups
    (O.CONVOLUTION, "f32[4,2]; f32[2,6]", None,
     {"dim_labels": labels("bf_io->bf"), "batch_group_count": 2}, "f32[2,6]"),
    (O.CONVOLUTION, "s8[1,4,1]; s8[2,1,3]", "s32[1,3,3]",
     {"window": win("size=2"), "dim_labels": labels("b0f_0io->b0f")}, "s32[1,3,3]"),
    (O.FFT, "f32[3,8]", None, {"fft_type": "RFFT", "fft_length": (8,)}, "c64[3,5]"),
    (O.FFT, "c64[3,5]", None, {"fft_type": "IRFFT", "fft_length": (8,)}, "f32[3,8]"),
    (O.FFT, "c128[2,4,4]", None, {"fft_type": "IFFT", "fft_length": (4, 4)}, "c128[2,4,4]"),
    (O.FFT, "f64[4,6]", None, {"fft_type": "RFFT", "fft_length": (4, 6)}, "c128[4,4]"),
    (O.CHOLESKY, "f32[2,4,4]", None, {"lower": True}, "f32[2,4,4]"),
    (O.TRIANGULAR_SOLVE, "f32[4,4]; f32[4,2]", None, {"left_side": True}, "f32[4,2]"),
    (O.TRIANGULAR_SOLVE, "c64[3,3]; c64[5,3]", None, {"transpose_a": "ADJOINT"}, "c64[5,3]"),
    (O.BATCH_NORM_TRAINING, "f32[2,4,4,3]; f32[3]; f32[3]", None,
     {"epsilon": 0.001, "feature_index": 3}, "(f32[2,4,4,3], f32[3], f32[3])"),
    (O.BATCH_NORM_INFERENCE, "f32[2,3]; f32[3]; f32[3]; f32[3]; f32[3]", None,
     {"epsilon": 1e-5, "feature_index": 1}, "f32[2,3]"),
    (O.BATCH_NORM_GRAD, "f32[2,3]; f32[3]; f32[3]; f32[3]; f32[2,3]", None,
     {"epsilon": 1e-5, "feature_index": 1}, "(f32[2,3], f32[3], f32[3])"),
    # tuples, calls, control flow
    (O.TUPLE, "f32[2]{0}; (s32[], token[])", None, {}, "(f32[2], (s32[], token[]))"),
    (O.TUPLE, "", None, {}, "()"),
    (O.GET_TUPLE_ELEMENT, "(f32[2], s32[])", None, {"index": 1}, "s32[]"),
    (O.AFTER_ALL, "token[]; token[]", None, {}, "token[]"),
    (O.AFTER_ALL, "", None, {}, "token[]"),
    (O.CALL, "f32[2]; f32[2]", None, {"to_apply": prog("(f32[2], f32[2])->f32[2]{0}")}, "f32[2]"),
    (O.FUSION, "f32[2]", None, {"kind": "kLoop", "calls": prog("(f32[2])->(f32[2], f32[])")},
     "(f32[2], f32[])"),
    (O.MAP, "f32[3,4]; f32[3,4]", None, {"dimensions": (0, 1), "to_apply": SUM}, "f32[3,4]"),
    (O.MAP, "f32[3]", None, {"to_apply": prog("(f32[])->pred[]")}, "pred[3]"),
    (O.WHILE, "(s32[], f32[4])", None,
     {"condition": prog("((s32[], f32[4]))->pred[]"),
     "body": prog("((s32[], f32[4]))->(s32[], f32[4])")}, "(s32[], f32[4])"),
    (O.CONDITIONAL, "pred[]; f32[3]; s32[]", None,
     {"true_computation": prog("(f32[3])->f32[2]"), "false_computation": prog("(s32[])->f32[2]")},
     "f32[2]"),
    (O.CONDITIONAL, "s32[]; f32[3]; f32[3]; f32[3]", None,
     {"branch_computations": (prog("(f32[3])->f32[3]"),) * 3}, "f32[3]"),
    (O.CONDITIONAL, "pred[]; f32[3]; f32[3]", None,
     {"branch_computations": (prog("(f32[3])->f32[3]"),) * 2}, "f32[3]"),
    (O.ALL_REDUCE, "f32[4]", None, {"to_apply": SUM}, "f32[4]"),
    (O.ALL_REDUCE, "f32[4]; s32[]", None, {"to_apply": SUM}, "(f32[4], s32[])"),
    (O.CROSS_REPLICA_SUM, "f32[4]", None, {}, "f32[4]"),
    (O.RNG_BIT_GENERATOR, "u64[2]", "(u64[2], u32[5])", {"algorithm": "rng_three_fry"},
     "(u64[2], u32[5])"),
]
# fmt: on


# Every opcode of a plain elementwise family, on an element type its rule accepts.
_TYPE_BY_RULE = {
    si.unary_float: "f32",
    si.unary_real_float: "f32",
    si.unary_integer: "s32",
    si.unary_numeric: "s16",
    si.unary_logical: "u8",
    si.binary_numeric: "f16",
    si.binary_arithmetic: "s64",
    si.binary_float: "f64",
    si.binary_integer: "u16",
    si.binary_logical: "pred",
}
VALID += [
    (op, "; ".join([f"{t}[2,3]"] * (OPS[op].arity or 0)), None, {}, f"{t}[2,3]")
    for op in Opcode
    for t in [_TYPE_BY_RULE.get(OPS[op].shape_rule)]
    if t is not None
]


@pytest.mark.parametrize(
    ("op", "operands", "declared", "attrs", "expected"),
    VALID,
    ids=[f"{c[0].value}-{i}" for i, c in enumerate(VALID)],
)
def test_valid(
    op: Opcode, operands: str, declared: str | None, attrs: dict[str, Any], expected: str
) -> None:
    result = infer(op, operands, declared, **attrs)
    assert result.compatible(sh(expected)), result.to_text()
    if declared is None or op in (O.CONVERT, O.DOT, O.CONVOLUTION, O.BITCAST_CONVERT):
        # Inferred (not declared) results carry no layout.
        assert all(leaf.layout is None for leaf in result.leaves()), result.to_text()


def test_every_opcode_has_a_valid_example() -> None:
    assert {case[0] for case in VALID} == set(Opcode)


def test_declared_shape_keeps_its_layout() -> None:
    result = infer(O.RESHAPE, "f32[2,3]", "f32[3,2]{0,1}")
    assert result.layout == (0, 1)


# --- invalid cases: (opcode, operands, declared, attrs, words the message must contain) ----
# The first word names the op (or, for rules shared by several opcodes, the op family).

# fmt: off
INVALID: list[tuple[Opcode, str, str | None, dict[str, Any], tuple[str, ...]]] = [
    (O.EXPONENTIAL, "s32[4]", None, {}, ("unary", "floating-point or complex", "s32[4]")),
    (O.EXPONENTIAL, "(f32[4])", None, {}, ("unary", "must be an array")),
    (O.ABS, "u32[4]", None, {}, ("abs", "signed")),
    (O.ABS, "pred[4]", None, {}, ("abs", "signed")),
    (O.REAL, "s32[2]", None, {}, ("real/imag", "complex")),
    (O.IS_FINITE, "s32[2]", None, {}, ("is-finite", "floating-point")),
    (O.NEGATE, "pred[2]", None, {}, ("unary", "integer, floating-point or complex")),
    (O.NOT, "f32[2]", None, {}, ("not", "pred or integer")),
    (O.POPCNT, "f32[2]", None, {}, ("integer op", "integer")),
    (O.ADD, "f32[2]; f32[3]", None, {}, ("binary", "same dimensions", "f32[2], f32[3]")),
    (O.ADD, "f32[2]; f64[2]", None, {}, ("binary", "same element type")),
    (O.ADD, "f32[]; f32[2]", None, {}, ("binary", "same dimensions")),
    (O.ADD, "token[]; token[]", None, {}, ("binary", "must be an array")),
    (O.ATAN2, "s32[2]; s32[2]", None, {}, ("atan2", "floating-point")),
    (O.SHIFT_LEFT, "f32[2]; f32[2]", None, {}, ("shift", "integer")),
    (O.AND, "f32[2]; f32[2]", None, {}, ("and/or/xor", "pred or integer")),
    (O.COMPLEX, "f16[2]; f16[2]", None, {}, ("complex", "f32", "f64")),
    (O.COMPARE, "f32[2]; f32[2]", None, {}, ("compare", "missing attribute 'direction'")),
    (O.COMPARE, "f32[2]; f32[2]", None, {"direction": "XX"}, ("compare", "direction")),
    (O.COMPARE, "s32[2]; s32[2]", None, {"direction": "LT", "type": "FLOAT"},
     ("compare", "FLOAT", "s32")),
    (O.COMPARE, "f32[2]; s32[2]", None, {"direction": "LT"}, ("compare", "element type")),
    (O.SELECT, "s32[4]; f32[4]; f32[4]", None, {}, ("select", "pred")),
    (O.SELECT, "pred[3]; f32[4]; f32[4]", None, {}, ("select", "scalar")),
    (O.SELECT, "pred[4]; f32[4]; s32[4]", None, {}, ("select", "same shape")),
    (O.CLAMP, "f32[3]; f32[4]; f32[]", None, {}, ("clamp", "scalars")),
    (O.CLAMP, "s32[]; f32[4]; f32[]", None, {}, ("clamp", "element type")),
    (O.CONVERT, "f32[2]", None, {}, ("convert", "declared")),
    (O.CONVERT, "f32[2]", "s32[3]", {}, ("convert", "dimensions")),
    (O.CONVERT, "c64[2]", "f32[2]", {}, ("convert", "complex")),
    (O.BITCAST_CONVERT, "f32[3]", "f64[]", {}, ("bitcast-convert", "last dimension")),
    (O.BITCAST_CONVERT, "f32[2]", "c64[2]", {}, ("bitcast-convert", "complex")),
    (O.BITCAST_CONVERT, "f32[2]", None, {}, ("bitcast-convert", "declared")),
    (O.REDUCE_PRECISION, "f32[2]", None, {"exponent_bits": 0, "mantissa_bits": 1},
     ("reduce-precision", "exponent_bits")),
    (O.REDUCE_PRECISION, "s32[2]", None, {"exponent_bits": 5, "mantissa_bits": 1},
     ("reduce-precision", "floating-point")),
    (O.CONSTANT, "", None, {}, ("constant", "declared")),
    (O.CONSTANT, "", "s32[3]", {"literal": np.array([1, 2], np.int32)},
     ("constant", "does not match")),
    (O.CONSTANT, "", "f32[2]", {"literal": np.array([1, 2], np.int32)},
     ("constant", "does not match")),
    (O.PARAMETER, "", None, {"parameter_number": 0}, ("parameter", "declared")),
    (O.PARAMETER, "", "f32[]", {"parameter_number": -1}, ("parameter", "negative")),
    (O.PARAMETER, "", "f32[]", {"parameter_number": "0"}, ("parameter", "integer")),
    (O.IOTA, "", "s32[]", {"iota_dimension": 0}, ("iota", "rank >= 1")),
    (O.IOTA, "", "s32[2,3]", {"iota_dimension": 2}, ("iota", "out of range")),
    (O.IOTA, "", "pred[3]", {"iota_dimension": 0}, ("iota", "numeric")),
    (O.RNG, "f32[]; f32[]", "s32[3]", {"distribution": "rng_uniform"}, ("rng", "element type")),
    (O.RNG, "s32[]; s32[]", "s32[3]", {"distribution": "rng_normal"}, ("rng", "floating")),
    (O.RNG, "f32[2]; f32[]", "f32[3]", {"distribution": "rng_normal"}, ("rng", "scalar")),
    (O.CUSTOM_CALL, "f32[2]", None, {"custom_call_target": "x"}, ("custom-call", "declared")),
    (O.CUSTOM_CALL, "f32[2]", "f32[2]", {}, ("custom-call", "custom_call_target")),
    (O.BITCAST, "f32[2,3]", "f32[5]", {}, ("bitcast", "size")),
    (O.BROADCAST, "f32[3]", None, {"dimensions": (0,)}, ("broadcast", "declared")),
    (O.BROADCAST, "f32[3]", "f32[3,2]", {"dimensions": (1,)}, ("broadcast", "differs")),
    (O.BROADCAST, "f32[3]", "f32[2,3]", {"dimensions": (2,)}, ("broadcast", "out of range")),
    (O.BROADCAST, "f32[3]", "f32[2,3]", {"dimensions": ()}, ("broadcast", "one result dim")),
    (O.BROADCAST, "f32[3]", "s32[2,3]", {"dimensions": (1,)}, ("broadcast", "element type")),
    (O.RESHAPE, "f32[2,3]", "f32[5]", {}, ("reshape", "elements")),
    (O.RESHAPE, "f32[2,3]", "s32[6]", {}, ("reshape", "element type")),
    (O.RESHAPE, "f32[2,3]", None, {}, ("reshape", "declared")),
    (O.TRANSPOSE, "f32[2,3]", None, {"dimensions": (0, 0)}, ("transpose", "permutation")),
    (O.TRANSPOSE, "f32[2,3]", None, {"dimensions": 1}, ("transpose", "list of integers")),
    (O.REVERSE, "f32[2,3]", None, {"dimensions": (2,)}, ("reverse", "out of range")),
    (O.REVERSE, "f32[2,3]", None, {"dimensions": (1, 1)}, ("reverse", "repeats")),
    (O.SLICE, "f32[8]", None, {"slice": (SliceDim(2, 9),)}, ("slice", "limit")),
    (O.SLICE, "f32[8]", None, {"slice": (SliceDim(5, 2),)}, ("slice", "start")),
    (O.SLICE, "f32[8]", None, {"slice": (SliceDim(0, 2, 0),)}, ("slice", "stride")),
    (O.SLICE, "f32[8,2]", None, {"slice": (SliceDim(0, 2),)}, ("slice", "rank")),
    (O.SLICE, "f32[8]", None, {"slice": "0:2"}, ("slice", "start:limit:stride")),
    (O.DYNAMIC_SLICE, "f32[8,8]; s32[]", None, {"dynamic_slice_sizes": (2, 2)},
     ("dynamic-slice", "one start index per operand dim")),
    (O.DYNAMIC_SLICE, "f32[8]; f32[]", None, {"dynamic_slice_sizes": (2,)},
     ("dynamic-slice", "integers")),
    (O.DYNAMIC_SLICE, "f32[8]; s32[1]", None, {"dynamic_slice_sizes": (2,)},
     ("dynamic-slice", "scalar")),
    (O.DYNAMIC_SLICE, "f32[8]; s32[]", None, {"dynamic_slice_sizes": (9,)},
     ("dynamic-slice", "slice size 9")),
    (O.DYNAMIC_SLICE, "f32[8,8]; s32[]; s64[]", None, {"dynamic_slice_sizes": (1, 1)},
     ("dynamic-slice", "same type")),
    (O.DYNAMIC_UPDATE_SLICE, "f32[8]; f32[9]; s32[]", None, {}, ("dynamic-update-slice", "fit")),
    (O.DYNAMIC_UPDATE_SLICE, "f32[8]; s32[2]; s32[]", None, {},
     ("dynamic-update-slice", "element type")),
    (O.CONCATENATE, "f32[2,3]; f32[2,4]", None, {"dimensions": (0,)},
     ("concatenate", "differ only in dimension 0")),
    (O.CONCATENATE, "f32[2]; s32[2]", None, {"dimensions": (0,)}, ("concatenate", "element type")),
    (O.CONCATENATE, "f32[2]", None, {"dimensions": (1,)}, ("concatenate", "one dim")),
    (O.CONCATENATE, "", None, {"dimensions": (0,)}, ("concatenate", "at least one")),
    (O.PAD, "f32[3]; f32[]", None, {"padding": PaddingConfig((PadDim(0, 0, -1),))},
     ("pad", "interior")),
    (O.PAD, "f32[3]; f32[]", None, {"padding": PaddingConfig((PadDim(-2, -2, 0),))},
     ("pad", "negative")),
    (O.PAD, "f32[3]; f32[1]", None, {"padding": PaddingConfig((PadDim(0, 0, 0),))},
     ("pad", "scalar")),
    (O.PAD, "f32[3]; s32[]", None, {"padding": PaddingConfig((PadDim(0, 0, 0),))},
     ("pad", "element type")),
    (O.GATHER, "f32[5,3]; f32[4,1]", None,
     dict(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,), index_vector_dim=1,
     slice_sizes=(1, 3)), ("gather", "integers")),
    (O.GATHER, "f32[5,3]; s32[4,1]", None,
     dict(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,), index_vector_dim=1,
     slice_sizes=(2, 3)), ("gather", "slice size 2")),
    (O.GATHER, "f32[5,3]; s32[4,1]", None,
     dict(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,), index_vector_dim=3,
     slice_sizes=(1, 3)), ("gather", "index_vector_dim")),
    (O.GATHER, "f32[5,3]; s32[4,2]", None,
     dict(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,), index_vector_dim=1,
     slice_sizes=(1, 3)), ("gather", "start_index_map")),
    (O.GATHER, "f32[5,3]; s32[4,1]", None,
     dict(offset_dims=(1,), collapsed_slice_dims=(0,), start_index_map=(0,), index_vector_dim=1,
     slice_sizes=(1, 4)), ("gather", "not within")),
    (O.GATHER, "f32[5,3]; s32[4,1]", None,
     dict(offset_dims=(1, 2), collapsed_slice_dims=(0,), start_index_map=(0,), index_vector_dim=1,
     slice_sizes=(1, 3)), ("gather", "cover")),
    (O.GATHER, "f32[3,4]; s32[2,2,1]", None,
     dict(offset_dims=(), collapsed_slice_dims=(1,), start_index_map=(1,),
     operand_batching_dims=(0,), start_indices_batching_dims=(0,), index_vector_dim=2,
     slice_sizes=(1, 1)), ("gather", "batching dims differ")),
    (O.GATHER, "f32[3,4]; s32[3,2,1]", None,
     dict(offset_dims=(), collapsed_slice_dims=(1,), start_index_map=(0,),
     operand_batching_dims=(0,), start_indices_batching_dims=(0,), index_vector_dim=2,
     slice_sizes=(1, 1)), ("gather", "start_index_map + operand_batching_dims", "repeats")),
    (O.GATHER, "f32[3,4]; s32[3,2,1]", None,
     dict(offset_dims=(), collapsed_slice_dims=(1,), start_index_map=(1,),
     operand_batching_dims=(0,), start_indices_batching_dims=(2,), index_vector_dim=2,
     slice_sizes=(1, 1)), ("gather", "index_vector_dim")),
    (O.SCATTER, "f32[5,3]; s32[2,1]; f32[2,4]", None,
     dict(update_window_dims=(1,), inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0,),
     index_vector_dim=1, to_apply=SUM), ("scatter", "exceeds")),
    (O.SCATTER, "f32[5,3]; s32[3,1]; f32[2,3]", None,
     dict(update_window_dims=(1,), inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0,),
     index_vector_dim=1, to_apply=SUM), ("scatter", "scatter dim 0")),
    (O.SCATTER, "f32[5,3]; s32[2,1]; f32[2,3]", None,
     dict(update_window_dims=(1,), inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0,),
     index_vector_dim=1, to_apply=SUM_S32), ("scatter", "to_apply")),
    (O.SCATTER, "f32[5,3]; s32[2,1]; s32[2,3]", None,
     dict(update_window_dims=(1,), inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0,),
     index_vector_dim=1, to_apply=SUM), ("scatter", "element type")),
    (O.SCATTER, "f32[5,3]; s32[2,1]", None,
     dict(update_window_dims=(1,), inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0,),
     index_vector_dim=1, to_apply=SUM), ("scatter", "N operands")),
    (O.SCATTER, "f32[5,3]; s32[2,1]; f32[2,3]", None,
     dict(update_window_dims=(1,), inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0,),
     index_vector_dim=1), ("scatter", "missing attribute 'to_apply'")),
    (O.REDUCE, "f32[2,3]; f32[]", None, {"dimensions": (2,), "to_apply": SUM},
     ("reduce", "out of range")),
    (O.REDUCE, "f32[2,3]; f32[]", None, {"dimensions": (1,), "to_apply": SUM_S32},
     ("reduce", "to_apply")),
    (O.REDUCE, "f32[2,3]; f32[1]", None, {"dimensions": (1,), "to_apply": SUM},
     ("reduce", "init value")),
    (O.REDUCE, "f32[2,3]; f32[]", None, {"dimensions": (1,), "to_apply": LT},
     ("reduce", "to_apply")),
    (O.REDUCE, "f32[2,3]; s32[2,4]; f32[]; s32[]", None, {"dimensions": (1,), "to_apply": ARGMAX},
     ("reduce", "same dims")),
    (O.REDUCE, "f32[2,3]; f32[]; f32[]", None, {"dimensions": (1,), "to_apply": SUM},
     ("reduce", "init values")),
    (O.REDUCE, "f32[2,3]; f32[]", None, {"dimensions": (1,), "to_apply": 3},
     ("reduce", "computation")),
    (O.REDUCE_WINDOW, "f32[4]; f32[]", None, {"window": win("size=2x2"), "to_apply": SUM},
     ("reduce-window", "window has 2 dims")),
    (O.REDUCE_WINDOW, "f32[4]; f32[]", None, {"window": win("size=0"), "to_apply": SUM},
     ("reduce-window", "size and stride")),
    (O.REDUCE_WINDOW, "f32[4]; f32[]", None, {"window": win("size=1 pad=-3_-3"), "to_apply": SUM},
     ("reduce-window", "negative")),
    (O.SELECT_AND_SCATTER, "f32[4]; f32[3]; f32[]", None,
     {"window": win("size=2 stride=2"), "select": prog("(f32[], f32[])->pred[]"), "scatter": SUM},
     ("select-and-scatter", "source")),
    (O.SELECT_AND_SCATTER, "f32[4]; f32[2]; f32[]", None,
     {"window": win("size=2 stride=2"), "select": SUM, "scatter": SUM},
     ("select-and-scatter", "select must be")),
    (O.SORT, "f32[4]; f32[5]", None,
     {"dimensions": (0,), "to_apply": prog("(f32[], f32[], f32[], f32[])->pred[]")},
     ("sort", "same dims")),
    (O.SORT, "f32[4]", None, {"dimensions": (0,), "to_apply": SUM}, ("sort", "comparator")),
    (O.SORT, "f32[4]", None, {"dimensions": (0, 0), "to_apply": LT}, ("sort", "exactly one")),
    (O.TOPK, "f32[5,8]", None, {"k": 9}, ("topk", "k=9")),
    (O.TOPK, "f32[]", None, {"k": 0}, ("topk", "rank >= 1")),
    (O.DOT, "f32[2,3]; f32[4,5]", None,
     {"lhs_contracting_dims": (1,), "rhs_contracting_dims": (0,)},
     ("dot", "contracting dims differ", "f32[2,3], f32[4,5]")),
    (O.DOT, "f32[2,3]; f32[3,5]", None, {"lhs_contracting_dims": (1,)}, ("dot", "as many")),
    (O.DOT, "f32[2,3]; f32[3,5]", None,
     {"lhs_contracting_dims": (2,), "rhs_contracting_dims": (0,)}, ("dot", "out of range")),
    (O.DOT, "f32[2,3]; f32[3,5]", None,
     {"lhs_contracting_dims": (1, 1), "rhs_contracting_dims": (0, 0)}, ("dot", "repeats")),
    (O.DOT, "f32[2,3]; s32[3]", None, {"lhs_contracting_dims": (1,), "rhs_contracting_dims": (0,)},
     ("dot", "mixed")),
    (O.DOT, "f32[2,2,3]; f32[3,3,4]", None,
     dict(lhs_batch_dims=(0,), lhs_contracting_dims=(2,), rhs_batch_dims=(0,),
     rhs_contracting_dims=(1,)), ("dot", "batch dims differ")),
    (O.CONVOLUTION, "f32[2,8,8,3]; f32[3,3,2,4]", None,
     {"window": win("size=3x3"), "dim_labels": NHWC}, ("convolution", "input features")),
    (O.CONVOLUTION, "f32[2,8,8,3]; f32[3,3,3,4]", None,
     {"window": win("size=2x2"), "dim_labels": NHWC}, ("convolution", "window sizes")),
    (O.CONVOLUTION, "f32[2,8,3]; f32[3,3,3,4]", None,
     {"window": win("size=3x3"), "dim_labels": NHWC}, ("convolution", "rank 4")),
    (O.CONVOLUTION, "f32[2,8,8,3]; f32[3,3,3,4]", None,
     {"window": win("size=3"), "dim_labels": NHWC}, ("convolution", "spatial dims")),
    (O.CONVOLUTION, "f32[2,8,8,4]; f32[3,3,2,3]", None,
     {"window": win("size=3x3"), "dim_labels": NHWC, "feature_group_count": 2},
     ("convolution", "divisible")),
    (O.CONVOLUTION, "f32[3,4]; f32[4,6]", None,
     {"dim_labels": labels("bf_io->bf"), "batch_group_count": 2}, ("convolution", "batch 3")),
    (O.CONVOLUTION, "f32[2,8,8,3]; f32[3,3,3,4]", None,
     {"window": win("size=3x3"), "dim_labels": NHWC, "feature_group_count": 0},
     ("convolution", "feature_group_count")),
    (O.CONVOLUTION, "f32[2,8,8,3]; f32[3,3,3,4]", None,
     {"window": win("size=3x3"),
     "dim_labels": ConvDimLabels(0, 0, (1, 2), 2, 3, (0, 1), 0, 3, (1, 2))},
     ("convolution", "input dim_labels")),
    (O.FFT, "f32[3,8]", None, {"fft_type": "FFT", "fft_length": (8,)}, ("fft", "complex")),
    (O.FFT, "f32[3,8]", None, {"fft_type": "RFFT", "fft_length": (6,)}, ("fft", "fft_length")),
    (O.FFT, "c64[3,4]", None, {"fft_type": "IRFFT", "fft_length": (8,)}, ("fft", "n/2+1")),
    (O.FFT, "c64[3]", None, {"fft_type": "FFT", "fft_length": (3, 3)}, ("fft", "rank")),
    (O.FFT, "c64[3]", None, {"fft_type": "DCT", "fft_length": (3,)}, ("fft", "fft_type")),
    (O.CHOLESKY, "f32[3,4]", None, {}, ("cholesky", "square")),
    (O.CHOLESKY, "s32[3,3]", None, {}, ("cholesky", "floating-point or complex")),
    (O.TRIANGULAR_SOLVE, "f32[4,4]; f32[3,2]", None, {"left_side": True},
     ("triangular-solve", "shared dimension")),
    (O.TRIANGULAR_SOLVE, "f32[4,4]; f64[4,2]", None, {"left_side": True},
     ("triangular-solve", "element type")),
    (O.TRIANGULAR_SOLVE, "f32[4,4]; f32[4,4]", None, {"transpose_a": "NO"},
     ("triangular-solve", "transpose_a")),
    (O.BATCH_NORM_TRAINING, "f32[2,3]; f32[2]; f32[3]", None, {"epsilon": 0.1, "feature_index": 1},
     ("batch-norm-training", "scale and offset")),
    (O.BATCH_NORM_TRAINING, "f32[2,3]; f32[3]; f32[3]", None, {"epsilon": 0.1, "feature_index": 2},
     ("batch-norm-training", "feature_index")),
    (O.BATCH_NORM_TRAINING, "s32[2,3]; s32[3]; s32[3]", None, {"epsilon": 0.1, "feature_index": 1},
     ("batch-norm-training", "floating-point")),
    (O.BATCH_NORM_INFERENCE, "f32[2,3]; f32[3]; f32[3]; f32[3]; f32[4]", None,
     {"epsilon": 0.1, "feature_index": 1}, ("batch-norm-inference", "variance")),
    (O.BATCH_NORM_GRAD, "f32[2,3]; f32[3]; f32[3]; f32[3]; f32[3,2]", None,
     {"epsilon": 0.1, "feature_index": 1}, ("batch-norm-grad", "grad_output")),
    (O.BATCH_NORM_GRAD, "f32[2,3]; f32[3]; f32[3]; f32[3]; f32[2,3]", None,
     {"epsilon": "x", "feature_index": 1}, ("batch-norm-grad", "epsilon")),
    (O.GET_TUPLE_ELEMENT, "(f32[2])", None, {"index": 1}, ("get-tuple-element", "index 1")),
    (O.GET_TUPLE_ELEMENT, "f32[2]", None, {"index": 0}, ("get-tuple-element", "tuple")),
    (O.AFTER_ALL, "token[]; f32[]", None, {}, ("after-all", "tokens")),
    (O.CALL, "f32[2]", None, {"to_apply": prog("(f32[3])->f32[3]")},
     ("call", "argument 0", "f32[3]")),
    (O.CALL, "f32[2]; f32[2]", None, {"to_apply": prog("(f32[2])->f32[2]")},
     ("call", "takes 1 argument")),
    (O.FUSION, "f32[2]", None, {"kind": "kLoop", "calls": prog("(s32[2])->f32[2]")},
     ("fusion", "argument 0")),
    (O.MAP, "f32[3]; f32[4]", None, {"to_apply": SUM}, ("map", "same dims")),
    (O.MAP, "f32[3]; f32[3]", None, {"to_apply": prog("(f32[], f32[])->f32[2]")},
     ("map", "scalar")),
    (O.MAP, "f32[3]", None, {"to_apply": SUM}, ("map", "takes 2")),
    (O.MAP, "f32[3,2]", None, {"dimensions": (1, 0), "to_apply": prog("(f32[])->f32[]")},
     ("map", "all dims in order")),
    (O.WHILE, "s32[]", None, {"condition": prog("(s32[])->s32[]"), "body": prog("(s32[])->s32[]")},
     ("while", "pred[]")),
    (O.WHILE, "s32[]", None, {"condition": prog("(s32[])->pred[]"), "body": prog("(s32[])->f32[]")},
     ("while", "body")),
    (O.WHILE, "s32[]", None, {"condition": prog("(f32[])->pred[]"), "body": prog("(s32[])->s32[]")},
     ("while", "condition")),
    (O.CONDITIONAL, "s32[]; f32[3]", None,
     {"true_computation": prog("(f32[3])->f32[3]"), "false_computation": prog("(f32[3])->f32[3]")},
     ("conditional", "pred[]")),
    (O.CONDITIONAL, "s32[]; f32[3]; f32[3]", None,
     {"branch_computations": (prog("(f32[3])->f32[3]"), prog("(f32[3])->f32[2]"))},
     ("conditional", "branch 1 returns")),
    (O.CONDITIONAL, "s32[]; f32[3]", None, {"branch_computations": (prog("(f32[3])->f32[3]"),) * 2},
     ("conditional", "one operand per branch")),
    (O.CONDITIONAL, "pred[]; f32[3]; f32[3]; f32[3]", None,
     {"branch_computations": (prog("(f32[3])->f32[3]"),) * 3}, ("conditional", "s32[]")),
    (O.CONDITIONAL, "pred[]; f32[3]; f32[3]", None, {"true_computation": prog("(f32[3])->f32[3]")},
     ("conditional", "false_computation")),
    (O.ALL_REDUCE, "f32[4]", None, {"to_apply": LT}, ("all-reduce", "reducer")),
    (O.ALL_REDUCE, "token[]", None, {"to_apply": SUM}, ("all-reduce", "array")),
    (O.RNG_BIT_GENERATOR, "u32[2]", "(u32[2], u32[5])", {}, ("rng-bit-generator", "u64")),
    (O.RNG_BIT_GENERATOR, "u64[2]", "(u64[3], u32[5])", {}, ("rng-bit-generator", "state")),
    (O.RNG_BIT_GENERATOR, "u64[2]", "(u64[2], f32[5])", {}, ("rng-bit-generator", "integer array")),
    (O.REPLICA_ID, "u32[]", None, {}, ("replica-id", "0 operand")),
]
# fmt: on


@pytest.mark.parametrize(
    ("op", "operands", "declared", "attrs", "words"),
    INVALID,
    ids=[f"{c[0].value}-{i}" for i, c in enumerate(INVALID)],
)
def test_invalid(
    op: Opcode, operands: str, declared: str | None, attrs: dict[str, Any], words: tuple[str, ...]
) -> None:
    with pytest.raises(ShapeError) as info:
        infer(op, operands, declared, **attrs)
    message = str(info.value)
    for word in words:
        assert word in message, message


def test_rule_checks_its_own_arity() -> None:
    """Rules called directly (not through infer_shape) still reject a wrong operand count."""
    with pytest.raises(ShapeError, match="dot: takes 2 operand"):
        si.dot([sh("f32[2]")], {}, None)
    with pytest.raises(ShapeError, match="takes 1 operand"):
        si.unary_float([], {}, None)


def test_rules_for_stricter_families() -> None:
    """binary_arithmetic and unary_real_float narrow the shared rules for the ops that need it."""
    with pytest.raises(ShapeError, match="not pred"):
        si.binary_arithmetic([sh("pred[2]"), sh("pred[2]")], {}, None)
    assert si.binary_numeric([sh("pred[2]"), sh("pred[2]")], {}, None) == sh("pred[2]")
    with pytest.raises(ShapeError, match="floating-point elements"):
        si.unary_real_float([sh("c64[2]")], {}, None)


# --- property: any shapes and attribute values give a Shape or a ShapeError ---------------

# A few element types, so that operands often agree and rules get past their first checks.
_TYPES = [T.F32, T.F32, T.S32, T.PRED, T.U64, T.C64, T.F64, T.U32]

small = st.integers(min_value=-2, max_value=5)


@st.composite
def array_shapes(draw: st.DrawFn, rank: int | None = None) -> Shape:
    n = draw(st.integers(0, 3)) if rank is None else rank
    dims = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    layout = draw(st.one_of(st.none(), st.permutations(range(n))))
    return Shape.array(draw(st.sampled_from(_TYPES)), dims, layout)


any_shapes = st.recursive(
    st.one_of(array_shapes(), array_shapes(0), st.just(Shape.token())),
    lambda inner: st.lists(inner, max_size=3).map(Shape.tuple_of),
    max_leaves=4,
)
programs = st.builds(
    lambda params, result: ProgramShape(tuple(params), result),
    st.lists(st.one_of(array_shapes(0), any_shapes), max_size=4),
    st.one_of(array_shapes(0), any_shapes),
)
window_dims = st.builds(WindowDim, small, small, small, small, small, small, st.booleans())
ints = st.lists(small, max_size=4).map(tuple)

_VALUES: dict[AttrKind, st.SearchStrategy[Any]] = {
    AttrKind.INT: small,
    AttrKind.INTS: ints,
    AttrKind.FLOAT: st.floats(allow_nan=True),
    AttrKind.BOOL: st.booleans(),
    AttrKind.STRING: st.text(max_size=5),
    AttrKind.COMPUTATION: programs,
    AttrKind.COMPUTATIONS: st.lists(programs, max_size=3).map(tuple),
    AttrKind.WINDOW: st.lists(window_dims, max_size=4).map(lambda d: Window(tuple(d))),
    AttrKind.SLICE: st.lists(st.builds(SliceDim, small, small, small), max_size=4).map(tuple),
    AttrKind.PADDING: st.lists(st.builds(PadDim, small, small, small), max_size=4).map(
        lambda d: PaddingConfig(tuple(d))
    ),
    AttrKind.DIM_LABELS: st.builds(
        ConvDimLabels, small, small, ints, small, small, ints, small, small, ints
    ),
    AttrKind.RAW: st.text(max_size=5).map(Raw),
    AttrKind.LITERAL: st.builds(
        lambda d: np.zeros(d, np.float32), st.lists(st.integers(0, 3), max_size=2).map(tuple)
    ),
    AttrKind.INTS_LIST: st.lists(ints, max_size=3).map(tuple),
}
# Values of the wrong kind, to check that attribute readers reject them as ShapeErrors.
_WRONG = st.sampled_from(["x", 1.5, (1, "a"), ("a",), 7, Window(()), Raw("r"), (None,)])


def attribute_values(spec: Any) -> st.SearchStrategy[Any]:
    """Values of the attribute's own kind (and choices), most of the time."""
    if spec.choices:
        good = st.sampled_from(spec.choices)
    elif spec.kind is AttrKind.ENUM:
        good = st.sampled_from(["EQ", "FLOAT", "RFFT", "kLoop", "?"])
    else:
        good = _VALUES[spec.kind]
    return st.one_of(good, good, good, _WRONG)


@st.composite
def attributes(draw: st.DrawFn, op: Opcode) -> dict[str, Any]:
    return {
        spec.name: draw(attribute_values(spec)) for spec in OPS[op].attrs if draw(st.integers(0, 4))
    }  # about one in five left absent


def _signature(op: Opcode) -> tuple[Any, ...]:
    d = OPS[op]
    return (d.shape_rule, d.arity, tuple(a.name for a in d.attrs))


# One opcode per distinct (rule, arity, attribute schema): the others would repeat its test.
_FUZZED = list({_signature(op): op for op in Opcode}.values())


def _check(
    op: Opcode,
    operands: list[Shape],
    attrs: dict[str, Any],
    declared: Shape | None,
) -> None:
    try:
        result = infer_shape(op, operands, attrs, declared)
    except ShapeError:
        return
    assert isinstance(result, Shape)


@pytest.mark.parametrize("op", _FUZZED, ids=[op.value for op in _FUZZED])
@settings(max_examples=20)
@given(data=st.data())
def test_rules_raise_only_shape_errors(op: Opcode, data: st.DataObject) -> None:
    arity = OPS[op].arity
    count = arity if arity is not None else data.draw(st.integers(0, 5))
    # Operands: sometimes all alike (to reach deeper checks), sometimes anything.
    if data.draw(st.booleans()):
        operands = data.draw(st.lists(any_shapes, min_size=count, max_size=count))
    else:
        operands = [data.draw(array_shapes())] * count
    declared = data.draw(st.one_of(st.none(), any_shapes))
    _check(op, operands, data.draw(attributes(op)), declared)


@st.composite
def mutated_shape(draw: st.DrawFn, shape: Shape) -> Shape:
    """A near miss of `shape`: one dim off by one, one dim more or less, or another type."""
    if not shape.is_array:
        return draw(any_shapes)
    dims = list(shape.dims)
    how = draw(st.sampled_from(["size", "rank", "type"]))
    if how == "size" and dims:
        i = draw(st.integers(0, len(dims) - 1))
        dims[i] = max(dims[i] + draw(st.sampled_from([-1, 1])), 0)
    elif how == "rank":
        if dims and draw(st.booleans()):
            dims.pop()
        else:
            dims.append(draw(st.integers(0, 3)))
    else:
        return Shape(draw(st.sampled_from(_TYPES)), shape.dims)
    return Shape.array(shape.element_type, dims)


@st.composite
def mutated_value(draw: st.DrawFn, spec: Any, value: Any) -> Any:
    """A near miss of an attribute value (integer lists tweaked in place), or any value."""
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value) and value:
        items = list(value)
        i = draw(st.integers(0, len(items) - 1))
        items[i] += draw(st.sampled_from([-1, 1]))
        return tuple(items)
    if isinstance(value, int) and not isinstance(value, bool):
        return value + draw(st.sampled_from([-1, 1]))
    return draw(attribute_values(spec))


@settings(max_examples=400)
@given(data=st.data())
def test_mutated_valid_cases_raise_only_shape_errors(data: st.DataObject) -> None:
    """Near misses of the valid examples reach the deep checks of every rule."""
    op, operands, declared, attrs, _ = data.draw(st.sampled_from(VALID))
    shapes = [sh(s) for s in _split(operands)]
    attrs = dict(attrs)
    result = None if declared is None else sh(declared)
    for _ in range(data.draw(st.integers(1, 2))):
        what = data.draw(st.sampled_from(["attr", "attr", "operand", "declared", "drop"]))
        if what == "attr" and OPS[op].attrs:
            spec = data.draw(st.sampled_from(OPS[op].attrs))
            attrs[spec.name] = data.draw(mutated_value(spec, attrs.get(spec.name)))
        elif what == "operand" and shapes:
            i = data.draw(st.integers(0, len(shapes) - 1))
            shapes[i] = data.draw(mutated_shape(shapes[i]))
        elif what == "declared" and result is not None:
            result = data.draw(st.one_of(st.none(), mutated_shape(result)))
        elif what == "drop" and attrs:
            del attrs[data.draw(st.sampled_from(sorted(attrs)))]
    _check(op, shapes, attrs, result)


# --- property: rules agree with numpy on the shapes numpy can compute ---------------------


@given(shape=array_shapes(), data=st.data())
def test_transpose_matches_numpy(shape: Shape, data: st.DataObject) -> None:
    perm = tuple(data.draw(st.permutations(range(shape.rank))))
    result = infer_shape(O.TRANSPOSE, [shape], {"dimensions": perm})
    assert result.dims == np.zeros(shape.dims).transpose(perm).shape


@given(shape=array_shapes(), data=st.data())
def test_slice_matches_numpy(shape: Shape, data: st.DataObject) -> None:
    spec = []
    for d in shape.dims:
        start = data.draw(st.integers(0, d))
        spec.append(SliceDim(start, data.draw(st.integers(start, d)), data.draw(st.integers(1, 3))))
    result = infer_shape(O.SLICE, [shape], {"slice": tuple(spec)})
    expected = np.zeros(shape.dims)[tuple(slice(s.start, s.limit, s.stride) for s in spec)].shape
    assert result.dims == expected


@given(shape=array_shapes(), data=st.data())
def test_reduce_matches_numpy(shape: Shape, data: st.DataObject) -> None:
    dims = tuple(data.draw(st.sets(st.integers(0, max(shape.rank - 1, 0)), max_size=shape.rank)))
    scalar = Shape(shape.element_type, ())
    fn = ProgramShape((scalar, scalar), scalar)
    result = infer_shape(O.REDUCE, [shape, scalar], {"dimensions": dims, "to_apply": fn})
    assert result.dims == np.zeros(shape.dims).sum(axis=dims).shape


@given(lhs=array_shapes(), data=st.data())
def test_dot_matches_einsum(lhs: Shape, data: st.DataObject) -> None:
    """Random dot dimension numbers against numpy.einsum's output shape."""
    letters = "abcdefgh"
    roles = data.draw(
        st.lists(
            st.sampled_from(["batch", "contract", "free"]), min_size=lhs.rank, max_size=lhs.rank
        )
    )
    rhs_free = data.draw(st.lists(st.integers(0, 3), max_size=2))
    lhs_sub = letters[: lhs.rank]
    batch = [i for i, r in enumerate(roles) if r == "batch"]
    contract = [i for i, r in enumerate(roles) if r == "contract"]
    rhs_sub = "".join(lhs_sub[i] for i in batch + contract) + "xy"[: len(rhs_free)]
    rhs_dims = [lhs.dims[i] for i in batch + contract] + rhs_free
    rhs = Shape.array(lhs.element_type, rhs_dims)
    n = len(batch)
    attrs = {
        "lhs_batch_dims": tuple(batch),
        "lhs_contracting_dims": tuple(contract),
        "rhs_batch_dims": tuple(range(n)),
        "rhs_contracting_dims": tuple(range(n, n + len(contract))),
    }
    out_sub = (
        "".join(lhs_sub[i] for i in batch)
        + "".join(lhs_sub[i] for i, r in enumerate(roles) if r == "free")
        + "xy"[: len(rhs_free)]
    )
    expected = np.einsum(
        f"{lhs_sub},{rhs_sub}->{out_sub}", np.zeros(lhs.dims), np.zeros(rhs_dims)
    ).shape
    assert infer_shape(O.DOT, [lhs, rhs], attrs).dims == expected


@given(shape=array_shapes(), data=st.data())
def test_pad_with_non_negative_edges_matches_numpy(shape: Shape, data: st.DataObject) -> None:
    edges = [(data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))) for _ in shape.dims]
    config = PaddingConfig(tuple(PadDim(lo, hi, 0) for lo, hi in edges))
    value = Shape(shape.element_type, ())
    result = infer_shape(O.PAD, [shape, value], {"padding": config})
    expected = np.pad(np.zeros(shape.dims), edges).shape if edges else ()
    assert result.dims == expected
