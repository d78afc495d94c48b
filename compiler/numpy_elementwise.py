"""compiler.numpy's elementwise functions: numpy broadcasting and type promotion over HLO.

Each function promotes its operands to one element type (`tracing.result_dtype`: weak
Python scalars adapt to arrays), broadcasts them to one shape (numpy's rules, lowered to
explicit `reshape` + `broadcast`), and emits one HLO elementwise instruction, or a short
expression where numpy's semantics differ from HLO's (floor division, `mod`, integer
powers). Float-only functions convert integer operands to the default float type first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from compiler import numpy_prims as prims
from compiler.tracing import (
    DEFAULT_FLOAT,
    ArrayLike,
    Tracer,
    kind_rank,
    result_dtype,
    to_tracer,
    traceable,
    tracers,
)
from hlo.errors import ArgumentError, ShapeError
from hlo.opcodes import Opcode


def broadcast_shapes(*shapes: Sequence[int]) -> tuple[int, ...]:
    """numpy's broadcast shape of `shapes`; ShapeError when they do not broadcast."""
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*[tuple(s) for s in shapes]))
    except ValueError:
        text = " ".join(str(tuple(s)) for s in shapes)
        raise ShapeError(f"operands could not be broadcast together with shapes {text}") from None


def broadcast_to(x: ArrayLike, shape: Sequence[int]) -> Tracer:
    """`x` broadcast to `shape` with numpy's rules (trailing dims align; 1 stretches)."""
    x = to_tracer(x)
    shape = tuple(int(d) for d in shape)
    if x.shape == shape:
        return x
    if broadcast_shapes(x.shape, shape) != shape:
        raise ShapeError(f"cannot broadcast shape {x.shape} to {shape}")
    offset = len(shape) - x.ndim
    keep = [i for i in range(x.ndim) if x.shape[i] == shape[offset + i]]
    if len(keep) != x.ndim:
        x = prims.reshape(x, [x.shape[i] for i in keep])
    return prims.broadcast_in_dim(x, shape, [offset + i for i in keep])


def broadcast_all(*xs: Tracer) -> list[Tracer]:
    shape = broadcast_shapes(*[x.shape for x in xs])
    return [broadcast_to(x, shape) for x in xs]


def _operands(*values: Any, dtype: Any = None) -> list[Tracer]:
    return broadcast_all(*tracers(*values, dtype=dtype))


def _float_operands(*values: Any) -> list[Tracer]:
    """Operands promoted to a float type (integers and bools become the default float)."""
    dt = result_dtype(*values)
    if kind_rank(dt) < 2:
        dt = DEFAULT_FLOAT
    return _operands(*values, dtype=dt)


# --- binary ----------------------------------------------------------------------------------


def _binary(opcode: Opcode, x: Any, y: Any) -> Tracer:
    a, b = _operands(x, y)
    return prims.binary(opcode, a, b)


@traceable
def add(x: Any, y: Any) -> Tracer:
    a, b = _operands(x, y)
    if a.dtype == np.bool_:
        return prims.binary(Opcode.OR, a, b)
    return prims.binary(Opcode.ADD, a, b)


@traceable
def subtract(x: Any, y: Any) -> Tracer:
    return _binary(Opcode.SUBTRACT, x, y)


@traceable
def multiply(x: Any, y: Any) -> Tracer:
    a, b = _operands(x, y)
    if a.dtype == np.bool_:
        return prims.binary(Opcode.AND, a, b)
    return prims.binary(Opcode.MULTIPLY, a, b)


@traceable
def true_divide(x: Any, y: Any) -> Tracer:
    """x / y; integers divide as floats, as in numpy."""
    a, b = _float_operands(x, y)
    return prims.binary(Opcode.DIVIDE, a, b)


divide = true_divide


@traceable
def floor_divide(x: Any, y: Any) -> Tracer:
    """x // y, rounding toward minus infinity (HLO's integer divide truncates)."""
    a, b = _operands(x, y)
    if kind_rank(a.dtype) >= 2:
        return prims.unary(Opcode.FLOOR, prims.binary(Opcode.DIVIDE, a, b))
    q = prims.binary(Opcode.DIVIDE, a, b)
    if a.dtype.kind == "u":
        return q
    r = prims.binary(Opcode.REMAINDER, a, b)
    zero = prims.zeros_like(a)
    signs_differ = prims.compare(prims.compare(r, zero, "LT"), prims.compare(b, zero, "LT"), "NE")
    adjust = prims.binary(Opcode.AND, prims.compare(r, zero, "NE"), signs_differ)
    return prims.select(adjust, prims.binary(Opcode.SUBTRACT, q, prims.full(q.shape, 1, q.dtype)),
                        q)


@traceable
def mod(x: Any, y: Any) -> Tracer:
    """x % y with the sign of y, as numpy (HLO's remainder takes x's sign)."""
    a, b = _operands(x, y)
    r = prims.binary(Opcode.REMAINDER, a, b)
    if a.dtype.kind == "u":
        return r
    zero = prims.zeros_like(a)
    signs_differ = prims.compare(prims.compare(r, zero, "LT"), prims.compare(b, zero, "LT"), "NE")
    adjust = prims.binary(Opcode.AND, prims.compare(r, zero, "NE"), signs_differ)
    return prims.select(adjust, prims.binary(Opcode.ADD, r, b), r)


