"""CallInliner: calls replaced by their bodies, nested and shared callees, no change."""

from __future__ import annotations

from compiler.passes import CallInliner
from tests.compiler.filecheck import check_pass


def test_inlines_nested_and_shared_callees() -> None:
    check_pass(CallInliner(), """
HloModule m
relu {
  x = f32[4] parameter(0)
  z = f32[] constant(0)
  zb = f32[4] broadcast(z), dimensions={}
  ROOT r = f32[4] maximum(x, zb)
}
twice {
  y = f32[4] parameter(0)
  a = f32[4] call(y), to_apply=relu
  n = f32[4] negate(a)
  ROOT b = f32[4] call(n), to_apply=relu
}
ENTRY main {
  p = f32[4] parameter(0)
  c1 = f32[4] call(p), to_apply=twice
  ROOT c2 = f32[4] call(c1), to_apply=relu
}
// CHECK-NOT: relu {
// CHECK-NOT: twice {
// CHECK: ENTRY main
// CHECK: p = f32[4]{0} parameter(0)
// CHECK: [[R1:r.*]] = f32[4]{0} maximum(p,
// CHECK: [[N:n.*]] = f32[4]{0} negate([[R1]])
// CHECK: [[R2:r.*]] = f32[4]{0} maximum([[N]],
// CHECK: ROOT {{.*}} = f32[4]{0} maximum([[R2]],
// CHECK-NOT: call(
""")


def test_multi_parameter_callee_binds_by_number() -> None:
    check_pass(CallInliner(), """
HloModule m
sub {
  b = f32[] parameter(1)
  a = f32[] parameter(0)
  ROOT d = f32[] subtract(a, b)
}
ENTRY main {
  x = f32[] parameter(0)
  y = f32[] parameter(1)
  ROOT c = f32[] call(x, y), to_apply=sub
}
// CHECK: ROOT {{.*}} = f32[] subtract(x, y)
""")


def test_no_calls_no_change() -> None:
    check_pass(CallInliner(), """
HloModule m
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
// CHECK: to_apply=add
""", changed=False)
