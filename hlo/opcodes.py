"""The opcode table: every HLO opcode with its arity, attribute schema, traits and shape rule.

This is the single definition site of opcodes. The builder, parser, printer, verifier,
evaluator and emitters all read `OPS`; none of them re-lists opcodes. Per-consumer
semantics (evaluation, emission, simplification) live in the consumers' own tables.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hlo import shape_inference as si
from hlo.attributes import REQUIRED, AttrKind, AttrSpec
from hlo.shape import Shape

# (operand shapes, attributes with computations given as ProgramShape, declared shape)
ShapeRule = Callable[[Sequence[Shape], Mapping[str, Any], "Shape | None"], Shape]


class Opcode(enum.Enum):
    """HLO opcodes; the value is XLA's text name, printed as-is."""

    # elementwise unary
    ABS = "abs"
    CBRT = "cbrt"
    CEIL = "ceil"
    CLZ = "count-leading-zeros"
    CONVERT = "convert"
    COPY = "copy"
    COSINE = "cosine"
    ERF = "erf"
    EXPONENTIAL = "exponential"
    EXPONENTIAL_MINUS_ONE = "exponential-minus-one"
    FLOOR = "floor"
    IMAG = "imag"
    IS_FINITE = "is-finite"
    LOG = "log"
    LOG_PLUS_ONE = "log-plus-one"
    LOGISTIC = "logistic"
    NEGATE = "negate"
    NOT = "not"
    POPCNT = "popcnt"
    REAL = "real"
    REDUCE_PRECISION = "reduce-precision"
    ROUND_NEAREST_AFZ = "round-nearest-afz"
    ROUND_NEAREST_EVEN = "round-nearest-even"
    RSQRT = "rsqrt"
    SIGN = "sign"
    SINE = "sine"
    SQRT = "sqrt"
    TAN = "tan"
    TANH = "tanh"
    # elementwise binary
    ADD = "add"
    AND = "and"
    ATAN2 = "atan2"
    COMPARE = "compare"
    COMPLEX = "complex"
    DIVIDE = "divide"
    MAXIMUM = "maximum"
    MINIMUM = "minimum"
    MULTIPLY = "multiply"
    OR = "or"
    POWER = "power"
    REMAINDER = "remainder"
    SHIFT_LEFT = "shift-left"
    SHIFT_RIGHT_ARITHMETIC = "shift-right-arithmetic"
    SHIFT_RIGHT_LOGICAL = "shift-right-logical"
    SUBTRACT = "subtract"
    XOR = "xor"
    # elementwise ternary
    CLAMP = "clamp"
    SELECT = "select"
    # leaves
    CONSTANT = "constant"
    IOTA = "iota"
    PARAMETER = "parameter"
    PARTITION_ID = "partition-id"
    REPLICA_ID = "replica-id"
    RNG = "rng"
    # data movement
    BITCAST = "bitcast"
    BITCAST_CONVERT = "bitcast-convert"
    BROADCAST = "broadcast"
    CONCATENATE = "concatenate"
    DYNAMIC_SLICE = "dynamic-slice"
    DYNAMIC_UPDATE_SLICE = "dynamic-update-slice"
    GATHER = "gather"
    PAD = "pad"
    RESHAPE = "reshape"
    REVERSE = "reverse"
    SCATTER = "scatter"
    SLICE = "slice"
    TRANSPOSE = "transpose"
    # reductions and windows
    REDUCE = "reduce"
    REDUCE_WINDOW = "reduce-window"
    SELECT_AND_SCATTER = "select-and-scatter"
    SORT = "sort"
    TOPK = "topk"
    # linear algebra
    CHOLESKY = "cholesky"
    CONVOLUTION = "convolution"
    DOT = "dot"
    FFT = "fft"
    TRIANGULAR_SOLVE = "triangular-solve"
    BATCH_NORM_GRAD = "batch-norm-grad"
    BATCH_NORM_INFERENCE = "batch-norm-inference"
    BATCH_NORM_TRAINING = "batch-norm-training"
    # tuples, control flow, calls
    AFTER_ALL = "after-all"
    ALL_REDUCE = "all-reduce"
    CALL = "call"
    CONDITIONAL = "conditional"
    CROSS_REPLICA_SUM = "cross-replica-sum"
    CUSTOM_CALL = "custom-call"
    FUSION = "fusion"
    GET_TUPLE_ELEMENT = "get-tuple-element"
    MAP = "map"
    OPTIMIZATION_BARRIER = "opt-barrier"
    RNG_BIT_GENERATOR = "rng-bit-generator"
    TUPLE = "tuple"
    WHILE = "while"


