"""Running compiled code: loading object code in-process, aligned buffers, argument checks.

Public surface: `Executable`, `load`, `aligned_empty`, `check_arguments`.
"""

from runtime.buffers import aligned_empty, aligned_zeros
from runtime.checks import check_arguments
from runtime.loader import Executable, load

__all__ = ["Executable", "aligned_empty", "aligned_zeros", "check_arguments", "load"]
