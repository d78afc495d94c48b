"""`compiler.tf`: import TensorFlow GraphDefs with tfcompile configs.

    m = compiler.tf.import_graph("g.pb", "g.config.pbtxt")   # HloModule
    m.attrs["tf_signature"]                                  # feeds, fetches, variables
    compiler.tf.check_graph("g.pb", "g.config.pbtxt")        # [(node, op)] unsupported

The implementation lives in `compiler/frontends/`.
"""

from compiler.frontends import (
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
