"""AlgebraicSimplifier: rules by family (FileCheck), fast-math on and off, the rule table."""

from __future__ import annotations

import pytest

from compiler.passes import AlgebraicSimplifier, AlgsimpOptions
from compiler.passes.algsimp_rules import FAMILIES, load_rules
from compiler.pipeline import FixedPoint
from tests.compiler.filecheck import check_pass


def simplify(text: str, changed: bool = True, reassociate: bool = False) -> str:
    return check_pass(FixedPoint(AlgebraicSimplifier(AlgsimpOptions(reassociate))), text,
                      changed=changed)


def test_every_rule_documents_its_rewrite() -> None:
    table = load_rules()
    assert len(FAMILIES) >= 5
    for rules in table.values():
        for r in rules:
            assert "=>" in r.rewrite, f"{r.name}: docstring must be the rewrite"


def test_constants_move_right_and_identities_vanish() -> None:
    simplify("""
HloModule m
ENTRY main {
  p = f32[4] parameter(0)
  z = f32[] constant(0)
  zb = f32[4] broadcast(z), dimensions={}
  a = f32[4] add(zb, p)
  o = f32[] constant(1)
  ob = f32[4] broadcast(o), dimensions={}
  m = f32[4] multiply(ob, a)
  d = f32[4] divide(m, ob)
  ROOT s = f32[4] subtract(d, zb)
}
// CHECK: ENTRY main
// CHECK-NEXT: ROOT p = f32[4]{0} parameter(0)
""")


def test_canonical_form_alone_swaps_operands_in_place() -> None:
    simplify("""
HloModule m
ENTRY main {
  p = f32[4] parameter(0)
  c = f32[] constant(3)
  cb = f32[4] broadcast(c), dimensions={}
  ROOT m = f32[4] multiply(cb, p)
}
// CHECK: ROOT m = f32[4]{0} multiply(p, cb)
""")


def test_compare_with_constant_on_the_left_mirrors_direction() -> None:
    simplify("""
HloModule m
ENTRY main {
  p = s32[] parameter(0)
  c = s32[] constant(3)
  ROOT lt = pred[] compare(c, p), direction=LT
}
// CHECK: ROOT lt = pred[] compare(p, c), direction=GT
""")


def test_multiply_by_zero_only_folds_for_integers() -> None:
    out = simplify("""
HloModule m
ENTRY main {
  i = s32[4] parameter(0)
  f = f32[4] parameter(1)
  zi = s32[4] constant({0, 0, 0, 0})
  zf = f32[4] constant({0, 0, 0, 0})
  mi = s32[4] multiply(i, zi)
  mf = f32[4] multiply(f, zf)
  ROOT t = (s32[4], f32[4]) tuple(mi, mf)
}
// CHECK: mf = f32[4]{0} multiply(f, zf)
// CHECK: ROOT t = {{.*}} tuple(zi, mf)
""")
    assert "mi =" not in out


def test_integer_identities_that_would_be_wrong_for_floats() -> None:
    simplify("""
HloModule m
ENTRY main {
  i = s32[] parameter(0)
  f = f32[] parameter(1)
  si = s32[] subtract(i, i)
  sf = f32[] subtract(f, f)
  ci = pred[] compare(i, i), direction=LE
  cf = pred[] compare(f, f), direction=LE
  ROOT t = (s32[], f32[], pred[], pred[]) tuple(si, sf, ci, cf)
}
// CHECK: sf = f32[] subtract(f, f)
// CHECK: cf = pred[] compare(f, f), direction=LE
// CHECK: [[Z:constant.*]] = s32[] constant(0)
// CHECK: [[T:constant.*]] = pred[] constant(true)
// CHECK: tuple([[Z]], sf, [[T]], cf)
""")


def test_double_negation_and_not_of_compare() -> None:
    simplify("""
HloModule m
ENTRY main {
  x = f32[4] parameter(0)
  n1 = f32[4] negate(x)
  n2 = f32[4] negate(n1)
  a = s32[] parameter(1)
  b = s32[] parameter(2)
  lt = pred[] compare(a, b), direction=LT
  nt = pred[] not(lt)
  ROOT t = (f32[4], pred[]) tuple(n2, nt)
}
// CHECK: [[GE:.*]] = pred[] compare(a, b), direction=GE
// CHECK: tuple(x, [[GE]])
""")


def test_select_on_constant_predicate_and_same_branches() -> None:
    simplify("""
HloModule m
ENTRY main {
  a = f32[2] parameter(0)
  b = f32[2] parameter(1)
  p = pred[2] parameter(2)
  t = pred[2] constant({1, 1})
  s1 = f32[2] select(t, a, b)
  s2 = f32[2] select(p, b, b)
  np = pred[2] not(p)
  s3 = f32[2] select(np, a, b)
  ROOT r = (f32[2], f32[2], f32[2]) tuple(s1, s2, s3)
}
// CHECK: [[S:.*]] = f32[2]{0} select(p, b, a)
// CHECK: tuple(a, b, [[S]])
""")


def test_broadcasts_sink_below_elementwise_ops() -> None:
    simplify("""
HloModule m
ENTRY main {
  a = f32[3] parameter(0)
  b = f32[3] parameter(1)
  ba = f32[2,3] broadcast(a), dimensions={1}
  bb = f32[2,3] broadcast(b), dimensions={1}
  e = f32[2,3] exponential(ba)
  ROOT m = f32[2,3] multiply(e, bb)
}
// CHECK: [[E:.*]] = f32[3]{0} exponential(a)
// CHECK: [[M:.*]] = f32[3]{0} multiply([[E]], b)
// CHECK: ROOT {{.*}} = f32[2,3]{1,0} broadcast([[M]]), dimensions={1}
""")


