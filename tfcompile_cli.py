"""The `tfcompile` command line: a TF graph or an HLO module to an object file and a header.

Follows tfcompile's flags and defaults (`--graph`, `--config`, `--cpp_class`,
`--entry_point=entry`, `--target_*`, `--out_function_object=out_model.o`,
`--out_header=out.h`, `--out_metadata_object`, `--gen_name_to_index`,
`--gen_program_shape`, `--dump_fetch_nodes`; boolean flags also take `=true`/`=false`) and
adds `--hlo`, `--check`, `--out_library`, `--dump_hlo_dir`, `--explain`,
`--arg_names/--result_names`
and `--backend gpu` (with `--gpu_arch`): a library whose Run() launches CUDA kernels.
Every user error (bad flags, unreadable or malformed input, a failing compile or link)
prints `error: ...` to stderr without a traceback and exits with status 1. This file only
reads flags and files; importing is `compiler.tf`, compiling and writing `compiler.export`.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hlo import debug_options
from hlo.errors import ArgumentError, TfcompileError
from hlo.module import HloModule

_DESCRIPTION = """\
Compiles a TensorFlow graph (with a tfcompile config) or an XLA HLO module ahead of time
into an object file and a C/C++ header (a C API and a C++ class with tfcompile's API), and
optionally a shared library."""

_EPILOG = """\
examples:
  tfcompile --graph=mygraph.pb --config=myfile.pbtxt --cpp_class="mynamespace::MyComputation"
  tfcompile --graph g.pbtxt --config g.config.pbtxt --check
  tfcompile --hlo matmul.hlo --cpp_class foo::bar::MatMulComp \\
            --out_function_object matmul.o --out_header matmul.h --out_library matmul.so
  tfcompile --hlo matmul.hlo --cpp_class foo::bar::MatMulComp --backend gpu --gpu_arch sm_80 \\
            --out_header matmul.h --out_library matmul.so

Unlike tfcompile, which always writes a metadata object (out_helper.o by default), this
writes one only when --out_metadata_object is given; otherwise the header holds the
program-shape data itself."""

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


class _UsageError(Exception):
    """Raised instead of argparse's exit so that main() reports it like every error."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def _flag(group: Any, name: str, help_text: str) -> None:
    """A tfcompile-style boolean flag: `--name`, `--name=true` or `--name=false`."""
    group.add_argument(name, nargs="?", const=True, default=False, type=_boolean,
                       metavar="BOOL", help=help_text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    from compiler.export import BACKENDS

    p = _Parser(
        prog="tfcompile",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = p.add_argument_group("input (one of)")
    source.add_argument("--graph", metavar="FILE",
                        help="TensorFlow GraphDef (.pb, or .pbtxt for text); needs --config")
    source.add_argument("--config", metavar="FILE",
                        help="tfcompile Config proto (feeds, fetches, variables) for --graph")
    source.add_argument("--hlo", metavar="FILE", help="XLA HLO text module to compile")
    modes = p.add_argument_group("modes that compile nothing")
    _flag(modes, "--check", "list the graph's nodes whose ops cannot be compiled, one per "
                            "line; exit status 1 if there are any, 0 if none")
    _flag(modes, "--dump_fetch_nodes", "print the config's fetch nodes, comma-separated, and "
                                       "exit (needs only --config)")
    p.add_argument("--cpp_class", metavar="[NS::...]NAME",
                   help="name of the generated C++ class, with namespaces allowed "
                        "(e.g. foo::bar::MatMulComp); required to compile")
    p.add_argument("--entry_point", default="entry",
                   help="name of the generated function; unique per program (default: entry)")
    p.add_argument("--backend", default="cpu", choices=BACKENDS,
                   help="cpu (default), or gpu: Run() launches CUDA kernels (embedded PTX) "
                        "through the driver, loaded at run time; the library needs no GPU "
                        "to link or load")
    p.add_argument("--gpu_arch", default=None, metavar="sm_XY",
                   help="for --backend gpu: the GPU architecture (default: sm_90)")
    p.add_argument("--target_triple", default="",
                   help="LLVM target triple (default: the host), e.g. aarch64-unknown-linux-gnu")
    p.add_argument("--target_cpu", default="", help="LLVM target cpu (default: the host's)")
    p.add_argument("--target_features", default="",
                   help="LLVM target features, e.g. +avx2 (default: the host's)")
    p.add_argument("--out_function_object", default="out_model.o", metavar="FILE",
                   help="object file to write (default: out_model.o)")
    p.add_argument("--out_header", default="out.h", metavar="FILE",
                   help="header file to write (default: out.h)")
    p.add_argument("--out_metadata_object", default="", metavar="FILE",
                   help="also write an object file holding the metadata (the program shape "
                        "of --gen_program_shape), which must then be linked too")
    _flag(p, "--gen_name_to_index", "generate the name tables of the "
                                    "Lookup{Arg,Result,Variable}Index methods")
    _flag(p, "--gen_program_shape", "generate the program-shape data of ProgramShape()")
    p.add_argument("--out_library", default="", metavar="FILE",
                   help="also link a shared library depending only on libc, libm and "
                        "pthreads (needs a C compiler: $CC, cc, gcc or clang)")
    p.add_argument("--dump_hlo_dir", default="", metavar="DIR",
                   help="dump the module after each compiler pass and each backend stage")
    _flag(p, "--explain", "also write <object without .o>.explain.txt next to the object "
                          "file: each fusion decision (fused or not, and why) and each "
                          "buffer of the compiled code (where it lives, reused or not, in "
                          "place or not, and why)")
    p.add_argument("--arg_names", default="", metavar="A,B,...",
                   help="for --hlo: comma-separated names of the flattened arguments (empty "
                        "entries for unnamed ones), giving accessors such as arg_A_data(); "
                        "a graph's names come from its config")
    p.add_argument("--result_names", default="", metavar="A,B,...",
                   help="for --hlo: comma-separated names of the flattened results")
    return p


def _names(text: str) -> tuple[str | None, ...] | None:
    if not text:
        return None
    return tuple(name.strip() or None for name in text.split(","))


def _read(path: str, flag: str) -> str:
    file = Path(path)
    if not file.is_file():
        raise ArgumentError(f"{flag}: file '{path}' does not exist")
    try:
        return file.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ArgumentError(f"{flag}: cannot read '{path}': {e}") from None


def _check_exists(path: str, flag: str) -> None:
    if not Path(path).is_file():
        raise ArgumentError(f"{flag}: file '{path}' does not exist")


def _tf_frontend() -> Any:
    """The TensorFlow frontend module, or a user error saying it is missing."""
    if importlib.util.find_spec("compiler.tf") is None:
        raise ArgumentError(
            "the TensorFlow GraphDef frontend (compiler.tf) is not available yet; "
            "export the graph as HLO text and use --hlo"
        )
    from compiler import tf

    return tf


def _read_config(path: str) -> Any:
    """The tf2xla Config message in `path` (text or binary)."""
    _check_exists(path, "--config")
    _tf_frontend()
    from compiler.frontends.tf_graphdef import read_config

    return read_config(path)


def _check_sources(args: argparse.Namespace) -> None:
    if args.hlo and (args.graph or args.config):
        raise ArgumentError("give either --hlo or --graph/--config, not both")
    if (args.graph or args.config) and not (args.graph and args.config):
        raise ArgumentError("--graph and --config must be given together")
    if not (args.hlo or args.graph):
        raise ArgumentError("no input: give --graph FILE --config FILE (or --hlo FILE)")


def _load_module(args: argparse.Namespace) -> tuple[HloModule, Any]:
    """The module named by --hlo, or imported from --graph/--config with its names."""
    from compiler.export import LibraryNames, tf_library_names

    if args.graph:
        if args.arg_names or args.result_names:
            raise ArgumentError("--arg_names/--result_names are for --hlo; a graph's names "
                                "come from the 'name' fields of its config")
        tf = _tf_frontend()
        config = _read_config(args.config)
        _check_exists(args.graph, "--graph")
        imported: HloModule = tf.import_graph(args.graph, args.config)
        return imported, tf_library_names(imported.attrs["tf_signature"], config)
    from hlo.parser import parse
    from hlo.verifier import verify

    text = _read(args.hlo, "--hlo")
    try:
        module = parse(text, name_hint=Path(args.hlo).stem)
        verify(module)
    except TfcompileError as e:
        # Same error class (HloParseError keeps its line and column in the text), but
        # naming the file, since the command line may read several.
        raise type(e)(f"{args.hlo}: {e}") from None
    return module, LibraryNames(_names(args.arg_names), _names(args.result_names))


def _dump_stages(directory: Path, module: HloModule, artifact: Any) -> None:
    """Write the compiled module and the backend's stage outputs under `directory`.

    Pass-by-pass HLO dumps come from the pipeline's DumpInstrument (through the dump_dir
    flag set around compilation); this adds what only the command line holds at the end:
    the module as compiled, and the LLVM IR before and after optimisation and the assembly.
    """
    from hlo.printer import to_text

    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", module.name) or "module"
    stages = {
        f"{stem}.input.hlo": lambda: to_text(module),
        f"{stem}.llvm.ll": lambda: artifact.llvm_ir,
        f"{stem}.llvm_opt.ll": lambda: artifact.optimized_ir,
        f"{stem}.s": artifact.asm,
    }
    for name, text in stages.items():
        (directory / name).write_text(text())


def explain_path(object_path: str) -> Path:
    """Where --explain writes: next to the object file, `out_model.o` -> `out_model.explain.txt`."""
    path = Path(object_path)
    return path.with_name(f"{path.stem if path.suffix == '.o' else path.name}.explain.txt")


def explanation(artifact: Any) -> str:
    """What the compiler decided and why: the pipeline's explainable passes (fusion, buffer
    assignment of the optimised module), then the buffers of the compiled entry function
    (kernel scratch included), as the code uses them."""
    extra = getattr(artifact, "extra", {})
    sections = []
    pipeline = extra.get("pipeline")
    if pipeline is not None:
        sections.append(pipeline.explain())
    assignment = extra.get("buffer_assignment")
    if assignment is not None:
        sections.append("== buffers of the compiled code (kernel scratch included) ==\n"
                        + assignment.explain())
    if not sections:
        return "no explanation: this backend records no fusion or buffer decisions\n"
    return "\n".join(sections)


def compile_from_args(args: argparse.Namespace) -> list[str]:
    """Compile and write what the flags ask for; returns notes to print (skipped outputs)."""
    from backends.libspec import check_identifier, parse_cpp_class
    from compiler.export import (
        check_backend_options,
        check_module_names,
        compile_gpu_object,
        compile_object,
        program_shape_text,
        write_library,
    )

    # Flags first: a typo in --cpp_class should not cost a compilation.
    if not args.cpp_class:
        raise ArgumentError("--cpp_class is required, e.g. --cpp_class=foo::bar::MatMulComp")
    parse_cpp_class(args.cpp_class)
    check_identifier(args.entry_point, "--entry_point")
    check_backend_options(args.backend, args.target_triple, args.target_cpu,
                          args.target_features, args.gpu_arch)
    module, names = _load_module(args)
    check_module_names(module, names)
    if args.dump_hlo_dir:
        Path(args.dump_hlo_dir).mkdir(parents=True, exist_ok=True)
    dump = {"dump_dir": args.dump_hlo_dir} if args.dump_hlo_dir else {}
    with debug_options.override(**dump):
        if args.backend == "gpu":
            artifact = compile_gpu_object(module, args.entry_point, args.cpp_class, names,
                                          args.gpu_arch)
        else:
            artifact = compile_object(module, args.entry_point, args.target_triple or None,
                                      args.target_cpu or None, args.target_features or None)
    if args.dump_hlo_dir:
        _dump_stages(Path(args.dump_hlo_dir), module, artifact)
    notes = []
    if args.explain:
        path = explain_path(args.out_function_object)
        path.write_text(explanation(artifact))
        notes.append(f"wrote the compiler's decisions to {path}")
    library = write_library(
        artifact,
        cpp_class=args.cpp_class,
        object_path=Path(args.out_function_object),
        header_path=Path(args.out_header),
        library_path=Path(args.out_library) if args.out_library else None,
        arg_names=names.arg_names,
        result_names=names.result_names,
        variables=names.variables,
        program_shape=program_shape_text(module),
        gen_name_to_index=args.gen_name_to_index,
        gen_program_shape=args.gen_program_shape,
        metadata_path=Path(args.out_metadata_object) if args.out_metadata_object else None,
    )
    return [*notes, *library.notes]


def dump_fetch_nodes(args: argparse.Namespace) -> str:
    """tfcompile's --dump_fetch_nodes: the config's fetch node names, sorted, comma-joined."""
    if not args.config:
        raise ArgumentError("--dump_fetch_nodes needs --config")
    config = _read_config(args.config)
    return ",".join(sorted({fetch.id.node_name for fetch in config.fetch}))


def check(args: argparse.Namespace) -> list[tuple[str, str]]:
    """--check: the (node, op) pairs of the pruned graph that cannot be compiled."""
    if args.hlo or not (args.graph and args.config):
        raise ArgumentError("--check needs --graph and --config")
    _check_exists(args.graph, "--graph")
    _check_exists(args.config, "--config")
    missing: list[tuple[str, str]] = _tf_frontend().check_graph(args.graph, args.config)
    return missing


def run(args: argparse.Namespace) -> int:
    """Do what the parsed flags ask; returns the exit status. Raises TfcompileError."""
    if args.dump_fetch_nodes:
        print(dump_fetch_nodes(args))
        return 0
    if args.check:
        missing = check(args)
        for node, op in missing:
            print(f"{node}: {op}")
        if missing:
            ops = ", ".join(sorted({op for _, op in missing}))
            print(f"error: {len(missing)} node(s) use ops that cannot be compiled: {ops}",
                  file=sys.stderr)
            return 1
        print(f"{args.graph}: every op the fetches need can be compiled")
        return 0
    _check_sources(args)
    for note in compile_from_args(args):
        print(f"note: {note}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status (0 ok, 1 error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return run(args)
    except SystemExit as e:  # --help / --version
        return int(e.code or 0)
    except _UsageError as e:
        print(f"error: {e}\n(run 'tfcompile --help' for usage)", file=sys.stderr)
        return 1
    except TfcompileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
