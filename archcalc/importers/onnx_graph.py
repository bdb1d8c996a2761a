"""The ONNX front end: the `onnx` package only (no torch), shapes from ONNX shape inference.

Weights are the initializers (and Constant nodes); values computed from the input's shape
(Shape, Gather, Concat feeding a Reshape) are metadata, not ops. Node names give the groups:
torch's exporter writes `/layer1/layer1.0/conv1/Conv` for the module `layer1.0.conv1`.
"""
from __future__ import annotations

import collections
import functools
import heapq
import itertools
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .. import fmt
from ..budget import current
from ..core.reading import read_bytes
from ..deps import require
from ..errors import SpecError
from ..layers import MERGES, REGISTRY, Shape
from . import onnx_measure as measure
from .graph import (
    INPUT,
    Graph,
    Node,
    Op,
    ScopeCounts,
    fold_channel_shuffles,
    fold_permutes,
    lay_out,
    name_image_reshapes,
    spec_layers,
    spec_name,
    to_spec,
)
from .onnx_fold import Folder, node_attributes
from .onnx_sequences import outer_inputs, rewrite
from .onnx_shapes import complete_shapes, full_shape, metadata_value
from .onnx_tensors import SMALL, Tensors

ONNX_BYTES = 2**31  # protobuf's limit for one message: an ONNX file without external data
METADATA = {"Shape", "Size"}
RESHAPES = {"Reshape", "Flatten", "Squeeze", "Unsqueeze"}  # a no-op when the per-image shape stays
SETTINGS = {"Clip", "Pad", "Resize", "Upsample", "Reshape", "ReduceMean", "Squeeze", "Unsqueeze", "Dropout",
            "Slice", "Split"}
""" ops whose constant inputs are settings (bounds, pads, scales, shapes), not weights"""
SHAPE_ROUNDS = 3
""" rounds of folding the Shape of values whose shape is known, each followed by a shape inference pass (as long
as a pass over the graph: seconds for thousands of nodes): torch's export of ShuffleNet's chunks needs one, a
Swin's window partitions would take 29 (6 s each), so past these rounds a shape stays unknown """
KEEPS_SHAPE = {"GroupNormalization", "LayerNormalization", "LRN", "Gelu"}
""" ops whose output has their input's shape, which ONNX's shape inference leaves open for some (functions)"""


class _Loaded(NamedTuple):
    """A parsed ONNX file: its model (folded constants as initializers, shapes inferred), the name of
    its input, the values of its constants, and which of those it computes (Constant nodes, folded values)."""

    onnx: Any
    model: Any
    input_name: str
    constants: dict[str, Any]
    computed: frozenset[str]
    origins: dict[str, "_Origin"]


class _Origin(NamedTuple):
    """What a value computed from constants came from: the file's initializers it derives from, and the
    multiply-accumulates of the nodes that computed it (by their outputs' names), which a measured row takes in."""

    sources: frozenset[str]
    work: frozenset[tuple[str, int]]


def _read(path: Path, dims: tuple[int, ...] | None) -> _Loaded:
    onnx = require("onnx", purpose="reading an ONNX file")
    try:
        model = onnx.load_from_string(read_bytes(path, ONNX_BYTES, "ONNX models"))  # the bytes go once parsed
    except SpecError:
        raise
    except Exception as exc:  # protobuf's DecodeError and friends
        raise SpecError(f"not an ONNX model ({type(exc).__name__})") from None
    if not model.graph.node or not model.graph.output:
        raise SpecError("not an ONNX model (no graph nodes or outputs)")
    if len(model.graph.node) > current().onnx_nodes:
        raise SpecError(f"the graph has {len(model.graph.node):,} nodes, past {current().describe('onnx_nodes')}")
    broken = _not_text(model)
    if broken is not None:
        raise SpecError(f"not an ONNX model: {broken} is not UTF-8 text")
    _check_opset(onnx, model)
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise SpecError(f"the graph has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); archcalc needs one")
    ordered = _in_order(model.graph)
    _check_attributes(onnx, model)
    tensors = Tensors(onnx, str(path.parent))
    constants = {i.name: tensors.array(i, f"initializer {i.name}") for i in model.graph.initializer}
    _prepare(onnx, model, ordered, constants)
    input_value = inputs[0]
    if dims is not None:
        shape = input_value.type.tensor_type.shape
        if len(shape.dim) != len(dims) + 1:
            raise SpecError(f"--input {fmt.shape(dims)}: the graph's input has rank {len(shape.dim)}")
        for d, size in zip(shape.dim[1:], dims):
            d.ClearField("dim_param")
            d.dim_value = size
    origins: dict[str, _Origin] = {}
    computed = _fold_constants(onnx, model, input_value.name, constants, tensors, origins)
    model = _infer(onnx, model)
    for _ in range(SHAPE_ROUNDS):
        more = _fold_constants(onnx, model, input_value.name, constants, tensors, origins, _static_shapes(model))
        if not more:
            break
        computed |= more
        model = _infer(onnx, model)
    complete_shapes(onnx, model, constants)
    return _Loaded(onnx, model, input_value.name, constants, computed, origins)


def _infer(onnx, model):
    try:
        return onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:
        raise SpecError(f"ONNX shape inference fails: {' '.join(str(exc).split())[:300]}") from None


def _static_shapes(model) -> dict[str, tuple[int, ...]]:
    """The values whose every dimension, the batch's included, shape inference knows."""
    values = (*model.graph.input, *model.graph.value_info, *model.graph.output)
    return {value.name: shape for value in values if (shape := full_shape(value.type)) is not None}


