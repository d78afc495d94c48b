"""Train an MLP and a small CNN on scikit-learn's bundled digits with a jitted training step.

The whole step (forward, backward through `compiler.value_and_grad`, Adam update) is one
`compiler.jit` function, compiled once for the batch shape and then called per batch.
The script prints the loss per epoch, the test accuracy and the time per step, and, for the
MLP, the time of the same step written in plain numpy (and in JAX when it is installed).

The digits data set ships with scikit-learn (no download), which is not a dependency of
tfcompile-py:

    pip install scikit-learn
    python3 examples/train_digits.py                 # both models
    python3 examples/train_digits.py --model mlp --epochs 20
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import compiler.numpy as cnp  # noqa: E402
from compiler.autodiff import value_and_grad  # noqa: E402
from compiler.jit import jit  # noqa: E402
from compiler.pytree import tree_map  # noqa: E402

Params = Any

# AdamW, the same in the jitted step and in the numpy and JAX steps timed against it.
WEIGHT_DECAY = 1e-4
BETA1 = 0.9
BETA2 = 0.999
EPS = 1e-8


def load_digits(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): 8x8 images scaled to [0, 1], 80/20 split."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        sys.exit("this example needs scikit-learn for its bundled digits data set:\n"
                 "    pip install scikit-learn")
    data = sklearn_digits()
    x = (data.images / 16.0).astype(np.float32)
    y = data.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    n_test = len(x) // 5
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test]


# --- models ---------------------------------------------------------------------------------------


def init_mlp(rng: np.random.Generator, sizes: list[int]) -> Params:
    return [
        {"w": (rng.standard_normal((m, n)) * np.sqrt(2.0 / m)).astype(np.float32),
         "b": np.zeros(n, np.float32)}
        for m, n in zip(sizes[:-1], sizes[1:], strict=True)
    ]


def mlp(params: Params, images: Any) -> Any:
    h = images.reshape(images.shape[0], -1)
    for layer in params[:-1]:
        h = cnp.relu(h @ layer["w"] + layer["b"])
    return h @ params[-1]["w"] + params[-1]["b"]


def init_cnn(rng: np.random.Generator) -> Params:
    def he(*shape: int, fan_in: int) -> np.ndarray:
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    return {
        "conv1": he(3, 3, 1, 16, fan_in=9), "b1": np.zeros(16, np.float32),
        "conv2": he(3, 3, 16, 32, fan_in=144), "b2": np.zeros(32, np.float32),
        "dense": he(2 * 2 * 32, 10, fan_in=128), "b3": np.zeros(10, np.float32),
    }


def cnn(params: Params, images: Any) -> Any:
    x = images[..., None]                                                # NHWC, 8x8x1
    x = cnp.relu(cnp.conv(x, params["conv1"], padding="SAME") + params["b1"])
    x = cnp.max_pool(x, 2)                                               # 4x4x16
    x = cnp.relu(cnp.conv(x, params["conv2"], padding="SAME") + params["b2"])
    x = cnp.max_pool(x, 2)                                               # 2x2x32
    return x.reshape(x.shape[0], -1) @ params["dense"] + params["b3"]


# --- training -------------------------------------------------------------------------------------


def cross_entropy(model: Callable[..., Any], params: Params, images: Any, labels: Any) -> Any:
    logp = cnp.log_softmax(model(params, images))
    return -cnp.mean(cnp.sum(logp * cnp.one_hot(labels, 10), axis=-1))


def make_step(model: Callable[..., Any], weight_decay: float = WEIGHT_DECAY,
              b1: float = BETA1, b2: float = BETA2, eps: float = EPS) -> Callable[..., Any]:
    """One AdamW step on a batch: (params, (m, v, t), images, labels, lr) -> same + loss.

    The learning rate is an argument (a Python float is a traced scalar, so a schedule
    does not recompile the step).
    """

    def step(params: Params, opt: Any, images: Any, labels: Any, lr: Any) -> Any:
        loss, grads = value_and_grad(lambda p: cross_entropy(model, p, images, labels))(params)
        m, v, t = opt
        t = t + 1.0
        m = tree_map(lambda a, g: b1 * a + (1 - b1) * g, m, grads)
        v = tree_map(lambda a, g: b2 * a + (1 - b2) * g * g, v, grads)
        scale = lr * cnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        params = tree_map(lambda p, a, b: p * (1 - lr * weight_decay)
                          - scale * a / (cnp.sqrt(b) + eps), params, m, v)
        return params, (m, v, t), loss

    return step


def train(name: str, model: Callable[..., Any], params: Params, data: Any, epochs: int,
          batch: int, lr: float, backend: str, seed: int) -> tuple[Params, float]:
    x_train, y_train, x_test, y_test = data
    zeros = tree_map(np.zeros_like, params)
    opt = (zeros, tree_map(np.zeros_like, params), np.float32(0.0))
    step = jit(make_step(model), donate_argnums=(0, 1), backend=backend)
    predict = jit(lambda p, x: cnp.argmax(model(p, x), axis=-1), backend=backend)
    rng = np.random.default_rng(seed)
    steps_per_epoch = len(x_train) // batch
    start = time.perf_counter()
    compile_seconds, step_seconds, steps = 0.0, 0.0, 0
    for epoch in range(epochs):
        order = rng.permutation(len(x_train))
        total = 0.0
        for k in range(steps_per_epoch):
            idx = order[k * batch:(k + 1) * batch]
            # Cosine decay of the learning rate over the whole run.
            progress = (epoch * steps_per_epoch + k) / (epochs * steps_per_epoch)
            rate = 0.5 * lr * (1 + float(np.cos(np.pi * progress)))
            t0 = time.perf_counter()
            params, opt, loss = step(params, opt, x_train[idx], y_train[idx], rate)
            elapsed = time.perf_counter() - t0
            if epoch == 0 and k == 0:
                compile_seconds = elapsed  # the first call traces and compiles
            else:
                step_seconds += elapsed
                steps += 1
            total += float(loss)
        if epoch == 0 or (epoch + 1) % max(epochs // 5, 1) == 0 or epoch == epochs - 1:
            print(f"  {name} epoch {epoch + 1:3d}: loss {total / steps_per_epoch:.4f}")
    accuracy = float(np.mean(predict(params, x_test) == y_test))
    print(f"  {name}: test accuracy {accuracy:.2%}, {1e3 * step_seconds / max(steps, 1):.3f} "
          f"ms/step ({steps} steps of batch {batch}), first call (trace + compile) "
          f"{compile_seconds:.2f} s, total {time.perf_counter() - start:.1f} s")
    print(f"  {name}: cache {step.stats.misses} miss(es), {step.stats.hits} hits")
    return params, 1e3 * step_seconds / max(steps, 1)


# --- reference steps for the timing comparison ----------------------------------------------------


def numpy_mlp_step(params: Params, opt: Any, images: np.ndarray, labels: np.ndarray,
                   lr: float) -> Any:
    """The same MLP + AdamW step, forward and backward by hand in numpy."""
    hs = [images.reshape(len(images), -1)]
    for layer in params[:-1]:
        hs.append(np.maximum(hs[-1] @ layer["w"] + layer["b"], 0))
    logits = hs[-1] @ params[-1]["w"] + params[-1]["b"]
    shifted = logits - logits.max(-1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(-1, keepdims=True)
    loss = -np.mean(np.log(probs[np.arange(len(labels)), labels]))
    delta = probs
    delta[np.arange(len(labels)), labels] -= 1
    delta /= len(labels)
    grads = [None] * len(params)
    for i in range(len(params) - 1, -1, -1):
        grads[i] = {"w": hs[i].T @ delta, "b": delta.sum(0)}
        if i:
            delta = (delta @ params[i]["w"].T) * (hs[i] > 0)
    m, v, t = opt
    t += 1
    scale = lr * np.sqrt(1 - BETA2 ** t) / (1 - BETA1 ** t)
    for p, g, mi, vi in zip(params, grads, m, v, strict=True):
        for key in ("w", "b"):
            mi[key] = BETA1 * mi[key] + (1 - BETA1) * g[key]
            vi[key] = BETA2 * vi[key] + (1 - BETA2) * g[key] ** 2
            p[key] *= 1 - lr * WEIGHT_DECAY
            p[key] -= scale * mi[key] / (np.sqrt(vi[key]) + EPS)
    return params, (m, v, t), loss


def time_numpy_mlp(params: Params, data: Any, batch: int, lr: float, steps: int = 200) -> float:
    x_train, y_train = data[0], data[1]
    params = tree_map(np.copy, params)
    opt = (tree_map(np.zeros_like, params), tree_map(np.zeros_like, params), 0)
    start = time.perf_counter()
    for k in range(steps):
        idx = slice((k * batch) % (len(x_train) - batch), (k * batch) % (len(x_train) - batch)
                    + batch)
        params, opt, _ = numpy_mlp_step(params, opt, x_train[idx], y_train[idx], lr)
    return 1e3 * (time.perf_counter() - start) / steps


def time_jax_mlp(params: Params, data: Any, batch: int, lr: float, steps: int = 200
                 ) -> float | None:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None

    def loss_fn(p: Any, x: Any, y: Any) -> Any:
        h = x.reshape(x.shape[0], -1)
        for layer in p[:-1]:
            h = jax.nn.relu(h @ layer["w"] + layer["b"])
        logp = jax.nn.log_softmax(h @ p[-1]["w"] + p[-1]["b"])
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    @jax.jit
    def step(p: Any, m: Any, v: Any, t: Any, x: Any, y: Any, lr: Any) -> Any:
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        t = t + 1.0
        m = jax.tree_util.tree_map(lambda a, b: BETA1 * a + (1 - BETA1) * b, m, g)
        v = jax.tree_util.tree_map(lambda a, b: BETA2 * a + (1 - BETA2) * b * b, v, g)
        scale = lr * jnp.sqrt(1 - BETA2 ** t) / (1 - BETA1 ** t)
        p = jax.tree_util.tree_map(lambda a, b, c: a * (1 - lr * WEIGHT_DECAY)
                                   - scale * b / (jnp.sqrt(c) + EPS), p, m, v)
        return p, m, v, t, loss

    x_train, y_train = data[0], data[1]
    m = tree_map(np.zeros_like, params)
    v = tree_map(np.zeros_like, params)
    state = (params, m, v, jnp.float32(0.0))
    x, y = x_train[:batch], y_train[:batch]
    jax.block_until_ready(step(*state, x, y, lr))  # compile
    start = time.perf_counter()
    for _ in range(steps):
        *state, loss = step(*state, x, y, lr)
    jax.block_until_ready(loss)
    return 1e3 * (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("mlp", "cnn", "both"), default="both")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--cnn-epochs", type=int, default=15)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--backend", choices=("cpu", "interpreter"), default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = load_digits(args.seed)
    rng = np.random.default_rng(args.seed)
    print(f"digits: {len(data[0])} training and {len(data[2])} test images, backend "
          f"{args.backend}")
    if args.model in ("mlp", "both"):
        start = time.perf_counter()
        params = init_mlp(rng, [64, 256, 128, 10])
        initial = tree_map(np.copy, params)
        _, ms = train("mlp", mlp, params, data, args.epochs, args.batch, args.lr, args.backend,
                      args.seed)
        print(f"  mlp: trained in {time.perf_counter() - start:.1f} s")
        print(f"  mlp step time: tfcompile {ms:.3f} ms, numpy "
              f"{time_numpy_mlp(initial, data, args.batch, args.lr):.3f} ms", end="")
        jax_ms = time_jax_mlp(initial, data, args.batch, args.lr)
        print(f", JAX {jax_ms:.3f} ms" if jax_ms is not None else " (JAX not installed)")
    if args.model in ("cnn", "both"):
        start = time.perf_counter()
        train("cnn", cnn, init_cnn(rng), data, args.cnn_epochs, args.batch, args.lr,
              args.backend, args.seed)
        print(f"  cnn: trained in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
