"""The generated header and C API: they compile cleanly, say what they promise, and work.

The compiled functions here are hand-written LLVM IR with the CPU backend's ABI
(`void f(void* const* args, void* const* results, void* temps)`), emitted to objects with
llvmlite, so these tests depend on neither the backend nor the parser. `matmul_artifact`
and `multi_artifact` are reused by tests/runtime/test_cpp_embedding.py.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from llvmlite import binding as llvm
from llvmlite import ir

from backends.cglue import glue_source
from backends.cheader import generate_header
from backends.cmetadata import metadata_ir
from backends.libspec import LibrarySpec
from compiler.export import write_library
from hlo.dtypes import PrimitiveType as T
from hlo.errors import ArgumentError, CompileError
from hlo.shape import Shape

HAVE_GCC = shutil.which("gcc") is not None and shutil.which("g++") is not None
needs_cc = pytest.mark.skipif(not HAVE_GCC, reason="gcc/g++ are not installed")

AARCH64 = "aarch64-unknown-linux-gnu"


# --- hand-made artifacts -----------------------------------------------------------------------
@dataclass
class HandArtifact:
    """The fields of backends.cpu.CpuArtifact that export reads."""

    object_code: bytes
    symbol: str
    arg_shapes: tuple[Shape, ...]
    result_shapes: tuple[Shape, ...]
    temp_bytes: int
    triple: str
    cpu: str = ""
    features: str = ""
    llvm_ir: str = field(default="", repr=False)


def _emit_object(module: ir.Module, triple: str) -> bytes:
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    module.triple = triple
    target = llvm.Target.from_triple(triple)
    machine = target.create_target_machine(reloc="pic", codemodel="default")
    module.data_layout = str(machine.target_data)
    parsed = llvm.parse_assembly(str(module))
    parsed.verify()
    return machine.emit_object(parsed)


def _abi_function(module: ir.Module, symbol: str) -> tuple[ir.IRBuilder, list[ir.Argument]]:
    ptr = ir.PointerType()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr, ptr, ptr]), symbol)
    return ir.IRBuilder(fn.append_basic_block("entry")), list(fn.args)


def _buffer(b: ir.IRBuilder, table: ir.Value, i: int) -> ir.Value:
    slot = b.gep(table, [ir.Constant(ir.IntType(64), i)], source_etype=ir.PointerType())
    return b.load(slot, typ=ir.PointerType())


def _element(b: ir.IRBuilder, base: ir.Value, ty: ir.Type, i: int) -> ir.Value:
    return b.gep(base, [ir.Constant(ir.IntType(64), i)], source_etype=ty)


def matmul_artifact(symbol: str = "entry", triple: str | None = None) -> HandArtifact:
    """f32[2,3] x f32[3,2] -> f32[2,2], the MatMulComp of the tfcompile documentation."""
    triple = triple or llvm.get_process_triple()
    module = ir.Module(name="matmul")
    b, (args, results, _) = _abi_function(module, symbol)
    f32 = ir.FloatType()
    x, y, out = _buffer(b, args, 0), _buffer(b, args, 1), _buffer(b, results, 0)
    for i in range(2):
        for j in range(2):
            acc = ir.Constant(f32, 0.0)
            for k in range(3):
                lhs = b.load(_element(b, x, f32, i * 3 + k), typ=f32)
                rhs = b.load(_element(b, y, f32, k * 2 + j), typ=f32)
                acc = b.fadd(acc, b.fmul(lhs, rhs))
            b.store(acc, _element(b, out, f32, i * 2 + j))
    b.ret_void()
    f32_shape = Shape.array
    return HandArtifact(
        _emit_object(module, triple), symbol,
        (f32_shape(T.F32, [2, 3]), f32_shape(T.F32, [3, 2])), (f32_shape(T.F32, [2, 2]),),
        0, triple, llvm_ir=str(module),
    )


MULTI_ARGS = (Shape.array(T.S32, [2, 3, 4]), Shape.scalar(T.F64), Shape.array(T.U8, [1]))
MULTI_RESULTS = (Shape.array(T.F64, [2, 3, 4]), Shape.scalar(T.PRED))


def multi_artifact(symbol: str = "multi_entry") -> HandArtifact:
    """(a: s32[2,3,4], s: f64[], one: u8[1]) -> (y = a*s + one[0]: f64[2,3,4], sum(a) > 0).

    a*s goes through the temporary arena, so a missing or unusable arena shows.
    """
    triple = llvm.get_process_triple()
    module = ir.Module(name="multi")
    b, (args, results, temps) = _abi_function(module, symbol)
    i8, i32, f64 = ir.IntType(8), ir.IntType(32), ir.DoubleType()
    a, s, one = (_buffer(b, args, i) for i in range(3))
    y, pos = _buffer(b, results, 0), _buffer(b, results, 1)
    scale = b.load(s, typ=f64)
    offset = b.uitofp(b.load(one, typ=i8), f64)
    total = ir.Constant(i32, 0)
    for i in range(24):
        value = b.load(_element(b, a, i32, i), typ=i32)
        total = b.add(total, value)
        b.store(b.fmul(b.sitofp(value, f64), scale), _element(b, temps, f64, i))
    for i in range(24):
        scaled = b.load(_element(b, temps, f64, i), typ=f64)
        b.store(b.fadd(scaled, offset), _element(b, y, f64, i))
    positive = b.icmp_signed(">", total, ir.Constant(i32, 0))
    b.store(b.zext(positive, i8), pos)
    b.ret_void()
    return HandArtifact(_emit_object(module, triple), symbol, MULTI_ARGS, MULTI_RESULTS,
                        24 * 8, triple, llvm_ir=str(module))


def multi_reference(a: np.ndarray, s: float, one: int) -> tuple[np.ndarray, bool]:
    return a.astype(np.float64) * s + one, bool(a.sum() > 0)


MULTI_NAMES = {"arg_names": ["a", "s", None], "result_names": ["y", "positive"]}


def export(tmp_path: Path, artifact: HandArtifact, cpp_class: str, name: str = "lib",
           **names: object):
    prefix = tmp_path / name
    return write_library(
        artifact,
        cpp_class=cpp_class,
        object_path=prefix.with_suffix(".o"),
        header_path=prefix.with_suffix(".h"),
        library_path=prefix.with_suffix(".so"),
        **names,
    )


def run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
    return done


# --- spec validation -------------------------------------------------------------------------
@pytest.mark.parametrize("cpp_class", [
    "", "foo::", "::Foo", "foo::::Bar", "1abc", "foo::int", "class", "a-b", "foo:bar",
    "foo::Bar baz", "ns::_Thread_local",
])
def test_bad_cpp_class_is_an_argument_error(cpp_class: str) -> None:
    with pytest.raises(ArgumentError, match="cpp_class"):
        LibrarySpec.create(cpp_class, "entry", [], [], 0)


def test_cpp_class_components() -> None:
    spec = LibrarySpec.create("foo::bar::MatMulComp", "entry", [], [], 0)
    assert spec.namespaces == ("foo", "bar")
    assert spec.class_name == "MatMulComp"
    assert spec.c_prefix == "foo_bar_MatMulComp"
    assert spec.macro_prefix == "FOO_BAR_MATMULCOMP"
    assert LibrarySpec.create("Solo", "entry", [], [], 0).namespaces == ()


@pytest.mark.parametrize("names, message", [
    (["x"], "1 name.*for 2 arg"),
    (["x", "x"], "'x' is given twice"),
    (["x", "2y"], r"arg_names\[1\] '2y' is not a C\+\+ identifier"),
    (["x", "new"], "keyword"),
    (["data", "y"], r"'data' would define arg_data\(\), which clashes with the generic"),
    (["x", "x_data"], r"'x_data' would define arg_x_data\(\), which clashes with the "
                      "accessors of arg 'x'"),
    (["x_count", "x"], r"'x' would define arg_x_count\(\), which clashes"),
])
def test_bad_names(names: list[str], message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        LibrarySpec.create("N", "entry", MULTI_ARGS[:2], [], 0, arg_names=names)


def test_bad_entry_point_and_tuple_leaf() -> None:
    with pytest.raises(ArgumentError, match="entry_point"):
        LibrarySpec.create("N", "my-entry", [], [], 0)
    with pytest.raises(ArgumentError, match="tuple shape"):
        LibrarySpec.create("N", "e", [Shape.tuple_of([MULTI_ARGS[1]])], [], 0)


# A feed `a`, a variable `w` that is updated and a readonly variable `k`; results: the fetch
# `out`, then w's new value (tfcompile's layout).
VARS_ARGS = (Shape.array(T.F32, [2, 2]), Shape.array(T.F32, [3]), Shape.scalar(T.S32))
VARS_RESULTS = (Shape.array(T.F32, [2, 2]), Shape.array(T.F32, [3]))


def vars_spec(**options: object) -> LibrarySpec:
    return LibrarySpec.create("v::Vars", "vars_entry", VARS_ARGS, VARS_RESULTS, 0,
                              arg_names=["a", None, None], result_names=["out", None],
                              variables=[("w", False), ("k", True)], **options)


def test_variables_take_the_last_args_and_results() -> None:
    spec = vars_spec()
    w, k = spec.variables
    assert (w.name, w.arg_index, w.result_index, w.readonly) == ("w", 1, 1, False)
    assert (k.name, k.arg_index, k.result_index, k.readonly) == ("k", 2, None, True)
    assert spec.variable_of_arg(2) is k and spec.variable_of_result(1) is w
    assert spec.variable_of_arg(0) is None and spec.variable_of_result(0) is None
    assert [spec.arg_label(i) for i in range(3)] == ["a", "variable w", "variable k"]
    assert [spec.result_label(i) for i in range(2)] == ["out", "variable w"]


@pytest.mark.parametrize("variables, names, message", [
    ([("a", False), ("w", False), ("k", False)], {},
     r"3 variable\(s\), 3 of them updated, do not fit 3 argument\(s\) and 2 result\(s\)"),
    ([("a", False), ("b", True), ("c", True), ("d", True)], {}, "do not fit 3 argument"),
    ([("k", False)], {}, r"variable 'k' is argument 2 \(s32\[\]\) but result 1 is f32\[3\]"),
    ([("w", False), ("w", True)], {}, "'w' is given twice"),
    ([("w", False), ("w_data", True)], {}, r"would define var_w_data\(\)"),
    ([("w-1", False), ("k", True)], {}, r"var_names\[0\] 'w-1' is not a C\+\+ identifier"),
    ([("w", False), ("k", True)], {"arg_names": ["a", "b", None]},
     "argument 1 is variable 'w'; it cannot also be named 'b'"),
    ([("w", False), ("k", True)], {"result_names": ["out", "new_w"]},
     "result 1 is variable 'w' after the run; it cannot also be named 'new_w'"),
])
def test_bad_variables(variables: list[tuple[str, bool]], names: dict[str, list[str | None]],
                       message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        LibrarySpec.create("N", "e", VARS_ARGS, VARS_RESULTS, 0, variables=variables, **names)


# --- header text -------------------------------------------------------------------------------
def multi_spec() -> LibrarySpec:
    return LibrarySpec.create("ns::Multi", "multi_entry", MULTI_ARGS, MULTI_RESULTS, 192,
                              program_shape="(s32[2,3,4], f64[], u8[1]) -> (f64[2,3,4], pred[])",
                              **MULTI_NAMES)


def test_header_states_signature_memory_and_api() -> None:
    text = generate_header(multi_spec())
    for expected in [
        "(s32[2,3,4], f64[], u8[1]) -> (f64[2,3,4], pred[])",
        "arg0 'a': s32[2,3,4], 96 bytes",
        "arg2: u8[1], 1 bytes",
        "result1 'positive': pred[], 1 bytes",
        "arg bytes total:       105",
        "arg bytes aligned:     256",
        "result bytes total:    193",
        "temp bytes total:      192",
        "#define NS_MULTI_ALIGNMENT 64",
        "#define NS_MULTI_MIN_ALIGNMENT 16",
        "void multi_entry(void* const* args, void* const* results, void* temps);",
        "int ns_Multi_run(void* const* args, void* const* results, void* temps, char* error,",
        "namespace ns {",
        "class Multi final {",
        "ARGS_RESULTS_AND_TEMPS = ARGS_VARIABLES_RESULTS_PROFILES_AND_TEMPS",
        "static constexpr int kNumArgs = 3;",
        "std::int32_t& arg0(std::size_t dim0, std::size_t dim1, std::size_t dim2)",
        "return arg0_data()[(dim0 * 3 + dim1) * 4 + dim2];",
        "double& arg_s() { return arg_s_data()[0]; }",
        "std::uint8_t& arg2() { return arg2_data()[0]; }",
        "bool& result_positive() { return result_positive_data()[0]; }",
        "int result_y_size() const { return 192; }",
    ]:
        assert expected in text, expected
    # Only standard headers: the generated library must build anywhere.
    includes = {line.split()[1] for line in text.splitlines() if line.startswith("#include")}
    assert includes == {"<stdarg.h>", "<stddef.h>", "<stdint.h>", "<cstddef>", "<cstdint>",
                        "<cstdlib>", "<cstring>", "<string>", "<stdio.h>", "<stdlib.h>",
                        "<string.h>"}


def test_header_of_variables() -> None:
    text = generate_header(vars_spec())
    for expected in [
        "#define V_VARS_NUM_VARIABLES 2",
        "arg1 'variable w': f32[3], 12 bytes",
        "result1 'variable w': f32[3], 12 bytes",
        "static constexpr int kNumVariables = 2;",
        "void set_var_w_data(float* data) { set_arg_data(1, data); }",
        "float& var_w(std::size_t dim0) { return var_w_data()[dim0]; }",
        "void set_var_k_data(const std::int32_t* data) { set_arg_data(2, data); }",
        "const std::int32_t* var_k_data() { return static_cast<const std::int32_t*>(",
        "const std::int32_t& var_k() { return var_k_data()[0]; }",
        "static constexpr int kVariableArgs[] = {1, 2};",
        "static constexpr int kVariableResults[] = {1, -1};",
        'static constexpr const char* kVariableNames[] = {"w", "k"};',
        "float* arg_a_data()", "float& result_out(std::size_t dim0, std::size_t dim1)",
        "int v_Vars_variable_result_index(int index)",
        "  if (results[1] != args[1]) memcpy(args[1], results[1], 12u);  /* variable w */",
    ]:
        assert expected in text, expected
    # Variables are reached through var_X only, as in tfcompile.
    for absent in ["arg1_data", "arg2(", "result1_data", "set_arg1_data"]:
        assert absent not in text, absent


def test_name_tables_and_program_shape_only_when_asked() -> None:
    bare = generate_header(vars_spec(gen_name_to_index=False, gen_program_shape=False))
    assert "static constexpr bool HasNameIndices() { return false; }" in bare
    assert "static constexpr const char* kArgNames[] = {nullptr, nullptr, nullptr};" in bare
    assert "static constexpr const char* kVariableNames[] = {nullptr, nullptr};" in bare
    assert 'static constexpr const char* kArgLabels[] = {"a", "variable w", "variable k"};' in bare
    assert "float* arg_a_data()" in bare  # named accessors exist either way
    assert "StaticProgramShape() {\n    return nullptr;" in bare
    full = generate_header(vars_spec())
    assert "static constexpr bool HasNameIndices() { return true; }" in full
    assert 'static constexpr ::tfcompile_shape_info kParameters[] = {' in full
    assert '{"s32", 0, nullptr},' in full and "kParameter1Dims[] = {3};" in full
    in_object = generate_header(vars_spec(program_shape_in_object=True))
    assert "extern const tfcompile_program_shape v_Vars_program_shape_data;" in in_object
    assert "return &::v_Vars_program_shape_data;" in in_object
    assert "and the metadata object (--out_metadata_object)" in in_object


def test_metadata_ir_holds_the_program_shape() -> None:
    text = metadata_ir(vars_spec(program_shape_in_object=True))
    for expected in [
        '@.type.f32 = private unnamed_addr constant [4 x i8] c"f32\\00"',
        "@.parameters.dims0 = private unnamed_addr constant [2 x i64] [i64 2, i64 2]",
        "%shape { ptr @.type.s32, i64 0, ptr null }",
        "@v_Vars_program_shape_data = constant %program { i64 3, ptr @.parameters, i64 2, "
        "ptr @.results, ptr @.text }",
    ]:
        assert expected in text, expected
    assert "constant" not in metadata_ir(vars_spec())  # nothing asked for: an empty module


def test_complex_elements_include_complex() -> None:
    spec = LibrarySpec.create("C", "e", [Shape.array(T.C64, [2])], [], 0)
    text = generate_header(spec)
    assert "#include <complex>" in text
    assert "std::complex<float>* arg0_data()" in text


CPP_USE = """
#include "{header}"
#include <type_traits>
int main() {{
  using M = ns::Multi;
  static_assert(M::kNumArgs == 3 && M::kNumResults == 2, "counts");
  static_assert(!std::is_copy_constructible<M>::value, "non-copyable");
  static_assert(!std::is_copy_assignable<M>::value, "non-copyable");
  M m(M::AllocMode::RESULTS_AND_TEMPS_ONLY);
  const M& c = m;
  std::int32_t* a = m.arg_a_data();
  const double* s = c.arg1_data();
  int n = m.arg0_count() + m.arg_s_size() + c.result1_count();
  bool ok = m.error_msg() == "" && M::LookupArgIndex("s") == 1 && s == nullptr && a == nullptr;
  m.set_thread_count(4);
  return ok && n == 24 + 8 + 1 && m.thread_count() == 4 ? 0 : 1;
}}
"""


@needs_cc
def test_header_compiles_cleanly_as_cpp17_and_c11(tmp_path: Path) -> None:
    specs = {
        "multi": multi_spec(),
        "matmul": LibrarySpec.create("foo::bar::MatMulComp", "entry", *matmul_shapes(), 0),
        "empty": LibrarySpec.create("Nothing", "nothing_entry", [], [], 0),
        "typed": LibrarySpec.create(
            "t::Typed", "typed_entry",
            [Shape.array(t, [2, 1]) for t in (T.PRED, T.S8, T.S16, T.S64, T.U16, T.U32, T.U64,
                                             T.F16, T.BF16, T.C64, T.C128)],
            [Shape.array(T.F32, [0, 3]), Shape.token()], 64),
        "vars": vars_spec(),
        "bare": vars_spec(gen_name_to_index=False, gen_program_shape=False),
        "in_object": vars_spec(program_shape_in_object=True),
    }
    warn = ["-Wall", "-Wextra", "-Werror", "-pedantic"]
    for name, spec in specs.items():
        (tmp_path / f"{name}.h").write_text(generate_header(spec))
        include = f'#include "{name}.h"\n'
        (tmp_path / f"{name}_use.cc").write_text(include + "int main() { return 0; }\n")
        (tmp_path / f"{name}_use.c").write_text(include + "int main(void) { return 0; }\n")
        (tmp_path / f"{name}_glue.c").write_text(glue_source(spec, f"{name}.h"))
        (tmp_path / f"{name}_impl.cc").write_text(
            f"#define {spec.implementation_macro}\n#include \"{name}.h\"\n")
        run(["g++", "-std=c++17", *warn, "-c", f"{name}_use.cc", "-o", f"{name}_use.o"], tmp_path)
        run(["gcc", "-std=c11", *warn, "-c", f"{name}_use.c", "-o", f"{name}_usec.o"], tmp_path)
        run(["gcc", "-std=c11", *warn, "-O2", "-fPIC", "-c", f"{name}_glue.c", "-o",
             f"{name}_glue.o"], tmp_path)
        # The C API definitions also compile as C++ (a user may define the macro in a .cc).
        run(["g++", "-std=c++17", *warn, "-c", f"{name}_impl.cc", "-o", f"{name}_impl.o"],
            tmp_path)
    (tmp_path / "use.cc").write_text(CPP_USE.format(header="multi.h"))
    run(["g++", "-std=c++17", *warn, "-c", "use.cc", "-o", "use.o"], tmp_path)


def matmul_shapes() -> tuple[list[Shape], list[Shape]]:
    return [Shape.array(T.F32, [2, 3]), Shape.array(T.F32, [3, 2])], [Shape.array(T.F32, [2, 2])]


# --- the linked shared object and its C API ------------------------------------------------------
def _needed_libraries(path: Path) -> list[str]:
    dynamic = run(["readelf", "-d", str(path)]).stdout
    return [line.split("[")[1].split("]")[0] for line in dynamic.splitlines() if "(NEEDED)" in line]


@needs_cc
def test_shared_object_depends_only_on_libc_libm_pthread(tmp_path: Path) -> None:
    lib = export(tmp_path, multi_artifact(), "ns::Multi", **MULTI_NAMES)
    assert lib.library_path is not None and lib.library_path.exists()
    needed = _needed_libraries(lib.library_path)
    allowed = ("libc.so", "libm.so", "libpthread.so", "libgcc_s.so")
    assert needed and all(n.startswith(allowed) for n in needed), needed
    assert "libc.so.6" in needed


def _c_api(path: Path, prefix: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    sigs = {
        "run": (ctypes.c_int, [ctypes.c_void_p] * 4 + [ctypes.c_size_t]),
        "num_args": (ctypes.c_int, []),
        "num_results": (ctypes.c_int, []),
        "temp_size": (ctypes.c_size_t, []),
        "program_shape": (ctypes.c_char_p, []),
        "lookup_arg_index": (ctypes.c_int, [ctypes.c_char_p]),
        "lookup_result_index": (ctypes.c_int, [ctypes.c_char_p]),
    }
    for kind in ("arg", "result"):
        sigs[f"{kind}_size"] = (ctypes.c_size_t, [ctypes.c_int])
        sigs[f"{kind}_count"] = (ctypes.c_int64, [ctypes.c_int])
        sigs[f"{kind}_rank"] = (ctypes.c_int, [ctypes.c_int])
        sigs[f"{kind}_dims"] = (ctypes.POINTER(ctypes.c_int64), [ctypes.c_int])
        sigs[f"{kind}_type"] = (ctypes.c_char_p, [ctypes.c_int])
        sigs[f"{kind}_name"] = (ctypes.c_char_p, [ctypes.c_int])
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, f"{prefix}_{name}")
        fn.restype, fn.argtypes = restype, argtypes
    return lib


def _run(api: ctypes.CDLL, prefix: str, args, results, temps) -> tuple[int, bytes]:
    """Call `<prefix>_run` with an error buffer; returns (status, error message)."""
    error = ctypes.create_string_buffer(256)
    status = getattr(api, f"{prefix}_run")(args, results, temps, error, len(error))
    return status, error.value


def _pointers(arrays: list[np.ndarray | None]) -> ctypes.Array:
    return (ctypes.c_void_p * len(arrays))(*[None if a is None else a.ctypes.data for a in arrays])


def _aligned(shape: tuple[int, ...], dtype: type, offset: int = 0) -> np.ndarray:
    """A zeroed array whose data starts `offset` bytes past a 64-byte boundary."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.zeros(nbytes + 128, np.uint8)
    start = (-raw.ctypes.data) % 64 + offset
    return raw[start:start + nbytes].view(dtype).reshape(shape)


