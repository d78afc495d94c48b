"""A GPU program's host plan as C: the tables, the plan function and the entry functions.

`host_source(program, spec, device, image)` returns one C11 translation unit that, with the
driver text of `backends.gpu_aot.driver_c`, is the whole host side of a standalone GPU
library. The kernel image (PTX or cubin) and the constant pool are embedded as string
literals. Launches are rows of a table (kernel, grid, block, shared bytes, argument slots);
the plan itself becomes straight-line C in `run_plan`: one call per launch or device copy,
a `for (;;)` per while loop (condition, predicate read back, body) and a `switch` per
conditional (branch index read back), nested as the plan nests. This file writes text only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from backends.cglue import DeviceEntry, device_entry_declarations
from backends.gpu.plan import (
    Conditional,
    Copy,
    GpuProgram,
    Launch,
    Pool,
    Slot,
    Step,
    While,
    leaves,
    walk_steps,
)
from backends.gpu_aot.driver_c import PRELUDE_C, RUNTIME_C, TRANSFERS_C
from backends.libspec import LibrarySpec
from hlo.dtypes import PrimitiveType
from hlo.errors import InternalError

_POOLS = {Pool.ARENA: "kArena", Pool.CONSTANTS: "kConstantPool"}

# The C type in which a conditional's branch index is read back.
_INDEX_TYPES: dict[PrimitiveType, str] = {
    PrimitiveType.PRED: "uint8_t",
    PrimitiveType.S8: "int8_t",
    PrimitiveType.S16: "int16_t",
    PrimitiveType.S32: "int32_t",
    PrimitiveType.S64: "int64_t",
    PrimitiveType.U8: "uint8_t",
    PrimitiveType.U16: "uint16_t",
    PrimitiveType.U32: "uint32_t",
    PrimitiveType.U64: "uint64_t",
}

# Characters that may stand for themselves in a C string literal ('?' is left out so that
# no trigraph can form; '"' and '\\' need escapes).
_PLAIN = frozenset(range(0x20, 0x7F)) - {ord('"'), ord("\\"), ord("?")}
_LITERAL_WIDTH = 96


def c_literal(data: bytes) -> str:
    """`data` as adjacent C string literals, one per line (PTX keeps its own lines).

    Other bytes are three-digit octal escapes, which cannot swallow a following digit.
    """
    lines: list[str] = []
    current: list[str] = []
    width = 0
    for byte in data:
        text = chr(byte) if byte in _PLAIN else ("\\n" if byte == 0x0A else f"\\{byte:03o}")
        current.append(text)
        width += len(text)
        if byte == 0x0A or width >= _LITERAL_WIDTH:
            lines.append('"' + "".join(current) + '"')
            current, width = [], 0
    if current or not lines:
        lines.append('"' + "".join(current) + '"')
    return "\n    ".join(lines)


def _c_string(text: str) -> str:
    return c_literal(text.encode())


def _table(declaration: str, rows: Sequence[str]) -> str:
    """A static const array; C11 has no empty arrays, so an empty table gets one zero row."""
    body = ",\n".join(f"    {row}" for row in rows) if rows else "    {0}"
    return f"static const {declaration}[] = {{\n{body},\n}};\n"


@dataclass
class _PlanWriter:
    """Turns plan steps into C statements, collecting the launch table as it goes."""

    kernels: dict[str, int]
    launches: list[str] = field(default_factory=list)
    launch_args: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    _labels: int = 0

    def label(self) -> int:
        self._labels += 1
        return self._labels

    def emit(self, steps: Sequence[Step], depth: int) -> None:
        for step in steps:
            if isinstance(step, Launch):
                self._launch(step, depth)
            elif isinstance(step, Copy):
                self._copy(step, depth)
            elif isinstance(step, While):
                self._while(step, depth)
            elif isinstance(step, Conditional):
                self._conditional(step, depth)
            else:
                raise InternalError(f"unknown plan step {step!r}")

    def _line(self, depth: int, text: str) -> None:
        self.lines.append("  " * depth + text)

    def _launch(self, step: Launch, depth: int) -> None:
        index = len(self.launches)
        first = len(self.launch_args)
        self.launch_args += [f"{{{_POOLS[a.pool]}, {a.offset}u}}" for a in step.args]
        grid = ", ".join(f"{n}u" for n in step.dims.grid)
        block = ", ".join(f"{n}u" for n in step.dims.block)
        self.launches.append(
            f"{{{self.kernels[step.kernel]}, {{{grid}}}, {{{block}}}, {step.dims.shared_bytes}u, "
            f"{first}, {len(step.args)}, {_c_string(step.instr)}}}"
        )
        self._line(depth, f"TRY(launch(st, {index}));  /* {step.kernel} */")

    def _copy(self, step: Copy, depth: int) -> None:
        if step.dst.nbytes == 0:
            return
        dst, src = step.dst, step.src
        self._line(depth, f"TRY(copy(st, {_POOLS[dst.pool]}, {dst.offset}u, {_POOLS[src.pool]}, "
                          f"{src.offset}u, {dst.nbytes}u, \"copy\"));")

    def _read(self, depth: int, slot: Slot, variable: str, instr: str) -> None:
        self._line(depth, f"TRY(read_back(st, {_POOLS[slot.pool]}, {slot.offset}u, &{variable}, "
                          f"sizeof {variable}, {_c_string(instr)}));")

    def _while(self, step: While, depth: int) -> None:
        pred = f"pred{self.label()}"
        self._line(depth, f"for (;;) {{  /* while {step.instr} */")
        self._line(depth + 1, f"uint8_t {pred} = 0;")
        self.emit(step.cond, depth + 1)
        self._read(depth + 1, step.pred, pred, step.instr)
        self._line(depth + 1, f"if (!{pred}) break;")
        self.emit(step.body, depth + 1)
        self._line(depth, "}")

    def _conditional(self, step: Conditional, depth: int) -> None:
        element = step.selector.shape.element_type
        ctype = _INDEX_TYPES.get(element)
        if ctype is None:
            raise InternalError(f"{step.instr}: branch index of type {element.value}")
        n = self.label()
        selector, branch = f"selector{n}", f"branch{n}"
        last = len(step.branches) - 1
        self._line(depth, f"{{  /* conditional {step.instr} */")
        self._line(depth + 1, f"{ctype} {selector} = 0;")
        self._line(depth + 1, "int64_t " + branch + ";")
        self._read(depth + 1, step.selector, selector, step.instr)
        if element is PrimitiveType.PRED:
            # As in XLA: true runs branch 0 (true_computation), false branch 1.
            self._line(depth + 1, f"{branch} = {selector} ? 0 : 1;")
        else:
            # As in XLA: an index out of range runs the last branch.
            self._line(depth + 1, f"{branch} = (int64_t){selector};")
            self._line(depth + 1, f"if ({branch} < 0 || {branch} > {last}) {branch} = {last};")
        self._line(depth + 1, f"switch ({branch}) {{")
        for k, steps in enumerate(step.branches):
            self._line(depth + 2, "default: {" if k == last else f"case {k}: {{")
            self.emit(steps, depth + 3)
            self._line(depth + 3, "break;")
            self._line(depth + 2, "}")
        self._line(depth + 1, "}")
        self._line(depth, "}")


def _kernel_rows(program: GpuProgram) -> list[str]:
    shared = {name: 0 for name in program.kernel_names}
    for step in walk_steps(program.steps):
        if isinstance(step, Launch):
            shared[step.kernel] = max(shared[step.kernel], step.dims.shared_bytes)
    return [f"{{{_c_string(name)}, {shared[name]}u}}" for name in program.kernel_names]


def _buffer_rows(slots: Sequence[Slot], labels: Sequence[str]) -> list[str]:
    return [f"{{{_POOLS[s.pool]}, {s.offset}u, {s.nbytes}u, {_c_string(label)}}}"
            for s, label in zip(slots, labels, strict=True)]


def _label(kind: str, index: int, name: str | None) -> str:
    return f"{kind} {index}" + (f" ({name})" if name else "")


def _entry_functions(spec: LibrarySpec) -> str:
    e = spec.entry_point
    return f"""
