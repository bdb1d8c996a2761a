"""specs/schema.json: generated from the layer registry, a valid 2020-12 schema, obeyed by the zoo."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from archcalc.cli import main
from archcalc.layers import REGISTRY

ROOT = Path(__file__).parent.parent
SCHEMA_FILE = ROOT / "specs" / "schema.json"
ZOO = sorted(p for p in (ROOT / "specs").glob("*.json") if p.name != "schema.json")
BAD = Path(__file__).parent / "bad_specs"


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))


def test_schema_file_is_the_generated_one():
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    assert SCHEMA_FILE.read_text() == result.stdout, "regenerate it: archcalc schema > specs/schema.json"


def test_schema_is_valid_2020_12():
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_schema_knows_every_layer_type():
    defs = json.loads(SCHEMA_FILE.read_text())["$defs"]
    assert {name for name in REGISTRY} == {key[len("layer_"):] for key in defs if key.startswith("layer_")}


def test_the_zoo_is_not_empty():
    assert any(p.name == "vgg.json" for p in ZOO)


@pytest.mark.parametrize("path", ZOO, ids=[p.stem for p in ZOO])
def test_zoo_spec_validates_and_names_the_schema(path, validator):
    document = json.loads(path.read_text())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []
    assert document.get("$schema") == "./schema.json"


@pytest.mark.parametrize("name", [
    "unknown_layer_type", "unknown_field", "missing_field", "unknown_top_key", "missing_layers",
    "bad_input_shape", "merge_one_branch", "expect_without_source", "expect_unknown_what", "type_not_string",
    "bad_pair", "wrong_field_type", "bool_as_string", "transpose_padding_same", "dropout_out_of_range",
    "variants_not_object", "input_with_batch", "join_with_branches", "join_one_name", "merge_without_branches",
])
def test_bad_specs_are_rejected(name, validator):
    document = json.loads((BAD / f"{name}.json").read_text())
    assert not validator.is_valid(document)


def test_the_fixtures_are_valid(validator):
    for path in (Path(__file__).parent / "fixtures").glob("*.json"):
        document = json.loads(path.read_text())
        if "layers" in document:
            assert validator.is_valid(document), path.name
