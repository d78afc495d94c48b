"""Evaluator kernels for leaves, tuples, calls, control flow and single-replica collectives.

Covers `constant`, `iota`, `copy`, `tuple`, `get-tuple-element`, `call`, `fusion`, `map`,
`while`, `conditional`, `opt-barrier`, `after-all`, `replica-id`, `partition-id`,
`all-reduce`, `cross-replica-sum`, `custom-call` and `parameter`. Called computations
run through the same `Evaluator`, so their kernels are the ones in EVAL. Elementwise math
lives in `elementwise.py`; random numbers in `random.py`.
"""

from __future__ import annotations

import numpy as np

from hlo.dtypes import PrimitiveType
from hlo.errors import EvaluationError, InternalError, UnsupportedOpError
from hlo.eval_rules.elementwise import convert_array
from hlo.evaluator import Evaluator, Token, Value, evaluates
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode


@evaluates(Opcode.PARAMETER)
def _parameter(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    raise InternalError(f"{instr.name}: parameters are bound by the driver, not evaluated")


# --- leaves and copies ------------------------------------------------------------------------


@evaluates(Opcode.CONSTANT)
def _constant(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    literal = instr.attrs["literal"]
    if instr.shape.is_tuple:
        return literal
    arr = np.asarray(literal)
    want = instr.shape.element_type.numpy
    if arr.dtype != want or arr.shape != instr.shape.dims:
        raise EvaluationError(
            f"constant {instr.name}: literal is {arr.dtype}{list(arr.shape)}, but the "
            f"instruction is {instr.shape.to_text(with_layout=False)}"
        )
    return arr


@evaluates(Opcode.IOTA)
def _iota(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    """Indices along `iota_dimension`, converted to the element type like `convert`."""
    dims = instr.shape.dims
    d = instr.attrs["iota_dimension"]
    if not 0 <= d < len(dims):
        raise EvaluationError(
            f"iota {instr.name}: iota_dimension {d} out of range for rank {len(dims)}"
        )
    along = np.arange(dims[d], dtype=np.int64).reshape(
        [n if i == d else 1 for i, n in enumerate(dims)]
    )
    indices = np.broadcast_to(along, dims)
    return convert_array(indices, PrimitiveType.S64, instr.shape.element_type)


def deep_copy(value: Value) -> Value:
    """A copy of a value that shares no buffers with it (tuples copied leaf by leaf)."""
    if isinstance(value, tuple):
        return tuple(deep_copy(v) for v in value)
    if isinstance(value, np.ndarray):
        return value.copy()
    return value


@evaluates(Opcode.COPY)
def _copy(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    return deep_copy(operands[0])


# --- tuples and calls -------------------------------------------------------------------------


@evaluates(Opcode.TUPLE)
def _tuple(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    return tuple(operands)


@evaluates(Opcode.GET_TUPLE_ELEMENT)
def _get_tuple_element(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    (value,) = operands
    index = instr.attrs["index"]
    if not isinstance(value, tuple) or not 0 <= index < len(value):
        raise EvaluationError(
            f"get-tuple-element {instr.name}: index {index} of a value that is not a tuple "
            f"with more than {index} elements"
        )
    return value[index]


@evaluates(Opcode.CALL)
def _call(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    return ev.call(instr.attrs["to_apply"], *operands)


@evaluates(Opcode.FUSION)
def _fusion(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    """A fusion evaluates like a call of its fused computation; the kind does not matter."""
    return ev.call(instr.attrs["calls"], *operands)


@evaluates(Opcode.OPTIMIZATION_BARRIER)
def _optimization_barrier(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    return operands[0]


@evaluates(Opcode.MAP)
def _map(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    """Apply the scalar computation `to_apply` at every index (one call per element).

    Calling per element keeps the kernels' shape contract intact inside `to_apply`; the
    computation may contain constants and non-elementwise ops on scalars.
    """
    comp = instr.attrs["to_apply"]
    dims = instr.shape.dims
    out = np.empty(dims, dtype=instr.shape.element_type.numpy)
    arrays = [np.asarray(v) for v in operands]
    for index in np.ndindex(*dims):
        scalars = [np.asarray(a[index]) for a in arrays]
        out[index] = ev.call(comp, *scalars)
    return out


# --- control flow -----------------------------------------------------------------------------


@evaluates(Opcode.WHILE)
def _while(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    """Run `body` while `condition` holds; the state is the loop-carried value."""
    condition = instr.attrs["condition"]
    body = instr.attrs["body"]
    (state,) = operands
    while _truth(ev.call(condition, state), instr):
        state = ev.call(body, state)
    return state


def _truth(value: Value, instr: HloInstruction) -> bool:
    arr = np.asarray(value)
    if arr.dtype != np.bool_ or arr.shape != ():
        raise EvaluationError(
            f"{instr.opcode.value} {instr.name}: the predicate must be pred[], "
            f"got {arr.dtype}{list(arr.shape)}"
        )
    return bool(arr)


@evaluates(Opcode.CONDITIONAL)
def _conditional(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    """Run one branch on its operand.

    Pred form: true_computation gets operand 1, false_computation operand 2. Indexed form:
    branch i gets operand i + 1, and an index outside [0, N) selects the last branch (N - 1),
    as XLA does.
    """
    selector, *branch_operands = operands
    branches = instr.attrs.get("branch_computations")
    if branches is None:
        true_comp = instr.attrs.get("true_computation")
        false_comp = instr.attrs.get("false_computation")
        if true_comp is None or false_comp is None or len(branch_operands) != 2:
            raise EvaluationError(
                f"conditional {instr.name}: needs branch_computations or both "
                f"true_computation and false_computation with two branch operands"
            )
        if _truth(selector, instr):
            return ev.call(true_comp, branch_operands[0])
        return ev.call(false_comp, branch_operands[1])
    if len(branches) != len(branch_operands) or not branches:
        raise EvaluationError(
            f"conditional {instr.name}: {len(branches)} branch computations but "
            f"{len(branch_operands)} branch operands"
        )
    index = np.asarray(selector)
    if index.shape != () or index.dtype != np.int32:
        raise EvaluationError(
            f"conditional {instr.name}: the branch index must be s32[], "
            f"got {index.dtype}{list(index.shape)}"
        )
    i = int(index)
    if not 0 <= i < len(branches):
        i = len(branches) - 1
    return ev.call(branches[i], branch_operands[i])


# --- tokens, ids, collectives, opaque calls ---------------------------------------------------


@evaluates(Opcode.AFTER_ALL)
def _after_all(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    return Token()


@evaluates(Opcode.REPLICA_ID, Opcode.PARTITION_ID)
def _replica_id(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    """The evaluator runs one replica of one partition: both ids are 0."""
    return np.zeros(instr.shape.dims, dtype=instr.shape.element_type.numpy)


@evaluates(Opcode.ALL_REDUCE, Opcode.CROSS_REPLICA_SUM)
def _all_reduce(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    """With a single replica the reduction is over one value: the identity.

    Several operands give a tuple of them, as the tuple-shaped all-reduce does.
    """
    if len(operands) == 1:
        (value,) = operands
        if instr.shape.is_tuple and not isinstance(value, tuple):
            return (value,)
        return value
    return tuple(operands)


@evaluates(Opcode.CUSTOM_CALL)
def _custom_call(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    target = instr.attrs.get("custom_call_target", "")
    raise UnsupportedOpError(
        f"custom-call {instr.name} targets '{target}', which the reference evaluator cannot "
        f"run: custom-call targets are opaque native functions"
    )
