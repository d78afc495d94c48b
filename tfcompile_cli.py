"""The `tfcompile` command line: an HLO module to an object file, a header and a library.

Follows tfcompile's flags and defaults (`--cpp_class`, `--entry_point=entry`,
`--out_function_object=out_model.o`, `--out_header=out.h`, `--target_*`) and adds
`--hlo`, `--out_library`, `--dump_hlo_dir` and `--arg_names/--result_names`. Every
user error (bad flags, unreadable or malformed input, a failing compile or link) prints
`error: ...` to stderr without a traceback and exits with status 1. This file only reads
flags and files; compiling and writing is `compiler.export`.
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
Compiles an XLA HLO module ahead of time into an object file and a C/C++ header
(a C API and a C++ class with tfcompile's API), and optionally a shared library."""

_EPILOG = """\
example:
  tfcompile --hlo matmul.hlo --cpp_class foo::bar::MatMulComp \\
            --out_function_object matmul.o --out_header matmul.h --out_library matmul.so"""


class _UsageError(Exception):
    """Raised instead of argparse's exit so that main() reports it like every error."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    p = _Parser(
        prog="tfcompile",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = p.add_argument_group("input (one of)")
    source.add_argument("--hlo", metavar="FILE", help="XLA HLO text module to compile")
    source.add_argument("--graph", metavar="FILE",
                        help="TensorFlow GraphDef (.pb, or .pbtxt for text); needs --config")
    source.add_argument("--config", metavar="FILE",
                        help="tfcompile Config proto (feeds and fetches) for --graph")
    p.add_argument("--cpp_class", required=True, metavar="[NS::...]NAME",
                   help="name of the generated C++ class, with namespaces allowed "
                        "(e.g. foo::bar::MatMulComp)")
    p.add_argument("--entry_point", default="entry",
                   help="name of the generated function; unique per program (default: entry)")
    p.add_argument("--target_triple", default="",
                   help="LLVM target triple (default: the host), e.g. aarch64-unknown-linux-gnu")
    p.add_argument("--target_cpu", default="", help="LLVM target cpu (default: the host's)")
    p.add_argument("--target_features", default="",
                   help="LLVM target features, e.g. +avx2 (default: the host's)")
    p.add_argument("--out_function_object", default="out_model.o", metavar="FILE",
                   help="object file to write (default: out_model.o)")
    p.add_argument("--out_header", default="out.h", metavar="FILE",
                   help="header file to write (default: out.h)")
    p.add_argument("--out_library", default="", metavar="FILE",
                   help="also link a shared library depending only on libc, libm and "
                        "pthreads (needs a C compiler: $CC, cc, gcc or clang)")
    p.add_argument("--dump_hlo_dir", default="", metavar="DIR",
                   help="dump the module after each compiler pass and each backend stage")
    p.add_argument("--arg_names", default="", metavar="A,B,...",
                   help="comma-separated names of the flattened arguments (empty entries "
                        "for unnamed ones), giving accessors such as arg_A_data()")
    p.add_argument("--result_names", default="", metavar="A,B,...",
                   help="comma-separated names of the flattened results")
    return p


def _names(text: str) -> list[str | None] | None:
    if not text:
        return None
    return [name.strip() or None for name in text.split(",")]


def _read(path: str, flag: str) -> str:
    file = Path(path)
    if not file.is_file():
        raise ArgumentError(f"{flag}: file '{path}' does not exist")
    try:
        return file.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ArgumentError(f"{flag}: cannot read '{path}': {e}") from None


def _load_module(args: argparse.Namespace) -> HloModule:
    """The HLO module named by --hlo, or imported from --graph/--config."""
    if args.hlo and args.graph:
        raise ArgumentError("give either --hlo or --graph/--config, not both")
    if args.graph or args.config:
        if not (args.graph and args.config):
            raise ArgumentError("--graph and --config must be given together")
        if importlib.util.find_spec("compiler.tf") is None:
            raise ArgumentError(
                "the TensorFlow GraphDef frontend (compiler.tf) is not available yet; "
                "export the graph as HLO text and use --hlo"
            )
        from compiler import tf

        for flag, path in (("--graph", args.graph), ("--config", args.config)):
            if not Path(path).is_file():
                raise ArgumentError(f"{flag}: file '{path}' does not exist")
        imported: HloModule = tf.import_graph(args.graph, args.config)
        return imported
    if not args.hlo:
        raise ArgumentError("no input: give --hlo FILE (or --graph FILE --config FILE)")
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
    return module


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


def compile_from_args(args: argparse.Namespace) -> list[str]:
    """Compile and write what the flags ask for; returns notes to print (skipped outputs)."""
    from backends.cglue import check_identifier, parse_cpp_class
    from compiler.export import (
        check_module_names,
        compile_object,
        program_shape_text,
        write_library,
    )

    # Flags first: a typo in --cpp_class should not cost a compilation.
    parse_cpp_class(args.cpp_class)
    check_identifier(args.entry_point, "--entry_point")
    module = _load_module(args)
    arg_names, result_names = _names(args.arg_names), _names(args.result_names)
    check_module_names(module, arg_names, result_names)
    if args.dump_hlo_dir:
        Path(args.dump_hlo_dir).mkdir(parents=True, exist_ok=True)
    dump = {"dump_dir": args.dump_hlo_dir} if args.dump_hlo_dir else {}
    with debug_options.override(**dump):
        artifact = compile_object(module, args.entry_point, args.target_triple or None,
                                  args.target_cpu or None, args.target_features or None)
    if args.dump_hlo_dir:
        _dump_stages(Path(args.dump_hlo_dir), module, artifact)
    library = write_library(
        artifact,
        cpp_class=args.cpp_class,
        object_path=Path(args.out_function_object),
        header_path=Path(args.out_header),
        library_path=Path(args.out_library) if args.out_library else None,
        arg_names=arg_names,
        result_names=result_names,
        program_shape=program_shape_text(module),
    )
    return list(library.notes)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status (0 ok, 1 error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        notes = compile_from_args(args)
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
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
