"""Evaluator kernels for linear algebra: dot, convolution, fft, cholesky, triangular-solve
and the three batch-norm ops.

Arithmetic runs in a wide type and rounds once to the result type: f64 for f32/f64,
f32 for f16/bf16 (as XLA accumulates them), complex128 for complex, int64/uint64 for
integers (the final cast wraps, which equals wrapping at every step). Operands keep their
own precision until that final rounding, as XLA's CPU backend computes them.
"""

from __future__ import annotations

import itertools

import numpy as np

from hlo.attributes import ConvDimLabels, Window, WindowDim
from hlo.dtypes import PrimitiveType
from hlo.errors import EvaluationError
from hlo.eval_rules.reduction import check_result, window_table
from hlo.evaluator import Evaluator, Value, evaluates
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape


def _compute_dtype(etype: PrimitiveType) -> np.dtype:
    """The wide type arithmetic producing `etype` runs in."""
    if etype.is_complex:
        return np.dtype(np.complex128)
    if etype.is_float:
        return np.dtype(np.float32 if etype.bits == 16 else np.float64)
    if etype.is_unsigned:
        return np.dtype(np.uint64)
    return np.dtype(np.int64)  # signed integers and pred (0/1)


def _finish(instr: HloInstruction, value: np.ndarray, shape: Shape | None = None) -> np.ndarray:
    """Round a wide result to the element type of `shape` (default: the instruction's)."""
    want = instr.shape if shape is None else shape
    if want.element_type.is_pred:
        value = value != 0
    with np.errstate(all="ignore"):
        return check_result(instr, value.astype(want.element_type.numpy), want)


def _size(dims: list[int]) -> int:
    return int(np.prod(dims, dtype=np.int64))


# --- dot ---------------------------------------------------------------------------------


