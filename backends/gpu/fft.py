"""GPU kernels for `fft`: a direct DFT per axis, one thread per output element.

FFT, IFFT, RFFT and IRFFT over the last len(fft_length) dimensions, as separable passes,
one kernel per transformed axis. The thread of output index k along the axis sums
x[j] * exp(sign * 2 pi i (j k mod N) / N) over the axis in f64, with the twiddle from
libdevice's sinpi/cospi of an exactly reduced argument, so c64 transforms are accurate to
about an f32 rounding. Intermediate passes keep c128 values. RFFT's first pass reads real
input and writes the N/2 + 1 non-negative frequencies; IRFFT's last pass expands the half
spectrum by Hermitian symmetry and keeps the real part (the imaginary parts of the zero
and Nyquist terms are ignored, as numpy's irfft does). Inverse passes scale by 1/N.
The cost is O(N) per output element: fine for the short lengths models use.
TODO(#8): radix-2 passes in shared memory for long power-of-two lengths.
"""

from __future__ import annotations

from llvmlite import ir

from backends.gpu.kernels import KernelContext, KernelFunction, emits_gpu, operand_slots, out_slot
from backends.gpu.launch import for_elements, grid_stride_loop
from backends.gpu.plan import Slot
from backends.llvm.index import delinearize
from backends.llvm.irutil import F32, F64, declare_function, for_range, i64, llvm_type
from hlo.dtypes import PrimitiveType
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

_T = PrimitiveType
_NOWRAP = ("nuw", "nsw")


@emits_gpu(Opcode.FFT)
def emit_fft(ctx: KernelContext, instr: HloInstruction) -> None:
    (x,) = operand_slots(ctx)
    out = out_slot(ctx)
    if out.shape.num_elements == 0 or x.shape.num_elements == 0:
        return
    kind: str = instr.attrs["fft_type"]
    lengths = tuple(instr.attrs["fft_length"])
    rank = out.shape.rank
    axes = list(range(rank - len(lengths), rank))
    inverse = kind in ("IFFT", "IRFFT")
    # (axis, mode) in the order the passes run; IRFFT's real pass must come last and
    # RFFT's real pass first.
    passes: list[tuple[int, str]] = [(a, "c2c") for a in axes]
    if kind == "RFFT":
        passes = [(axes[-1], "r2c"), *[(a, "c2c") for a in axes[:-1]]]
    elif kind == "IRFFT":
        passes = [*[(a, "c2c") for a in axes[:-1]], (axes[-1], "c2r")]
    current = x
    for k, (axis, mode) in enumerate(passes):
        last = k == len(passes) - 1
        if last:
            target = out
        else:
            dims = list(current.shape.dims)
            if mode == "r2c":
                dims[axis] = lengths[-1] // 2 + 1
            scratch = ctx.temp(Shape.array(_T.C128, dims))
            assert isinstance(scratch, Slot)
            target = scratch
        length = lengths[axes.index(axis)]
        kernel = ctx.kernel(f"dft{k}", [target], [current])
        if kernel.is_new:
            _fill_pass(kernel, axis, length, mode, inverse)
        ctx.launch(kernel, for_elements(target.shape.num_elements))
        current = target


def _libdevice(b: ir.IRBuilder, name: str, x: ir.Value) -> ir.Value:
    return b.call(declare_function(b.module, name, F64, [F64]), [x])


def _load_f64(b: ir.IRBuilder, value: ir.Value, t: PrimitiveType) -> tuple[ir.Value, ir.Value]:
    """(re, im) of a complex or real register value, in f64."""
    if t.is_complex:
        re, im = b.extract_value(value, 0), b.extract_value(value, 1)
        if t is _T.C64:
            re, im = b.fpext(re, F64), b.fpext(im, F64)
        return re, im
    re = b.fpext(value, F64) if t is _T.F32 else value
    return re, ir.Constant(F64, 0.0)


def _fill_pass(kernel: KernelFunction, axis: int, length: int, mode: str,
               inverse: bool) -> None:
    """dst[..., k, ...] = sum_j src[..., j, ...] w^(j k), w = exp(-+2 pi i / length)."""
    b = kernel.builder
    src = kernel.inputs[0]
    dst = kernel.outputs[0]
    src_t, dst_t = src.element_type, dst.element_type
    terms = src.shape.dims[axis] if mode == "c2r" else length
    terms = min(terms, src.shape.dims[axis])
    sign = 1.0 if inverse else -1.0
    entry = kernel.entry_builder()
    acc_re = entry.alloca(F64, name="re")
    acc_im = entry.alloca(F64, name="im")
    with grid_stride_loop(b, dst.shape.num_elements) as o:
        index = delinearize(b, o, dst.shape.dims)
        k = index[axis]
        b.store(ir.Constant(F64, 0.0), acc_re)
        b.store(ir.Constant(F64, 0.0), acc_im)
        with for_range(b, 0, terms, name="j") as j:
            source = list(index)
            source[axis] = j
            re, im = _load_f64(b, src.load(b, source), src_t)
            # Angle / pi = 2 (j k mod N) / N: reduced exactly in integers first.
            turns = b.urem(b.mul(j, k, flags=_NOWRAP), i64(length))
            angle = b.fmul(b.uitofp(turns, F64), ir.Constant(F64, 2.0 * sign / length))
            c = _libdevice(b, "__nv_cospi", angle)
            s = _libdevice(b, "__nv_sinpi", angle)
            real = b.fsub(b.fmul(re, c), b.fmul(im, s))
            if mode == "c2r":
                # Hermitian extension: terms 0 < j < N - j appear twice (j and N - j).
                twice = b.and_(b.icmp_unsigned(">", j, i64(0)),
                               b.icmp_unsigned("<", b.mul(j, i64(2)), i64(length)))
                weight = b.select(twice, ir.Constant(F64, 2.0), ir.Constant(F64, 1.0))
                b.store(b.fadd(b.load(acc_re), b.fmul(weight, real)), acc_re)
            else:
                imag = b.fadd(b.fmul(re, s), b.fmul(im, c))
                b.store(b.fadd(b.load(acc_re), real), acc_re)
                b.store(b.fadd(b.load(acc_im), imag), acc_im)
        re_sum, im_sum = b.load(acc_re), b.load(acc_im)
        if inverse:
            scale = ir.Constant(F64, 1.0 / length)
            re_sum, im_sum = b.fmul(re_sum, scale), b.fmul(im_sum, scale)
        dst.store_linear(b, o, _to_element(b, re_sum, im_sum, dst_t))
    kernel.finish()


def _to_element(b: ir.IRBuilder, re: ir.Value, im: ir.Value, t: PrimitiveType) -> ir.Value:
    if not t.is_complex:
        return b.fptrunc(re, F32) if t is _T.F32 else re
    if t is _T.C64:
        re, im = b.fptrunc(re, F32), b.fptrunc(im, F32)
    z = ir.Constant(llvm_type(t), ir.Undefined)
    return b.insert_value(b.insert_value(z, re, 0), im, 1)

