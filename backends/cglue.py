"""The C API of a generated library, in C text: declarations, definitions and the glue unit.

The declarations are included by every user of the header; the definitions are an
stb-style section of the header, compiled into the shared object by the tiny glue
translation unit made here (or into a user's own translation unit that defines
`<PREFIX>_C_API_IMPLEMENTATION`). Besides running the function with checked buffers, the
C API reports the metadata of `backends.libspec.LibrarySpec`. This file does not write
the C++ class or assemble the header; `backends.cheader` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from backends.cmetadata import c_program_shape_declaration
from backends.libspec import ALIGNMENT, MIN_ALIGNMENT, BufferSpec, LibrarySpec


# --- the entry function of a device library -------------------------------------------------
@dataclass(frozen=True)
class DeviceEntry:
    """Marks a library whose compiled function runs on a device (the GPU backend).

    Such a function can fail (no driver, no device), so its object file defines, instead
    of the CPU entry `void <entry>(args, results, temps)`, the two functions that
    `device_entry_declarations` declares: a host-buffer form and a device-pointer form,
    both returning 0 or -1 with the reason in the caller's buffer. The C API's `_run` and
    the C++ class's `Run()` call the host form; `_run_device` and `RunWithDevicePointers`
    the device form.

    Attributes:
        platform: what runs the function, for comments and messages ("CUDA").
        notes: lines for the header's comment block (target, what to link with).
    """

    platform: str
    notes: tuple[str, ...] = ()


def device_entry_declarations(spec: LibrarySpec, device: DeviceEntry) -> str:
    """The C prototypes (with their contracts) of a device library's entry functions."""
    e = spec.entry_point
    return f"""\
/* The compiled function (in the object file), run through the {device.platform} driver, which
 * is loaded on first use. args[i] / results[j] are the host buffers of the i-th argument /
 * j-th result (row-major; copied to and from the device around the run). Calls are
 * serialised by a lock. Returns 0, or -1 with the reason written to error (at most
 * error_size bytes, NUL-terminated) when error is not NULL. No buffer checks, no variable
 * write-back. */
int {e}(void* const* args, void* const* results, char* error, size_t error_size);
/* The same on device buffers: args[i] / results[j] are device addresses (CUdeviceptr) of
 * buffers in the primary context of device 0. Checks that no address of a non-empty
 * buffer is 0, and copies the new value of every variable that is not readonly into its
 * argument buffer. Returns when the results are written. */
int {e}_device(const uint64_t* args, const uint64_t* results, char* error,
               size_t error_size);
"""


def _entry_declaration(spec: LibrarySpec, device: DeviceEntry | None) -> str:
    if device is not None:
        return device_entry_declarations(spec, device)
    return f"""\
/* The compiled function itself (in the object file). args[i] / results[j] point to
 * the i-th argument / j-th result buffer (row-major, at least {MIN_ALIGNMENT}-byte aligned
 * when {MIN_ALIGNMENT} bytes or larger); temps points to {spec.temp_bytes} bytes aligned to
 * {ALIGNMENT} (NULL allowed when that is 0). No checks, no variable write-back. */
void {spec.entry_point}(void* const* args, void* const* results, void* temps);
/* The same with its large loops (products, elementwise work) split across `threads`
 * threads; results are identical for every count. Weak where the compiler allows: objects
 * compiled before entry points took a thread count lack it (its address is then NULL). */
void {spec.entry_point}_mt(void* const* args, void* const* results, void* temps,
                           int32_t threads)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((weak))
#endif
    ;
"""


def _run_device_declaration(spec: LibrarySpec, device: DeviceEntry | None) -> str:
    if device is None:
        return ""
    return f"""\
/* {spec.c_prefix}_run on device buffers: see {spec.entry_point}_device. */
int {spec.c_prefix}_run_device(const uint64_t* args, const uint64_t* results, char* error,
                          size_t error_size);
"""


