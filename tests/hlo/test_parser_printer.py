"""HLO text format: golden round trips, the JAX/XLA corpus, values of every attribute kind
and literal form, XLA's float spellings, printer ordering, and parse errors."""

from __future__ import annotations

import importlib
import math
import random
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from hlo.attributes import REQUIRED, ConvDimLabels, PadDim, PaddingConfig, Raw, SliceDim, WindowDim
from hlo.computation import HloComputation
from hlo.dtypes import PrimitiveType as T
from hlo.errors import HloParseError
from hlo.instruction import HloInstruction
from hlo.module import HloModule
from hlo.opcodes import Opcode
from hlo.parser import parse
from hlo.printer import float_to_text, instruction_to_text, to_text
from hlo.shape import ProgramShape, Shape
from tests.conftest import CORPUS

GOLDEN = Path(__file__).parent / "golden"
GOLDEN_FILES = sorted(GOLDEN.glob("*.hlo"))
CORPUS_FILES = sorted((CORPUS / "hlo").glob("*.hlo"))

# Corpus modules whose text is not our canonical form, and why.
NOT_CANONICAL = {
    # XLA always prints topk's `largest`; the opcode table has no way to say so yet, so
    # the printer drops it when it equals the default (requested: AttrSpec.always_print).
    "top_k.hlo": "largest=true",
}


def _verify(module: HloModule) -> None:
    """hlo.verifier.verify when that module exists (it is written concurrently)."""
    try:
        verifier = importlib.import_module("hlo.verifier")
    except ImportError:
        return
    verifier.verify(module)


def _value(value: Any) -> Any:
    """A comparable rendering of an attribute value."""
    if isinstance(value, HloComputation):
        return ("computation", value.name)
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (tuple, list)):
        return tuple(_value(v) for v in value)
    return value


def _attrs(instr: HloInstruction) -> tuple[Any, ...]:
    """The instruction's attributes, absent ones at their schema default."""
    values = dict(instr.attrs)
    for spec in instr.opdef.attrs:
        if spec.name not in values and spec.default not in (None, REQUIRED):
            values[spec.name] = spec.default
    return tuple(sorted((k, _value(v)) for k, v in values.items()))


def structure(module: HloModule) -> Any:
    """Everything the text format carries, in a form `==` can compare."""
    return (
        module.name,
        tuple(sorted((k, _value(v)) for k, v in module.attrs.items())),
        module.entry_layout or module.program_shape(),
        module.entry_computation.name,
        tuple(
            (
                comp.name,
                comp.root.name if comp.root is not None else None,
                tuple(
                    (i.name, i.opcode, i.shape, tuple(o.name for o in i.operands), _attrs(i))
                    for i in comp.instructions
                ),
            )
            for comp in module.computations
        ),
    )


# --- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.name)
def test_golden_prints_back_exactly(path: Path) -> None:
    text = path.read_text()
    module = parse(text)
    assert to_text(module) == text
    _verify(module)


def test_goldens_cover_every_attribute_kind() -> None:
    from hlo.attributes import AttrKind
    from hlo.opcodes import COMMON_ATTRS, OPS

    common = {s.name: s.kind for s in COMMON_ATTRS}
    seen: set[AttrKind] = set()
    for path in GOLDEN_FILES:
        for comp in parse(path.read_text()).computations:
            for instr in comp.instructions:
                for name in instr.attrs:
                    spec = OPS[instr.opcode].attr(name)
                    seen.add(spec.kind if spec is not None else common[name])
    assert seen == set(AttrKind)


@pytest.mark.skipif(not CORPUS_FILES, reason="the shared corpus is not present")
def test_corpus_is_complete() -> None:
    assert len(CORPUS_FILES) >= 111


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_corpus_round_trips(path: Path) -> None:
    text = path.read_text()
    module = parse(text)
    printed = to_text(module)
    again = parse(printed)
    assert structure(again) == structure(module)
    assert to_text(again) == printed
    if path.name in NOT_CANONICAL:
        assert NOT_CANONICAL[path.name] in text
    else:
        assert printed == text


