"""The C side of a generated library: what it is (`LibrarySpec`) and its C API in C text.

A generated library is one compiled entry function with the fixed ABI
`void <entry>(void* const* args, void* const* results, void* temps)` plus metadata. This
file validates the names that end up in C and C++ source (class, namespaces, argument and
result names), maps element types to C/C++ types, and writes the C API: its declarations
(included by every user of the header) and its definitions (an stb-style section of the
header, compiled into the shared object by the tiny glue translation unit made here). It
does not write the C++ class or assemble the header; `backends.cheader` does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from hlo.dtypes import PrimitiveType
from hlo.errors import ArgumentError
from hlo.shape import Shape

# Alignment of every buffer the library allocates itself (temps, and args/results in the
# C++ class); the compiled function may assume it for `temps` only.
ALIGNMENT = 64
# Minimum alignment accepted for caller-provided argument and result buffers (tfcompile's).
MIN_ALIGNMENT = 16

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# C++17 keywords and alternative tokens, plus C11 keywords that are not C++ keywords: a
# name from this set would not compile as a namespace, class or method name.
_KEYWORDS = frozenset("""
    alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t
    char16_t char32_t class compl concept const consteval constexpr constinit const_cast
    continue co_await co_return co_yield decltype default delete do double dynamic_cast else
    enum explicit export extern false float for friend goto if inline int long mutable
    namespace new noexcept not not_eq nullptr operator or or_eq private protected public
    register reinterpret_cast requires return short signed sizeof static static_assert
    static_cast struct switch template this thread_local throw true try typedef typeid
    typename union unsigned using virtual void volatile wchar_t while xor xor_eq
    restrict _Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary _Noreturn
    _Static_assert _Thread_local
