"""Reverse-mode autodiff: gradients against float64 central finite differences.

Every gradient is computed by tracing `grad(f)` and running the module on the reference
evaluator in float64; the reference is a central difference of f (also evaluated) along
random directions: <grad f(x), v> ~ (f(x + eps v) - f(x - eps v)) / (2 eps). Small cases
also check every component. The tolerance (relative 1e-6 plus absolute 1e-9) is far
above the O(eps^2) truncation error with eps = 1e-5 on these smooth functions. Where JAX
is installed, the gradients of the acceptance models are also compared with jax.grad's.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
import pytest

import compiler.numpy as cnp
from compiler import lax, pytree
from compiler.autodiff import grad, grad_module, value_and_grad
from compiler.jit import jit
from compiler.vjp_rules import VJP, ZERO_VJP
from hlo.errors import ArgumentError, ShapeError, UnsupportedOpError
from hlo.evaluator import evaluate
from hlo.opcodes import Opcode
from hlo.parser import parse

EPS = 1e-5
RTOL = 1e-6
ATOL = 1e-9


def _directional_check(f, args, argnums=None, directions=2, seed=1, exhaustive=False):
    """Compare grad(f) with finite differences of f along random directions."""
    argnums = tuple(range(len(args))) if argnums is None else argnums
    fj = jit(f, backend="interpreter")
    gj = jit(grad(f, argnums=argnums), backend="interpreter")
    grads = gj(*args)
    rng = np.random.default_rng(seed)
    for _ in range(directions):
        vs = {i: rng.standard_normal(args[i].shape) for i in argnums}
        plus = [a + EPS * vs[i] if i in vs else a for i, a in enumerate(args)]
        minus = [a - EPS * vs[i] if i in vs else a for i, a in enumerate(args)]
        numeric = (float(fj(*plus)) - float(fj(*minus))) / (2 * EPS)
        analytic = sum(float(np.sum(g * vs[i])) for g, i in zip(grads, argnums, strict=True))
        assert analytic == pytest.approx(numeric, rel=RTOL, abs=ATOL * 100)
    if exhaustive:
        for g, i in zip(grads, argnums, strict=True):
            ref = np.zeros_like(args[i])
            for idx in np.ndindex(args[i].shape):
                plus, minus = list(args), list(args)
                plus[i] = args[i].copy()
                minus[i] = args[i].copy()
                plus[i][idx] += EPS
                minus[i][idx] -= EPS
                ref[idx] = (float(fj(*plus)) - float(fj(*minus))) / (2 * EPS)
            np.testing.assert_allclose(g, ref, rtol=1e-6, atol=1e-8)
    return grads


def _rand(*shape, seed=0, positive=False):
    x = np.random.default_rng(seed + sum(shape)).standard_normal(shape)
    return np.abs(x) + 0.5 if positive else x


# --- the acceptance models ----------------------------------------------------------------------
# Each loss takes a namespace `m` of array functions first, so that the same definition runs
# with compiler.numpy here and with jax.numpy in the comparison with jax.grad below.


def _tfcompile_ops() -> SimpleNamespace:
    return SimpleNamespace(
        np=cnp, relu=cnp.relu, sigmoid=cnp.sigmoid, log_softmax=cnp.log_softmax,
        softmax=cnp.softmax, one_hot=cnp.one_hot, scan=lax.scan, conv=cnp.conv,
        max_pool=cnp.max_pool, avg_pool=cnp.avg_pool)


def _jax_ops(jax) -> SimpleNamespace:
    """jax's equivalents of the functions the losses use (NHWC / HWIO convolutions)."""
    dims = ("NHWC", "HWIO", "NHWC")

    def conv(x, k, strides=1, padding="SAME"):
        return jax.lax.conv_general_dilated(x, k, (strides, strides), padding,
                                            dimension_numbers=dims)

    def pool(x, init, op, window, strides, padding):
        strides = window if strides is None else strides
        return jax.lax.reduce_window(x, init, op, (1, window, window, 1),
                                     (1, strides, strides, 1), padding)

    return SimpleNamespace(
        np=jax.numpy, relu=jax.nn.relu, sigmoid=jax.nn.sigmoid,
        log_softmax=jax.nn.log_softmax, softmax=jax.nn.softmax, one_hot=jax.nn.one_hot,
        scan=jax.lax.scan, conv=conv,
        max_pool=lambda x, w, strides=None, padding="VALID": pool(
            x, -np.inf, jax.lax.max, w, strides, padding),
        avg_pool=lambda x, w, strides=None, padding="VALID": pool(
            x, 0.0, jax.lax.add, w, strides, padding) / (w * w))


