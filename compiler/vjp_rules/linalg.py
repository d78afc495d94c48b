"""VJP rules of dot and convolution.

dot: each operand's cotangent is another dot of the result cotangent with the other
operand (contracting the other operand's free dims), transposed back to the operand's
dimension order.

convolution: the input cotangent is a convolution of the result cotangent with the
spatially reversed kernel (input and output roles swapped, strides becoming input
dilation); the kernel cotangent is a convolution of the input with the result cotangent
(batch and feature roles swapped, feature groups becoming batch groups). Both follow the
padding arithmetic of JAX's `_conv_general_vjp_lhs_padding` / `_rhs_padding`.
"""

from __future__ import annotations

from collections.abc import Sequence

from compiler import numpy_prims as prims
from compiler.tracing import Tracer
from compiler.vjp_rules.base import Cot, VjpContext, defvjp
from hlo.attributes import ConvDimLabels, Window
from hlo.errors import UnsupportedOpError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode

# --- dot ------------------------------------------------------------------------------------------


def _dot_operand_cotangent(ct: Tracer, other: Tracer, nb: int, own_free: Sequence[int],
                           own_batch: Sequence[int], own_contract: Sequence[int],
                           other_batch: Sequence[int], other_contract: Sequence[int],
                           other_free: Sequence[int], other_free_pos: Sequence[int],
                           rank: int) -> Tracer:
    """ct (batch, lhs free, rhs free) contracted with `other` over other's free dims.

    The product has dims (batch, own free, other's contracting dims in increasing order);
    own contracting dim own_contract[j] pairs with other_contract[j].
    """
    product = prims.dot_general(ct, other, (other_free_pos, other_free),
                                (tuple(range(nb)), other_batch))
    order = sorted(other_contract)
    perm = []
    for d in range(rank):
        if d in own_batch:
            perm.append(list(own_batch).index(d))
        elif d in own_free:
            perm.append(nb + list(own_free).index(d))
        else:
            j = list(own_contract).index(d)
            perm.append(nb + len(own_free) + order.index(other_contract[j]))
    return prims.transpose(product, perm)


@defvjp(Opcode.DOT)
def _dot_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    a = instr.attrs
    x, y = ctx.operands(instr)
    lb, lc = tuple(a.get("lhs_batch_dims", ())), tuple(a.get("lhs_contracting_dims", ()))
    rb, rc = tuple(a.get("rhs_batch_dims", ())), tuple(a.get("rhs_contracting_dims", ()))
    nb = len(lb)
    lf = [d for d in range(x.ndim) if d not in lb and d not in lc]
    rf = [d for d in range(y.ndim) if d not in rb and d not in rc]
    lf_pos = list(range(nb, nb + len(lf)))
    rf_pos = list(range(nb + len(lf), nb + len(lf) + len(rf)))
    ct_x = _dot_operand_cotangent(ct, y, nb, lf, lb, lc, rb, rc, rf, rf_pos, x.ndim)
    ct_y = _dot_operand_cotangent(ct, x, nb, rf, rb, rc, lb, lc, lf, lf_pos, y.ndim)
    return [prims.convert(ct_x, x.dtype), prims.convert(ct_y, y.dtype)]


# --- convolution -------------------------------------------------------------------------------


