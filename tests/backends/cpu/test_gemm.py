"""Unit tests of the packed GEMM (backends/cpu/gemm.py) in isolation from HLO.

The choice of micro-tile and cache blocks per target is checked against the vector units
and caches it is meant for. The range function is JIT-compiled on its own (llvmlite MCJIT)
and run on numpy buffers against numpy products: strided and transposed operands, batch
strides, type conversion in packing, integer wrapping, an empty K, edge tiles, several
blocks along every dimension (with deliberately small blocks), and the threading contract
(a call over a sub-range writes exactly that part of C). Code for other targets (AVX-512,
AArch64) is generated and its assembly checked for the intended vector instructions. The
tile shapes of the in-place kernel (backends/cpu/gemm_direct.py) are checked the same way;
its results are tested through HLO in test_kernels_dot.py.
"""

from __future__ import annotations

import ctypes
import dataclasses
import re

import llvmlite.binding as llvm
import numpy as np
import pytest
from llvmlite import ir

from backends.cpu import object as objcode
from backends.cpu.compiler import CpuOptions, compile_to_object
from backends.cpu.gemm import (
    DEFAULT_CACHES,
    Caches,
    GemmConfig,
    GemmPlan,
    MatrixOperand,
    VectorUnit,
    target_caches,
    vector_unit,
)
from backends.cpu.gemm_direct import DirectPlan
from backends.cpu.gemm_epilogue import GemmEpilogue
from compiler.api import compile_artifact
from hlo.dtypes import PrimitiveType
from hlo.errors import InternalError
from hlo.evaluator import evaluate
from hlo.opcodes import Opcode
from hlo.parser import parse
from runtime.loader import Executable
from tests.backends.cpu.test_kernels_common import assert_close, module_text

T = PrimitiveType
HOST = objcode.Target.resolve()
AVX2 = objcode.Target("x86_64-unknown-linux-gnu", "znver3", "+avx,+avx2,+fma,+sse4.2")
AVX512 = objcode.Target("x86_64-unknown-linux-gnu", "skylake-avx512",
                        "+avx,+avx2,+fma,+avx512f,+avx512vl,+avx512bw,+avx512dq")
SSE = objcode.Target("x86_64-unknown-linux-gnu", "x86-64", "")
NEON = objcode.Target("aarch64-unknown-linux-gnu", "generic", "+neon")
RNG = np.random.default_rng(5)


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize("target,unit", [
    (AVX2, VectorUnit(256, 16, True)),
    (AVX512, VectorUnit(512, 32, True)),
    (SSE, VectorUnit(128, 16, False)),
    (NEON, VectorUnit(128, 32, True)),
    # A CPU name implies its features when the feature string leaves them out.
    (objcode.Target("x86_64-pc-linux-gnu", "znver4", ""), VectorUnit(512, 32, True)),
    (objcode.Target("x86_64-pc-linux-gnu", "haswell", ""), VectorUnit(256, 16, True)),
    # ... unless it turns them off.
    (objcode.Target("x86_64-pc-linux-gnu", "znver4", "-avx512f"), VectorUnit(256, 16, True)),
    (objcode.Target("riscv64-unknown-linux-gnu", "generic", ""), VectorUnit(128, 16, False)),
])
def test_vector_unit_of_target(target: objcode.Target, unit: VectorUnit) -> None:
    assert vector_unit(target) == unit


@pytest.mark.parametrize("target,acc_t,lanes,mr,nr", [
    (AVX2, T.F32, 8, 6, 16),
    (AVX2, T.F64, 4, 6, 8),
    (AVX512, T.F32, 16, 12, 32),
    (AVX512, T.F64, 8, 12, 16),
    (NEON, T.F32, 4, 8, 12),
    (SSE, T.F32, 4, 4, 8),
    # Integer lanes are as wide as f32 ones, whatever the integer width.
    (AVX2, T.S8, 8, 6, 16),
    (AVX2, T.S64, 4, 6, 8),
])
def test_micro_tile(target: objcode.Target, acc_t: PrimitiveType, lanes: int, mr: int,
                    nr: int) -> None:
    cfg = GemmConfig.for_target(target, acc_t)
    assert (cfg.lanes, cfg.mr, cfg.nr) == (lanes, mr, nr)


