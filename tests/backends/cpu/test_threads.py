"""Multi-threaded generated code: results are bit-identical for every thread count.

Products and elementwise loops above a size threshold run on `tfcompile.parallel_for`
(backends/cpu/threads.py). The thresholds are lowered in some tests so that small modules
(the corpus sample) take the parallel paths too; those compile without the cache.

The pool behind it is tested in both of its modes: unmanaged (code loaded by the JIT, which
runs no constructors: workers sleep after every region) and managed (constructors ran, or a
loader called START_HOOK: workers spin between regions).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np
import pytest
from llvmlite import ir

import backends.cpu.gemm as cpu_gemm
import backends.cpu.loops as cpu_loops
import compiler
from backends.cpu import CpuOptions, compile_to_object
from backends.cpu.object import Target, compile_ir, target_machine
from backends.cpu.threads import START_HOOK, STOP_HOOK, emit_parallel_for, new_body
from backends.llvm.irutil import I32, I64, PTR, declare_function
from compiler.api import compile_artifact
from hlo.errors import ArgumentError, CompileError
from hlo.parser import parse
from runtime.loader import Executable, LoadedCode
from tests.conftest import corpus_cases
from tests.corpus.test_hlo_corpus import assert_outputs_match, load_case

THREADS = (1, 2, 3, 4)


def dot_module(m: int, k: int, n: int, batch: int | None = None) -> str:
    if batch is None:
        return f"""
HloModule gemm
ENTRY e {{
  a = f32[{m},{k}] parameter(0)
  b = f32[{k},{n}] parameter(1)
  ROOT d = f32[{m},{n}] dot(a, b), lhs_contracting_dims={{1}}, rhs_contracting_dims={{0}}
}}"""
    return f"""
HloModule bgemm
ENTRY e {{
  a = f32[{batch},{m},{k}] parameter(0)
  b = f32[{batch},{k},{n}] parameter(1)
  ROOT d = f32[{batch},{m},{n}] dot(a, b), lhs_batch_dims={{0}}, rhs_batch_dims={{0}},
      lhs_contracting_dims={{2}}, rhs_contracting_dims={{1}}
}}"""


ELEMENTWISE = """
HloModule ew
ENTRY e {
  a = f32[300,700] parameter(0)
  b = f32[300,700] parameter(1)
  t = f32[300,700] tanh(a)
  m = f32[300,700] multiply(t, b)
  ROOT s = f32[300,700] add(m, a)
}
"""


def _inputs(*shapes: tuple[int, ...]) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


def _fresh(text: str, **options: object) -> Executable:
    """An Executable compiled now, bypassing the compile caches (thresholds may be patched)."""
    return Executable(compile_artifact(parse(text), CpuOptions(**options)))


def _same_for_every_count(exe: Executable, args: list[np.ndarray]) -> tuple:
    """Run `exe` with 1..4 threads; assert bit-identical results; return them."""
    first = None
    for count in THREADS:
        exe.threads = count
        got = exe(*args)
        got = got if isinstance(got, tuple) else (got,)
        if first is None:
            first = got
            continue
        for g, f in zip(got, first, strict=True):
            assert g.dtype == f.dtype and g.shape == f.shape
            assert g.tobytes() == f.tobytes(), f"{count} threads differ from 1"
    exe.threads = 1
    assert first is not None
    return first


@pytest.mark.parametrize("m,k,n,batch", [
    (300, 200, 500, None),   # split over N panels
    (1000, 130, 37, None),   # split over M panels (N is one panel)
    (130, 257, 131, None),   # edges in every dimension
    (16, 128, 128, 64),      # split over the batch
])
def test_gemm_identical_for_any_thread_count(m: int, k: int, n: int,
                                             batch: int | None) -> None:
    exe = _fresh(dot_module(m, k, n, batch))
    assert "tfcompile.parallel_for" in exe.artifact.llvm_ir
    shapes = ((m, k), (k, n)) if batch is None else ((batch, m, k), (batch, k, n))
    a, b = _inputs(*shapes)
    (got,) = _same_for_every_count(exe, [a, b])
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_compiled_thread_count_matches_set_count() -> None:
    a, b = _inputs((300, 200), (200, 500))
    serial = _fresh(dot_module(300, 200, 500))
    parallel = _fresh(dot_module(300, 200, 500), threads=3)
    assert parallel.threads == 3
    assert serial(a, b).tobytes() == parallel(a, b).tobytes()
    parallel.threads = 1
    assert serial(a, b).tobytes() == parallel(a, b).tobytes()


def test_setting_threads_keeps_the_native_call() -> None:
    exe = _fresh(dot_module(300, 200, 500))
    if exe.native is None:
        pytest.skip("native calls are unavailable in this process")
    a, b = _inputs((300, 200), (200, 500))
    want = exe(a, b).tobytes()
    for count in (2, 3, 1):
        exe.threads = count
        before = exe.native.calls
        assert exe(a, b).tobytes() == want
        assert exe.native.calls == before + 1, f"threads={count} left the native path"


def test_small_products_stay_serial() -> None:
    exe = _fresh(dot_module(8, 8, 8))
    assert "tfcompile.parallel_for" not in exe.artifact.llvm_ir


def test_elementwise_identical_for_any_thread_count() -> None:
    exe = _fresh(ELEMENTWISE)
    assert "tfcompile.parallel_for" in exe.artifact.llvm_ir
    a, b = _inputs((300, 700), (300, 700))
    (got,) = _same_for_every_count(exe, [a, b])
    np.testing.assert_allclose(got, np.tanh(a) * b + a, rtol=1e-5, atol=1e-6)


def test_unfused_elementwise_op_splits_and_covers_every_element() -> None:
    text = """
