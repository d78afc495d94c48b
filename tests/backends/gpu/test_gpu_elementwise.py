"""Every elementwise op on every element type, on the GPU against the reference evaluator.

Marked `gpu`. One module per element type applies every op the type supports (unary,
binary, shifts with over-wide amounts, integer division by zero and INT_MIN / -1,
conversions, comparisons in every direction, select, clamp) and returns a tuple with one
output per op, so that a failure names the op. Float inputs include 0, inf and NaN.
"""

from __future__ import annotations

import numpy as np
import pytest

import hlo
from hlo.parser import parse
from tests.backends.gpu.gpu_checks import Compile, check, numpy_dtype

pytestmark = pytest.mark.gpu


# --- every elementwise op on every element type --------------------------------------------------

_FLOAT_BINARY = ("add", "subtract", "multiply", "divide", "remainder", "maximum", "minimum",
                 "power", "atan2")
_FLOAT_UNARY = ("negate", "abs", "sign", "floor", "ceil", "round-nearest-afz",
                "round-nearest-even", "sqrt", "rsqrt", "cbrt", "exponential",
                "exponential-minus-one", "log", "log-plus-one", "sine", "cosine", "tan",
                "tanh", "erf", "logistic")
_INT_BINARY = ("add", "subtract", "multiply", "divide", "remainder", "maximum", "minimum",
               "and", "or", "xor", "power")
_INT_UNARY = ("not", "negate", "abs", "sign", "popcnt", "count-leading-zeros")
_SHIFTS = ("shift-left", "shift-right-arithmetic", "shift-right-logical")
_COMPLEX_BINARY = ("add", "subtract", "multiply", "divide")
_COMPLEX_UNARY = ("negate", "exponential", "log", "sqrt", "sign")
_DIRECTIONS = ("EQ", "NE", "LT", "LE", "GT", "GE")
SHAPE = (5, 7)


def _inputs(t: str, rng: np.random.Generator) -> list[np.ndarray]:
    dt = numpy_dtype(t)
    if t == "pred":
        return [rng.integers(0, 2, SHAPE).astype(bool) for _ in range(2)]
    if t[0] in "su":
        info = np.iinfo(dt)
        low, high = max(info.min, -300), min(info.max, 300)
        x = rng.integers(low, high, SHAPE, endpoint=True).astype(dt)
        y = rng.integers(low, high, SHAPE, endpoint=True).astype(dt)
        y[0, :3] = 0  # division and remainder by zero
        x[1, 0] = info.min
        y[1, 0] = -1 if t[0] == "s" else 1
        shift = rng.integers(0, info.bits + 3, SHAPE).astype(dt)
        exponent = rng.integers(0, 6, SHAPE).astype(dt)
        return [x, y, shift, exponent]
    if t[0] == "c":
        part = np.float32 if t == "c64" else np.float64
        x = (rng.uniform(-2, 2, SHAPE) + 1j * rng.uniform(-2, 2, SHAPE)).astype(dt)
        y = (rng.uniform(0.5, 2, SHAPE) + 1j * rng.uniform(-2, 2, SHAPE)).astype(dt)
        del part
        return [x, y]
    x = rng.uniform(-3, 3, SHAPE).astype(dt)
    y = rng.uniform(0.25, 3, SHAPE).astype(dt)
    x[0, 0], x[0, 1], x[0, 2] = 0.0, np.inf, np.nan
    return [x, y]


def _elementwise_module(t: str) -> tuple[str, list[str]]:
    """One module applying every op that `t` supports; returns (text, output names)."""
    dims = ",".join(str(d) for d in SHAPE)
    a = f"{t}[{dims}]"
    kind = "pred" if t == "pred" else "int" if t[0] in "su" else "complex" if t[0] == "c" \
        else "float"
    lines = [f"  x = {a} parameter(0)", f"  y = {a} parameter(1)"]
    if kind == "int":
        lines += [f"  s = {a} parameter(2)", f"  p = {a} parameter(3)"]
    outs: list[tuple[str, str, str]] = []  # (name, shape, expression)

    def add(name: str, shape: str, expr: str) -> None:
        outs.append((name.replace("-", "_"), shape, expr))

    if kind == "float":
        for op in _FLOAT_BINARY:
            add(op, a, f"{op}(x, y)")
        for op in _FLOAT_UNARY:
            add(op, a, f"{op}(x)")
        add("is_finite", f"pred[{dims}]", "is-finite(x)")
        add("to_s32", f"s32[{dims}]", "convert(y)")
        add("to_f64", f"f64[{dims}]", "convert(x)")
        add("select", a, "select(c_lt, x, y)")
        add("clamp", a, "clamp(y, x, y)")
    elif kind == "int":
        for op in _INT_BINARY:
            add(op, a, f"{op}(x, {'p' if op == 'power' else 'y'})")
        for op in _INT_UNARY:
            add(op, a, f"{op}(x)")
        for op in _SHIFTS:
            add(op, a, f"{op}(x, s)")
        add("to_f32", f"f32[{dims}]", "convert(x)")
        add("to_pred", f"pred[{dims}]", "convert(x)")
        add("select", a, "select(c_lt, x, y)")
    elif kind == "complex":
        part = "f32" if t == "c64" else "f64"
        for op in _COMPLEX_BINARY:
            add(op, a, f"{op}(x, y)")
        for op in _COMPLEX_UNARY:
            add(op, a, f"{op}(x)")
        add("abs", f"{part}[{dims}]", "abs(x)")
        add("real", f"{part}[{dims}]", "real(x)")
        add("imag", f"{part}[{dims}]", "imag(x)")
    else:
        for op in ("and", "or", "xor"):
            add(op, a, f"{op}(x, y)")
        add("not", a, "not(x)")
        add("to_s8", f"s8[{dims}]", "convert(x)")
    if kind != "complex":
        for d in _DIRECTIONS:
            add(f"c_{d.lower()}", f"pred[{dims}]", f"compare(x, y), direction={d}")
    for name, shape, expr in outs:
        lines.append(f"  {name} = {shape} {expr}")
    names = [n for n, _, _ in outs]
    shapes = ", ".join(s for _, s, _ in outs)
    lines.append(f"  ROOT out = ({shapes}) tuple({', '.join(names)})")
    return "HloModule elementwise\n\nENTRY main {\n" + "\n".join(lines) + "\n}\n", names


_TYPES = ("pred", "s8", "s16", "s32", "s64", "u8", "u16", "u32", "u64", "f16", "bf16", "f32",
          "f64", "c64", "c128")


@pytest.mark.parametrize("t", _TYPES)
def test_elementwise_ops_per_type(t: str, gpu_compile: Compile) -> None:
    text, names = _elementwise_module(t)
    args = _inputs(t, np.random.default_rng(1))
    module = parse(text)
    want = hlo.evaluate(module, *args)
    got = gpu_compile(text)(*args)
    check(got, want, names)