class Trait(enum.Enum):
    ELEMENTWISE = "elementwise"        # result[i] depends only on operands[i]
    COMMUTATIVE = "commutative"        # f(a, b) == f(b, a)
    ASSOCIATIVE = "associative"        # exactly associative on integers (not on floats)
    SIDE_EFFECTING = "side_effecting"  # must not be removed, duplicated or reordered
    EXPENSIVE = "expensive"            # not worth recomputing per use when fusing
    DATA_MOVEMENT = "data_movement"    # moves elements without computing on them


E = frozenset({Trait.ELEMENTWISE})
EX = frozenset({Trait.ELEMENTWISE, Trait.EXPENSIVE})
EC = frozenset({Trait.ELEMENTWISE, Trait.COMMUTATIVE, Trait.ASSOCIATIVE})
MOVE = frozenset({Trait.DATA_MOVEMENT})
SIDE = frozenset({Trait.SIDE_EFFECTING})
NONE: frozenset[Trait] = frozenset()


@dataclass(frozen=True, slots=True)
class OpDef:
    """What is true of an opcode everywhere.

    Attributes:
        arity: number of operands, or None for variadic.
        shape_rule: pure function from operand shapes, attributes and the declared result
            shape (None when not declared) to the result shape; raises ShapeError.
        attrs: attribute schema, in XLA's printing order.
        traits: properties consumers query instead of listing opcodes.
        inline_attr: for `parameter(0)` / `constant(...)`: the attribute written inside
            the parentheses in place of operands.
    """

    arity: int | None
    shape_rule: ShapeRule
    attrs: tuple[AttrSpec, ...] = ()
    traits: frozenset[Trait] = NONE
    inline_attr: str | None = None

    def has(self, trait: Trait) -> bool:
        return trait in self.traits

    def attr(self, name: str) -> AttrSpec | None:
        for spec in self.attrs:
            if spec.name == name:
                return spec
        return None


K = AttrKind


def _a(
    name: str, kind: AttrKind, default: Any = REQUIRED, choices: tuple[str, ...] = ()
) -> AttrSpec:
    return AttrSpec(name, kind, default, choices)


def _opt(
    name: str,
    kind: AttrKind,
    default: Any = None,
    choices: tuple[str, ...] = (),
    always_print: bool = False,
) -> AttrSpec:
    return AttrSpec(name, kind, default, choices, always_print)


DIMENSIONS = _a("dimensions", K.INTS)
TO_APPLY = _a("to_apply", K.COMPUTATION)
WINDOW = _a("window", K.WINDOW)
COMPARISON_TYPES = ("FLOAT", "TOTALORDER", "SIGNED", "UNSIGNED")
COMPARISON_DIRECTIONS = ("EQ", "NE", "LT", "LE", "GT", "GE")
FFT_TYPES = ("FFT", "IFFT", "RFFT", "IRFFT")
RNG_ALGORITHMS = ("rng_default", "rng_three_fry", "rng_philox")
FUSION_KINDS = ("kLoop", "kInput", "kOutput", "kCustom")

# Attributes any instruction may carry; kept verbatim and printed after the schema's.
COMMON_ATTRS: tuple[AttrSpec, ...] = tuple(
    _opt(name, K.RAW)
    for name in (
        "control-predecessors",
        "metadata",
        "frontend_attributes",
        "sharding",
        "backend_config",
        "statistics",
        "origin",
        "result_accuracy",
    )
)

