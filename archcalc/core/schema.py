"""The JSON Schema of specs (specs/schema.json), generated from the key tables and the layer registry."""
from __future__ import annotations

import json
from typing import Any, Mapping

from ..layers import REGISTRY
from ..layers.base import REQUIRED
from .keys import (
    BLOCK,
    BLOCK_USE,
    DOCUMENT,
    MERGE_RULES,
    SEQUENCE,
    VARIANT,
    Key,
    expect_keys,
    expect_rules,
    layer_keys,
    merge_keys,
    ref,
)


def _object(keys: Mapping[str, Key], description: str = "") -> dict:
    schema: dict[str, Any] = {"type": "object"}
    if description:
        schema["description"] = description
    schema["properties"] = {name: key.schema() for name, key in keys.items()}
    required = [name for name, key in keys.items() if key.required]
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    return schema


def _layer(name: str) -> dict:
    layer_type = REGISTRY[name]
    schema = _object(layer_keys(layer_type), layer_type.doc)
    for field_name, spec_field in layer_type.fields.items():
        default = spec_field.default
        if default is not None and field_name in schema["properties"] and default is not REQUIRED:
            schema["properties"][field_name]["default"] = list(default) if isinstance(default, tuple) else default
    return schema


def build_schema() -> dict:
    layers = {name: _layer(name) for name in sorted(REGISTRY)}
    defs: dict[str, Any] = {
        "node": {"oneOf": [ref(f"layer_{n}") for n in layers] + [ref("merge"), ref("block_use"), ref("sequence")]},
        "nodes": {"type": "array", "items": ref("node")},
        "merge": {**_object(merge_keys(), "branches applied to the same input, then merged; or, with a list in "
                                          "`from`, the outputs of the named nodes merged"), **MERGE_RULES},
        "block_use": _object(BLOCK_USE, "an instance of a named block"),
        "sequence": _object(SEQUENCE, "nodes applied one after the other"),
        "block": _object(BLOCK),
        "variant": _object(VARIANT),
        "expect": {**_object(expect_keys()), **expect_rules()},
        **{f"layer_{n}": s for n, s in layers.items()},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://archcalc.invalid/schema.json",
        "title": "archcalc network spec",
        **_object(DOCUMENT),
        "$defs": defs,
    }


def schema_text() -> str:
    return json.dumps(build_schema(), indent=2) + "\n"