HloModule one
ENTRY e {
  a = f32[131075] parameter(0)
  ROOT n = f32[131075] negate(a)
}
"""
    exe = Executable(compile_artifact(parse(text), CpuOptions(), optimize=False))
    assert "tfcompile.parallel_for" in exe.artifact.llvm_ir
    (a,) = _inputs((131075,))
    (got,) = _same_for_every_count(exe, [a])
    assert got.tobytes() == (-a).tobytes()


def test_mt_entry_point_through_ctypes() -> None:
    """`<symbol>_mt(args, results, temps, threads)` is exported next to `<symbol>`."""
    import ctypes

    from runtime.buffers import aligned_empty, aligned_zeros

    art = compile_to_object(parse(dot_module(200, 150, 300)), entry_symbol="g")
    assert 'define void @"g_mt"(ptr' in art.llvm_ir
    code = LoadedCode(art)
    assert code.mt_function is not None
    a, b = _inputs((200, 150), (150, 300))
    temps = aligned_empty((max(art.temp_bytes, 1),), np.uint8)
    outs = []
    for count in (1, 2, 7, 0, -3, 1000):  # counts out of range are clamped, not trusted
        c = aligned_zeros((200, 300), np.float32)
        args = (ctypes.c_void_p * 2)(a.ctypes.data, b.ctypes.data)
        results = (ctypes.c_void_p * 1)(c.ctypes.data)
        code.mt_function(args, results, temps.ctypes.data, count)
        outs.append(c.tobytes())
    assert len(set(outs)) == 1


def _hook(exe: Executable, name: str) -> None:
    """Call the pool hook `name` of the code `exe` runs."""
    address = exe._code._engine.get_function_address(name)
    assert address, f"{name} is not exported"
    ctypes.CFUNCTYPE(None)(address)()


@pytest.mark.parametrize("managed", [False, True])
def test_concurrent_callers_share_one_executable(managed: bool) -> None:
    """Callers racing for the pool: one owns it, the others run their regions serially."""
    exe = _fresh(dot_module(300, 200, 500))
    if managed:
        _hook(exe, START_HOOK)
    rng = np.random.default_rng(3)
    cases = [_inputs((300, 200), (200, 500))]
    cases += [[rng.standard_normal(s).astype(np.float32) for s in ((300, 200), (200, 500))]
              for _ in range(3)]
    want = [exe(*args).tobytes() for args in cases]
    exe.threads = 2
    failures: list[str] = []

    def caller(index: int) -> None:
        for rep in range(25):
            k = (index + rep) % len(cases)
            if exe(*cases[k]).tobytes() != want[k]:
                failures.append(f"caller {index} call {rep}")

    workers = [threading.Thread(target=caller, args=(i,)) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not failures
    if managed:
        _hook(exe, STOP_HOOK)
        # The pool is gone and unmanaged again; a later call makes a new one.
        assert exe(*cases[1]).tobytes() == want[1]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
@pytest.mark.parametrize("managed", [False, True])
def test_forked_child_computes_with_threads(managed: bool) -> None:
    """The child has none of the parent's workers: its pool must start new ones."""
    exe = _fresh(dot_module(300, 200, 500), threads=2)
    if managed:
        _hook(exe, START_HOOK)
    a, b = _inputs((300, 200), (200, 500))
    want = exe(a, b).tobytes()  # the parent's workers exist now
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            same = all(exe(a, b).tobytes() == want for _ in range(3))
            exe.threads = 3  # grow the child's new pool
            code = 0 if same and exe(a, b).tobytes() == want else 1
        finally:
            os._exit(code)
    assert _exit_code(pid, timeout=60.0) == 0
    assert exe(a, b).tobytes() == want


