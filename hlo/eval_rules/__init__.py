"""Evaluator kernels by op family; importing this package fills `hlo.evaluator.EVAL`."""
