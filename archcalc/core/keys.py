"""The spec format, described once: the keys of every object a spec holds and the kind of each value.

The loader (archcalc.core.spec) checks documents against these tables, and the JSON Schema
(archcalc.core.schema, specs/schema.json) is generated from them, so both accept and refuse the same
documents. A key whose value may be an expression (`expression=True`) is checked after evaluation.
"""

from typing import Any, Mapping

from ..errors import SpecError, suggest
from ..kinds import (
    Boolean,
    Choice,
    FileName,
    Integer,
    Kind,
    Number,
    Object,
    Shape,
    Sources,
    Structure,
    Text,
    is_number,
    quoted,
    shown,
)
from ..layers.base import REQUIRED
from ..layers.merge import MERGES
from .quantities import DTYPE_BYTES, expect_names, per_table, takes_batch, takes_dtype


class Key:
    """A key of a spec's objects: its value's kind, its doc in the JSON Schema; `expression`: the value may be an
    expression string, evaluated before the check; `missing`: the message when a required key is absent."""

    __slots__ = ("name", "kind", "doc", "required", "expression", "missing")

    def __init__(self, name: str, kind: Kind, doc: str = "", required: bool = False, expression: bool = False,
                 missing: str = ""):
        self.name, self.kind, self.doc, self.required, self.expression, self.missing = (
            name, kind, doc, required, expression, missing)

    def schema(self) -> dict:
        schema = self.kind.schema()
        if self.expression:
            schema = {"anyOf": [*(schema["anyOf"] if set(schema) == {"anyOf"} else [schema]), self.kind.expression_schema()]}
        return {**schema, "description": self.doc} if self.doc else schema


def table(*keys: Key) -> dict[str, Key]:
    return {key.name: key for key in keys}


def ref(name: str) -> dict:
    return {"$ref": f"#/$defs/{name}"}


NODES = Structure(ref("nodes"), "a list", list)

# ---- figures: a published value, or a budget ------------------------------------------------

# What `what` may name, and which names take `batch`, `dtype` or no `layer`, is what the quantities'
# declarations say (archcalc.core.quantities): the tables below are made from them.
UNITS = ("K", "M", "G", "MB", "MiB")
DTYPES = tuple(DTYPE_BYTES)
PUBLISHED_ONLY = ("unit", "wrong", "significant", "rounding")  # how a source writes a figure: not for budgets


@per_table
def batched() -> tuple[str, ...]:
    """The names that take a `batch`."""
    return expect_names(takes_batch)


@per_table
def sized() -> tuple[str, ...]:
    """The names that take a `dtype`."""
    return expect_names(takes_dtype)


@per_table
def whole_network() -> tuple[str, ...]:
    """The names that take no `layer`."""
    return expect_names(lambda q: q.whole_network)


@per_table
def shapes() -> tuple[str, ...]:
    """The names whose figure is a shape: a published value, never a budget."""
    return expect_names(lambda q: q.unit == "shape")


@per_table
def expect_keys() -> dict[str, Key]:
    """The keys of an `expect` entry."""
    return table(
        Key("what", Choice(*expect_names()), "the quantity: each names its convention (params or params_keras)",
            required=True),
        Key("value", Structure({}, "a number or a shape"), "a published figure, as the source writes it (needs source)"),
        Key("min", Number(), "a budget: the computed figure is at least this (needs reason)"),
        Key("max", Number(), "a budget: the computed figure is at most this (needs reason)"),
        Key("source", Text(non_empty=True), "who published the figure, and where"),
        Key("reason", Text(non_empty=True), "why the budget holds: what it protects"),
        Key("batch", Integer(minimum=1), f"the batch of a memory figure ({', '.join(batched())}; default 1)"),
        Key("dtype", Choice(*DTYPES), f"the bytes per value of a memory figure ({', '.join(sized())}; default fp32)"),
        Key("unit", Choice(*UNITS), "the unit the source writes the figure in"),
        Key("layer", Text(), "the row the figure is about (default: the whole network)"),
        Key("wrong", Boolean(), "the source's figure is known to be wrong"),
        Key("note", Text()),
        Key("significant", Integer(minimum=1, maximum=17),
            "the figure is written to this many significant digits (60 M for 60,965,224)"),
        Key("rounding", Choice("nearest", "down"), "how the source rounded the figure: to the nearest, or down (cut)"),
    )


OUTPUT_SHAPE = Shape("an output")  # the value of an output_shape figure, written exactly
SHAPE_REFUSES = ("unit", "significant", "rounding")  # how a number is written, not a shape


def _present(*names: str) -> dict:
    return {"anyOf": [{"required": [name]} for name in names]}


