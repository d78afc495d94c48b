"""Window index arithmetic of convolution, reduce-window and select-and-scatter, on i64 values.

Shared by the CPU and GPU kernels. A window dimension (`hlo.attributes.WindowDim`) places
window position w of output position o at p = o * stride + w * window_dilation - padding_low
in the base-dilated, padded input; p reads real data when p >= 0, p is a multiple of
base_dilation and p / base_dilation < the input size. Anything else is padding or a hole
of the base dilation, which convolutions treat as zeros and reductions skip.

Two conventions for window reversal coexist, as in XLA: a convolution reads the *kernel*
back to front (`kernel_positions`) at unchanged input positions (`input_positions`), while
reduce-window reverses the walk over the input itself (`window_input_index`).
"""

from __future__ import annotations

from collections.abc import Sequence

from llvmlite import ir

from backends.llvm.irutil import I1, i64
from hlo.attributes import Window, WindowDim


def window_dims(window: Window | None, kernel_sizes: Sequence[int]) -> list[WindowDim]:
    """The window, or the default one (size = kernel size, unit strides, no padding)."""
    if window is None or not window.dims:
        return [WindowDim(size) for size in kernel_sizes]
    return list(window.dims)


def place(rank: int, pairs: Sequence[tuple[int, ir.Value]]) -> list[ir.Value]:
    """An index of `rank` values with each (dimension, value) pair placed, zeros elsewhere."""
    index: list[ir.Value] = [i64(0)] * rank
    for dim, value in pairs:
        index[dim] = value
    return index


def dim_position(
    b: ir.IRBuilder, wd: WindowDim, size: int, out_pos: ir.Value, win_pos: ir.Value
) -> tuple[ir.Value, ir.Value]:
    """The input index that window position `win_pos` of output `out_pos` reads along one
    dimension of `size` elements, and an i1 that is true when it is real data."""
    p = b.mul(out_pos, i64(wd.stride))
    p = b.add(p, b.mul(win_pos, i64(wd.window_dilation)))
    p = b.sub(p, i64(wd.padding_low))
    ok = b.icmp_signed(">=", p, i64(0))
    if wd.base_dilation != 1:
        ok = b.and_(ok, b.icmp_signed("==", b.srem(p, i64(wd.base_dilation)), i64(0)))
        p = b.sdiv(p, i64(wd.base_dilation))
    ok = b.and_(ok, b.icmp_signed("<", p, i64(size)))
    return p, ok


def input_positions(
    b: ir.IRBuilder,
    dims: Sequence[WindowDim],
    in_sizes: Sequence[int],
    out_pos: Sequence[ir.Value],
    win_pos: Sequence[ir.Value],
    *,
    clamp: bool = False,
) -> tuple[list[ir.Value], ir.Value]:
    """Input spatial indices a convolution reads at a window position, and an i1 'is real
    data' flag for the whole position.

    With `clamp`, an index that is not data is replaced by 0, for kernels that load it
    anyway (and discard the value) rather than branch around the load.
    """
    positions: list[ir.Value] = []
    valid: ir.Value = ir.Constant(I1, 1)
    for wd, size, o, w in zip(dims, in_sizes, out_pos, win_pos, strict=True):
        p, ok = dim_position(b, wd, size, o, w)
        valid = b.and_(valid, ok)
        positions.append(b.select(ok, p, i64(0)) if clamp else p)
    return positions, valid


def kernel_positions(
    b: ir.IRBuilder, window: Sequence[WindowDim], win_pos: Sequence[ir.Value]
) -> list[ir.Value]:
    """Kernel indices at window positions: a reversed window reads the kernel back to front."""
    return [
        b.sub(i64(wd.size - 1), w) if wd.window_reversal else w
        for wd, w in zip(window, win_pos, strict=True)
    ]


def _always_inside(wd: WindowDim, in_size: int, out_size: int) -> bool:
    """True when a window dim reads input index == output index with no possible miss."""
    return (
        wd.size == 1 and wd.stride == 1 and wd.padding_low == 0 and wd.padding_high == 0
        and wd.base_dilation == 1 and wd.window_dilation == 1 and in_size == out_size
    )


def window_input_index(
    b: ir.IRBuilder,
    window: Window,
    in_dims: Sequence[int],
    out_dims: Sequence[int],
    out_index: Sequence[ir.Value],
    win_index: Sequence[ir.Value],
) -> tuple[list[ir.Value], ir.Value | None]:
    """The input index a reduce-window position reads, and an i1 that is true when it is
    real data (a reversed window dimension walks the input back to front).

    Returns None for the condition when every position is statically inside.
    """
    index: list[ir.Value] = []
    valid: ir.Value | None = None
    for d, wd in enumerate(window.dims):
        if _always_inside(wd, in_dims[d], out_dims[d]):
            index.append(out_index[d])
            continue
        w = win_index[d]
        if wd.window_reversal:
            w = b.sub(i64(wd.size - 1), w)
        pos, ok = dim_position(b, wd, in_dims[d], out_index[d], w)
        valid = ok if valid is None else b.and_(valid, ok)
        index.append(pos)
    return index, valid


__all__ = [
    "dim_position",
    "input_positions",
    "kernel_positions",
    "place",
    "window_dims",
    "window_input_index",
]
