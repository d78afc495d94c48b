"""HloModule -> HLO text in XLA's canonical form, which `hlo.parser.parse` reads back.

The output is what XLA prints: `HloModule name, entry_computation_layout={...}`, callee
computations before their callers, two-space indented instructions written operands
first, `ROOT` on the root, attributes in the opcode table's order with defaults left out
and the verbatim common attributes (metadata, sharding, ...) last, literals and floats
spelled so they parse back bit-exactly. One print function per `AttrKind`, in
`_ATTR_PRINTERS`. The printer checks nothing; printing a broken module is allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import ml_dtypes
import numpy as np

from hlo.attributes import (
    REQUIRED,
    AttrKind,
    AttrSpec,
    ConvDimLabels,
    PaddingConfig,
    Raw,
    SliceDim,
    Window,
)
from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType, complex_component
from hlo.instruction import HloInstruction
from hlo.module import HloModule
from hlo.opcodes import COMMON_ATTRS, Opcode
from hlo.shape import ProgramShape, Shape

# Module attributes XLA prints before entry_computation_layout; all others come after it.
_BEFORE_ENTRY_LAYOUT = ("is_scheduled", "input_output_alias", "buffer_donor",
                        "alias_passthrough_params")

# Significant digits XLA tries for each float type: the short form if it reads back to the
# same value, else the long form, which always does (RoundTripFpToString in xla/util.cc).
_FLOAT_DIGITS: dict[PrimitiveType, tuple[int | None, int]] = {
    PrimitiveType.F16: (None, 5),
    PrimitiveType.BF16: (None, 4),
    PrimitiveType.F32: (6, 9),
    PrimitiveType.F64: (15, 17),
}


# --- shapes --------------------------------------------------------------------------------


def _elements_text(texts: Sequence[str]) -> str:
    """`a, b, ...` with XLA's `/*index=5*/` marker before every fifth element."""
    return ", ".join(
        f"/*index={i}*/{t}" if i and i % 5 == 0 else t for i, t in enumerate(texts)
    )


def shape_to_text(shape: Shape) -> str:
    """XLA's spelling of a shape: `f32[2,3]{1,0}`, `(f32[], /*index=5*/s32[])`, `token[]`."""
    if shape.is_tuple:
        return f"({_elements_text([shape_to_text(s) for s in shape.tuple_shapes])})"
    return shape.to_text()


def program_shape_to_text(program: ProgramShape) -> str:
    params = _elements_text([shape_to_text(p) for p in program.parameters])
    return f"({params})->{shape_to_text(program.result)}"


# --- literals --------------------------------------------------------------------------------


def _nan_text(raw: int, dtype: np.dtype) -> str:
    mantissa = int(ml_dtypes.finfo(dtype).nmant)  # type: ignore[no-untyped-call]
    payload = raw & ((1 << mantissa) - 1)
    text = "-nan" if raw >> (dtype.itemsize * 8 - 1) else "nan"
    return text if payload == 1 << (mantissa - 1) else f"{text}(0x{payload:x})"


def _float_texts(values: Any, element_type: PrimitiveType) -> list[str]:
    """XLA's spelling of each float: the short form where it reads back bit-exactly, else
    the long form; NaNs keep their sign (`-nan`) and a payload other than the quiet bit
    (`nan(0x1)`). Vectorised, since model constants can be large."""
    dtype = element_type.numpy
    flat = np.asarray(values, dtype=dtype).reshape(-1)
    short, long = _FLOAT_DIGITS[element_type]
    # Signalling NaNs raise "invalid" in casts and comparisons; their bits are printed below.
    with np.errstate(invalid="ignore", over="ignore"):
        wide = flat.astype(np.float64).tolist()
        spec = f".{short or long}g"
        texts = [format(x, spec) for x in wide]
        if short is not None and texts:
            back = np.array(texts).astype(np.float64).astype(dtype)
            spec = f".{long}g"
            for i in np.flatnonzero(back != flat).tolist():
                texts[i] = format(wide[i], spec)
        nans = np.flatnonzero(np.isnan(flat)).tolist()
    raw = flat.view(np.dtype(f"u{dtype.itemsize}"))
    for i in nans:
        texts[i] = _nan_text(int(raw[i]), dtype)
    return texts


