"""CPU kernels for random numbers: rng-bit-generator (bit-exact with XLA) and rng.

rng-bit-generator reproduces XLA's expansion of the op (RngBitGeneratorExpander and the
ThreeFry/Philox bit generators of its client library): ThreeFry-2x32 with 20 rounds fed with
`state[1] + position`, two 32-bit outputs per counter interleaved along a split dimension;
Philox-4x32 with 10 rounds fed with a 128-bit counter, four 32-bit outputs per counter
placed round-robin. `rng_default` is Philox, as on XLA's CPU and GPU backends. Types
narrower than 32 bits keep the low bits of 32-bit outputs; 64-bit types join two words.

`rng` (uniform in [a, b), or normal with mean a and deviation b) has no bit-exact
counterpart to match: it draws ThreeFry bits from a key derived from the instruction's name,
so a compiled function returns the same numbers on every run.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

from llvmlite import ir

from backends.cpu.kernels import BufferValue, KernelContext, emits
from backends.llvm.arith import convert_scalar
from backends.llvm.index import linearize
from backends.llvm.ir_array import IrArray
from backends.llvm.irutil import I32, I64, NOWRAP, i64, if_then, intrinsic, llvm_type, loop_nest
from hlo.dtypes import PrimitiveType
from hlo.errors import UnsupportedOpError
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode

_T = PrimitiveType

THREEFRY_ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)
THREEFRY_PARITY = 0x1BD11BDA
PHILOX_MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
PHILOX_KEY_STEPS = (0x9E3779B9, 0xBB67AE85)
PHILOX_ROUNDS = 10


def _u32(value: int) -> ir.Constant:
    return ir.Constant(I32, value & 0xFFFFFFFF)


def _split64(b: ir.IRBuilder, value: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(low 32 bits, high 32 bits) of an i64."""
    return b.trunc(value, I32), b.trunc(b.lshr(value, i64(32)), I32)


def _join64(b: ir.IRBuilder, low: ir.Value, high: ir.Value) -> ir.Value:
    return b.or_(b.zext(low, I64), b.shl(b.zext(high, I64), i64(32)))


def _rotl(b: ir.IRBuilder, v: ir.Value, distance: int) -> ir.Value:
    return b.or_(b.shl(v, _u32(distance)), b.lshr(v, _u32(32 - distance)))


def threefry2x32(
    b: ir.IRBuilder, x: Sequence[ir.Value], key: Sequence[ir.Value]
) -> tuple[ir.Value, ir.Value]:
    """Threefry-2x32 with 20 rounds on two i32 words under a two-word key."""
    ks = [key[0], key[1], b.xor(b.xor(_u32(THREEFRY_PARITY), key[0]), key[1])]
    x0 = b.add(x[0], ks[0])
    x1 = b.add(x[1], ks[1])
    for group in range(5):
        rotations = THREEFRY_ROTATIONS[:4] if group % 2 == 0 else THREEFRY_ROTATIONS[4:]
        for r in rotations:
            x0 = b.add(x0, x1)
            x1 = b.xor(x0, _rotl(b, x1, r))
        x0 = b.add(x0, ks[(group + 1) % 3])
        x1 = b.add(b.add(x1, ks[(group + 2) % 3]), _u32(group + 1))
    return x0, x1


def philox4x32(
    b: ir.IRBuilder, x: Sequence[ir.Value], key: Sequence[ir.Value]
) -> list[ir.Value]:
    """Philox-4x32 with 10 rounds on four i32 words under a two-word key."""
    words = list(x)
    k0, k1 = key
    for _ in range(PHILOX_ROUNDS):
        p0 = b.mul(b.zext(words[0], I64), i64(PHILOX_MULTIPLIERS[0]))
        p1 = b.mul(b.zext(words[2], I64), i64(PHILOX_MULTIPLIERS[1]))
        lo0, hi0 = _split64(b, p0)
        lo1, hi1 = _split64(b, p1)
        words = [
            b.xor(b.xor(hi1, words[1]), k0),
            lo1,
            b.xor(b.xor(hi0, words[3]), k1),
            lo0,
        ]
        k0 = b.add(k0, _u32(PHILOX_KEY_STEPS[0]))
        k1 = b.add(k1, _u32(PHILOX_KEY_STEPS[1]))
    return words


def _bits_to_element(b: ir.IRBuilder, bits: ir.Value, t: PrimitiveType) -> ir.Value:
    """Raw random bits (i32 or i64) as a register value of element type `t`."""
    width = ir.IntType(t.bits)
    if bits.type.width > t.bits:
        bits = b.trunc(bits, width)
    if t in (_T.F16, _T.F32, _T.F64):
        return b.bitcast(bits, llvm_type(t))
    return bits


