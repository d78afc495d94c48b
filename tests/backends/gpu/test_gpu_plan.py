"""The GPU driver's plans and lowering, checked without a GPU (runs in CI).

What the host will do (launches, copies, host-driven loops and branches), which kernels
exist and how they are shared between call sites, what reaches the PTX (vector accesses,
libdevice calls resolved, shared memory), and the errors a user can provoke.
"""

from __future__ import annotations

import numpy as np
import pytest
from llvmlite import ir

from backends.gpu import GpuOptions, compile_to_program
from backends.gpu.compiler import dump_stages
from backends.gpu.plan import Conditional, Copy, Launch, Pool, While, walk_steps
from backends.gpu.target_math import legalize_math_calls
from hlo.errors import CompileError, UnsupportedOpError
from hlo.parser import parse


def _program(text: str):  # type: ignore[no-untyped-def]
    return compile_to_program(parse(text), arch="sm_80")


def test_elementwise_is_one_vectorised_kernel() -> None:
    program = _program("HloModule a\nENTRY e {\n  x = f32[4096] parameter(0)\n"
                       "  y = f32[4096] parameter(1)\n  ROOT r = f32[4096] add(x, y)\n}\n")
    (launch,) = program.launches()
    assert launch.args[0].pool is Pool.ARENA and len(launch.args) == 3
    assert ".v4." in program.ptx.ptx  # 16-byte loads and stores
    # The root's slot is where the runtime reads the result.
    assert program.result == launch.args[0]


def test_reshape_tuple_and_copy_are_free() -> None:
    program = _program("HloModule a\nENTRY e {\n  x = f32[2,3] parameter(0)\n"
                       "  r = f32[6] reshape(x)\n  c = f32[6] copy(r)\n"
                       "  ROOT t = (f32[6], f32[2,3]) tuple(c, x)\n}\n")
    assert program.launches() == []
    first, second = program.result
    assert first.offset == second.offset == program.params[0].offset


def test_constants_live_in_the_pool() -> None:
    program = _program("HloModule a\nENTRY e {\n  x = f32[3] parameter(0)\n"
                       "  c = f32[3] constant({1, 2, 3})\n  ROOT r = f32[3] add(x, c)\n}\n")
    (launch,) = program.launches()
    assert [a.pool for a in launch.args] == [Pool.ARENA, Pool.ARENA, Pool.CONSTANTS]
    values = np.frombuffer(program.constants[:12], np.float32)
    np.testing.assert_array_equal(values, [1, 2, 3])


_CALLED_TWICE = """HloModule c
twice {
  p = f32[8] parameter(0)
  ROOT r = f32[8] add(p, p)
}
ENTRY e {
  x = f32[8] parameter(0)
  a = f32[8] call(x), to_apply=twice
  ROOT b = f32[8] call(a), to_apply=twice
}
"""


def test_a_computation_called_twice_reuses_its_kernel() -> None:
    program = _program(_CALLED_TWICE)
    first, second = program.launches()
    assert first.kernel == second.kernel
    assert first.args != second.args
    assert second.args[1] == first.args[0]  # the second call reads the first's result
    assert len(program.kernel_names) == 1


_SWAP = """HloModule w
cond {
  p = (s32[], f32[4], f32[4]) parameter(0)
  i = s32[] get-tuple-element(p), index=0
  n = s32[] constant(3)
  ROOT c = pred[] compare(i, n), direction=LT
}
body {
  p = (s32[], f32[4], f32[4]) parameter(0)
  i = s32[] get-tuple-element(p), index=0
  a = f32[4] get-tuple-element(p), index=1
  b = f32[4] get-tuple-element(p), index=2
  one = s32[] constant(1)
  j = s32[] add(i, one)
  ROOT t = (s32[], f32[4], f32[4]) tuple(j, b, a)
}
ENTRY e {
  x = f32[4] parameter(0)
  y = f32[4] parameter(1)
  z = s32[] constant(0)
  t = (s32[], f32[4], f32[4]) tuple(z, x, y)
  ROOT w = (s32[], f32[4], f32[4]) while(t), condition=cond, body=body
}
"""


