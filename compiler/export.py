"""export_library: an HLO module to `<prefix>.o`, `<prefix>.h` and `<prefix>.so`.

The object comes from the CPU backend, or for `backend="gpu"` from `backends.gpu_aot` (host
C code that launches embedded PTX through the CUDA driver, opened with dlopen at run time);
the header from `backends.cheader`; the optional metadata object (tfcompile's
--out_metadata_object) from `backends.cmetadata`. The shared object is linked by the system
C compiler from the object(s) and the C API glue, with `-lm -lpthread` (GPU: `-ldl
-lpthread`) and nothing else, so it depends only on the C library, libm (GPU: libdl) and
pthreads. A module imported from a TensorFlow graph carries its tfcompile signature, from
which the names and variables of the generated class follow.
This file does not generate code itself and does not load what it writes (the runtime does).
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from backends.cglue import DeviceEntry, glue_source
from backends.cheader import generate_header
from backends.cmetadata import metadata_object
from backends.libspec import (
    LibrarySpec,
    check_identifier,
    parse_cpp_class,
)
from hlo.errors import ArgumentError, CompileError
from hlo.module import HloModule
from hlo.shape import Shape

log = logging.getLogger(__name__)


# Seconds one compiler or linker invocation may take before we call it hung.
_TOOL_TIMEOUT_S = 300

# What export_library(backend=...) and tfcompile --backend accept.
BACKENDS = ("cpu", "gpu")

# The system libraries a shared object links, per kind of library.
_HOST_LIBRARIES = ("-lm", "-lpthread")
_DEVICE_LIBRARIES = ("-ldl", "-lpthread")


class ObjectArtifact(Protocol):
    """What export needs of a compiled function (backends.cpu.CpuArtifact has it).

    A GPU artifact (backends.gpu_aot.GpuArtifact) also has `device_entry`, the ABI of its
    entry functions, which the header and the glue then follow.
    """

    @property
    def object_code(self) -> bytes: ...

    @property
    def symbol(self) -> str: ...

    @property
    def arg_shapes(self) -> Sequence[Shape]: ...

    @property
    def result_shapes(self) -> Sequence[Shape]: ...

    @property
    def temp_bytes(self) -> int: ...

    @property
    def triple(self) -> str: ...


@dataclass(frozen=True)
class ExportedLibrary:
    """What export_library wrote.

    Attributes:
        spec: the library's signature and names (as the header states them).
        object_path: the relocatable object holding the compiled function.
        header_path: the C/C++ header.
        library_path: the shared object, or None when it was not linked (see notes).
        notes: why something was skipped (e.g. a cross target cannot be linked here).
        metadata_path: the metadata object, or None when none was asked for.
    """

    spec: LibrarySpec
    object_path: Path
    header_path: Path
    library_path: Path | None
    notes: tuple[str, ...] = ()
    metadata_path: Path | None = None


@dataclass(frozen=True)
class LibraryNames:
    """The names of a library's buffers: per argument, per result, and its variables.

    Attributes:
        arg_names, result_names: one optional identifier per flattened argument / result.
        variables: (name, readonly) per variable, in order; variables are the last
            arguments, and those not readonly also the last results (tfcompile's layout).
    """

    arg_names: tuple[str | None, ...] | None = None
    result_names: tuple[str | None, ...] | None = None
    variables: tuple[tuple[str, bool], ...] = ()


def export_library(
    module: HloModule,
    prefix: str | os.PathLike[str],
    cpp_class: str,
    entry_point: str | None = None,
    target_triple: str | None = None,
    target_cpu: str | None = None,
    target_features: str | None = None,
    arg_names: Sequence[str | None] | None = None,
    result_names: Sequence[str | None] | None = None,
    variables: Sequence[tuple[str, bool]] | None = None,
    gen_name_to_index: bool = True,
    gen_program_shape: bool = True,
    backend: str = "cpu",
    gpu_arch: str | None = None,
    gpu_cubin: bool = False,
) -> ExportedLibrary:
    """Compile `module` ahead of time into `<prefix>.o`, `<prefix>.h` and `<prefix>.so`.

    Args:
        module: the HLO module; its entry computation becomes the library's function.
        prefix: output path without extension; parent directories are created.
        cpp_class: `ns1::ns2::Name` of the generated C++ class (namespaces optional).
        entry_point: symbol of the compiled function; default `<c_prefix>_entry` (derived
            from the class, so that several libraries link into one program).
        target_triple, target_cpu, target_features: LLVM target; default the host.
        arg_names, result_names: optional identifiers per flattened argument / result,
            giving name-based accessors (`arg_x_data()`, `result_y(...)`).
        variables: (name, readonly) of the last arguments that are variables (see
            `LibraryNames`). When names and variables are all None and the module was
            imported from a TensorFlow graph, they come from its tfcompile signature.
        gen_name_to_index, gen_program_shape: generate the name tables of the Lookup
            methods and the data of ProgramShape() (tfcompile's flags of the same names,
            which default to off there).
        backend: "cpu", or "gpu" for a library whose Run() launches CUDA kernels (same
            class API, plus RunWithDevicePointers; see `backends.gpu_aot`).
        gpu_arch: for "gpu": the architecture, `sm_XY` (default sm_90).
        gpu_cubin: for "gpu": embed a cubin assembled by ptxas instead of PTX.

    Returns:
        The paths written. For a target this machine cannot link for (e.g. aarch64 on
        x86-64), `library_path` is None and `notes` says why.

    Raises:
        ArgumentError: a bad class, entry point, name or backend, or target options that
            do not apply to the backend (before compiling anything).
        CompileError: the backend failed, or no C compiler could link the shared object
            (the .o and .h are written first), or the C compiler failed (its stderr and
            the exact command are in the message). For "gpu" the object itself needs the C
            compiler.
    """
    check_backend_options(backend, target_triple, target_cpu, target_features, gpu_arch,
                          gpu_cubin)
    namespaces, class_name = parse_cpp_class(cpp_class)
    if entry_point is None:
        entry_point = "_".join((*namespaces, class_name)) + "_entry"
    names = LibraryNames(
        None if arg_names is None else tuple(arg_names),
        None if result_names is None else tuple(result_names),
        tuple(variables or ()),
    )
    signature = module.attrs.get("tf_signature")
    if signature is not None and arg_names is None and result_names is None and not variables:
        names = tf_library_names(signature)
    # Validate names before the (slow) compilation; write_library checks them again.
    check_identifier(entry_point, "entry_point")
    check_module_names(module, names)
    artifact: ObjectArtifact
    if backend == "gpu":
        artifact = compile_gpu_object(module, entry_point, cpp_class, names, gpu_arch,
                                      gpu_cubin)
    else:
        artifact = compile_object(module, entry_point, target_triple, target_cpu,
                                  target_features)
    return write_library(
        artifact,
        cpp_class=cpp_class,
        object_path=Path(f"{os.fspath(prefix)}.o"),
        header_path=Path(f"{os.fspath(prefix)}.h"),
        library_path=Path(f"{os.fspath(prefix)}.so"),
        arg_names=names.arg_names,
        result_names=names.result_names,
        variables=names.variables,
        program_shape=program_shape_text(module),
        gen_name_to_index=gen_name_to_index,
        gen_program_shape=gen_program_shape,
    )


def compile_object(
    module: HloModule,
    entry_point: str,
    target_triple: str | None = None,
    target_cpu: str | None = None,
    target_features: str | None = None,
) -> ObjectArtifact:
    """The optimised CPU artifact for `module` with `entry_point` as its symbol: the same
    pipeline and code generation as `compiler.compile`, so the header's memory figures are
    the buffer assignment's."""
    from backends.cpu import CpuOptions
    from compiler.api import compile_artifact

    options: dict[str, Any] = {"entry_symbol": entry_point}
    if target_triple:
        options["target_triple"] = target_triple
    if target_cpu:
        options["target_cpu"] = target_cpu
    if target_features:
        options["target_features"] = target_features
    artifact: ObjectArtifact = compile_artifact(module, CpuOptions.from_kwargs(**options))
    return artifact


def check_backend_options(
    backend: str,
    target_triple: str | None = None,
    target_cpu: str | None = None,
    target_features: str | None = None,
    gpu_arch: str | None = None,
    gpu_cubin: bool = False,
) -> None:
    """Raise ArgumentError for an unknown backend or options meant for the other one."""
    if backend not in BACKENDS:
        raise ArgumentError(f"backend '{backend}' is not one of {', '.join(BACKENDS)}")
    if backend == "gpu" and (target_triple or target_cpu or target_features):
        raise ArgumentError("target_triple/target_cpu/target_features are for the cpu backend; "
                            "the gpu backend's host code is built for this machine by its C "
                            "compiler, its kernels for gpu_arch")
    if backend == "cpu" and (gpu_arch or gpu_cubin):
        raise ArgumentError("gpu_arch/gpu_cubin are for the gpu backend (backend='gpu', "
                            "tfcompile --backend gpu)")


def compile_gpu_object(
    module: HloModule,
    entry_point: str,
    cpp_class: str,
    names: LibraryNames,
    gpu_arch: str | None = None,
    cubin: bool = False,
) -> ObjectArtifact:
    """The GPU artifact for `module`: kernels for `gpu_arch` and their host code as an
    object defining `entry_point` (and `<entry_point>_device`). The names and variables
    appear in its error messages and variable write-back, so they must be those the
    library is then written with."""
    from backends import gpu_aot

    program = gpu_aot.compile_gpu_program(module, gpu_arch)
    spec = LibrarySpec.create(
        cpp_class, entry_point, list(program.arg_shapes), list(program.result_shapes), 0,
        arg_names=names.arg_names, result_names=names.result_names,
        variables=names.variables,
    )
    artifact: ObjectArtifact = gpu_aot.build_gpu_artifact(program, spec, cubin)
    return artifact


def write_library(
    artifact: ObjectArtifact,
    *,
    cpp_class: str,
    object_path: Path,
    header_path: Path,
    library_path: Path | None,
    arg_names: Sequence[str | None] | None = None,
    result_names: Sequence[str | None] | None = None,
    variables: Sequence[tuple[str, bool]] | None = None,
    program_shape: str | None = None,
    gen_name_to_index: bool = True,
    gen_program_shape: bool = True,
    metadata_path: Path | None = None,
) -> ExportedLibrary:
    """Write the object and header of a compiled `artifact` (and the metadata object when
    `metadata_path` is given, which then holds the program-shape data), then link the
    shared object.

    `library_path=None` skips linking. See `export_library` for the other arguments and
    the errors.
    """
    spec = LibrarySpec.create(
        cpp_class,
        artifact.symbol,
        list(artifact.arg_shapes),
        list(artifact.result_shapes),
        artifact.temp_bytes,
        arg_names=arg_names,
        result_names=result_names,
        variables=variables,
        program_shape=program_shape,
        target_triple=artifact.triple,
        gen_name_to_index=gen_name_to_index,
        gen_program_shape=gen_program_shape,
        program_shape_in_object=metadata_path is not None,
    )
    for path in (object_path, header_path, library_path, metadata_path):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    object_path.write_bytes(artifact.object_code)
    if metadata_path is not None:
        metadata_path.write_bytes(metadata_object(spec))
    # A GPU artifact's entry functions have their own ABI (see ObjectArtifact).
    device: DeviceEntry | None = getattr(artifact, "device_entry", None)
    header_path.write_text(generate_header(spec, device))
    if library_path is None:
        return ExportedLibrary(spec, object_path, header_path, None, (), metadata_path)
    reason = cross_target_reason(artifact.triple)
    if reason is not None:
        note = f"{library_path} was not linked: {reason}; link {object_path} with a toolchain "
        note += "for that target"
        log.info(note)
        return ExportedLibrary(spec, object_path, header_path, None, (note,), metadata_path)
    extra = [metadata_path] if metadata_path is not None else []
    link_shared_object(spec, object_path, header_path, library_path, extra, device)
    return ExportedLibrary(spec, object_path, header_path, library_path, (), metadata_path)


def program_shape_text(module: HloModule) -> str:
    """The module's signature for the header: `(f32[2,3], f32[3,2]) -> f32[2,2]`. For a
    module imported from a TensorFlow graph, the text tfcompile reports, which names the
    parameters as XLA prints a program shape: `(arg0: f32[2,2]) -> (f32[2,2])`."""
    program = module.program_shape()
    params = [p.to_text(False) for p in program.parameters]
    if "tf_signature" in module.attrs:
        params = [f"arg{i}: {text}" for i, text in enumerate(params)]
    return f"({', '.join(params)}) -> {program.result.to_text(False)}"


def tf_library_names(signature: Any, config: Any = None) -> LibraryNames:
    """The names tfcompile gives the buffers of an imported TensorFlow graph.

    Feeds and fetches are named by their config `name` only; variables by their `name`,
    else their node name; variables are the last arguments and the updated ones the last
    results, unnamed as buffers. Without the `config` (a tensorflow.tf2xla.Config
    message), the names come from the module's `TfSignature` (`compiler.tf`), which falls
    back to node names; a fallback that is not an identifier leaves the buffer unnamed.

    Raises:
        ArgumentError: a config name that is not a C++ identifier (tfcompile rejects it).
    """
    if config is not None:
        feeds = [_config_name(f.name, f"feed #{i}") for i, f in enumerate(config.feed)]
        fetches = [_config_name(f.name, f"fetch #{i}") for i, f in enumerate(config.fetch)]
        variables = []
        for i, v in enumerate(config.variable):
            name = _config_name(v.name or v.node_name, f"variable #{i}")
            assert name is not None
            variables.append((name, bool(v.readonly)))
    else:
        feeds = [f.name if _is_identifier(f.name) else None for f in signature.feeds]
        fetches = [f.name if _is_identifier(f.name) else None for f in signature.fetches]
        variables = [(v.name, v.readonly) for v in signature.variables]
    updated = sum(1 for _, readonly in variables if not readonly)
    return LibraryNames(
        tuple(feeds) + (None,) * len(variables),
        tuple(fetches) + (None,) * updated,
        tuple(variables),
    )


def _config_name(name: str, what: str) -> str | None:
    if not name:
        return None
    check_identifier(name, f"config: {what} name")
    return name


def _is_identifier(name: str) -> bool:
    try:
        check_identifier(name, "name")
    except ArgumentError:
        return False
    return True


def check_module_names(module: HloModule, names: LibraryNames) -> None:
    """Check names against the module's flattened buffers (tokens have none, so no name).

    Raises:
        ArgumentError: a wrong count, a non-identifier, a duplicate, or variables that do
            not fit the buffers.
    """
    program = module.program_shape()
    arg_leaves = [leaf for p in program.parameters for leaf in p.leaves() if leaf.is_array]
    result_leaves = [leaf for leaf in program.result.leaves() if leaf.is_array]
    # LibrarySpec.create runs every check; a spec of the shapes alone costs nothing.
    LibrarySpec.create("Check", "check", arg_leaves, result_leaves, 0,
                       arg_names=names.arg_names, result_names=names.result_names,
                       variables=names.variables)


# --- linking ----------------------------------------------------------------------------------
_ARCH_ALIASES = {"arm64": "aarch64", "amd64": "x86_64", "x86-64": "x86_64"}


def _arch_and_os(triple: str) -> tuple[str, str]:
    parts = triple.lower().split("-")
    arch = _ARCH_ALIASES.get(parts[0], parts[0])
    system = next((p for p in parts[1:] if p in ("linux", "darwin", "windows", "macosx")), "")
    return arch, system


def cross_target_reason(triple: str) -> str | None:
    """Why this machine's C compiler cannot link for `triple`, or None if it can."""
    if not triple:
        return None
    from llvmlite import binding

    host = binding.get_process_triple()
    if _arch_and_os(triple) == _arch_and_os(host):
        return None
    return f"target {triple} is not the host ({host})"


def find_c_compiler() -> list[str]:
    """The C compiler command: $CC (may carry arguments), else cc, gcc or clang from PATH.

    Raises:
        CompileError: none found; says what was looked for.
    """
    env = os.environ.get("CC", "").strip()
    if env:
        argv = shlex.split(env)
        if shutil.which(argv[0]) is None:
            raise CompileError(f"$CC is '{env}' but '{argv[0]}' is not an executable on PATH")
        return argv
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name) is not None:
            return [name]
    raise CompileError("no C compiler found: $CC is not set and none of cc, gcc, clang is on PATH")


