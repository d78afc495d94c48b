"""ComputationBuilder: the XLA operation-semantics API (TF 1.8), producing our HLO IR.

Usage::

    b = ComputationBuilder("axpy")
    x = b.parameter(0, Shape.array(PrimitiveType.F32, [2, 3]), "x")
    v = b.constant_r1([7.0, 8.0, 9.0])
    s = b.add(x, v, broadcast_dimensions=[1])          # |1 2 3; 4 5 6| + |7 8 9|
    total = b.reduce(s, b.constant_r0(0.0), lambda sb, a, c: sb.add(a, c), [0, 1])
    module = b.build()                                 # root: the last instruction added

Design:

* Handles are the HloInstructions themselves (`XlaOp`); every operation returns one.
  Operands must come from the same builder; using a handle of another computation (for
  instance an outer value inside a sub-computation) raises HloVerificationError.
* Computation arguments (`to_apply`, `condition`, `body`, branches, comparators) accept one
  of three forms, resolved in one place (`BuilderBase._computation`):
  a Python callable `fn(sub_builder, *params) -> root` (the builder creates the
  sub-builder and parameters with the shapes the operation implies, e.g. two f32 scalars
  for an f32 reduce; returning a list makes a tuple root), a sub-builder made with
  `create_sub_builder(name)` (its last instruction is the root unless
  `build_computation(root)` chose one), or an HloComputation of this builder's module.
  Signatures are checked against what the operation needs (ShapeError).
* Broadcasting follows the document: equal ranks broadcast degenerate (size-1)
  dimensions; scalars broadcast freely; other rank mismatches require
  `broadcast_dimensions` ("InDim"). The IR gets explicit `reshape` and `broadcast`
  instructions, since HLO element-wise instructions take operands of one shape.
* `build(root=None)` returns the HloModule: this builder's computation is the entry, the
  computations it calls come first (callee-first), unused sub-builders are dropped.

Operations are grouped by family in `builder_leaves.py`, `builder_elementwise.py`,
`builder_movement.py`, `builder_compute.py` and `builder_control.py`, each a mixin layered
on `builder_core.BuilderBase`. This module only assembles the public class.
"""

from __future__ import annotations

from hlo.builder_compute import DotDimensionNumbers, default_conv_dimension_numbers, make_padding
from hlo.builder_control import ControlOps
from hlo.builder_core import XlaOp


class ComputationBuilder(ControlOps):
    """Builds one computation (and, through sub-builders, the computations it calls).

    Args:
        name: the computation's (and, for a top-level builder, the module's) name.
        parent: the builder this one is a sub-builder of; use `create_sub_builder`.
    """


__all__ = [
    "ComputationBuilder",
    "DotDimensionNumbers",
    "XlaOp",
    "default_conv_dimension_numbers",
    "make_padding",
]
