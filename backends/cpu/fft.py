"""CPU kernel for `fft`: FFT, IFFT, RFFT and IRFFT over the last one to three dimensions.

The transform runs in double precision on a scratch buffer of (re, im) pairs, one axis at a
time: every line along the axis is copied out, transformed and copied back. A line of
power-of-two length takes an iterative radix-2 FFT; other lengths a direct DFT, O(n^2),
with the twiddle factors read from a constant table (no sin/cos at run time). IFFT and
IRFFT scale by 1/n per axis. RFFT keeps the first n/2+1 outputs of the last axis; IRFFT
transforms the other axes of the half spectrum first, then rebuilds each last-axis line by
Hermitian symmetry (ignoring the imaginary parts of the DC and Nyquist terms, as pocketfft
does) and keeps the real part of its inverse transform.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from llvmlite import ir

from backends.cpu.kernels import BufferValue, KernelContext, emits
from backends.llvm.arith import convert_scalar
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import F64, I64, NOWRAP, alloca_at_entry, for_range, i64, loop_nest
from hlo.dtypes import PrimitiveType, complex_component
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

_T = PrimitiveType


class ComplexLine:
    """A line of n complex doubles stored as 2n f64 (re, im) in a scratch IrArray."""

    def __init__(self, array: IrArray) -> None:
        self.array = array

    def load(self, b: ir.IRBuilder, j: ir.Value) -> tuple[ir.Value, ir.Value]:
        at = b.mul(j, i64(2), flags=NOWRAP)
        return (self.array.load_linear(b, at),
                self.array.load_linear(b, b.add(at, i64(1), flags=NOWRAP)))

    def store(self, b: ir.IRBuilder, j: ir.Value, value: tuple[ir.Value, ir.Value]) -> None:
        at = b.mul(j, i64(2), flags=NOWRAP)
        self.array.store_linear(b, at, value[0])
        self.array.store_linear(b, b.add(at, i64(1), flags=NOWRAP), value[1])


def _cmul(
    b: ir.IRBuilder, x: tuple[ir.Value, ir.Value], y: tuple[ir.Value, ir.Value]
) -> tuple[ir.Value, ir.Value]:
    re = b.fsub(b.fmul(x[0], y[0]), b.fmul(x[1], y[1]))
    im = b.fadd(b.fmul(x[0], y[1]), b.fmul(x[1], y[0]))
    return re, im


def _twiddles(ctx: KernelContext, n: int) -> IrArray:
    """A constant table of exp(-2 pi i t / n) for t < n, as 2n doubles (re, im)."""
    name = f"fft.twiddle.{n}"
    table = ctx.module.globals.get(name)
    if table is None:
        values: list[float] = []
        for t in range(n):
            angle = -2.0 * math.pi * t / n
            values.extend((math.cos(angle), math.sin(angle)))
        ty = ir.ArrayType(F64, 2 * n)
        table = ir.GlobalVariable(ctx.module, ty, name=name)
        table.global_constant = True
        table.linkage = "internal"
        table.initializer = ir.Constant(ty, [ir.Constant(F64, v) for v in values])
    return IrArray(table, Shape.array(_T.F64, (2 * n,)), invariant=True)


def _twiddle(
    b: ir.IRBuilder, table: IrArray, t: ir.Value, inverse: bool
) -> tuple[ir.Value, ir.Value]:
    re, im = ComplexLine(table).load(b, t)
    return (re, b.fneg(im)) if inverse else (re, im)


def _direct_dft(
    ctx: KernelContext, n: int, src: ComplexLine, dst: ComplexLine, inverse: bool
) -> None:
    """dst[k] = sum_j src[j] * w^(j k mod n), in O(n^2)."""
    b = ctx.builder
    table = _twiddles(ctx, n)
    re_slot = alloca_at_entry(b, F64, name="dft.re")
    im_slot = alloca_at_entry(b, F64, name="dft.im")
    t_slot = alloca_at_entry(b, I64, name="dft.t")
    with for_range(b, 0, n, name="dft.k") as k:
        b.store(ir.Constant(F64, 0.0), re_slot)
        b.store(ir.Constant(F64, 0.0), im_slot)
        b.store(i64(0), t_slot)
        with for_range(b, 0, n, name="dft.j") as j:
            t = b.load(t_slot)
            term = _cmul(b, src.load(b, j), _twiddle(b, table, t, inverse))
            b.store(b.fadd(b.load(re_slot), term[0]), re_slot)
            b.store(b.fadd(b.load(im_slot), term[1]), im_slot)
            nxt = b.add(t, k)
            b.store(b.select(b.icmp_signed(">=", nxt, i64(n)), b.sub(nxt, i64(n)), nxt), t_slot)
        dst.store(b, k, (b.load(re_slot), b.load(im_slot)))


def _radix2_fft(
    ctx: KernelContext, n: int, src: ComplexLine, dst: ComplexLine, inverse: bool
) -> None:
    """Iterative radix-2 FFT of a power-of-two line: bit-reversed copy, then butterflies."""
    b = ctx.builder
    bits = n.bit_length() - 1
    table = _twiddles(ctx, n)
    with for_range(b, 0, n, name="fft.rev") as j:
        rev = i64(0)
        for bit in range(bits):
            one = b.and_(b.lshr(j, i64(bit)), i64(1))
            rev = b.or_(rev, b.shl(one, i64(bits - 1 - bit)))
        dst.store(b, rev, src.load(b, j))
    with for_range(b, 0, bits, name="fft.stage") as stage:
        half = b.shl(i64(1), stage)
        span = b.shl(half, i64(1))
        stride = b.lshr(i64(n), b.add(stage, i64(1)))
        with for_range(b, 0, b.lshr(i64(n), b.add(stage, i64(1))), name="fft.group") as g:
            start = b.mul(g, span)
            with for_range(b, 0, half, name="fft.j") as j:
                w = _twiddle(b, table, b.mul(j, stride), inverse)
                top = b.add(start, j)
                bottom = b.add(top, half)
                u = dst.load(b, top)
                v = _cmul(b, dst.load(b, bottom), w)
                dst.store(b, top, (b.fadd(u[0], v[0]), b.fadd(u[1], v[1])))
                dst.store(b, bottom, (b.fsub(u[0], v[0]), b.fsub(u[1], v[1])))


def _transform_line(
    ctx: KernelContext, n: int, src: ComplexLine, dst: ComplexLine, inverse: bool
) -> None:
    """dst = DFT(src) (inverse: conjugate twiddles and a 1/n scale)."""
    b = ctx.builder
    if n >= 4 and n & (n - 1) == 0:
        _radix2_fft(ctx, n, src, dst, inverse)
    else:
        _direct_dft(ctx, n, src, dst, inverse)
    if inverse:
        scale = ir.Constant(F64, 1.0 / n)
        with for_range(b, 0, n, name="fft.scale") as j:
            re, im = dst.load(b, j)
            dst.store(b, j, (b.fmul(re, scale), b.fmul(im, scale)))


def _transform_axis(
    ctx: KernelContext,
    work: ComplexLine,
    dims: Sequence[int],
    axis: int,
    lines: tuple[ComplexLine, ComplexLine],
    inverse: bool,
) -> None:
    """Transform every line of `work` (complex, row-major `dims`) along `axis` in place."""
    b = ctx.builder
    outer = math.prod(dims[:axis])
    n = dims[axis]
    inner = math.prod(dims[axis + 1:])
    src, dst = lines
    with loop_nest(b, (outer, inner), name="fft.line") as (o, i):
        base = b.add(b.mul(o, i64(n * inner), flags=NOWRAP), i, flags=NOWRAP)

        def at(j: ir.Value) -> ir.Value:
            return b.add(base, b.mul(j, i64(inner), flags=NOWRAP), flags=NOWRAP)

        with for_range(b, 0, n, name="fft.gather") as j:
            src.store(b, j, work.load(b, at(j)))
        _transform_line(ctx, n, src, dst, inverse)
        with for_range(b, 0, n, name="fft.scatter") as j:
            work.store(b, at(j), dst.load(b, j))


def _load_complex(
    b: ir.IRBuilder, x: IrArray, linear: ir.Value
) -> tuple[ir.Value, ir.Value]:
    """Element `linear` of x (real or complex) as two doubles."""
    t = x.element_type
    value = x.load_linear(b, linear)
    if t.is_complex:
        part = complex_component(t)
        return (convert_scalar(b, b.extract_value(value, 0), part, _T.F64),
                convert_scalar(b, b.extract_value(value, 1), part, _T.F64))
    return convert_scalar(b, value, t, _T.F64), ir.Constant(F64, 0.0)


def _store_complex(
    b: ir.IRBuilder, y: IrArray, linear: ir.Value, value: tuple[ir.Value, ir.Value]
) -> None:
    t = y.element_type
    if not t.is_complex:
        y.store_linear(b, linear, convert_scalar(b, value[0], _T.F64, t))
        return
    part = complex_component(t)
    re = convert_scalar(b, value[0], _T.F64, part)
    im = convert_scalar(b, value[1], _T.F64, part)
    z = ir.Constant(ir.LiteralStructType([re.type, im.type]), ir.Undefined)
    y.store_linear(b, linear, b.insert_value(b.insert_value(z, re, 0), im, 1))


@emits(Opcode.FFT)
def emit_fft(
    ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue], out: BufferValue
) -> None:
    """FFT/IFFT/RFFT/IRFFT over the last len(fft_length) dimensions."""
    b = ctx.builder
    (x,) = operands
    kind = instr.attrs["fft_type"]
    lengths = tuple(instr.attrs["fft_length"])
    rank = len(lengths)
    batch = math.prod(x.shape.dims[: x.shape.rank - rank])
    dims = (batch, *lengths)
    total = math.prod(dims)
    if total == 0 or out.shape.num_elements == 0:
        return
    work = ComplexLine(ctx.temp_array(Shape.array(_T.F64, (2 * total,)), name="fft.work"))
    longest = max(lengths)
    lines = (
        ComplexLine(ctx.temp_array(Shape.array(_T.F64, (2 * longest,)), name="fft.in")),
        ComplexLine(ctx.temp_array(Shape.array(_T.F64, (2 * longest,)), name="fft.out")),
    )
    # The input's last dimension: n for FFT/IFFT/RFFT, n/2 + 1 for IRFFT's half spectrum.
    in_last = x.shape.dims[-1]
    zero = (ir.Constant(F64, 0.0), ir.Constant(F64, 0.0))
    with loop_nest(b, (total // lengths[-1], lengths[-1]), name="fft.load") as (row, j):
        at = b.add(b.mul(row, i64(lengths[-1]), flags=NOWRAP), j, flags=NOWRAP)
        if in_last == lengths[-1]:
            work.store(b, at, _load_complex(b, x, b.add(b.mul(row, i64(in_last)), j)))
        else:
            inside = b.icmp_signed("<", j, i64(in_last))
            with b.if_else(inside) as (then, otherwise):
                with then:
                    work.store(b, at, _load_complex(b, x, b.add(b.mul(row, i64(in_last)), j)))
                with otherwise:
                    work.store(b, at, zero)
    inverse = kind in ("IFFT", "IRFFT")
    axes = range(1, rank) if kind == "IRFFT" else range(1, rank + 1)
    for axis in axes:
        _transform_axis(ctx, work, dims, axis, lines, inverse)
    if kind == "IRFFT":
        _inverse_real_last_axis(ctx, work, dims, lines, out)
        return
    out_last = out.shape.dims[-1]
    with loop_nest(b, (total // lengths[-1], out_last), name="fft.store") as (row, j):
        value = work.load(b, b.add(b.mul(row, i64(lengths[-1])), j))
        _store_complex(b, out, b.add(b.mul(row, i64(out_last)), j), value)


def _inverse_real_last_axis(
    ctx: KernelContext,
    work: ComplexLine,
    dims: Sequence[int],
    lines: tuple[ComplexLine, ComplexLine],
    out: IrArray,
) -> None:
    """out[row, :] = Re(IDFT(Hermitian extension of work[row, : n/2 + 1]))."""
    b = ctx.builder
    n = dims[-1]
    half = n // 2 + 1
    src, dst = lines
    rows = math.prod(dims) // n
    zero = ir.Constant(F64, 0.0)
    with for_range(b, 0, rows, name="irfft.row") as row:
        base = b.mul(row, i64(n), flags=NOWRAP)
        with for_range(b, 0, half, name="irfft.low") as k:
            src.store(b, k, work.load(b, b.add(base, k)))
        with for_range(b, half, n, name="irfft.high") as k:
            re, im = work.load(b, b.add(base, b.sub(i64(n), k)))
            src.store(b, k, (re, b.fneg(im)))
        re0, _ = src.load(b, i64(0))
        src.store(b, i64(0), (re0, zero))
        if n % 2 == 0:
            re_n, _ = src.load(b, i64(n // 2))
            src.store(b, i64(n // 2), (re_n, zero))
        _transform_line(ctx, n, src, dst, inverse=True)
        with for_range(b, 0, n, name="irfft.out") as t:
            re, _ = dst.load(b, t)
            out.store_linear(b, b.add(base, t), convert_scalar(b, re, _T.F64, out.element_type))
