"""The pass machinery: ordering, checks, honesty, errors, filters, fixed points, instruments,
and the default pipeline's list."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import ClassVar

import pytest

from compiler.passes import DeadCodeElimination, InstructionFusion
from compiler.pipeline import (
    ComputationPass,
    DumpInstrument,
    FixedPoint,
    Instrument,
    LoggingInstrument,
    Pass,
    Pipeline,
    TimingInstrument,
    computations_to_visit,
    iter_passes,
)
from compiler.pipelines import default_pipeline, find_pass, pass_names
from hlo import debug_options
from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType
from hlo.errors import CompileError, HloVerificationError, InternalError, ShapeError
from hlo.module import HloModule
from hlo.opcodes import Opcode
from hlo.parser import parse
from hlo.shape import Shape

TEXT = """
HloModule m
neg {
  x = f32[4] parameter(0)
  ROOT n = f32[4] negate(x)
}
ENTRY main {
  p = f32[4] parameter(0)
  dead = f32[4] exponential(p)
  ROOT c = f32[4] call(p), to_apply=neg
}
"""


def module() -> HloModule:
    return parse(TEXT)


class Recorder:
    """A pass that records its runs and reports a scripted answer."""

    name: ClassVar[str] = "recorder"

    def __init__(self, log: list[str], label: str, answers: list[object] | None = None) -> None:
        self.log = log
        self.label = label
        self.answers = list(answers or [False])

    def run(self, module: HloModule) -> bool:
        self.log.append(self.label)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]  # type: ignore[return-value]


class Renamer:
    """Renames the entry root each run (a real change), reporting `report`."""

    name: ClassVar[str] = "renamer"

    def __init__(self, report: bool = True, times: int = 1_000) -> None:
        self.report = report
        self.left = times

    def run(self, module: HloModule) -> bool:
        if self.left == 0:
            return False
        self.left -= 1
        root = module.entry_computation.root
        assert root is not None
        root.name = root.name + "x"
        return self.report


class Breaker:
    """Gives the entry root a wrong shape and says so: the verifier must object."""

    name: ClassVar[str] = "breaker"

    def run(self, module: HloModule) -> bool:
        root = module.entry_computation.root
        assert root is not None
        root.shape = Shape.array(PrimitiveType.F32, (5,))
        return True


class Raiser:
    name: ClassVar[str] = "raiser"

    def __init__(self, error: Exception) -> None:
        self.error = error

    def run(self, module: HloModule) -> bool:
        raise self.error


def test_passes_run_in_order_and_changes_accumulate() -> None:
    log: list[str] = []
    p = Pipeline("p", [Recorder(log, "a", [False]), Recorder(log, "b", [True]),
                       Recorder(log, "c", [False])])
    assert p.run(module()) is True
    assert log == ["a", "b", "c"]
    assert Pipeline("q", [Recorder([], "a")]).run(module()) is False


@pytest.mark.parametrize("answer", [None, 1, "yes"])
def test_run_must_return_a_real_bool(answer: object) -> None:
    with pytest.raises(InternalError, match="pass recorder returned .* it must return a bool"):
        Pipeline("p", [Recorder([], "a", [answer])]).run(module())


def test_verifier_runs_after_changing_passes_and_names_the_pass() -> None:
    with pytest.raises(HloVerificationError, match="pipeline p, verifier failed after pass "
                                                   "breaker"):
        Pipeline("p", [Breaker()]).run(module())


def test_checks_at_the_start_catch_a_broken_input() -> None:
    m = module()
    m.entry_computation.root.shape = Shape.array(PrimitiveType.F32, (5,))  # type: ignore[union-attr]
    with pytest.raises(HloVerificationError, match="at the start of pipeline p"):
        Pipeline("p", [DeadCodeElimination()]).run(m)


def test_no_checks_at_level_zero() -> None:
    with debug_options.override(checks=0):
        assert Pipeline("p", [Breaker()]).run(module()) is True


@pytest.mark.parametrize("report", [False, True])
def test_honesty_mode_catches_a_wrong_changed_flag(report: bool) -> None:
    # report=False: changes but says no; report=True with times=0: says yes, changes nothing.
    lying = Renamer(report=False) if not report else _TrueButNoChange()
    with debug_options.override(checks=1):
        Pipeline("p", [lying]).run(module())
    with debug_options.override(checks=2), pytest.raises(InternalError, match="pipeline p: "
                                                          "pass .* (returned|changed)"):
        Pipeline("p", [lying]).run(module())


class _TrueButNoChange:
    name: ClassVar[str] = "liar"

    def run(self, module: HloModule) -> bool:
        return True


def test_round_trip_check_at_level_two() -> None:
    class BadName:
        name: ClassVar[str] = "bad_name"

        def run(self, module: HloModule) -> bool:
            root = module.entry_computation.root
            assert root is not None
            root.name = "not a name"
            return True

    with debug_options.override(checks=1):
        Pipeline("p", [BadName()]).run(module())
    with debug_options.override(checks=2), pytest.raises(InternalError,
                                                          match="does not parse back"):
        Pipeline("p", [BadName()]).run(module())


def test_pass_errors_name_pipeline_and_pass() -> None:
    with pytest.raises(ShapeError, match=r"pipeline p, in pass raiser: bad shape"):
        Pipeline("p", [Raiser(ShapeError("bad shape"))]).run(module())
    with pytest.raises(InternalError, match=r"pipeline p, in pass raiser: KeyError"):
        Pipeline("p", [Raiser(KeyError("k"))]).run(module())


def test_nested_pipeline_names_the_path() -> None:
    inner = Pipeline("inner", [Raiser(ShapeError("bad"))])
    with pytest.raises(ShapeError, match=r"pipeline outer, in pass inner/raiser"):
        Pipeline("outer", [inner]).run(module())


def test_pass_filters() -> None:
    log: list[str] = []

    class Named(Recorder):
        name: ClassVar[str] = "named"

    passes: list[Pass] = [Recorder(log, "recorder"), Named(log, "named")]
    with debug_options.override(disable_passes=("named",)):
        Pipeline("p", passes).run(module())
    assert log == ["recorder"]
    log.clear()
    with debug_options.override(only_passes=("named",)):
        Pipeline("p", passes).run(module())
    assert log == ["named"]


def test_fixed_point_repeats_until_no_change() -> None:
    renamer = Renamer(times=3)
    assert FixedPoint(renamer).run(module()) is True
    assert renamer.left == 0
    assert FixedPoint(Renamer(times=0)).run(module()) is False


def test_fixed_point_limit_warns_or_raises_under_checks() -> None:
    with pytest.warns(RuntimeWarning, match="still changed the module after 3 iterations"):
        assert FixedPoint(Renamer(), limit=3).run(module()) is True
    with debug_options.override(checks=2), pytest.raises(InternalError,
                                                          match="after 3 iterations"):
        FixedPoint(Renamer(), limit=3).run(module())


def test_computation_pass_visits_callees_first_and_skips_fusions() -> None:
    text = """
