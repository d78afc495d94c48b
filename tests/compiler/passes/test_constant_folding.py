"""ConstantFolding: FileCheck cases, what it deliberately leaves alone, size caps."""

from __future__ import annotations

from compiler.passes import ConstantFolding, FoldingOptions
from tests.compiler.filecheck import check_pass


def test_folds_arithmetic_over_constants() -> None:
    check_pass(ConstantFolding(), """
HloModule m
ENTRY main {
  a = f32[2] constant({1, 2})
  b = f32[2] constant({10, 20})
  s = f32[2] add(a, b)
  i = s32[2] convert(s)
  p = s32[2] parameter(0)
  ROOT r = s32[2] multiply(p, i)
}
// CHECK: [[C:constant.*]] = s32[2]{0} constant({11, 22})
// CHECK-NOT: add(
// CHECK-NOT: convert(
// CHECK: ROOT r = s32[2]{0} multiply(p, [[C]])
""")


def test_folds_reductions_through_the_evaluator() -> None:
    check_pass(ConstantFolding(), """
HloModule m
sum {
  x = s32[] parameter(0)
  y = s32[] parameter(1)
  ROOT z = s32[] add(x, y)
}
ENTRY main {
  a = s32[3] constant({1, 2, 4})
  zero = s32[] constant(0)
  ROOT r = s32[] reduce(a, zero), dimensions={0}, to_apply=sum
}
// CHECK: ROOT {{.*}} = s32[] constant(7)
""")


def test_leaves_broadcasts_and_iota_for_algsimp() -> None:
    check_pass(ConstantFolding(), """
HloModule m
ENTRY main {
  c = f32[] constant(2)
  b = f32[1000] broadcast(c), dimensions={}
  i = s32[1000] iota(), iota_dimension=0
  p = f32[1000] parameter(0)
  ci = f32[1000] convert(i)
  m = f32[1000] multiply(p, b)
  ROOT r = f32[1000] add(m, ci)
}
// CHECK: broadcast(c)
// CHECK: iota()
""", changed=False)


def test_result_size_cap() -> None:
    text = """
HloModule m
ENTRY main {
  a = f32[8] constant({1, 2, 3, 4, 5, 6, 7, 8})
  ROOT n = f32[8] negate(a)
}
// CHECK: ROOT n = f32[8]{0} negate(a)
"""
    check_pass(ConstantFolding(FoldingOptions(max_result_elements=4)), text, changed=False)


def test_keeps_random_and_control_flow() -> None:
    check_pass(ConstantFolding(), """
HloModule m
ENTRY main {
  lo = f32[] constant(0)
  hi = f32[] constant(1)
  r = f32[2] rng(lo, hi), distribution=rng_uniform
  ROOT t = (f32[2], f32[]) tuple(r, lo)
}
// CHECK: rng(lo, hi)
// CHECK: tuple(r, lo)
""", changed=False)
