"""Evaluator kernels of hlo/eval_rules/linalg.py: dot, convolution, fft, cholesky,
triangular-solve and batch norm.

Convolution is checked against a direct loop over XLA's definition; fft against an
explicit DFT; cholesky and triangular-solve by substituting the result back; the
batch-norm gradient against finite differences of batch-norm-training.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hlo.attributes import ConvDimLabels, Window, WindowDim
from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType, from_numpy
from hlo.evaluator import evaluate
from hlo.module import HloModule
from hlo.opcodes import Opcode
from hlo.shape import Shape

T = PrimitiveType


def run(opcode: Opcode, args: list[np.ndarray], shape: Shape, **attrs) -> tuple:
    """Evaluate a one-instruction module whose operands are parameters."""
    comp = HloComputation("entry")
    params = [
        comp.add(
            Opcode.PARAMETER, shape=Shape.array(from_numpy(a.dtype), a.shape), parameter_number=i
        )
        for i, a in enumerate(args)
    ]
    comp.set_root(comp.add(opcode, params, shape=shape, **attrs))
    module = HloModule("test")
    module.add_computation(comp, entry=True)
    return evaluate(module, *args)


# --- dot ---------------------------------------------------------------------------------


def test_dot_general_dimension_numbers() -> None:
    rng = np.random.default_rng(0)
    lhs = rng.standard_normal((3, 2, 4, 5)).astype(np.float32)  # k, b, m, k2
    rhs = rng.standard_normal((5, 2, 6, 3)).astype(np.float32)  # k2, b, n, k
    (got,) = run(
        Opcode.DOT,
        [lhs, rhs],
        Shape.array(T.F32, [2, 4, 6]),
        lhs_batch_dims=(1,),
        rhs_batch_dims=(1,),
        lhs_contracting_dims=(0, 3),
        rhs_contracting_dims=(3, 0),
    )
    want = np.zeros((2, 4, 6))
    for b, m, n in itertools.product(range(2), range(4), range(6)):
        want[b, m, n] = sum(
            float(lhs[k, b, m, k2]) * float(rhs[k2, b, n, k]) for k in range(3) for k2 in range(5)
        )
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_dot_outer_product_and_vector_dot() -> None:
    a = np.array([1, 2, 3], dtype=np.float32)
    b = np.array([4, 5], dtype=np.float32)
    (got,) = run(Opcode.DOT, [a, b], Shape.array(T.F32, [3, 2]))
    np.testing.assert_array_equal(got, np.outer(a, b))
    (got,) = run(
        Opcode.DOT,
        [a, a],
        Shape.scalar(T.F32),
        lhs_contracting_dims=(0,),
        rhs_contracting_dims=(0,),
    )
    assert got == 14


def test_dot_integers_wrap_and_widen() -> None:
    a = np.full((1, 4), 2**15, dtype=np.int32)
    b = np.full((4, 1), 2**15, dtype=np.int32)
    (got,) = run(
        Opcode.DOT,
        [a, b],
        Shape.array(T.S32, [1, 1]),
        lhs_contracting_dims=(1,),
        rhs_contracting_dims=(0,),
    )
    assert got.dtype == np.int32 and got[0, 0] == 0  # 4 * 2^30 wraps
    x = np.array([[100, -100]], dtype=np.int8)
    (got,) = run(
        Opcode.DOT,
        [x, x.T.copy()],
        Shape.array(T.S32, [1, 1]),
        lhs_contracting_dims=(1,),
        rhs_contracting_dims=(0,),
    )
    assert got.dtype == np.int32 and got[0, 0] == 20000


def test_dot_f16_operands_accumulate_wide() -> None:
    a = np.concatenate([[2048], np.ones(8)]).astype(np.float16)[None, :]
    b = np.ones((9, 1), dtype=np.float16)
    (got,) = run(
        Opcode.DOT,
        [a, b],
        Shape.array(T.F16, [1, 1]),
        lhs_contracting_dims=(1,),
        rhs_contracting_dims=(0,),
    )
    assert got.dtype == np.float16 and got[0, 0] == 2056  # f16 steps would stay at 2048
    (got,) = run(
        Opcode.DOT,
        [a, b],
        Shape.array(T.F32, [1, 1]),
        lhs_contracting_dims=(1,),
        rhs_contracting_dims=(0,),
    )
    assert got.dtype == np.float32 and got[0, 0] == 2056


# --- convolution -------------------------------------------------------------------------


def out_size(n: int, wd: WindowDim) -> int:
    padded = (n - 1) * wd.base_dilation + 1 + wd.padding_low + wd.padding_high if n else 0
    span = (wd.size - 1) * wd.window_dilation + 1
    return max((padded - span) // wd.stride + 1, 0)


def naive_conv(lhs, rhs, labels: ConvDimLabels, dims, fgc: int, bgc: int) -> np.ndarray:
    """Per output element, straight from XLA's convolution definition."""
    n_in = lhs.shape[labels.input_batch]
    i_size = rhs.shape[labels.kernel_input_feature]
    o_size = rhs.shape[labels.kernel_output_feature]
    out_shape = [0] * lhs.ndim
    out_shape[labels.output_batch] = n_in // bgc
    out_shape[labels.output_feature] = o_size
    for k, ax in enumerate(labels.output_spatial):
        out_shape[ax] = out_size(lhs.shape[labels.input_spatial[k]], dims[k])
    out = np.zeros(out_shape)
    for out_index in np.ndindex(*out_shape):
        n, o = out_index[labels.output_batch], out_index[labels.output_feature]
        group, batch_group = o // (o_size // fgc), o // (o_size // bgc)
        total = 0.0
        for i, w in itertools.product(range(i_size), np.ndindex(*[d.size for d in dims])):
            lidx = [0] * lhs.ndim
            kidx = [0] * rhs.ndim
            lidx[labels.input_batch] = batch_group * (n_in // bgc) + n
            lidx[labels.input_feature] = group * i_size + i
            kidx[labels.kernel_output_feature] = o
            kidx[labels.kernel_input_feature] = i
            inside = True
            for k, wd in enumerate(dims):
                p = out_index[labels.output_spatial[k]] * wd.stride + w[k] * wd.window_dilation
                p -= wd.padding_low
                q = p // wd.base_dilation
                if p % wd.base_dilation or not 0 <= q < lhs.shape[labels.input_spatial[k]]:
                    inside = False
                    break
                lidx[labels.input_spatial[k]] = q
                kidx[labels.kernel_spatial[k]] = wd.size - 1 - w[k] if wd.window_reversal else w[k]
            if inside:
                total += float(lhs[tuple(lidx)]) * float(rhs[tuple(kidx)])
        out[out_index] = total
    return out


NHWC = ConvDimLabels(0, 3, (1, 2), 2, 3, (0, 1), 0, 3, (1, 2))  # b01f_01io->b01f
NCHW = ConvDimLabels(0, 1, (2, 3), 1, 0, (2, 3), 0, 1, (2, 3))  # bf01_oi01->bf01
ODD = ConvDimLabels(2, 0, (3, 1), 3, 1, (0, 2), 1, 3, (2, 0))  # f1b0_0o1i->1b0f

CONV_CASES = [
    # name, labels, lhs shape, kernel shape, window dims, feature groups, batch groups
    (
        "nhwc_stride_pad",
        NHWC,
        (2, 5, 6, 3),
        (3, 2, 3, 4),
        [WindowDim(3, 2, 1, 2), WindowDim(2, 1, 0, 1)],
        1,
        1,
    ),
    (
        "nchw_dilations_negative_pad",
        NCHW,
        (1, 2, 4, 5),
        (3, 2, 2, 3),
        [
            WindowDim(2, 1, -1, 2, window_dilation=2, base_dilation=2),
            WindowDim(3, 2, 2, -1, base_dilation=3),
        ],
        1,
        1,
    ),
    (
        "odd_labels_reversal",
        ODD,
        (3, 4, 2, 5),
        (2, 4, 3, 3),
        [WindowDim(2, 1, 1, 0, window_reversal=True), WindowDim(3, 1, 1, 1)],
        1,
        1,
    ),
    (
        "feature_groups",
        NHWC,
        (2, 4, 4, 6),
        (3, 3, 2, 6),
        [WindowDim(3, 1, 1, 1), WindowDim(3, 1, 1, 1, window_reversal=True)],
        3,
        1,
    ),
    (
        "batch_groups",
        NHWC,
        (4, 3, 3, 2),
        (2, 2, 2, 6),
        [WindowDim(2), WindowDim(2, 1, 0, 0, window_dilation=1)],
        1,
        2,
    ),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=[c[0] for c in CONV_CASES])
def test_convolution_matches_direct_loops(case) -> None:
    _, labels, lhs_shape, rhs_shape, dims, fgc, bgc = case
    rng = np.random.default_rng(1)
    lhs = rng.standard_normal(lhs_shape).astype(np.float32)
    rhs = rng.standard_normal(rhs_shape).astype(np.float32)
    want = naive_conv(lhs, rhs, labels, dims, fgc, bgc)
    (got,) = run(
        Opcode.CONVOLUTION,
        [lhs, rhs],
        Shape.array(T.F32, want.shape),
        window=Window(tuple(dims)),
        dim_labels=labels,
        feature_group_count=fgc,
        batch_group_count=bgc,
    )
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_convolution_without_window_and_spatial_dims() -> None:
    lhs = np.arange(6, dtype=np.int32).reshape(2, 3)  # [batch, feature]
    rhs = np.arange(12, dtype=np.int32).reshape(3, 4)  # [in, out]
    labels = ConvDimLabels(0, 1, (), 0, 1, (), 0, 1, ())
    (got,) = run(Opcode.CONVOLUTION, [lhs, rhs], Shape.array(T.S32, [2, 4]), dim_labels=labels)
    np.testing.assert_array_equal(got, lhs @ rhs)


# --- fft ---------------------------------------------------------------------------------


def dft_matrix(n: int, sign: int) -> np.ndarray:
    k = np.arange(n)
    return np.exp(sign * 2j * np.pi * np.outer(k, k) / n)


def test_fft_and_ifft_over_two_dims() -> None:
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((2, 3, 4)) + 1j * rng.standard_normal((2, 3, 4))).astype(np.complex64)
    f3, f4 = dft_matrix(3, -1), dft_matrix(4, -1)
    want = np.einsum("ab,cd,nbd->nac", f3, f4, x.astype(np.complex128))
    (got,) = run(Opcode.FFT, [x], Shape.array(T.C64, [2, 3, 4]), fft_type="FFT", fft_length=(3, 4))
    assert got.dtype == np.complex64
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    (back,) = run(
        Opcode.FFT, [got], Shape.array(T.C64, [2, 3, 4]), fft_type="IFFT", fft_length=(3, 4)
    )
    np.testing.assert_allclose(back, x, rtol=1e-5, atol=1e-5)


