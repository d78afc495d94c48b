"""compiler.numpy and compiler.lax against numpy, and the errors tracing raises.

Functions are run eagerly (outside a trace a compiler.numpy call traces itself into a
module and runs it on the reference evaluator) and inside `jit(..., backend="interpreter")`;
results must equal numpy's. Control flow (scan, while_loop, fori_loop, cond, switch) is
checked against Python loops.
"""

from __future__ import annotations

import numpy as np
import pytest

import compiler.numpy as cnp
from compiler import lax
from compiler.jit import jit
from compiler.tracing import Tracer
from hlo.errors import ArgumentError, ShapeError, UnsupportedOpError
from hlo.opcodes import Opcode

RNG = np.random.default_rng(0)
A = RNG.standard_normal((3, 4)).astype(np.float32)
B = RNG.standard_normal((3, 4)).astype(np.float32)
P = (np.abs(A) + 0.5).astype(np.float32)
I = np.array([[3, -7, 0, 5], [-2, 9, 4, -1], [8, 1, -6, 2]], np.int32)
J = np.array([[2, 3, -4, 1], [5, -2, 3, 3], [-3, 4, 2, 7]], np.int32)

# name -> (compiler.numpy function, numpy function, arguments)
CASES = {
    "add": (cnp.add, np.add, (A, B)),
    "subtract_scalar": (lambda x: x - 2.5, lambda x: x - 2.5, (A,)),
    "rsub_array": (lambda x: B - x, lambda x: B - x, (A,)),
    "multiply_broadcast": (lambda x: x * B[0], lambda x: x * B[0], (A,)),
    "divide": (cnp.divide, np.divide, (A, P)),
    "int_true_divide": (cnp.true_divide, lambda x, y: np.true_divide(x, y).astype(np.float32),
                        (I, J)),
    "floor_divide_int": (cnp.floor_divide, np.floor_divide, (I, J)),
    "floor_divide_float": (cnp.floor_divide, np.floor_divide, (A, P)),
    "mod_int": (cnp.mod, np.mod, (I, J)),
    "mod_float": (cnp.mod, np.mod, (A, P)),
    "power_int_exponent": (lambda x: x ** 3, lambda x: x ** 3, (A,)),
    "power_negative_exponent": (lambda x: x ** -2, lambda x: x ** -2, (P,)),
    "power_float": (cnp.power, np.power, (P, A)),
    "maximum": (cnp.maximum, np.maximum, (A, B)),
    "minimum": (cnp.minimum, np.minimum, (A, B)),
    "exp": (cnp.exp, np.exp, (A,)),
    "log": (cnp.log, np.log, (P,)),
    "log1p": (cnp.log1p, np.log1p, (P,)),
    "log2": (cnp.log2, np.log2, (P,)),
    "sqrt": (cnp.sqrt, np.sqrt, (P,)),
    "tanh": (cnp.tanh, np.tanh, (A,)),
    "sin_cos": (lambda x: cnp.sin(x) + cnp.cos(x), lambda x: np.sin(x) + np.cos(x), (A,)),
    "sinh_cosh": (lambda x: cnp.sinh(x) - cnp.cosh(x), lambda x: np.sinh(x) - np.cosh(x), (A,)),
    "arctan2": (cnp.arctan2, np.arctan2, (A, B)),
    "abs_sign": (lambda x: cnp.abs(x) * cnp.sign(x), lambda x: np.abs(x) * np.sign(x), (A,)),
    "abs_int": (cnp.abs, np.abs, (I,)),
    "square_reciprocal": (lambda x: cnp.square(x) + cnp.reciprocal(x),
                          lambda x: np.square(x) + np.reciprocal(x), (P,)),
    "floor_ceil_round": (lambda x: cnp.floor(x * 3) + cnp.ceil(x) + cnp.round(x * 2.5),
                         lambda x: np.floor(x * 3) + np.ceil(x) + np.round(x * 2.5), (A,)),
    "trunc": (cnp.trunc, np.trunc, (A * 3,)),
    "sigmoid": (cnp.sigmoid, lambda x: 1 / (1 + np.exp(-x)), (A,)),
    "comparisons": (lambda x, y: (x < y) & (x <= 0.5) | (x > y) ^ (y >= 0) | (x == y),
                    lambda x, y: (x < y) & (x <= 0.5) | (x > y) ^ (y >= 0) | (x == y), (A, B)),
    "logical": (lambda x, y: cnp.logical_and(x > 0, cnp.logical_not(y > 0)),
                lambda x, y: np.logical_and(x > 0, np.logical_not(y > 0)), (A, B)),
    "bitwise_int": (lambda x, y: (x & y) ^ (x | 3) + ~x, lambda x, y: (x & y) ^ (x | 3) + ~x,
                    (I, J)),
    "where": (lambda x, y: cnp.where(x > y, x, 0.0), lambda x, y: np.where(x > y, x, 0.0)
              .astype(np.float32), (A, B)),
    "clip": (lambda x: cnp.clip(x, -0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7), (A,)),
    "isfinite_isnan": (lambda x: cnp.isfinite(cnp.log(x)) & ~cnp.isnan(cnp.sqrt(x)),
                       lambda x: np.isfinite(np.log(x)) & ~np.isnan(np.sqrt(x)), (A,)),
    "astype": (lambda x: (x * 10).astype(np.int32) + x.astype(bool),
               lambda x: (x * 10).astype(np.int32) + x.astype(bool), (A,)),
    "sum_axes": (lambda x: cnp.sum(x, axis=(0, 1)) + cnp.sum(x, axis=-1, keepdims=True),
                 lambda x: np.sum(x, axis=(0, 1)) + np.sum(x, axis=-1, keepdims=True), (A,)),
    "mean_var_std": (lambda x: cnp.mean(x, 0) + cnp.var(x, 0) + cnp.std(x, 0, ddof=1),
                     lambda x: np.mean(x, 0) + np.var(x, 0) + np.std(x, 0, ddof=1), (A,)),
    "max_min_prod": (lambda x: x.max(1) - x.min(axis=0).sum() + cnp.prod(x, 0).sum(),
                     lambda x: x.max(1) - x.min(axis=0).sum() + np.prod(x, 0).sum(), (A,)),
    "int_reductions": (lambda x: cnp.sum(x) + cnp.max(x) * cnp.min(x, axis=0),
                       lambda x: np.sum(x) + np.max(x) * np.min(x, axis=0), (I,)),
    "argmax_argmin": (lambda x: cnp.argmax(x, 1) * 10 + cnp.argmin(x, axis=0)[0] + cnp.argmax(x),
                      lambda x: np.argmax(x, 1) * 10 + np.argmin(x, axis=0)[0] + np.argmax(x),
                      (A,)),
    "any_all": (lambda x: cnp.any(x > 1, 0) & cnp.all(x > -3, axis=0),
                lambda x: np.any(x > 1, 0) & np.all(x > -3, axis=0), (A,)),
    "cumsum_count": (lambda x: cnp.cumsum(x, 1) + cnp.count_nonzero(x > 0),
                     lambda x: np.cumsum(x, 1) + np.count_nonzero(x > 0), (A,)),
    "reshape_transpose": (lambda x: x.reshape(2, -1).T.reshape((6, 2)),
                          lambda x: x.reshape(2, -1).T.reshape((6, 2)), (A,)),
    "expand_squeeze": (lambda x: cnp.squeeze(cnp.expand_dims(x, (0, 2)), 0),
                       lambda x: np.squeeze(np.expand_dims(x, (0, 2)), 0), (A,)),
    "swap_move": (lambda x: cnp.moveaxis(cnp.swapaxes(x[None], 0, 2), 0, 1),
                  lambda x: np.moveaxis(np.swapaxes(x[None], 0, 2), 0, 1), (A,)),
    "concat_stack": (lambda x, y: cnp.concatenate([cnp.stack([x, y], 1).reshape(3, 8), x], -1),
                     lambda x, y: np.concatenate([np.stack([x, y], 1).reshape(3, 8), x], -1),
                     (A, B)),
    "hstack_vstack": (lambda x: cnp.vstack([x, x[0]]) + cnp.hstack([x[:, :2], x[:, 2:]]).sum(),
                      lambda x: np.vstack([x, x[0]]) + np.hstack([x[:, :2], x[:, 2:]]).sum(),
                      (A,)),
    "split": (lambda x: cnp.split(x, [1, 3], axis=1)[1] * cnp.split(x, 3)[2].sum(),
              lambda x: np.split(x, [1, 3], axis=1)[1] * np.split(x, 3)[2].sum(), (A,)),
    "flip_pad": (lambda x: cnp.pad(cnp.flip(x, 0), ((1, 0), (2, 1)), constant_values=7.0),
                 lambda x: np.pad(np.flip(x, 0), ((1, 0), (2, 1)), constant_values=7.0), (A,)),
    "repeat_tile": (lambda x: cnp.repeat(x, 2, axis=1).sum(0) + cnp.tile(x[0], 2),
                    lambda x: np.repeat(x, 2, axis=1).sum(0) + np.tile(x[0], 2), (A,)),
    "tril_triu": (lambda x: cnp.tril(x, 1) - cnp.triu(x), lambda x: np.tril(x, 1) - np.triu(x),
                  (A,)),
    "broadcast_to": (lambda x: cnp.broadcast_to(x[:, :1], (2, 3, 4)),
                     lambda x: np.broadcast_to(x[:, :1], (2, 3, 4)), (A,)),
    "creation": (lambda x: x + cnp.ones((3, 4)) * cnp.arange(4) + cnp.eye(3, 4, k=1)
                 + cnp.full((3, 1), 2.0) + cnp.zeros_like(x) + cnp.linspace(0, 1, 4),
                 lambda x: x + np.ones((3, 4)) * np.arange(4) + np.eye(3, 4, k=1)
                 + np.full((3, 1), 2.0) + np.zeros_like(x) + np.linspace(0, 1, 4), (A,)),
    "arange_steps": (lambda x: x[0] * cnp.arange(2, 10, 2) + cnp.arange(4.0, 0.0, -1.0),
                     lambda x: x[0] * np.arange(2, 10, 2) + np.arange(4.0, 0.0, -1.0), (A,)),
    "dot_shapes": (lambda x, y: cnp.dot(x, y.T).sum() + cnp.dot(x[0], y[1]) + cnp.dot(x, y[0]),
                   lambda x, y: np.dot(x, y.T).sum() + np.dot(x[0], y[1]) + np.dot(x, y[0]),
                   (A, B)),
    "matmul_batched": (lambda x, y: (x.reshape(3, 2, 2) @ y.reshape(3, 2, 2)) @ y[0, :2],
                       lambda x, y: (x.reshape(3, 2, 2) @ y.reshape(3, 2, 2)) @ y[0, :2], (A, B)),
    "matmul_broadcast": (lambda x, y: cnp.matmul(x[:2, :2], y.reshape(3, 2, 2)),
                         lambda x, y: np.matmul(x[:2, :2], y.reshape(3, 2, 2)), (A, B)),
    "matmul_batch_broadcast": (lambda x, y: cnp.matmul(x.reshape(1, 3, 4), y.reshape(2, 4, 1, 6)
                                                        .sum(2).reshape(2, 4, 6)[..., :3]),
                               lambda x, y: np.matmul(x.reshape(1, 3, 4), y.reshape(2, 4, 1, 6)
                                                      .sum(2).reshape(2, 4, 6)[..., :3]),
                               (A, np.concatenate([B, B, B, B]).reshape(2, 4, 6))),
    "einsum": (lambda x, y: cnp.einsum("ij,kj->ik", x, y) + cnp.einsum("ij->j", x).sum()
               + cnp.einsum("ij,ij,i->", x, y, x[:, 0]),
               lambda x, y: np.einsum("ij,kj->ik", x, y) + np.einsum("ij->j", x).sum()
               + np.einsum("ij,ij,i->", x, y, x[:, 0]), (A, B)),
    "einsum_batch": (lambda x, y: cnp.einsum("bij,bjk->bik", x.reshape(3, 2, 2),
                                             y.reshape(3, 2, 2)),
                     lambda x, y: np.einsum("bij,bjk->bik", x.reshape(3, 2, 2),
                                            y.reshape(3, 2, 2)), (A, B)),
    "tensordot_outer_inner": (lambda x, y: cnp.tensordot(x, y, ([1], [1])) + cnp.outer(x[0], y[0])
                              [:3, :3] + cnp.inner(x, y)[0, 0] + cnp.vdot(x, y),
                              lambda x, y: np.tensordot(x, y, ([1], [1])) + np.outer(x[0], y[0])
                              [:3, :3] + np.inner(x, y)[0, 0] + np.vdot(x, y), (A, B)),
    "softmax_family": (lambda x: cnp.softmax(x) + cnp.log_softmax(x, axis=0)
                       + cnp.logsumexp(x, axis=1, keepdims=True),
                       lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)
                       + x - np.log(np.exp(x).sum(0, keepdims=True))
                       + np.log(np.exp(x).sum(1, keepdims=True)), (A,)),
    "logsumexp_large": (lambda x: cnp.logsumexp(x * 1000.0),
                        lambda x: np.max(x * 1000.0) + np.log(np.sum(np.exp(x * 1000.0
                                                                           - np.max(x * 1000.0)))),
                        (A,)),
    "activations": (lambda x: cnp.relu(x) + cnp.softplus(x) + cnp.gelu(x) + cnp.silu(x),
                    lambda x: np.maximum(x, 0) + np.log1p(np.exp(x)) + 0.5 * x * (
                        1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
                    + x / (1 + np.exp(-x)), (A,)),
    "one_hot": (lambda i: cnp.one_hot(i % 4, 4) + cnp.one_hot(i[0], 5, axis=0).sum(),
                lambda i: np.eye(4)[i % 4] + 2.0, (I,)),  # labels -7 and 5: no class
}


