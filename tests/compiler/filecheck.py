"""A small FileCheck for pass tests: CHECK, CHECK-NEXT, CHECK-SAME, CHECK-NOT, captures.

Test inputs are HLO text with `// CHECK...:` lines interleaved; `split` separates them.
Patterns are literal text except `{{regex}}` and `[[NAME:regex]]` (capture) / `[[NAME]]`
(use of an earlier capture); a capture starts at a token boundary on a non-space. Runs of
spaces match any horizontal whitespace. Matching follows LLVM FileCheck: CHECK finds the
pattern at or after the end of the previous match; CHECK-NEXT on the line after it;
CHECK-SAME on the same line, further right; CHECK-NOT asserts that the pattern is absent
between the neighbouring positive matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DIRECTIVE = re.compile(r"^\s*//\s*(CHECK(?:-NEXT|-SAME|-NOT)?):(.*)$")
_TOKEN = re.compile(r"\{\{(.*?)\}\}|\[\[([A-Za-z_][A-Za-z0-9_]*)(?::(.*?))?\]\]")


@dataclass
class Directive:
    kind: str
    pattern: str
    line: int  # in the test text, for messages


def split(text: str) -> tuple[str, list[Directive]]:
    """The HLO text without comment lines, and the CHECK directives in order."""
    body: list[str] = []
    checks: list[Directive] = []
    for number, line in enumerate(text.splitlines(), 1):
        m = _DIRECTIVE.match(line)
        if m:
            checks.append(Directive(m.group(1), m.group(2).strip(), number))
        elif not line.lstrip().startswith("//"):
            body.append(line)
    return "\n".join(body) + "\n", checks


def _regex(pattern: str, captures: dict[str, str]) -> tuple[str, list[str]]:
    """The regex for a pattern and the names it defines (in group order)."""
    out: list[str] = []
    defined: list[str] = []
    pos = 0
    for m in _TOKEN.finditer(pattern):
        out.append(_literal(pattern[pos:m.start()]))
        raw, name, definition = m.groups()
        if raw is not None:
            out.append(f"(?:{raw})")
        elif definition is not None:
            # A capture starts at a token boundary, never on whitespace: `[[X:.*]] =`
            # captures the name, not the indentation before it.
            out.append(rf"(?<![^\s(,{{=])(?=\S)({definition})")
            defined.append(name)
        else:
            if name not in captures:
                raise AssertionError(f"FileCheck: [[{name}]] is used before it is defined")
            out.append(re.escape(captures[name]))
        pos = m.end()
    out.append(_literal(pattern[pos:]))
    return "".join(out), defined


def _literal(text: str) -> str:
    return r"[ \t]+".join(re.escape(part) for part in re.split(r"[ \t]+", text))


def check(output: str, directives: list[Directive]) -> None:
    """Match `directives` against `output`; AssertionError names the failing directive."""
    captures: dict[str, str] = {}
    pos = 0  # where the next search starts
    last_end = 0
    pending_not: list[Directive] = []

    def fail(d: Directive, what: str) -> None:
        raise AssertionError(f"FileCheck (test line {d.line}): {d.kind}: {d.pattern!r} "
                             f"{what}\n--- output ---\n{output}")

    def find(d: Directive) -> re.Match[str] | None:
        regex, names = _regex(d.pattern, captures)
        if d.kind == "CHECK-SAME":
            line_end = output.find("\n", last_end)
            line_end = len(output) if line_end < 0 else line_end
            m = re.compile(regex).search(output, last_end, line_end)
        elif d.kind == "CHECK-NEXT":
            start = output.find("\n", last_end) + 1
            if start == 0:
                return None
            end = output.find("\n", start)
            m = re.compile(regex).search(output, start, len(output) if end < 0 else end)
        else:
            m = re.compile(regex).search(output, pos)
        if m is not None:
            for i, name in enumerate(names, 1):
                captures[name] = m.group(i)
        return m

    for d in directives:
        if d.kind == "CHECK-NOT":
            pending_not.append(d)
            continue
        m = find(d)
        if m is None:
            fail(d, "does not match" + (" on the expected line" if d.kind != "CHECK" else ""))
        assert m is not None
        for n in pending_not:
            regex, _ = _regex(n.pattern, captures)
            if re.compile(regex).search(output, pos, m.start()):
                fail(n, f"matched before {d.pattern!r}")
        pending_not.clear()
        last_end = m.end()
        pos = m.end()
    for n in pending_not:
        regex, _ = _regex(n.pattern, captures)
        if re.compile(regex).search(output, pos):
            fail(n, "matched after the last positive match")


def check_pass(p, text: str, changed: bool = True, idempotent: bool = True) -> str:
    """Parse the HLO in `text`, run pass `p`, verify, print and match the CHECK lines.

    Asserts that `run` returned `changed`, and, when `idempotent`, that a second run
    returns False. Returns the printed module.
    """
    from hlo.parser import parse
    from hlo.printer import to_text
    from hlo.verifier import verify

    source, directives = split(text)
    module = parse(source)
    verify(module)
    got = p.run(module)
    verify(module)
    output = to_text(module)
    assert got is changed, f"{p.name}.run returned {got}, expected {changed}\n{output}"
    check(output, directives)
    if idempotent:
        again = p.run(module)
        assert again is False, f"{p.name} is not idempotent:\n{to_text(module)}"
    return output
