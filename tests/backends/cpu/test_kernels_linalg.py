"""CPU cholesky, triangular-solve and batch-norm kernels against the reference evaluator.

Cholesky: both triangles, batches, complex matrices, and a matrix that is not positive
definite (all NaN). Triangular-solve: every combination of side, triangle, unit diagonal
and transposition, real and complex. Batch norm: training, inference and gradient with the
feature dimension first, inside and last, and in f16.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.backends.cpu.test_kernels_common import check, module_text

RNG = np.random.default_rng(17)


def positive_definite(batch: int, n: int, dtype: type) -> np.ndarray:
    a = RNG.standard_normal((batch, n, n))
    if np.issubdtype(dtype, np.complexfloating):
        a = a + 1j * RNG.standard_normal((batch, n, n))
    return (a @ np.conj(np.swapaxes(a, 1, 2)) + n * np.eye(n)).astype(dtype)


@pytest.mark.parametrize("lower", ["true", "false"])
@pytest.mark.parametrize("dtype,numpy_type", [("f32", np.float32), ("f64", np.float64),
                                              ("c64", np.complex64)])
def test_cholesky(lower: str, dtype: str, numpy_type: type) -> None:
    a = positive_definite(3, 5, numpy_type)
    a[1] = -a[1]  # not positive definite: all NaN
    text = module_text([f"{dtype}[3,5,5]"], [f"c = {dtype}[3,5,5] cholesky(p0), lower={lower}"])
    (got,) = check(text, a, rtol=1e-4, atol=1e-4)
    assert np.isnan(got[1]).all() and not np.isnan(got[0]).any()


def trsm_line(k: int, dtype: str, a_shape: str, b_shape: str, left: bool, lower: bool,
              unit: bool, transpose: str) -> str:
    flags = (f"left_side={str(left).lower()}, lower={str(lower).lower()}, "
             f"unit_diagonal={str(unit).lower()}, transpose_a={transpose}")
    operand = "p1" if left else "p2"
    return f"x{k} = {dtype}{b_shape} triangular-solve(p0, {operand}), {flags}"


@pytest.mark.parametrize("dtype,numpy_type", [("f32", np.float32), ("c64", np.complex64)])
def test_triangular_solve_all_variants(dtype: str, numpy_type: type) -> None:
    a = RNG.standard_normal((2, 5, 5)) + 4 * np.eye(5)
    left_b = RNG.standard_normal((2, 5, 3))
    right_b = RNG.standard_normal((2, 3, 5))
    if numpy_type is np.complex64:
        a = a + 1j * RNG.standard_normal((2, 5, 5))
        left_b = left_b + 1j * RNG.standard_normal((2, 5, 3))
    variants = list(itertools.product([True, False], [True, False], [True, False],
                                      ["NO_TRANSPOSE", "TRANSPOSE", "ADJOINT"]))
    body = [
        trsm_line(k, dtype, "[2,5,5]", "[2,5,3]" if left else "[2,3,5]", left, lower, unit, tr)
        for k, (left, lower, unit, tr) in enumerate(variants)
    ]
    shapes = ", ".join(f"{dtype}[2,5,3]" if v[0] else f"{dtype}[2,3,5]" for v in variants)
    body.append(f"t = ({shapes}) tuple({', '.join(f'x{k}' for k in range(len(variants)))})")
    text = module_text([f"{dtype}[2,5,5]", f"{dtype}[2,5,3]", f"{dtype}[2,3,5]"], body)
    check(text, a.astype(numpy_type), left_b.astype(numpy_type), right_b.astype(numpy_type),
          rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dims,feature", [((2, 4, 4, 3), 3), ((5, 4, 3), 1), ((6, 2), 0)])
def test_batch_norm_training(dims: tuple[int, ...], feature: int) -> None:
    shape = ",".join(map(str, dims))
    n = dims[feature]
    text = module_text(
        [f"f32[{shape}]", f"f32[{n}]", f"f32[{n}]"],
        [f"t = (f32[{shape}], f32[{n}], f32[{n}]) batch-norm-training(p0, p1, p2), "
         f"epsilon=0.001, feature_index={feature}"],
    )
    x = (RNG.standard_normal(dims) * 3 + 1).astype(np.float32)
    scale = RNG.standard_normal(n).astype(np.float32)
    offset = RNG.standard_normal(n).astype(np.float32)
    check(text, x, scale, offset, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype,numpy_type,tol", [("f32", np.float32, 1e-5),
                                                  ("f16", np.float16, 2e-3)])
def test_batch_norm_inference(dtype: str, numpy_type: type, tol: float) -> None:
    text = module_text(
        [f"{dtype}[2,4,5]"] + [f"{dtype}[4]"] * 4,
        [f"y = {dtype}[2,4,5] batch-norm-inference(p0, p1, p2, p3, p4), epsilon=0.01, "
         f"feature_index=1"],
    )
    args = [RNG.standard_normal((2, 4, 5)), RNG.standard_normal(4), RNG.standard_normal(4),
            RNG.standard_normal(4), RNG.uniform(0.5, 2.0, 4)]
    check(text, *[a.astype(numpy_type) for a in args], rtol=tol, atol=tol)


def test_batch_norm_grad() -> None:
    text = module_text(
        ["f32[3,4,5]", "f32[5]", "f32[5]", "f32[5]", "f32[3,4,5]"],
        ["g = (f32[3,4,5], f32[5], f32[5]) batch-norm-grad(p0, p1, p2, p3, p4), "
         "epsilon=0.01, feature_index=2"],
    )
    args = [RNG.standard_normal((3, 4, 5)), RNG.standard_normal(5), RNG.standard_normal(5),
            RNG.uniform(0.5, 2.0, 5), RNG.standard_normal((3, 4, 5))]
    check(text, *[a.astype(np.float32) for a in args], rtol=1e-4, atol=1e-4)
