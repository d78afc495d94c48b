"""tfcompile's conformance tests, end to end: TF graph + config -> command line -> C++ program.

tensorflow/compiler/aot/tests/tfcompile_test.cc checks the classes tfcompile generates for
the graphs of make_test_graphs.py. Here the same graphs (from the corpus where it has them,
else rebuilt by hand in tf_graphs/make_test_graphs.py) go through our command line with
the same class names and flags, and tf_graphs/tfcompile_test.cc makes the same checks,
built with `g++ -std=c++17 -Wall -Werror` and run one test per process. The corpus models
(MNIST softmax, MLP, CNN, LSTM cell) are compiled from the command line to shared libraries
and run by a C++ harness on the stored inputs; their outputs must match the stored ones.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tfcompile_cli
from tests.conftest import CORPUS, REPO, corpus_cases
from tests.runtime.tf_graphs.make_test_graphs import write_case

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")

TF_CORPUS = CORPUS / "tf"
GRAPHS_DIR = Path(__file__).resolve().parent / "tf_graphs"
CXX = ["g++", "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror"]

# header stem -> (graph: "corpus:<case>" or "hand:<builder>", C++ class, extra flags). The
# classes and flags are those of tfcompile's BUILD file for its test (muladd has the name
# tables and the program shape, the latter in a metadata object).
LIBRARIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "add": ("corpus:tfadd", "AddComp", ()),
    "assert_eq": ("hand:tfassert_eq", "AssertComp", ()),
    "cond": ("hand:tfcond", "CondComp", ()),
    "gather": ("corpus:tfgather", "GatherComp", ()),
    "matmul": ("corpus:tfmatmul", "foo::bar::MatMulComp", ()),
    "matmul_and_add": ("corpus:tfmatmulandadd", "foo::bar::MatMulAndAddComp",
                       ("--gen_name_to_index", "--gen_program_shape=true",
                        "--out_metadata_object", "matmul_and_add_metadata.o")),
    "splits": ("hand:tfsplits", "SplitsComp", ()),
    "top_k": ("corpus:tftop_k", "TopKComp", ()),
    "variable": ("hand:tfvariable", "VariableComp", ("--gen_program_shape",)),
    "variable_readonly": ("hand:tfvariable_readonly", "VariableReadonlyComp", ()),
    "variable_sequential_updates": ("hand:tfvariable_sequential_updates",
                                    "VariableSequentialUpdatesComp",
                                    ("--gen_name_to_index=true", "--gen_name_to_index")),
}

CPP_TESTS = [
    "Add", "AddSetArg", "Cond", "Gather", "MatMul", "MatMulSetArg", "MatMulAndAdd", "Splits",
    "TopK", "VariableReadonly", "Variable", "VariableSequentialUpdates",
    "VariableSequentialUpdatesNoAlloc", "AssertEqAndReturnDiff", "LookupNameIndex",
    "ProgramShape",
]

MODELS = ["mnist_softmax", "mlp_2layer", "cnn_small", "lstm_cell"]
_TF_CASES = {c["name"]: c for c in corpus_cases("tf")}


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def graph_files(source: str, directory: Path) -> tuple[Path, Path]:
    """The .pb/.pbtxt and config of a "corpus:<case>" or "hand:<builder>" graph."""
    kind, name = source.split(":")
    if kind == "hand":
        return write_case(name, directory)
    case = _TF_CASES[name]
    return TF_CORPUS / case["pb"], TF_CORPUS / case["config"]


def tfcompile(capsys: pytest.CaptureFixture[str], *argv: str) -> None:
    """Run the command line in this process (the same code as the console script)."""
    status = tfcompile_cli.main(list(argv))
    err = capsys.readouterr().err
    assert status == 0, err


def _needs_corpus() -> None:
    missing = [n for n in ("tfadd", "tfmatmulandadd", *MODELS) if n not in _TF_CASES]
    if missing:
        pytest.skip(f"../shared/corpus/tf lacks {missing}")


@pytest.fixture(scope="module")
def conformance_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every library compiled by the command line, and tfcompile_test.cc built against them."""
    _needs_corpus()
    out = tmp_path_factory.mktemp("tfcompile_test")
    objects = []
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(out)
        for stem, (source, cpp_class, flags) in LIBRARIES.items():
            graph, config = graph_files(source, out)
            status = tfcompile_cli.main([
                f"--graph={graph}", f"--config={config}", f"--cpp_class={cpp_class}",
                f"--entry_point={stem}_entry", f"--out_function_object={stem}.o",
                f"--out_header={stem}.h", *flags,
            ])
            assert status == 0, f"tfcompile failed for {stem}"
            objects.append(f"{stem}.o")
    objects.append("matmul_and_add_metadata.o")
    run([*CXX, "-I", str(out), str(GRAPHS_DIR / "tfcompile_test.cc"), *objects, "-lm",
         "-lpthread", "-o", "tfcompile_test"], out)
    return out / "tfcompile_test"


