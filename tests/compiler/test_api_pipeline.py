"""`compiler.compile` runs the default pipeline on a clone of the module before code
generation; the cache key names the text before passes and the pipeline's passes."""

from __future__ import annotations

import numpy as np
import pytest

import compiler
import compiler.api as api
from backends.cpu import CpuOptions
from compiler.pipeline import iter_passes
from compiler.pipelines import default_pipeline
from hlo import debug_options
from hlo.errors import CompileError
from hlo.opcodes import Opcode
from hlo.parser import parse
from hlo.printer import to_text

TEXT = """HloModule softplus_sum

add {
  a = f32[] parameter(0)
  b = f32[] parameter(1)
  ROOT s = f32[] add(a, b)
}

ENTRY main {
  x = f32[16,8] parameter(0)
  e = f32[16,8] exponential(x)
  one = f32[] constant(1)
  ones = f32[16,8] broadcast(one), dimensions={}
  p = f32[16,8] add(e, ones)
  l = f32[16,8] log(p)
  z = f32[] constant(0)
  r = f32[16] reduce(l, z), dimensions={1}, to_apply=add
  ROOT t = (f32[16,8], f32[16]) tuple(l, r)
}
"""


def _x() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)


def _expected(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    soft = np.log1p(np.exp(x.astype(np.float64)))
    return soft, soft.sum(axis=1)


def test_compile_optimises_a_clone_and_keeps_the_callers_module() -> None:
    module = parse(TEXT)
    before = to_text(module)
    exe = compiler.compile(module)
    assert to_text(module) == before
    optimized = exe.artifact.extra["optimized_module"]
    assert optimized is not module
    kinds = sorted(i.attrs["kind"] for i in optimized.entry_computation.instructions
                   if i.opcode is Opcode.FUSION)
    assert kinds == ["kInput", "kLoop"]
    assert "== fusion ==" in exe.artifact.extra["pipeline"].explain()
    soft, total = exe(_x())
    np.testing.assert_allclose(soft, _expected(_x())[0], rtol=1e-5)
    np.testing.assert_allclose(total, _expected(_x())[1], rtol=1e-5)


def test_optimize_false_compiles_the_module_as_written() -> None:
    exe = compiler.compile(TEXT, optimize=False)
    assert "optimized_module" not in exe.artifact.extra
    kernels = [line for line in exe.artifact.llvm_ir.splitlines()
               if line.startswith("define internal") and "noinline" in line]
    # exponential, broadcast, add, log and reduce: one kernel each.
    assert len(kernels) == 5
    soft, total = exe(_x())
    np.testing.assert_allclose(total, _expected(_x())[1], rtol=1e-5)


def test_cache_key_names_the_passes_and_optimize_selects_an_entry() -> None:
    module = parse(TEXT)
    names = api.pipeline_pass_names()
    assert names == tuple(p.name for p in iter_passes(default_pipeline("cpu")))
    assert "fusion" in names and "buffer_assignment" in names
    opts = CpuOptions(target_triple="x86_64-unknown-linux-gnu", target_cpu="generic",
                      target_features="")
    assert api.fingerprint(module, "cpu", opts, names) != api.fingerprint(module, "cpu", opts)
    api.clear_memory_cache()
    optimized = compiler.compile(module)
    assert compiler.compile(parse(TEXT)) is optimized
    plain = compiler.compile(module, optimize=False)
    assert plain is not optimized
    assert compiler.compile(module, optimize=False) is plain


def test_optimize_must_be_a_bool() -> None:
    with pytest.raises(CompileError, match="optimize must be True or False"):
        compiler.compile(TEXT, optimize="yes")  # type: ignore[arg-type]


def test_disk_cache_entry_of_an_optimised_compilation(tmp_path) -> None:
    with debug_options.override(cache_dir=str(tmp_path)):
        api.clear_memory_cache()
        first = compiler.compile(TEXT)
        api.clear_memory_cache()
        again = compiler.compile(TEXT)
        assert again is not first and again.artifact.llvm_ir == ""  # from disk
        assert again.artifact.temp_bytes == first.artifact.temp_bytes
        for a, b in zip(again(_x()), first(_x()), strict=True):
            np.testing.assert_array_equal(a, b)
    api.clear_memory_cache()


def test_compile_artifact_and_optimize_module() -> None:
    module = parse(TEXT)
    optimized, pipeline = api.optimize_module(module)
    assert any(i.opcode is Opcode.FUSION for i in optimized.entry_computation.instructions)
    assert not any(i.opcode is Opcode.FUSION for i in module.entry_computation.instructions)
    assert "== buffer_assignment ==" in pipeline.explain()
    art = api.compile_artifact(module, CpuOptions())
    assert art.temp_bytes == art.extra["buffer_assignment"].temp_bytes
    unoptimized = api.compile_artifact(module, optimize=False)
    # Unoptimised, e, p and l are separate buffers (l is a result): more arena.
    assert unoptimized.temp_bytes > art.temp_bytes


def test_gpu_backend_is_routed_and_fails_cleanly_without_a_driver() -> None:
    """compile(backend="gpu") reaches the GPU backend: it runs where a GPU is usable and
    otherwise raises a CompileError that names the missing CUDA piece."""
    import numpy as np

    import compiler
    from hlo.errors import CompileError

    text = ("HloModule m\nENTRY e {\n  x = f32[4]{0} parameter(0)\n"
            "  ROOT y = f32[4]{0} add(x, x)\n}\n")
    try:
        exe = compiler.compile(text, backend="gpu")
    except CompileError as e:
        assert "CUDA" in str(e) or "GPU" in str(e), e
        return
    np.testing.assert_array_equal(exe(np.arange(4, dtype=np.float32)), [0, 2, 4, 6])
