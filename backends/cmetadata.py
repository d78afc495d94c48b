"""Program-shape metadata of a generated library: in the header, or in a metadata object.

tfcompile's `--gen_program_shape` makes the generated class's `ProgramShape()` return the
computation's parameter and result shapes, which tfcompile serializes (a protocol buffer)
into the object named by `--out_metadata_object`; without the flag it returns nullptr.
Here the shapes are plain C structs (`tfcompile_program_shape`, declared once in every
header): defined inside the header itself, or, when the library has a metadata object,
as one exported constant of that object, which this file writes as LLVM IR and compiles
for the library's target. It knows nothing of HLO; the shapes come from the `LibrarySpec`.
"""

from __future__ import annotations

from collections.abc import Sequence

from backends.libspec import BufferSpec, LibrarySpec

# Declared by every generated header under one guard, so that headers of several libraries
# can be included together; the version in the guard changes with the layout.
C_TYPES = """\
#ifndef TFCOMPILE_PY_PROGRAM_SHAPE_TYPES_V1_
#define TFCOMPILE_PY_PROGRAM_SHAPE_TYPES_V1_
/* Program-shape metadata (tfcompile's ProgramShape(), as plain data): the shapes of the
 * parameters and of the elements of the result tuple, in argument / result order. */
typedef struct tfcompile_shape_info {
  const char* element_type;  /* HLO element type name, e.g. "f32" */
  int64_t rank;
  const int64_t* dims;       /* rank entries, row-major; NULL when rank is 0 */
} tfcompile_shape_info;

typedef struct tfcompile_program_shape {
  int64_t num_parameters;
  const tfcompile_shape_info* parameters;  /* NULL when there are none */
  int64_t num_results;                     /* the result is a tuple of these */
  const tfcompile_shape_info* results;
  const char* text;  /* e.g. "(arg0: f32[2,2], arg1: f32[2,2]) -> (f32[2,2])" */
} tfcompile_program_shape;
#endif  /* TFCOMPILE_PY_PROGRAM_SHAPE_TYPES_V1_ */
"""


def program_shape_symbol(spec: LibrarySpec) -> str:
    """The exported constant of the metadata object: `<c_prefix>_program_shape_data`."""
    return f"{spec.c_prefix}_program_shape_data"


def c_program_shape_declaration(spec: LibrarySpec) -> str:
    """The `extern` declaration of the metadata object's constant ("" when there is none)."""
    if not (spec.gen_program_shape and spec.program_shape_in_object):
        return ""
    return (
        "/* Defined in the metadata object (--out_metadata_object), which must be linked. */\n"
        f"extern const tfcompile_program_shape {program_shape_symbol(spec)};\n"
    )


# --- the header's StaticProgramShape() ----------------------------------------------------------
def _cpp_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _cpp_table(name: str, buffers: Sequence[BufferSpec], prefix: str) -> tuple[list[str], str]:
    """Definitions of the dims arrays and the shape table; returns (lines, table expression)."""
    if not buffers:
        return [], "nullptr"
    lines = []
    entries = []
    for b in buffers:
        dims = "nullptr"
        if b.dims:
            dims = f"k{prefix}{b.index}Dims"
            values = ", ".join(str(d) for d in b.dims)
            lines.append(f"    static constexpr std::int64_t {dims}[] = {{{values}}};")
        entries.append(f"        {{\"{b.type_name}\", {len(b.dims)}, {dims}}},")
    lines.append(f"    static constexpr ::tfcompile_shape_info {name}[] = {{")
    lines += entries
    lines.append("    };")
    return lines, name


def cpp_static_program_shape(spec: LibrarySpec) -> str:
    """The C++ class's `StaticProgramShape()`: nullptr, the object's constant, or inline data."""
    head = "  static const ::tfcompile_program_shape* StaticProgramShape() {"
    if not spec.gen_program_shape:
        return f"{head}\n    return nullptr;\n  }}\n"
    if spec.program_shape_in_object:
        return f"{head}\n    return &::{program_shape_symbol(spec)};\n  }}\n"
    param_lines, params = _cpp_table("kParameters", spec.args, "Parameter")
    result_lines, results = _cpp_table("kResults", spec.results, "Result")
    lines = [head, *param_lines, *result_lines]
    lines.append("    static constexpr ::tfcompile_program_shape kProgramShape = {")
    lines.append(f"        {len(spec.args)}, {params}, {len(spec.results)}, {results},")
    lines.append(f"        {_cpp_string(spec.program_shape)}}};")
    lines += ["    return &kProgramShape;", "  }"]
    return "\n".join(lines) + "\n"


# --- the metadata object --------------------------------------------------------------------------
def _llvm_string(name: str, text: str) -> str:
    data = text.encode("ascii") + b"\0"
    body = "".join(chr(c) if 32 <= c < 127 and chr(c) not in '"\\' else f"\\{c:02X}"
                   for c in data)
    return f'@{name} = private unnamed_addr constant [{len(data)} x i8] c"{body}", align 1'


def _llvm_table(name: str, buffers: Sequence[BufferSpec], types: dict[str, str]
                ) -> tuple[list[str], str]:
    """IR globals of one shape table; returns (definitions, pointer operand)."""
    if not buffers:
        return [], "null"
    defs = []
    entries = []
    for b in buffers:
        dims = "null"
        if b.dims:
            dims = f"@.{name}.dims{b.index}"
            values = ", ".join(f"i64 {d}" for d in b.dims)
            defs.append(f"{dims} = private unnamed_addr constant [{len(b.dims)} x i64] "
                        f"[{values}], align 8")
        entries.append(f"%shape {{ ptr @{types[b.type_name]}, i64 {len(b.dims)}, ptr {dims} }}")
    defs.append(f"@.{name} = private constant [{len(buffers)} x %shape] "
                f"[{', '.join(entries)}], align 8")
    return defs, f"@.{name}"


def metadata_ir(spec: LibrarySpec) -> str:
    """LLVM IR (no triple) of the metadata object: the program-shape constant when the spec
    has program-shape data in an object, else an empty module (tfcompile writes an object
    either way)."""
    lines = [f"; Metadata of {spec.cpp_class}, generated by tfcompile-py.  DO NOT EDIT!"]
    if not (spec.gen_program_shape and spec.program_shape_in_object):
        return "\n".join(lines) + "\n"
    lines += ["%shape = type { ptr, i64, ptr }", "%program = type { i64, ptr, i64, ptr, ptr }"]
    types: dict[str, str] = {}
    for b in (*spec.args, *spec.results):
        if b.type_name not in types:
            types[b.type_name] = f".type.{b.type_name}"
            lines.append(_llvm_string(types[b.type_name], b.type_name))
    lines.append(_llvm_string(".text", spec.program_shape))
    param_defs, params = _llvm_table("parameters", spec.args, types)
    result_defs, results = _llvm_table("results", spec.results, types)
    lines += param_defs + result_defs
    lines.append(f"@{program_shape_symbol(spec)} = constant %program {{ i64 {len(spec.args)}, "
                 f"ptr {params}, i64 {len(spec.results)}, ptr {results}, ptr @.text }}, align 8")
    return "\n".join(lines) + "\n"


def metadata_object(spec: LibrarySpec) -> bytes:
    """The metadata object for the spec's target (the host when it names none).

    Raises:
        CompileError: LLVM does not know the target.
    """
    from backends.cpu import object as objcode

    target = objcode.Target.resolve(spec.target_triple or None)
    return objcode.compile_ir(metadata_ir(spec), target, opt_level=0).object_code