def _close(got, want):
    want = np.asarray(want)
    got = np.asarray(got)
    assert got.shape == want.shape, (got.shape, want.shape)
    if want.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_numpy_functions_match_numpy(name):
    fn, ref, args = CASES[name]
    with np.errstate(all="ignore"):
        want = ref(*args)
    _close(jit(fn, backend="interpreter")(*args), want)


@pytest.mark.parametrize("name", ["add", "int_true_divide", "mod_int", "argmax_argmin",
                                  "sum_axes", "one_hot", "comparisons"])
def test_result_types_follow_numpy_kinds(name):
    fn, ref, args = CASES[name]
    got = jit(fn, backend="interpreter")(*args)
    want = np.asarray(ref(*args))
    assert got.dtype.kind == want.dtype.kind


def test_weak_scalars_keep_the_array_type():
    x64 = np.ones(3)
    x32 = np.ones(3, np.float32)
    i32 = np.ones(3, np.int32)
    f = jit(lambda a, b, c: (a * 2.5, b + 1, c * 2, c * 0.5, b + a), backend="interpreter")
    r = f(x64, x32, i32)
    assert [v.dtype for v in r] == [np.float64, np.float32, np.int32, np.float32, np.float64]


def test_eager_calls_outside_jit_return_numpy():
    out = cnp.exp(np.zeros(2, np.float32))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_allclose(out, [1.0, 1.0])
    np.testing.assert_array_equal(cnp.zeros((2, 3)), np.zeros((2, 3), np.float32))