@needs_cc
def test_c_api_metadata_and_run(tmp_path: Path) -> None:
    lib = export(tmp_path, multi_artifact(), "ns::Multi", **MULTI_NAMES)
    api = _c_api(lib.library_path, "ns_Multi")
    p = "ns_Multi_"
    get = lambda name, *a: getattr(api, p + name)(*a)  # noqa: E731
    assert (get("num_args"), get("num_results"), get("temp_size")) == (3, 2, 192)
    assert [get("arg_size", i) for i in range(4)] == [96, 8, 1, 0]
    assert [get("arg_count", i) for i in range(4)] == [24, 1, 1, -1]
    assert [get("arg_rank", i) for i in range(4)] == [0 + 3, 0, 1, -1]
    assert get("arg_dims", 0)[:3] == [2, 3, 4]
    assert not get("arg_dims", 7)
    assert [get("arg_type", i) for i in range(3)] == [b"s32", b"f64", b"u8"]
    assert [get("arg_name", i) for i in range(3)] == [b"a", b"s", None]
    assert [get("result_name", i) for i in range(2)] == [b"y", b"positive"]
    assert get("result_size", 0) == 192
    assert (get("result_type", 1), get("result_rank", 1)) == (b"pred", 0)
    assert [get("lookup_arg_index", n) for n in (b"a", b"s", b"y", b"")] == [0, 1, -1, -1]
    assert get("lookup_arg_index", None) == -1
    assert get("lookup_result_index", b"positive") == 1
    assert get("program_shape").startswith(b"(s32[2,3,4], f64[], u8[1])")

    a = _aligned((2, 3, 4), np.int32)
    a[...] = np.arange(24).reshape(2, 3, 4) - 5
    s, one = _aligned((), np.float64), _aligned((1,), np.uint8)
    s[...], one[...] = 0.5, 3
    y, pos = _aligned((2, 3, 4), np.float64, offset=16), _aligned((), np.bool_, offset=16)
    # temps NULL: the run allocates the arena itself.
    assert _run(api, "ns_Multi", _pointers([a, s, one]), _pointers([y, pos]), None) == (0, b"")
    want_y, want_pos = multi_reference(a, 0.5, 3)
    np.testing.assert_array_equal(y, want_y)
    assert bool(pos) is want_pos
    # A caller arena is used as given.
    temps = _aligned((24,), np.float64)
    a[...] = -a
    status, _ = _run(api, "ns_Multi", _pointers([a, s, one]), _pointers([y, pos]),
                     temps.ctypes.data)
    assert status == 0
    np.testing.assert_array_equal(temps, a.reshape(-1) * 0.5)
    assert bool(pos) is multi_reference(a, 0.5, 3)[1]