def test_nested_slices_compose_and_no_op_movement_vanishes() -> None:
    simplify("""
HloModule m
ENTRY main {
  x = f32[10] parameter(0)
  s1 = f32[8] slice(x), slice={[1:9]}
  s2 = f32[3] slice(s1), slice={[2:8:2]}
  whole = f32[3] slice(s2), slice={[0:3]}
  z = f32[] constant(0)
  pd = f32[3] pad(whole, z), padding=0_0
  r = f32[3] reverse(pd), dimensions={}
  c = f32[3] concatenate(r), dimensions={0}
  ROOT rr = f32[3] reverse(c), dimensions={}
}
// CHECK: ROOT {{.*}} = f32[3]{0} slice(x), slice={[3:8:2]}
""")


def test_reductions_over_nothing_or_single_elements() -> None:
    simplify("""
HloModule m
add {
  x = f32[] parameter(0)
  y = f32[] parameter(1)
  ROOT s = f32[] add(x, y)
}
ENTRY main {
  e = f32[0,3] parameter(0)
  one = f32[1,3] parameter(1)
  init = f32[] parameter(2)
  zero = f32[] constant(0)
  r1 = f32[3] reduce(e, init), dimensions={0}, to_apply=add
  r2 = f32[3] reduce(one, zero), dimensions={0}, to_apply=add
  ROOT t = (f32[3], f32[3]) tuple(r1, r2)
}
// CHECK: [[B:.*]] = f32[3]{0} broadcast(init), dimensions={}
// CHECK: [[R:.*]] = f32[3]{0} reshape(one)
// CHECK: tuple([[B]], [[R]])
""")


def test_reduction_with_non_identity_init_is_kept() -> None:
    simplify("""
HloModule m
add {
  x = f32[] parameter(0)
  y = f32[] parameter(1)
  ROOT s = f32[] add(x, y)
}
ENTRY main {
  one = f32[1,3] parameter(0)
  init = f32[] constant(5)
  ROOT r = f32[3] reduce(one, init), dimensions={0}, to_apply=add
}
// CHECK: ROOT r = f32[3]{0} reduce(one, init)
""", changed=False)


FLOAT_CHAIN = """
HloModule m
ENTRY main {
  x = f32[4] parameter(0)
  c1 = f32[4] constant({1, 1, 1, 1})
  c2 = f32[4] constant({2, 2, 2, 2})
  a1 = f32[4] add(x, c1)
  a2 = f32[4] add(a1, c2)
  y = f32[4] parameter(1)
  s = f32[4] add(a2, y)
  ROOT d = f32[4] subtract(s, y)
}
"""


def test_float_reassociation_is_off_by_default() -> None:
    simplify(FLOAT_CHAIN + """
// CHECK: a1 = f32[4]{0} add(x, c1)
// CHECK: a2 = f32[4]{0} add(a1, c2)
// CHECK: ROOT d = f32[4]{0} subtract(s, y)
""", changed=False)


def test_float_reassociation_when_asked() -> None:
    simplify(FLOAT_CHAIN + """
// CHECK: [[C:.*]] = f32[4]{0} add(c1, c2)
// CHECK: ROOT {{.*}} = f32[4]{0} add(x, [[C]])
// CHECK-NOT: subtract
""", reassociate=True)


@pytest.mark.parametrize("reassociate", [False, True])
def test_integer_reassociation_is_always_exact(reassociate: bool) -> None:
    simplify("""
HloModule m
ENTRY main {
  x = s32[] parameter(0)
  y = s32[] parameter(1)
  c1 = s32[] constant(2147483647)
  c2 = s32[] constant(5)
  a1 = s32[] add(x, c1)
  a2 = s32[] add(a1, c2)
  s = s32[] subtract(a2, y)
  ROOT back = s32[] add(s, y)
}
// CHECK: [[C:.*]] = s32[] add(c1, c2)
// CHECK: ROOT {{.*}} = s32[] add(x, [[C]])
""", reassociate=reassociate)


def test_power_rules() -> None:
    simplify("""
HloModule m
ENTRY main {
  x = f32[] parameter(0)
  zero = f32[] constant(0)
  one = f32[] constant(1)
  two = f32[] constant(2)
  p0 = f32[] power(x, zero)
  p1 = f32[] power(x, one)
  p2 = f32[] power(x, two)
  ROOT t = (f32[], f32[], f32[]) tuple(p0, p1, p2)
}
// CHECK: [[SQ:.*]] = f32[] multiply(x, x)
// CHECK: tuple({{.*}}, x, [[SQ]])
// CHECK-NOT: power
""")


def test_combiner_with_metadata_is_still_recognised() -> None:
    simplify("""
HloModule m
max {
  x = f32[] parameter(0)
  y = f32[] parameter(1)
  ROOT s = f32[] maximum(x, y), metadata={op_name="reduce_max"}
}
ENTRY main {
  one = f32[2,1] parameter(0)
  low = f32[] constant(-inf)
  ROOT r = f32[2] reduce(one, low), dimensions={1}, to_apply=max
}
// CHECK: ROOT {{.*}} = f32[2]{0} reshape(one)
""")