int {e}(void* const* args, void* const* results, char* error, size_t error_size) {{
  Status st = {{error, error_size}};
  int status;
  if ((args == NULL && TFC_NUM_ARGS > 0) || (results == NULL && TFC_NUM_RESULTS > 0)) {{
    if (error != NULL && error_size > 0) error[0] = '\\0';
    return fail(&st, "the %s array is NULL", args == NULL ? "argument" : "result");
  }}
  if (begin_run(&st) != 0) return -1;
  status = upload_host(&st, args);
  if (status == 0) status = run_plan(&st);
  if (status == 0) status = download_host(&st, results);
  return end_run(&st, status);
}}

int {e}_device(const uint64_t* args, const uint64_t* results, char* error,
               size_t error_size) {{
  Status st = {{error, error_size}};
  int status;
  if (error != NULL && error_size > 0) error[0] = '\\0';
  if (check_device_pointers(&st, args, results) != 0) return -1;
  if (begin_run(&st) != 0) return -1;
  status = upload_device(&st, args);
  if (status == 0) status = run_plan(&st);
  if (status == 0) status = download_device(&st, args, results);
  return end_run(&st, status);
}}
"""


def host_source(program: GpuProgram, spec: LibrarySpec, device: DeviceEntry,
                image: bytes) -> str:
    """The C source of the library's host side.

    Args:
        program: the compiled GPU program (plan, buffers, constants).
        spec: the library's spec (entry point, class name, labels, variables); its buffers
            must be the program's flattened arguments and results.
        device: the entry ABI (declared as the header declares it).
        image: what cuModuleLoadDataEx loads: NUL-terminated PTX, or a cubin.

    Raises:
        InternalError: the spec does not match the program, or the plan has a step or
            branch index type this writer does not know.
    """
    arg_slots = [s for p in program.params for s in leaves(p)]
    result_slots = leaves(program.result)
    if len(arg_slots) != len(spec.args) or len(result_slots) != len(spec.results):
        raise InternalError(
            f"the library has {len(spec.args)} argument(s) and {len(spec.results)} result(s), "
            f"the GPU program {len(arg_slots)} and {len(result_slots)}")
    writer = _PlanWriter({name: k for k, name in enumerate(program.kernel_names)})
    writer.emit(program.steps, 1)
    launches = [s for s in walk_steps(program.steps) if isinstance(s, Launch)]
    max_args = max((len(s.args) for s in launches), default=0)
    variables = [f"{{{v.arg_index}, {v.result_index}, {v.shape.byte_size}u}}"
                 for v in spec.variables if v.result_index is not None and v.shape.byte_size]
    arch = program.ptx.target.compute_capability
    macros = {
        "TFC_CLASS_NAME": _c_string(spec.cpp_class),
        "TFC_ARCH": str(arch),
        "TFC_NUM_KERNELS": str(len(program.kernel_names)),
        "TFC_MAX_LAUNCH_ARGS": str(max_args),
        "TFC_ARENA_BYTES": f"{program.arena_bytes}u",
        "TFC_CONSTANT_BYTES": f"{len(program.constants)}u",
        "TFC_NUM_ARGS": str(len(spec.args)),
        "TFC_NUM_RESULTS": str(len(spec.results)),
        "TFC_NUM_VARIABLES": str(len(variables)),
    }
    defines = "\n".join(f"#define {name} {value}" for name, value in macros.items())
    arg_labels = [_label("argument", b.index, spec.arg_label(b.index)) for b in spec.args]
    result_labels = [_label("result", b.index, spec.result_label(b.index))
                     for b in spec.results]
    tables = [
        f"/* The kernel image loaded by cuModuleLoadDataEx ({len(image)} bytes). */\n"
        f"static const char kImage[{len(image) + 1}] =\n    {c_literal(image)};\n",
        f"/* The constant pool, uploaded once ({len(program.constants)} bytes). */\n"
        f"static const char kConstants[{len(program.constants) + 1}] =\n"
        f"    {c_literal(program.constants)};\n",
        _table("Kernel kKernels", _kernel_rows(program)),
        _table("Launch kLaunches", writer.launches),
        _table("SlotRef kLaunchArgs", writer.launch_args),
        _table("Buffer kArgs", _buffer_rows(arg_slots, arg_labels)),
        _table("Buffer kResults", _buffer_rows(result_slots, result_labels)),
        _table("Variable kVariables", variables),
    ]
    plan = "\n".join(writer.lines)
    return f"""\
/* Generated by tfcompile-py: the CUDA host code of {spec.cpp_class} (module {program.name},
 * {program.ptx.target.arch}). DO NOT EDIT. */
{PRELUDE_C}
{device_entry_declarations(spec, device)}
{defines}

{"".join(tables)}
{RUNTIME_C}
/* The plan: {len(launches)} launch(es) on the default stream, control flow on the host. */
static int run_plan(Status* st) {{
{plan}
  (void)st;
  return 0;
}}
{TRANSFERS_C}
{_entry_functions(spec)}"""
