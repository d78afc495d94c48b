"""TupleSimplifier: elements forwarded, rebuilt tuples removed, partial tuples kept."""

from __future__ import annotations

from compiler.passes import TupleSimplifier
from tests.compiler.filecheck import check_pass


def test_forwards_elements_and_drops_rebuilt_tuples() -> None:
    check_pass(TupleSimplifier(), """
HloModule m
ENTRY main {
  a = f32[2] parameter(0)
  b = s32[] parameter(1)
  t = (f32[2], s32[]) tuple(a, b)
  g0 = f32[2] get-tuple-element(t), index=0
  g1 = s32[] get-tuple-element(t), index=1
  p = (f32[2], s32[]) parameter(2)
  q0 = f32[2] get-tuple-element(p), index=0
  q1 = s32[] get-tuple-element(p), index=1
  again = (f32[2], s32[]) tuple(q0, q1)
  n = f32[2] negate(g0)
  ROOT r = ((f32[2], s32[]), f32[2], s32[]) tuple(again, n, g1)
}
// CHECK: [[N:n]] = f32[2]{0} negate(a)
// CHECK: ROOT r = {{.*}} tuple(p, [[N]], b)
""")


def test_partial_or_reordered_tuples_stay() -> None:
    check_pass(TupleSimplifier(), """
HloModule m
ENTRY main {
  p = (f32[2], f32[2]) parameter(0)
  q0 = f32[2] get-tuple-element(p), index=0
  q1 = f32[2] get-tuple-element(p), index=1
  ROOT swapped = (f32[2], f32[2]) tuple(q1, q0)
}
// CHECK: ROOT swapped = (f32[2]{0}, f32[2]{0}) tuple(q1, q0)
""", changed=False)
