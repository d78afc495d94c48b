"""The elemental emitter, compiled for the CPU and checked against the reference evaluator.

Coverage of the EMIT table; every elementwise opcode on every element type it accepts,
with edge values (zeros of both signs, infinities, NaN, integer extremes, shift amounts
at and past the bit width, zero divisors); conversions between all element types;
bitcast-convert across widths; reduce-precision; comparisons of every direction and
type; complex arithmetic; and the index-rewriting movement ops.
"""

from __future__ import annotations

import itertools

import ml_dtypes
import numpy as np
import pytest

import compiler
import hlo
from backends.cpu.kernels import CPU_KERNELS
from backends.elemental import EMIT, NOT_ELEMENTAL
from hlo.opcodes import OPS, Opcode, Trait
from hlo.parser import parse

DTYPES = {
    "pred": np.bool_, "s8": np.int8, "s16": np.int16, "s32": np.int32, "s64": np.int64,
    "u8": np.uint8, "u16": np.uint16, "u32": np.uint32, "u64": np.uint64,
    "f16": np.float16, "bf16": ml_dtypes.bfloat16, "f32": np.float32, "f64": np.float64,
    "c64": np.complex64, "c128": np.complex128,
}
FLOATS = ("f16", "bf16", "f32", "f64")
INTS = ("s8", "s16", "s32", "s64", "u8", "u16", "u32", "u64")

FLOAT_EDGES = [
    0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, 2.5, -2.5, 3.0, 1e-3, 100.0, -7.25,
    np.inf, -np.inf, np.nan, 1e30, 1e-40, 65504.0, 70000.0,
]

# Ops whose float results are correctly rounded (or exact), so compiled == evaluated bit for
# bit; the others go through libm on one side and numpy on the other.
EXACT_FLOAT_OPS = {
    "abs", "ceil", "floor", "negate", "round-nearest-afz", "round-nearest-even", "sign",
    "sqrt", "add", "subtract", "multiply", "divide", "maximum", "minimum", "remainder",
}
FLOAT_UNARY = [
    "abs", "cbrt", "ceil", "cosine", "erf", "exponential", "exponential-minus-one", "floor",
    "log", "log-plus-one", "logistic", "negate", "round-nearest-afz", "round-nearest-even",
    "rsqrt", "sign", "sine", "sqrt", "tan", "tanh",
]
FLOAT_BINARY = [
    "add", "atan2", "divide", "maximum", "minimum", "multiply", "power", "remainder",
    "subtract",
]
INT_UNARY = ["abs", "negate", "sign", "not", "popcnt", "count-leading-zeros"]
INT_BINARY = [
    "add", "subtract", "multiply", "divide", "remainder", "maximum", "minimum", "power",
    "and", "or", "xor", "shift-left", "shift-right-logical", "shift-right-arithmetic",
]
# Relative tolerance of libm-versus-numpy results, by type (about 4 ulp, or 1 ulp of f16/bf16
# since those are computed in f32 and rounded once).
RTOL = {"f16": 1e-3, "bf16": 8e-3, "f32": 5e-6, "f64": 1e-14, "c64": 5e-6, "c128": 1e-14}


# --- helpers -------------------------------------------------------------------------------


def module_text(params: list[str], body: list[str], outputs: list[tuple[str, str]]) -> str:
    """An HLO module: parameters `p0..`, body lines, and a tuple root of (name, shape)."""
    lines = [f"  p{k} = {shape} parameter({k})" for k, shape in enumerate(params)]
    lines += [f"  {line}" for line in body]
    shapes = ", ".join(shape for _, shape in outputs)
    names = ", ".join(name for name, _ in outputs)
    lines.append(f"  ROOT out = ({shapes}) tuple({names})")
    return "HloModule test\n\nENTRY main {\n" + "\n".join(lines) + "\n}\n"


def run_both(text: str, *args: np.ndarray) -> tuple[tuple, tuple]:
    """(compiled results, evaluated results) of the module `text` on `args`."""
    module = parse(text)
    want = hlo.evaluate(module, *args)
    got = compiler.compile(module)(*args)
    if not isinstance(got, tuple):
        got = (got,)
    assert len(got) == len(want)
    return got, want


