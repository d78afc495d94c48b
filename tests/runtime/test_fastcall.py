"""Native fast calls: which calls take the fast path, what they return, fallbacks, threads,
the arena, errors, and `jit`'s use of them."""

from __future__ import annotations

import gc
import sys
import threading

import numpy as np
import pytest

import compiler
import compiler.numpy as cnp
import hlo
from compiler.jit import jit
from runtime import Executable, Returns, fastcall
from runtime.buffers import aligned_empty
from runtime.loader import HOLD_GIL_BELOW_BYTES

if fastcall.unavailable_reason() is not None:
    pytest.skip(f"native calls unavailable: {fastcall.unavailable_reason()}",
                allow_module_level=True)

PAIR = """HloModule pair

ENTRY main {
  x = f32[2,3] parameter(0)
  y = f32[2,3] parameter(1)
  s = f32[2,3] add(x, y)
  d = f32[2,3] subtract(x, y)
  ROOT t = (f32[2,3], f32[2,3]) tuple(s, d)
}
"""


def plus_one(n: int) -> Executable:
    """x + 1 over f32[n]."""
    return compiler.compile(f"""HloModule plus_one

ENTRY main {{
  x = f32[{n}] parameter(0)
  one = f32[] constant(1)
  b = f32[{n}] broadcast(one), dimensions={{}}
  ROOT y = f32[{n}] add(x, b)
}}
""")


def normalise(n: int) -> Executable:
    """exp(x) / sum(exp(x)) over f32[n]: exp(x) and the sum live in the temporary arena."""
    exe = compiler.compile(f"""HloModule normalise

add {{
  a = f32[] parameter(0)
  b = f32[] parameter(1)
  ROOT s = f32[] add(a, b)
}}

ENTRY main {{
  x = f32[{n}] parameter(0)
  e = f32[{n}] exponential(x)
  zero = f32[] constant(0)
  s = f32[] reduce(e, zero), dimensions={{0}}, to_apply=add
  b = f32[{n}] broadcast(s), dimensions={{}}
  ROOT y = f32[{n}] divide(e, b)
}}
""")
    assert exe.artifact.temp_bytes > 0
    return exe


def expected_normalise(x: np.ndarray) -> np.ndarray:
    e = np.exp(x.astype(np.float64))
    return e / e.sum()


@pytest.fixture(scope="module")
def pair() -> Executable:
    return compiler.compile(PAIR)


def test_layouts_are_verified_on_cpython() -> None:
    # The trampoline reads object fields directly; on 64-bit CPython with the GIL every
    # offset it uses must check out, or the fast path would silently never be used.
    if sys.implementation.name == "cpython" and sys.maxsize > 2**32:
        assert fastcall.unavailable_reason() is None


def test_exact_arrays_take_the_native_path(pair: Executable) -> None:
    assert pair.native is not None
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = np.full((2, 3), 0.5, np.float32)
    before = pair.native.calls
    s, d = pair(x, y)
    assert pair.native.calls == before + 1
    np.testing.assert_array_equal(s, x + y)
    np.testing.assert_array_equal(d, x - y)
    assert s.flags.owndata and d.flags.owndata and s.ctypes.data != d.ctypes.data


def test_native_calls_keep_reference_counts(pair: Executable) -> None:
    x = np.ones((2, 3), np.float32)
    one = plus_one(4)
    v = np.zeros(4, np.float32)
    x_refs, v_refs = sys.getrefcount(x), sys.getrefcount(v)
    for _ in range(100):
        s, d = pair(x, x)
        y = one(v)
    counts = [sys.getrefcount(x), sys.getrefcount(v), sys.getrefcount(s), sys.getrefcount(y)]
    assert counts == [x_refs, v_refs, 2, 2]


@pytest.mark.parametrize("make", [
    lambda x: x.T.copy().T,  # Fortran order
    lambda x: np.repeat(x, 2, axis=1)[:, ::2],  # not contiguous
    lambda x: x.astype(x.dtype.newbyteorder()).astype(np.float32),  # a copy, still exact
    lambda x: np.frombuffer(np.concatenate([np.zeros(1, np.uint8),
                                            np.frombuffer(x.tobytes(), np.uint8)]).data,
                            np.float32, 6, offset=1).reshape(2, 3),  # misaligned
    lambda x: x.view(np.matrix),  # a subclass
])
def test_other_arrays_fall_back_and_still_compute(pair: Executable, make) -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    arg = make(x)
    np.testing.assert_array_equal(np.asarray(arg), x)
    before = pair.native.calls
    s, d = pair(arg, x)
    np.testing.assert_array_equal(s, 2 * x)
    np.testing.assert_array_equal(d, 0 * x)
    exact = type(arg) is np.ndarray and arg.flags.c_contiguous and arg.flags.aligned
    assert pair.native.calls == before + exact


