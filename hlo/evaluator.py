"""The numpy reference evaluator: the oracle for every backend and for constant folding.

`evaluate(module, *arrays)` runs the entry computation and returns the flattened result
leaves. Per-opcode kernels live in `hlo/eval_rules/` and register themselves in `EVAL`
with `@evaluates(...)`. This module shares no semantics code with the backends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hlo.computation import HloComputation
from hlo.errors import ArgumentError, EvaluationError, TfcompileError, UnsupportedOpError
from hlo.instruction import HloInstruction
from hlo.module import HloModule
from hlo.opcodes import Opcode
from hlo.shape import Shape


class Token:
    """The value of a TOKEN-shaped instruction."""

    def __repr__(self) -> str:
        return "Token()"


# A runtime value: an ndarray for arrays, a tuple of values for tuples, a Token for tokens.
Value = Any
# kernel(evaluator, instruction, operand values) -> value
Kernel = Callable[["Evaluator", HloInstruction, list[Value]], Value]

EVAL: dict[Opcode, Kernel] = {}


def evaluates(*opcodes: Opcode) -> Callable[[Kernel], Kernel]:
    """Register a kernel for `opcodes` in EVAL."""

    def register(fn: Kernel) -> Kernel:
        for op in opcodes:
            if op in EVAL:
                raise AssertionError(f"two evaluator kernels for {op.value}")
            EVAL[op] = fn
        return fn

    return register


class Evaluator:
    """Walks computations in post order and applies EVAL kernels."""

    def __init__(self, module: HloModule | None = None) -> None:
        self.module = module
        # Lazily seeded by the `rng` kernel (hlo/eval_rules/random.py), one stream per run.
        self.rng_generator: np.random.Generator | None = None

    def run(self, comp: HloComputation, args: Sequence[Value]) -> Value:
        """Evaluate `comp` on argument values (one per parameter) and return the root value."""
        values: dict[int, Value] = {}
        params = comp.parameters
        if len(args) != len(params):
            raise EvaluationError(
                f"computation {comp.name} takes {len(params)} argument(s), got {len(args)}"
            )
        for p in params:
            values[id(p)] = args[p.attrs["parameter_number"]]
        assert comp.root is not None
        for instr in comp.root.walk_operands():
            if id(instr) in values:
                continue
            kernel = EVAL.get(instr.opcode)
            if kernel is None:
                raise UnsupportedOpError(
                    f"the evaluator has no kernel for {instr.opcode.value} ({instr.name})"
                )
            try:
                values[id(instr)] = kernel(self, instr, [values[id(o)] for o in instr.operands])
            except TfcompileError:
                raise
            except Exception as e:  # a kernel bug or numpy refusing the input
                raise EvaluationError(
                    f"evaluating {instr.name} ({instr.opcode.value}) failed: {e}"
                ) from e
        return values[id(comp.root)]

    def call(self, comp: HloComputation, *args: Value) -> Value:
        """Evaluate a called computation (to_apply, body, branch, ...)."""
        return self.run(comp, list(args))


def flatten(value: Value) -> list[Value]:
    """The leaves of a (nested) tuple value, in order."""
    if isinstance(value, tuple):
        return [leaf for v in value for leaf in flatten(v)]
    return [value]


def _check_argument(i: int, shape: Shape, arg: Any) -> Value:
    if shape.is_tuple:
        if not isinstance(arg, tuple) or len(arg) != len(shape.tuple_shapes):
            raise ArgumentError(f"argument {i}: expected a tuple {shape}, got {type(arg).__name__}")
        return tuple(_check_argument(i, s, a) for s, a in zip(shape.tuple_shapes, arg, strict=True))
    if shape.is_token:
        return Token()
    a = np.asarray(arg)
    want = shape.element_type.numpy
    if a.dtype != want or a.shape != shape.dims:
        raise ArgumentError(
            f"argument {i}: expected {shape.to_text(with_layout=False)} ({want}), "
            f"got {a.dtype}{list(a.shape)}"
        )
    return a


def evaluate(module: HloModule, *args: Any) -> tuple[np.ndarray, ...]:
    """Evaluate the entry computation; returns the result leaves (a tuple root is flattened).

    Raises:
        ArgumentError: wrong argument count, shape or dtype.
        UnsupportedOpError / EvaluationError: the module cannot be evaluated.
    """
    from hlo import eval_rules  # noqa: F401  (registers the kernels)

    entry = module.entry_computation
    params = entry.parameters
    if len(args) != len(params):
        raise ArgumentError(f"{module.name} takes {len(params)} argument(s), got {len(args)}")
    checked = [
        _check_argument(i, p.shape, a)
        for i, (p, a) in enumerate(zip(params, args, strict=True))
    ]
    return tuple(flatten(Evaluator(module).run(entry, checked)))