def test_rfft_and_irfft() -> None:
    x = np.array([[1, 2, 0, -1, 3, 0.5]], dtype=np.float32)
    want = (dft_matrix(6, -1) @ x[0].astype(np.float64))[:4]
    (got,) = run(Opcode.FFT, [x], Shape.array(T.C64, [1, 4]), fft_type="RFFT", fft_length=(6,))
    assert got.dtype == np.complex64
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-5)
    (back,) = run(Opcode.FFT, [got], Shape.array(T.F32, [1, 6]), fft_type="IRFFT", fft_length=(6,))
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, x, rtol=1e-5, atol=1e-5)


# --- cholesky and triangular-solve -------------------------------------------------------


def spd_batch(rng: np.random.Generator, batch: int, n: int) -> np.ndarray:
    m = rng.standard_normal((batch, n, n))
    return m @ np.swapaxes(m, -1, -2) + n * np.eye(n)


@pytest.mark.parametrize("lower", [True, False])
def test_cholesky_reads_one_triangle(lower: bool) -> None:
    rng = np.random.default_rng(3)
    a = spd_batch(rng, 2, 4)
    garbage = a.copy()
    garbage[:, *np.triu_indices(4, 1) if lower else np.tril_indices(4, -1)] = 99.0
    (got,) = run(Opcode.CHOLESKY, [garbage], Shape.array(T.F64, [2, 4, 4]), lower=lower)
    for i in range(2):
        factor = got[i]
        if lower:
            assert np.allclose(np.triu(factor, 1), 0)
            np.testing.assert_allclose(factor @ factor.T, a[i], rtol=1e-12)
        else:
            assert np.allclose(np.tril(factor, -1), 0)
            np.testing.assert_allclose(factor.T @ factor, a[i], rtol=1e-12)