def test_old_xla_format() -> None:
    # `%` names, signatures, typed operands, comments, a use before its definition, callees
    # after their caller, no ROOT (the last instruction is the root, as in XLA), a tiling
    # suffix on a layout (dropped).
    text = """HloModule old, is_scheduled=true, input_output_alias={ {0}: (0, {}, may-alias) }

// line comment
ENTRY %Main.v3 (p: f32[4], q: f32[4]) -> f32[4] {
  %p = f32[4]{0} parameter(0)
  %sum = f32[4]{0} map(f32[4]{0} %p, f32[4]{0:T(256)} %q), dimensions={0}, to_apply=%add.v3
  %q = f32[4] parameter(1) /* trailing */
  %out = f32[4]{0:T(256)} negate(%sum)
}

%add.v3 (lhs: f32[], rhs: f32[]) -> f32[] {
  %lhs = f32[] parameter(0)
  %rhs = f32[] parameter(1)
  %add = f32[] add(f32[] %lhs, f32[] %rhs)
}
"""
    module = parse(text)
    assert to_text(module) == """HloModule old, is_scheduled=true, input_output_alias={ {0}: (0, {}, may-alias) }, entry_computation_layout={(f32[4]{0}, f32[4]{0})->f32[4]{0}}

add.v3 {
  lhs = f32[] parameter(0)
  rhs = f32[] parameter(1)
  ROOT add = f32[] add(lhs, rhs)
}

ENTRY Main.v3 {
  p = f32[4]{0} parameter(0)
  q = f32[4]{0} parameter(1)
  sum = f32[4]{0} map(p, q), dimensions={0}, to_apply=add.v3
  ROOT out = f32[4]{0} negate(sum)
}

"""  # noqa: E501


def test_without_header_entry_is_last_and_name_from_hint() -> None:
    module = parse("a {\n  ROOT x = f32[] parameter(0)\n}\n\nb {\n  ROOT y = s32[] parameter(0)\n}",
                   name_hint="hinted")
    assert module.name == "hinted"
    assert module.entry_computation.name == "b"
    assert module.entry_layout is None
    assert to_text(module).startswith("HloModule hinted, entry_computation_layout={(s32[])->s32[]}")


def test_entry_layout_and_module_attributes() -> None:
    module = parse(
        "HloModule m, entry_computation_layout={(f32[2,3]{0,1})->f32[2,3]{0,1}}, "
        "replica_count=2, frontend_attributes={a=\"b\"}\n\n"
        "ENTRY e {\n  ROOT p = f32[2,3]{0,1} parameter(0)\n}\n"
    )
    assert module.entry_layout == ProgramShape(
        (Shape.array(T.F32, (2, 3), (0, 1)),), Shape.array(T.F32, (2, 3), (0, 1))
    )
    assert module.attrs == {"replica_count": Raw("2"), "frontend_attributes": Raw('{a="b"}')}


def test_tuple_element_layouts_are_kept() -> None:
    text = "ENTRY e {\n  ROOT p = (f32[2,3]{0,1}, (s32[4]{0}, f32[2,2]{0,1})) parameter(0)\n}"
    shape = parse(text).entry_computation.root.shape
    assert shape.tuple_shapes[0].layout == (0, 1)
    assert shape.tuple_shapes[1].tuple_shapes[1].layout == (0, 1)


def test_duplicate_names_across_computations_are_made_unique() -> None:
    text = ("c {\n  x = f32[] parameter(0)\n  ROOT n = f32[] negate(x)\n}\n\n"
            "ENTRY e {\n  x = f32[] parameter(0)\n  ROOT y = f32[] call(x), to_apply=c\n}\n")
    module = parse(text)
    names = [i.name for c in module.computations for i in c.instructions]
    assert len(set(names)) == len(names)
    assert structure(parse(to_text(module))) == structure(module)


def test_fusion_computations_are_marked() -> None:
    module = parse((GOLDEN / "fusion.hlo").read_text())
    assert module.computation("fused_computation").is_fusion
    assert not module.entry_computation.is_fusion


# --- attribute values -------------------------------------------------------------------------


def _instr(path: str, name: str):
    module = parse((GOLDEN / path).read_text())
    return next(i for c in module.computations for i in c.instructions if i.name == name)


def test_window_values() -> None:
    window = _instr("windows.hlo", "dilated").attrs["window"]
    assert window.dims == (
        WindowDim(1, 1, 0, 0, 1, 1, False),
        WindowDim(3, 1, 2, 1, 1, 2, True),
        WindowDim(3, 1, 1, 2, 1, 1, False),
        WindowDim(1, 1, 0, 0, 1, 1, False),
    )
    grouped = _instr("windows.hlo", "grouped").attrs
    assert grouped["window"].dims[0] == WindowDim(3, 2, 1, 1, 2, 1, False)
    assert grouped["feature_group_count"] == 2


