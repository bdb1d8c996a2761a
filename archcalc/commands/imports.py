"""`archcalc import` and `archcalc schema`: a spec from a torch model or an ONNX file, and the spec format's JSON Schema."""
from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..errors import one_line
from .common import (
    echo_notes,
    input_option,
)

if TYPE_CHECKING:
    pass


@click.command("import", no_args_is_help=True)
@click.argument("kind", type=click.Choice(["torch", "onnx"]))
@click.argument("source")
@input_option
@click.option("--kwargs", "kwargs_text", metavar="JSON", help="torch: keyword arguments of the callable, a JSON object.")
@click.option("-o", "--out", metavar="FILE", help="Write the spec to FILE (default: print it).")
@click.option("--strict", is_flag=True, help="Stop at an op (ONNX: a module scope's nodes) archcalc has no layer type for "
                                            "instead of measuring it.")
def import_command(kind: str, source: str, dims: tuple[int, ...] | None, kwargs_text: str | None, out: str | None,
                   strict: bool) -> None:
    """A spec from a torch callable (MODULE:CALLABLE or FILE.py:CALLABLE) or an ONNX file.

    The graph becomes sequences and add/concat/mul branches grouped by module path; `expect` records
    the parameters (and fvcore's total) measured on the model. An op archcalc has no layer type for
    becomes a `measured` row (its output shape, parameters and FlopCounterMode's MACs at this input;
    for ONNX, one row for the module scope of nodes archcalc reads as no layer types, MACs counted from its
    nodes by shape; with --strict, it stops the import); a graph that is not series-parallel stops it
    with one line naming the node.
    """
    from ..importers.commands import fingerprinted, import_document, kept_budgets, write_document
    from ..importers.loading import parse_kwargs

    document = fingerprinted(import_document(kind, source, dims, parse_kwargs(kwargs_text), strict), kind, source, dims,
                             out)
    document, kept = kept_budgets(document, out)
    text = write_document(document, out)
    if not out:
        click.echo(text, nl=False)
    if kept:
        echo_notes([one_line(f"note: kept the {len(kept)} budget(s) of the spec {out} replaced: {', '.join(kept)}")])


@click.command()
def schema() -> None:
    """Print the JSON Schema of specs (the one in specs/schema.json)."""
    from ..core.schema import schema_text

    click.echo(schema_text(), nl=False)
