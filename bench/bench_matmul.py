"""f32 matrix multiply 2048 x 2048 x 2048 (one HLO dot), against FP32 peak.

2 * 2048^3 = 17.2 GFLOP per call. numpy calls OpenBLAS (with OPENBLAS_CORETYPE removed from
the environment by bench/__main__.py, so that it picks the kernels of this CPU), JAX calls
XLA's CPU dot, and tfcompile runs its own emitted kernel.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.harness import Case, Metric, numpy_contender, tfcompile_contender
from bench.peers import Peers

SIZE = 2048
# Float32 sums of 2048 products carry errors of order sqrt(2048) ulp of the row norm.
TOLERANCE = 1e-4

HLO = f"""HloModule matmul_{SIZE}

ENTRY main {{
  a = f32[{SIZE},{SIZE}]{{1,0}} parameter(0)
  b = f32[{SIZE},{SIZE}]{{1,0}} parameter(1)
  ROOT c = f32[{SIZE},{SIZE}]{{1,0}} dot(a, b),
      lhs_contracting_dims={{1}}, rhs_contracting_dims={{0}}
}}
"""


def matmul(xp: Any, a: Any, b: Any) -> Any:
    """a @ b in any array namespace (the namespace is unused: @ dispatches on the arrays)."""
    del xp
    return a @ b


def onnx_nodes(onnx: Any) -> list[Any]:
    """One ONNX MatMul on in0, in1."""
    return [onnx.helper.make_node("MatMul", ["in0", "in1"], ["out"])]


def cases(peers: Peers) -> list[Case]:
    """The one matmul case."""
    rng = np.random.default_rng(2)
    a = rng.uniform(-1.0, 1.0, (SIZE, SIZE)).astype(np.float32)
    b = rng.uniform(-1.0, 1.0, (SIZE, SIZE)).astype(np.float32)
    case = Case(
        name="matmul",
        description=f"f32 {SIZE}x{SIZE} @ {SIZE}x{SIZE} (HLO dot)",
        metric=Metric("flops", 2 * SIZE**3),
        reference=a.astype(np.float64) @ b.astype(np.float64),
        tolerance=TOLERANCE,
    )
    case.add(lambda: tfcompile_contender(HLO, [a, b]), "tfcompile")
    case.add(lambda: numpy_contender(matmul, [a, b]), "numpy")
    case.add(lambda: peers.jax_contender(matmul, [a, b]), "jax")
    case.add(lambda: peers.torch_contender(matmul, [a, b]), "torch")
    case.add(lambda: peers.torch_contender(matmul, [a, b], compiled=True), "torch.compile")
    case.add(lambda: peers.onnx_contender(onnx_nodes, [a, b], [SIZE, SIZE]), "onnxruntime")
    return [case]
