"""MLP 784-256-256-10 inference (f32, relu) at batch 1 and batch 256, against FP32 peak.

    logits = relu(relu(x @ w1 + b1) @ w2 + b2) @ w3 + b3

The HLO uses dot, broadcast (of the biases and of the zero), add and maximum, as JAX prints
it. Weights are parameters, so every contender reads the same buffers on every call. The
work counted is the dots' 2 * batch * (784*256 + 256*256 + 256*10) flops; at batch 1 that is
half a megaflop, and the time is mostly call overhead and reading 1.1 MB of weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.harness import Case, Metric, numpy_contender, tfcompile_contender
from bench.peers import Peers

LAYERS = (784, 256, 256, 10)
BATCHES = (1, 256)
TOLERANCE = 1e-5


def hlo(batch: int) -> str:
    """The MLP as HLO text; parameters are x, then w and b of each layer."""
    n0, n1, n2, n3 = LAYERS
    return f"""HloModule mlp_b{batch}

ENTRY main {{
  x = f32[{batch},{n0}]{{1,0}} parameter(0)
  w1 = f32[{n0},{n1}]{{1,0}} parameter(1)
  b1 = f32[{n1}]{{0}} parameter(2)
  w2 = f32[{n1},{n2}]{{1,0}} parameter(3)
  b2 = f32[{n2}]{{0}} parameter(4)
  w3 = f32[{n2},{n3}]{{1,0}} parameter(5)
  b3 = f32[{n3}]{{0}} parameter(6)
  zero = f32[] constant(0)
  d1 = f32[{batch},{n1}]{{1,0}} dot(x, w1), lhs_contracting_dims={{1}}, rhs_contracting_dims={{0}}
  b1.b = f32[{batch},{n1}]{{1,0}} broadcast(b1), dimensions={{1}}
  a1 = f32[{batch},{n1}]{{1,0}} add(d1, b1.b)
  zero.1 = f32[{batch},{n1}]{{1,0}} broadcast(zero), dimensions={{}}
  h1 = f32[{batch},{n1}]{{1,0}} maximum(a1, zero.1)
  d2 = f32[{batch},{n2}]{{1,0}} dot(h1, w2), lhs_contracting_dims={{1}}, rhs_contracting_dims={{0}}
  b2.b = f32[{batch},{n2}]{{1,0}} broadcast(b2), dimensions={{1}}
  a2 = f32[{batch},{n2}]{{1,0}} add(d2, b2.b)
  zero.2 = f32[{batch},{n2}]{{1,0}} broadcast(zero), dimensions={{}}
  h2 = f32[{batch},{n2}]{{1,0}} maximum(a2, zero.2)
  d3 = f32[{batch},{n3}]{{1,0}} dot(h2, w3), lhs_contracting_dims={{1}}, rhs_contracting_dims={{0}}
  b3.b = f32[{batch},{n3}]{{1,0}} broadcast(b3), dimensions={{1}}
  ROOT logits = f32[{batch},{n3}]{{1,0}} add(d3, b3.b)
}}
"""


def mlp(xp: Any, x: Any, w1: Any, b1: Any, w2: Any, b2: Any, w3: Any, b3: Any) -> Any:
    """The MLP with the array namespace `xp` (numpy, jax.numpy or torch)."""
    h1 = xp.maximum(x @ w1 + b1, xp.zeros_like(b1))
    h2 = xp.maximum(h1 @ w2 + b2, xp.zeros_like(b2))
    return h2 @ w3 + b3


def onnx_nodes(onnx: Any) -> list[Any]:
    """The MLP as ONNX nodes on inputs in0 (x), in1..in6 (w1, b1, ...), output out."""
    helper = onnx.helper
    return [
        helper.make_node("MatMul", ["in0", "in1"], ["d1"]),
        helper.make_node("Add", ["d1", "in2"], ["a1"]),
        helper.make_node("Relu", ["a1"], ["h1"]),
        helper.make_node("MatMul", ["h1", "in3"], ["d2"]),
        helper.make_node("Add", ["d2", "in4"], ["a2"]),
        helper.make_node("Relu", ["a2"], ["h2"]),
        helper.make_node("MatMul", ["h2", "in5"], ["d3"]),
        helper.make_node("Add", ["d3", "in6"], ["out"]),
    ]


def weights(rng: np.random.Generator) -> list[np.ndarray]:
    """w1, b1, w2, b2, w3, b3 with He-style scaling, so activations stay of order one."""
    out = []
    for fan_in, fan_out in zip(LAYERS[:-1], LAYERS[1:], strict=True):
        out.append(rng.normal(0.0, np.sqrt(2.0 / fan_in), (fan_in, fan_out)).astype(np.float32))
        out.append(rng.normal(0.0, 0.1, fan_out).astype(np.float32))
    return out


def flops(batch: int) -> int:
    """Multiply-add flops of the three dots."""
    return 2 * batch * sum(a * b for a, b in zip(LAYERS[:-1], LAYERS[1:], strict=True))


def cases(peers: Peers) -> list[Case]:
    """One case per batch size."""
    rng = np.random.default_rng(1)
    params = weights(rng)
    result = []
    for batch in BATCHES:
        x = rng.uniform(0.0, 1.0, (batch, LAYERS[0])).astype(np.float32)
        args = [x, *params]
        case = Case(
            name=f"mlp batch {batch}",
            description="MLP 784-256-256-10 inference, relu, f32",
            metric=Metric("flops", flops(batch)),
            reference=mlp(np, *(a.astype(np.float64) for a in args)),
            tolerance=TOLERANCE,
        )
        text = hlo(batch)
        case.add(lambda text=text, args=args: tfcompile_contender(text, args), "tfcompile")
        case.add(lambda args=args: numpy_contender(mlp, args), "numpy")
        case.add(lambda args=args: peers.jax_contender(mlp, args), "jax")
        case.add(lambda args=args: peers.torch_contender(mlp, args), "torch")
        case.add(lambda args=args: peers.torch_contender(mlp, args, compiled=True),
                 "torch.compile")
        out_shape = [batch, LAYERS[-1]]
        case.add(
            lambda args=args, s=out_shape: peers.onnx_contender(onnx_nodes, args, s), "onnxruntime"
        )
        result.append(case)
    return result
