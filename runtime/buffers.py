"""Aligned host buffers for compiled code: numpy arrays whose data is 64-byte aligned.

Generated code needs only the natural alignment of each element type for its arguments and
results. The temporary arena and large results are allocated 64-byte aligned all the same,
so that the kernels' vector loads and stores do not straddle cache lines; small results
come straight from `numpy.empty`, since re-aligning them would cost more than it saves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

ALIGNMENT = 64
# Results of at least this many bytes are allocated 64-byte aligned. Below it, numpy's own
# allocation (16-byte aligned with glibc) is used: aligning costs about a microsecond, more
# than the stores that straddle a cache line cost in a kernel writing a few kilobytes.
ALIGN_RESULTS_FROM_BYTES = 16 * 1024


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


def result_allocator(nbytes: int) -> Callable[[Sequence[int], np.dtype], np.ndarray]:
    """How to allocate a result of `nbytes` bytes: called as `alloc(dims, dtype)`."""
    if nbytes >= ALIGN_RESULTS_FROM_BYTES:
        return aligned_empty
    return np.empty
