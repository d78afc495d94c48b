"""What a generated library is: its buffers, variables and names (`LibrarySpec`).

A generated library is one compiled entry function with the fixed ABI
`void <entry>(void* const* args, void* const* results, void* temps)` plus metadata. This
file validates the names that end up in C and C++ source (class, namespaces, argument,
result and variable names), maps element types to C/C++ types, and lays out variables as
tfcompile does: the last arguments, and the value of each one that is not readonly also
one of the last results (written back into the argument buffer after a run). It writes no
source text: the C API is `backends.cglue`, the C++ class and header `backends.cheader`,
the program-shape metadata `backends.cmetadata`.
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
# Minimum alignment accepted for caller-provided argument and result buffers (tfcompile's
# kMinAlign). As in tfcompile, it applies to buffers of at least this many bytes; smaller
# ones (scalars) need only their natural alignment, which is all the compiled code assumes.
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
        kind: "arg", "result" or "var", for messages.

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
    """The C++ methods the header defines for the argument, result or variable (`kind` "arg",
    "result" or "var") called `name`."""
    methods = (f"{kind}_{name}_data", f"{kind}_{name}", f"{kind}_{name}_size",
               f"{kind}_{name}_count")
    return methods if kind == "result" else (f"set_{kind}_{name}_data", *methods)


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
class VariableSpec:
    """A variable, laid out as tfcompile does: an argument after the feeds and, unless it is
    readonly, also a result after the fetches (its value after the run).

    Attributes:
        index: the position among the variables (config order).
        name: the accessor name (`var_<name>_data()`).
        arg_index: the argument holding the value before the run.
        result_index: the result holding the value after the run; None when readonly.
        shape: the variable's shape.
    """

    index: int
    name: str
    arg_index: int
    result_index: int | None
    shape: Shape

    @property
    def readonly(self) -> bool:
        return self.result_index is None


def _variables(
    variables: Sequence[tuple[str, bool]],
    arg_shapes: Sequence[Shape],
    result_shapes: Sequence[Shape],
    arg_names: Sequence[str | None],
    result_names: Sequence[str | None],
) -> tuple[VariableSpec, ...]:
    """Place (name, readonly) variables on the last arguments and results, checking them."""
    names = check_names([name for name, _ in variables], len(variables), "var")
    writable = sum(1 for _, readonly in variables if not readonly)
    if len(variables) > len(arg_shapes) or writable > len(result_shapes):
        raise ArgumentError(
            f"{len(variables)} variable(s), {writable} of them updated, do not fit "
            f"{len(arg_shapes)} argument(s) and {len(result_shapes)} result(s)"
        )
    first_arg = len(arg_shapes) - len(variables)
    next_result = len(result_shapes) - writable
    out: list[VariableSpec] = []
    for k, ((_, readonly), name) in enumerate(zip(variables, names, strict=True)):
        assert name is not None
        arg = first_arg + k
        if arg_names[arg]:
            raise ArgumentError(f"argument {arg} is variable '{name}'; it cannot also be named "
                                f"'{arg_names[arg]}'")
        result = None
        if not readonly:
            result, next_result = next_result, next_result + 1
            if result_names[result]:
                raise ArgumentError(f"result {result} is variable '{name}' after the run; it "
                                    f"cannot also be named '{result_names[result]}'")
            if not result_shapes[result].compatible(arg_shapes[arg]):
                raise ArgumentError(
                    f"variable '{name}' is argument {arg} ({arg_shapes[arg].to_text(False)}) "
                    f"but result {result} is {result_shapes[result].to_text(False)}"
                )
        out.append(VariableSpec(k, name, arg, result, arg_shapes[arg]))
    return tuple(out)


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
        variables: the variables among the args (and results), tfcompile's layout.
        gen_name_to_index: whether the name tables behind Lookup{Arg,Result,Variable}Index
            (and the C API's lookups and names) are generated (tfcompile's
            --gen_name_to_index); named accessors exist either way.
        gen_program_shape: whether ProgramShape() has data (tfcompile's --gen_program_shape).
        program_shape_in_object: the program-shape data lives in a separate metadata object
            (tfcompile's --out_metadata_object) rather than in the header.
    """

    namespaces: tuple[str, ...]
    class_name: str
    entry_point: str
    args: tuple[BufferSpec, ...]
    results: tuple[BufferSpec, ...]
    temp_bytes: int
    program_shape: str
    target_triple: str = ""
    variables: tuple[VariableSpec, ...] = ()
    gen_name_to_index: bool = True
    gen_program_shape: bool = True
    program_shape_in_object: bool = False

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
        variables: Sequence[tuple[str, bool]] | None = None,
        program_shape: str | None = None,
        target_triple: str = "",
        gen_name_to_index: bool = True,
        gen_program_shape: bool = True,
        program_shape_in_object: bool = False,
    ) -> LibrarySpec:
        """Validate names and build the spec.

        Args:
            variables: (name, readonly) per variable, in order: they are the last
                arguments, and those not readonly are also the last results.
            Others: see the attributes.

        Raises:
            ArgumentError: a bad class name, entry point or argument/result/variable name, a
                tuple-shaped buffer (the ABI takes flattened leaves only), or variables that
                do not fit the buffers.
        """
        namespaces, class_name = parse_cpp_class(cpp_class)
        check_identifier(entry_point, "entry_point")
        a_names = check_names(arg_names, len(arg_shapes), "arg")
        r_names = check_names(result_names, len(result_shapes), "result")
        for kind, shapes in (("argument", arg_shapes), ("result", result_shapes)):
            for i, s in enumerate(shapes):
                if s.is_tuple:
                    raise ArgumentError(f"{kind} {i} has tuple shape {s}; expected a leaf")
        var_specs = _variables(variables or (), arg_shapes, result_shapes, a_names, r_names)
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
            variables=var_specs,
            gen_name_to_index=gen_name_to_index,
            gen_program_shape=gen_program_shape,
            program_shape_in_object=program_shape_in_object,
        )

    # --- variables ----------------------------------------------------------------------
    def variable_of_arg(self, index: int) -> VariableSpec | None:
        """The variable whose value before the run argument `index` holds, if any."""
        return next((v for v in self.variables if v.arg_index == index), None)

    def variable_of_result(self, index: int) -> VariableSpec | None:
        """The variable whose value after the run result `index` holds, if any."""
        return next((v for v in self.variables if v.result_index == index), None)

    def arg_label(self, index: int) -> str | None:
        """How messages name argument `index`: its name, or `variable <name>`."""
        var = self.variable_of_arg(index)
        return f"variable {var.name}" if var is not None else self.args[index].name

    def result_label(self, index: int) -> str | None:
        """How messages name result `index`: its name, or `variable <name>`."""
        var = self.variable_of_result(index)
        return f"variable {var.name}" if var is not None else self.results[index].name

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
