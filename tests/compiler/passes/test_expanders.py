"""BatchNormExpander: each batch-norm kind expanded (or not), values kept."""

from __future__ import annotations

import numpy as np
import pytest

import hlo
from compiler.passes import BatchNormExpander, BatchNormOptions
from hlo.parser import parse
from tests.compiler.filecheck import check_pass, split

TRAINING = """
HloModule m
ENTRY main {
  x = TYPE[2,3,4] parameter(0)
  scale = TYPE[3] parameter(1)
  offset = TYPE[3] parameter(2)
  ROOT bn = (TYPE[2,3,4], TYPE[3], TYPE[3]) batch-norm-training(x, scale, offset),
    epsilon=0.001, feature_index=1
}
"""

INFERENCE = """
HloModule m
ENTRY main {
  x = f32[2,3,4] parameter(0)
  scale = f32[4] parameter(1)
  offset = f32[4] parameter(2)
  mean = f32[4] parameter(3)
  var = f32[4] parameter(4)
  ROOT bn = f32[2,3,4] batch-norm-inference(x, scale, offset, mean, var),
    epsilon=0.01, feature_index=2
}
"""

GRAD = """
HloModule m
ENTRY main {
  x = f32[5,3] parameter(0)
  scale = f32[3] parameter(1)
  mean = f32[3] parameter(2)
  var = f32[3] parameter(3)
  dy = f32[5,3] parameter(4)
  ROOT bn = (f32[5,3], f32[3], f32[3]) batch-norm-grad(x, scale, mean, var, dy),
    epsilon=0.001, feature_index=1
}
"""


def _inputs(module: hlo.HloModule) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    args = []
    for p in module.entry_computation.parameters:
        values = rng.uniform(0.5, 2.0, p.shape.dims)
        args.append(values.astype(p.shape.element_type.numpy))
    return args


REDUCES = "// CHECK-NOT: batch-norm\n// CHECK: reduce(\n"
NO_REDUCE = "// CHECK-NOT: batch-norm\n// CHECK-NOT: reduce(\n// CHECK: rsqrt(\n"


@pytest.mark.parametrize("text, checks, rtol", [
    (TRAINING.replace("TYPE", "f32"), REDUCES, 1e-5),
    (TRAINING.replace("TYPE", "f16"), REDUCES, 2e-3),
    (INFERENCE, NO_REDUCE, 1e-5),
    (GRAD, REDUCES, 1e-4),
], ids=["training-f32", "training-f16", "inference", "grad"])
def test_expansion_matches_the_evaluator(text: str, checks: str, rtol: float) -> None:
    check_pass(BatchNormExpander(), text + checks)
    module = parse(split(text)[0])
    args = _inputs(module)
    want = hlo.evaluate(module, *args)
    BatchNormExpander().run(module)
    got = hlo.evaluate(module, *args)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype
        np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=rtol,
                                   atol=rtol)


def test_low_precision_is_computed_in_f32() -> None:
    check_pass(BatchNormExpander(), TRAINING.replace("TYPE", "bf16") + """
// CHECK: f32[2,3,4]{2,1,0} convert(x)
// CHECK: ROOT {{.*}} = (bf16[2,3,4]{2,1,0}, bf16[3]{0}, bf16[3]{0}) tuple(
""")


def test_each_kind_can_be_kept() -> None:
    keep_training = BatchNormExpander(BatchNormOptions(training=False))
    check_pass(keep_training, TRAINING.replace("TYPE", "f32") + """
// CHECK: batch-norm-training(x, scale, offset)
""", changed=False)
    check_pass(BatchNormExpander(BatchNormOptions(inference=False)), INFERENCE + """
// CHECK: batch-norm-inference
""", changed=False)
    check_pass(BatchNormExpander(BatchNormOptions(grad=False)), GRAD + """
// CHECK: batch-norm-grad
""", changed=False)