def _not_text(model) -> str | None:
    """The first text field of the model (names, op types, ...) whose bytes are not UTF-8, which protobuf
    then gives as bytes, not str: its full name. One pass over the model's messages."""
    stack = [model]
    while stack:
        message = stack.pop()
        for field, value in message.ListFields():
            repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED
            values = value if repeated else [value]
            if field.type == field.TYPE_MESSAGE:
                stack.extend(values)
            elif field.type == field.TYPE_STRING and any(isinstance(v, bytes) for v in values):
                return field.full_name
    return None


def _check_opset(onnx, model) -> None:
    """The ONNX operator set the file is written in: one this onnx package knows."""
    versions = {o.domain: o.version for o in model.opset_import}
    version = versions.get("", versions.get("ai.onnx"))
    newest = onnx.defs.onnx_opset_version()
    if version is None:
        raise SpecError("the model names no version of the ONNX operator set (opset_import)")
    if not 1 <= version <= newest:
        raise SpecError(f"ONNX operator set {version}: the onnx package {onnx.__version__} knows versions 1 to {newest}")


def _label(node, index: int) -> str:
    return f"{node.name or f'{node.op_type}_{index}'} ({node.op_type})"


def _in_order(graph) -> list:
    """The nodes, each after the nodes whose values it reads: the file's order when it is one (ONNX's rule),
    else that order sorted. A value read and never made, a value made twice, or a cycle is a SpecError."""
    given = {i.name for i in (*graph.input, *graph.initializer)} | {i.values.name for i in graph.sparse_initializer}
    nodes = list(graph.node)
    producer: dict[str, int] = {}
    for k, node in enumerate(nodes):
        for out in node.output:
            if out and (out in given or out in producer):
                other = f"the output of ONNX node {_label(nodes[producer[out]], producer[out])}" if out in producer \
                    else "an input or initializer of the graph"
                raise SpecError(f"ONNX node {_label(node, k)}: its output {out!r} is also {other}")
            if out:
                producer[out] = k
    reads: list[list[int]] = []
    for k, node in enumerate(nodes):
        names = [i for i in (*node.input, *outer_inputs(node)) if i]
        missing = next((i for i in names if i not in given and i not in producer), None)
        if missing is not None:
            raise SpecError(f"ONNX node {_label(node, k)}: its input {missing!r} is not computed by any node, "
                            "nor an input or initializer of the graph")
        reads.append(sorted({producer[i] for i in names if i in producer}))
    if all(j < k for k, before in enumerate(reads) for j in before):
        return nodes
    return [nodes[k] for k in _sorted(nodes, reads)]


