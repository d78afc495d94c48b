"""The one error hierarchy shared by every layer of tfcompile-py.

Every failure a user can provoke is a `TfcompileError`; internal invariant failures are
`InternalError`. Nothing else is raised on purpose.
"""

from __future__ import annotations


class TfcompileError(Exception):
    """Base class of every user-facing error."""


class HloParseError(TfcompileError):
    """Malformed HLO text; carries the 1-based line and column and the offending text."""

    def __init__(self, message: str, line: int = 0, column: int = 0, text: str = "") -> None:
        self.line = line
        self.column = column
        self.text = text
        where = f"line {line}, column {column}: " if line else ""
        snippet = f"\n    {text}" if text else ""
        super().__init__(f"{where}{message}{snippet}")


class ShapeError(TfcompileError):
    """An operation's operands or attributes violate its shape rule."""


class HloVerificationError(TfcompileError):
    """A module breaks a structural invariant of the IR."""


class UnsupportedOpError(TfcompileError):
    """An operation that this component cannot handle; names the op and where it came from."""


class EvaluationError(TfcompileError):
    """The reference evaluator cannot run a module with the given inputs."""


class ArgumentError(TfcompileError):
    """Wrong arguments at run time: names the argument, what was expected and what was given."""


class CompileError(TfcompileError):
    """Code generation or an external tool (cc, ptxas) failed."""


class ImportGraphError(TfcompileError):
    """A TensorFlow GraphDef or tfcompile config cannot be imported."""


class InternalError(TfcompileError):
    """A broken internal invariant: a bug in tfcompile-py, never the user's fault."""