OPS = _tfcompile_ops()
MLP_LABELS = np.array([0, 3, 4, 1], np.int32)
XENT_LABELS = np.array([2, 0, 1])


def _mlp_loss(m, params, x):
    h = x
    for w, b in params[:-1]:
        h = m.np.tanh(h @ w + b)
    w, b = params[-1]
    logits = h @ w + b
    logp = m.log_softmax(logits, axis=-1)
    one_hot = m.one_hot(MLP_LABELS, logits.shape[-1], dtype=logp.dtype)
    return -m.np.mean(m.np.sum(logp * one_hot, axis=-1))


def _mlp_args():
    params = [(_rand(6, 8, seed=1) * 0.5, _rand(8, seed=2)), (_rand(8, 5, seed=3), _rand(5))]
    return [params, _rand(4, 6, seed=4)]


def test_mlp_softmax_cross_entropy():
    params, x = _mlp_args()
    f = functools.partial(_mlp_loss, OPS)
    fj = jit(f, backend="interpreter")
    gp = jit(grad(f), backend="interpreter")(params, x)
    assert isinstance(gp, list) and len(gp) == 2 and gp[0][0].shape == (6, 8)
    rng = np.random.default_rng(0)
    vs = [(rng.standard_normal(w.shape), rng.standard_normal(b.shape)) for w, b in params]
    plus = [(w + EPS * vw, b + EPS * vb) for (w, b), (vw, vb) in zip(params, vs, strict=True)]
    minus = [(w - EPS * vw, b - EPS * vb) for (w, b), (vw, vb) in zip(params, vs, strict=True)]
    numeric = (float(fj(plus, x)) - float(fj(minus, x))) / (2 * EPS)
    analytic = sum(float(np.sum(g * v)) for gl, vl in zip(gp, vs, strict=True)
                   for g, v in zip(gl, vl, strict=True))
    assert analytic == pytest.approx(numeric, rel=RTOL)


def _cnn_loss(m, k1, k2, w, x):
    h = m.relu(m.conv(x, k1, strides=1, padding="SAME"))
    h = m.max_pool(h, 2)
    h = m.np.tanh(m.conv(h, k2, strides=2, padding="VALID"))
    h = m.avg_pool(h, 2, strides=1, padding="SAME")
    logits = h.reshape(h.shape[0], -1) @ w
    return -m.np.sum(m.log_softmax(logits)[:, 1])


def _cnn_args():
    k1, k2 = _rand(3, 3, 2, 3, seed=1), _rand(2, 2, 3, 4, seed=2)
    x = _rand(2, 8, 8, 2, seed=3)
    w = _rand(2 * 2 * 4, 3, seed=4) * 0.3
    return [k1, k2, w, x]


def test_cnn():
    _directional_check(functools.partial(_cnn_loss, OPS), _cnn_args(), directions=3)


def _lstm_loss(m, params, xs):
    wx, wh, b = params
    hidden = wh.shape[0]

    def cell(carry, x):
        h, c = carry
        z = x @ wx + h @ wh + b
        i, f, g, o = (z[..., k * hidden:(k + 1) * hidden] for k in range(4))
        c = m.sigmoid(f) * c + m.sigmoid(i) * m.np.tanh(g)
        h = m.sigmoid(o) * m.np.tanh(c)
        return (h, c), h

    batch = xs.shape[1]
    zeros = m.np.zeros((batch, hidden), xs.dtype)
    (h, _), hs = m.scan(cell, (zeros, zeros), xs)
    return m.np.sum(h ** 2) + m.np.mean(hs)


def _lstm_args(hidden=3, steps=6):
    params = (_rand(2, 4 * hidden, seed=1), _rand(hidden, 4 * hidden, seed=2) * 0.5,
              _rand(4 * hidden, seed=3))
    return [params, _rand(steps, 2, 2, seed=4)]


