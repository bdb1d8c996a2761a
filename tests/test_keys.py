"""The key tables drive the loader and the schema alike: documents built from the tables are
accepted by both or refused by both."""
from __future__ import annotations

import copy
import json

import pytest
from jsonschema import Draft202012Validator

from archcalc import SpecError
from archcalc.core import keys
from archcalc.core.schema import build_schema
from archcalc.core.spec import resolve
from archcalc.layers import REGISTRY
from archcalc.layers.base import REQUIRED

BASE = {"input": [3, 8, 8], "layers": [{"name": "act", "type": "relu"}]}


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    return Draft202012Validator(build_schema())


def loader_accepts(document: dict) -> bool:
    try:
        variants = document.get("variants")
        resolve(document, next(iter(variants)) if isinstance(variants, dict) and variants else "net", "doc.json")
    except SpecError:
        return False
    return True


def agree(validator, document: dict) -> tuple[bool, bool]:
    return loader_accepts(document), validator.is_valid(document)


def documents_for(table: dict, place) -> list[tuple[str, dict]]:
    """For each key of a table with a literal kind: documents with each accepted and refused example."""
    out = []
    for key in table.values():
        good, bad = key.kind.examples()
        for value in good + bad:
            out.append((f"{key.name}={json.dumps(value)}", place(key.name, value)))
        out.append((f"unknown key near {key.name}", place(key.name + "x", good[0] if good else 1)))
    return out


def _top(name, value):
    doc = copy.deepcopy(BASE)
    doc[name] = value
    return doc


def _variant(name, value):
    doc = copy.deepcopy(BASE)
    doc["variants"] = {"v": {name: value}}
    return doc


def _expect(name, value):
    doc = copy.deepcopy(BASE)
    item = {"what": "params", "value": 0, "source": "by hand"}
    item[name] = value
    doc["expect"] = [item]
    return doc


LITERAL = ("title", "description", "comment", "meta", "input", "params", "source", "name", "$schema")


@pytest.mark.parametrize("table, place, names", [
    (keys.DOCUMENT, _top, LITERAL),
    (keys.VARIANT, _variant, LITERAL),
    (keys.expect_keys(), _expect, ("what", "source", "layer", "wrong", "note")),
])
def test_loader_and_schema_agree_on_documents_from_the_tables(validator, table, place, names):
    cases = documents_for({k: v for k, v in table.items() if k in names}, place)
    assert len(cases) > 10
    disagreements = [(label, *agree(validator, doc)) for label, doc in cases if len(set(agree(validator, doc))) != 1]
    assert disagreements == []


def _layer_doc(layer: dict) -> dict:
    return {"input": [8, 16, 16], "layers": [layer]}


MINIMAL = {name: {"type": name, **{k: (8 if k == "out" else 1) for k, f in lt.fields.items()
                                   if f.default is REQUIRED}} for name, lt in REGISTRY.items()}
MINIMAL["linear"] = None  # needs a flat input: tested through the flat document below
MINIMAL["permute"] = {"type": "permute", "dims": [1, 2, 0]}  # a list: the rule above gives 1
MINIMAL["reshape"] = {"type": "reshape", "shape": [8, 256]}
MINIMAL["measured"] = {"type": "measured", "op": "einsum", "at": [8, 16, 16], "output": [4, 16, 16]}


def _is_expression(kind, text: str) -> bool:
    try:
        return kind.literal(text, "$") is None
    except SpecError:
        return False  # a keyword the kind refuses by name: the schema must refuse it too


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_loader_and_schema_agree_on_every_layer_field(validator, name):
    layer_type = REGISTRY[name]
    base = MINIMAL[name] or {"type": "linear", "out": 4}
    wrap = (lambda layer: {"input": [8], "layers": [layer]}) if MINIMAL[name] is None else _layer_doc
    assert agree(validator, wrap(base)) == (True, True)
    disagreements = []
    for field_name, spec_field in layer_type.fields.items():
        good, bad = spec_field.kind.examples()
        for value in good + bad:
            if isinstance(value, str) and _is_expression(spec_field.kind, value):
                continue  # the schema lets any expression string through: only evaluating it can tell
            document = wrap({**base, field_name: value})
            loader, schema = agree(validator, document)
            # the schema cannot know the shape arithmetic: a layer the loader resolves but the
            # calculator refuses is still a valid document, so only the loader's verdict counts here
            if loader != schema:
                disagreements.append((field_name, value, loader, schema))
    assert disagreements == []
    assert agree(validator, wrap({**base, "nonsense": 1})) == (False, False)


