"""Memory and compile time: the temporary arena after buffer assignment, and a cold compile.

For corpus modules (../shared/corpus/hlo) this prints the arena that the compiled code
needs (`CpuArtifact.temp_bytes`: the entry's buffer assignment with kernel scratch) next
to what the same optimised module would take with one slot per buffer and no reuse, the
same two figures for the buffers alone (the pipeline's BufferAssignmentPass, no kernel
scratch), the arena of the unoptimised module compiled instruction by instruction without
reuse (what the backend did before fusion and buffer assignment), and XLA's own temporary
size for the same HLO text (`temp_size_in_bytes` of JAX's CPU client) when JAX is
installed. It then times a cold compile (a fresh process: imports, pipeline, LLVM) of the
transformer block. Nothing here is timed against a peer: `cases` is empty and `tables`
returns the report.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.peers import Peers
from bench.report import Table, format_seconds

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("TFCOMPILE_CORPUS", REPO_ROOT.parent / "shared" / "corpus"))
MEMORY_CASES = ("mlp_train_step", "cnn_forward")
COMPILE_CASE = "transformer_block_small"
# The targets of issue #5: arena at most this fraction of no reuse; cold compile time.
REUSE_TARGET = 0.60
COMPILE_TARGET_S = 2.0

_COLD_SCRIPT = """
import sys, time
started = time.perf_counter()
from hlo.parser import parse
from compiler.api import compile_artifact, optimize_module
from backends.cpu import compile_to_object
imported = time.perf_counter()
module = parse(open(sys.argv[1]).read())
parsed = time.perf_counter()
optimized, _ = optimize_module(module)
optimised = time.perf_counter()
compile_to_object(optimized)
done = time.perf_counter()
print(imported - started, parsed - imported, optimised - parsed, done - optimised)
"""


def cases(peers: Peers) -> list[Any]:
    """No timed cases: this benchmark reports sizes and a compile time (see `tables`)."""
    return []


def _hlo_text(name: str) -> str | None:
    path = CORPUS / "hlo" / f"{name}.hlo"
    return path.read_text() if path.exists() else None


def xla_temp_bytes(peers: Peers, text: str) -> str:
    """XLA's temporary bytes for HLO `text` on the CPU client, or 'n/a (why)'."""
    if "jax" not in peers.modules:
        return f"n/a ({peers.missing.get('jax', 'jax not loaded')})"
    try:
        # Private but stable enough entry points: HLO text -> XlaComputation -> MLIR ->
        # an executable of the CPU client, whose memory statistics XLA fills in.
        import jax._src.lib as jaxlib
        from jax._src import xla_bridge
        from jax._src.lib import xla_client as xc

        parsed = jaxlib.hlo.hlo_module_from_text(text)
        computation = jaxlib.hlo.XlaComputation(parsed.as_serialized_hlo_module_proto())
        mlir = xc._xla.mlir.xla_computation_to_mlir_module(computation)
        backend = xla_bridge.get_backend("cpu")
        devices = xc.DeviceList(tuple(backend.devices()[:1]))
        executable = backend.compile_and_load(mlir, devices, xc.CompileOptions())
        return str(executable.get_compiled_memory_stats().temp_size_in_bytes)
    except Exception as e:  # noqa: BLE001 - a peer's private API may move: report it
        return f"n/a ({type(e).__name__}: {str(e).splitlines()[0][:60]})"


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def memory_table(peers: Peers) -> Table:
    """Arena bytes per corpus module, with and without reuse, and XLA's figure."""
    from compiler.api import compile_artifact
    from compiler.passes.buffer_assignment import assign_buffers
    from hlo.parser import parse

    rows = []
    notes = []
    for name in MEMORY_CASES:
        text = _hlo_text(name)
        if text is None:
            notes.append(f"{name}: not found under {CORPUS / 'hlo'}")
            continue
        art = compile_artifact(parse(text))
        arena = art.extra["buffer_assignment"]
        buffers = assign_buffers(art.extra["optimized_module"], callee_blocks=False)
        unoptimised = compile_artifact(parse(text), optimize=False)
        plain = unoptimised.extra["buffer_assignment"]
        rows.append([
            name,
            str(art.temp_bytes),
            str(arena.no_reuse_bytes),
            _percent(art.temp_bytes, arena.no_reuse_bytes),
            str(buffers.temp_bytes),
            str(buffers.no_reuse_bytes),
            _percent(buffers.temp_bytes, buffers.no_reuse_bytes),
            str(plain.no_reuse_bytes),
            xla_temp_bytes(peers, text),
        ])
    notes += [
        "arena: the compiled code's temp_bytes (buffer assignment, kernel scratch included); "
        "no reuse: one slot per buffer and per kernel's scratch, same optimised module; "
        f"target: arena <= {REUSE_TARGET:.0%} of no reuse",
        "buffers: the same without kernel scratch (the pipeline's buffer_assignment pass)",
        "unoptimised: every instruction of the module as written in its own slot (the "
        "backend before fusion and buffer assignment)",
        "XLA: temp_size_in_bytes of the same HLO compiled by JAX's CPU client",
    ]
    return Table(
        title="memory: temporary bytes after buffer assignment",
        headers=["module", "arena", "no reuse", "ratio", "buffers", "no reuse", "ratio",
                 "unoptimised", "XLA"],
        rows=rows,
        notes=notes,
    )


def compile_table() -> Table:
    """Cold compile time of the transformer block: a fresh process, no caches."""
    path = CORPUS / "hlo" / f"{COMPILE_CASE}.hlo"
    if not path.exists():
        return Table(f"compile time: {COMPILE_CASE}", ["stage", "time"], [],
                     [f"{path} not found"])
    env = dict(os.environ, TFCOMPILE_CACHE_DIR="",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                        os.environ.get("PYTHONPATH")])))
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", _COLD_SCRIPT, str(path)], env=env,
                             cwd=REPO_ROOT, capture_output=True, text=True, check=True)
        total = time.perf_counter() - started
        runs.append([float(v) for v in out.stdout.split()] + [total])
    median = [sorted(column)[1] for column in zip(*runs, strict=True)]
    imports, parse_s, pipeline_s, codegen_s, process_s = median
    compile_s = parse_s + pipeline_s + codegen_s
    rows = [
        ["imports (compiler, llvmlite)", format_seconds(imports)],
        ["parse", format_seconds(parse_s)],
        ["optimisation pipeline", format_seconds(pipeline_s)],
        ["code generation (LLVM IR, optimisation, object)", format_seconds(codegen_s)],
        ["compile (parse + pipeline + code generation)", format_seconds(compile_s)],
        ["whole process", format_seconds(process_s)],
    ]
    verdict = "meets" if compile_s <= COMPILE_TARGET_S else "misses"
    return Table(
        title=f"compile time: {COMPILE_CASE}, cold (fresh process, no compile cache)",
        headers=["stage", "median of 3"],
        rows=rows,
        notes=[f"target: compile <= {COMPILE_TARGET_S:g} s ({verdict} it)"],
    )


def tables(peers: Peers) -> list[Table]:
    """The memory report and the compile-time report."""
    return [memory_table(peers), compile_table()]
