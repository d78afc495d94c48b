"""LayoutAssignment: row-major everywhere by default; transposes into dots as no-ops."""

from __future__ import annotations

from compiler.passes import LayoutAssignment, LayoutOptions
from compiler.passes.layout_assignment import transposed_layout
from hlo.dtypes import PrimitiveType
from hlo.shape import Shape
from tests.compiler.filecheck import check_pass


def test_non_default_layouts_become_row_major_everywhere() -> None:
    check_pass(LayoutAssignment(), """
HloModule m, entry_computation_layout={(f32[2,3]{0,1})->(f32[3,2]{0,1}, f32[2,3]{0,1})}
ENTRY main {
  x = f32[2,3]{0,1} parameter(0)
  t = f32[3,2]{0,1} transpose(x), dimensions={1,0}
  n = f32[2,3]{0,1} negate(x)
  ROOT r = (f32[3,2]{0,1}, f32[2,3]{0,1}) tuple(t, n)
}
// CHECK: entry_computation_layout={(f32[2,3]{1,0})->(f32[3,2]{1,0}, f32[2,3]{1,0})}
// CHECK: x = f32[2,3]{1,0} parameter(0)
// CHECK: t = f32[3,2]{1,0} transpose(x)
// CHECK: n = f32[2,3]{1,0} negate(x)
// CHECK: ROOT r = (f32[3,2]{1,0}, f32[2,3]{1,0}) tuple(t, n)
""")


def test_row_major_module_is_unchanged() -> None:
    check_pass(LayoutAssignment(), """
HloModule m
ENTRY main {
  x = f32[2,3]{1,0} parameter(0)
  ROOT n = f32[2,3]{1,0} negate(x)
}
// CHECK: ROOT n = f32[2,3]{1,0} negate(x)
""", changed=False)


def test_transposed_layout_makes_the_transpose_a_relabelling() -> None:
    operand = Shape.array(PrimitiveType.F32, (2, 3, 4), (2, 1, 0))
    # result dims (4, 2, 3): dim 0 is operand dim 2, the operand's most minor dim.
    assert transposed_layout(operand, (2, 0, 1)) == (0, 2, 1)
    assert transposed_layout(operand, (0, 1, 2)) == (2, 1, 0)


def test_fold_transposes_into_dot_operand_layouts() -> None:
    check_pass(LayoutAssignment(LayoutOptions(fold_transposes=True)), """
HloModule m
ENTRY main {
  a = f32[3,2] parameter(0)
  b = f32[3,4] parameter(1)
  at = f32[2,3] transpose(a), dimensions={1,0}
  ab = f32[2,3] transpose(a), dimensions={1,0}
  n = f32[2,3] negate(ab)
  d = f32[2,4] dot(at, b), lhs_contracting_dims={1}, rhs_contracting_dims={0}
  ROOT t = (f32[2,4], f32[2,3]) tuple(d, n)
}
// CHECK: at = f32[2,3]{0,1} transpose(a)
// CHECK: ab = f32[2,3]{1,0} transpose(a)
""")
