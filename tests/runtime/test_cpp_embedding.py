"""Generated libraries embedded in C++ and C programs, built with the system compiler and run.

The MatMulComp program of the tfcompile documentation (examples/matmul/main.cc) and the
allocation-mode and buffer-alignment contract run against a hand-written matmul object
(see tests/backends/test_cheader.py), so they need no backend. The examples' Makefile and
the corpus harness go through the real CPU backend.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.backends.test_cheader import (
    MULTI_NAMES,
    export,
    matmul_artifact,
    multi_artifact,
    multi_reference,
    run,
)
from tests.conftest import CORPUS, REPO, corpus_cases

pytestmark = pytest.mark.skipif(
    shutil.which("g++") is None or shutil.which("gcc") is None, reason="gcc/g++ not installed"
)

CXX = ["g++", "-std=c++17", "-O0", "-Wall", "-Wextra", "-Werror"]
EXAMPLES = REPO / "examples"


def build_matmul(tmp_path: Path, main: Path, link: str) -> Path:
    """Export the hand matmul as matmul.{o,h,so}; build `main` against the object or .so."""
    export(tmp_path, matmul_artifact(), "foo::bar::MatMulComp", name="matmul")
    binary = tmp_path / f"{main.stem}_{link}"
    library = ["matmul.o"] if link == "object" else ["./matmul.so", "-Wl,-rpath,$ORIGIN"]
    run([*CXX, "-I", str(tmp_path), str(main), *library, "-o", str(binary)], tmp_path)
    return binary


@pytest.mark.parametrize("link", ["object", "shared"])
def test_documentation_matmul_example(tmp_path: Path, link: str) -> None:
    binary = build_matmul(tmp_path, EXAMPLES / "matmul" / "main.cc", link)
    out = run([str(binary)], tmp_path).stdout
    assert out.splitlines() == ["Success", "result0 = {58, 64, 139, 154}"]


MODES_PROGRAM = r"""
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include "matmul.h"

using foo::bar::MatMulComp;
static const float kX[6] = {1, 2, 3, 4, 5, 6};
static const float kY[6] = {7, 8, 9, 10, 11, 12};

static int Report(MatMulComp& m, const char* what) {
  if (!m.Run()) {
    std::printf("%s: failed: %s\n", what, m.error_msg().c_str());
    return 1;
  }
  std::printf("%s: %g %g %g %g\n", what, m.result0(0, 0), m.result0(0, 1), m.result0(1, 0),
              m.result0(1, 1));
  return 0;
}

// Runs first, then reads the message (printf's argument order is unspecified).
static void Expect(MatMulComp& m, const char* what) {
  const bool ok = m.Run();
  std::printf("%s: %d %s\n", what, ok, m.error_msg().c_str());
}

static unsigned Misalignment(const void* p) {
  return static_cast<unsigned>(reinterpret_cast<std::uintptr_t>(p) % 64);
}