def assert_same(label: str, got: np.ndarray, want: np.ndarray, rtol: float = 0.0,
                inputs: tuple[np.ndarray, ...] = ()) -> None:
    """Equal dtype and shape; equal values (NaN == NaN), within `rtol` for floats."""
    assert got.dtype == want.dtype, f"{label}: dtype {got.dtype}, expected {want.dtype}"
    assert got.shape == want.shape, f"{label}: shape {got.shape}, expected {want.shape}"
    if np.issubdtype(want.dtype, np.complexfloating):
        g, w = got.astype(np.complex128), want.astype(np.complex128)
        ok = np.isclose(g, w, rtol=rtol, atol=0, equal_nan=True) | (g == w)
    elif want.dtype.kind == "f" or want.dtype == ml_dtypes.bfloat16:
        g, w = got.astype(np.float64), want.astype(np.float64)
        both_nan = np.isnan(g) & np.isnan(w)
        if rtol == 0.0:
            # Bit-exact, including the sign of zero.
            ok = both_nan | ((g == w) & (np.signbit(g) == np.signbit(w)))
        else:
            ok = both_nan | np.isclose(g, w, rtol=rtol, atol=1e-300) | (g == w)
    else:
        ok = got == want
    if not np.all(ok):
        bad = np.argwhere(~np.asarray(ok))[0]
        where = tuple(bad)
        shown = ", ".join(repr(x[where]) for x in inputs if x.shape == got.shape)
        pytest.fail(f"{label}: {int(np.sum(~ok))} element(s) differ, e.g. at {where} "
                    f"(inputs {shown}): got {got[where]!r}, expected {want[where]!r}")