@needs_cc
def test_c_api_run_rejects_bad_buffers(tmp_path: Path) -> None:
    lib = export(tmp_path, multi_artifact(), "ns::Multi", **MULTI_NAMES)
    api = _c_api(lib.library_path, "ns_Multi")
    a, s, one = _aligned((2, 3, 4), np.int32), _aligned((), np.float64), _aligned((1,), np.uint8)
    y, pos = _aligned((2, 3, 4), np.float64), _aligned((), np.bool_)
    cases = [
        ([a, None, one], [y, pos], None, r"argument 1 \(s\) buffer is NULL"),
        ([a, s, one], [y, None], None, r"result 1 \(positive\) buffer is NULL"),
        ([_aligned((2, 3, 4), np.int32, offset=8), s, one], [y, pos], None,
         r"argument 0 \(a\) buffer 0x[0-9a-f]+ is not 16-byte aligned"),
        ([a, s, one], [y, pos], _aligned((24,), np.float64, offset=16).ctypes.data,
         r"temporary 0 buffer 0x[0-9a-f]+ is not 64-byte aligned"),
    ]
    for args, results, temps, message in cases:
        status, raw = _run(api, "ns_Multi", _pointers(args), _pointers(results), temps)
        error = raw.decode()
        assert status == -1 and error.startswith("ns::Multi: ") and re.search(message, error)
    assert _run(api, "ns_Multi", None, _pointers([y, pos]), None) == (
        -1, b"ns::Multi: argument array is NULL")
    # The error buffer is optional, and a short one is truncated, never overrun.
    assert api.ns_Multi_run(None, _pointers([y, pos]), None, None, 0) == -1
    short = ctypes.create_string_buffer(8)
    assert api.ns_Multi_run(None, _pointers([y, pos]), None, short, len(short)) == -1
    assert short.value == b"ns::Mul"


