"""Run-time argument checks: count, shape, dtype and memory layout of each argument.

A wrong argument raises ArgumentError naming the argument (position and parameter
name), the expected shape and dtype and what was given. Non-contiguous or misaligned arrays
are copied to row-major, naturally aligned memory; nothing is ever converted to another
dtype silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hlo.errors import ArgumentError
from hlo.shape import Shape


def _describe(shape: Shape) -> str:
    if shape.is_tuple:
        return shape.to_text(with_layout=False)
    return f"{shape.to_text(with_layout=False)} ({shape.element_type.numpy})"


def _given(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype}{list(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"{type(value).__name__} {value!r}"[:80]


def _leaves(shape: Shape, value: Any, where: str, out: list[np.ndarray]) -> None:
    """Append the checked row-major array leaves of `value` (of `shape`) to `out`."""
    if shape.is_tuple:
        if not isinstance(value, (tuple, list)) or len(value) != len(shape.tuple_shapes):
            raise ArgumentError(f"{where}: expected a tuple {_describe(shape)}, "
                                f"got {_given(value)}")
        for k, (s, v) in enumerate(zip(shape.tuple_shapes, value, strict=True)):
            _leaves(s, v, f"{where} element {k}", out)
        return
    if not shape.is_array:
        return  # tokens carry no data
    if isinstance(value, np.ndarray):
        a = value
    elif isinstance(value, (np.generic, bool, int, float, complex)):
        a = np.asarray(value)
    else:
        raise ArgumentError(f"{where}: expected an array {_describe(shape)}, "
                            f"got {_given(value)}")
    want = shape.element_type.numpy
    if a.dtype != want:
        raise ArgumentError(f"{where}: expected dtype {want} for {_describe(shape)}, "
                            f"got {_given(a)}")
    if a.shape != shape.dims:
        raise ArgumentError(f"{where}: expected shape {list(shape.dims)} for "
                            f"{_describe(shape)}, got {_given(a)}")
    if not (a.flags.c_contiguous and a.flags.aligned):
        a = np.array(a, order="C")  # a copy: row-major and naturally aligned
    out.append(a)


def check_arguments(param_shapes: Sequence[Shape], args: Sequence[Any],
                    param_names: Sequence[str] = ()) -> list[np.ndarray]:
    """The flattened, checked, row-major argument leaves for parameters `param_shapes`.

    Raises:
        ArgumentError: wrong count, or an argument of the wrong kind, shape or dtype.
    """
    if len(args) != len(param_shapes):
        expected = ", ".join(_describe(s) for s in param_shapes) or "none"
        raise ArgumentError(f"expected {len(param_shapes)} argument(s) ({expected}), "
                            f"got {len(args)}")
    out: list[np.ndarray] = []
    for i, (shape, value) in enumerate(zip(param_shapes, args, strict=True)):
        name = f" ('{param_names[i]}')" if i < len(param_names) else ""
        _leaves(shape, value, f"argument {i}{name}", out)
    return out
