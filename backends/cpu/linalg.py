"""CPU kernels for linear algebra: cholesky, triangular-solve and the batch-norm ops.

Cholesky and triangular-solve work per matrix of the batch in a scratch buffer of the
working type (f32 for f16/bf16, else the element type; complex stays complex) and round
into the result once. Cholesky reads only the named triangle, zeroes the other one, and
returns all NaN for a matrix that is not positive definite (a pivot that is not > 0), as the
reference evaluator does. Triangular-solve substitutes forward or backward depending on
which triangle op(a) has; unit_diagonal never reads the diagonal. The batch-norm ops compute
their per-feature statistics and results in f64, walking the operand in memory order with
the feature dimension split out as (outer, feature, inner).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager

from llvmlite import ir

from backends.cpu.kernels import BufferValue, KernelContext, emits
from backends.llvm.arith import accumulation_type, add_scalar, convert_scalar, mul_scalar
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import (
    F64,
    I1,
    NOWRAP,
    alloca_at_entry,
    const,
    for_range,
    i64,
    intrinsic,
    llvm_type,
    loop_nest,
)
from hlo.dtypes import PrimitiveType, complex_component
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode
from hlo.shape import Shape

_T = PrimitiveType


class Field:
    """Arithmetic of one working type (a float or complex type) on register values."""

    def __init__(self, b: ir.IRBuilder, t: PrimitiveType) -> None:
        self.b = b
        self.t = t
        self.part = complex_component(t) if t.is_complex else t

    def const(self, value: complex | float) -> ir.Value:
        return const(self.t, value)

    def add(self, x: ir.Value, y: ir.Value) -> ir.Value:
        return add_scalar(self.b, self.t, x, y)

    def sub(self, x: ir.Value, y: ir.Value) -> ir.Value:
        if not self.t.is_complex:
            return self.b.fsub(x, y)
        return self._make(self.b.fsub(self.re(x), self.re(y)), self.b.fsub(self.im(x), self.im(y)))

    def mul(self, x: ir.Value, y: ir.Value) -> ir.Value:
        return mul_scalar(self.b, self.t, x, y)

    def div(self, x: ir.Value, y: ir.Value) -> ir.Value:
        b = self.b
        if not self.t.is_complex:
            return b.fdiv(x, y)
        xr, xi, yr, yi = self.re(x), self.im(x), self.re(y), self.im(y)
        denominator = b.fadd(b.fmul(yr, yr), b.fmul(yi, yi))
        re = b.fdiv(b.fadd(b.fmul(xr, yr), b.fmul(xi, yi)), denominator)
        im = b.fdiv(b.fsub(b.fmul(xi, yr), b.fmul(xr, yi)), denominator)
        return self._make(re, im)

    def conj(self, x: ir.Value) -> ir.Value:
        if not self.t.is_complex:
            return x
        return self._make(self.re(x), self.b.fneg(self.im(x)))

    def re(self, x: ir.Value) -> ir.Value:
        return self.b.extract_value(x, 0) if self.t.is_complex else x

    def im(self, x: ir.Value) -> ir.Value:
        return self.b.extract_value(x, 1)

    def from_real(self, r: ir.Value) -> ir.Value:
        if not self.t.is_complex:
            return r
        return self._make(r, ir.Constant(r.type, 0.0))

    def sqrt_real(self, r: ir.Value) -> ir.Value:
        suffix = "f32" if self.part is _T.F32 else "f64"
        return intrinsic(self.b, f"llvm.sqrt.{suffix}", r.type, [r])

    def _make(self, re: ir.Value, im: ir.Value) -> ir.Value:
        z = ir.Constant(llvm_type(self.t), ir.Undefined)
        return self.b.insert_value(self.b.insert_value(z, re, 0), im, 1)


def _batch_of(shape: Shape) -> int:
    return math.prod(shape.dims[:-2])


# --- cholesky ----------------------------------------------------------------------------------


@emits(Opcode.CHOLESKY)
def emit_cholesky(
    ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue], out: BufferValue
) -> None:
    """L with A = L L^H (lower) or U with A = U^H U, from the named triangle of A."""
    b = ctx.builder
    (a,) = operands
    lower = bool(instr.attrs.get("lower", False))
    n = a.shape.dims[-1]
    if out.shape.num_elements == 0:
        return
    t = a.element_type
    work_t = accumulation_type(t)
    f = Field(b, work_t)
    factor = ctx.temp_array(Shape.array(work_t, (n, n)), name="chol.l")
    failed = alloca_at_entry(b, I1, name="chol.failed")
    acc = alloca_at_entry(b, llvm_type(work_t), name="chol.acc")
    with for_range(b, 0, _batch_of(a.shape), name="chol.batch") as batch:
        base = b.mul(batch, i64(n * n), flags=NOWRAP)

        def hermitian(i: ir.Value, j: ir.Value) -> ir.Value:
            """Element (i, j), i >= j, of the Hermitian matrix the named triangle defines."""
            at = (b.add(base, b.add(b.mul(i, i64(n)), j)) if lower
                  else b.add(base, b.add(b.mul(j, i64(n)), i)))
            value = convert_scalar(b, a.load_linear(b, at), t, work_t)
            return value if lower else f.conj(value)

        b.store(ir.Constant(I1, 0), failed)
        with for_range(b, 0, n, name="chol.j") as j:
            # The row j of L left of the diagonal, dotted with row `i` of L.
            def dot_rows(i: ir.Value) -> ir.Value:
                b.store(f.const(0), acc)
                with for_range(b, 0, j, name="chol.k") as k:
                    lik = factor.load(b, [i, k])
                    ljk = factor.load(b, [j, k])
                    b.store(f.add(b.load(acc), f.mul(lik, f.conj(ljk))), acc)
                return b.load(acc)

            pivot = f.re(f.sub(hermitian(j, j), dot_rows(j)))
            ok = b.fcmp_ordered(">", pivot, ir.Constant(pivot.type, 0.0))
            b.store(b.or_(b.load(failed), b.not_(ok)), failed)
            diagonal = f.sqrt_real(pivot)
            factor.store(b, [j, j], f.from_real(diagonal))
            with for_range(b, b.add(j, i64(1)), n, name="chol.i") as i:
                value = f.div(f.sub(hermitian(i, j), dot_rows(i)), f.from_real(diagonal))
                factor.store(b, [i, j], value)
        nan = f.const(complex(math.nan, math.nan) if work_t.is_complex else math.nan)
        zero = f.const(0)
        is_failed = b.load(failed)
        with loop_nest(b, (n, n), name="chol.out") as (i, j):
            # lower: out[i, j] = L[i, j] on and below the diagonal; upper: conj(L[j, i]) on
            # and above it. The scratch's other triangle holds garbage that select drops.
            if lower:
                value = b.select(b.icmp_signed(">=", i, j), factor.load(b, [i, j]), zero)
            else:
                value = b.select(b.icmp_signed("<=", i, j), f.conj(factor.load(b, [j, i])), zero)
            value = b.select(is_failed, nan, value)
            at = b.add(base, b.add(b.mul(i, i64(n)), j))
            out.store_linear(b, at, convert_scalar(b, value, work_t, out.element_type))


# --- triangular-solve --------------------------------------------------------------------------


@emits(Opcode.TRIANGULAR_SOLVE)
def emit_triangular_solve(
    ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue], out: BufferValue
) -> None:
    """x with op(a) x = b (left_side) or x op(a) = b, op(a) = a, a^T or a^H."""
    b = ctx.builder
    a, rhs = operands
    attrs = instr.attrs
    left = bool(attrs.get("left_side", False))
    lower = bool(attrs.get("lower", False))
    unit = bool(attrs.get("unit_diagonal", False))
    transpose = attrs.get("transpose_a") or "NO_TRANSPOSE"
    rows, cols = rhs.shape.dims[-2:]
    m = a.shape.dims[-1]
    if out.shape.num_elements == 0:
        return
    t = rhs.element_type
    work_t = accumulation_type(t)
    f = Field(b, work_t)
    work = ctx.temp_array(Shape.array(work_t, (rows, cols)), name="trsm.x")
    acc = alloca_at_entry(b, llvm_type(work_t), name="trsm.acc")
    # op(a) is lower triangular when exactly one of `lower` and "transposed" holds.
    effective_lower = lower != (transpose != "NO_TRANSPOSE")
    with for_range(b, 0, math.prod(rhs.shape.dims[:-2]), name="trsm.batch") as batch:
        a_base = b.mul(batch, i64(m * m), flags=NOWRAP)
        x_base = b.mul(batch, i64(rows * cols), flags=NOWRAP)

        def op_a(i: ir.Value, j: ir.Value) -> ir.Value:
            """Element (i, j) of op(a), read from the stored triangle."""
            r, c = (i, j) if transpose == "NO_TRANSPOSE" else (j, i)
            value = convert_scalar(
                b, a.load_linear(b, b.add(a_base, b.add(b.mul(r, i64(m)), c))),
                a.element_type, work_t)
            return f.conj(value) if transpose == "ADJOINT" else value

        def solve_line(
            count: int, local_at: Callable[[ir.Value], ir.Value],
            coefficient: Callable[[ir.Value, ir.Value], ir.Value], forward: bool,
        ) -> None:
            """x[e] = (rhs[e] - sum over solved k of coefficient(e, k) x[k]) / op(a)[e, e].

            `local_at(e)` is the offset of line element e within one batch's [rows, cols].
            """
            first, stop, step = (0, count, 1) if forward else (count - 1, -1, -1)
            with for_range(b, i64(first), i64(stop), step=step, name="trsm.e") as e:
                at = local_at(e)
                value = rhs.load_linear(b, b.add(x_base, at))
                b.store(convert_scalar(b, value, t, work_t), acc)
                start, end = (i64(0), e) if forward else (b.add(e, i64(1)), i64(count))
                with for_range(b, start, end, name="trsm.k") as k:
                    b.store(f.sub(b.load(acc), coefficient(e, k)), acc)
                solved = b.load(acc) if unit else f.div(b.load(acc), op_a(e, e))
                work.store_linear(b, at, solved)

        if left:
            with for_range(b, 0, cols, name="trsm.col") as c:
                solve_line(
                    rows,
                    lambda e: b.add(b.mul(e, i64(cols)), c),
                    lambda e, k: f.mul(op_a(e, k), work.load(b, [k, c])),
                    forward=effective_lower,
                )
        else:
            with for_range(b, 0, rows, name="trsm.row") as r:
                solve_line(
                    cols,
                    lambda e: b.add(b.mul(r, i64(cols)), e),
                    lambda e, k: f.mul(work.load(b, [r, k]), op_a(k, e)),
                    forward=not effective_lower,
                )
        with for_range(b, 0, rows * cols, name="trsm.out") as e:
            value = convert_scalar(b, work.load_linear(b, e), work_t, out.element_type)
            out.store_linear(b, b.add(x_base, e), value)


# --- batch norm --------------------------------------------------------------------------------


class FeatureLayout:
    """An operand seen as [outer, features, inner] around its feature dimension."""

    def __init__(self, shape: Shape, feature_index: int) -> None:
        self.outer = math.prod(shape.dims[:feature_index])
        self.features = shape.dims[feature_index]
        self.inner = math.prod(shape.dims[feature_index + 1:])
        self.count = self.outer * self.inner

    def loop(self, b: ir.IRBuilder, name: str) -> AbstractContextManager[list[ir.Value]]:
        """Loops over (outer, feature, inner), in memory order."""
        return loop_nest(b, (self.outer, self.features, self.inner), name=name)

    def linear(self, b: ir.IRBuilder, o: ir.Value, f: ir.Value, i: ir.Value) -> ir.Value:
        row = b.add(b.mul(o, i64(self.features), flags=NOWRAP), f, flags=NOWRAP)
        return b.add(b.mul(row, i64(self.inner), flags=NOWRAP), i, flags=NOWRAP)


def _f64(b: ir.IRBuilder, arr: IrArray, linear: ir.Value) -> ir.Value:
    return convert_scalar(b, arr.load_linear(b, linear), arr.element_type, _T.F64)


def _store_f64(b: ir.IRBuilder, arr: IrArray, linear: ir.Value, value: ir.Value) -> None:
    arr.store_linear(b, linear, convert_scalar(b, value, _T.F64, arr.element_type))


def _rstd(b: ir.IRBuilder, variance: ir.Value, epsilon: float) -> ir.Value:
    """1 / sqrt(variance + epsilon) in f64."""
    root = intrinsic(b, "llvm.sqrt.f64", F64, [b.fadd(variance, ir.Constant(F64, epsilon))])
    return b.fdiv(ir.Constant(F64, 1.0), root)


def _feature_sums(
    ctx: KernelContext, layout: FeatureLayout, term: Callable[[ir.Value, ir.Value], ir.Value],
    name: str,
) -> IrArray:
    """sums[f] = sum over the feature's elements of term(linear index, f), in f64."""
    b = ctx.builder
    sums: IrArray = ctx.temp_array(Shape.array(_T.F64, (layout.features,)), name=name)
    with for_range(b, 0, layout.features, name=f"{name}.clear") as f:
        sums.store_linear(b, f, ir.Constant(F64, 0.0))
    with layout.loop(b, name) as (o, f, i):
        at = layout.linear(b, o, f, i)
        sums.store_linear(b, f, b.fadd(sums.load_linear(b, f), term(at, f)))
    return sums