def pairs(values: list, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Every ordered pair of `values`, as two arrays of `dtype`."""
    a, b = zip(*itertools.product(values, values), strict=True)
    with np.errstate(all="ignore"):
        return np.array(a).astype(dtype), np.array(b).astype(dtype)


def int_edges(dtype: type) -> list[int]:
    info = np.iinfo(dtype)
    values = [0, 1, 2, 3, 7, 31, 32, 33, 63, 64, 100, info.max, info.max - 1]
    if info.min < 0:
        values += [-1, -2, -7, -100, info.min, info.min + 1]
    return sorted({v for v in values if info.min <= v <= info.max})


# --- table coverage ------------------------------------------------------------------------


def test_emit_covers_every_elementwise_and_movement_opcode() -> None:
    wanted = [op for op, d in OPS.items()
              if d.has(Trait.ELEMENTWISE) or d.has(Trait.DATA_MOVEMENT)]
    missing = sorted(op.value for op in wanted if op not in EMIT and op not in NOT_ELEMENTAL)
    assert not missing, f"elementwise/movement opcodes with neither an emitter nor a reason: "\
                        f"{missing}"


def test_not_elemental_entries_have_reasons_and_no_emitter() -> None:
    for op, reason in NOT_ELEMENTAL.items():
        assert op not in EMIT, f"{op.value} is both emitted and exempt"
        assert len(reason) > 10, f"{op.value}: exemption without a reason"


# --- elementwise arithmetic ----------------------------------------------------------------


@pytest.mark.parametrize("ty", FLOATS)
def test_float_ops_on_edge_values(ty: str) -> None:
    x, y = pairs(FLOAT_EDGES, DTYPES[ty])
    n = x.size
    shape = f"{ty}[{n}]"
    body = [f"u{k} = {shape} {op}(p0)" for k, op in enumerate(FLOAT_UNARY)]
    body += [f"b{k} = {shape} {op}(p0, p1)" for k, op in enumerate(FLOAT_BINARY)]
    outs = [(f"u{k}", shape) for k in range(len(FLOAT_UNARY))]
    outs += [(f"b{k}", shape) for k in range(len(FLOAT_BINARY))]
    got, want = run_both(module_text([shape, shape], body, outs), x, y)
    for op, g, w in zip(FLOAT_UNARY + FLOAT_BINARY, got, want, strict=True):
        rtol = 0.0 if op in EXACT_FLOAT_OPS else RTOL[ty]
        if op in ("maximum", "minimum"):
            # max(+0, -0) is +0 in XLA (llvm.maximum); the evaluator's f16 path follows
            # numpy and may return -0. The sign of a zero max/min is not checked.
            g, w = g + np.zeros_like(g), w + np.zeros_like(w)
        assert_same(f"{ty} {op}", g, w, rtol, (x, y))


@pytest.mark.parametrize("ty", INTS)
def test_integer_ops_on_edge_values(ty: str) -> None:
    """Includes x/0, x%0, INT_MIN/-1, shifts by >= the width and negative exponents."""
    x, y = pairs(int_edges(DTYPES[ty]), DTYPES[ty])
    shape = f"{ty}[{x.size}]"
    # abs is defined on signed types only (shape inference rejects it on unsigned ones).
    unary = [op for op in INT_UNARY if not (op == "abs" and ty.startswith("u"))]
    body = [f"u{k} = {shape} {op}(p0)" for k, op in enumerate(unary)]
    body += [f"b{k} = {shape} {op}(p0, p1)" for k, op in enumerate(INT_BINARY)]
    outs = [(f"u{k}", shape) for k in range(len(unary))]
    outs += [(f"b{k}", shape) for k in range(len(INT_BINARY))]
    got, want = run_both(module_text([shape, shape], body, outs), x, y)
    for op, g, w in zip(unary + INT_BINARY, got, want, strict=True):
        assert_same(f"{ty} {op}", g, w, 0.0, (x, y))


def test_integer_division_semantics_are_xlas() -> None:
    """Pinned values, independent of the evaluator: XLA's integer division and shifts."""
    lo = np.iinfo(np.int32).min
    x = np.array([7, -7, 5, lo, lo, 1, -8, -8], np.int32)
    y = np.array([0, 0, 0, -1, -1, 40, 31, 32], np.int32)
    shape = "s32[8]"
    body = [f"d = {shape} divide(p0, p1)", f"r = {shape} remainder(p0, p1)",
            f"a = {shape} shift-right-arithmetic(p0, p1)",
            f"l = {shape} shift-left(p0, p1)"]
    text = module_text([shape, shape], body, [("d", shape), ("r", shape), ("a", shape),
                                              ("l", shape)])
    d, r, a, sl = compiler.compile(parse(text))(x, y)
    assert d[:5].tolist() == [-1, -1, -1, lo, lo]
    assert r[:5].tolist() == [7, -7, 5, 0, 0]
    assert a[5:].tolist() == [0, -1, -1]
    assert sl[5:].tolist() == [0, 0, 0]
    u = np.array([7, 0], np.uint32)
    text = module_text(["u32[2]", "u32[2]"], ["d = u32[2] divide(p0, p1)"],
                       [("d", "u32[2]")])
    (du,) = compiler.compile(parse(text))(u, np.zeros(2, np.uint32))
    assert du.tolist() == [0xFFFFFFFF, 0xFFFFFFFF]


def test_float_max_min_propagate_nan_and_sign_keeps_negative_zero() -> None:
    x = np.array([np.nan, 1.0, -0.0, 0.0], np.float32)
    y = np.array([1.0, np.nan, 0.0, -0.0], np.float32)
    body = ["mx = f32[4] maximum(p0, p1)", "mn = f32[4] minimum(p0, p1)",
            "sg = f32[4] sign(p0)"]
    text = module_text(["f32[4]", "f32[4]"], body,
                       [("mx", "f32[4]"), ("mn", "f32[4]"), ("sg", "f32[4]")])
    mx, mn, sg = compiler.compile(parse(text))(x, y)
    assert np.isnan(mx[:2]).all() and np.isnan(mn[:2]).all()
    assert np.signbit(sg[2]) and sg[2] == 0 and np.isnan(sg[0])


@pytest.mark.parametrize("ty", ["pred", *INTS])
def test_bitwise_and_logical_ops(ty: str) -> None:
    values = [False, True] if ty == "pred" else int_edges(DTYPES[ty])
    x, y = pairs(values, DTYPES[ty])
    shape = f"{ty}[{x.size}]"
    ops = ["and", "or", "xor"]
    body = [f"b{k} = {shape} {op}(p0, p1)" for k, op in enumerate(ops)]
    body.append(f"n = {shape} not(p0)")
    outs = [(f"b{k}", shape) for k in range(len(ops))] + [("n", shape)]
    got, want = run_both(module_text([shape, shape], body, outs), x, y)
    for op, g, w in zip([*ops, "not"], got, want, strict=True):
        assert_same(f"{ty} {op}", g, w, 0.0, (x, y))


# --- conversions ---------------------------------------------------------------------------

CONVERT_TYPES = [t for t in DTYPES if not t.startswith("c")]


def convert_inputs(ty: str) -> np.ndarray:
    if ty == "pred":
        return np.array([True, False, True, True])
    if ty in INTS:
        info = np.iinfo(DTYPES[ty])
        values = [0, 1, 2, 127, 128, 255, 256, info.max, info.min, info.max - 1,
                  2**24 + 1, 123456789, -1, -129]
        return np.array([v for v in values if info.min <= v <= info.max],
                        dtype=object).astype(DTYPES[ty])
    values = [0.0, -0.0, 1.0, -1.0, 0.5, 1.5, 2.5, -2.5, 127.9, 128.0, 255.5, 256.0,
              -129.0, 32767.5, 65535.0, 65536.0, 2.0**31, -(2.0**31), 2.0**32, 2.0**63,
              -(2.0**63), 2.0**64, 1e30, np.inf, -np.inf, np.nan, 1e-40, np.pi,
              1.00390625, 65504.0, 65519.99, 65520.0, 1.0 + 2**-9 + 2**-30, 1.0 + 3 * 2**-9]
    with np.errstate(all="ignore"):
        return np.array(values, np.float64).astype(DTYPES[ty])


@pytest.mark.parametrize("src", CONVERT_TYPES)
def test_convert_to_every_type(src: str) -> None:
    """Saturating float->int with NaN -> 0, x != 0 for pred, correctly rounded narrowing."""
    x = convert_inputs(src)
    shape = f"{src}[{x.size}]"
    dsts = [t for t in CONVERT_TYPES if t != src] + ["c64"]
    body = [f"c{k} = {d}[{x.size}] convert(p0)" for k, d in enumerate(dsts)]
    outs = [(f"c{k}", f"{d}[{x.size}]") for k, d in enumerate(dsts)]
    got, want = run_both(module_text([shape], body, outs), x)
    for d, g, w in zip(dsts, got, want, strict=True):
        assert_same(f"convert {src}->{d}", g, w, 0.0, (x,))


def test_convert_f64_to_bf16_rounds_once() -> None:
    """1 + 2^-8 + 2^-30 is just above a bf16 tie: it must round up, not down to even."""
    x = np.array([1.0 + 2**-8 + 2**-30, 1.0 + 2**-8, -(1.0 + 2**-8 + 2**-40)], np.float64)
    text = module_text(["f64[3]"], ["c = bf16[3] convert(p0)"], [("c", "bf16[3]")])
    (got,) = compiler.compile(parse(text))(x)
    want = [1.0 + 2**-7, 1.0, -(1.0 + 2**-7)]
    assert got.astype(np.float64).tolist() == want


@pytest.mark.parametrize("pair", [("f32", "s32"), ("s32", "f32"), ("f64", "u64"),
                                  ("f16", "s16"), ("bf16", "u16"), ("u16", "f16")])
def test_bitcast_convert_same_width(pair: tuple[str, str]) -> None:
    src, dst = pair
    x = convert_inputs(src)
    shape = f"{src}[{x.size}]"
    text = module_text([shape], [f"c = {dst}[{x.size}] bitcast-convert(p0)"],
                       [("c", f"{dst}[{x.size}]")])
    got, want = run_both(text, x)
    assert_same(f"bitcast-convert {src}->{dst}", got[0], want[0], 0.0, (x,))
    assert got[0].tobytes() == x.tobytes()


def test_bitcast_convert_between_widths() -> None:
    """f32[3] -> u8[3,4] splits little-endian bytes; u8[3,4] -> f32[3] joins them."""
    x = np.array([1.0, -2.5, np.inf], np.float32)
    body = ["b = u8[3,4] bitcast-convert(p0)", "f = f32[3] bitcast-convert(b)",
            "h = s16[3,2] bitcast-convert(p0)", "w = s64[3] bitcast-convert(p1)"]
    text = module_text(["f32[3]", "s32[3,2]"], body,
                       [("b", "u8[3,4]"), ("f", "f32[3]"), ("h", "s16[3,2]"), ("w", "s64[3]")])
    y = np.array([[1, 2], [-1, -1], [0, 7]], np.int32)
    b, f, h, w = compiler.compile(parse(text))(x, y)
    assert b.tobytes() == x.tobytes()
    assert f.tobytes() == x.tobytes()
    assert h.tobytes() == x.tobytes()
    assert w.tobytes() == y.tobytes()


@pytest.mark.parametrize("ty", FLOATS)
def test_reduce_precision(ty: str) -> None:
    x = convert_inputs(ty)
    shape = f"{ty}[{x.size}]"
    formats = [(5, 10), (8, 7), (4, 3), (2, 0), (8, 23), (11, 2)]
    body = [f"r{k} = {shape} reduce-precision(p0), exponent_bits={e}, mantissa_bits={m}"
            for k, (e, m) in enumerate(formats)]
    outs = [(f"r{k}", shape) for k in range(len(formats))]
    got, want = run_both(module_text([shape], body, outs), x)
    for fmt, g, w in zip(formats, got, want, strict=True):
        assert_same(f"{ty} reduce-precision {fmt}", g, w, 0.0, (x,))


# --- comparisons, select, clamp ------------------------------------------------------------

DIRECTIONS = ["EQ", "NE", "LT", "LE", "GT", "GE"]


@pytest.mark.parametrize(("ty", "ctype"), [
    ("f32", None), ("f32", "TOTALORDER"), ("bf16", None), ("f16", "TOTALORDER"),
    ("f64", "TOTALORDER"), ("s32", None), ("u8", None), ("s64", "SIGNED"), ("pred", None),
    ("u32", "UNSIGNED"),
])
def test_compare_every_direction(ty: str, ctype: str | None) -> None:
    if ty == "pred":
        values: list = [False, True]
    elif ty in INTS:
        values = int_edges(DTYPES[ty])
    else:
        values = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, -np.nan, 2.5]
    x, y = pairs(values, DTYPES[ty])
    if ty in FLOATS:
        # A negative NaN, to tell total order from IEEE order.
        x = np.where(np.isnan(x) & (np.arange(x.size) % 2 == 0), -x, x).astype(x.dtype)
    shape = f"{ty}[{x.size}]"
    suffix = f", type={ctype}" if ctype else ""
    body = [f"c{k} = pred[{x.size}] compare(p0, p1), direction={d}{suffix}"
            for k, d in enumerate(DIRECTIONS)]
    outs = [(f"c{k}", f"pred[{x.size}]") for k in range(len(DIRECTIONS))]
    got, want = run_both(module_text([shape, shape], body, outs), x, y)
    for d, g, w in zip(DIRECTIONS, got, want, strict=True):
        assert_same(f"{ty} compare {d} {ctype}", g, w, 0.0, (x, y))


