"""The CPU driver: buffers, tuples, calls and control flow, the ABI, targets and errors."""

from __future__ import annotations

import ctypes
import importlib
import struct

import numpy as np
import pytest

import compiler
import hlo
from backends.cpu import CpuOptions, compile_to_object
from backends.cpu.kernels import CPU_KERNELS
from hlo.opcodes import Opcode
from hlo.parser import parse
from runtime.buffers import aligned_empty, aligned_zeros
from runtime.loader import LoadedCode

ADD = """
add {
  a = f32[] parameter(0)
  b = f32[] parameter(1)
  ROOT s = f32[] add(a, b)
}
"""


def compile_and_check(text: str, *args: np.ndarray) -> tuple:
    """Compile `text`, run it on `args`, compare with the evaluator; returns the results."""
    module = parse(text)
    got = compiler.compile(module)(*args)
    if not isinstance(got, tuple):
        got = (got,)
    want = hlo.evaluate(module, *args)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-6)
    return got


def test_while_loop_with_tuple_state() -> None:
    """fori-style loop: (i, acc) -> (i + 1, acc * 2 + x) while i < n."""
    text = """HloModule loop

cond {
  s = (s32[], f32[3], s32[]) parameter(0)
  i = s32[] get-tuple-element(s), index=0
  n = s32[] get-tuple-element(s), index=2
  ROOT lt = pred[] compare(i, n), direction=LT
}

body {
  s = (s32[], f32[3], s32[]) parameter(0)
  i = s32[] get-tuple-element(s), index=0
  acc = f32[3] get-tuple-element(s), index=1
  n = s32[] get-tuple-element(s), index=2
  one = s32[] constant(1)
  i2 = s32[] add(i, one)
  r = f32[3] reverse(acc), dimensions={0}
  two = f32[] constant(2)
  tb = f32[3] broadcast(two), dimensions={}
  acc2 = f32[3] multiply(r, tb)
  ROOT t = (s32[], f32[3], s32[]) tuple(i2, acc2, n)
}

ENTRY main {
  x = f32[3] parameter(0)
  n = s32[] parameter(1)
  zero = s32[] constant(0)
  init = (s32[], f32[3], s32[]) tuple(zero, x, n)
  w = (s32[], f32[3], s32[]) while(init), condition=cond, body=body
  ROOT acc = f32[3] get-tuple-element(w), index=1
}
"""
    x = np.array([1.0, 2.0, 3.0], np.float32)
    for n in (0, 1, 5):
        (got,) = compile_and_check(text, x, np.int32(n))
        expected = x[::-1] * 2 ** n if n % 2 else x * 2 ** n
        np.testing.assert_array_equal(got, expected)


def test_conditional_index_form_with_out_of_range_index() -> None:
    text = """HloModule switch

b0 {
  p = f32[2] parameter(0)
  ROOT n = f32[2] negate(p)
}

b1 {
  p = f32[2] parameter(0)
  ROOT e = f32[2] add(p, p)
}

ENTRY main {
  i = s32[] parameter(0)
  x = f32[2] parameter(1)
  ROOT c = f32[2] conditional(i, x, x, x), branch_computations={b0, b1, b1}
}
"""
    x = np.array([1.5, -2.0], np.float32)
    exe = compiler.compile(parse(text))
    assert exe(np.int32(0), x).tolist() == [-1.5, 2.0]
    assert exe(np.int32(1), x).tolist() == [3.0, -4.0]
    # Out of range (either side) runs the last branch, as XLA specifies.
    assert exe(np.int32(7), x).tolist() == [3.0, -4.0]
    assert exe(np.int32(-1), x).tolist() == [3.0, -4.0]


def test_conditional_pred_form_and_tuple_results() -> None:
    text = """HloModule cond

on_true {
  p = (f32[2], s32[]) parameter(0)
  a = f32[2] get-tuple-element(p), index=0
  k = s32[] get-tuple-element(p), index=1
  ROOT t = (f32[2], s32[]) tuple(a, k)
}

on_false {
  p = f32[2] parameter(0)
  n = f32[2] negate(p)
  z = s32[] constant(-1)
  ROOT t = (f32[2], s32[]) tuple(n, z)
}

ENTRY main {
  c = pred[] parameter(0)
  x = f32[2] parameter(1)
  k = s32[] parameter(2)
  tx = (f32[2], s32[]) tuple(x, k)
  ROOT r = (f32[2], s32[]) conditional(c, tx, x), true_computation=on_true, \
false_computation=on_false
}
"""
    x = np.array([1.0, 2.0], np.float32)
    exe = compiler.compile(parse(text))
    a, k = exe(np.bool_(True), x, np.int32(9))
    assert a.tolist() == [1.0, 2.0] and k == 9
    a, k = exe(np.bool_(False), x, np.int32(9))
    assert a.tolist() == [-1.0, -2.0] and k == -1


