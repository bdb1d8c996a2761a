"""Tables of an analysis: text and Markdown (tabulate), CSV and JSON (exact integers)."""
from __future__ import annotations

import csv
import io
import json

from tabulate import tabulate

from . import fmt
from .core.calc import Analysis, Row, row_record
from .layers import RF

HEADERS = ["Layer", "Type", "Output", "Params", "MACs", "Activations", "RF"]
CSV_HEADERS = ["path", "type", "output_shape", "params", "macs", "activations", "receptive_field",
               "spatial_receptive_field"]
GATED = "*"  # marks a spatial field where the strict one is global because of a gate


def rf_cell(rf: RF) -> str:
    """The spatial field, marked, where a broadcast gate makes the strict field global; else the field."""
    if rf.gated and rf.spatial_size is not None:
        return rf.spatial_label() + GATED
    return rf.label()


def rf_footnote(analysis: Analysis, depth: int | None) -> str | None:
    """What the mark means, naming the first gate of the rows shown; None when no row is marked."""
    gates = [r.rf.gate for r in analysis.at_depth(depth) if rf_cell(r.rf).endswith(GATED)]
    if not gates:
        return None
    return (f"RF {GATED}: the spatial field, of the path that carries the pixels; the strict field is global "
            f"because the gate at {gates[0]} pools the whole input (held constant for the spatial field)")


def table_rows(analysis: Analysis, depth: int | None, convention: str) -> list[list]:
    rows = []
    for row in analysis.at_depth(depth):
        params = row.params_keras if convention == "keras" else row.params
        rows.append([row.path, row.label, fmt.shape(row.output_shape), params, row.macs,
                     row.allocated * analysis.batch, rf_cell(row.rf)])
    return rows


def summary_lines(analysis: Analysis, convention: str, depth: int | None = None) -> list[str]:
    t, b, d = analysis.totals, analysis.batch, analysis.dtype
    params = t.params_keras if convention == "keras" else t.params
    label = "Total params (Keras: trainable + BN moving statistics)" if convention == "keras" else "Total params"
    lines = [
        f"{label}: {params:,}",
        f"Trainable params: {t.params:,}",
        f"Non-trainable values (BN running statistics): {t.non_trainable:,}",
        f"MACs (conv + linear, per image): {t.macs:,} ({fmt.giga(t.macs)}); FLOPs = 2 x MACs: {fmt.giga(t.flops)}",
        f"Weight layers (conv, linear): {t.weight_layers}",
        f"Input {fmt.shape(analysis.input_shape)} -> output {fmt.shape(analysis.output_shape)}; batch {b}, {d}",
        f"Weights memory: {fmt.mib(analysis.weights_bytes)} ({d}, parameters and running statistics)",
        f"Activation memory: {t.activations * b:,} values = {fmt.mib(analysis.activation_bytes)} "
        f"(sum of layer outputs and input, batch {b}); peak live at inference: {fmt.mib(analysis.peak_activation_bytes)}",
    ]
    footnote = rf_footnote(analysis, depth)
    if footnote:
        lines.append(footnote)
    return lines


def warning_lines(analysis: Analysis, notes: bool = False) -> list[str]:
    """For stderr: a warning where the rounding of an output size drops input pixels; with `notes`,
    also the inexact sizes that drop nothing."""
    return [f"{'warning' if n.drops_input else 'note'}: {n.path}: {n.message}"
            for n in analysis.warnings if n.drops_input or notes]


def render(analysis: Analysis, fmt: str = "text", depth: int | None = None, convention: str = "torchvision") -> str:
    if fmt == "json":
        return json.dumps(to_json(analysis, depth, convention), indent=2) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_HEADERS)
        rows = analysis.at_depth(depth)
        writer.writerows(cells[:6] + [row.rf.label(), row.rf.spatial_label()]
                         for cells, row in zip(table_rows(analysis, depth, convention), rows))
        return buffer.getvalue()
    rows = table_rows(analysis, depth, convention)
    title = f"{analysis.network.name}: {analysis.network.title}"
    if fmt == "markdown":
        table = tabulate(rows, HEADERS, tablefmt="github", intfmt=",", colalign=("left", "left", "right", "right", "right", "right", "right"))
        summary = "\n".join(f"- {line}" for line in summary_lines(analysis, convention, depth))
        return f"### {title}\n\n{table}\n\n{summary}\n"
    table = tabulate(rows, HEADERS, tablefmt="simple", intfmt=",", colalign=("left", "left", "right", "right", "right", "right", "right"))
    return f"{title}\n\n{table}\n\n" + "\n".join(summary_lines(analysis, convention, depth)) + "\n"


def to_json(analysis: Analysis, depth: int | None = None, convention: str = "torchvision") -> dict:
    t = analysis.totals
    return {
        "name": analysis.network.name,
        "family": analysis.network.family,
        "input": list(analysis.input_shape),
        "batch": analysis.batch,
        "dtype": analysis.dtype,
        "convention": convention,
        "output_shape": list(analysis.output_shape),
        "totals": {
            "params": t.params_keras if convention == "keras" else t.params,
            "trainable_params": t.params,
            "non_trainable": t.non_trainable,
            "macs": t.macs,
            "flops": t.flops,
            "fvcore_flops": t.fvcore_flops,
            "weight_layers": t.weight_layers,
            "activations": t.activations * analysis.batch,
            "peak_activations": t.peak_activations * analysis.batch,
            "weights_bytes": analysis.weights_bytes,
            "activation_bytes": analysis.activation_bytes,
            "peak_activation_bytes": analysis.peak_activation_bytes,
        },
        "layers": [_json_row(r, analysis.batch) for r in analysis.at_depth(depth)],
        "warnings": [n.record() for n in analysis.warnings],  # kind: drops_input (a warning) or padding_unused
    }


def _json_row(row: Row, batch: int) -> dict:
    record = row_record(row)
    record["activations"] *= batch
    return record
