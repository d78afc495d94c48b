"""Buffer assignment: reuse, in-place updates, outputs, explanations, and (on the corpus
after the default pipeline) that buffers live at the same time never share bytes."""

from __future__ import annotations

import pytest

from compiler.passes import BufferAssignmentPass, assign_buffers
from compiler.pipelines import default_pipeline
from hlo import debug_options
from hlo.parser import parse
from tests.compiler.filecheck import check_pass
from tests.conftest import CORPUS, corpus_cases

CHAIN = """
HloModule m
ENTRY main {
  p = f32[256] parameter(0)
  a = f32[256] exponential(p)
  b = f32[256] negate(a)
  c = f32[256] sine(b)
  t = f32[16,16] transpose(TRANSPOSED), dimensions={1,0}
  d = f32[16,16] reshape(c)
  ROOT e = f32[16,16] add(d, t)
}
"""


def _chain(operand: str) -> str:
    return CHAIN.replace("TRANSPOSED", operand)


def _with_square(text: str) -> str:
    return text.replace("  t = f32[16,16] transpose", "  sq = f32[16,16] reshape(p)\n"
                                                        "  t = f32[16,16] transpose")


def test_elementwise_chain_updates_in_place() -> None:
    module = parse(_with_square(_chain("sq")))
    result = assign_buffers(module, result_space=False)
    assert result.offset_of("a") == result.offset_of("b") == result.offset_of("c")
    # a/b/c share one slice; the transpose t is live together with it (d aliases c).
    assert result.temp_bytes == 2 * 1024
    assert result.no_reuse_bytes == 4 * 1024
    text = result.explain()
    assert "not reused: live ranges overlap with a" in text
    assert "in place of a (it dies here and has the same size)" in text
    assert "e " in text and "output: written straight into result 0" in text
    assert "parameter: the caller's argument buffer" in text


def test_buffers_live_at_once_get_different_space_and_say_why() -> None:
    module = parse(_with_square(_chain("sq")).replace("b = f32[256] negate(a)",
                                                      "b = f32[256] negate(a)\n"
                                                      "  keep = f32[256] add(a, b)")
                   .replace("c = f32[256] sine(b)", "c = f32[256] sine(keep)"))
    result = assign_buffers(module)
    assert result.offset_of("a") != result.offset_of("b")
    text = result.explain()
    assert "not in place: a is still read later by keep" in text


def test_dead_buffers_space_is_reused() -> None:
    text = """
HloModule m
ENTRY main {
  p = f32[64] parameter(0)
  a = f32[64] exponential(p)
  ra = f32[8,8] reshape(a)
  ta = f32[8,8] transpose(ra), dimensions={1,0}
  b = f32[8,8] transpose(ta), dimensions={1,0}
  rb = f32[64] reshape(b)
  ROOT c = f32[64] negate(rb)
}
"""
    result = assign_buffers(parse(text), result_space=False)
    # a dies when ta is made; b may take a's place, c goes to the result.
    assert result.offset_of("b") == result.offset_of("a")
    assert result.offset_of("ta") != result.offset_of("a")
    assert "reuses the space of a" in result.explain()
    assert result.offset_of("c") is None
    # With the result's buffer free until c is written, a and b live there instead.
    hosted = assign_buffers(parse(text))
    assert hosted.offset_of("a") is None and hosted.offset_of("b") is None
    assert hosted.temp_bytes == 256  # ta alone


WINDOWED = """
HloModule m
max {
  x = f32[] parameter(0)
  y = f32[] parameter(1)
  ROOT m = f32[] maximum(x, y)
}
ENTRY main {
  p = f32[4,8,8,4] parameter(0)
  a = f32[4,8,8,4] exponential(p)
  low = f32[] constant(-inf)
  pool = f32[4,4,4,4] reduce-window(a, low), window={WINDOW}, to_apply=max
  b = f32[4,4,4,4] exponential(pool)
  ROOT c = f32[4,4,4,4] add(pool, b)
}
"""


def _windowed(window: str) -> str:
    return WINDOWED.replace("WINDOW", window)


