"""Every corpus module lowers to PTX for sm_80 and sm_90, and ptxas assembles it.

Runs without a GPU (CI): the GPU backend's code generation is checked by NVIDIA's own
assembler, which rejects invalid PTX, unresolved calls and over-sized shared memory.
Skipped only when ptxas is not installed. Also checks the plan's invariants that need no
device: every launched kernel exists in the PTX, every slot lies inside its pool.
"""

from __future__ import annotations

import re

import pytest

from backends.gpu import GpuTarget, assemble, compile_to_program, ptxas_path
from backends.gpu.plan import Pool, leaves, walk_steps
from backends.gpu.ptx import compile_to_ptx
from hlo.parser import parse
from tests.conftest import CORPUS, corpus_cases

CASES = corpus_cases("hlo")
PTXAS = ptxas_path()
ARCHS = ("sm_80", "sm_90")

needs_ptxas = pytest.mark.skipif(PTXAS is None, reason="ptxas is not installed")


@needs_ptxas
@pytest.mark.skipif(not CASES, reason="../shared/corpus is not present")
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_corpus_case_assembles_with_ptxas(case: dict) -> None:
    module = parse((CORPUS / "hlo" / case["hlo"]).read_text())
    program = compile_to_program(module, arch=ARCHS[-1])
    _check_plan(program)
    for arch in ARCHS:
        if arch == program.ptx.target.arch:
            ptx = program.ptx.ptx
        else:
            # The optimised IR does not depend on the architecture; only its lowering does.
            ptx = compile_to_ptx(program.ptx.optimized_ir, GpuTarget(arch),
                                 program.kernel_names, optimize=False).ptx
        assert f".target {arch}" in ptx
        cubin = assemble(ptx, arch, PTXAS)
        assert cubin[:4] == b"\x7fELF", f"{case['name']}: ptxas output for {arch} is no ELF"


def _check_plan(program) -> None:  # type: ignore[no-untyped-def]
    declared = set(re.findall(r"\.entry\s+([A-Za-z_$][\w$]*)", program.ptx.ptx))
    sizes = {Pool.ARENA: program.arena_bytes, Pool.CONSTANTS: len(program.constants)}
    for step in walk_steps(program.steps):
        slots = list(getattr(step, "args", ()))
        if hasattr(step, "kernel"):
            assert step.kernel in declared, f"launch of {step.kernel}, which the PTX lacks"
        for name in ("dst", "src", "pred", "selector"):
            if hasattr(step, name):
                slots.append(getattr(step, name))
        for slot in slots:
            assert 0 <= slot.offset and slot.offset + slot.nbytes <= sizes[slot.pool]
    for value in (*program.params, program.result):
        for slot in leaves(value):
            assert slot.offset + slot.nbytes <= sizes[slot.pool]


@needs_ptxas
def test_ptxas_failure_reports_stderr_and_command() -> None:
    from hlo.errors import CompileError

    with pytest.raises(CompileError) as info:
        assemble(".version 8.0\n.target sm_90\n.address_size 64\nnot ptx at all\n", "sm_90",
                 PTXAS)
    message = str(info.value)
    assert "ptxas" in message and "command:" in message and "-arch=sm_90" in message


def test_bad_architecture_is_a_compile_error() -> None:
    from hlo.errors import CompileError

    with pytest.raises(CompileError, match="sm_XY"):
        GpuTarget("hopper")
