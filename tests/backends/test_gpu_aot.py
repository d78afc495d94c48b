"""Standalone GPU libraries (`--backend gpu`): generated, compiled, linked, loaded and run.

Without a GPU: the library and header build with -Wall -Werror, depend only on libc, libdl
and libpthread, load with dlopen, and Run() fails with a clear message when there is no
CUDA driver. A stand-in libcuda (`gpu_aot_support.MOCK_CUDA_C`) then checks what the
generated host code does against the GPU program's plan: uploads, every launch with its
grid, block and buffers, device copies, while loops and conditionals driven by scripted
predicate reads, downloads, device-pointer runs, variable write-back and error reports.
On a GPU (`gpu` marker) the MatMulComp example and corpus cases run through the C++
harness, with host and with device buffers, and must reproduce the expected outputs.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import tfcompile_cli
from backends.gpu.plan import (
    Conditional,
    Copy,
    GpuProgram,
    Launch,
    Pool,
    Slot,
    Step,
    While,
    leaves,
)
from backends.gpu_aot import c_literal
from compiler.export import LibraryNames, compile_gpu_object, export_library, write_library
from hlo.dtypes import PrimitiveType
from hlo.errors import ArgumentError
from hlo.parser import parse
from tests.backends.gpu_aot_support import HARNESS_CC, MOCK_CUDA_C
from tests.conftest import CORPUS, REPO, corpus_cases

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("g++") is None, reason="needs gcc and g++")

MATMUL_HLO = (REPO / "examples" / "matmul" / "matmul.hlo").read_text()
MATMUL_CLASS = "foo::bar::MatMulComp"

# Results are the parameters themselves: no kernel, so the mock's data path is checkable.
IDENTITY_HLO = """
HloModule identity
ENTRY main {
  x = f32[3] parameter(0)
  v = f32[3] parameter(1)
  ROOT t = (f32[3], f32[3]) tuple(x, x)
}
"""

ALLOWED_NEEDED = {"libc.so.6", "libdl.so.2", "libpthread.so.0"}


def _have_cuda_driver() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


# --- building ---------------------------------------------------------------------------------
@dataclass
class Built:
    """A generated GPU library with its harness."""

    program: GpuProgram
    library: Path
    header: Path
    harness: Path
    c_prefix: str


def build(tmp: Path, hlo: str, cpp_class: str, names: LibraryNames | None = None,
          gpu_arch: str | None = None) -> Built:
    module = parse(hlo)
    names = names or LibraryNames()
    artifact = compile_gpu_object(module, "gpu_entry", cpp_class, names, gpu_arch)
    exported = write_library(
        artifact, cpp_class=cpp_class, object_path=tmp / "lib.o", header_path=tmp / "lib.h",
        library_path=tmp / "lib.so", arg_names=names.arg_names,
        result_names=names.result_names, variables=names.variables)
    assert exported.library_path is not None
    harness = tmp / "harness"
    (tmp / "harness.cc").write_text(HARNESS_CC)
    _run([
        "g++", "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", "-include", str(tmp / "lib.h"),
        f"-DTFC_CLASS={cpp_class}", str(tmp / "harness.cc"), str(tmp / "lib.so"),
        f"-Wl,-rpath,{tmp}", "-ldl", "-o", str(harness),
    ])
    program = artifact.program  # type: ignore[attr-defined]
    return Built(program, tmp / "lib.so", tmp / "lib.h", harness, exported.spec.c_prefix)


def _run(argv: Sequence[str]) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(argv)}\n{done.stderr}"


@dataclass
class Outcome:
    status: int
    error: str
    results: list[bytes]
    args_after: list[bytes]


def run_harness(built: Built, args: Sequence[np.ndarray], mode: str, tmp: Path,
                env: dict[str, str] | None = None) -> Outcome:
    in_dir, out_dir = tmp / f"in_{mode}", tmp / f"out_{mode}"
    for d in (in_dir, out_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
    for i, a in enumerate(args):
        (in_dir / f"arg{i}.bin").write_bytes(np.ascontiguousarray(a).tobytes())
    done = subprocess.run([str(built.harness), str(in_dir), str(out_dir), mode],
                          capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=120)
    results = sorted(out_dir.glob("result*.bin"), key=lambda p: int(p.stem[6:]))
    after = sorted(out_dir.glob("arg*.bin"), key=lambda p: int(p.stem[3:]))
    return Outcome(done.returncode, done.stderr.strip(), [p.read_bytes() for p in results],
                   [p.read_bytes() for p in after])


@pytest.fixture(scope="module")
def matmul(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(tmp_path_factory.mktemp("matmul"), MATMUL_HLO, MATMUL_CLASS)


@pytest.fixture(scope="module")
def mock_cuda(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the stand-in libcuda.so.1."""
    directory = tmp_path_factory.mktemp("mock_cuda")
    source = directory / "mock_cuda.c"
    source.write_text(MOCK_CUDA_C)
    _run(["gcc", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Werror", "-shared", "-fPIC",
          "-Wl,-soname,libcuda.so.1", str(source), "-o", str(directory / "libcuda.so.1")])
    return directory