@per_table
def expect_rules() -> dict:
    """What the key table alone cannot say, for the schema: a published value with its source, or a budget
    (min and/or max) with its reason; batch, dtype and layer only where they mean something; the value of a
    shape a list of positive integers written exactly, any other value a number."""
    return {
        "oneOf": [
            {"required": ["value", "source"], "not": _present("min", "max")},
            {"required": ["reason"], **_present("min", "max"), "not": _present("value", *PUBLISHED_ONLY)},
        ],
        "allOf": [
            {"if": {"required": ["batch"]}, "then": {"properties": {"what": {"enum": list(batched())}}}},
            {"if": {"required": ["dtype"]}, "then": {"properties": {"what": {"enum": list(sized())}}}},
            {"if": {"required": ["layer"]}, "then": {"properties": {"what": {"not": {"enum": list(whole_network())}}}}},
            *({"if": {"properties": {"what": {"const": name}}, "required": ["what"]}, "then": {"not": _present("min", "max")}}
              for name in shapes()),
            *({"if": {"properties": {"what": {"const": name}}, "required": ["what"]},
               "then": {"properties": {"value": OUTPUT_SHAPE.schema()}, "not": _present(*SHAPE_REFUSES)},
               "else": {"properties": {"value": Number().schema()}}}
              for name in shapes()),
        ],
    }


EXPECTS = Structure({"type": "array", "items": ref("expect")}, "a list of published figures", list)

# ---- documents, variants, blocks -------------------------------------------------------------

_DESCRIBED = (
    Key("title", Text()),
    Key("description", Text()),
    Key("comment", Text()),
    Key("meta", Object(), "free data about the network (year, paper, accuracy); not computed with"),
    Key("input", Shape(), "the input shape, without the batch"),
    Key("expect", EXPECTS, "published figures archcalc checks"),
    Key("params", Object(), "family parameters: name -> value (or expression over earlier ones)"),
)
VARIANT = table(*_DESCRIBED)
BLOCK = table(
    Key("args", Object(), "arguments and their defaults (null: required)"),
    Key("layers", NODES, required=True),
    Key("comment", Text()),
)
DOCUMENT = table(
    Key("$schema", Text()),
    Key("name", FileName(), "the network's name, or the family's when it has variants (it names the report page)"),
    Key("source", Text(), "where the architecture comes from"),
    *_DESCRIBED,
    Key("blocks", Structure({"type": "object", "additionalProperties": ref("block")}, "an object of blocks", dict),
        "named blocks the layers use"),
    Key("layers", NODES, "the network's nodes, in order", required=True, missing="a spec needs 'layers', the list of its nodes"),
    Key("variants", Structure({"type": "object", "additionalProperties": ref("variant"), "minProperties": 1,
                               "propertyNames": FileName().schema()}, "an object of variants", dict),
        "networks of the family: each overrides params, input, expect, meta"),
)

# ---- nodes -------------------------------------------------------------------------------------

COMMON = table(
    Key("name", Text(), "name in the layer path; {expr} is substituted"),
    Key("names", Text(), "with repeat: the name template of each repetition"),
    Key("when", Boolean(), "the node exists only when this is true", expression=True),
    Key("repeat", Structure({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "array"}]}, "a count or a list"),
        "a count, or a list to iterate over", expression=True),
    Key("as", Text(), "the loop variable (default i)"),
    Key("index", Text(), "a variable holding the repetition's position"),
    Key("comment", Text()),
)
FROM = Key("from", Text(non_empty=True),
           "the node whose output this node takes instead of the previous one's: an earlier node of the same "
           "sequence, by name, or 'input' (the sequence's input); {expr} is substituted")
JOINED = Key("from", Sources(), "one name: the input of the branches (as any node's `from`); a list of two or more "
             "names, without branches: the outputs this merge joins")
TAKEN = Key("from", Sources(), "as any node's `from`; a list of two or more names: the outputs this op takes "
            "(an op of several tensors, as an import measured it)")
_MERGE_KEYS: dict[tuple[str, ...], dict[str, Key]] = {}  # by the names of the merge types


def merge_keys() -> dict[str, Key]:
    """The keys of a merge node: its type is one of the merge types (archcalc.layers.merge)."""
    names = tuple(MERGES)
    keys = _MERGE_KEYS.get(names)
    if keys is None:
        keys = _MERGE_KEYS[names] = table(
            Key("type", Choice(*names), required=True),
            *COMMON.values(),
            JOINED,
            Key("branches", Structure({"type": "array", "minItems": 2, "items": {"anyOf": [ref("nodes"), ref("node")]}},
                                      "a list of branches", list), "branches applied to the same input"),
        )
    return keys


# What the key table alone cannot say of a merge: it has branches (and at most one name in `from`, their input),
# or joins the named nodes (a list in `from`) and has no branches.
MERGE_RULES = {"oneOf": [
    {"required": ["branches"], "properties": {"from": {"type": "string"}}},
    {"required": ["from"], "properties": {"from": {"type": "array"}}, "not": {"required": ["branches"]}},
]}


BLOCK_USE = table(
    Key("block", Text(), required=True),
    Key("args", Object()),
    *COMMON.values(),
    FROM,
)
SEQUENCE = table(Key("layers", NODES, required=True), *COMMON.values(), FROM,
                 Key("splice", Boolean(), "its nodes join the enclosing sequence, numbered on, with no group of their own "
                     "(a list of modules unpacked into one nn.Sequential, as torchvision's make_layers builds VGG); not "
                     "with name or from"))


