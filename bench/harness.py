"""Timing: warm-up, interleaved repeated runs, median and IQR, fractions of machine limits.

A benchmark case is a set of contenders computing the same result (tfcompile and its peers).
They are measured in the same run, interleaved: the time budget is spent in a few passes, and
in each pass every contender takes a block of samples, in an order that rotates from pass to
pass, so that a noisy neighbour on a shared machine slows all of them alike rather than one.
Blocks rather than single samples, and an unrecorded settling sample at the start of each
block, because the peers keep thread pools that spin for a while after a call: a contender
sampled right after another one's call would pay for it. Each sample times enough
back-to-back calls to last a few milliseconds (timeit's autorange).

Nothing here asserts a timing. A contender whose output differs from the reference is
measured all the same and flagged in its table row.
"""

from __future__ import annotations

import gc
import math
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import compiler
from bench.limits import MachineLimits
from bench.report import Table, format_rate, format_seconds

TFCOMPILE = "tfcompile"
WARMUP_CALLS = 2
WARMUP_SECONDS = 2.0
PASSES = 3
MIN_SAMPLES_PER_PASS = 2
MAX_SAMPLES_PER_PASS = 20
SETTLE_LIMIT_S = 0.5
SAMPLE_SECONDS = 0.005
MAX_CALLS_PER_SAMPLE = 10_000


@dataclass(frozen=True)
class Metric:
    """The work of one call: `amount` bytes moved or floating-point operations."""

    kind: str  # "bytes" (limit: copy bandwidth) or "flops" (limit: FP32 peak)
    amount: float

    def limit(self, limits: MachineLimits) -> float:
        """The machine limit in units per second."""
        if self.kind == "bytes":
            return limits.bandwidth.gbytes_per_s * 1e9
        return limits.peak.gflops * 1e9

    @property
    def limit_name(self) -> str:
        return "copy bandwidth" if self.kind == "bytes" else "FP32 peak"


@dataclass
class Contender:
    """One implementation: `run()` computes the result once; `to_numpy` converts it."""

    name: str
    run: Callable[[], Any]
    to_numpy: Callable[[Any], np.ndarray] = np.asarray


@dataclass(frozen=True)
class Skip:
    """A contender that could not take part, and why."""

    name: str
    reason: str


@dataclass
class Case:
    """One benchmark: contenders computing `reference` (float64) within `tolerance`.

    The error of an output is max|out - reference| / max|reference|.
    """

    name: str
    description: str
    metric: Metric
    reference: np.ndarray
    tolerance: float
    contenders: list[Contender] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)

    def add(self, make: Callable[[], Contender | Skip], name: str) -> None:
        """Build a contender with `make`; a failure to build becomes a Skip."""
        try:
            made = make()
        except Exception as e:  # noqa: BLE001 - a broken peer must not stop the run
            made = Skip(name, _one_line(e))
        if isinstance(made, Skip):
            self.skipped.append(made)
        else:
            self.contenders.append(made)


@dataclass(frozen=True)
class Timing:
    """Per-call seconds of each sample, with the number of calls per sample."""

    samples: tuple[float, ...]
    calls_per_sample: int

    @property
    def median(self) -> float:
        return float(np.median(self.samples))

    @property
    def iqr(self) -> float:
        q1, q3 = np.percentile(self.samples, [25, 75])
        return float(q3 - q1)


@dataclass(frozen=True)
class Outcome:
    """A measured contender: its timing and how far its output is from the reference."""

    name: str
    timing: Timing
    error: float
    ok: bool


@dataclass
class CaseResult:
    """What one case measured, and what it could not."""

    case: Case
    outcomes: list[Outcome]
    failed: list[Skip]

    def median_of(self, name: str) -> float | None:
        for o in self.outcomes:
            if o.name == name:
                return o.timing.median
        return None

    def table(self, limits: MachineLimits) -> Table:
        """The case's table: one row per contender, then notes for those missing."""
        metric = self.case.metric
        unit = "GB/s" if metric.kind == "bytes" else "GFLOP/s"
        ours = self.median_of(TFCOMPILE)
        headers = [
            "implementation",
            "median",
            "IQR",
            "samples",
            unit,
            f"% of {metric.limit_name}",
            "tfcompile speed-up",
            "max rel err",
        ]
        rows = []
        for o in self.outcomes:
            median = o.timing.median
            rate = metric.amount / median
            speedup = "-" if ours is None else f"{median / ours:.2f}x"
            n = len(o.timing.samples)
            calls = o.timing.calls_per_sample
            rows.append(
                [
                    o.name,
                    format_seconds(median),
                    f"{format_seconds(o.timing.iqr)} ({100 * o.timing.iqr / median:.0f}%)",
                    f"{n} x {calls}" if calls > 1 else str(n),
                    format_rate(rate / 1e9),
                    f"{100 * rate / metric.limit(limits):.1f}%",
                    speedup,
                    f"{o.error:.1e}" + ("" if o.ok else " MISMATCH"),
                ]
            )
        notes = [f"{s.name}: not measured ({s.reason})" for s in self.case.skipped + self.failed]
        if ours is not None:
            notes.insert(
                0,
                "tfcompile speed-up = this row's median / tfcompile's median "
                "(above 1: tfcompile is faster)",
            )
        return Table(f"{self.case.name}: {self.case.description}", headers, rows, notes)


