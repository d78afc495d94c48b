"""CPU convolution kernel (backends/cpu/conv.py) against the reference evaluator.

Covers dim_labels layouts (NHWC/HWIO, NCHW/OIHW, transposed output), 1-D and 3-D
convolutions, strides, positive and negative padding, lhs (base) and rhs (window)
dilation, window reversal, feature groups (grouped and depthwise), batch groups, integer
and half-precision element types, and a convolution without spatial dimensions.
"""

from __future__ import annotations

import numpy as np
import pytest

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
