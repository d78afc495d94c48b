"""Markdown tables: printed to the terminal and written to bench/results.md on each run.

One table format serves both: pipe tables with padded columns read well as plain text and
render as tables on a forge. This file formats; it measures nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Table:
    """A titled table with notes printed under it."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        """The table as a markdown section: a heading, the pipe table, the notes."""
        widths = [len(h) for h in self.headers]
        for row in self.rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))
        lines = [f"### {self.title}", ""]
        lines.append(_row(self.headers, widths))
        # Right-align every column but the first: they hold numbers.
        rule = ["-" * widths[0]] + ["-" * (w - 1) + ":" for w in widths[1:]]
        lines.append(_row(rule, widths))
        for row in self.rows:
            lines.append(_row(row, widths))
        if not self.rows:
            lines.append("(no implementation could be measured)")
        if self.notes:
            lines.append("")
            lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines) + "\n"


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    padded = [cells[0].ljust(widths[0])]
    padded += [cell.rjust(w) for cell, w in zip(cells[1:], widths[1:], strict=True)]
    return "| " + " | ".join(padded) + " |"


def format_seconds(seconds: float) -> str:
    """A duration with a unit that keeps three or four significant digits."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_rate(value: float) -> str:
    """A rate in G-units per second with sensible precision."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.1f}"
    return f"{value:.3f}"


def write_results(path: Path, header: Sequence[str], tables: Sequence[Table]) -> None:
    """Write the run's header lines and tables to `path` as one markdown document."""
    parts = ["# Benchmark results", "", *header, ""]
    parts.extend(t.to_markdown() for t in tables)
    path.write_text("\n".join(parts))


README_BEGIN = "<!-- bench:begin (written by `python -m bench --readme`) -->"
README_END = "<!-- bench:end -->"


def update_readme(path: Path, header: Sequence[str], summary: Table) -> None:
    """Replace the block between the bench markers of `path` by the run's header and summary.

    The markers must already be in the file (once each, in order), so that a run never
    rewrites anything but its own section.
    """
    text = path.read_text()
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise ValueError(f"{path} has no '{README_BEGIN}' ... '{README_END}' block")
    block = "\n".join([README_BEGIN, "", *header, "", summary.to_markdown(), README_END])
    path.write_text(text[:begin] + block + text[end + len(README_END):])