def test_micro_tile_fits_the_register_file() -> None:
    for target in (AVX2, AVX512, NEON, SSE):
        unit = vector_unit(target)
        cfg = GemmConfig.for_target(target, T.F32)
        accumulators = cfg.mr * cfg.nr_vectors
        # Accumulators, the B vectors and one broadcast A element (plus a product without FMA).
        assert accumulators + cfg.nr_vectors + 1 + (0 if unit.fma else 1) <= unit.registers


@pytest.mark.parametrize("target", [AVX2, AVX512, NEON, SSE])
@pytest.mark.parametrize("acc_t", [T.F32, T.F64])
def test_cache_blocks_fit_the_caches(target: objcode.Target, acc_t: PrimitiveType) -> None:
    cfg = GemmConfig.for_target(target, acc_t)
    caches = target_caches(target)
    size = acc_t.byte_size
    assert cfg.kc * cfg.nr * size <= caches.l1  # a B micro-panel stays in L1
    assert cfg.mc * cfg.kc * size <= caches.l2  # the packed A block stays in L2
    assert cfg.mc % cfg.mr == 0 and cfg.nc % cfg.nr == 0
    assert 64 <= cfg.kc <= 512


def test_cache_table() -> None:
    assert target_caches(AVX2) == Caches(32 * 1024, 512 * 1024, 4 * 1024 * 1024)
    assert target_caches(objcode.Target("x86_64-pc-linux-gnu", "unknown-cpu", "")) == (
        DEFAULT_CACHES)


def test_plan_blocks_are_no_larger_than_the_problem() -> None:
    a = MatrixOperand(T.F32, 0, 300, 1)
    b = MatrixOperand(T.F32, 0, 10, 1)
    plan = GemmPlan.create(AVX2, T.F32, 1, 7, 10, 300, a, b)
    # K = 300 is split into two equal blocks rather than 256 + 44.
    assert plan.config.kc == 152
    assert plan.config.mc == 12 and plan.config.nc == 16
    assert plan.scratch_elements == 12 * 152 + 152 * 16 + 6 * 16
    assert (plan.c_batch_stride, plan.c_row_stride) == (70, 10)


# --- running the range function ----------------------------------------------------------------


_ENGINES: list[llvm.ExecutionEngine] = []


def run_plan(plan: GemmPlan, a: np.ndarray, b: np.ndarray, c: np.ndarray,
             ranges: tuple[int, int, int, int, int, int] | None = None) -> None:
    """JIT-compile plan's range function for the host and run it on numpy buffers."""
    module = ir.Module(name="gemm_test")
    fn = plan.emit_range_function(module, "range")
    fn.linkage = "external"
    target = HOST
    tm = objcode.target_machine(target, 2, jit=True)
    mod = objcode.parse_and_verify(str(module))
    mod.triple = target.triple
    mod.data_layout = str(tm.target_data)
    objcode.optimize(mod, tm, 2)
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    _ENGINES.append(engine)
    address = engine.get_function_address(fn.name)
    prototype = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 4, *[ctypes.c_int64] * 6)
    call = prototype(address)
    # The scratch is 64-byte aligned, as the arena is.
    raw = np.zeros(plan.scratch_elements * plan.config.acc_t.byte_size + 64, np.uint8)
    scratch = raw.ctypes.data + (-raw.ctypes.data) % 64
    if ranges is None:
        ranges = (0, plan.batch, 0, plan.m, 0, plan.n)
    call(a.ctypes.data, b.ctypes.data, c.ctypes.data, scratch, *ranges)


