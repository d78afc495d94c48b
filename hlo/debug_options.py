"""The one place environment flags are read: a dataclass loaded once, overridable in tests.

Flags (documented in docs/flags.md):
  TFCOMPILE_DUMP=DIR            dump modules after each changing pass and each backend stage
  TFCOMPILE_DUMP_PASSES=REGEX   restrict HLO dumps to matching pass names
  TFCOMPILE_DUMP_DOT=1          also write Graphviz .dot files
  TFCOMPILE_CHECKS=0/1/2        1 = verify after changing passes; 2 = also honesty/round trip
  TFCOMPILE_DISABLE_PASSES=a,b  pass names to skip
  TFCOMPILE_ONLY_PASSES=a,b     run only these passes
  TFCOMPILE_LOG=pipeline,...    enable DEBUG logging for these loggers
  TFCOMPILE_CACHE_DIR=DIR       on-disk compile cache (default ~/.cache/tfcompile-py; "" = off)
  TFCOMPILE_NATIVE_CALLS=0      call executables through ctypes only (no native fast path)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass, field


def _csv(value: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in value.split(",") if s.strip())


@dataclass(frozen=True)
class DebugOptions:
    dump_dir: str = ""
    dump_passes: str = ".*"
    dump_dot: bool = False
    checks: int = 0
    disable_passes: tuple[str, ...] = ()
    only_passes: tuple[str, ...] = ()
    log: tuple[str, ...] = ()
    native_calls: bool = True
    cache_dir: str = field(
        default_factory=lambda: os.path.join(os.path.expanduser("~"), ".cache", "tfcompile-py")
    )

    @staticmethod
    def from_env(env: dict[str, str] | None = None) -> DebugOptions:
        e = dict(os.environ if env is None else env)
        default = DebugOptions()
        return DebugOptions(
            dump_dir=e.get("TFCOMPILE_DUMP", ""),
            dump_passes=e.get("TFCOMPILE_DUMP_PASSES", ".*"),
            dump_dot=e.get("TFCOMPILE_DUMP_DOT", "") not in ("", "0"),
            checks=int(e.get("TFCOMPILE_CHECKS", "0") or 0),
            disable_passes=_csv(e.get("TFCOMPILE_DISABLE_PASSES", "")),
            only_passes=_csv(e.get("TFCOMPILE_ONLY_PASSES", "")),
            log=_csv(e.get("TFCOMPILE_LOG", "")),
            native_calls=e.get("TFCOMPILE_NATIVE_CALLS", "1") not in ("", "0"),
            cache_dir=e.get("TFCOMPILE_CACHE_DIR", default.cache_dir),
        )


_current = DebugOptions.from_env()


def get() -> DebugOptions:
    """The flags in force."""
    return _current


@contextlib.contextmanager
def override(**changes: object) -> Iterator[DebugOptions]:
    """Temporarily change flags (tests): `with override(checks=2): ...`."""
    global _current
    saved = _current
    _current = dataclasses.replace(saved, **changes)  # type: ignore[arg-type]
    try:
        yield _current
    finally:
        _current = saved