def relative_error(out: np.ndarray, reference: np.ndarray) -> float:
    """max|out - reference| / max|reference| (inf for a shape mismatch)."""
    out = np.asarray(out, dtype=np.float64)
    if out.shape != reference.shape:
        return math.inf
    scale = float(np.max(np.abs(reference))) or 1.0
    return float(np.max(np.abs(out - reference))) / scale


def run_case(case: Case, budget_s: float) -> CaseResult:
    """Warm up, check and time every contender of `case` within about `budget_s` seconds.

    The time is spent in PASSES passes; in each pass every contender runs a block of
    samples, in an order that rotates from pass to pass.
    """
    live: list[tuple[Contender, int, float, float]] = []
    failed: list[Skip] = []
    for c in case.contenders:
        try:
            calls, call_s, error = _warm_up(c, case)
        except Exception as e:  # noqa: BLE001 - a peer that fails is reported, not fatal
            failed.append(Skip(c.name, f"failed when run: {_one_line(e)}"))
            continue
        live.append((c, calls, calls * call_s, error))
    samples: list[list[float]] = [[] for _ in live]
    block_s = budget_s / (PASSES * max(len(live), 1))
    gc.collect()
    gc.disable()
    try:
        for n in range(PASSES):
            for k in range(len(live)):
                i = (k + n) % len(live)
                contender, calls, sample_s, _ = live[i]
                samples[i] += _block(contender.run, calls, sample_s, block_s)
    finally:
        gc.enable()
    outcomes = [
        Outcome(c.name, Timing(tuple(s), calls), error, error <= case.tolerance)
        for (c, calls, _, error), s in zip(live, samples, strict=True)
    ]
    return CaseResult(case, outcomes, failed)


def _block(run: Callable[[], Any], calls: int, sample_s: float, block_s: float) -> list[float]:
    """One contender's samples in one pass: a settling sample, then about block_s of them."""
    if sample_s < SETTLE_LIMIT_S:
        # Not recorded: the previous contender's thread pool may still be spinning, and
        # this one's data may have been evicted from the caches.
        _sample(run, calls)
    taken = []
    start = time.perf_counter()
    while len(taken) < MAX_SAMPLES_PER_PASS:
        taken.append(_sample(run, calls))
        spent = time.perf_counter() - start
        if len(taken) >= MIN_SAMPLES_PER_PASS and spent >= block_s:
            break
    return taken


def _warm_up(c: Contender, case: Case) -> tuple[int, float, float]:
    """Run `c` a few times; return calls per sample, seconds per call and the output's error."""
    out = None
    best = math.inf
    spent = 0.0
    for _ in range(WARMUP_CALLS):
        start = time.perf_counter()
        out = c.run()
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
        spent += elapsed
        # A contender that takes seconds per call is warm after one call; more would only
        # eat the case's time budget.
        if spent > WARMUP_SECONDS:
            break
    error = relative_error(c.to_numpy(out), case.reference)
    calls = math.ceil(SAMPLE_SECONDS / max(best, 1e-9))
    return max(1, min(calls, MAX_CALLS_PER_SAMPLE)), best, error


def _sample(run: Callable[[], Any], calls: int) -> float:
    """Seconds per call over `calls` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - start) / calls


def _one_line(e: BaseException) -> str:
    """An exception as one short line: type, message and the innermost frame."""
    frames = traceback.extract_tb(e.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    message = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {message[:160]}{where}"


def tfcompile_contender(hlo_text: str, args: list[np.ndarray]) -> Contender:
    """The compiled module (compiler.compile, the in-process API) called on `args`, with
    compile's default thread count: as many as this process may use (one under
    --single-thread), as the peers have."""
    exe = compiler.compile(hlo_text)
    return Contender(TFCOMPILE, lambda: exe(*args))


def numpy_contender(fn: Callable[..., np.ndarray], args: list[np.ndarray]) -> Contender:
    """numpy evaluating fn(numpy, *args)."""
    return Contender("numpy", lambda: fn(np, *args))


def summary_table(results: Sequence[CaseResult], limits: MachineLimits) -> Table:
    """One row per case: tfcompile's time, its fraction of the limit, its speed-up per peer."""
    peers: list[str] = []
    for r in results:
        for o in r.outcomes:
            if o.name != TFCOMPILE and o.name not in peers:
                peers.append(o.name)
    headers = ["benchmark", TFCOMPILE, "% of limit", *(f"speed-up vs {p}" for p in peers)]
    rows = []
    for r in results:
        mine = r.median_of(TFCOMPILE)
        metric = r.case.metric
        if mine is None:
            rows.append([r.case.name, "not measured", "-", *("-" for _ in peers)])
            continue
        fraction = metric.amount / mine / metric.limit(limits)
        cells = [r.case.name, format_seconds(mine), f"{100 * fraction:.1f}% {metric.limit_name}"]
        for p in peers:
            theirs = r.median_of(p)
            cells.append("-" if theirs is None else f"{theirs / mine:.2f}x")
        rows.append(cells)
    notes = ["speed-up vs P = P's median time / tfcompile's (above 1: tfcompile is faster)"]
    return Table("summary", headers, rows, notes)
