"""compiler.numpy's products: dot, matmul (`@`), einsum, tensordot, inner, outer, vdot.

All lower to HLO `dot` with general dimension numbers (batch and contracting dims), plus
transposes, reshapes and broadcasts where numpy's result order or batch broadcasting needs
them. A matmul of a batched operand with a 2-D one contracts without broadcasting the
2-D operand.
"""

from __future__ import annotations

import string
from typing import Any

from compiler import numpy_prims as prims
from compiler.numpy_elementwise import broadcast_shapes, broadcast_to, multiply
from compiler.numpy_shape import normalize_axis
from compiler.tracing import Tracer, traceable, tracers
from hlo.errors import ArgumentError, ShapeError


def _check_contract(a: Tracer, b: Tracer, da: int, db: int, what: str) -> None:
    if a.shape[da] != b.shape[db]:
        raise ShapeError(f"{what}: shapes {a.shape} and {b.shape} not aligned: dim {da} "
                         f"({a.shape[da]}) != dim {db} ({b.shape[db]})")


@traceable
def dot(a: Any, b: Any) -> Tracer:
    """numpy.dot: products of scalars, inner products of vectors, matrix products, and for
    N-d operands a sum over the last axis of a and the second-to-last of b."""
    x, y = tracers(a, b)
    if x.ndim == 0 or y.ndim == 0:
        return multiply(x, y)
    db = 0 if y.ndim == 1 else y.ndim - 2
    _check_contract(x, y, x.ndim - 1, db, "dot")
    return prims.dot_general(x, y, ((x.ndim - 1,), (db,)))


@traceable
def matmul(a: Any, b: Any) -> Tracer:
    """numpy.matmul (`a @ b`): batch dims broadcast; 1-d operands gain and lose a dim."""
    x, y = tracers(a, b)
    if x.ndim == 0 or y.ndim == 0:
        raise ShapeError("matmul: operands must not be scalars (use *)")
    squeeze_lhs, squeeze_rhs = x.ndim == 1, y.ndim == 1
    if squeeze_lhs:
        x = prims.reshape(x, (1,) + x.shape)
    if squeeze_rhs:
        y = prims.reshape(y, y.shape + (1,))
    _check_contract(x, y, x.ndim - 1, y.ndim - 2, "matmul")
    if y.ndim == 2:
        out = prims.dot_general(x, y, ((x.ndim - 1,), (0,)))
    elif x.ndim == 2:
        # (n, k) @ (..., k, m): contract to (n, ..., m), then move n next to m.
        out = prims.dot_general(x, y, ((1,), (y.ndim - 2,)))
        perm = list(range(1, y.ndim - 1)) + [0, y.ndim - 1]
        out = prims.transpose(out, perm)
    else:
        batch = broadcast_shapes(x.shape[:-2], y.shape[:-2])
        x = broadcast_to(x, batch + x.shape[-2:])
        y = broadcast_to(y, batch + y.shape[-2:])
        nb = len(batch)
        out = prims.dot_general(x, y, ((nb + 1,), (nb,)), (tuple(range(nb)), tuple(range(nb))))
    if squeeze_lhs:
        out = prims.reshape(out, out.shape[:-2] + out.shape[-1:])
    if squeeze_rhs:
        out = prims.reshape(out, out.shape[:-1])
    return out


@traceable
def tensordot(a: Any, b: Any, axes: Any = 2) -> Tracer:
    """Sum over the last `axes` dims of a and the first of b, or over explicit axis lists."""
    x, y = tracers(a, b)
    if isinstance(axes, int):
        ax_a = list(range(x.ndim - axes, x.ndim))
        ax_b = list(range(axes))
    else:
        ax_a_raw, ax_b_raw = axes
        ax_a = [normalize_axis(v, x.ndim) for v in _as_list(ax_a_raw)]
        ax_b = [normalize_axis(v, y.ndim) for v in _as_list(ax_b_raw)]
    if len(ax_a) != len(ax_b):
        raise ShapeError(f"tensordot: axes {axes} pair different numbers of dims")
    for da, db in zip(ax_a, ax_b, strict=True):
        _check_contract(x, y, da, db, "tensordot")
    return prims.dot_general(x, y, (ax_a, ax_b))