@pytest.mark.parametrize(("args", "match"), [
    ((np.zeros((2, 3), np.float32),), r"expected 2 argument\(s\)"),
    ((np.zeros((2, 3), np.float32),) * 3, "got 3"),
    ((np.zeros((2, 3), np.float64), np.zeros((2, 3), np.float32)), "argument 0.*float64"),
    ((np.zeros((2, 3), np.dtype(">f4")), np.zeros((2, 3), np.float32)), "argument 0"),
    ((np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32)), r"argument 1.*\[2, 3\]"),
    ((np.zeros((2, 3), np.float32), [[0.0] * 3] * 2), "argument 1.*expected an array"),
])
def test_mismatches_raise_the_checkers_errors(pair: Executable, args, match: str) -> None:
    before = pair.native.calls
    with pytest.raises(hlo.ArgumentError, match=match):
        pair(*args)
    assert pair.native.calls == before


def test_keyword_arguments_go_to_the_fallback(pair: Executable) -> None:
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError):
        pair(x, y=x)
    seen = []
    call = pair.native_call(lambda *a, **k: seen.append((len(a), k)) or "fell back")
    assert call.function(x, y=x) == "fell back" and seen == [(1, {"y": x})]
    assert call.function(x, x)[0].shape == (2, 3) and call.calls == 1


def test_return_kinds(pair: Executable) -> None:
    x = np.ones((2, 3), np.float32)

    def refuse(*args: object) -> None:
        raise AssertionError("unexpected fallback")

    as_tuple = pair.native_call(refuse, Returns.TUPLE).function(x, x)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 2
    as_dict = pair.native_call(refuse, Returns.POST,
                               post=lambda r: {"s": r[0], "d": r[1]}).function(x, x)
    assert sorted(as_dict) == ["d", "s"] and as_dict["s"].tolist() == [[2.0] * 3] * 2
    single = plus_one(4).native_call(refuse, Returns.SINGLE).function(np.zeros(4, np.float32))
    assert isinstance(single, np.ndarray) and single.tolist() == [1.0] * 4
    with pytest.raises(ValueError, match="exactly one"):
        pair.native_call(refuse, Returns.SINGLE)
    with pytest.raises(ValueError, match="post"):
        pair.native_call(refuse, Returns.POST)


