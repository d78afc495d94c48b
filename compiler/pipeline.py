"""The pass machinery: the Pass protocol, FixedPoint, Pipeline, checkers and instruments.

A pass changes a module in place and says whether it did. The pipeline, not the passes,
owns the cross-cutting work: it filters passes by name (TFCOMPILE_DISABLE_PASSES /
TFCOMPILE_ONLY_PASSES), runs checkers at the start and after every pass that reported a
change (the verifier at checks >= 1; at checks >= 2 also the honesty fingerprint of the
printed module and a print -> parse round trip), re-raises failures with the pipeline and
pass named, and calls instruments around each pass (dumps, timing, logging). This module
knows no individual pass; `compiler/pipelines.py` lists them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

from hlo import debug_options
from hlo.computation import HloComputation
from hlo.errors import HloParseError, InternalError, TfcompileError
from hlo.module import HloModule

log = logging.getLogger(__name__)


# --- the pass interface ----------------------------------------------------------------------


@runtime_checkable
class Pass(Protocol):
    """A module transformation: `run` changes the module in place, True iff it changed.

    `name` is short and stable (pass filters, dumps, the CLI use it); passes declare it
    as a class variable, pipelines and fixed points per instance.
    """

    @property
    def name(self) -> str: ...

    def run(self, module: HloModule) -> bool: ...


@runtime_checkable
class Explainable(Protocol):
    """A pass that can say why it decided what it did (fusion, buffer assignment)."""

    def explain(self) -> str: ...


class ComputationPass:
    """Base for passes that work one computation at a time, like XLA's HloComputationPass.

    `run` visits the module's reachable computations callees first, skipping fused
    computations (their contents belong to their fusion instruction), and reports whether
    any `run_on` call changed something.
    """

    name: ClassVar[str] = "computation_pass"

    def run(self, module: HloModule) -> bool:
        changed = False
        for comp in computations_to_visit(module):
            changed |= self.run_on(comp)
        return changed

    def run_on(self, comp: HloComputation) -> bool:
        """Transform one computation; True iff it changed."""
        raise NotImplementedError(f"{type(self).__name__} must implement run_on")


def computations_to_visit(module: HloModule) -> list[HloComputation]:
    """Reachable non-fusion computations, callees before callers (entry last)."""
    return [c for c in module.computations_post_order() if not c.is_fusion]


# --- checkers ----------------------------------------------------------------------------------


class Checker(Protocol):
    """An invariant check run at the start of a pipeline and after each changing pass."""

    name: str

    def check(self, module: HloModule) -> None:
        """Raise a TfcompileError naming the problem if the module is broken."""


class VerifierChecker:
    """Runs `hlo.verifier.verify` (shapes by re-inference, structure, call graph)."""

    name = "verifier"

    def check(self, module: HloModule) -> None:
        from hlo.verifier import verify

        verify(module)


class RoundTripChecker:
    """Print, parse and print again: the two texts must be equal (checks >= 2)."""

    name = "round-trip"

    def check(self, module: HloModule) -> None:
        from hlo.parser import parse
        from hlo.printer import to_text

        text = to_text(module)
        try:
            again = to_text(parse(text))
        except HloParseError as e:
            raise InternalError(f"the printed module does not parse back: {e}") from None
        if again != text:
            raise InternalError(
                "print -> parse -> print is not a fixed point; first difference:\n"
                + _first_difference(text, again)
            )


def _first_difference(a: str, b: str) -> str:
    for i, (x, y) in enumerate(zip(a.splitlines(), b.splitlines(), strict=False)):
        if x != y:
            return f"  line {i + 1}: {x!r}\n  became:  {y!r}"
    return "  (one text is a prefix of the other)"


def fingerprint(module: HloModule) -> str:
    """A hash of the printed module: equal fingerprints mean equal modules."""
    from hlo.printer import to_text

    return hashlib.sha256(to_text(module).encode()).hexdigest()


def checkers_for_level(level: int) -> list[Checker]:
    """The checkers that `TFCOMPILE_CHECKS=level` asks for (the honesty check is separate)."""
    checkers: list[Checker] = []
    if level >= 1:
        checkers.append(VerifierChecker())
    if level >= 2:
        checkers.append(RoundTripChecker())
    return checkers


# --- instruments -------------------------------------------------------------------------------


class Instrument:
    """Hooks around passes, like TVM's pass instruments; every hook defaults to nothing.

    `start`/`end` bracket one pipeline run (nested pipelines bracket their own), `before`/
    `after` bracket each pass that is not filtered out.
    """

    def start(self, pipeline: str, module: HloModule) -> None:
        """A pipeline named `pipeline` begins on `module`."""

    def before(self, p: Pass, module: HloModule) -> None:
        """Pass `p` is about to run."""

    def after(self, p: Pass, module: HloModule, changed: bool) -> None:
        """Pass `p` ran and reported `changed` (already checked for honesty)."""

    def end(self, pipeline: str, module: HloModule) -> None:
        """The pipeline named `pipeline` finished."""


_dump_numbers: dict[tuple[str, str], int] = {}


def next_dump_number(directory: str | os.PathLike[str], module_name: str) -> int:
    """The next NNNN for `module_name` in `directory` (shared by every dumper in the
    process, so pipelines and backend stages that dump one module never overwrite)."""
    key = (str(Path(directory).resolve()), module_name)
    number = _dump_numbers.get(key, 0)
    _dump_numbers[key] = number + 1
    return number


class DumpInstrument(Instrument):
    """Writes `NNNN.<module>.<pipeline>.after_<pass>.hlo` for each changing, matching pass.

    NNNN counts the dumps of one module in one directory (`next_dump_number`), so a
    directory listing reads in pipeline order. The module is also written once at the start
    of the outermost pipeline (`.start.hlo`). With `dot`, a Graphviz `.dot` accompanies each
    `.hlo`; a pass that can explain itself (`Explainable`) gets its explanation written next
    to it (`.explain.txt`).
    """

    def __init__(self, directory: str | os.PathLike[str], passes: str = ".*",
                 dot: bool = False) -> None:
        self.directory = Path(directory)
        self.pattern = re.compile(passes)
        self.dot = dot
        self.written: list[Path] = []
        self._pipelines: list[str] = []

    def start(self, pipeline: str, module: HloModule) -> None:
        if not self._pipelines:
            self._write(module, pipeline, "start", explanation=None)
        self._pipelines.append(pipeline)

    def end(self, pipeline: str, module: HloModule) -> None:
        if self._pipelines:
            self._pipelines.pop()

    def after(self, p: Pass, module: HloModule, changed: bool) -> None:
        if not self.pattern.fullmatch(p.name):
            return
        explanation = p.explain() if isinstance(p, Explainable) else None
        if changed or explanation:
            pipeline = self._pipelines[0] if self._pipelines else "pipeline"
            self._write(module, pipeline, f"after_{p.name}", explanation)

    def _write(self, module: HloModule, pipeline: str, step: str,
               explanation: str | None) -> None:
        from hlo.dump import to_dot, to_text

        self.directory.mkdir(parents=True, exist_ok=True)
        number = next_dump_number(self.directory, module.name)
        stem = f"{number:04d}.{_file_part(module.name)}.{_file_part(pipeline)}.{step}"
        paths = [(self.directory / f"{stem}.hlo", to_text(module))]
        if self.dot:
            paths.append((self.directory / f"{stem}.dot", to_dot(module, title=stem)))
        if explanation:
            paths.append((self.directory / f"{stem}.explain.txt", explanation))
        for path, text in paths:
            path.write_text(text)
            self.written.append(path)


def _file_part(name: str) -> str:
    """A name made safe for a file name (module names may contain any character)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "_"