@emits(Opcode.BATCH_NORM_TRAINING)
def emit_batch_norm_training(
    ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue], out: BufferValue
) -> None:
    """(normalized x, batch mean, biased batch variance) over all dims but feature_index."""
    b = ctx.builder
    x, scale, offset = operands
    y, mean_out, var_out = out
    layout = FeatureLayout(x.shape, instr.attrs["feature_index"])
    epsilon = float(instr.attrs["epsilon"])
    count = ir.Constant(F64, float(layout.count))
    sums = _feature_sums(ctx, layout, lambda at, f: _f64(b, x, at), "bn.sum")
    means = ctx.temp_array(Shape.array(_T.F64, (layout.features,)), name="bn.mean")
    with for_range(b, 0, layout.features, name="bn.mean") as f:
        means.store_linear(b, f, b.fdiv(sums.load_linear(b, f), count))

    def squared(at: ir.Value, f: ir.Value) -> ir.Value:
        centered = b.fsub(_f64(b, x, at), means.load_linear(b, f))
        return b.fmul(centered, centered)

    squares = _feature_sums(ctx, layout, squared, "bn.sq")
    with for_range(b, 0, layout.features, name="bn.stats") as f:
        variance = b.fdiv(squares.load_linear(b, f), count)
        squares.store_linear(b, f, variance)
        _store_f64(b, mean_out, f, means.load_linear(b, f))
        _store_f64(b, var_out, f, variance)
    with layout.loop(b, "bn.y") as (o, f, i):
        at = layout.linear(b, o, f, i)
        normal = b.fmul(b.fsub(_f64(b, x, at), means.load_linear(b, f)),
                        _rstd(b, squares.load_linear(b, f), epsilon))
        value = b.fadd(b.fmul(normal, _f64(b, scale, f)), _f64(b, offset, f))
        _store_f64(b, y, at, value)