def test_select_clamp_is_finite_with_scalar_operands() -> None:
    x = np.array([-5.0, -1.0, 0.0, 2.0, 9.0, np.nan, np.inf], np.float32)
    p = np.array([True, False, True, False, True, False, True])
    body = [
        "lo = f32[] constant(-1.5)",
        "hi = f32[] constant(3)",
        "c = f32[7] clamp(lo, p0, hi)",
        "z = f32[7] broadcast(lo), dimensions={}",
        "s = f32[7] select(p1, p0, z)",
        "f = pred[7] is-finite(p0)",
        "i = s32[7] convert(p0)",
        "ilo = s32[] constant(0)",
        "ihi = s32[] constant(4)",
        "ic = s32[7] clamp(ilo, i, ihi)",
    ]
    outs = [("c", "f32[7]"), ("s", "f32[7]"), ("f", "pred[7]"), ("ic", "s32[7]")]
    got, want = run_both(module_text(["f32[7]", "pred[7]"], body, outs), x, p)
    for (name, _), g, w in zip(outs, got, want, strict=True):
        assert_same(name, g, w, 0.0, (x,))


# --- complex -------------------------------------------------------------------------------


@pytest.mark.parametrize("ty", ["c64", "c128"])
def test_complex_arithmetic(ty: str) -> None:
    part = "f32" if ty == "c64" else "f64"
    re = np.array([1.0, -2.0, 0.0, 3.5, 1e-3, -0.5], DTYPES[part])
    im = np.array([0.5, 2.0, -1.0, 0.0, 4.0, -0.25], DTYPES[part])
    n = re.size
    c = f"{ty}[{n}]"
    r = f"{part}[{n}]"
    body = [
        f"z = {c} complex(p0, p1)", f"w = {c} complex(p1, p0)",
        f"add = {c} add(z, w)", f"sub = {c} subtract(z, w)", f"mul = {c} multiply(z, w)",
        f"div = {c} divide(z, w)", f"neg = {c} negate(z)", f"exp = {c} exponential(z)",
        f"log = {c} log(w)", f"sgn = {c} sign(z)", f"sqrt = {c} sqrt(z)",
        f"abs = {r} abs(z)", f"re = {r} real(mul)", f"im = {r} imag(div)",
        f"eq = pred[{n}] compare(z, w), direction=EQ",
        f"cv = {c} convert(p0)",
    ]
    names = ["add", "sub", "mul", "div", "neg", "exp", "log", "sgn", "sqrt", "abs", "re",
             "im", "eq", "cv"]
    shapes = {"abs": r, "re": r, "im": r, "eq": f"pred[{n}]"}
    outs = [(name, shapes.get(name, c)) for name in names]
    got, want = run_both(module_text([r, r], body, outs), re, im)
    for name, g, w in zip(names, got, want, strict=True):
        assert_same(f"{ty} {name}", g, w, RTOL[ty])


