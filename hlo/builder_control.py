"""Builder operations that call computations: Map, Call, While and Conditional.

Computation arguments are resolved by `BuilderBase._computation` (an HloComputation of this
module, a sub-builder, or a callable `fn(sub_builder, *params)`), with the parameter shapes
each operation implies.
"""

from __future__ import annotations

from collections.abc import Sequence

from hlo.builder_compute import ComputeOps
from hlo.builder_core import ComputationLike, XlaOp, handle_list, int_list, shape_text
from hlo.dtypes import PrimitiveType
from hlo.errors import ArgumentError, ShapeError
from hlo.opcodes import Opcode
from hlo.shape import Shape


class ControlOps(ComputeOps):
    """Map, Call, While, Conditional."""

    def map(self, operands: Sequence[XlaOp], computation: ComputationLike,
            dimensions: Sequence[int] | None = None,
            static_operands: Sequence[XlaOp] = ()) -> XlaOp:
        """Apply a scalar computation to corresponding elements of equally shaped operands.

        The computation takes one scalar per operand, then one per static operand, and
        returns a scalar of type S; the result has the operands' dimensions and type S.
        `dimensions` must name every dimension (HLO maps are total). Static operands must
        be scalars: they are broadcast and passed as extra mapped operands, which gives
        every element the same value.
        """
        what = "map"
        ops = self._check_operands(what, handle_list(what, "operands", operands))
        statics = self._check_operands(
            what, handle_list(what, "static_operands", static_operands)
        )
        if not ops:
            raise ShapeError(f"{what}: needs at least one operand")
        dims = ops[0].shape.dims
        for o in ops:
            self._require_array(what, o)
            if o.shape.dims != dims:
                raise ShapeError(f"{what}: operands must have equal dimensions, got "
                                 f"{', '.join(shape_text(x.shape) for x in ops)}")
        rank = len(dims)
        if dimensions is not None:
            given = int_list(what, "dimensions", dimensions)
            if given != tuple(range(rank)):
                raise ShapeError(
                    f"{what}: dimensions {list(given)} must list every dimension of "
                    f"{shape_text(ops[0].shape)} in order"
                )
        for s in statics:
            self._require_scalar(what, s, "static operand")
        params = [Shape.array(o.shape.element_type, ()) for o in ops + statics]
        comp = self._computation(what, "computation", computation, params)
        expanded = [self._expand(what, s, (), dims) for s in statics]
        return self._add(what, Opcode.MAP, ops + expanded, dimensions=tuple(range(rank)),
                         to_apply=comp)

    def call(self, computation: ComputationLike, args: Sequence[XlaOp] = ()) -> XlaOp:
        """Invoke `computation` on `args` (their number and shapes must match its parameters)."""
        what = "call"
        ops = self._check_operands(what, handle_list(what, "args", args))
        comp = self._computation(what, "computation", computation, [o.shape for o in ops])
        return self._add(what, Opcode.CALL, ops, to_apply=comp)

    def while_(self, condition: ComputationLike, body: ComputationLike, init: XlaOp) -> XlaOp:
        """Run `body` (T -> T) while `condition` (T -> PRED) holds, starting from `init`.

        The result is the value after the last iteration of `body`.
        """
        what = "while"
        self._check_operands(what, [init])
        cond = self._computation(what, "condition", condition, [init.shape])
        result = cond.program_shape().result
        if not result.is_array or result.rank != 0 or not result.element_type.is_pred:
            raise ShapeError(f"{what}: condition {cond.name} must return pred[], returns "
                             f"{shape_text(result)}")
        loop = self._computation(what, "body", body, [init.shape])
        if not loop.program_shape().result.compatible(init.shape):
            raise ShapeError(
                f"{what}: body {loop.name} returns {shape_text(loop.program_shape().result)}, "
                f"but the loop state is {shape_text(init.shape)}"
            )
        return self._add(what, Opcode.WHILE, [init], condition=cond, body=loop)

    def conditional(self, pred: XlaOp, true_operand: XlaOp, true_computation: ComputationLike,
                    false_operand: XlaOp, false_computation: ComputationLike) -> XlaOp:
        """Run true_computation(true_operand) if pred else false_computation(false_operand).

        Only the chosen computation runs; both must return the same shape.
        """
        what = "conditional"
        self._check_operands(what, [pred, true_operand, false_operand])
        self._require_scalar(what, pred, "pred")
        if not pred.shape.element_type.is_pred:
            raise ShapeError(f"{what}: pred must be pred[], got {shape_text(pred.shape)}")
        on_true = self._computation(what, "true_computation", true_computation,
                                    [true_operand.shape])
        on_false = self._computation(what, "false_computation", false_computation,
                                     [false_operand.shape])
        self._check_same_results(what, [on_true.program_shape().result,
                                        on_false.program_shape().result])
        return self._add(what, Opcode.CONDITIONAL, [pred, true_operand, false_operand],
                         true_computation=on_true, false_computation=on_false)

    def case(self, branch_index: XlaOp, branches: Sequence[tuple[XlaOp, ComputationLike]]) -> XlaOp:
        """Run branch `branch_index` (s32; out of range runs the last) on its operand."""
        what = "case"
        self._check_operands(what, [branch_index])
        self._require_scalar(what, branch_index, "branch_index")
        if branch_index.shape.element_type is not PrimitiveType.S32:
            raise ShapeError(f"{what}: branch_index must be s32[], got "
                             f"{shape_text(branch_index.shape)}")
        if not isinstance(branches, (list, tuple)) or not branches:
            raise ShapeError(f"{what}: needs a non-empty list of (operand, computation) pairs")
        if any(not isinstance(b, (list, tuple)) or len(b) != 2 for b in branches):
            raise ArgumentError(f"{what}: each branch must be an (operand, computation) pair")
        operands = self._check_operands(what, [op for op, _ in branches])
        comps = tuple(
            self._computation(what, f"branch {i}", spec, [op.shape])
            for i, (op, spec) in enumerate(branches)
        )
        self._check_same_results(what, [c.program_shape().result for c in comps])
        return self._add(what, Opcode.CONDITIONAL, [branch_index, *operands],
                         branch_computations=comps)

    @staticmethod
    def _check_same_results(what: str, results: Sequence[Shape]) -> None:
        if any(not r.compatible(results[0]) for r in results):
            raise ShapeError(f"{what}: the branches return different shapes: "
                             f"{', '.join(shape_text(r) for r in results)}")