def mock_env(mock_cuda: Path, log: Path, **settings: str) -> dict[str, str]:
    log.unlink(missing_ok=True)
    env = {"LD_LIBRARY_PATH": str(mock_cuda), "MOCK_CUDA_LOG": str(log)}
    env.update({f"MOCK_CUDA_{k.upper()}": v for k, v in settings.items()})
    return env


MATMUL_ARGS = [np.arange(1, 7, dtype=np.float32).reshape(2, 3),
               np.arange(7, 13, dtype=np.float32).reshape(3, 2)]


# --- the library as built ---------------------------------------------------------------------
def test_library_needs_only_libc_libdl_and_libpthread(matmul: Built) -> None:
    dynamic = subprocess.run(["readelf", "-d", str(matmul.library)], capture_output=True,
                             text=True, check=True).stdout
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic))
    assert needed and needed <= ALLOWED_NEEDED, needed
    undefined = subprocess.run(["nm", "-D", "--undefined-only", str(matmul.library)],
                               capture_output=True, text=True, check=True).stdout
    assert not re.search(r"\bcu[A-Z]", undefined), undefined


def test_header_states_the_gpu_api(matmul: Built) -> None:
    header = matmul.header.read_text()
    for fragment in ("bool RunWithDevicePointers(const std::uint64_t* device_args",
                     "int gpu_entry(void* const* args, void* const* results, char* error",
                     "int gpu_entry_device(const uint64_t* args",
                     f"int {matmul.c_prefix}_run_device(", 'dlopen("libcuda.so.1")',
                     "PTX for sm_90", "-ldl -lpthread"):
        assert fragment in header, fragment


def test_c_api_compiles_as_c_with_werror(matmul: Built, tmp_path: Path) -> None:
    p = matmul.c_prefix
    user = tmp_path / "user.c"
    user.write_text(f"""
#define {p.upper()}_C_API_IMPLEMENTATION
#include "lib.h"
int main(void) {{
  uint64_t args[2] = {{0, 0}}, results[1] = {{0}};
  char error[256];
  return {p}_run_device(args, results, error, sizeof error) == -1 ? 0 : 1;
}}
""")
    _run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", str(matmul.header.parent),
          "-c", str(user), "-o", str(tmp_path / "user.o")])


def test_loads_with_dlopen_and_rejects_null_device_pointers(matmul: Built) -> None:
    lib = ctypes.CDLL(str(matmul.library))
    run_device = getattr(lib, f"{matmul.c_prefix}_run_device")
    run_device.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    args, results = (ctypes.c_uint64 * 2)(0, 0), (ctypes.c_uint64 * 1)(0)
    error = ctypes.create_string_buffer(256)
    assert run_device(args, results, error, 256) == -1
    assert error.value.decode() == f"{MATMUL_CLASS}: argument 0: the device pointer is 0"
    assert getattr(lib, f"{matmul.c_prefix}_num_args")() == 2


@pytest.mark.skipif(_have_cuda_driver(), reason="a CUDA driver is installed here")
def test_run_without_a_cuda_driver_fails_with_a_clear_message(matmul: Built,
                                                             tmp_path: Path) -> None:
    for mode in ("host", "device"):
        outcome = run_harness(matmul, MATMUL_ARGS, mode, tmp_path)
        assert outcome.status in (2, 3)
    outcome = run_harness(matmul, MATMUL_ARGS, "host", tmp_path)
    assert outcome.status == 2
    assert outcome.error.startswith(f"{MATMUL_CLASS}: no CUDA driver: cannot load libcuda.so.1")
    # The C API says the same, through the shared object loaded in this process.
    lib = ctypes.CDLL(str(matmul.library))
    run = getattr(lib, f"{matmul.c_prefix}_run")
    run.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_char_p, ctypes.c_size_t]
    buffers = [np.zeros(6, np.float32), np.zeros(6, np.float32), np.zeros(4, np.float32)]
    args = (ctypes.c_void_p * 2)(buffers[0].ctypes.data, buffers[1].ctypes.data)
    results = (ctypes.c_void_p * 1)(buffers[2].ctypes.data)
    error = ctypes.create_string_buffer(512)
    assert run(args, results, None, error, 512) == -1
    assert b"no CUDA driver" in error.value