def test_lstm_over_scan():
    params, xs = _lstm_args()
    f = functools.partial(_lstm_loss, OPS)
    fj = jit(f, backend="interpreter")
    g_params, g_xs = jit(grad(f, argnums=(0, 1)), backend="interpreter")(params, xs)
    rng = np.random.default_rng(3)
    vs = tuple(rng.standard_normal(p.shape) for p in params)
    vx = rng.standard_normal(xs.shape)
    plus = tuple(p + EPS * v for p, v in zip(params, vs, strict=True))
    minus = tuple(p - EPS * v for p, v in zip(params, vs, strict=True))
    numeric = (float(fj(plus, xs + EPS * vx)) - float(fj(minus, xs - EPS * vx))) / (2 * EPS)
    analytic = sum(float(np.sum(g * v)) for g, v in zip(g_params, vs, strict=True))
    analytic += float(np.sum(g_xs * vx))
    assert analytic == pytest.approx(numeric, rel=RTOL)


def test_lstm_gradient_is_a_reverse_loop_not_unrolled():
    params, xs = _lstm_args(steps=200)
    module = jit(grad(functools.partial(_lstm_loss, OPS)), backend="interpreter").lower(
        params, xs)
    whiles = [i for c in module.computations for i in c.instructions if i.opcode is Opcode.WHILE]
    assert len(whiles) == 2  # the forward (with stacked residuals) and the reverse loop
    assert sum(len(c.instructions) for c in module.computations) < 400


def _layernorm(m, x, gamma, beta):
    mean = m.np.mean(x, axis=-1, keepdims=True)
    var = m.np.var(x, axis=-1, keepdims=True)
    y = (x - mean) / m.np.sqrt(var + 1e-5) * gamma + beta
    return m.np.sum(m.np.sin(y) * y)


def _layernorm_args():
    return [_rand(3, 5, seed=1), _rand(5, seed=2), _rand(5, seed=3)]


def test_layernorm():
    _directional_check(functools.partial(_layernorm, OPS), _layernorm_args(), exhaustive=True)


def _attention(m, wq, wk, wv, x):
    q, k, v = x @ wq, x @ wk, x @ wv
    scores = m.np.einsum("bqd,bkd->bqk", q, k) / np.sqrt(q.shape[-1])
    mask = m.np.tril(m.np.ones((x.shape[1], x.shape[1]), bool))
    scores = m.np.where(mask, scores, -1e9)
    out = m.np.matmul(m.softmax(scores, axis=-1), v)
    return m.np.sum(out ** 2)


def _attention_args():
    return [_rand(4, 3, seed=1), _rand(4, 3, seed=2), _rand(4, 3, seed=3),
            _rand(2, 5, 4, seed=4)]


def test_attention():
    _directional_check(functools.partial(_attention, OPS), _attention_args(), directions=3)


def _xent(m, logits):
    logp = m.log_softmax(logits)
    return -m.np.mean(m.np.take_along_axis(logp, XENT_LABELS[:, None], axis=1))


def test_softmax_cross_entropy_exhaustive():
    g = _directional_check(functools.partial(_xent, OPS), [_rand(3, 4)], exhaustive=True)[0]
    x = _rand(3, 4)
    p = np.exp(x) / np.exp(x).sum(-1, keepdims=True)
    p[np.arange(3), XENT_LABELS] -= 1
    np.testing.assert_allclose(g, p / 3, rtol=1e-10)


# name -> (loss(m, *args), its float64 arguments); every argument is differentiated.
ACCEPTANCE_MODELS = {
    "mlp": (_mlp_loss, _mlp_args),
    "cnn": (_cnn_loss, _cnn_args),
    "lstm_over_scan": (_lstm_loss, _lstm_args),
    "layernorm": (_layernorm, _layernorm_args),
    "attention": (_attention, _attention_args),
    "softmax_cross_entropy": (_xent, lambda: [_rand(3, 4)]),
}


