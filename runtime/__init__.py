"""Running compiled code: loading object code in-process, native fast calls, aligned buffers,
argument checks.

Public surface: `Executable`, `load`, `NativeCall`, `Returns`, `aligned_empty`,
`aligned_zeros`, `check_arguments`.
"""

from runtime.buffers import aligned_empty, aligned_zeros
from runtime.checks import check_arguments
from runtime.fastcall import NativeCall, Returns
from runtime.loader import Executable, load

__all__ = ["Executable", "NativeCall", "Returns", "aligned_empty", "aligned_zeros",
           "check_arguments", "load"]
