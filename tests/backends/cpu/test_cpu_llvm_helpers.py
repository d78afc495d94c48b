"""Unit tests of the llvmlite helpers: loops and branches, IrIndex rewrites, IrArray."""

from __future__ import annotations

import ctypes
import math

import llvmlite.binding as llvm
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from llvmlite import ir

from backends.cpu.object import Target, compile_ir, target_machine
from backends.llvm import IrArray, IrIndex, const, for_range, i64, if_else, if_then, loop_nest
from backends.llvm.index import common_factors, row_major_strides
from backends.llvm.irutil import I64, PTR, llvm_type, storage_type
from hlo.dtypes import PrimitiveType as T
from hlo.shape import Shape


class Jit:
    """Builds functions `void name(ptr, ptr)` in one module and runs them."""

    def __init__(self) -> None:
        self.module = ir.Module("helpers")
        self._engine = None

    def function(self, name: str) -> tuple[ir.Function, ir.IRBuilder]:
        fn = ir.Function(self.module, ir.FunctionType(ir.VoidType(), [PTR, PTR]), name)
        return fn, ir.IRBuilder(fn.append_basic_block("entry"))

    def finish(self) -> None:
        target = Target.resolve()
        code = compile_ir(str(self.module), target, 2)
        tm = target_machine(target, jit=True)
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), tm)
        engine.add_object_file(llvm.ObjectFileRef.from_data(code.object_code))
        engine.finalize_object()
        self._engine = engine

    def call(self, name: str, a: np.ndarray, b: np.ndarray) -> None:
        assert self._engine is not None
        addr = self._engine.get_function_address(name)
        fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(addr)
        fn(a.ctypes.data, b.ctypes.data)


def test_for_range_steps_and_empty_ranges() -> None:
    jit = Jit()
    cases = {"up": (2, 11, 3), "down": (9, -1, -2), "empty": (5, 5, 1), "backwards": (5, 1, 1)}
    for name, (start, stop, step) in cases.items():
        fn, b = jit.function(name)
        out = IrArray(fn.args[1], Shape.array(T.S64, [16]))
        count = IrArray(fn.args[0], Shape.array(T.S64, [1]))
        with for_range(b, start, stop, step) as i:
            n = count.load(b, [i64(0)])
            out.store(b, [n], i)
            count.store(b, [i64(0)], b.add(n, i64(1)))
        b.ret_void()
    jit.finish()
    for name, (start, stop, step) in cases.items():
        count = np.zeros(1, np.int64)
        out = np.zeros(16, np.int64)
        jit.call(name, count, out)
        expected = list(range(start, stop, step))
        assert out[:count[0]].tolist() == expected, name


def test_loop_nest_branches_and_dynamic_bounds() -> None:
    jit = Jit()
    fn, b = jit.function("nest")
    shape = Shape.array(T.S32, [3, 4])
    out = IrArray(fn.args[1], shape)
    with loop_nest(b, [3, 4]) as (i, j):
        is_diag = b.icmp_signed("==", i, j)
        with if_else(b, is_diag) as (then, otherwise):
            with then:
                out.store(b, [i, j], const(T.S32, -1))
            with otherwise:
                with if_then(b, b.icmp_signed("<", i, j)):
                    out.store(b, [i, j], b.trunc(b.add(i, j), llvm_type(T.S32)))
    with loop_nest(b, []) as empty:
        assert empty == []
        out.store(b, [i64(2), i64(0)], const(T.S32, 99))
    with loop_nest(b, [0, 5]):
        out.store(b, [i64(0), i64(0)], const(T.S32, 1234))
    b.ret_void()
    jit.finish()
    got = np.zeros((3, 4), np.int32)
    jit.call("nest", got, got)
    want = np.zeros((3, 4), np.int32)
    for i in range(3):
        for j in range(4):
            want[i, j] = -1 if i == j else (i + j if i < j else 0)
    want[2, 0] = 99
    np.testing.assert_array_equal(got, want)


RESHAPES = [
    ((2, 3, 4), (6, 4)), ((2, 3, 4), (4, 6)), ((24,), (2, 1, 3, 4)), ((2, 1, 3, 4), (3, 8)),
    ((4, 6), (2, 2, 2, 3)), ((1, 1), (1,)), ((5, 1, 1), (1, 5)), ((), (1, 1)), ((7,), (7,)),
]