def operand(arr: np.ndarray, batch: int, row: int, col: int, t: PrimitiveType) -> MatrixOperand:
    """A MatrixOperand over `arr` with element strides of its axes batch, row, col (-1: none)."""
    strides = [s // arr.itemsize for s in arr.strides]
    return MatrixOperand(t, strides[batch] if batch >= 0 else 0, strides[row], strides[col])


def small_blocks(plan: GemmPlan, kc: int, mc: int, nc: int) -> GemmPlan:
    """`plan` with tiny cache blocks, so that every block loop runs several times."""
    cfg = dataclasses.replace(plan.config, kc=kc, mc=mc, nc=nc)
    return dataclasses.replace(plan, config=cfg)


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (6, 16, 4), (7, 17, 5), (13, 33, 37),
                                   (50, 3, 70), (3, 50, 9)])
def test_row_major_product(m: int, n: int, k: int) -> None:
    a = RNG.standard_normal((m, k)).astype(np.float32)
    b = RNG.standard_normal((k, n)).astype(np.float32)
    c = np.full((m, n), np.nan, np.float32)
    plan = GemmPlan.create(HOST, T.F32, 1, m, n, k, operand(a, -1, 0, 1, T.F32),
                           operand(b, -1, 0, 1, T.F32))
    run_plan(plan, a, b, c)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kc,m_panels,n_panels", [(4, 1, 1), (8, 2, 2), (12, 3, 3)])
def test_every_block_loop_runs_several_times(kc: int, m_panels: int, n_panels: int) -> None:
    m, n, k = 41, 83, 29
    a = RNG.standard_normal((m, k)).astype(np.float32)
    b = RNG.standard_normal((k, n)).astype(np.float32)
    c = np.full((m, n), np.nan, np.float32)
    plan = GemmPlan.create(HOST, T.F32, 1, m, n, k, operand(a, -1, 0, 1, T.F32),
                           operand(b, -1, 0, 1, T.F32))
    plan = small_blocks(plan, kc, m_panels * plan.config.mr, n_panels * plan.config.nr)
    run_plan(plan, a, b, c)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)


def test_transposed_and_batched_operands() -> None:
    batch, m, n, k = 3, 9, 21, 14
    at = RNG.standard_normal((k, batch, m)).astype(np.float32)   # A[b, m, k] = at[k, b, m]
    bt = RNG.standard_normal((n, batch, k)).astype(np.float32)   # B[b, k, n] = bt[n, b, k]
    c = np.full((batch, m, n), np.nan, np.float32)
    plan = GemmPlan.create(HOST, T.F32, batch, m, n, k, operand(at, 1, 2, 0, T.F32),
                           operand(bt, 1, 2, 0, T.F32))
    run_plan(small_blocks(plan, 4, plan.config.mr, plan.config.nr), at, bt, c)
    want = np.einsum("kbm,nbk->bmn", at.astype(np.float64), bt)
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-5)


def test_sub_ranges_write_only_their_part_of_c() -> None:
    batch, m, n, k = 2, 20, 40, 11
    a = RNG.standard_normal((batch, m, k)).astype(np.float32)
    b = RNG.standard_normal((batch, k, n)).astype(np.float32)
    want = np.einsum("bmk,bkn->bmn", a.astype(np.float64), b)
    plan = GemmPlan.create(HOST, T.F32, batch, m, n, k, operand(a, 0, 1, 2, T.F32),
                           operand(b, 0, 1, 2, T.F32))
    c = np.full((batch, m, n), -7.0, np.float32)
    run_plan(plan, a, b, c, (1, 2, 3, 17, 5, 29))
    region = (slice(1, 2), slice(3, 17), slice(5, 29))
    np.testing.assert_allclose(c[region], want[region], rtol=1e-5, atol=1e-5)
    untouched = np.ones(c.shape, bool)
    untouched[region] = False
    assert np.all(c[untouched] == -7.0)
    # Disjoint ranges (as threads would take them) together give the whole product.
    for ranges in [(0, 2, 0, 9, 0, 40), (0, 2, 9, 20, 0, 17), (0, 2, 9, 20, 17, 40)]:
        run_plan(plan, a, b, c, ranges)
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-5)


