"""`python -m bench [names...]`: run the benchmarks, print their tables, write results.md.

Before anything imports numpy, the process re-executes itself once with a cleaned
environment: OPENBLAS_CORETYPE is removed (it forces OpenBLAS onto Haswell kernels, which
halves numpy's matmul on an AVX-512 machine, and numpy is a peer in every benchmark), and
with --single-thread the process is pinned to one CPU (`taskset -c N`) with the thread
counts of OpenMP, OpenBLAS and MKL set to 1. JAX ignores thread flags, so the pinning is
what makes it single-threaded.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bench import BENCHMARKS

if TYPE_CHECKING:
    from bench.limits import MachineLimits
    from bench.peers import Peers

CHILD_MARK = "TFCOMPILE_BENCH_REEXEC"
FORCED_CORETYPE = "OPENBLAS_CORETYPE"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = REPO_ROOT / "bench" / "results.md"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Time tfcompile-py's compiled code against numpy, JAX, PyTorch and "
        "onnxruntime (where installed) and against this machine's limits.",
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="name",
        help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})",
    )
    parser.add_argument(
        "--single-thread",
        action="store_true",
        help="pin to one CPU (taskset -c N) and use one thread everywhere",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=6.0,
        metavar="SECONDS",
        help="timing budget per case after warm-up (default 6; every contender still gets "
        "at least 2 samples in each of the 3 passes)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=DEFAULT_RESULTS,
        metavar="PATH",
        help="markdown file written with the tables (default bench/results.md)",
    )
    parser.add_argument("--no-results", action="store_true", help="write no results file")
    parser.add_argument(
        "--no-torch-compile",
        action="store_true",
        help="leave out the torch.compile contender (it compiles each case for tens of seconds)",
    )
    parser.add_argument(
        "--readme",
        action="store_true",
        help="also put the run's summary table into README.md's performance section",
    )
    parser.add_argument(
        "--peak-gflops",
        type=float,
        metavar="X",
        help="use X as the FP32 peak instead of the /proc/cpuinfo estimate",
    )
    parser.add_argument(
        "--bandwidth-gbs",
        type=float,
        metavar="X",
        help="use X as the memory bandwidth instead of measuring it",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}")
    return args


def reexec_if_needed(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """Replace this process by one with the benchmark environment, unless it has it."""
    if os.environ.get(CHILD_MARK):
        return
    env = dict(os.environ)
    env.pop(FORCED_CORETYPE, None)
    if args.single_thread:
        env.update({var: "1" for var in THREAD_VARS})
    if env == dict(os.environ):
        return
    env[CHILD_MARK] = "1"
    # The child must find this package whatever its working directory.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "bench", *argv]
    if args.single_thread:
        cpu = min(os.sched_getaffinity(0))
        taskset = shutil.which("taskset")
        if taskset:
            command = [taskset, "-c", str(cpu), *command]
        else:
            # What taskset does; the affinity survives exec.
            os.sched_setaffinity(0, {cpu})
    sys.stdout.flush()
    os.execve(command[0], command, env)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.list:
        for name, module in BENCHMARKS.items():
            print(f"{name:12} {module}")
        return 0
    reexec_if_needed(args, argv)
    return run(args, argv)


def run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Measure the limits, run the chosen benchmarks, print and write the tables."""
    # Imported here, after the re-exec: these load numpy and through it OpenBLAS.
    from bench import limits as machine
    from bench import peers as optional
    from bench.harness import CaseResult, run_case, summary_table
    from bench.report import Table, update_readme, write_results

    started = time.perf_counter()
    limits = machine.measure(args.peak_gflops, args.bandwidth_gbs)
    peers = optional.load(args.single_thread, not args.no_torch_compile)
    header = describe_run(argv, args, limits, peers)
    for line in header:
        print(line)
    print()
    tables: list[Table] = []
    results: list[CaseResult] = []
    for name in args.names or list(BENCHMARKS):
        module = importlib.import_module(BENCHMARKS[name])
        for case in module.cases(peers):
            result = run_case(case, args.budget)
            results.append(result)
            table = result.table(limits)
            tables.append(table)
            print(table.to_markdown(), flush=True)
        # Benchmarks that report sizes rather than timings against peers (bench_memory).
        for table in getattr(module, "tables", lambda _: [])(peers):
            tables.append(table)
            print(table.to_markdown(), flush=True)
    summary = summary_table(results, limits)
    tables.append(summary)
    print(summary.to_markdown())
    elapsed = time.perf_counter() - started
    print(f"total time {elapsed:.0f} s")
    if not args.no_results:
        write_results(args.results, [*header, f"- total time: {elapsed:.0f} s"], tables)
        print(f"wrote {args.results}")
    if args.readme:
        update_readme(REPO_ROOT / "README.md", header, summary)
        print(f"updated {REPO_ROOT / 'README.md'}")
    return 0


def describe_run(
    argv: Sequence[str], args: argparse.Namespace, limits: MachineLimits, peers: Peers
) -> list[str]:
    """Markdown header lines: what ran, where, with which versions and limits."""
    import llvmlite
    import numpy as np

    threads = ", ".join(f"{v}={os.environ[v]}" for v in THREAD_VARS if v in os.environ)
    lines = [
        f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"- command: `{shlex.join(['python', '-m', 'bench', *argv])}`",
        f"- commit: {git_revision()}",
        f"- python {platform.python_version()}, numpy {np.__version__}, "
        f"llvmlite {llvmlite.__version__}",
        f"- peers: numpy; {'; '.join(peers.versions())}",
        f"- mode: {'single thread (pinned to one CPU)' if args.single_thread else 'all cores'}"
        f"; {FORCED_CORETYPE} {'still set' if FORCED_CORETYPE in os.environ else 'unset'}"
        + (f"; {threads}" if threads else ""),
    ]
    lines += [f"- {line}" for line in limits.describe()]
    return lines


def git_revision() -> str:
    """The checked-out commit, with '+ local changes' when the tree differs from it."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{rev} + local changes" if dirty else rev


if __name__ == "__main__":
    sys.exit(main())
