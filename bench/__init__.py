"""Benchmarks of the compiled CPU code against peers measured in the same run.

`python -m bench [names...]` runs all benchmarks or the named ones (see bench/README.md).
This package is not part of the compiler and nothing in it is imported by the compiler.

This file must not import numpy (or anything that does): `bench/__main__.py` re-executes the
process with a cleaned environment (OPENBLAS_CORETYPE removed, threads pinned), and that only
takes effect if OpenBLAS has not been loaded yet.
"""

# The one table of benchmarks: command-line name -> module defining `cases(peers)`.
BENCHMARKS: dict[str, str] = {
    "elementwise": "bench.bench_elementwise",
    "mlp": "bench.bench_mlp",
    "matmul": "bench.bench_matmul",
    "math": "bench.bench_math",
    "conv": "bench.bench_conv",
    "overhead": "bench.bench_overhead",
    "memory": "bench.bench_memory",
    "train": "bench.bench_train",
}

__all__ = ["BENCHMARKS"]
