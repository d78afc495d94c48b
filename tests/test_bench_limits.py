"""The bench's machine limits: the measured FP32 peak and how it is printed."""

from bench.limits import CpuInfo, PeakFlops, measured_fma_gflops, peak_flops


def test_fma_loop_measures_a_positive_rate_below_any_real_cpu() -> None:
    rate = measured_fma_gflops(4, iterations=1 << 12, runs=2)
    assert 0.1 < rate < 10_000


def test_measured_peak_is_per_core_rate_times_cores_and_says_so() -> None:
    peak = PeakFlops(2, 2.0, 2, 2, 8, "avx2", measured_per_core_gflops=100.0)
    assert peak.gflops == 200.0
    assert peak.nominal_per_core_gflops == 64.0
    text = peak.derivation()
    assert "100.0 GFLOP/s measured on one core" in text and "= 200.0 GFLOP/s" in text
    assert "64.0 per core" in text


def test_given_peak_is_not_measured() -> None:
    cpu = CpuInfo("test", 3000.0, frozenset({"avx2", "fma"}), 4)
    peak = peak_flops(cpu, override_gflops=50.0)
    assert peak.measured_per_core_gflops is None and peak.gflops == 50.0
    derived = peak_flops(cpu, measure_fma=False)
    assert derived.gflops == 4 * 3.0 * 2 * 2 * 8
