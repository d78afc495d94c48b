"""Optional peers: JAX (jax.jit), PyTorch CPU (eager and torch.compile) and onnxruntime, each
used only if installed.

numpy is always a peer and needs nothing here. Every other peer is an optional import: when
it is absent the contender becomes a Skip with a note saying how to install it, and the
benchmarks run without it. None of these packages is a dependency of the compiler.

Each `*_contender` turns one function into a harness Contender whose call includes exactly
one evaluation and the wait for its result (JAX dispatches asynchronously). Functions take
the framework's array namespace first (`fn(xp, *arrays)`), so one definition written against
the numpy API serves numpy, jax.numpy and torch alike.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.harness import Contender, Skip

# ONNX opset and IR version that every onnxruntime release since 1.13 accepts.
ONNX_OPSET = 17
ONNX_IR_VERSION = 8


@dataclass
class Peers:
    """The optional peer frameworks that could be imported, and why the others could not."""

    single_thread: bool
    torch_compile: bool = True
    modules: dict[str, Any] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    def versions(self) -> list[str]:
        """'name version' for each loaded peer, and 'name: reason' for each missing one."""
        lines = [f"{name} {_version(mod)}" for name, mod in self.modules.items()]
        lines += [f"{name}: {reason}" for name, reason in self.missing.items()]
        return lines

    def jax_contender(self, fn: Callable[..., Any], args: Sequence[np.ndarray]) -> Contender | Skip:
        """jax.jit of fn(jax.numpy, *args) on device copies of `args`."""
        if "jax" not in self.modules:
            return Skip("jax", self.missing["jax"])
        jax = self.modules["jax"]
        cpu = jax.devices("cpu")[0]
        jitted = jax.jit(functools.partial(fn, jax.numpy))
        device_args = [jax.device_put(a, cpu) for a in args]

        def run() -> Any:
            return jitted(*device_args).block_until_ready()

        return Contender("jax", run)

    def torch_contender(
        self, fn: Callable[..., Any], args: Sequence[np.ndarray], compiled: bool = False
    ) -> Contender | Skip:
        """fn(torch, *tensors) under torch.inference_mode, eager or (`compiled`) through
        torch.compile, whose compilation (tens of seconds) happens here, before timing; the
        tensors share `args`' memory."""
        name = "torch.compile" if compiled else "torch"
        if "torch" not in self.modules:
            return Skip(name, self.missing["torch"])
        if compiled and not self.torch_compile:
            return Skip(name, "not run (--no-torch-compile)")
        torch = self.modules["torch"]
        tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in args]
        call = functools.partial(fn, torch)
        if compiled:
            call = torch.compile(call)

        def run() -> Any:
            with torch.inference_mode():
                return call(*tensors)

        if compiled:
            run()
        return Contender(name, run, lambda t: t.numpy())

    def onnx_contender(
        self,
        nodes: Callable[[Any], list[Any]],
        args: Sequence[np.ndarray],
        out_shape: Sequence[int],
    ) -> Contender | Skip:
        """An onnxruntime session of the graph whose nodes `nodes(onnx)` builds.

        The graph's inputs are named in0, in1, ... after `args` (all f32) and its one output
        is named out.
        """
        if "onnxruntime" not in self.modules:
            return Skip("onnxruntime", self.missing["onnxruntime"])
        onnx = self.modules["onnx"]
        ort = self.modules["onnxruntime"]
        helper = onnx.helper
        f32 = onnx.TensorProto.FLOAT
        inputs = [
            helper.make_tensor_value_info(f"in{i}", f32, list(a.shape)) for i, a in enumerate(args)
        ]
        output = helper.make_tensor_value_info("out", f32, list(out_shape))
        graph = helper.make_graph(nodes(onnx), "bench", inputs, [output])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
        model.ir_version = ONNX_IR_VERSION
        options = ort.SessionOptions()
        # Idle workers that spin steal the CPU from the contender measured next.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if self.single_thread:
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        feed = {f"in{i}": np.ascontiguousarray(a) for i, a in enumerate(args)}

        def run() -> Any:
            return session.run(None, feed)[0]

        return Contender("onnxruntime", run)


def load(single_thread: bool, torch_compile: bool = True) -> Peers:
    """Import the optional peers that are installed (`torch_compile`: also time PyTorch's
    torch.compile, which takes tens of seconds to compile each case)."""
    peers = Peers(single_thread, torch_compile)
    if _try_import(peers, "jax", "jax", "pip install jax"):
        # A jax with CUDA support would otherwise run the peer on a GPU.
        peers.modules["jax"].config.update("jax_platforms", "cpu")
    if _try_import(peers, "torch", "torch", "pip install torch") and single_thread:
        peers.modules["torch"].set_num_threads(1)
    if _try_import(peers, "onnx", "onnx", "pip install onnx onnxruntime"):
        _try_import(peers, "onnxruntime", "onnxruntime", "pip install onnxruntime")
    else:
        # onnxruntime alone cannot be given a graph: the graphs are built with onnx.
        peers.missing["onnxruntime"] = peers.missing.pop("onnx")
    return peers


def _try_import(peers: Peers, key: str, module: str, hint: str) -> bool:
    try:
        peers.modules[key] = importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - a broken install is reported like a missing one
        if isinstance(e, ImportError):
            peers.missing[key] = f"not installed ({hint})"
        else:
            peers.missing[key] = f"import failed: {type(e).__name__}: {e}"
        return False
    return True


def _version(module: Any) -> str:
    return str(getattr(module, "__version__", "?"))
