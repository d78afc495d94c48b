"""Inline f32 approximations of the TargetMath functions for CPUs, one table per arity.

`backends.target_math.CpuMath` looks names up here. Every entry emits straight-line code on
one f32 value (no calls, no branches, no table lookups), so loops over it vectorise, and is
within 4 ulp of the correctly rounded result over the whole f32 range, special values
included (tests/backends/test_target_math.py sweeps the range against float64 numpy).
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from backends.cpu_math.erf import erf_f32
from backends.cpu_math.exp_log import exp_f32, expm1_f32, log1p_f32, log_f32, tanh_f32
from backends.cpu_math.power import cbrt_f32, pow_f32
from backends.cpu_math.trig import atan2_f32, cos_f32, sin_f32, tan_f32

UnaryEmitter = Callable[[ir.IRBuilder, ir.Value], ir.Value]
BinaryEmitter = Callable[[ir.IRBuilder, ir.Value, ir.Value], ir.Value]

INLINE_F32_UNARY: dict[str, UnaryEmitter] = {
    "exp": exp_f32,
    "expm1": expm1_f32,
    "log": log_f32,
    "log1p": log1p_f32,
    "tanh": tanh_f32,
    "sin": sin_f32,
    "cos": cos_f32,
    "tan": tan_f32,
    "erf": erf_f32,
    "cbrt": cbrt_f32,
}

INLINE_F32_BINARY: dict[str, BinaryEmitter] = {
    "atan2": atan2_f32,
    "pow": pow_f32,
}

__all__ = ["INLINE_F32_BINARY", "INLINE_F32_UNARY", "BinaryEmitter", "UnaryEmitter"]
