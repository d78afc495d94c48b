"""The CPU backend after the optimisation pipeline: one loop per loop fusion, reductions
that read their fused producers, dots with their epilogue in place, buffers from the
buffer assignment (reuse, in-place updates, results written in place, scratch)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import compiler
import hlo
from backends.cpu import compile_to_object
from bench.bench_elementwise import HLO as CHAIN_HLO
from bench.bench_elementwise import N as CHAIN_N
from compiler.api import compile_artifact
from hlo.opcodes import Opcode
from hlo.parser import parse
from tests.conftest import CORPUS, corpus_cases
from tests.strategies import random_modules

ADD = """
add {
  a = f32[] parameter(0)
  b = f32[] parameter(1)
  ROOT s = f32[] add(a, b)
}
"""

LESS = """
lt {
  a = f32[] parameter(0)
  b = f32[] parameter(1)
  ROOT c = pred[] compare(a, b), direction=LT
}
"""


def fusions(module: hlo.HloModule) -> list[hlo.HloInstruction]:
    return [i for i in module.entry_computation.instructions if i.opcode is Opcode.FUSION]


def kernel_functions(llvm_ir: str) -> dict[str, str]:
    """Name -> text of every `define internal` function of (optimised) LLVM IR."""
    found = {}
    for chunk in llvm_ir.split("\ndefine ")[1:]:
        header = chunk.split("{", 1)[0]
        if "internal" not in header:
            continue
        name = re.search(r'@"?([^"( ]+)"?\(', header)
        assert name is not None
        found[name.group(1)] = chunk.split("\n}\n", 1)[0]
    return found


def check_against_evaluator(text: str, *args: np.ndarray, rtol: float = 1e-5,
                            **options: object) -> compiler.api.Executable:
    module = parse(text)
    exe = compiler.compile(module, **options)
    got = exe(*args)
    got = got if isinstance(got, tuple) else (got,)
    want = hlo.evaluate(module, *args)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=rtol, atol=1e-6)
    return exe


# --- loop fusion ---------------------------------------------------------------------------


def test_elementwise_chain_is_one_vectorised_loop() -> None:
    """The benchmark's 11-op chain: one kLoop fusion, one kernel function, one vector loop
    without calls, no temporaries."""
    art = compile_artifact(parse(CHAIN_HLO))
    optimized = art.extra["optimized_module"]
    (fusion,) = fusions(optimized)
    assert fusion.attrs["kind"] == "kLoop"
    assert art.temp_bytes == 0
    kernels = {n: body for n, body in kernel_functions(art.optimized_ir).items()
               if "fusion" in n}
    assert len(kernels) == 1
    (body,) = kernels.values()
    calls = re.findall(r"call [^@]*@\"?([\w.]+)", body)
    assert all(c.startswith("llvm.") for c in calls), calls
    assert body.count("phi i64") == 1  # one loop: no remainder loop for 4M elements
    assert "noalias" in body.split("\n", 1)[0]
    if "+avx2" in art.features:
        assert "<8 x float>" in body
    x = np.random.default_rng(0).uniform(-2, 2, CHAIN_N).astype(np.float32)
    want = (np.tanh(1.5 * x) * np.exp(-x * x) + np.sqrt(np.abs(x))) / (1 + x * x)
    np.testing.assert_allclose(compiler.compile(CHAIN_HLO)(x), want, rtol=1e-5, atol=1e-6)


def test_multi_dimensional_elementwise_fusion_is_one_flat_loop() -> None:
    text = """HloModule flat
ENTRY main {
  x = f32[37,5,3] parameter(0)
  y = f32[37,5,3] parameter(1)
  s = f32[37,5,3] add(x, y)
  two = f32[] constant(2)
  t = f32[37,5,3] broadcast(two), dimensions={}
  ROOT m = f32[37,5,3] multiply(s, t)
}
"""
    rng = np.random.default_rng(1)
    x, y = (rng.standard_normal((37, 5, 3)).astype(np.float32) for _ in range(2))
    exe = check_against_evaluator(text, x, y)
    (body,) = [b for n, b in kernel_functions(exe.artifact.llvm_ir).items() if "fusion" in n]
    assert body.count(" = phi ") == 1


def test_multi_output_fusion_writes_both_results_in_one_loop() -> None:
    text = """HloModule siblings
