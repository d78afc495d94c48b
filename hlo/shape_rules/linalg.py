"""Shape rules of the linear-algebra ops: dot with its contracting and batch dimensions,
convolution with its dim labels, window and feature/batch groups, fft by type and length,
cholesky, triangular-solve and the three batch-norm ops.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from hlo.attributes import ConvDimLabels, Window
from hlo.dtypes import PrimitiveType, complex_component
from hlo.errors import ShapeError
from hlo.shape import Shape
from hlo.shape_rules.common import (
    _MISSING,
    _arity,
    _array,
    _arrays,
    _bare,
    _bool,
    _dims_in_range,
    _enum,
    _err,
    _get,
    _int,
    _ints,
    _is_int,
    _text,
    _window,
    _window_dims,
)

_T = PrimitiveType


def _result_type(op: str, operands: Sequence[Shape], declared: Shape | None) -> PrimitiveType:
    """The declared element type when given (preferred type), else the operands' common one."""
    lhs, rhs = operands
    if declared is not None:
        if not declared.is_array:
            raise _err(op, operands, f"declared result must be an array, got {_text(declared)}")
        return declared.element_type
    if lhs.element_type is not rhs.element_type:
        raise _err(op, operands, "operands of mixed element types need a declared result type")
    return lhs.element_type


