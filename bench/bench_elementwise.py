"""An 11-op elementwise chain over 4M f32: memory-bound work, compared to copy bandwidth.

    y = (tanh(1.5 * x) * exp(-(x * x)) + sqrt(|x|)) / (1 + x * x)

The eleven elementwise HLO ops are multiply, tanh, multiply, negate, exponential, multiply,
abs, sqrt, add, add and divide (the two scalar constants are broadcast, which is not an
elementwise op). A fused loop reads x once and writes y once, so the bytes moved are
8 bytes per element; numpy makes a pass over memory per op and JAX fuses like XLA.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.harness import Case, Metric, numpy_contender, tfcompile_contender
from bench.peers import Peers

N = 4 * 1024 * 1024
SLOPE = 1.5
TOLERANCE = 1e-5

HLO = f"""HloModule elementwise_chain, entry_computation_layout={{(f32[{N}]{{0}})->f32[{N}]{{0}}}}

ENTRY main {{
  x = f32[{N}]{{0}} parameter(0)
  slope = f32[] constant({SLOPE})
  slope.b = f32[{N}]{{0}} broadcast(slope), dimensions={{}}
  one = f32[] constant(1)
  one.b = f32[{N}]{{0}} broadcast(one), dimensions={{}}
  ax = f32[{N}]{{0}} multiply(slope.b, x)
  t = f32[{N}]{{0}} tanh(ax)
  xx = f32[{N}]{{0}} multiply(x, x)
  neg = f32[{N}]{{0}} negate(xx)
  e = f32[{N}]{{0}} exponential(neg)
  te = f32[{N}]{{0}} multiply(t, e)
  abs = f32[{N}]{{0}} abs(x)
  root = f32[{N}]{{0}} sqrt(abs)
  num = f32[{N}]{{0}} add(te, root)
  den = f32[{N}]{{0}} add(one.b, xx)
  ROOT y = f32[{N}]{{0}} divide(num, den)
}}
"""


def chain(xp: Any, x: Any) -> Any:
    """The chain with the array namespace `xp` (numpy, jax.numpy or torch): 11 ops."""
    xx = x * x
    return (xp.tanh(SLOPE * x) * xp.exp(-xx) + xp.sqrt(xp.abs(x))) / (1 + xx)


def onnx_nodes(onnx: Any) -> list[Any]:
    """The chain as ONNX nodes on input in0, output out."""
    helper = onnx.helper
    f32 = onnx.TensorProto.FLOAT
    ops = [
        ("Mul", ["slope", "in0"], "ax"),
        ("Tanh", ["ax"], "t"),
        ("Mul", ["in0", "in0"], "xx"),
        ("Neg", ["xx"], "neg"),
        ("Exp", ["neg"], "e"),
        ("Mul", ["t", "e"], "te"),
        ("Abs", ["in0"], "abs"),
        ("Sqrt", ["abs"], "root"),
        ("Add", ["te", "root"], "num"),
        ("Add", ["one", "xx"], "den"),
        ("Div", ["num", "den"], "out"),
    ]
    constants = [
        helper.make_node("Constant", [], [name], value=helper.make_tensor(name, f32, [], [value]))
        for name, value in (("slope", SLOPE), ("one", 1.0))
    ]
    return constants + [helper.make_node(op, ins, [out]) for op, ins, out in ops]


def cases(peers: Peers) -> list[Case]:
    """The one elementwise case."""
    x = np.random.default_rng(0).uniform(-2.0, 2.0, N).astype(np.float32)
    case = Case(
        name="elementwise",
        description=f"11-op chain over {N // (1024 * 1024)}M f32 (read x, write y)",
        metric=Metric("bytes", 2 * x.nbytes),
        reference=chain(np, x.astype(np.float64)),
        tolerance=TOLERANCE,
    )
    case.add(lambda: tfcompile_contender(HLO, [x]), "tfcompile")
    case.add(lambda: numpy_contender(chain, [x]), "numpy")
    case.add(lambda: peers.jax_contender(chain, [x]), "jax")
    case.add(lambda: peers.torch_contender(chain, [x]), "torch")
    case.add(lambda: peers.torch_contender(chain, [x], compiled=True), "torch.compile")
    case.add(lambda: peers.onnx_contender(onnx_nodes, [x], [N]), "onnxruntime")
    return [case]
