"""Tests of hlo/verifier.py: a valid module passes; each invariant broken once is reported.

Modules are built through HloComputation.add (shapes inferred) and then broken by hand, the
way a faulty pass would break them. The corpus test parses and verifies every module of
../shared/corpus/hlo once the parser exists.
"""

from __future__ import annotations

import pytest

from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType
from hlo.errors import HloVerificationError
from hlo.instruction import HloInstruction
from hlo.module import HloModule
from hlo.opcodes import Opcode
from hlo.shape import ProgramShape, Shape
from hlo.verifier import verify

O = Opcode
F32 = PrimitiveType.F32


def f32(*dims: int) -> Shape:
    return Shape.array(F32, dims)


def build() -> tuple[HloModule, dict[str, HloInstruction]]:
    """A small valid module: main(x: f32[4], y: f32[4]) = (x + y, reduce(x * y, 0, sum))."""
    m = HloModule("m")
    add = m.new_computation("sum")
    a = add.add(O.PARAMETER, shape=f32(), name="a", parameter_number=0)
    b = add.add(O.PARAMETER, shape=f32(), name="b", parameter_number=1)
    add.set_root(add.add(O.ADD, [a, b], name="a_plus_b"))
    main = m.new_computation("main", entry=True)
    x = main.add(O.PARAMETER, shape=f32(4), name="x", parameter_number=0)
    y = main.add(O.PARAMETER, shape=f32(4), name="y", parameter_number=1)
    s = main.add(O.ADD, [x, y], name="s")
    p = main.add(O.MULTIPLY, [x, y], name="p")
    zero = main.add(O.CONSTANT, shape=f32(), name="zero")
    r = main.add(O.REDUCE, [p, zero], name="r", dimensions=(0,), to_apply=add)
    main.set_root(main.add(O.TUPLE, [s, r], name="out"))
    named = {i.name: i for c in m.computations for i in c.instructions}
    return m, named


def broken(m: HloModule, *words: str) -> str:
    with pytest.raises(HloVerificationError) as info:
        verify(m)
    message = str(info.value)
    for word in words:
        assert word in message, message
    return message


def test_valid_module_passes() -> None:
    m, _ = build()
    assert verify(m) is None


def test_valid_module_with_control_flow_passes() -> None:
    m = HloModule("loop")
    cond = m.new_computation("cond")
    state = Shape.tuple_of([Shape.array(PrimitiveType.S32, ()), f32(4)])
    c = cond.add(O.PARAMETER, shape=state, parameter_number=0)
    i = cond.add(O.GET_TUPLE_ELEMENT, [c], index=0)
    n = cond.add(O.CONSTANT, shape=Shape.array(PrimitiveType.S32, ()))
    cond.set_root(cond.add(O.COMPARE, [i, n], direction="LT"))
    body = m.new_computation("body")
    b = body.add(O.PARAMETER, shape=state, parameter_number=0)
    body.set_root(body.add(O.COPY, [b]))
    main = m.new_computation("main", entry=True)
    x = main.add(O.PARAMETER, shape=state, parameter_number=0)
    main.set_root(main.add(O.WHILE, [x], condition=cond, body=body))
    m.entry_layout = ProgramShape((state.with_default_layout(),), state)
    verify(m)


def test_no_entry() -> None:
    m, _ = build()
    m.entry = None
    broken(m, "no ENTRY")


def test_declared_shape_disagrees_with_rule() -> None:
    m, ins = build()
    ins["s"].shape = f32(5).with_default_layout()
    message = broken(m, "instruction s", "f32[5]", "f32[4]")
    # The message shows the instruction and its operands, not the rest of the module.
    assert "operand:" in message and "x" in message and "y" in message
    assert "a_plus_b" not in message and "zero" not in message


def test_shape_rule_rejects_instruction() -> None:
    m, ins = build()
    ins["r"].attrs["dimensions"] = (3,)
    broken(m, "instruction r", "shape check failed", "reduce", "out of range")


def test_called_computation_signature_mismatch() -> None:
    m, ins = build()
    a = ins["a"]
    a.shape = Shape.array(PrimitiveType.S32, (), ())
    # The region's own add now mixes types, and reduce's to_apply no longer fits f32.
    broken(m, "shape check failed")


def test_reducer_signature_checked_from_caller() -> None:
    m, ins = build()
    for name in ("a", "b", "a_plus_b"):
        ins[name].shape = Shape.array(PrimitiveType.S32, (), ())
    broken(m, "instruction r", "to_apply")


