"""Small CNN inference (f32, NHWC) at batch 1 and batch 32, against FP32 peak.

    h1 = maxpool2x2(relu(conv3x3(x, w1) + b1))        x: [B, 32, 32, 3], 32 features
    h2 = relu(conv3x3(h1, w2) + b2)                   64 features
    logits = mean over space(h2) @ w3 + b3            10 classes

The same architecture as the corpus module cnn_forward (conv, relu, max pool, conv, relu,
global mean, dense), at CIFAR-like sizes so that the convolutions dominate. The HLO is
written as JAX prints it: `convolution` with dim_labels b01f_01io->b01f and SAME padding,
biases as broadcasts, `reduce-window` for the pool, `reduce` and `divide` for the mean.
The work counted is the multiply-adds of the two convolutions and the dense layer.

numpy computes each convolution as `tensordot` of a sliding-window view (an im2col copy and
one BLAS call); JAX calls `lax.conv_general_dilated`; PyTorch and onnxruntime run NCHW
convolutions on transposed inputs (the transposes are part of their time).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.harness import Case, Metric, numpy_contender, tfcompile_contender
from bench.peers import Peers

IMAGE = (32, 32, 3)
FEATURES = (32, 64)
CLASSES = 10
BATCHES = (1, 32)
TOLERANCE = 1e-4


def hlo(batch: int) -> str:
    """The CNN as HLO text; parameters are x, w1, b1, w2, b2, w3, b3."""
    h, w, c = IMAGE
    f1, f2 = FEATURES
    ph, pw = h // 2, w // 2
    conv = "window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f"
    s1 = f"f32[{batch},{h},{w},{f1}]{{3,2,1,0}}"
    s2 = f"f32[{batch},{ph},{pw},{f2}]{{3,2,1,0}}"
    return f"""HloModule cnn_b{batch}

max_f32 {{
  a = f32[] parameter(0)
  b = f32[] parameter(1)
  ROOT m = f32[] maximum(a, b)
}}

add_f32 {{
  a = f32[] parameter(0)
  b = f32[] parameter(1)
  ROOT s = f32[] add(a, b)
}}