_UNARY = {
    Opcode.ABS: (si.abs_, E),
    Opcode.CBRT: (si.unary_float, EX),
    Opcode.CEIL: (si.unary_real_float, E),
    Opcode.CLZ: (si.unary_integer, E),
    Opcode.COPY: (si.copy, NONE),
    Opcode.COSINE: (si.unary_float, EX),
    Opcode.ERF: (si.unary_real_float, EX),
    Opcode.EXPONENTIAL: (si.unary_float, EX),
    Opcode.EXPONENTIAL_MINUS_ONE: (si.unary_float, EX),
    Opcode.FLOOR: (si.unary_real_float, E),
    Opcode.IMAG: (si.real_imag, E),
    Opcode.IS_FINITE: (si.is_finite, E),
    Opcode.LOG: (si.unary_float, EX),
    Opcode.LOG_PLUS_ONE: (si.unary_float, EX),
    Opcode.LOGISTIC: (si.unary_float, EX),
    Opcode.NEGATE: (si.unary_numeric, E),
    Opcode.NOT: (si.unary_logical, E),
    Opcode.POPCNT: (si.unary_integer, E),
    Opcode.REAL: (si.real_imag, E),
    Opcode.ROUND_NEAREST_AFZ: (si.unary_real_float, E),
    Opcode.ROUND_NEAREST_EVEN: (si.unary_real_float, E),
    Opcode.RSQRT: (si.unary_float, EX),
    Opcode.SIGN: (si.unary_numeric, E),
    Opcode.SINE: (si.unary_float, EX),
    Opcode.SQRT: (si.unary_float, EX),
    Opcode.TAN: (si.unary_float, EX),
    Opcode.TANH: (si.unary_float, EX),
}

_BINARY = {
    Opcode.ADD: (si.binary_numeric, EC),
    Opcode.AND: (si.binary_logical, EC),
    Opcode.ATAN2: (si.binary_float, EX),
    Opcode.COMPLEX: (si.complex_, E),
    Opcode.DIVIDE: (si.binary_arithmetic, EX),
    Opcode.MAXIMUM: (si.binary_numeric, EC),
    Opcode.MINIMUM: (si.binary_numeric, EC),
    Opcode.MULTIPLY: (si.binary_numeric, EC),
    Opcode.OR: (si.binary_logical, EC),
    Opcode.POWER: (si.binary_arithmetic, EX),
    Opcode.REMAINDER: (si.binary_arithmetic, EX),
    Opcode.SHIFT_LEFT: (si.binary_integer, E),
    Opcode.SHIFT_RIGHT_ARITHMETIC: (si.binary_integer, E),
    Opcode.SHIFT_RIGHT_LOGICAL: (si.binary_integer, E),
    Opcode.SUBTRACT: (si.binary_arithmetic, E),
    Opcode.XOR: (si.binary_logical, EC),
}