@pytest.mark.parametrize("name", CPP_TESTS)
def test_tfcompile_cpp_test(conformance_binary: Path, name: str) -> None:
    done = subprocess.run([str(conformance_binary), name], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.startswith(f"PASS {name}\n"), done.stdout


# --- what the headers say, and the C API of a library with variables ----------------------------
def test_headers_follow_the_config(conformance_binary: Path) -> None:
    out = conformance_binary.parent
    muladd = (out / "matmul_and_add.h").read_text()
    for expected in ["float* arg_x_data()", "float& result_x_y_sum(std::size_t dim0",
                     "static constexpr bool HasNameIndices() { return true; }",
                     "(arg0: f32[2,2], arg1: f32[2,2]) -> (f32[2,2], f32[2,2])",
                     "extern const tfcompile_program_shape "
                     "foo_bar_MatMulAndAddComp_program_shape_data;"]:
        assert expected in muladd, expected
    # tfadd's config names its feeds, but tfcompile generates name tables only on request.
    add = (out / "add.h").read_text()
    assert "std::int32_t& arg_x()" in add and "HasNameIndices() { return false; }" in add
    assert "return nullptr;" in add.split("StaticProgramShape()")[1].split("}")[0]
    # Unnamed feeds get positional methods only; variables get var_ methods, no argN.
    cond = (out / "cond.h").read_text()
    assert "arg_p_hold" not in cond and "bool& arg0()" in cond
    readonly = (out / "variable_readonly.h").read_text()
    assert "void set_var_x_data(const float* data)" in readonly
    assert "const float& var_x()" in readonly and "arg0_data" not in readonly
    updates = (out / "variable_sequential_updates.h").read_text()
    assert "void set_var_x_data(float* data)" in updates and "float& var_x()" in updates
    assert "result1_data" not in updates  # x's new value is a result, reached as var_x


def test_c_api_writes_variables_back(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("no C compiler")
    graph, config = write_case("tfvariable_sequential_updates", tmp_path)
    so = tmp_path / "updates.so"
    tfcompile(capsys, "--graph", str(graph), "--config", str(config), "--cpp_class",
              "tf::Updates", "--out_function_object", str(tmp_path / "updates.o"),
              "--out_header", str(tmp_path / "updates.h"), "--out_library", str(so),
              "--gen_name_to_index")
    lib = ctypes.CDLL(str(so))
    lib.tf_Updates_run.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_size_t]
    lib.tf_Updates_lookup_variable_index.argtypes = [ctypes.c_char_p]
    lib.tf_Updates_variable_name.restype = ctypes.c_char_p
    lib.tf_Updates_arg_name.restype = ctypes.c_char_p
    assert lib.tf_Updates_num_variables() == 2
    assert [lib.tf_Updates_variable_arg_index(i) for i in range(3)] == [0, 1, -1]
    assert [lib.tf_Updates_variable_result_index(i) for i in range(3)] == [1, -1, -1]
    assert [lib.tf_Updates_variable_name(i) for i in range(2)] == [b"x", b"y"]
    assert lib.tf_Updates_arg_name(0) is None  # a variable is not a named argument
    assert lib.tf_Updates_lookup_variable_index(b"y") == 1
    assert lib.tf_Updates_lookup_variable_index(b"result") == -1
    x, y = np.array(2, np.float32), np.array(1, np.float32)
    result, new_x = np.zeros((), np.float32), np.zeros((), np.float32)
    args = (ctypes.c_void_p * 2)(x.ctypes.data, y.ctypes.data)
    results = (ctypes.c_void_p * 2)(result.ctypes.data, new_x.ctypes.data)
    for want in (1.187, 0.594322):
        assert lib.tf_Updates_run(args, results, None, None, 0) == 0
        assert abs(float(x) - want) < 1e-6 and float(new_x) == float(x) == float(result)
    assert float(y) == 1


def test_program_shapes_are_tfcompiles(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    """The signature in each header is the one real tfcompile reported for the corpus."""
    if not _TF_CASES:
        pytest.skip("../shared/corpus/tf is not present")
    from compiler import tf
    from compiler.export import program_shape_text

    for case in _TF_CASES.values():
        module = tf.import_graph(TF_CORPUS / case["pb"], TF_CORPUS / case["config"])
        assert program_shape_text(module) == case["tfcompile_program_shape"], case["name"]
    header = tmp_path / "add.h"
    tfcompile(capsys, "--graph", str(TF_CORPUS / "tfadd.pb"), "--config",
              str(TF_CORPUS / "tfadd.config.pbtxt"), "--cpp_class", "AddComp",
              "--out_function_object", str(tmp_path / "add.o"), "--out_header", str(header))
    assert f"//   {_TF_CASES['tfadd']['tfcompile_program_shape']}\n" in header.read_text()


# --- corpus models through the command line and a C++ harness ----------------------------------
HARNESS_HEAD = r"""
#include <cstdio>
#include <cstring>
#include <string>
"""

HARNESS_BODY = r"""
// Reads arg<i>.bin into each argument, runs, writes each result to out<j>.bin.
template <class Comp>
int RunCase(const std::string& dir) {
  Comp comp;
  for (int i = 0; i < Comp::kNumArgs; ++i) {
    std::FILE* f = std::fopen((dir + "/arg" + std::to_string(i) + ".bin").c_str(), "rb");
    const std::size_t size = Comp::ArgSize(i);
    if (f == nullptr || std::fread(comp.arg_data(i), 1, size, f) != size) return 3;
    std::fclose(f);
  }
  if (!comp.Run()) {
    std::fprintf(stderr, "%s\n", comp.error_msg().c_str());
    return 4;
  }
  for (int j = 0; j < Comp::kNumResults; ++j) {
    std::FILE* f = std::fopen((dir + "/out" + std::to_string(j) + ".bin").c_str(), "wb");
    const std::size_t size = Comp::ResultSize(j);
    if (f == nullptr || std::fwrite(comp.result_data(j), 1, size, f) != size) return 5;
    std::fclose(f);
  }
  return 0;
}
"""


def _class_name(model: str) -> str:
    return "".join(part.title() for part in model.split("_"))


def harness_source(models: list[str]) -> str:
    includes = "".join(f'#include "{m}.h"\n' for m in models)
    dispatch = "".join(
        f'  if (std::strcmp(argv[1], "{m}") == 0) return RunCase<models::{_class_name(m)}>'
        f"(argv[2]);\n"
        for m in models
    )
    main = f"int main(int argc, char** argv) {{\n  if (argc != 3) return 2;\n{dispatch}" \
           "  return 6;\n}\n"
    return HARNESS_HEAD + includes + HARNESS_BODY + main


@pytest.fixture(scope="module")
def model_harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus models compiled to shared libraries from the command line, and a harness."""
    _needs_corpus()
    out = tmp_path_factory.mktemp("models")
    for model in MODELS:
        case = _TF_CASES[model]
        status = tfcompile_cli.main([
            "--graph", str(TF_CORPUS / case["pb"]), "--config", str(TF_CORPUS / case["config"]),
            "--cpp_class", f"models::{_class_name(model)}", "--entry_point", f"{model}_entry",
            "--out_function_object", str(out / f"{model}.o"), "--out_header",
            str(out / f"{model}.h"), "--out_library", str(out / f"lib{model}.so"),
        ])
        assert status == 0, f"tfcompile failed for {model}"
    (out / "harness.cc").write_text(harness_source(MODELS))
    libraries = [f"-l{model}" for model in MODELS]
    run([*CXX, "harness.cc", "-L.", *libraries, "-Wl,-rpath,$ORIGIN", "-o", "harness"], out)
    return out / "harness"


@pytest.mark.parametrize("model", MODELS)
def test_corpus_model_from_the_command_line(model_harness: Path, model: str) -> None:
    case = _TF_CASES[model]
    data = model_harness.parent / f"{model}_data"
    data.mkdir(exist_ok=True)
    stored = np.load(TF_CORPUS / case["npz"])
    args = [stored[f"arg{i}"] for i in range(len(case["args"]))]
    want = [stored[f"out{j}"] for j in range(len(case["results"]))]
    for i, a in enumerate(args):
        np.ascontiguousarray(a).tofile(data / f"arg{i}.bin")
    run([str(model_harness), model, str(data)], model_harness.parent)
    for j, w in enumerate(want):
        got = np.fromfile(data / f"out{j}.bin", dtype=w.dtype).reshape(w.shape)
        if np.issubdtype(w.dtype, np.floating):
            np.testing.assert_allclose(got, w, rtol=case["rtol"], atol=case["atol"],
                                       err_msg=f"{model} out{j}")
        else:
            np.testing.assert_array_equal(got, w, err_msg=f"{model} out{j}")


def test_real_process_compiles_a_model(tmp_path: Path) -> None:
    """The console script as a separate process (what a build system runs)."""
    _needs_corpus()
    case = _TF_CASES["mnist_softmax"]
    done = subprocess.run(
        [sys.executable, str(REPO / "tfcompile_cli.py"),
         f"--graph={TF_CORPUS / case['pb']}", f"--config={TF_CORPUS / case['config']}",
         "--cpp_class=mnist::Softmax", "--gen_program_shape"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out_model.o").read_bytes()[:4] == b"\x7fELF"
    header = (tmp_path / "out.h").read_text()
    assert "class Softmax final" in header and "float* result_y_data()" in header
    assert f"float* arg_{case['feeds'][0]['name']}_data()" in header
    assert not (tmp_path / "out_helper.o").exists()  # only written when asked for


# --- the TF example -----------------------------------------------------------------------------
def test_sgd_example_trains_in_place(tmp_path: Path) -> None:
    """examples/sgd: a graph with variables, built with the Makefile, trained by Run()."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = run(["make", "-s", "-C", str(REPO / "examples"), "sgd", f"PY={sys.executable}",
                f"BUILD={tmp_path / 'build'}"], tmp_path)
    lines = done.stdout.splitlines()
    assert "step   0: loss 15.750000" in lines
    assert "W = {1.000, 2.000, 3.000}, b = 0.500" in lines
    assert "variable b is argument 3; signature (arg0: f32[4,3], arg1: f32[4,1], arg2: " \
           "f32[3,1], arg3: f32[1]) -> (f32[], f32[3,1], f32[1])" in lines


def test_sgd_example_is_the_corpus_graph() -> None:
    if "variable_sgd_step" not in _TF_CASES:
        pytest.skip("../shared/corpus/tf is not present")
    example = REPO / "examples" / "sgd"
    assert (example / "sgd_step.pbtxt").read_text() == \
        (TF_CORPUS / "variable_sgd_step.pbtxt").read_text()
    assert (example / "sgd_step.config.pbtxt").read_text() == \
        (TF_CORPUS / "variable_sgd_step.config.pbtxt").read_text()