ENTRY main {{
  x = f32[{batch},{h},{w},{c}]{{3,2,1,0}} parameter(0)
  w1 = f32[3,3,{c},{f1}]{{3,2,1,0}} parameter(1)
  b1 = f32[{f1}]{{0}} parameter(2)
  w2 = f32[3,3,{f1},{f2}]{{3,2,1,0}} parameter(3)
  b2 = f32[{f2}]{{0}} parameter(4)
  w3 = f32[{f2},{CLASSES}]{{1,0}} parameter(5)
  b3 = f32[{CLASSES}]{{0}} parameter(6)
  zero = f32[] constant(0)
  c1 = {s1} convolution(x, w1), {conv}
  b1.b = {s1} broadcast(b1), dimensions={{3}}
  a1 = {s1} add(c1, b1.b)
  zero.1 = {s1} broadcast(zero), dimensions={{}}
  h1 = {s1} maximum(a1, zero.1)
  ninf = f32[] constant(-inf)
  p1 = f32[{batch},{ph},{pw},{f1}]{{3,2,1,0}} reduce-window(h1, ninf),
      window={{size=1x2x2x1 stride=1x2x2x1}}, to_apply=max_f32
  c2 = {s2} convolution(p1, w2), {conv}
  b2.b = {s2} broadcast(b2), dimensions={{3}}
  a2 = {s2} add(c2, b2.b)
  zero.2 = {s2} broadcast(zero), dimensions={{}}
  h2 = {s2} maximum(a2, zero.2)
  sum = f32[{batch},{f2}]{{1,0}} reduce(h2, zero), dimensions={{1,2}}, to_apply=add_f32
  count = f32[] constant({ph * pw})
  count.b = f32[{batch},{f2}]{{1,0}} broadcast(count), dimensions={{}}
  mean = f32[{batch},{f2}]{{1,0}} divide(sum, count.b)
  d = f32[{batch},{CLASSES}]{{1,0}} dot(mean, w3),
      lhs_contracting_dims={{1}}, rhs_contracting_dims={{0}}
  b3.b = f32[{batch},{CLASSES}]{{1,0}} broadcast(b3), dimensions={{1}}
  ROOT logits = f32[{batch},{CLASSES}]{{1,0}} add(d, b3.b)
}}
"""


def _framework(xp: Any) -> str:
    """'numpy', 'jax' or 'torch': which namespace `xp` is."""
    name = getattr(xp, "__name__", "")
    if name.startswith("jax"):
        return "jax"
    return "torch" if name == "torch" else "numpy"


def conv3x3(xp: Any, x: Any, w: Any) -> Any:
    """SAME 3x3 convolution of NHWC `x` with HWIO `w`, in the namespace `xp`."""
    kind = _framework(xp)
    if kind == "jax":
        import jax

        return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if kind == "torch":
        y = xp.nn.functional.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), padding=1)
        return y.permute(0, 2, 3, 1)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))
    # windows: [B, H, W, C, 3, 3]; contract (C, 3, 3) with w's (I, H, W).
    return np.tensordot(windows, w, axes=([3, 4, 5], [2, 0, 1]))


def maxpool2x2(xp: Any, x: Any) -> Any:
    """2x2 max pool with stride 2 of NHWC `x`."""
    b, h, w, c = x.shape
    blocks = x.reshape(b, h // 2, 2, w // 2, 2, c)
    if _framework(xp) == "torch":
        return blocks.amax(dim=(2, 4))
    return blocks.max(axis=(2, 4))


def cnn(xp: Any, x: Any, w1: Any, b1: Any, w2: Any, b2: Any, w3: Any, b3: Any) -> Any:
    """The CNN in the namespace `xp` (numpy, jax.numpy or torch)."""
    h1 = maxpool2x2(xp, xp.maximum(conv3x3(xp, x, w1) + b1, xp.zeros_like(b1)))
    h2 = xp.maximum(conv3x3(xp, h1, w2) + b2, xp.zeros_like(b2))
    mean = h2.mean(dim=(1, 2)) if _framework(xp) == "torch" else h2.mean(axis=(1, 2))
    return mean @ w3 + b3


def onnx_nodes(onnx: Any) -> list[Any]:
    """The CNN as ONNX nodes (NCHW convolutions on transposed inputs)."""
    make = onnx.helper.make_node
    return [
        make("Transpose", ["in0"], ["x"], perm=[0, 3, 1, 2]),
        make("Transpose", ["in1"], ["w1"], perm=[3, 2, 0, 1]),
        make("Conv", ["x", "w1", "in2"], ["c1"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        make("Relu", ["c1"], ["r1"]),
        make("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        make("Transpose", ["in3"], ["w2"], perm=[3, 2, 0, 1]),
        make("Conv", ["p1", "w2", "in4"], ["c2"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        make("Relu", ["c2"], ["r2"]),
        make("GlobalAveragePool", ["r2"], ["g"]),
        make("Flatten", ["g"], ["f"]),
        make("MatMul", ["f", "in5"], ["d"]),
        make("Add", ["d", "in6"], ["out"]),
    ]


def weights(rng: np.random.Generator) -> list[np.ndarray]:
    """w1, b1, w2, b2, w3, b3 with He-style scaling, so activations stay of order one."""
    c = IMAGE[2]
    f1, f2 = FEATURES
    shapes = [((3, 3, c, f1), 9 * c), ((3, 3, f1, f2), 9 * f1), ((f2, CLASSES), f2)]
    out = []
    for shape, fan_in in shapes:
        out.append(rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(np.float32))
        out.append(rng.normal(0.0, 0.1, shape[-1]).astype(np.float32))
    return out


def flops(batch: int) -> int:
    """Multiply-add flops of the convolutions and the dense layer."""
    h, w, c = IMAGE
    f1, f2 = FEATURES
    conv1 = h * w * 9 * c * f1
    conv2 = (h // 2) * (w // 2) * 9 * f1 * f2
    return 2 * batch * (conv1 + conv2 + f2 * CLASSES)


def cases(peers: Peers) -> list[Case]:
    """One case per batch size."""
    rng = np.random.default_rng(3)
    params = weights(rng)
    result = []
    for batch in BATCHES:
        x = rng.uniform(0.0, 1.0, (batch, *IMAGE)).astype(np.float32)
        args = [x, *params]
        case = Case(
            name=f"cnn batch {batch}",
            description="CNN 32x32x3 -> conv3x3 32 -> pool -> conv3x3 64 -> mean -> dense 10, f32",
            metric=Metric("flops", flops(batch)),
            reference=cnn(np, *(a.astype(np.float64) for a in args)),
            tolerance=TOLERANCE,
        )
        text = hlo(batch)
        case.add(lambda text=text, args=args: tfcompile_contender(text, args), "tfcompile")
        case.add(lambda args=args: numpy_contender(cnn, args), "numpy")
        case.add(lambda args=args: peers.jax_contender(cnn, args), "jax")
        case.add(lambda args=args: peers.torch_contender(cnn, args), "torch")
        case.add(lambda args=args: peers.torch_contender(cnn, args, compiled=True),
                 "torch.compile")
        out_shape = [batch, CLASSES]
        case.add(
            lambda args=args, s=out_shape: peers.onnx_contender(onnx_nodes, args, s), "onnxruntime"
        )
        result.append(case)
    return result