@pytest.mark.parametrize("name", sorted(ACCEPTANCE_MODELS))
def test_acceptance_models_match_jax_grad(name):
    """The same losses through jax.grad in float64 (only when JAX is installed)."""
    jax = pytest.importorskip("jax")
    loss, make_args = ACCEPTANCE_MODELS[name]
    args = make_args()
    argnums = tuple(range(len(args)))
    ours = jit(grad(functools.partial(loss, OPS), argnums=argnums), backend="interpreter")(
        *args)
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)  # float64, as the interpreter computes here
    try:
        theirs = jax.grad(functools.partial(loss, _jax_ops(jax)), argnums=argnums)(*args)
        theirs = jax.tree_util.tree_map(np.asarray, theirs)
    finally:
        jax.config.update("jax_enable_x64", previous)
    ours_leaves, ours_def = pytree.tree_flatten(ours)
    theirs_leaves, theirs_def = pytree.tree_flatten(theirs)
    assert ours_def == theirs_def
    for a, b in zip(ours_leaves, theirs_leaves, strict=True):
        assert a.dtype == np.float64 and b.dtype == np.float64
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# --- one check per VJP rule -----------------------------------------------------------------------


ELEMENTWISE_CASES = {
    "add_sub_mul_div": (lambda x, y: cnp.sum((x + y) * (x - y) / (y * y + 1)), 2, False),
    "negate_exp_log": (lambda x, y: cnp.sum(-cnp.exp(x) * cnp.log(y)), 2, True),
    "tanh_logistic": (lambda x, y: cnp.sum(cnp.tanh(x) * cnp.sigmoid(y)), 2, False),
    "sqrt_rsqrt": (lambda x, y: cnp.sum(cnp.sqrt(x) + cnp.rsqrt(y)), 2, True),
    "power": (lambda x, y: cnp.sum(cnp.power(x, y)), 2, True),
    "max_min": (lambda x, y: cnp.sum(cnp.maximum(x, y) * 2 + cnp.minimum(x, y) ** 2), 2, False),
    "abs_sign": (lambda x, y: cnp.sum(cnp.abs(x) * y), 2, False),
    "sin_cos_tan": (lambda x, y: cnp.sum(cnp.sin(x) * cnp.cos(y) + cnp.tan(x * 0.3)), 2, False),
    "log1p_expm1": (lambda x, y: cnp.sum(cnp.log1p(x) * cnp.expm1(y)), 2, True),
    "erf_atan2": (lambda x, y: cnp.sum(cnp.erf(x) + cnp.arctan2(y, x)), 2, True),
    "cbrt_remainder": (lambda x, y: cnp.sum(cnp.cbrt(x) + cnp.fmod(x * 3, y)), 2, True),
    "select_compare": (lambda x, y: cnp.sum(cnp.where(x > y, x * y, x - y)), 2, False),
    "clamp": (lambda x, y: cnp.sum(lax.clamp(-0.5, x * 0.3 - 0.1, y)), 2, False),
    "convert": (lambda x, y: cnp.sum(x.astype(np.float32).astype(np.float64) * y
                                     + x.astype(np.int32)), 2, False),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE_CASES))
def test_elementwise_vjps(name):
    f, arity, positive = ELEMENTWISE_CASES[name]
    args = [_rand(2, 3, seed=k, positive=positive) for k in range(arity)]
    if name == "convert":
        # float32 round trip: compare with its own rounding, the gradient passes through.
        g = jit(grad(f, argnums=(0, 1)), backend="interpreter")(*args)
        np.testing.assert_allclose(g[0], args[1], rtol=1e-6)
        return
    _directional_check(f, args)


def test_movement_vjps():
    def f(x, y):
        a = cnp.broadcast_to(x[:, None, :], (4, 2, 3)) * y[None, :, None]   # broadcast
        b = cnp.transpose(a, (2, 0, 1)).reshape(3, 8)                        # transpose, reshape
        c = b[::2, 1:7:3]                                                     # slice with strides
        d = cnp.concatenate([c, cnp.flip(c, 1)], axis=1)                      # concat, reverse
        e = cnp.pad(d, ((1, 2), (0, 1)), constant_values=0.5)                 # pad
        return cnp.sum(e * e) + cnp.sum(lax.pad(x, y[0], [(-1, 2, 1), (1, -1, 0)]) ** 2)

    _directional_check(f, [_rand(4, 3, seed=1), _rand(2, seed=2)], exhaustive=True)


def test_dynamic_slice_and_update_vjps():
    def f(x, u):
        i = cnp.argmax(cnp.array([0.0, 1.0, 0.5]))  # a traced index (1)
        s = lax.dynamic_slice(x, [i, 1], (2, 2))
        y = lax.dynamic_update_slice(x, u * s, [i + 1, 0])
        return cnp.sum(y ** 3) + cnp.sum(s)

    _directional_check(f, [_rand(4, 3, seed=1), _rand(2, 2, seed=2)], exhaustive=True)