""".split())


@dataclass(frozen=True, slots=True)
class CType:
    """How an element type appears in generated C++ code.

    Attributes:
        cpp: the C++ element type of typed accessors (`float`, `std::complex<float>`).
        note: why the type differs from the obvious one, printed in the header ("" if not).
    """

    cpp: str
    note: str = ""


_T = PrimitiveType
# The C++ type of each element type; buffers hold numpy's layout of the same dtype.
CPP_TYPES: dict[PrimitiveType, CType] = {
    _T.PRED: CType("bool"),
    _T.S8: CType("std::int8_t"),
    _T.S16: CType("std::int16_t"),
    _T.S32: CType("std::int32_t"),
    _T.S64: CType("std::int64_t"),
    _T.U8: CType("std::uint8_t"),
    _T.U16: CType("std::uint16_t"),
    _T.U32: CType("std::uint32_t"),
    _T.U64: CType("std::uint64_t"),
    _T.F16: CType("std::uint16_t", "f16 elements are their raw IEEE binary16 bits"),
    _T.BF16: CType("std::uint16_t", "bf16 elements are their raw bfloat16 bits"),
    _T.F32: CType("float"),
    _T.F64: CType("double"),
    _T.C64: CType("std::complex<float>"),
    _T.C128: CType("std::complex<double>"),
}


def check_identifier(name: str, what: str) -> None:
    """Raise ArgumentError unless `name` can be a C++ (and C) identifier.

    Args:
        name: the candidate identifier.
        what: what it names, for the message (e.g. "cpp_class component").
    """
    if not _IDENT.match(name):
        raise ArgumentError(
            f"{what} '{name}' is not a C++ identifier (letters, digits and '_', "
            "not starting with a digit)"
        )
    if name in _KEYWORDS:
        raise ArgumentError(f"{what} '{name}' is a C/C++ keyword")


def parse_cpp_class(cpp_class: str) -> tuple[tuple[str, ...], str]:
    """Split `ns1::ns2::Name` into (namespaces, class name), validating every component.

    Raises:
        ArgumentError: an empty, malformed or keyword component.
    """
    if not isinstance(cpp_class, str) or not cpp_class:
        raise ArgumentError("cpp_class is required, e.g. 'foo::bar::MatMulComp'")
    parts = cpp_class.split("::")
    for part in parts:
        if not part:
            raise ArgumentError(
                f"cpp_class '{cpp_class}' has an empty component (expected 'ns::Name')"
            )
        check_identifier(part, f"cpp_class '{cpp_class}': component")
    return tuple(parts[:-1]), parts[-1]


def check_names(
    names: Sequence[str | None] | None, count: int, kind: str
) -> tuple[str | None, ...]:
    """Validate optional per-buffer names; returns one entry (name or None) per buffer.

    Args:
        names: None, or one name (or None/"" for unnamed) per argument or result.
        count: how many arguments or results there are.
        kind: "arg" or "result", for messages.

    Raises:
        ArgumentError: wrong count, a name that is not an identifier, or a duplicate.
    """
    if names is None:
        return (None,) * count
    names = list(names)
    if len(names) != count:
        raise ArgumentError(f"{kind}_names: {len(names)} name(s) given for {count} {kind}(s)")
    # C++ methods already taken, by the class's generic API or by earlier names.
    methods = {f"{kind}_data": "the generic accessor", f"set_{kind}_data": "the generic setter"}
    seen: set[str] = set()
    out: list[str | None] = []
    for i, name in enumerate(names):
        if not name:
            out.append(None)
            continue
        check_identifier(name, f"{kind}_names[{i}]")
        if name in seen:
            raise ArgumentError(f"{kind}_names: '{name}' is given twice")
        for method in named_methods(kind, name):
            if method in methods:
                raise ArgumentError(
                    f"{kind}_names[{i}] '{name}' would define {method}(), which clashes with "
                    f"{methods[method]}; choose another name"
                )
            methods[method] = f"the accessors of {kind} '{name}'"
        seen.add(name)
        out.append(name)
    return tuple(out)


def named_methods(kind: str, name: str) -> tuple[str, ...]:
    """The C++ methods the header defines for the argument or result called `name`."""
    methods = (f"{kind}_{name}_data", f"{kind}_{name}", f"{kind}_{name}_size",
               f"{kind}_{name}_count")
    return (f"set_{kind}_{name}_data", *methods) if kind == "arg" else methods


def _round_up(n: int, to: int = ALIGNMENT) -> int:
    return (n + to - 1) // to * to


@dataclass(frozen=True, slots=True)
class BufferSpec:
    """One argument or result buffer: a dense row-major array leaf."""

    index: int
    shape: Shape
    name: str | None

    @property
    def size(self) -> int:
        """Bytes of the buffer."""
        return self.shape.byte_size

    @property
    def count(self) -> int:
        """Elements of the buffer (0 for tokens)."""
        return self.shape.num_elements if self.shape.is_array else 0

    @property
    def dims(self) -> tuple[int, ...]:
        return self.shape.dims

    @property
    def type_name(self) -> str:
        """The HLO element type name (`f32`)."""
        return self.shape.element_type.value


def _buffers(shapes: Sequence[Shape], names: Sequence[str | None]) -> tuple[BufferSpec, ...]:
    return tuple(BufferSpec(i, s, n) for i, (s, n) in enumerate(zip(shapes, names, strict=True)))


@dataclass(frozen=True, slots=True)
class LibrarySpec:
    """Everything the header and glue say about one compiled function.

    Attributes:
        namespaces: C++ namespaces of the class, outermost first.
        class_name: the C++ class name.
        entry_point: the symbol of the compiled function in the object file.
        args, results: the flattened leaf buffers, in ABI order.
        temp_bytes: size of the temporary arena the function needs.
        program_shape: the logical signature, for the header comment.
        target_triple: the target the object was compiled for.
    """

    namespaces: tuple[str, ...]
    class_name: str
    entry_point: str
    args: tuple[BufferSpec, ...]
    results: tuple[BufferSpec, ...]
    temp_bytes: int
    program_shape: str
    target_triple: str = ""

    @staticmethod
    def create(
        cpp_class: str,
        entry_point: str,
        arg_shapes: Sequence[Shape],
        result_shapes: Sequence[Shape],
        temp_bytes: int,
        *,
        arg_names: Sequence[str | None] | None = None,
        result_names: Sequence[str | None] | None = None,
        program_shape: str | None = None,
        target_triple: str = "",
    ) -> LibrarySpec:
        """Validate names and build the spec.

        Raises:
            ArgumentError: a bad class name, entry point or argument/result name, or a
                tuple-shaped buffer (the ABI takes flattened leaves only).
        """
        namespaces, class_name = parse_cpp_class(cpp_class)
        check_identifier(entry_point, "entry_point")
        a_names = check_names(arg_names, len(arg_shapes), "arg")
        r_names = check_names(result_names, len(result_shapes), "result")
        for kind, shapes in (("argument", arg_shapes), ("result", result_shapes)):
            for i, s in enumerate(shapes):
                if s.is_tuple:
                    raise ArgumentError(f"{kind} {i} has tuple shape {s}; expected a leaf")
        if program_shape is None:
            params = ", ".join(s.to_text(False) for s in arg_shapes)
            res = ", ".join(s.to_text(False) for s in result_shapes)
            program_shape = f"({params}) -> ({res})"
        return LibrarySpec(
            namespaces=namespaces,
            class_name=class_name,
            entry_point=entry_point,
            args=_buffers(arg_shapes, a_names),
            results=_buffers(result_shapes, r_names),
            temp_bytes=int(temp_bytes),
            program_shape=program_shape,
            target_triple=target_triple,
        )

    # --- derived names ------------------------------------------------------------------
    @property
    def cpp_class(self) -> str:
        return "::".join((*self.namespaces, self.class_name))

    @property
    def c_prefix(self) -> str:
        """Prefix of the C API functions: `foo::bar::MatMulComp` -> `foo_bar_MatMulComp`."""
        return "_".join((*self.namespaces, self.class_name))

    @property
    def macro_prefix(self) -> str:
        """Prefix of the header's macros: `FOO_BAR_MATMULCOMP`."""
        return self.c_prefix.upper()

    @property
    def implementation_macro(self) -> str:
        """Defining this macro before including the header emits the C API definitions."""
        return f"{self.macro_prefix}_C_API_IMPLEMENTATION"

    # --- memory figures -----------------------------------------------------------------
    @property
    def arg_bytes(self) -> int:
        return sum(b.size for b in self.args)

    @property
    def arg_bytes_aligned(self) -> int:
        return sum(_round_up(b.size) for b in self.args)

    @property
    def result_bytes(self) -> int:
        return sum(b.size for b in self.results)

    @property
    def result_bytes_aligned(self) -> int:
        return sum(_round_up(b.size) for b in self.results)

    @property
    def temp_bytes_aligned(self) -> int:
        return _round_up(self.temp_bytes)