@dataclass
class PassTiming:
    name: str
    runs: int = 0
    changed: int = 0
    seconds: float = 0.0


class TimingInstrument(Instrument):
    """Accumulates wall time per pass name; `summary()` renders a table, slowest first."""

    def __init__(self) -> None:
        self.timings: dict[str, PassTiming] = {}
        self._started: list[float] = []

    def before(self, p: Pass, module: HloModule) -> None:
        self._started.append(time.perf_counter())

    def after(self, p: Pass, module: HloModule, changed: bool) -> None:
        elapsed = time.perf_counter() - self._started.pop()
        entry = self.timings.setdefault(p.name, PassTiming(p.name))
        entry.runs += 1
        entry.changed += int(changed)
        entry.seconds += elapsed

    def summary(self) -> str:
        rows = sorted(self.timings.values(), key=lambda t: -t.seconds)
        total = sum(t.seconds for t in rows)
        lines = [f"{'pass':<28} {'runs':>5} {'changed':>8} {'ms':>10}"]
        lines += [f"{t.name:<28} {t.runs:>5} {t.changed:>8} {t.seconds * 1e3:>10.2f}"
                  for t in rows]
        lines.append(f"{'total':<28} {'':>5} {'':>8} {total * 1e3:>10.2f}")
        return "\n".join(lines)