def test_dim_labels_values() -> None:
    labels = _instr("windows.hlo", "conv").attrs["dim_labels"]
    assert labels == ConvDimLabels(0, 3, (1, 2), 2, 3, (0, 1), 0, 3, (1, 2))
    text = "ENTRY e {\n  a = f32[1,2,3,4] parameter(0)\n  b = f32[5,6,7,8] parameter(1)\n" \
           "  ROOT c = f32[1,2,3,4] convolution(a, b), dim_labels=f01b_i01o->01bf\n}"
    labels = parse(text).entry_computation.root.attrs["dim_labels"]
    assert labels == ConvDimLabels(3, 0, (1, 2), 0, 3, (1, 2), 2, 3, (0, 1))
    assert "dim_labels=f01b_i01o->01bf" in to_text(parse(text))


def test_slice_padding_and_list_values() -> None:
    assert _instr("data_movement.hlo", "sliced").attrs["slice"] == (
        SliceDim(0, 4, 2), SliceDim(1, 4, 1)
    )
    assert _instr("data_movement.hlo", "padded").attrs["padding"] == PaddingConfig(
        (PadDim(1, 2, 0), PadDim(-1, 2, 0))
    )
    assert _instr("data_movement.hlo", "interior").attrs["padding"] == PaddingConfig(
        (PadDim(0, 1, 3), PadDim(0, 0, 0))
    )
    summed = _instr("misc.hlo", "summed").attrs
    assert summed["replica_groups"] == ((0, 1), (2, 3))
    assert summed["channel_id"] == 1 and summed["use_global_device_ids"] is True


def test_enum_float_string_and_raw_values() -> None:
    assert _instr("misc.hlo", "spectrum").attrs == {"fft_type": "RFFT", "fft_length": (8,)}
    assert _instr("misc.hlo", "normalized").attrs == {"epsilon": 0.001, "feature_index": 3}
    custom = _instr("misc.hlo", "custom").attrs
    assert custom["custom_call_target"] == 'my"target\\\n'
    assert custom["api_version"] == Raw("API_VERSION_STATUS_RETURNING")
    assert custom["metadata"].text.startswith('{op_type="foo" op_name="jit(f)/foo{1}"')
    assert custom["backend_config"] == Raw('{"outer":{"inner":[1,2]}}')
    switched = _instr("control_flow.hlo", "switched").attrs["branch_computations"]
    assert [c.name for c in switched] == ["negate", "identity", "square"]


# --- literals --------------------------------------------------------------------------------


def _bits(array: np.ndarray) -> list[int]:
    return array.reshape(-1).view(np.dtype(f"u{array.dtype.itemsize}")).tolist()


def test_float_literal_values() -> None:
    lit = {i.name: i.attrs["literal"] for i in
           parse((GOLDEN / "literals.hlo").read_text()).entry_computation.instructions
           if i.opcode is Opcode.CONSTANT}
    assert _bits(lit["negative.zero"]) == [0x80000000]
    assert _bits(lit["nan"]) == [0x7FC00000]
    assert _bits(lit["negative.nan"]) == [0xFFC00000]
    assert _bits(lit["nan.payload"]) == [0x7F800001]
    assert lit["tiny"] == np.float32(1e-07)
    assert lit["third"].dtype == np.float64 and lit["third"] == 1 / 3
    assert lit["halves"].dtype == np.float16 and lit["halves"].tolist()[1] == -65504
    assert lit["brain"].dtype == ml_dtypes.bfloat16 and math.isinf(float(lit["brain"][1]))
    assert lit["preds"].tolist() == [True, False, True] and lit["true"] == np.True_
    assert lit["longs"].tolist() == [-(2**63), 2**63 - 1]
    assert lit["unsigned"].tolist() == [0, 2**64 - 1]
    assert lit["empty"].shape == (0,) and lit["empty"].dtype == np.int8


def test_array_complex_and_tuple_literals() -> None:
    lit = {i.name: i.attrs["literal"] for i in
           parse((GOLDEN / "arrays.hlo").read_text()).entry_computation.instructions
           if i.opcode is Opcode.CONSTANT}
    assert lit["matrix"].tolist() == [[1, 2, 3], [-4, -5, -6]]
    assert lit["no.rows"].shape == (0, 3) and lit["no.columns"].shape == (2, 0)
    assert lit["rank4"].tolist() == [[[[1, 2]], [[3, 4]]]]
    assert lit["complex"] == np.complex64(1 - 2.5j)
    assert lit["complexes"].dtype == np.complex64 and math.isnan(lit["complexes"][1].imag)
    assert lit["wide"].dtype == np.complex128 and lit["wide"][0, 1] == 1 + 1e100j
    first, second = lit["pair"]
    assert first.tolist() == [7, 8] and second.dtype == np.float32 and second == 0.25