# --- C API declarations -----------------------------------------------------------------------
def c_declarations(spec: LibrarySpec) -> str:
    """The `extern "C"` block: the raw entry function and the C API, with their contracts."""
    p = spec.c_prefix
    return f"""\
#ifdef __cplusplus
extern "C" {{
#endif

/* The compiled function itself (in the object file). args[i] / results[j] point to
 * the i-th argument / j-th result buffer (row-major, at least {MIN_ALIGNMENT}-byte aligned);
 * temps points to {spec.temp_bytes} bytes aligned to {ALIGNMENT} (NULL allowed when that is 0).
 * No checks. */
void {spec.entry_point}(void* const* args, void* const* results, void* temps);

/* Runs the computation after checking every buffer pointer (non-NULL unless the buffer
 * is empty; args/results {MIN_ALIGNMENT}-byte aligned, temps {ALIGNMENT}-byte aligned).
 * temps may be NULL: the arena is then allocated and freed by this call. Returns 0 on
 * success, -1 on failure with the reason in {p}_error_message(). Thread-safe with
 * distinct buffers. */
int {p}_run(void* const* args, void* const* results, void* temps);

/* The reason the last failing call in this thread failed ("" if none). */
const char* {p}_error_message(void);

int {p}_num_args(void);
int {p}_num_results(void);
/* Bytes of the temporary arena {p}_run needs. */
size_t {p}_temp_size(void);
/* Per argument / result metadata; an index out of range gives 0, -1 or NULL. */
size_t {p}_arg_size(int index);            /* bytes */
int64_t {p}_arg_count(int index);          /* elements */
int {p}_arg_rank(int index);
const int64_t* {p}_arg_dims(int index);    /* rank entries, row-major */
const char* {p}_arg_type(int index);       /* HLO element type name, e.g. "f32" */
const char* {p}_arg_name(int index);       /* NULL when the argument is unnamed */
size_t {p}_result_size(int index);
int64_t {p}_result_count(int index);
int {p}_result_rank(int index);
const int64_t* {p}_result_dims(int index);
const char* {p}_result_type(int index);
const char* {p}_result_name(int index);
/* Index of the argument / result with this name, -1 if there is none. */
int {p}_lookup_arg_index(const char* name);
int {p}_lookup_result_index(const char* name);
/* The logical signature, e.g. "(f32[2,3], f32[3,2]) -> f32[2,2]". */
const char* {p}_program_shape(void);

#ifdef __cplusplus
}}  /* extern "C" */
#endif
"""