@evaluates(Opcode.DOT)
def _dot(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """dot with general dimension numbers; result dims are batch, lhs free, rhs free."""
    lhs, rhs = vals
    a = instr.attrs
    lb, lc = list(a.get("lhs_batch_dims", ())), list(a.get("lhs_contracting_dims", ()))
    rb, rc = list(a.get("rhs_batch_dims", ())), list(a.get("rhs_contracting_dims", ()))
    lf = [d for d in range(lhs.ndim) if d not in lb and d not in lc]
    rf = [d for d in range(rhs.ndim) if d not in rb and d not in rc]
    batch = [lhs.shape[d] for d in lb]
    contract = [lhs.shape[d] for d in lc]
    if batch != [rhs.shape[d] for d in rb] or contract != [rhs.shape[d] for d in rc]:
        raise EvaluationError(
            f"{instr.name}: batch or contracting dimension sizes differ between "
            f"{list(lhs.shape)} and {list(rhs.shape)}"
        )
    lhs_free, rhs_free = [lhs.shape[d] for d in lf], [rhs.shape[d] for d in rf]
    wide = _compute_dtype(instr.shape.element_type)
    b, m, k, n = _size(batch), _size(lhs_free), _size(contract), _size(rhs_free)
    left = np.transpose(lhs, lb + lf + lc).astype(wide).reshape(b, m, k)
    right = np.transpose(rhs, rb + rc + rf).astype(wide).reshape(b, k, n)
    with np.errstate(all="ignore"):
        product = np.matmul(left, right)
    return _finish(instr, product.reshape(batch + lhs_free + rhs_free))


# --- convolution -------------------------------------------------------------------------


def _conv_feature_groups(
    x: np.ndarray, k: np.ndarray, window: Window, out_spatial: list[int], groups: int
) -> np.ndarray:
    """Convolution of x [N, C, spatial...] with k [O, I, window...], C = groups * I.

    Output feature o reads input features of group o // (O / groups). Returns
    [N, O, out_spatial...]. One matrix product per window offset; elements of the window
    that fall in padding or base-dilation holes contribute nothing.
    """
    batch, channels = x.shape[:2]
    out_features, in_group = k.shape[:2]
    if channels != groups * in_group or out_features % groups:
        raise EvaluationError(
            f"convolution: {channels} input features, {in_group} kernel input features, "
            f"{out_features} output features do not fit feature_group_count={groups}"
        )
    out_group = out_features // groups
    points = _size(out_spatial)
    xg = x.reshape(batch, groups, in_group, *x.shape[2:])
    kg = k.reshape(groups, out_group, in_group, *k.shape[2:])
    acc = np.zeros((groups, batch * points, out_group), dtype=x.dtype)
    tables = window_table(window, x.shape[2:], out_spatial)
    rank = len(out_spatial)
    for offset in itertools.product(*(range(wd.size) for wd in window.dims)):
        index: list[np.ndarray] = []
        valid = np.ones((1,) * rank, dtype=bool)
        for axis, (table, w) in enumerate(zip(tables, offset, strict=True)):
            shape = [1] * rank
            shape[axis] = out_spatial[axis]
            index.append(table[0][:, w].reshape(shape))
            valid = valid & table[1][:, w].reshape(shape)
        if not np.any(valid):
            continue
        window_values = np.where(valid, xg[(slice(None),) * 3 + tuple(index)], 0)
        lhs = np.moveaxis(window_values, 2, -1).transpose(1, 0, *range(2, rank + 3))
        rhs = kg[(slice(None),) * 3 + offset].transpose(0, 2, 1)
        with np.errstate(all="ignore"):
            acc += np.matmul(lhs.reshape(groups, batch * points, in_group), rhs)
    out = acc.reshape(groups, batch, *out_spatial, out_group)
    out = np.moveaxis(out, -1, 2)  # [G, N, Og, spatial...]
    return np.swapaxes(out, 0, 1).reshape(batch, out_features, *out_spatial)


@evaluates(Opcode.CONVOLUTION)
def _convolution(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """convolution with any dim_labels, window (strides, padding, lhs/rhs dilation,
    reversal), feature_group_count and batch_group_count.

    With batch_group_count B the input batch splits into B groups; output feature o uses
    batch group o // (O / B), as XLA's evaluator does.
    """
    lhs, rhs = vals
    labels: ConvDimLabels = instr.attrs["dim_labels"]
    feature_groups = instr.attrs.get("feature_group_count", 1) or 1
    batch_groups = instr.attrs.get("batch_group_count", 1) or 1
    wide = _compute_dtype(instr.shape.element_type)
    x = np.transpose(lhs, [labels.input_batch, labels.input_feature, *labels.input_spatial])
    k = np.transpose(
        rhs, [labels.kernel_output_feature, labels.kernel_input_feature, *labels.kernel_spatial]
    )
    x, k = x.astype(wide), k.astype(wide)
    window = instr.attrs.get("window")
    if window is None:
        window = Window(tuple(WindowDim(size=s) for s in k.shape[2:]))
    if len(window.dims) != k.ndim - 2 or any(
        wd.size != s for wd, s in zip(window.dims, k.shape[2:], strict=True)
    ):
        raise EvaluationError(f"{instr.name}: window does not match kernel {list(rhs.shape)}")
    flips = [2 + i for i, wd in enumerate(window.dims) if wd.window_reversal]
    if flips:
        k = np.flip(k, tuple(flips))
    out_spatial = [instr.shape.dims[d] for d in labels.output_spatial]
    batch, out_features = x.shape[0], k.shape[0]
    if batch % batch_groups or out_features % batch_groups:
        raise EvaluationError(
            f"{instr.name}: batch {batch} and output features {out_features} must both be "
            f"divisible by batch_group_count={batch_groups}"
        )
    nb, ob = batch // batch_groups, out_features // batch_groups
    parts = [
        _conv_feature_groups(
            x[g * nb : (g + 1) * nb], k[g * ob : (g + 1) * ob], window, out_spatial, feature_groups
        )
        for g in range(batch_groups)
    ]
    out = np.concatenate(parts, axis=1)
    order = [labels.output_batch, labels.output_feature, *labels.output_spatial]
    return _finish(instr, np.transpose(out, np.argsort(order)))


# --- fft ---------------------------------------------------------------------------------


@evaluates(Opcode.FFT)
def _fft(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """fft over the last len(fft_length) dims: FFT, IFFT, RFFT (real in) or IRFFT (real out)."""
    x = vals[0]
    kind = instr.attrs["fft_type"]
    lengths = list(instr.attrs["fft_length"])
    axes = tuple(range(x.ndim - len(lengths), x.ndim))
    if instr.shape.num_elements == 0 or x.size == 0:
        return np.zeros(instr.shape.dims, dtype=instr.shape.element_type.numpy)
    out: np.ndarray
    if kind == "FFT":
        out = np.fft.fftn(x.astype(np.complex128), axes=axes)
    elif kind == "IFFT":
        out = np.fft.ifftn(x.astype(np.complex128), axes=axes)
    elif kind == "RFFT":
        out = np.fft.rfftn(x.astype(np.float64), s=lengths, axes=axes)
    elif kind == "IRFFT":
        out = np.fft.irfftn(x.astype(np.complex128), s=lengths, axes=axes)
    else:
        raise EvaluationError(f"{instr.name}: unknown fft_type {kind}")
    return _finish(instr, out)


# --- cholesky and triangular-solve -------------------------------------------------------


@evaluates(Opcode.CHOLESKY)
def _cholesky(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """cholesky of [..., n, n]: lower=true gives L with A = L L^H, else U with A = U^H U.

    Only the named triangle of A is read; the other triangle of the result is zero. A
    matrix that is not positive definite gives all NaN (XLA's result is unspecified).
    """
    a = vals[0]
    lower = instr.attrs.get("lower", False)
    wide = _compute_dtype(instr.shape.element_type)
    n = a.shape[-1]
    mats = a.astype(wide).reshape(_size(list(a.shape[:-2])), n, n)
    tri = np.tril if lower else np.triu
    offset = -1 if lower else 1
    out = np.zeros(mats.shape, dtype=wide)
    for i, m in enumerate(mats):
        hermitian = tri(m) + np.conj(tri(m, offset)).T
        try:
            factor = np.linalg.cholesky(hermitian)
        except np.linalg.LinAlgError:
            factor = np.full(m.shape, np.nan, dtype=wide)
        out[i] = factor if lower else np.conj(factor).T
    return _finish(instr, out.reshape(a.shape))


@evaluates(Opcode.TRIANGULAR_SOLVE)
def _triangular_solve(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """triangular-solve: op(a) x = b (left_side) or x op(a) = b, op per transpose_a.

    Only the lower (or upper) triangle of a is read; unit_diagonal assumes ones on the
    diagonal without reading it. A zero pivot gives inf/NaN, as substitution does.
    """
    a, b = vals
    attrs = instr.attrs
    wide = _compute_dtype(instr.shape.element_type)
    m = a.shape[-1]
    lower = attrs.get("lower", False)
    tri = np.tril(a.astype(wide)) if lower else np.triu(a.astype(wide))
    if attrs.get("unit_diagonal", False):
        tri[..., np.arange(m), np.arange(m)] = 1
    transpose = attrs.get("transpose_a", "NO_TRANSPOSE")
    if transpose != "NO_TRANSPOSE":
        tri = np.swapaxes(tri, -1, -2)
        lower = not lower
        if transpose == "ADJOINT":
            tri = np.conj(tri)
    rhs = b.astype(wide)
    if not attrs.get("left_side", False):
        # x op(a) = b  <=>  op(a)^T x^T = b^T
        tri, rhs, lower = np.swapaxes(tri, -1, -2), np.swapaxes(rhs, -1, -2), not lower
    x = np.zeros(np.broadcast_shapes(tri.shape[:-2], rhs.shape[:-2]) + rhs.shape[-2:], wide)
    rows = range(m) if lower else range(m - 1, -1, -1)
    with np.errstate(all="ignore"):
        for i in rows:
            done = slice(0, i) if lower else slice(i + 1, m)
            partial = np.einsum("...j,...jk->...k", tri[..., i, done], x[..., done, :])
            x[..., i, :] = (rhs[..., i, :] - partial) / tri[..., i, i][..., None]
    if not attrs.get("left_side", False):
        x = np.swapaxes(x, -1, -2)
    return _finish(instr, x)


# --- batch norm --------------------------------------------------------------------------


def _feature_view(v: np.ndarray, rank: int, feature: int) -> np.ndarray:
    shape = [1] * rank
    shape[feature] = v.shape[0]
    return v.astype(np.float64).reshape(shape)


def _per_feature_mean(x: np.ndarray, feature: int) -> np.ndarray:
    axes = tuple(d for d in range(x.ndim) if d != feature)
    count = _size([x.shape[d] for d in axes])
    with np.errstate(all="ignore"):
        return np.asarray(x.sum(axis=axes, keepdims=True) / count)


@evaluates(Opcode.BATCH_NORM_TRAINING)
def _batch_norm_training(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """(normalized, batch mean, biased batch variance) over all dims but feature_index."""
    x, scale, offset = vals
    fi, eps = instr.attrs["feature_index"], instr.attrs["epsilon"]
    xw = x.astype(np.float64)
    mean = _per_feature_mean(xw, fi)
    var = _per_feature_mean((xw - mean) ** 2, fi)
    with np.errstate(all="ignore"):
        y = (xw - mean) / np.sqrt(var + eps) * _feature_view(scale, x.ndim, fi)
        y = y + _feature_view(offset, x.ndim, fi)
    s_y, s_mean, s_var = instr.shape.tuple_shapes
    return (
        _finish(instr, y, s_y),
        _finish(instr, mean.reshape(-1), s_mean),
        _finish(instr, var.reshape(-1), s_var),
    )


@evaluates(Opcode.BATCH_NORM_INFERENCE)
def _batch_norm_inference(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """(x - mean) / sqrt(variance + epsilon) * scale + offset, per feature."""
    x, scale, offset, mean, var = vals
    fi, eps = instr.attrs["feature_index"], instr.attrs["epsilon"]
    r = x.ndim
    with np.errstate(all="ignore"):
        y = (x.astype(np.float64) - _feature_view(mean, r, fi)) / np.sqrt(
            _feature_view(var, r, fi) + eps
        )
        y = y * _feature_view(scale, r, fi) + _feature_view(offset, r, fi)
    return _finish(instr, y)


@evaluates(Opcode.BATCH_NORM_GRAD)
def _batch_norm_grad(ev: Evaluator, instr: HloInstruction, vals: list[Value]) -> Value:
    """(grad operand, grad scale, grad offset) by XLA's BatchNormExpander formulas.

    With c = x - mean, r = 1 / sqrt(var + eps) and N elements per feature:
    grad_scale = sum(dy * c) * r, grad_offset = sum(dy),
    grad_x = scale * r * (dy - mean(dy) - c * mean(dy * c) * r^2).
    """
    x, scale, mean, var, dy = vals
    fi, eps = instr.attrs["feature_index"], instr.attrs["epsilon"]
    rank = x.ndim
    axes = tuple(d for d in range(rank) if d != fi)
    xw, dyw = x.astype(np.float64), dy.astype(np.float64)
    with np.errstate(all="ignore"):
        centered = xw - _feature_view(mean, rank, fi)
        rstd = 1.0 / np.sqrt(_feature_view(var, rank, fi) + eps)
        sum_dy = dyw.sum(axis=axes, keepdims=True)
        sum_dy_c = (dyw * centered).sum(axis=axes, keepdims=True)
        count = _size([x.shape[d] for d in axes])
        grad_x = (
            _feature_view(scale, rank, fi)
            * rstd
            * (dyw - sum_dy / count - centered * (sum_dy_c / count) * rstd**2)
        )
    s_x, s_scale, s_offset = instr.shape.tuple_shapes
    return (
        _finish(instr, grad_x, s_x),
        _finish(instr, (sum_dy_c * rstd).reshape(-1), s_scale),
        _finish(instr, sum_dy.reshape(-1), s_offset),
    )
