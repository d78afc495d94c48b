"""Target-independent compilation and the public API: `compile` (and, from their own
modules, `export_library`, tracing and autodiff).

Public surface: `compile`, `export_library`.
"""

from typing import Any

from compiler.api import compile


def __getattr__(name: str) -> Any:
    # export_library pulls in the C toolchain helpers; load it only when asked for.
    if name == "export_library":
        from compiler.export import export_library

        return export_library
    raise AttributeError(f"module 'compiler' has no attribute {name!r}")


__all__ = ["compile", "export_library"]