ENTRY main {
  x = f32[64,32] parameter(0)
  e = f32[64,32] exponential(x)
  ex = f32[64,32] multiply(e, x)
  n = f32[64,32] negate(x)
  nx = f32[64,32] add(n, x)
  ROOT t = (f32[64,32], f32[64,32]) tuple(ex, nx)
}
"""
    x = np.random.default_rng(2).standard_normal((64, 32)).astype(np.float32)
    exe = check_against_evaluator(text, x)
    (fusion,) = fusions(exe.artifact.extra["optimized_module"])
    assert fusion.shape.is_tuple
    (body,) = [b for n, b in kernel_functions(exe.artifact.llvm_ir).items() if "fusion" in n]
    assert body.count(" = phi ") == 1 and body.count("store float") == 2
    assert exe.artifact.temp_bytes == 0


# --- input fusion ----------------------------------------------------------------------------


@pytest.mark.parametrize("dims", ["{1}", "{0}", "{0,1}"])
def test_reduction_reads_its_fused_producers(dims: str) -> None:
    """exp(x + b) is computed inside the reduction loop: no buffer holds it."""
    out = {"{1}": "f32[64]", "{0}": "f32[128]", "{0,1}": "f32[]"}[dims]
    text = f"""HloModule rowsum
{ADD}
ENTRY main {{
  x = f32[64,128] parameter(0)
  b = f32[128] parameter(1)
  bb = f32[64,128] broadcast(b), dimensions={{1}}
  a = f32[64,128] add(x, bb)
  e = f32[64,128] exponential(a)
  z = f32[] constant(0)
  ROOT s = {out} reduce(e, z), dimensions={dims}, to_apply=add
}}
"""
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (64, 128)).astype(np.float32)
    b = rng.uniform(-1, 1, 128).astype(np.float32)
    exe = check_against_evaluator(text, x, b, rtol=2e-5)
    (fusion,) = fusions(exe.artifact.extra["optimized_module"])
    assert fusion.attrs["kind"] == "kInput"
    assert exe.artifact.temp_bytes == 0


def test_variadic_reduce_fusion_argmax() -> None:
    text = """HloModule argmax
argmax {
  v0 = f32[] parameter(0)
  i0 = s32[] parameter(1)
  v1 = f32[] parameter(2)
  i1 = s32[] parameter(3)
  gt = pred[] compare(v0, v1), direction=GT
  eq = pred[] compare(v0, v1), direction=EQ
  lt = pred[] compare(i0, i1), direction=LT
  tie = pred[] and(eq, lt)
  keep = pred[] or(gt, tie)
  v = f32[] select(keep, v0, v1)
  i = s32[] select(keep, i0, i1)
  ROOT t = (f32[], s32[]) tuple(v, i)
}

ENTRY main {
  x = f32[16,40] parameter(0)
  n = f32[16,40] negate(x)
  iota = s32[16,40] iota(), iota_dimension=1
  lo = f32[] constant(-inf)
  zero = s32[] constant(0)
  r = (f32[16], s32[16]) reduce(n, iota, lo, zero), dimensions={1}, to_apply=argmax
  ROOT i = s32[16] get-tuple-element(r), index=1
}
"""
    x = np.random.default_rng(4).standard_normal((16, 40)).astype(np.float32)
    exe = check_against_evaluator(text, x)
    np.testing.assert_array_equal(exe(x), np.argmin(x, axis=1).astype(np.int32))


# --- output fusion ---------------------------------------------------------------------------

DOT_BIAS_RELU = """HloModule dense
ENTRY main {
  x = f32[32,64] parameter(0)
  w = f32[64,48] parameter(1)
  b = f32[48] parameter(2)
  d = f32[32,48] dot(x, w), lhs_contracting_dims={1}, rhs_contracting_dims={0}
  bb = f32[32,48] broadcast(b), dimensions={1}
  s = f32[32,48] add(d, bb)
  z = f32[] constant(0)
  zb = f32[32,48] broadcast(z), dimensions={}
  ROOT r = f32[32,48] maximum(s, zb)
}
"""


def _dense_args(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.standard_normal(s).astype(np.float32) for s in ((32, 64), (64, 48), (48,))]


def test_dot_epilogue_is_applied_in_the_output_buffer() -> None:
    """The dot writes the result buffer and the epilogue updates it in place: the arena
    holds only the dot kernel's own scratch, as for the dot alone."""
    args = _dense_args(np.random.default_rng(5))
    exe = check_against_evaluator(DOT_BIAS_RELU, *args, rtol=1e-4)
    (fusion,) = fusions(exe.artifact.extra["optimized_module"])
    assert fusion.attrs["kind"] == "kOutput"
    dot_alone = DOT_BIAS_RELU.replace("  bb = f32[32,48] broadcast(b), dimensions={1}\n", "")
    dot_alone = dot_alone.split("  s = ")[0].replace("  d = ", "  ROOT d = ") + "}\n"
    dot_alone = dot_alone.replace("  b = f32[48] parameter(2)\n", "")
    alone = compile_to_object(parse(dot_alone))
    assert exe.artifact.temp_bytes == alone.temp_bytes


def test_dot_epilogue_of_another_element_type_uses_scratch() -> None:
    text = DOT_BIAS_RELU.replace("ROOT r = f32[32,48] maximum(s, zb)",
                                 "r = f32[32,48] maximum(s, zb)\n"
                                 "  ROOT h = f16[32,48] convert(r)")
    args = _dense_args(np.random.default_rng(6))
    check_against_evaluator(text, *args, rtol=2e-3)


# --- buffers -------------------------------------------------------------------------------


def _assignment_of(art: object, name: str) -> object:
    ba = art.extra["buffer_assignment"]  # type: ignore[attr-defined]
    module = art.extra.get("optimized_module")  # type: ignore[attr-defined]
    for instr in module.entry_computation.instructions:
        if instr.name == name:
            return ba.value_of(instr)
    raise KeyError(name)