def test_literal_rows_with_comments() -> None:
    text = "ENTRY e {\n  ROOT c = f32[2,2] constant({ {1, /* x */ 2}, {3, 4 // y\n} })\n}"
    literal = parse(text).entry_computation.root.attrs["literal"]
    assert literal.tolist() == [[1, 2], [3, 4]]


def test_literal_without_braces_spacing_or_index_comments_parses() -> None:
    text = "ENTRY e {\n  ROOT c = s32[1,2,1,2] constant({{{{1,2}},{{3,4}}}})\n}"
    module = parse(text)
    assert module.entry_computation.root.attrs["literal"].tolist() == [[[[1, 2]], [[3, 4]]]]
    assert "constant({ { /*i0=0*/ { /*i1=0*/ { 1, 2 } }, { /*i1=1*/ { 3, 4 } } } })" \
        in to_text(module)


@pytest.mark.parametrize("value, text", [
    (0.05, "0.05"), (2.82842708, "2.82842708"), (-0.0076224613, "-0.0076224613"),
    (1e-05, "1e-05"), (-0.99999994, "-0.99999994"), (3.0, "3"), (-0.0, "-0"),
    (math.inf, "inf"), (-math.inf, "-inf"), (math.nan, "nan"), (16777216.0, "16777216"),
    (3.4028234663852886e38, "3.40282347e+38"),
])
def test_f32_is_spelled_as_xla_spells_it(value: float, text: str) -> None:
    assert float_to_text(np.float32(value), T.F32) == text


def test_other_float_types_spelling() -> None:
    assert float_to_text(np.float16(0.1), T.F16) == "0.099976"
    assert float_to_text(ml_dtypes.bfloat16(0.01), T.BF16) == "0.01001"
    assert float_to_text(np.float64(0.1), T.F64) == "0.1"
    assert float_to_text(np.float64(1 / 3), T.F64) == "0.33333333333333331"
    assert float_to_text(np.float32(-np.nan), T.F32) == "-nan"


@pytest.mark.parametrize("element_type", [T.F16, T.BF16, T.F32, T.F64])
def test_floats_print_and_parse_bit_exactly(element_type: T) -> None:
    rng = random.Random(1234)
    dtype = element_type.numpy
    width = dtype.itemsize * 8
    patterns = [rng.getrandbits(width) for _ in range(400)] + [0, 1, (1 << width) - 1]
    values = np.array(patterns, dtype=np.dtype(f"u{dtype.itemsize}")).view(dtype)
    texts = [float_to_text(v, element_type) for v in values]
    name = element_type.value
    body = ", ".join(texts)
    module = parse(f"ENTRY e {{\n  ROOT c = {name}[{len(texts)}] constant({{{body}}})\n}}")
    parsed = module.entry_computation.root.attrs["literal"]
    assert _bits(parsed) == _bits(values)


# --- printer ordering -------------------------------------------------------------------------


def test_printer_puts_callees_and_operands_first() -> None:
    module = HloModule("built")
    entry = module.new_computation("main", entry=True)
    callee = module.new_computation("negate")
    x = callee.add(Opcode.PARAMETER, shape=Shape.scalar(T.F32), parameter_number=0)
    callee.set_root(callee.add(Opcode.NEGATE, [x]))
    p = entry.add(Opcode.PARAMETER, shape=Shape.scalar(T.F32), name="p", parameter_number=0)
    late = entry.add(Opcode.CALL, [p], shape=Shape.scalar(T.F32), to_apply=callee)
    early = entry.add(Opcode.CONSTANT, shape=Shape.scalar(T.F32),
                      literal=np.array(2, dtype=np.float32))
    entry.set_root(entry.add(Opcode.MULTIPLY, [late, early], name="product"))
    # Move the root to the front, as a pass appending a new root elsewhere might.
    entry.instructions.insert(0, entry.instructions.pop())
    text = to_text(module)
    assert text.index("negate {") < text.index("ENTRY main {")
    lines = [line.strip().split(" =")[0] for line in text.split("ENTRY main {")[1].splitlines()]
    assert lines[1:5] == ["p", "call", "constant", "ROOT product"]
    assert structure(parse(text)) == structure(parse(to_text(parse(text))))