int main() {
  int failures = 0;
  {
    MatMulComp m;  // allocates everything, 64-byte aligned
    std::copy(kX, kX + 6, m.arg0_data());
    std::copy(kY, kY + 6, m.arg1_data());
    failures += Report(m, "owned");
    std::printf("owned alignment: %u %u %u\n", Misalignment(m.arg0_data()),
                Misalignment(m.arg1_data()), Misalignment(m.result0_data()));
  }
  {
    MatMulComp m(MatMulComp::AllocMode::RESULTS_PROFILES_AND_TEMPS_ONLY);
    Expect(m, "unset");
    alignas(64) float x[6];
    alignas(64) float y[6];
    std::copy(kX, kX + 6, x);
    std::copy(kY, kY + 6, y);
    m.set_arg0_data(x);
    m.set_arg1_data(y);
    failures += Report(m, "align64");
    std::printf("same buffer: %d\n", m.arg0_data() == x && m.args()[1] == y);
    alignas(64) float storage[32] = {};
    float* x16 = storage + 4;   // 16 bytes past a 64-byte boundary
    float* y16 = storage + 20;  // 80 bytes past it
    std::copy(kX, kX + 6, x16);
    std::copy(kY, kY + 6, y16);
    const float* const_y16 = y16;
    m.set_arg0_data(x16);
    m.set_arg1_data(const_y16);
    failures += Report(m, "align16");
    std::printf("misalignment: %u %u\n", Misalignment(x16), Misalignment(y16));
    m.set_arg0_data(reinterpret_cast<char*>(x16) + 8);
    Expect(m, "misaligned");
    m.set_arg0_data(nullptr);
    Expect(m, "null");
  }
  {
    // The older spellings, and the generic positional API.
    MatMulComp m(MatMulComp::AllocMode::RESULTS_AND_TEMPS_ONLY);
    alignas(16) float x[6];
    alignas(16) float y[6];
    std::copy(kX, kX + 6, x);
    std::copy(kY, kY + 6, y);
    m.args()[0] = x;
    m.set_arg_data(1, y);
    alignas(16) float out[4];
    m.set_result_data(0, out);
    failures += Report(m, "legacy");
    std::printf("result in caller buffer: %d %g\n", m.result0_data() == out, out[3]);
    std::printf("sizes: %d %d %d %d %zu\n", m.arg0_size(), m.arg0_count(), m.result0_size(),
                m.result0_count(), MatMulComp::ArgSize(1));
    std::printf("lookup: %d %d %d\n", MatMulComp::LookupArgIndex("x"),
                MatMulComp::LookupResultIndex("product"), MatMulComp::kNumArgs);
  }
  {
    MatMulComp m(MatMulComp::AllocMode::ARGS_RESULTS_AND_TEMPS);
    std::printf("legacy owned: %d\n", m.arg0_data() != nullptr);
  }
  return failures;
}
"""

MODES_EXPECTED = [
    "owned: 58 64 139 154",
    "owned alignment: 0 0 0",
    "unset: 0 foo::bar::MatMulComp: argument 0 buffer is not set",
    "align64: 58 64 139 154",
    "same buffer: 1",
    "align16: 58 64 139 154",
    "misalignment: 16 16",
    "misaligned: 0 foo::bar::MatMulComp: argument 0 buffer is not aligned to 16 bytes",
    "null: 0 foo::bar::MatMulComp: argument 0 buffer is not set",
    "legacy: 58 64 139 154",
    "result in caller buffer: 1 154",
    "sizes: 24 6 16 4 24",
    "lookup: -1 -1 2",
    "legacy owned: 1",
]


@pytest.mark.parametrize("link", ["object", "shared"])
def test_alloc_modes_and_caller_buffers(tmp_path: Path, link: str) -> None:
    main = tmp_path / "modes.cc"
    main.write_text(MODES_PROGRAM)
    binary = build_matmul(tmp_path, main, link)
    assert run([str(binary)], tmp_path).stdout.splitlines() == MODES_EXPECTED


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_matmul_programs_are_clean_under_valgrind(tmp_path: Path) -> None:
    main = tmp_path / "modes.cc"
    main.write_text(MODES_PROGRAM)
    binary = build_matmul(tmp_path, main, "object")
    done = subprocess.run(
        ["valgrind", "--error-exitcode=99", "--leak-check=full",
         "--errors-for-leak-kinds=definite,indirect,possible", str(binary)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == MODES_EXPECTED
    assert "ERROR SUMMARY: 0 errors" in done.stderr
    assert "definitely lost" not in done.stderr or "definitely lost: 0 bytes" in done.stderr


NAMED_PROGRAM = r"""
#include <cstdio>
#include "multi.h"