# --- indexing -------------------------------------------------------------------------------------

X = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
INDEX_CASES = [
    (1,), (-1,), (slice(1, None),), (slice(None, None, -1),), (slice(3, 0, -2),),
    (Ellipsis, 2), (None, 0, Ellipsis, None), (1, slice(0, 4, 2), -2),
    (np.array([2, 0, 2]),), (np.array([[0, 1], [2, 2]]),), (slice(None), np.array([3, -1])),
    (np.array([0, 2]), np.array([1, 3])), (np.array([0, 2]), slice(None), np.array([1, 3])),
    (1, np.array([0, 3]), slice(1, 3)), (slice(None), np.array([[1], [2]]), np.array([0, 4])),
    ([0, 1], 2), (Ellipsis, np.array([4, 0])),
]


@pytest.mark.parametrize("key", INDEX_CASES, ids=[repr(k) for k in INDEX_CASES])
def test_static_and_array_indexing_matches_numpy(key):
    got = jit(lambda x: x[key], backend="interpreter")(X)
    _close(got, X[key])


def test_traced_index_arrays_and_scalars():
    def f(x, i, idx):
        return x[i], x[i, 1:3, -1], x[idx], x[:, idx[0]], x[i, idx]

    i, idx = np.int32(-1), np.array([2, 0], np.int32)
    got = jit(f, backend="interpreter")(X, i, idx)
    want = (X[-1], X[-1, 1:3, -1], X[idx], X[:, idx[0]], X[-1, idx])
    for g, w in zip(got, want, strict=True):
        _close(g, w)
    m = jit(f, backend="interpreter").lower(X, i, idx)
    ops = {ins.opcode for c in m.computations for ins in c.instructions}
    assert Opcode.DYNAMIC_SLICE in ops and Opcode.GATHER in ops


