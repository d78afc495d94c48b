"""Aligned host buffers for compiled code: numpy arrays whose data is 64-byte aligned.

Generated code and generated libraries promise nothing about argument alignment, but
results and the temporary arena are always allocated here, at (at least) 64 bytes, so
that vector loads and stores of the kernels never straddle cache lines.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ALIGNMENT = 64


def aligned_empty(dims: Sequence[int], dtype: np.dtype | type,
                  alignment: int = ALIGNMENT) -> np.ndarray:
    """An uninitialised C-contiguous array whose data pointer is a multiple of `alignment`.

    Zero-size arrays still get a valid (aligned) data pointer.
    """
    dt = np.dtype(dtype)
    count = 1
    for d in dims:
        count *= int(d)
    nbytes = count * dt.itemsize
    raw = np.empty(nbytes + alignment, dtype=np.uint8)
    start = (-raw.ctypes.data) % alignment
    # The ndarray constructor keeps the offset even for zero-size arrays (a slice would not).
    return np.ndarray(tuple(int(d) for d in dims), dtype=dt, buffer=raw, offset=start)


def aligned_zeros(dims: Sequence[int], dtype: np.dtype | type,
                  alignment: int = ALIGNMENT) -> np.ndarray:
    """Like `aligned_empty`, filled with zeros."""
    a = aligned_empty(dims, dtype, alignment)
    a.fill(0)
    return a


def is_aligned(a: np.ndarray, alignment: int = ALIGNMENT) -> bool:
    """True when the array's data pointer is a multiple of `alignment`."""
    return a.ctypes.data % alignment == 0
