"""Buffer assignment, part two: temporaries in the caller's result buffers before the
results are written, and results aliased with donated parameters (input_output_alias):
written in place when safe, copied in at the end otherwise, and the schedule that helps."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.api import compile_artifact
from compiler.passes import assign_buffers
from compiler.passes.copy_insertion import input_output_aliases
from hlo.errors import CompileError
from hlo.evaluator import evaluate
from hlo.parser import parse
from runtime import Executable
from tests.conftest import CORPUS

# t1 (f32[64]) dies long before the result r (f32[64]) is written: it may live in r's
# buffer. b is read by r's writer elementwise: r may overwrite it in place.
HOSTED = """
HloModule hosted
ENTRY main {
  p = f32[64] parameter(0)
  t1 = f32[64] exponential(p)
  s = f32[] constant(0)
  red = f32[] reduce(t1, s), dimensions={0}, to_apply=add
  b = f32[64] broadcast(red), dimensions={}
  ROOT r = f32[64] add(p, b)
}
add {
  x = f32[] parameter(0)
  y = f32[] parameter(1)
  ROOT z = f32[] add(x, y)
}
"""


def _buffer(result, name: str):
    (b,) = [b for b in result.buffers if b.label == name]
    return b


def _run(text: str, *args: np.ndarray) -> None:
    """Compile `text` and check it against the evaluator (arguments are not modified)."""
    module = parse(text)
    kept = [a.copy() for a in args]
    got = Executable(compile_artifact(parse(text)))(*args)
    want = evaluate(module, *kept)
    got = got if isinstance(got, tuple) else (got,)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    for a, k in zip(args, kept, strict=True):
        np.testing.assert_array_equal(a, k)


def test_temporaries_live_in_a_result_buffer_before_it_is_written() -> None:
    result = assign_buffers(parse(HOSTED))
    t1, b = _buffer(result, "t1"), _buffer(result, "b")
    assert t1.allocation.result == 0 and b.allocation.result == 0
    assert result.offset_of("t1") is None  # not in the arena
    assert result.temp_bytes == 64  # red alone
    assert "in result 0's buffer (r), which is written only at step" in result.explain()
    _run(HOSTED, np.linspace(-1, 1, 64, dtype=np.float32))


def test_a_buffer_read_after_the_result_is_written_stays_in_the_arena() -> None:
    text = HOSTED.replace("ROOT r = f32[64] add(p, b)",
                          "r = f32[64] add(p, b)\n  rt = f32[64] multiply(r, t1)\n"
                          "  late = f32[] reduce(rt, s), "
                          "dimensions={0}, to_apply=add\n"
                          "  ROOT o = (f32[64], f32[]) tuple(r, late)")
    result = assign_buffers(parse(text))
    t1 = _buffer(result, "t1")
    # t1 is read by rt, after r (result 0) is written; result 1 is too small.
    assert t1.allocation.result is None
    assert result.offset_of("t1") is not None
    _run(text, np.linspace(-1, 1, 64, dtype=np.float32))


def test_a_more_aligned_temporary_stays_out_of_a_less_aligned_result() -> None:
    text = """