def test_export_library_and_cli_take_the_backend(tmp_path: Path, capsys) -> None:
    lib = export_library(parse(MATMUL_HLO), tmp_path / "e" / "mm", "Mm", backend="gpu",
                         gpu_arch="sm_80")
    assert lib.library_path is not None and "PTX for sm_80" in lib.header_path.read_text()
    hlo = tmp_path / "mm.hlo"
    hlo.write_text(MATMUL_HLO)
    out = tmp_path / "cli"
    status = tfcompile_cli.main([
        "--hlo", str(hlo), "--cpp_class", "ns::Mm", "--backend", "gpu", "--gpu_arch", "sm_86",
        "--out_function_object", str(out / "mm.o"), "--out_header", str(out / "mm.h"),
        "--out_library", str(out / "mm.so")])
    assert status == 0, capsys.readouterr().err
    assert "PTX for sm_86" in (out / "mm.h").read_text() and (out / "mm.so").is_file()
    status = tfcompile_cli.main(["--hlo", str(hlo), "--cpp_class", "A", "--backend", "gpu",
                                 "--target_cpu", "skylake"])
    assert status == 1 and "for the cpu backend" in capsys.readouterr().err
    status = tfcompile_cli.main(["--hlo", str(hlo), "--cpp_class", "A", "--gpu_arch", "sm_80"])
    assert status == 1 and "for the gpu backend" in capsys.readouterr().err
    with pytest.raises(ArgumentError, match="backend 'tpu' is not one of cpu, gpu"):
        export_library(parse(MATMUL_HLO), tmp_path / "x", "X", backend="tpu")


@pytest.mark.skipif(shutil.which("ptxas") is None, reason="ptxas is not installed")
def test_cubin_embedding(tmp_path: Path) -> None:
    lib = export_library(parse(MATMUL_HLO), tmp_path / "mm", "Mm", backend="gpu",
                         gpu_cubin=True)
    assert "a cubin for sm_90" in lib.header_path.read_text()
    assert b"\x7fELF" in lib.object_path.read_bytes()[64:]


def test_c_literal_round_trips_every_byte(tmp_path: Path) -> None:
    data = bytes(range(256)) + b'??=\n"\\0123\n' * 3
    source = tmp_path / "lit.c"
    source.write_text(f"""
#include <stdio.h>
static const char kData[{len(data) + 1}] =
    {c_literal(data)};
int main(void) {{ fwrite(kData, 1, sizeof kData - 1, stdout); return 0; }}
""")
    _run(["gcc", "-std=c11", "-Wall", "-Werror", str(source), "-o", str(tmp_path / "lit")])
    done = subprocess.run([str(tmp_path / "lit")], capture_output=True, check=True)
    assert done.stdout == data


# --- the host code against the plan, on the stand-in driver ------------------------------------
Ref = tuple[str, int]
Event = tuple


def _ref(slot: Slot) -> Ref:
    return ("arena" if slot.pool is Pool.ARENA else "constants", slot.offset)


def expected_events(program: GpuProgram, reads: Sequence[int], mode: str = "host"
                    ) -> list[Event]:
    """What a run must do, by the plan (as runtime/cuda.py interprets it)."""
    pending = list(reads)
    events: list[Event] = []
    upload = "htod" if mode == "host" else "dtod"
    for slot in (s for p in program.params for s in leaves(p)):
        if slot.nbytes:
            events.append((upload, _ref(slot), slot.nbytes))

    def read(slot: Slot) -> int:
        events.append(("dtoh", _ref(slot), slot.nbytes))
        return pending.pop(0)

    def run(steps: Sequence[Step]) -> None:
        for step in steps:
            if isinstance(step, Launch):
                events.append(("launch", step.kernel, step.dims.grid, step.dims.block,
                               step.dims.shared_bytes, tuple(_ref(a) for a in step.args)))
            elif isinstance(step, Copy):
                if step.dst.nbytes:
                    events.append(("dtod", _ref(step.dst), _ref(step.src), step.dst.nbytes))
            elif isinstance(step, While):
                run(step.cond)
                while read(step.pred):
                    run(step.body)
                    run(step.cond)
            elif isinstance(step, Conditional):
                value, last = read(step.selector), len(step.branches) - 1
                if step.selector.shape.element_type is PrimitiveType.PRED:
                    index = 0 if value else 1
                else:
                    index = value if 0 <= value < last else last
                run(step.branches[index])

    run(program.steps)
    download = "dtoh" if mode == "host" else "dtod"
    for slot in leaves(program.result):
        if slot.nbytes:
            events.append((download, _ref(slot), slot.nbytes))
    assert not pending, f"unused scripted reads {pending}"
    return events


