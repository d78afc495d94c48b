"""Shared helpers of the CPU kernel tests, and the op-record check for the kernel opcodes.

Every kernel test compiles a small HLO module with the CPU backend and compares the result
with the reference evaluator (`hlo.evaluate`): integers and predicates exactly, floats within
a tolerance. The op-record test runs the one record per opcode of tests/op_records.py for
every opcode that has a CPU kernel in backends/cpu/all_kernels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import compiler
from hlo.evaluator import evaluate
from hlo.opcodes import Opcode
from hlo.parser import parse
from tests.op_records import RECORDS

KERNEL_OPCODES = frozenset({
    Opcode.DOT, Opcode.CONVOLUTION, Opcode.REDUCE, Opcode.REDUCE_WINDOW,
    Opcode.SELECT_AND_SCATTER, Opcode.GATHER, Opcode.SCATTER, Opcode.DYNAMIC_UPDATE_SLICE,
    Opcode.SORT, Opcode.TOPK, Opcode.FFT, Opcode.RNG_BIT_GENERATOR, Opcode.RNG,
    Opcode.CHOLESKY, Opcode.TRIANGULAR_SOLVE, Opcode.BATCH_NORM_TRAINING,
    Opcode.BATCH_NORM_INFERENCE, Opcode.BATCH_NORM_GRAD,
})


def module_text(params: list[str], body: list[str], extra: str = "") -> str:
    """An HLO module: `extra` computations, then ENTRY with parameters and body lines.

    `params` are shape texts (`f32[3,4]`), bound to p0, p1, ...; the last body line is
    the root (its `ROOT` is added here).
    """
    lines = [f"  p{i} = {shape} parameter({i})" for i, shape in enumerate(params)]
    lines += [f"  {line}" for line in body[:-1]]
    lines.append(f"  ROOT {body[-1]}")
    return "HloModule test\n\n" + extra + "ENTRY main {\n" + "\n".join(lines) + "\n}\n"


def compile_and_run(text: str, *args: np.ndarray) -> tuple[np.ndarray, ...]:
    """Compile `text` with the CPU backend, run it on `args`; returns the result leaves."""
    got = compiler.compile(parse(text))(*args)
    return got if isinstance(got, tuple) else (got,)


def assert_close(got: Any, want: Any, rtol: float = 1e-5, atol: float = 1e-5) -> None:
    """Exact for integers and predicates; allclose (NaN equal to NaN) for floats."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"dtype {got.dtype} != {want.dtype}"
    if want.dtype.kind in "fc" or want.dtype.name == "bfloat16":
        wide = np.complex128 if want.dtype.kind == "c" else np.float64
        np.testing.assert_allclose(got.astype(wide), want.astype(wide), rtol=rtol, atol=atol,
                                   equal_nan=True)
    else:
        np.testing.assert_array_equal(got, want)


def check(text: str, *args: np.ndarray, rtol: float = 1e-5, atol: float = 1e-5
          ) -> tuple[np.ndarray, ...]:
    """Compiled result == evaluated result for `text` on `args`; returns the compiled one."""
    got = compile_and_run(text, *args)
    want = evaluate(parse(text), *args)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert_close(g, w, rtol, atol)
    return got


@pytest.mark.parametrize(
    "record", [r for r in RECORDS if r.opcode in KERNEL_OPCODES], ids=lambda r: r.name
)
def test_op_record_compiles_to_the_evaluated_result(record: Any) -> None:
    args = record.args(np.random.default_rng(0))
    if record.opcode is Opcode.RNG:
        # rng has no reproducible values to match; check shapes, types and determinism.
        first = compile_and_run(record.text, *args)
        want = evaluate(parse(record.text), *args)
        assert [(a.shape, a.dtype) for a in first] == [(w.shape, w.dtype) for w in want]
        again = compile_and_run(record.text, *args)
        for a, b in zip(first, again, strict=True):
            np.testing.assert_array_equal(a, b)
        return
    check(record.text, *args, rtol=max(record.rtol, 1e-5), atol=max(record.atol, 1e-5))
