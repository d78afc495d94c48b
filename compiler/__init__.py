"""Target-independent compilation and the public API.

Public surface: `compile` (HLO -> Executable), `export_library` (HLO -> .o/.h/.so), `jit`,
`grad`, `value_and_grad`, and the submodules `tf` (GraphDef import) and `numpy`.
"""

from typing import Any

from compiler.api import compile
from compiler.jit import jit  # eager: a lazy name would be shadowed by the submodule

# Public names defined in modules that are loaded only when first asked for: they pull in
# the C toolchain helpers, the tracer or autodiff, which plain `compile` users never need.
_LAZY = {
    "export_library": "compiler.export",
    "grad_module": "compiler.autodiff",
    "grad": "compiler.autodiff",
    "value_and_grad": "compiler.autodiff",
}


# Submodules that are part of the public surface, also loaded on first use.
_SUBMODULES = ("tf", "numpy", "lax")


def __getattr__(name: str) -> Any:
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f"compiler.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'compiler' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = ["compile", "export_library", "grad", "grad_module", "jit", "value_and_grad"]