def float_to_text(value: Any, element_type: PrimitiveType) -> str:
    """XLA's spelling of one float of `element_type`, which reads back bit-exactly."""
    return _float_texts(value, element_type)[0]


def _element_texts(array: np.ndarray, element_type: PrimitiveType) -> list[str]:
    """The elements of `array` in row-major order, as XLA writes them inside arrays."""
    if element_type.is_pred:
        # XLA writes pred arrays densely as 1/0 (and pred scalars as true/false).
        return ["1" if v else "0" for v in array.reshape(-1).tolist()]
    if element_type.is_float:
        return _float_texts(array, element_type)
    if element_type.is_complex:
        part = complex_component(element_type)
        real = _float_texts(array.real, part)
        imag = _float_texts(array.imag, part)
        return [f"({r}, {i})" for r, i in zip(real, imag, strict=True)]
    return [str(v) for v in array.reshape(-1).tolist()]


def _array_text(array: np.ndarray, element_type: PrimitiveType) -> str:
    """XLA's one-line form of an array: `{1, 2}`, `{ { 1, 2 }, { 3, 4 } }`, `{  }`."""
    rank = array.ndim
    if rank == 0 and element_type.is_pred:
        return "true" if array[()] else "false"
    flat = _element_texts(array, element_type)
    if rank == 0:
        return flat[0]
    pieces: list[str] = []
    position = 0

    def emit(depth: int, index: int) -> None:
        nonlocal position
        size = array.shape[depth]
        innermost = depth == rank - 1
        if rank == 1:
            pieces.append("{")
        elif innermost:
            pieces.append("{" if size <= 1 else "{ ")
        elif rank > 3 and depth > 0:
            # XLA labels the nesting of high-rank literals: `{ /*i0=1*/ {...}`.
            pieces.append(f"{{ /*i{depth - 1}={index}*/" + (" " if size > 0 else ""))
        else:
            pieces.append("{ ")
        if innermost:
            pieces.append(", ".join(flat[position:position + size]))
            position += size
        else:
            for i in range(size):
                if i:
                    pieces.append(", ")
                emit(depth + 1, i)
        if rank == 1:
            pieces.append("}")
        elif innermost:
            pieces.append("}" if size <= 1 else " }")
        else:
            pieces.append(" }")

    emit(0, 0)
    return "".join(pieces)


def literal_to_text(value: Any, shape: Shape) -> str:
    """The text inside `constant(...)` for `value` (an ndarray, or a tuple for tuples)."""
    if shape.is_tuple:
        parts = [literal_to_text(v, s) for v, s in zip(value, shape.tuple_shapes, strict=True)]
        return f"( {', '.join(parts)} )"
    array = np.asarray(value, dtype=shape.element_type.numpy).reshape(shape.dims)
    return _array_text(array, shape.element_type)


# --- attribute values: one print function per AttrKind ------------------------------------


def _join_x(values: Sequence[Any]) -> str:
    return "x".join(str(v) for v in values)


def _print_window(window: Window) -> str:
    dims = window.dims
    fields = [f"size={_join_x([d.size for d in dims])}"]
    if any(d.stride != 1 for d in dims):
        fields.append(f"stride={_join_x([d.stride for d in dims])}")
    if any(d.padding_low or d.padding_high for d in dims):
        fields.append("pad=" + "x".join(f"{d.padding_low}_{d.padding_high}" for d in dims))
    if any(d.base_dilation != 1 for d in dims):
        fields.append(f"lhs_dilate={_join_x([d.base_dilation for d in dims])}")
    if any(d.window_dilation != 1 for d in dims):
        fields.append(f"rhs_dilate={_join_x([d.window_dilation for d in dims])}")
    if any(d.window_reversal for d in dims):
        fields.append(f"rhs_reversal={_join_x([int(d.window_reversal) for d in dims])}")
    return "{" + " ".join(fields) + "}" if dims else "{}"