def logged_events(program: GpuProgram, log: Path) -> list[Event]:
    """The mock's log of the (last) run, with device addresses as (pool, offset)."""
    lines = log.read_text().splitlines()
    # The library allocates its arena, then its constants, right after loading the module.
    loaded = next(i for i, line in enumerate(lines) if line.startswith("load"))
    allocs = [tuple(int(x) for x in line.split()[1:]) for line in lines[loaded:]
              if line.startswith("alloc")]
    pools = [("arena", allocs[0][0], allocs[0][1])]
    if program.constants:
        pools.append(("constants", allocs[1][0], allocs[1][1]))

    def ref(address: str) -> Ref:
        a = int(address)
        for name, base, size in pools:
            if base <= a < base + size:
                return (name, a - base)
        return ("caller", 0)

    start = len(lines) - 1 - lines[::-1].index("push")
    events: list[Event] = []
    for line in lines[start + 1:]:
        words = line.split()
        if words[0] == "launch":
            numbers = [int(w) for w in words[2:9]]
            events.append(("launch", words[1], tuple(numbers[0:3]), tuple(numbers[3:6]),
                           numbers[6], tuple(ref(w) for w in words[9:])))
        elif words[0] in ("htod", "dtoh"):
            events.append((words[0], ref(words[1]), int(words[2])))
        elif words[0] == "dtod":
            src, dst = ref(words[2]), ref(words[1])
            # Uploads and downloads of a device run copy from / to caller buffers.
            if dst == ("caller", 0):
                events.append(("dtod", src, int(words[3])))
            elif src == ("caller", 0):
                events.append(("dtod", dst, int(words[3])))
            else:
                events.append(("dtod", dst, src, int(words[3])))
    return events


def _corpus_text(name: str) -> str:
    return (CORPUS / "hlo" / f"{name}.hlo").read_text()


def _corpus_args(name: str) -> list[np.ndarray]:
    data = np.load(CORPUS / "hlo" / f"{name}.npz")
    return [data[k] for k in sorted((k for k in data.files if k.startswith("arg")),
                                    key=lambda k: int(k[3:]))]


def test_matmul_run_follows_the_plan(matmul: Built, mock_cuda: Path, tmp_path: Path) -> None:
    log = tmp_path / "log"
    outcome = run_harness(matmul, MATMUL_ARGS, "host", tmp_path, mock_env(mock_cuda, log))
    assert outcome.status == 0, outcome.error
    assert logged_events(matmul.program, log) == expected_events(matmul.program, [])
    lines = log.read_text().splitlines()
    # One initialisation; the run restores the caller's context and waits for the device.
    assert lines.count("init") == 1 and lines.count("load " + str(len(
        matmul.program.ptx.ptx))) == 1
    assert lines[-2:] == ["sync", "pop"]


CONTROL_FLOW = [
    ("while_newton_sqrt", [1, 1, 0]),
    ("while_newton_sqrt", [0]),
    ("switch_3way", [1]),
    ("switch_3way", [7]),     # out of range: the last branch
    ("switch_3way", [-1]),    # negative: the last branch
    ("cond_scalar_pred", [1, 0]),
]


@pytest.mark.skipif(not (CORPUS / "hlo").is_dir(), reason="../shared/corpus is not present")
@pytest.mark.parametrize("name, reads", CONTROL_FLOW,
                         ids=[f"{n}-{'_'.join(map(str, r))}" for n, r in CONTROL_FLOW])
def test_control_flow_follows_the_plan(name: str, reads: list[int], mock_cuda: Path,
                                       tmp_path: Path) -> None:
    built = build(tmp_path, _corpus_text(name), "cf::Case")
    log = tmp_path / "log"
    env = mock_env(mock_cuda, log, reads=",".join(map(str, reads)))
    outcome = run_harness(built, _corpus_args(name), "host", tmp_path, env)
    assert outcome.status == 0, outcome.error
    assert logged_events(built.program, log) == expected_events(built.program, reads)


