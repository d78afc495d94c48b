"""CPU fft kernel (backends/cpu/fft.py) against the reference evaluator.

All four transform types over one, two and three trailing dimensions, for power-of-two
lengths (radix-2 path) and other lengths (direct DFT), in single and double precision.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.backends.cpu.test_kernels_common import check, module_text

RNG = np.random.default_rng(13)

SHAPES = [((3, 8), 1), ((2, 6), 1), ((4, 5, 16), 2), ((2, 3, 4, 5), 3), ((7,), 1), ((1,), 1),
          ((2, 1024), 1), ((3, 12, 10), 2)]


def fft_module(kind: str, in_type: str, out_type: str, in_dims: tuple[int, ...],
               out_dims: tuple[int, ...], lengths: tuple[int, ...]) -> str:
    return module_text(
        [f"{in_type}[{','.join(map(str, in_dims))}]"],
        [f"f = {out_type}[{','.join(map(str, out_dims))}] fft(p0), fft_type={kind}, "
         f"fft_length={{{','.join(map(str, lengths))}}}"],
    )


def complex_input(dims: tuple[int, ...], dtype: type = np.complex64) -> np.ndarray:
    return (RNG.standard_normal(dims) + 1j * RNG.standard_normal(dims)).astype(dtype)


@pytest.mark.parametrize("dims,rank", SHAPES)
@pytest.mark.parametrize("kind", ["FFT", "IFFT"])
def test_complex_transforms(dims: tuple[int, ...], rank: int, kind: str) -> None:
    lengths = dims[-rank:]
    text = fft_module(kind, "c64", "c64", dims, dims, lengths)
    check(text, complex_input(dims), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dims,rank", SHAPES)
def test_real_transforms(dims: tuple[int, ...], rank: int) -> None:
    lengths = dims[-rank:]
    half = dims[:-1] + (dims[-1] // 2 + 1,)
    x = RNG.standard_normal(dims).astype(np.float32)
    check(fft_module("RFFT", "f32", "c64", dims, half, lengths), x, rtol=1e-4, atol=1e-4)
    spectrum = complex_input(half)
    check(fft_module("IRFFT", "c64", "f32", half, dims, lengths), spectrum,
          rtol=1e-4, atol=1e-4)


def test_double_precision() -> None:
    x = RNG.standard_normal((3, 12))
    check(fft_module("RFFT", "f64", "c128", (3, 12), (3, 7), (12,)), x, rtol=1e-12, atol=1e-12)
    z = complex_input((2, 16), np.complex128)
    check(fft_module("FFT", "c128", "c128", (2, 16), (2, 16), (16,)), z,
          rtol=1e-12, atol=1e-12)