def test_take_and_take_along_axis():
    idx = np.array([[0, 3], [1, 1], [2, 0]])
    got = jit(lambda x: (cnp.take(x, idx, axis=1), cnp.take_along_axis(x, idx, 1),
                         cnp.take(x, np.array([5, 0]))), backend="interpreter")(A)
    for g, w in zip(got, (np.take(A, idx, 1), np.take_along_axis(A, idx, 1),
                          np.take(A, [5, 0])), strict=True):
        _close(g, w)


def test_at_updates():
    def f(x):
        return (x.at[1].set(0.0), x.at[:, np.array([0, 0, 2])].add(1.0), x.at[0, 1:3].multiply(2.0),
                x.at[2].max(0.0), x.at[np.array([1, 2]), 3].min(-5.0), x.at[1, 2].get())

    got = jit(f, backend="interpreter")(A)
    w = [A.copy() for _ in range(5)]
    w[0][1] = 0
    np.add.at(w[1], (slice(None), [0, 0, 2]), 1.0)
    w[2][0, 1:3] *= 2
    w[3][2] = np.maximum(w[3][2], 0)
    w[4][[1, 2], 3] = np.minimum(w[4][[1, 2], 3], -5)
    for g, want in zip(got, w + [A[1, 2]], strict=True):
        _close(g, want)


