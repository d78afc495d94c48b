"""The tensor-core GEMM without a GPU: dispatch, PTX assembled by ptxas, and a model run.

* Dispatch: which dots take the mma kernel (f16/bf16 operands whose matrices are plain
  strided with 16-byte rows) and which stay on the SIMT kernels.
* ptxas: the kernel's PTX (inline mma.sync / ldmatrix / cp.async) assembles for sm_80 and
  sm_90 for every operand memory order and tile configuration, without register spills.
* Model: the kernel's own index formulas (`chunk_coords`, `tile_offset`, `fragment_coords`,
  `accumulator_coords`, evaluated on ints) drive an emulation of one block's cp.async copies,
  ldmatrix loads and mma.sync products, whose register layouts are written here from the
  PTX ISA manual. The emulated product must equal numpy's, every shared tile position
  must be written exactly once per step, and every ldmatrix phase must be free of bank
  conflicts. This checks the layout reasoning that a wrong-answer GPU run would not explain.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from backends.gpu import GpuTarget, assemble, compile_to_program, ptxas_path
from backends.gpu.dot import dot_view
from backends.gpu.dot_mma import (
    CHUNK_ELEMS,
    DEFAULT_TILE,
    MmaPlan,
    MmaTile,
    accumulator_coords,
    chunk_coords,
    chunks_per_row,
    fragment_coords,
    mma_plan,
    tile_offset,
)
from backends.gpu.ptx import compile_to_ptx
from hlo.errors import InternalError
from hlo.parser import parse

PTXAS = ptxas_path()
needs_ptxas = pytest.mark.skipif(PTXAS is None, reason="ptxas is not installed")


def _module(in_t: str, out_t: str, a: tuple[int, ...], b: tuple[int, ...],
            out: tuple[int, ...], lc: str, rc: str, batch: str = "") -> str:
    dims = ",".join
    extra = f", lhs_batch_dims={{{batch}}}, rhs_batch_dims={{{batch}}}" if batch else ""
    return (
        "HloModule mma\n\nENTRY e {\n"
        f"  a = {in_t}[{dims(map(str, a))}] parameter(0)\n"
        f"  b = {in_t}[{dims(map(str, b))}] parameter(1)\n"
        f"  ROOT d = {out_t}[{dims(map(str, out))}] dot(a, b){extra}, "
        f"lhs_contracting_dims={{{lc}}}, rhs_contracting_dims={{{rc}}}\n}}\n"
    )


def _plan(text: str, tile: MmaTile | None = None) -> MmaPlan | None:
    dot = parse(text).entry_computation.root
    assert dot is not None
    return mma_plan(dot, dot_view(dot), tile)


# --- dispatch ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    _module("bf16", "f32", (64, 64), (64, 64), (64, 64), "1", "0"),
    _module("f16", "f16", (64, 64), (64, 64), (64, 64), "0", "1"),
    _module("bf16", "bf16", (2, 64, 40), (2, 40, 48), (2, 64, 48), "2", "1", batch="0"),
], ids=["bf16_f32", "f16_transposed", "batched"])
def test_qualifying_dots_take_the_mma_kernel(text: str) -> None:
    assert _plan(text) is not None
    program = compile_to_program(parse(text), arch="sm_80")
    assert any("mma" in name for name in program.kernel_names)


@pytest.mark.parametrize("text,why", [
    (_module("f32", "f32", (64, 64), (64, 64), (64, 64), "1", "0"), "f32 operands"),
    (_module("bf16", "f32", (16, 64), (64, 64), (16, 64), "1", "0"), "too few rows"),
    (_module("bf16", "f32", (64, 36), (36, 64), (64, 64), "1", "0"), "K rows not 16-byte"),
    (_module("bf16", "f32", (64, 64), (64, 60), (64, 60), "1", "0"), "N rows not 16-byte"),
], ids=lambda v: v if " " in v else None)
def test_other_dots_stay_on_the_simt_kernels(text: str, why: str) -> None:
    module = parse(text)
    assert _plan(text) is None, why
    program = compile_to_program(module, arch="sm_80")
    assert not any("mma" in name for name in program.kernel_names), why


def test_mixed_operand_types_stay_on_the_simt_kernels() -> None:
    text = ("HloModule m\n\nENTRY e {\n  a = bf16[64,64] parameter(0)\n"
            "  b = f16[64,64] parameter(1)\n  ROOT d = f32[64,64] dot(a, b), "
            "lhs_contracting_dims={1}, rhs_contracting_dims={0}\n}\n")
    assert _plan(text) is None


def test_rows_interleaved_with_a_batch_dimension_are_not_merged() -> None:
    """lhs [M1, B, M2, K] with rows (0, 2): the row group is not one strided dimension."""
    text = ("HloModule m\n\nENTRY e {\n  a = bf16[4,2,16,64] parameter(0)\n"
            "  b = bf16[2,64,64] parameter(1)\n  ROOT d = f32[2,4,16,64] dot(a, b), "
            "lhs_batch_dims={1}, rhs_batch_dims={0}, lhs_contracting_dims={3}, "
            "rhs_contracting_dims={1}\n}\n")
    assert _plan(text) is None


def test_invalid_tiles_are_rejected() -> None:
    with pytest.raises(InternalError):
        MmaTile(block_m=128, block_n=128, stages=4)      # 64 KiB of shared memory
    with pytest.raises(InternalError):
        MmaTile(block_m=96, block_n=128)                 # 12 chunk rows: not a power of two


# --- ptxas ---------------------------------------------------------------------------------------

ORDERS = [("1", "0"), ("0", "0"), ("0", "1"), ("1", "1")]


def _order_module(in_t: str, lc: str, rc: str, m: int = 256, k: int = 96, n: int = 192) -> str:
    a = (m, k) if lc == "1" else (k, m)
    b = (k, n) if rc == "0" else (n, k)
    return _module(in_t, "f32", a, b, (m, n), lc, rc)


@needs_ptxas
@pytest.mark.parametrize("in_t", ["bf16", "f16"])
@pytest.mark.parametrize("lc,rc", ORDERS, ids=["nn", "tn", "tt", "nt"])
def test_mma_ptx_assembles_for_sm80_and_sm90(in_t: str, lc: str, rc: str) -> None:
    program = compile_to_program(parse(_order_module(in_t, lc, rc)), arch="sm_90")
    ptx = program.ptx.ptx
    assert f"mma.sync.aligned.m16n8k16.row.col.f32.{in_t}.{in_t}.f32" in ptx
    assert ("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16" in ptx) == (lc == "0" or rc == "0")
    assert "cp.async.cg.shared.global" in ptx and "cp.async.wait_group 1;" in ptx
    for arch in ("sm_80", "sm_90"):
        text = ptx if arch == "sm_90" else compile_to_ptx(
            program.ptx.optimized_ir, GpuTarget(arch), program.kernel_names, optimize=False).ptx
        assert assemble(text, arch, PTXAS)[:4] == b"\x7fELF"


TILES = [
    DEFAULT_TILE,
    MmaTile(block_m=128, block_n=256, warps_m=2, warps_n=4, stages=2),
    MmaTile(block_m=128, block_n=128, warps_m=2, warps_n=4, stages=3),
    MmaTile(block_m=64, block_n=128, warps_m=2, warps_n=2, stages=2),
]


@needs_ptxas
@pytest.mark.parametrize("tile", TILES, ids=lambda t: f"{t.block_m}x{t.block_n}w{t.threads}")
def test_mma_kernel_does_not_spill(tile: MmaTile, monkeypatch: pytest.MonkeyPatch) -> None:
    """Register spills would cost more than the tensor cores gain: ptxas -v must say 0."""
    import backends.gpu.dot_mma as dot_mma

    monkeypatch.setattr(dot_mma, "DEFAULT_TILE", tile)
    program = compile_to_program(parse(_order_module("bf16", "1", "0")), arch="sm_90")
    assert any(f"mma{tile.block_m}x{tile.block_n}" in k for k in program.kernel_names)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "k.ptx"
        source.write_text(program.ptx.ptx)
        done = subprocess.run([str(PTXAS), "-arch=sm_90", "-v", str(source), "-o",
                               str(Path(tmp) / "k.cubin")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", done.stderr)
    assert spills and all(s == ("0", "0") for s in spills), done.stderr
    assert f"{tile.shared_bytes} bytes smem" in done.stderr


# --- the model -----------------------------------------------------------------------------------

_LANES = np.arange(32)
_G = _LANES // 4
_T = _LANES % 4


def _ldmatrix_x4(tile: np.ndarray, addresses: list[int], trans: bool) -> np.ndarray:
    """[lane, matrix, 2]: what each lane receives (PTX ISA, ldmatrix: lane l gives the row
    address l % 8 of matrix l // 8; thread t receives row t // 4, elements 2(t % 4) and
    2(t % 4) + 1 of each matrix, of its transpose with .trans)."""
    rows = np.array([tile[a // 2: a // 2 + CHUNK_ELEMS] for a in addresses]).reshape(4, 8, 8)
    assert all(a % 16 == 0 for a in addresses)
    for phase in range(4):
        banks = {(a // 16) % 8 for a in addresses[8 * phase: 8 * phase + 8]}
        assert len(banks) == 8, f"bank conflict in an ldmatrix phase: {addresses}"
    if trans:
        rows = rows.transpose(0, 2, 1)
    out = np.empty((32, 4, 2))
    for h in range(2):
        out[:, :, h] = rows[:, _G, 2 * _T + h].T
    return out


def _mma(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[lane, 4] of D = A B for m16n8k16 with A and B fragments as the PTX ISA defines them:
    a_i: row g + 8 * (i // 2 % 2), column 2t + i % 2 + 8 * (i // 4); b_i: k 2t + i % 2 +
    8 * (i // 2), n g; c_i: row g + 8 * (i // 2), column 2t + i % 2 (g = lane / 4,
    t = lane % 4). a holds [lane, register, half] = a_{2 register + half}."""
    A = np.zeros((16, 16))
    for i in range(8):
        A[_G + 8 * (i // 2 % 2), 2 * _T + i % 2 + 8 * (i // 4)] = a[:, i // 2, i % 2]
    B = np.zeros((16, 8))
    for i in range(4):
        B[2 * _T + i % 2 + 8 * (i // 2), _G] = b[:, i // 2, i % 2]
    D = A @ B
    return np.stack([D[_G + 8 * (i // 2), 2 * _T + i % 2] for i in range(4)], axis=1)


def _stage_tile(x: np.ndarray, k_contiguous: bool, free0: int, k0: int, edge: int,
                tile: MmaTile) -> np.ndarray:
    """The shared tile (elements) after every thread's cp.async copies of one K step;
    x is the operand as [free, k]. Out-of-range chunks are zero-filled."""
    per_row = chunks_per_row(k_contiguous, edge, tile.block_k)
    count = edge * tile.block_k // CHUNK_ELEMS
    out = np.full(edge * tile.block_k, np.nan)
    for tid in range(tile.threads):
        for j in range(count // tile.threads):
            row, chunk = chunk_coords(tid + j * tile.threads, per_row)
            offset = tile_offset(row, chunk, per_row)
            assert isinstance(offset, int) and offset % 16 == 0
            base = offset // 2
            assert np.isnan(out[base: base + CHUNK_ELEMS]).all(), "two copies to one chunk"
            for e in range(CHUNK_ELEMS):
                f, k = (row, chunk * 8 + e) if k_contiguous else (chunk * 8 + e, row)
                f, k = free0 + f, k0 + k
                inside = f < x.shape[0] and k < x.shape[1]
                out[base + e] = x[f, k] if inside else 0.0
    assert not np.isnan(out).any(), "a tile position no copy writes"
    return out


def _simulate(a: np.ndarray, b: np.ndarray, a_kc: bool, b_kc: bool, tile: MmaTile
              ) -> np.ndarray:
    """C = a @ b ([M, K] x [K, N]) as the kernel's blocks compute it."""
    m, k = a.shape
    n = b.shape[1]
    c = np.full((m, n), np.nan)
    bt = b.T
    mt, nt = tile.warp_m // 16, tile.warp_n // 8
    for pm, pn in itertools.product(range(-(-m // tile.block_m)), range(-(-n // tile.block_n))):
        m0, n0 = pm * tile.block_m, pn * tile.block_n
        acc = np.zeros((tile.threads // 32, 32, mt, nt, 4))
        for k0 in range(0, k, tile.block_k):
            sa = _stage_tile(a, a_kc, m0, k0, tile.block_m, tile)
            sb = _stage_tile(bt, b_kc, n0, k0, tile.block_n, tile)
            pa = chunks_per_row(a_kc, tile.block_m, tile.block_k)
            pb = chunks_per_row(b_kc, tile.block_n, tile.block_k)
            for w in range(tile.threads // 32):
                wm, wn = w % tile.warps_m, w // tile.warps_m
                for kk in range(0, tile.block_k, 16):
                    a_regs = []
                    for i in range(mt):
                        addresses = [tile_offset(*fragment_coords(
                            lane, wm * tile.warp_m + 16 * i, kk, a_kc, False), pa)
                            for lane in range(32)]
                        a_regs.append(_ldmatrix_x4(sa, addresses, not a_kc))  # type: ignore[arg-type]
                    b_regs = []
                    for j in range(nt // 2):
                        addresses = [tile_offset(*fragment_coords(
                            lane, wn * tile.warp_n + 16 * j, kk, b_kc, True), pb)
                            for lane in range(32)]
                        regs = _ldmatrix_x4(sb, addresses, not b_kc)  # type: ignore[arg-type]
                        b_regs += [regs[:, 0:2], regs[:, 2:4]]
                    for i, j in itertools.product(range(mt), range(nt)):
                        acc[w, :, i, j] += _mma(a_regs[i], b_regs[j])
        for w in range(tile.threads // 32):
            wm, wn = w % tile.warps_m, w // tile.warps_m
            for lane, i, j, reg in itertools.product(range(32), range(mt), range(nt), range(4)):
                r, col = accumulator_coords(lane, reg)
                assert isinstance(r, int) and isinstance(col, int)
                row = m0 + wm * tile.warp_m + 16 * i + r
                column = n0 + wn * tile.warp_n + 8 * j + col
                if row < m and column < n:
                    assert np.isnan(c[row, column]), "two stores to one element"
                    c[row, column] = acc[w, lane, i, j, reg]
    assert not np.isnan(c).any(), "an output element no thread stores"
    return c


@pytest.mark.parametrize("a_kc,b_kc", [(True, False), (True, True), (False, False),
                                       (False, True)], ids=["nn", "nt", "tn", "tt"])
def test_model_of_the_default_tile(a_kc: bool, b_kc: bool) -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(-4, 5, (136, 72)).astype(np.float64)
    b = rng.integers(-4, 5, (72, 144)).astype(np.float64)
    np.testing.assert_array_equal(_simulate(a, b, a_kc, b_kc, DEFAULT_TILE), a @ b)


@pytest.mark.parametrize("tile", TILES[1:], ids=lambda t: f"{t.block_m}x{t.block_n}w{t.threads}")
def test_model_of_other_tiles(tile: MmaTile) -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(-4, 5, (72, 48)).astype(np.float64)
    b = rng.integers(-4, 5, (48, 136)).astype(np.float64)
    np.testing.assert_array_equal(_simulate(a, b, True, False, tile), a @ b)
    np.testing.assert_array_equal(_simulate(a, b, False, True, tile), a @ b)
