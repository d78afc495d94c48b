"""Numeric tests of the tensor-core GEMM (backends/gpu/dot_mma.py) on a GPU.

Marked `gpu`: skipped without a usable CUDA device. Each case is a bf16 or f16 dot that the
dispatcher sends to the mma kernel (checked through the kernel names of the program),
compared with numpy's f32 product of the same (exactly representable) inputs. Products of
16-bit floats are exact in f32, so an f32 result differs only by summation order; a 16-bit
result adds one rounding. Shapes cover whole tiles, ragged M, N and K edges, both memory
orders of each operand, batch dimensions, and a product spanning several tile groups.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

from tests.backends.gpu.gpu_checks import Compile

pytestmark = pytest.mark.gpu

_NUMPY = {"bf16": ml_dtypes.bfloat16, "f16": np.float16, "f32": np.float32}
# (rtol, atol) for |x| < 1 inputs; atol grows with sqrt(K) through the random-walk sum.
_TOLERANCE = {"f32": (1e-3, 1e-3), "f16": (4e-3, 4e-3), "bf16": (1.6e-2, 1.6e-2)}


def _dims(shape: tuple[int, ...]) -> str:
    return ",".join(map(str, shape))


def _module(in_t: str, out_t: str, a: tuple[int, ...], b: tuple[int, ...], out: tuple[int, ...],
            lc: str, rc: str, lb: str = "", rb: str = "") -> str:
    batch = f", lhs_batch_dims={{{lb}}}, rhs_batch_dims={{{rb}}}" if lb else ""
    return (
        "HloModule mma\n\nENTRY e {\n"
        f"  a = {in_t}[{_dims(a)}] parameter(0)\n"
        f"  b = {in_t}[{_dims(b)}] parameter(1)\n"
        f"  ROOT d = {out_t}[{_dims(out)}] dot(a, b){batch}, lhs_contracting_dims={{{lc}}}, "
        f"rhs_contracting_dims={{{rc}}}\n}}\n"
    )


def _inputs(in_t: str, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.uniform(-1.0, 1.0, s).astype(_NUMPY[in_t]) for s in shapes]


def _check(gpu_compile: Compile, text: str, args: list[np.ndarray], want: np.ndarray,
           out_t: str) -> None:
    exe = gpu_compile(text)
    assert any("mma" in name for name in exe.program.kernel_names), (
        f"the dot did not use the tensor-core kernel: {exe.program.kernel_names}")
    got = exe(*args)
    assert got.dtype == np.dtype(_NUMPY[out_t]) and got.shape == want.shape
    rtol, atol = _TOLERANCE[out_t]
    depth_scale = max(1.0, float(np.sqrt(args[0].size / want.size * want.shape[-1])) / 16)
    got32 = got.astype(np.float32)
    close = np.isclose(got32, want, rtol=rtol, atol=atol * depth_scale)
    if not close.all():
        where = np.argwhere(~close)[:4]
        raise AssertionError(
            f"{int((~close).sum())} of {close.size} differ; first at {where.tolist()}: "
            f"got {got32[tuple(where.T)]}, want {want[tuple(where.T)]}")


CASES_2D = [
    # (in, out, M, K, N)
    ("bf16", "f32", 256, 512, 384),     # whole tiles, several K steps
    ("f16", "f32", 256, 512, 384),
    ("bf16", "bf16", 128, 256, 256),
    ("f16", "f16", 128, 96, 128),       # K of three steps: the pipeline's ring wraps
    ("bf16", "f32", 200, 72, 136),      # ragged M, N and K (K not a multiple of 32)
    ("f16", "f32", 40, 40, 40),         # smaller than one tile
    ("bf16", "f32", 1100, 64, 2056),    # more tile rows than one rasterisation group
]


@pytest.mark.parametrize("in_t,out_t,m,k,n", CASES_2D,
                         ids=[f"{c[0]}->{c[1]}-{c[2]}x{c[3]}x{c[4]}" for c in CASES_2D])
def test_row_major_operands(in_t: str, out_t: str, m: int, k: int, n: int,
                            gpu_compile: Compile) -> None:
    """C[m, n] = A[m, k] B[k, n]: A has k contiguous, B has n contiguous (ldmatrix.trans)."""
    a, b = _inputs(in_t, (m, k), (k, n))
    text = _module(in_t, out_t, (m, k), (k, n), (m, n), "1", "0")
    want = a.astype(np.float32) @ b.astype(np.float32)
    _check(gpu_compile, text, [a, b], want, out_t)


@pytest.mark.parametrize("lc,rc", [("0", "0"), ("0", "1"), ("1", "1")],
                         ids=["lhs_k_major", "both_transposed", "rhs_k_contiguous"])
@pytest.mark.parametrize("in_t", ["bf16", "f16"])
def test_operand_memory_orders(lc: str, rc: str, in_t: str, gpu_compile: Compile) -> None:
    """Every combination of contiguous dimensions: A as [K, M], B as [N, K]."""
    m, k, n = 144, 80, 200
    a_shape = (m, k) if lc == "1" else (k, m)
    b_shape = (k, n) if rc == "0" else (n, k)
    a, b = _inputs(in_t, a_shape, b_shape)
    a_mk = a.astype(np.float32) if lc == "1" else a.astype(np.float32).T
    b_kn = b.astype(np.float32) if rc == "0" else b.astype(np.float32).T
    text = _module(in_t, "f32", a_shape, b_shape, (m, n), lc, rc)
    _check(gpu_compile, text, [a, b], a_mk @ b_kn, "f32")


def test_odd_column_count(gpu_compile: Compile) -> None:
    """N = 75 with B as [N, K]: the epilogue stores single elements, not pairs."""
    a, b = _inputs("bf16", (96, 64), (75, 64))
    text = _module("bf16", "f32", (96, 64), (75, 64), (96, 75), "1", "1")
    want = a.astype(np.float32) @ b.astype(np.float32).T
    _check(gpu_compile, text, [a, b], want, "f32")


def test_batched(gpu_compile: Compile) -> None:
    """Batch dimensions in front: one grid covers every batch element."""
    a, b = _inputs("bf16", (3, 96, 64), (3, 64, 80))
    text = _module("bf16", "f32", (3, 96, 64), (3, 64, 80), (3, 96, 80), "2", "1", "0", "0")
    want = np.einsum("bmk,bkn->bmn", a.astype(np.float32), b.astype(np.float32))
    _check(gpu_compile, text, [a, b], want, "f32")


def test_batch_dimension_in_the_middle(gpu_compile: Compile) -> None:
    """A [M, B, K] with batch dim 1 (attention's layout): strided batch and rows."""
    a, b = _inputs("f16", (64, 2, 48), (2, 48, 72))
    text = _module("f16", "f32", (64, 2, 48), (2, 48, 72), (2, 64, 72), "2", "1", "1", "0")
    want = np.einsum("mbk,bkn->bmn", a.astype(np.float32), b.astype(np.float32))
    _check(gpu_compile, text, [a, b], want, "f32")


def test_merged_row_dimensions(gpu_compile: Compile) -> None:
    """[B, S, H] x [H, F] with B and S both rows: the free group merges into one dim."""
    a, b = _inputs("bf16", (4, 50, 64), (64, 96))
    text = _module("bf16", "f32", (4, 50, 64), (64, 96), (4, 50, 96), "2", "0")
    want = np.einsum("bsh,hf->bsf", a.astype(np.float32), b.astype(np.float32))
    _check(gpu_compile, text, [a, b], want, "f32")


def test_special_values_propagate(gpu_compile: Compile) -> None:
    """Infinities and NaNs in the inputs reach exactly the outputs they should."""
    a, b = _inputs("f16", (64, 64), (64, 64))
    a[3, 5] = np.inf
    b[7, 9] = np.nan
    text = _module("f16", "f32", (64, 64), (64, 64), (64, 64), "1", "0")
    got: Any = gpu_compile(text)(a, b)
    want = a.astype(np.float32) @ b.astype(np.float32)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    assert np.array_equal(np.isinf(got), np.isinf(want))
    assert np.allclose(got[finite], want[finite], rtol=1e-3, atol=1e-3)
