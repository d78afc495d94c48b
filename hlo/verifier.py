"""The HLO verifier: re-infers every shape and checks the structural invariants of a module.

`verify(module)` raises HloVerificationError naming the computation and instruction, with
the instruction and its operands printed (never the whole module). It checks: an entry
exists and every computation belongs to the module; roots; parent pointers; operand/user
symmetry; unique instruction names; parameter numbering 0..n-1; that called computations
are in the module and the call graph has no cycles; every shape against its opcode's shape
rule (which also checks called computations' signatures); and the entry layout against the
entry program shape. It does not check layouts beyond what `Shape` enforces (valid
permutations), and it never changes the module.
"""

from __future__ import annotations

from collections.abc import Iterable

from hlo.computation import HloComputation
from hlo.errors import HloVerificationError, ShapeError, TfcompileError
from hlo.instruction import HloInstruction
from hlo.module import HloModule
from hlo.opcodes import Opcode
from hlo.shape import ProgramShape


def verify(module: HloModule) -> None:
    """Check `module`; raises HloVerificationError on the first broken invariant."""
    if module.entry is None:
        raise HloVerificationError(f"module {module.name} has no ENTRY computation")
    _check_computations(module)
    names: dict[str, HloComputation] = {}
    for comp in module.computations:
        _check_structure(comp, names)
    _check_call_graph(module)
    for comp in module.computations:
        for instr in comp.instructions:
            _check_shape(comp, instr)
    _check_entry_layout(module)


# --- module level --------------------------------------------------------------------------


def _check_computations(module: HloModule) -> None:
    seen: set[str] = set()
    for comp in module.computations:
        if comp.name in seen:
            raise HloVerificationError(
                f"module {module.name} has two computations named {comp.name}"
            )
        seen.add(comp.name)
        if comp.parent is not module:
            raise HloVerificationError(
                f"computation {comp.name} does not point back to module {module.name}"
            )
    if not any(c is module.entry for c in module.computations):
        assert module.entry is not None
        raise HloVerificationError(
            f"entry computation {module.entry.name} is not among the "
            f"computations of module {module.name}"
        )


def _check_call_graph(module: HloModule) -> None:
    """Called computations belong to the module, and no computation calls itself."""
    members = {id(c) for c in module.computations}
    for comp in module.computations:
        for instr in comp.instructions:
            for callee in instr.called_computations():
                if id(callee) not in members:
                    raise _error(
                        comp,
                        instr,
                        f"calls computation {callee.name}, which is not in module {module.name}",
                    )
    # Depth-first search with colours: reaching a computation still on the stack is a cycle.
    state: dict[int, str] = {}

    def visit(comp: HloComputation, path: list[str]) -> None:
        state[id(comp)] = "open"
        for instr in comp.instructions:
            for callee in instr.called_computations():
                if state.get(id(callee)) == "open":
                    cycle = " -> ".join([*path, comp.name, callee.name])
                    raise HloVerificationError(f"recursive computation calls: {cycle}")
                if id(callee) not in state:
                    visit(callee, [*path, comp.name])
        state[id(comp)] = "done"

    for comp in module.computations:
        if id(comp) not in state:
            visit(comp, [])


def _check_entry_layout(module: HloModule) -> None:
    layout = module.entry_layout
    if layout is None:
        return
    entry = module.entry_computation.program_shape()
    if not _program_compatible(layout, entry):
        raise HloVerificationError(
            f"module {module.name}: entry_computation_layout {layout.to_text()} does not match "
            f"the entry computation's signature {entry.to_text()}"
        )


def _program_compatible(a: ProgramShape, b: ProgramShape) -> bool:
    return (
        len(a.parameters) == len(b.parameters)
        and all(x.compatible(y) for x, y in zip(a.parameters, b.parameters, strict=True))
        and a.result.compatible(b.result)
    )


# --- computation level ---------------------------------------------------------------------


def _check_structure(comp: HloComputation, names: dict[str, HloComputation]) -> None:
    members = {id(i) for i in comp.instructions}
    if len(members) != len(comp.instructions):
        raise HloVerificationError(f"computation {comp.name} lists an instruction twice")
    if comp.root is None:
        raise HloVerificationError(f"computation {comp.name} has no root")
    if id(comp.root) not in members:
        raise HloVerificationError(
            f"computation {comp.name}: root {comp.root.name} is not one of its instructions"
        )
    for instr in comp.instructions:
        if instr.name in names:
            raise _error(
                comp,
                instr,
                f"name {instr.name} is also used in computation {names[instr.name].name}",
            )
        names[instr.name] = comp
        if instr.parent is not comp:
            raise _error(comp, instr, "its parent pointer does not name this computation")
        _check_edges(comp, instr, members)
    _check_parameters(comp)
    _check_acyclic(comp)


