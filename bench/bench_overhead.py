"""Per-call overhead: a trivial computation called from Python, where the call is the cost.

    y = x + 1        over f32[8]

Two cases. `overhead jit` calls a function jitted with `compiler.jit` (signature lookup
included) against `jax.jit` of the same function, numpy's `x + 1` and PyTorch's; `overhead
executable` calls the compiled module (`compiler.compile` of the HLO) with the same peers.
The kernel itself takes nanoseconds, so the medians are the price of crossing from Python
into compiled code and back with a fresh result array. The work counted is the 64 bytes read
and written, so the "% of copy bandwidth" column is meaningless here; read the medians and
the speed-ups.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.harness import Case, Contender, Metric, numpy_contender, tfcompile_contender
from bench.peers import Peers

N = 8
TOLERANCE = 0.0

HLO = f"""HloModule plus_one

ENTRY main {{
  x = f32[{N}]{{0}} parameter(0)
  one = f32[] constant(1)
  one.b = f32[{N}]{{0}} broadcast(one), dimensions={{}}
  ROOT y = f32[{N}]{{0}} add(x, one.b)
}}
"""


def plus_one(xp: Any, x: Any) -> Any:
    """x + 1 with the array namespace `xp` (numpy, jax.numpy or torch)."""
    return x + 1


def jit_contender(x: np.ndarray) -> Contender:
    """`compiler.jit(lambda x: x + 1)` called on `x` (warmed up: traced and compiled)."""
    from compiler.jit import jit

    jitted = jit(lambda x: x + 1)
    jitted(x)
    return Contender("tfcompile", lambda: jitted(x))


def cases(peers: Peers) -> list[Case]:
    """The jit case and the Executable case."""
    x = np.arange(N, dtype=np.float32)

    def case(name: str, what: str) -> Case:
        return Case(
            name=name,
            description=f"{what} on f32[{N}]: the per-call cost from Python",
            metric=Metric("bytes", 2 * x.nbytes),
            reference=x.astype(np.float64) + 1,
            tolerance=TOLERANCE,
        )

    jitted = case("overhead jit", "compiler.jit(lambda x: x + 1)")
    jitted.add(lambda: jit_contender(x), "tfcompile")
    compiled = case("overhead executable", "the compiled HLO module of x + 1")
    compiled.add(lambda: tfcompile_contender(HLO, [x]), "tfcompile")
    for c in (jitted, compiled):
        c.add(lambda: numpy_contender(plus_one, [x]), "numpy")
        c.add(lambda: peers.jax_contender(plus_one, [x]), "jax")
        c.add(lambda: peers.torch_contender(plus_one, [x]), "torch")
        c.add(lambda: peers.torch_contender(plus_one, [x], compiled=True), "torch.compile")
    return [jitted, compiled]
