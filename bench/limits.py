"""This machine's limits: measured memory-copy bandwidth and FP32 peak FLOP/s.

Benchmarks report the fraction of these limits that a run reached: memory bandwidth for
elementwise work, FP32 peak for dot. Bandwidth is measured (numpy copies of a buffer much
larger than any cache). The peak is measured too, by a loop of independent vector FMAs
JIT-compiled with llvmlite for this CPU (one core, times the cores), since the clock in
/proc/cpuinfo is the base clock and cores run faster under load; the figure derived from
/proc/cpuinfo is printed beside it. Both derivations are printed so that a reader can judge
them.

`python -m bench.limits` prints them alone.
"""

from __future__ import annotations

import ctypes
import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir

from backends.cpu import object as objcode

COPY_BYTES = 256 * 1024 * 1024
COPY_RUNS = 7
# Modern x86 server cores (Zen 4/5, Intel since Haswell) issue two FMA per cycle.
FMA_PIPES = 2
FLOPS_PER_FMA = 2
# The FMA loop: independent accumulators (enough to cover 2 pipes x 4-5 cycles of latency
# with room to spare), iterations per timed call, and timed calls (the fastest counts).
FMA_CHAINS = 12
FMA_ITERATIONS = 1 << 20
FMA_RUNS = 9


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
    # One core's FMA loop rate, when measured (the peak is then this times the cores).
    measured_per_core_gflops: float | None = None

    @property
    def per_core_gflops(self) -> float:
        if self.measured_per_core_gflops is not None:
            return self.measured_per_core_gflops
        return self.nominal_per_core_gflops

    @property
    def nominal_per_core_gflops(self) -> float:
        """What /proc/cpuinfo's clock gives: GHz x FMA pipes x flop per FMA x lanes."""
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
        nominal = (f"{self.ghz:.3f} GHz x {self.fma_pipes} FMA pipes x {self.flops_per_fma} "
                   f"flop/FMA x {self.lanes} f32 lanes ({self.vector_isa}) = "
                   f"{self.nominal_per_core_gflops:.1f} per core")
        if self.measured_per_core_gflops is None:
            return f"{self.cores} core(s) x {nominal} = {self.gflops:.1f} GFLOP/s"
        return (f"{self.cores} core(s) x {self.per_core_gflops:.1f} GFLOP/s measured on one "
                f"core ({FMA_CHAINS} independent {self.lanes}-lane FMA chains, fastest of "
                f"{FMA_RUNS} runs) = {self.gflops:.1f} GFLOP/s; /proc/cpuinfo's base clock "
                f"would give {nominal}")


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


def _fma_loop_ir(lanes: int, chains: int) -> str:
    """`float fma_loop(i64 n)`: `chains` independent <lanes x float> FMA recurrences run n
    times, their sum returned (so no chain is dead code). Each step is a = a * m + c with
    m just below 1, which stays finite for any n."""
    vec = ir.VectorType(ir.FloatType(), lanes)
    module = ir.Module(name="fma_loop")
    fma = ir.Function(module, ir.FunctionType(vec, [vec, vec, vec]), name="llvm.fma." +
                      f"v{lanes}f32")
    fn = ir.Function(module, ir.FunctionType(ir.FloatType(), [ir.IntType(64)]), name="fma_loop")
    entry, loop, done = (fn.append_basic_block(n) for n in ("entry", "loop", "done"))
    b = ir.IRBuilder(entry)
    mul = ir.Constant(vec, [0.999999] * lanes)
    add = ir.Constant(vec, [1e-6] * lanes)
    starts = [ir.Constant(vec, [float(k + 1)] * lanes) for k in range(chains)]
    b.branch(loop)
    b.position_at_end(loop)
    i = b.phi(ir.IntType(64), name="i")
    accs = [b.phi(vec, name=f"acc{k}") for k in range(chains)]
    nexts = [b.call(fma, [a, mul, add]) for a in accs]
    step = b.add(i, ir.Constant(ir.IntType(64), 1))
    i.add_incoming(ir.Constant(ir.IntType(64), 0), entry)
    i.add_incoming(step, loop)
    for acc, start, nxt in zip(accs, starts, nexts, strict=True):
        acc.add_incoming(start, entry)
        acc.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", step, fn.args[0]), loop, done)
    b.position_at_end(done)
    total = nexts[0]
    for v in nexts[1:]:
        total = b.fadd(total, v)
    result = b.extract_element(total, ir.Constant(ir.IntType(32), 0))
    for k in range(1, lanes):
        result = b.fadd(result, b.extract_element(total, ir.Constant(ir.IntType(32), k)))
    b.ret(result)
    return str(module)


def measured_fma_gflops(lanes: int, chains: int = FMA_CHAINS,
                        iterations: int = FMA_ITERATIONS, runs: int = FMA_RUNS) -> float:
    """FP32 GFLOP/s of one core running the FMA loop (fastest of `runs` calls), compiled
    for the host as the CPU backend compiles (its target resolution and machine)."""
    machine = objcode.target_machine(objcode.Target.resolve(), jit=True)
    engine = llvm.create_mcjit_compiler(objcode.parse_and_verify(_fma_loop_ir(lanes, chains)),
                                        machine)
    engine.finalize_object()
    loop = ctypes.CFUNCTYPE(ctypes.c_float, ctypes.c_int64)(
        engine.get_function_address("fma_loop"))
    loop(1 << 10)  # warm-up
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        loop(iterations)
        best = min(best, time.perf_counter() - start)
    return iterations * chains * lanes * FLOPS_PER_FMA / best / 1e9


def peak_flops(cpu: CpuInfo, override_gflops: float | None = None,
               measure_fma: bool = True) -> PeakFlops:
    """FP32 peak of the available cores: one core's measured FMA-loop rate times the cores
    (`measure_fma`), else derived from /proc/cpuinfo.

    The derivation assumes two full-width FMA pipes: Zen 4 executes 512-bit instructions on
    256-bit pipes, so there it gives twice the real peak; Zen 5 (the project's reference
    machine, about 250 GFLOP/s per core) has full-width 512-bit pipes. Without a clock in
    /proc/cpuinfo, 1 GHz is assumed (the header then says the clock is unknown).
    """
    lanes, isa = f32_lanes(cpu.flags)
    per_fma = FLOPS_PER_FMA if ("fma" in cpu.flags or "asimd" in cpu.flags) else 1
    ghz = (cpu.mhz or 1000.0) / 1000.0
    measured = None
    if measure_fma and override_gflops is None and per_fma == FLOPS_PER_FMA:
        measured = measured_fma_gflops(lanes)
    return PeakFlops(cpu.cores, ghz, FMA_PIPES, per_fma, lanes, isa, override_gflops,
                     measured)


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
