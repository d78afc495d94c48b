"""CPU convolution kernel (backends/cpu/conv.py) against the reference evaluator.

Covers dim_labels layouts (NHWC/HWIO, NCHW/OIHW, transposed output), 1-D and 3-D
convolutions, strides, positive and negative padding, lhs (base) and rhs (window)
dilation, window reversal, feature groups (grouped and depthwise), batch groups, integer
and half-precision element types, and a convolution without spatial dimensions; then each
of the three paths in turn: the direct loop nest (small kernels above), the implicit
im2col GEMM (kernels too large for the direct loop, 128 x 128 features), and depthwise
(unrolled windows over contiguous or strided features, channel multipliers, large windows);
the register-tiled direct path (float convolutions of one group with smaller kernels: tile
edges, K blocks, every window feature, other layouts and element types); and results that
are bit-identical for 1, 2 and 3 threads on the tiled and GEMM paths.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import backends.cpu.conv_tiled as conv_tiled
import backends.cpu.gemm as cpu_gemm
import compiler
from backends.cpu.compiler import CpuOptions
from backends.cpu.gemm import target_caches
from backends.cpu.object import Target
from compiler.api import compile_artifact
from hlo.evaluator import evaluate
from hlo.opcodes import Opcode
from hlo.parser import parse
from runtime.loader import Executable
from tests.backends.cpu.test_kernels_common import assert_close, check, module_text

RNG = np.random.default_rng(11)

CASES = [
    # name, lhs shape, rhs shape, result shape, attributes
    ("nhwc_same", "[2,6,5,3]", "[3,3,3,4]", "[2,6,5,4]",
     "window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f"),
    ("nchw_valid_stride2", "[2,3,7,7]", "[4,3,3,3]", "[2,4,3,3]",
     "window={size=3x3 stride=2x2}, dim_labels=bf01_oi01->bf01"),
    ("negative_padding", "[1,7,7,2]", "[3,3,2,3]", "[1,2,3,3]",
     "window={size=3x3 stride=2x2 pad=-1_0x-1_2}, dim_labels=b01f_01io->b01f"),
    ("lhs_dilation", "[1,4,4,3]", "[3,3,3,2]", "[1,8,8,2]",
     "window={size=3x3 pad=2_1x2_1 lhs_dilate=2x2}, dim_labels=b01f_01io->b01f"),
    ("rhs_dilation", "[2,8,8,3]", "[3,3,3,4]", "[2,8,6,4]",
     "window={size=3x3 pad=2_2x1_1 rhs_dilate=2x2}, dim_labels=b01f_01io->b01f"),
    ("reversal", "[2,6,5,3]", "[3,2,3,4]", "[2,6,4,4]",
     "window={size=3x2 pad=1_1x0_0 rhs_reversal=1x0}, dim_labels=b01f_01io->b01f"),
    ("all_window_features", "[1,9,8,2]", "[3,2,2,3]", "[1,4,12,3]",
     "window={size=3x2 stride=2x1 pad=1_2x0_0 lhs_dilate=1x2 rhs_dilate=2x3}, "
     "dim_labels=b01f_01io->b01f"),
    ("feature_groups", "[2,5,5,4]", "[3,3,2,6]", "[2,5,5,6]",
     "window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f, feature_group_count=2"),
    ("depthwise", "[2,5,5,4]", "[3,3,1,8]", "[2,3,3,8]",
     "window={size=3x3}, dim_labels=b01f_01io->b01f, feature_group_count=4"),
    ("batch_groups", "[4,3,5]", "[6,3,2]", "[2,6,4]",
     "window={size=2}, dim_labels=bf0_oi0->bf0, batch_group_count=2"),
    ("weight_gradient_layout", "[2,6,6,3]", "[2,4,4,5]", "[5,5,3,5]",
     "window={size=4x4 pad=1_1x1_1}, dim_labels=f01b_i01o->01bf"),
    ("one_d", "[3,10,2]", "[4,2,5]", "[3,4,5]",
     "window={size=4 stride=2 pad=1_0}, dim_labels=b0f_0io->b0f"),
    ("three_d", "[1,4,5,3,2]", "[2,3,2,2,3]", "[1,3,3,2,3]",
     "window={size=2x3x2}, dim_labels=b012f_012io->b012f"),
    ("no_spatial_dims", "[2,3]", "[3,4]", "[2,4]", "dim_labels=bf_io->bf"),
]


def compiled_ir(text: str) -> str:
    """The LLVM IR of `text` as `check` compiled it (from the in-memory compile cache)."""
    return compiler.compile(parse(text)).artifact.llvm_ir


def parse_dims(text: str) -> tuple[int, ...]:
    return tuple(int(d) for d in text.strip("[]").split(","))


def conv_module(dtype: str, lhs: str, rhs: str, out: str, attrs: str, out_type: str = "") -> str:
    result = out_type or dtype
    return module_text([f"{dtype}{lhs}", f"{dtype}{rhs}"],
                       [f"c = {result}{out} convolution(p0, p1), {attrs}"])


@pytest.mark.parametrize("name,lhs,rhs,out,attrs", CASES, ids=[c[0] for c in CASES])
def test_convolution(name: str, lhs: str, rhs: str, out: str, attrs: str) -> None:
    x = RNG.standard_normal(parse_dims(lhs)).astype(np.float32)
    k = RNG.standard_normal(parse_dims(rhs)).astype(np.float32)
    check(conv_module("f32", lhs, rhs, out, attrs), x, k, rtol=1e-4, atol=1e-4)


def test_integer_convolution_wraps() -> None:
    _, lhs, rhs, out, attrs = CASES[0]
    x = RNG.integers(-2**20, 2**20, parse_dims(lhs)).astype(np.int32)
    k = RNG.integers(-2**12, 2**12, parse_dims(rhs)).astype(np.int32)
    check(conv_module("s32", lhs, rhs, out, attrs), x, k)


def test_f16_convolution_accumulates_in_f32() -> None:
    _, lhs, rhs, out, attrs = CASES[1]
    x = RNG.standard_normal(parse_dims(lhs)).astype(np.float16)
    k = RNG.standard_normal(parse_dims(rhs)).astype(np.float16)
    check(conv_module("f16", lhs, rhs, out, attrs), x, k, rtol=2e-3, atol=2e-3)


def test_f64_convolution() -> None:
    _, lhs, rhs, out, attrs = CASES[6]
    x = RNG.standard_normal(parse_dims(lhs))
    k = RNG.standard_normal(parse_dims(rhs))
    check(conv_module("f64", lhs, rhs, out, attrs), x, k, rtol=1e-12, atol=1e-12)


# Kernels of 3x3x128x128 f32 (590 KB) take the im2col GEMM path on every CPU in the cache
# table but Apple's; the images are small so that the reference stays fast.
GEMM_CASES = [
    ("gemm_nhwc_same", "[2,5,4,128]", "[3,3,128,128]", "[2,5,4,128]",
     "window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f"),
    ("gemm_window_features", "[1,7,6,128]", "[3,3,128,128]", "[1,3,8,128]",
     "window={size=3x3 stride=2x1 pad=1_2x-1_0 lhs_dilate=1x2 rhs_dilate=2x1 rhs_reversal=0x1}, "
     "dim_labels=b01f_01io->b01f"),
    ("gemm_nchw_oihw", "[1,128,4,5]", "[128,128,3,3]", "[1,128,4,5]",
     "window={size=3x3 pad=1_1x1_1}, dim_labels=bf01_oi01->bf01"),
    ("gemm_feature_groups", "[1,4,4,256]", "[3,3,128,256]", "[1,4,4,256]",
     "window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f, feature_group_count=2"),
    ("gemm_one_d", "[3,9,160]", "[9,160,128]", "[3,5,128]",
     "window={size=9 stride=2 pad=4_4}, dim_labels=b0f_0io->b0f"),
]

DEPTHWISE_CASES = [
    ("dw_nhwc_stride", "[2,7,6,8]", "[3,3,1,8]", "[2,4,3,8]",
     "window={size=3x3 stride=2x2 pad=1_1x1_1}, dim_labels=b01f_01io->b01f, "
     "feature_group_count=8"),
    ("dw_nchw", "[2,8,6,5]", "[3,3,1,8]", "[2,8,6,5]",
     "window={size=3x3 pad=1_1x1_1}, dim_labels=bf01_01io->bf01, feature_group_count=8"),
    ("dw_dilations_reversal", "[1,6,6,16]", "[3,2,1,16]", "[1,13,11,16]",
     "window={size=3x2 pad=2_2x1_1 lhs_dilate=2x2 rhs_dilate=1x2 rhs_reversal=1x1}, "
     "dim_labels=b01f_01io->b01f, feature_group_count=16"),
    ("dw_large_window", "[1,12,12,4]", "[9,9,1,4]", "[1,12,12,4]",
     "window={size=9x9 pad=4_4x4_4}, dim_labels=b01f_01io->b01f, feature_group_count=4"),
    ("dw_multiplier_3", "[2,5,5,4]", "[3,3,1,12]", "[2,5,5,12]",
     "window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f, feature_group_count=4"),
]


@pytest.mark.parametrize("name,lhs,rhs,out,attrs", GEMM_CASES + DEPTHWISE_CASES,
                         ids=[c[0] for c in GEMM_CASES + DEPTHWISE_CASES])
def test_fast_paths(name: str, lhs: str, rhs: str, out: str, attrs: str) -> None:
    x = RNG.standard_normal(parse_dims(lhs)).astype(np.float32)
    k = RNG.standard_normal(parse_dims(rhs)).astype(np.float32)
    text = conv_module("f32", lhs, rhs, out, attrs)
    check(text, x, k, rtol=1e-4, atol=1e-3)
    # The case exercises the path it is named after (loop names show in the LLVM IR).
    llvm_ir = compiled_ir(text)
    if name.startswith("gemm"):
        if target_caches(Target.resolve()).l2 <= 2 * 1024 * 1024:
            assert "tfcompile.gemm.macro" in llvm_ir
    else:
        assert "dw.out" in llvm_ir and "tfcompile.gemm.macro" not in llvm_ir


def test_gemm_path_with_f16_operands_and_result() -> None:
    _, lhs, rhs, out, attrs = GEMM_CASES[0]
    x = RNG.standard_normal(parse_dims(lhs)).astype(np.float16)
    k = (RNG.standard_normal(parse_dims(rhs)) / 16).astype(np.float16)
    check(conv_module("f16", lhs, rhs, out, attrs), x, k, rtol=1e-2, atol=1e-2)


def test_gemm_path_with_f32_result_of_bf16_operands() -> None:
    _, lhs, rhs, out, attrs = GEMM_CASES[0]
    x = RNG.standard_normal(parse_dims(lhs)).astype(ml_dtypes.bfloat16)
    k = RNG.standard_normal(parse_dims(rhs)).astype(ml_dtypes.bfloat16)
    check(conv_module("bf16", lhs, rhs, out, attrs, out_type="f32"), x, k, rtol=1e-3,
          atol=1e-3)


def test_depthwise_f64() -> None:
    _, lhs, rhs, out, attrs = DEPTHWISE_CASES[0]
    x = RNG.standard_normal(parse_dims(lhs))
    k = RNG.standard_normal(parse_dims(rhs))
    check(conv_module("f64", lhs, rhs, out, attrs), x, k, rtol=1e-12, atol=1e-12)


# --- register-tiled direct path -----------------------------------------------------------

# Float convolutions of one group whose kernels sit in a quarter of L2. Output features
# that do not fill whole register tiles (10, 20, 40), pixel counts that do not fill whole
# tiles, and windows whose K is split into several blocks (5x5x32, and 400 input features)
# exercise the tile edges and the accumulation into C.
TILED_CASES = [
    ("tiled_nhwc_same", "[2,9,7,8]", "[3,3,8,32]", "[2,9,7,32]",
     "window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f"),
    ("tiled_edges", "[3,5,7,3]", "[3,3,3,20]", "[3,5,7,20]",
     "window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f"),
    ("tiled_stride_negative_pad", "[1,11,10,6]", "[3,3,6,40]", "[1,4,5,40]",
     "window={size=3x3 stride=2x2 pad=-1_0x0_1}, dim_labels=b01f_01io->b01f"),
    ("tiled_dilations_reversal", "[1,6,7,5]", "[3,2,5,10]", "[1,10,15,10]",
     "window={size=3x2 pad=2_1x1_2 lhs_dilate=2x2 rhs_dilate=2x1 rhs_reversal=0x1}, "
     "dim_labels=b01f_01io->b01f"),
    ("tiled_k_blocks", "[2,6,6,32]", "[5,5,32,16]", "[2,6,6,16]",
     "window={size=5x5 pad=2_2x2_2}, dim_labels=b01f_01io->b01f"),
    ("tiled_split_features", "[2,3,4,400]", "[1,1,400,20]", "[2,3,4,20]",
     "window={size=1x1}, dim_labels=b01f_01io->b01f"),
    ("tiled_nchw_oihw", "[2,6,5,7]", "[24,6,3,3]", "[2,24,5,7]",
     "window={size=3x3 pad=1_1x1_1}, dim_labels=bf01_oi01->bf01"),
    ("tiled_one_d", "[3,17,4]", "[5,4,16]", "[3,7,16]",
     "window={size=5 stride=2 pad=0_1}, dim_labels=b0f_0io->b0f"),
    ("tiled_three_d", "[2,4,5,3,2]", "[2,3,2,2,16]", "[2,3,3,2,16]",
     "window={size=2x3x2}, dim_labels=b012f_012io->b012f"),
    ("tiled_no_spatial_dims", "[7,9]", "[9,17]", "[7,17]", "dim_labels=bf_io->bf"),
]


@pytest.fixture
def tiled_at_any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """Take the tiled path for these small convolutions too (below TILED_MIN_MACS)."""
    monkeypatch.setattr(conv_tiled, "TILED_MIN_MACS", 0)


@pytest.mark.usefixtures("tiled_at_any_size")
@pytest.mark.parametrize("name,lhs,rhs,out,attrs", TILED_CASES, ids=[c[0] for c in TILED_CASES])
def test_tiled_path(name: str, lhs: str, rhs: str, out: str, attrs: str) -> None:
    x = RNG.standard_normal(parse_dims(lhs)).astype(np.float32)
    k = RNG.standard_normal(parse_dims(rhs)).astype(np.float32)
    text = conv_module("f32", lhs, rhs, out, attrs)
    check(text, x, k, rtol=1e-4, atol=1e-4)
    llvm_ir = compiled_ir(text)
    assert ".tiles" in llvm_ir and "tfcompile.gemm.macro" not in llvm_ir


@pytest.mark.usefixtures("tiled_at_any_size")
def test_tiled_path_f16_and_f64() -> None:
    _, lhs, rhs, out, attrs = TILED_CASES[2]
    x = RNG.standard_normal(parse_dims(lhs)).astype(np.float16)
    k = (RNG.standard_normal(parse_dims(rhs)) / 4).astype(np.float16)
    check(conv_module("f16", lhs, rhs, out, attrs), x, k, rtol=2e-3, atol=2e-3)
    x64 = RNG.standard_normal(parse_dims(lhs))
    k64 = RNG.standard_normal(parse_dims(rhs))
    check(conv_module("f64", lhs, rhs, out, attrs), x64, k64, rtol=1e-12, atol=1e-12)


def test_tiled_path_output_fused_bias_relu() -> None:
    """conv + bias + relu as JAX prints it (an output fusion): the tiles write the fusion's
    buffer, the epilogue updates it in place."""
    text = module_text(["f32[2,8,8,3]", "f32[3,3,3,24]", "f32[24]"], [
        "c = f32[2,8,8,24] convolution(p0, p1), window={size=3x3 pad=1_1x1_1}, "
        "dim_labels=b01f_01io->b01f",
        "bb = f32[2,8,8,24] broadcast(p2), dimensions={3}",
        "a = f32[2,8,8,24] add(c, bb)",
        "z = f32[] constant(0)",
        "zb = f32[2,8,8,24] broadcast(z), dimensions={}",
        "r = f32[2,8,8,24] maximum(a, zb)",
    ])
    args = [RNG.standard_normal(s).astype(np.float32) for s in ((2, 8, 8, 3), (3, 3, 3, 24),
                                                                (24,))]
    check(text, *args, rtol=1e-4, atol=1e-4)


def test_small_convolutions_take_the_direct_loop_without_scratch() -> None:
    """Below TILED_MIN_MACS no padded copy: the corpus cnn_forward's convolutions (4608
    multiply-adds here) keep an arena as small as XLA's."""
    text = conv_module("f32", "[2,8,8,1]", "[3,3,1,4]", "[2,8,8,4]",
                       "window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f")
    x = RNG.standard_normal((2, 8, 8, 1)).astype(np.float32)
    k = RNG.standard_normal((3, 3, 1, 4)).astype(np.float32)
    check(text, x, k, rtol=1e-5, atol=1e-5)
    assert ".tiles" not in compiled_ir(text)
    # One row of accumulators (4 features, one 64-byte slot), no 800-byte padded copy.
    assert compiler.compile(text).artifact.temp_bytes == 64