def _print_slice(dims: Sequence[SliceDim]) -> str:
    parts = [
        f"[{d.start}:{d.limit}" + (f":{d.stride}]" if d.stride != 1 else "]") for d in dims
    ]
    return "{" + ", ".join(parts) + "}"


def _print_padding(padding: PaddingConfig) -> str:
    if not padding.dims:
        return "{}"  # rank 0: XLA has no spelling; the parser reads this one back
    interior = any(d.interior for d in padding.dims)
    return "x".join(
        f"{d.low}_{d.high}" + (f"_{d.interior}" if interior else "") for d in padding.dims
    )


def _labels(size: int, named: dict[int, str], spatial: Sequence[int]) -> str:
    chars = dict(named)
    for i, position in enumerate(spatial):
        chars[position] = str(i)
    return "".join(chars.get(i, "?") for i in range(size))


def _print_dim_labels(d: ConvDimLabels) -> str:
    size = len(d.input_spatial) + 2
    lhs = _labels(size, {d.input_batch: "b", d.input_feature: "f"}, d.input_spatial)
    rhs = _labels(size, {d.kernel_input_feature: "i", d.kernel_output_feature: "o"},
                  d.kernel_spatial)
    out = _labels(size, {d.output_batch: "b", d.output_feature: "f"}, d.output_spatial)
    return f"{lhs}_{rhs}->{out}"


def _print_string(text: str) -> str:
    escaped = []
    for ch in text:
        if ch in '"\\\'':
            escaped.append("\\" + ch)
        elif ch in "\n\t\r":
            escaped.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            escaped.append(f"\\{ord(ch):03o}")
        else:
            escaped.append(ch)
    return '"' + "".join(escaped) + '"'


def _print_float(value: Any) -> str:
    # XLA keeps these attributes (epsilon) in f32; a double from text prints exactly too.
    kind = PrimitiveType.F32 if isinstance(value, np.float32) else PrimitiveType.F64
    return float_to_text(value, kind)


def _print_ints(values: Sequence[int]) -> str:
    return "{" + ",".join(str(v) for v in values) + "}"


_ATTR_PRINTERS: dict[AttrKind, Callable[[Any], str]] = {
    AttrKind.INT: str,
    AttrKind.INTS: _print_ints,
    AttrKind.FLOAT: _print_float,
    AttrKind.BOOL: lambda v: "true" if v else "false",
    AttrKind.ENUM: str,
    AttrKind.STRING: _print_string,
    AttrKind.COMPUTATION: lambda c: c.name,
    AttrKind.COMPUTATIONS: lambda cs: "{" + ", ".join(c.name for c in cs) + "}",
    AttrKind.WINDOW: _print_window,
    AttrKind.SLICE: _print_slice,
    AttrKind.PADDING: _print_padding,
    AttrKind.DIM_LABELS: _print_dim_labels,
    AttrKind.RAW: lambda raw: raw.text if isinstance(raw, Raw) else str(raw),
    AttrKind.INTS_LIST: lambda groups: "{" + ",".join(_print_ints(g) for g in groups) + "}",
}
# LITERAL is only ever written inside `constant(...)`, which `instruction_to_text` prints.
assert set(_ATTR_PRINTERS) == set(AttrKind) - {AttrKind.LITERAL}, "every AttrKind needs a printer"


# --- instructions, computations, modules ------------------------------------------------


def _omitted(spec: AttrSpec, value: Any) -> bool:
    """Whether XLA leaves the attribute out: absent, or equal to its optional default."""
    if value is None:
        return True
    if spec.default is REQUIRED or spec.always_print:
        return False
    if isinstance(value, list):
        value = tuple(value)
    return spec.default is not None and bool(value == spec.default)


def _attrs_text(instr: HloInstruction) -> str:
    opdef = instr.opdef
    parts = []
    for spec in (*opdef.attrs, *COMMON_ATTRS):
        value = instr.attrs.get(spec.name)
        if spec.name == opdef.inline_attr or _omitted(spec, value):
            continue
        parts.append(f", {spec.name}={_ATTR_PRINTERS[spec.kind](value)}")
    return "".join(parts)


