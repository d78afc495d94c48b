"""TargetMath: how a backend computes transcendental functions on f32/f64 register values.

The elemental emitter never names a libm function or an intrinsic for a transcendental
function; it asks a TargetMath. The CPU implementation inlines vectorisable f32
approximations of exp, log and tanh (below), and otherwise calls libm (`expf`,
`exp`, ...), which a generated library may depend on, or LLVM intrinsics for what LLVM
lowers inline (sqrt). A GPU implementation would use NVVM intrinsics or libdevice.
Arguments are f32 or f64 values; f16/bf16 are widened by the emitter before calling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from llvmlite import ir

from backends.llvm.irutil import F32, F64, I32, declare_function, intrinsic
from hlo.errors import InternalError

# Functions of one argument that every TargetMath provides.
UNARY_FUNCTIONS = (
    "exp", "expm1", "log", "log1p", "sin", "cos", "tan", "tanh", "erf", "cbrt", "sqrt",
)
# Functions of two arguments.
BINARY_FUNCTIONS = ("pow", "atan2")


class TargetMath(Protocol):
    """Transcendental functions for one target; each takes and returns f32 or f64 values."""

    def unary(self, b: ir.IRBuilder, name: str, x: ir.Value) -> ir.Value:
        """`name(x)` for a name in UNARY_FUNCTIONS."""

    def binary(self, b: ir.IRBuilder, name: str, x: ir.Value, y: ir.Value) -> ir.Value:
        """`name(x, y)` for a name in BINARY_FUNCTIONS."""


# name -> (f32 libm symbol, f64 libm symbol)
_LIBM: dict[str, tuple[str, str]] = {
    "exp": ("expf", "exp"),
    "expm1": ("expm1f", "expm1"),
    "log": ("logf", "log"),
    "log1p": ("log1pf", "log1p"),
    "sin": ("sinf", "sin"),
    "cos": ("cosf", "cos"),
    "tan": ("tanf", "tan"),
    "tanh": ("tanhf", "tanh"),
    "erf": ("erff", "erf"),
    "cbrt": ("cbrtf", "cbrt"),
    "pow": ("powf", "pow"),
    "atan2": ("atan2f", "atan2"),
}

# Functions LLVM lowers to instructions on every target we emit for.
_INTRINSICS = {"sqrt": "llvm.sqrt"}


class CpuMath:
    """TargetMath for CPUs: inline approximations where they vectorise (f32 exp, log,
    tanh; below), LLVM intrinsics where they lower inline, libm otherwise.

    Args:
        inline: use the inline approximations (False: libm for everything).
    """

    def __init__(self, inline: bool = True) -> None:
        self.inline = inline

    def unary(self, b: ir.IRBuilder, name: str, x: ir.Value) -> ir.Value:
        if self.inline and x.type == F32:
            approx = INLINE_F32.get(name)
            if approx is not None:
                return approx(b, x)
        return self._call(b, name, [x])

    def binary(self, b: ir.IRBuilder, name: str, x: ir.Value, y: ir.Value) -> ir.Value:
        return self._call(b, name, [x, y])

    def _call(self, b: ir.IRBuilder, name: str, args: list[ir.Value]) -> ir.Value:
        ty = args[0].type
        if ty not in (F32, F64):
            raise InternalError(f"TargetMath.{name} on {ty}; widen f16/bf16 first")
        suffix = "f32" if ty == F32 else "f64"
        if name in _INTRINSICS:
            symbol = f"{_INTRINSICS[name]}.{suffix}"
        elif name in _LIBM:
            symbol = _LIBM[name][0 if ty == F32 else 1]
        else:
            raise InternalError(f"TargetMath has no function {name}")
        fn = declare_function(b.module, symbol, ty, [ty] * len(args))
        if not symbol.startswith("llvm."):
            # LLVM knows the libm names and their (errno-only) effects; nounwind is ours.
            fn.attributes.add("nounwind")
        return b.call(fn, args)


# --- inline f32 approximations -------------------------------------------------------------
#
# Straight-line code (selects, no calls), so loops over them vectorise. Each is within a few
# ulp of the correctly rounded result over the whole f32 range, including the special values
# (checked against numpy on a sweep of the range by the tests).

_LOG2E = 1.4426950408889634
# ln 2 split so that n * _LN2_HI is exact for |n| < 2^13 (Cody and Waite).
_LN2_HI = 0.693359375
_LN2_LO = -2.12194440e-4


def _f(value: float) -> ir.Constant:
    return ir.Constant(F32, value)


def _i(value: int) -> ir.Constant:
    return ir.Constant(I32, value)


def _fcall(b: ir.IRBuilder, name: str, *args: ir.Value) -> ir.Value:
    return intrinsic(b, f"llvm.{name}.f32", F32, list(args))


def _horner(b: ir.IRBuilder, x: ir.Value, coefficients: list[float]) -> ir.Value:
    """c[0] + x*(c[1] + x*(c[2] + ...))."""
    acc: ir.Value = _f(coefficients[-1])
    for c in reversed(coefficients[:-1]):
        acc = b.fadd(b.fmul(acc, x), _f(c))
    return acc


def exp_f32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """e^x = 2^n * e^r with n = round(x / ln 2), |r| <= ln(2)/2, e^r by its Taylor series
    to r^7 (truncation < 0.1 ulp); 2^n is applied in two halves so that results in the
    subnormal range and up to the overflow threshold are scaled exactly."""
    # Beyond these bounds the result is 0 or inf anyway; NaN is restored at the end.
    xc = _fcall(b, "minnum", _fcall(b, "maxnum", x, _f(-104.0)), _f(89.0))
    n = _fcall(b, "roundeven", b.fmul(xc, _f(_LOG2E)))
    r = b.fsub(b.fsub(xc, b.fmul(n, _f(_LN2_HI))), b.fmul(n, _f(_LN2_LO)))
    p = _horner(b, r, [1.0, 1.0, 1 / 2, 1 / 6, 1 / 24, 1 / 120, 1 / 720, 1 / 5040])
    ni = b.fptosi(n, I32)
    n1 = b.ashr(ni, _i(1))
    n2 = b.sub(ni, n1)
    s1 = b.bitcast(b.shl(b.add(n1, _i(127)), _i(23)), F32)
    s2 = b.bitcast(b.shl(b.add(n2, _i(127)), _i(23)), F32)
    result = b.fmul(b.fmul(p, s1), s2)
    return b.select(b.fcmp_unordered("uno", x, x), x, result)


# tanh x = x - x^3/3 + 2x^5/15 - ... : the odd Taylor coefficients up to x^15.
_TANH_SERIES = [1.0, -1 / 3, 2 / 15, -17 / 315, 62 / 2835, -1382 / 155925, 21844 / 6081075,
                -929569 / 638512875]


def tanh_f32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """tanh by its series for |x| < 0.55 (no cancellation near 0, -0 kept) and by
    1 - 2 / (e^{2|x|} + 1) with the sign of x elsewhere (saturating to +-1, NaN kept)."""
    a = _fcall(b, "fabs", x)
    small = b.fmul(x, _horner(b, b.fmul(x, x), _TANH_SERIES))
    e = exp_f32(b, b.fmul(a, _f(2.0)))
    large = b.fsub(_f(1.0), b.fdiv(_f(2.0), b.fadd(e, _f(1.0))))
    large = _fcall(b, "copysign", large, x)
    return b.select(b.fcmp_ordered("<", a, _f(0.55)), small, large)


def log_f32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """log x = e ln 2 + log m with x = m 2^e, m in [sqrt(1/2), sqrt(2)), and
    log m = 2 atanh(s), s = (m - 1)/(m + 1), |s| < 0.172, by its series to s^9."""
    # Subnormal inputs are scaled into the normal range first.
    is_sub = b.fcmp_ordered("<", x, _f(1.1754943508222875e-38))
    xs = b.select(is_sub, b.fmul(x, _f(8388608.0)), x)
    bits = b.bitcast(xs, I32)
    e = b.sub(b.lshr(bits, _i(23)), _i(127))
    e = b.select(is_sub, b.sub(e, _i(23)), e)
    m = b.bitcast(b.or_(b.and_(bits, _i(0x007FFFFF)), _i(0x3F800000)), F32)
    big = b.fcmp_ordered(">", m, _f(1.4142135623730951))
    m = b.select(big, b.fmul(m, _f(0.5)), m)
    e = b.add(e, b.zext(big, I32))
    s = b.fdiv(b.fsub(m, _f(1.0)), b.fadd(m, _f(1.0)))
    s2 = b.fmul(s, s)
    log_m = b.fmul(b.fmul(s, _f(2.0)), _horner(b, s2, [1.0, 1 / 3, 1 / 5, 1 / 7, 1 / 9]))
    ef = b.sitofp(e, F32)
    result = b.fadd(b.fmul(ef, _f(_LN2_HI)), b.fadd(b.fmul(ef, _f(_LN2_LO)), log_m))
    inf = _f(float("inf"))
    result = b.select(b.fcmp_ordered("==", x, _f(0.0)), _f(float("-inf")), result)
    result = b.select(b.fcmp_ordered("==", x, inf), inf, result)
    invalid = b.fcmp_unordered("<", x, _f(0.0))  # negative or NaN
    return b.select(invalid, _f(float("nan")), result)


INLINE_F32: dict[str, Callable[[ir.IRBuilder, ir.Value], ir.Value]] = {
    "exp": exp_f32,
    "log": log_f32,
    "tanh": tanh_f32,
}