def _as_list(v: Any) -> list[int]:
    return list(v) if isinstance(v, (list, tuple)) else [v]


@traceable
def inner(a: Any, b: Any) -> Tracer:
    x, y = tracers(a, b)
    if x.ndim == 0 or y.ndim == 0:
        return multiply(x, y)
    _check_contract(x, y, x.ndim - 1, y.ndim - 1, "inner")
    return prims.dot_general(x, y, ((x.ndim - 1,), (y.ndim - 1,)))


@traceable
def outer(a: Any, b: Any) -> Tracer:
    x, y = tracers(a, b)
    x = prims.reshape(x, (x.size, 1))
    y = prims.reshape(y, (1, y.size))
    return multiply(x, y)


@traceable
def vdot(a: Any, b: Any) -> Tracer:
    x, y = tracers(a, b)
    return prims.dot_general(prims.reshape(x, (x.size,)), prims.reshape(y, (y.size,)),
                             ((0,), (0,)))


# --- einsum ------------------------------------------------------------------------------------


def _parse_einsum(subscripts: str, n: int) -> tuple[list[str], str]:
    spec = subscripts.replace(" ", "")
    if "." in spec:
        raise ArgumentError("einsum: ellipsis ('...') subscripts are not supported")
    if "->" in spec:
        lhs, out = spec.split("->")
    else:
        lhs = spec
        letters = lhs.replace(",", "")
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    inputs = lhs.split(",")
    if len(inputs) != n:
        raise ArgumentError(f"einsum: {subscripts!r} names {len(inputs)} operands, got {n}")
    for term in inputs + [out]:
        if any(c not in string.ascii_letters for c in term):
            raise ArgumentError(f"einsum: invalid subscripts {subscripts!r}")
        if len(set(term)) != len(term):
            raise ArgumentError(f"einsum: repeated index in {term!r} (diagonals are not "
                                "supported)")
    for c in out:
        if c not in lhs:
            raise ArgumentError(f"einsum: output index {c!r} does not appear in the inputs")
    return inputs, out


def _sum_unused(x: Tracer, term: str, keep: str) -> tuple[Tracer, str]:
    """Sum out the indices of `term` not in `keep`."""
    axes = [i for i, c in enumerate(term) if c not in keep]
    if not axes:
        return x, term
    return prims.reduce_sum(x, axes), "".join(c for c in term if c in keep)


@traceable
def einsum(subscripts: str, *operands: Any) -> Tracer:
    """Einstein summation over explicit subscripts, contracted pairwise left to right."""
    if not operands:
        raise ArgumentError("einsum needs at least one operand")
    inputs, out = _parse_einsum(subscripts, len(operands))
    ts = tracers(*operands)
    sizes: dict[str, int] = {}
    for t, term in zip(ts, inputs, strict=True):
        if t.ndim != len(term):
            raise ShapeError(f"einsum: operand of shape {t.shape} has {t.ndim} dims but "
                             f"subscripts {term!r}")
        for c, d in zip(term, t.shape, strict=True):
            if sizes.setdefault(c, d) != d:
                raise ShapeError(f"einsum: index {c!r} has sizes {sizes[c]} and {d}")
    acc, acc_term = ts[0], inputs[0]
    for k in range(1, len(ts) + 1):
        later = out + "".join(inputs[k:])
        if k == len(ts):
            acc, acc_term = _sum_unused(acc, acc_term, out)
            break
        acc, acc_term = _sum_unused(acc, acc_term, later + inputs[k])
        y, y_term = _sum_unused(ts[k], inputs[k], later + acc_term)
        acc, acc_term = _contract_pair(acc, acc_term, y, y_term, later)
    return prims.transpose(acc, [acc_term.index(c) for c in out])


def _contract_pair(x: Tracer, xt: str, y: Tracer, yt: str, later: str) -> tuple[Tracer, str]:
    shared = [c for c in xt if c in yt]
    batch = [c for c in shared if c in later]
    contract = [c for c in shared if c not in later]
    out = prims.dot_general(
        x, y,
        ([xt.index(c) for c in contract], [yt.index(c) for c in contract]),
        ([xt.index(c) for c in batch], [yt.index(c) for c in batch]),
    )
    term = "".join(batch) + "".join(c for c in xt if c not in shared) + "".join(
        c for c in yt if c not in shared)
    return out, term