def test_cholesky_of_non_positive_definite_is_nan() -> None:
    a = np.array([[[4, 0], [0, 1]], [[1, 0], [0, -1]]], dtype=np.float32)
    (got,) = run(Opcode.CHOLESKY, [a], Shape.array(T.F32, [2, 2, 2]), lower=True)
    np.testing.assert_allclose(got[0], [[2, 0], [0, 1]])
    assert np.isnan(got[1]).all()


@pytest.mark.parametrize(
    "left_side,lower,unit,transpose",
    list(
        itertools.product(
            [True, False], [True, False], [True, False], ["NO_TRANSPOSE", "TRANSPOSE", "ADJOINT"]
        )
    ),
)
def test_triangular_solve_satisfies_the_system(left_side, lower, unit, transpose) -> None:
    rng = np.random.default_rng(4)
    m, n = 4, 3
    a = rng.standard_normal((2, m, m)) + 1j * rng.standard_normal((2, m, m))
    a += 4 * np.eye(m)
    b = rng.standard_normal((2, m, n) if left_side else (2, n, m)).astype(np.complex128)
    (x,) = run(
        Opcode.TRIANGULAR_SOLVE,
        [a, b],
        Shape.array(T.C128, b.shape),
        left_side=left_side,
        lower=lower,
        unit_diagonal=unit,
        transpose_a=transpose,
    )
    tri = np.tril(a) if lower else np.triu(a)
    if unit:
        tri[:, np.arange(m), np.arange(m)] = 1
    op = {
        "NO_TRANSPOSE": tri,
        "TRANSPOSE": np.swapaxes(tri, -1, -2),
        "ADJOINT": np.conj(np.swapaxes(tri, -1, -2)),
    }[transpose]
    residual = op @ x - b if left_side else x @ op - b
    assert np.abs(residual).max() < 1e-10