def test_call_map_and_nested_tuples() -> None:
    text = f"""HloModule calls
{ADD}
inner {{
  a = f32[4] parameter(0)
  b = f32[4] parameter(1)
  s = f32[4] map(a, b), dimensions={{0}}, to_apply=add
  sa = (f32[4], f32[4]) tuple(s, a)
  ROOT t = ((f32[4], f32[4]), f32[4]) tuple(sa, b)
}}

ENTRY main {{
  x = f32[4] parameter(0)
  y = f32[4] parameter(1)
  c = ((f32[4], f32[4]), f32[4]) call(x, y), to_apply=inner
  g = (f32[4], f32[4]) get-tuple-element(c), index=0
  s = f32[4] get-tuple-element(g), index=0
  ROOT r = (f32[4], (f32[4], f32[4]), f32[4]) tuple(s, g, x)
}}
"""
    x = np.arange(4, dtype=np.float32)
    y = np.full(4, 0.5, np.float32)
    got = compile_and_check(text, x, y)
    assert len(got) == 4
    np.testing.assert_array_equal(got[0], x + y)
    np.testing.assert_array_equal(got[1], x + y)
    np.testing.assert_array_equal(got[2], x)
    np.testing.assert_array_equal(got[3], x)


def test_root_aliases_parameters_constants_and_repeats() -> None:
    """Result buffers are distinct even when the root repeats a value or is a parameter."""
    text = """HloModule alias

ENTRY main {
  x = f32[3] parameter(0)
  c = f32[3] constant({1, 2, 3})
  a = f32[3] add(x, c)
  r = f32[3] reshape(a)
  ROOT t = (f32[3], f32[3], f32[3], f32[3], f32[3]) tuple(x, c, a, a, r)
}
"""
    x = np.array([10.0, 20.0, 30.0], np.float32)
    got = compile_and_check(text, x)
    assert len({g.ctypes.data for g in got}) == 5
    got[2][0] = -1.0
    assert got[3][0] == 11.0


def test_tuple_parameters_and_zero_size_and_rank0() -> None:
    text = """HloModule shapes

ENTRY main {
  p = (f32[0,3], (s32[], f32[2,1,1,1,1,2])) parameter(0)
  e = f32[0,3] get-tuple-element(p), index=0
  q = (s32[], f32[2,1,1,1,1,2]) get-tuple-element(p), index=1
  k = s32[] get-tuple-element(q), index=0
  r6 = f32[2,1,1,1,1,2] get-tuple-element(q), index=1
  k2 = s32[] multiply(k, k)
  en = f32[0,3] negate(e)
  t6 = f32[2,1,1,1,1,2] transpose(r6), dimensions={5,1,2,3,4,0}
  ROOT t = (f32[0,3], s32[], f32[2,1,1,1,1,2]) tuple(en, k2, t6)
}
"""
    r6 = np.arange(4, dtype=np.float32).reshape(2, 1, 1, 1, 1, 2)
    arg = (np.zeros((0, 3), np.float32), (np.int32(-7), r6))
    got = compile_and_check(text, arg)
    assert got[0].shape == (0, 3)
    assert got[1] == 49
    np.testing.assert_array_equal(got[2], r6.transpose(5, 1, 2, 3, 4, 0))


def test_unsupported_op_names_the_instruction(monkeypatch: pytest.MonkeyPatch) -> None:
    text = """HloModule unsupported

ENTRY main {
  x = f32[4] parameter(0)
  ROOT s = f32[4] sort(x), dimensions={0}, to_apply=lt
}

lt {
  a = f32[] parameter(0)
  b = f32[] parameter(1)
  ROOT c = pred[] compare(a, b), direction=LT
}
"""
    # Load every kernel first (the driver registers them lazily), so none comes back.
    importlib.import_module("backends.cpu.all_kernels")
    monkeypatch.delitem(CPU_KERNELS, Opcode.SORT)
    with pytest.raises(hlo.UnsupportedOpError, match=r"sort.*\bs\b.*main"):
        compile_to_object(parse(text))


