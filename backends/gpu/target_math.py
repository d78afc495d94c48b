"""TargetMath for NVPTX: transcendental functions from NVIDIA's libdevice.

`GpuMath` implements the protocol of `backends.target_math` (`unary`, `binary`) by calling
libdevice's `__nv_*` functions (`__nv_expf`, `__nv_exp`, ...); `backends.gpu.ptx` links
the bitcode and drops what is not called. Square root is LLVM's intrinsic, which NVPTX
lowers to the correctly rounded `sqrt.rn`. libdevice's accuracy (at most 2 ulp in f32 for
exp/log/sin/cos/tanh/erf/pow, <= 1 ulp in f64 for most) is what the tests allow for.

Kernels written for the CPU call a few LLVM math intrinsics (`llvm.log.f32`, `llvm.sin`,
...) that NVPTX cannot select; `legalize_math_calls` redirects those calls to libdevice.
"""

from __future__ import annotations

from llvmlite import ir

from backends.llvm.irutil import F32, F64, declare_function
from backends.target_math import (
    BINARY_FUNCTIONS,
    MATH_INTRINSICS,
    UNARY_FUNCTIONS,
    declare_math_function,
)

# name -> (f32 libdevice symbol, f64 libdevice symbol)
_LIBDEVICE: dict[str, tuple[str, str]] = {
    "exp": ("__nv_expf", "__nv_exp"),
    "expm1": ("__nv_expm1f", "__nv_expm1"),
    "log": ("__nv_logf", "__nv_log"),
    "log1p": ("__nv_log1pf", "__nv_log1p"),
    "sin": ("__nv_sinf", "__nv_sin"),
    "cos": ("__nv_cosf", "__nv_cos"),
    "tan": ("__nv_tanf", "__nv_tan"),
    "tanh": ("__nv_tanhf", "__nv_tanh"),
    "erf": ("__nv_erff", "__nv_erf"),
    "cbrt": ("__nv_cbrtf", "__nv_cbrt"),
    "pow": ("__nv_powf", "__nv_pow"),
    "atan2": ("__nv_atan2f", "__nv_atan2"),
}

assert set(_LIBDEVICE) | set(MATH_INTRINSICS) == set(UNARY_FUNCTIONS) | set(BINARY_FUNCTIONS)

# LLVM math intrinsics with no NVPTX instruction selection -> the libdevice base name.
_UNSELECTABLE = {
    "exp": "exp", "exp2": "exp2", "exp10": "exp10", "log": "log", "log2": "log2",
    "log10": "log10", "sin": "sin", "cos": "cos", "tan": "tan", "pow": "pow",
}


class GpuMath:
    """TargetMath for NVIDIA GPUs: libdevice calls and NVPTX-native intrinsics."""

    def unary(self, b: ir.IRBuilder, name: str, x: ir.Value) -> ir.Value:
        return self._call(b, name, [x])

    def binary(self, b: ir.IRBuilder, name: str, x: ir.Value, y: ir.Value) -> ir.Value:
        return self._call(b, name, [x, y])

    def _call(self, b: ir.IRBuilder, name: str, args: list[ir.Value]) -> ir.Value:
        fn = declare_math_function(b.module, "GpuMath", name, args[0].type, len(args),
                                   _LIBDEVICE)
        return b.call(fn, args)


def _libdevice_symbol(base: str, ty: ir.Type) -> str:
    return f"__nv_{base}f" if ty == F32 else f"__nv_{base}"


def legalize_math_calls(module: ir.Module) -> int:
    """Redirect calls of LLVM math intrinsics NVPTX cannot select to libdevice.

    Returns the number of calls rewritten.
    """
    replaced = 0
    for fn in list(module.functions):
        for block in fn.blocks:
            for instr in block.instructions:
                if not isinstance(instr, ir.CallInstr):
                    continue
                callee = instr.callee
                name = getattr(callee, "name", "")
                parts = name.split(".")
                if len(parts) != 3 or parts[0] != "llvm" or parts[1] not in _UNSELECTABLE:
                    continue
                ty = callee.function_type.return_type
                if ty not in (F32, F64):
                    continue
                symbol = _libdevice_symbol(_UNSELECTABLE[parts[1]], ty)
                target = declare_function(module, symbol, ty, list(callee.function_type.args))
                instr.replace_callee(target)
                replaced += 1
    return replaced
