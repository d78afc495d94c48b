"""Imports every non-elemental CPU kernel module so that each registers in CPU_KERNELS.

The driver imports this one module; the kernels themselves live in dot.py, conv.py,
reduction.py, gather_scatter.py, sort.py, fft.py, rng.py and linalg.py.
"""

from backends.cpu import conv, dot, fft, gather_scatter, linalg, reduction, rng, sort  # noqa: F401

__all__: list[str] = []
