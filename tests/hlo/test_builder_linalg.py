"""ComputationBuilder against the operation-semantics document's linear-algebra ops (TF 1.8,
../shared/xla-docs-zh.md): Dot and DotGeneral, Conv and ConvWithGeneralPadding (checked against
a direct numpy convolution), and the three BatchNorm ops (checked against their formulas).
"""

from __future__ import annotations

import numpy as np
import pytest

from hlo.builder import ComputationBuilder, DotDimensionNumbers, make_padding
from hlo.errors import ShapeError
from tests.hlo.builder_helpers import F32, assert_equal, f32, param, run, shape

# === Dot, DotGeneral ==========================================================================


def test_dot_vector_vector_matrix_vector_matrix_matrix() -> None:
    m = f32([[1, 2, 3], [4, 5, 6]])
    v = f32([1, 0, -1])
    n = f32([[1, 0], [0, 1], [1, 1]])
    b = ComputationBuilder("dots")
    mm, vv, nn = param(b, 0, m), param(b, 1, v), param(b, 2, n)
    outs = [b.dot(vv, vv), b.dot(mm, vv), b.dot(mm, nn)]
    assert [o.shape.dims for o in outs] == [(), (2,), (2, 2)]
    b.tuple(outs)
    vdot, mv, mn = run(b, m, v, n)
    assert vdot == 2
    assert_equal(mv, [-2, -2])
    assert_equal(mn, m @ n)


def test_dot_size_mismatch() -> None:
    b = ComputationBuilder("dot_bad")
    with pytest.raises(ShapeError, match=r"f32\[2,3\] \. f32\[2\]"):
        b.dot(b.parameter(0, shape(F32, 2, 3), "m"), b.parameter(1, shape(F32, 2), "v"))


def test_dot_general_contracting_dimensions() -> None:
    # lhs = {{1,2,3},{4,5,6}}, rhs = {{1,1,1},{2,2,2}}, contracting 1 and 1
    # -> {{6, 12}, {15, 30}}
    b = ComputationBuilder("dot_general")
    lhs = b.constant_r2(f32([[1, 2, 3], [4, 5, 6]]))
    rhs = b.constant_r2(f32([[1, 1, 1], [2, 2, 2]]))
    b.dot_general(lhs, rhs, DotDimensionNumbers([1], [1]))
    assert_equal(run(b), f32([[6, 12], [15, 30]]))


def test_dot_general_batch_dimensions() -> None:
    lhs = f32([[[1, 2], [3, 4]], [[5, 6], [7, 8]]])
    rhs = f32([[[1, 0], [0, 1]], [[1, 0], [0, 1]]])
    b = ComputationBuilder("batch_matmul")
    b.dot_general(param(b, 0, lhs), param(b, 1, rhs),
                  DotDimensionNumbers(lhs_contracting_dimensions=[2],
                                      rhs_contracting_dimensions=[1],
                                      lhs_batch_dimensions=[0], rhs_batch_dimensions=[0]))
    assert_equal(run(b, lhs, rhs), lhs)


# === Convolution ==============================================================================


def conv_reference(lhs, rhs, strides, pads, lhs_dil=(1, 1), rhs_dil=(1, 1)):
    """The document's pseudocode (with dilation): lhs [b, z, y, x], rhs [oz, iz, ky, kx]."""
    batch, _, height, width = lhs.shape
    out_z, in_z, kh, kw = rhs.shape
    base = np.zeros((batch, in_z, (height - 1) * lhs_dil[0] + 1, (width - 1) * lhs_dil[1] + 1),
                    np.float64)
    base[:, :, ::lhs_dil[0], ::lhs_dil[1]] = lhs
    (pyl, pyh), (pxl, pxh) = pads
    eff_kh, eff_kw = (kh - 1) * rhs_dil[0] + 1, (kw - 1) * rhs_dil[1] + 1
    oh = (base.shape[2] + pyl + pyh - eff_kh) // strides[0] + 1
    ow = (base.shape[3] + pxl + pxh - eff_kw) // strides[1] + 1
    out = np.zeros((batch, out_z, oh, ow))
    for b_, oz, oy, ox in np.ndindex(out.shape):
        value = 0.0
        for iz, ky, kx in np.ndindex(in_z, kh, kw):
            iy = oy * strides[0] + ky * rhs_dil[0] - pyl
            ix = ox * strides[1] + kx * rhs_dil[1] - pxl
            if 0 <= iy < base.shape[2] and 0 <= ix < base.shape[3]:
                value += base[b_, iz, iy, ix] * rhs[oz, iz, ky, kx]
        out[b_, oz, oy, ox] = value
    return out.astype(np.float32)


