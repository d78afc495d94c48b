"""The public `compile` entry point, with its in-memory and on-disk compile caches.

`compile(module, backend="cpu", optimize=True, **options)` returns an Executable. With
`optimize` (the default) a clone of the module goes through `default_pipeline(backend)`
(simplification, fusion, layouts, copy insertion, buffer assignment) before code
generation; the caller's module is never changed. `optimize=False` compiles the module as
written, each instruction its own kernel (useful for tests of single kernels).

A compilation is keyed by the fingerprint of the module's printed text *before* passes,
the names of the pipeline's passes (none without `optimize`), the resolved backend options
(target triple, CPU, features, ...) and the compiler version (which includes a hash of the
compiler, backend and runtime sources, so editing any of them invalidates old entries).
The in-memory cache returns the same Executable for the same key; the on-disk cache
(`TFCOMPILE_CACHE_DIR`, default `~/.cache/tfcompile-py`, empty = off) stores the object
code and its metadata (for the GPU backend: the pickled GpuProgram, PTX and host plan,
without its LLVM IR texts, and its checksum), written atomically (temporary file +
`os.replace`) so that concurrent processes never read a partial entry. A corrupt or
unreadable entry is ignored and recompiled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import llvmlite

from backends.cpu import CpuArtifact, CpuOptions, compile_to_object
from backends.cpu.object import Target
from backends.cpu.threads import MAX_THREADS
from compiler.pipeline import Pipeline
from hlo import debug_options
from hlo.dtypes import PrimitiveType
from hlo.errors import CompileError
from hlo.module import HloModule
from hlo.shape import Shape
from runtime.loader import Executable

log = logging.getLogger(__name__)

COMPILER_VERSION = "0.1.0"
BACKENDS = ("cpu", "gpu")
_MEMORY_CACHE_SIZE = 128

_lock = threading.Lock()
_memory: OrderedDict[str, Executable] = OrderedDict()
_source_hash: str | None = None


def compile(module: HloModule | str, backend: str = "cpu", *, optimize: bool = True,
            **options: Any) -> Executable:
    """Compile an HLO module (or HLO text) into an in-process Executable.

    Args:
        module: the module, or its HLO text. It is never changed: passes run on a clone.
        backend: "cpu", or "gpu" (NVPTX through llvmlite, run through the CUDA driver;
            returns a runtime.cuda.GpuExecutable; options are `backends.gpu.GpuOptions`,
            the architecture defaulting to the device's and keyed once resolved).
        optimize: run the default optimisation pipeline before code generation (False:
            compile the module as written).
        **options: backend options; for "cpu" see `backends.cpu.CpuOptions`
            (target_cpu, target_features, opt_level, entry_symbol, threads: by default
            the number of CPUs this process may use; `exe.threads` changes it later).

    Raises:
        HloParseError: malformed HLO text.
        UnsupportedOpError: an operation the backend cannot compile.
        CompileError: unknown backend or option, or code generation failed.
    """
    if isinstance(module, str):
        from hlo.parser import parse

        module = parse(module)
    if backend not in BACKENDS:
        raise CompileError(f"unknown backend '{backend}'; available: {', '.join(BACKENDS)}")
    if not isinstance(optimize, bool):
        raise CompileError(f"optimize must be True or False, got {optimize!r}")
    if backend == "gpu":
        return _compile_gpu(module, optimize, options)  # type: ignore[return-value]
    # In process, large loops use every CPU this process may use by default (as XLA's CPU
    # client does); exported libraries keep CpuOptions' one thread (tfcompile's default).
    options.setdefault("threads", min(len(os.sched_getaffinity(0)), MAX_THREADS))
    opts = _resolved_options(CpuOptions.from_kwargs(**options))
    passes = pipeline_pass_names(backend) if optimize else ()
    key = fingerprint(module, backend, opts, passes)
    exe = _recall(key)
    if exe is not None:
        return exe
    artifact = _disk_load(key)
    if artifact is None:
        artifact = compile_artifact(module, opts, optimize=optimize, backend=backend)
        _disk_store(key, artifact)
    exe = Executable(artifact)
    _remember(key, exe)
    return exe


def _recall(key: str) -> Any:
    """The in-memory cache's executable for `key` (now the most recently used), or None."""
    with _lock:
        exe = _memory.get(key)
        if exe is not None:
            _memory.move_to_end(key)
        return exe


def _remember(key: str, exe: Any) -> None:
    """Keep `exe` in the in-memory cache, dropping the least recently used entries."""
    with _lock:
        _memory[key] = exe
        while len(_memory) > _MEMORY_CACHE_SIZE:
            _memory.popitem(last=False)


def _compile_gpu(module: HloModule, optimize: bool, options: dict[str, Any]) -> Any:
    """compile(backend="gpu"): the in-memory cache, then the disk cache, then the compiler."""
    from backends.gpu import GpuOptions, compile_to_program, resolve_options
    from runtime.cuda import GpuExecutable

    opts = resolve_options(GpuOptions.from_kwargs(**options))
    passes = pipeline_pass_names("gpu") if optimize else ()
    key = fingerprint(module, "gpu", opts, passes)
    exe = _recall(key)
    if exe is not None:
        return exe
    program = gpu_disk_load(key)
    if program is None:
        target = optimize_module(module, "gpu")[0] if optimize else module
        program = compile_to_program(target, opts)
        gpu_disk_store(key, program)
    exe = GpuExecutable(program)
    _remember(key, exe)
    return exe


def optimize_module(module: HloModule, backend: str = "cpu") -> tuple[HloModule, Pipeline]:
    """A clone of `module` run through `default_pipeline(backend)`, and that pipeline (its
    `explain()` tells what fusion and buffer assignment decided). `module` is unchanged."""
    from compiler.passes.hlo_utils import clone_module
    from compiler.pipelines import default_pipeline

    copy = clone_module(module)
    pipeline = default_pipeline(backend)
    pipeline.run(copy)
    return copy, pipeline


def compile_artifact(module: HloModule, options: CpuOptions | None = None, *,
                     optimize: bool = True, backend: str = "cpu") -> CpuArtifact:
    """The CpuArtifact of `module` (no caches): optimised first unless `optimize` is False.

    This is what `compile` does on a cache miss, and what ahead-of-time exports should call
    so that a generated library gets the same code (and arena size) as `compile`. With
    `optimize`, the artifact's `extra` holds the optimised module (`"optimized_module"`)
    and the pipeline that made it (`"pipeline"`); the backend adds its buffer assignment.
    """
    opts = options if options is not None else CpuOptions()
    if not optimize:
        return compile_to_object(module, opts)
    target, pipeline = optimize_module(module, backend)
    artifact = compile_to_object(target, opts)
    artifact.extra["optimized_module"] = target
    artifact.extra["pipeline"] = pipeline
    return artifact


def pipeline_pass_names(backend: str = "cpu") -> tuple[str, ...]:
    """Names of the passes `compile(optimize=True)` runs, in order (part of the cache key)."""
    from compiler.pipeline import iter_passes
    from compiler.pipelines import default_pipeline

    return tuple(p.name for p in iter_passes(default_pipeline(backend)))


def clear_memory_cache() -> None:
    """Forget every in-memory compilation (the disk cache is kept)."""
    with _lock:
        _memory.clear()


def _resolved_options(opts: CpuOptions) -> CpuOptions:
    """Options with the host target filled in, so the cache key names the real target."""
    target = Target.resolve(opts.target_triple, opts.target_cpu, opts.target_features)
    return replace(opts, target_triple=target.triple, target_cpu=target.cpu,
                   target_features=target.features)


def compiler_version() -> str:
    """The compiler version plus a hash of the compiler, backend, runtime and IR sources
    (passes change the code as much as the backends do) and llvmlite's version."""
    global _source_hash
    if _source_hash is None:
        root = Path(__file__).resolve().parent.parent
        h = hashlib.sha256()
        for folder in ("compiler", "backends", "runtime", "hlo"):
            for path in sorted((root / folder).rglob("*.py")):
                h.update(str(path.relative_to(root)).encode())
                h.update(path.read_bytes())
        _source_hash = h.hexdigest()[:16]
    return f"{COMPILER_VERSION}+{_source_hash}+llvmlite{llvmlite.__version__}"


def fingerprint(module: HloModule, backend: str, options: Any,
                passes: tuple[str, ...] = ()) -> str:
    """The cache key of compiling `module` (its text before any pass) with `options` (a
    dataclass: CpuOptions or GpuOptions), after the passes named `passes`, by this
    compiler version."""
    from hlo.printer import to_text

    h = hashlib.sha256()
    h.update(to_text(module).encode())
    h.update(b"\0" + backend.encode())
    h.update(b"\0" + ",".join(passes).encode())
    h.update(b"\0" + json.dumps(asdict(options), sort_keys=True).encode())
    h.update(b"\0" + compiler_version().encode())
    return h.hexdigest()


# --- on-disk cache -------------------------------------------------------------------------


def _cache_dir() -> Path | None:
    directory = debug_options.get().cache_dir
    return Path(directory) if directory else None


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# What a corrupt or foreign cache entry may raise while it is read and decoded.
_ENTRY_ERRORS = (OSError, ValueError, KeyError, TypeError, EOFError, AttributeError,
                 pickle.UnpicklingError)


def _store_entry(key: str, names: tuple[str, str], data: bytes, meta: dict[str, Any]) -> None:
    """Write `data` as `<key><names[0]>`, then `meta` as JSON in `<key><names[1]>`: a
    metadata file is only ever next to a complete entry."""
    directory = _cache_dir()
    if directory is None:
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _atomic_write(directory / f"{key}{names[0]}", data)
        _atomic_write(directory / f"{key}{names[1]}", json.dumps(meta, sort_keys=True).encode())
    except OSError as e:
        log.warning("compile cache: cannot write %s: %s", directory, e)


def _load_entry(key: str, names: tuple[str, str], checksum: str,
                decode: Callable[[dict[str, Any], bytes], Any]) -> Any:
    """`decode(meta, data)` of the entry stored by `_store_entry`, or None when it is absent,
    or its data does not match the SHA-256 in `meta[checksum]`, or it cannot be decoded."""
    directory = _cache_dir()
    if directory is None:
        return None
    meta_path = directory / f"{key}{names[1]}"
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        data = (directory / f"{key}{names[0]}").read_bytes()
        if hashlib.sha256(data).hexdigest() != meta[checksum]:
            raise ValueError("the stored data does not match its checksum")
        return decode(meta, data)
    except _ENTRY_ERRORS as e:
        log.warning("compile cache: ignoring entry %s: %s", key, e)
        return None


_CPU_FILES = (".o", ".json")
_GPU_FILES = (".gpu.pkl", ".gpu.json")
_GPU_FORMAT = 1


def _disk_store(key: str, artifact: CpuArtifact) -> None:
    _store_entry(key, _CPU_FILES, artifact.object_code, artifact_metadata(artifact))


def _disk_load(key: str) -> CpuArtifact | None:
    return _load_entry(key, _CPU_FILES, "object_sha256", artifact_from_metadata)


def gpu_disk_store(key: str, program: Any) -> None:
    """Write a GpuProgram under `key`: its pickle (LLVM IR texts dropped, PTX kept) and the
    pickle's checksum."""
    ptx = replace(program.ptx, llvm_ir="", optimized_ir="")
    data = pickle.dumps(replace(program, ptx=ptx), protocol=pickle.HIGHEST_PROTOCOL)
    meta = {"format": _GPU_FORMAT, "sha256": hashlib.sha256(data).hexdigest()}
    _store_entry(key, _GPU_FILES, data, meta)


def gpu_disk_load(key: str) -> Any:
    """The GpuProgram stored under `key`, or None (absent, corrupt or of another format).

    The pickle is the cache directory's own, as trusted as the object code the CPU entries
    load into the process; its checksum guards against torn or damaged files.
    """

    def decode(meta: dict[str, Any], data: bytes) -> Any:
        if meta.get("format") != _GPU_FORMAT:
            raise ValueError(f"unknown cache format {meta.get('format')!r}")
        return pickle.loads(data)

    return _load_entry(key, _GPU_FILES, "sha256", decode)


def artifact_metadata(artifact: CpuArtifact) -> dict[str, Any]:
    """Everything of a CpuArtifact but its code and IR, as JSON-ready values."""
    return {
        "format": 1,
        "symbol": artifact.symbol,
        "param_shapes": [shape_to_json(s) for s in artifact.param_shapes],
        "result_shape": shape_to_json(artifact.result_shape),
        "arg_shapes": [shape_to_json(s) for s in artifact.arg_shapes],
        "result_shapes": [shape_to_json(s) for s in artifact.result_shapes],
        "temp_bytes": artifact.temp_bytes,
        "triple": artifact.triple,
        "cpu": artifact.cpu,
        "features": artifact.features,
        "opt_level": artifact.opt_level,
        "module_name": artifact.module_name,
        "param_names": list(artifact.param_names),
        "object_sha256": hashlib.sha256(artifact.object_code).hexdigest(),
        "threads": int(artifact.extra.get("threads", 1)),
    }


def artifact_from_metadata(meta: dict[str, Any], code: bytes) -> CpuArtifact:
    """A CpuArtifact from cached metadata and object code (its IR texts are empty)."""
    if meta.get("format") != 1:
        raise ValueError(f"unknown cache format {meta.get('format')!r}")
    return CpuArtifact(
        object_code=code,
        llvm_ir="",
        optimized_ir="",
        symbol=meta["symbol"],
        param_shapes=tuple(shape_from_json(s) for s in meta["param_shapes"]),
        result_shape=shape_from_json(meta["result_shape"]),
        arg_shapes=tuple(shape_from_json(s) for s in meta["arg_shapes"]),
        result_shapes=tuple(shape_from_json(s) for s in meta["result_shapes"]),
        temp_bytes=int(meta["temp_bytes"]),
        triple=meta["triple"],
        cpu=meta["cpu"],
        features=meta["features"],
        opt_level=int(meta["opt_level"]),
        module_name=meta["module_name"],
        param_names=tuple(meta["param_names"]),
        extra={"threads": int(meta.get("threads", 1))},
    )


def shape_to_json(shape: Shape) -> Any:
    """A Shape as plain JSON values."""
    if shape.is_tuple:
        return {"tuple": [shape_to_json(s) for s in shape.tuple_shapes]}
    return {
        "type": shape.element_type.value,
        "dims": list(shape.dims),
        "layout": None if shape.layout is None else list(shape.layout),
    }


def shape_from_json(value: Any) -> Shape:
    """The Shape written by `shape_to_json`."""
    if "tuple" in value:
        return Shape.tuple_of([shape_from_json(s) for s in value["tuple"]])
    t = PrimitiveType(value["type"])
    if t is PrimitiveType.TOKEN:
        return Shape.token()
    return Shape.array(t, value["dims"], value["layout"])
