"""ReshapeTransposeCanonicalizer: composition, no-op removal, transposes folded into dots."""

from __future__ import annotations

import numpy as np

import hlo
from compiler.passes import ReshapeTransposeCanonicalizer
from compiler.pipeline import FixedPoint
from hlo.parser import parse
from tests.compiler.filecheck import check_pass, split


def canonicalize(text: str, changed: bool = True) -> str:
    return check_pass(FixedPoint(ReshapeTransposeCanonicalizer()), text, changed=changed)


def test_transposes_compose_and_identity_vanishes() -> None:
    canonicalize("""
HloModule m
ENTRY main {
  x = f32[2,3,4] parameter(0)
  t1 = f32[4,2,3] transpose(x), dimensions={2,0,1}
  t2 = f32[2,3,4] transpose(t1), dimensions={1,2,0}
  t3 = f32[3,2,4] transpose(t2), dimensions={1,0,2}
  ROOT n = f32[3,2,4] negate(t3)
}
// CHECK: [[T:.*]] = f32[3,2,4]{2,1,0} transpose(x), dimensions={1,0,2}
// CHECK: ROOT n = f32[3,2,4]{2,1,0} negate([[T]])
""")


def test_transpose_of_unit_dimensions_is_a_reshape() -> None:
    canonicalize("""
HloModule m
ENTRY main {
  x = f32[1,5,1,3] parameter(0)
  ROOT t = f32[5,1,3,1] transpose(x), dimensions={1,0,3,2}
}
// CHECK: ROOT {{.*}} = f32[5,1,3,1]{3,2,1,0} reshape(x)
""")


def test_jax_broadcast_in_dim_pattern_collapses() -> None:
    canonicalize("""
HloModule m
ENTRY main {
  b = f32[32] parameter(0)
  r1 = f32[1,32] reshape(b)
  bb = f32[1,32] broadcast(r1), dimensions={0,1}
  r2 = f32[32] reshape(bb)
  ROOT out = f32[8,32] broadcast(r2), dimensions={1}
}
// CHECK: ROOT {{.*}} = f32[8,32]{1,0} broadcast(b), dimensions={1}
// CHECK-NOT: reshape
""")


def test_broadcasts_compose_and_reshapes_compose() -> None:
    canonicalize("""
HloModule m
ENTRY main {
  x = f32[3] parameter(0)
  b1 = f32[2,3] broadcast(x), dimensions={1}
  b2 = f32[4,2,3] broadcast(b1), dimensions={1,2}
  r1 = f32[24] reshape(b2)
  r2 = f32[6,4] reshape(r1)
  s = f32[] constant(1)
  bs = f32[6,4] broadcast(s), dimensions={}
  rs = f32[24] reshape(bs)
  r3 = f32[24] reshape(r2)
  ROOT a = f32[24] add(r3, rs)
}
// CHECK: [[B:.*]] = f32[4,2,3]{2,1,0} broadcast(x), dimensions={2}
// CHECK: [[R:.*]] = f32[24]{0} reshape([[B]])
// CHECK: [[S:.*]] = f32[24]{0} broadcast(s), dimensions={}
// CHECK: ROOT a = f32[24]{0} add([[R]], [[S]])
""")


DOT_WITH_TRANSPOSES = """
HloModule m
ENTRY main {
  a = f32[3,2] parameter(0)
  b = f32[4,3] parameter(1)
  at = f32[2,3] transpose(a), dimensions={1,0}
  bt = f32[3,4] transpose(b), dimensions={1,0}
  ROOT d = f32[2,4] dot(at, bt), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}
"""


def test_transposes_fold_into_dot_dimension_numbers() -> None:
    canonicalize(DOT_WITH_TRANSPOSES + """
// CHECK: ROOT {{.*}} = f32[2,4]{1,0} dot(a, b), lhs_contracting_dims={0}, rhs_contracting_dims={1}
// CHECK-NOT: transpose
""")
    source, _ = split(DOT_WITH_TRANSPOSES)
    module = parse(source)
    args = [np.arange(6, dtype=np.float32).reshape(3, 2),
            np.arange(12, dtype=np.float32).reshape(4, 3)]
    want = hlo.evaluate(module, *args)
    ReshapeTransposeCanonicalizer().run(module)
    np.testing.assert_array_equal(hlo.evaluate(module, *args)[0], want[0])


def test_transpose_that_would_reorder_dot_output_stays() -> None:
    canonicalize("""
HloModule m
ENTRY main {
  a = f32[2,3,5] parameter(0)
  b = f32[5,4] parameter(1)
  at = f32[3,2,5] transpose(a), dimensions={1,0,2}
  ROOT d = f32[3,2,4] dot(at, b), lhs_contracting_dims={2}, rhs_contracting_dims={0}
}
// CHECK: at = f32[3,2,5]{2,1,0} transpose(a)
// CHECK: ROOT d = f32[3,2,4]{2,1,0} dot(at, b)
""", changed=False)
