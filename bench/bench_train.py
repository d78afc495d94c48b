"""A jitted training step (forward, backward, AdamW update) at batch 128, against jax.jit.

Two models, those of examples/train_digits.py, on 8x8 single-channel images:

    mlp: 64-256-128-10, relu
    cnn: conv 3x3x16 -> relu -> max-pool 2 -> conv 3x3x32 -> relu -> max-pool 2 -> dense 10

The step is ONE function, `train_step(kit, model, params, opt, images, labels, lr)`, written
against a `Kit`: an array namespace (compiler.numpy or jax.numpy), its lax module, its
value_and_grad and its tree_map. tfcompile runs it under `compiler.jit`, JAX under
`jax.jit`, each called on the same params, optimiser state and batch on every call (no
donation), so every call returns the same result: the flattened (loss, params, m, v, t).
The optimiser state starts mid-training (t = 10, random moments) so that the AdamW update
is not the sign of the gradient, which rounding would make ill-conditioned.

numpy is a peer for the MLP with its backward written by hand. The float64 reference is that
numpy step for the MLP, and the step traced in float64 and run by the HLO interpreter
(hlo/evaluator.py) for the CNN. The work counted is the flops of the dots and
convolutions, forward and backward (weight and input gradients).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.harness import Case, Contender, Metric, Skip
from bench.peers import Peers

BATCH = 128
CLASSES = 10
MLP_SIZES = (64, 256, 128, 10)
CNN_CHANNELS = (1, 16, 32)
IMAGE = 8
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 1e-4
BETA1 = 0.9
BETA2 = 0.999
EPS = 1e-8
START_STEP = 10.0
TOLERANCE = 1e-4
CONV_DIMS = ("NHWC", "HWIO", "NHWC")

Params = Any


@dataclass(frozen=True)
class Kit:
    """What the step needs from a framework.

    Attributes:
        xp: the numpy-like array namespace.
        lax: the module with conv_general_dilated and reduce_window (JAX's signatures).
        max_reducer: reduce_window's computation for a max ("max" or jax.lax.max).
        value_and_grad: value_and_grad(f)(params) -> (value, gradient pytree).
        tree_map: tree_map(f, tree, *trees).
    """

    xp: Any
    lax: Any
    max_reducer: Any
    value_and_grad: Callable[..., Any]
    tree_map: Callable[..., Any]


# --- the models and the step, written once ---------------------------------------------------


def relu(kit: Kit, x: Any) -> Any:
    return kit.xp.maximum(x, 0.0)


def mlp(kit: Kit, params: Params, images: Any) -> Any:
    """Logits of the MLP; params is a list of {"w", "b"} layers."""
    h = images.reshape(images.shape[0], -1)
    for layer in params[:-1]:
        h = relu(kit, h @ layer["w"] + layer["b"])
    return h @ params[-1]["w"] + params[-1]["b"]


def _conv_relu_pool(kit: Kit, x: Any, kernel: Any, bias: Any) -> Any:
    y = kit.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=CONV_DIMS)
    y = relu(kit, y + bias)
    return kit.lax.reduce_window(y, -np.inf, kit.max_reducer, (1, 2, 2, 1), (1, 2, 2, 1),
                                 "VALID")


def cnn(kit: Kit, params: Params, images: Any) -> Any:
    """Logits of the CNN; images are NHW, made NHWC with one channel."""
    x = images[..., None]
    x = _conv_relu_pool(kit, x, params["conv1"], params["b1"])
    x = _conv_relu_pool(kit, x, params["conv2"], params["b2"])
    return x.reshape(x.shape[0], -1) @ params["dense"] + params["b3"]


def cross_entropy(kit: Kit, logits: Any, labels: Any) -> Any:
    """Mean softmax cross-entropy of integer labels."""
    xp = kit.xp
    shifted = logits - xp.max(logits, axis=-1, keepdims=True)
    logp = shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))
    one_hot = (labels[:, None] == xp.arange(CLASSES)).astype(logits.dtype)
    return -xp.mean(xp.sum(logp * one_hot, axis=-1))


def train_step(kit: Kit, model: Callable[..., Any], params: Params, opt: Any, images: Any,
               labels: Any, lr: Any) -> tuple[Params, Any, Any]:
    """One AdamW step: (params, (m, v, t), images, labels, lr) -> (params, (m, v, t), loss)."""
    xp = kit.xp
    loss, grads = kit.value_and_grad(
        lambda p: cross_entropy(kit, model(kit, p, images), labels))(params)
    m, v, t = opt
    t = t + 1.0
    m = kit.tree_map(lambda a, g: BETA1 * a + (1 - BETA1) * g, m, grads)
    v = kit.tree_map(lambda a, g: BETA2 * a + (1 - BETA2) * g * g, v, grads)
    scale = lr * xp.sqrt(1 - BETA2 ** t) / (1 - BETA1 ** t)
    params = kit.tree_map(
        lambda p, a, b: p * (1 - lr * WEIGHT_DECAY) - scale * a / (xp.sqrt(b) + EPS),
        params, m, v)
    return params, (m, v, t), loss


# --- the MLP step by hand in numpy -----------------------------------------------------------


def numpy_mlp_step(params: Params, opt: Any, images: np.ndarray, labels: np.ndarray,
                   lr: float) -> tuple[Params, Any, Any]:
    """`train_step` of the MLP with its backward written out; the inputs are not modified."""
    hs = [images.reshape(len(images), -1)]
    for layer in params[:-1]:
        hs.append(np.maximum(hs[-1] @ layer["w"] + layer["b"], 0))
    logits = hs[-1] @ params[-1]["w"] + params[-1]["b"]
    shifted = logits - logits.max(-1, keepdims=True)
    probs = np.exp(shifted)
    total = probs.sum(-1, keepdims=True)
    rows = np.arange(len(labels))
    loss = -np.mean(shifted[rows, labels] - np.log(total[:, 0]))
    delta = probs / total
    delta[rows, labels] -= 1
    delta /= len(labels)
    grads: list[dict[str, np.ndarray]] = [{} for _ in params]
    for i in range(len(params) - 1, -1, -1):
        grads[i] = {"w": hs[i].T @ delta, "b": delta.sum(0)}
        if i:
            delta = (delta @ params[i]["w"].T) * (hs[i] > 0)
    m, v, t = opt
    t = t + 1.0
    scale = lr * np.sqrt(1 - BETA2 ** t) / (1 - BETA1 ** t)
    new_params, new_m, new_v = [], [], []
    for p, g, mi, vi in zip(params, grads, m, v, strict=True):
        new_m.append({k: BETA1 * mi[k] + (1 - BETA1) * g[k] for k in p})
        new_v.append({k: BETA2 * vi[k] + (1 - BETA2) * g[k] * g[k] for k in p})
        new_params.append({k: p[k] * (1 - lr * WEIGHT_DECAY)
                           - scale * new_m[-1][k] / (np.sqrt(new_v[-1][k]) + EPS) for k in p})
    return new_params, (new_m, new_v, t), loss


# --- kits, inputs and contenders -------------------------------------------------------------


def tfcompile_kit() -> Kit:
    import compiler.numpy as cnp
    from compiler import lax
    from compiler.autodiff import value_and_grad
    from compiler.pytree import tree_map

    return Kit(cnp, lax, "max", value_and_grad, tree_map)


def jax_kit(jax: Any) -> Kit:
    return Kit(jax.numpy, jax.lax, jax.lax.max, jax.value_and_grad, jax.tree_util.tree_map)


def flatten(result: Any) -> np.ndarray:
    """(params, (m, v, t), loss) as one float64 vector, loss first, dict keys sorted."""
    from compiler.pytree import tree_leaves

    params, opt, loss = result
    leaves = [loss, *tree_leaves(params), *tree_leaves(opt)]
    return np.concatenate([np.asarray(a, np.float64).ravel() for a in leaves])


def init_mlp(rng: np.random.Generator) -> Params:
    return [
        {"w": (rng.standard_normal((m, n)) * np.sqrt(2.0 / m)).astype(np.float32),
         "b": (0.1 * rng.standard_normal(n)).astype(np.float32)}
        for m, n in zip(MLP_SIZES[:-1], MLP_SIZES[1:], strict=True)
    ]


def init_cnn(rng: np.random.Generator) -> Params:
    def he(*shape: int) -> np.ndarray:
        fan_in = int(np.prod(shape[:-1]))
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    def bias(n: int) -> np.ndarray:
        return (0.1 * rng.standard_normal(n)).astype(np.float32)

    c0, c1, c2 = CNN_CHANNELS
    pooled = (IMAGE // 4) ** 2 * c2
    return {"conv1": he(3, 3, c0, c1), "b1": bias(c1), "conv2": he(3, 3, c1, c2),
            "b2": bias(c2), "dense": he(pooled, CLASSES), "b3": bias(CLASSES)}


def mid_training_state(rng: np.random.Generator, params: Params) -> Any:
    """(m, v, t) as after START_STEP steps: moments of a gradient scale of about 1e-2."""
    m = _tree_map(lambda p: (1e-2 * rng.standard_normal(p.shape)).astype(np.float32), params)
    v = _tree_map(lambda p: (1e-4 * rng.uniform(0.5, 1.5, p.shape)).astype(np.float32), params)
    return m, v, np.float32(START_STEP)


def _tree_map(fn: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    from compiler.pytree import tree_map

    return tree_map(fn, tree, *rest)


def _to64(tree: Any) -> Any:
    return _tree_map(lambda a: np.asarray(a, np.float64), tree)


def mlp_flops(batch: int) -> int:
    """Forward dots, then weight gradients and input gradients (none for the images)."""
    dims = list(zip(MLP_SIZES[:-1], MLP_SIZES[1:], strict=True))
    forward = sum(2 * batch * m * n for m, n in dims)
    first = 2 * batch * dims[0][0] * dims[0][1]
    return 3 * forward - first


def cnn_flops(batch: int) -> int:
    """The same count for the two convolutions and the dense layer."""
    c0, c1, c2 = CNN_CHANNELS
    conv1 = 2 * batch * IMAGE * IMAGE * 9 * c0 * c1
    conv2 = 2 * batch * (IMAGE // 2) ** 2 * 9 * c1 * c2
    dense = 2 * batch * (IMAGE // 4) ** 2 * c2 * CLASSES
    return 3 * (conv1 + conv2 + dense) - conv1


def tfcompile_contender(model: Callable[..., Any], args: tuple[Any, ...]) -> Contender:
    """`compiler.jit` of the step, called on the numpy arguments (traced on the first call),
    on compile's default threads: as many as the process may use (one under --single-thread)."""
    from compiler.jit import jit

    step = jit(functools.partial(train_step, tfcompile_kit(), model))
    step(*args)  # traces and compiles, which would otherwise be the harness's one warm-up
    return Contender("tfcompile", lambda: step(*args), flatten)


def jax_contender(peers: Peers, model: Callable[..., Any],
                  args: tuple[Any, ...]) -> Contender | Skip:
    """`jax.jit` of the same step on device copies of the arguments."""
    if "jax" not in peers.modules:
        return Skip("jax", peers.missing["jax"])
    jax = peers.modules["jax"]
    cpu = jax.devices("cpu")[0]
    step = jax.jit(functools.partial(train_step, jax_kit(jax), model))
    *arrays, lr = args
    device_args = [*jax.device_put(arrays, cpu), lr]

    def run() -> Any:
        return jax.block_until_ready(step(*device_args))

    run()  # compiles
    return Contender("jax", run, flatten)


def interpreted_reference(model: Callable[..., Any], args: tuple[Any, ...]) -> np.ndarray:
    """The step traced in float64 and evaluated by the HLO interpreter."""
    from compiler.jit import jit

    params, opt, images, labels, lr = args
    step = jit(functools.partial(train_step, tfcompile_kit(), model), backend="interpreter")
    return flatten(step(_to64(params), _to64(opt), images.astype(np.float64), labels, lr))


def mlp_case(peers: Peers, rng: np.random.Generator, images: np.ndarray,
             labels: np.ndarray) -> Case:
    """The MLP step: tfcompile, numpy by hand, jax."""
    params = init_mlp(rng)
    args = (params, mid_training_state(rng, params), images, labels, LEARNING_RATE)
    reference = numpy_mlp_step(_to64(params), _to64(args[1]), images.astype(np.float64),
                               labels, LEARNING_RATE)
    case = Case(
        name=f"train mlp batch {BATCH}",
        description="MLP 64-256-128-10 training step (value_and_grad + AdamW), f32",
        metric=Metric("flops", mlp_flops(BATCH)),
        reference=flatten(reference),
        tolerance=TOLERANCE,
    )
    case.add(lambda: tfcompile_contender(mlp, args), "tfcompile")
    case.add(lambda: Contender("numpy", lambda: numpy_mlp_step(*args), flatten), "numpy")
    case.add(lambda: jax_contender(peers, mlp, args), "jax")
    return case


def cnn_case(peers: Peers, rng: np.random.Generator, images: np.ndarray,
             labels: np.ndarray) -> Case:
    """The CNN step: tfcompile, jax."""
    params = init_cnn(rng)
    args = (params, mid_training_state(rng, params), images, labels, LEARNING_RATE)
    case = Case(
        name=f"train cnn batch {BATCH}",
        description="CNN conv16-pool-conv32-pool-dense10 training step (AdamW), f32",
        metric=Metric("flops", cnn_flops(BATCH)),
        reference=interpreted_reference(cnn, args),
        tolerance=TOLERANCE,
    )
    case.add(lambda: tfcompile_contender(cnn, args), "tfcompile")
    case.add(lambda: jax_contender(peers, cnn, args), "jax")
    return case


def cases(peers: Peers) -> list[Case]:
    """The MLP step and the CNN step, on the same random batch."""
    rng = np.random.default_rng(6)
    images = rng.uniform(0.0, 1.0, (BATCH, IMAGE, IMAGE)).astype(np.float32)
    labels = rng.integers(0, CLASSES, BATCH).astype(np.int32)
    return [mlp_case(peers, rng, images, labels), cnn_case(peers, rng, images, labels)]