# --- movement ------------------------------------------------------------------------------


def test_movement_ops() -> None:
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    v = np.array([10, 20, 30], np.int32)
    body = [
        "b = f32[5,2,3,4] broadcast(p0), dimensions={1,2,3}",
        "bv = s32[4,3] broadcast(p1), dimensions={1}",
        "r1 = f32[6,4] reshape(p0)",
        "r2 = f32[4,6] reshape(p0)",
        "r3 = f32[2,2,6] reshape(r2)",
        "r4 = f32[24] reshape(p0)",
        "bc = f32[3,8] bitcast(p0)",
        "t = f32[4,2,3] transpose(p0), dimensions={2,0,1}",
        "s = f32[1,2,2] slice(p0), slice={[1:2], [0:3:2], [1:4:2]}",
        "rv = f32[2,3,4] reverse(p0), dimensions={0,2}",
        "pv = f32[] constant(-1)",
        "pd = f32[3,2,9] pad(p0, pv), padding=1_0x0_-1x1_1_1",
        "e = f32[2,0,4] slice(p0), slice={[0:2], [1:1], [0:4]}",
        "cc = f32[2,7,4] concatenate(p0, e, p0, e, s2), dimensions={1}",
        "s2 = f32[2,1,4] slice(p0), slice={[0:2], [2:3], [0:4]}",
        "io = s32[3,5] iota(), iota_dimension=1",
        "iof = f32[4,2] iota(), iota_dimension=0",
        "cp = f32[2,3,4] copy(t2)",
        "t2 = f32[2,3,4] transpose(p0), dimensions={0,1,2}",
    ]
    outs = [("b", "f32[5,2,3,4]"), ("bv", "s32[4,3]"), ("r1", "f32[6,4]"),
            ("r3", "f32[2,2,6]"), ("r4", "f32[24]"), ("bc", "f32[3,8]"), ("t", "f32[4,2,3]"),
            ("s", "f32[1,2,2]"), ("rv", "f32[2,3,4]"), ("pd", "f32[3,2,9]"),
            ("cc", "f32[2,7,4]"), ("io", "s32[3,5]"), ("iof", "f32[4,2]"), ("cp", "f32[2,3,4]")]
    got, want = run_both(module_text(["f32[2,3,4]", "s32[3]"], body, outs), x, v)
    for (name, _), g, w in zip(outs, got, want, strict=True):
        assert_same(name, g, w)


