"""Frontends: turn foreign graph formats into HLO modules.

Public surface: `import_graph` / `check_graph` for TensorFlow GraphDefs with tfcompile
configs, `import_graph_def` for in-memory protobuf messages, and `TfSignature` (with
`TfTensor`, `TfVariable`), the argument/result layout stored on an imported module as
`module.attrs["tf_signature"]`.
"""

from compiler.frontends.tf_import import (
    TfSignature,
    TfTensor,
    TfVariable,
    check_graph,
    import_graph,
    import_graph_def,
)

__all__ = [
    "TfSignature",
    "TfTensor",
    "TfVariable",
    "check_graph",
    "import_graph",
    "import_graph_def",
]