def _exit_code(pid: int, timeout: float) -> int | None:
    """The exit code of child `pid`, or None (and the child killed) if it hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


EXIT_SCRIPT = r"""
import gc, sys
import numpy as np
import backends.cpu.loops as loops
loops.PARALLEL_MIN_ELEMENTS = 2
import ctypes
from backends.cpu import CpuOptions
from backends.cpu.threads import START_HOOK
from compiler.api import compile_artifact
from hlo.parser import parse
from runtime.loader import Executable
text = "HloModule n\nENTRY e {\n a = f32[4096] parameter(0)\n ROOT n = f32[4096] negate(a)\n}"
artifact = compile_artifact(parse(text), CpuOptions(), optimize=False)
a = np.arange(4096, dtype=np.float32)
for _ in range(20):
    # Dropped right after a threaded call: the code is unmapped while workers exist.
    exe = Executable(artifact)
    exe.threads = 4
    assert exe(a).tobytes() == (-a).tobytes()
    del exe
    gc.collect()
keep = Executable(artifact)
if sys.argv[1] == "managed":
    ctypes.CFUNCTYPE(None)(keep._code._engine.get_function_address(START_HOOK))()
keep.threads = 2
for _ in range(50):
    assert keep(a).tobytes() == (-a).tobytes()
print("done")
"""


@pytest.mark.parametrize("mode", ["unmanaged", "managed"])
def test_process_exits_cleanly_after_threaded_calls(mode: str) -> None:
    """Workers left by unloaded code, and workers alive at exit, neither crash nor hang."""
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, mode], cwd=root,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["done"]


@pytest.mark.parametrize("bad", [0, -1, 65, 2.0, True, "2"])
def test_bad_thread_counts(bad: object) -> None:
    exe = compiler.compile(dot_module(4, 4, 4))
    with pytest.raises(ArgumentError, match="threads"):
        exe.threads = bad  # type: ignore[assignment]
    with pytest.raises(CompileError, match="threads"):
        compile_to_object(parse(dot_module(4, 4, 4)), threads=bad)


# A sample of the corpus, with thresholds lowered so that every product and elementwise
# loop of them takes the parallel path.
CORPUS_SAMPLE = corpus_cases("hlo")[::8][:15]


@pytest.fixture
def low_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_gemm, "PARALLEL_MIN_WORK", 1)
    monkeypatch.setattr(cpu_loops, "PARALLEL_MIN_ELEMENTS", 2)


@pytest.mark.skipif(not CORPUS_SAMPLE, reason="../shared/corpus is not present")
@pytest.mark.parametrize("case", CORPUS_SAMPLE, ids=[c["name"] for c in CORPUS_SAMPLE])
def test_corpus_sample_identical_for_any_thread_count(case: dict,
                                                      low_thresholds: None) -> None:
    text, args, want = load_case(case)
    exe = _fresh(text)
    got = _same_for_every_count(exe, args)
    assert_outputs_match(case, got, want)


CPP_PROGRAM = r"""
#include <cstdio>
#include <cstring>
#include <vector>
#include "g.h"