def test_indexing_errors():
    with pytest.raises(ShapeError, match="out of bounds"):
        jit(lambda x: x[5], backend="interpreter")(A)
    with pytest.raises(ShapeError, match="too many indices"):
        jit(lambda x: x[0, 0, 0], backend="interpreter")(A)
    with pytest.raises(UnsupportedOpError, match="boolean mask"):
        jit(lambda x: x[x > 0], backend="interpreter")(A)
    with pytest.raises(ArgumentError, match="slice bounds"):
        jit(lambda x, i: x[i:], backend="interpreter")(A, np.int32(1))


# --- convolution and pooling ----------------------------------------------------------------------


def _conv_ref(x, k, stride, pad):
    """NHWC / HWIO convolution by loops, explicit (low, high) padding."""
    x = np.pad(x, ((0, 0), pad[0], pad[1], (0, 0)))
    kh, kw = k.shape[:2]
    oh = (x.shape[1] - kh) // stride + 1
    ow = (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, k.shape[3]))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            out[:, i, j, :] = np.einsum("bhwc,hwco->bo", patch, k)
    return out


def test_conv_same_valid_and_nchw():
    x = RNG.standard_normal((2, 6, 5, 3))
    k = RNG.standard_normal((3, 2, 3, 4))
    got = jit(lambda x, k: (cnp.conv(x, k, 2, "SAME"), cnp.conv(x, k, padding="VALID"),
                            cnp.conv(x.transpose(0, 3, 1, 2), k.transpose(3, 2, 0, 1), 1,
                                     [(1, 1), (0, 1)], data_format="NCHW")),
              backend="interpreter")(x, k)
    _close(got[0], _conv_ref(x, k, 2, [(0, 1), (0, 1)]))  # SAME: the extra pad goes high
    _close(got[1], _conv_ref(x, k, 1, [(0, 0), (0, 0)]))
    _close(got[2], _conv_ref(x, k, 1, [(1, 1), (0, 1)]).transpose(0, 3, 1, 2))


