"""The bench's README writer replaces only its own marked block."""

from pathlib import Path

import pytest

from bench.report import README_BEGIN, README_END, Table, update_readme


def _summary(value: str) -> Table:
    return Table("summary", ["benchmark", "tfcompile"], [["mlp", value]])


def test_update_readme_replaces_only_the_marked_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n\n{README_BEGIN}\nold table\n{README_END}\n\nafter\n")
    update_readme(readme, ["- commit: abc"], _summary("22 us"))
    update_readme(readme, ["- commit: def"], _summary("9 us"))
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n\n")
    assert text.endswith(f"{README_END}\n\nafter\n")
    assert "old table" not in text and "22 us" not in text and "abc" not in text
    assert "| mlp       |      9 us |" in text and "- commit: def" in text
    assert text.count(README_BEGIN) == 1 and text.count(README_END) == 1


def test_update_readme_without_markers_is_an_error(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n")
    with pytest.raises(ValueError, match="bench:begin"):
        update_readme(readme, [], _summary("1 us"))
    assert readme.read_text() == "# Title\n"
