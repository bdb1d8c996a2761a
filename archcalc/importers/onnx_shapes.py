"""The shapes ONNX's whole-graph shape inference leaves open, found in one pass over the nodes in order.

Torch's export of a Swin's window partition reshapes by sizes it computes from `x.shape` (Shape, Gather,
Mod, Div, Concat); shape inference propagates none of that past a Mod or a Div, so each window partition's
shape waits on a round of folding before it (archcalc.importers.onnx_graph.SHAPE_ROUNDS). Here each node
is inferred alone, with the values of the small tensors before it that are known (a Shape of a known
shape, a node of known values computed by archcalc.importers.onnx_fold within its budget), so that one
pass resolves the chain; the shapes found are added to the model's value_info.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .onnx_fold import Folder, node_attributes
from .onnx_tensors import SMALL


def metadata_value(onnx, node, dims: tuple[int, ...]) -> list:
    """The value of a Shape (its `start`, `end`) or Size node of a value of shape `dims`."""
    if node.op_type == "Size":
        return [np.array(int(np.prod(dims, dtype=object)), dtype=np.int64)]
    attrs = node_attributes(onnx, node)
    start, end = attrs.get("start", 0), attrs.get("end", len(dims))
    return [np.array(dims[start:end], dtype=np.int64)]


def full_shape(value_type) -> tuple[int, ...] | None:
    """Every dimension of a value's type, the batch's included, where all are known."""
    tensor = value_type.tensor_type
    if not value_type.HasField("tensor_type") or not tensor.HasField("shape"):
        return None
    dims = tensor.shape.dim
    return tuple(int(d.dim_value) for d in dims) if all(d.HasField("dim_value") for d in dims) else None


class _Pass:
    def __init__(self, onnx, model, constants: dict[str, Any]):
        self.onnx, self.model = onnx, model
        helper = onnx.helper
        self.types = {v.name: v.type for v in (*model.graph.input, *model.graph.value_info, *model.graph.output)}
        self.values = {k: v for k, v in constants.items() if v is not None and v.size <= SMALL}
        for name, value in constants.items():
            if value is not None and name not in self.types:
                self.types[name] = helper.make_tensor_type_proto(helper.np_dtype_to_tensor_dtype(value.dtype), value.shape)
        self.versions = {o.domain: o.version for o in model.opset_import}
        self.folder = Folder(onnx, model.opset_import)
        self.found: dict[str, Any] = {}

    def node(self, node) -> None:
        outputs = [o for o in node.output if o]
        if all(o in self.values for o in outputs):
            return
        if node.op_type in ("Shape", "Size") and node.input[0] in self.types:
            dims = full_shape(self.types[node.input[0]])
            if dims is not None:
                self.value(outputs[0], metadata_value(self.onnx, node, dims)[0])
                return
        if node.input and all(i in self.values for i in node.input if i):
            try:
                results = self.folder.fold(node, self.values, node.name)
            except Exception:  # past the budget: its shape is inferred below, its value stays unknown
                results = None
            if results is not None:
                for name, value in zip(node.output, results):
                    self.value(name, np.asarray(value))
                return
        if not all(o in self.types and full_shape(self.types[o]) is not None for o in outputs):
            self.infer(node, outputs)

    def value(self, name: str, value) -> None:
        helper = self.onnx.helper
        if value.size <= SMALL:
            self.values[name] = value
        self.found[name] = self.types[name] = helper.make_tensor_type_proto(
            helper.np_dtype_to_tensor_dtype(value.dtype), value.shape)

    def infer(self, node, outputs: list[str]) -> None:
        inputs = [i for i in node.input if i]
        if any(i not in self.types for i in inputs) or node.op_type in ("If", "Loop", "Scan"):
            return
        try:
            schema = self.onnx.defs.get_schema(node.op_type, self.versions.get(node.domain or "", 1), node.domain)
            data = {i: self.onnx.numpy_helper.from_array(self.values[i], i) for i in inputs if i in self.values}
            inferred = self.onnx.shape_inference.infer_node_outputs(
                schema, node, {i: self.types[i] for i in inputs}, data, opset_imports=list(self.model.opset_import))
        except Exception:  # no schema, or an inference error: the shape stays open, as the whole-graph pass left it
            return
        for name in outputs:
            if name in inferred and full_shape(inferred[name]) is not None:
                self.found[name] = self.types[name] = inferred[name]


def complete_shapes(onnx, model, constants: dict[str, Any]) -> int:
    """Add to `model` the shapes of its values that its value_info leaves open; how many it found."""
    known = {v.name for v in (*model.graph.input, *model.graph.value_info, *model.graph.output) if full_shape(v.type)}
    if all(o in known for n in model.graph.node for o in n.output if o):
        return 0
    run = _Pass(onnx, model, constants)
    for node in model.graph.node:
        run.node(node)
    new = {k: t for k, t in run.found.items() if k not in known}
    kept = [v for v in model.graph.value_info if v.name not in new]
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept)
    outputs = {o.name for o in model.graph.output}
    model.graph.value_info.extend(onnx.helper.make_value_info(k, t) for k, t in new.items() if k not in outputs)
    return len(new)