def instruction_to_text(instr: HloInstruction) -> str:
    """One instruction, without indentation: `[ROOT ]name = shape opcode(operands), attrs`."""
    opdef = instr.opdef
    if instr.opcode is Opcode.CONSTANT:
        try:
            inside = literal_to_text(instr.attrs.get("literal"), instr.shape)
        except (TypeError, ValueError):
            # A literal that does not fit the shape: the verifier reports it; a dump of the
            # broken module should still print, so use XLA's mark for an elided value.
            inside = "{...}"
    elif opdef.inline_attr is not None:
        spec = opdef.attr(opdef.inline_attr)
        value = instr.attrs.get(opdef.inline_attr)
        inside = _ATTR_PRINTERS[spec.kind](value) if spec is not None else str(value)
    else:
        inside = ", ".join(o.name for o in instr.operands)
    root = "ROOT " if instr.is_root else ""
    return (f"{root}{instr.name} = {shape_to_text(instr.shape)} "
            f"{instr.opcode.value}({inside}){_attrs_text(instr)}")


def _operands_first(instructions: Sequence[HloInstruction]) -> list[HloInstruction]:
    """`instructions` in their order, except that each comes after its operands."""
    order: list[HloInstruction] = []
    done: set[int] = set()
    for first in instructions:
        stack: list[tuple[HloInstruction, bool]] = [(first, False)]
        while stack:
            instr, expanded = stack.pop()
            if expanded:
                order.append(instr)
                continue
            if id(instr) in done:
                continue
            done.add(id(instr))
            stack.append((instr, True))
            stack.extend((o, False) for o in reversed(instr.operands) if id(o) not in done)
    return order


def computation_to_text(comp: HloComputation) -> str:
    """`[ENTRY ]name {` + indented instructions + `}` (no trailing newline)."""
    entry = "ENTRY " if comp.parent is not None and comp.parent.entry is comp else ""
    body = "".join(f"  {instruction_to_text(i)}\n" for i in _operands_first(comp.instructions))
    return f"{entry}{comp.name} {{\n{body}}}"


def _callees_first(module: HloModule) -> list[HloComputation]:
    """Computations in definition order, except that each comes after those it calls."""
    order: list[HloComputation] = []
    done: set[int] = set()
    for first in module.computations:
        stack: list[tuple[HloComputation, bool]] = [(first, False)]
        while stack:
            comp, expanded = stack.pop()
            if expanded:
                order.append(comp)
                continue
            if id(comp) in done:
                continue
            done.add(id(comp))
            stack.append((comp, True))
            callees = [c for i in comp.instructions for c in i.called_computations()]
            stack.extend((c, False) for c in reversed(callees) if id(c) not in done)
    return order


def _header(module: HloModule) -> str:
    layout = module.entry_layout or module.entry_computation.program_shape()
    # Only header attributes read from text (Raw) are HLO; other entries are metadata that
    # frontends attach for later stages (e.g. the TF signature) and XLA would not parse.
    text_attrs = [k for k, v in module.attrs.items() if isinstance(v, Raw)]
    before = [k for k in _BEFORE_ENTRY_LAYOUT if k in text_attrs]
    after = [k for k in text_attrs if k not in _BEFORE_ENTRY_LAYOUT]
    parts = [f"HloModule {module.name}"]
    parts += [f"{k}={_raw_text(module.attrs[k])}" for k in before]
    parts.append(f"entry_computation_layout={{{program_shape_to_text(layout)}}}")
    parts += [f"{k}={_raw_text(module.attrs[k])}" for k in after]
    return ", ".join(parts)


def _raw_text(value: Raw) -> str:
    return value.text


def to_text(module: HloModule) -> str:
    """The whole module in XLA's canonical text form, ending with a blank line."""
    comps = "".join(f"{computation_to_text(c)}\n\n" for c in _callees_first(module))
    return f"{_header(module)}\n\n{comps}"
