"""The compilation pipelines, as readable lists: each entry a pass and why it is there.

`default_pipeline(target)` is what `compile` runs before a backend. There is no global
pass registry: `find_pass(name)` (for the CLI) looks a pass up in this list.
"""

from __future__ import annotations

from compiler.passes import (
    AlgebraicSimplifier,
    BatchNormExpander,
    BufferAssignmentPass,
    CallInliner,
    CommonSubexpressionElimination,
    ConditionalSimplifier,
    ConstantFolding,
    CopyInsertion,
    DeadCodeElimination,
    InstructionFusion,
    LayoutAssignment,
    ReshapeTransposeCanonicalizer,
    TupleSimplifier,
    WhileLoopSimplifier,
)
from compiler.pipeline import FixedPoint, Pass, Pipeline, iter_passes
from hlo.errors import CompileError

TARGETS = ("cpu", "gpu")


def simplification_pipeline() -> Pipeline:
    """The rewrites that feed each other, run together until none changes anything."""
    return Pipeline("simplification", [
        # Identities, canonical forms, broadcasts sunk below elementwise ops.
        AlgebraicSimplifier(),
        # Transposes/reshapes/broadcasts composed or removed; transposes folded into dots.
        ReshapeTransposeCanonicalizer(),
        # Ops over constants evaluated now (after algsimp exposed scalar ones).
        ConstantFolding(),
        # Tuple plumbing left by inlining and loops forwarded away.
        TupleSimplifier(),
        # Zero-trip loops removed, invariant code hoisted, dead loop state dropped.
        WhileLoopSimplifier(),
        # Conditionals whose predicate became a constant replaced by their branch.
        ConditionalSimplifier(),
        # Identical expressions (often created by the rewrites above) merged.
        CommonSubexpressionElimination(),
        # Whatever the rewrites orphaned removed.
        DeadCodeElimination(),
    ])


def default_pipeline(target: str = "cpu") -> Pipeline:
    """The optimisation pipeline run before code generation for `target` ("cpu", "gpu").

    Raises:
        CompileError: for an unknown target.
    """
    if target not in TARGETS:
        raise CompileError(f"unknown target '{target}'; available: {', '.join(TARGETS)}")
    return Pipeline(f"{target}-default", [
        # JAX wraps every jnp function in a call; inlining exposes the bodies to all passes.
        CallInliner(),
        # Batch norms become reductions and arithmetic, which fusion can then merge.
        BatchNormExpander(),
        # Simplify to a fixed point: each rewrite enables others.
        FixedPoint(simplification_pipeline(), limit=16),
        # Producers into consumers: fewer loops and no intermediate buffers.
        InstructionFusion(),
        # Row-major layouts everywhere: what the backends and the runtime contract assume.
        LayoutAssignment(),
        # Copies where loop state or results would otherwise alias read-only buffers.
        CopyInsertion(),
        # Copy insertion may orphan tuples; remove them before buffers are assigned.
        DeadCodeElimination(),
        # Arena offsets for temporaries (an analysis: the module is unchanged).
        BufferAssignmentPass(),
    ])


def pass_names(target: str = "cpu") -> list[str]:
    """Names of the passes of the default pipeline, in order, each once."""
    names: list[str] = []
    for p in iter_passes(default_pipeline(target)):
        if p.name not in names:
            names.append(p.name)
    return names


def find_pass(name: str, target: str = "cpu") -> Pass:
    """A fresh instance of the pass called `name` in the default pipeline (for the CLI).

    Raises:
        CompileError: no pass has that name (the message lists the names).
    """
    for p in iter_passes(default_pipeline(target)):
        if p.name == name:
            return p
    raise CompileError(f"no pass named '{name}'; passes: {', '.join(pass_names(target))}")