def _sorted(nodes: list, reads: list[list[int]]) -> list[int]:
    """Kahn's topological order of the node indices, smallest index first; a cycle is a SpecError naming it."""
    waiting = [len(before) for before in reads]
    readers: list[list[int]] = [[] for _ in nodes]
    for k, before in enumerate(reads):
        for j in before:
            readers[j].append(k)
    ready = [k for k, n in enumerate(waiting) if n == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        k = heapq.heappop(ready)
        order.append(k)
        for r in readers[k]:
            waiting[r] -= 1
            if waiting[r] == 0:
                heapq.heappush(ready, r)
    if len(order) == len(nodes):
        return order
    k, seen = next(k for k, n in enumerate(waiting) if n), []
    while k not in seen:  # back along unfinished inputs: every node left waits on one, so this comes round
        seen.append(k)
        k = next(j for j in reads[k] if waiting[j])
    cycle = seen[seen.index(k):][::-1]  # in the direction the values flow
    shown = " -> ".join(_label(nodes[j], j) for j in (*cycle[:6], cycle[0])) if len(cycle) <= 6 else \
        " -> ".join(_label(nodes[j], j) for j in cycle[:6]) + f" -> ... ({len(cycle)} nodes)"
    raise SpecError(f"the graph has a cycle: ONNX nodes {shown}, each reading the value of the one before")


def _check_attributes(onnx, model) -> None:
    """Each node's attributes given once and of the type ONNX's schema of its op says (a `perm` of floats
    would reach the importer as a float), where the op has a schema in the file's operator set."""
    version = {o.domain: o.version for o in model.opset_import}
    schemas: dict[tuple[str, str], Any] = {}
    for index, node in enumerate(model.graph.node):
        domain = "" if node.domain == "ai.onnx" else node.domain
        key = (node.op_type, domain)
        if key not in schemas:
            try:
                schemas[key] = onnx.defs.get_schema(node.op_type, version.get(domain, version.get("ai.onnx", 1)), domain)
            except Exception:  # no schema: an op no layer type claims, refused when it is read
                schemas[key] = None
        declared = schemas[key].attributes if schemas[key] is not None else {}
        seen: set[str] = set()
        for a in node.attribute:
            kind = onnx.AttributeProto.AttributeType.Name(a.type) if a.type in onnx.AttributeProto.AttributeType.values() \
                else str(a.type)
            if a.name in seen:
                raise SpecError(f"ONNX node {_label(node, index)}: attribute {a.name} is given twice")
            seen.add(a.name)
            if a.name in declared and int(declared[a.name].type.value) != a.type:
                raise SpecError(f"ONNX node {_label(node, index)}: attribute {a.name} is {kind}; "
                                f"ONNX's {node.op_type} takes {declared[a.name].type.name}")


def _prepare(onnx, model, nodes: list, constants: dict[str, Any]) -> None:
    """`nodes` as the model's nodes, in that order, and its small external tensors inline (shape inference
    then reads them from here, not from a path relative to the current folder)."""
    if list(model.graph.node) != nodes:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    for k, tensor in enumerate(model.graph.initializer):
        if tensor.data_location == onnx.TensorProto.EXTERNAL and constants[tensor.name].size <= SMALL:
            model.graph.initializer[k].CopyFrom(onnx.numpy_helper.from_array(constants[tensor.name], tensor.name))


def _fold_constants(onnx, model, input_name: str, constants: dict[str, Any], tensors: Tensors,
                    origins: dict[str, _Origin], shapes: dict[str, tuple[int, ...]] | None = None):
    """Every value computed from constants only that the budget allows (the pads of an exported ZeroPad2d,
    a Constant node's value), added to `constants` and stored in `model` as an initializer, so that shape
    inference sees it; their names. With `shapes` (values of known shape), the Shape and Size of those are
    constants too (torch's export of `x.chunk(2, dim=1)` slices at `Shape(x)[1] // 2`)."""
    folder = Folder(onnx, model.opset_import)
    data, kept, folded = {input_name}, [], {}
    for index, node in enumerate(model.graph.node):
        if shapes is not None and node.op_type in METADATA and node.input and node.input[0] in shapes:
            for name, value in zip(node.output, metadata_value(onnx, node, shapes[node.input[0]])):
                constants[name] = folded[name] = value
            continue
        if any(i in data for i in node.input):
            if node.op_type not in METADATA:
                data.update(node.output)
            kept.append(node)
            continue
        if node.op_type == "Constant":
            results = _constant(onnx, node, tensors, f"ONNX node {_label(node, index)}")
        elif all(i in constants for i in node.input if i):
            results = folder.fold(node, constants, f"ONNX node {_label(node, index)}")
        else:
            results = None
        if results is None:  # not computed: the node stays, its value unknown
            kept.append(node)
            continue
        for name, value in zip(node.output, results):
            constants[name] = folded[name] = value
        _trace(onnx, node, constants, origins)
    if folded:
        del model.graph.node[:]
        model.graph.node.extend(kept)
        model.graph.initializer.extend(onnx.numpy_helper.from_array(v, k) for k, v in folded.items())
    return frozenset(folded)


def _trace(onnx, node, constants: dict[str, Any], origins: dict[str, _Origin]) -> None:
    """The origin of each output of a node computed from constants: its inputs' (an initializer of the file is its
    own source) and its own multiply-accumulates."""
    sources: set[str] = set()
    work: set[tuple[str, int]] = set()
    for name in (i for i in node.input if i):
        origin = origins.get(name, _Origin(frozenset({name}), frozenset()))
        sources |= origin.sources
        work |= origin.work
    if node.op_type in measure.MACS and node.output and node.output[0] in constants:
        def shape_of(name: str) -> tuple[int, ...]:
            return tuple(int(d) for d in np.shape(constants[name]))
        attrs = node_attributes(onnx, node)
        work.add((node.output[0], measure.MACS[node.op_type](node, shape_of, attrs)))
    origins.update((o, _Origin(frozenset(sources), frozenset(work))) for o in node.output if o)


def _constant(onnx, node, tensors: Tensors, what: str) -> list | None:
    """A Constant node's value (None for a sparse tensor or text, which the importer never reads)."""
    if len(node.attribute) != 1 or len(node.output) != 1:
        return None
    attribute = node.attribute[0]
    if attribute.name == "value" and attribute.type == onnx.AttributeProto.TENSOR:
        return [tensors.array(attribute.t, what)]
    if attribute.name in ("value_float", "value_floats"):
        return [np.array(onnx.helper.get_attribute_value(attribute), dtype=np.float32)]
    if attribute.name in ("value_int", "value_ints"):
        return [np.array(onnx.helper.get_attribute_value(attribute), dtype=np.int64)]
    return None


def _per_image(value_info) -> Shape | None:
    dims = value_info.type.tensor_type.shape.dim
    if not dims or any(not d.HasField("dim_value") for d in dims[1:]):
        return None
    return tuple(int(d.dim_value) for d in dims[1:])


def _scope(name: str) -> tuple[tuple[str, ...], str]:
    """(module path components, the node's own name) of an ONNX node name.

    torch's exporter names each scope from the module's last non-numeric name on: the module
    `layer1.0.residual.0.conv1` gives /layer1/layer1.0/residual/residual.0/conv1/Conv.
    """
    parts = [p for p in name.split("/") if p]
    if not parts:
        return (), name
    comps: list[str] = []
    for part in parts[:-1]:
        atoms = part.split(".")
        head, numbers = atoms[0], atoms[1:]
        if numbers and all(a.isdigit() for a in numbers) and head in comps:
            after = len(comps) - 1 - comps[::-1].index(head)
            comps.extend(numbers[len(comps) - after - 1:])
        else:
            comps.extend(atoms)
    return tuple(comps), parts[-1]


WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "MatMul"}


def _name_scopes(node) -> tuple[tuple[str, ...], str] | None:
    """(module path components, the op's own name without fx's counter) from a node's name_scopes."""
    names = measure.metadata_list(node, measure.NAME_SCOPES)
    if not names:
        return None
    module = next((n for n in reversed(names[:-1]) if n), "")
    return tuple(module.split(".")) if module else (), re.sub(r"_\d+$", "", names[-1]) or node.op_type


def _scopes_from_metadata(ops: list, consumers: dict[str, list]) -> dict[int, tuple[tuple[str, ...], str]]:
    """id(node) -> (scope, own name) of each node, from the name_scopes metadata where the file has it (none
    where it has none); a node without it (one the exporter's optimizer made) is in its users' common scope."""
    found = {id(n): named for n in ops if (named := _name_scopes(n)) is not None}
    if not found:
        return found
    for node in reversed(ops):
        if id(node) not in found:
            users = [found[id(u)][0] for out in node.output for u in consumers.get(out, []) if id(u) in found]
            found[id(node)] = (functools.reduce(_common_prefix, users) if users else (), node.op_type)
    return found