def test_c_with_a_wider_row_stride() -> None:
    m, n, k = 10, 12, 7
    a = RNG.standard_normal((m, k)).astype(np.float32)
    b = RNG.standard_normal((k, n)).astype(np.float32)
    c = np.full((m, 30), -1.0, np.float32)
    plan = GemmPlan.create(HOST, T.F32, 1, m, n, k, operand(a, -1, 0, 1, T.F32),
                           operand(b, -1, 0, 1, T.F32), c_batch_stride=0, c_row_stride=30)
    run_plan(plan, a, b, c)
    np.testing.assert_allclose(c[:, :n], a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)
    assert np.all(c[:, n:] == -1.0)


def test_packing_converts_half_operands_to_f32() -> None:
    m, n, k = 9, 19, 300
    a = RNG.standard_normal((m, k)).astype(np.float16)
    b = RNG.standard_normal((k, n)).astype(np.float16)
    c = np.zeros((m, n), np.float32)
    plan = GemmPlan.create(HOST, T.F32, 1, m, n, k, operand(a, -1, 0, 1, T.F16),
                           operand(b, -1, 0, 1, T.F16))
    run_plan(plan, a, b, c)
    want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(c, want, rtol=1e-4, atol=1e-4)


def test_f64_product() -> None:
    m, n, k = 17, 23, 40
    a = RNG.standard_normal((m, k))
    b = RNG.standard_normal((k, n))
    c = np.zeros((m, n))
    plan = GemmPlan.create(HOST, T.F64, 1, m, n, k, operand(a, -1, 0, 1, T.F64),
                           operand(b, -1, 0, 1, T.F64))
    run_plan(small_blocks(plan, 8, plan.config.mr, plan.config.nr), a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-12, atol=1e-12)


def test_integer_products_wrap() -> None:
    m, n, k = 5, 18, 9
    a = RNG.integers(-2**31, 2**31, (m, k), dtype=np.int64).astype(np.int32)
    b = RNG.integers(-2**31, 2**31, (k, n), dtype=np.int64).astype(np.int32)
    c = np.zeros((m, n), np.int32)
    plan = GemmPlan.create(HOST, T.S32, 1, m, n, k, operand(a, -1, 0, 1, T.S32),
                           operand(b, -1, 0, 1, T.S32))
    run_plan(small_blocks(plan, 4, plan.config.mr, plan.config.nr), a, b, c)
    want = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)
    np.testing.assert_array_equal(c, want)


def test_empty_k_clears_c() -> None:
    a = np.zeros((4, 0), np.float32)
    b = np.zeros((0, 5), np.float32)
    c = np.full((4, 5), np.nan, np.float32)
    plan = GemmPlan.create(HOST, T.F32, 1, 4, 5, 0, MatrixOperand(T.F32, 0, 0, 1),
                           MatrixOperand(T.F32, 0, 5, 1))
    run_plan(plan, a, b, c)
    assert np.all(c == 0.0)


# --- code for other targets --------------------------------------------------------------------


DOT = """HloModule mm
ENTRY main {
  a = f32[128,128] parameter(0)
  b = f32[128,128] parameter(1)
  ROOT c = f32[128,128] dot(a, b), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}
"""


def macro_kernel_asm(target: objcode.Target) -> str:
    artifact = compile_to_object(parse(DOT), target_triple=target.triple,
                                 target_cpu=target.cpu, target_features=target.features)
    asm = artifact.asm()
    start = asm.index("tfcompile.gemm.macro.")
    return asm[start:]


def test_avx512_code_uses_zmm_fma() -> None:
    asm = macro_kernel_asm(AVX512)
    assert "tfcompile.gemm.macro.f32.12x32" in asm
    assert re.search(r"vfmadd\d+ps\s+[^\n]*%zmm", asm)