def test_of_reshape_and_from_linear_match_numpy() -> None:
    """out[dst index] = linear offset of the source element a reshape reads."""
    jit = Jit()
    for k, (src, dst) in enumerate(RESHAPES):
        fn, b = jit.function(f"reshape{k}")
        out = IrArray(fn.args[1], Shape.array(T.S64, dst))
        with loop_nest(b, dst) as idx:
            index = IrIndex(idx, dst)
            out.store(b, index, index.of_reshape(b, src).linear(b))
        b.ret_void()
        fn, b = jit.function(f"delinear{k}")
        out = IrArray(fn.args[1], Shape.array(T.S64, [max(math.prod(dst), 1), max(len(dst), 1)]))
        with for_range(b, 0, math.prod(dst)) as lin:
            index = IrIndex.from_linear(b, lin, dst)
            for d, v in enumerate(index.values):
                out.store(b, [lin, i64(d)], v)
        b.ret_void()
    jit.finish()
    for k, (src, dst) in enumerate(RESHAPES):
        got = np.zeros(dst, np.int64)
        jit.call(f"reshape{k}", got, got)
        np.testing.assert_array_equal(got, np.arange(math.prod(src)).reshape(dst))
        got = np.zeros((max(math.prod(dst), 1), max(len(dst), 1)), np.int64)
        jit.call(f"delinear{k}", got, got)
        if dst:
            want = np.stack(np.unravel_index(np.arange(math.prod(dst)), dst), axis=1)
            np.testing.assert_array_equal(got, want)


@given(st.lists(st.integers(1, 6), max_size=5), st.randoms(use_true_random=False))
def test_common_factors_are_consistent(dims: list[int], rnd: object) -> None:
    n = math.prod(dims)
    other: list[int] = []
    rest = n
    while rest > 1:
        f = rnd.choice([d for d in range(2, rest + 1) if rest % d == 0])  # type: ignore[attr-defined]
        other.append(f)
        rest //= f
        if rnd.random() < 0.3:  # type: ignore[attr-defined]
            other.append(1)
    bounds = common_factors(dims, other)
    assert bounds[0] == (0, 0) and bounds[-1] == (len(dims), len(other))
    for i, j in bounds:
        assert math.prod(dims[:i]) == math.prod(other[:j])
    for (i0, j0), (i1, j1) in zip(bounds, bounds[1:], strict=False):
        assert i0 <= i1 and j0 <= j1 and (i0, j0) != (i1, j1)


def test_row_major_strides() -> None:
    assert row_major_strides([2, 3, 4]) == [12, 4, 1]
    assert row_major_strides([]) == []


def test_ir_array_pred_and_bf16_encoding() -> None:
    """PRED is one byte in memory (any non-zero byte is true); bf16 is its raw bits."""
    jit = Jit()
    fn, b = jit.function("pred")
    src = IrArray(fn.args[0], Shape.array(T.PRED, [4]))
    dst = IrArray(fn.args[1], Shape.array(T.PRED, [4]))
    with for_range(b, 0, 4) as i:
        dst.store_linear(b, i, b.not_(src.load_linear(b, i)))
    b.ret_void()
    jit.finish()
    raw = np.array([0, 1, 2, 255], np.uint8)
    out = np.full(4, 7, np.uint8)
    jit.call("pred", raw, out)
    assert out.tolist() == [1, 0, 0, 0]
    assert storage_type(T.PRED) == ir.IntType(8) and llvm_type(T.PRED) == ir.IntType(1)
    bits = np.array([1.00390625], ml_dtypes.bfloat16).view(np.uint16)[0]
    assert const(T.BF16, 1.00390625).constant == int(bits)
    assert const(T.U32, -1).constant == 0xFFFFFFFF
    assert const(T.S8, -1).constant == 0xFF  # the width's bit pattern
    assert llvm_type(T.S64) == I64


def test_index_rank_mismatch_is_an_internal_error() -> None:
    from hlo.errors import InternalError

    with pytest.raises(InternalError):
        IrIndex([i64(0)], (2, 3))