int main() {
  t::Gemm g;
  float* a = g.arg0_data();
  float* b = g.arg1_data();
  for (int i = 0; i < 200 * 150; ++i) a[i] = static_cast<float>(i % 13) * 0.25f - 1.5f;
  for (int i = 0; i < 150 * 300; ++i) b[i] = static_cast<float>(i % 7) * 0.5f - 1.25f;
  std::vector<float> first;
  for (int n : {1, 2, 3}) {
    g.set_thread_count(n);
    if (!g.Run()) return 2;
    const float* c = g.result0_data();
    if (first.empty()) {
      first.assign(c, c + 200 * 300);
    } else if (std::memcmp(first.data(), c, first.size() * sizeof(float)) != 0) {
      return 3;
    }
  }
  std::printf("%.6f %.6f\n", first[0], first[200 * 300 - 1]);
  return 0;
}
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_cpp_class_set_thread_count_gives_the_same_result(tmp_path: Path) -> None:
    from compiler.export import export_library

    export_library(parse(dot_module(200, 150, 300)), tmp_path / "g", cpp_class="t::Gemm")
    (tmp_path / "main.cc").write_text(CPP_PROGRAM)
    subprocess.run(["g++", "-std=c++17", "-O1", "-Wall", "-Werror", "-I", str(tmp_path),
                    "main.cc", "g.o", "-lm", "-lpthread", "-o", "prog"], cwd=tmp_path,
                   check=True, capture_output=True, text=True)
    done = subprocess.run(["./prog"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    a = (np.arange(200 * 150) % 13 * 0.25 - 1.5).reshape(200, 150)
    b = (np.arange(150 * 300) % 7 * 0.5 - 1.25).reshape(150, 300)
    c = a @ b
    got = [float(v) for v in done.stdout.split()]
    np.testing.assert_allclose(got, [c[0, 0], c[-1, -1]], rtol=1e-5)


DLCLOSE_PROGRAM = r"""
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef void (*mt_entry)(void* const*, void* const*, void*, int);

/* Load the library, run its entry on 3 threads, unload it: three times over. The pool's
   workers must be joined by the library's destructor, since after dlclose no thread may
   still run (or wake up in) its unmapped code. */
int main(int argc, char** argv) {
  size_t temp_bytes = strtoul(argv[3], NULL, 10);
  float* a = malloc(200 * 150 * sizeof(float));
  float* b = malloc(150 * 300 * sizeof(float));
  float* c = malloc(200 * 300 * sizeof(float));
  void* temps = aligned_alloc(64, (temp_bytes + 64) / 64 * 64);
  for (int i = 0; i < 200 * 150; ++i) a[i] = (float)(i % 13) * 0.25f - 1.5f;
  for (int i = 0; i < 150 * 300; ++i) b[i] = (float)(i % 7) * 0.5f - 1.25f;
  for (int round = 0; round < 3; ++round) {
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 2; }
    mt_entry run = (mt_entry)dlsym(lib, argv[2]);
    if (!run) { fprintf(stderr, "%s\n", dlerror()); return 3; }
    void* args[2] = {a, b};
    void* results[1] = {c};
    run(args, results, temps, 3);
    if (dlclose(lib) != 0) return 4;
    usleep(20000);
  }
  printf("%.6f %.6f\n", c[0], c[200 * 300 - 1]);
  return 0;
}
"""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_library_unloaded_after_threaded_runs_leaves_no_workers(tmp_path: Path) -> None:
    from compiler.export import export_library

    module = parse(dot_module(200, 150, 300))
    export_library(module, tmp_path / "g", cpp_class="t::Gemm", entry_point="g_entry")
    temp_bytes = compile_to_object(parse(dot_module(200, 150, 300))).temp_bytes
    (tmp_path / "main.c").write_text(DLCLOSE_PROGRAM)
    subprocess.run(["gcc", "-std=c11", "-D_DEFAULT_SOURCE", "-O1", "-Wall", "-Werror", "main.c",
                    "-ldl", "-o", "prog"], cwd=tmp_path, check=True, capture_output=True,
                   text=True)
    done = subprocess.run(["./prog", str(tmp_path / "g.so"), "g_entry_mt", str(temp_bytes)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (done.returncode, done.stderr)
    a = (np.arange(200 * 150) % 13 * 0.25 - 1.5).reshape(200, 150)
    b = (np.arange(150 * 300) % 7 * 0.5 - 1.25).reshape(150, 300)
    c = a @ b
    got = [float(v) for v in done.stdout.split()]
    np.testing.assert_allclose(got, [c[0, 0], c[-1, -1]], rtol=1e-5)


# --- which thread runs which chunk -----------------------------------------------------------

CHUNK_COUNTS = (2, 3, 4)


def _chunk_recorder() -> llvm.ExecutionEngine:
    """JIT code with `void run<n>(ptr out, i32 threads)` per n of CHUNK_COUNTS: a parallel
    region over [0, n) whose chunk k stores pthread_self() (the running thread) in out[k]."""
    module = ir.Module("chunks")
    body = new_body(module, "record")
    b = ir.IRBuilder(body.append_basic_block("entry"))
    ctx, _begin, _end, chunk = body.args
    thread = b.call(declare_function(module, "pthread_self", I64, []), [])
    b.store(thread, b.gep(ctx, [chunk], source_etype=I64))
    b.ret_void()
    for n in CHUNK_COUNTS:
        fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, I32]), f"run{n}")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        emit_parallel_for(b, body, fn.args[0], n, 1, fn.args[1])
        b.ret_void()
    target = Target.resolve()
    code = compile_ir(str(module), target, 2)
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), target_machine(target, jit=True))
    engine.add_object_file(llvm.ObjectFileRef.from_data(code.object_code))
    engine.finalize_object()
    return engine


@pytest.mark.parametrize("managed", [False, True])
def test_caller_always_runs_the_last_chunk(managed: bool) -> None:
    """Workers never claim a region's last chunk: with two threads the caller always reads
    the second half of a split product (and the worker, when in time, the first), so each
    core keeps its share of the operands in its own cache from call to call."""
    engine = _chunk_recorder()
    hook = ctypes.CFUNCTYPE(None)
    if managed:
        hook(engine.get_function_address(START_HOOK))()
    me = threading.get_ident()
    try:
        for n in CHUNK_COUNTS:
            run = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int32)(
                engine.get_function_address(f"run{n}"))
            for _ in range(200):
                out = np.zeros(n, np.uint64)
                run(out.ctypes.data, n)
                assert int(out[-1]) == me
                assert np.all(out != 0), "a chunk did not run"
    finally:
        # Join the workers before the engine (and their code) goes away.
        hook(engine.get_function_address(STOP_HOOK))()
