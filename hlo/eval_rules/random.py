"""Evaluator kernels for random numbers: `rng` and `rng-bit-generator`.

`rng-bit-generator` is deterministic and reproduced bit for bit: ThreeFry-2x32 (20 rounds)
and Philox-4x32 (10 rounds), with the state layout, counter increments and output
interleaving of XLA's RngBitGeneratorExpander and prng library. `rng_default` means Philox,
because XLA's CPU compiler expands RngBitGenerator with RNG_PHILOX as its default.

`rng` (the stateful rng_uniform / rng_normal) has no reproducible meaning across XLA
backends, so the evaluator draws from one numpy Generator per Evaluator, seeded with the
fixed `RNG_SEED`: one evaluation of a module always gives the same numbers, and successive
`rng` executions (for instance inside a while loop) give different ones.
"""

from __future__ import annotations

import numpy as np

from hlo.dtypes import PrimitiveType
from hlo.errors import EvaluationError
from hlo.evaluator import Evaluator, Value, evaluates
from hlo.instruction import HloInstruction
from hlo.opcodes import Opcode

Array = np.ndarray
U32 = np.uint32
U64 = np.uint64

RNG_SEED = 0x5EED0F2B  # the documented seed of every Evaluator's `rng` stream


# --- ThreeFry-2x32 ----------------------------------------------------------------------------

_THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_THREEFRY_PARITY = 0x1BD11BDA


def _rotl32(v: Array, distance: int) -> Array:
    return (v << U32(distance)) | (v >> U32(32 - distance))


def threefry2x32(key: tuple[Array, Array], counter: tuple[Array, Array]) -> tuple[Array, Array]:
    """ThreeFry-2x32 with 20 rounds (Salmon et al. 2011) on u32 arrays; wraps mod 2**32.

    Key injections after every 4 rounds add the rotated key schedule and the injection
    number, exactly as in Random123 and XLA's ThreeFry2x32.
    """
    ks = (U32(key[0]), U32(key[1]), U32(_THREEFRY_PARITY) ^ U32(key[0]) ^ U32(key[1]))
    x0 = np.asarray(counter[0], dtype=U32) + ks[0]
    x1 = np.asarray(counter[1], dtype=U32) + ks[1]
    for injection in range(1, 6):
        for rotation in _THREEFRY_ROTATIONS[(injection - 1) % 2]:
            x0 = x0 + x1
            x1 = _rotl32(x1, rotation) ^ x0
        x0 = x0 + ks[injection % 3]
        x1 = x1 + ks[(injection + 1) % 3] + U32(injection)
    return x0, x1


def _split_u64(v: Array) -> tuple[Array, Array]:
    """(low, high) u32 halves of u64 values."""
    v = np.asarray(v, dtype=U64)
    return (v & U64(0xFFFFFFFF)).astype(U32), (v >> U64(32)).astype(U32)


def _join_u64(low: Array, high: Array) -> Array:
    return low.astype(U64) | (high.astype(U64) << U64(32))


def _threefry_bits(key: int, counter: int, dims: tuple[int, ...], bits: int) -> tuple[Array, int]:
    """Random words of `bits` (32 or 64) bits in `dims`, and the advanced counter.

    64-bit words: element i (row-major) encrypts counter + i and joins the two halves.
    32-bit words: XLA halves the shape on a split dimension (the first even one, else the
    largest) and encrypts counter + i over that half shape; the two output halves are
    interleaved along the split dimension and the excess element, if any, dropped.
    """
    key_words = _split_u64(np.asarray(key, dtype=U64))
    if bits == 64:
        n = int(np.prod(dims, dtype=np.int64))
        ctr = U64(counter) + np.arange(n, dtype=U64)
        x0, x1 = threefry2x32(key_words, _split_u64(ctr))
        return _join_u64(x0, x1).reshape(dims), (counter + n) % 2**64
    if not dims:
        x0, _ = threefry2x32(key_words, _split_u64(np.asarray([counter], dtype=U64)))
        return x0.reshape(()), (counter + 1) % 2**64
    split = next((i for i, d in enumerate(dims) if d % 2 == 0), None)
    if split is None:
        split = max(range(len(dims)), key=lambda i: (dims[i], -i))
    half = list(dims)
    half[split] = (dims[split] + 1) // 2
    n = int(np.prod(half, dtype=np.int64))
    ctr = U64(counter) + np.arange(n, dtype=U64)
    x0, x1 = threefry2x32(key_words, _split_u64(ctr))
    pairs = np.stack([x0.reshape(half), x1.reshape(half)], axis=split + 1)
    joined = list(dims)
    joined[split] = 2 * half[split]
    words = pairs.reshape(joined)
    words = np.take(words, np.arange(dims[split]), axis=split)
    return words, (counter + n) % 2**64


# --- Philox-4x32 ------------------------------------------------------------------------------

_PHILOX_M = (0xD2511F53, 0xCD9E8D57)
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)


def _mulhilo(a: Array, m: int) -> tuple[Array, Array]:
    product = a.astype(U64) * U64(m)
    return (product >> U64(32)).astype(U32), (product & U64(0xFFFFFFFF)).astype(U32)


def philox4x32(
    key: tuple[int, int], counter: tuple[Array, Array, Array, Array]
) -> tuple[Array, Array, Array, Array]:
    """Philox-4x32 with 10 rounds (Salmon et al. 2011) on u32 arrays."""
    x = [np.asarray(c, dtype=U32) for c in counter]
    k0, k1 = key
    for _ in range(10):
        hi0, lo0 = _mulhilo(x[0], _PHILOX_M[0])
        hi1, lo1 = _mulhilo(x[2], _PHILOX_M[1])
        x = [hi1 ^ x[1] ^ U32(k0), lo1, hi0 ^ x[3] ^ U32(k1), lo0]
        # The key schedule is kept in Python ints: numpy scalar adds would warn on wrap.
        k0 = (k0 + _PHILOX_W[0]) & 0xFFFFFFFF
        k1 = (k1 + _PHILOX_W[1]) & 0xFFFFFFFF
    return x[0], x[1], x[2], x[3]