# --- C API definitions ------------------------------------------------------------------------
def _c_string(text: str) -> str:
    """A C string literal for `text` (names and shape texts are plain ASCII)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _switch(signature: str, cases: Sequence[str], default: str, prelude: str = "") -> str:
    """A C function `signature` returning `cases[index]`, or `default` out of range.

    A switch, not a table, because C11 has no empty arrays and libraries may have no
    arguments or no results.
    """
    lines = [f"{signature} {{"]
    if prelude:
        lines.append(prelude)
    if cases:
        lines.append("  switch (index) {")
        lines += [f"    case {i}: return {value};" for i, value in enumerate(cases)]
        lines.append("    default: break;")
        lines.append("  }")
    else:
        lines.append("  (void)index;")
    lines.append(f"  return {default};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dims_function(p: str, kind: str, buffers: Sequence[BufferSpec]) -> str:
    # Rank-0 buffers still get a one-element array: C11 has no empty arrays.
    prelude = "\n".join(
        f"  static const int64_t dims{b.index}[] = {{{', '.join(map(str, b.dims or (0,)))}}};"
        for b in buffers
    )
    return _switch(
        f"const int64_t* {p}_{kind}_dims(int index)",
        [f"dims{b.index}" for b in buffers],
        "NULL",
        prelude,
    )


def _metadata_functions(p: str, kind: str, buffers: Sequence[BufferSpec]) -> str:
    parts = [
        _switch(f"size_t {p}_{kind}_size(int index)", [f"{b.size}u" for b in buffers], "0"),
        _switch(f"int64_t {p}_{kind}_count(int index)", [f"{b.count}" for b in buffers], "-1"),
        _switch(f"int {p}_{kind}_rank(int index)", [f"{len(b.dims)}" for b in buffers], "-1"),
        _dims_function(p, kind, buffers),
        _switch(
            f"const char* {p}_{kind}_type(int index)",
            [_c_string(b.type_name) for b in buffers],
            "NULL",
        ),
        _switch(
            f"const char* {p}_{kind}_name(int index)",
            [_c_string(b.name) if b.name else "NULL" for b in buffers],
            "NULL",
        ),
    ]
    lookups = [
        f"  if (strcmp(name, {_c_string(b.name)}) == 0) return {b.index};"
        for b in buffers
        if b.name
    ]
    parts.append(
        f"int {p}_lookup_{kind}_index(const char* name) {{\n"
        "  if (name == NULL) return -1;\n"
        + "".join(line + "\n" for line in lookups)
        + "  return -1;\n}\n"
    )
    return "\n".join(parts)


def c_definitions(spec: LibrarySpec) -> str:
    """The C API definitions, valid C11 and C++17 (for a user who defines the macro in C++).

    Guarded by `<PREFIX>_C_API_IMPLEMENTATION` so that exactly one translation unit (the
    library's glue, or the user's own when linking the bare object) defines them.
    """
    p = spec.c_prefix
    m = spec.macro_prefix
    return f"""\
