"""InstructionFusion: loop, input, output and sibling fusion; refusals and explanations.

`explain()` describes the last run, so the cases that read it skip check_pass's second
(idempotence) run; the others keep it.
"""

from __future__ import annotations

from compiler.passes import FusionOptions, InstructionFusion
from tests.compiler.filecheck import check_pass

ADD = """
add {
  x = f32[] parameter(0)
  y = f32[] parameter(1)
  ROOT s = f32[] add(x, y)
}
"""


def test_elementwise_chain_becomes_one_loop_fusion() -> None:
    check_pass(InstructionFusion(), """
HloModule m
ENTRY main {
  a = f32[8] parameter(0)
  b = f32[8] parameter(1)
  s = f32[8] add(a, b)
  e = f32[8] exponential(s)
  c = f32[] constant(2)
  cb = f32[8] broadcast(c), dimensions={}
  ROOT m = f32[8] multiply(e, cb)
}
// CHECK: fused_computation {
// CHECK: add(
// CHECK: exponential(
// CHECK: ROOT {{.*}} multiply(
// CHECK: ENTRY main
// CHECK: ROOT {{.*}} = f32[8]{0} fusion(a, b), kind=kLoop, calls=fused_computation
""")


def test_producers_fuse_into_a_reduction() -> None:
    check_pass(InstructionFusion(), f"""
HloModule m
{ADD}
ENTRY main {{
  a = f32[4,8] parameter(0)
  sq = f32[4,8] multiply(a, a)
  z = f32[] constant(0)
  ROOT r = f32[4] reduce(sq, z), dimensions={{1}}, to_apply=add
}}
// CHECK: fused_computation {{
// CHECK: multiply(
// CHECK: ROOT {{{{.*}}}} reduce(
// CHECK: ENTRY main
// CHECK: ROOT {{{{.*}}}} fusion(a), kind=kInput
""")


def test_dot_fuses_with_bias_and_activation() -> None:
    fusion = InstructionFusion()
    check_pass(fusion, """
HloModule m
ENTRY main {
  x = f32[2,3] parameter(0)
  w = f32[3,4] parameter(1)
  b = f32[4] parameter(2)
  d = f32[2,4] dot(x, w), lhs_contracting_dims={1}, rhs_contracting_dims={0}
  bb = f32[2,4] broadcast(b), dimensions={1}
  s = f32[2,4] add(d, bb)
  z = f32[] constant(0)
  zb = f32[2,4] broadcast(z), dimensions={}
  ROOT r = f32[2,4] maximum(s, zb)
}
// CHECK: fused_computation {
// CHECK: dot(
// CHECK: ROOT {{.*}} maximum(
// CHECK: ROOT {{.*}} fusion(x, w, b), kind=kOutput
""", idempotent=False)
    assert "fused: d into the fusion of r: output fusion" in fusion.explain()


def test_expensive_producer_used_twice_is_not_duplicated_and_says_why() -> None:
    fusion = InstructionFusion()
    check_pass(fusion, """
HloModule m
ENTRY main {
  a = f32[8] parameter(0)
  e = f32[8] exponential(a)
  n = f32[8] negate(e)
  s = f32[8] sine(e)
  ROOT t = (f32[8], f32[8]) tuple(n, s)
}
// CHECK: ENTRY main
// CHECK: e = f32[8]{0} exponential(a)
// CHECK-NOT: exponential
""", changed=False, idempotent=False)
    assert "not fused: e into the fusion of s: producer is an expensive op used 2 times" in \
        fusion.explain()


def test_cheap_producer_is_duplicated_into_each_consumer() -> None:
    fusion = InstructionFusion(FusionOptions(multi_output=False))
    out = check_pass(fusion, """
HloModule m
ENTRY main {
  a = f32[8] parameter(0)
  n = f32[8] negate(a)
  e = f32[8] exponential(n)
  s = f32[8] sine(n)
  ROOT t = (f32[8], f32[8]) tuple(e, s)
}
// CHECK: ENTRY main
// CHECK-NOT: negate
// CHECK: ROOT t = {{.*}} tuple(
""", idempotent=False)
    assert out.count("negate(") == 2
    assert "duplicated: n into the fusion of" in fusion.explain()