int main() {
  ns::Multi m;
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t j = 0; j < 3; ++j)
      for (std::size_t k = 0; k < 4; ++k) m.arg_a(i, j, k) = int(i * 12 + j * 4 + k) - 7;
  m.arg_s() = 0.25;
  m.arg2() = 5;
  if (!m.Run()) { std::printf("failed: %s\n", m.error_msg().c_str()); return 1; }
  for (int i = 0; i < m.result_y_count(); ++i) std::printf("%.17g\n", m.result_y_data()[i]);
  std::printf("y(1,2,3) %.17g positive %d\n", m.result_y(1, 2, 3), m.result_positive());
  std::printf("lookup %d %d %d %d\n", ns::Multi::LookupArgIndex("s"),
              ns::Multi::LookupArgIndex(std::string("a")), ns::Multi::LookupResultIndex("positive"),
              ns::Multi::LookupArgIndex("nope"));
  std::printf("names %s %s\n", ns::Multi::ArgName(1), ns::Multi::ArgName(2) ? "?" : "null");
  return 0;
}
"""


def test_named_accessors_tuple_results_and_temps(tmp_path: Path) -> None:
    export(tmp_path, multi_artifact(), "ns::Multi", name="multi", **MULTI_NAMES)
    (tmp_path / "named.cc").write_text(NAMED_PROGRAM)
    run([*CXX, "named.cc", "multi.o", "-o", "named"], tmp_path)
    lines = run(["./named"], tmp_path).stdout.splitlines()
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 7
    want_y, want_positive = multi_reference(a, 0.25, 5)
    np.testing.assert_array_equal(np.array([float(v) for v in lines[:24]]), want_y.reshape(-1))
    assert lines[24] == f"y(1,2,3) {want_y[1, 2, 3]:.17g} positive {int(want_positive)}"
    assert lines[25:] == ["lookup 1 0 1 -1", "names s null"]


C_PROGRAM = r"""
#define NS_MULTI_C_API_IMPLEMENTATION
#include "multi.h"
#include <stdio.h>