#if defined({spec.implementation_macro}) && !defined({m}_C_API_DEFINED_)
#define {m}_C_API_DEFINED_
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
#define {m}_THREAD_LOCAL_ thread_local
#else
#define {m}_THREAD_LOCAL_ _Thread_local
#endif

/* Per-thread so that concurrent runs on distinct buffers report their own failures. */
static {m}_THREAD_LOCAL_ char {p}_error_[256];

const char* {p}_error_message(void) {{ return {p}_error_; }}

int {p}_num_args(void) {{ return {len(spec.args)}; }}
int {p}_num_results(void) {{ return {len(spec.results)}; }}
size_t {p}_temp_size(void) {{ return {spec.temp_bytes}u; }}
const char* {p}_program_shape(void) {{ return {_c_string(spec.program_shape)}; }}

{_metadata_functions(p, "arg", spec.args)}
{_metadata_functions(p, "result", spec.results)}
/* Checks one buffer pointer; on failure writes the reason and returns 0. */
static int {p}_check_buffer_(const char* kind, int index, const char* name,
                             const void* data, size_t size, size_t alignment) {{
  const char* label = name != NULL ? name : "";
  const char* open = name != NULL ? " (" : "";
  const char* close = name != NULL ? ")" : "";
  if (size == 0) return 1;
  if (data == NULL) {{
    snprintf({p}_error_, sizeof {p}_error_, "{spec.cpp_class}: %s %d%s%s%s buffer is NULL",
             kind, index, open, label, close);
    return 0;
  }}
  if ((uintptr_t)data % alignment != 0) {{
    snprintf({p}_error_, sizeof {p}_error_,
             "{spec.cpp_class}: %s %d%s%s%s buffer %p is not %u-byte aligned",
             kind, index, open, label, close, (void*)(uintptr_t)data, (unsigned)alignment);
    return 0;
  }}
  return 1;
}}

int {p}_run(void* const* args, void* const* results, void* temps) {{
  void* owned = NULL;
  int i;
  {p}_error_[0] = '\\0';
  if ((args == NULL && {len(spec.args)} > 0) || (results == NULL && {len(spec.results)} > 0)) {{
    snprintf({p}_error_, sizeof {p}_error_, "{spec.cpp_class}: %s array is NULL",
             args == NULL ? "argument" : "result");
    return -1;
  }}
  for (i = 0; i < {len(spec.args)}; ++i) {{
    if (!{p}_check_buffer_("argument", i, {p}_arg_name(i), args[i], {p}_arg_size(i),
                           {MIN_ALIGNMENT})) return -1;
  }}
  for (i = 0; i < {len(spec.results)}; ++i) {{
    if (!{p}_check_buffer_("result", i, {p}_result_name(i), results[i],
                           {p}_result_size(i), {MIN_ALIGNMENT})) return -1;
  }}
  if (temps == NULL && {spec.temp_bytes}u > 0) {{
    owned = aligned_alloc({ALIGNMENT}, {spec.temp_bytes_aligned}u);
    if (owned == NULL) {{
      snprintf({p}_error_, sizeof {p}_error_,
               "{spec.cpp_class}: cannot allocate {spec.temp_bytes} temporary bytes");
      return -1;
    }}
    temps = owned;
  }}
  if (!{p}_check_buffer_("temporary", 0, NULL, temps, {spec.temp_bytes}u, {ALIGNMENT})) {{
    return -1;
  }}
  {spec.entry_point}(args, results, temps);
  free(owned);
  return 0;
}}
#endif  /* {spec.implementation_macro} */
"""


def glue_source(spec: LibrarySpec, header_name: str) -> str:
    """The C translation unit compiled into the shared object: the C API definitions."""
    return (
        f"/* Generated by tfcompile-py: the C API of {spec.cpp_class}. DO NOT EDIT. */\n"
        f"#define {spec.implementation_macro}\n"
        f'#include "{header_name}"\n'
    )
