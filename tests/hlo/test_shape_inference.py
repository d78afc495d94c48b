"""Unit tests of the shape rules (hlo/shape_inference.py) through `infer_shape`.

Valid cases (the table in shape_cases.py) are XLA-style examples, many taken from the corpus;
invalid cases assert a ShapeError whose message names the op and the broken rule. The
hypothesis tests of the same rules are in test_shape_inference_properties.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hlo import shape_inference as si
from hlo.attributes import ConvDimLabels, PadDim, PaddingConfig, SliceDim
from hlo.errors import ShapeError
from hlo.opcodes import Opcode
from tests.hlo.shape_cases import (
    ARGMAX,
    LT,
    NHWC,
    SUM,
    SUM_S32,
    VALID,
    O,
    infer,
    labels,
    prog,
    sh,
    win,
)


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
