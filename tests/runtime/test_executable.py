"""The in-process Executable: argument checks, results, threads, and the compile caches."""

from __future__ import annotations

import inspect
import json
import threading
from pathlib import Path

import numpy as np
import pytest

import compiler
import hlo
from compiler import api
from hlo import debug_options
from hlo.parser import parse
from runtime import aligned_empty, check_arguments
from runtime.buffers import ALIGN_RESULTS_FROM_BYTES, is_aligned

TEXT = """HloModule exe

ENTRY main {
  x = f32[2,3] parameter(0)
  k = s32[] parameter(1)
  kf = f32[] convert(k)
  b = f32[2,3] broadcast(kf), dimensions={}
  y = f32[2,3] multiply(x, b)
  ROOT t = (f32[2,3], s32[]) tuple(y, k)
}
"""
SINGLE = """HloModule single

ENTRY main {
  x = f64[4] parameter(0)
  ROOT y = f64[4] sine(x)
}
"""


@pytest.fixture(scope="module")
def exe() -> compiler.api.Executable:
    return compiler.compile(parse(TEXT))


def test_results_are_fresh_arrays(exe) -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y, k = exe(x, np.int32(3))
    np.testing.assert_array_equal(y, x * 3)
    assert k.shape == () and k == 3
    assert y.flags.c_contiguous and y.flags.writeable and y.flags.owndata
    assert is_aligned(y, y.dtype.itemsize) and is_aligned(k, k.dtype.itemsize)
    y2, _ = exe(x, np.int32(3))
    assert y2.ctypes.data != y.ctypes.data


def test_large_results_are_64_byte_aligned() -> None:
    n = ALIGN_RESULTS_FROM_BYTES // 4
    run = compiler.compile(SINGLE.replace("f64[4]", f"f32[{n}]"))
    x = np.linspace(0, 1, n, dtype=np.float32)
    for _ in range(4):
        y = run(x)
        assert is_aligned(y) and y.flags.writeable
        np.testing.assert_allclose(y, np.sin(x), rtol=1e-6)


def test_executables_look_like_functions_of_arrays(exe) -> None:
    assert callable(exe) and str(inspect.signature(exe)) == "(*arrays)"
    assert exe.native is None or exe.native.function.__name__ == exe.symbol


def test_single_result_is_an_array_and_text_input_compiles() -> None:
    run = compiler.compile(SINGLE)
    x = np.linspace(0, 3, 4)
    out = run(x)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, np.sin(x), rtol=1e-15)


@pytest.mark.parametrize(("args", "match"), [
    ((), r"expected 2 argument\(s\).*got 0"),
    ((np.zeros((2, 3), np.float32),), "got 1"),
    ((np.zeros((2, 3), np.float64), np.int32(1)), r"argument 0 \('x'\).*float32.*got float64"),
    ((np.zeros((3, 2), np.float32), np.int32(1)), r"argument 0.*shape \[2, 3\].*got"),
    ((np.zeros((2, 3), np.float32), np.int64(1)), r"argument 1 \('k'\).*int32.*int64"),
    ((np.zeros((2, 3), np.float32), "seven"), r"argument 1.*expected an array"),
    ((np.zeros((2, 3), np.float32), 1, 2), "got 3"),
])
def test_argument_errors_name_the_argument(exe, args: tuple, match: str) -> None:
    with pytest.raises(hlo.ArgumentError, match=match):
        exe(*args)


def test_tuple_parameter_structure_is_checked() -> None:
    text = """HloModule tup

ENTRY main {
  p = (f32[2], s32[]) parameter(0)
  ROOT a = f32[2] get-tuple-element(p), index=0
}
"""
    run = compiler.compile(parse(text))
    assert run((np.ones(2, np.float32), np.int32(0))).tolist() == [1.0, 1.0]
    with pytest.raises(hlo.ArgumentError, match="expected a tuple"):
        run(np.ones(2, np.float32))
    with pytest.raises(hlo.ArgumentError, match="element 1"):
        run((np.ones(2, np.float32), np.float32(0)))


def test_non_contiguous_inputs_are_copied(exe) -> None:
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    strided = base[::2, ::2]
    fortran = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    y, _ = exe(strided, np.int32(2))
    np.testing.assert_array_equal(y, strided * 2)
    y, _ = exe(fortran, np.int32(-1))
    np.testing.assert_array_equal(y, -fortran)


def test_run_into_caller_buffers(exe) -> None:
    x = np.ones((2, 3), np.float32)
    y = aligned_empty((2, 3), np.float32)
    k = aligned_empty((), np.int32)
    exe.run_into((x, np.int32(5)), [y, k])
    assert y.tolist() == [[5.0] * 3] * 2 and k == 5
    with pytest.raises(hlo.ArgumentError, match="result 0"):
        exe.run_into((x, np.int32(5)), [np.empty((3, 2), np.float32), k])


DONATING = """HloModule donating, input_output_alias={ {0}: (0, {}, may-alias) }

ENTRY main {
  w = f32[4] parameter(0)
  g = f32[4] parameter(1)
  n = f32[4] subtract(w, g)
  s = f32[] constant(0)
  sum = f32[] reduce(g, s), dimensions={0}, to_apply=add
  ROOT t = (f32[4], f32[]) tuple(n, sum)
}

add {
  a = f32[] parameter(0)
  b = f32[] parameter(1)
  ROOT c = f32[] add(a, b)
}
"""


