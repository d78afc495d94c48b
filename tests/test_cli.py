"""The `tfcompile` command line: tfcompile's flags and defaults, outputs, and clean errors.

Every user error must print `error: ...` to stderr, no traceback, and exit with status 1.
"""

from __future__ import annotations

import ctypes
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tfcompile_cli
from tests.conftest import REPO

MATMUL_HLO = (REPO / "examples" / "matmul" / "matmul.hlo").read_text()
HAVE_CC = shutil.which("cc") is not None or shutil.which("gcc") is not None


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = tfcompile_cli.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_user_error(result: tuple[int, str, str], *fragments: str) -> None:
    status, _, err = result
    assert status == 1, err
    assert err.startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


@pytest.fixture
def matmul_hlo(tmp_path: Path) -> Path:
    path = tmp_path / "matmul.hlo"
    path.write_text(MATMUL_HLO)
    return path


# --- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cpp_class, fragment", [
    ("foo::1bar", "component '1bar' is not a C++ identifier"),
    ("foo::", "empty component"),
    ("ns::class", "'class' is a C/C++ keyword"),
    ("foo bar", "'foo bar' is not a C++ identifier"),
])
def test_bad_cpp_class(capsys, matmul_hlo: Path, cpp_class: str, fragment: str) -> None:
    assert_user_error(cli(capsys, "--hlo", str(matmul_hlo), "--cpp_class", cpp_class), fragment)


def test_missing_and_unknown_flags(capsys, matmul_hlo: Path) -> None:
    assert_user_error(cli(capsys, "--hlo", str(matmul_hlo)), "--cpp_class")
    assert_user_error(cli(capsys, "--cpp_class", "A", "--hlo", str(matmul_hlo), "--bogus"),
                      "unrecognized arguments: --bogus")
    assert_user_error(cli(capsys, "--cpp_class", "A"), "no input: give --graph FILE")


def test_missing_input_file(capsys, tmp_path: Path) -> None:
    missing = tmp_path / "nope.hlo"
    assert_user_error(cli(capsys, "--hlo", str(missing), "--cpp_class", "A"),
                      f"--hlo: file '{missing}' does not exist")


def test_malformed_hlo_names_file_line_and_column(capsys, tmp_path: Path) -> None:
    bad = tmp_path / "bad.hlo"
    bad.write_text("HloModule m\n\nENTRY e {\n  p = f32[2] parameter(0)\n  ROOT r = f32[2] "
                   "frobnicate(p)\n}\n")
    assert_user_error(cli(capsys, "--hlo", str(bad), "--cpp_class", "A"), f"{bad}: line 5")


def test_ill_typed_hlo_is_a_user_error(capsys, tmp_path: Path) -> None:
    bad = tmp_path / "shape.hlo"
    bad.write_text(MATMUL_HLO.replace("ROOT product = f32[2,2]", "ROOT product = f32[3,3]"))
    assert_user_error(cli(capsys, "--hlo", str(bad), "--cpp_class", "A"), f"{bad}: ")


def test_bad_entry_point_and_names(capsys, matmul_hlo: Path, tmp_path: Path) -> None:
    base = ["--hlo", str(matmul_hlo), "--cpp_class", "A", "--out_function_object",
            str(tmp_path / "m.o"), "--out_header", str(tmp_path / "m.h")]
    assert_user_error(cli(capsys, *base, "--entry_point", "my-entry"), "entry_point")
    assert_user_error(cli(capsys, *base, "--arg_names", "x,x"), "'x' is given twice")
    assert_user_error(cli(capsys, *base, "--arg_names", "x"), "1 name(s) given for 2 arg(s)")


def test_input_sources_are_exclusive(capsys, matmul_hlo: Path) -> None:
    assert_user_error(cli(capsys, "--hlo", str(matmul_hlo), "--graph", "g.pb", "--config",
                          "c.pbtxt", "--cpp_class", "A"), "either --hlo or --graph")
    assert_user_error(cli(capsys, "--graph", "g.pb", "--cpp_class", "A"),
                      "--graph and --config must be given together")


def test_graph_input_without_the_tf_frontend(capsys, monkeypatch) -> None:
    real_find_spec = importlib.util.find_spec
    def find_spec(name: str, *rest: object) -> object:
        return None if name == "compiler.tf" else real_find_spec(name, *rest)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert_user_error(cli(capsys, "--graph", "g.pb", "--config", "c.pbtxt", "--cpp_class", "A"),
                      "TensorFlow GraphDef frontend (compiler.tf) is not available yet")