def test_gather_and_scatter_vjps():
    idx = np.array([[0, 2], [3, 1], [0, 2]])

    def f(x, v):
        g = x[idx[:, 0], idx[:, 1]]                       # gather
        t = cnp.take(x, np.array([3, 3, 0]), axis=0)      # gather of rows, repeated index
        s = x.at[np.array([1, 2]), 0].add(v)              # scatter-add
        o = x.at[2].set(v[0] * 2)                         # overwriting scatter
        return cnp.sum(g ** 2) + cnp.sum(t * t.sum()) + cnp.sum(s ** 2) + cnp.sum(o ** 3)

    _directional_check(f, [_rand(4, 3, seed=1), _rand(2, seed=2)], exhaustive=True)


def test_reduce_vjps():
    def f(x):
        return (cnp.sum(cnp.max(x, axis=1) ** 2) + cnp.sum(cnp.min(x, axis=0))
                + cnp.prod(x[0] + 2.0) + cnp.sum(cnp.cumsum(x, axis=1) ** 2))

    _directional_check(f, [_rand(3, 4)], exhaustive=True)


def test_max_reduction_splits_ties():
    g = jit(grad(lambda x: cnp.max(x)), backend="interpreter")(np.array([1.0, 3.0, 3.0]))
    np.testing.assert_allclose(g, [0.0, 0.5, 0.5])


@pytest.mark.parametrize("padding", ["VALID", "SAME", [(1, 0), (2, 1)]])
def test_pooling_vjps(padding):
    def f(x):
        m = cnp.max_pool(x, (2, 3), strides=(2, 1), padding=padding)
        a = lax.reduce_window(x, 0.0, "add", (1, 3, 2, 1), (1, 1, 2, 1), padding="SAME"
                              if isinstance(padding, str) else [(0, 0), (1, 1), (0, 1), (0, 0)],
                              window_dilation=(1, 2, 1, 1))
        return cnp.sum(m ** 2) + cnp.sum(cnp.sin(a))

    _directional_check(f, [_rand(2, 5, 6, 2)], directions=3)


CONV_CASES = {
    "nhwc_same": dict(strides=1, padding="SAME", dilation=1, groups=1, data_format="NHWC"),
    "nhwc_strided_valid": dict(strides=2, padding="VALID", dilation=1, groups=1,
                               data_format="NHWC"),
    "nchw_dilated": dict(strides=1, padding=[(2, 1), (0, 2)], dilation=(2, 1), groups=1,
                         data_format="NCHW"),
    "nhwc_groups_strided": dict(strides=(2, 1), padding="SAME", dilation=1, groups=2,
                                data_format="NHWC"),
    "nchw_uneven_stride": dict(strides=3, padding=[(1, 0), (0, 0)], dilation=1, groups=1,
                               data_format="NCHW"),
}