# --- what export writes, and its failures ------------------------------------------------------
def test_cross_target_writes_object_and_header_only(tmp_path: Path) -> None:
    lib = export(tmp_path, matmul_artifact(triple=AARCH64), "foo::bar::MatMulComp")
    assert lib.library_path is None
    assert not (tmp_path / "lib.so").exists()
    assert "aarch64" in lib.notes[0] and "not the host" in lib.notes[0]
    assert lib.object_path.read_bytes()[:4] == b"\x7fELF"
    if shutil.which("readelf"):
        header = run(["readelf", "-h", str(lib.object_path)]).stdout
        assert "AArch64" in header and "REL (Relocatable file)" in header
    assert "Target: aarch64-unknown-linux-gnu" in lib.header_path.read_text()


def test_missing_c_compiler_is_a_clear_compile_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CC", "")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(CompileError, match="no C compiler found") as err:
        export(tmp_path, matmul_artifact(), "foo::bar::MatMulComp")
    assert "lib.so could not be linked" in str(err.value)
    assert (tmp_path / "lib.o").exists() and (tmp_path / "lib.h").exists()
    monkeypatch.setenv("CC", "/nonexistent/bin/cc -O1")
    with pytest.raises(CompileError, match="CC is '/nonexistent/bin/cc -O1'"):
        export(tmp_path, matmul_artifact(), "foo::bar::MatMulComp")