@emits(Opcode.BATCH_NORM_INFERENCE)
def emit_batch_norm_inference(
    ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue], out: BufferValue
) -> None:
    """(x - mean) / sqrt(variance + epsilon) * scale + offset, per feature."""
    b = ctx.builder
    x, scale, offset, mean, variance = operands
    layout = FeatureLayout(x.shape, instr.attrs["feature_index"])
    epsilon = float(instr.attrs["epsilon"])
    with layout.loop(b, "bni") as (o, f, i):
        at = layout.linear(b, o, f, i)
        normal = b.fmul(b.fsub(_f64(b, x, at), _f64(b, mean, f)),
                        _rstd(b, _f64(b, variance, f), epsilon))
        _store_f64(b, out, at, b.fadd(b.fmul(normal, _f64(b, scale, f)), _f64(b, offset, f)))


@emits(Opcode.BATCH_NORM_GRAD)
def emit_batch_norm_grad(
    ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue], out: BufferValue
) -> None:
    """(grad x, grad scale, grad offset) by XLA's BatchNormExpander formulas.

    With c = x - mean, r = 1 / sqrt(var + eps) and N elements per feature:
    grad_scale = sum(dy * c) * r, grad_offset = sum(dy),
    grad_x = scale * r * (dy - sum(dy) / N - c * sum(dy * c) / N * r^2).
    """
    b = ctx.builder
    x, scale, mean, variance, dy = operands
    grad_x, grad_scale, grad_offset = out
    layout = FeatureLayout(x.shape, instr.attrs["feature_index"])
    epsilon = float(instr.attrs["epsilon"])
    count = ir.Constant(F64, float(layout.count))

    def centered(at: ir.Value, f: ir.Value) -> ir.Value:
        return b.fsub(_f64(b, x, at), _f64(b, mean, f))

    sum_dy = _feature_sums(ctx, layout, lambda at, f: _f64(b, dy, at), "bng.dy")
    sum_dy_c = _feature_sums(
        ctx, layout, lambda at, f: b.fmul(_f64(b, dy, at), centered(at, f)), "bng.dyc")
    with for_range(b, 0, layout.features, name="bng.stats") as f:
        rstd = _rstd(b, _f64(b, variance, f), epsilon)
        _store_f64(b, grad_scale, f, b.fmul(sum_dy_c.load_linear(b, f), rstd))
        _store_f64(b, grad_offset, f, sum_dy.load_linear(b, f))
    with layout.loop(b, "bng.x") as (o, f, i):
        at = layout.linear(b, o, f, i)
        rstd = _rstd(b, _f64(b, variance, f), epsilon)
        mean_dy = b.fdiv(sum_dy.load_linear(b, f), count)
        mean_dy_c = b.fdiv(sum_dy_c.load_linear(b, f), count)
        correction = b.fmul(b.fmul(centered(at, f), mean_dy_c), b.fmul(rstd, rstd))
        inner = b.fsub(b.fsub(_f64(b, dy, at), mean_dy), correction)
        _store_f64(b, grad_x, at, b.fmul(b.fmul(_f64(b, scale, f), rstd), inner))