@pytest.mark.parametrize("index_type", ["s32", "u32", "s64", "u8"])
def test_dynamic_slice_clamps_start_indices(index_type: str) -> None:
    x = np.arange(30, dtype=np.int32).reshape(5, 6)
    body = ["d = s32[2,3] dynamic-slice(p0, p1, p2), dynamic_slice_sizes={2,3}"]
    text = module_text(["s32[5,6]", f"{index_type}[]", f"{index_type}[]"], body,
                       [("d", "s32[2,3]")])
    dt = DTYPES[index_type]
    starts = [(0, 0), (4, 5), (1, 2), (200, 250)]
    if index_type[0] == "s":
        starts += [(-3, 2), (3, -100)]
    for i, j in starts:
        got, want = run_both(text, x, np.array(i).astype(dt), np.array(j).astype(dt))
        assert_same(f"dynamic-slice at {i},{j}", got[0], want[0])


def test_elemental_dynamic_update_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    """The elemental form (used inside fusions), with the kernel table's entry set aside."""
    monkeypatch.delitem(CPU_KERNELS, Opcode.DYNAMIC_UPDATE_SLICE, raising=False)
    compiler.api.clear_memory_cache()
    x = np.arange(30, dtype=np.float32).reshape(5, 6)
    u = -np.arange(6, dtype=np.float32).reshape(2, 3)
    body = ["d = f32[5,6] dynamic-update-slice(p0, p1, p2, p3)"]
    text = module_text(["f32[5,6]", "f32[2,3]", "s32[]", "s32[]"], body,
                       [("d", "f32[5,6]")])
    for i, j in [(0, 0), (4, 5), (1, 2), (-1, 7)]:
        got, want = run_both(text, x, u, np.int32(i), np.int32(j))
        assert_same(f"dynamic-update-slice at {i},{j}", got[0], want[0])
    compiler.api.clear_memory_cache()