def test_help_exits_zero(capsys) -> None:
    status, out, _ = cli(capsys, "--help")
    assert status == 0
    for flag in ("--cpp_class", "--entry_point", "--target_triple", "--target_cpu",
                 "--target_features", "--out_function_object", "--out_header",
                 "--out_metadata_object", "--gen_name_to_index", "--gen_program_shape",
                 "--dump_fetch_nodes", "--check", "--out_library", "--dump_hlo_dir",
                 "--graph", "--config", "--hlo"):
        assert flag in out


def test_errors_from_a_real_process_have_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.hlo"
    bad.write_text("HloModule m\nENTRY e {\n  ROOT p = f32[2 parameter(0)\n}\n")
    done = subprocess.run(
        [sys.executable, str(REPO / "tfcompile_cli.py"), "--hlo", str(bad), "--cpp_class", "A"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr


# --- outputs -------------------------------------------------------------------------------------
def test_tfcompile_defaults(capsys, matmul_hlo: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    status, _, err = cli(capsys, "--hlo", str(matmul_hlo), "--cpp_class", "foo::bar::MatMulComp")
    assert status == 0, err
    header = (tmp_path / "out.h").read_text()
    assert "class MatMulComp final" in header
    assert "void entry(void* const* args, void* const* results, void* temps);" in header
    assert (tmp_path / "out_model.o").read_bytes()[:4] == b"\x7fELF"
    assert not list(tmp_path.glob("*.so"))


@pytest.mark.skipif(not HAVE_CC, reason="no C compiler")
def test_out_library_runs_through_the_c_api(capsys, matmul_hlo: Path, tmp_path: Path) -> None:
    so = tmp_path / "lib" / "matmul.so"
    status, _, err = cli(capsys, "--hlo", str(matmul_hlo), "--cpp_class", "foo::bar::MatMulComp",
                         "--entry_point", "matmul_entry", "--arg_names", "x,y",
                         "--result_names", "product", "--gen_name_to_index",
                         "--out_function_object", str(tmp_path / "lib" / "matmul.o"),
                         "--out_header", str(tmp_path / "lib" / "matmul.h"),
                         "--out_library", str(so))
    assert status == 0, err
    header = (tmp_path / "lib" / "matmul.h").read_text()
    assert "float& result_product(std::size_t dim0, std::size_t dim1)" in header
    lib = ctypes.CDLL(str(so))
    lib.foo_bar_MatMulComp_run.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_size_t]
    lib.foo_bar_MatMulComp_lookup_arg_index.argtypes = [ctypes.c_char_p]
    x = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    y = np.arange(7, 13, dtype=np.float32).reshape(3, 2)
    out = np.zeros((2, 2), np.float32)
    args = (ctypes.c_void_p * 2)(x.ctypes.data, y.ctypes.data)
    results = (ctypes.c_void_p * 1)(out.ctypes.data)
    assert lib.foo_bar_MatMulComp_run(args, results, None, None, 0) == 0
    np.testing.assert_array_equal(out, [[58, 64], [139, 154]])
    assert lib.foo_bar_MatMulComp_lookup_arg_index(b"y") == 1


def test_aarch64_object_and_header(capsys, matmul_hlo: Path, tmp_path: Path) -> None:
    obj, so = tmp_path / "arm.o", tmp_path / "arm.so"
    status, _, err = cli(capsys, "--hlo", str(matmul_hlo), "--cpp_class", "arm::MatMul",
                         "--target_triple", "aarch64-unknown-linux-gnu",
                         "--out_function_object", str(obj), "--out_header",
                         str(tmp_path / "arm.h"), "--out_library", str(so))
    assert status == 0, err
    assert err.startswith("note: ") and "not the host" in err
    assert not so.exists()
    elf = obj.read_bytes()
    assert elf[:4] == b"\x7fELF" and int.from_bytes(elf[18:20], "little") == 183  # EM_AARCH64
    if shutil.which("readelf"):
        described = subprocess.run(["readelf", "-h", str(obj)], capture_output=True, text=True)
        assert "AArch64" in described.stdout
    assert "Target: aarch64-unknown-linux-gnu" in (tmp_path / "arm.h").read_text()


def test_dump_hlo_dir(capsys, matmul_hlo: Path, tmp_path: Path) -> None:
    dump = tmp_path / "dump" / "here"
    status, _, err = cli(capsys, "--hlo", str(matmul_hlo), "--cpp_class", "A",
                         "--out_function_object", str(tmp_path / "a.o"),
                         "--out_header", str(tmp_path / "a.h"), "--dump_hlo_dir", str(dump))
    assert status == 0, err
    names = {p.name for p in dump.iterdir()}
    assert {"matmul.input.hlo", "matmul.llvm.ll", "matmul.llvm_opt.ll", "matmul.s"} <= names
    assert "dot(" in (dump / "matmul.input.hlo").read_text()
    assert "define" in (dump / "matmul.llvm_opt.ll").read_text()


def test_explain_writes_decisions_and_reasons(capsys, tmp_path: Path) -> None:
    hlo = REPO.parent / "shared" / "corpus" / "hlo" / "mlp_train_step.hlo"
    if not hlo.exists():
        pytest.skip("../shared/corpus is not present")
    status, _, err = cli(capsys, "--hlo", str(hlo), "--cpp_class", "A", "--explain",
                         "--out_function_object", str(tmp_path / "m.o"),
                         "--out_header", str(tmp_path / "m.h"))
    assert status == 0, err
    path = tmp_path / "m.explain.txt"
    assert f"wrote the compiler's decisions to {path}" in err
    text = path.read_text()
    # Fusion: done and not done, each with its reason.
    assert "== fusion ==" in text
    assert "\nfused: " in text and "elementwise or re-indexing producer" in text
    assert "not fused: exp.2 into the fusion of reduce_sum.68: producer is an expensive op " \
           "used 2 times" in text
    # Buffers: reused / in place / in a result's buffer, and not, each with its reason.
    assert "== buffers of the compiled code (kernel scratch included) ==" in text
    for fragment in ("reuses the space of", "in place of", "in result 1's buffer",
                     "not in place: ", "is still read later by", "output: written straight "
                     "into result", "parameter: the caller's argument buffer"):
        assert fragment in text, fragment
    assert "--explain" in tfcompile_cli.build_parser().format_help()
    assert tfcompile_cli.explain_path("dir/model.o") == Path("dir/model.explain.txt")
    assert tfcompile_cli.explain_path("model.obj") == Path("model.obj.explain.txt")


# --- TensorFlow graphs --------------------------------------------------------------------------
def write_graph(tmp_path: Path, graph: object, config: str, name: str = "g") -> list[str]:
    """Write a GraphDef as text and a config; returns the --graph/--config flags."""
    from google.protobuf import text_format

    (tmp_path / f"{name}.pbtxt").write_text(text_format.MessageToString(graph))
    (tmp_path / f"{name}.config.pbtxt").write_text(config)
    return [f"--graph={tmp_path / f'{name}.pbtxt'}",
            f"--config={tmp_path / f'{name}.config.pbtxt'}"]


def add_graph(op: str = "AddV2") -> object:
    """x + y (or any binary `op`) of two f32[2] placeholders."""
    from tests.compiler.tf_graph_builder import GraphBuilder, TShape

    g = GraphBuilder()
    x = g.op("Placeholder", name="x_hold", dtype=np.float32, shape=TShape((2,)))
    y = g.op("Placeholder", name="y_hold", dtype=np.float32, shape=TShape((2,)))
    g.op(op, x, y, T=np.float32, name="sum")
    g.op("Identity", "sum", T=np.float32, name="copy")
    return g.graph


ADD_CONFIG = """
feed { id { node_name: "x_hold" } shape { dim { size: 2 } } name: "x" }
feed { id { node_name: "y_hold" } shape { dim { size: 2 } } }
fetch { id { node_name: "sum" } name: "total" }
fetch { id { node_name: "copy" } }
fetch { id { node_name: "sum" } name: "again" }
"""


def test_graph_names_come_from_the_config(capsys, tmp_path: Path) -> None:
    flags = write_graph(tmp_path, add_graph(), ADD_CONFIG)
    status, _, err = cli(capsys, *flags, "--cpp_class=ns::Add", "--gen_name_to_index",
                         f"--out_function_object={tmp_path / 'add.o'}",
                         f"--out_header={tmp_path / 'add.h'}")
    assert status == 0, err
    header = (tmp_path / "add.h").read_text()
    assert "float* arg_x_data()" in header and "arg_y_hold" not in header
    assert "float& result_total(std::size_t dim0)" in header and "result_copy" not in header
    assert 'kArgNames[] = {"x", nullptr};' in header
    assert 'kResultNames[] = {"total", nullptr, "again"};' in header
    assert "(arg0: f32[2], arg1: f32[2]) -> (f32[2], f32[2], f32[2])" in header
    assert not (tmp_path / "out_helper.o").exists()


@pytest.mark.parametrize("value, has_names", [("", True), ("=true", True), ("=False", False),
                                              ("=0", False), ("=yes", True)])
def test_boolean_flags_take_values(capsys, tmp_path: Path, value: str, has_names: bool) -> None:
    flags = write_graph(tmp_path, add_graph(), ADD_CONFIG)
    status, _, err = cli(capsys, *flags, "--cpp_class=Add", f"--gen_name_to_index{value}",
                         f"--out_function_object={tmp_path / 'a.o'}",
                         f"--out_header={tmp_path / 'a.h'}")
    assert status == 0, err
    expected = f"HasNameIndices() {{ return {str(has_names).lower()}; }}"
    assert expected in (tmp_path / "a.h").read_text()


def test_graph_input_errors(capsys, tmp_path: Path) -> None:
    flags = write_graph(tmp_path, add_graph(), ADD_CONFIG)
    out = [f"--out_function_object={tmp_path / 'a.o'}", f"--out_header={tmp_path / 'a.h'}"]
    assert_user_error(cli(capsys, *flags, *out), "--cpp_class is required")
    assert_user_error(cli(capsys, *flags, "--cpp_class=A", "--arg_names=a,b", *out),
                      "--arg_names/--result_names are for --hlo")
    assert_user_error(cli(capsys, *flags, "--cpp_class=A", "--gen_program_shape=maybe"),
                      "expected true or false, got 'maybe'")
    bad = write_graph(tmp_path, add_graph(), ADD_CONFIG.replace('name: "x"', 'name: "x-1"'),
                      "bad")
    assert_user_error(cli(capsys, *bad, "--cpp_class=A", *out),
                      "config: feed #0 name 'x-1' is not a C++ identifier")
    clash = write_graph(tmp_path, add_graph(), ADD_CONFIG.replace('"again"', '"total"'), "c")
    assert_user_error(cli(capsys, *clash, "--cpp_class=A", *out), "'total' is given twice")
    missing = [f"--graph={tmp_path / 'nope.pb'}", flags[1]]
    assert_user_error(cli(capsys, *missing, "--cpp_class=A", *out),
                      f"--graph: file '{tmp_path / 'nope.pb'}' does not exist")


def test_check_lists_unsupported_ops(capsys, tmp_path: Path) -> None:
    good = write_graph(tmp_path, add_graph(), ADD_CONFIG, "good")
    status, out, err = cli(capsys, *good, "--check")
    assert status == 0, err
    assert "every op the fetches need can be compiled" in out
    bad = write_graph(tmp_path, add_graph("MyCustomOp"), ADD_CONFIG, "bad")
    status, out, err = cli(capsys, *bad, "--check")
    assert status == 1
    assert out.splitlines() == ["sum: MyCustomOp"]
    assert err.startswith("error: 1 node(s) use ops that cannot be compiled: MyCustomOp")
    assert not list(tmp_path.glob("*.o")) and not list(tmp_path.glob("*.h"))
    # Compiling the same graph names the op too.
    assert_user_error(cli(capsys, *bad, "--cpp_class=A"), "MyCustomOp")
    assert_user_error(cli(capsys, "--check", "--hlo", "m.hlo"), "--check needs --graph")
    assert_user_error(cli(capsys, "--check", bad[0]), "--check needs --graph and --config")


def test_dump_fetch_nodes(capsys, tmp_path: Path) -> None:
    flags = write_graph(tmp_path, add_graph(), ADD_CONFIG)
    status, out, err = cli(capsys, flags[1], "--dump_fetch_nodes")
    assert (status, out) == (0, "copy,sum\n"), err
    assert_user_error(cli(capsys, "--dump_fetch_nodes"), "--dump_fetch_nodes needs --config")
    (tmp_path / "broken.pbtxt").write_text("fetch { id { node_name: ")
    assert_user_error(cli(capsys, f"--config={tmp_path / 'broken.pbtxt'}",
                          "--dump_fetch_nodes"), "broken.pbtxt")


def test_hlo_with_metadata_object(capsys, matmul_hlo: Path, tmp_path: Path) -> None:
    meta = tmp_path / "meta" / "helper.o"
    status, _, err = cli(capsys, "--hlo", str(matmul_hlo), "--cpp_class", "foo::bar::MatMulComp",
                         "--out_function_object", str(tmp_path / "m.o"), "--out_header",
                         str(tmp_path / "m.h"), "--gen_program_shape",
                         "--out_metadata_object", str(meta))
    assert status == 0, err
    assert meta.read_bytes()[:4] == b"\x7fELF"
    header = (tmp_path / "m.h").read_text()
    assert "return &::foo_bar_MatMulComp_program_shape_data;" in header
    if shutil.which("nm"):
        symbols = subprocess.run(["nm", str(meta)], capture_output=True, text=True).stdout
        assert "foo_bar_MatMulComp_program_shape_data" in symbols