def test_triangular_solve_zero_pivot_gives_inf_or_nan() -> None:
    a = np.array([[0, 0], [1, 1]], dtype=np.float32)
    b = np.array([[1], [1]], dtype=np.float32)
    (x,) = run(
        Opcode.TRIANGULAR_SOLVE, [a, b], Shape.array(T.F32, [2, 1]), left_side=True, lower=True
    )
    assert not np.isfinite(x).all()


# --- batch norm --------------------------------------------------------------------------


def bn_training_reference(x, scale, offset, eps, fi):
    axes = tuple(d for d in range(x.ndim) if d != fi)
    shape = [1] * x.ndim
    shape[fi] = -1
    mean = x.mean(axis=axes)
    var = ((x - mean.reshape(shape)) ** 2).mean(axis=axes)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return y * scale.reshape(shape) + offset.reshape(shape), mean, var


def test_batch_norm_training_and_inference() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32) * 3 + 1
    scale = rng.standard_normal(3).astype(np.float32)
    offset = rng.standard_normal(3).astype(np.float32)
    f3 = Shape.array(T.F32, [3])
    shape = Shape.tuple_of([Shape.array(T.F32, [2, 3, 4]), f3, f3])
    y, mean, var = run(
        Opcode.BATCH_NORM_TRAINING, [x, scale, offset], shape, epsilon=0.01, feature_index=1
    )
    wy, wmean, wvar = bn_training_reference(x.astype(np.float64), scale, offset, 0.01, 1)
    np.testing.assert_allclose(y, wy, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mean, wmean, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(var, wvar, rtol=1e-6)
    (yi,) = run(
        Opcode.BATCH_NORM_INFERENCE,
        [x, scale, offset, mean, var],
        Shape.array(T.F32, [2, 3, 4]),
        epsilon=0.01,
        feature_index=1,
    )
    np.testing.assert_allclose(yi, wy, rtol=1e-5, atol=1e-6)


def test_batch_norm_grad_matches_finite_differences() -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 2, 2))
    scale, offset = rng.standard_normal(2), rng.standard_normal(2)
    dy = rng.standard_normal((3, 2, 2))
    eps, fi = 0.1, 1
    _, mean, var = bn_training_reference(x, scale, offset, eps, fi)

    def loss(x_, scale_, offset_):
        return float((bn_training_reference(x_, scale_, offset_, eps, fi)[0] * dy).sum())

    def numeric_grad(f, v):
        g = np.zeros_like(v)
        for i in np.ndindex(*v.shape):
            step = np.zeros_like(v)
            step[i] = 1e-6
            g[i] = (f(v + step) - f(v - step)) / 2e-6
        return g

    f2 = Shape.array(T.F64, [2])
    shape = Shape.tuple_of([Shape.array(T.F64, [3, 2, 2]), f2, f2])
    gx, gscale, goffset = run(
        Opcode.BATCH_NORM_GRAD, [x, scale, mean, var, dy], shape, epsilon=eps, feature_index=fi
    )
    np.testing.assert_allclose(
        gx, numeric_grad(lambda v: loss(v, scale, offset), x), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(
        gscale, numeric_grad(lambda v: loss(x, v, offset), scale), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(
        goffset, numeric_grad(lambda v: loss(x, scale, v), offset), rtol=1e-5, atol=1e-7
    )