LHS = np.arange(2 * 2 * 5 * 4, dtype=np.float32).reshape(2, 2, 5, 4) / 10
RHS = (np.arange(3 * 2 * 3 * 2, dtype=np.float32).reshape(3, 2, 3, 2) - 15) / 7


@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_conv_same_and_valid(padding) -> None:
    b = ComputationBuilder("conv")
    out = b.conv(param(b, 0, LHS), param(b, 1, RHS), [1, 2], padding)
    pads = make_padding([5, 4], [3, 2], [1, 2], padding)
    want = conv_reference(LHS, RHS, (1, 2), pads)
    assert out.shape.dims == want.shape
    if padding == "SAME":
        assert want.shape[2:] == (5, 2)
    np.testing.assert_allclose(run(b, LHS, RHS), want, rtol=1e-5, atol=1e-5)


def test_conv_with_general_padding_and_dilation() -> None:
    pads = [(2, 3), (-1, 1)]
    b = ComputationBuilder("conv_general")
    b.conv_with_general_padding(param(b, 0, LHS), param(b, 1, RHS), [2, 1], pads,
                                lhs_dilation=[1, 2], rhs_dilation=[2, 1])
    want = conv_reference(LHS, RHS, (2, 1), pads, (1, 2), (2, 1))
    np.testing.assert_allclose(run(b, LHS, RHS), want, rtol=1e-5, atol=1e-5)


def test_conv_rank_mismatch() -> None:
    b = ComputationBuilder("conv_bad")
    with pytest.raises(ShapeError, match="rank n\\+2"):
        b.conv(b.parameter(0, shape(F32, 1, 2, 5, 5), "x"),
               b.parameter(1, shape(F32, 3, 2, 3), "k"), [1, 1], "VALID")


# === BatchNorm ================================================================================

BN_X = (np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2) - 10) / 4
BN_SCALE, BN_OFFSET = f32([1.0, 2.0, 0.5]), f32([0.0, -1.0, 3.0])
EPS = 1e-3


def test_batch_norm_training_matches_the_formulas() -> None:
    b = ComputationBuilder("bn_training")
    b.batch_norm_training(param(b, 0, BN_X), param(b, 1, BN_SCALE), param(b, 2, BN_OFFSET),
                          EPS, feature_index=1)
    y, mean, var = run(b, BN_X, BN_SCALE, BN_OFFSET)
    x64 = BN_X.astype(np.float64)
    mu = x64.mean(axis=(0, 2, 3))
    sigma2 = ((x64 - mu[None, :, None, None]) ** 2).mean(axis=(0, 2, 3))
    norm = (x64 - mu[None, :, None, None]) / np.sqrt(sigma2[None, :, None, None] + EPS)
    want = BN_SCALE[None, :, None, None] * norm + BN_OFFSET[None, :, None, None]
    np.testing.assert_allclose(mean, mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var, sigma2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)


def test_batch_norm_inference_uses_the_given_moments() -> None:
    mean, var = f32([0.5, -1.0, 2.0]), f32([1.0, 4.0, 0.25])
    b = ComputationBuilder("bn_inference")
    b.batch_norm_inference(param(b, 0, BN_X), param(b, 1, BN_SCALE), param(b, 2, BN_OFFSET),
                           param(b, 3, mean), param(b, 4, var), EPS, feature_index=1)
    got = run(b, BN_X, BN_SCALE, BN_OFFSET, mean, var)
    c = (slice(None), None, None)
    want = (BN_SCALE[c] * (BN_X - mean[c]) / np.sqrt(var[c] + EPS) + BN_OFFSET[c])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_batch_norm_grad_shapes() -> None:
    b = ComputationBuilder("bn_grad")
    out = b.batch_norm_grad(param(b, 0, BN_X), param(b, 1, BN_SCALE),
                            param(b, 2, f32([0, 0, 0])), param(b, 3, f32([1, 1, 1])),
                            param(b, 4, np.ones_like(BN_X)), EPS, feature_index=1)
    assert [s.dims for s in out.shape.tuple_shapes] == [(2, 3, 2, 2), (3,), (3,)]
    grad_x, grad_scale, grad_offset = run(b, BN_X, BN_SCALE, f32([0, 0, 0]), f32([1, 1, 1]),
                                          np.ones_like(BN_X))
    # With a constant upstream gradient, the offset gradient is the count per feature.
    np.testing.assert_allclose(grad_offset, [8, 8, 8])
    assert grad_x.shape == BN_X.shape and grad_scale.shape == (3,)