def _check_edges(comp: HloComputation, instr: HloInstruction, members: set[int]) -> None:
    """Operands live in the same computation and list `instr` as a user, and vice versa."""
    for operand in instr.operands:
        if id(operand) not in members:
            raise _error(comp, instr, f"operand {operand.name} is not in this computation")
        if not any(u is instr for u in operand.users):
            raise _error(comp, instr, f"operand {operand.name} does not list it as a user")
    seen: set[int] = set()
    for user in instr.users:
        if id(user) in seen:
            raise _error(comp, instr, f"user {user.name} is listed twice")
        seen.add(id(user))
        if id(user) not in members:
            raise _error(comp, instr, f"user {user.name} is not in this computation")
        if not any(o is instr for o in user.operands):
            raise _error(comp, instr, f"user {user.name} does not have it as an operand")


def _check_parameters(comp: HloComputation) -> None:
    numbers: dict[int, HloInstruction] = {}
    for instr in comp.instructions:
        if instr.opcode is not Opcode.PARAMETER:
            continue
        number = instr.attrs.get("parameter_number")
        if not isinstance(number, int) or isinstance(number, bool):
            raise _error(comp, instr, f"parameter_number {number!r} is not an integer")
        if number in numbers:
            raise _error(
                comp, instr, f"parameter number {number} is also used by {numbers[number].name}"
            )
        numbers[number] = instr
    missing = sorted(set(range(len(numbers))) - set(numbers))
    if missing:
        raise HloVerificationError(
            f"computation {comp.name}: parameters must be numbered 0..{len(numbers) - 1}, "
            f"but {missing[0]} is missing (numbers used: {sorted(numbers)})"
        )


def _check_acyclic(comp: HloComputation) -> None:
    """The operand graph has no cycle (iterative colouring, so deep graphs are fine)."""
    state: dict[int, int] = {}  # 1 = on the stack, 2 = finished
    for start in comp.instructions:
        if id(start) in state:
            continue
        stack: list[tuple[HloInstruction, int]] = [(start, 0)]
        state[id(start)] = 1
        while stack:
            node, i = stack[-1]
            if i == len(node.operands):
                state[id(node)] = 2
                stack.pop()
                continue
            stack[-1] = (node, i + 1)
            operand = node.operands[i]
            if state.get(id(operand)) == 1:
                raise _error(comp, node, f"operand {operand.name} depends on it (a cycle)")
            if id(operand) not in state:
                state[id(operand)] = 1
                stack.append((operand, 0))


# --- instruction level ---------------------------------------------------------------------


def _check_shape(comp: HloComputation, instr: HloInstruction) -> None:
    """The shape rule accepts the instruction and agrees with its shape (layouts ignored)."""
    try:
        inferred = instr.infer_shape()
    except ShapeError as e:
        raise _error(comp, instr, f"shape check failed: {e}") from None
    except HloVerificationError as e:
        # A called computation without a root cannot give its signature.
        raise _error(comp, instr, str(e)) from None
    if not inferred.compatible(instr.shape):
        raise _error(
            comp,
            instr,
            f"has shape {instr.shape.to_text(False)} but its operands "
            f"and attributes give {inferred.to_text(False)}",
        )


def _error(comp: HloComputation, instr: HloInstruction, problem: str) -> HloVerificationError:
    """An error naming the instruction, printed with its operands (not the whole module)."""
    lines = [
        f"computation {comp.name}, instruction {instr.name}: {problem}",
        f"  {_instruction_text(instr)}",
    ]
    lines += [f"    operand: {_instruction_text(o)}" for o in _unique(instr.operands)]
    return HloVerificationError("\n".join(lines))


def _unique(instrs: Iterable[HloInstruction]) -> list[HloInstruction]:
    seen: set[int] = set()
    out = []
    for i in instrs:
        if id(i) not in seen:
            seen.add(id(i))
            out.append(i)
    return out


def _instruction_text(instr: HloInstruction) -> str:
    """XLA's text for one instruction when the printer exists, else a short repr."""
    try:
        from hlo.printer import instruction_to_text
    except ImportError:
        return repr(instr)
    try:
        return str(instruction_to_text(instr))
    except (TfcompileError, AttributeError, KeyError, TypeError, ValueError):
        # The printer may not cope with the very breakage being reported; never mask it.
        return repr(instr)