def test_failing_c_compiler_reports_stderr_and_command(tmp_path: Path, monkeypatch) -> None:
    fake = tmp_path / "fakecc"
    fake.write_text("#!/bin/sh\necho 'fakecc: something is wrong' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CC", str(fake))
    with pytest.raises(CompileError) as err:
        export(tmp_path, matmul_artifact(), "foo::bar::MatMulComp")
    message = str(err.value)
    assert "exit status 3" in message
    assert "fakecc: something is wrong" in message
    assert f"{fake} -std=c11 -O2 -fPIC" in message and "glue.c" in message


# --- name tables, caller alignment and the metadata object ----------------------------------------
@needs_cc
def test_c_api_without_name_tables(tmp_path: Path) -> None:
    lib = export(tmp_path, multi_artifact(), "ns::Multi", gen_name_to_index=False, **MULTI_NAMES)
    api = _c_api(lib.library_path, "ns_Multi")
    assert [api.ns_Multi_lookup_arg_index(n) for n in (b"a", b"s")] == [-1, -1]
    assert api.ns_Multi_lookup_result_index(b"y") == -1
    assert api.ns_Multi_arg_name(0) is None and api.ns_Multi_result_name(1) is None
    # Messages still name the buffer: labels are not name tables.
    a, one = _aligned((2, 3, 4), np.int32), _aligned((1,), np.uint8)
    y, pos = _aligned((2, 3, 4), np.float64), _aligned((), np.bool_)
    assert _run(api, "ns_Multi", _pointers([a, None, one]), _pointers([y, pos]), None) == (
        -1, b"ns::Multi: argument 1 (s) buffer is NULL")