def test_reduce_window_writes_over_the_start_of_its_dying_input() -> None:
    result = assign_buffers(parse(_windowed("size=1x2x2x1 stride=1x2x2x1")),
                            result_space=False)
    assert result.offset_of("pool") == result.offset_of("a")
    # b lives with pool, so it goes beyond pool's 1 KiB but within a's 4 KiB, now free.
    assert result.offset_of("b") == 1024
    assert result.temp_bytes == 4096
    assert result.no_reuse_bytes == 6144
    assert "in place over the start of a (it dies here" in result.explain()
    # A backend that splits windows of 256 outputs or more across threads keeps them apart.
    limited = assign_buffers(parse(_windowed("size=1x2x2x1 stride=1x2x2x1")),
                             result_space=False, windows_in_place_below=256)
    assert limited.offset_of("pool") != limited.offset_of("a")
    assert assign_buffers(parse(_windowed("size=1x2x2x1 stride=1x2x2x1")), result_space=False,
                          windows_in_place_below=257).offset_of("pool") == 0


@pytest.mark.parametrize("window", [
    "size=1x3x3x1 stride=1x2x2x1 pad=0_0x1_1x1_1x0_0",  # windows start before the output
    "size=1x2x2x1 stride=1x2x2x1 lhs_dilate=1x2x1x1",
])
def test_reduce_window_reading_behind_its_output_is_not_in_place(window: str) -> None:
    text = _windowed(window)
    if "lhs_dilate" in window:
        text = text.replace("f32[4,4,4,4]", "f32[4,8,4,4]")
    result = assign_buffers(parse(text), result_space=False)
    assert result.offset_of("pool") != result.offset_of("a")
    assert "in place over the start" not in result.explain()


def test_reduce_window_keeps_an_input_read_later() -> None:
    text = _windowed("size=1x2x2x1 stride=1x2x2x1").replace(
        "ROOT c = f32[4,4,4,4] add(pool, b)",
        "c = f32[4,4,4,4] add(pool, b)\n"
        "  m = f32[] reduce(c, low), dimensions={0,1,2,3}, to_apply=max\n"
        "  mb = f32[4,8,8,4] broadcast(m), dimensions={}\n"
        "  ROOT s = f32[4,8,8,4] add(a, mb)")
    result = assign_buffers(parse(text), result_space=False)
    assert result.offset_of("pool") != result.offset_of("a")
    assert "not in place: a is still read later by s" in result.explain()


def test_pass_keeps_the_module_and_explains() -> None:
    p = BufferAssignmentPass()
    check_pass(p, _with_square(_chain("sq")) + "// CHECK: ROOT e\n", changed=False,
               idempotent=False)
    assert p.assignment is not None
    assert p.explain().startswith("buffer assignment of module m")


CASES = corpus_cases("hlo")


@pytest.mark.skipif(not CASES, reason="../shared/corpus is not present")
def test_no_two_live_buffers_overlap_on_the_corpus() -> None:
    for case in CASES:
        module = parse((CORPUS / "hlo" / case["hlo"]).read_text())
        with debug_options.override(checks=0):  # the semantics test verifies this pipeline
            default_pipeline().run(module)
        result = assign_buffers(module)
        allocations = result.allocations
        assert result.temp_bytes <= result.no_reuse_bytes, case["name"]
        for i, x in enumerate(allocations):
            for y in allocations[i + 1:]:
                if x.size == 0 or y.size == 0 or x in y.group() or y in x.group():
                    continue  # (an allocation written in place over another's start)
                in_time = x.start <= y.end and y.start <= x.end
                in_space = x.offset < y.offset + y.size and y.offset < x.offset + x.size
                assert not (in_time and in_space), (
                    f"{case['name']}: {x.name} and {y.name} share bytes while both live")
        # What lives in a result's buffer fits there and is dead (or updated in place)
        # when the result is written.
        outputs = [b for b in result.buffers if b.kind == "output"]
        assert all(x.result is None for x in allocations)
        for i, x in enumerate(result.in_results):
            for y in result.in_results[i + 1:]:
                in_time = x.start <= y.end and y.start <= x.end
                in_space = x.result == y.result and (
                    x.offset < y.offset + y.size and y.offset < x.offset + x.size)
                assert not (in_time and in_space), (case["name"], x.name, y.name)
            out = [b for b in outputs if f"written straight into result {x.result}" in b.note]
            assert len(out) == 1, (case["name"], x.name)
            assert x.offset + x.bytes_used <= out[0].size, (case["name"], x.name)
            assert x.end < out[0].start or (x.end == out[0].start and x.offset == 0), (
                case["name"], x.name)