def test_custom_call_is_unsupported() -> None:
    text = """HloModule custom

ENTRY main {
  x = f32[4] parameter(0)
  ROOT c = f32[4] custom-call(x), custom_call_target="lapack_sgetrf"
}
"""
    with pytest.raises(hlo.UnsupportedOpError, match="custom-call"):
        compiler.compile(parse(text))


def test_bad_options_raise_compile_error() -> None:
    module = parse("HloModule m\n\nENTRY main {\n  ROOT x = f32[] parameter(0)\n}\n")
    with pytest.raises(hlo.CompileError, match="unknown CPU backend option"):
        compile_to_object(module, vectorize=True)
    with pytest.raises(hlo.CompileError, match="opt_level"):
        compile_to_object(module, opt_level=7)
    with pytest.raises(hlo.CompileError, match="not a C identifier"):
        compile_to_object(module, entry_symbol="1 bad")
    with pytest.raises(hlo.CompileError, match="target triple"):
        compile_to_object(module, target_triple="nonsense-arch-none")
    with pytest.raises(hlo.CompileError, match="backend"):
        compiler.compile(module, backend="tpu")


SIMPLE = """HloModule simple

ENTRY main {
  x = f32[2,3] parameter(0)
  y = f32[2,3] parameter(1)
  e = f32[2,3] exponential(x)
  m = f32[2,3] multiply(e, y)
  t = f32[3,2] transpose(m), dimensions={1,0}
  ROOT r = (f32[3,2], f32[2,3]) tuple(t, e)
}
"""


def test_artifact_describes_the_abi() -> None:
    art = compile_to_object(parse(SIMPLE), entry_symbol="my_entry", opt_level=2)
    assert art.symbol == "my_entry"
    assert [s.dims for s in art.arg_shapes] == [(2, 3), (2, 3)]
    assert [s.dims for s in art.result_shapes] == [(3, 2), (2, 3)]
    assert art.temp_bytes % 64 == 0
    assert "define void @\"my_entry\"(ptr" in art.llvm_ir
    assert "my_entry" in art.optimized_ir
    assert "my_entry" in art.asm()
    assert art.object_code[:4] == b"\x7fELF"


def test_abi_called_directly_through_ctypes() -> None:
    """void f(void* const* args, void* const* results, void* temps), nothing else."""
    art = compile_to_object(parse(SIMPLE))
    code = LoadedCode(art)
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    y = np.full((2, 3), 2.0, np.float32)
    t = aligned_zeros((3, 2), np.float32)
    e = aligned_zeros((2, 3), np.float32)
    temps = aligned_empty((max(art.temp_bytes, 1),), np.uint8)
    args = (ctypes.c_void_p * 2)(x.ctypes.data, y.ctypes.data)
    results = (ctypes.c_void_p * 2)(t.ctypes.data, e.ctypes.data)
    code.function(args, results, temps.ctypes.data)
    np.testing.assert_allclose(e, np.exp(x), rtol=1e-6)
    np.testing.assert_allclose(t, (np.exp(x) * y).T, rtol=1e-6)


def test_cross_compiles_to_aarch64() -> None:
    art = compile_to_object(parse(SIMPLE), target_triple="aarch64-unknown-linux-gnu")
    assert art.triple == "aarch64-unknown-linux-gnu"
    obj = art.object_code
    assert obj[:4] == b"\x7fELF" and obj[4] == 2  # ELF64
    (machine,) = struct.unpack_from("<H", obj, 18)
    assert machine == 183  # EM_AARCH64
    assert "ret" in art.asm()
    with pytest.raises(hlo.CompileError, match="cannot load"):
        LoadedCode(art)


def test_options_as_dataclass_and_host_features() -> None:
    opts = CpuOptions(opt_level=0)
    art = compile_to_object(parse(SIMPLE), opts)
    assert art.opt_level == 0
    assert art.features  # the host's feature string, not empty


