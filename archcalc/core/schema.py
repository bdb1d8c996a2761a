"""The JSON Schema of specs, generated from the layer registry (specs/schema.json)."""
from __future__ import annotations

import json
from typing import Any

from ..layers import REGISTRY
from ..layers.base import REQUIRED, Field
from .spec import EXPECT_WHATS, MERGES

EXPR = {"type": "string", "description": "an expression over the family's params, loop variables and block args"}
_KINDS: dict[str, Any] = {
    "int": {"anyOf": [{"type": "integer"}, EXPR]},
    "number": {"anyOf": [{"type": "number"}, EXPR]},
    "bool": {"anyOf": [{"type": "boolean"}, EXPR]},
    "pair": {"anyOf": [{"type": "integer"}, {"type": "array", "items": {"anyOf": [{"type": "integer"}, EXPR]}, "minItems": 2, "maxItems": 2}, EXPR, {"type": "null"}]},
}
_KINDS["padding"] = {"anyOf": [{"enum": ["same", "valid"]}, *_KINDS["pair"]["anyOf"]]}

COMMON = {
    "name": {"type": "string", "description": "name in the layer path; {expr} is substituted"},
    "names": {"type": "string", "description": "with repeat: the name template of each repetition"},
    "when": {"description": "the node exists only when this is true", "anyOf": [{"type": "boolean"}, EXPR]},
    "repeat": {"description": "a count, or a list to iterate over", "anyOf": [{"type": "integer"}, {"type": "array"}, EXPR]},
    "as": {"type": "string", "description": "the loop variable (default i)"},
    "index": {"type": "string", "description": "a variable holding the repetition's position"},
    "comment": {"type": "string"},
}


def _field(spec_field: Field) -> dict:
    schema = dict(_KINDS[spec_field.kind])
    if spec_field.doc:
        schema["description"] = spec_field.doc
    if spec_field.default is not REQUIRED and spec_field.default is not None:
        schema["default"] = list(spec_field.default) if isinstance(spec_field.default, tuple) else spec_field.default
    return schema


def _layer(name: str) -> dict:
    layer = REGISTRY[name]
    return {
        "type": "object",
        "description": layer.doc,
        "properties": {"type": {"const": name}, **COMMON, **{k: _field(f) for k, f in layer.fields.items()}},
        "required": ["type", *[k for k, f in layer.fields.items() if f.default is REQUIRED]],
        "additionalProperties": False,
    }


def build_schema() -> dict:
    layers = {name: _layer(name) for name in sorted(REGISTRY)}
    node_ref = {"$ref": "#/$defs/node"}
    defs: dict[str, Any] = {
        "node": {"oneOf": [{"$ref": f"#/$defs/layer_{n}"} for n in layers]
                 + [{"$ref": "#/$defs/merge"}, {"$ref": "#/$defs/block_use"}, {"$ref": "#/$defs/sequence"}]},
        "nodes": {"type": "array", "items": node_ref},
        "merge": {
            "type": "object", "description": "branches applied to the same input, then merged",
            "properties": {"type": {"enum": list(MERGES)}, **COMMON,
                           "branches": {"type": "array", "minItems": 2, "items": {"anyOf": [{"$ref": "#/$defs/nodes"}, node_ref]}}},
            "required": ["type", "branches"], "additionalProperties": False,
        },
        "block_use": {
            "type": "object", "properties": {"block": {"type": "string"}, "args": {"type": "object"}, **COMMON},
            "required": ["block"], "additionalProperties": False,
        },
        "sequence": {
            "type": "object", "properties": {"layers": {"$ref": "#/$defs/nodes"}, **COMMON},
            "required": ["layers"], "additionalProperties": False,
        },
        "expect": {
            "type": "object",
            "properties": {
                "what": {"enum": list(EXPECT_WHATS)}, "value": {}, "source": {"type": "string", "minLength": 1},
                "unit": {"enum": ["K", "M", "G", "MB", "MiB"]}, "layer": {"type": "string"},
                "wrong": {"type": "boolean", "description": "the source's figure is known to be wrong"},
                "note": {"type": "string"},
                "rounding": {"enum": ["nearest", "down"], "default": "nearest",
                             "description": "how the source rounded the figure: to the nearest, or down (cut)"},
                "significant": {"type": "integer", "minimum": 1,
                                "description": "the figure is written to this many significant digits (60 M for 60,965,224)"},
            },
            "required": ["what", "value", "source"], "additionalProperties": False,
        },
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1, "maxItems": 3},
        **{f"layer_{n}": s for n, s in layers.items()},
    }
    variant = {
        "type": "object",
        "properties": {"params": {"type": "object"}, "input": {"$ref": "#/$defs/shape"}, "title": {"type": "string"},
                       "description": {"type": "string"}, "comment": {"type": "string"}, "meta": {"type": "object"},
                       "expect": {"type": "array", "items": {"$ref": "#/$defs/expect"}}},
        "additionalProperties": False,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://archcalc.invalid/schema.json",
        "title": "archcalc network spec",
        "type": "object",
        "properties": {
            "$schema": {"type": "string"}, "name": {"type": "string"}, "title": {"type": "string"},
            "description": {"type": "string"}, "source": {"type": "string"}, "comment": {"type": "string"},
            "input": {"$ref": "#/$defs/shape"}, "params": {"type": "object"}, "meta": {"type": "object"},
            "blocks": {"type": "object", "additionalProperties": {
                "type": "object", "properties": {"args": {"type": "object"}, "layers": {"$ref": "#/$defs/nodes"}, "comment": {"type": "string"}},
                "required": ["layers"], "additionalProperties": False}},
            "layers": {"$ref": "#/$defs/nodes"},
            "variants": {"type": "object", "additionalProperties": variant},
            "expect": {"type": "array", "items": {"$ref": "#/$defs/expect"}},
        },
        "required": ["layers"],
        "additionalProperties": False,
        "$defs": defs,
    }


def schema_text() -> str:
    return json.dumps(build_schema(), indent=2) + "\n"
