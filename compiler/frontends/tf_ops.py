"""THE table of TensorFlow ops the importer lowers: `TF_OPS`, op type name -> `TfOp`.

Each row holds the lowering function (`NodeCtx -> outputs`), the names of the op's output
arguments where a function body may name them ("node:values:0" is output 0 of a TopKV2,
"node:indices:0" output 1), and, for ops whose operands live deeper in v1 control flow
(Merge, Exit), a `deps` hook naming the tensors that must be emitted before them.

The rows are filled by the family files with `@tf_op(...)`: `tf_ops_math.py` (element-wise
math, activations, casts), `tf_ops_array.py` (shapes and data movement, gathers),
`tf_ops_nn.py` (matmul, convolution, pooling, normalisation, reductions) and
`tf_ops_control.py` (constants, placeholders, identities, variables, functions and
control flow). `load()` imports them once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from compiler.frontends.tf_graphdef import TensorRef, TfNode
    from compiler.frontends.tf_scope import NodeCtx, Scope

# A lowering returns the node's outputs in order: an instruction or Resource per output,
# or None for a node without outputs.
Lowering = Callable[["NodeCtx"], Any]
DepsHook = Callable[["Scope", "TfNode"], Sequence["TensorRef"]]


@dataclass(frozen=True, slots=True)
class TfOp:
    """How one TF op type is imported."""

    lower: Lowering
    outputs: tuple[str, ...] = ()
    deps: DepsHook | None = None


TF_OPS: dict[str, TfOp] = {}


def tf_op(
    *names: str, outputs: Sequence[str] = (), deps: DepsHook | None = None
) -> Callable[[Lowering], Lowering]:
    """Register a lowering for the TF op types `names`."""

    def register(fn: Lowering) -> Lowering:
        for name in names:
            if name in TF_OPS:
                raise AssertionError(f"two lowerings for TF op {name}")
            TF_OPS[name] = TfOp(fn, tuple(outputs), deps)
        return fn

    return register


def output_position(op: str, arg: str) -> int | None:
    """The flat position of output argument `arg` of `op`, when the table knows it."""
    row = TF_OPS.get(op)
    if row is None or arg not in row.outputs:
        return None
    return row.outputs.index(arg)


_loaded = False


def load() -> dict[str, TfOp]:
    """Import the family files (which fill TF_OPS) and return the table."""
    global _loaded
    if not _loaded:
        from compiler.frontends import (  # noqa: F401  (each registers its rows)
            tf_ops_array,
            tf_ops_control,
            tf_ops_math,
            tf_ops_nn,
        )

        _loaded = True
    return TF_OPS