OPS: Mapping[Opcode, OpDef] = {
    **{op: OpDef(1, rule, traits=traits) for op, (rule, traits) in _UNARY.items()},
    **{op: OpDef(2, rule, traits=traits) for op, (rule, traits) in _BINARY.items()},
    Opcode.CONVERT: OpDef(1, si.convert, traits=E),
    Opcode.REDUCE_PRECISION: OpDef(
        1, si.reduce_precision, (_a("exponent_bits", K.INT), _a("mantissa_bits", K.INT)), E
    ),
    Opcode.COMPARE: OpDef(
        2,
        si.compare,
        (_a("direction", K.ENUM, choices=COMPARISON_DIRECTIONS),
         _opt("type", K.ENUM, choices=COMPARISON_TYPES)),
        E,
    ),
    Opcode.CLAMP: OpDef(3, si.clamp, traits=E),
    Opcode.SELECT: OpDef(3, si.select, traits=E),
    Opcode.CONSTANT: OpDef(0, si.constant, (_a("literal", K.LITERAL),), inline_attr="literal"),
    Opcode.IOTA: OpDef(0, si.iota, (_a("iota_dimension", K.INT),)),
    Opcode.PARAMETER: OpDef(
        0, si.parameter, (_a("parameter_number", K.INT),), inline_attr="parameter_number"
    ),
    Opcode.PARTITION_ID: OpDef(0, si.replica_id),
    Opcode.REPLICA_ID: OpDef(0, si.replica_id),
    Opcode.RNG: OpDef(
        2, si.rng, (_a("distribution", K.ENUM, choices=("rng_uniform", "rng_normal")),), SIDE
    ),
    Opcode.BITCAST: OpDef(1, si.bitcast, traits=MOVE),
    Opcode.BITCAST_CONVERT: OpDef(1, si.bitcast_convert),
    Opcode.BROADCAST: OpDef(1, si.broadcast, (DIMENSIONS,), MOVE),
    Opcode.CONCATENATE: OpDef(None, si.concatenate, (DIMENSIONS,), MOVE),
    Opcode.DYNAMIC_SLICE: OpDef(
        None, si.dynamic_slice, (_a("dynamic_slice_sizes", K.INTS),), MOVE
    ),
    Opcode.DYNAMIC_UPDATE_SLICE: OpDef(None, si.dynamic_update_slice, traits=MOVE),
    Opcode.GATHER: OpDef(
        2,
        si.gather,
        (
            _a("offset_dims", K.INTS),
            _a("collapsed_slice_dims", K.INTS),
            _a("start_index_map", K.INTS),
            _opt("operand_batching_dims", K.INTS, ()),
            _opt("start_indices_batching_dims", K.INTS, ()),
            _a("index_vector_dim", K.INT),
            _a("slice_sizes", K.INTS),
            _opt("indices_are_sorted", K.BOOL, False),
        ),
        MOVE,
    ),
    Opcode.PAD: OpDef(2, si.pad, (_a("padding", K.PADDING),), MOVE),
    Opcode.RESHAPE: OpDef(1, si.reshape, (_opt("inferred_dimension", K.INT),), MOVE),
    Opcode.REVERSE: OpDef(1, si.reverse, (DIMENSIONS,), MOVE),
    Opcode.SCATTER: OpDef(
        None,
        si.scatter,
        (
            _a("update_window_dims", K.INTS),
            _a("inserted_window_dims", K.INTS),
            _a("scatter_dims_to_operand_dims", K.INTS),
            _opt("input_batching_dims", K.INTS, ()),
            _opt("scatter_indices_batching_dims", K.INTS, ()),
            _a("index_vector_dim", K.INT),
            _opt("indices_are_sorted", K.BOOL, False),
            _opt("unique_indices", K.BOOL, False),
            TO_APPLY,
        ),
    ),
    Opcode.SLICE: OpDef(1, si.slice_, (_a("slice", K.SLICE),), MOVE),
    Opcode.TRANSPOSE: OpDef(1, si.transpose, (DIMENSIONS,), MOVE),
    Opcode.REDUCE: OpDef(None, si.reduce, (DIMENSIONS, TO_APPLY)),
    Opcode.REDUCE_WINDOW: OpDef(None, si.reduce_window, (WINDOW, TO_APPLY)),
    Opcode.SELECT_AND_SCATTER: OpDef(
        3,
        si.select_and_scatter,
        (WINDOW, _a("select", K.COMPUTATION), _a("scatter", K.COMPUTATION)),
    ),
    Opcode.SORT: OpDef(
        None, si.sort, (DIMENSIONS, _opt("is_stable", K.BOOL, False), TO_APPLY)
    ),
    Opcode.TOPK: OpDef(
        1, si.topk, (_a("k", K.INT), _opt("largest", K.BOOL, True, always_print=True))
    ),
    Opcode.CHOLESKY: OpDef(
        1, si.cholesky, (_opt("lower", K.BOOL, False),), frozenset({Trait.EXPENSIVE})
    ),
    Opcode.CONVOLUTION: OpDef(
        2,
        si.convolution,
        (
            _opt("window", K.WINDOW),
            _a("dim_labels", K.DIM_LABELS),
            _opt("feature_group_count", K.INT, 1),
            _opt("batch_group_count", K.INT, 1),
            _opt("operand_precision", K.RAW),
        ),
        frozenset({Trait.EXPENSIVE}),
    ),
    Opcode.DOT: OpDef(
        2,
        si.dot,
        (
            _opt("lhs_batch_dims", K.INTS, ()),
            _opt("lhs_contracting_dims", K.INTS, (), always_print=True),
            _opt("rhs_batch_dims", K.INTS, ()),
            _opt("rhs_contracting_dims", K.INTS, (), always_print=True),
            _opt("operand_precision", K.RAW),
            _opt("algorithm", K.RAW),
        ),
        frozenset({Trait.EXPENSIVE}),
    ),
    Opcode.FFT: OpDef(
        1,
        si.fft,
        (_a("fft_type", K.ENUM, choices=FFT_TYPES), _a("fft_length", K.INTS)),
        frozenset({Trait.EXPENSIVE}),
    ),
    Opcode.TRIANGULAR_SOLVE: OpDef(
        2,
        si.triangular_solve,
        (
            _opt("left_side", K.BOOL, False),
            _opt("lower", K.BOOL, False),
            _opt("unit_diagonal", K.BOOL, False),
            _opt("transpose_a", K.ENUM, "NO_TRANSPOSE",
                 ("NO_TRANSPOSE", "TRANSPOSE", "ADJOINT")),
        ),
        frozenset({Trait.EXPENSIVE}),
    ),
    Opcode.BATCH_NORM_GRAD: OpDef(
        5, si.batch_norm_grad, (_a("epsilon", K.FLOAT), _a("feature_index", K.INT))
    ),
    Opcode.BATCH_NORM_INFERENCE: OpDef(
        5, si.batch_norm_inference, (_a("epsilon", K.FLOAT), _a("feature_index", K.INT))
    ),
    Opcode.BATCH_NORM_TRAINING: OpDef(
        3, si.batch_norm_training, (_a("epsilon", K.FLOAT), _a("feature_index", K.INT))
    ),
    Opcode.AFTER_ALL: OpDef(None, si.after_all),
    Opcode.ALL_REDUCE: OpDef(
        None,
        si.all_reduce,
        (
            _opt("channel_id", K.INT),
            _opt("replica_groups", K.INTS_LIST),
            _opt("use_global_device_ids", K.BOOL, False),
            TO_APPLY,
        ),
    ),
    Opcode.CROSS_REPLICA_SUM: OpDef(
        None,
        si.all_reduce,
        (_opt("replica_groups", K.INTS_LIST), _opt("to_apply", K.COMPUTATION)),
    ),
    Opcode.CALL: OpDef(None, si.call, (TO_APPLY,)),
    Opcode.CONDITIONAL: OpDef(
        None,
        si.conditional,
        (
            _opt("true_computation", K.COMPUTATION),
            _opt("false_computation", K.COMPUTATION),
            _opt("branch_computations", K.COMPUTATIONS),
        ),
    ),
    Opcode.CUSTOM_CALL: OpDef(
        None,
        si.custom_call,
        (
            _a("custom_call_target", K.STRING),
            _opt("api_version", K.RAW),
            _opt("custom_call_has_side_effect", K.BOOL, False),
            _opt("operand_layout_constraints", K.RAW),
            _opt("output_to_operand_aliasing", K.RAW),
            _opt("called_computations", K.COMPUTATIONS),
        ),
        SIDE,
    ),
    Opcode.FUSION: OpDef(
        None, si.call, (_a("kind", K.ENUM, choices=FUSION_KINDS), _a("calls", K.COMPUTATION))
    ),
    Opcode.GET_TUPLE_ELEMENT: OpDef(1, si.get_tuple_element, (_a("index", K.INT),)),
    Opcode.MAP: OpDef(None, si.map_, (_opt("dimensions", K.INTS), TO_APPLY)),
    Opcode.OPTIMIZATION_BARRIER: OpDef(1, si.copy),
    Opcode.RNG_BIT_GENERATOR: OpDef(
        1,
        si.rng_bit_generator,
        (_opt("algorithm", K.ENUM, "rng_default", RNG_ALGORITHMS, always_print=True),),
    ),
    Opcode.TUPLE: OpDef(None, si.tuple_),
    Opcode.WHILE: OpDef(
        1, si.while_, (_a("condition", K.COMPUTATION), _a("body", K.COMPUTATION))
    ),
}
assert set(OPS) == set(Opcode), "every opcode needs exactly one OpDef row"

BY_NAME: Mapping[str, Opcode] = {op.value: op for op in Opcode}


def opdef(opcode: Opcode) -> OpDef:
    return OPS[opcode]


def computation_attrs(opcode: Opcode) -> tuple[str, ...]:
    """Names of the attributes of `opcode` that refer to called computations."""
    return tuple(
        s.name
        for s in OPS[opcode].attrs
        if s.kind in (AttrKind.COMPUTATION, AttrKind.COMPUTATIONS)
    )
