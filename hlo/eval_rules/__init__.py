"""Evaluator kernels by op family; importing this package fills `hlo.evaluator.EVAL`."""

from hlo.eval_rules import control, elementwise, linalg, movement, random, reduction

__all__ = ["control", "elementwise", "linalg", "movement", "random", "reduction"]