HloModule m
fused {
  a = f32[4] parameter(0)
  ROOT b = f32[4] negate(a)
}
neg {
  x = f32[4] parameter(0)
  ROOT n = f32[4] fusion(x), kind=kLoop, calls=fused
}
ENTRY main {
  p = f32[4] parameter(0)
  ROOT c = f32[4] call(p), to_apply=neg
}
"""
    seen: list[str] = []

    class Visitor(ComputationPass):
        name: ClassVar[str] = "visitor"

        def run_on(self, comp: HloComputation) -> bool:
            seen.append(comp.name)
            return False

    assert Visitor().run(parse(text)) is False
    assert seen == ["neg", "main"]
    assert [c.name for c in computations_to_visit(parse(text))] == ["neg", "main"]


class Events(Instrument):
    def __init__(self) -> None:
        self.events: list[str] = []

    def start(self, pipeline: str, module: HloModule) -> None:
        self.events.append(f"start {pipeline}")

    def before(self, p: Pass, module: HloModule) -> None:
        self.events.append(f"before {p.name}")

    def after(self, p: Pass, module: HloModule, changed: bool) -> None:
        self.events.append(f"after {p.name} {changed}")

    def end(self, pipeline: str, module: HloModule) -> None:
        self.events.append(f"end {pipeline}")


def test_instruments_see_every_pass_inside_nested_pipelines_and_fixed_points() -> None:
    events = Events()
    inner = Pipeline("inner", [DeadCodeElimination()])
    Pipeline("outer", [FixedPoint(inner)], instruments=[events]).run(module())
    assert events.events == ["start outer", "start inner", "before dce", "after dce True",
                             "end inner", "start inner", "before dce", "after dce False",
                             "end inner", "end outer"]


def test_dump_instrument_writes_numbered_files_for_changing_passes(tmp_path: Path) -> None:
    fusible = parse(TEXT.replace("ROOT c = f32[4] call(p), to_apply=neg",
                                 "c = f32[4] call(p), to_apply=neg\n"
                                 "  ROOT s = f32[4] sine(c)").replace("ROOT n = f32[4] negate(x)",
                                                                     "y = f32[4] sine(x)\n"
                                                                     "  ROOT n = f32[4] negate(y)"))
    with debug_options.override(dump_dir=str(tmp_path), dump_dot=True):
        Pipeline("opt", [DeadCodeElimination(), Recorder([], "idle"),
                         InstructionFusion()]).run(fusible)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["0000.m.opt.start.dot", "0000.m.opt.start.hlo",
                     "0001.m.opt.after_dce.dot", "0001.m.opt.after_dce.hlo",
                     "0002.m.opt.after_fusion.dot", "0002.m.opt.after_fusion.explain.txt",
                     "0002.m.opt.after_fusion.hlo"]
    assert "exponential" not in (tmp_path / "0001.m.opt.after_dce.hlo").read_text()
    parse((tmp_path / "0001.m.opt.after_dce.hlo").read_text())
    assert (tmp_path / "0001.m.opt.after_dce.dot").read_text().startswith("digraph")


def test_dump_regex_selects_passes(tmp_path: Path) -> None:
    dump = DumpInstrument(tmp_path, passes="fus.*")
    Pipeline("opt", [DeadCodeElimination()], instruments=[dump]).run(module())
    assert [p.name for p in dump.written] == ["0000.m.opt.start.hlo"]


def test_timing_and_logging_instruments(caplog: pytest.LogCaptureFixture) -> None:
    timing = TimingInstrument()
    logger = logging.getLogger("test.pipeline")
    with caplog.at_level(logging.DEBUG, logger="test.pipeline"):
        Pipeline("opt", [DeadCodeElimination(), FixedPoint(DeadCodeElimination())],
                 instruments=[timing, LoggingInstrument(logger)]).run(module())
    assert timing.timings["dce"].runs == 2
    assert timing.timings["dce"].changed == 1
    summary = timing.summary()
    assert re.search(r"^dce\s+2\s+1\s+\d+\.\d\d$", summary, re.M), summary
    assert "pass dce: changed=True" in caplog.text
    assert "pipeline opt: start on module m" in caplog.text


def test_log_flag_enables_pass_loggers() -> None:
    logger = logging.getLogger("compiler.passes.dce")
    before = logger.level
    try:
        with debug_options.override(log=("dce",)):
            Pipeline("p", [DeadCodeElimination()]).run(module())
        assert logger.isEnabledFor(logging.DEBUG)
    finally:
        logger.setLevel(before)


def test_default_pipeline_names_are_unique_and_findable() -> None:
    names = pass_names("cpu")
    leaves = [p.name for p in iter_passes(default_pipeline("cpu"))]
    assert set(names) == set(leaves)
    for name in names:
        assert find_pass(name).name == name
    with pytest.raises(CompileError, match="no pass named 'nope'; passes: call_inliner"):
        find_pass("nope")
    with pytest.raises(CompileError, match="unknown target 'tpu'"):
        default_pipeline("tpu")
    assert pass_names("gpu") == names


def test_pipeline_rejects_non_passes() -> None:
    with pytest.raises(InternalError, match="is not a pass"):
        Pipeline("p", [object()])  # type: ignore[list-item]


def test_default_pipeline_leaves_no_calls() -> None:
    # The default pipeline turns JAX's call-wrapped module into plain fused code.
    m = module()
    default_pipeline().run(m)
    assert all(i.opcode is not Opcode.CALL for c in m.computations for i in c.instructions)


def test_pipeline_explain_gathers_explainable_passes() -> None:
    pipeline = default_pipeline()
    m = parse(TEXT.replace("ROOT n = f32[4] negate(x)",
                           "y = f32[4] sine(x)\n  ROOT n = f32[4] negate(y)"))
    assert pipeline.explain() == ""
    pipeline.run(m)
    text = pipeline.explain()
    assert "== fusion ==\n" in text and "== buffer_assignment ==\n" in text
    assert "fused: " in text and "buffer assignment of module m" in text


def test_dump_numbers_continue_across_pipelines(tmp_path: Path) -> None:
    with debug_options.override(dump_dir=str(tmp_path)):
        Pipeline("first", [DeadCodeElimination()]).run(module())
        Pipeline("second", [DeadCodeElimination()]).run(module())
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "0000.m.first.start.hlo", "0001.m.first.after_dce.hlo",
        "0002.m.second.start.hlo", "0003.m.second.after_dce.hlo"]
