"""Renderings of a module for people: HLO text and Graphviz dot. No file policy here.

`to_text` is the canonical printer's output. `to_dot` draws one cluster per computation,
an edge from each operand to its user (numbered when an instruction has several
operands), and a dashed edge from an instruction to the root of each computation it
calls. Where and when dumps are written is the pipeline's business (compiler/pipeline.py).
"""

from __future__ import annotations

from hlo.computation import HloComputation
from hlo.instruction import HloInstruction
from hlo.module import HloModule
from hlo.opcodes import Opcode, Trait
from hlo.printer import to_text as _printer_text

# Fill colours by role, so that fusions, control flow and leaves stand out.
_COLOURS = {
    "parameter": "#ffe0a0",
    "constant": "#e0e0e0",
    "fusion": "#c8e6c9",
    "control": "#bbdefb",
    "expensive": "#ffcdd2",
    "movement": "#f3e5f5",
    "tuple": "#fff9c4",
    "other": "#ffffff",
}
_CONTROL = {Opcode.WHILE, Opcode.CONDITIONAL, Opcode.CALL}
_TUPLE = {Opcode.TUPLE, Opcode.GET_TUPLE_ELEMENT}
_MAX_LABEL = 60


def to_text(module: HloModule) -> str:
    """The module in XLA's canonical text form (what `hlo.parser.parse` reads)."""
    return _printer_text(module)


def _role(instr: HloInstruction) -> str:
    if instr.opcode is Opcode.PARAMETER:
        return "parameter"
    if instr.opcode in (Opcode.CONSTANT, Opcode.IOTA):
        return "constant"
    if instr.opcode is Opcode.FUSION:
        return "fusion"
    if instr.opcode in _CONTROL:
        return "control"
    if instr.opcode in _TUPLE:
        return "tuple"
    if instr.has(Trait.EXPENSIVE):
        return "expensive"
    if instr.has(Trait.DATA_MOVEMENT):
        return "movement"
    return "other"


def _quote(text: str) -> str:
    """A dot string literal (double quotes, backslashes and newlines escaped)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _short(text: str) -> str:
    return text if len(text) <= _MAX_LABEL else text[: _MAX_LABEL - 3] + "..."


def _label(instr: HloInstruction) -> str:
    detail = instr.opcode.value
    if instr.opcode is Opcode.PARAMETER:
        detail = f"parameter {instr.attrs.get('parameter_number')}"
    elif instr.opcode is Opcode.FUSION:
        detail = f"fusion {instr.attrs.get('kind')}"
    elif instr.opcode is Opcode.GET_TUPLE_ELEMENT:
        detail = f"get-tuple-element {instr.attrs.get('index')}"
    elif instr.opcode is Opcode.COMPARE:
        detail = f"compare {instr.attrs.get('direction')}"
    root = "ROOT " if instr.is_root else ""
    return f"{root}{instr.name}\n{detail}\n{_short(instr.shape.to_text(with_layout=False))}"


def _node_id(comp_index: int, instr_index: int) -> str:
    return f"n{comp_index}_{instr_index}"


def _computation_dot(comp: HloComputation, index: int, ids: dict[int, str]) -> list[str]:
    lines = [f"  subgraph cluster_{index} {{", f"    label={_quote(comp.name)};",
             "    style=rounded; color=\"#9e9e9e\";"]
    for k, instr in enumerate(comp.instructions):
        node = _node_id(index, k)
        ids[id(instr)] = node
        shape = "box" if instr.opcode is not Opcode.PARAMETER else "ellipse"
        pen = ", penwidth=2" if instr.is_root else ""
        lines.append(f"    {node} [label={_quote(_label(instr))}, shape={shape}, "
                     f"style=filled, fillcolor=\"{_COLOURS[_role(instr)]}\"{pen}];")
    lines.append("  }")
    return lines


def _edges(comp: HloComputation, ids: dict[int, str]) -> list[str]:
    lines = []
    for instr in comp.instructions:
        many = len(instr.operands) > 1
        for k, operand in enumerate(instr.operands):
            if id(operand) not in ids:
                continue  # a broken module (operand elsewhere) still renders; verify reports it
            label = f" [label=\"{k}\"]" if many else ""
            lines.append(f"  {ids[id(operand)]} -> {ids[id(instr)]}{label};")
        for callee in instr.called_computations():
            if callee.root is not None and id(callee.root) in ids:
                lines.append(f"  {ids[id(callee.root)]} -> {ids[id(instr)]} "
                             "[style=dashed, color=\"#757575\"];")
    return lines


def to_dot(module: HloModule, title: str | None = None) -> str:
    """The module as a Graphviz digraph (computations as clusters, data flows downwards)."""
    ids: dict[int, str] = {}
    body: list[str] = []
    for index, comp in enumerate(module.computations):
        body += _computation_dot(comp, index, ids)
    for comp in module.computations:
        body += _edges(comp, ids)
    head = [
        "digraph hlo {",
        f"  label={_quote(title or module.name)};",
        "  labelloc=t;",
        "  node [fontname=\"monospace\", fontsize=10];",
        "  edge [fontsize=8];",
    ]
    return "\n".join([*head, *body, "}"]) + "\n"
