"""HLO text -> HloModule: XLA's text format, as JAX/XLA print it.

Two phases. lark's LALR parser (grammar in `hlo.lark`) turns the text into plain syntax
records while it parses; `_Builder` then gives them meaning using the opcode table:
opcodes, operand counts, attribute names and syntaxes (one parse function per `AttrKind`,
in `_ATTR_PARSERS`), literals, and references to instructions and computations, which may
appear in any order. Every problem is an `HloParseError` with line, column and the source
line. Shapes are taken as declared; checking them against the shape rules is the
verifier's job, not the parser's.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lark
import ml_dtypes
import numpy as np
from lark import Token

from hlo.attributes import (
    REQUIRED,
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
from hlo.errors import HloParseError, ShapeError
from hlo.instruction import HloInstruction
from hlo.module import HloModule
from hlo.opcodes import BY_NAME, COMMON_ATTRS, OPS, Opcode
from hlo.shape import ProgramShape, Shape

_COMMON: dict[str, AttrSpec] = {spec.name: spec for spec in COMMON_ATTRS}


class _Issue(Exception):
    """A problem found while lark is still parsing; `parse` adds the source line."""

    def __init__(self, message: str, token: Token) -> None:
        super().__init__(message)
        self.message = message
        self.line = token.line or 0
        self.column = token.column or 0


# --- syntax records, built by _Records while lark parses ---------------------------------


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


@dataclass(slots=True)
class _Operand:
    name: Token | None = None
    number: Token | None = None
    shape: Shape | None = None


@dataclass(slots=True)
class _Instr:
    root: bool
    name: Token
    shape: Shape
    opcode: Token
    operands: list[_Operand]
    literal: Any
    attrs: list[tuple[Token, _Value]]


@dataclass(slots=True)
class _Comp:
    entry: bool
    name: Token
    instrs: list[_Instr]


@dataclass(slots=True)
class _Module:
    name: Token | None = None
    attrs: list[tuple[Token, _Value]] = field(default_factory=list)
    entry_layout: ProgramShape | None = None
    comps: list[_Comp] = field(default_factory=list)


def _name(token: Token) -> str:
    return token[1:] if token.startswith("%") else str(token)


def _value(child: Token | _Value) -> _Value:
    """An attribute value record; quoted strings and bare tokens arrive as lark Tokens."""
    if isinstance(child, _Value):
        return child
    form = "string" if child.type == "STRING" else "bare"
    return _Value(form, str(child), child.line or 0, child.column or 0)


_DIM = re.compile(r"[0-9]{1,19}")
_COMMENTS = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)


def _dims(token: Token, text: str) -> tuple[int, ...]:
    if not text.strip():
        return ()
    parts = [p.strip() for p in text.split(",")]
    if not all(_DIM.fullmatch(p) and int(p) < 2**63 for p in parts):
        raise _Issue(f"expected non-negative 64-bit integer dimensions, got [{text}]", token)
    return tuple(int(p) for p in parts)


class _Records(lark.Transformer):  # type: ignore[type-arg]
    """lark callbacks: grammar rules -> syntax records (no meaning attached yet)."""

    def start(self, children: list[Any]) -> _Module:
        module = children[0] if children and isinstance(children[0], _Module) else _Module()
        module.comps = [c for c in children if isinstance(c, _Comp)]
        return module

    def header(self, children: list[Any]) -> _Module:
        module = _Module(name=children[0])
        for key, value in children[1:]:
            if not isinstance(value, ProgramShape):
                module.attrs.append((key, value))
            elif module.entry_layout is not None:
                raise _Issue("duplicate entry_computation_layout", key)
            else:
                module.entry_layout = value
        return module

    def entry_layout(self, children: list[Any]) -> tuple[Token, ProgramShape]:
        return (children[0], children[1])

    def module_attr(self, children: list[Any]) -> tuple[Token, _Value]:
        return (children[0], _value(children[1]))

    def program_shape(self, children: list[Any]) -> ProgramShape:
        *params, result = children
        return ProgramShape(tuple(p for p in params if p is not None), result)

    def computation(self, children: list[Any]) -> _Comp:
        entry, name, _signature, *instrs = children
        return _Comp(entry is not None, name, instrs)

    def signature(self, children: list[Any]) -> None:
        return None

    def param(self, children: list[Any]) -> None:
        return None

    def instruction(self, children: list[Any]) -> _Instr:
        root, name, shape, (opcode, operands, literal), *attrs = children
        return _Instr(root is not None, name, shape, opcode, operands, literal, attrs)

    def constant_call(self, children: list[Any]) -> tuple[Token, list[_Operand], Any]:
        return (children[0], [], children[1])

    def op_call(self, children: list[Any]) -> tuple[Token, list[_Operand], Any]:
        return (children[0], [o for o in children[1:] if o is not None], None)

    def typed_operand(self, children: list[Any]) -> _Operand:
        return _Operand(name=children[1], shape=children[0])

    def named_operand(self, children: list[Any]) -> _Operand:
        return _Operand(name=children[0])

    def int_operand(self, children: list[Any]) -> _Operand:
        return _Operand(number=children[0])

    def attr(self, children: list[Any]) -> tuple[Token, _Value]:
        return (children[0], _value(children[1]))

    def braced(self, children: list[Any]) -> _Value:
        first, last = children[0], children[-1]
        return _Value("braced", "", first.line, first.column, first.start_pos, last.end_pos)

    def nested(self, children: list[Any]) -> None:
        return None

    def array_shape(self, children: list[Any]) -> Shape:
        token, layout = children
        type_name, _, rest = token.partition("[")
        try:
            element_type = PrimitiveType(type_name)
        except ValueError:
            raise _Issue(f"unknown element type '{type_name}'", token) from None
        if element_type is PrimitiveType.TOKEN:
            if rest != "]":
                raise _Issue("a token shape has no dimensions: token[]", token)
            return Shape.token()
        if element_type is PrimitiveType.TUPLE:
            raise _Issue("tuple shapes are written as (shape, shape, ...)", token)
        dims = _dims(token, rest[:-1])
        minor_to_major = None
        if layout is not None:
            # Tiling and memory-space suffixes (`:T(8,128)S(1)`) are dropped.
            minor_to_major = _dims(layout, layout[1:-1].partition(":")[0])
        try:
            return Shape.array(element_type, dims, minor_to_major)
        except ShapeError as e:
            raise _Issue(str(e), layout or token) from None

    def tuple_shape(self, children: list[Any]) -> Shape:
        return Shape.tuple_of([c for c in children if c is not None])

    def lit_scalar(self, children: list[Any]) -> Any:
        return children[0]

    def lit_list(self, children: list[Any]) -> _Lit:
        return _Lit("list", [c for c in children if c is not None])

    def lit_tuple(self, children: list[Any]) -> _Lit:
        return _Lit("tuple", [c for c in children if c is not None])

    def lit_row(self, children: list[Any]) -> _Lit:
        token = children[0]
        inner = token[1:-1]
        if "/" in inner:
            inner = _COMMENTS.sub(" ", inner)
        if inner.strip() == "...":
            return _Lit("elided", [], token)
        items = [item.strip() for item in inner.split(",")] if inner.strip() else []
        if not all(items):
            raise _Issue("empty element in literal", token)
        return _Lit("row", items, token)


@functools.cache
def _lark() -> lark.Lark:
    grammar = Path(__file__).with_name("hlo.lark").read_text()
    return lark.Lark(
        grammar, parser="lalr", lexer="contextual", maybe_placeholders=True,
        transformer=_Records(),
    )


# --- semantics: records -> HloModule ------------------------------------------------------


def _with_layouts(shape: Shape) -> Shape:
    """`shape` with the default layout wherever the text gave none (tuples element-wise)."""
    if shape.is_tuple:
        return Shape.tuple_of([_with_layouts(s) for s in shape.tuple_shapes])
    if shape.is_array and shape.layout is None:
        return Shape(shape.element_type, shape.dims, shape.default_layout())
    return shape


def _located(where: Token | _Value) -> tuple[int, int]:
    return (where.line or 0, where.column or 0)


class _Builder:
    """Turns syntax records into an HloModule, checking them against the opcode table."""

    def __init__(self, text: str, name_hint: str) -> None:
        self.text = text
        self.name_hint = name_hint
        self.computations: dict[str, tuple[HloComputation, _Comp]] = {}

    def error(self, where: Token | _Value, message: str) -> HloParseError:
        line, column = _located(where)
        return HloParseError(message, line, column, _source_line(self.text, line))

    def verbatim(self, value: _Value) -> str:
        if value.form == "braced" and not value.text:
            value.text = self.text[value.start:value.end]
        return value.text

    def computation(self, value: _Value, spec: AttrSpec) -> HloComputation:
        name = value.text[1:] if value.text.startswith("%") else value.text
        if name not in self.computations:
            raise self.error(value, f"attribute '{spec.name}' names unknown computation '{name}'")
        return self.computations[name][0]

    # --- module and computations ---------------------------------------------------------
    def build(self, rec: _Module) -> HloModule:
        module = HloModule(_name(rec.name) if rec.name is not None else self.name_hint or "module")
        for key, value in rec.attrs:
            if str(key) in module.attrs:
                raise self.error(key, f"duplicate module attribute '{key}'")
            module.attrs[str(key)] = Raw(self.verbatim(value))
        if rec.entry_layout is not None:
            module.entry_layout = ProgramShape(
                tuple(_with_layouts(p) for p in rec.entry_layout.parameters),
                _with_layouts(rec.entry_layout.result),
            )
        if not rec.comps:
            raise HloParseError("the module has no computations", 1, 1, _source_line(self.text, 1))
        entries = [c for c in rec.comps if c.entry]
        if len(entries) > 1:
            raise self.error(entries[1].name, "more than one computation is marked ENTRY")
        entry = entries[0] if entries else rec.comps[-1]
        for c in rec.comps:
            name = _name(c.name)
            if name in self.computations:
                raise self.error(c.name, f"duplicate computation name '{name}'")
            comp = HloComputation(name)
            self.computations[name] = (comp, c)
            module.add_computation(comp, entry=c is entry)
        for comp, c in self.computations.values():
            self.fill(comp, c)
        self.check_call_cycles(module)
        return module

    def fill(self, comp: HloComputation, c: _Comp) -> None:
        """Create the instructions of `c`, operands before users, in text order otherwise."""
        if not c.instrs:
            raise self.error(c.name, f"computation '{comp.name}' has no instructions")
        by_name: dict[str, _Instr] = {}
        for r in c.instrs:
            if _name(r.name) in by_name:
                raise self.error(r.name, f"duplicate instruction name '{_name(r.name)}'")
            by_name[_name(r.name)] = r
        roots = [r for r in c.instrs if r.root]
        if len(roots) > 1:
            raise self.error(roots[1].name, f"computation '{comp.name}' has more than one ROOT")
        created: dict[str, HloInstruction] = {}
        for r in c.instrs:
            self.create_with_operands(comp, r, by_name, created)
        comp.set_root(created[_name((roots or c.instrs[-1:])[0].name)])
        numbers: set[int] = set()
        for r in c.instrs:
            instr = created[_name(r.name)]
            if instr.opcode is Opcode.PARAMETER:
                if instr.attrs["parameter_number"] in numbers:
                    raise self.error(r.name, "duplicate parameter number "
                                     f"{instr.attrs['parameter_number']} in '{comp.name}'")
                numbers.add(instr.attrs["parameter_number"])

    def create_with_operands(
        self, comp: HloComputation, first: _Instr, by_name: dict[str, _Instr],
        created: dict[str, HloInstruction],
    ) -> None:
        # Iterative depth-first search: operands may be defined after their users, and a
        # long chain must not exhaust Python's stack. Markers on the stack are ancestors.
        stack: list[tuple[_Instr, bool]] = [(first, False)]
        open_names: set[str] = set()
        while stack:
            r, expanded = stack.pop()
            name = _name(r.name)
            if expanded:
                created[name] = self.instruction(comp, r, created)
                open_names.discard(name)
                continue
            if name in created:
                continue
            open_names.add(name)
            stack.append((r, True))
            for op in reversed(r.operands):
                if op.name is None or _name(op.name) in created:
                    continue
                target = by_name.get(_name(op.name))
                if target is None:
                    raise self.error(op.name, f"unknown instruction '{_name(op.name)}' "
                                     f"in computation '{comp.name}'")
                if _name(op.name) in open_names:
                    raise self.error(op.name, f"operand '{_name(op.name)}' of '{name}' "
                                     "depends on its own user (a cycle)")
                stack.append((target, False))

    def check_call_cycles(self, module: HloModule) -> None:
        done: set[int] = set()
        for top in module.computations:
            path: set[int] = set()
            stack: list[tuple[HloComputation, bool]] = [(top, False)]
            while stack:
                comp, expanded = stack.pop()
                if expanded:
                    path.discard(id(comp))
                    done.add(id(comp))
                    continue
                if id(comp) in done:
                    continue
                if id(comp) in path:
                    raise self.error(self.computations[comp.name][1].name,
                                     f"computation '{comp.name}' calls itself")
                path.add(id(comp))
                stack.append((comp, True))
                for instr in comp.instructions:
                    stack.extend((callee, False) for callee in instr.called_computations())

    # --- instructions ------------------------------------------------------------------------
    def instruction(
        self, comp: HloComputation, r: _Instr, created: dict[str, HloInstruction]
    ) -> HloInstruction:
        opcode = BY_NAME.get(str(r.opcode))
        if opcode is None:
            raise self.error(r.opcode, f"unknown opcode '{r.opcode}'")
        opdef = OPS[opcode]
        attrs: dict[str, Any] = {}
        operands: list[HloInstruction] = []
        if opcode is Opcode.CONSTANT:
            attrs["literal"] = self.literal(r.literal, r.shape, r.opcode)
        elif opdef.inline_attr is not None:
            if len(r.operands) != 1 or r.operands[0].number is None:
                raise self.error(r.opcode, f"{opcode.value} takes its {opdef.inline_attr} in "
                                 f"parentheses, as in {opcode.value}(0)")
            number = self.integer(r.operands[0].number, opdef.inline_attr)
            if number < 0:
                raise self.error(r.operands[0].number, f"{opdef.inline_attr} must be >= 0")
            attrs[opdef.inline_attr] = number
        else:
            for op in r.operands:
                if op.name is None:
                    raise self.error(op.number or r.opcode,
                                     f"expected an operand name, got '{op.number}'")
                operand = created[_name(op.name)]
                if op.shape is not None and not op.shape.compatible(operand.shape):
                    raise self.error(op.name, f"operand '{operand.name}' has shape "
                                     f"{operand.shape}, but is written as {op.shape}")
                operands.append(operand)
            if opdef.arity is not None and len(operands) != opdef.arity:
                raise self.error(r.opcode, f"{opcode.value} takes {opdef.arity} operand(s), "
                                 f"got {len(operands)}")
        for key, value in r.attrs:
            spec = opdef.attr(str(key)) or _COMMON.get(str(key))
            if spec is None or spec.name == opdef.inline_attr:
                own = [s.name for s in opdef.attrs if s.name != opdef.inline_attr]
                known = f"it takes {', '.join(own)}" if own else "it takes none of its own"
                raise self.error(key, f"unknown attribute '{key}' for {opcode.value} ({known}, "
                                 "besides metadata, sharding and the other common ones)")
            if spec.name in attrs:
                raise self.error(key, f"duplicate attribute '{key}'")
            attrs[spec.name] = _ATTR_PARSERS[spec.kind](value, spec, self)
        for spec in opdef.attrs:
            if spec.default is REQUIRED and spec.name not in attrs:
                raise self.error(r.opcode, f"{opcode.value} requires attribute '{spec.name}'")
        shape = _with_layouts(r.shape)
        instr = comp.add(opcode, operands, shape=shape, name=_name(r.name), **attrs)
        # The declared shape is kept exactly, including layouts inside tuple shapes.
        instr.shape = shape
        if opcode is Opcode.FUSION:
            attrs["calls"].is_fusion = True
        return instr

    def integer(self, token: Token | _Value, what: str) -> int:
        text = token.text if isinstance(token, _Value) else str(token)
        if not _INT.fullmatch(text) or len(text) > 40:
            raise self.error(token, f"{what}: expected an integer, got '{text}'")
        return int(text)

    # --- literals ---------------------------------------------------------------------------
    def literal(self, node: Any, shape: Shape, where: Token) -> Any:
        """The value of `constant(node)`: an ndarray of the shape, a tuple for tuples."""
        if shape.is_tuple:
            if not isinstance(node, _Lit) or node.form != "tuple":
                raise self.error(where, f"a constant of shape {shape} needs a ( ... ) literal")
            if len(node.items) != len(shape.tuple_shapes):
                raise self.error(where, f"tuple literal has {len(node.items)} elements, "
                                 f"shape {shape} has {len(shape.tuple_shapes)}")
            pairs = zip(node.items, shape.tuple_shapes, strict=True)
            return tuple(self.literal(n, s, where) for n, s in pairs)
        if not shape.is_array:
            raise self.error(where, f"a constant cannot have shape {shape}")
        # numpy bounds the rank and the size computed over the non-zero dimensions.
        size = math.prod(max(d, 1) for d in shape.dims) * shape.element_type.byte_size
        if shape.rank > 32 or size >= 2**62:
            raise self.error(where, f"a constant of shape {shape} is too large for numpy")
        leaves: list[Any] = []
        self.collect(node, shape, 0, leaves, where)
        et = shape.element_type
        if et.is_complex:
            parts: list[complex] = []
            for leaf in leaves:
                if not isinstance(leaf, _Lit) or len(leaf.items) != 2:
                    raise self.error(where, f"{et.value} elements are written (real, imag)")
                pair = self.floats(self.scalars(leaf.items, where), complex_component(et).numpy)
                parts.append(complex(float(pair[0]), float(pair[1])))
            values = np.array(parts, dtype=np.complex128).astype(et.numpy)
        elif any(isinstance(leaf, _Lit) for leaf in leaves):
            raise self.error(where, f"expected scalar {et.value} elements in the literal")
        elif et.is_float:
            values = self.floats(leaves, et.numpy)
        else:
            values = self.integers(leaves, et)
        return values.reshape(shape.dims)

    def scalars(self, items: list[Any], where: Token) -> list[tuple[str, Token]]:
        if not all(isinstance(item, Token) for item in items):
            raise self.error(where, "expected numbers in the literal")
        return [(str(item), item) for item in items]

    def collect(self, node: Any, shape: Shape, depth: int, out: list[Any], where: Token) -> None:
        """Append the leaves of `node` to `out`, checking its nesting against `shape`:
        (text, token) for scalars, the `_Lit` itself for `(...)` complex elements."""
        if isinstance(node, _Lit) and node.form == "elided":
            raise self.error(node.token or where,
                             "elided constant values ({...}) cannot be parsed")
        if depth == shape.rank:
            if isinstance(node, Token):
                out.append((str(node), node))
            elif node.form == "tuple":
                out.append(node)
            else:
                raise self.error(where, f"literal for shape {shape} is nested too deeply")
            return
        if not isinstance(node, _Lit) or node.form == "tuple":
            raise self.error(where, f"literal for shape {shape}: expected {{...}} with "
                             f"{shape.dims[depth]} elements at depth {depth}")
        if len(node.items) != shape.dims[depth]:
            raise self.error(node.token or where, f"literal for shape {shape} has "
                             f"{len(node.items)} elements at depth {depth}, "
                             f"expected {shape.dims[depth]}")
        if node.form == "row":
            if node.items and depth != shape.rank - 1:
                raise self.error(node.token or where, f"literal for shape {shape}: expected "
                                 f"{{...}} lists at depth {depth + 1}")
            out.extend((item, node.token) for item in node.items)
            return
        for item in node.items:
            self.collect(item, shape, depth + 1, out, where)

    def integers(self, leaves: list[tuple[str, Token]], et: PrimitiveType) -> np.ndarray:
        values: list[int] = []
        info = None if et.is_pred else np.iinfo(et.numpy)
        for text, at in leaves:
            if info is None:
                if text not in _PRED_WORDS:
                    raise self.error(at, f"expected true, false, 1 or 0 for pred, got '{text}'")
                values.append(_PRED_WORDS[text])
                continue
            if not _INT.fullmatch(text) or len(text) > 40:
                raise self.error(at, f"expected an integer for {et.value}, got '{text}'")
            value = int(text)
            if not info.min <= value <= info.max:
                raise self.error(at, f"{value} is out of range for {et.value}")
            values.append(value)
        return np.array(values, dtype=et.numpy)

    def floats(self, leaves: list[tuple[str, Token]], dtype: np.dtype) -> np.ndarray:
        """Float elements of `dtype`, including signed NaNs and NaN payloads `nan(0x..)`."""
        wide = np.empty(len(leaves), dtype=np.float64)
        nans: list[tuple[int, bool, int | None, Token]] = []
        for i, (text, at) in enumerate(leaves):
            if _FLOAT.fullmatch(text):
                wide[i] = float(text)
                continue
            word = _FLOAT_WORD.fullmatch(text)
            if word is None or (word.group(2) == "inf" and word.group(3)):
                raise self.error(at, f"expected a floating-point number, got '{text}'")
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
            raise self.error(at, f"{text} is out of range for {np.dtype(dtype).name}")
        for i in np.flatnonzero(np.isinf(wide)).tolist():
            text, at = leaves[i]
            if _FLOAT.fullmatch(text):
                raise self.error(at, f"{text} is out of range for {np.dtype(dtype).name}")
        if nans:
            self.set_nans(values, nans)
        return values

    def set_nans(self, values: np.ndarray,
                 nans: list[tuple[int, bool, int | None, Token]]) -> None:
        mantissa = int(ml_dtypes.finfo(values.dtype).nmant)  # type: ignore[no-untyped-call]
        bits = values.dtype.itemsize * 8
        exponent = ((1 << (bits - 1)) - 1) & ~((1 << mantissa) - 1)
        raw = values.view(np.dtype(f"u{values.dtype.itemsize}"))
        for i, negative, payload, at in nans:
            payload = (1 << (mantissa - 1)) if payload is None else payload
            if not 0 < payload < (1 << mantissa):
                raise self.error(at, f"NaN payload {payload:#x} does not fit "
                                 f"{mantissa} mantissa bits")
            raw[i] = (int(negative) << (bits - 1)) | exponent | payload


_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
_FLOAT_WORD = re.compile(r"([-+]?)(inf|nan)(?:\(0x([0-9a-fA-F]+)\))?")
_PRED_WORDS = {"true": 1, "false": 0, "1": 1, "0": 0}


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


_AttrParser = Callable[[_Value, AttrSpec, _Builder], Any]

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


# --- lark errors -> HloParseError --------------------------------------------------------

_TERMINAL_WORDS = {
    "NAME": "a name", "INT": "an integer", "STRING": "a quoted string",
    "BARE": "an attribute value", "CHUNK": "text", "ARRAY_SHAPE": "a shape",
    "LAYOUT": "a layout", "LIT_NUM": "a number", "LIT_WORD": "inf, nan, true or false",
    "LIT_ROW": "a {...} list",
    "$END": "end of input",
}


def _describe(terminal: str) -> str:
    if terminal in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[terminal]
    try:
        pattern = _lark().get_terminal(terminal).pattern
    except KeyError:
        return terminal
    return f"'{pattern.value}'" if pattern.type == "str" else terminal


def _source_line(text: str, line: int) -> str:
    lines = text.split("\n")
    return lines[line - 1].rstrip("\r") if 0 < line <= len(lines) else ""


def _from_lark(e: lark.exceptions.LarkError, text: str) -> HloParseError:
    line = getattr(e, "line", 0) or 0
    column = getattr(e, "column", 0) or 0
    if isinstance(e, lark.exceptions.UnexpectedToken):
        expected = sorted({_describe(t) for t in e.expected})
        found = "end of input" if e.token.type == "$END" else repr(str(e.token))
        message = f"unexpected {found}; expected {', '.join(expected)}"
    elif isinstance(e, lark.exceptions.UnexpectedCharacters):
        found = text[e.pos_in_stream] if e.pos_in_stream is not None else "?"
        message = f"unexpected character {found!r}"
    elif isinstance(e, lark.exceptions.UnexpectedEOF):
        message = "unexpected end of input"
    else:
        message = f"malformed HLO text ({type(e).__name__})"
    return HloParseError(message, max(line, 0), max(column, 0), _source_line(text, line))


def parse(text: str, name_hint: str = "") -> HloModule:
    """Parse an HLO module from XLA's text format.

    Args:
        text: the module text (`HloModule name, ...` followed by computations; the header
            may be left out).
        name_hint: the module's name when the text has no `HloModule` header.

    Returns:
        The module, with instructions in the order written where operands come first.

    Raises:
        HloParseError: for any malformed input, with line, column and the source line.
    """
    try:
        records = _lark().parse(text)
        assert isinstance(records, _Module)
        return _Builder(text, name_hint).build(records)
    except _Issue as e:
        raise HloParseError(e.message, e.line, e.column, _source_line(text, e.line)) from None
    except lark.exceptions.LarkError as e:
        raise _from_lark(e, text) from None
    except RecursionError:
        raise HloParseError("input is nested too deeply") from None