def test_host_and_device_runs_move_the_data(mock_cuda: Path, tmp_path: Path) -> None:
    names = LibraryNames(("x", None), ("y", None), (("v", False),))
    built = build(tmp_path, IDENTITY_HLO, "id::Identity", names)
    x, v = np.array([1.5, -2.0, 3.25], np.float32), np.array([9.0, 8.0, 7.0], np.float32)
    for mode in ("host", "device"):
        log = tmp_path / f"log_{mode}"
        outcome = run_harness(built, [x, v], mode, tmp_path, mock_env(mock_cuda, log))
        assert outcome.status == 0, outcome.error
        assert [np.frombuffer(r, np.float32).tolist() for r in outcome.results] == [
            x.tolist(), x.tolist()]
        # The variable v is updated in place (to x) by the host and by the device run.
        assert np.frombuffer(outcome.args_after[1], np.float32).tolist() == x.tolist()
        events = logged_events(built.program, log)
        assert events[:len(expected_events(built.program, [], mode))] == expected_events(
            built.program, [], mode)


@pytest.mark.parametrize("settings, fragments", [
    ({"no_device": "1"}, ["no usable CUDA device: cuInit failed: mock error 100"]),
    ({"cc": "80"}, ["compiled for sm_90, but device 0 is sm_80", "--gpu_arch sm_80"]),
    ({"fail": "cuModuleLoadDataEx"}, ["rejected the kernels (sm_90)", "mock ptxas: bad PTX"]),
    ({"fail": "cuLaunchKernel"}, ["CUDA call cuLaunchKernel failed (product): mock error 719"]),
], ids=["no_device", "old_device", "bad_ptx", "launch"])
def test_driver_failures_are_reported(matmul: Built, mock_cuda: Path, tmp_path: Path,
                                      settings: dict[str, str], fragments: list[str]) -> None:
    env = mock_env(mock_cuda, tmp_path / "log", **settings)
    for mode in ("host", "device"):
        outcome = run_harness(matmul, MATMUL_ARGS, mode, tmp_path, env)
        if mode == "device" and "no_device" in settings:
            assert outcome.status == 3  # the harness's own cuInit fails first
            continue
        assert outcome.status == 2, outcome.error
        assert outcome.error.startswith(f"{MATMUL_CLASS}: ")
        for fragment in fragments:
            assert fragment in outcome.error, (fragment, outcome.error)


# --- on a GPU -----------------------------------------------------------------------------------
GPU_CASES = ["while_newton_sqrt", "switch_3way", "cond_scalar_pred", "nested_fori_scan_cond",
             "mlp_forward", "sort_rows_f32", "zero_size_dims", "rank0_scalars"]


@pytest.fixture(scope="module")
def gpu_arch() -> str:
    try:
        from runtime.cuda import device_arch

        return device_arch()
    except Exception as e:  # no driver library or no device
        pytest.skip(f"no usable CUDA GPU: {e}")


@pytest.mark.gpu
def test_matmul_example_on_the_gpu(gpu_arch: str, tmp_path: Path) -> None:
    built = build(tmp_path, MATMUL_HLO, MATMUL_CLASS, gpu_arch=gpu_arch)
    want = MATMUL_ARGS[0] @ MATMUL_ARGS[1]
    for mode in ("host", "device"):
        outcome = run_harness(built, MATMUL_ARGS, mode, tmp_path)
        assert outcome.status == 0, outcome.error
        got = np.frombuffer(outcome.results[0], np.float32).reshape(2, 2)
        np.testing.assert_allclose(got, want, rtol=1e-6)
        assert got[0, 0] == 58


@pytest.mark.gpu
@pytest.mark.skipif(not (CORPUS / "hlo").is_dir(), reason="../shared/corpus is not present")
@pytest.mark.parametrize("name", GPU_CASES)
def test_corpus_case_on_the_gpu(name: str, gpu_arch: str, tmp_path: Path) -> None:
    case = next(c for c in corpus_cases("hlo") if c["name"] == name)
    built = build(tmp_path, _corpus_text(name), "gpu::Case", gpu_arch=gpu_arch)
    data = np.load(CORPUS / "hlo" / case["npz"])
    want = [data[f"out{i}"] for i in range(len(case["outputs"]))]
    for mode in ("host", "device"):
        outcome = run_harness(built, _corpus_args(name), mode, tmp_path)
        assert outcome.status == 0, outcome.error
        assert len(outcome.results) == len(want)
        for i, (raw, w) in enumerate(zip(outcome.results, want, strict=True)):
            got = np.frombuffer(raw, w.dtype).reshape(w.shape)
            if w.dtype.kind in "fc":
                np.testing.assert_allclose(got, w, rtol=4 * case["rtol"], atol=4 * case["atol"],
                                           err_msg=f"{name} out{i} ({mode})")
            else:
                np.testing.assert_array_equal(got, w, err_msg=f"{name} out{i} ({mode})")
