"""Attribute values and constant literals of HLO text -> Python values, for hlo/parser.py.

The parser's `_Builder` hands each attribute value, as written (`_Value`), to the parse
function of its `AttrKind` in `_ATTR_PARSERS`, and each `constant(...)` literal (`_Lit` trees
of element texts) to `_literal`, which checks it against the declared shape and converts it to
an ndarray of the shape's element type (signed NaNs and NaN payloads included). Malformed text
becomes an `HloParseError` through the builder, naming the attribute or element. This module
does not read the grammar or resolve instruction names; that is hlo/parser.py's job.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ml_dtypes
import numpy as np
from lark import Token

from hlo.attributes import (
    AttrKind,
    AttrSpec,
    ConvDimLabels,
    PadDim,
    PaddingConfig,
    Raw,
    SliceDim,
    Window,
    WindowDim,
)
from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType, complex_component
from hlo.shape import Shape

if TYPE_CHECKING:
    from hlo.parser import _Builder


# --- value records, built by hlo.parser's _Records while lark parses ---------------------


@dataclass(slots=True)
class _Value:
    """An attribute value as written: a braced group, a quoted string or a bare token."""

    form: str  # "braced" | "string" | "bare"
    text: str  # braced: filled from the source by _Builder.verbatim
    line: int
    column: int
    start: int = 0  # braced only: offsets of the braces in the source
    end: int = 0


@dataclass(slots=True)
class _Lit:
    """A `{...}` list, an innermost `{...}` row of element texts, a `(...)` tuple, or an
    elided `{...}`; scalars stay Tokens."""

    form: str  # "list" | "row" | "tuple" | "elided"
    items: list[Any]
    token: Token | None = None  # rows: where the row starts, for errors in its elements


_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
_FLOAT_WORD = re.compile(r"([-+]?)(inf|nan)(?:\(0x([0-9a-fA-F]+)\))?")
_PRED_WORDS = {"true": 1, "false": 0, "1": 1, "0": 0}


# --- literals: constant(...) -> ndarray --------------------------------------------------


def _literal(b: _Builder, node: Any, shape: Shape, where: Token) -> Any:
    """The value of `constant(node)`: an ndarray of the shape, a tuple for tuples."""
    if shape.is_tuple:
        if not isinstance(node, _Lit) or node.form != "tuple":
            raise b.error(where, f"a constant of shape {shape} needs a ( ... ) literal")
        if len(node.items) != len(shape.tuple_shapes):
            raise b.error(where, f"tuple literal has {len(node.items)} elements, "
                          f"shape {shape} has {len(shape.tuple_shapes)}")
        pairs = zip(node.items, shape.tuple_shapes, strict=True)
        return tuple(_literal(b, n, s, where) for n, s in pairs)
    if not shape.is_array:
        raise b.error(where, f"a constant cannot have shape {shape}")
    # numpy bounds the rank and the size computed over the non-zero dimensions.
    size = math.prod(max(d, 1) for d in shape.dims) * shape.element_type.byte_size
    if shape.rank > 32 or size >= 2**62:
        raise b.error(where, f"a constant of shape {shape} is too large for numpy")
    leaves: list[Any] = []
    _collect(b, node, shape, 0, leaves, where)
    et = shape.element_type
    if et.is_complex:
        parts: list[complex] = []
        for leaf in leaves:
            if not isinstance(leaf, _Lit) or len(leaf.items) != 2:
                raise b.error(where, f"{et.value} elements are written (real, imag)")
            pair = _floats(b, _scalars(b, leaf.items, where), complex_component(et).numpy)
            parts.append(complex(float(pair[0]), float(pair[1])))
        values = np.array(parts, dtype=np.complex128).astype(et.numpy)
    elif any(isinstance(leaf, _Lit) for leaf in leaves):
        raise b.error(where, f"expected scalar {et.value} elements in the literal")
    elif et.is_float:
        values = _floats(b, leaves, et.numpy)
    else:
        values = _integers(b, leaves, et)
    return values.reshape(shape.dims)


def _scalars(b: _Builder, items: list[Any], where: Token) -> list[tuple[str, Token]]:
    if not all(isinstance(item, Token) for item in items):
        raise b.error(where, "expected numbers in the literal")
    return [(str(item), item) for item in items]


def _collect(
    b: _Builder, node: Any, shape: Shape, depth: int, out: list[Any], where: Token
) -> None:
    """Append the leaves of `node` to `out`, checking its nesting against `shape`:
    (text, token) for scalars, the `_Lit` itself for `(...)` complex elements."""
    if isinstance(node, _Lit) and node.form == "elided":
        raise b.error(node.token or where,
                      "elided constant values ({...}) cannot be parsed")
    if depth == shape.rank:
        if isinstance(node, Token):
            out.append((str(node), node))
        elif node.form == "tuple":
            out.append(node)
        else:
            raise b.error(where, f"literal for shape {shape} is nested too deeply")
        return
    if not isinstance(node, _Lit) or node.form == "tuple":
        raise b.error(where, f"literal for shape {shape}: expected {{...}} with "
                      f"{shape.dims[depth]} elements at depth {depth}")
    if len(node.items) != shape.dims[depth]:
        raise b.error(node.token or where, f"literal for shape {shape} has "
                      f"{len(node.items)} elements at depth {depth}, "
                      f"expected {shape.dims[depth]}")
    if node.form == "row":
        if node.items and depth != shape.rank - 1:
            raise b.error(node.token or where, f"literal for shape {shape}: expected "
                          f"{{...}} lists at depth {depth + 1}")
        out.extend((item, node.token) for item in node.items)
        return
    for item in node.items:
        _collect(b, item, shape, depth + 1, out, where)


def _integers(b: _Builder, leaves: list[tuple[str, Token]], et: PrimitiveType) -> np.ndarray:
    values: list[int] = []
    info = None if et.is_pred else np.iinfo(et.numpy)
    for text, at in leaves:
        if info is None:
            if text not in _PRED_WORDS:
                raise b.error(at, f"expected true, false, 1 or 0 for pred, got '{text}'")
            values.append(_PRED_WORDS[text])
            continue
        if not _INT.fullmatch(text) or len(text) > 40:
            raise b.error(at, f"expected an integer for {et.value}, got '{text}'")
        value = int(text)
        if not info.min <= value <= info.max:
            raise b.error(at, f"{value} is out of range for {et.value}")
        values.append(value)
    return np.array(values, dtype=et.numpy)


def _floats(b: _Builder, leaves: list[tuple[str, Token]], dtype: np.dtype) -> np.ndarray:
    """Float elements of `dtype`, including signed NaNs and NaN payloads `nan(0x..)`."""
    wide = np.empty(len(leaves), dtype=np.float64)
    nans: list[tuple[int, bool, int | None, Token]] = []
    for i, (text, at) in enumerate(leaves):
        if _FLOAT.fullmatch(text):
            wide[i] = float(text)
            continue
        word = _FLOAT_WORD.fullmatch(text)
        if word is None or (word.group(2) == "inf" and word.group(3)):
            raise b.error(at, f"expected a floating-point number, got '{text}'")
        if word.group(2) == "inf":
            wide[i] = -math.inf if word.group(1) == "-" else math.inf
            continue
        payload = int(word.group(3), 16) if word.group(3) else None
        nans.append((i, word.group(1) == "-", payload, at))
        wide[i] = math.nan
    with np.errstate(over="ignore", invalid="ignore"):
        values = wide.astype(dtype)
        overflowed = np.flatnonzero(np.isinf(values) & np.isfinite(wide)).tolist()
    for i in overflowed:
        text, at = leaves[i]
        raise b.error(at, f"{text} is out of range for {np.dtype(dtype).name}")
    for i in np.flatnonzero(np.isinf(wide)).tolist():
        text, at = leaves[i]
        if _FLOAT.fullmatch(text):
            raise b.error(at, f"{text} is out of range for {np.dtype(dtype).name}")
    if nans:
        _set_nans(b, values, nans)
    return values


def _set_nans(b: _Builder, values: np.ndarray,
              nans: list[tuple[int, bool, int | None, Token]]) -> None:
    mantissa = int(ml_dtypes.finfo(values.dtype).nmant)  # type: ignore[no-untyped-call]
    bits = values.dtype.itemsize * 8
    exponent = ((1 << (bits - 1)) - 1) & ~((1 << mantissa) - 1)
    raw = values.view(np.dtype(f"u{values.dtype.itemsize}"))
    for i, negative, payload, at in nans:
        payload = (1 << (mantissa - 1)) if payload is None else payload
        if not 0 < payload < (1 << mantissa):
            raise b.error(at, f"NaN payload {payload:#x} does not fit "
                          f"{mantissa} mantissa bits")
        raw[i] = (int(negative) << (bits - 1)) | exponent | payload


# --- attribute values: one parse function per AttrKind -----------------------------------

_SLICE_DIM = re.compile(r"\[\s*(-?[0-9]+)\s*:\s*(-?[0-9]+)\s*(?::\s*(-?[0-9]+)\s*)?\]")
_DIM_LABELS = re.compile(r"([a-z0-9]+)_([a-z0-9]+)->([a-z0-9]+)")
_INTS_GROUP = re.compile(r"\s*\{([^{}]*)\}\s*")
_WINDOW_KEYS = ("size", "stride", "pad", "lhs_dilate", "rhs_dilate", "rhs_reversal")
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)", re.DOTALL)
_ESCAPED_CHARS = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}


class _Bad(Exception):
    """Raised by the attribute helpers; turned into an HloParseError naming the attribute."""


def _form(value: _Value, *forms: str) -> str:
    if value.form not in forms:
        raise _Bad()
    return value.text


def _inner(value: _Value, b: _Builder) -> str:
    """The text between the braces of a braced value."""
    _form(value, "braced")
    return b.verbatim(value)[1:-1].strip()


def _int_list(text: str) -> tuple[int, ...]:
    if not text.strip():
        return ()
    parts = [p.strip() for p in text.split(",")]
    if not all(_INT.fullmatch(p) and len(p) < 40 for p in parts):
        raise _Bad()
    return tuple(int(p) for p in parts)


def _parse_int(value: _Value, spec: AttrSpec, b: _Builder) -> int:
    return b.integer(value, f"attribute '{spec.name}'")


def _parse_ints(value: _Value, spec: AttrSpec, b: _Builder) -> tuple[int, ...]:
    return _int_list(_inner(value, b))


def _parse_float(value: _Value, spec: AttrSpec, b: _Builder) -> float:
    text = _form(value, "bare")
    word = _FLOAT_WORD.fullmatch(text)
    if not _FLOAT.fullmatch(text) and (word is None or word.group(3)):
        raise _Bad()
    return float(text)


def _parse_bool(value: _Value, spec: AttrSpec, b: _Builder) -> bool:
    text = _form(value, "bare")
    if text not in ("true", "false"):
        raise _Bad()
    return text == "true"


def _parse_enum(value: _Value, spec: AttrSpec, b: _Builder) -> str:
    text = _form(value, "bare")
    if spec.choices and text not in spec.choices:
        raise b.error(value, f"attribute '{spec.name}' must be one of "
                      f"{', '.join(spec.choices)}; got '{text}'")
    return text


def _parse_string(value: _Value, spec: AttrSpec, b: _Builder) -> str:
    text = _form(value, "string")[1:-1]

    def unescape(m: re.Match[str]) -> str:
        code = m.group(1)
        if code[0] == "x":
            return chr(int(code[1:], 16))
        if code[0] in "01234567":
            return chr(int(code, 8))
        return _ESCAPED_CHARS.get(code, code)

    return _ESCAPE.sub(unescape, text)


def _parse_computation(value: _Value, spec: AttrSpec, b: _Builder) -> HloComputation:
    _form(value, "bare")
    return b.computation(value, spec)


def _parse_computations(value: _Value, spec: AttrSpec, b: _Builder) -> tuple[HloComputation, ...]:
    inner = _inner(value, b)
    if not inner:
        return ()
    names = [n.strip() for n in inner.split(",")]
    return tuple(
        b.computation(_Value("bare", n, value.line, value.column), spec) for n in names
    )


def _parse_window(value: _Value, spec: AttrSpec, b: _Builder) -> Window:
    fields: dict[str, list[str]] = {}
    for item in _inner(value, b).split():
        key, _, text = item.partition("=")
        if key not in _WINDOW_KEYS or key in fields or not text:
            raise _Bad()
        fields[key] = text.split("x")
    if not fields:
        return Window(())
    if "size" not in fields or any(len(v) != len(fields["size"]) for v in fields.values()):
        raise _Bad()
    n = len(fields["size"])

    def ints(key: str, default: int) -> tuple[int, ...]:
        return _int_list(",".join(fields[key])) if key in fields else (default,) * n

    pads = [_int_list(p.replace("_", ",")) for p in fields.get("pad", ["0_0"] * n)]
    if any(len(p) != 2 for p in pads):
        raise _Bad()
    reversal = ints("rhs_reversal", 0)
    if any(r not in (0, 1) for r in reversal):
        raise _Bad()
    dims = zip(ints("size", 0), ints("stride", 1), pads, ints("rhs_dilate", 1),
               ints("lhs_dilate", 1), reversal, strict=True)
    return Window(tuple(
        WindowDim(size, stride, lo_hi[0], lo_hi[1], rhs, lhs, bool(rev))
        for size, stride, lo_hi, rhs, lhs, rev in dims
    ))


def _parse_slice(value: _Value, spec: AttrSpec, b: _Builder) -> tuple[SliceDim, ...]:
    inner = _inner(value, b)
    if not inner:
        return ()
    dims: list[SliceDim] = []
    for item in inner.split(","):
        m = _SLICE_DIM.fullmatch(item.strip())
        if m is None or any(g is not None and len(g) > 40 for g in m.groups()):
            raise _Bad()
        stride = int(m.group(3)) if m.group(3) is not None else 1
        dims.append(SliceDim(int(m.group(1)), int(m.group(2)), stride))
    return tuple(dims)


def _parse_padding(value: _Value, spec: AttrSpec, b: _Builder) -> PaddingConfig:
    if value.form == "braced" and not _inner(value, b):
        return PaddingConfig(())  # rank 0; XLA itself has no spelling for it
    dims: list[PadDim] = []
    for item in _form(value, "bare").split("x"):
        numbers = _int_list(item.replace("_", ","))
        if len(numbers) not in (2, 3):
            raise _Bad()
        dims.append(PadDim(*numbers))
    return PaddingConfig(tuple(dims))


def _positions(
    labels: str, batch: str, feature: str, spatial: int
) -> tuple[int, int, tuple[int, ...]]:
    """Where the batch-like and feature-like letters and each spatial digit stand."""
    expected = sorted(batch + feature + "".join(str(i) for i in range(spatial)))
    if sorted(labels) != expected:
        raise _Bad()
    return (labels.index(batch), labels.index(feature),
            tuple(labels.index(str(i)) for i in range(spatial)))


def _parse_dim_labels(value: _Value, spec: AttrSpec, b: _Builder) -> ConvDimLabels:
    m = _DIM_LABELS.fullmatch(_form(value, "bare"))
    if m is None:
        raise _Bad()
    lhs, rhs, out = m.groups()
    spatial = len(lhs) - 2
    if spatial > 10:
        raise _Bad()
    ib, ifeat, isp = _positions(lhs, "b", "f", spatial)
    ki, ko, ksp = _positions(rhs, "i", "o", spatial)
    ob, ofeat, osp = _positions(out, "b", "f", spatial)
    return ConvDimLabels(ib, ifeat, isp, ki, ko, ksp, ob, ofeat, osp)


def _parse_raw(value: _Value, spec: AttrSpec, b: _Builder) -> Raw:
    return Raw(b.verbatim(value))


def _parse_ints_list(value: _Value, spec: AttrSpec, b: _Builder) -> tuple[tuple[int, ...], ...]:
    inner = _inner(value, b)
    if not inner:
        return ()
    groups = inner.split("},")
    texts = [g + "}" for g in groups[:-1]] + [groups[-1]]
    out: list[tuple[int, ...]] = []
    for text in texts:
        m = _INTS_GROUP.fullmatch(text)
        if m is None:
            raise _Bad()
        out.append(_int_list(m.group(1)))
    return tuple(out)


_AttrParser = Callable[[_Value, AttrSpec, "_Builder"], Any]

_SYNTAX: dict[AttrKind, str] = {
    AttrKind.INT: "an integer", AttrKind.INTS: "{i,j,...}", AttrKind.FLOAT: "a number",
    AttrKind.BOOL: "true or false", AttrKind.ENUM: "a word", AttrKind.STRING: '"text"',
    AttrKind.COMPUTATION: "a computation name", AttrKind.COMPUTATIONS: "{name, name, ...}",
    AttrKind.WINDOW: "{size=AxB stride=.. pad=lo_hixlo_hi lhs_dilate=.. rhs_dilate=..}",
    AttrKind.SLICE: "{[start:limit:stride], ...}", AttrKind.PADDING: "lo_hi_interiorx...",
    AttrKind.DIM_LABELS: "dim labels like b01f_01io->b01f", AttrKind.RAW: "a value",
    AttrKind.INTS_LIST: "{{i,j},{k,l}}",
}


def _checked(parser: _AttrParser) -> _AttrParser:
    """Wrap an attribute parser so that malformed text names the attribute and syntax."""

    def parse_value(value: _Value, spec: AttrSpec, b: _Builder) -> Any:
        try:
            return parser(value, spec, b)
        except _Bad:
            text = b.verbatim(value)
            shown = text if len(text) <= 60 else text[:57] + "..."
            raise b.error(value, f"attribute '{spec.name}': expected {_SYNTAX[spec.kind]}, "
                          f"got '{shown}'") from None

    return parse_value


_ATTR_PARSERS: dict[AttrKind, _AttrParser] = {
    kind: _checked(parser)
    for kind, parser in {
        AttrKind.INT: _parse_int,
        AttrKind.INTS: _parse_ints,
        AttrKind.FLOAT: _parse_float,
        AttrKind.BOOL: _parse_bool,
        AttrKind.ENUM: _parse_enum,
        AttrKind.STRING: _parse_string,
        AttrKind.COMPUTATION: _parse_computation,
        AttrKind.COMPUTATIONS: _parse_computations,
        AttrKind.WINDOW: _parse_window,
        AttrKind.SLICE: _parse_slice,
        AttrKind.PADDING: _parse_padding,
        AttrKind.DIM_LABELS: _parse_dim_labels,
        AttrKind.RAW: _parse_raw,
        AttrKind.INTS_LIST: _parse_ints_list,
    }.items()
}
# LITERAL is only ever written inside `constant(...)`, which `instruction` parses itself.
assert set(_ATTR_PARSERS) == set(AttrKind) - {AttrKind.LITERAL}, "every AttrKind needs a parser"
