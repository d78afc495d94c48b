"""Shared by the shape-inference tests: a tiny shape-text reader (`sh`, `prog`, `win`,
`labels`) so that case tables read like HLO text, `infer` to run a rule through `infer_shape`,
the reducer and comparator signatures the tables use, and the table of valid cases, which both
the example tests and the mutation property test draw from.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from hlo import shape_inference as si
from hlo.attributes import ConvDimLabels, PadDim, PaddingConfig, SliceDim, Window, WindowDim
from hlo.dtypes import PrimitiveType
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