def test_while_state_permutation_is_staged_through_temporaries() -> None:
    program = _program(_SWAP)
    (loop,) = [s for s in program.steps if isinstance(s, While)]
    state = program.result
    copies = [s for s in loop.body if isinstance(s, Copy)]
    # a and b swap places: each is first copied aside, then into the state.
    assert len(copies) == 5
    written = [c.dst for c in copies[-3:]]
    assert written == list(state)
    for c in copies[:2]:
        assert c.dst not in state and c.src in state
    assert loop.pred.shape.element_type.value == "pred"


def test_conditional_branches_write_the_same_buffers() -> None:
    program = _program("""HloModule c
neg {
  p = f32[3] parameter(0)
  ROOT r = f32[3] negate(p)
}
same {
  ROOT p = f32[3] parameter(0)
}
ENTRY e {
  i = s32[] parameter(0)
  x = f32[3] parameter(1)
  ROOT c = f32[3] conditional(i, x, x), branch_computations={neg, same}
}
""")
    (cond,) = [s for s in program.steps if isinstance(s, Conditional)]
    neg, same = cond.branches
    assert isinstance(neg[0], Launch) and neg[0].args[0] == program.result
    assert same == (Copy(program.result, program.params[1]),)
    assert cond.selector == program.params[0]


def test_reductions_use_shuffles_and_shared_memory() -> None:
    program = _program("""HloModule r
add {
  a = f32[] parameter(0)
  b = f32[] parameter(1)
  ROOT r = f32[] add(a, b)
}
ENTRY e {
  x = f32[8,5000] parameter(0)
  z = f32[] constant(0)
  ROOT r = f32[8] reduce(x, z), dimensions={1}, to_apply=add
}
""")
    (launch,) = program.launches()
    assert launch.dims.block == (256, 1, 1) and launch.dims.grid == (8, 1, 1)
    assert "shfl.sync.down" in program.ptx.ptx and ".shared" in program.ptx.ptx
    assert "bar.sync" in program.ptx.ptx


def test_transcendentals_come_from_libdevice() -> None:
    program = _program("HloModule t\nENTRY e {\n  x = f32[64] parameter(0)\n"
                       "  ROOT r = f32[64] tanh(x)\n}\n")
    assert "__nv_tanhf" in program.ptx.llvm_ir
    # Linked and inlined: the PTX calls nothing.
    assert "call" not in program.ptx.ptx.replace("callseq", "")


def test_llvm_math_intrinsics_are_redirected_to_libdevice() -> None:
    module = ir.Module()
    f32 = ir.FloatType()
    fn = ir.Function(module, ir.FunctionType(f32, [f32]), "f")
    b = ir.IRBuilder(fn.append_basic_block())
    log = ir.Function(module, ir.FunctionType(f32, [f32]), "llvm.log.f32")
    b.ret(b.call(log, [fn.args[0]]))
    assert legalize_math_calls(module) == 1
    assert 'call float @"__nv_logf"' in str(module)


def test_unsupported_op_and_bad_options_are_errors() -> None:
    with pytest.raises(UnsupportedOpError, match="custom-call"):
        _program('HloModule c\nENTRY e {\n  x = f32[3] parameter(0)\n'
                 '  ROOT c = f32[3] custom-call(x), custom_call_target="mine"\n}\n')
    with pytest.raises(CompileError, match="unknown GPU backend option"):
        GpuOptions.from_kwargs(sm="sm_90")


def test_dump_writes_every_stage(tmp_path) -> None:  # type: ignore[no-untyped-def]
    program = _program(_CALLED_TWICE)
    paths = dump_stages(program, tmp_path)
    names = sorted(p.name for p in paths)
    assert names == ["c.gpu.llvm.ll", "c.gpu.llvm_opt.ll", "c.gpu.plan.txt", "c.gpu.ptx"]
    assert "launch k0_r_loop" in (tmp_path / "c.gpu.plan.txt").read_text()
    assert all(isinstance(s, Launch) for s in walk_steps(program.steps))