def _name_calls(nodes: list[Node]) -> None:
    """In a file named by name_scopes, which do not tell apart two calls of one module (ResNet's `relu`): the
    ops of a module with no modules inside it, all of one op type, are each a call of it, named by it."""
    inner = {n.scope[:k] for n in nodes for k in range(len(n.scope))}
    types: dict[tuple[str, ...], set[str]] = {}
    for n in nodes:
        types.setdefault(n.scope, set()).add(n.layer_op.target if n.kind == "layer" else n.kind)
    for n in nodes:
        if n.scope and n.scope not in inner and len(types[n.scope]) == 1:
            n.path = n.scope


IMAGE_OPS = {"Conv", "ConvTranspose", "BatchNormalization", "MaxPool", "AveragePool", "GlobalAveragePool",
             "GlobalMaxPool", "InstanceNormalization", "GroupNormalization", "LRN", "Resize", "Upsample"}
""" ONNX ops of images (N, C, H, W): a Reshape to three axes per image that one of them reads gives an image, any
other a tensor (name_image_reshapes) """


def _weight_module(node, constants: dict[str, Any], computed: frozenset[str]) -> tuple[str, ...] | None:
    """The module of a convolution or linear layer whose weight is a file's initializer named `MODULE.weight`:
    the dynamo exporter names it as torch does, while a batch norm folded into the convolution gives the node
    the batch norm's name scopes."""
    if node.op_type not in WEIGHTED or len(node.input) < 2:
        return None
    weight = node.input[1]
    if weight in computed or constants.get(weight) is None or not weight.endswith(".weight"):
        return None
    module = weight[:-len(".weight")]
    return tuple(module.split(".")) if module else None