def test_grouped_and_dilated_conv():
    x = RNG.standard_normal((1, 5, 5, 4))
    k = RNG.standard_normal((2, 2, 2, 6))
    got = jit(lambda x, k: cnp.conv(x, k, padding="VALID", groups=2, dilation=2),
              backend="interpreter")(x, k)
    kd = np.zeros((3, 3, 2, 6))
    kd[::2, ::2] = k
    want = np.concatenate([_conv_ref(x[..., :2], kd[..., :3], 1, [(0, 0)] * 2),
                           _conv_ref(x[..., 2:], kd[..., 3:], 1, [(0, 0)] * 2)], -1)
    _close(got, want)


def test_pooling():
    x = RNG.standard_normal((2, 4, 6, 3)).astype(np.float32)
    got = jit(lambda x: (cnp.max_pool(x, 2), cnp.avg_pool(x, (2, 3), strides=(2, 3)),
                         cnp.max_pool(x, 3, strides=1, padding="SAME")),
              backend="interpreter")(x)
    _close(got[0], x.reshape(2, 2, 2, 3, 2, 3).max(axis=(2, 4)))
    _close(got[1], x.reshape(2, 2, 2, 2, 3, 3).mean(axis=(2, 4)))
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    want = np.stack([np.stack([padded[:, i:i + 3, j:j + 3].max(axis=(1, 2)) for j in range(6)],
                              1) for i in range(4)], 1)
    _close(got[2], want)


# --- control flow ---------------------------------------------------------------------------------


def test_scan_with_pytree_carry_and_outputs():
    def f(xs, w):
        def step(carry, x):
            total, count = carry
            new = total * w + x["a"]
            return (new, count + 1), {"y": new.sum(), "z": x["b"] * 2}

        (total, count), ys = lax.scan(step, (cnp.zeros(3), 0), {"a": xs, "b": xs[:, 0]})
        return total, count, ys

    xs = RNG.standard_normal((5, 3)).astype(np.float32)
    w = np.float32(0.5)
    total, count, ys = jit(f, backend="interpreter")(xs, w)
    ref = np.zeros(3, np.float32)
    ys_ref = []
    for x in xs:
        ref = ref * w + x
        ys_ref.append(ref.sum())
    _close(total, ref)
    assert int(count) == 5
    _close(ys["y"], np.array(ys_ref))
    _close(ys["z"], xs[:, 0] * 2)


def test_scan_reverse_and_length_only():
    def f(xs):
        _, ys = lax.scan(lambda c, x: (c + x, c + x), 0.0, xs, reverse=True)
        _, ks = lax.scan(lambda c, _: (c * 2, c), 1, None, length=4)
        return ys, ks

    ys, ks = jit(f, backend="interpreter")(np.arange(4, dtype=np.float32))
    _close(ys, np.cumsum([3, 2, 1, 0])[::-1].astype(np.float32))
    _close(ks, np.array([1, 2, 4, 8], np.int32))


def test_while_fori_and_captured_values():
    def f(x, limit):
        w = x * 2  # captured by both loop bodies below

        def cond(c):
            return c[0] < limit

        def body(c):
            return c[0] + 1, c[1] + w

        n, acc = lax.while_loop(cond, body, (0, cnp.zeros_like(x)))
        tri = lax.fori_loop(1, 5, lambda i, s: s + i * w, cnp.zeros_like(x))
        return n, acc, tri

    n, acc, tri = jit(f, backend="interpreter")(np.array([1.0, 2.0], np.float32), np.int32(3))
    assert int(n) == 3
    _close(acc, [6.0, 12.0])
    _close(tri, [20.0, 40.0])