class LoggingInstrument(Instrument):
    """One DEBUG line per pass on the `compiler.pipeline` logger: name, changed, time."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or log
        self._started: list[float] = []

    def start(self, pipeline: str, module: HloModule) -> None:
        self.logger.debug("pipeline %s: start on module %s", pipeline, module.name)

    def before(self, p: Pass, module: HloModule) -> None:
        self._started.append(time.perf_counter())

    def after(self, p: Pass, module: HloModule, changed: bool) -> None:
        elapsed = time.perf_counter() - self._started.pop()
        self.logger.debug("pass %s: changed=%s (%.2f ms)", p.name, changed, elapsed * 1e3)

    def end(self, pipeline: str, module: HloModule) -> None:
        self.logger.debug("pipeline %s: done", pipeline)


def instruments_from_flags(options: debug_options.DebugOptions) -> list[Instrument]:
    """The instruments the debug flags ask for (TFCOMPILE_DUMP*, TFCOMPILE_LOG=pipeline)."""
    made: list[Instrument] = []
    if options.dump_dir:
        made.append(DumpInstrument(options.dump_dir, options.dump_passes, options.dump_dot))
    if "pipeline" in options.log:
        made.append(LoggingInstrument())
    return made


def enable_logging(names: Sequence[str], passes: Sequence[Pass] = ()) -> None:
    """Turn on DEBUG logging for TFCOMPILE_LOG names: `pipeline` or a pass name.

    A pass name maps to the logger of the module that defines the pass; other names are
    taken as logger names under `compiler.` (and as given).
    """
    by_name = {p.name: type(p).__module__ for p in iter_passes(passes)}
    for name in names:
        for logger_name in {by_name.get(name, f"compiler.{name}"), f"compiler.passes.{name}"}:
            logger = logging.getLogger(logger_name)
            logger.setLevel(logging.DEBUG)
            if not logger.handlers and not logging.getLogger().handlers:
                handler = logging.StreamHandler()
                handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
                logger.addHandler(handler)


# --- running passes ----------------------------------------------------------------------------


def _requested(name: str, options: debug_options.DebugOptions) -> bool:
    """Whether the pass filters let a pass named `name` run."""
    if name in options.disable_passes:
        return False
    return not options.only_passes or name in options.only_passes


@dataclass
class _Runner:
    """What one pipeline run shares with its nested pipelines and fixed points."""

    pipeline: str
    checkers: list[Checker]
    instruments: list[Instrument]
    options: debug_options.DebugOptions
    honesty: bool
    stack: list[str] = field(default_factory=list)

    def where(self, p: Pass) -> str:
        return "/".join([*self.stack, p.name]) if self.stack else p.name

    def run_pass(self, p: Pass, module: HloModule) -> bool:
        """Run one pass (or nested pipeline / fixed point) with checks and instruments."""
        if isinstance(p, (Pipeline, FixedPoint)):
            return p.run_in(self, module)
        if not _requested(p.name, self.options):
            log.debug("pass %s skipped by the pass filters", p.name)
            return False
        before = fingerprint(module) if self.honesty else ""
        for instrument in self.instruments:
            instrument.before(p, module)
        try:
            changed = p.run(module)
        except TfcompileError as e:
            raise _annotated(e, f"pipeline {self.pipeline}, in pass {self.where(p)}") from e
        except Exception as e:  # a bug in the pass: still name where it happened
            raise InternalError(
                f"pipeline {self.pipeline}, in pass {self.where(p)}: "
                f"{type(e).__name__}: {e}"
            ) from e
        if not isinstance(changed, bool):
            raise InternalError(
                f"pipeline {self.pipeline}: pass {self.where(p)} returned "
                f"{type(changed).__name__} {changed!r} from run(); it must return a bool"
            )
        if self.honesty:
            self.check_honesty(p, before, fingerprint(module), changed)
        for instrument in self.instruments:
            instrument.after(p, module, changed)
        if changed:
            self.run_checkers(module, f"after pass {self.where(p)}")
        return changed

    def check_honesty(self, p: Pass, before: str, after: str, changed: bool) -> None:
        if (before != after) != changed:
            what = "changed the module but returned False" if changed is False else \
                "returned True but left the module unchanged"
            raise InternalError(f"pipeline {self.pipeline}: pass {self.where(p)} {what}")

    def run_checkers(self, module: HloModule, when: str) -> None:
        for checker in self.checkers:
            try:
                checker.check(module)
            except TfcompileError as e:
                raise _annotated(
                    e, f"pipeline {self.pipeline}, {checker.name} failed {when}"
                ) from e


def _annotated(error: TfcompileError, context: str) -> TfcompileError:
    """The same kind of error with `context: ` in front of its message."""
    message = f"{context}: {error}"
    try:
        made = type(error)(message)
    except TypeError:
        made = InternalError(message)
    if isinstance(error, HloParseError) and isinstance(made, HloParseError):
        made.line, made.column, made.text = error.line, error.column, error.text
    return made


class FixedPoint:
    """Runs a pass until it reports no change, like XLA's HloPassFix.

    Reaching `limit` iterations means the pass oscillates or keeps growing the module: it
    warns (RuntimeWarning), or raises InternalError when checks are at level 2 or higher.
    The fixed point has its inner pass's name, so pass filters and dumps treat them alike.
    """

    def __init__(self, inner: Pass, limit: int = 25) -> None:
        if limit < 1:
            raise InternalError(f"FixedPoint limit must be at least 1, got {limit}")
        self.inner = inner
        self.limit = limit
        self.name = inner.name

    def run(self, module: HloModule) -> bool:
        """Run standalone: verifier and instruments from the debug flags, as a Pipeline."""
        return Pipeline(f"fix({self.name})", [self]).run(module)

    def run_in(self, runner: _Runner, module: HloModule) -> bool:
        changed = False
        for _ in range(self.limit):
            if not runner.run_pass(self.inner, module):
                return changed
            changed = True
        message = (f"pipeline {runner.pipeline}: {self.name} still changed the module after "
                   f"{self.limit} iterations (oscillating rewrite?)")
        if runner.options.checks >= 2:
            raise InternalError(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        return changed


class Pipeline:
    """An ordered list of passes run with checkers and instruments.

    Args:
        name: used in dump file names and error messages.
        passes: passes, nested pipelines or fixed points, in order.
        checkers: extra invariant checks, after those the checks level implies.
        instruments: extra instruments, after those the debug flags imply.
    """

    def __init__(self, name: str, passes: Sequence[Pass], *,
                 checkers: Sequence[Checker] = (),
                 instruments: Sequence[Instrument] = ()) -> None:
        self.name = name
        self.passes = list(passes)
        self.checkers = list(checkers)
        self.instruments = list(instruments)
        for p in self.passes:
            if not isinstance(getattr(p, "name", None), str) or not callable(
                    getattr(p, "run", None)):
                raise InternalError(f"pipeline {name}: {p!r} is not a pass (name and run)")

    def run(self, module: HloModule) -> bool:
        """Run every pass in order; True iff any changed the module.

        Raises:
            TfcompileError: from a pass or a checker, with the pipeline and pass named.
        """
        options = debug_options.get()
        if options.log:
            enable_logging(options.log, self.passes)
        runner = _Runner(
            pipeline=self.name,
            checkers=[*checkers_for_level(options.checks), *self.checkers],
            instruments=[*instruments_from_flags(options), *self.instruments],
            honesty=options.checks >= 2,
            options=options,
        )
        runner.run_checkers(module, f"at the start of pipeline {self.name}")
        return self.run_in(runner, module, outermost=True)

    def run_in(self, runner: _Runner, module: HloModule, outermost: bool = False) -> bool:
        """Run as part of an enclosing pipeline, sharing its checkers and instruments."""
        extra = [] if outermost else self.instruments
        runner.instruments.extend(extra)
        if not outermost:
            runner.stack.append(self.name)
        for instrument in runner.instruments:
            instrument.start(self.name, module)
        try:
            changed = False
            for p in self.passes:
                changed |= runner.run_pass(p, module)
        finally:
            for instrument in runner.instruments:
                instrument.end(self.name, module)
            if not outermost:
                runner.stack.pop()
            del runner.instruments[len(runner.instruments) - len(extra):]
        return changed

    def explain(self) -> str:
        """What the explainable passes (fusion, buffer assignment) decided in the last run,
        one section per pass; empty if none has anything to say."""
        sections = []
        for p in iter_passes(self.passes):
            text = p.explain() if isinstance(p, Explainable) else ""
            if text:
                sections.append(f"== {p.name} ==\n{text.rstrip()}\n")
        return "\n".join(sections)

    def __iter__(self) -> Iterator[Pass]:
        return iter(self.passes)

    def __repr__(self) -> str:
        return f"<Pipeline {self.name}: {', '.join(p.name for p in self.passes)}>"


def iter_passes(passes: Sequence[Pass] | Pipeline) -> Iterator[Pass]:
    """Leaf passes in order, looking inside nested pipelines and fixed points."""
    for p in passes:
        if isinstance(p, Pipeline):
            yield from iter_passes(p.passes)
        elif isinstance(p, FixedPoint):
            yield from iter_passes([p.inner])
        else:
            yield p