# --- C API declarations -----------------------------------------------------------------------
def c_declarations(spec: LibrarySpec, device: DeviceEntry | None = None) -> str:
    """The `extern "C"` block: the raw entry function and the C API, with their contracts.

    With `device`, the entry functions are those of a device library (see `DeviceEntry`).
    """
    p = spec.c_prefix
    return f"""\
#ifdef __cplusplus
extern "C" {{
#endif

{_entry_declaration(spec, device)}
/* Runs the computation after checking every buffer pointer (non-NULL unless the buffer
 * is empty; args/results of {MIN_ALIGNMENT} bytes or more {MIN_ALIGNMENT}-byte aligned,
 * temps {ALIGNMENT}-byte aligned), then copies the new value of every variable that is not
 * readonly from its result buffer into its argument buffer (so variables update in place).
 * temps may be NULL: the arena is then allocated and freed by this call. Returns 0 on
 * success, -1 on failure; then, when error is not NULL, the reason is written there as a
 * NUL-terminated string of at most error_size bytes. No global state: thread-safe with
 * distinct buffers. */
int {p}_run(void* const* args, void* const* results, void* temps, char* error,
            size_t error_size);
{_run_device_declaration(spec, device)}
int {p}_num_args(void);
int {p}_num_results(void);
int {p}_num_variables(void);
/* Bytes of the temporary arena {p}_run needs. */
size_t {p}_temp_size(void);
/* Per argument / result metadata; an index out of range gives 0, -1 or NULL. */
size_t {p}_arg_size(int index);            /* bytes */
int64_t {p}_arg_count(int index);          /* elements */
int {p}_arg_rank(int index);
const int64_t* {p}_arg_dims(int index);    /* rank entries, row-major */
const char* {p}_arg_type(int index);       /* HLO element type name, e.g. "f32" */
size_t {p}_result_size(int index);
int64_t {p}_result_count(int index);
int {p}_result_rank(int index);
const int64_t* {p}_result_dims(int index);
const char* {p}_result_type(int index);
/* Variables are the last {len(spec.variables)} arguments; the value after the run of each
 * one that is not readonly is also a result. -1 out of range, or for a readonly result. */
int {p}_variable_arg_index(int index);
int {p}_variable_result_index(int index);
/* Names, and the index of the argument / result / variable with a name (-1 if none; a
 * variable's index is its argument index). Feeds and fetches only have the names they
 * were given; variables are not arguments by name. Without name tables (tfcompile's
 * --gen_name_to_index) names are NULL and lookups give -1. */
const char* {p}_arg_name(int index);
const char* {p}_result_name(int index);
const char* {p}_variable_name(int index);
int {p}_lookup_arg_index(const char* name);
int {p}_lookup_result_index(const char* name);
int {p}_lookup_variable_index(const char* name);
/* The logical signature, e.g. "(arg0: f32[2,3], arg1: f32[3,2]) -> (f32[2,2])". */
const char* {p}_program_shape(void);
{c_program_shape_declaration(spec)}
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


def _lookup_function(signature: str, names: Sequence[tuple[int, str]]) -> str:
    """A C function `signature` (with parameter `name`) returning the index of `name`."""
    lines = [f"{signature} {{", "  if (name == NULL) return -1;"]
    lines += [f"  if (strcmp(name, {_c_string(n)}) == 0) return {i};" for i, n in names]
    lines += ["  return -1;", "}"]
    return "\n".join(lines) + "\n"


def _metadata_functions(p: str, kind: str, buffers: Sequence[BufferSpec],
                        with_names: bool) -> str:
    names = [(b.index, b.name) for b in buffers if b.name and with_names]
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
            [_c_string(b.name) if b.name and with_names else "NULL" for b in buffers],
            "NULL",
        ),
        _lookup_function(f"int {p}_lookup_{kind}_index(const char* name)", names),
    ]
    return "\n".join(parts)


def _variable_functions(spec: LibrarySpec) -> str:
    p, variables = spec.c_prefix, spec.variables
    names = [(v.arg_index, v.name) for v in variables if spec.gen_name_to_index]
    results = [str(-1 if v.result_index is None else v.result_index) for v in variables]
    parts = [
        _switch(f"int {p}_variable_arg_index(int index)", [str(v.arg_index) for v in variables],
                "-1"),
        _switch(f"int {p}_variable_result_index(int index)", results, "-1"),
        _switch(f"const char* {p}_variable_name(int index)",
                [_c_string(v.name) if spec.gen_name_to_index else "NULL" for v in variables],
                "NULL"),
        _lookup_function(f"int {p}_lookup_variable_index(const char* name)", names),
    ]
    return "\n".join(parts)


def _labels(spec: LibrarySpec) -> str:
    """Static functions naming buffers in error messages (present without name tables)."""
    p = spec.c_prefix
    arg_labels = [spec.arg_label(b.index) for b in spec.args]
    result_labels = [spec.result_label(b.index) for b in spec.results]
    return "\n".join([
        _switch(f"static const char* {p}_arg_label_(int index)",
                [_c_string(label) if label else "NULL" for label in arg_labels], "NULL"),
        _switch(f"static const char* {p}_result_label_(int index)",
                [_c_string(label) if label else "NULL" for label in result_labels], "NULL"),
    ])


def _write_back(spec: LibrarySpec) -> str:
    """C statements copying each updated variable from its result into its argument."""
    lines = []
    for v in spec.variables:
        if v.result_index is None or v.shape.byte_size == 0:
            continue
        a, r = f"args[{v.arg_index}]", f"results[{v.result_index}]"
        lines.append(f"  if ({r} != {a}) memcpy({a}, {r}, {v.shape.byte_size}u);"
                     f"  /* variable {v.name} */")
    return "\n".join(lines)


def _entry_call(spec: LibrarySpec, device: DeviceEntry | None) -> str:
    """The C statements of `_run` that call the entry function (`owned` is freed on failure)."""
    if device is None:
        return f"  {spec.entry_point}(args, results, temps);"
    return f"""\
  if ({spec.entry_point}(args, results, error, error_size) != 0) {{
    free(owned);
    return -1;
  }}"""


def _run_device_definition(spec: LibrarySpec, device: DeviceEntry | None) -> str:
    if device is None:
        return ""
    p = spec.c_prefix
    return f"""
