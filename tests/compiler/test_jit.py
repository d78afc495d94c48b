"""jit: caching per signature, pytrees, static and donated arguments, the CPU backend, the
on-disk cache across processes, and the errors a caller can provoke."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import compiler.numpy as cnp
from compiler import lax
from compiler.autodiff import value_and_grad
from compiler.jit import jit
from compiler.pytree import tree_flatten, tree_map, tree_unflatten, unflattener
from hlo.errors import ArgumentError, UnsupportedOpError
from hlo.opcodes import Opcode
from hlo.printer import to_text

REPO = Path(__file__).resolve().parents[2]


def test_cache_hits_and_miss_reasons():
    f = jit(lambda x, y: x * y + 1, backend="interpreter")
    a = np.ones((2, 3), np.float32)
    f(a, a)
    f(a, a)
    f(a + 1, a)
    assert (f.stats.hits, f.stats.misses) == (2, 1)
    b = np.ones((4, 3), np.float32)
    f(b, b)
    f(a.astype(np.float64), a)
    f(a, a)
    assert (f.stats.hits, f.stats.misses) == (3, 3)
    assert f.stats.miss_reasons[0] == "first call"
    assert "'x'" in f.stats.miss_reasons[1] and "f32[2,3] -> f32[4,3]" in f.stats.miss_reasons[1]
    assert "'x': f32[4,3] -> f64[2,3]" in f.stats.miss_reasons[2]


def test_static_arguments_key_the_cache():
    @jit(static_argnums=1, static_argnames="mode", backend="interpreter")
    def f(x, n, mode="sum"):
        out = x
        for _ in range(n):  # a Python loop over a static value is fine
            out = out * 2
        return cnp.sum(out) if mode == "sum" else out

    x = np.ones(3, np.float32)
    assert f(x, 2) == pytest.approx(12.0)
    assert f(x, 2) == pytest.approx(12.0)
    np.testing.assert_allclose(f(x, 3, mode="all"), [8.0] * 3)
    f(x, 3)
    assert (f.stats.hits, f.stats.misses) == (1, 3)
    assert "static argument changed: 'sum' -> 'all'" in f.stats.miss_reasons[2] or \
        "static argument changed: 2 -> 3" in f.stats.miss_reasons[1]


def test_static_names_and_positions_complete_each_other():
    @jit(static_argnames="n", backend="interpreter")
    def f(x, n):
        return x * n if n > 1 else x  # `n > 1` needs n static, by name or by position

    np.testing.assert_allclose(f(np.ones(2), 3), [3.0, 3.0])
    np.testing.assert_allclose(f(np.ones(2), n=3), [3.0, 3.0])
    g = jit(lambda x, n: x * n if n > 1 else x, static_argnums=1, backend="interpreter")
    np.testing.assert_allclose(g(np.ones(2), n=0), [1.0, 1.0])


def test_pytrees_in_and_out_and_keyword_arguments():
    @jit(backend="interpreter")
    def f(params, batch, *, scale):
        h = batch["x"] @ params["w"] + params["b"]
        return {"h": h * scale, "parts": [h.sum(), (h.max(),)], "none": None}

    params = {"w": np.ones((3, 2), np.float32), "b": np.array([1.0, -1.0], np.float32)}
    batch = {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}
    out = f(params, batch, scale=2.0)
    h = batch["x"] @ params["w"] + params["b"]
    np.testing.assert_allclose(out["h"], h * 2)
    assert out["parts"][0] == pytest.approx(h.sum())
    assert out["parts"][1][0] == pytest.approx(h.max())
    assert out["none"] is None
    f(params, batch, scale=3.0)  # Python numbers are dynamic: no new entry
    assert f.stats.misses == 1


def test_python_scalars_are_weakly_typed_arguments():
    f = jit(lambda x, s: x * s, backend="interpreter")
    out = f(np.ones(2, np.float32), 3)
    assert out.dtype == np.float32
    f(np.ones(2, np.float32), 5)
    assert f.stats.misses == 1
    f(np.ones(2, np.float32), 5.5)
    assert f.stats.misses == 2
    assert f(np.ones(2, np.float32), np.float64(0.5)).dtype == np.float32  # weak, like 0.5
    assert f.stats.misses == 2
    assert f(np.ones(2, np.float32), np.float16(0.5)).dtype == np.float32
    assert f.stats.misses == 3


def test_donated_arguments_are_updated_in_place():
    @jit(donate_argnums=0, backend="interpreter")
    def sgd(w, g):
        return w - 0.5 * g, cnp.sum(g)

    w = np.ones(3, np.float32)
    g = np.array([1.0, 2.0, 4.0], np.float32)
    new_w, total = sgd(w, g)
    assert new_w is w
    np.testing.assert_allclose(w, [0.5, 0.0, -1.0])
    sgd(w, g)
    np.testing.assert_allclose(w, [0.0, -1.0, -3.0])
    assert total == pytest.approx(7.0)


def test_donated_sgd_step_writes_straight_into_the_argument():
    @jit(donate_argnums=0)
    def sgd(w, g):
        return w - 0.1 * g

    w = np.linspace(-1, 1, 256 * 160, dtype=np.float32).reshape(256, 160)  # 160 KiB
    g = np.arange(256 * 160, dtype=np.float32).reshape(256, 160) / 1000
    want = w - np.float32(0.1) * g
    new_w = sgd(w, g)
    assert new_w is w
    np.testing.assert_allclose(w, want, rtol=1e-6)
    assert "input_output_alias={ {0}: (0, {}, may-alias) }" in to_text(sgd.lower(w, g))
    (line,) = sgd.stats.donations
    assert line.startswith("argument 'w' <- result 0: written in place, no copy")
    # The compiled code has no copy into the argument: one kernel reads and writes it.
    (entry,) = sgd._cache.values()
    assert "llvm.memcpy" not in entry.run.artifact.llvm_ir.split("define internal void "
                                                                 "@\"comp.")[1]
    assert sgd(w, g) is w
    np.testing.assert_allclose(w, want - np.float32(0.1) * g, rtol=1e-6)


def test_donated_argument_read_after_the_update_falls_back_to_a_copy():
    @jit(donate_argnums=0)
    def step(w, g):
        new = w - g
        return new, w + new @ new  # reads w after new (which needs all of w) is made

    w = np.linspace(-1, 1, 200 * 200, dtype=np.float32).reshape(200, 200)
    g = np.full((200, 200), 0.5, np.float32)
    want_new, want_other = w - g, w + (w - g) @ (w - g)
    new, other = step(w, g)
    assert new is w
    np.testing.assert_allclose(new, want_new)
    np.testing.assert_allclose(other, want_other, rtol=1e-4, atol=1e-3)
    (line,) = step.stats.donations
    assert "copied in at the end: not in place: w is still read by" in line


def test_small_donations_are_copied_after_a_native_call():
    @jit(donate_argnums=0)
    def sgd(w, g):
        return w - g

    w = np.ones(4, np.float32)
    assert sgd(w, np.ones(4, np.float32)) is w and w.tolist() == [0.0] * 4
    (line,) = sgd.stats.donations
    assert "copied after the call" in line


def test_a_donated_array_that_cannot_be_updated_is_copied():
    @jit(donate_argnums=0)
    def sgd(w, g):
        return w - g

    n = 64 * 1024  # 256 KiB: passed as the result's buffer when it can be
    w = np.ones(n, np.float32)
    w.flags.writeable = False
    out = sgd(w, np.ones(n, np.float32))
    assert out is not w and not out.any() and w.all()
    strided = np.ones(2 * n, np.float32)[::2]
    out = sgd(strided, np.ones(n, np.float32))
    assert out is not strided and not out.any() and strided.all()


def test_lowering_is_deterministic():
    def f(x, w):
        _, ys = lax.scan(lambda c, v: (c + v @ w, cnp.tanh(c)), cnp.zeros(2), x)
        return ys.sum()

    args = (np.ones((4, 3), np.float32), np.ones((3, 2), np.float32))
    t1 = to_text(jit(f).lower(*args))
    t2 = to_text(jit(f).lower(*args))
    assert t1 == t2
    assert "while(" in t1


def test_jit_inside_jit_is_inlined():
    inner = jit(lambda x: x * 2, backend="interpreter")
    outer = jit(lambda x: inner(x) + 1, backend="interpreter")
    np.testing.assert_allclose(outer(np.ones(2)), [3.0, 3.0])
    assert inner.stats.misses == 0
    ops = {i.opcode for c in outer.lower(np.ones(2)).computations for i in c.instructions}
    assert Opcode.CALL not in ops


def test_cpu_backend_runs_a_training_step():
    def loss(w, x, y):
        logits = cnp.tanh(x @ w[0]) @ w[1]
        return -cnp.mean(cnp.sum(cnp.log_softmax(logits) * y, axis=-1))

    def step(w, x, y):
        value, grads = value_and_grad(loss)(w, x, y)
        return [p - 0.1 * g for p, g in zip(w, grads, strict=True)], value

    rng = np.random.default_rng(0)
    w = [rng.standard_normal((4, 8)).astype(np.float32),
         rng.standard_normal((8, 3)).astype(np.float32)]
    x = rng.standard_normal((5, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 1, 0]]
    cpu = jit(step)(w, x, y)
    ref = jit(step, backend="interpreter")(w, x, y)
    for a, b in zip(cpu[0], ref[0], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert cpu[1] == pytest.approx(float(ref[1]), rel=1e-5)


def test_cpu_backend_runs_scan_and_cond_gradients():
    def f(w, xs):
        def cell(h, x):
            h = cnp.tanh(h @ w + x)
            return h, lax.cond(h.sum() > 0, lambda v: v * 2, lambda v: -v, h)

        h, ys = lax.scan(cell, cnp.zeros(3, xs.dtype), xs)
        return cnp.sum(ys ** 2) + cnp.sum(h)

    rng = np.random.default_rng(1)
    w = rng.standard_normal((3, 3)).astype(np.float32)
    xs = rng.standard_normal((7, 3)).astype(np.float32)
    step = lambda w, xs: value_and_grad(f, argnums=(0, 1))(w, xs)  # noqa: E731
    (v_cpu, g_cpu), (v_ref, g_ref) = jit(step)(w, xs), jit(step, backend="interpreter")(w, xs)
    assert float(v_cpu) == pytest.approx(float(v_ref), rel=1e-5)
    for a, b in zip(g_cpu, g_ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_cpu_fast_path_reuses_the_entry():
    f = jit(lambda x: x + 1)
    x = np.zeros(4, np.float32)
    for _ in range(5):
        f(x)
    assert (f.stats.misses, f.stats.hits) == (1, 4)


def test_pytree_calls_with_python_numbers_take_the_tree_fast_path(monkeypatch):
    step = jit(lambda params, lr: {k: v - lr * v for k, v in params.items()})
    params = {"w": np.ones((3, 2), np.float32), "b": np.arange(2, dtype=np.float32)}
    step(params, 0.5)
    # Once the entry is cached, a call with the same tree must not trace or look up again.
    monkeypatch.setattr(step, "_call_slow", None)
    for lr in (0.25, 0.125):
        out = step(params, lr)
        np.testing.assert_allclose(out["w"], (1 - lr) * params["w"])
        np.testing.assert_allclose(out["b"], (1 - lr) * params["b"])
    assert (step.stats.misses, step.stats.hits) == (1, 2)
    monkeypatch.undo()
    step({"w": np.ones((4, 2), np.float32), "b": params["b"]}, 0.5)
    assert step.stats.misses == 2 and "f32[3,2] -> f32[4,2]" in step.stats.miss_reasons[1]


def test_second_process_hits_the_disk_cache(tmp_path):
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import compiler.api as api
        import compiler.numpy as cnp
        from compiler.jit import jit

        if sys.argv[1] == "second":
            def refuse(*args, **kwargs):
                raise AssertionError("the second process compiled the module again")
            api.compile_to_object = refuse

        @jit
        def f(x, w):
            return cnp.sum(cnp.tanh(x @ w), axis=0)

        out = f(np.ones((2, 3), np.float32), np.full((3, 4), 0.5, np.float32))
        print(repr(out.tolist()))
    """)
    path = tmp_path / "run.py"
    path.write_text(script)
    env = dict(os.environ, TFCOMPILE_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=str(REPO))
    runs = [subprocess.run([sys.executable, str(path), which], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=300)
            for which in ("first", "second")]
    for r in runs:
        assert r.returncode == 0, r.stderr
    assert runs[0].stdout == runs[1].stdout
    assert any((tmp_path / "cache").iterdir())