def _philox_bits(key: int, counter: int, dims: tuple[int, ...], bits: int) -> tuple[Array, int]:
    """Random words of `bits` (32 or 64) bits in `dims`, and the advanced 128-bit counter.

    Block j encrypts the 128-bit counter + j into four u32 words. 32-bit output takes the
    blocks' words in order (w0 w1 w2 w3 of block 0, then block 1, ...); 64-bit output joins
    (w0, w1) and (w2, w3). The counter advances by the number of blocks used.
    """
    n = int(np.prod(dims, dtype=np.int64))
    words_needed = n * (bits // 32)
    blocks = -(-words_needed // 4)
    values = [(counter + j) % 2**128 for j in range(blocks)]
    lows = np.array([v & (2**64 - 1) for v in values], dtype=U64)
    highs = np.array([v >> 64 for v in values], dtype=U64)
    key_low, key_high = (int(w) for w in _split_u64(np.asarray(key, dtype=U64)))
    w = philox4x32((key_low, key_high), (*_split_u64(lows), *_split_u64(highs)))
    if bits == 64:
        joined = np.stack([_join_u64(w[0], w[1]), _join_u64(w[2], w[3])], axis=1).reshape(-1)
    else:
        joined = np.stack(w, axis=1).reshape(-1)
    return joined[:n].reshape(dims), (counter + blocks) % 2**128


# --- the kernels ------------------------------------------------------------------------------


def _bit_width(t: PrimitiveType, instr: HloInstruction) -> int:
    if t.is_pred or not (t.is_integer or t.is_float) or t.bits not in (8, 16, 32, 64):
        raise EvaluationError(f"rng-bit-generator {instr.name}: cannot generate {t.value} values")
    return t.bits


@evaluates(Opcode.RNG_BIT_GENERATOR)
def _rng_bit_generator(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    """(new state, bits) from a u64 state: [key, counter] for ThreeFry; for Philox
    [key, counter_low, counter_high], or [key, counter] with the key doubling as the
    counter's high word (XLA's GetPhiloxStateOp reverses a two-word state).

    Types narrower than 32 bits take the low bits of 32-bit words, as XLA does.
    """
    state = np.asarray(operands[0])
    if state.dtype != np.uint64 or state.ndim != 1 or state.shape[0] < 2:
        raise EvaluationError(
            f"rng-bit-generator {instr.name}: the state must be u64[n] with n >= 2, "
            f"got {state.dtype}{list(state.shape)}"
        )
    data_shape = instr.shape.tuple_shapes[1]
    t = data_shape.element_type
    width = _bit_width(t, instr)
    algorithm = instr.attrs.get("algorithm", "rng_default")
    key = int(state[0])
    new_state = state.copy()
    if algorithm == "rng_three_fry":
        words, counter = _threefry_bits(key, int(state[1]), data_shape.dims, max(width, 32))
        new_state[1] = counter
    else:
        if state.shape[0] >= 3:
            counter = int(state[1]) | (int(state[2]) << 64)
        else:
            counter = int(state[1]) | (key << 64)
        words, counter = _philox_bits(key, counter, data_shape.dims, max(width, 32))
        new_state[1] = counter & (2**64 - 1)
        if state.shape[0] >= 3:
            new_state[2] = counter >> 64
    if width < 32:
        words = words.astype(np.dtype(f"u{width // 8}"))
    data = np.ascontiguousarray(words).view(t.numpy).reshape(data_shape.dims)
    return new_state, data


def _generator(ev: Evaluator) -> np.random.Generator:
    """The Evaluator's `rng` stream, created on first use from RNG_SEED."""
    gen = ev.rng_generator
    if gen is None:
        gen = np.random.default_rng(RNG_SEED)
        ev.rng_generator = gen
    return gen


@evaluates(Opcode.RNG)
def _rng(ev: Evaluator, instr: HloInstruction, operands: list[Value]) -> Value:
    """rng_uniform(a, b): uniform in [a, b) (integers or floats); rng_normal(mu, sigma)."""
    lo, hi = (np.asarray(v) for v in operands)
    t = instr.shape.element_type
    dims = instr.shape.dims
    out = t.numpy
    gen = _generator(ev)
    distribution = instr.attrs["distribution"]
    if distribution == "rng_uniform" and t.is_integer:
        low, high = int(lo), int(hi)
        if high <= low:
            raise EvaluationError(f"rng {instr.name}: empty integer range [{low}, {high})")
        return gen.integers(low, high, size=dims, endpoint=False).astype(out)
    if not t.is_float:
        raise EvaluationError(f"rng {instr.name}: {distribution} of {t.value} is not defined")
    first, second = float(lo.astype(np.float64)), float(hi.astype(np.float64))
    with np.errstate(all="ignore"):
        if distribution == "rng_normal":
            return (first + second * gen.standard_normal(dims)).astype(out)
        values = (first + (second - first) * gen.random(dims)).astype(out)
        # Rounding to a narrow type can reach the upper bound; keep the interval half-open.
        bound = np.asarray(second).astype(out)
        below = np.nextafter(bound, np.asarray(first).astype(out))
        return np.where(values >= bound, below, values).astype(out)