def test_expensive_producer_is_not_recomputed_per_broadcast_copy() -> None:
    fusion = InstructionFusion()
    check_pass(fusion, """
HloModule m
ENTRY main {
  a = f32[8] parameter(0)
  e = f32[8] exponential(a)
  b = f32[100,8] broadcast(e), dimensions={1}
  p = f32[100,8] parameter(1)
  ROOT m = f32[100,8] multiply(b, p)
}
// CHECK: e = f32[8]{0} exponential(a)
// CHECK: ROOT {{.*}} fusion(e, p), kind=kLoop
""", idempotent=False)
    assert "broadcasts it: it would be recomputed for every copy" in fusion.explain()


def test_sibling_reductions_of_one_input_share_a_fusion() -> None:
    fusion = InstructionFusion()
    check_pass(fusion, f"""
HloModule m
{ADD}
ENTRY main {{
  a = f32[4,8] parameter(0)
  z = f32[] constant(0)
  sq = f32[4,8] multiply(a, a)
  r1 = f32[4] reduce(sq, z), dimensions={{1}}, to_apply=add
  ab = f32[4,8] abs(a)
  r2 = f32[4] reduce(ab, z), dimensions={{1}}, to_apply=add
  ROOT t = (f32[4], f32[4]) tuple(r1, r2)
}}
// CHECK: ROOT {{{{.*}}}} = (f32[4]{{0}}, f32[4]{{0}}) tuple(
// CHECK: ENTRY main
// CHECK: [[F:.*]] = (f32[4]{{0}}, f32[4]{{0}}) fusion(a), kind=kInput
// CHECK: get-tuple-element([[F]]), index={{{{[01]}}}}
// CHECK: get-tuple-element([[F]]), index={{{{[01]}}}}
""", idempotent=False)
    assert "merged:" in fusion.explain()


def test_siblings_over_different_shapes_stay_apart() -> None:
    fusion = InstructionFusion()
    check_pass(fusion, f"""
HloModule m
{ADD}
ENTRY main {{
  a = f32[4,8] parameter(0)
  z = f32[] constant(0)
  sq = f32[4,8] multiply(a, a)
  r1 = f32[4] reduce(sq, z), dimensions={{1}}, to_apply=add
  ab = f32[4,8] abs(a)
  r2 = f32[8] reduce(ab, z), dimensions={{0}}, to_apply=add
  ROOT t = (f32[4], f32[8]) tuple(r1, r2)
}}
// CHECK: ENTRY main
// CHECK: f32[4]{{0}} fusion(a), kind=kInput
// CHECK: f32[8]{{0}} fusion(a), kind=kInput
""", idempotent=False)
    assert "not merged" in fusion.explain()


def test_reducer_computations_are_never_fused_into() -> None:
    check_pass(InstructionFusion(), """
HloModule m
add_clamped {
  x = f32[] parameter(0)
  y = f32[] parameter(1)
  s = f32[] add(x, y)
  ROOT e = f32[] exponential(s)
}
ENTRY main {
  a = f32[8] parameter(0)
  z = f32[] constant(0)
  ROOT r = f32[] reduce(a, z), dimensions={0}, to_apply=add_clamped
}
// CHECK: add_clamped {
// CHECK-NEXT: x = f32[] parameter(0)
// CHECK-NEXT: y = f32[] parameter(1)
// CHECK-NEXT: s = f32[] add(x, y)
// CHECK-NEXT: ROOT e = f32[] exponential(s)
""")


def test_nothing_to_fuse() -> None:
    check_pass(InstructionFusion(), """
HloModule m
ENTRY main {
  x = f32[2,3] parameter(0)
  w = f32[3,4] parameter(1)
  ROOT d = f32[2,4] dot(x, w), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}
// CHECK: ROOT d = f32[2,4]{1,0} dot(x, w)
""", changed=False)


def test_expensive_producer_of_a_duplicated_consumer_is_not_duplicated() -> None:
    fusion = InstructionFusion(FusionOptions(multi_output=False))
    out = check_pass(fusion, """
HloModule m
ENTRY main {
  a = f32[8] parameter(0)
  e = f32[8] exponential(a)
  n = f32[8] negate(e)
  s = f32[8] sine(n)
  ROOT t = (f32[8], f32[8]) tuple(n, s)
}
// CHECK: ENTRY main
// CHECK: ROOT t = {{.*}} tuple(
""", idempotent=False)
    assert out.count("exponential(") == 1
    assert "not fused: e into the fusion of s: producer is expensive and its consumer n stays " \
           "outside the fusion too" in fusion.explain()