@needs_cc
def test_small_caller_buffers_need_only_natural_alignment(tmp_path: Path) -> None:
    """As in tfcompile, the 16-byte rule applies to buffers of 16 bytes or more."""
    lib = export(tmp_path, multi_artifact(), "ns::Multi", **MULTI_NAMES)
    api = _c_api(lib.library_path, "ns_Multi")
    a = _aligned((2, 3, 4), np.int32)
    a[...] = np.arange(24).reshape(2, 3, 4)
    s, one = _aligned((), np.float64, offset=8), _aligned((2,), np.uint8, offset=3)[1:]
    s[...], one[...] = 2.0, 1
    y, pos = _aligned((2, 3, 4), np.float64), _aligned((), np.bool_, offset=5)
    assert one.ctypes.data % 2 == 0 and s.ctypes.data % 16 == 8
    status, error = _run(api, "ns_Multi", _pointers([a, s, one]), _pointers([y, pos]), None)
    assert status == 0, error
    np.testing.assert_array_equal(y, multi_reference(a, 2.0, 1)[0])


METADATA_PROGRAM = r"""
#include <stdio.h>
#include "multi.h"

int main(void) {
  const tfcompile_program_shape* shape = &ns_Multi_program_shape_data;
  const tfcompile_shape_info* a = &shape->parameters[0];
  printf("%d %s %d %d %d %d\n", (int)shape->num_parameters, a->element_type, (int)a->rank,
         (int)a->dims[0], (int)a->dims[1], (int)a->dims[2]);
  printf("%d %s %d %s\n", (int)shape->num_results, shape->results[1].element_type,
         (int)shape->results[1].rank, shape->results[1].dims == NULL ? "null" : "dims");
  printf("%s\n", shape->text);
  return 0;
}
"""


