"""CopyInsertion: read-only buffers are never handed to code that writes in place."""

from __future__ import annotations

from compiler.passes import CopyInsertion
from tests.compiler.filecheck import check_pass


def test_entry_results_never_alias_parameters_or_constants() -> None:
    check_pass(CopyInsertion(), """
HloModule m
ENTRY main {
  p = f32[4] parameter(0)
  c = f32[2] constant({1, 2})
  n = f32[4] negate(p)
  ROOT t = (f32[4], f32[2], f32[4], f32[4]) tuple(p, c, n, n)
}
// CHECK: [[P:p.copy]] = f32[4]{0} copy(p)
// CHECK: [[C:c.copy]] = f32[2]{0} copy(c)
// CHECK: [[N1:n.copy]] = f32[4]{0} copy(n)
// CHECK: [[N2:n.copy.1]] = f32[4]{0} copy(n)
// CHECK: ROOT {{.*}} tuple([[P]], [[C]], [[N1]], [[N2]])
""")


def test_a_parameter_root_is_copied() -> None:
    check_pass(CopyInsertion(), """
HloModule m
ENTRY main {
  ROOT p = f32[4] parameter(0)
}
// CHECK: ROOT p.copy = f32[4]{0} copy(p)
""")


LOOP = """
HloModule m
cond {
  s = (s32[], f32[4], f32[4]) parameter(0)
  i = s32[] get-tuple-element(s), index=0
  n = s32[] constant(3)
  ROOT lt = pred[] compare(i, n), direction=LT
}
body {
  s = (s32[], f32[4], f32[4]) parameter(0)
  i = s32[] get-tuple-element(s), index=0
  a = f32[4] get-tuple-element(s), index=1
  b = f32[4] get-tuple-element(s), index=2
  one = s32[] constant(1)
  i1 = s32[] add(i, one)
  ROOT next = (s32[], f32[4], f32[4]) tuple(i1, b, a)
}
ENTRY main {
  x = f32[4] parameter(0)
  zero = s32[] constant(0)
  y = f32[4] negate(x)
  init = (s32[], f32[4], f32[4]) tuple(zero, x, y)
  loop = (s32[], f32[4], f32[4]) while(init), condition=cond, body=body
  ROOT r = f32[4] get-tuple-element(loop), index=1
}
"""


def test_loop_state_is_owned_by_the_loop_and_swaps_are_copied() -> None:
    check_pass(CopyInsertion(), LOOP + """
// CHECK: body {
// CHECK: [[B:b.copy]] = f32[4]{0} copy(b)
// CHECK: [[A:a.copy]] = f32[4]{0} copy(a)
// CHECK: ROOT next = {{.*}} tuple(i1, [[B]], [[A]])
// CHECK: ENTRY main
// CHECK: zero.copy = s32[] copy(zero)
// CHECK: x.copy = f32[4]{0} copy(x)
// CHECK: init = {{.*}} tuple(zero.copy, x.copy, y)
""")