# --- threads ----------------------------------------------------------------------------------

THREAD_CASES = [TILED_CASES[0], TILED_CASES[2], TILED_CASES[4], TILED_CASES[6], GEMM_CASES[0],
                GEMM_CASES[3]]


@pytest.fixture
def low_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Split even these small convolutions (and their padded copies) across threads."""
    monkeypatch.setattr(cpu_gemm, "PARALLEL_MIN_WORK", 1)
    monkeypatch.setattr(conv_tiled, "PARALLEL_MIN_COPY", 1)
    monkeypatch.setattr(conv_tiled, "TILED_MIN_MACS", 0)


@pytest.mark.usefixtures("low_thresholds")
@pytest.mark.parametrize("name,lhs,rhs,out,attrs", THREAD_CASES,
                         ids=[c[0] for c in THREAD_CASES])
def test_identical_for_any_thread_count(name: str, lhs: str, rhs: str, out: str,
                                        attrs: str) -> None:
    x = RNG.standard_normal(parse_dims(lhs)).astype(np.float32)
    k = RNG.standard_normal(parse_dims(rhs)).astype(np.float32)
    text = conv_module("f32", lhs, rhs, out, attrs)
    # Compiled now, past the compile caches: the thresholds are patched.
    exe = Executable(compile_artifact(parse(text), CpuOptions()))
    assert "tfcompile.parallel_for" in exe.artifact.llvm_ir
    results = []
    for threads in (1, 2, 3):
        exe.threads = threads
        results.append(np.asarray(exe(x, k)))
    assert all(r.tobytes() == results[0].tobytes() for r in results)
    assert_close(results[0], evaluate(parse(text), x, k)[0], rtol=1e-4, atol=1e-3)


def test_small_convolutions_stay_serial() -> None:
    _, lhs, rhs, out, attrs = TILED_CASES[1]
    assert "tfcompile.parallel_for" not in compiled_ir(conv_module("f32", lhs, rhs, out, attrs))


# --- output fusions: the epilogue in the tiles' stores ------------------------------------

# Epilogues of `c` (the convolution, of shape S with features along dimension F): bias and
# relu as JAX prints them; a residual add of a same-shape operand, a scale and tanh; a leaky
# relu through compare and select.
EPILOGUES = {
    "bias_relu": ("f32[{F_SIZE}]", [
        "bb = f32{S} broadcast(p2), dimensions={{{F}}}",
        "a = f32{S} add(c, bb)",
        "z = f32[] constant(0)",
        "zb = f32{S} broadcast(z), dimensions={{}}",
        "r = f32{S} maximum(a, zb)",
    ]),
    "residual_scale_tanh": ("f32{S}", [
        "a = f32{S} add(c, p2)",
        "h = f32[] constant(0.5)",
        "hb = f32{S} broadcast(h), dimensions={{}}",
        "m = f32{S} multiply(a, hb)",
        "r = f32{S} tanh(m)",
    ]),
    "leaky_relu": ("f32[{F_SIZE}]", [
        "bb = f32{S} broadcast(p2), dimensions={{{F}}}",
        "a = f32{S} subtract(c, bb)",
        "z = f32[] constant(0)",
        "zb = f32{S} broadcast(z), dimensions={{}}",
        "g = pred{S} compare(a, zb), direction=GT",
        "k = f32[] constant(0.125)",
        "kb = f32{S} broadcast(k), dimensions={{}}",
        "s = f32{S} multiply(a, kb)",
        "r = f32{S} select(g, a, s)",
    ]),
}

# Full and partial tiles, strides with negative padding, several K blocks, a transposed
# (NCHW) output that the tiles write through scratch, and three spatial dimensions.
EPILOGUE_CONVS = [TILED_CASES[k] for k in (0, 1, 2, 4, 6, 8)]


def epilogue_module(conv: tuple[str, str, str, str, str], epilogue: str) -> tuple[str, tuple]:
    """conv followed by one of EPILOGUES (an output fusion), and the epilogue operand's
    shape."""
    _, lhs, rhs, out, attrs = conv
    dims = parse_dims(out)
    feature = 1 if "->bf" in attrs else len(dims) - 1
    operand, body = EPILOGUES[epilogue]
    fields = {"S": out, "F": feature, "F_SIZE": dims[feature]}
    operand = operand.format(**fields)
    lines = [f"c = f32{out} convolution(p0, p1), {attrs}",
             *(line.format(**fields) for line in body)]
    text = module_text([f"f32{lhs}", f"f32{rhs}", operand], lines)
    return text, parse_dims(operand[3:])


def fresh_executable(text: str) -> Executable:
    """`text` compiled now, past the compile caches (the thresholds may be patched)."""
    return Executable(compile_artifact(parse(text), CpuOptions()))


@pytest.mark.usefixtures("tiled_at_any_size")
@pytest.mark.parametrize("epilogue", list(EPILOGUES))
@pytest.mark.parametrize("conv", EPILOGUE_CONVS, ids=[c[0] for c in EPILOGUE_CONVS])
def test_tiled_epilogue_is_applied_before_the_stores(conv: tuple[str, str, str, str, str],
                                                     epilogue: str) -> None:
    """The output fusion's epilogue runs in the tiles (or, for a transposed output, in
    the store from their scratch): no loop of the fusion passes over the output again."""
    text, operand = epilogue_module(conv, epilogue)
    x = RNG.standard_normal(parse_dims(conv[1])).astype(np.float32)
    k = RNG.standard_normal(parse_dims(conv[2])).astype(np.float32)
    e = RNG.standard_normal(operand).astype(np.float32)
    exe = fresh_executable(text)
    assert_close(exe(x, k, e), evaluate(parse(text), x, k, e)[0], rtol=1e-4, atol=1e-4)
    llvm_ir = exe.artifact.llvm_ir
    assert ".tiles" in llvm_ir and "fused0" not in llvm_ir
    # Outputs in (batch, spatial, feature) order get the epilogue's operand in the tiles.
    assert ('ptr noalias %"epi2"' in llvm_ir) == ("->bf" not in conv[4])


def test_epilogue_of_another_element_type_keeps_the_fusion_pass() -> None:
    """An epilogue converting to another type (of the same size) is not the tiles' to
    store: the fusion's own pass applies it, with the same result."""
    text = module_text(["f32[2,9,7,8]", "f32[3,3,8,32]"], [
        f"c = f32[2,9,7,32] convolution(p0, p1), {TILED_CASES[0][4]}",
        "r = s32[2,9,7,32] convert(c)",
    ])
    x = (4 * RNG.standard_normal((2, 9, 7, 8))).astype(np.float32)
    k = RNG.standard_normal((3, 3, 8, 32)).astype(np.float32)
    exe = fresh_executable(text)
    got = np.asarray(exe(x, k))
    want = evaluate(parse(text), x, k)[0]
    # Truncation may differ by one where the sum lands within rounding of an integer.
    assert got.dtype == np.int32 and np.abs(got - want).max() <= 1
    kinds = [i.attrs["kind"] for i in exe.artifact.extra["optimized_module"].entry_computation
             .instructions if i.opcode is Opcode.FUSION]
    assert kinds == ["kOutput"]
    (tiles,) = [line for line in exe.artifact.llvm_ir.splitlines()
                if line.startswith("define") and '.tiles"(' in line]
    assert "epi" not in tiles and "fused0" in exe.artifact.llvm_ir


@pytest.mark.usefixtures("low_thresholds")
@pytest.mark.parametrize("conv", [EPILOGUE_CONVS[1], EPILOGUE_CONVS[3], EPILOGUE_CONVS[4]],
                         ids=["edges", "k_blocks", "nchw"])
def test_epilogue_identical_for_any_thread_count(conv: tuple[str, str, str, str, str]) -> None:
    text, operand = epilogue_module(conv, "bias_relu")
    args = [RNG.standard_normal(s).astype(np.float32)
            for s in (parse_dims(conv[1]), parse_dims(conv[2]), operand)]
    exe = fresh_executable(text)
    assert "tfcompile.parallel_for" in exe.artifact.llvm_ir
    results = []
    for threads in (1, 2, 3):
        exe.threads = threads
        results.append(np.asarray(exe(*args)))
    assert all(r.tobytes() == results[0].tobytes() for r in results)
    assert_close(results[0], evaluate(parse(text), *args)[0], rtol=1e-4, atol=1e-4)
