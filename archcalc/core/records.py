"""The records of an analysis for machines: one per layer, one per configuration (batch, dtype), the JSON
document and the DataFrame, with the keys the quantities declare (archcalc.core.quantities).

Exact integers throughout. Per-layer figures and the totals named `*_per_image` are per image;
everything that grows with the batch sits in a configuration and is named `*_per_batch`.
archcalc.render writes them as JSON and CSV beside the text and Markdown tables.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from .. import fmt
from ..deps import require
from . import quantities
from .quantities import QUANTITIES, Quantity

if TYPE_CHECKING:
    from .calc import Analysis, Row


def layer_record(row: Row, convention: str = "torchvision") -> dict[str, Any]:
    """A row as JSON holds it (exact integers); CSV and the DataFrame hold the same keys."""
    dims = tuple(row.output_shape)
    size, spatial = row.rf.size, row.rf.spatial_size
    return {
        "path": row.path,
        "type": row.label,
        "output_shape": list(dims),
        "channels": dims[0] if dims else None,
        "height": dims[1] if len(dims) >= 3 else None,
        "width": dims[2] if len(dims) >= 3 else None,
        **{key: quantities.shown(q, row, convention) for key, q in _in_layers()},
        "receptive_field": "global" if size is None else fmt.shape(size),
        "rf_height": None if size is None else size[0],
        "rf_width": None if size is None else size[1],
        "rf_global": size is None,
        "spatial_receptive_field": "global" if spatial is None else fmt.shape(spatial),
        "rf_gate": row.rf.gate,
    }


def _in_layers() -> list[tuple[str, Quantity]]:
    """The quantities of a layer record (archcalc.core.quantities) with their keys, in their order."""
    return [(q.per_image, q) for q in QUANTITIES.values() if q.per_image and q.in_layers]


def layer_keys() -> tuple[str, ...]:
    """The keys of a layer record, in order: the columns of --format csv and of the DataFrame."""
    return ("path", "type", "output_shape", "channels", "height", "width", *integer_keys(), "receptive_field",
            "rf_height", "rf_width", "rf_global", "spatial_receptive_field", "rf_gate")


def integer_keys() -> tuple[str, ...]:
    return tuple(key for key, _ in _in_layers())


OPTIONAL_INTEGER_KEYS = ("channels", "height", "width", "rf_height", "rf_width")


def configuration_record(analysis: Analysis) -> dict[str, Any]:
    """What one (batch, dtype) costs: everything that grows with the batch, and the bytes of the dtype."""
    return {
        "batch": analysis.batch,
        "dtype": analysis.dtype,
        "bytes_per_value": analysis.bytes_per_value,
        **{q.per_batch: quantities.figure(q, analysis) for q in QUANTITIES.values() if q.per_batch},
    }


def each_configuration(analysis: Analysis, configurations: Sequence[Analysis] | None) -> list[Analysis]:
    return list(configurations) if configurations else [analysis]


def to_json(analysis: Analysis, depth: int | None = None, convention: str = "torchvision",
            configurations: Sequence[Analysis] | None = None) -> dict:
    """The analysis as a JSON-ready dict of exact integers (what `archcalc table --format json` prints)."""
    t = analysis.totals
    return {
        "name": analysis.network.name,
        "family": analysis.network.family,
        "input": list(analysis.input_shape),
        "output_shape": list(analysis.output_shape),
        "convention": convention,
        "totals": {q.per_image: quantities.shown(q, t, convention) for q in QUANTITIES.values() if q.per_image},
        "configurations": [configuration_record(c) for c in each_configuration(analysis, configurations)],
        "layers": [layer_record(r, convention) for r in analysis.at_depth(depth)],
        "warnings": [n.record() for n in analysis.warnings],  # kind: drops_input (a warning) or padding_unused
    }


def dataframe(analysis: Analysis, depth: int | None = None, convention: str = "torchvision"):
    """The layer records as a typed pandas DataFrame: integers as int64 (Int64 where a value may be
    missing), shapes and receptive fields as strings, `rf_global` as a boolean."""
    pd = require("pandas", purpose="to_dataframe()")
    records = [layer_record(r, convention) for r in analysis.at_depth(depth)]
    for record in records:
        record["output_shape"] = fmt.shape(record["output_shape"])
    frame = pd.DataFrame(records, columns=list(layer_keys()))
    types = {key: "string" for key in ("path", "type", "output_shape", "receptive_field", "spatial_receptive_field",
                                        "rf_gate")}
    types.update({key: "int64" for key in integer_keys()})
    types.update({key: "Int64" for key in OPTIONAL_INTEGER_KEYS})
    types["rf_global"] = "bool"
    return frame.astype(types)
