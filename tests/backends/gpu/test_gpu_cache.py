"""compile(backend="gpu") hits an in-memory and an on-disk cache keyed like the CPU path's.

The executable is replaced by a stand-in where no GPU is needed, so the cache logic runs in
CI; the `gpu`-marked test runs the real thing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import backends.gpu
import runtime.cuda
from compiler import api
from hlo import debug_options
from hlo.parser import parse

TEXT = """HloModule cached
ENTRY main {
  x = f32[16] parameter(0)
  ROOT y = f32[16] add(x, x)
}
"""


class FakeExecutable:
    """Records the program it was given instead of loading it on a GPU."""

    def __init__(self, program: Any) -> None:
        self.program = program


@pytest.fixture()
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """GpuExecutable replaced by FakeExecutable; returns the list of programs compiled."""
    compiled: list[Any] = []
    real = backends.gpu.compile_to_program

    def counting(module: Any, options: Any = None, **kwargs: Any) -> Any:
        program = real(module, options, **kwargs)
        compiled.append(program)
        return program

    monkeypatch.setattr(runtime.cuda, "GpuExecutable", FakeExecutable)
    monkeypatch.setattr(backends.gpu, "compile_to_program", counting)
    api.clear_memory_cache()
    yield compiled
    api.clear_memory_cache()


def test_memory_cache_returns_the_same_executable(fake_gpu: list[Any]) -> None:
    first = api.compile(TEXT, backend="gpu", arch="sm_90")
    second = api.compile(parse(TEXT), backend="gpu", arch="sm_90")
    assert first is second
    assert len(fake_gpu) == 1
    other = api.compile(TEXT, backend="gpu", arch="sm_80")
    assert other is not first and len(fake_gpu) == 2
    unoptimized = api.compile(TEXT, backend="gpu", arch="sm_90", optimize=False)
    assert unoptimized is not first and len(fake_gpu) == 3


def test_disk_cache_survives_a_cleared_memory_cache(fake_gpu: list[Any], tmp_path: Path) -> None:
    with debug_options.override(cache_dir=str(tmp_path)):
        first = api.compile(TEXT, backend="gpu", arch="sm_90")
        api.clear_memory_cache()
        again = api.compile(TEXT, backend="gpu", arch="sm_90")
    assert len(fake_gpu) == 1, "the second compile did not come from the disk"
    assert again is not first
    assert again.program.ptx.ptx == first.program.ptx.ptx
    assert again.program.steps == first.program.steps
    assert again.program.ptx.llvm_ir == ""  # IR texts are not stored
    assert len(list(tmp_path.glob("*.gpu.pkl"))) == 1


def test_corrupt_disk_entry_is_recompiled(fake_gpu: list[Any], tmp_path: Path) -> None:
    with debug_options.override(cache_dir=str(tmp_path)):
        api.compile(TEXT, backend="gpu", arch="sm_90")
        (entry,) = tmp_path.glob("*.gpu.pkl")
        entry.write_bytes(entry.read_bytes()[:-7] + b"garbage")
        api.clear_memory_cache()
        exe = api.compile(TEXT, backend="gpu", arch="sm_90")
    assert len(fake_gpu) == 2
    assert "k0_" in exe.program.ptx.ptx


def test_unknown_gpu_option_is_a_compile_error(fake_gpu: list[Any]) -> None:
    from hlo.errors import CompileError

    with pytest.raises(CompileError, match="unknown GPU backend option"):
        api.compile(TEXT, backend="gpu", arch="sm_90", threads=4)


@pytest.mark.gpu
def test_gpu_compile_is_cached_and_runs(gpu_compile: Any) -> None:
    api.clear_memory_cache()
    first = api.compile(TEXT, backend="gpu")
    assert api.compile(TEXT, backend="gpu") is first
    x = np.arange(16, dtype=np.float32)
    np.testing.assert_array_equal(first(x), x + x)
    assert first.uses_graph, first.graph_error
