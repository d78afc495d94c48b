"""CPU convolution kernel (backends/cpu/conv.py) against the reference evaluator.

Covers dim_labels layouts (NHWC/HWIO, NCHW/OIHW, transposed output), 1-D and 3-D
convolutions, strides, positive and negative padding, lhs (base) and rhs (window)
dilation, window reversal, feature groups (grouped and depthwise), batch groups, integer
and half-precision element types, and a convolution without spatial dimensions; then each
of the three paths in turn: the direct loop nest (small kernels above), the implicit
im2col GEMM (kernels too large for the direct loop, 128 x 128 features), and depthwise
(unrolled windows over contiguous or strided features, channel multipliers, large windows).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from backends.cpu.compiler import compile_to_object
from backends.cpu.gemm import target_caches
from backends.cpu.object import Target
from hlo.parser import parse
from tests.backends.cpu.test_kernels_common import check, module_text

RNG = np.random.default_rng(11)

CASES = [
    # name, lhs shape, rhs shape, result shape, attributes
    ("nhwc_same", "[2,6,5,3]", "[3,3,3,4]", "[2,6,5,4]",
     "window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f"),
    ("nchw_valid_stride2", "[2,3,7,7]", "[4,3,3,3]", "[2,4,3,3]",
     "window={size=3x3 stride=2x2}, dim_labels=bf01_oi01->bf01"),
    ("negative_padding", "[1,7,7,2]", "[3,3,2,3]", "[1,2,3,3]",
     "window={size=3x3 stride=2x2 pad=-1_0x-1_2}, dim_labels=b01f_01io->b01f"),
    ("lhs_dilation", "[1,4,4,3]", "[3,3,3,2]", "[1,8,8,2]",
     "window={size=3x3 pad=2_1x2_1 lhs_dilate=2x2}, dim_labels=b01f_01io->b01f"),
    ("rhs_dilation", "[2,8,8,3]", "[3,3,3,4]", "[2,8,6,4]",
     "window={size=3x3 pad=2_2x1_1 rhs_dilate=2x2}, dim_labels=b01f_01io->b01f"),
    ("reversal", "[2,6,5,3]", "[3,2,3,4]", "[2,6,4,4]",
     "window={size=3x2 pad=1_1x0_0 rhs_reversal=1x0}, dim_labels=b01f_01io->b01f"),
    ("all_window_features", "[1,9,8,2]", "[3,2,2,3]", "[1,4,12,3]",
     "window={size=3x2 stride=2x1 pad=1_2x0_0 lhs_dilate=1x2 rhs_dilate=2x3}, "
     "dim_labels=b01f_01io->b01f"),
    ("feature_groups", "[2,5,5,4]", "[3,3,2,6]", "[2,5,5,6]",
     "window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f, feature_group_count=2"),
    ("depthwise", "[2,5,5,4]", "[3,3,1,8]", "[2,3,3,8]",
     "window={size=3x3}, dim_labels=b01f_01io->b01f, feature_group_count=4"),
    ("batch_groups", "[4,3,5]", "[6,3,2]", "[2,6,4]",
     "window={size=2}, dim_labels=bf0_oi0->bf0, batch_group_count=2"),
    ("weight_gradient_layout", "[2,6,6,3]", "[2,4,4,5]", "[5,5,3,5]",
     "window={size=4x4 pad=1_1x1_1}, dim_labels=f01b_i01o->01bf"),
    ("one_d", "[3,10,2]", "[4,2,5]", "[3,4,5]",
     "window={size=4 stride=2 pad=1_0}, dim_labels=b0f_0io->b0f"),
    ("three_d", "[1,4,5,3,2]", "[2,3,2,2,3]", "[1,3,3,2,3]",
     "window={size=2x3x2}, dim_labels=b012f_012io->b012f"),
    ("no_spatial_dims", "[2,3]", "[3,4]", "[2,4]", "dim_labels=bf_io->bf"),
]


def parse_dims(text: str) -> tuple[int, ...]:
    return tuple(int(d) for d in text.strip("[]").split(","))


def conv_module(dtype: str, lhs: str, rhs: str, out: str, attrs: str, out_type: str = "") -> str:
    result = out_type or dtype
    return module_text([f"{dtype}{lhs}", f"{dtype}{rhs}"],
                       [f"c = {result}{out} convolution(p0, p1), {attrs}"])


@pytest.mark.parametrize("name,lhs,rhs,out,attrs", CASES, ids=[c[0] for c in CASES])
def test_convolution(name: str, lhs: str, rhs: str, out: str, attrs: str) -> None:
    x = RNG.standard_normal(parse_dims(lhs)).astype(np.float32)
    k = RNG.standard_normal(parse_dims(rhs)).astype(np.float32)
    check(conv_module("f32", lhs, rhs, out, attrs), x, k, rtol=1e-4, atol=1e-4)


def test_integer_convolution_wraps() -> None:
    _, lhs, rhs, out, attrs = CASES[0]
    x = RNG.integers(-2**20, 2**20, parse_dims(lhs)).astype(np.int32)
    k = RNG.integers(-2**12, 2**12, parse_dims(rhs)).astype(np.int32)
    check(conv_module("s32", lhs, rhs, out, attrs), x, k)


def test_f16_convolution_accumulates_in_f32() -> None:
    _, lhs, rhs, out, attrs = CASES[1]
    x = RNG.standard_normal(parse_dims(lhs)).astype(np.float16)
    k = RNG.standard_normal(parse_dims(rhs)).astype(np.float16)
    check(conv_module("f16", lhs, rhs, out, attrs), x, k, rtol=2e-3, atol=2e-3)


def test_f64_convolution() -> None:
    _, lhs, rhs, out, attrs = CASES[6]
    x = RNG.standard_normal(parse_dims(lhs))
    k = RNG.standard_normal(parse_dims(rhs))
    check(conv_module("f64", lhs, rhs, out, attrs), x, k, rtol=1e-12, atol=1e-12)


# Kernels of 3x3x128x128 f32 (590 KB) take the im2col GEMM path on every CPU in the cache
# table but Apple's; the images are small so that the reference stays fast.
GEMM_CASES = [
    ("gemm_nhwc_same", "[2,5,4,128]", "[3,3,128,128]", "[2,5,4,128]",
     "window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f"),
    ("gemm_window_features", "[1,7,6,128]", "[3,3,128,128]", "[1,3,8,128]",
     "window={size=3x3 stride=2x1 pad=1_2x-1_0 lhs_dilate=1x2 rhs_dilate=2x1 rhs_reversal=0x1}, "
     "dim_labels=b01f_01io->b01f"),
    ("gemm_nchw_oihw", "[1,128,4,5]", "[128,128,3,3]", "[1,128,4,5]",
     "window={size=3x3 pad=1_1x1_1}, dim_labels=bf01_oi01->bf01"),
    ("gemm_feature_groups", "[1,4,4,256]", "[3,3,128,256]", "[1,4,4,256]",
     "window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f, feature_group_count=2"),
    ("gemm_one_d", "[3,9,160]", "[9,160,128]", "[3,5,128]",
     "window={size=9 stride=2 pad=4_4}, dim_labels=b0f_0io->b0f"),
]

DEPTHWISE_CASES = [
    ("dw_nhwc_stride", "[2,7,6,8]", "[3,3,1,8]", "[2,4,3,8]",
     "window={size=3x3 stride=2x2 pad=1_1x1_1}, dim_labels=b01f_01io->b01f, "
     "feature_group_count=8"),
    ("dw_nchw", "[2,8,6,5]", "[3,3,1,8]", "[2,8,6,5]",
     "window={size=3x3 pad=1_1x1_1}, dim_labels=bf01_01io->bf01, feature_group_count=8"),
    ("dw_dilations_reversal", "[1,6,6,16]", "[3,2,1,16]", "[1,13,11,16]",
     "window={size=3x2 pad=2_2x1_1 lhs_dilate=2x2 rhs_dilate=1x2 rhs_reversal=1x1}, "
     "dim_labels=b01f_01io->b01f, feature_group_count=16"),
    ("dw_large_window", "[1,12,12,4]", "[9,9,1,4]", "[1,12,12,4]",
     "window={size=9x9 pad=4_4x4_4}, dim_labels=b01f_01io->b01f, feature_group_count=4"),
    ("dw_multiplier_3", "[2,5,5,4]", "[3,3,1,12]", "[2,5,5,12]",
     "window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f, feature_group_count=4"),
]


@pytest.mark.parametrize("name,lhs,rhs,out,attrs", GEMM_CASES + DEPTHWISE_CASES,
                         ids=[c[0] for c in GEMM_CASES + DEPTHWISE_CASES])
def test_fast_paths(name: str, lhs: str, rhs: str, out: str, attrs: str) -> None:
    x = RNG.standard_normal(parse_dims(lhs)).astype(np.float32)
    k = RNG.standard_normal(parse_dims(rhs)).astype(np.float32)
    text = conv_module("f32", lhs, rhs, out, attrs)
    check(text, x, k, rtol=1e-4, atol=1e-3)
    # The case exercises the path it is named after (loop names show in the LLVM IR).
    llvm_ir = compile_to_object(parse(text)).llvm_ir
    if name.startswith("gemm"):
        if target_caches(Target.resolve()).l2 <= 2 * 1024 * 1024:
            assert "tfcompile.gemm.macro" in llvm_ir
    else:
        assert "dw.out" in llvm_ir and "tfcompile.gemm.macro" not in llvm_ir


def test_gemm_path_with_f16_operands_and_result() -> None:
    _, lhs, rhs, out, attrs = GEMM_CASES[0]
    x = RNG.standard_normal(parse_dims(lhs)).astype(np.float16)
    k = (RNG.standard_normal(parse_dims(rhs)) / 16).astype(np.float16)
    check(conv_module("f16", lhs, rhs, out, attrs), x, k, rtol=1e-2, atol=1e-2)


def test_gemm_path_with_f32_result_of_bf16_operands() -> None:
    _, lhs, rhs, out, attrs = GEMM_CASES[0]
    x = RNG.standard_normal(parse_dims(lhs)).astype(ml_dtypes.bfloat16)
    k = RNG.standard_normal(parse_dims(rhs)).astype(ml_dtypes.bfloat16)
    check(conv_module("bf16", lhs, rhs, out, attrs, out_type="f32"), x, k, rtol=1e-3,
          atol=1e-3)


def test_depthwise_f64() -> None:
    _, lhs, rhs, out, attrs = DEPTHWISE_CASES[0]
    x = RNG.standard_normal(parse_dims(lhs))
    k = RNG.standard_normal(parse_dims(rhs))
    check(conv_module("f64", lhs, rhs, out, attrs), x, k, rtol=1e-12, atol=1e-12)