def test_avx2_code_uses_ymm_fma() -> None:
    asm = macro_kernel_asm(AVX2)
    assert "tfcompile.gemm.macro.f32.6x16" in asm
    assert re.search(r"vfmadd\d+ps\s+[^\n]*%ymm", asm)
    assert "zmm" not in asm


def test_aarch64_code_uses_neon_fmla() -> None:
    asm = macro_kernel_asm(NEON)
    assert "tfcompile.gemm.macro.f32.8x12" in asm
    assert re.search(r"fmla\s+v\d+\.4s", asm)


# --- the in-place kernel's tiles (backends/cpu/gemm_direct.py) --------------------------------


def direct_plan(target: objcode.Target, m: int, n: int, acc_t: PrimitiveType = T.F32
                ) -> DirectPlan:
    operand = MatrixOperand(acc_t, 0, 1, 1)
    return DirectPlan.create(target, acc_t, 1, m, n, 64, operand, operand, operand)


@pytest.mark.parametrize("target,m,n,acc_t,lanes,rows,vectors", [
    (AVX2, 1, 256, T.F32, 8, 1, 8),      # matrix-vector: eight FMA chains of one row
    (AVX2, 1, 10, T.F32, 8, 1, 2),       # no wider than the product
    (AVX2, 8, 256, T.F32, 8, 4, 3),      # two blocks of four rows, not six and two
    (AVX2, 12, 256, T.F32, 8, 6, 2),
    (AVX2, 1, 256, T.F64, 4, 1, 8),
    (AVX512, 1, 256, T.F32, 16, 1, 8),
    (AVX512, 8, 256, T.F32, 16, 8, 3),   # 32 registers: one block of eight rows
    (NEON, 3, 100, T.F32, 4, 3, 8),
    (SSE, 5, 100, T.F32, 4, 5, 2),
])
def test_direct_tile(target: objcode.Target, m: int, n: int, acc_t: PrimitiveType, lanes: int,
                     rows: int, vectors: int) -> None:
    plan = direct_plan(target, m, n, acc_t)
    assert (plan.lanes, plan.rows, plan.vectors) == (lanes, rows, vectors)


@pytest.mark.parametrize("target", [AVX2, AVX512, SSE, NEON])
@pytest.mark.parametrize("m", [1, 3, 8, 12])
def test_direct_tile_fits_the_register_file(target: objcode.Target, m: int) -> None:
    plan = direct_plan(target, m, 4096)
    # The accumulators leave registers for the broadcast A element and B's vectors.
    assert plan.rows * plan.vectors <= vector_unit(target).registers - 4


def test_direct_tiles_cover_the_product() -> None:
    plan = direct_plan(AVX2, 11, 129)
    assert plan.row_blocks * plan.rows >= 11 > (plan.row_blocks - 1) * plan.rows
    assert plan.column_blocks * plan.width >= 129 > (plan.column_blocks - 1) * plan.width
    assert plan.tiles == plan.row_blocks * plan.column_blocks


THIN_DOT = """HloModule mv
ENTRY main {
  a = f32[1,512] parameter(0)
  b = f32[512,256] parameter(1)
  ROOT c = f32[1,256] dot(a, b), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}
"""


def direct_kernel_asm(target: objcode.Target) -> str:
    artifact = compile_to_object(parse(THIN_DOT), target_triple=target.triple,
                                 target_cpu=target.cpu, target_features=target.features)
    asm = artifact.asm()
    assert "tfcompile.gemm.macro." not in asm
    return asm


def test_direct_kernel_avx2_code_uses_ymm_fma() -> None:
    asm = direct_kernel_asm(AVX2)
    assert re.search(r"vfmadd\d+ps\s+[^\n]*%ymm", asm)
    assert "zmm" not in asm


def test_direct_kernel_avx512_code_uses_zmm_fma() -> None:
    assert re.search(r"vfmadd\d+ps\s+[^\n]*%zmm", direct_kernel_asm(AVX512))