def test_loop_fusion_updates_a_dying_operand_in_place() -> None:
    text = f"""HloModule inplace
{LESS}
gt {{
  a = f32[] parameter(0)
  b = f32[] parameter(1)
  ROOT c = pred[] compare(a, b), direction=GT
}}

ENTRY main {{
  x = f32[256] parameter(0)
  s = f32[256] sort(x), dimensions={{0}}, to_apply=lt
  e = f32[256] exponential(s)
  m = f32[256] multiply(e, e)
  ROOT r = f32[256] sort(m), dimensions={{0}}, to_apply=gt
}}
"""
    x = np.random.default_rng(7).standard_normal(256).astype(np.float32)
    exe = check_against_evaluator(text, x)
    art = exe.artifact
    (fusion,) = fusions(art.extra["optimized_module"])
    buffer = art.extra["buffer_assignment"].value_of(fusion)
    assert buffer.allocation is _assignment_of(art, "s").allocation
    assert "in place of s" in art.extra["buffer_assignment"].explain()
    # The kernel reads and writes one pointer (plus its scratch pointer).
    (header,) = [line for line in art.llvm_ir.splitlines()
                 if line.startswith("define internal") and ".fusion" in line]
    assert header.count("ptr noalias") == 2


def test_dynamic_update_slice_updates_a_dying_operand_in_place() -> None:
    text = """HloModule dus
ENTRY main {
  x = f32[1024] parameter(0)
  u = f32[16] parameter(1)
  i = s32[] parameter(2)
  e = f32[1024] exponential(x)
  d = f32[1024] dynamic-update-slice(e, u, i)
  ROOT n = f32[1024] negate(d)
}
"""
    rng = np.random.default_rng(8)
    x = rng.uniform(-1, 1, 1024).astype(np.float32)
    u = rng.uniform(-1, 1, 16).astype(np.float32)
    exe = None
    for i in (0, 5, 1010, -3):
        exe = check_against_evaluator(text, x, u, np.int32(i))
    assert exe is not None
    art = exe.artifact
    assert _assignment_of(art, "d").allocation is _assignment_of(art, "e").allocation
    assert art.temp_bytes == 0  # e and d live in n's result buffer (n negates d in place)


def test_unoptimised_elementwise_chain_reuses_one_buffer() -> None:
    text = """HloModule chain
ENTRY main {
  p = f32[256] parameter(0)
  a = f32[256] exponential(p)
  b = f32[256] negate(a)
  c = f32[256] sine(b)
  ROOT d = f32[256] add(c, p)
}
"""
    x = np.random.default_rng(9).standard_normal(256).astype(np.float32)
    exe = check_against_evaluator(text, x, optimize=False)
    assert exe.artifact.temp_bytes == 0  # a, b and c in one slot: the result's buffer


def test_copy_is_a_real_copy() -> None:
    text = """HloModule copies
ENTRY main {
  x = f32[8] parameter(0)
  c = f32[8] copy(x)
  n = f32[8] negate(c)
  ROOT t = (f32[8], f32[8], f32[8]) tuple(c, n, x)
}
"""
    x = np.arange(8, dtype=np.float32)
    c, n, y = compiler.compile(text, optimize=False)(x)
    np.testing.assert_array_equal(c, x)
    np.testing.assert_array_equal(n, -x)
    np.testing.assert_array_equal(y, x)
    assert c.ctypes.data != y.ctypes.data


CASES = {c["name"]: c for c in corpus_cases("hlo")}
ARENA_CASES = ["mlp_train_step", "scan_rnn", "conv2d_bias_relu_stride2_same", "layernorm"]


@pytest.mark.skipif(not CASES, reason="../shared/corpus is not present")
@pytest.mark.parametrize("name", ARENA_CASES)
def test_arena_is_the_assignments_total_and_live_buffers_never_overlap(name: str) -> None:
    art = compile_artifact(parse((CORPUS / "hlo" / CASES[name]["hlo"]).read_text()))
    ba = art.extra["buffer_assignment"]
    assert art.temp_bytes == ba.temp_bytes
    assert ba.temp_bytes <= ba.no_reuse_bytes
    allocations = [a for a in ba.allocations if a.size]
    for i, x in enumerate(allocations):
        for y in allocations[i + 1:]:
            in_time = x.start <= y.end and y.start <= x.end
            in_space = x.offset < y.offset + y.size and y.offset < x.offset + x.size
            assert not (in_time and in_space), f"{x.name} and {y.name} overlap"


# --- random graphs -------------------------------------------------------------------------


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_modules(max_ops=12))
def test_random_graphs_unoptimised_equal_evaluated(case) -> None:
    """The pipeline's own property test (test_cpu_random_graphs) compiles optimised; this
    one compiles each instruction as its own kernel, with in-place updates and reuse."""
    module, args = case
    want = hlo.evaluate(module, *args)
    got = compiler.compile(module, optimize=False)(*args)
    got = got if isinstance(got, tuple) else (got,)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, equal_nan=True)