HloModule align
ENTRY main {
  p = f64[4] parameter(0)
  t = f64[4] exponential(p)
  s = f64[] constant(0)
  red = f64[] reduce(t, s), dimensions={0}, to_apply=add
  c = f32[] convert(red)
  ROOT r = f32[16] broadcast(c), dimensions={}
}
add {
  x = f64[] parameter(0)
  y = f64[] parameter(1)
  ROOT z = f64[] add(x, y)
}
"""
    result = assign_buffers(parse(text))
    # 32 bytes of f32 could hold t's 32 bytes, but only 4-byte aligned.
    assert _buffer(result, "t").allocation.result is None
    _run(text, np.arange(4, dtype=np.float64))


def test_called_computations_keep_their_results_to_themselves() -> None:
    module = parse(HOSTED)
    add = module.computation("add")
    result = assign_buffers(module, computation=add, callee_blocks=False)
    assert all(a.result is None for a in result.allocations)


@pytest.mark.skipif(not (CORPUS / "hlo" / "mlp_train_step.hlo").exists(),
                    reason="../shared/corpus is not present")
def test_mlp_train_step_needs_no_more_than_xla() -> None:
    # XLA's CPU client reports 1152 temporary bytes for this module (bench memory).
    art = compile_artifact(parse((CORPUS / "hlo" / "mlp_train_step.hlo").read_text()))
    result = assign_buffers(art.extra["optimized_module"], callee_blocks=False)
    assert result.temp_bytes <= 1152
    assert result.temp_bytes <= 0.6 * result.no_reuse_bytes


# --- donation ----------------------------------------------------------------------------------
def _aliased(body: str, aliases: str) -> str:
    return f"HloModule donate, input_output_alias={{ {aliases} }}\n{body}"


SGD = """
ENTRY main {
  w = f32[8] parameter(0)
  g = f32[8] parameter(1)
  lr = f32[] constant(0.5)
  b = f32[8] broadcast(lr), dimensions={}
  step = f32[8] multiply(g, b)
  new = f32[8] subtract(w, step)
  s = f32[] constant(0)
  loss = f32[] reduce(w, s), dimensions={0}, to_apply=add
  ROOT out = (f32[8], f32[]) tuple(new, loss)
}
add {
  x = f32[] parameter(0)
  y = f32[] parameter(1)
  ROOT z = f32[] add(x, y)
}
"""


def test_header_aliases_name_result_and_argument_leaves() -> None:
    module = parse(_aliased(SGD, "{0}: (0, {}, may-alias)"))
    (alias,) = input_output_aliases(module)
    assert (alias.result, alias.argument, alias.parameter) == (0, 0, 0)
    with pytest.raises(CompileError, match="names no array result"):
        input_output_aliases(parse(_aliased(SGD, "{5}: (0, {}, may-alias)")))
    with pytest.raises(CompileError, match=r"the result is f32\[\] but the parameter f32\[8\]"):
        input_output_aliases(parse(_aliased(SGD, "{1}: (0, {}, may-alias)")))
    with pytest.raises(CompileError, match="aliased twice"):
        input_output_aliases(parse(_aliased(SGD, "{0}: (0, {}), {0}: (1, {})")))


def test_donated_parameter_is_updated_in_place_after_its_other_reads() -> None:
    result = assign_buffers(parse(_aliased(SGD, "{0}: (0, {}, may-alias)")))
    (alias,) = result.aliases
    assert alias.direct, alias.note
    # The schedule runs the loss (another reader of w) before the update.
    steps = result.steps
    assert steps.index("loss") < steps.index("new")
    assert "written in place" in result.explain()


def test_a_parameter_read_after_the_result_is_copied_in_at_the_end() -> None:
    body = SGD.replace("loss = f32[] reduce(w, s)", "wn = f32[8] multiply(w, new)\n"
                                                    "  loss = f32[] reduce(wn, s)")
    result = assign_buffers(parse(_aliased(body, "{0}: (0, {}, may-alias)")))
    (alias,) = result.aliases
    assert not alias.direct
    assert "w is still read by wn" in alias.note
    assert "copied at the end" in result.explain()
    assert _buffer(result, "new").kind == "temp"  # computed in the arena


def test_a_writer_reading_the_parameter_elsewhere_is_not_in_place() -> None:
    body = """
ENTRY main {
  w = f32[8] parameter(0)
  ROOT r = f32[8] reverse(w), dimensions={0}
}
"""
    result = assign_buffers(parse(_aliased(body, "{}: (0, {}, may-alias)")))
    (alias,) = result.aliases
    assert not alias.direct
    assert "reads w at other indices" in alias.note


def test_returning_the_donated_parameter_elsewhere_is_an_error() -> None:
    body = """
ENTRY main {
  w = f32[8] parameter(0)
  n = f32[8] negate(w)
  ROOT t = (f32[8], f32[8]) tuple(n, w)
}
"""
    with pytest.raises(CompileError, match="also returned as result 1"):
        assign_buffers(parse(_aliased(body, "{0}: (0, {}, may-alias)")))


@pytest.mark.parametrize("extra", ["", "wn"])
def test_aliased_code_runs_with_and_without_donation(extra: str) -> None:
    body = SGD if not extra else SGD.replace(
        "loss = f32[] reduce(w, s)", "wn = f32[8] multiply(w, new)\n  loss = f32[] reduce(wn, s)")
    text = _aliased(body, "{0}: (0, {}, may-alias)")
    w = np.linspace(-1, 1, 8, dtype=np.float32)
    g = np.arange(8, dtype=np.float32)
    want = evaluate(parse(text), w.copy(), g)
    exe = Executable(compile_artifact(parse(text)))
    # Without donation (fresh result arrays) the argument is left as it was.
    _run(text, w, g)
    # With donation (the argument passed as the result buffer) it becomes the result.
    loss = np.empty((), np.float32)
    exe.run_into([w, g], [w, loss])
    np.testing.assert_allclose(w, want[0], rtol=1e-6)
    np.testing.assert_allclose(loss, want[1], rtol=1e-5, atol=1e-6)