def test_operand_missing_user_entry() -> None:
    m, ins = build()
    ins["x"].users.remove(ins["s"])
    broken(m, "instruction s", "operand x does not list it as a user")


def test_user_without_operand_edge() -> None:
    m, ins = build()
    ins["zero"].users.append(ins["s"])
    broken(m, "instruction zero", "user s does not have it as an operand")


def test_user_listed_twice() -> None:
    m, ins = build()
    ins["x"].users.append(ins["s"])
    broken(m, "instruction x", "listed twice")


def test_operand_from_another_computation() -> None:
    m, ins = build()
    ins["s"].replace_operand(0, ins["a"])
    broken(m, "not in this computation")


def test_wrong_parent_pointer() -> None:
    m, ins = build()
    ins["s"].parent = ins["a"].parent
    broken(m, "instruction s", "parent pointer")


def test_duplicate_instruction_names() -> None:
    m, ins = build()
    ins["a"].name = "x"
    broken(m, "name x is also used")


def test_parameter_numbers_with_gap() -> None:
    m, ins = build()
    ins["y"].attrs["parameter_number"] = 2
    broken(m, "computation main", "0..1", "1 is missing")


def test_parameter_numbers_duplicated() -> None:
    m, ins = build()
    ins["y"].attrs["parameter_number"] = 0
    broken(m, "instruction y", "parameter number 0 is also used by x")


def test_parameter_number_not_an_integer() -> None:
    m, ins = build()
    ins["y"].attrs["parameter_number"] = "1"
    broken(m, "instruction y", "not an integer")


def test_missing_root() -> None:
    m, ins = build()
    region = ins["a"].parent
    assert region is not None
    region.root = None
    broken(m, "computation sum has no root")


def test_root_not_in_computation() -> None:
    m, ins = build()
    main = m.entry_computation
    main.root = ins["a"]
    broken(m, "root a is not one of its instructions")


def test_instruction_listed_twice() -> None:
    m, ins = build()
    m.entry_computation.instructions.append(ins["s"])
    broken(m, "lists an instruction twice")


def test_called_computation_outside_module() -> None:
    m, ins = build()
    stray = HloComputation("stray")
    a = stray.add(O.PARAMETER, shape=f32(), name="sa", parameter_number=0)
    b = stray.add(O.PARAMETER, shape=f32(), name="sb", parameter_number=1)
    stray.set_root(stray.add(O.MAXIMUM, [a, b], name="smax"))
    ins["r"].attrs["to_apply"] = stray
    broken(m, "instruction r", "stray", "not in module m")


def test_recursive_calls() -> None:
    m = HloModule("rec")
    f = m.new_computation("f")
    p = f.add(O.PARAMETER, shape=f32(), parameter_number=0)
    f.set_root(f.add(O.CALL, [p], shape=f32(), to_apply=f))
    main = m.new_computation("main", entry=True)
    x = main.add(O.PARAMETER, shape=f32(), parameter_number=0)
    main.set_root(main.add(O.CALL, [x], to_apply=f))
    broken(m, "recursive", "f -> f")


def test_operand_cycle() -> None:
    m, ins = build()
    ins["x"].operands.append(ins["s"])
    ins["s"].users.append(ins["x"])
    broken(m, "cycle")


def test_entry_layout_mismatch() -> None:
    m, _ = build()
    good = m.program_shape()
    m.entry_layout = good
    verify(m)
    m.entry_layout = ProgramShape((f32(4), f32(5)), good.result)
    broken(m, "entry_computation_layout", "f32[5]")
    m.entry_layout = ProgramShape((f32(4),), good.result)
    broken(m, "entry_computation_layout")


def test_computation_parent_and_names() -> None:
    m, ins = build()
    region = ins["a"].parent
    assert region is not None
    region.parent = None
    broken(m, "does not point back")
    region.parent = m
    region.name = "main"
    broken(m, "two computations named main")


def test_entry_not_in_module() -> None:
    m, _ = build()
    other = HloComputation("other")
    x = other.add(O.PARAMETER, shape=f32(), name="ox", parameter_number=0)
    other.set_root(x)
    m.entry = other
    broken(m, "entry computation other is not among")


def test_layouts_are_ignored_when_comparing_shapes() -> None:
    m, ins = build()
    ins["s"].shape = Shape.array(F32, (4,), (0,))
    ins["x"].shape = Shape.array(F32, (4,), None)
    verify(m)
