"""Fuzzing the parser with seeded random mutations of real HLO text.

Whatever the input, `parse` (and then the verifier, when it accepts the parse) may only
raise TfcompileError subclasses. A mutated module that parses and verifies must also print,
and its printed text must parse back and print identically.
"""

from __future__ import annotations

import importlib
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from hlo.errors import TfcompileError
from hlo.parser import parse
from hlo.printer import to_text
from tests.conftest import CORPUS

GOLDEN = Path(__file__).parent / "golden"
# Small modules keep 5,000 parses well inside the time budget; they still cover every
# construct of the format between them.
SOURCES = [
    p.read_text()
    for p in sorted((CORPUS / "hlo").glob("*.hlo")) + sorted(GOLDEN.glob("*.hlo"))
    if p.stat().st_size < 3000
]
CHUNKS = 10
PER_CHUNK = 500

_TOKEN = re.compile(r"[A-Za-z0-9_.%-]+|\S")
_NUMBER = re.compile(r"-?[0-9]+")
_NASTY = list("{}()[],=%:\"/*x_-.<>\\\n ") + ["/*", "*/", "//", "{...}", "nan(0x", "ROOT "]
_NUMBERS = ["0", "1", "-1", "2", "7", "65536", "-2147483649", "99999999999999999999999",
            "1" * 60, "1e400", "3.5"]


def _spans(text: str, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    return [m.span() for m in pattern.finditer(text)]


def _delete_char(rng: random.Random, text: str) -> str:
    i = rng.randrange(len(text))
    return text[:i] + text[i + 1:]


def _duplicate_char(rng: random.Random, text: str) -> str:
    i = rng.randrange(len(text))
    return text[:i] + text[i] + text[i:]


def _swap_chars(rng: random.Random, text: str) -> str:
    i = rng.randrange(len(text) - 1)
    return text[:i] + text[i + 1] + text[i] + text[i + 2:]


def _insert_nasty(rng: random.Random, text: str) -> str:
    i = rng.randrange(len(text) + 1)
    return text[:i] + rng.choice(_NASTY) + text[i:]


def _token_edit(rng: random.Random, text: str) -> str:
    spans = _spans(text, _TOKEN)
    a, b = rng.choice(spans)
    choice = rng.randrange(3)
    if choice == 0:
        return text[:a] + text[b:]
    if choice == 1:
        return text[:b] + " " + text[a:b] + text[b:]
    c, d = rng.choice(spans)
    if c < a:
        (a, b), (c, d) = (c, d), (a, b)
    if c < b:
        return text
    return text[:a] + text[c:d] + text[b:c] + text[a:b] + text[d:]


def _line_edit(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    choice = rng.randrange(3)
    if choice == 0:
        del lines[i]
    elif choice == 1:
        lines.insert(i, lines[j])
    else:
        lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def _change_number(rng: random.Random, text: str) -> str:
    spans = _spans(text, _NUMBER)
    if not spans:
        return text
    a, b = rng.choice(spans)
    return text[:a] + rng.choice(_NUMBERS) + text[b:]


def _truncate(rng: random.Random, text: str) -> str:
    return text[: rng.randrange(len(text))]


MUTATIONS: list[Callable[[random.Random, str], str]] = [
    _delete_char, _duplicate_char, _swap_chars, _insert_nasty, _token_edit, _token_edit,
    _line_edit, _line_edit, _change_number, _change_number, _change_number, _truncate,
]


def _verifier() -> Callable[..., None] | None:
    try:
        return importlib.import_module("hlo.verifier").verify  # type: ignore[no-any-return]
    except ImportError:
        return None


def _check(text: str, verify: Callable[..., None] | None) -> str:
    """Parse, verify, print and re-parse; returns how far the text got."""
    try:
        module = parse(text)
    except TfcompileError:
        return "rejected by parser"
    if verify is None:
        return "parsed"
    try:
        verify(module)
    except TfcompileError:
        return "rejected by verifier"
    printed = to_text(module)
    assert to_text(parse(printed)) == printed
    return "accepted"


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_mutated_text_raises_only_tfcompile_errors(chunk: int) -> None:
    rng = random.Random(20240 + chunk)
    verify = _verifier()
    outcomes: dict[str, int] = {}
    for _ in range(PER_CHUNK):
        text = rng.choice(SOURCES)
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            if len(text) > 2:
                text = rng.choice(MUTATIONS)(rng, text)
        try:
            outcome = _check(text, verify)
        except Exception as e:  # noqa: BLE001 (the point is to report any other error)
            pytest.fail(f"{type(e).__name__}: {e}\n--- input ---\n{text}")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    # The mutations must exercise both the error paths and the accepting paths.
    assert outcomes.get("rejected by parser", 0) > PER_CHUNK // 10, outcomes
    assert outcomes.get("accepted", 0) + outcomes.get("parsed", 0) > PER_CHUNK // 20, outcomes


def test_enough_sources() -> None:
    assert len(SOURCES) >= 20
