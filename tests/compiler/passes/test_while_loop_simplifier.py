"""WhileLoopSimplifier: zero-trip loops, invariant code motion, dead state elements."""

from __future__ import annotations

import numpy as np

import hlo
from compiler.passes import WhileLoopSimplifier
from compiler.pipeline import FixedPoint
from hlo.parser import parse
from tests.compiler.filecheck import check_pass, split

LOOP = """
HloModule m
cond {
  s = (s32[], f32[4], f32[4], f32[4]) parameter(0)
  i = s32[] get-tuple-element(s), index=0
  n = s32[] constant(START_LIMIT)
  ROOT lt = pred[] compare(i, n), direction=LT
}
body {
  s = (s32[], f32[4], f32[4], f32[4]) parameter(0)
  i = s32[] get-tuple-element(s), index=0
  x = f32[4] get-tuple-element(s), index=1
  w = f32[4] get-tuple-element(s), index=2
  d = f32[4] get-tuple-element(s), index=3
  one = s32[] constant(1)
  i1 = s32[] add(i, one)
  ew = f32[4] exponential(w)
  x1 = f32[4] add(x, ew)
  d1 = f32[4] add(d, x)
  ROOT next = (s32[], f32[4], f32[4], f32[4]) tuple(i1, x1, w, d1)
}
ENTRY main {
  x0 = f32[4] parameter(0)
  w0 = f32[4] parameter(1)
  zero = s32[] constant(0)
  z = f32[] constant(0)
  zb = f32[4] broadcast(z), dimensions={}
  init = (s32[], f32[4], f32[4], f32[4]) tuple(zero, x0, w0, zb)
  loop = (s32[], f32[4], f32[4], f32[4]) while(init), condition=cond, body=body
  ROOT out = f32[4] get-tuple-element(loop), index=1
}
"""


def _results(text: str, transform: bool) -> np.ndarray:
    source, _ = split(text)
    module = parse(source)
    if transform:
        FixedPoint(WhileLoopSimplifier()).run(module)
    args = [np.linspace(0, 1, 4, dtype=np.float32), np.linspace(-1, 1, 4, dtype=np.float32)]
    return hlo.evaluate(module, *args)[0]


def test_hoists_invariant_code_and_drops_dead_state() -> None:
    text = LOOP.replace("START_LIMIT", "3")
    check_pass(FixedPoint(WhileLoopSimplifier()), text + """
// CHECK: body
// CHECK-NOT: exponential
// CHECK: ROOT {{.*}} tuple(
// CHECK: ENTRY main
// CHECK: [[EW:ew.*]] = f32[4]{0} exponential(w0)
// CHECK: [[INIT:.*]] = (s32[], f32[4]{0}, f32[4]{0}) tuple(zero, x0, [[EW]])
// CHECK: [[LOOP:.*]] = (s32[], f32[4]{0}, f32[4]{0}) while([[INIT]])
// CHECK: ROOT out = f32[4]{0} get-tuple-element([[LOOP]]), index=1
""")
    np.testing.assert_allclose(_results(text, True), _results(text, False), rtol=1e-6)


def test_loop_that_never_runs_becomes_its_initial_state() -> None:
    text = LOOP.replace("START_LIMIT", "0")
    check_pass(WhileLoopSimplifier(), text + """
// CHECK-NOT: while(
// CHECK: ROOT out = f32[4]{0} get-tuple-element(init), index=1
""")
    np.testing.assert_array_equal(_results(text, True), _results(text, False))


def test_shared_body_is_copied_before_the_state_changes() -> None:
    text = LOOP.replace("START_LIMIT", "2").replace(
        "  ROOT out = f32[4] get-tuple-element(loop), index=1\n",
        "  loop2 = (s32[], f32[4], f32[4], f32[4]) while(init), condition=cond, body=body\n"
        "  a = f32[4] get-tuple-element(loop), index=1\n"
        "  b = f32[4] get-tuple-element(loop2), index=3\n"
        "  ROOT out = f32[4] add(a, b)\n")
    out = check_pass(FixedPoint(WhileLoopSimplifier()), text + """
// CHECK: ENTRY main
// CHECK: [[L1:.*]] = (s32[], f32[4]{0}, f32[4]{0}) while(
// CHECK: [[L2:.*]] = (s32[], f32[4]{0}, f32[4]{0}, f32[4]{0}) while(
// CHECK: get-tuple-element([[L2]]), index=2
""")
    bodies = {line.split("body=")[1] for line in out.splitlines() if " while(" in line}
    assert len(bodies) == 2, "each loop must end up with its own body"
    np.testing.assert_allclose(_results(text, True), _results(text, False), rtol=1e-6)


def test_loop_with_nothing_to_do_is_unchanged() -> None:
    check_pass(WhileLoopSimplifier(), """
HloModule m
cond {
  s = (s32[], f32[2]) parameter(0)
  i = s32[] get-tuple-element(s), index=0
  n = s32[] constant(4)
  ROOT lt = pred[] compare(i, n), direction=LT
}
body {
  s = (s32[], f32[2]) parameter(0)
  i = s32[] get-tuple-element(s), index=0
  x = f32[2] get-tuple-element(s), index=1
  one = s32[] constant(1)
  i1 = s32[] add(i, one)
  x1 = f32[2] sine(x)
  ROOT next = (s32[], f32[2]) tuple(i1, x1)
}
ENTRY main {
  x0 = f32[2] parameter(0)
  zero = s32[] constant(0)
  init = (s32[], f32[2]) tuple(zero, x0)
  ROOT loop = (s32[], f32[2]) while(init), condition=cond, body=body
}
// CHECK: ROOT loop = (s32[], f32[2]{0}) while(init), condition=cond, body=body
""", changed=False)


def test_condition_reading_a_parameter_element_is_not_decided_statically() -> None:
    text = LOOP.replace("START_LIMIT", "0").replace(
        "zero = s32[] constant(0)", "zero = s32[] parameter(2)")
    out = check_pass(FixedPoint(WhileLoopSimplifier()), text + """
// CHECK: while(
""")
    assert "exponential(w0)" in out