int {p}_run_device(const uint64_t* args, const uint64_t* results, char* error,
                   size_t error_size) {{
  if (error != NULL && error_size > 0) error[0] = '\\0';
  return {spec.entry_point}_device(args, results, error, error_size);
}}
"""


def c_definitions(spec: LibrarySpec, device: DeviceEntry | None = None) -> str:
    """The C API definitions, valid C11 and C++17 (for a user who defines the macro in C++).

    Guarded by `<PREFIX>_C_API_IMPLEMENTATION` so that exactly one translation unit (the
    library's glue, or the user's own when linking the bare object) defines them. With
    `device`, `_run` calls a device library's entry function and `_run_device` is defined.
    """
    p = spec.c_prefix
    m = spec.macro_prefix
    return f"""\
#if defined({spec.implementation_macro}) && !defined({m}_C_API_DEFINED_)
#define {m}_C_API_DEFINED_
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Formats a failure into the caller's buffer (if any). No global state, so that a
 * generated library needs no thread-local storage (and so no dynamic loader symbols). */
static void {p}_fail_(char* error, size_t error_size, const char* format, ...) {{
  va_list ap;
  if (error == NULL || error_size == 0) return;
  va_start(ap, format);
  vsnprintf(error, error_size, format, ap);
  va_end(ap);
}}

int {p}_num_args(void) {{ return {len(spec.args)}; }}
int {p}_num_results(void) {{ return {len(spec.results)}; }}
size_t {p}_temp_size(void) {{ return {spec.temp_bytes}u; }}
const char* {p}_program_shape(void) {{ return {_c_string(spec.program_shape)}; }}