def _common_prefix(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    return a[:k]


class _Reader:
    def __init__(self, loaded: _Loaded, units: frozenset[measure.Unit] = frozenset(), collect: bool = False):
        """`units`: what is read as measured rows; `collect`: a node that cannot be read is noted in `failed`
        (the unit to measure for it) and the reading goes on, so that one pass finds every unit it can."""
        onnx, model, input_name = loaded.onnx, loaded.model, loaded.input_name
        self.units, self.collect = units, collect
        self.failed: dict[measure.Unit, SpecError] = {}
        self.full_shapes = _static_shapes(model)
        self.batch = self.full_shapes.get(input_name, (0,))[0]
        self.measured: list[str] = []
        self.scope_counts: collections.Counter | None = None
        self.onnx, self.computed, self.origins = onnx, loaded.computed, loaded.origins
        self.counted: set[tuple[str, int]] = set()  # the work of computed values a measured row took in
        self.graph = model.graph
        self.constants: dict[str, Any] = loaded.constants
        self.shapes = {v.name: _per_image(v) for v in (*self.graph.value_info, *self.graph.output, *self.graph.input)}
        self.ids = {input_name: INPUT}  # data tensor -> graph node id
        self.nodes: list[Node] = []
        self.notes: list[str] = []
        self.used: set[str] = set()  # initializers read by the layers
        self.tensor_ids: dict[str, int] = {}  # initializer -> its identity in Node.tensors (a shared one: `shares`)
        self.first_reader: dict[str, int] = {}  # initializer -> the index in read_by of the first layer reading it
        self.read_by: list[list[str]] = []  # the initializers of each layer that read some first
        self.recounted = 0  # values of initializers counted again, in another layer that reads them
        self.merged_note = False
        self.budget, self.layers = current(), 0
        self.taken = {INPUT}  # graph node ids
        self.input_name = input_name

    def attrs(self, node) -> dict:
        out = {}
        for a in node.attribute:
            value = self.onnx.helper.get_attribute_value(a)
            if isinstance(value, (list, tuple)):
                value = [v.decode() if isinstance(v, bytes) else v for v in value]
            out[a.name] = value.decode() if isinstance(value, bytes) else value
        return out

    def read(self) -> Graph:
        self.ops = rewrite(self.onnx, list(self.graph.node), self.constants, self.shapes, self.computed)
        self.producers = {o: n for n in self.ops for o in n.output}
        self.fused: set[str] = set()  # ids of nodes that became part of the next one (a sigmoid of a SiLU)
        consumers: dict[str, list] = {}
        for node in self.ops:
            for i in (*node.input, *outer_inputs(node)):
                consumers.setdefault(i, []).append(node)
        self.consumers = consumers
        self.named = _scopes_from_metadata(self.ops, consumers)
        self.wheres = {f"ONNX node {node.name or f'{node.op_type}_{k}'} ({node.op_type})": node
                       for k, node in enumerate(self.ops)}
        self.data = measure.data_values(self.ops, self.input_name, METADATA, outer_inputs)
        self.groups = measure.plan(set(self.units), self.ops, self.scope_of, self.data, consumers,
                                   {o.name for o in self.graph.output}, outer_inputs, METADATA)
        for index, node in enumerate(self.ops):
            try:
                self.node(node, index)
            except SpecError as exc:
                if not self.collect or not measure.unreadable(exc) or self.unit_of(node) in self.units:
                    raise
                self.failed.setdefault(self.unit_of(node), exc)
                first = next((i for i in (*node.input, *outer_inputs(node)) if i in self.ids), None)
                self.ids.update((o, self.ids[first]) for o in node.output if o and first is not None)
        if self.failed:
            raise next(iter(self.failed.values()))
        self.nodes = [n for n in self.nodes if n.id not in self.fused]
        output = self.graph.output[0].name
        if output not in self.ids:
            raise SpecError(f"the graph's output {output} is not computed from the input")
        if len(self.graph.output) > 1:
            self.notes.append(f"the graph has {len(self.graph.output)} outputs: analysed on the first, {output} "
                              "(the prediction, as a model returning a tuple exports it)")
        folded = self.folded_norms()
        if folded:
            self.notes.append(folded)
        elif not any(n.op and n.op.target == "BatchNormalization" for n in self.nodes) and any(
                n.op and n.op.target == "Conv" for n in self.nodes):
            self.notes.append("no BatchNormalization in the graph: an exporter in eval mode folds batch norm into "
                              "the convolution before it, which then has a bias")
        if not any(n.op_type == "Dropout" for n in self.graph.node):
            self.notes.append("no Dropout in the graph: exporters leave dropout out at inference")
        graph = Graph(self.nodes, self.shapes[self.input_name] or (), self.ids[output], self.notes)
        fold_channel_shuffles(graph)  # before the permutes: its transpose is one of them
        fold_permutes(graph)  # before naming: a layer norm between two transposes is its module's only op
        name_image_reshapes(graph, lambda op: op.target in IMAGE_OPS, otherwise="tensor")
        lay_out(graph)  # a transpose left (one beside a measured row) gives the layers after it its layout
        if self.collect:
            self.check_layers(graph)
        scopes = ScopeCounts(self.nodes)
        for n in self.nodes:
            if n.scope and scopes.under(n, len(n.scope)) == 1:
                n.path = n.scope  # the module's only op (a conv, a bn): named by the module
        if self.named:
            _name_calls(self.nodes)
        if self.measured:
            shown = ", ".join(dict.fromkeys(self.measured[:6])) + (", ..." if len(self.measured) > 6 else "")
            self.notes.append(f"{len(self.measured)} module scope{'s' if len(self.measured) > 1 else ''} archcalc reads "
                              f"as no layer types measured from the file's nodes at {fmt.shape(graph.input_shape)} "
                              f"({shown}; MACs of MatMul, Gemm, Conv and Einsum as FlopCounterMode counts them): "
                              "the spec holds at that input only")
        return graph

    def check_layers(self, graph: Graph) -> None:
        """Every layer a layer type takes, as `to_spec` will ask; the units of those none takes, all in one pass."""
        for n in graph.nodes:
            if n.kind != "layer":
                continue
            try:
                spec_layers(n.layer_op, n.where)
            except SpecError as exc:
                unit = self.unit_in(exc)
                if unit is None or unit in self.units or not measure.unreadable(exc):
                    raise
                self.failed.setdefault(unit, exc)
        if self.failed:
            raise next(iter(self.failed.values()))

    def scope_of(self, node) -> tuple[str, ...]:
        scope = (self.named.get(id(node)) or _scope(node.name or node.op_type))[0]
        return (_weight_module(node, self.constants, self.computed) or scope) if self.named else scope

    def unit_of(self, node) -> measure.Unit:
        """The unit measured for `node` when it cannot be read."""
        if self.scope_counts is None:
            self.scope_counts = collections.Counter(self.scope_of(n) for n in self.ops)
        return measure.unit_for(node, self.scope_of(node), self.scope_counts)

    def unit_in(self, exc: SpecError) -> measure.Unit | None:
        """The unit of the node a SpecError names (one raised after the reading, by `to_spec`): its message starts
        with the node, or the calculator's names its row (`features.1.0.attn.mul (layer_scale, $...)`)."""
        node = self.wheres.get(exc.message.split(": ", 1)[0])
        if node is None and exc.path:
            row = exc.path.split(" (", 1)[0]
            paths = {form: n.where for n in self.nodes if n.kind == "layer"
                     for form in (".".join(n.path), spec_name("_".join(n.path)))}
            node = self.wheres.get(paths.get(row, ""))
        return None if node is None else self.unit_of(node)

    def measure(self, group: measure.Group) -> None:
        """The group's nodes as one `measured` row, read when the node making its output is."""
        unit, where = group.unit, f"ONNX module scope {group.unit.describe()}"
        missing = [i for i in group.inputs if i not in self.ids]
        shape = self.shapes.get(group.output)
        if missing or shape is None:
            why = f"its input {missing[0]} is computed after its output" if missing else "its output's shape is unknown"
            raise SpecError(f"{where}: archcalc has no layer types for its nodes and cannot measure them: {why}")
        inputs = [i for n in group.members for i in n.input if i]
        origins = [self.origins[i] for i in inputs if i in self.origins]  # values the import computed from constants
        read = list(dict.fromkeys(i for i in (*inputs, *(s for o in origins for s in o.sources))
                                  if i not in self.computed and self._weight(i)))
        again = [i for i in read if i in self.used]  # an initializer of equal values the exporter merged
        if again:
            self.recounted += sum(int(self.constants[i].size) for i in again)
            self.note_merged(again[0], where)
        self.used.update(read)
        work = {w for o in origins for w in o.work} - self.counted
        self.counted |= work
        macs = measure.per_image(measure.macs_of(group.members, self._full_shape, self.attrs), self.batch, where) \
            + sum(m for _, m in work) // max(self.batch, 1)
        at = self.shapes[group.inputs[0]] or ()
        attrs = {"op": measure.op_name(group), "at": list(at), "output": list(shape),
                 "params": sum(int(self.constants[i].size) for i in read), "macs": macs}
        scope = unit.scope if not unit.alone else self.scope_of(group.members[0])
        name = group.members[0].name or unit.describe()
        path = scope if not unit.alone else (*scope, _scope(name)[1] if not self.named else group.members[0].op_type)
        op = Op("onnx", "<measured>", attrs, at, shape)
        self.measured.append(".".join(path))
        self.add(group.output, Node(name, "layer", tuple(self.ids[i] for i in group.inputs), scope, path, where, shape,
                                    op=op))

    def _weight(self, name: str) -> bool:
        """An initializer holding parameters: floating point, of several values (an index table, a shape, the
        attention's scale are not)."""
        value = self.constants.get(name)
        return value is not None and value.dtype.kind in "fc" and value.size > 1  # a scalar is a setting (a scale)

    def _full_shape(self, name: str) -> tuple[int, ...]:
        shape = self.full_shapes.get(name)
        if shape is None and self.constants.get(name) is not None:
            shape = tuple(int(d) for d in self.constants[name].shape)
        if shape is None:
            raise SpecError(f"the shape of {name} is unknown: its MACs cannot be counted")
        return shape

    def folded_norms(self) -> str | None:
        """The note on batch norms an exporter folded into the convolutions before them (None when it folded none):
        a convolution whose bias is a tensor of the exporter's making, not a module's `.bias`."""
        folded = [n for n in self.ops if n.op_type in ("Conv", "ConvTranspose") and len(n.input) > 2
                  and self.constants.get(n.input[2]) is not None and _folded_bias(n)]
        if not folded:
            return None
        channels = sum(int(self.constants[n.input[2]].size) for n in folded)
        names = [".".join(self.scope_of(n)) or n.name for n in folded]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        left = sum(n.op_type == "BatchNormalization" for n in self.ops)
        return (f"batch norm folded into {len(folded)} convolution{'s' if len(folded) > 1 else ''} by the exporter "
                f"({shown}; {channels:,} channels): the file holds a bias of C values where the model holds the "
                f"norm's weight and bias (2C), so {channels:,} parameters fewer than the model (another C for each "
                f"convolution that had a bias of its own), and not the norms' running statistics ({2 * channels:,} values)"
                + (f"; {left} batch norm{'s' if left > 1 else ''} left unfolded" if left else ""))

    def node(self, node, index: int) -> None:
        group = self.groups.get(id(node))
        if group is not None:
            if group.output in node.output:
                self.measure(group)
            return
        data = [i for i in (*node.input, *outer_inputs(node)) if i in self.ids]
        name = node.name or f"{node.op_type}_{index}"
        if not data or node.op_type in METADATA:
            if node.op_type == "Constant":  # one not computed (a sparse tensor, text): its value unknown
                self.constants[node.output[0]] = None
            elif node.op_type == "Identity" and node.input[0] in self.constants:
                self.constants[node.output[0]] = self.constants[node.input[0]]
            return
        scope, own = self.named.get(id(node)) or _scope(name)
        if self.named:
            scope = _weight_module(node, self.constants, self.computed) or scope
        where = f"ONNX node {name} ({node.op_type})"
        out = node.output[0]
        shape = self.shapes.get(out)
        input_shape = self.shapes.get(data[0]) if data[0] != self.input_name else self.shapes[self.input_name]
        if shape is None and node.op_type in KEEPS_SHAPE:
            shape = self.shapes[out] = input_shape
        ids = tuple(self.ids[i] for i in data)
        path = (*scope, own)
        attrs = self.attrs(node)
        kind = next((merge.name for merge in MERGES.values() if node.op_type in merge.onnx_ops), None)
        if kind and len(data) >= 2:
            axis = attrs.get("axis")  # required by ONNX: a file may still leave it out
            if kind == "concat" and (not isinstance(axis, int) or axis % (len(input_shape or ()) + 1) != 1):
                raise SpecError(f"{where}: Concat along axis {attrs.get('axis')}; archcalc joins along the channels (axis 1)")
            if kind == "mul" and self._silu(node, data):
                return
            self.add(out, Node(name, "merge", ids, scope, path, where, shape, merge=kind))
            return
        if len(data) != 1:
            raise SpecError(f"{where}: {len(data)} tensor inputs; archcalc layers take one (merges: Add, Concat, Mul)")
        if node.op_type == "Identity" or (node.op_type == "Concat" and len(node.input) == 1) or (node.op_type in RESHAPES and shape is not None and shape == input_shape):
            self.ids[out] = ids[0]
            return
        constants = [i for i in node.input if i and i not in self.ids]
        arrays = [self.constants.get(i) for i in constants]
        if node.op_type in ("Split", "Slice"):
            self.pieces(node, ids, scope, where, attrs, arrays, input_shape)
            return
        if node.op_type == "Transpose":
            perm = tuple(attrs.get("perm", range(len(input_shape or ()) + 1)[::-1]))
            if perm[:1] != (0,):
                raise SpecError(f"{where}: permute {list(perm)} moves the batch axis; archcalc's shapes keep it first")
            self.add(out, Node(name, "permute", ids, scope, path, where, shape, perm=perm))
            return
        if node.op_type == "Pad":
            pad = self.pad(node, ids, scope, path, where, shape, attrs, arrays)
            if shape is None and input_shape is not None:  # pads computed in the graph: shape inference left it open
                if len(input_shape) != 3:
                    raise SpecError(f"{where}: archcalc pads images (CxHxW), not an input of "
                                      f"{fmt.shape(input_shape) or 'a value per image'}")
                top, bottom, left, right = pad.pad
                pad.shape = self.shapes[out] = (input_shape[0], input_shape[1] + top + bottom, input_shape[2] + left + right)
            self.add(out, pad)
            return
        if input_shape is None:
            raise SpecError(f"{where}: the shape of its input is unknown (give --input CxHxW)")
        if node.op_type in ("Conv", "ConvTranspose") and (not arrays or arrays[0] is None or arrays[0].ndim != 4):
            shown = "unknown" if not arrays or arrays[0] is None else fmt.shape(arrays[0].shape) or "a scalar"
            raise SpecError(f"{where}: its weight is {shown}; archcalc reads a 2-D convolution, whose weight is a "
                            "constant of 4 dimensions")
        weights = tuple(tuple(int(d) for d in a.shape) for a in arrays if a is not None)
        values = tuple(a.flatten().tolist() if a is not None and a.size <= 64 else None for a in arrays)
        target = node.op_type
        if target == "MatMul":
            attrs = {**attrs, "transB": 0}
        op = Op("onnx", target, attrs, input_shape, shape, weights, values)
        known = [a for a in arrays if a is not None]
        held = None if node.op_type in SETTINGS or len(known) < len(arrays) else sum(int(a.size) for a in known)
        read = [] if node.op_type in SETTINGS else [c for c in constants if self.constants.get(c) is not None]
        if target in ("MatMul", "Gemm") and self._bias_after(node):
            add = self.consumers[out][0]
            bias = [i for i in add.input if i != out][0]
            op = Op("onnx", target, attrs, input_shape, self.shapes.get(add.output[0]), (*weights, self.constants[bias].shape))
            read.append(bias)
            held = None if held is None else held + int(self.constants[bias].size)
            out = add.output[0]
        if not any(target in layer.onnx_ops for layer in REGISTRY.values()):
            raise SpecError(f"{where}: ONNX op {target} has no archcalc layer type")
        tensors = self.identities(read, where)
        if set(read) & self.used and tensors:
            held = None  # the weights of a layer before, whole: the spec's `shares`, its parameters counted once
        self.used.update(read)
        self.add(out, Node(name, "layer", ids, scope, path, where, shape, op=op, held=held, tensors=tensors))

    def identities(self, read: list[str], where: str) -> tuple[int, ...]:
        """Node.tensors of a layer reading the initializers `read`: equal to an earlier layer's when it reads what
        that layer read, whole (a module called twice: `shares`). An initializer that a layer reads beside others
        of its own (the dynamo exporter merges initializers of equal values, such as biases of zeros) is counted
        in each layer that reads it, as the model holds it: no identities, and a note."""
        if not read:
            return ()
        first = {self.first_reader.get(c, -1) for c in read}
        if len(first) == 1 and -1 not in first and set(self.read_by[first.pop()]) == set(read):
            return tuple(self.tensor_ids[c] for c in read)
        again = [c for c in read if c in self.first_reader]
        key = len(self.read_by)
        self.read_by.append(read)
        for c in read:
            self.first_reader.setdefault(c, key)
            self.tensor_ids.setdefault(c, len(self.tensor_ids))
        if again:
            self.recounted += sum(int(self.constants[c].size) for c in again)
            self.note_merged(again[0], where)
            return ()
        return tuple(self.tensor_ids[c] for c in read)

    def note_merged(self, initializer: str, where: str) -> None:
        if not self.merged_note:
            self.merged_note = True
            self.notes.append(f"initializers read by layers that do not share all their weights ({initializer}, "
                              f"first at {where}; the exporters merge initializers of equal values): "
                              "counted in each layer that reads them")

    def add(self, out: str, node: Node) -> None:
        if node.id in self.taken:  # two nodes of one name (or one named like the input): ids stay apart
            node.id = next(f"{node.id}#{k}" for k in itertools.count(len(self.nodes)) if f"{node.id}#{k}" not in self.taken)
        self.taken.add(node.id)
        self.nodes.append(node)
        self.ids[out] = node.id
        if node.kind == "layer":  # each one a node of the spec at least: refused here, before the spec is made
            self.layers += 1
            if self.layers > self.budget.nodes:
                raise SpecError(f"{node.where}: the graph has more than {self.budget.nodes:,} layers, "
                                f"past {self.budget.describe('nodes')}")

    def _silu(self, node, data: list[str]) -> bool:
        """x * sigmoid(x), torch's export of SiLU, is one `Swish` op."""
        for x, s in (data, data[::-1]):
            sig = self.producers.get(s)
            if sig is not None and sig.op_type == "Sigmoid" and sig.input[0] == x and len(self.consumers[s]) == 1:
                self.fused.add(self.ids[s])
                name = node.name or sig.name
                scope, own = self.named.get(id(node)) or _scope(name)
                shape = self.shapes.get(node.output[0])
                op = Op("onnx", "Swish", {}, shape or (), shape)
                self.add(node.output[0], Node(name, "layer", (self.ids[x],), scope, (*scope, own),
                                              f"ONNX nodes {sig.name} and {node.name} (Sigmoid, Mul)", shape, op=op))
                return True
        return False

    def _bias_after(self, node) -> bool:
        """A MatMul (or a Gemm without C) followed by an Add of a constant vector: a linear layer's bias."""
        if node.op_type == "Gemm" and len(node.input) > 2:
            return False
        users = self.consumers.get(node.output[0], [])
        if len(users) != 1 or users[0].op_type != "Add":
            return False
        others = [i for i in users[0].input if i != node.output[0]]
        return len(others) == 1 and others[0] in self.constants and self.constants[others[0]] is not None \
            and self.constants[others[0]].ndim == 1

    def pieces(self, node, ids, scope, where, attrs, arrays, input_shape) -> None:
        """Split or Slice along the channels (torch's export of `x.chunk(2, dim=1)`): a `slice` of each piece."""
        channels = input_shape[0] if input_shape else None
        ranges = _split_ranges(node.op_type, attrs, arrays, channels, len(node.output), where)
        for k, (out, (start, stop)) in enumerate(zip(node.output, ranges)):
            if not out:
                continue
            own = node.op_type if len(node.output) == 1 else f"{node.op_type}_{k}"
            shape = self.shapes.get(out) or (stop - start, *input_shape[1:])  # type: ignore[index]
            self.shapes[out] = shape
            op = Op("onnx", node.op_type, {"start": start, "stop": stop}, input_shape or (), shape)
            self.add(out, Node(f"{node.name or node.op_type}:{k}", "layer", ids, scope, (*scope, own), where, shape, op=op))

    def pad(self, node, ids, scope, path, where, shape, attrs, arrays) -> Node:
        pads = attrs.get("pads", arrays[0].tolist() if arrays and arrays[0] is not None else None)
        fill = arrays[1] if len(arrays) > 1 else None
        if fill is not None and fill.size != 1:
            raise SpecError(f"{where}: its constant value has {fill.size:,} values; a Pad takes one")
        value = attrs.get("value", 0.0 if fill is None else fill.reshape(-1)[0].item())
        if attrs.get("mode", "constant") != "constant" or value != 0 or pads is None or len(pads) != 8 \
                or any(pads[i] for i in (0, 1, 4, 5)):
            raise SpecError(f"{where}: only a zero pad of H and W is folded into the next layer (pads {pads})")
        return Node(node.name, "pad", ids, scope, path, where, shape, pad=(pads[2], pads[6], pads[3], pads[7]))


def _split_ranges(op_type: str, attrs: dict, arrays: list, channels: int | None, pieces: int,
                  where: str) -> list[tuple[int, int]]:
    """The [start, stop) channels of each output of a Split or Slice, which must cut axis 1 of an image in steps
    of 1, with sizes and bounds that are constants; one line naming the node otherwise."""
    if channels is None:
        raise SpecError(f"{where}: the shape of its input is unknown (give --input CxHxW)")
    values = [None if a is None else [int(v) for v in np.asarray(a).reshape(-1)] for a in arrays]
    if op_type == "Split":
        axis = attrs.get("axis", 0)
        sizes = attrs.get("split") or (values[0] if values and values[0] is not None else None)
        if sizes is None:
            step = -(-channels // pieces)  # num_outputs (opset 18) or an even split: ceil, the last one shorter
            sizes = [min(step, channels - k * step) for k in range(pieces)]
        bounds = list(itertools.accumulate(sizes, initial=0))
        ranges = list(zip(bounds, bounds[1:]))
        axes, steps = [axis], [1]
    else:
        starts, ends = (values + [None, None])[:2]
        axes = values[2] if len(values) > 2 and values[2] is not None else attrs.get("axes", [0])
        steps = values[3] if len(values) > 3 and values[3] is not None else [1]
        if starts is None or ends is None or len(starts) != 1 or len(ends) != 1:
            raise SpecError(f"{where}: archcalc reads a slice of the channels with constant bounds "
                            f"(starts {starts}, ends {ends})")
        start, stop = (max(0, min(v + channels if v < 0 else v, channels)) for v in (starts[0], ends[0]))
        ranges = [(start, stop)]
    if [a % 4 if isinstance(a, int) else a for a in axes] != [1] or list(steps) != [1] \
            or any(not 0 <= a < b <= channels for a, b in ranges):
        raise SpecError(f"{where}: archcalc reads a {op_type} of the channels (axis 1, steps of 1) into non-empty "
                        f"pieces; this one has axes {list(axes)}, steps {list(steps)}, pieces {ranges} of {channels}")
    return ranges


def _folded_bias(node) -> bool:
    """A convolution's bias that torch's exporters made by folding a batch norm into it: the legacy exporter's
    `onnx::Conv_7`, the dynamo exporter's `conv1.weight_bias` (a module's own is `conv1.bias`)."""
    bias = node.input[2]
    return not bias.endswith(".bias") and (bias.startswith("onnx::") or bias.endswith("weight_bias"))


MEASURE_ROUNDS = 512
""" readings of a graph at most, each after finding module scopes to measure that the one before could not read """


def import_onnx(path: Path, dims: tuple[int, ...] | None = None, strict: bool = False) -> dict:
    """The spec document of the ONNX model at `path`; `expect` records the parameters it holds. A module scope
    whose nodes archcalc reads as no layer types is one `measured` row (`strict`: refused instead).

    Whatever in the file does not fit is one SpecError naming the file."""
    try:
        return _import(path, dims, strict)
    except SpecError as exc:
        raise exc.located(file=str(path)) from None


def _import(path: Path, dims: tuple[int, ...] | None, strict: bool = False) -> dict:
    loaded = _read(path, dims)
    units: frozenset[measure.Unit] = frozenset()
    for _ in range(MEASURE_ROUNDS):
        reader = _Reader(loaded, units, collect=not strict)
        try:
            return _document(path, loaded, reader)
        except SpecError as exc:
            found = set(reader.failed) or ({reader.unit_in(exc)} - {None} if measure.unreadable(exc) else set())
            if strict or not found or found <= units:
                raise
            units |= found  # type: ignore[operator]
    raise SpecError(f"the graph still has nodes archcalc cannot read after measuring {len(units)} module scopes")


def _document(path: Path, loaded: _Loaded, reader: _Reader) -> dict:
    graph = reader.read()
    if len(graph.input_shape) != 3 or None in graph.input_shape:
        raise SpecError(f"the input's size per image is {fmt.shape(graph.input_shape) or 'unknown'}; give --input CxHxW")
    params = sum(int(reader.constants[i].size) for i in reader.used if reader.constants.get(i) is not None) \
        + reader.recounted
    running = sum(int(reader.constants[i].size) for n in loaded.model.graph.node if n.op_type == "BatchNormalization"
                  for i in n.input[3:5] if reader.constants.get(i) is not None)
    source = f"imported from {path.name} at {fmt.shape(graph.input_shape)}"
    expect = [{"what": "params", "value": params - running, "source": source},
              {"what": "non_trainable", "value": running, "source": source}]
    return to_spec(graph, path.stem, path.stem, path.name, expect)
