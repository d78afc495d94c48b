"""GPU test fixtures: `gpu_compile` compiles HLO for the GPU, or skips without a usable GPU."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from hlo.module import HloModule


def _gpu_reason() -> str | None:
    """Why GPU tests cannot run here, or None when they can."""
    try:
        from runtime.cuda import driver

        driver()
    except Exception as e:  # no driver library, no device, or no pycuda and no libcuda
        return f"no usable CUDA GPU: {e}"
    return None


_REASON: list[str | None] = []


@pytest.fixture(scope="session")
def gpu_compile() -> Callable[..., Any]:
    """`gpu_compile(module_or_text, **options)` -> a GpuExecutable (skips without a GPU)."""
    if not _REASON:
        _REASON.append(_gpu_reason())
    if _REASON[0] is not None:
        pytest.skip(_REASON[0])
    import backends.gpu
    from hlo.parser import parse

    def compile_(module: HloModule | str, **options: Any) -> Any:
        if isinstance(module, str):
            module = parse(module)
        return backends.gpu.compile(module, **options)

    return compile_