def run_tool(argv: Sequence[str], cwd: Path) -> None:
    """Run an external tool; on failure raise CompileError with its stderr and the command."""
    command = shlex.join(argv)
    log.debug("running: %s (in %s)", command, cwd)
    try:
        done = subprocess.run(
            list(argv), cwd=cwd, capture_output=True, text=True, timeout=_TOOL_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CompileError(f"cannot run '{command}' (in {cwd}): {e}") from None
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()
        raise CompileError(
            f"'{argv[0]}' failed with exit status {done.returncode}:\n{output}\n"
            f"command (in {cwd}):\n  {command}"
        )


def link_shared_object(
    spec: LibrarySpec,
    object_path: Path,
    header_path: Path,
    library_path: Path,
    extra_objects: Sequence[Path] = (),
    device: DeviceEntry | None = None,
) -> None:
    """Link `library_path` from the object (and `extra_objects`) and the C API glue.

    The glue object is built in a scratch directory that is removed on
    success and kept on failure, so the reported command can be re-run as is.

    Raises:
        CompileError: no C compiler, or the compiler/linker failed.
    """
    try:
        cc = find_c_compiler()
    except CompileError as e:
        raise CompileError(
            f"{object_path} and {header_path} were written, but {library_path} could not be "
            f"linked: {e}"
        ) from None
    scratch = Path(tempfile.mkdtemp(prefix="tfcompile-link-"))
    glue = scratch / "glue.c"
    glue.write_text(glue_source(spec, header_path.name))
    libraries = _DEVICE_LIBRARIES if device is not None else _HOST_LIBRARIES
    header_dir = str(header_path.resolve().parent)
    glue_object = scratch / "glue.o"
    run_tool(
        [*cc, "-std=c11", "-O2", "-fPIC", "-I", header_dir, "-c", str(glue), "-o",
         str(glue_object)],
        scratch,
    )
    objects = [str(object_path.resolve()), *(str(o.resolve()) for o in extra_objects),
               str(glue_object)]
    run_tool(
        [*cc, "-shared", f"-Wl,-soname,{library_path.name}", "-o", str(library_path.resolve()),
         *objects, *libraries],
        scratch,
    )
    shutil.rmtree(scratch, ignore_errors=True)