@needs_cc
def test_metadata_object_holds_the_program_shape(tmp_path: Path) -> None:
    program_shape = "(a: s32[2,3,4], s: f64[], one: u8[1]) -> (f64[2,3,4], pred[])"
    lib = write_library(multi_artifact(), cpp_class="ns::Multi", object_path=tmp_path / "multi.o",
                        header_path=tmp_path / "multi.h", library_path=tmp_path / "multi.so",
                        metadata_path=tmp_path / "meta" / "multi_meta.o",
                        program_shape=program_shape, **MULTI_NAMES)
    assert lib.metadata_path == tmp_path / "meta" / "multi_meta.o"
    (tmp_path / "main.c").write_text(METADATA_PROGRAM)
    run(["gcc", "-std=c11", "-Wall", "-Werror", "main.c", "multi.o", "meta/multi_meta.o",
         "-o", "meta_prog"], tmp_path)
    lines = run(["./meta_prog"], tmp_path).stdout.splitlines()
    assert lines == ["3 s32 3 2 3 4", "2 pred 0 null", program_shape]
    # The shared object carries the metadata too (a C++ user of the .so needs it).
    assert "ns_Multi_program_shape_data" in run(["nm", "-D", str(lib.library_path)]).stdout


def test_metadata_object_for_a_cross_target(tmp_path: Path) -> None:
    lib = write_library(matmul_artifact(triple=AARCH64), cpp_class="foo::bar::MatMulComp",
                        object_path=tmp_path / "m.o", header_path=tmp_path / "m.h",
                        library_path=None, metadata_path=tmp_path / "m_meta.o")
    elf = (tmp_path / "m_meta.o").read_bytes()
    assert elf[:4] == b"\x7fELF" and int.from_bytes(elf[18:20], "little") == 183  # EM_AARCH64
    assert lib.spec.program_shape_in_object