def test_direct_kernel_aarch64_code_uses_neon_fmla() -> None:
    assert re.search(r"fmla\s+v\d+\.4s", direct_kernel_asm(NEON))


def test_direct_passes_over_a_large_b() -> None:
    operand = MatrixOperand(T.F32, 0, 1, 1)
    plan = DirectPlan.create(AVX2, T.F32, 1, 1, 2048, 100, operand, operand, operand)
    # 16 rows of 8 KiB per pass, equalised: 100 rows are seven passes of 15.
    assert (plan.k_block, plan.k_blocks) == (15, 7)
    narrow = MatrixOperand(T.BF16, 0, 1, 1)
    plan = DirectPlan.create(AVX2, T.F32, 1, 1, 2048, 100, operand, operand, narrow)
    # A narrower C cannot hold partial sums: one pass.
    assert plan.k_blocks == 1


FUSED_DOT = """HloModule fused_dot
fused {
  a = f32[128,128] parameter(0)
  b = f32[128,128] parameter(1)
  bias = f32[128,128] parameter(2)
  d = f32[128,128] dot(a, b), lhs_contracting_dims={1}, rhs_contracting_dims={0}
  ROOT r = f32[128,128] add(d, bias)
}

ENTRY main {
  a = f32[128,128] parameter(0)
  b = f32[128,128] parameter(1)
  c = f32[128,128] parameter(2)
  ROOT f = f32[128,128] fusion(a, b, c), kind=kOutput, calls=fused
}
"""


def test_fused_dot_is_tiled_for_the_target_not_the_host() -> None:
    artifact = compile_to_object(parse(FUSED_DOT), target_triple=NEON.triple,
                                 target_cpu=NEON.cpu, target_features=NEON.features)
    # The fusion's own macro kernel: it applies the epilogue (the bias add) in its stores.
    assert ".gemm.macro.f32.8x12" in artifact.asm()


# --- output fusions: the epilogue in the tiles' last stores ---------------------------------

# Epilogues of `d` (the dot, of shape S = [M, N]): bias and relu as JAX prints them; a
# residual add of a same-shape operand, a scale and tanh.
GEMM_EPILOGUES = {
    "bias_relu": ("f32[{N}]", [
        "bb = f32{S} broadcast(p2), dimensions={{1}}",
        "a = f32{S} add(d, bb)",
        "z = f32[] constant(0)",
        "zb = f32{S} broadcast(z), dimensions={{}}",
        "r = f32{S} maximum(a, zb)",
    ]),
    "residual_scale_tanh": ("f32{S}", [
        "a = f32{S} add(p2, d)",
        "h = f32[] constant(0.5)",
        "hb = f32{S} broadcast(h), dimensions={{}}",
        "m = f32{S} multiply(a, hb)",
        "r = f32{S} tanh(m)",
    ]),
}

# (M, K, N) of packed products: full tiles in one K block, partial tiles (rows and
# columns) over three K blocks (K above the largest KC), full tiles over two.
GEMM_EPILOGUE_SHAPES = [(48, 256, 64), (40, 1100, 50), (36, 600, 48)]


def gemm_epilogue_module(shape: tuple[int, int, int], epilogue: str,
                         dtype: str = "f32") -> tuple[str, list[np.ndarray]]:
    """dot(p0, p1) of `shape` followed by one of GEMM_EPILOGUES (an output fusion), and
    random arguments for it."""
    m, k, n = shape
    operand, body = GEMM_EPILOGUES[epilogue]
    fields = {"S": f"[{m},{n}]", "N": n}
    operand = operand.format(**fields)
    lines = [f"d = {dtype}[{m},{n}] dot(p0, p1), lhs_contracting_dims={{1}}, "
             "rhs_contracting_dims={0}",
             *(line.format(**fields).replace("f32", dtype) for line in body)]
    text = module_text([f"{dtype}[{m},{k}]", f"{dtype}[{k},{n}]",
                        operand.replace("f32", dtype)], lines)
    dims = [(m, k), (k, n), (n,) if operand.count(",") == 0 else (m, n)]
    args = [RNG.standard_normal(d).astype(np.float32) for d in dims]
    return text, args


