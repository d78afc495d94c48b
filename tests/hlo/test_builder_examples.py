"""ComputationBuilder against the worked examples of the operation-semantics document (TF 1.8,
../shared/xla-docs-zh.md) for element-wise unary functions, Clamp, Conditional, Call, Map and
While, ConvertElementType, BitcastConvertType and ReducePrecision, CrossReplicaSum, Tuple and
GetTupleElement, RngUniform, RngNormal and Iota, and Select. Each example is built, verified,
printed and parsed back, and evaluated with the reference evaluator; the shape errors the
document implies are checked too. Data movement, reductions, linear algebra and the builder's
own contracts have their own test_builder_*.py files.
"""

from __future__ import annotations

import numpy as np
import pytest

from hlo.builder import ComputationBuilder
from hlo.dtypes import PrimitiveType
from hlo.errors import ShapeError
from hlo.opcodes import Opcode
from hlo.shape import Shape
from tests.hlo.builder_helpers import (
    F32,
    PRED,
    S32,
    adder,
    assert_equal,
    f32,
    param,
    run,
    s32,
    shape,
)

# === element-wise unary functions ==============================================================


@pytest.mark.parametrize(
    "method, fn",
    [
        ("abs", np.abs), ("ceil", np.ceil), ("cos", np.cos), ("exp", np.exp),
        ("floor", np.floor), ("neg", np.negative), ("sign", np.sign), ("tanh", np.tanh),
        ("sin", np.sin),
    ],
)
def test_unary_functions(method, fn) -> None:
    x = f32([-2.5, -1, 0, 0.5, 3])
    b = ComputationBuilder("un_" + method)
    getattr(b, method)(param(b, 0, x))
    np.testing.assert_allclose(run(b, x), fn(x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "method, fn",
    [("log", np.log), ("sqrt", np.sqrt), ("rsqrt", lambda v: 1 / np.sqrt(v)),
     ("logistic", lambda v: 1 / (1 + np.exp(-v)))],
)
def test_unary_functions_on_positive_inputs(method, fn) -> None:
    x = f32([0.25, 1, 2, 9])
    b = ComputationBuilder("un_" + method)
    getattr(b, method)(param(b, 0, x))
    np.testing.assert_allclose(run(b, x), fn(x), rtol=1e-6)


def test_round_is_half_away_from_zero() -> None:
    x = f32([-2.5, -0.5, 0.5, 1.5, 2.5])
    b = ComputationBuilder("round")
    b.round(param(b, 0, x))
    assert_equal(run(b, x), [-3, -1, 1, 2, 3])


def test_is_finite() -> None:
    x = f32([1, np.inf, -np.inf, np.nan, 0])
    b = ComputationBuilder("is_finite")
    b.is_finite(param(b, 0, x))
    assert_equal(run(b, x), [True, False, False, False, True])


def test_unary_on_a_scalar() -> None:
    # "It allows the operand to be a scalar (rank 0)."
    b = ComputationBuilder("scalar_unary")
    b.neg(b.constant_r0(np.float32(2)))
    assert_equal(run(b), np.float32(-2))


# === Clamp ====================================================================================


def test_clamp_with_scalar_bounds() -> None:
    # operand s32[3] = {-1, 5, 9}, min 0, max 6  ==>  {0, 5, 6}
    b = ComputationBuilder("clamp")
    x = param(b, 0, s32([-1, 5, 9]))
    b.clamp(b.constant_r0(0), x, b.constant_r0(6))
    assert_equal(run(b, s32([-1, 5, 9])), s32([0, 5, 6]))


def test_clamp_with_array_bounds() -> None:
    b = ComputationBuilder("clamp_arrays")
    x = param(b, 0, s32([-1, 5, 9]))
    b.clamp(b.constant_r1([0, 6, 0]), x, b.constant_r1([1, 7, 8]))
    assert_equal(run(b, s32([-1, 5, 9])), [0, 6, 8])


# === Conditional, Call, Map, While ============================================================


@pytest.mark.parametrize("flag, want", [(True, 20.0), (False, 2.0)])
def test_conditional_runs_one_computation(flag, want) -> None:
    b = ComputationBuilder("cond")
    pred = b.parameter(0, shape(PRED), "pred")
    x = b.parameter(1, shape(F32), "x")
    y = b.parameter(2, shape(S32, 2), "y")

    def on_true(sb, v):
        return sb.mul(v, sb.constant_r0(np.float32(2)))

    def on_false(sb, pair):
        total = sb.reduce(pair, sb.constant_r0(0), adder, [0])
        return sb.convert(total, F32)

    b.conditional(pred, x, on_true, y, on_false)
    got = run(b, np.bool_(flag), np.float32(10), s32([-1, 3]))
    assert got == np.float32(want)


def test_conditional_branches_must_agree() -> None:
    b = ComputationBuilder("cond_bad")
    pred = b.parameter(0, shape(PRED), "pred")
    x = b.parameter(1, shape(F32), "x")
    with pytest.raises(ShapeError, match="different shapes"):
        b.conditional(pred, x, lambda sb, v: v, x, lambda sb, v: sb.convert(v, S32))


def test_case_with_branch_index() -> None:
    b = ComputationBuilder("case")
    i = b.parameter(0, shape(S32), "i")
    x = b.parameter(1, shape(F32), "x")
    b.case(i, [(x, lambda sb, v: sb.neg(v)), (x, lambda sb, v: sb.mul(v, v))])
    assert run(b, np.int32(1), np.float32(3)) == np.float32(9)


def test_call() -> None:
    b = ComputationBuilder("outer")
    sub = b.create_sub_builder("axpy")
    a = sub.parameter(0, shape(F32), "a")
    xs = sub.parameter(1, shape(F32, 3), "xs")
    sub.add(sub.mul(xs, a), sub.constant_r0(np.float32(1)))
    b.call(sub, [b.constant_r0(np.float32(2)), param(b, 0, f32([1, 2, 3]))])
    assert_equal(run(b, f32([1, 2, 3])), f32([3, 5, 7]))


def test_call_checks_the_signature() -> None:
    b = ComputationBuilder("call_bad")
    sub = b.create_sub_builder("unary")
    sub.neg(sub.parameter(0, shape(F32), "v"))
    with pytest.raises(ShapeError, match=r"unary takes \(f32\[\]\); expected \(s32\[\]\)"):
        b.call(sub, [b.constant_r0(1)])


def test_map_with_a_static_operand() -> None:
    # Map(op1, op2, op3, computation, par1): elem_out <- computation(e1, e2, e3, par1)
    e1, e2, e3 = f32([1, 2, 3]), f32([10, 20, 30]), f32([0.5, 0.25, 2])
    b = ComputationBuilder("map")
    ops = [param(b, i, v) for i, v in enumerate((e1, e2, e3))]

    def fn(sb, a, c, d, par):
        return sb.mul(sb.add(a, sb.mul(c, d)), par)

    out = b.map(ops, fn, dimensions=[0], static_operands=[b.constant_r0(np.float32(-1))])
    assert out.opcode is Opcode.MAP
    assert_equal(run(b, e1, e2, e3), -(e1 + e2 * e3))


def test_map_changes_the_element_type() -> None:
    b = ComputationBuilder("map_type")
    x = param(b, 0, f32([-1, 0, 2]))
    b.map([x], lambda sb, v: sb.gt(v, sb.constant_r0(np.float32(0))))
    assert_equal(run(b, f32([-1, 0, 2])), [False, False, True])


def test_while_document_loop() -> None:
    # init = {0, zero_vector[10]}
    # while (result(0) < 1000) {
    #   iteration = result(0) + 1;
    #   new_vector = result(1) + constant_vector[10];
    #   result = {iteration, new_vector};
    # }
    constant_vector = np.arange(10, dtype=np.float32) * 0.5
    b = ComputationBuilder("while_loop")
    init = b.tuple([b.constant_r0(0), b.constant_r1(np.zeros(10, np.float32))])

    def condition(sb, result):
        return sb.lt(sb.get_tuple_element(result, 0), sb.constant_r0(1000))

    def body(sb, result):
        iteration = sb.add(sb.get_tuple_element(result, 0), sb.constant_r0(1))
        new_vector = sb.add(sb.get_tuple_element(result, 1), sb.constant_r1(constant_vector))
        return [iteration, new_vector]

    b.while_(condition, body, init)
    count, vector = run(b)
    assert count == 1000
    np.testing.assert_allclose(vector, constant_vector * 1000, rtol=1e-5)


def test_while_body_must_keep_the_state_shape() -> None:
    b = ComputationBuilder("while_bad")
    init = b.constant_r0(0)
    with pytest.raises(ShapeError, match="body"):
        b.while_(lambda sb, i: sb.lt(i, sb.constant_r0(3)),
                 lambda sb, i: sb.convert(i, F32), init)


def test_while_condition_must_return_pred() -> None:
    b = ComputationBuilder("while_bad_cond")
    init = b.constant_r0(0)
    with pytest.raises(ShapeError, match="condition"):
        b.while_(lambda sb, i: i, lambda sb, i: i, init)


# === ConvertElementType, BitcastConvertType, ReducePrecision ==================================


def test_convert_s32_to_f32() -> None:
    # a: s32[3] = {0, 1, 2}; b = convert(a, f32) == f32[3]{0.0, 1.0, 2.0}
    b = ComputationBuilder("convert")
    out = b.convert(param(b, 0, s32([0, 1, 2])), F32)
    assert out.shape.element_type is F32
    got = run(b, s32([0, 1, 2]))
    assert got.dtype == np.float32
    assert_equal(got, f32([0.0, 1.0, 2.0]))


def test_bitcast_convert_f32_to_s32() -> None:
    b = ComputationBuilder("bitcast")
    b.bitcast_convert(param(b, 0, f32([1.0, -2.0])), "s32")
    assert_equal(run(b, f32([1.0, -2.0])), f32([1.0, -2.0]).view(np.int32))


def test_bitcast_convert_needs_equal_bit_widths() -> None:
    b = ComputationBuilder("bitcast_bad")
    with pytest.raises(ShapeError, match="bit widths"):
        b.bitcast_convert(b.parameter(0, shape(F32, 2), "x"), PrimitiveType.S16)


def test_reduce_precision_to_half() -> None:
    x = f32([1.0, 1.0 + 2.0**-12, 3.14159, 65504.0, 1e-3])
    b = ComputationBuilder("reduce_precision")
    b.reduce_precision(param(b, 0, x), exponent_bits=5, mantissa_bits=10)
    assert_equal(run(b, x), x.astype(np.float16).astype(np.float32))


# === CrossReplicaSum ==========================================================================


def test_cross_replica_sum_on_one_replica_is_the_operand() -> None:
    b = ComputationBuilder("crs")
    b.cross_replica_sum(param(b, 0, f32([1.0, 2.5])))
    assert_equal(run(b, f32([1.0, 2.5])), f32([1.0, 2.5]))


# === GetTupleElement, Tuple ===================================================================


def test_tuple_and_get_tuple_element() -> None:
    # v: f32[10] = {0..9}; s: s32 = 5; t = tuple(v, s); element 1 is s32 5.
    v = np.arange(10, dtype=np.float32)
    b = ComputationBuilder("tuple")
    t = b.tuple([param(b, 0, v, "v"), b.constant_r0(5)])
    assert t.shape.is_tuple
    element_1 = b.get_tuple_element(t, 1)
    assert element_1.shape == Shape.scalar(S32)
    element_0 = b.get_tuple_element(t, 0)
    got = run(b, v, root=b.tuple([element_0, element_1]))
    assert_equal(got[0], v)
    assert got[1] == 5


def test_get_tuple_element_out_of_range() -> None:
    b = ComputationBuilder("gte_bad")
    t = b.tuple([b.constant_r0(1)])
    with pytest.raises(ShapeError, match="out of range"):
        b.get_tuple_element(t, 1)


# === RngUniform, RngNormal, Iota ==============================================================


def test_rng_uniform_and_normal_shapes_and_ranges() -> None:
    b = ComputationBuilder("rng")
    u = b.rng_uniform(b.constant_r0(np.float32(2)), b.constant_r0(np.float32(3)),
                      shape(F32, 50))
    n = b.rng_normal(b.constant_r0(np.float32(0)), b.constant_r0(np.float32(1)),
                     shape(F32, 4, 5))
    assert u.shape.dims == (50,) and n.shape.dims == (4, 5)
    got_u, got_n = run(b, root=b.tuple([u, n]))
    assert got_u.dtype == np.float32 and ((got_u >= 2) & (got_u < 3)).all()
    assert got_n.shape == (4, 5) and np.isfinite(got_n).all()


def test_rng_element_types_must_match() -> None:
    b = ComputationBuilder("rng_bad")
    with pytest.raises(ShapeError, match="element types must match"):
        b.rng_uniform(b.constant_r0(0), b.constant_r0(1), shape(F32, 3))
    with pytest.raises(ShapeError, match="not floating point"):
        b.rng_normal(b.constant_r0(0), b.constant_r0(1), shape(S32, 3))


def test_iota() -> None:
    b = ComputationBuilder("iota")
    b.iota(S32, [2, 3], iota_dimension=1)
    assert_equal(run(b), s32([[0, 1, 2], [0, 1, 2]]))


# === Select ===================================================================================


def test_select_with_pred_array() -> None:
    # pred {true, false, false, true}, v1 {1,2,3,4}, v2 {100,...}  ==>  {1, 200, 300, 4}
    b = ComputationBuilder("select")
    pred = param(b, 0, np.array([True, False, False, True]))
    b.select(pred, b.constant_r1([1, 2, 3, 4]), b.constant_r1([100, 200, 300, 400]))
    assert_equal(run(b, np.array([True, False, False, True])), s32([1, 200, 300, 4]))


def test_select_with_scalar_pred() -> None:
    # pred = true  ==>  {1, 2, 3, 4}
    b = ComputationBuilder("select_scalar")
    pred = b.parameter(0, shape(PRED), "pred")
    b.select(pred, b.constant_r1([1, 2, 3, 4]), b.constant_r1([100, 200, 300, 400]))
    assert_equal(run(b, np.bool_(True)), s32([1, 2, 3, 4]))
    assert_equal(run(b, np.bool_(False)), s32([100, 200, 300, 400]))


def test_select_between_tuples() -> None:
    b = ComputationBuilder("select_tuples")
    pred = b.parameter(0, shape(PRED), "pred")
    t = b.tuple([b.constant_r0(1), b.constant_r1(f32([1, 2]))])
    f = b.tuple([b.constant_r0(2), b.constant_r1(f32([3, 4]))])
    out = b.select(pred, t, f)
    assert out.shape.is_tuple
    got = run(b, np.bool_(False))
    assert got[0] == 2
    assert_equal(got[1], f32([3, 4]))
