"""Launch dimensions, and the NVVM intrinsics through which a kernel sees its place in the grid.

`LaunchDims` is what the host passes to `cuLaunchKernel`: grid and block sizes in three
dimensions and the dynamic shared memory bytes. `for_elements(n)` chooses the dimensions
of a one-thread-per-element kernel; kernels walk a grid-stride loop so that a capped grid
still covers every element. The IR helpers read thread and block ids, synchronise a block,
shuffle registers within a warp and declare shared memory. This file emits no kernels.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from llvmlite import ir

from backends.llvm.irutil import I1, I8, I16, I32, I64, declare_function, i64
from hlo.errors import InternalError

WARP = 32
# One-element-per-thread kernels: 256 threads per block keep 8 warps resident per block
# and leave registers for the larger elemental expressions.
THREADS_PER_BLOCK = 256
# Past this many blocks a grid-stride loop is cheaper than more blocks (~ 132 SMs x 64).
MAX_BLOCKS = 8192
MAX_THREADS_PER_BLOCK = 1024
# Static shared memory a kernel may use without opting in to more.
MAX_STATIC_SHARED_BYTES = 48 * 1024


@dataclass(frozen=True)
class LaunchDims:
    """Grid and block dimensions (x, y, z) and dynamic shared memory of one launch."""

    grid: tuple[int, int, int] = (1, 1, 1)
    block: tuple[int, int, int] = (1, 1, 1)
    shared_bytes: int = 0

    def __post_init__(self) -> None:
        threads = self.block[0] * self.block[1] * self.block[2]
        if threads < 1 or threads > MAX_THREADS_PER_BLOCK:
            raise InternalError(f"block {self.block} has {threads} threads")
        if min(self.grid) < 1 or self.grid[0] >= 2**31 or max(self.grid[1:]) >= 2**16:
            raise InternalError(f"grid {self.grid} is out of range")

    @property
    def threads(self) -> int:
        return self.grid[0] * self.grid[1] * self.grid[2] * self.threads_per_block

    @property
    def threads_per_block(self) -> int:
        return self.block[0] * self.block[1] * self.block[2]


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def for_elements(n: int, threads_per_block: int = THREADS_PER_BLOCK) -> LaunchDims:
    """Dimensions for a grid-stride loop over `n` > 0 items, one per thread at first."""
    threads = min(threads_per_block, max(WARP, ceil_div(n, WARP) * WARP))
    blocks = min(ceil_div(n, threads), MAX_BLOCKS)
    return LaunchDims((max(blocks, 1), 1, 1), (threads, 1, 1))


def single_thread() -> LaunchDims:
    """One block of one thread (serial kernels)."""
    return LaunchDims()


# --- special registers -------------------------------------------------------------------------


def _sreg(b: ir.IRBuilder, name: str) -> ir.Value:
    fn = declare_function(b.module, f"llvm.nvvm.read.ptx.sreg.{name}", I32, [])
    return b.call(fn, [])


def thread_id(b: ir.IRBuilder, axis: str = "x") -> ir.Value:
    """threadIdx.<axis> as i32."""
    return _sreg(b, f"tid.{axis}")


def block_id(b: ir.IRBuilder, axis: str = "x") -> ir.Value:
    """blockIdx.<axis> as i32."""
    return _sreg(b, f"ctaid.{axis}")


def block_dim(b: ir.IRBuilder, axis: str = "x") -> ir.Value:
    """blockDim.<axis> as i32."""
    return _sreg(b, f"ntid.{axis}")


def grid_dim(b: ir.IRBuilder, axis: str = "x") -> ir.Value:
    """gridDim.<axis> as i32."""
    return _sreg(b, f"nctaid.{axis}")


def wide(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
    """A non-negative i32 register as i64."""
    return b.zext(v, I64)


def global_thread_index(b: ir.IRBuilder) -> ir.Value:
    """blockIdx.x * blockDim.x + threadIdx.x as i64."""
    block = b.mul(wide(b, block_id(b)), wide(b, block_dim(b)), flags=["nuw", "nsw"])
    return b.add(block, wide(b, thread_id(b)), flags=["nuw", "nsw"])


def grid_stride(b: ir.IRBuilder) -> ir.Value:
    """gridDim.x * blockDim.x as i64."""
    return b.mul(wide(b, grid_dim(b)), wide(b, block_dim(b)), flags=["nuw", "nsw"])


@contextmanager
def grid_stride_loop(b: ir.IRBuilder, n: int, name: str = "g") -> Iterator[ir.Value]:
    """`for i in range(global_thread_index, n, grid_stride)`: yields the i64 item index."""
    start = global_thread_index(b)
    step = grid_stride(b)
    pre = b.block
    header = b.append_basic_block(f"{name}.header")
    body = b.append_basic_block(f"{name}.body")
    exit_ = b.append_basic_block(f"{name}.exit")
    b.branch(header)
    b.position_at_end(header)
    i = b.phi(I64, name=name)
    i.add_incoming(start, pre)
    b.cbranch(b.icmp_unsigned("<", i, i64(n)), body, exit_)
    b.position_at_end(body)
    yield i
    nxt = b.add(i, step, flags=["nuw", "nsw"])
    i.add_incoming(nxt, b.block)
    b.branch(header)
    b.position_at_end(exit_)


def barrier(b: ir.IRBuilder) -> None:
    """__syncthreads(): every thread of the block waits here; shared memory is visible."""
    fn = declare_function(b.module, "llvm.nvvm.barrier0", ir.VoidType(), [])
    b.call(fn, [])


# --- warp shuffles -----------------------------------------------------------------------------

_FULL_MASK = ir.Constant(I32, 0xFFFFFFFF)


def _shfl_down_i32(b: ir.IRBuilder, v: ir.Value, delta: int) -> ir.Value:
    fn = declare_function(b.module, "llvm.nvvm.shfl.sync.down.i32", I32, [I32, I32, I32, I32])
    return b.call(fn, [_FULL_MASK, v, ir.Constant(I32, delta), ir.Constant(I32, WARP - 1)])


def shuffle_down(b: ir.IRBuilder, v: ir.Value, delta: int) -> ir.Value:
    """The register `v` of lane (lane + delta), for any scalar or struct register type.

    Every lane of the warp must execute the shuffle. A value is moved in 32-bit pieces:
    narrow integers and halves are widened, 64-bit values split in two, structs (complex)
    shuffled member by member.
    """
    ty = v.type
    if isinstance(ty, ir.LiteralStructType):
        out: ir.Value = ir.Constant(ty, ir.Undefined)
        for k in range(len(ty.elements)):
            part = shuffle_down(b, b.extract_value(v, k), delta)
            out = b.insert_value(out, part, k)
        return out
    if ty == I32:
        return _shfl_down_i32(b, v, delta)
    if isinstance(ty, ir.FloatType):
        return b.bitcast(_shfl_down_i32(b, b.bitcast(v, I32), delta), ty)
    if isinstance(ty, ir.HalfType):
        wide_bits = b.zext(b.bitcast(v, I16), I32)
        return b.bitcast(b.trunc(_shfl_down_i32(b, wide_bits, delta), I16), ty)
    if isinstance(ty, ir.IntType) and ty.width < 32:
        return b.trunc(_shfl_down_i32(b, b.zext(v, I32), delta), ty)
    if isinstance(ty, ir.DoubleType) or ty == I64:
        bits = b.bitcast(v, I64) if isinstance(ty, ir.DoubleType) else v
        low = _shfl_down_i32(b, b.trunc(bits, I32), delta)
        high = _shfl_down_i32(b, b.trunc(b.lshr(bits, i64(32)), I32), delta)
        joined = b.or_(b.zext(low, I64), b.shl(b.zext(high, I64), i64(32)))
        return b.bitcast(joined, ty) if isinstance(ty, ir.DoubleType) else joined
    raise InternalError(f"cannot shuffle a value of type {ty}")


# --- shared memory -----------------------------------------------------------------------------


def shared_array(module: ir.Module, name: str, elem: ir.Type, count: int) -> ir.GlobalVariable:
    """A block-shared array `elem[count]` (addrspace 3), uninitialised, created once."""
    existing = module.globals.get(name)
    if existing is not None:
        return existing
    ty = ir.ArrayType(elem, max(count, 1))
    gv = ir.GlobalVariable(module, ty, name=name, addrspace=3)
    gv.initializer = ir.Constant(ty, ir.Undefined)
    gv.linkage = "internal"
    gv.align = 16
    return gv


def shared_element(b: ir.IRBuilder, gv: ir.GlobalVariable, index: ir.Value) -> ir.Value:
    """Pointer (addrspace 3) to element `index` (i64) of the shared array `gv`."""
    # llvmlite types the result as `elem addrspace(3)*`, so loads and stores check types.
    return b.gep(gv, [i64(0), index], inbounds=True)


def storage_register(ty: ir.Type) -> ir.Type:
    """The type to keep a register value of type `ty` in shared memory (i1 as i8)."""
    return I8 if ty == I1 else ty
