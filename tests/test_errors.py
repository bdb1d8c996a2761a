"""Bad input: one line on stderr naming the file, the place in the spec and the values; exit code 2.

Every file under tests/bad_specs/ is pinned here to a part of its message.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from archcalc import SpecError, load
from archcalc.cli import main

BAD = Path(__file__).parent / "bad_specs"

MESSAGES = {
    "invalid_json": "invalid JSON at line 2, column 31: Expecting value",
    "not_utf8": "not UTF-8 text",
    "not_an_object": "$: a spec is a JSON object",
    "missing_layers": "$: a spec needs 'layers'",
    "unknown_top_key": "$: unknown key 'layer' (did you mean 'layers'?)",
    "bad_input_shape": "$.input: expected an input shape [C, H, W], [H, W] or [F] of positive integers (no batch), got [3, 0, 8]",
    "layers_not_list": '$.layers: expected a list, got {"type": "relu"}',
    "node_without_kind": "$.layers[0].layers[0]: a node has exactly one of 'type', 'block' or 'layers' (found none)",
    "type_not_string": '$.layers[0].type: expected a string, got ["relu"]',
    "unknown_layer_type": "$.layers[0].layers[0].type: unknown layer type 'conv2' (did you mean 'conv2d'?)",
    "unknown_field": "$.layers[0]: conv2d has no field 'strides' (did you mean 'stride'?)",
    "missing_field": "$.layers[0]: conv2d needs 'out'",
    "wrong_field_type": "$.layers[0].out: expected an integer, got 4.5",
    "field_below_minimum": "$.layers[0].stride: must be at least 1, got 0",
    "bad_pair": "$.layers[0].kernel: expected an integer or [h, w], got [3, 3, 3]",
    "unknown_name_in_expression": "$.layers[0].out: in expression 'widht': unknown name 'widht' (known: width)",
    "forbidden_expression": "$.layers[0].out: in expression \"__import__('os').getpid()\": Call is not allowed",
    "unknown_block": "$.layers[0].block: unknown block 'convbn' (did you mean 'conv_bn'?)",
    "missing_block_arg": "$.layers[0].args: block 'conv' needs argument 'out'",
    "unknown_block_arg": "$.layers[0].args: block 'conv' takes no argument 'kernal'",
    "merge_one_branch": "$.layers[0].branches: add needs at least two branches, got 1",
    "bad_layer_name": "$.layers[0].name: 'conv-1' may hold only letters, digits and underscores",
    "unknown_variant_param": "$.variants.small.params: 'widht' is not a family parameter (did you mean 'width'?)",
    "expect_without_source": "$.expect[0]: every published figure needs a source",
    "expect_unknown_what": "$.expect[0].what: 'parms' is not one of params,",
    "expect_bad_significant": "$.expect[0].significant: must be at least 1, got 0",
    "kernel_larger_than_input": (
        "big (conv2d, $.layers[1]): kernel 9 (span 9 with dilation 1) is larger than the padded input "
        "6+2=8 along H (input 4x6x6)"
    ),
    "pool_larger_than_input": (
        "features.2 (max_pool2d, $.layers[0].layers[2]): kernel 2 (span 2 with dilation 1) is larger than "
        "the padded input 1+0=1 along H (input 3x1x1)"
    ),
    "transpose_below_one": (
        "up (conv_transpose2d, $.layers[0]): output size (1 - 1)*1 - 2*1 + 1*(1 - 1) + 0 + 1 = -1 "
        "is below 1 along H (input 3x1x1)"
    ),
    "concat_size_mismatch": "mix (concat, $.layers[0]): concat needs equal sizes apart from the channels, got 4x6x6, 4x8x8",
    "add_channel_mismatch": "res (add, $.layers[0]): add needs equal shapes, got 8x8x8, 3x8x8",
    "groups_do_not_divide": (
        "dw (conv2d, $.layers[0]): groups=2 must divide both the input channels (3) and the output channels (4)"
    ),
    "linear_unflattened": "fc (linear, $.layers[1]): linear needs a flat input (add a flatten before it) (input 4x6x6)",
    "repeat_text_not_quoted": (
        "$.layers[0].repeat: cannot parse expression '5b': invalid decimal literal "
        "(text is quoted inside the string: \"'5b'\")"
    ),
    "bool_as_string": '$.layers[0].bias: "false" is a string; use the JSON value false',
    "transpose_padding_same": (
        "$.layers[0].padding: the padding mode 'same' is not defined for conv_transpose2d; "
        "give the padding as an integer or [h, w]"
    ),
    "family_expect_wrong": "the file holds 2 variants; name one as",
    "unknown_variant": "the file holds 3 variants; name one as",
    "dropout_out_of_range": "$.layers[0].p: must be less than 1, got 2",
    "variants_not_object": '$.variants: expected an object of variants, got ["a"]',
    "input_with_batch": "$.input: expected an input shape [C, H, W], [H, W] or [F] of positive integers (no batch), got [1, 3, 8, 8]",
}


def runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()  # click >= 8.2 keeps stderr apart


def fails_cleanly(args: list[str], expected: str, file: str | None = None) -> str:
    """Run the CLI; it must print exactly one line on stderr holding `expected`, nothing on stdout, exit 2."""
    result = runner().invoke(main, args)
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("archcalc: ")
    assert "Traceback" not in line
    if file is not None:
        assert line.startswith(f"archcalc: {file}: "), line
    assert expected in line, line
    return line


def test_every_bad_spec_is_pinned():
    assert sorted(p.stem for p in BAD.glob("*.json")) == sorted(MESSAGES)


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_bad_spec_through_the_cli(name):
    path = str(BAD / f"{name}.json")
    fails_cleanly(["table", path], MESSAGES[name], file=path)


@pytest.mark.parametrize("name", ["unknown_field", "kernel_larger_than_input", "concat_size_mismatch"])
def test_bad_spec_through_the_api(name):
    with pytest.raises(SpecError) as caught:
        from archcalc import analyze

        analyze(load(str(BAD / f"{name}.json")))
    assert caught.value.file == str(BAD / f"{name}.json")
    assert MESSAGES[name] in str(caught.value)


def test_missing_file(tmp_path):
    path = str(tmp_path / "nowhere.json")
    fails_cleanly(["table", path], "no such file", file=path)


def test_directory_is_not_a_spec(tmp_path):
    folder = tmp_path / "specs.json"
    folder.mkdir()
    fails_cleanly(["table", str(folder)], "cannot read", file=str(folder))


def test_unknown_network_suggests_the_nearest():
    fails_cleanly(["table", "vgg16x"], "unknown network 'vgg16x' (did you mean 'vgg16'?)")


def test_unknown_variant_of_a_family_file():
    path = str(Path(__file__).parent / "fixtures" / "features.json")
    fails_cleanly(["table", f"{path}:tinya"], "no variant 'tinya' (did you mean 'tiny_a'?)", file=path)


def test_unknown_variant_lists_the_variants_nearest_first():
    path = str(BAD / "unknown_variant.json")
    fails_cleanly(["table", f"{path}:smal"], "no variant 'smal' (did you mean 'small'?); the file has small, large, medium",
                  file=path)
    fails_cleanly(["table", f"{path}:nope"], "no variant 'nope'; the file has", file=path)


def test_family_level_expect_is_checked_for_every_variant():
    # conv 3 -> 4 (3x3): 4*3*9 + 4 = 112 parameters, 3 -> 8: 8*3*9 + 8 = 224; the family claims 1 for both.
    path = str(BAD / "family_expect_wrong.json")
    for variant, computed in (("a", 112), ("b", 224)):
        result = runner().invoke(main, ["check", f"{path}:{variant}"])
        assert result.exit_code == 1, result.output
        assert f"params claimed 1, computed {computed}" in result.stdout
        assert "1 checked: 0 ok, 0 known-wrong, 1 failed" in result.stdout


def test_family_file_without_a_variant():
    path = str(Path(__file__).parent / "fixtures" / "features.json")
    fails_cleanly(["table", path], "the file holds 2 variants; name one as", file=path)


@pytest.mark.parametrize("text, expected", [
    ("3x2x", "'--input': '3x2x': expected CxHxW, HxW or N, e.g. 3x224x224"),
    ("big", "'--input': 'big': expected CxHxW, HxW or N"),
    ("0x3", "'--input': '0x3': expected CxHxW, HxW or N with positive sizes"),
    ("1x2x3x4", "'--input': '1x2x3x4': expected CxHxW, HxW or N with positive sizes"),
])
def test_bad_input_option(text, expected):
    fails_cleanly(["table", "vgg16", "--input", text], expected)


def test_input_too_small_for_the_network():
    # 16 -> 8 -> 4 -> 2 -> 1 after four 2x2 pools: the fifth has nothing left to pool.
    line = fails_cleanly(["table", "vgg16", "--input", "16"], "kernel 2 (span 2 with dilation 1) is larger than the padded input 1+0=1")
    assert "vgg.json: features." in line and "(max_pool2d, " in line and "(input 512x1x1)" in line


def test_wrong_expect_layer_is_a_spec_error(tmp_path):
    spec = tmp_path / "net.json"
    spec.write_text('{"input": [3, 8, 8], "layers": [{"name": "conv", "type": "conv2d", "out": 4, "kernel": 3}],'
                    ' "expect": [{"what": "params", "layer": "cnov", "value": 112, "source": "by hand"}]}')
    result = runner().invoke(main, ["check", str(spec)])
    assert result.exit_code == 2
    assert "no layer 'cnov' (did you mean 'conv'?)" in result.stderr


def test_expect_value_with_a_unit_must_be_a_number(tmp_path):
    spec = tmp_path / "net.json"
    spec.write_text('{"input": [3, 8, 8], "layers": [],'
                    ' "expect": [{"what": "params", "value": "1.2", "unit": "M", "source": "a paper"}]}')
    fails_cleanly(["check", str(spec)], '$.expect[0].value: expected a number of M, got "1.2"', file=str(spec))


def test_name_template_error_names_its_place(tmp_path):
    spec = tmp_path / "net.json"
    spec.write_text('{"input": [3, 8, 8], "layers": [{"name": "conv{k}", "type": "relu"}]}')
    fails_cleanly(["table", str(spec)], "$.layers[0].name: in expression 'k': unknown name 'k'", file=str(spec))


def test_huge_repetition_is_refused(tmp_path):
    spec = tmp_path / "net.json"
    spec.write_text('{"input": [3, 8, 8], "params": {"a": "[0] * 10**12"}, "layers": []}')
    fails_cleanly(["table", str(spec)], "$.params.a: in expression '[0] * 10**12': repetition too long", file=str(spec))
