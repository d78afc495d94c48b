"""Inline f32 erf, evaluated in f64: an odd polynomial near 0 and erfc's asymptotic shape
beyond, so that no term cancels.

    |x| < 1:      erf x = x P(x^2)
    1 <= |x|:     erf x = sign(x) (1 - e^(-x^2) R(1/|x|)),  |x| clamped to 4

P and R are least-squares fits on 2000 Chebyshev nodes against 120-bit mpmath values of
erf(x)/x (in x^2 on [0, 1]) and erfc(x) e^(x^2) (in t = 1/x on [1/4, 1]); their largest
relative errors are 2^-34.7 and 2^-32.3. Beyond 4, erfc x < 2^-25, so erf rounds to +-1.
"""

from __future__ import annotations

from llvmlite import ir

from backends.cpu_math.exp_log import LOG2E, exp2_f64
from backends.cpu_math.scalar import call, clamp, fconst, horner, to_f32, to_f64

# erf(x) / x = P(x^2) for |x| < 1.
_P = [
    1.1283791670570995, -0.37612638425961065, 0.1128378183913602, -0.026865392126600635,
    0.005220923222013475, -0.0008482507834170148, 0.00011254641516897288,
    -9.634993603806714e-06,
]
# erfc(x) e^(x^2) = R(1/x) for 1 <= x <= 4.
_R = [
    -1.2412055768962205e-05, 0.5645893746242975, -0.005732750944895046, -0.23371531747839372,
    -0.26621844281504314, 1.4143081851095547, -2.4626778417164212, 2.6184791473512057,
    -1.8512614746339895, 0.8563587252833328, -0.23601303822349845, 0.0294794217332358,
]


def erf_f32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """erf x; -0 and subnormals keep their value, +-inf give +-1, NaN stays NaN."""
    xd = to_f64(b, x)
    near_zero = b.fmul(xd, horner(b, b.fmul(xd, xd), _P))
    a = clamp(b, call(b, "fabs", xd), 1.0, 4.0)
    gaussian = exp2_f64(b, b.fmul(b.fmul(a, a), fconst(a, -LOG2E)))
    erfc = b.fmul(gaussian, horner(b, b.fdiv(fconst(a, 1.0), a), _R))
    tail = call(b, "copysign", b.fsub(fconst(a, 1.0), erfc), xd)
    # NaN takes the first branch, which keeps it.
    small = b.fcmp_unordered("<", call(b, "fabs", xd), fconst(xd, 1.0))
    return to_f32(b, b.select(small, near_zero, tail))
