"""CommonSubexpressionElimination: FileCheck cases, no change, idempotence."""

from __future__ import annotations

from compiler.passes import CommonSubexpressionElimination
from tests.compiler.filecheck import check_pass


def test_merges_identical_and_commuted_expressions() -> None:
    check_pass(CommonSubexpressionElimination(), """
HloModule m
ENTRY main {
  a = f32[4] parameter(0)
  b = f32[4] parameter(1)
  x = f32[4] add(a, b)
  y = f32[4] add(b, a)
  e1 = f32[4] exponential(x)
  e2 = f32[4] exponential(y), metadata={op_name="other"}
  ROOT m = f32[4] multiply(e1, e2)
}
// CHECK: [[X:x]] = f32[4]{0} add(a, b)
// CHECK-NOT: add(b, a)
// CHECK: [[E:e1]] = f32[4]{0} exponential([[X]])
// CHECK-NOT: exponential
// CHECK: ROOT m = f32[4]{0} multiply([[E]], [[E]])
""")


def test_merges_equal_constants_but_not_signed_zeros() -> None:
    check_pass(CommonSubexpressionElimination(), """
HloModule m
ENTRY main {
  p = f32[] parameter(0)
  c1 = f32[] constant(0)
  c2 = f32[] constant(0)
  c3 = f32[] constant(-0)
  a = f32[] add(p, c1)
  b = f32[] add(p, c2)
  c = f32[] add(p, c3)
  ROOT t = (f32[], f32[], f32[]) tuple(a, b, c)
}
// CHECK: c1 = f32[] constant(0)
// CHECK: c3 = f32[] constant(-0)
// CHECK: ROOT t = (f32[], f32[], f32[]) tuple(a, a, c)
""")


def test_never_merges_random_numbers_or_subtracts_with_swapped_operands() -> None:
    check_pass(CommonSubexpressionElimination(), """
HloModule m
ENTRY main {
  lo = f32[] constant(0)
  hi = f32[] constant(1)
  r1 = f32[4] rng(lo, hi), distribution=rng_uniform
  r2 = f32[4] rng(lo, hi), distribution=rng_uniform
  s1 = f32[4] subtract(r1, r2)
  s2 = f32[4] subtract(r2, r1)
  ROOT t = (f32[4], f32[4]) tuple(s1, s2)
}
// CHECK: r1 = f32[4]{0} rng
// CHECK: r2 = f32[4]{0} rng
// CHECK: ROOT t = (f32[4]{0}, f32[4]{0}) tuple(s1, s2)
""", changed=False)


def test_calls_with_side_effects_are_not_merged() -> None:
    check_pass(CommonSubexpressionElimination(), """
HloModule m
noisy {
  p = f32[] parameter(0)
  lo = f32[] constant(0)
  r = f32[] rng(lo, p), distribution=rng_uniform
  ROOT s = f32[] add(r, p)
}
ENTRY main {
  x = f32[] parameter(0)
  c1 = f32[] call(x), to_apply=noisy
  c2 = f32[] call(x), to_apply=noisy
  ROOT t = (f32[], f32[]) tuple(c1, c2)
}
// CHECK: ROOT t = (f32[], f32[]) tuple(c1, c2)
""", changed=False)
