"""One record per opcode: a small HLO module using it and a generator of valid inputs.

Drives the table coverage test (every opcode parses, prints, verifies and evaluates) and the
backends' numeric tests (compiled == evaluated). Inputs respect each op's domain
(positive-only for log/sqrt, non-zero divisors, valid indices).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hlo.opcodes import Opcode

ArgsFn = Callable[[np.random.Generator], list[np.ndarray]]


@dataclass(frozen=True)
class OpRecord:
    opcode: Opcode
    name: str
    text: str
    args: ArgsFn
    rtol: float = 1e-5
    atol: float = 1e-6


def _f32(*shape: int, lo: float = -3.0, hi: float = 3.0) -> ArgsFn:
    return lambda r: [r.uniform(lo, hi, shape).astype(np.float32)]


def _module(body: str, params: str, result: str, extra: str = "") -> str:
    return (
        f"HloModule m, entry_computation_layout={{({params})->{result}}}\n\n"
        f"{extra}ENTRY main {{\n{body}\n}}\n"
    )




def _scalar_binary(name: str, opcode: str) -> str:
    return (f"{name} {{\n  a = f32[] parameter(0)\n  b = f32[] parameter(1)\n"
            f"  ROOT r = f32[] {opcode}(a, b)\n}}\n\n")


ADD_F32 = _scalar_binary("add_f32", "add")
MAX_F32 = _scalar_binary("max_f32", "maximum")
LT_F32 = ("lt_f32 {\n  a = f32[] parameter(0)\n  b = f32[] parameter(1)\n"
          "  ROOT c = pred[] compare(a, b), direction=LT\n}\n\n")
GE_F32 = ("ge_f32 {\n  a = f32[] parameter(0)\n  b = f32[] parameter(1)\n"
          "  ROOT c = pred[] compare(a, b), direction=GE\n}\n\n")


def _unary(op: Opcode, dtype: str = "f32", lo: float = -3.0, hi: float = 3.0,
           out: str | None = None, ints: bool = False) -> OpRecord:
    out = out or dtype
    body = (f"  x = {dtype}[3,4]{{1,0}} parameter(0)\n"
            f"  ROOT y = {out}[3,4]{{1,0}} {op.value}(x)")
    npdt = {"f32": np.float32, "s32": np.int32, "pred": np.bool_, "c64": np.complex64}[dtype]
    if ints:
        gen: ArgsFn = lambda r: [r.integers(-1000, 1000, (3, 4)).astype(npdt)]  # noqa: E731
    elif dtype == "pred":
        gen = lambda r: [r.integers(0, 2, (3, 4)).astype(np.bool_)]  # noqa: E731
    elif dtype == "c64":
        gen = lambda r: [  # noqa: E731
            (r.uniform(-2, 2, (3, 4)) + 1j * r.uniform(-2, 2, (3, 4))).astype(np.complex64)
        ]
    else:
        gen = _f32(3, 4, lo=lo, hi=hi)
    return OpRecord(op, op.value, _module(body, f"{dtype}[3,4]{{1,0}}", f"{out}[3,4]{{1,0}}"), gen)


def _binary(op: Opcode, dtype: str = "f32", lo: float = -3.0, hi: float = 3.0,
            out: str | None = None, ints: bool = False) -> OpRecord:
    out = out or dtype
    body = (f"  x = {dtype}[3,4]{{1,0}} parameter(0)\n  y = {dtype}[3,4]{{1,0}} parameter(1)\n"
            f"  ROOT z = {out}[3,4]{{1,0}} {op.value}(x, y)")
    params = f"{dtype}[3,4]{{1,0}}, {dtype}[3,4]{{1,0}}"
    if ints:
        gen: ArgsFn = lambda r: [  # noqa: E731
            r.integers(-50, 50, (3, 4)).astype(np.int32) for _ in "ab"
        ]
    elif dtype == "pred":
        gen = lambda r: [r.integers(0, 2, (3, 4)).astype(np.bool_) for _ in "ab"]  # noqa: E731
    else:
        gen = lambda r: [r.uniform(lo, hi, (3, 4)).astype(np.float32) for _ in "ab"]  # noqa: E731
    return OpRecord(op, op.value, _module(body, params, f"{out}[3,4]{{1,0}}"), gen)


O = Opcode
RECORDS: list[OpRecord] = [
    _unary(O.ABS), _unary(O.CBRT), _unary(O.CEIL), _unary(O.CLZ, "s32", ints=True),
    _unary(O.COPY), _unary(O.COSINE), _unary(O.ERF), _unary(O.EXPONENTIAL),
    _unary(O.EXPONENTIAL_MINUS_ONE), _unary(O.FLOOR), _unary(O.IMAG, "c64", out="f32"),
    _unary(O.IS_FINITE, out="pred"), _unary(O.LOG, lo=0.01, hi=5.0),
    _unary(O.LOG_PLUS_ONE, lo=-0.9, hi=5.0), _unary(O.LOGISTIC), _unary(O.NEGATE),
    _unary(O.NOT, "pred"), _unary(O.POPCNT, "s32", ints=True), _unary(O.REAL, "c64", out="f32"),
    _unary(O.ROUND_NEAREST_AFZ), _unary(O.ROUND_NEAREST_EVEN), _unary(O.RSQRT, lo=0.01, hi=5.0),
    _unary(O.SIGN), _unary(O.SINE), _unary(O.SQRT, lo=0.0, hi=5.0), _unary(O.TAN, lo=-1.2, hi=1.2),
    _unary(O.TANH), _unary(O.CONVERT, out="s32"), _unary(O.BITCAST_CONVERT, out="s32"),
    _unary(O.OPTIMIZATION_BARRIER),
    _binary(O.ADD), _binary(O.AND, "pred"), _binary(O.ATAN2), _binary(O.DIVIDE, lo=0.5, hi=3.0),
    _binary(O.MAXIMUM), _binary(O.MINIMUM), _binary(O.MULTIPLY), _binary(O.OR, "pred"),
    _binary(O.POWER, lo=0.1, hi=2.0), _binary(O.REMAINDER, lo=0.5, hi=3.0),
    _binary(O.SHIFT_LEFT, "s32", ints=True), _binary(O.SHIFT_RIGHT_ARITHMETIC, "s32", ints=True),
    _binary(O.SHIFT_RIGHT_LOGICAL, "s32", ints=True), _binary(O.SUBTRACT),
    _binary(O.XOR, "pred"), _binary(O.COMPLEX, out="c64"),
]


def _rec(op: Opcode, params: str, result: str, body: str, args: ArgsFn, extra: str = "",
         name: str | None = None) -> OpRecord:
    return OpRecord(op, name or op.value, _module(body, params, result, extra), args)


_F34 = "f32[3,4]{1,0}"
_x34 = f"  x = {_F34} parameter(0)\n"
RECORDS += [
    _rec(O.REDUCE_PRECISION, _F34, _F34,
         _x34 + f"  ROOT y = {_F34} reduce-precision(x), exponent_bits=5, mantissa_bits=10",
         _f32(3, 4)),
    _rec(O.COMPARE, f"{_F34}, {_F34}", "pred[3,4]{1,0}",
         _x34 + f"  y = {_F34} parameter(1)\n"
         "  ROOT c = pred[3,4]{1,0} compare(x, y), direction=LT",
         lambda r: [r.uniform(-1, 1, (3, 4)).astype(np.float32) for _ in "ab"]),
    _rec(O.CLAMP, f"f32[], {_F34}, f32[]", _F34,
         "  lo = f32[] parameter(0)\n  x = f32[3,4]{1,0} parameter(1)\n  hi = f32[] parameter(2)\n"
         f"  ROOT c = {_F34} clamp(lo, x, hi)",
         lambda r: [np.float32(-1), r.uniform(-3, 3, (3, 4)).astype(np.float32), np.float32(1)]),
    _rec(O.SELECT, f"pred[3,4]{{1,0}}, {_F34}, {_F34}", _F34,
         "  p = pred[3,4]{1,0} parameter(0)\n  x = f32[3,4]{1,0} parameter(1)\n"
         f"  y = {_F34} parameter(2)\n  ROOT s = {_F34} select(p, x, y)",
         lambda r: [r.integers(0, 2, (3, 4)).astype(bool)]
         + [r.uniform(-1, 1, (3, 4)).astype(np.float32) for _ in "ab"]),
    _rec(O.CONSTANT, "", "f32[2,2]{1,0}",
         "  ROOT c = f32[2,2]{1,0} constant({ {1, 2.5}, {-inf, 0} })", lambda r: []),
    _rec(O.IOTA, "", "s32[3,4]{1,0}", "  ROOT i = s32[3,4]{1,0} iota(), iota_dimension=1",
         lambda r: []),
    _rec(O.PARAMETER, _F34, _F34, f"  ROOT x = {_F34} parameter(0)", _f32(3, 4)),
    _rec(O.PARTITION_ID, "", "u32[]", "  ROOT p = u32[] partition-id()", lambda r: []),
    _rec(O.REPLICA_ID, "", "u32[]", "  ROOT p = u32[] replica-id()", lambda r: []),
    _rec(O.BITCAST, _F34, "f32[12]{0}", _x34 + "  ROOT b = f32[12]{0} bitcast(x)", _f32(3, 4)),
    _rec(O.BROADCAST, "f32[4]{0}", "f32[2,3,4]{2,1,0}",
         "  x = f32[4]{0} parameter(0)\n"
         "  ROOT b = f32[2,3,4]{2,1,0} broadcast(x), dimensions={2}", _f32(4)),
    _rec(O.CONCATENATE, f"{_F34}, f32[3,2]{{1,0}}", "f32[3,6]{1,0}",
         _x34 + "  y = f32[3,2]{1,0} parameter(1)\n"
         "  ROOT c = f32[3,6]{1,0} concatenate(x, y), dimensions={1}",
         lambda r: [r.uniform(-1, 1, (3, 4)).astype(np.float32),
                    r.uniform(-1, 1, (3, 2)).astype(np.float32)]),
    _rec(O.DYNAMIC_SLICE, f"{_F34}, s32[], s32[]", "f32[2,2]{1,0}",
         _x34 + "  i = s32[] parameter(1)\n  j = s32[] parameter(2)\n"
         "  ROOT d = f32[2,2]{1,0} dynamic-slice(x, i, j), dynamic_slice_sizes={2,2}",
         lambda r: [r.uniform(-1, 1, (3, 4)).astype(np.float32), np.int32(2), np.int32(-1)]),
    _rec(O.DYNAMIC_UPDATE_SLICE, f"{_F34}, f32[2,2]{{1,0}}, s32[], s32[]", _F34,
         _x34 + "  u = f32[2,2]{1,0} parameter(1)\n  i = s32[] parameter(2)\n"
         "  j = s32[] parameter(3)\n"
         f"  ROOT d = {_F34} dynamic-update-slice(x, u, i, j)",
         lambda r: [r.uniform(-1, 1, (3, 4)).astype(np.float32),
                    r.uniform(-1, 1, (2, 2)).astype(np.float32), np.int32(1), np.int32(3)]),
    _rec(O.GATHER, "f32[5,3]{1,0}, s32[4]{0}", "f32[4,3]{1,0}",
         "  x = f32[5,3]{1,0} parameter(0)\n  i = s32[4]{0} parameter(1)\n"
         "  ROOT g = f32[4,3]{1,0} gather(x, i), offset_dims={1}, collapsed_slice_dims={0}, "
         "start_index_map={0}, index_vector_dim=1, slice_sizes={1,3}",
         lambda r: [r.uniform(-1, 1, (5, 3)).astype(np.float32),
                    np.array([4, 0, 2, 4], np.int32)]),
    _rec(O.PAD, f"{_F34}, f32[]", "f32[5,11]{1,0}",
         _x34 + "  z = f32[] parameter(1)\n"
         "  ROOT p = f32[5,11]{1,0} pad(x, z), padding=1_1x-1_2_2",
         lambda r: [r.uniform(-1, 1, (3, 4)).astype(np.float32), np.float32(7)]),
    _rec(O.RESHAPE, _F34, "f32[2,6]{1,0}", _x34 + "  ROOT y = f32[2,6]{1,0} reshape(x)",
         _f32(3, 4)),
    _rec(O.REVERSE, _F34, _F34, _x34 + f"  ROOT y = {_F34} reverse(x), dimensions={{0,1}}",
         _f32(3, 4)),
    _rec(O.SCATTER, "f32[6]{0}, s32[5,1]{1,0}, f32[5]{0}", "f32[6]{0}",
         "  x = f32[6]{0} parameter(0)\n  i = s32[5,1]{1,0} parameter(1)\n"
         "  u = f32[5]{0} parameter(2)\n"
         "  ROOT s = f32[6]{0} scatter(x, i, u), update_window_dims={}, "
         "inserted_window_dims={0}, scatter_dims_to_operand_dims={0}, index_vector_dim=1, "
         "to_apply=add_f32",
         lambda r: [r.uniform(-1, 1, 6).astype(np.float32),
                    np.array([[1], [5], [1], [9], [0]], np.int32),
                    r.uniform(-1, 1, 5).astype(np.float32)], ADD_F32),
    _rec(O.SLICE, _F34, "f32[2,2]{1,0}",
         _x34 + "  ROOT s = f32[2,2]{1,0} slice(x), slice={[1:3], [0:4:2]}", _f32(3, 4)),
    _rec(O.TRANSPOSE, _F34, "f32[4,3]{1,0}",
         _x34 + "  ROOT t = f32[4,3]{1,0} transpose(x), dimensions={1,0}", _f32(3, 4)),
    _rec(O.REDUCE, _F34, "f32[3]{0}",
         _x34 + "  z = f32[] constant(0)\n"
         "  ROOT r = f32[3]{0} reduce(x, z), dimensions={1}, to_apply=add_f32",
         _f32(3, 4), ADD_F32),
    _rec(O.REDUCE_WINDOW, _F34, "f32[2,2]{1,0}",
         _x34 + "  z = f32[] constant(-inf)\n"
         "  ROOT r = f32[2,2]{1,0} reduce-window(x, z), window={size=2x2 stride=1x2}, "
         "to_apply=max_f32", _f32(3, 4), MAX_F32),
    _rec(O.SELECT_AND_SCATTER, "f32[4,4]{1,0}, f32[2,2]{1,0}", "f32[4,4]{1,0}",
         "  x = f32[4,4]{1,0} parameter(0)\n  s = f32[2,2]{1,0} parameter(1)\n"
         "  z = f32[] constant(0)\n"
         "  ROOT r = f32[4,4]{1,0} select-and-scatter(x, s, z), window={size=2x2 stride=2x2}, "
         "select=ge_f32, scatter=add_f32",
         lambda r: [r.uniform(-1, 1, (4, 4)).astype(np.float32),
                    r.uniform(-1, 1, (2, 2)).astype(np.float32)], GE_F32 + ADD_F32),
    _rec(O.SORT, _F34, _F34,
         _x34 + f"  ROOT s = {_F34} sort(x), dimensions={{1}}, is_stable=true, to_apply=lt_f32",
         _f32(3, 4), LT_F32),
    _rec(O.TOPK, _F34, "(f32[3,2]{1,0}, s32[3,2]{1,0})",
         _x34 + "  ROOT t = (f32[3,2]{1,0}, s32[3,2]{1,0}) topk(x), k=2, largest=true",
         _f32(3, 4)),
    _rec(O.CHOLESKY, "f32[3,3]{1,0}", "f32[3,3]{1,0}",
         "  a = f32[3,3]{1,0} parameter(0)\n  ROOT c = f32[3,3]{1,0} cholesky(a), lower=true",
         lambda r: [np.array([[4, 2, 0.4], [2, 5, 1], [0.4, 1, 3]], np.float32)]),
    _rec(O.CONVOLUTION, "f32[1,5,5,2]{3,2,1,0}, f32[3,3,2,4]{3,2,1,0}",
         "f32[1,3,3,4]{3,2,1,0}",
         "  x = f32[1,5,5,2]{3,2,1,0} parameter(0)\n  w = f32[3,3,2,4]{3,2,1,0} parameter(1)\n"
         "  ROOT c = f32[1,3,3,4]{3,2,1,0} convolution(x, w), window={size=3x3 stride=2x2 "
         "pad=1_1x1_1}, dim_labels=b01f_01io->b01f",
         lambda r: [r.uniform(-1, 1, (1, 5, 5, 2)).astype(np.float32),
                    r.uniform(-1, 1, (3, 3, 2, 4)).astype(np.float32)]),
    _rec(O.DOT, "f32[2,3,4]{2,1,0}, f32[2,4,5]{2,1,0}", "f32[2,3,5]{2,1,0}",
         "  a = f32[2,3,4]{2,1,0} parameter(0)\n  b = f32[2,4,5]{2,1,0} parameter(1)\n"
         "  ROOT d = f32[2,3,5]{2,1,0} dot(a, b), lhs_batch_dims={0}, lhs_contracting_dims={2}, "
         "rhs_batch_dims={0}, rhs_contracting_dims={1}",
         lambda r: [r.uniform(-1, 1, (2, 3, 4)).astype(np.float32),
                    r.uniform(-1, 1, (2, 4, 5)).astype(np.float32)]),
    _rec(O.FFT, "c64[2,8]{1,0}", "c64[2,8]{1,0}",
         "  x = c64[2,8]{1,0} parameter(0)\n"
         "  ROOT f = c64[2,8]{1,0} fft(x), fft_type=FFT, fft_length={8}",
         lambda r: [(r.uniform(-1, 1, (2, 8)) + 1j * r.uniform(-1, 1, (2, 8))).astype(
             np.complex64)]),
    _rec(O.TRIANGULAR_SOLVE, "f32[3,3]{1,0}, f32[3,2]{1,0}", "f32[3,2]{1,0}",
         "  a = f32[3,3]{1,0} parameter(0)\n  b = f32[3,2]{1,0} parameter(1)\n"
         "  ROOT x = f32[3,2]{1,0} triangular-solve(a, b), left_side=true, lower=true, "
         "transpose_a=NO_TRANSPOSE",
         lambda r: [np.array([[2, 0, 0], [1, 3, 0], [0.5, 1, 4]], np.float32),
                    r.uniform(-1, 1, (3, 2)).astype(np.float32)]),
    _rec(O.BATCH_NORM_TRAINING, "f32[2,3,4]{2,1,0}, f32[4]{0}, f32[4]{0}",
         "(f32[2,3,4]{2,1,0}, f32[4]{0}, f32[4]{0})",
         "  x = f32[2,3,4]{2,1,0} parameter(0)\n  s = f32[4]{0} parameter(1)\n"
         "  o = f32[4]{0} parameter(2)\n"
         "  ROOT b = (f32[2,3,4]{2,1,0}, f32[4]{0}, f32[4]{0}) batch-norm-training(x, s, o), "
         "epsilon=0.001, feature_index=2",
         lambda r: [r.uniform(-1, 1, (2, 3, 4)).astype(np.float32),
                    r.uniform(0.5, 1, 4).astype(np.float32),
                    r.uniform(-1, 1, 4).astype(np.float32)]),
]

_BN5 = "f32[2,3,4]{2,1,0}, f32[4]{0}, f32[4]{0}, f32[4]{0}, f32[4]{0}"
_BN5_BODY = ("  x = f32[2,3,4]{2,1,0} parameter(0)\n  s = f32[4]{0} parameter(1)\n"
             "  o = f32[4]{0} parameter(2)\n  m = f32[4]{0} parameter(3)\n"
             "  v = f32[4]{0} parameter(4)\n")


def _bn_args(r: np.random.Generator) -> list[np.ndarray]:
    return [r.uniform(-1, 1, (2, 3, 4)).astype(np.float32),
            r.uniform(0.5, 1, 4).astype(np.float32),
            r.uniform(-1, 1, 4).astype(np.float32), r.uniform(-1, 1, 4).astype(np.float32),
            r.uniform(0.5, 1, 4).astype(np.float32)]


_WHILE_COMPS = (
    "cond {\n  s = (s32[], f32[4]{0}) parameter(0)\n  i = s32[] get-tuple-element(s), index=0\n"
    "  n = s32[] constant(5)\n  ROOT c = pred[] compare(i, n), direction=LT\n}\n\n"
    "body {\n  s = (s32[], f32[4]{0}) parameter(0)\n  i = s32[] get-tuple-element(s), index=0\n"
    "  v = f32[4]{0} get-tuple-element(s), index=1\n  one = s32[] constant(1)\n"
    "  j = s32[] add(i, one)\n  w = f32[4]{0} add(v, v)\n"
    "  ROOT t = (s32[], f32[4]{0}) tuple(j, w)\n}\n\n"
)
_BRANCHES = (
    "double {\n  a = f32[4]{0} parameter(0)\n  ROOT d = f32[4]{0} add(a, a)\n}\n\n"
    "square {\n  a = f32[4]{0} parameter(0)\n  ROOT d = f32[4]{0} multiply(a, a)\n}\n\n"
)
_MUL_F32 = _scalar_binary("mul_f32", "multiply")

RECORDS += [
    _rec(O.BATCH_NORM_INFERENCE, _BN5, "f32[2,3,4]{2,1,0}",
         _BN5_BODY + "  ROOT b = f32[2,3,4]{2,1,0} batch-norm-inference(x, s, o, m, v), "
         "epsilon=0.001, feature_index=2", _bn_args),
    _rec(O.BATCH_NORM_GRAD,
         "f32[2,3,4]{2,1,0}, f32[4]{0}, f32[4]{0}, f32[4]{0}, f32[2,3,4]{2,1,0}",
         "(f32[2,3,4]{2,1,0}, f32[4]{0}, f32[4]{0})",
         "  x = f32[2,3,4]{2,1,0} parameter(0)\n  s = f32[4]{0} parameter(1)\n"
         "  m = f32[4]{0} parameter(2)\n  v = f32[4]{0} parameter(3)\n"
         "  g = f32[2,3,4]{2,1,0} parameter(4)\n"
         "  ROOT b = (f32[2,3,4]{2,1,0}, f32[4]{0}, f32[4]{0}) batch-norm-grad(x, s, m, v, g), "
         "epsilon=0.001, feature_index=2",
         lambda r: [r.uniform(-1, 1, (2, 3, 4)).astype(np.float32),
                    r.uniform(0.5, 1, 4).astype(np.float32), r.uniform(-1, 1, 4).astype(np.float32),
                    r.uniform(0.5, 1, 4).astype(np.float32),
                    r.uniform(-1, 1, (2, 3, 4)).astype(np.float32)]),
    _rec(O.AFTER_ALL, _F34, _F34,
         _x34 + "  t = token[] after-all()\n  ROOT y = f32[3,4]{1,0} copy(x)", _f32(3, 4)),
    _rec(O.ALL_REDUCE, _F34, _F34,
         _x34 + f"  ROOT a = {_F34} all-reduce(x), replica_groups={{}}, to_apply=add_f32",
         _f32(3, 4), ADD_F32),
    _rec(O.CROSS_REPLICA_SUM, _F34, _F34,
         _x34 + f"  ROOT a = {_F34} cross-replica-sum(x), to_apply=add_f32", _f32(3, 4), ADD_F32),
    _rec(O.CALL, "f32[4]{0}", "f32[4]{0}",
         "  x = f32[4]{0} parameter(0)\n  ROOT c = f32[4]{0} call(x), to_apply=double",
         _f32(4), _BRANCHES),
    _rec(O.CONDITIONAL, "s32[], f32[4]{0}", "f32[4]{0}",
         "  i = s32[] parameter(0)\n  x = f32[4]{0} parameter(1)\n"
         "  ROOT c = f32[4]{0} conditional(i, x, x), branch_computations={double, square}",
         lambda r: [np.int32(1), r.uniform(-1, 1, 4).astype(np.float32)], _BRANCHES),
    _rec(O.FUSION, "f32[4]{0}", "f32[4]{0}",
         "  x = f32[4]{0} parameter(0)\n  ROOT f = f32[4]{0} fusion(x), kind=kLoop, calls=double",
         _f32(4), _BRANCHES),
    _rec(O.GET_TUPLE_ELEMENT, _F34, _F34,
         _x34 + f"  t = ({_F34}, {_F34}) tuple(x, x)\n"
         f"  ROOT g = {_F34} get-tuple-element(t), index=1", _f32(3, 4)),
    _rec(O.MAP, f"{_F34}, {_F34}", _F34,
         _x34 + f"  y = {_F34} parameter(1)\n"
         f"  ROOT m = {_F34} map(x, y), dimensions={{0,1}}, to_apply=mul_f32",
         lambda r: [r.uniform(-1, 1, (3, 4)).astype(np.float32) for _ in "ab"], _MUL_F32),
    _rec(O.RNG_BIT_GENERATOR, "u64[2]{0}", "(u64[2]{0}, u32[6]{0})",
         "  s = u64[2]{0} parameter(0)\n"
         "  ROOT r = (u64[2]{0}, u32[6]{0}) rng-bit-generator(s), algorithm=rng_three_fry",
         lambda r: [np.array([42, 7], np.uint64)]),
    _rec(O.TUPLE, _F34, f"({_F34}, f32[])",
         _x34 + f"  c = f32[] constant(1)\n  ROOT t = ({_F34}, f32[]) tuple(x, c)", _f32(3, 4)),
    _rec(O.WHILE, "f32[4]{0}", "(s32[], f32[4]{0})",
         "  x = f32[4]{0} parameter(0)\n  z = s32[] constant(0)\n"
         "  t = (s32[], f32[4]{0}) tuple(z, x)\n"
         "  ROOT w = (s32[], f32[4]{0}) while(t), condition=cond, body=body",
         _f32(4), _WHILE_COMPS),
]

# Opcodes whose records need something a reference evaluator cannot check exactly.
NOT_EVALUATED = {
    Opcode.RNG: "random by definition; covered by distribution tests",
    Opcode.CUSTOM_CALL: "opaque target; evaluating it is an UnsupportedOpError by design",
}

RECORDS += [
    _rec(O.RNG, "f32[], f32[]", "f32[3,4]{1,0}",
         "  a = f32[] parameter(0)\n  b = f32[] parameter(1)\n"
         "  ROOT r = f32[3,4]{1,0} rng(a, b), distribution=rng_uniform",
         lambda r: [np.float32(0), np.float32(1)]),
    _rec(O.CUSTOM_CALL, _F34, _F34,
         _x34 + f"  ROOT c = {_F34} custom-call(x), custom_call_target=\"my_op\"", _f32(3, 4)),
]

BY_OPCODE: dict[Opcode, list[OpRecord]] = {}
for _r in RECORDS:
    BY_OPCODE.setdefault(_r.opcode, []).append(_r)