def fresh_artifact(text: str) -> Executable:
    """`text` compiled now (past the compile caches), with its LLVM IR."""
    return Executable(compile_artifact(parse(text), CpuOptions()))


def fused_kinds(exe: Executable) -> list[str]:
    module = exe.artifact.extra["optimized_module"]
    return [i.attrs["kind"] for i in module.entry_computation.instructions
            if i.opcode is Opcode.FUSION]


@pytest.mark.parametrize("epilogue", list(GEMM_EPILOGUES))
@pytest.mark.parametrize("shape", GEMM_EPILOGUE_SHAPES, ids=["full", "edges", "k_blocks"])
def test_gemm_epilogue_is_applied_before_the_stores(shape: tuple[int, int, int],
                                                    epilogue: str) -> None:
    """The packed GEMM stores the output fusion's values in its last K block: no loop of
    the fusion passes over the output again, and the result does not depend on the
    thread count."""
    text, args = gemm_epilogue_module(shape, epilogue)
    exe = fresh_artifact(text)
    assert fused_kinds(exe) == ["kOutput"]
    llvm_ir = exe.artifact.llvm_ir
    assert ".gemm.macro" in llvm_ir and 'ptr noalias %"epi0"' in llvm_ir
    assert "fused0" not in llvm_ir and "tfcompile.gemm.macro." not in llvm_ir
    assert "tfcompile.parallel_for" in llvm_ir
    results = []
    for threads in (1, 2, 3):
        exe.threads = threads
        results.append(np.asarray(exe(*args)))
    assert all(r.tobytes() == results[0].tobytes() for r in results)
    want = evaluate(parse(text), *args)[0]
    assert_close(results[0], want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", ["f64", "batch"])
def test_other_products_keep_the_fusion_pass(case: str) -> None:
    """Non-f32 results and batched products leave the epilogue to the fusion's own pass,
    with the same values."""
    if case == "f64":
        text, args = gemm_epilogue_module((40, 300, 50), "bias_relu", dtype="f64")
        args = [a.astype(np.float64) for a in args]
    else:
        text = module_text(["f32[2,40,300]", "f32[2,300,50]", "f32[50]"], [
            "d = f32[2,40,50] dot(p0, p1), lhs_batch_dims={0}, lhs_contracting_dims={2}, "
            "rhs_batch_dims={0}, rhs_contracting_dims={1}",
            "bb = f32[2,40,50] broadcast(p2), dimensions={2}",
            "r = f32[2,40,50] add(d, bb)",
        ])
        args = [RNG.standard_normal(d).astype(np.float32)
                for d in ((2, 40, 300), (2, 300, 50), (50,))]
    exe = fresh_artifact(text)
    assert fused_kinds(exe) == ["kOutput"]
    llvm_ir = exe.artifact.llvm_ir
    assert "fused0" in llvm_ir and "tfcompile.gemm.macro." in llvm_ir and "epi0" not in llvm_ir
    assert_close(exe(*args), evaluate(parse(text), *args)[0], rtol=1e-4, atol=1e-4)


def test_epilogue_must_match_c() -> None:
    """An epilogue over another shape than C's is a compiler bug, caught at planning."""
    a = MatrixOperand(T.F32, 0, 8, 1)
    wrong = GemmEpilogue(None, (), (4,), (9,))  # type: ignore[arg-type]
    with pytest.raises(InternalError, match="epilogue"):
        GemmPlan.create(AVX2, T.F32, 1, 4, 8, 8, a, a, epilogue=wrong)
    # An empty K stores no K block: the plan leaves the epilogue to the caller.
    right = GemmEpilogue(None, (), (4,), (8,))  # type: ignore[arg-type]
    assert GemmPlan.create(AVX2, T.F32, 1, 4, 8, 0, a, a, epilogue=right).epilogue is None
