"""hlo.dump: the text rendering is the canonical printer's; the dot rendering is well formed."""

from __future__ import annotations

import re

from hlo.dump import to_dot, to_text
from hlo.parser import parse
from hlo.printer import to_text as printer_text

TEXT = """
HloModule m
fused {
  a = f32[4] parameter(0)
  ROOT b = f32[4] negate(a)
}
ENTRY main {
  p = f32[4] parameter(0)
  q = f32[4] parameter(1)
  s = f32[4] add(p, q)
  ROOT f = f32[4] fusion(s), kind=kLoop, calls=fused, metadata={op_name="x\\"y"}
}
"""


def test_text_is_the_printers() -> None:
    module = parse(TEXT)
    assert to_text(module) == printer_text(module)


def test_dot_has_clusters_nodes_and_edges() -> None:
    dot = to_dot(parse(TEXT), title='a "quoted" title')
    assert dot.startswith("digraph hlo {") and dot.rstrip().endswith("}")
    assert dot.count("subgraph cluster_") == 2
    assert 'label="a \\"quoted\\" title"' in dot
    # one node per instruction, numbered operand edges, a dashed edge to the fused root
    assert len(re.findall(r"^\s+n\d+_\d+ \[label=", dot, re.M)) == 6
    assert re.search(r'n1_0 -> n1_2 \[label="0"\];', dot)
    assert re.search(r'n1_1 -> n1_2 \[label="1"\];', dot)
    assert re.search(r"n0_1 -> n1_3 \[style=dashed", dot)
    assert "fusion kLoop" in dot and "ROOT f" in dot
    assert dot.count("{") == dot.count("}")


def test_dot_survives_a_broken_module() -> None:
    module = parse(TEXT)
    entry = module.entry_computation
    stray = module.computation("fused").root
    assert stray is not None
    entry.root.operands.append(stray)  # type: ignore[union-attr]  # deliberately broken
    assert "digraph" in to_dot(module)