def test_cond_and_switch():
    def f(x, i):
        a = lax.cond(x.sum() > 0, lambda v: v * 2, lambda v: -v, x)
        b = lax.switch(i, [lambda v: v + 1, lambda v: v * 10, lambda v: v - x], x)
        return a, b

    fj = jit(f, backend="interpreter")
    x = np.array([1.0, 2.0], np.float32)
    a, b = fj(x, np.int32(1))
    _close(a, x * 2)
    _close(b, x * 10)
    a, b = fj(-x, np.int32(7))  # out of range: the last branch
    _close(a, x)
    _close(b, np.zeros(2))


def test_control_flow_shape_errors():
    with pytest.raises(ShapeError, match="carry"):
        jit(lambda x: lax.scan(lambda c, v: (c.sum(), v), x, x), backend="interpreter")(A)
    with pytest.raises(ShapeError, match="cond_false"):
        jit(lambda x: lax.cond(x.sum() > 0, lambda: x, lambda: x[0]), backend="interpreter")(A)
    with pytest.raises(ShapeError, match="boolean scalar"):
        jit(lambda x: lax.while_loop(lambda c: c, lambda c: c, x), backend="interpreter")(A)


# --- errors name the user's line ------------------------------------------------------------------


def test_python_if_on_a_traced_value_names_the_line():
    def f(x):
        if x.sum() > 0:  # the offending line
            return x
        return -x

    with pytest.raises(UnsupportedOpError) as info:
        jit(f, backend="interpreter")(A)
    message = str(info.value)
    assert "bool()" in message and "lax.cond" in message
    assert "test_tracing_numpy.py" in message and "the offending line" in message


def test_numpy_on_a_tracer_names_the_line():
    with pytest.raises(UnsupportedOpError, match="use compiler.numpy") as info:
        jit(lambda x: np.linalg.inv(x), backend="interpreter")(np.eye(2))
    assert "test_tracing_numpy.py" in str(info.value)


def test_shape_mismatch_names_the_line():
    with pytest.raises(ShapeError, match="could not be broadcast") as info:
        jit(lambda x: x + x[:2], backend="interpreter")(A)
    assert "x + x[:2]" in str(info.value)


def test_wrong_dtype_names_the_line():
    with pytest.raises(ArgumentError, match="bitwise") as info:
        jit(lambda x: x & 3, backend="interpreter")(A)
    assert "test_tracing_numpy.py" in str(info.value)
    with pytest.raises(ArgumentError, match="integers"):
        jit(lambda x: cnp.one_hot(x, 3), backend="interpreter")(A)


def test_leaked_tracer_is_reported():
    leaked = []
    jit(lambda x: leaked.append(x) or x, backend="interpreter")(A)
    with pytest.raises(UnsupportedOpError, match="leaked"):
        jit(lambda x: x + leaked[0], backend="interpreter")(A)
    assert isinstance(leaked[0], Tracer)


def test_nested_pytrees_round_trip_and_count_their_leaves():
    from compiler.pytree import tree_flatten, unflattener

    leaf = np.zeros(2)
    tree = ([{"w": leaf, "b": 1.5}, None], ({"t": (2,)}, [3, [4, ()]]), {})
    leaves, treedef = tree_flatten(tree)
    assert len(leaves) == 5 and leaves[0] == 1.5 and leaves[1] is leaf and leaves[2:] == [2, 3, 4]
    rebuilt = unflattener(treedef)(["b", "w", "t", "x", "y"])
    assert rebuilt == ([{"w": "w", "b": "b"}, None], ({"t": ("t",)}, ["x", ["y", ()]]), {})
    with pytest.raises(ArgumentError, match="4 leaves for tree structure"):
        unflattener(treedef)([1, 2, 3, 4])