@pytest.mark.parametrize("name", sorted(CONV_CASES))
def test_convolution_vjps(name):
    opts = CONV_CASES[name]
    groups = opts["groups"]
    if opts["data_format"] == "NHWC":
        x, k = _rand(2, 7, 6, 4, seed=1), _rand(3, 2, 4 // groups, 4, seed=2)
    else:
        x, k = _rand(2, 4, 7, 6, seed=1), _rand(4, 4 // groups, 3, 2, seed=2)

    def f(x, k):
        return cnp.sum(cnp.tanh(cnp.conv(x, k, **opts)))

    _directional_check(f, [x, k], directions=3)


def test_conv_with_input_dilation_vjp():
    def f(x, k):
        y = lax.conv_general_dilated(x, k, (1, 2), [(1, 1), (0, 1)], lhs_dilation=(2, 1),
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return cnp.sum(y ** 2)

    _directional_check(f, [_rand(1, 2, 4, 5, seed=1), _rand(3, 2, 2, 2, seed=2)])


def test_dot_general_vjp_with_batch_dims():
    def f(x, y):
        z = lax.dot_general(x, y, ((2, 0), (0, 3)), ((1,), (2,)))  # batch 1<->2
        return cnp.sum(cnp.sin(z))

    _directional_check(f, [_rand(3, 2, 4, seed=1), _rand(4, 5, 2, 3, seed=2)], exhaustive=True)


def test_while_fori_loop_vjp():
    def f(x, w):
        def body(i, c):
            return cnp.tanh(c * w + i.astype(c.dtype) * 0.1)

        return cnp.sum(lax.fori_loop(0, 5, body, x) ** 2)

    _directional_check(f, [_rand(3, seed=1), _rand(3, seed=2)], exhaustive=True)


def test_scan_reverse_with_captured_and_nested_loops():
    def f(w, xs):
        def outer(c, x):
            def inner(d, _):
                return d * cnp.cos(w), None

            d, _ = lax.scan(inner, c + x, None, length=3)
            return d, cnp.sum(d * w)

        c, ys = lax.scan(outer, cnp.ones(3, xs.dtype), xs, reverse=True)
        return cnp.sum(c) + cnp.sum(ys ** 2)

    _directional_check(f, [_rand(3, seed=1), _rand(4, 3, seed=2)], exhaustive=True)


def test_cond_vjp():
    def f(x, y):
        return lax.cond(cnp.sum(x) > 0, lambda a, b: cnp.sum(a * b), lambda a, b: cnp.sum(a - b),
                        x, y * 2)

    _directional_check(f, [_rand(3, seed=1), _rand(3, seed=2)], exhaustive=True)
    _directional_check(f, [-np.abs(_rand(3, seed=1)), _rand(3, seed=2)], exhaustive=True)


def test_call_vjp_inlines_the_callee():
    text = """HloModule m
sq {
  p = f64[3] parameter(0)
  ROOT m = f64[3] multiply(p, p)
}
add {
  a = f64[] parameter(0)
  b = f64[] parameter(1)
  ROOT s = f64[] add(a, b)
}
ENTRY e {
  x = f64[3] parameter(0)
  c = f64[3] call(x), to_apply=sq
  z = f64[] constant(0)
  ROOT r = f64[] reduce(c, z), dimensions={0}, to_apply=add
}
"""
    module = grad_module(parse(text), 0)
    x = np.array([1.0, -2.0, 3.0])
    value, g = evaluate(module, x)
    assert value == pytest.approx(14.0)
    np.testing.assert_allclose(g, 2 * x)


def test_grad_module_of_parsed_hlo_with_feature_groups():
    text = """HloModule conv
add {
  a = f64[] parameter(0)
  b = f64[] parameter(1)
  ROOT s = f64[] add(a, b)
}
ENTRY e {
  x = f64[1,5,5,4] parameter(0)
  k = f64[3,3,2,6] parameter(1)
  c = f64[1,3,5,6] convolution(x, k), window={size=3x3 stride=2x1 pad=1_1x1_1}, \
dim_labels=b01f_01io->b01f, feature_group_count=2
  t = f64[1,3,5,6] tanh(c)
  z = f64[] constant(0)
  ROOT r = f64[] reduce(t, z), dimensions={0,1,2,3}, to_apply=add
}
"""
    module = parse(text)
    x, k = _rand(1, 5, 5, 4, seed=1), _rand(3, 3, 2, 6, seed=2)
    value, gx, gk = evaluate(grad_module(module, (0, 1)), x, k)
    rng = np.random.default_rng(0)
    vx, vk = rng.standard_normal(x.shape), rng.standard_normal(k.shape)
    fp = evaluate(module, x + EPS * vx, k + EPS * vk)[0]
    fm = evaluate(module, x - EPS * vx, k - EPS * vk)[0]
    assert float(np.sum(gx * vx) + np.sum(gk * vk)) == pytest.approx((fp - fm) / (2 * EPS),
                                                                      rel=RTOL)
    assert value == pytest.approx(evaluate(module, x, k)[0])


# --- API ------------------------------------------------------------------------------------------


def test_value_and_grad_has_aux_and_argnums():
    def f(x, y, scale):
        loss = cnp.sum(x * y) * scale
        return loss, {"norm": cnp.sum(x * x)}

    vg = jit(value_and_grad(f, argnums=(0, 1), has_aux=True), backend="interpreter")
    x, y = np.array([1.0, 2.0]), np.array([3.0, -1.0])
    (value, aux), (gx, gy) = vg(x, y, 2.0)
    assert value == pytest.approx(2.0)
    assert aux["norm"] == pytest.approx(5.0)
    np.testing.assert_allclose(gx, 2 * y)
    np.testing.assert_allclose(gy, 2 * x)
    g, aux2 = jit(grad(f, has_aux=True), backend="interpreter")(x, y, 2.0)
    np.testing.assert_allclose(g, 2 * y)


def test_second_order_gradient():
    f = lambda x: cnp.sum(cnp.sin(x) * x ** 2)  # noqa: E731
    hessian_rows = jit(grad(lambda x: cnp.sum(grad(f)(x))), backend="interpreter")
    x = np.array([0.3, 1.2])
    want = -np.sin(x) * x ** 2 + 4 * x * np.cos(x) + 2 * np.sin(x)
    np.testing.assert_allclose(hessian_rows(x), want, rtol=1e-12)


def test_grad_outside_jit_compiles_and_runs():
    g = grad(lambda x: cnp.sum(x ** 3))(np.array([1.0, 2.0], np.float32))
    np.testing.assert_allclose(g, [3.0, 12.0])


def test_same_array_passed_twice_gets_separate_gradients():
    f = jit(grad(lambda x, y: cnp.sum(x * x * y), argnums=(0, 1)), backend="interpreter")
    a = np.array([2.0])
    gx, gy = f(a, a)
    np.testing.assert_allclose(gx, [8.0])
    np.testing.assert_allclose(gy, [4.0])


def test_stop_gradient_and_integer_paths_pass_nothing():
    def f(x):
        return cnp.sum(lax.stop_gradient(x) * x) + cnp.sum(cnp.floor(x)) + cnp.argmax(x)

    g = jit(grad(f), backend="interpreter")(np.array([1.5, -2.0]))
    np.testing.assert_allclose(g, [1.5, -2.0])


def test_unrelated_argument_gets_zero_gradient():
    g = jit(grad(lambda x, y: cnp.sum(x), argnums=1), backend="interpreter")(
        np.ones(2), np.ones((3, 2)))
    np.testing.assert_array_equal(g, np.zeros((3, 2)))


def test_grad_errors_name_the_problem():
    with pytest.raises(ArgumentError, match="only floating-point"):
        jit(grad(lambda n: cnp.sum(n)), backend="interpreter")(np.arange(3))
    with pytest.raises(ShapeError, match="float scalar"):
        jit(grad(lambda x: x * 2), backend="interpreter")(np.ones(3))

    def dynamic_loop(x):
        return lax.while_loop(lambda c: cnp.sum(c) < 10.0, lambda c: c * 2.0, x).sum()

    with pytest.raises(UnsupportedOpError, match="static trip count") as info:
        jit(grad(dynamic_loop), backend="interpreter")(np.ones(2))
    assert "test_autodiff.py" in str(info.value)


def test_vjp_table_covers_the_required_opcodes():
    required = {
        Opcode.ADD, Opcode.SUBTRACT, Opcode.MULTIPLY, Opcode.DIVIDE, Opcode.NEGATE,
        Opcode.EXPONENTIAL, Opcode.LOG, Opcode.TANH, Opcode.LOGISTIC, Opcode.SQRT,
        Opcode.RSQRT, Opcode.POWER, Opcode.MAXIMUM, Opcode.MINIMUM, Opcode.ABS, Opcode.SELECT,
        Opcode.CONVERT, Opcode.BROADCAST, Opcode.RESHAPE, Opcode.TRANSPOSE, Opcode.SLICE,
        Opcode.DYNAMIC_SLICE, Opcode.DYNAMIC_UPDATE_SLICE, Opcode.CONCATENATE, Opcode.PAD,
        Opcode.REVERSE, Opcode.REDUCE, Opcode.DOT, Opcode.CONVOLUTION, Opcode.REDUCE_WINDOW,
        Opcode.GATHER, Opcode.SCATTER, Opcode.WHILE, Opcode.CALL, Opcode.TUPLE,
        Opcode.GET_TUPLE_ELEMENT, Opcode.CONDITIONAL,
    }
    assert required <= set(VJP)
    assert {Opcode.COMPARE, Opcode.IOTA, Opcode.CONSTANT} <= ZERO_VJP
    assert not set(VJP) & ZERO_VJP
