"""ComputationBuilder's own contracts, apart from any one operation: how build assembles the
module (callee-first computation order, unused ones dropped, the default root, unique names),
sub-builders, parameter numbering, constant element types, and the errors for misuse (operands
from another computation, bad arguments, shape-rule errors naming the builder operation).
"""

from __future__ import annotations

import numpy as np
import pytest

from hlo.builder import ComputationBuilder
from hlo.dtypes import PrimitiveType
from hlo.errors import ArgumentError, HloVerificationError, ShapeError
from hlo.shape import Shape
from hlo.verifier import verify
from tests.hlo.builder_helpers import F32, PRED, S32, adder, shape

# === builder contracts ========================================================================


def test_build_orders_computations_callee_first_and_drops_unused() -> None:
    b = ComputationBuilder("entry")
    unused = b.create_sub_builder("unused")
    unused.constant_r0(1)
    x = b.parameter(0, shape(F32, 3), "x")
    s = b.reduce(x, b.constant_r0(np.float32(0)), adder, [0])
    b.map([x], lambda sb, v: sb.mul(v, v))
    module = b.build(root=s)
    names = [c.name for c in module.computations]
    assert names[-1] == "entry" and module.entry_computation.name == "entry"
    assert "unused" not in names and "adder" in names
    assert module.entry_computation.root is s
    verify(module)


def test_root_defaults_to_the_last_instruction() -> None:
    b = ComputationBuilder("last")
    b.constant_r0(1)
    last = b.constant_r0(2)
    assert b.build().entry_computation.root is last


def test_instruction_names_are_unique_in_the_module() -> None:
    b = ComputationBuilder("names")
    x = b.parameter(0, shape(F32), "x")
    b.add(b.reduce(b.broadcast(x, [3]), x, adder, [0]), x)
    b.map([b.broadcast(x, [2])], lambda sb, v: sb.add(v, v))
    module = b.build()
    names = [i.name for c in module.computations for i in c.instructions]
    assert len(names) == len(set(names))


def test_operands_from_another_computation_are_rejected() -> None:
    b = ComputationBuilder("outer_values")
    x = b.parameter(0, shape(F32), "x")
    with pytest.raises(HloVerificationError, match="belongs to outer_values"):
        b.map([b.broadcast(x, [2])], lambda sb, v: sb.add(v, x))


def test_sub_builders_cannot_build_modules() -> None:
    b = ComputationBuilder("top")
    sub = b.create_sub_builder("sub")
    sub.constant_r0(1)
    with pytest.raises(HloVerificationError, match="sub-builder"):
        sub.build()


def test_duplicate_parameter_numbers() -> None:
    b = ComputationBuilder("dup")
    b.parameter(0, shape(F32), "a")
    with pytest.raises(HloVerificationError, match="already has parameter 0"):
        b.parameter(0, shape(F32), "b")


def test_constants_default_and_explicit_types() -> None:
    b = ComputationBuilder("constants")
    assert b.constant_r0(1).shape.element_type is S32
    assert b.constant_r0(1.5).shape.element_type is F32
    assert b.constant_r0(True).shape.element_type is PRED
    assert b.constant(np.arange(3, dtype=np.int64)).shape.element_type is PrimitiveType.S64
    assert b.constant([1, 2], dtype="f64").shape == Shape.array(PrimitiveType.F64, (2,), (0,))
    with pytest.raises(ShapeError, match="do not fit s32"):
        b.constant_r0(2**40)
    with pytest.raises(ShapeError, match="rank 1, expected 2"):
        b.constant_r2([1, 2])
    with pytest.raises(ArgumentError):
        b.constant("text")


def test_bad_computation_argument() -> None:
    b = ComputationBuilder("bad_comp")
    x = b.parameter(0, shape(F32, 3), "x")
    with pytest.raises(ArgumentError, match="computation"):
        b.reduce(x, b.constant_r0(np.float32(0)), 42, [0])
    with pytest.raises(ArgumentError, match="must return a handle"):
        b.reduce(x, b.constant_r0(np.float32(0)), lambda sb, a, c: 3.0, [0])


def test_shape_rule_errors_name_the_builder_operation() -> None:
    b = ComputationBuilder("rule_errors")
    x = b.parameter(0, shape(F32, 3), "x")
    y = b.parameter(1, shape(S32, 3), "y")
    with pytest.raises(ShapeError, match=r"add\(f32\[3\], s32\[3\]\)"):
        b.add(x, y)


def test_wrong_argument_types_raise_argument_errors() -> None:
    b = ComputationBuilder("argument_types")
    x = b.parameter(0, shape(F32, 3), "x")
    with pytest.raises(ArgumentError, match="operand 1 must be a handle"):
        b.add(x, 3)
    with pytest.raises(ArgumentError, match="list of handles"):
        b.tuple(x)
    with pytest.raises(ArgumentError, match="direction"):
        b.compare(x, x, "XX")
    with pytest.raises(ArgumentError, match="list of integers"):
        b.broadcast(x, ["two"])
    with pytest.raises(ArgumentError, match="not an element type"):
        b.convert(x, "f31")
    with pytest.raises(ArgumentError, match="not a valid HLO identifier"):
        ComputationBuilder("has space")
    assert b.shape_of(x) == x.shape
