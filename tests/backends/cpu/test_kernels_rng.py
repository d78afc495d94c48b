"""CPU random-number kernels (backends/cpu/rng.py).

rng-bit-generator must be bit-exact with XLA: it is checked against the evaluator for
ThreeFry, Philox and the default algorithm over shapes that exercise the split dimension
(odd, even, rank 0), 64-bit and narrow types and a counter that wraps; against the
published Philox-4x32-10 known-answer vector; and against the corpus case produced by XLA.
rng has no values to match: uniform draws must lie in [a, b), normal draws must have about
the requested mean and deviation, and every run must return the same numbers.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.backends.cpu.test_kernels_common import check, compile_and_run, module_text
from tests.conftest import CORPUS

STATE = np.array([0x123456789ABCDEF0, 0xFFFFFFFFFFFFFFFE], np.uint64)


def rbg_module(algorithm: str, state_size: int, dtype: str, dims: tuple[int, ...]) -> str:
    shape = ",".join(map(str, dims))
    return module_text(
        [f"u64[{state_size}]"],
        [f"r = (u64[{state_size}], {dtype}[{shape}]) rng-bit-generator(p0), "
         f"algorithm={algorithm}"],
    )


@pytest.mark.parametrize("algorithm", ["rng_three_fry", "rng_philox", "rng_default"])
@pytest.mark.parametrize("dtype,dims", [
    ("u32", (5,)), ("u32", (3, 5)), ("u32", (4, 3)), ("u32", (2, 2, 3)), ("u32", ()),
    ("u32", (7, 1)), ("u64", (3,)), ("s64", (2, 3)), ("u8", (9,)), ("u16", (3, 3)),
    ("s16", (6,)), ("s32", (0,)),
])
def test_rng_bit_generator_matches_evaluator(algorithm: str, dtype: str,
                                             dims: tuple[int, ...]) -> None:
    check(rbg_module(algorithm, 2, dtype, dims), STATE)


def test_philox_with_three_word_state() -> None:
    state = np.array([7, 0xFFFFFFFFFFFFFFFF, 3], np.uint64)
    check(rbg_module("rng_philox", 3, "u32", (10,)), state)


def test_philox_known_answer() -> None:
    # Random123's Philox-4x32-10 vector: key (a4093822, 299f31d0), counter
    # (243f6a88, 85a308d3, 13198a2e, 03707344) -> (d16cfe09, 94fdcceb, 5001e420, 24126ea1).
    state = np.array([0x299F31D0A4093822, 0x85A308D3243F6A88, 0x0370734413198A2E], np.uint64)
    new_state, bits = compile_and_run(rbg_module("rng_philox", 3, "u32", (4,)), state)
    np.testing.assert_array_equal(bits, np.array([0xD16CFE09, 0x94FDCCEB, 0x5001E420,
                                                  0x24126EA1], np.uint32))
    np.testing.assert_array_equal(new_state, state + np.array([0, 1, 0], np.uint64))


def test_threefry_corpus_case() -> None:
    case = CORPUS / "hlo" / "rng_bit_generator_threefry_small"
    if not case.with_suffix(".hlo").exists():
        pytest.skip("corpus not present")
    data = np.load(case.with_suffix(".npz"))
    got = compile_and_run(case.with_suffix(".hlo").read_text(), data["arg0"])
    np.testing.assert_array_equal(got[0], data["out0"])
    np.testing.assert_array_equal(got[1], data["out1"])


def rng_module(dtype: str, distribution: str, n: int) -> str:
    return module_text([f"{dtype}[]", f"{dtype}[]"],
                       [f"r = {dtype}[{n}] rng(p0, p1), distribution={distribution}"])


def test_rng_uniform_float_range_and_determinism() -> None:
    text = rng_module("f32", "rng_uniform", 1001)
    low, high = np.array(2.0, np.float32), np.array(5.0, np.float32)
    (first,) = compile_and_run(text, low, high)
    (again,) = compile_and_run(text, low, high)
    np.testing.assert_array_equal(first, again)
    assert first.min() >= 2.0 and first.max() < 5.0
    assert abs(first.mean() - 3.5) < 0.15


def test_rng_uniform_integers_cover_the_range() -> None:
    text = rng_module("s32", "rng_uniform", 2000)
    (got,) = compile_and_run(text, np.array(-3, np.int32), np.array(7, np.int32))
    assert got.min() == -3 and got.max() == 6
    assert np.bincount(got + 3).min() > 120


@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_rng_normal_moments(dtype: str) -> None:
    numpy_type = np.float32 if dtype == "f32" else np.float64
    text = rng_module(dtype, "rng_normal", 20001)
    (got,) = compile_and_run(text, np.array(1.0, numpy_type), np.array(2.0, numpy_type))
    assert got.dtype == numpy_type
    assert abs(got.mean() - 1.0) < 0.06 and abs(got.std() - 2.0) < 0.06