int main(void) {
  /* Caller buffers must be 16-byte aligned, scalars included. */
  _Alignas(16) int32_t a[24];
  _Alignas(16) double s = 2.0;
  _Alignas(16) double y[24];
  _Alignas(16) uint8_t one = 1;
  _Alignas(16) _Bool positive = 0;
  int i;
  for (i = 0; i < 24; ++i) a[i] = i;
  {
    void* args[3];
    void* results[2];
    args[0] = a; args[1] = &s; args[2] = &one;
    results[0] = y; results[1] = &positive;
    char error[256];
    if (ns_Multi_run(args, results, NULL, error, sizeof error) != 0) {
      printf("failed: %s\n", error);
      return 1;
    }
    printf("%g %g %d %s\n", y[0], y[23], positive, ns_Multi_program_shape());
    args[1] = NULL;
    printf("%d ", ns_Multi_run(args, results, NULL, error, sizeof error));
    printf("%s\n", error);
  }
  return 0;
}
"""


def test_c_program_defining_the_c_api_itself(tmp_path: Path) -> None:
    """A C user linking only the object defines the C API in one translation unit."""
    export(tmp_path, multi_artifact(), "ns::Multi", name="multi", **MULTI_NAMES)
    (tmp_path / "main.c").write_text(C_PROGRAM)
    run(["gcc", "-std=c11", "-Wall", "-Werror", "main.c", "multi.o", "-o", "cprog"], tmp_path)
    lines = run(["./cprog"], tmp_path).stdout.splitlines()
    assert lines[0] == "1 47 1 (s32[2,3,4], f64[], u8[1]) -> (f64[2,3,4], pred[])"
    assert lines[1] == "-1 ns::Multi: argument 1 (s) buffer is NULL"


# --- through the real CPU backend ----------------------------------------------------------------
def _backend_or_skip() -> None:
    try:
        from backends.cpu import compile_to_object  # noqa: F401
    except ImportError as e:  # the backend is written concurrently (issue #3)
        pytest.skip(f"the CPU backend is not available: {e}")


def mlp_inputs(shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    """The inputs examples/mlp/main.cc generates: element k of arg i is ((7k+13i)%17-8)/16."""
    out = []
    for i, shape in enumerate(shapes):
        k = np.arange(int(np.prod(shape)))
        out.append((((7 * k + 13 * i) % 17 - 8) / 16).astype(np.float32).reshape(shape))
    return out


def test_examples_makefile_runs_both_examples(tmp_path: Path) -> None:
    _backend_or_skip()
    from hlo.evaluator import evaluate
    from hlo.parser import parse

    logits_path = tmp_path / "logits.bin"
    done = run(["make", "-s", "-C", str(EXAMPLES), "run", f"PY={sys.executable}",
                f"BUILD={tmp_path / 'build'}", f"MLP_OUT={logits_path}"])
    assert "Success" in done.stdout and "result0 = {58, 64, 139, 154}" in done.stdout
    assert "logits (8 x 10):" in done.stdout
    module = parse((EXAMPLES / "mlp" / "mlp_forward.hlo").read_text())
    shapes = [p.shape.dims for p in module.entry_computation.parameters]
    (want,) = evaluate(module, *mlp_inputs(shapes))
    got = np.fromfile(logits_path, dtype=np.float32).reshape(8, 10)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    needed = run(["readelf", "-d", str(tmp_path / "build" / "mlp.so")]).stdout
    libs = [line.split("[")[1].rstrip("]") for line in needed.splitlines() if "NEEDED" in line]
    assert all(lib.startswith(("libc.", "libm.", "libpthread.", "libgcc_s."))
               for lib in libs), libs


def test_example_mlp_is_the_corpus_module() -> None:
    corpus_copy = CORPUS / "hlo" / "mlp_forward.hlo"
    if not corpus_copy.exists():
        pytest.skip("../shared/corpus is not present")
    assert (EXAMPLES / "mlp" / "mlp_forward.hlo").read_text() == corpus_copy.read_text()


# A generated C++ harness per case feeds the stored inputs from binary files, runs the class
# through its generic positional API and writes each result; Python compares with the stored
# outputs. A small sample runs by default (float, several outputs, integer); every corpus case
# runs under `-m slow` (make test-full).
HARNESS_SAMPLE = ["attention", "argmax_argmin", "arith_s8_u8"]

HARNESS = r"""
#include <cstdio>
#include "case.h"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  tfc::Case c;
  char path[4096];
  for (int i = 0; i < tfc::Case::kNumArgs; ++i) {
    std::snprintf(path, sizeof path, "%s/arg%d.bin", argv[1], i);
    std::FILE* f = std::fopen(path, "rb");
    std::size_t size = tfc::Case::ArgSize(i);
    if (f == nullptr || std::fread(c.arg_data(i), 1, size, f) != size) return 3;
    std::fclose(f);
  }
  if (!c.Run()) { std::fprintf(stderr, "%s\n", c.error_msg().c_str()); return 4; }
  for (int j = 0; j < tfc::Case::kNumResults; ++j) {
    std::snprintf(path, sizeof path, "%s/out%d.bin", argv[1], j);
    std::FILE* f = std::fopen(path, "wb");
    std::size_t size = tfc::Case::ResultSize(j);
    if (f == nullptr || std::fwrite(c.result_data(j), 1, size, f) != size) return 5;
    std::fclose(f);
  }
  return 0;
}
"""

_CASES = {c["name"]: c for c in corpus_cases("hlo")}


def run_case_through_harness(tmp_path: Path, name: str) -> None:
    if name not in _CASES:
        pytest.skip("../shared/corpus is not present")
    _backend_or_skip()
    from compiler.export import export_library
    from hlo.errors import UnsupportedOpError
    from hlo.parser import parse
    from tests.corpus.test_hlo_corpus import assert_outputs_match, load_case

    case = _CASES[name]
    text, args, want = load_case(case)
    try:
        lib = export_library(parse(text), tmp_path / "case", cpp_class="tfc::Case")
    except UnsupportedOpError as e:
        # Op coverage is the backend's corpus test; this harness is about the C++ path.
        pytest.xfail(f"the CPU backend cannot compile {name} yet: {e}")
    (tmp_path / "harness.cc").write_text(HARNESS)
    run([*CXX, "harness.cc", "case.o", "-lm", "-lpthread", "-o", "harness"], tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    for i, a in enumerate(args):
        np.ascontiguousarray(a).tofile(data / f"arg{i}.bin")
    run(["./harness", str(data)], tmp_path)
    got = []
    for j, (w, b) in enumerate(zip(want, lib.spec.results, strict=True)):
        got.append(np.fromfile(data / f"out{j}.bin", dtype=w.dtype).reshape(b.dims))
    assert_outputs_match(case, tuple(got), want)


@pytest.mark.parametrize("name", HARNESS_SAMPLE)
def test_corpus_sample_through_cpp_harness(tmp_path: Path, name: str) -> None:
    run_case_through_harness(tmp_path, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(_CASES))
def test_corpus_case_through_cpp_harness(tmp_path: Path, name: str) -> None:
    run_case_through_harness(tmp_path, name)


# --- two libraries in one program -----------------------------------------------------------------
TWO_LIBRARIES = r"""
#include <algorithm>
#include <cstdio>
#include "a.h"
#include "b.h"

