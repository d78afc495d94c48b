"""The VJP rule table of reverse-mode autodiff, one rule per differentiable opcode.

Rules live in one file per op family and register themselves in `VJP` with `@defvjp`:
elementwise.py (arithmetic, math functions, select, convert), movement.py (broadcast,
reshape, slices, pad, concatenate, gather/scatter, tuples), reduction.py (reduce,
reduce-window), linalg.py (dot, convolution), control.py (while, conditional, call).
"""

from compiler.vjp_rules import control, elementwise, linalg, movement, reduction  # noqa: F401
from compiler.vjp_rules.base import (
    VJP,
    ZERO_VJP,
    Cot,
    VjpContext,
    VjpRule,
    defvjp,
    has_float,
)

__all__ = ["VJP", "ZERO_VJP", "Cot", "VjpContext", "VjpRule", "defvjp", "has_float"]