FUSION = """HloModule fused

fused_body {
  a = f32[3,4] parameter(0)
  v = f32[4] parameter(1)
  bv = f32[3,4] broadcast(v), dimensions={1}
  e = f32[3,4] remainder(a, a)
  s = f32[3,4] add(e, bv)
  m = f32[3,4] multiply(s, s)
  t = f32[4,3] transpose(m), dimensions={1,0}
  c = f32[4,6] concatenate(t, t), dimensions={1}
  ROOT r = f32[4,6] subtract(c, c)
}

multi_body {
  a = f32[3,4] parameter(0)
  n = f32[3,4] negate(a)
  k = f32[] constant(2)
  bk = f32[3,4] broadcast(k), dimensions={}
  p = f32[3,4] power(a, bk)
  ROOT t = (f32[3,4], f32[3,4]) tuple(n, p)
}

add {
  x = f32[] parameter(0)
  y = f32[] parameter(1)
  ROOT s = f32[] add(x, y)
}

reducing_body {
  a = f32[3,4] parameter(0)
  z = f32[] constant(0)
  ROOT r = f32[3] reduce(a, z), dimensions={1}, to_apply=add
}

ENTRY main {
  x = f32[3,4] parameter(0)
  v = f32[4] parameter(1)
  f = f32[4,6] fusion(x, v), kind=kLoop, calls=fused_body
  g = (f32[3,4], f32[3,4]) fusion(x), kind=kLoop, calls=multi_body
  h = f32[3] fusion(x), kind=kInput, calls=reducing_body
  g0 = f32[3,4] get-tuple-element(g), index=0
  g1 = f32[3,4] get-tuple-element(g), index=1
  ROOT out = (f32[4,6], f32[3,4], f32[3,4], f32[3]) tuple(f, g0, g1, h)
}
"""


def test_loop_fusions_are_one_loop_and_match_the_evaluator() -> None:
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    v = np.arange(4, dtype=np.float32)
    got = compile_and_check(FUSION, x, v)
    np.testing.assert_array_equal(got[0], np.zeros((4, 6), np.float32))
    np.testing.assert_allclose(got[2], x * x, rtol=1e-6)
    art = compile_to_object(parse(FUSION))
    # Every fusion writes straight into its result and no fused intermediate is
    # materialised (the reducing one reads its input through the fused generator).
    assert art.temp_bytes == 0
    fused_fn = [line for line in art.llvm_ir.splitlines()
                if line.startswith("define internal") and ".f\"(" in line]
    assert len(fused_fn) == 1
    # `s` is used twice by `m` but computed once per element: one frem per concatenate
    # branch.
    assert art.llvm_ir.count("frem float") == 2


def test_inconsistent_module_is_rejected_before_codegen() -> None:
    """A declared shape that disagrees with the operands would make kernels read out of
    bounds; the verifier stops it first."""
    text = """HloModule bad

ENTRY main {
  x = f32[4] parameter(0)
  ROOT s = f32[40] negate(x)
}
"""
    with pytest.raises(hlo.HloVerificationError):
        compile_to_object(parse(text))


def test_concurrent_compilations() -> None:
    import threading

    results: dict[int, object] = {}

    def work(k: int) -> None:
        text = SIMPLE.replace("exponential", ["sine", "cosine", "tanh", "negate"][k % 4])
        try:
            results[k] = compile_to_object(parse(text), entry_symbol=f"f{k}").object_code[:4]
        except Exception as e:  # reported below
            results[k] = e

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(v == b"\x7fELF" for v in results.values()), results


def test_fusions_with_other_kernels_and_with_tuples_inside() -> None:
    """A hand-written fusion around a sort computes the sort's operand into scratch first;
    one with a tuple inside is called like `call`, each instruction materialised."""
    text = """HloModule odd_fusions

lt {
  a = f32[] parameter(0)
  b = f32[] parameter(1)
  ROOT c = pred[] compare(a, b), direction=LT
}

sorting {
  p = f32[4,8] parameter(0)
  n = f32[4,8] negate(p)
  s = f32[4,8] sort(n), dimensions={1}, to_apply=lt
  ROOT e = f32[4,8] exponential(s)
}

tupled {
  p = f32[4,8] parameter(0)
  n = f32[4,8] negate(p)
  t = (f32[4,8], f32[4,8]) tuple(n, p)
  a = f32[4,8] get-tuple-element(t), index=0
  b = f32[4,8] get-tuple-element(t), index=1
  ROOT m = f32[4,8] multiply(a, b)
}

ENTRY main {
  x = f32[4,8] parameter(0)
  f = f32[4,8] fusion(x), kind=kLoop, calls=sorting
  g = f32[4,8] fusion(x), kind=kLoop, calls=tupled
  ROOT r = (f32[4,8], f32[4,8]) tuple(f, g)
}
"""
    x = np.random.default_rng(3).standard_normal((4, 8)).astype(np.float32)
    f, g = compile_and_check(text, x)
    np.testing.assert_allclose(f, np.exp(np.sort(-x, axis=1)), rtol=1e-6)
    np.testing.assert_allclose(g, -x * x, rtol=1e-6)
    art = compile_to_object(parse(text))
    assert "comp.tupled" in art.llvm_ir and "comp.sorting" not in art.llvm_ir
    assert art.temp_bytes > 0  # the sort's operand, in the fusion's scratch