def test_aliased_result_updates_the_argument_only_when_passed_as_its_buffer() -> None:
    donating = compiler.compile(parse(DONATING))
    assert [a.direct for a in donating.artifact.extra["buffer_assignment"].aliases] == [True]
    w = np.array([1, 2, 3, 4], np.float32)
    g = np.ones(4, np.float32)
    # A plain call allocates the result: the argument is copied there first, not written.
    n, total = donating(w, g)
    assert n.tolist() == [0, 1, 2, 3] and total == 4
    assert w.tolist() == [1, 2, 3, 4]
    # Passing the argument as the result's buffer (donation) updates it in place.
    k = np.empty((), np.float32)
    donating.run_into((w, g), [w, k])
    assert w.tolist() == [0, 1, 2, 3] and k == 4
    # Any other sharing between results and arguments is refused.
    with pytest.raises(hlo.ArgumentError, match="result 0 shares memory with argument 1"):
        donating.run_into((w, g), [g, k])
    with pytest.raises(hlo.ArgumentError, match="result 0 shares memory with argument 0"):
        compiler.compile(parse(SINGLE)).run_into([x := np.ones(4)], [x])


def test_concurrent_calls_from_threads_are_independent(exe) -> None:
    errors: list[str] = []

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(50):
            x = rng.standard_normal((2, 3)).astype(np.float32)
            k = np.int32(rng.integers(-5, 5))
            y, kk = exe(x, k)
            if not (np.array_equal(y, x * np.float32(k)) and kk == k):
                errors.append(f"thread {seed}: wrong result")

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_check_arguments_flattens_tuples() -> None:
    from hlo.dtypes import PrimitiveType as T
    from hlo.shape import Shape

    shapes = [Shape.tuple_of([Shape.array(T.F32, [2]), Shape.scalar(T.S32)]),
              Shape.array(T.U8, [3])]
    leaves = check_arguments(shapes, [(np.zeros(2, np.float32), np.int32(1)),
                                      np.zeros(3, np.uint8)])
    assert [leaf.dtype for leaf in leaves] == [np.float32, np.int32, np.uint8]


def test_aligned_empty_handles_zero_size() -> None:
    for dims in [(0,), (0, 5), (), (3, 7)]:
        a = aligned_empty(dims, np.float64)
        assert a.shape == dims and is_aligned(a)


# --- caches --------------------------------------------------------------------------------


def test_memory_cache_returns_the_same_executable() -> None:
    a = compiler.compile(parse(SINGLE))
    b = compiler.compile(parse(SINGLE))
    assert a is b
    c = compiler.compile(parse(SINGLE), opt_level=1)
    assert c is not a


def test_disk_cache_round_trip_and_corruption(tmp_path: Path) -> None:
    module = parse(SINGLE)
    x = np.linspace(-1, 1, 4)
    with debug_options.override(cache_dir=str(tmp_path)):
        api.clear_memory_cache()
        first = compiler.compile(module)
        entries = sorted(p.suffix for p in tmp_path.iterdir())
        assert entries == [".json", ".o"]
        meta = json.loads(next(tmp_path.glob("*.json")).read_text())
        assert meta["symbol"] == first.symbol and meta["temp_bytes"] >= 0

        api.clear_memory_cache()
        again = compiler.compile(module)
        assert again is not first
        assert again.artifact.llvm_ir == ""  # loaded from disk, not recompiled
        np.testing.assert_array_equal(again(x), first(x))

        # A corrupt object is detected by its checksum and recompiled.
        obj = next(tmp_path.glob("*.o"))
        obj.write_bytes(b"garbage")
        api.clear_memory_cache()
        rebuilt = compiler.compile(module)
        assert rebuilt.artifact.llvm_ir != ""
        np.testing.assert_array_equal(rebuilt(x), first(x))
        assert not list(tmp_path.glob(".*.tmp"))
    api.clear_memory_cache()


def test_fingerprint_depends_on_text_and_options() -> None:
    from backends.cpu import CpuOptions

    m1 = parse(SINGLE)
    m2 = parse(SINGLE.replace("sine", "cosine"))
    opts = CpuOptions(target_triple="x86_64-unknown-linux-gnu", target_cpu="generic",
                      target_features="")
    assert api.fingerprint(m1, "cpu", opts) == api.fingerprint(parse(SINGLE), "cpu", opts)
    assert api.fingerprint(m1, "cpu", opts) != api.fingerprint(m2, "cpu", opts)
    other = CpuOptions(target_triple="x86_64-unknown-linux-gnu", target_cpu="generic",
                       target_features="", opt_level=1)
    assert api.fingerprint(m1, "cpu", opts) != api.fingerprint(m1, "cpu", other)


def test_read_only_and_offset_views_are_accepted(exe) -> None:
    base = np.arange(12, dtype=np.float32)
    view = base[6:].reshape(2, 3)  # contiguous, not at the start of its buffer
    frozen = np.arange(6, dtype=np.float32).reshape(2, 3)
    frozen.setflags(write=False)
    y, _ = exe(view, np.int32(1))
    np.testing.assert_array_equal(y, view)
    y, _ = exe(frozen, np.int32(2))
    np.testing.assert_array_equal(y, frozen * 2)