int main() {
  one::MatMul m;
  two::Mlp mlp;
  const float x[6] = {1, 2, 3, 4, 5, 6};
  const float y[6] = {7, 8, 9, 10, 11, 12};
  std::copy(x, x + 6, m.arg0_data());
  std::copy(y, y + 6, m.arg1_data());
  for (int i = 0; i < two::Mlp::kNumArgs; ++i) {
    std::fill_n(static_cast<float*>(mlp.arg_data(i)), two::Mlp::ArgSize(i) / sizeof(float), 0.5f);
  }
  if (!m.Run() || !mlp.Run()) return 1;
  std::printf("%g %g %g\n", m.result0(1, 1), mlp.result0(0, 0), mlp.result0(7, 9));
  return 0;
}
"""


def test_two_libraries_link_into_one_program(tmp_path: Path) -> None:
    """Default entry points derive from the class, so objects from one compiler coexist."""
    _backend_or_skip()
    from compiler.export import export_library
    from hlo.evaluator import evaluate
    from hlo.parser import parse

    matmul = parse((EXAMPLES / "matmul" / "matmul.hlo").read_text())
    mlp = parse((EXAMPLES / "mlp" / "mlp_forward.hlo").read_text())
    a = export_library(matmul, tmp_path / "a", cpp_class="one::MatMul")
    b = export_library(mlp, tmp_path / "b", cpp_class="two::Mlp")
    assert (a.spec.entry_point, b.spec.entry_point) == ("one_MatMul_entry", "two_Mlp_entry")
    assert "(f32[2,3], f32[3,2]) -> f32[2,2]" in a.header_path.read_text()
    (tmp_path / "main.cc").write_text(TWO_LIBRARIES)
    run([*CXX, "main.cc", "a.o", "b.o", "-lm", "-lpthread", "-o", "both"], tmp_path)
    got = [float(v) for v in run(["./both"], tmp_path).stdout.split()]
    halves = [np.full(p.shape.dims, 0.5, np.float32) for p in mlp.entry_computation.parameters]
    (want,) = evaluate(mlp, *halves)
    assert got[0] == 154
    np.testing.assert_allclose(got[1:], [want[0, 0], want[7, 9]], rtol=1e-5)


def test_export_library_checks_names_before_compiling(tmp_path: Path) -> None:
    from compiler.export import export_library
    from hlo.errors import ArgumentError
    from hlo.parser import parse

    matmul = parse((EXAMPLES / "matmul" / "matmul.hlo").read_text())
    with pytest.raises(ArgumentError, match="result_names: 2 name"):
        export_library(matmul, tmp_path / "m", cpp_class="M", result_names=["a", "b"])
    with pytest.raises(ArgumentError, match="entry_point 'no good'"):
        export_library(matmul, tmp_path / "m", cpp_class="M", entry_point="no good")
    assert not list(tmp_path.iterdir())


# --- the shared object's exports ----------------------------------------------------------------


def test_library_exports_the_c_api(tmp_path: Path) -> None:
    lib = export(tmp_path, matmul_artifact(), "foo::bar::MatMulComp")
    dynamic = run(["nm", "-D", "--defined-only", str(lib.library_path)]).stdout
    assert "foo_bar_MatMulComp_run" in dynamic and " entry" in dynamic
