"""CPU dot kernel (backends/cpu/dot.py) against the reference evaluator.

Covers general dimension numbers (batch and contracting dims anywhere, several contracting
dims in swapped order, no contraction), every numeric element type (integers wrap, f16/bf16
accumulate in f32, a wider preferred result type, complex, pred), the matrix-vector path,
register-tile edges (sizes that are not multiples of the tile) and empty dimensions.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backends.cpu.gemm as cpu_gemm
import backends.cpu.gemm_direct as cpu_direct
from backends.cpu import CpuOptions
from backends.cpu.gemm import MatrixOperand
from backends.cpu.gemm_direct import DirectPlan
from backends.cpu.object import Target
from compiler.api import compile_artifact
from hlo.dtypes import PrimitiveType as T
from hlo.parser import parse
from runtime.loader import Executable
from tests.backends.cpu.test_kernels_common import check, compile_and_run, module_text

RNG = np.random.default_rng(7)
HOST = Target.resolve()

DIMENSION_NUMBERS = [
    # lhs shape, rhs shape, result shape, dot attributes
    ("[4,8]", "[8,5]", "[4,5]", "lhs_contracting_dims={1}, rhs_contracting_dims={0}"),
    ("[9,4]", "[9,6]", "[4,6]", "lhs_contracting_dims={0}, rhs_contracting_dims={0}"),
    ("[3,7,9]", "[3,9,17]", "[3,7,17]",
     "lhs_batch_dims={0}, lhs_contracting_dims={2}, rhs_batch_dims={0}, rhs_contracting_dims={1}"),
    ("[2,5,3]", "[3,2,4]", "[2,5,4]",
     "lhs_batch_dims={0}, lhs_contracting_dims={2}, rhs_batch_dims={1}, rhs_contracting_dims={0}"),
    ("[2,3,4]", "[4,3,5]", "[2,5]", "lhs_contracting_dims={1,2}, rhs_contracting_dims={1,0}"),
    ("[5,6,7]", "[7]", "[5,6]", "lhs_contracting_dims={2}, rhs_contracting_dims={0}"),
    ("[7]", "[7,3]", "[3]", "lhs_contracting_dims={0}, rhs_contracting_dims={0}"),
    ("[6]", "[6]", "[]", "lhs_contracting_dims={0}, rhs_contracting_dims={0}"),
    ("[3]", "[4]", "[3,4]", ""),
    ("[2,3,4,5]", "[5,3,2,6]", "[3,2,4,6]",
     "lhs_batch_dims={1,0}, lhs_contracting_dims={3}, rhs_batch_dims={1,2}, "
     "rhs_contracting_dims={0}"),
]


def dot_module(lhs: str, rhs: str, out: str, attrs: str) -> str:
    tail = f", {attrs}" if attrs else ""
    return module_text([lhs, rhs], [f"d = {out} dot(p0, p1){tail}"])


def random_array(dtype: str, dims: tuple[int, ...]) -> np.ndarray:
    if dtype in ("s8", "u8"):
        return RNG.integers(0, 120, dims).astype(np.int8 if dtype == "s8" else np.uint8)
    if dtype == "s32":
        return RNG.integers(-(2**31), 2**31 - 1, dims, dtype=np.int64).astype(np.int32)
    if dtype == "pred":
        return RNG.random(dims) > 0.6
    if dtype == "c64":
        return (RNG.standard_normal(dims) + 1j * RNG.standard_normal(dims)).astype(np.complex64)
    numpy_type = {"f16": np.float16, "bf16": ml_dtypes.bfloat16, "f32": np.float32,
                  "f64": np.float64}[dtype]
    return RNG.standard_normal(dims).astype(numpy_type)


def parse_dims(text: str) -> tuple[int, ...]:
    inner = text.strip("[]")
    return tuple(int(d) for d in inner.split(",")) if inner else ()


@pytest.mark.parametrize("lhs,rhs,out,attrs", DIMENSION_NUMBERS)
def test_dimension_numbers(lhs: str, rhs: str, out: str, attrs: str) -> None:
    a = random_array("f32", parse_dims(lhs))
    b = random_array("f32", parse_dims(rhs))
    check(dot_module(f"f32{lhs}", f"f32{rhs}", f"f32{out}", attrs), a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["f64", "s32", "s8", "u8", "c64", "pred"])
def test_element_types(dtype: str) -> None:
    text = dot_module(f"{dtype}[5,9]", f"{dtype}[9,19]", f"{dtype}[5,19]",
                      "lhs_contracting_dims={1}, rhs_contracting_dims={0}")
    check(text, random_array(dtype, (5, 9)), random_array(dtype, (9, 19)))


def test_s32_products_wrap_around() -> None:
    a = np.full((2, 3), 2**20, np.int32)
    b = np.full((3, 17), 2**15, np.int32)
    text = dot_module("s32[2,3]", "s32[3,17]", "s32[2,17]",
                      "lhs_contracting_dims={1}, rhs_contracting_dims={0}")
    (got,) = check(text, a, b)
    np.testing.assert_array_equal(got, (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32))


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_half_types_accumulate_in_f32(dtype: str) -> None:
    # 4096 products of 1: an f16/bf16 accumulator would stall at 2048/256; f32 does not.
    k = 4096
    numpy_type = np.float16 if dtype == "f16" else ml_dtypes.bfloat16
    a = np.ones((3, k), numpy_type)
    b = np.ones((k, 18), numpy_type)
    text = dot_module(f"{dtype}[3,{k}]", f"{dtype}[{k},18]", f"{dtype}[3,18]",
                      "lhs_contracting_dims={1}, rhs_contracting_dims={0}")
    (got,) = check(text, a, b, rtol=1e-2, atol=1e-2)
    assert float(got[0, 0]) == 4096.0


def test_half_operands_with_f32_result() -> None:
    a = random_array("f16", (6, 33))
    b = random_array("f16", (33, 20))
    text = dot_module("f16[6,33]", "f16[33,20]", "f32[6,20]",
                      "lhs_contracting_dims={1}, rhs_contracting_dims={0}")
    (got,) = compile_and_run(text, a, b)
    np.testing.assert_allclose(got, a.astype(np.float32) @ b.astype(np.float32), 1e-5, 1e-5)


@pytest.mark.parametrize("m", [1, 6])
@pytest.mark.parametrize("out", ["f16", "bf16"])
def test_narrower_result_is_computed_wide_and_rounded_once(m: int, out: str) -> None:
    a = random_array("f32", (m, 33))
    b = random_array("f32", (33, 20))
    text = dot_module(f"f32[{m},33]", "f32[33,20]", f"{out}[{m},20]",
                      "lhs_contracting_dims={1}, rhs_contracting_dims={0}")
    check(text, a, b, rtol=1e-2, atol=1e-2)


def test_f64_operands_with_f32_result_accumulate_in_f64() -> None:
    a = np.full((2, 3), 1.0 + 2.0**-30)
    b = np.full((3, 20), 1.0 - 2.0**-30)
    text = dot_module("f64[2,3]", "f64[3,20]", "f32[2,20]",
                      "lhs_contracting_dims={1}, rhs_contracting_dims={0}")
    (got,) = check(text, a, b, rtol=0, atol=0)
    np.testing.assert_array_equal(got, (a @ b).astype(np.float32))


def test_s8_operands_with_s32_result() -> None:
    a = RNG.integers(-128, 128, (7, 30)).astype(np.int8)
    b = RNG.integers(-128, 128, (30, 9)).astype(np.int8)
    text = dot_module("s8[7,30]", "s8[30,9]", "s32[7,9]",
                      "lhs_contracting_dims={1}, rhs_contracting_dims={0}")
    (got,) = compile_and_run(text, a, b)
    np.testing.assert_array_equal(got, a.astype(np.int32) @ b.astype(np.int32))


@pytest.mark.parametrize("m,k,n", [(1, 1, 2), (13, 37, 33), (4, 64, 16), (3, 5, 1),
                                   (70, 129, 1), (2, 100, 31), (1, 37, 50)])
def test_tile_edges_and_matrix_vector(m: int, k: int, n: int) -> None:
    text = dot_module(f"f32[{m},{k}]", f"f32[{k},{n}]", f"f32[{m},{n}]",
                      "lhs_contracting_dims={1}, rhs_contracting_dims={0}")
    check(text, random_array("f32", (m, k)), random_array("f32", (k, n)), rtol=1e-4, atol=1e-4)


def test_batched_row_times_matrix() -> None:
    text = dot_module("f32[3,1,5]", "f32[3,5,7]", "f32[3,1,7]",
                      "lhs_batch_dims={0}, lhs_contracting_dims={2}, rhs_batch_dims={0}, "
                      "rhs_contracting_dims={1}")
    check(text, random_array("f32", (3, 1, 5)), random_array("f32", (3, 5, 7)))


def test_empty_contraction_gives_zeros() -> None:
    text = dot_module("f32[3,0]", "f32[0,20]", "f32[3,20]",
                      "lhs_contracting_dims={1}, rhs_contracting_dims={0}")
    (got,) = check(text, np.zeros((3, 0), np.float32), np.zeros((0, 20), np.float32))
    assert not got.any()


def test_empty_result() -> None:
    text = dot_module("f32[0,4]", "f32[4,5]", "f32[0,5]",
                      "lhs_contracting_dims={1}, rhs_contracting_dims={0}")
    check(text, np.zeros((0, 4), np.float32), random_array("f32", (4, 5)))


def test_larger_matmul() -> None:
    a = random_array("f32", (96, 200))
    b = random_array("f32", (200, 130))
    text = dot_module("f32[96,200]", "f32[200,130]", "f32[96,130]",
                      "lhs_contracting_dims={1}, rhs_contracting_dims={0}")
    (got,) = compile_and_run(text, a, b)
    np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


@st.composite
def dot_problems(draw: st.DrawFn) -> tuple[str, np.ndarray, np.ndarray]:
    """A dot with random batch/contracting/free dims placed anywhere in both operands."""
    counts = [draw(st.integers(0, 2)) for _ in range(4)]  # batch, contract, lhs free, rhs free
    sizes = {role: [draw(st.integers(1, 5)) for _ in range(n)]
             for role, n in zip(("batch", "contract", "lfree", "rfree"), counts, strict=True)}
    lhs_roles = ([("batch", i) for i in range(counts[0])] + [("contract", i) for i in
                 range(counts[1])] + [("lfree", i) for i in range(counts[2])])
    rhs_roles = ([("batch", i) for i in range(counts[0])] + [("contract", i) for i in
                 range(counts[1])] + [("rfree", i) for i in range(counts[3])])
    lhs_roles = draw(st.permutations(lhs_roles))
    rhs_roles = draw(st.permutations(rhs_roles))

    def dims_of(roles: list[tuple[str, int]]) -> list[int]:
        return [sizes[role][i] for role, i in roles]

    def positions(roles: list[tuple[str, int]], role: str, n: int) -> list[int]:
        return [roles.index((role, i)) for i in range(n)]

    lb, rb = positions(lhs_roles, "batch", counts[0]), positions(rhs_roles, "batch", counts[0])
    lc = positions(lhs_roles, "contract", counts[1])
    rc = positions(rhs_roles, "contract", counts[1])
    out = sizes["batch"] + [d for r, d in zip(lhs_roles, dims_of(lhs_roles), strict=True)
                            if r[0] == "lfree"]
    out += [d for r, d in zip(rhs_roles, dims_of(rhs_roles), strict=True) if r[0] == "rfree"]

    def braces(values: list[int]) -> str:
        return "{" + ",".join(map(str, values)) + "}"

    attrs = (f"lhs_batch_dims={braces(lb)}, lhs_contracting_dims={braces(lc)}, "
             f"rhs_batch_dims={braces(rb)}, rhs_contracting_dims={braces(rc)}")
    text = dot_module(f"f32[{','.join(map(str, dims_of(lhs_roles)))}]",
                      f"f32[{','.join(map(str, dims_of(rhs_roles)))}]",
                      f"f32[{','.join(map(str, out))}]", attrs)
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    lhs = rng.standard_normal(dims_of(lhs_roles)).astype(np.float32)
    rhs = rng.standard_normal(dims_of(rhs_roles)).astype(np.float32)
    return text, lhs, rhs


@settings(max_examples=25)
@given(dot_problems())
def test_random_dimension_numbers(problem: tuple[str, np.ndarray, np.ndarray]) -> None:
    text, lhs, rhs = problem
    check(text, lhs, rhs, rtol=1e-4, atol=1e-4)


def test_several_cache_blocks_along_m_and_k() -> None:
    # K = 600 is three K blocks and M = 300 two M blocks of the AVX2 blocking; the result is
    # accumulated over the K blocks in place.
    a = random_array("f32", (300, 600))
    b = random_array("f32", (600, 70))
    text = dot_module("f32[300,600]", "f32[600,70]", "f32[300,70]",
                      "lhs_contracting_dims={1}, rhs_contracting_dims={0}")
    (got,) = compile_and_run(text, a, b)
    np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


def test_transposed_operands_are_read_in_place() -> None:
    # A = lhs^T and B = rhs^T: both operands are strided views, packed without a copy.
    a = random_array("f32", (45, 38))
    b = random_array("f32", (27, 45))
    text = dot_module("f32[45,38]", "f32[27,45]", "f32[38,27]",
                      "lhs_contracting_dims={0}, rhs_contracting_dims={1}")
    check(text, a, b, rtol=1e-4, atol=1e-4)


def test_both_operands_the_same_buffer() -> None:
    text = module_text(["f32[20,20]"], ["d = f32[20,20] dot(p0, p0), lhs_contracting_dims={1}, "
                                        "rhs_contracting_dims={0}"])
    check(text, random_array("f32", (20, 20)), rtol=1e-4, atol=1e-4)


def test_bf16_operands_with_f32_result() -> None:
    a = random_array("bf16", (7, 40))
    b = random_array("bf16", (40, 30))
    text = dot_module("bf16[7,40]", "bf16[40,30]", "f32[7,30]",
                      "lhs_contracting_dims={1}, rhs_contracting_dims={0}")
    (got,) = compile_and_run(text, a, b)
    np.testing.assert_allclose(got, a.astype(np.float32) @ b.astype(np.float32), 1e-5, 1e-5)


# --- the in-place kernel (backends/cpu/gemm_direct.py) ---------------------------------------


def matmul_text(m: int, k: int, n: int, out: str = "f32") -> str:
    return dot_module(f"f32[{m},{k}]", f"f32[{k},{n}]", f"{out}[{m},{n}]",
                      "lhs_contracting_dims={1}, rhs_contracting_dims={0}")


@pytest.mark.parametrize("m,k,n", [
    (1, 784, 256),   # the batch-1 MLP layer: four full column blocks
    (1, 256, 10),    # one block with a partial last vector
    (2, 90, 70),     # rows and a column edge
    (5, 40, 9),      # one row block of five, one vector and a one-lane edge
    (8, 33, 40),     # two row blocks of four
    (11, 70, 129),   # an uneven row edge and a one-column edge block
    (12, 300, 17),
    (3, 100, 1001),  # B read in passes of 15 rows, C's edge lanes reloaded between them
])
def test_thin_products(m: int, k: int, n: int) -> None:
    a, b = random_array("f32", (m, k)), random_array("f32", (k, n))
    (got,) = compile_and_run(matmul_text(m, k, n), a, b)
    np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


def test_thin_product_into_a_narrower_result() -> None:
    a, b = random_array("f32", (3, 500)), random_array("f32", (500, 37))
    (got,) = compile_and_run(matmul_text(3, 500, 37, "bf16"), a, b)
    want = (a.astype(np.float64) @ b).astype(np.float32).astype(ml_dtypes.bfloat16)
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=1e-2,
                               atol=1e-2)


def test_small_transposed_and_batched_operands() -> None:
    # Both operands transposed and batched in the middle: B's columns are strided, so the
    # in-place kernel gathers its vectors lane by lane.
    text = dot_module("f32[6,3,7]", "f32[9,3,6]", "f32[3,7,9]",
                      "lhs_batch_dims={1}, lhs_contracting_dims={0}, rhs_batch_dims={1}, "
                      "rhs_contracting_dims={2}")
    check(text, random_array("f32", (6, 3, 7)), random_array("f32", (9, 3, 6)), rtol=1e-5,
          atol=1e-5)


@pytest.mark.parametrize("m,k,n,scratch", [
    (8, 12, 16, False),    # the training step's dots: small, read in place
    (4, 8, 16, False),
    (1, 784, 256, False),  # thin: B streamed once, in place
    (12, 1000, 300, False),
    (96, 200, 130, True),  # packing pays: panels in scratch
])
def test_only_products_that_pack_need_scratch(m: int, k: int, n: int, scratch: bool) -> None:
    artifact = compile_artifact(parse(matmul_text(m, k, n)))
    assert (artifact.temp_bytes > 0) == scratch


def test_transposed_small_dot_needs_no_scratch() -> None:
    text = dot_module("f32[8,4]", "f32[16,4]", "f32[8,16]",
                      "lhs_contracting_dims={1}, rhs_contracting_dims={1}")
    assert compile_artifact(parse(text)).temp_bytes == 0


@pytest.mark.parametrize("m,k,n", [(1, 300, 200), (7, 50, 61), (3, 20, 37)])
def test_in_place_kernel_identical_for_any_thread_count(
        m: int, k: int, n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every product is split across threads here: the column blocks (and row blocks, and
    # their edge variants) computed by other threads must give the same bits.
    monkeypatch.setattr(cpu_gemm, "PARALLEL_MIN_WORK", 1)
    a, b = random_array("f32", (m, k)), random_array("f32", (k, n))
    text = matmul_text(m, k, n)
    # Compiled now, past the compile caches: the threshold is patched.
    serial = Executable(compile_artifact(parse(text), CpuOptions(threads=1)))
    parallel = Executable(compile_artifact(parse(text), CpuOptions(threads=3)))
    assert "tfcompile.parallel_for" in parallel.artifact.llvm_ir
    assert serial(a, b).tobytes() == parallel(a, b).tobytes()
    np.testing.assert_allclose(serial(a, b), a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


# --- matrix-vector products: rows dotted with a vector ---------------------------------------


@pytest.mark.parametrize("lhs,rhs,out,attrs", [
    # x @ W^T with W stored [N, K] (as torch keeps Linear weights): W's rows are dotted
    # with x in place; 37 rows are nine groups of four and one row.
    ("[1,300]", "[37,300]", "[1,37]", "lhs_contracting_dims={1}, rhs_contracting_dims={1}"),
    ("[300]", "[38,300]", "[38]", "lhs_contracting_dims={0}, rhs_contracting_dims={1}"),
    ("[3,1,41]", "[3,6,41]", "[3,1,6]",
     "lhs_batch_dims={0}, lhs_contracting_dims={2}, rhs_batch_dims={0}, rhs_contracting_dims={2}"),
    # A^T @ x: A's rows are strided, copied (large) or read by the in-place kernel (small).
    ("[700,500]", "[700]", "[500]", "lhs_contracting_dims={0}, rhs_contracting_dims={0}"),
    ("[30,7]", "[30]", "[7]", "lhs_contracting_dims={0}, rhs_contracting_dims={0}"),
    # The vector's K strided: copied contiguous first.
    ("[6,90]", "[90,2]", "[6,2]", "lhs_contracting_dims={1}, rhs_contracting_dims={0}"),
])
def test_rows_dotted_with_a_vector(lhs: str, rhs: str, out: str, attrs: str) -> None:
    a = random_array("f32", parse_dims(lhs))
    b = random_array("f32", parse_dims(rhs))
    check(dot_module(f"f32{lhs}", f"f32{rhs}", f"f32{out}", attrs), a, b, rtol=1e-4,
          atol=1e-4)


def test_vector_times_transposed_half_matrix() -> None:
    # B is f16: not readable in place as f32 rows, so another kernel converts it.
    a, b = random_array("f16", (1, 64)), random_array("f16", (33, 64))
    text = dot_module("f16[1,64]", "f16[33,64]", "f32[1,33]",
                      "lhs_contracting_dims={1}, rhs_contracting_dims={1}")
    (got,) = compile_and_run(text, a, b)
    np.testing.assert_allclose(got, a.astype(np.float32) @ b.astype(np.float32).T, 1e-4, 1e-4)


# --- thin products (batch-1 and batch-2 layers) in short passes over B ----------------------


def _compiled(text: str, threads: int) -> Executable:
    """Compiled now, past the compile caches (module constants may be patched)."""
    return Executable(compile_artifact(parse(text), CpuOptions(threads=threads)))


def _row_major_plan(m: int, k: int, n: int) -> DirectPlan:
    return DirectPlan.create(HOST, T.F32, 1, m, n, k, MatrixOperand(T.F32, 0, k, 1),
                             MatrixOperand(T.F32, 0, n, 1), MatrixOperand(T.F32, 0, n, 1))


@pytest.mark.parametrize("m", [1, 2])
@pytest.mark.parametrize("k,n,passes", [
    (784, 256, 49),   # the MLP's first layer: 49 passes of 16 rows
    (785, 131, 50),   # 49 passes of 16 rows and one of a single row; odd N
    (16, 9, 1),       # one pass
    (40, 300, 3),     # passes of 14, 13 and 13 rows
])
def test_thin_tiles_take_short_passes(m: int, k: int, n: int, passes: int) -> None:
    plan = _row_major_plan(m, k, n)
    assert plan.rows == m and plan.k_blocks == passes
    assert plan.k_block <= cpu_direct.THIN_BLOCK_ROWS


def test_taller_tiles_keep_byte_sized_passes() -> None:
    plan = _row_major_plan(4, 784, 256)
    # About B_BLOCK_BYTES (64 rows of 1 KiB), evened out: 13 passes of 61 rows or fewer.
    assert (plan.rows, plan.k_blocks, plan.k_block) == (4, 13, 61)


@pytest.mark.parametrize("batch,m,k,n", [
    (None, 1, 785, 131), (None, 1, 300, 257), (None, 2, 97, 45), (3, 1, 97, 45)])
def test_thin_products_identical_for_any_thread_count_and_pass_length(
        batch: int | None, m: int, k: int, n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Passes only move where C holds the partial sums: each element still adds its products
    # in order of k, so neither the pass length nor the split across threads (every product
    # is split here) changes a bit.
    monkeypatch.setattr(cpu_gemm, "PARALLEL_MIN_WORK", 1)
    if batch is None:
        text = matmul_text(m, k, n)
        a, b = random_array("f32", (m, k)), random_array("f32", (k, n))
    else:
        text = dot_module(f"f32[{batch},{m},{k}]", f"f32[{batch},{k},{n}]",
                          f"f32[{batch},{m},{n}]",
                          "lhs_batch_dims={0}, lhs_contracting_dims={2}, rhs_batch_dims={0}, "
                          "rhs_contracting_dims={1}")
        a, b = random_array("f32", (batch, m, k)), random_array("f32", (batch, k, n))
    want = a.astype(np.float64) @ b
    results = {threads: _compiled(text, threads)(a, b).tobytes() for threads in (1, 2, 3)}
    monkeypatch.setattr(cpu_direct, "THIN_BLOCK_ROWS", 1 << 20)
    results[0] = _compiled(text, 1)(a, b).tobytes()
    assert len(set(results.values())) == 1
    got = np.frombuffer(results[1], np.float32).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


# --- misaligned operands: the column tiles move to B's alignment at run time ---------------


def _placed(array: np.ndarray, offset: int) -> np.ndarray:
    """A C-contiguous copy of `array` whose first element lies `offset` elements past a
    64-byte boundary (a view into a larger buffer)."""
    per_line = 64 // array.itemsize
    buffer = np.empty(array.size + 2 * per_line, array.dtype)
    start = (-(buffer.ctypes.data // array.itemsize)) % per_line + offset
    view = buffer[start:start + array.size].reshape(array.shape)
    view[...] = array
    assert view.ctypes.data % 64 == offset * array.itemsize
    return view


def _batched_text(batch: int, m: int, k: int, n: int) -> str:
    return dot_module(f"f32[{batch},{m},{k}]", f"f32[{batch},{k},{n}]", f"f32[{batch},{m},{n}]",
                      "lhs_batch_dims={0}, lhs_contracting_dims={2}, rhs_batch_dims={0}, "
                      "rhs_contracting_dims={1}")


@pytest.mark.parametrize("m,n,shifted", [
    (1, 256, True), (1, 8, True), (1, 48, True),
    (1, 10, False),   # rows of 40 bytes: each row misaligned differently
    (1, 4, False),    # less than one vector
    (1, 131, False),  # odd
    (2, 256, False),  # tiles of two rows: the shift measured no faster
])
def test_columns_shift_where_every_row_of_b_is_misaligned_alike(
        m: int, n: int, shifted: bool) -> None:
    plan = _row_major_plan(m, 100, n)
    wide = cpu_gemm.vector_unit(HOST).bits > 128
    assert plan.shift == (shifted and wide)
    # B transposed (strided columns) or converted as read: never shifted.
    strided = DirectPlan.create(HOST, T.F32, 1, 1, n, 100, MatrixOperand(T.F32, 0, 100, 1),
                                MatrixOperand(T.F32, 0, 1, 100), MatrixOperand(T.F32, 0, n, 1))
    assert not strided.shift


@pytest.mark.parametrize("batch,m,k,n", [
    (None, 1, 300, 256),  # four column blocks, 19 passes
    (None, 2, 70, 48),    # two rows: one block, its first vector wrapped
    (None, 1, 37, 8),     # one vector: the wrapped vector is the whole tile
    (None, 2, 33, 136),   # three blocks, the last of one vector
    (None, 3, 40, 72),    # a taller tile (one pass)
    (None, 1, 29, 131),   # odd N: not shifted, still exact
    (None, 2, 21, 5),     # N below one vector
    (3, 1, 40, 24),       # batched: tiles of every batch shift alike
])
def test_misaligned_operands_give_the_aligned_bits(
        batch: int | None, m: int, k: int, n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # B and C at every offset within a cache line, A at a few: the same bits as the
    # unshifted kernel on 64-byte aligned operands, for 1, 2 and 3 threads (every product
    # split). Taller tiles shift here too: the wrapped vector works for any height.
    monkeypatch.setattr(cpu_gemm, "PARALLEL_MIN_WORK", 1)
    lead = () if batch is None else (batch,)
    text = matmul_text(m, k, n) if batch is None else _batched_text(batch, m, k, n)
    a = random_array("f32", (*lead, m, k))
    b = random_array("f32", (*lead, k, n))
    out_shape = (*lead, m, n)
    want = _placed(np.zeros(out_shape, np.float32), 0)
    with monkeypatch.context() as unshifted:
        unshifted.setattr(cpu_direct, "SHIFTED_TYPES", ())
        _compiled(text, 1).run_into([_placed(a, 0), _placed(b, 0)], [want])
    np.testing.assert_allclose(want, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
    monkeypatch.setattr(cpu_direct, "SHIFTED_ROWS", m)
    executables = {threads: _compiled(text, threads) for threads in (1, 2, 3)}
    if cpu_gemm.vector_unit(HOST).bits > 128:
        assert ("llvm.masked.load" in executables[1].artifact.llvm_ir) == (n % 8 == 0)
    for threads, executable in executables.items():
        for offset in range(16):
            got = _placed(np.full(out_shape, np.nan, np.float32), (offset * 7) % 16)
            lhs = _placed(a, offset % 3)
            executable.run_into([lhs, _placed(b, offset)], [got])
            assert got.tobytes() == want.tobytes(), (threads, offset)