BUDGETS = [  # (expect entry, what both the loader and the schema say)
    ({"what": "params", "max": 10, "reason": "r"}, True),
    ({"what": "macs", "min": 1, "max": 10, "reason": "r"}, True),
    ({"what": "peak_activation_bytes", "max": 10, "batch": 32, "dtype": "fp16", "reason": "r"}, True),
    ({"what": "receptive_field", "min": 3, "reason": "r", "source": "also fine"}, True),
    ({"what": "params", "max": 10}, False),  # no reason
    ({"what": "params", "value": 1}, False),  # no source
    ({"what": "params", "source": "s"}, False),  # neither value nor budget
    ({"what": "params", "value": 1, "max": 2, "reason": "r", "source": "s"}, False),
    ({"what": "params", "max": 10, "unit": "M", "reason": "r"}, False),
    ({"what": "params", "max": 10, "batch": 2, "reason": "r"}, False),
    ({"what": "activations", "max": 10, "dtype": "fp16", "reason": "r"}, False),
    ({"what": "activation_bytes", "max": 10, "layer": "act", "reason": "r"}, False),
    ({"what": "output_shape", "max": 10, "reason": "r"}, False),
    ({"what": "params", "max": 10, "reason": ""}, False),
    ({"what": "params", "max": "10", "reason": "r"}, False),
]


PUBLISHED = [  # (expect entry, what both the loader and the schema say): a number, or for output_shape a shape
    ({"what": "params", "value": 5}, True),
    ({"what": "params", "value": 1.5, "unit": "M"}, True),
    ({"what": "params", "value": [1, 2]}, False),
    ({"what": "params", "value": [1, 2], "unit": "M"}, False),
    ({"what": "params", "value": "5"}, False),
    ({"what": "output_shape", "value": [3, 8, 8]}, True),
    ({"what": "output_shape", "value": [10]}, True),
    ({"what": "output_shape", "value": 3}, False),
    ({"what": "output_shape", "value": 3, "unit": "M"}, False),
    ({"what": "output_shape", "value": [3, 8, 8], "unit": "M"}, False),
    ({"what": "output_shape", "value": [3, 8, 8], "significant": 1}, False),
    ({"what": "output_shape", "value": [3, "8", 8]}, False),
    ({"what": "output_shape", "value": [3, 0, 8]}, False),
    ({"what": "output_shape", "value": []}, False),
    ({"what": "output_shape", "value": [[3], 8, 8]}, False),
]


@pytest.mark.parametrize("shares, accepted", [("act", True), ("", False), (0, False), (["act"], False), (None, False)])
def test_loader_and_schema_agree_on_shares(validator, shares, accepted):
    document = {"input": [3, 8, 8], "layers": [{"name": "act", "type": "relu"}, {"type": "relu", "shares": shares}]}
    assert agree(validator, document) == (accepted, accepted)


@pytest.mark.parametrize("item, accepted", PUBLISHED)
def test_loader_and_schema_agree_on_published_values(validator, item, accepted):
    document = {**copy.deepcopy(BASE), "expect": [{**item, "source": "by hand"}]}
    assert agree(validator, document) == (accepted, accepted)


@pytest.mark.parametrize("item, accepted", BUDGETS)
def test_loader_and_schema_agree_on_budgets(validator, item, accepted):
    document = {**copy.deepcopy(BASE), "expect": [item]}
    assert agree(validator, document) == (accepted, accepted)


def test_dtypes_of_the_key_table_are_the_calculators():
    from archcalc.core.calc import DTYPE_BYTES

    assert keys.DTYPES == tuple(DTYPE_BYTES)