int {p}_num_variables(void) {{ return {len(spec.variables)}; }}

{_metadata_functions(p, "arg", spec.args, spec.gen_name_to_index)}
{_metadata_functions(p, "result", spec.results, spec.gen_name_to_index)}
{_variable_functions(spec)}
{_labels(spec)}
/* The alignment a caller buffer of `size` bytes needs: as in tfcompile, a buffer smaller
 * than {MIN_ALIGNMENT} bytes (a scalar, say) needs no more than its natural alignment. */
static size_t {p}_caller_alignment_(size_t size) {{
  return size < {MIN_ALIGNMENT} ? 1 : {MIN_ALIGNMENT};
}}

/* Checks one buffer pointer; on failure writes the reason and returns 0. */
static int {p}_check_buffer_(const char* kind, int index, const char* name,
                             const void* data, size_t size, size_t alignment,
                             char* error, size_t error_size) {{
  const char* label = name != NULL ? name : "";
  const char* open = name != NULL ? " (" : "";
  const char* close = name != NULL ? ")" : "";
  if (size == 0) return 1;
  if (data == NULL) {{
    {p}_fail_(error, error_size, "{spec.cpp_class}: %s %d%s%s%s buffer is NULL",
              kind, index, open, label, close);
    return 0;
  }}
  if ((uintptr_t)data % alignment != 0) {{
    {p}_fail_(error, error_size,
              "{spec.cpp_class}: %s %d%s%s%s buffer %p is not %u-byte aligned",
              kind, index, open, label, close, (void*)(uintptr_t)data, (unsigned)alignment);
    return 0;
  }}
  return 1;
}}

int {p}_run(void* const* args, void* const* results, void* temps, char* error,
            size_t error_size) {{
  void* owned = NULL;
  int i;
  if (error != NULL && error_size > 0) error[0] = '\\0';
  if ((args == NULL && {len(spec.args)} > 0) || (results == NULL && {len(spec.results)} > 0)) {{
    {p}_fail_(error, error_size, "{spec.cpp_class}: %s array is NULL",
              args == NULL ? "argument" : "result");
    return -1;
  }}
  for (i = 0; i < {len(spec.args)}; ++i) {{
    if (!{p}_check_buffer_("argument", i, {p}_arg_label_(i), args[i], {p}_arg_size(i),
                           {p}_caller_alignment_({p}_arg_size(i)), error, error_size)) {{
      return -1;
    }}
  }}
  for (i = 0; i < {len(spec.results)}; ++i) {{
    if (!{p}_check_buffer_("result", i, {p}_result_label_(i), results[i],
                           {p}_result_size(i), {p}_caller_alignment_({p}_result_size(i)),
                           error, error_size)) {{
      return -1;
    }}
  }}
  if (temps == NULL && {spec.temp_bytes}u > 0) {{
    owned = aligned_alloc({ALIGNMENT}, {spec.temp_bytes_aligned}u);
    if (owned == NULL) {{
      {p}_fail_(error, error_size,
                "{spec.cpp_class}: cannot allocate {spec.temp_bytes} temporary bytes");
      return -1;
    }}
    temps = owned;
  }}
  if (!{p}_check_buffer_("temporary", 0, NULL, temps, {spec.temp_bytes}u, {ALIGNMENT},
                         error, error_size)) {{
    return -1;
  }}
{_entry_call(spec, device)}
{_write_back(spec)}
  free(owned);
  return 0;
}}
{_run_device_definition(spec, device)}#endif  /* {spec.implementation_macro} */
"""


def glue_source(spec: LibrarySpec, header_name: str) -> str:
    """The C translation unit compiled into the shared object: the C API definitions."""
    return (
        f"/* Generated by tfcompile-py: the C API of {spec.cpp_class}. DO NOT EDIT. */\n"
        f"#define {spec.implementation_macro}\n"
        f'#include "{header_name}"\n'
    )