def _specs(lab: ConvDimLabels) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(batch, feature, spatial...) positions of input, (out, in, spatial...) of the kernel,
    (batch, feature, spatial...) of the output."""
    return ((lab.input_batch, lab.input_feature, *lab.input_spatial),
            (lab.kernel_output_feature, lab.kernel_input_feature, *lab.kernel_spatial),
            (lab.output_batch, lab.output_feature, *lab.output_spatial))


def _labels(lhs: Sequence[int], rhs: Sequence[int], out: Sequence[int]) -> ConvDimLabels:
    return ConvDimLabels(
        input_batch=lhs[0], input_feature=lhs[1], input_spatial=tuple(lhs[2:]),
        kernel_output_feature=rhs[0], kernel_input_feature=rhs[1],
        kernel_spatial=tuple(rhs[2:]),
        output_batch=out[0], output_feature=out[1], output_spatial=tuple(out[2:]),
    )


def _swap(spec: Sequence[int]) -> tuple[int, ...]:
    return (spec[1], spec[0], *spec[2:])


def _dilate(size: int, dilation: int) -> int:
    return 0 if size == 0 else 1 + dilation * (size - 1)


def _conv(lhs: Tracer, rhs: Tracer, labels: ConvDimLabels, strides: Sequence[int],
          pads: Sequence[tuple[int, int]], lhs_dilation: Sequence[int],
          rhs_dilation: Sequence[int], feature_groups: int = 1, batch_groups: int = 1
          ) -> Tracer:
    sizes = [rhs.shape[d] for d in labels.kernel_spatial]
    window = prims.make_window(sizes, strides, pads, lhs_dilation, rhs_dilation)
    return prims.convolution(lhs, rhs, window, labels, feature_groups, batch_groups)


def _split_axis(x: Tracer, axis: int, major: int) -> Tracer:
    """Split dim `axis` into (major, size / major), major first."""
    shape = list(x.shape)
    shape[axis:axis + 1] = [major, shape[axis] // major]
    return prims.reshape(x, shape)


def _merge_axis(x: Tracer, src: int, dst: int) -> Tracer:
    """Move dim `src` in front of dim `dst` (numbered without src) and merge them."""
    perm = [d for d in range(x.ndim) if d != src]
    perm.insert(dst, src)
    moved = prims.transpose(x, perm)
    shape = [x.shape[d] for d in range(x.ndim) if d != src]
    shape[dst] *= x.shape[src]
    return prims.reshape(moved, shape)


@defvjp(Opcode.CONVOLUTION)
def _convolution_vjp(ctx: VjpContext, instr: HloInstruction, ct: Cot) -> list[Cot]:
    a = instr.attrs
    x, w = ctx.operands(instr)
    window: Window = a.get("window") or Window(())
    groups = a.get("feature_group_count", 1) or 1
    if (a.get("batch_group_count", 1) or 1) != 1:
        raise UnsupportedOpError(f"differentiating convolution {instr.name} with "
                                 "batch_group_count > 1")
    if any(wd.window_reversal for wd in window.dims):
        raise UnsupportedOpError(f"differentiating convolution {instr.name} with window "
                                 "reversal")
    lhs_spec, rhs_spec, out_spec = _specs(a["dim_labels"])
    strides = [wd.stride for wd in window.dims]
    lhs_dil = [wd.base_dilation for wd in window.dims]
    rhs_dil = [wd.window_dilation for wd in window.dims]
    lows = [wd.padding_low for wd in window.dims]
    in_sizes = [x.shape[d] for d in lhs_spec[2:]]
    k_sizes = [w.shape[d] for d in rhs_spec[2:]]
    out_sizes = [ct.shape[d] for d in out_spec[2:]]
    lhs_dilated = [_dilate(n, r) for n, r in zip(in_sizes, lhs_dil, strict=True)]
    rhs_dilated = [_dilate(k, r) for k, r in zip(k_sizes, rhs_dil, strict=True)]
    out_dilated = [_dilate(o, s) for o, s in zip(out_sizes, strides, strict=True)]

    # Input cotangent: ct convolved with the reversed kernel, in and out features swapped.
    kernel = w
    if groups > 1:
        kernel = _merge_axis(_split_axis(kernel, rhs_spec[0], groups), rhs_spec[0],
                             rhs_spec[1])
    kernel = prims.reverse(kernel, rhs_spec[2:])
    # Swap the feature dims in memory rather than in the labels: the CPU backend's fast
    # kernels take the forward conv's kernel layout (HWIO), and with its feature labels
    # swapped (HWOI) the same convolution ran about ten times slower. The transpose is of
    # the small kernel only.
    swap = list(range(kernel.ndim))
    swap[rhs_spec[0]], swap[rhs_spec[1]] = rhs_spec[1], rhs_spec[0]
    kernel = prims.transpose(kernel, swap)
    lhs_pads = []
    for k, lo, n, o in zip(rhs_dilated, lows, lhs_dilated, out_dilated, strict=True):
        before = k - lo - 1
        lhs_pads.append((before, n + k - 1 - o - before))
    ct_x = _conv(ct, kernel, _labels(out_spec, rhs_spec, lhs_spec), lhs_dil, lhs_pads,
                 strides, rhs_dil, feature_groups=groups)

    # Kernel cotangent: the input convolved with ct, batch and feature roles swapped.
    rhs_pads = []
    for k, lo, n, o in zip(rhs_dilated, lows, lhs_dilated, out_dilated, strict=True):
        rhs_pads.append((lo, (o - n) + (k - lo - 1)))
    ct_w = _conv(x, ct, _labels(_swap(lhs_spec), _swap(out_spec), _swap(rhs_spec)), rhs_dil,
                 rhs_pads, lhs_dil, strides, batch_groups=groups)
    return [ct_x, ct_w]