def test_argument_errors_name_the_argument_and_function():
    def step(params, lr):
        return params["w"] * lr

    f = jit(step, backend="interpreter")
    with pytest.raises(ArgumentError) as info:
        f({"w": np.ones(2)}, "fast")
    message = str(info.value)
    assert "'lr'" in message and "str" in message and "static_argnums" in message
    assert "test_jit.py" in message
    with pytest.raises(ArgumentError, match=r"'params'\['w'\].*object"):
        f({"w": np.array([object()])}, 1.0)
    with pytest.raises(ArgumentError, match="hashable"):
        jit(step, static_argnums=1, backend="interpreter")({"w": np.ones(2)}, [1])
    with pytest.raises(ArgumentError, match="unknown backend"):
        jit(step, backend="tpu")


def test_clear_cache_and_lower():
    f = jit(lambda x: x * 2, backend="interpreter")
    f(np.ones(2))
    f.clear_cache()
    f(np.ones(2))
    assert f.stats.misses == 2
    module = f.lower(np.ones(3))
    assert module.entry_computation.root.shape.tuple_shapes[0].dims == (3,)


def test_backend_errors_name_the_users_line(monkeypatch):
    import compiler.api as api

    def refuse(module, backend="cpu", **options):
        name = next(i.name for i in module.entry_computation.instructions
                    if i.opcode is Opcode.TANH)
        raise UnsupportedOpError(f"the CPU backend cannot compile tanh ({name})")

    monkeypatch.setattr(api, "compile", refuse)

    def f(x):
        y = x * 2
        return cnp.tanh(y)

    with pytest.raises(UnsupportedOpError) as info:
        jit(f)(np.ones(2))
    message = str(info.value)
    assert f"{__file__}:{f.__code__.co_firstlineno + 2} in f" in message
    assert "compiling jit(f)" in message


def test_pytree_flatten_orders_dict_keys_and_round_trips():
    tree = {"b": [1, (2, None)], "a": 3}
    leaves, treedef = tree_flatten(tree)
    assert leaves == [3, 1, 2]
    assert tree_flatten({"a": 3, "b": [1, (2, None)]})[1] == treedef
    assert tree_unflatten(treedef, leaves) == tree
    assert unflattener(treedef)(leaves) == tree
    assert unflattener(tree_flatten((1, 2))[1])([5, 6]) == (5, 6)
    assert tree_map(lambda x, y: x + y, tree, tree) == {"b": [2, (4, None)], "a": 6}
    with pytest.raises(ArgumentError, match="structure"):
        tree_map(lambda x, y: x, tree, [1, 2, 3])
