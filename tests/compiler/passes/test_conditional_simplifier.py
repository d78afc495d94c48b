"""ConditionalSimplifier: constant index or predicate selects a branch, inlined."""

from __future__ import annotations

import pytest

from compiler.passes import ConditionalSimplifier
from tests.compiler.filecheck import check_pass

INDEXED = """
HloModule m
b0 {
  x = f32[] parameter(0)
  ROOT n = f32[] negate(x)
}
b1 {
  y = f32[] parameter(0)
  ROOT e = f32[] exponential(y)
}
ENTRY main {
  i = s32[] constant(INDEX)
  a = f32[] parameter(0)
  b = f32[] parameter(1)
  ROOT c = f32[] conditional(i, a, b), branch_computations={b0, b1}
}
"""


@pytest.mark.parametrize("index, expected", [(0, "negate(a)"), (1, "exponential(b)"),
                                             (7, "exponential(b)"), (-1, "exponential(b)")])
def test_constant_index_selects_branch_and_out_of_range_takes_the_last(
        index: int, expected: str) -> None:
    checks = "// CHECK-NOT: b0 {\n// CHECK-NOT: b1 {\n// CHECK: ROOT {{.*}} = f32[] " + expected
    check_pass(ConditionalSimplifier(), INDEXED.replace("INDEX", str(index)) + checks)


def test_constant_predicate_form() -> None:
    check_pass(ConditionalSimplifier(), """
HloModule m
on_true {
  x = f32[] parameter(0)
  ROOT n = f32[] negate(x)
}
on_false {
  y = f32[] parameter(0)
  ROOT e = f32[] exponential(y)
}
ENTRY main {
  p = pred[] constant(false)
  a = f32[] parameter(0)
  b = f32[] parameter(1)
  ROOT c = f32[] conditional(p, a, b), true_computation=on_true, false_computation=on_false
}
// CHECK: ROOT {{.*}} = f32[] exponential(b)
""")


def test_unknown_selector_no_change() -> None:
    check_pass(ConditionalSimplifier(), INDEXED.replace("i = s32[] constant(INDEX)",
                                                        "i = s32[] parameter(2)") + """
// CHECK: ROOT c = f32[] conditional(i, a, b)
""", changed=False)