SHARES = Key("shares", Text(non_empty=True),
             "the path of an earlier layer of the same type, fields and input channels whose parameters this layer "
             "uses (a module called twice, tied weights): they are counted there, and 0 here; its MACs count here")


TEMPLATES = ("name", "names", "from")  # text keys of a node whose {expressions} are filled in
# keys of a node whose text is read as it is, never as an expression: its type, and the text keys that are no template
TEXTS = ("type", *(name for name, key in {**COMMON, SHARES.name: SHARES}.items()
                   if isinstance(key.kind, Text) and name not in TEMPLATES))


def layer_keys(layer_type) -> dict[str, Key]:
    """The keys of a layer node: its type, the common keys, `from`, `shares`, and the layer type's fields."""
    fields = {name: Key(name, f.kind, f.doc, required=f.default is REQUIRED, expression=True)
              for name, f in layer_type.fields.items()}
    taken = TAKEN if layer_type.several_inputs else FROM
    return {"type": Key("type", Choice(layer_type.name), required=True), **COMMON, "from": taken, "shares": SHARES,
            **fields}


# ---- checking ----------------------------------------------------------------------------------

def check_keys(obj: Mapping[str, Any], keys: Mapping[str, Key], where: str, owner: str = "") -> None:
    """Unknown keys (with a suggestion), missing required keys, and the kind of every literal value."""
    if not keys.keys() >= obj.keys():
        for name in obj:
            if name not in keys:
                subject = f"{owner} has no field" if owner else "unknown key"
                raise SpecError(f"{where}: {subject} {quoted(str(name))}{suggest(str(name), sorted(keys))}")
    required, literal = _plan(keys)
    for key in required:
        if key.name not in obj:
            raise SpecError(f"{where}: {key.missing or (owner + ' ' if owner else '') + f'needs {key.name!r}'}")
    for key in literal:
        if key.name in obj:
            key.kind.check(obj[key.name], f"{where}.{key.name}")


_PLANS: dict[int, tuple[Mapping, tuple[Key, ...], tuple[Key, ...]]] = {}


def _plan(keys: Mapping[str, Key]) -> tuple[tuple[Key, ...], tuple[Key, ...]]:
    """The required keys and the keys checked as literals of a table, worked out once per table."""
    plan = _PLANS.get(id(keys))
    if plan is None or plan[0] is not keys:
        plan = _PLANS[id(keys)] = (keys, tuple(k for k in keys.values() if k.required),
                                   tuple(k for k in keys.values() if not k.expression))
    return plan[1], plan[2]


def check_expect_value(item: Mapping[str, Any], where: str) -> None:
    """What the key table alone cannot say: a published value or a budget, and how the keys go together."""
    what = item["what"]
    for key, allowed in (("batch", batched()), ("dtype", sized())):
        if key in item and what not in allowed:
            raise SpecError(f"{where}.{key}: goes with a memory figure ({', '.join(allowed)}), not {what}")
    if "layer" in item and what in whole_network():
        raise SpecError(f"{where}.layer: {what} is a figure of the whole network")
    if "min" in item or "max" in item:
        _check_budget(item, where)
        return
    if "value" not in item:
        raise SpecError(f"{where}: a published figure needs a 'value' (or 'min'/'max' for a budget)")
    if "source" not in item:
        raise SpecError(f"{where}: every published figure needs a source")
    value, unit = item["value"], item.get("unit")
    if what in shapes():
        for key in SHAPE_REFUSES:
            if key in item:
                raise SpecError(f"{where}.{key}: an output_shape is a shape, written exactly: it takes no {key}")
        OUTPUT_SHAPE.check(value, f"{where}.value")
        return
    if unit and not is_number(value):
        raise SpecError(f"{where}.value: expected a number of {unit}, got {shown(value)}")
    if item.get("significant") is not None and not (unit and value > 0):
        raise SpecError(f"{where}.significant: goes with a unit and a positive value")
    if item.get("rounding") == "down" and not unit:
        raise SpecError(f"{where}.rounding: 'down' goes with a unit")
    if not unit:
        Number().check(value, f"{where}.value")


def _check_budget(item: Mapping[str, Any], where: str) -> None:
    if "value" in item:
        raise SpecError(f"{where}: a figure has a 'value' (published) or 'min'/'max' (a budget), not both")
    if "reason" not in item:
        raise SpecError(f"{where}: a budget needs a 'reason' (what the limit protects)")
    for key in PUBLISHED_ONLY:
        if key in item:
            raise SpecError(f"{where}.{key}: goes with a published value, not a budget")
    if item["what"] in shapes():
        raise SpecError(f"{where}: {item['what']} takes a value, not a budget")
    low, high = item.get("min"), item.get("max")
    if low is not None and high is not None and low > high:
        raise SpecError(f"{where}: min {shown(low)} is above max {shown(high)}")
