"""One transcendental function over 4M f32: exp and tanh, the inline approximations of
backends.cpu_math against numpy's (and the peers') vectorised libm.

Each case is an HLO module with one elementwise op, `y = f(x)`, compiled with
`compiler.compile`. The loop reads x once and writes y once (8 bytes per element), so the
limit is copy bandwidth; a function whose vector code keeps up with memory reaches it.
The inputs cover the range where the functions are neither constant nor overflowing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bench.harness import Case, Metric, numpy_contender, tfcompile_contender
from bench.peers import Peers

N = 4 * 1024 * 1024
# max |out - reference| / max |reference|; the approximations are within 4 f32 ulp.
TOLERANCE = 1e-6


def _module(opcode: str) -> str:
    """HLO text of y = opcode(x) over f32[N]."""
    return f"""HloModule math_{opcode.replace("-", "_")}, \
entry_computation_layout={{(f32[{N}]{{0}})->f32[{N}]{{0}}}}

ENTRY main {{
  x = f32[{N}]{{0}} parameter(0)
  ROOT y = f32[{N}]{{0}} {opcode}(x)
}}
"""


# case name -> (HLO opcode, function of (array namespace, x), ONNX op, input range)
FUNCTIONS: dict[str, tuple[str, Callable[[Any, Any], Any], str, tuple[float, float]]] = {
    "exp": ("exponential", lambda xp, x: xp.exp(x), "Exp", (-80.0, 80.0)),
    "tanh": ("tanh", lambda xp, x: xp.tanh(x), "Tanh", (-10.0, 10.0)),
}


def _onnx_nodes(op: str) -> Callable[[Any], list[Any]]:
    return lambda onnx: [onnx.helper.make_node(op, ["in0"], ["out"])]


def cases(peers: Peers) -> list[Case]:
    """One case per function in FUNCTIONS."""
    made = []
    rng = np.random.default_rng(0)
    for name, (opcode, fn, onnx_op, (lo, hi)) in FUNCTIONS.items():
        x = rng.uniform(lo, hi, N).astype(np.float32)
        case = Case(
            name=name,
            description=f"{name}(x) over {N // (1024 * 1024)}M f32 (read x, write y)",
            metric=Metric("bytes", 2 * x.nbytes),
            reference=fn(np, x.astype(np.float64)),
            tolerance=TOLERANCE,
        )
        case.add(lambda opcode=opcode, x=x: tfcompile_contender(_module(opcode), [x]), "tfcompile")
        case.add(lambda fn=fn, x=x: numpy_contender(fn, [x]), "numpy")
        case.add(lambda fn=fn, x=x: peers.jax_contender(fn, [x]), "jax")
        case.add(lambda fn=fn, x=x: peers.torch_contender(fn, [x]), "torch")
        case.add(lambda fn=fn, x=x: peers.torch_contender(fn, [x], compiled=True),
                 "torch.compile")
        case.add(
            lambda op=onnx_op, x=x: peers.onnx_contender(_onnx_nodes(op), [x], [N]),
            "onnxruntime",
        )
        made.append(case)
    return made