def test_defaults_are_omitted_and_required_printed() -> None:
    module = HloModule("m")
    comp = module.new_computation("main", entry=True)
    p = comp.add(Opcode.PARAMETER, shape=Shape.array(T.F32, (4,)), parameter_number=0)
    sort = comp.add(Opcode.SORT, [p], shape=p.shape, dimensions=(0,), is_stable=False,
                    to_apply=comp)
    expected = "sort = f32[4]{0} sort(parameter), dimensions={0}, to_apply=main"
    assert instruction_to_text(sort) == expected


# --- errors ---------------------------------------------------------------------------------

_P = "ENTRY e {\n  p = f32[2] parameter(0)\n"

ERRORS = [
    (_P + "  ROOT a = f32[2] add(p, q)\n}", 3, "unknown instruction 'q'"),
    (_P + "  p = f32[2] parameter(1)\n}", 3, "duplicate instruction name 'p'"),
    (_P + "  ROOT a = f32[2] frobnicate(p)\n}", 3, "unknown opcode 'frobnicate'"),
    (_P + "  ROOT a = f32[2] negate(p), colour=red\n}", 3, "unknown attribute 'colour'"),
    (_P + "  ROOT a = f32[2] transpose(p)\n}", 3, "requires attribute 'dimensions'"),
    (_P + "  ROOT a = f32[2] transpose(p), dimensions=0\n}", 3, "expected {i,j,...}"),
    (_P + "  ROOT a = f32[2] add(p)\n}", 3, "takes 2 operand(s), got 1"),
    (_P + "  ROOT a = f32[2] negate(p, p)\n}", 3, "takes 1 operand(s), got 2"),
    (_P + "  ROOT a = f32[2] negate(p), metadata={a=1}, metadata={}\n}", 3, "duplicate attribute"),
    (_P + "  ROOT a = pred[2] compare(p, p), direction=SIDEWAYS\n}", 3, "must be one of"),
    (_P + "  ROOT a = f32[2] reverse(p), dimensions={0}, is_stable=true\n}", 3,
     "unknown attribute 'is_stable'"),
    (_P + "  ROOT a = f32[2] call(p), to_apply=nowhere\n}", 3, "unknown computation 'nowhere'"),
    (_P + "  ROOT a = f32[2] pad(p, p), padding=1_2_3_4\n}", 3, "expected lo_hi"),
    (_P + "  ROOT a = f32[2] slice(p), slice={[0:1:2:3]}\n}", 3, "expected {[start:limit"),
    (_P + "  ROOT a = f32[2] reduce-window(p, p), window={size=2 stride=1x1}, to_apply=e\n}",
     3, "expected {size=AxB"),
    (_P + "  ROOT a = f32[2] convolution(p, p), dim_labels=bf_io->bx\n}", 3,
     "expected dim labels"),
    (_P + "  ROOT a = f32[2] negate(s32[2] p)\n}", 3, "is written as s32[2]"),
    (_P + "  ROOT a = f32[2] negate(0)\n}", 3, "expected an operand name"),
    (_P + "  ROOT a = f32[2] parameter(p)\n}", 3, "takes its parameter_number in parentheses"),
    (_P + "  ROOT a = f32[2] parameter(0)\n}", 3, "duplicate parameter number 0"),
    (_P + "  ROOT a = f32[2] parameter(-1)\n}", 3, "parameter_number must be >= 0"),
    (_P + "  ROOT a = token[2] after-all()\n}", 3, "a token shape has no dimensions"),
    ("HloModule m, entry_computation_layout={()->f32[]}, entry_computation_layout={()->f32[]}"
     "\nENTRY e {\n  ROOT p = f32[] parameter(0)\n}", 1, "duplicate entry_computation_layout"),
    ("HloModule m, a=1, a=2\nENTRY e {\n  ROOT p = f32[] parameter(0)\n}", 1,
     "duplicate module attribute 'a'"),
    (_P + "  ROOT a = f32[2] add(b, p)\n  b = f32[2] add(a, p)\n}", 4, "cycle"),
    (_P + "  ROOT a = f32[2] negate(p)\n  ROOT b = f32[2] negate(p)\n}", 4, "more than one ROOT"),
    (_P + "  ROOT a = q16[2] negate(p)\n}", 3, "unknown element type 'q16'"),
    (_P + "  ROOT a = f32[2,3]{1,1} negate(p)\n}", 3, "not a permutation"),
    (_P + "  ROOT a = f32[?] negate(p)\n}", 3, "64-bit integer dimensions"),
    (_P + "  ROOT a = f32[3] constant({1, 2})\n}", 3, "has 2 elements at depth 0, expected 3"),
    (_P + "  ROOT a = f32[2,2] constant({1, 2})\n}", 3, "expected {...} lists at depth 1"),
    (_P + "  ROOT a = f32[2] constant({ {1}, {2} })\n}", 3, "is nested too deeply"),
    (_P + "  ROOT a = f32[] constant({1})\n}", 3, "is nested too deeply"),
    (_P + "  ROOT a = f32[3] constant({1,,2})\n}", 3, "empty element in literal"),
    (_P + "  ROOT a = f32[2] constant({1, 2,})\n}", 3, "empty element in literal"),
    (_P + "  ROOT a = f32[1] constant({1_0})\n}", 3, "expected a floating-point number"),
    (_P + "  ROOT a = f32[1] constant({1e39})\n}", 3, "1e39 is out of range for float32"),
    (_P + "  ROOT a = f64[1] constant({1e999})\n}", 3, "1e999 is out of range for float64"),
    (_P + "  ROOT a = s8[2] constant({1, 128})\n}", 3, "128 is out of range for s8"),
    (_P + "  ROOT a = u8[1] constant({-1})\n}", 3, "-1 is out of range for u8"),
    (_P + "  ROOT a = s32[1] constant({1.5})\n}", 3, "expected an integer"),
    (_P + "  ROOT a = f16[1] constant({70000})\n}", 3, "out of range for float16"),
    (_P + "  ROOT a = f32[1] constant({true})\n}", 3, "expected a floating-point number"),
    (_P + "  ROOT a = pred[1] constant({2})\n}", 3, "expected true, false, 1 or 0"),
    (_P + "  ROOT a = f32[100] constant({...})\n}", 3, "elided constant values"),
    (_P + "  ROOT a = c64[] constant(1)\n}", 3, "written (real, imag)"),
    (_P + "  ROOT a = (f32[], f32[]) constant((1))\n}", 3, "tuple literal has 1 elements"),
    (_P + "  ROOT a = f32[1] constant({nan(0x800000)})\n}", 3, "does not fit 23 mantissa bits"),
    (_P + "  ROOT a = f32[2] negate(p)\n", 3, "unexpected end of input"),
    (_P + "  ROOT a = f32[2] negate(p) ?\n}", 3, "unexpected '?'"),
    (_P + "  ROOT a = f32[2] negate(p),\n}", 4, "unexpected '}'"),
    (_P + "  a = f32[2] negate(p)\n}\n\nENTRY f {\n  ROOT q = f32[] parameter(0)\n}", 6,
     "more than one computation is marked ENTRY"),
    (_P + "  ROOT a = f32[2] negate(p)\n}\n\ne {\n  ROOT q = f32[] parameter(0)\n}", 6,
     "duplicate computation name 'e'"),
    ("c {\n  p = f32[] parameter(0)\n  ROOT r = f32[] call(p), to_apply=c\n}", 1,
     "calls itself"),
    ("ENTRY e {\n}", 1, "has no instructions"),
    ("HloModule m", 1, "has no computations"),
    ("", 1, "has no computations"),
]


@pytest.mark.parametrize("text, line, message", ERRORS, ids=[e[2] for e in ERRORS])
def test_parse_errors_say_what_and_where(text: str, line: int, message: str) -> None:
    with pytest.raises(HloParseError) as info:
        parse(text)
    error = info.value
    assert message in str(error)
    assert error.line == line
    assert error.column > 0
    assert error.text == text.split("\n")[line - 1]


def test_deep_nesting_is_a_parse_error() -> None:
    shape = "(" * 20000 + "f32[]" + ")" * 20000
    with pytest.raises(HloParseError, match="nested too deeply"):
        parse(f"ENTRY e {{\n  ROOT p = {shape} parameter(0)\n}}")


def test_long_chains_do_not_exhaust_the_stack() -> None:
    # Written users-first, so that building it needs a deep walk to the first definition.
    lines = [f"  n{i} = f32[] negate(n{i + 1})" for i in range(5000)]
    text = "ENTRY e {\n  ROOT r = f32[] negate(n0)\n" + "\n".join(lines) + \
        "\n  n5000 = f32[] parameter(0)\n}"
    module = parse(text)
    assert len(module.entry_computation.instructions) == 5002
    assert to_text(parse(to_text(module))) == to_text(module)
