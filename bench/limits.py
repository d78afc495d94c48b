"""This machine's limits: measured memory-copy bandwidth and derived FP32 peak FLOP/s.

Benchmarks report the fraction of these limits that a run reached: memory bandwidth for
elementwise work, FP32 peak for dot. Bandwidth is measured (numpy copies of a buffer much
larger than any cache); the peak is derived from /proc/cpuinfo, because measuring it needs
hand-written kernels. Both derivations are printed so that a reader can judge them.

`python -m bench.limits` prints them alone.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

COPY_BYTES = 256 * 1024 * 1024
COPY_RUNS = 7
# Modern x86 server cores (Zen 4/5, Intel since Haswell) issue two FMA per cycle.
FMA_PIPES = 2
FLOPS_PER_FMA = 2


@dataclass(frozen=True)
class CpuInfo:
    """What /proc/cpuinfo says about the cores this process may run on."""

    model: str
    mhz: float | None
    flags: frozenset[str]
    cores: int


@dataclass(frozen=True)
class PeakFlops:
    """FP32 peak: cores x GHz x FMA pipes x flop per FMA x f32 lanes."""

    cores: int
    ghz: float
    fma_pipes: int
    flops_per_fma: int
    lanes: int
    vector_isa: str
    given_gflops: float | None = None

    @property
    def per_core_gflops(self) -> float:
        return self.ghz * self.fma_pipes * self.flops_per_fma * self.lanes

    @property
    def gflops(self) -> float:
        if self.given_gflops is not None:
            return self.given_gflops
        return self.cores * self.per_core_gflops

    def derivation(self) -> str:
        """The arithmetic that gave the peak, for printing."""
        if self.given_gflops is not None:
            return f"{self.gflops:.1f} GFLOP/s (given with --peak-gflops)"
        return (
            f"{self.cores} core(s) x {self.ghz:.3f} GHz x {self.fma_pipes} FMA pipes x "
            f"{self.flops_per_fma} flop/FMA x {self.lanes} f32 lanes ({self.vector_isa}) = "
            f"{self.gflops:.1f} GFLOP/s ({self.per_core_gflops:.1f} per core)"
        )


@dataclass(frozen=True)
class Bandwidth:
    """Memory-copy bandwidth: bytes read plus bytes written per second, median of runs."""

    gbytes_per_s: float
    buffer_bytes: int
    runs: int
    spread: tuple[float, float]
    overridden: bool = False

    def derivation(self) -> str:
        if self.overridden:
            return f"{self.gbytes_per_s:.1f} GB/s (given with --bandwidth-gbs)"
        lo, hi = self.spread
        return (
            f"np.copyto of {self.buffer_bytes >> 20} MiB, median of {self.runs} runs, "
            f"(read + write bytes) / time = {self.gbytes_per_s:.1f} GB/s "
            f"(runs ranged {lo:.1f}..{hi:.1f}; one numpy thread)"
        )


@dataclass(frozen=True)
class MachineLimits:
    """The limits benchmarks divide by, with what they were derived from."""

    cpu: CpuInfo
    peak: PeakFlops
    bandwidth: Bandwidth

    def describe(self) -> list[str]:
        """Lines for the report header."""
        mhz = "unknown" if self.cpu.mhz is None else f"{self.cpu.mhz:.0f} MHz"
        return [
            f"CPU: {self.cpu.model}, {self.cpu.cores} core(s) available to this process, "
            f"clock {mhz} (/proc/cpuinfo 'cpu MHz', boost not counted)",
            f"FP32 peak: {self.peak.derivation()}",
            f"Copy bandwidth: {self.bandwidth.derivation()}",
        ]


def available_cores() -> int:
    """The number of CPUs this process may run on (respects taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def read_cpuinfo(path: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    """Model, clock and ISA flags of this machine; clock None where the file has none."""
    model = platform.processor() or platform.machine()
    mhz: list[float] = []
    flags: set[str] = set()
    try:
        text = path.read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        value = value.strip()
        if key == "model name":
            model = value
        elif key == "cpu MHz":
            mhz.append(float(value))
        elif key in ("flags", "Features"):
            flags.update(value.split())
    return CpuInfo(model, max(mhz) if mhz else None, frozenset(flags), available_cores())


def f32_lanes(flags: frozenset[str]) -> tuple[int, str]:
    """f32 lanes of the widest vector FMA unit the flags show, and the ISA's name."""
    if "avx512f" in flags:
        return 16, "avx512f"
    if "avx2" in flags or "avx" in flags:
        return 8, "avx2" if "avx2" in flags else "avx"
    if "asimd" in flags or "sse2" in flags:
        return 4, "asimd" if "asimd" in flags else "sse2"
    return 1, "scalar"


def peak_flops(cpu: CpuInfo, override_gflops: float | None = None) -> PeakFlops:
    """FP32 peak of the available cores.

    Zen 4 executes 512-bit instructions on 256-bit pipes, so on Zen 4 this is twice the real
    peak; Zen 5 (the project's reference machine, about 250 GFLOP/s per core) has full-width
    512-bit pipes. Without a clock in /proc/cpuinfo, 1 GHz is assumed (the header then says
    the clock is unknown).
    """
    lanes, isa = f32_lanes(cpu.flags)
    per_fma = FLOPS_PER_FMA if ("fma" in cpu.flags or "asimd" in cpu.flags) else 1
    ghz = (cpu.mhz or 1000.0) / 1000.0
    return PeakFlops(cpu.cores, ghz, FMA_PIPES, per_fma, lanes, isa, override_gflops)


def copy_bandwidth(nbytes: int = COPY_BYTES, runs: int = COPY_RUNS) -> Bandwidth:
    """Measured bandwidth of np.copyto between two `nbytes` buffers (median of `runs`)."""
    src = np.ones(nbytes // 4, dtype=np.float32)
    dst = np.zeros_like(src)
    np.copyto(dst, src)  # warm-up: faults in every page of both buffers
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        np.copyto(dst, src)
        elapsed = time.perf_counter() - start
        rates.append(2 * nbytes / elapsed / 1e9)
    return Bandwidth(statistics.median(rates), nbytes, runs, (min(rates), max(rates)))


def measure(
    peak_override: float | None = None, bandwidth_override: float | None = None
) -> MachineLimits:
    """This machine's limits (overrides replace the derived or measured value)."""
    cpu = read_cpuinfo()
    if bandwidth_override is not None:
        bandwidth = Bandwidth(bandwidth_override, 0, 0, (0.0, 0.0), overridden=True)
    else:
        bandwidth = copy_bandwidth()
    return MachineLimits(cpu, peak_flops(cpu, peak_override), bandwidth)


if __name__ == "__main__":
    for line in measure().describe():
        print(line)
