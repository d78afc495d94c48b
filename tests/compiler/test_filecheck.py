"""The FileCheck helper itself: each directive matches and fails where LLVM's would."""

from __future__ import annotations

import pytest

from tests.compiler.filecheck import check, split

OUTPUT = """ENTRY main {
  p = f32[4]{0} parameter(0)
  n = f32[4]{0} negate(p)
  ROOT e = f32[4]{0} exponential(n)
}
"""


def run(checks: str) -> None:
    _, directives = split(checks)
    check(OUTPUT, directives)


def test_split_separates_hlo_from_directives() -> None:
    body, directives = split("a\n// CHECK: x\n// just a comment\nb\n  // CHECK-NEXT: y\n")
    assert body == "a\nb\n"
    assert [(d.kind, d.pattern) for d in directives] == [("CHECK", "x"), ("CHECK-NEXT", "y")]


def test_passing_directives() -> None:
    run("""
// CHECK: [[P:p]] = f32[4]{0} parameter(0)
// CHECK-NEXT: [[N:.*]] = f32[4]{0}
// CHECK-SAME: negate([[P]])
// CHECK-NOT: sine
// CHECK: exponential([[N]])
// CHECK-NOT: {{sine|cosine}}
""")


@pytest.mark.parametrize("checks, message", [
    ("// CHECK: sine", "does not match"),
    ("// CHECK: parameter\n// CHECK-NEXT: exponential", "on the expected line"),
    ("// CHECK: negate\n// CHECK-SAME: parameter", "on the expected line"),
    ("// CHECK: parameter\n// CHECK-NOT: negate\n// CHECK: exponential", "matched before"),
    ("// CHECK: negate\n// CHECK-NOT: exponential", "after the last positive match"),
    ("// CHECK: [[X:n]] = \n// CHECK: exponential([[X]])\n// CHECK: [[X]] =", "does not match"),
    ("// CHECK: exponential\n// CHECK: negate", "does not match"),
])
def test_failing_directives(checks: str, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        run(checks)


def test_undefined_capture() -> None:
    with pytest.raises(AssertionError, match="used before it is defined"):
        run("// CHECK: [[NOPE]]")