remainder = mod


@traceable
def fmod(x: Any, y: Any) -> Tracer:
    """C's fmod: the remainder with x's sign (HLO remainder)."""
    return _binary(Opcode.REMAINDER, x, y)


@traceable
def power(x: Any, y: Any) -> Tracer:
    """x ** y. A small Python-int exponent becomes multiplications (exact, and its
    gradient is defined for negative x)."""
    if isinstance(y, int) and not isinstance(y, bool) and isinstance(x, Tracer) and -4 <= y <= 4:
        return _integer_power(to_tracer(x), y)
    return _binary(Opcode.POWER, x, y)


def _integer_power(x: Tracer, n: int) -> Tracer:
    if n == 0:
        return prims.full(x.shape, 1, x.dtype)
    result = x
    for _ in range((n if n > 0 else -n) - 1):
        result = prims.binary(Opcode.MULTIPLY, result, x)
    if n < 0:
        return true_divide(1, result)
    return result


@traceable
def maximum(x: Any, y: Any) -> Tracer:
    return _binary(Opcode.MAXIMUM, x, y)


@traceable
def minimum(x: Any, y: Any) -> Tracer:
    return _binary(Opcode.MINIMUM, x, y)


@traceable
def arctan2(y: Any, x: Any) -> Tracer:
    a, b = _float_operands(y, x)
    return prims.binary(Opcode.ATAN2, a, b)


def _as_bool(x: Any) -> Tracer:
    t = to_tracer(x)
    return t if t.dtype == np.bool_ else not_equal(t, 0)


def _logical(opcode: Opcode, x: Any, y: Any) -> Tracer:
    a, b = broadcast_all(_as_bool(x), _as_bool(y))
    return prims.binary(opcode, a, b)


@traceable
def logical_and(x: Any, y: Any) -> Tracer:
    return _logical(Opcode.AND, x, y)


@traceable
def logical_or(x: Any, y: Any) -> Tracer:
    return _logical(Opcode.OR, x, y)


@traceable
def logical_xor(x: Any, y: Any) -> Tracer:
    return _logical(Opcode.XOR, x, y)


@traceable
def logical_not(x: Any) -> Tracer:
    return prims.unary(Opcode.NOT, _as_bool(x))


def _bitwise(opcode: Opcode, x: Any, y: Any) -> Tracer:
    a, b = _operands(x, y)
    if kind_rank(a.dtype) > 1:
        raise ArgumentError(f"bitwise {opcode.value} needs integer or bool operands, got "
                            f"{a.dtype}")
    return prims.binary(opcode, a, b)


@traceable
def bitwise_and(x: Any, y: Any) -> Tracer:
    return _bitwise(Opcode.AND, x, y)


@traceable
def bitwise_or(x: Any, y: Any) -> Tracer:
    return _bitwise(Opcode.OR, x, y)


@traceable
def bitwise_xor(x: Any, y: Any) -> Tracer:
    return _bitwise(Opcode.XOR, x, y)


@traceable
def invert(x: Any) -> Tracer:
    t = to_tracer(x)
    if kind_rank(t.dtype) > 1:
        raise ArgumentError(f"~ needs an integer or bool operand, got {t.dtype}")
    return prims.unary(Opcode.NOT, t)


def _compare(direction: str, x: Any, y: Any) -> Tracer:
    a, b = _operands(x, y)
    return prims.compare(a, b, direction)


@traceable
def equal(x: Any, y: Any) -> Tracer:
    return _compare("EQ", x, y)


@traceable
def not_equal(x: Any, y: Any) -> Tracer:
    return _compare("NE", x, y)


ne = not_equal


@traceable
def less(x: Any, y: Any) -> Tracer:
    return _compare("LT", x, y)


@traceable
def less_equal(x: Any, y: Any) -> Tracer:
    return _compare("LE", x, y)


@traceable
def greater(x: Any, y: Any) -> Tracer:
    return _compare("GT", x, y)


@traceable
def greater_equal(x: Any, y: Any) -> Tracer:
    return _compare("GE", x, y)


# --- unary -----------------------------------------------------------------------------------


def _float_unary(opcode: Opcode) -> Callable[[Any], Tracer]:
    @traceable
    def fn(x: Any) -> Tracer:
        (t,) = _float_operands(x)
        return prims.unary(opcode, t)

    return fn


