"""TargetMath: how a backend computes transcendental functions on f32/f64 register values.

The elemental emitter never names a libm function or an intrinsic for a transcendental
function; it asks a TargetMath. The CPU implementation (`CpuMath`, here) inlines the
vectorisable f32 approximations of `backends.cpu_math` for every function of the protocol,
uses LLVM's intrinsic for sqrt (one instruction), and calls libm (`exp`, `sin`, ...) for
f64, where a generated library then depends on libm and loops over those calls stay
scalar. The GPU implementation is `backends.gpu.target_math.GpuMath` (libdevice).
Arguments are f32 or f64 values; f16/bf16 are widened to f32 by the emitter before calling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from llvmlite import ir

from backends.cpu_math import INLINE_F32_BINARY, INLINE_F32_UNARY
from backends.llvm.irutil import F32, F64, declare_function
from hlo.errors import InternalError

# Functions of one argument that every TargetMath provides.
UNARY_FUNCTIONS = (
    "exp", "expm1", "log", "log1p", "sin", "cos", "tan", "tanh", "erf", "cbrt", "sqrt",
)
# Functions of two arguments.
BINARY_FUNCTIONS = ("pow", "atan2")


class TargetMath(Protocol):
    """Transcendental functions for one target; each takes and returns f32 or f64 values."""

    def unary(self, b: ir.IRBuilder, name: str, x: ir.Value) -> ir.Value:
        """`name(x)` for a name in UNARY_FUNCTIONS."""

    def binary(self, b: ir.IRBuilder, name: str, x: ir.Value, y: ir.Value) -> ir.Value:
        """`name(x, y)` for a name in BINARY_FUNCTIONS."""


# name -> (f32 libm symbol, f64 libm symbol)
_LIBM: dict[str, tuple[str, str]] = {
    "exp": ("expf", "exp"),
    "expm1": ("expm1f", "expm1"),
    "log": ("logf", "log"),
    "log1p": ("log1pf", "log1p"),
    "sin": ("sinf", "sin"),
    "cos": ("cosf", "cos"),
    "tan": ("tanf", "tan"),
    "tanh": ("tanhf", "tanh"),
    "erf": ("erff", "erf"),
    "cbrt": ("cbrtf", "cbrt"),
    "pow": ("powf", "pow"),
    "atan2": ("atan2f", "atan2"),
}

# Functions LLVM lowers to instructions on every target we emit for (CPUs and NVPTX).
MATH_INTRINSICS = {"sqrt": "llvm.sqrt"}


def declare_math_function(
    module: ir.Module, owner: str, name: str, ty: ir.Type, arity: int,
    symbols: Mapping[str, tuple[str, str]],
) -> ir.Function:
    """The declaration of `name` on f32 or f64 `ty`: an LLVM intrinsic of MATH_INTRINSICS,
    else the target's library symbol from `symbols` (name -> (f32 symbol, f64 symbol)).

    Raises:
        InternalError: `ty` is not f32/f64, or `owner` (the TargetMath) has no `name`.
    """
    if ty not in (F32, F64):
        raise InternalError(f"{owner}.{name} on {ty}; widen f16/bf16 first")
    if name in MATH_INTRINSICS:
        symbol = f"{MATH_INTRINSICS[name]}.{'f32' if ty == F32 else 'f64'}"
    elif name in symbols:
        symbol = symbols[name][0 if ty == F32 else 1]
    else:
        raise InternalError(f"{owner} has no function {name}")
    return declare_function(module, symbol, ty, [ty] * arity)


class CpuMath:
    """TargetMath for CPUs: inline approximations for f32 (backends.cpu_math), LLVM
    intrinsics where they lower inline, libm otherwise (f64).

    Args:
        inline: use the inline approximations (False: libm for everything but sqrt).
    """

    def __init__(self, inline: bool = True) -> None:
        self.inline = inline

    def unary(self, b: ir.IRBuilder, name: str, x: ir.Value) -> ir.Value:
        if self.inline and x.type == F32:
            approx = INLINE_F32_UNARY.get(name)
            if approx is not None:
                return approx(b, x)
        return self._call(b, name, [x])

    def binary(self, b: ir.IRBuilder, name: str, x: ir.Value, y: ir.Value) -> ir.Value:
        if self.inline and x.type == F32:
            approx = INLINE_F32_BINARY.get(name)
            if approx is not None:
                return approx(b, x, y)
        return self._call(b, name, [x, y])

    def _call(self, b: ir.IRBuilder, name: str, args: list[ir.Value]) -> ir.Value:
        fn = declare_math_function(b.module, "TargetMath", name, args[0].type, len(args), _LIBM)
        if not fn.name.startswith("llvm."):
            # LLVM knows the libm names and their (errno-only) effects; nounwind is ours.
            fn.attributes.add("nounwind")
        return b.call(fn, args)
