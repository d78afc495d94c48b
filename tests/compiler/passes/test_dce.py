"""DeadCodeElimination: FileCheck cases, no change, idempotence."""

from __future__ import annotations

from compiler.passes import DeadCodeElimination
from tests.compiler.filecheck import check_pass


def test_removes_unused_instructions_and_keeps_parameters() -> None:
    check_pass(DeadCodeElimination(), """
HloModule m
ENTRY main {
  p = f32[4] parameter(0)
  unused = f32[] parameter(1)
  dead = f32[4] exponential(p)
  dead2 = f32[4] add(dead, p)
  ROOT neg = f32[4] negate(p)
}
// CHECK: ENTRY main
// CHECK-NEXT: p = f32[4]{0} parameter(0)
// CHECK-NEXT: unused = f32[] parameter(1)
// CHECK-NEXT: ROOT neg
// CHECK-NOT: exponential
// CHECK-NOT: dead2
""")


def test_removes_computations_nobody_calls() -> None:
    check_pass(DeadCodeElimination(), """
HloModule m
orphan {
  a = f32[] parameter(0)
  ROOT b = f32[] negate(a)
}
add {
  x = f32[] parameter(0)
  y = f32[] parameter(1)
  ROOT s = f32[] add(x, y)
}
ENTRY main {
  p = f32[4] parameter(0)
  z = f32[] constant(0)
  ROOT r = f32[] reduce(p, z), dimensions={0}, to_apply=add
}
// CHECK-NOT: orphan
// CHECK: add {
// CHECK: ENTRY main
""")


def test_keeps_side_effects() -> None:
    check_pass(DeadCodeElimination(), """
HloModule m
ENTRY main {
  lo = f32[] constant(0)
  hi = f32[] constant(1)
  noise = f32[4] rng(lo, hi), distribution=rng_uniform
  ROOT p = f32[4] parameter(0)
}
// CHECK: rng(lo, hi)
""", changed=False)


def test_no_change_on_live_module() -> None:
    check_pass(DeadCodeElimination(), """
HloModule m
ENTRY main {
  p = f32[4] parameter(0)
  ROOT e = f32[4] exponential(p)
}
// CHECK: ROOT e = f32[4]{0} exponential(p)
""", changed=False)