exp = _float_unary(Opcode.EXPONENTIAL)
expm1 = _float_unary(Opcode.EXPONENTIAL_MINUS_ONE)
log = _float_unary(Opcode.LOG)
log1p = _float_unary(Opcode.LOG_PLUS_ONE)
sqrt = _float_unary(Opcode.SQRT)
rsqrt = _float_unary(Opcode.RSQRT)
cbrt = _float_unary(Opcode.CBRT)
sin = _float_unary(Opcode.SINE)
cos = _float_unary(Opcode.COSINE)
tan = _float_unary(Opcode.TAN)
tanh = _float_unary(Opcode.TANH)
sigmoid = _float_unary(Opcode.LOGISTIC)
erf = _float_unary(Opcode.ERF)
for _fn, _name in ((exp, "exp"), (expm1, "expm1"), (log, "log"), (log1p, "log1p"),
                   (sqrt, "sqrt"), (rsqrt, "rsqrt"), (cbrt, "cbrt"), (sin, "sin"), (cos, "cos"),
                   (tan, "tan"), (tanh, "tanh"), (sigmoid, "sigmoid"), (erf, "erf")):
    _fn.__name__ = _fn.__qualname__ = _name


@traceable
def log2(x: Any) -> Tracer:
    return true_divide(log(x), float(np.log(2.0)))


@traceable
def log10(x: Any) -> Tracer:
    return true_divide(log(x), float(np.log(10.0)))


@traceable
def exp2(x: Any) -> Tracer:
    return exp(multiply(x, float(np.log(2.0))))


@traceable
def sinh(x: Any) -> Tracer:
    e = exp(x)
    return multiply(subtract(e, true_divide(1.0, e)), 0.5)


@traceable
def cosh(x: Any) -> Tracer:
    e = exp(x)
    return multiply(add(e, true_divide(1.0, e)), 0.5)


@traceable
def arctan(x: Any) -> Tracer:
    (t,) = _float_operands(x)
    return prims.binary(Opcode.ATAN2, t, prims.full(t.shape, 1, t.dtype))


@traceable
def negative(x: Any) -> Tracer:
    t = to_tracer(x)
    return prims.unary(Opcode.NEGATE, t)


@traceable
def positive(x: Any) -> Tracer:
    return to_tracer(x)


@traceable
def absolute(x: Any) -> Tracer:
    t = to_tracer(x)
    if t.dtype == np.bool_ or t.dtype.kind == "u":
        return t
    return prims.unary(Opcode.ABS, t)


abs = absolute  # noqa: A001  (numpy's name)


@traceable
def sign(x: Any) -> Tracer:
    return prims.unary(Opcode.SIGN, to_tracer(x))


@traceable
def square(x: Any) -> Tracer:
    t = to_tracer(x)
    return prims.binary(Opcode.MULTIPLY, t, t)


@traceable
def reciprocal(x: Any) -> Tracer:
    return true_divide(1, x)


def _rounding(opcode: Opcode, name: str) -> Callable[[Any], Tracer]:
    @traceable
    def fn(x: Any) -> Tracer:
        t = to_tracer(x)
        if kind_rank(t.dtype) < 2:
            return t
        return prims.unary(opcode, t)

    fn.__name__ = fn.__qualname__ = name
    return fn


floor = _rounding(Opcode.FLOOR, "floor")
ceil = _rounding(Opcode.CEIL, "ceil")
rint = _rounding(Opcode.ROUND_NEAREST_EVEN, "rint")


@traceable
def round(x: Any, decimals: int = 0) -> Tracer:  # noqa: A001  (numpy's name)
    """Round half to even, as numpy; `decimals` scales by a power of ten first."""
    if decimals == 0:
        return rint(x)
    scale = 10.0 ** decimals
    return true_divide(rint(multiply(x, scale)), scale)


around = round


@traceable
def trunc(x: Any) -> Tracer:
    t = to_tracer(x)
    if kind_rank(t.dtype) < 2:
        return t
    return where(less(t, 0), ceil(t), floor(t))


@traceable
def isfinite(x: Any) -> Tracer:
    t = to_tracer(x)
    if kind_rank(t.dtype) < 2:
        return prims.full(t.shape, True, np.bool_)
    return prims.unary(Opcode.IS_FINITE, t)


@traceable
def isnan(x: Any) -> Tracer:
    t = to_tracer(x)
    return prims.compare(t, t, "NE")


@traceable
def isinf(x: Any) -> Tracer:
    return logical_and(logical_not(isfinite(x)), logical_not(isnan(x)))


# --- selection -------------------------------------------------------------------------------


@traceable
def where(condition: Any, x: Any, y: Any) -> Tracer:
    """Elementwise `x if condition else y`, broadcasting all three."""
    c = to_tracer(condition)
    if c.dtype != np.bool_:
        c = not_equal(c, 0)
    a, b = tracers(x, y)
    c, a, b = broadcast_all(c, a, b)
    return prims.select(c, a, b)


@traceable
def clip(x: Any, a_min: Any = None, a_max: Any = None) -> Tracer:
    """`x` limited to [a_min, a_max] (either bound may be None)."""
    t = to_tracer(x)
    if a_min is not None:
        t = maximum(t, a_min)
    if a_max is not None:
        t = minimum(t, a_max)
    return t


@traceable
def astype(x: Any, dtype: Any) -> Tracer:
    """`x` converted to `dtype` (floats to integers truncate toward zero)."""
    t = to_tracer(x)
    if np.dtype(dtype) == np.bool_ and t.dtype != np.bool_:
        return not_equal(t, 0)
    return prims.convert(t, dtype)