def test_errors_of_allocators_and_post_propagate(pair: Executable) -> None:
    x = np.ones((2, 3), np.float32)
    made = []

    def alloc(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        if made:
            raise MemoryError("second result refused")
        made.append(np.empty(shape, dtype))
        return made[-1]

    call = fastcall.bind(pair._code.address, [(np.float32, (2, 3))] * 2,
                         [(alloc, (2, 3), np.float32)] * 2, Returns.TUPLE,
                         pair.artifact.temp_bytes, False, print, keep=[pair._code])
    try:
        call.function(x, x)
    except MemoryError as e:
        assert "second result" in str(e)
    else:
        raise AssertionError("the allocator's error was lost")
    # The first result was released again: only `made` holds it (and getrefcount's argument;
    # counted outside the assert, whose rewriting keeps temporaries).
    references = sys.getrefcount(made[0])
    assert references == 2 and call.calls == 0

    def post(results: tuple) -> None:
        raise KeyError("post failed")

    with pytest.raises(KeyError, match="post failed"):
        pair.native_call(print, Returns.POST, post=post).function(x, x)


def test_reentrant_calls_get_their_own_arena() -> None:
    exe = normalise(8)
    x = np.linspace(-1, 1, 8, dtype=np.float32)
    inner: list[np.ndarray | None] = []

    def post(results: tuple) -> np.ndarray:
        # Runs while this builtin is active (its arena is back in its slot by now), and
        # calls the same builtin again, once.
        if not inner:
            inner.append(None)
            inner[0] = call.function(results[0])
        return results[0]

    call = exe.native_call(print, Returns.POST, post=post)
    out = call.function(x)
    np.testing.assert_allclose(out, expected_normalise(x), rtol=1e-5)
    np.testing.assert_allclose(inner[0], expected_normalise(out), rtol=1e-5)
    assert call.calls == 2


def test_gil_is_released_only_for_large_kernels() -> None:
    small = plus_one(8)
    large = plus_one(HOLD_GIL_BELOW_BYTES // 4)
    assert not small.native.releases_gil
    assert large.native.releases_gil


@pytest.mark.parametrize("n", [8, HOLD_GIL_BELOW_BYTES // 4])
def test_concurrent_native_calls(n: int) -> None:
    # With the GIL released, calls overlap: all but one take a fresh arena each.
    exe = normalise(n)
    errors: list[str] = []
    start = threading.Barrier(6)

    def worker(seed: int) -> None:
        x = np.linspace(-1, 1, n, dtype=np.float32) * seed
        want = expected_normalise(x)
        start.wait()
        for _ in range(40):
            y = exe(x)
            if not np.allclose(y, want, rtol=1e-4, atol=1e-9):
                errors.append(f"thread {seed}: wrong result")

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert exe.native.calls >= 6 * 40


def test_native_and_python_paths_agree() -> None:
    exe = plus_one(1000)
    python_only = Executable(exe.artifact, native=False)
    assert python_only.native is None
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    np.testing.assert_array_equal(exe(x), python_only(x))


def test_no_parameters_and_no_results() -> None:
    constant = compiler.compile("""HloModule c

ENTRY main {
  ROOT c = f32[2] constant({1, 2})
}
""")
    assert constant().tolist() == [1.0, 2.0] and constant.native.calls == 1
    with pytest.raises(hlo.ArgumentError, match=r"expected 0 argument\(s\)"):
        constant(1)
    nothing = compiler.compile("""HloModule e

ENTRY main {
  x = f32[2] parameter(0)
  ROOT t = () tuple()
}
""")
    assert nothing(np.ones(2, np.float32)) == () and nothing.native.calls == 1


def test_tuple_parameters_have_no_native_call() -> None:
    exe = compiler.compile("""HloModule tup

ENTRY main {
  p = (f32[2], s32[]) parameter(0)
  ROOT a = f32[2] get-tuple-element(p), index=0
}
""")
    assert exe.native is None
    assert exe((np.ones(2, np.float32), np.int32(0))).tolist() == [1.0, 1.0]


def test_descriptors_free_their_arena() -> None:
    exe = normalise(8)
    x = np.zeros(8, np.float32)
    calls = [exe.native_call(print) for _ in range(20)]
    for call in calls:
        call.function(x)
    del calls, call
    gc.collect()
    assert exe(x).tolist() == [0.125] * 8


def test_results_of_a_large_kernel_are_aligned_and_independent() -> None:
    exe = plus_one(1 << 14)
    x = aligned_empty((1 << 14,), np.float32)
    x[:] = 3
    a, b = exe(x), exe(x)
    assert a.ctypes.data % 64 == 0 and b.ctypes.data % 64 == 0
    a[:] = 0
    assert b[0] == 4 and x[0] == 3


# --- jit -------------------------------------------------------------------------------------
def test_jit_counts_native_hits_and_keeps_them_across_clear_cache() -> None:
    f = jit(lambda x: x * 2)
    x = np.ones(3, np.float32)
    for _ in range(4):
        f(x)
    assert (f.stats.misses, f.stats.hits) == (1, 3)
    f.clear_cache()
    f(x)
    f(x)
    assert (f.stats.misses, f.stats.hits) == (2, 4)


def test_jit_alternating_signatures_and_structures() -> None:
    @jit
    def f(x, y):
        return {"sum": x + y, "parts": [x, cnp.tanh(y)]}

    a = np.ones((2, 2), np.float32)
    b = np.zeros(5, np.float64)
    for _ in range(3):
        out_a = f(a, a)
        out_b = f(b, b)
    assert sorted(out_a) == ["parts", "sum"] and out_a["sum"].tolist() == [[2.0] * 2] * 2
    assert isinstance(out_b["parts"], list) and out_b["parts"][1].dtype == np.float64
    assert (f.stats.misses, f.stats.hits) == (2, 4)


def test_jit_native_path_still_handles_scalars_keywords_and_tracing() -> None:
    @jit
    def f(x, scale=2.0):
        return x * scale

    x = np.arange(3, dtype=np.float32)
    f(x)
    f(x)  # now native
    np.testing.assert_array_equal(f(x, 3.0), x * 3)
    np.testing.assert_array_equal(f(x, scale=4.0), x * 4)
    np.testing.assert_array_equal(f(x), x * 2)
    outer = jit(lambda x: f(x) + 1)
    np.testing.assert_array_equal(outer(x), x * 2 + 1)
    with pytest.raises(hlo.ArgumentError, match="'x'"):
        f("not an array")


def test_jit_single_and_tuple_results_match_the_function() -> None:
    one = jit(lambda x: x + 1)
    two = jit(lambda x: (x + 1, x - 1))
    x = np.zeros(2, np.float64)
    for _ in range(2):
        assert isinstance(one(x), np.ndarray)
        out = two(x)
        assert isinstance(out, tuple) and [o.tolist() for o in out] == [[1.0] * 2, [-1.0] * 2]
