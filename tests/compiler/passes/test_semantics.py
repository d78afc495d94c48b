"""Every pass, and the whole default pipeline, keeps evaluated results.

One parametrised property: for each pass, every module of the external HLO corpus and
random small graphs evaluate (with the reference evaluator) to the same values after the
pass as before it, within the case's tolerance (floats) or exactly (integers, preds). A
pass that reports no change must leave the printed module identical; only then is the
re-evaluation skipped. Every pass here is idempotent: a second run reports no change.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings

import hlo
from compiler.passes import (
    AlgebraicSimplifier,
    AlgsimpOptions,
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
    LayoutOptions,
    ReshapeTransposeCanonicalizer,
    TupleSimplifier,
    WhileLoopSimplifier,
)
from compiler.passes.hlo_utils import clone_module
from compiler.pipeline import FixedPoint, Pass
from compiler.pipelines import default_pipeline, pass_names
from hlo.parser import parse
from hlo.printer import to_text
from hlo.verifier import verify
from tests.conftest import CORPUS, corpus_cases
from tests.strategies import random_modules

CASES = corpus_cases("hlo")

# name -> a fresh pass; every pass of the default pipeline must be here (checked below).
PASSES: dict[str, Callable[[], Pass]] = {
    "call_inliner": CallInliner,
    "batchnorm_expander": BatchNormExpander,
    "algsimp": lambda: FixedPoint(AlgebraicSimplifier()),
    "algsimp+reassociate": lambda: FixedPoint(AlgebraicSimplifier(AlgsimpOptions(True))),
    "reshape_transpose": lambda: FixedPoint(ReshapeTransposeCanonicalizer()),
    "constant_folding": ConstantFolding,
    "tuple_simplifier": TupleSimplifier,
    "while_loop_simplifier": lambda: FixedPoint(WhileLoopSimplifier()),
    "conditional_simplifier": ConditionalSimplifier,
    "cse": CommonSubexpressionElimination,
    "dce": DeadCodeElimination,
    "fusion": InstructionFusion,
    "layout_assignment": LayoutAssignment,
    "layout_assignment+fold_transposes": lambda: LayoutAssignment(LayoutOptions(True)),
    "copy_insertion": CopyInsertion,
    "buffer_assignment": BufferAssignmentPass,
    "default_pipeline": default_pipeline,
}


@pytest.fixture(scope="module")
def corpus() -> list[tuple[dict, hlo.HloModule, list[np.ndarray], tuple]]:
    """Each case parsed once, with its inputs and the evaluated results before any pass.

    Every module comes twice: as JAX printed it, and with its calls inlined (as the
    default pipeline hands it to the later passes), so each pass also sees the bodies JAX
    hides in calls.
    """
    loaded = []
    for case in CASES:
        module = parse((CORPUS / "hlo" / case["hlo"]).read_text())
        data = np.load(CORPUS / "hlo" / case["npz"])
        args = [data[f"arg{i}"] for i in range(len(case["inputs"]))]
        before = hlo.evaluate(module, *args)
        loaded.append((case, module, args, before))
        inlined = clone_module(module)
        if CallInliner().run(inlined):
            loaded.append((case, inlined, args, before))
    return loaded


def assert_same_results(name: str, before: tuple, after: tuple, rtol: float,
                        atol: float) -> None:
    assert len(before) == len(after), f"{name}: {len(after)} results, expected {len(before)}"
    for i, (b, a) in enumerate(zip(before, after, strict=True)):
        b, a = np.asarray(b), np.asarray(a)
        assert a.dtype == b.dtype and a.shape == b.shape, (
            f"{name} result {i}: {a.dtype}{list(a.shape)}, expected {b.dtype}{list(b.shape)}")
        if a.dtype.kind in "fcV":
            ok = np.allclose(a.astype(np.complex128), b.astype(np.complex128), rtol=rtol,
                             atol=atol, equal_nan=True)
            assert ok, f"{name} result {i}: values changed beyond rtol={rtol} atol={atol}"
        else:
            assert np.array_equal(a, b), f"{name} result {i}: values changed"


def run_and_compare(p: Pass, module: hlo.HloModule, args: list, before: tuple,
                    rtol: float, atol: float) -> None:
    """Run `p`; results must be kept, and a second run must find nothing left to do."""
    text = to_text(module)
    changed = p.run(module)
    verify(module)
    if not changed:
        assert to_text(module) == text, f"{module.name}: changed but run() returned False"
        return
    assert_same_results(module.name, before, hlo.evaluate(module, *args), rtol, atol)
    assert p.run(module) is False, f"{module.name}: a second run changed it again"


def test_every_default_pass_is_covered() -> None:
    missing = set(pass_names()) - set(PASSES)
    assert not missing, f"add these passes to the semantics property: {sorted(missing)}"


@pytest.mark.skipif(not CASES, reason="../shared/corpus is not present")
@pytest.mark.parametrize("pass_name", list(PASSES))
def test_pass_keeps_corpus_results(pass_name: str, corpus: list) -> None:
    failures = []
    for case, module, args, before in corpus:
        copy = clone_module(module)
        try:
            run_and_compare(PASSES[pass_name](), copy, args, before, case["rtol"], case["atol"])
        except (AssertionError, hlo.TfcompileError) as e:
            failures.append(f"{case['name']}: {e}")
    assert not failures, f"{pass_name} changed results:\n" + "\n".join(failures)


@pytest.mark.parametrize("pass_name", list(PASSES))
@settings(max_examples=25)
@given(drawn=random_modules())
def test_pass_keeps_random_graph_results(pass_name: str, drawn: tuple) -> None:
    module, args = drawn
    before = hlo.evaluate(module, *args)
    run_and_compare(PASSES[pass_name](), module, args, before, rtol=1e-5, atol=1e-5)