def dot(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """General dot: result = batch dims, lhs free dims, rhs free dims:
    `dot f32[2,3] f32[3,4], lhs_contracting_dims={1}, rhs_contracting_dims={0} -> f32[2,4]`."""
    op = "dot"
    _arity(op, operands, 2)
    lhs = _array(op, operands, 0, "lhs")
    rhs = _array(op, operands, 1, "rhs")
    lb = _ints(op, attrs, "lhs_batch_dims", ())
    lc = _ints(op, attrs, "lhs_contracting_dims", ())
    rb = _ints(op, attrs, "rhs_batch_dims", ())
    rc = _ints(op, attrs, "rhs_contracting_dims", ())
    _dims_in_range(op, operands, "lhs batch + contracting dims", lb + lc, lhs.rank)
    _dims_in_range(op, operands, "rhs batch + contracting dims", rb + rc, rhs.rank)
    if len(lb) != len(rb) or len(lc) != len(rc):
        raise _err(op, operands, "lhs and rhs need as many batch and contracting dims")
    for kind, ls, rs in (("batch", lb, rb), ("contracting", lc, rc)):
        for a, b in zip(ls, rs, strict=True):
            if lhs.dims[a] != rhs.dims[b]:
                raise _err(
                    op,
                    operands,
                    f"{kind} dims differ in size: lhs dim {a} is "
                    f"{lhs.dims[a]}, rhs dim {b} is {rhs.dims[b]}",
                )
    dims = (
        [lhs.dims[d] for d in lb]
        + [d for i, d in enumerate(lhs.dims) if i not in lb + lc]
        + [d for i, d in enumerate(rhs.dims) if i not in rb + rc]
    )
    return Shape(_result_type(op, operands, declared), tuple(dims))


def _labels(op: str, attrs: Mapping[str, Any]) -> ConvDimLabels:
    labels = _get(op, attrs, "dim_labels", _MISSING)
    ok = (
        isinstance(labels, ConvDimLabels)
        and all(
            _is_int(v)
            for v in (
                labels.input_batch,
                labels.input_feature,
                labels.kernel_input_feature,
                labels.kernel_output_feature,
                labels.output_batch,
                labels.output_feature,
            )
        )
        and all(
            isinstance(t, tuple) and all(_is_int(v) for v in t)
            for t in (labels.input_spatial, labels.kernel_spatial, labels.output_spatial)
        )
    )
    if not ok:
        raise ShapeError(f"{op}: attribute 'dim_labels' must be convolution dimension labels")
    assert isinstance(labels, ConvDimLabels)
    return labels


def convolution(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Windowed contraction per dim_labels, with groups:
    `convolution f32[1,8,8,3] f32[3,3,3,4], window={size=3x3 pad=1_1x1_1},
    dim_labels=b01f_01io->b01f -> f32[1,8,8,4]`."""
    op = "convolution"
    _arity(op, operands, 2)
    lhs = _array(op, operands, 0, "lhs")
    rhs = _array(op, operands, 1, "rhs")
    window = _window(op, attrs, Window(()))
    lab = _labels(op, attrs)
    groups = _int(op, attrs, "feature_group_count", 1)
    batch_groups = _int(op, attrs, "batch_group_count", 1)
    if groups < 1 or batch_groups < 1 or (groups > 1 and batch_groups > 1):
        raise _err(
            op,
            operands,
            f"feature_group_count {groups} and batch_group_count "
            f"{batch_groups} must be >= 1 and not both > 1",
        )
    n = len(lab.input_spatial)
    if len(lab.kernel_spatial) != n or len(lab.output_spatial) != n or len(window) != n:
        raise _err(op, operands, "dim_labels and window disagree on the number of spatial dims")
    rank = n + 2
    if lhs.rank != rank or rhs.rank != rank:
        raise _err(op, operands, f"lhs and rhs must have rank {rank}")
    for what, dims in (
        ("input", (lab.input_batch, lab.input_feature, *lab.input_spatial)),
        ("kernel", (lab.kernel_input_feature, lab.kernel_output_feature, *lab.kernel_spatial)),
        ("output", (lab.output_batch, lab.output_feature, *lab.output_spatial)),
    ):
        if sorted(dims) != list(range(rank)):
            raise _err(op, operands, f"{what} dim_labels must name each of {rank} dims once")
    batch = lhs.dims[lab.input_batch]
    features = lhs.dims[lab.input_feature]
    kernel_in = rhs.dims[lab.kernel_input_feature]
    kernel_out = rhs.dims[lab.kernel_output_feature]
    if features % groups or features // groups != kernel_in:
        raise _err(
            op,
            operands,
            f"input features {features} / feature_group_count {groups} "
            f"must equal kernel input features {kernel_in}",
        )
    if kernel_out % groups or kernel_out % batch_groups:
        raise _err(
            op,
            operands,
            f"kernel output features {kernel_out} must be divisible by the group counts",
        )
    if batch % batch_groups:
        raise _err(
            op, operands, f"batch {batch} must be divisible by batch_group_count {batch_groups}"
        )
    kernel_spatial = [rhs.dims[d] for d in lab.kernel_spatial]
    if kernel_spatial != [w.size for w in window]:
        raise _err(
            op,
            operands,
            f"window sizes {[w.size for w in window]} differ from the "
            f"kernel's spatial dims {kernel_spatial}",
        )
    spatial = _window_dims(op, operands, [lhs.dims[d] for d in lab.input_spatial], window)
    out = [0] * rank
    out[lab.output_batch] = batch // batch_groups
    out[lab.output_feature] = kernel_out
    for d, size in zip(lab.output_spatial, spatial, strict=True):
        out[d] = size
    return Shape(_result_type(op, operands, declared), tuple(out))


def fft(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """FFT/IFFT c->c; RFFT real->complex with last dim n/2+1; IRFFT complex->real with last
    dim n: `fft f32[3,8], fft_type=RFFT, fft_length={8} -> c64[3,5]`."""
    op = "fft"
    _arity(op, operands, 1)
    x = _array(op, operands, 0)
    kind = _enum(op, attrs, "fft_type", ("FFT", "IFFT", "RFFT", "IRFFT"))
    lengths = _ints(op, attrs, "fft_length")
    if not 1 <= len(lengths) <= 3 or any(n < 0 for n in lengths):
        raise _err(op, operands, f"fft_length {list(lengths)} must have 1 to 3 sizes >= 0")
    if x.rank < len(lengths):
        raise _err(op, operands, f"operand rank must be at least {len(lengths)}")
    t, inner, last = x.element_type, x.dims[x.rank - len(lengths) :], lengths[-1]
    if kind in ("FFT", "IFFT"):
        if not t.is_complex:
            raise _err(op, operands, f"{kind} needs a complex operand")
        return _bare(x)
    if kind == "RFFT":
        if t not in (_T.F32, _T.F64):
            raise _err(op, operands, "RFFT needs an f32 or f64 operand")
        if inner != lengths:
            raise _err(
                op, operands, f"RFFT needs the inner dims to equal fft_length {list(lengths)}"
            )
        size = last // 2 + 1 if last else 0
        return Shape(_T.C64 if t is _T.F32 else _T.C128, (*x.dims[:-1], size))
    if not t.is_complex:
        raise _err(op, operands, "IRFFT needs a complex operand")
    if inner[:-1] != lengths[:-1] or (inner[-1] != last // 2 + 1 and (inner[-1] or last)):
        raise _err(
            op,
            operands,
            f"IRFFT needs the inner dims to be fft_length {list(lengths)} with the last one n/2+1",
        )
    return Shape(complex_component(t), (*x.dims[:-1], last))


def _float_or_complex(op: str, operands: Sequence[Shape], shape: Shape) -> None:
    t = shape.element_type
    if not (t.is_float or t.is_complex):
        raise _err(op, operands, "operands must be floating-point or complex")


def _square_minor(op: str, operands: Sequence[Shape], a: Shape) -> None:
    if a.rank < 2 or a.dims[-1] != a.dims[-2]:
        raise _err(op, operands, "'a' must have rank >= 2 and square minor dims")


def cholesky(operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None) -> Shape:
    """Factor of (batched) square matrices, same shape: `cholesky f32[4,4] -> f32[4,4]`."""
    op = "cholesky"
    _arity(op, operands, 1)
    a = _array(op, operands, 0, "a")
    _float_or_complex(op, operands, a)
    _square_minor(op, operands, a)
    _bool(op, attrs, "lower", False)
    return _bare(a)


def triangular_solve(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """Solve op(a) x = b (left_side) or x op(a) = b; result shaped like b:
    `triangular-solve f32[4,4] f32[4,2], left_side=true -> f32[4,2]`."""
    op = "triangular-solve"
    _arity(op, operands, 2)
    a = _array(op, operands, 0, "a")
    b = _array(op, operands, 1, "b")
    _float_or_complex(op, operands, a)
    if a.element_type is not b.element_type:
        raise _err(op, operands, "a and b must have the same element type")
    _square_minor(op, operands, a)
    left = _bool(op, attrs, "left_side", False)
    for name in ("lower", "unit_diagonal"):
        _bool(op, attrs, name, False)
    _enum(op, attrs, "transpose_a", ("NO_TRANSPOSE", "TRANSPOSE", "ADJOINT"), "NO_TRANSPOSE")
    if b.rank != a.rank or b.dims[:-2] != a.dims[:-2]:
        raise _err(op, operands, "a and b must have the same rank and batch dims")
    if a.dims[-1] != b.dims[-2 if left else -1]:
        raise _err(op, operands, "the shared dimension of a and b differs")
    return _bare(b)


def _batch_norm(
    op: str, operands: Sequence[Shape], attrs: Mapping[str, Any], count: int
) -> tuple[Shape, Shape]:
    """Checks shared by the batch-norm ops; returns (operand, per-feature shape)."""
    _arity(op, operands, count)
    _arrays(op, operands)
    x = operands[0]
    epsilon = _get(op, attrs, "epsilon", _MISSING)
    if not isinstance(epsilon, numbers.Real) or isinstance(epsilon, bool):
        raise ShapeError(f"{op}: attribute 'epsilon' must be a number, got {epsilon!r}")
    feature = _int(op, attrs, "feature_index")
    if not x.element_type.is_float:
        raise _err(op, operands, "operand must be floating-point")
    if not 0 <= feature < x.rank:
        raise _err(op, operands, f"feature_index {feature} is out of range")
    if any(s.element_type is not x.element_type for s in operands):
        raise _err(op, operands, "all operands must have the same element type")
    return x, Shape(x.element_type, (x.dims[feature],))


def batch_norm_training(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """(operand, scale[F], offset[F]) -> (normalized, mean[F], variance[F]):
    `batch-norm-training f32[2,4,3] f32[3] f32[3], feature_index=2
    -> (f32[2,4,3], f32[3], f32[3])`."""
    op = "batch-norm-training"
    x, feature = _batch_norm(op, operands, attrs, 3)
    if any(not s.compatible(feature) for s in operands[1:]):
        raise _err(op, operands, f"scale and offset must be {_text(feature)}")
    return Shape.tuple_of([_bare(x), feature, feature])


def batch_norm_inference(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """(operand, scale, offset, mean, variance; all [F]) -> operand shape:
    `batch-norm-inference f32[2,3] f32[3] f32[3] f32[3] f32[3], feature_index=1 -> f32[2,3]`."""
    op = "batch-norm-inference"
    x, feature = _batch_norm(op, operands, attrs, 5)
    if any(not s.compatible(feature) for s in operands[1:]):
        raise _err(op, operands, f"scale, offset, mean and variance must be {_text(feature)}")
    return _bare(x)


def batch_norm_grad(
    operands: Sequence[Shape], attrs: Mapping[str, Any], declared: Shape | None
) -> Shape:
    """(operand, scale[F], mean[F], variance[F], grad_output) -> (grad_operand, grad_scale[F],
    grad_offset[F]): `batch-norm-grad f32[2,3] f32[3] f32[3] f32[3] f32[2,3], feature_index=1
    -> (f32[2,3], f32[3], f32[3])`."""
    op = "batch-norm-grad"
    x, feature = _batch_norm(op, operands, attrs, 5)
    if any(not s.compatible(feature) for s in operands[1:4]):
        raise _err(op, operands, f"scale, mean and variance must be {_text(feature)}")
    if not operands[4].compatible(x):
        raise _err(op, operands, "grad_output must have the operand's shape")
    return Shape.tuple_of([_bare(x), feature, feature])