def _element_bits(t: PrimitiveType) -> int:
    if t.is_complex or t.is_pred or not t.is_array:
        raise UnsupportedOpError(f"rng-bit-generator cannot generate {t.value} values")
    return 64 if t.bits == 64 else 32


def split_dimension(dims: Sequence[int]) -> int:
    """XLA's split dim for 32-bit ThreeFry: the first even dim, else the first largest."""
    for d, size in enumerate(dims):
        if size % 2 == 0:
            return d
    return max(range(len(dims)), key=lambda d: (dims[d], -d))


# --- ThreeFry ---------------------------------------------------------------------------------


def _threefry_32(
    b: ir.IRBuilder, key: Sequence[ir.Value], counter: ir.Value, data: IrArray
) -> int:
    """Fill `data` with 32-bit ThreeFry words; returns how far the counter advances."""
    dims = data.shape.dims
    t = data.element_type
    if not dims:
        x0, _ = threefry2x32(b, _split64(b, counter), key)
        data.store(b, [], _bits_to_element(b, x0, t))
        return 1
    s = split_dimension(dims)
    half = list(dims)
    half[s] = -(-dims[s] // 2)
    with loop_nest(b, half, name="tf32") as hi:
        position = linearize(b, hi, half)
        words = threefry2x32(b, _split64(b, b.add(counter, position)), key)
        for c, word in enumerate(words):
            index = list(hi)
            index[s] = b.add(b.mul(hi[s], i64(2), flags=NOWRAP), i64(c), flags=NOWRAP)
            value = _bits_to_element(b, word, t)
            if dims[s] % 2 == 1 and c == 1:
                with if_then(b, b.icmp_signed("<", index[s], i64(dims[s]))):
                    data.store(b, index, value)
            else:
                data.store(b, index, value)
    return math.prod(half)


def _threefry_64(
    b: ir.IRBuilder, key: Sequence[ir.Value], counter: ir.Value, data: IrArray
) -> int:
    n = data.shape.num_elements
    with loop_nest(b, (n,), name="tf64") as (e,):
        x0, x1 = threefry2x32(b, _split64(b, b.add(counter, e)), key)
        data.store_linear(b, e, _bits_to_element(b, _join64(b, x0, x1), data.element_type))
    return n


# --- Philox -----------------------------------------------------------------------------------


def _add128(
    b: ir.IRBuilder, low: ir.Value, high: ir.Value, delta: ir.Value
) -> tuple[ir.Value, ir.Value]:
    new_low = b.add(low, delta)
    carry = b.zext(b.icmp_unsigned("<", new_low, low), I64)
    return new_low, b.add(high, carry)


def _philox(
    b: ir.IRBuilder, key: Sequence[ir.Value], low: ir.Value, high: ir.Value, data: IrArray
) -> int:
    """Fill `data` with Philox words; returns how many 128-bit counters were used."""
    n = data.shape.num_elements
    wide = _element_bits(data.element_type) == 64
    per_counter = 2 if wide else 4
    counters = -(-n // per_counter)
    t = data.element_type
    with loop_nest(b, (counters,), name="philox") as (v,):
        c_low, c_high = _add128(b, low, high, v)
        words = philox4x32(b, [*_split64(b, c_low), *_split64(b, c_high)], key)
        if wide:
            outputs = [_join64(b, words[0], words[1]), _join64(b, words[2], words[3])]
        else:
            outputs = words
        for j, word in enumerate(outputs):
            e = b.add(b.mul(v, i64(per_counter), flags=NOWRAP), i64(j), flags=NOWRAP)
            value = _bits_to_element(b, word, t)
            if n % per_counter and j >= n % per_counter:
                with if_then(b, b.icmp_signed("<", e, i64(n))):
                    data.store_linear(b, e, value)
            else:
                data.store_linear(b, e, value)
    return counters


@emits(Opcode.RNG_BIT_GENERATOR)
def emit_rng_bit_generator(
    ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue], out: BufferValue
) -> None:
    """(new state, random bits) from a u64 state, with XLA's ThreeFry or Philox expansion."""
    b = ctx.builder
    (state,) = operands
    new_state, data = out
    algorithm = instr.attrs.get("algorithm") or "rng_default"
    size = state.shape.dims[0]
    words = [state.load_linear(b, i64(k)) for k in range(size)]
    key = list(_split64(b, words[0]))
    bits = _element_bits(data.element_type)
    for k in range(size):
        new_state.store_linear(b, i64(k), words[k])
    if algorithm == "rng_three_fry":
        counter = words[1]
        if bits == 64:
            used = _threefry_64(b, key, counter, data)
        else:
            used = _threefry_32(b, key, counter, data)
        new_state.store_linear(b, i64(1), b.add(counter, i64(used)))
        return
    low, high = (words[1], words[2]) if size >= 3 else (words[1], words[0])
    used = _philox(b, key, low, high, data)
    new_low, new_high = _add128(b, low, high, i64(used))
    new_state.store_linear(b, i64(1), new_low)
    if size >= 3:
        new_state.store_linear(b, i64(2), new_high)


# --- rng ---------------------------------------------------------------------------------------


def _unit_float(b: ir.IRBuilder, word: ir.Value, t: PrimitiveType) -> ir.Value:
    """A float of type t (f32 or f64) in [0, 1) from the top mantissa-width bits of word."""
    mantissa = 23 if t is _T.F32 else 52
    width = word.type.width
    value = b.uitofp(b.lshr(word, ir.Constant(word.type, width - mantissa)), llvm_type(t))
    return b.fmul(value, ir.Constant(llvm_type(t), math.ldexp(1.0, -mantissa)))


@emits(Opcode.RNG)
def emit_rng(
    ctx: KernelContext, instr: HloInstruction, operands: list[BufferValue], out: BufferValue
) -> None:
    """Uniform [a, b) or normal(a, b) numbers from ThreeFry bits under a per-op fixed key."""
    b = ctx.builder
    low_arr, high_arr = operands
    t = out.element_type
    seed = zlib.crc32(instr.name.encode())
    key = [_u32(seed), _u32(seed ^ 0x5EED5EED)]
    a = low_arr.load(b, [])
    c = high_arr.load(b, [])
    distribution = instr.attrs["distribution"]
    n = out.shape.num_elements
    if distribution == "rng_uniform" and t.is_integer:
        _uniform_int(b, key, a, c, out)
        return
    if not t.is_float:
        raise UnsupportedOpError(f"rng {distribution} of {t.value} values")
    work = _T.F64 if t is _T.F64 else _T.F32
    a = convert_scalar(b, a, t, work)
    c = convert_scalar(b, c, t, work)
    with loop_nest(b, (-(-n // 2),), name="rng") as (pair,):
        w0, w1 = threefry2x32(b, _split64(b, pair), key)
        if work is _T.F64:
            w0, w1 = _join64(b, w0, w1), _join64(b, w1, w0)
        u0, u1 = _unit_float(b, w0, work), _unit_float(b, w1, work)
        if distribution == "rng_uniform":
            values = [b.fadd(a, b.fmul(b.fsub(c, a), u)) for u in (u0, u1)]
        else:
            values = [b.fadd(a, b.fmul(c, z)) for z in _box_muller(b, u0, u1, work)]
        for j, value in enumerate(values):
            e = b.add(b.mul(pair, i64(2), flags=NOWRAP), i64(j), flags=NOWRAP)
            with if_then(b, b.icmp_signed("<", e, i64(n))):
                out.store_linear(b, e, convert_scalar(b, value, work, t))


def _box_muller(
    b: ir.IRBuilder, u0: ir.Value, u1: ir.Value, t: PrimitiveType
) -> tuple[ir.Value, ir.Value]:
    """Two standard normal draws from two uniform [0, 1) draws (as XLA's library does)."""
    ty = llvm_type(t)
    suffix = "f32" if t is _T.F32 else "f64"
    floor = ir.Constant(ty, 1.0e-7)
    u0 = b.select(b.fcmp_ordered(">", u0, floor), u0, floor)
    angle = b.fmul(ir.Constant(ty, 2.0 * math.pi), u1)
    log = intrinsic(b, f"llvm.log.{suffix}", ty, [u0])
    radius = intrinsic(b, f"llvm.sqrt.{suffix}", ty, [b.fmul(ir.Constant(ty, -2.0), log)])
    sin = intrinsic(b, f"llvm.sin.{suffix}", ty, [angle])
    cos = intrinsic(b, f"llvm.cos.{suffix}", ty, [angle])
    return b.fmul(sin, radius), b.fmul(cos, radius)


def _uniform_int(
    b: ir.IRBuilder, key: Sequence[ir.Value], low: ir.Value, high: ir.Value, out: IrArray
) -> None:
    """low + (bits mod (high - low)), computed without overflow as XLA's library does."""
    t = out.element_type
    ty = llvm_type(t)
    n = out.shape.num_elements
    span = b.sub(high, low)
    # An empty range would divide by zero; it yields `low` instead.
    span = b.select(b.icmp_unsigned("==", span, ir.Constant(ty, 0)), ir.Constant(ty, 1), span)
    with loop_nest(b, (n,), name="rng.int") as (e,):
        w0, w1 = threefry2x32(b, _split64(b, e), key)
        word = _join64(b, w0, w1)
        bits = word if t.bits == 64 else b.trunc(word, ty)
        dist = b.urem(bits, span)
        half = b.lshr(dist, ir.Constant(ty, 1))
        out.store_linear(b, e, b.add(b.add(low, half), b.sub(dist, half)))