def test_constants_of_every_kind() -> None:
    body = [
        "a = f32[2,3] constant({{1, -2, 3.5}, {inf, -inf, nan}})",
        "b = bf16[3] constant({1.5, -0, 3})",
        "c = f16[2] constant({65504, -0.00006103515625})",
        "d = pred[3] constant({true, false, true})",
        "e = u64[2] constant({18446744073709551615, 1})",
        "f = s8[] constant(-128)",
        "g = c64[2] constant({(1, -2), (0.5, 3)})",
        "h = f32[2,3] add(a, a)",
    ]
    outs = [("h", "f32[2,3]"), ("b", "bf16[3]"), ("c", "f16[2]"), ("d", "pred[3]"),
            ("e", "u64[2]"), ("f", "s8[]"), ("g", "c64[2]")]
    got, want = run_both(module_text([], body, outs))
    for (name, _), g, w in zip(outs, got, want, strict=True):
        assert_same(name, g, w)


# --- inline transcendental approximations --------------------------------------------------


def _ulp_distance(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """|got - want| in units in the last place of f32 (NaN vs NaN is 0, NaN vs number huge)."""
    def ordered(a: np.ndarray) -> np.ndarray:
        i = a.view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)

    d = np.abs(ordered(got) - ordered(want))
    d[np.isnan(got) & np.isnan(want)] = 0
    d[np.isnan(got) != np.isnan(want)] = 2**40
    return d


@pytest.mark.parametrize(("op", "reference", "max_ulp"), [
    ("exponential", np.exp, 2),
    ("log", np.log, 3),
    ("tanh", np.tanh, 3),
    ("logistic", lambda v: np.exp(-np.logaddexp(0.0, -v)), 3),
])
def test_f32_transcendentals_over_the_whole_range(op: str, reference, max_ulp: int) -> None:
    """Random bit patterns (every exponent, subnormals, inf, NaN) and a dense sweep of the
    interesting range, against float64 numpy rounded to f32: an oracle outside the project."""
    rng = np.random.default_rng(7)
    x = rng.integers(0, 2**32, 100_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    specials = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, 1.17e-38, 88.72, 88.73, -87.3,
                -103.9, -104.0, 0.55, -0.55, 1.0, -1.0, 9.0, -20.0]
    x = np.concatenate([x, np.linspace(-12, 12, 20_001, dtype=np.float32),
                        np.array(specials, np.float32)])
    text = (f"HloModule approx\n\nENTRY main {{\n  x = f32[{x.size}] parameter(0)\n"
            f"  ROOT y = f32[{x.size}] {op}(x)\n}}\n")
    got = compiler.compile(parse(text))(x)
    with np.errstate(all="ignore"):
        want = reference(x.astype(np.float64)).astype(np.float32)
    d = _ulp_distance(got, want)
    normal = ~(np.abs(want) < np.finfo(np.float32).tiny)
    worst = int(np.argmax(np.where(normal, d, 0)))
    assert d[normal].max() <= max_ulp, (
        f"{op}: {d[normal].max()} ulp at x={x[worst]!r}: got {got[worst]!r}, "
        f"want {want[worst]!r}")
    # Subnormal results: within one subnormal step.
    assert np.all(np.abs(got[~normal].astype(np.float64) - want[~normal]) <= 2**-149)
