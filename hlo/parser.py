"""HLO text -> HloModule: XLA's text format, as JAX/XLA print it.

Two phases. lark's LALR parser (grammar in `hlo.lark`) turns the text into plain syntax
records while it parses; `_Builder` then gives them meaning using the opcode table:
opcodes, operand counts, attribute names and syntaxes, literals, and references to
instructions and computations, which may appear in any order. The attribute value parsers
(one per `AttrKind`, in `_ATTR_PARSERS`) and the literal conversion live in
hlo/parse_values.py. Every problem is an `HloParseError` with line, column and the source
line. Shapes are taken as declared; checking them against the shape rules is the
verifier's job, not the parser's.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lark
from lark import Token

from hlo.attributes import REQUIRED, AttrSpec, Raw
from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType
from hlo.errors import HloParseError, ShapeError
from hlo.instruction import HloInstruction
from hlo.module import HloModule
from hlo.opcodes import BY_NAME, COMMON_ATTRS, OPS, Opcode
from hlo.parse_values import _ATTR_PARSERS, _INT, _Lit, _literal, _Value
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
            attrs["literal"] = _literal(self, r.literal, r.shape, r.opcode)
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
