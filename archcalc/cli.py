"""The `archcalc` command. torch, fvcore, pandas and matplotlib load only in the commands that need them."""
from __future__ import annotations

import sys

import click

from .errors import SpecError

FORMATS = ["text", "markdown", "csv", "json"]
CONVENTIONS = ["torchvision", "keras"]


class _Cli(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SpecError as exc:
            click.echo(f"archcalc: {exc}", err=True)
            ctx.exit(2)


def parse_input(text: str | None) -> tuple[int, ...] | None:
    """CxHxW, HxW (channels from the spec, filled in later) or a single size N (NxN)."""
    if text is None:
        return None
    try:
        dims = tuple(int(part) for part in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise SpecError(f"--input {text!r}: expected CxHxW, HxW or N, e.g. 3x224x224") from None
    if not 1 <= len(dims) <= 3 or min(dims) < 1:
        raise SpecError(f"--input {text!r}: expected CxHxW, HxW or N with positive sizes")
    return dims


def load_network(target: str, input_text: str | None):
    from .spec import load

    dims = parse_input(input_text)
    network = load(target)
    if dims is None:
        return network, None
    if len(dims) == 1:
        dims = (dims[0], dims[0])
    if len(dims) == 2:
        dims = (network.input[0], *dims)
    return network, dims


input_option = click.option("--input", "input_text", metavar="CxHxW", help="Input size instead of the spec's (CxHxW, HxW or N).")
convention_option = click.option(
    "--convention", type=click.Choice(CONVENTIONS), default="torchvision", show_default=True,
    help="keras: count BN moving statistics as (non-trainable) parameters, as model.summary() does.",
)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="archcalc")
def main() -> None:
    """What a convolutional network costs: shapes, parameters, MACs, memory, receptive field."""


@main.command()
@click.argument("target")
@input_option
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--dtype", type=click.Choice(["fp32", "fp16", "bf16", "int8"]), default="fp32", show_default=True)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--depth", type=click.IntRange(min=0), default=None, help="Fold everything deeper than N into its block.")
@convention_option
def table(target: str, input_text: str | None, batch: int, dtype: str, fmt: str, depth: int | None, convention: str) -> None:
    """Per-layer table of a zoo network (NAME) or a spec file (PATH, PATH:VARIANT)."""
    from .calc import analyze
    from .render import render

    network, dims = load_network(target, input_text)
    click.echo(render(analyze(network, dims, batch, dtype), fmt, depth, convention), nl=False)


@main.command("list")
def list_networks() -> None:
    """The built-in zoo: name, family, input, parameters, MACs."""
    from tabulate import tabulate

    from .calc import analyze
    from .spec import load, zoo_index

    rows = []
    for name in zoo_index():
        analysis = analyze(load(name))
        t = analysis.totals
        rows.append([name, analysis.network.family, "x".join(map(str, analysis.input_shape)), t.params, f"{t.macs / 1e9:,.3f}"])
    click.echo(tabulate(rows, ["Name", "Family", "Input", "Params", "GMACs"], intfmt=",", colalign=("left", "left", "right", "right", "right")))


@main.command()
@click.argument("targets", nargs=-1)
@convention_option
def check(targets: tuple[str, ...], convention: str) -> None:
    """Check every published figure (`expect`) of the zoo or of the given specs; exit 1 on a miss."""
    from .check import check_network, describe
    from .spec import load, zoo_index

    names = targets or tuple(zoo_index())
    failures = total = 0
    for name in names:
        for verdict in check_network(load(name), convention):
            total += 1
            failures += not verdict.ok
            click.echo(describe(verdict))
    click.echo(f"{total - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


@main.command()
def schema() -> None:
    """Print the JSON Schema of specs (the one in specs/schema.json)."""
    from .schema import schema_text

    click.echo(schema_text(), nl=False)


if __name__ == "__main__":
    main()
