"""``avsbridge data``: split statistics of benchmark metadata and the demo generator.

``make-demo`` imports its module only when run, so ``avsbridge data stats``
keeps working when the demo generator (or one of its optional Debian tools)
is missing or broken.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Benchmark data: split statistics and the demo benchmark.",
)


def _render_table(stats: dict[str, Any], indent: str = "") -> list[str]:
    """Human-readable nested counts, one line per leaf."""
    lines: list[str] = []
    for key, value in stats.items():
        if isinstance(value, dict):
            lines.append(f"{indent}{key}:")
            lines.extend(_render_table(value, indent + "  "))
        elif isinstance(value, list):
            lines.append(f"{indent}{key}: {', '.join(map(str, value))}")
        else:
            lines.append(f"{indent}{key}: {value}")
    return lines


@app.command("stats")
def stats_command(
    metadata: Annotated[
        Path | None,
        typer.Option(
            "--metadata",
            help="A metadata CSV: AVSS metadata.csv, s4/ms3_meta_data.csv or a V3 split file.",
        ),
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option("--root", help="A dataset root: summarise every benchmark layout in it."),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option("--kind", help="Force the metadata kind (s4, ms3, avss, v3)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Clip counts per subset and split: ``{subset: {split: clip_count}}``."""
    from avsbridge.cli_output import emit
    from avsbridge.data.avsbench import metadata_stats, root_stats

    if (metadata is None) == (root is None):
        typer.echo("give exactly one of --metadata FILE or --root DIR", err=True)
        raise typer.Exit(2)
    emit(
        lambda: metadata_stats(metadata, kind) if metadata is not None else root_stats(root),
        as_json,
        lambda stats: "\n".join(_render_table(stats)),
    )


@app.command(
    "make-demo",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def make_demo(ctx: typer.Context) -> None:
    """Generate the demo benchmark (options: see ``avsbridge data make-demo --help``)."""
    try:
        from avsbridge.data.demo import make_demo_command
    except Exception as exc:  # any import failure: say so, never break `data stats`
        typer.echo(f"make-demo is unavailable: cannot import avsbridge.data.demo ({exc})", err=True)
        raise typer.Exit(1) from None
    demo_app = typer.Typer(add_completion=False)
    demo_app.command("make-demo")(make_demo_command)
    command = typer.main.get_command(demo_app)
    command.main(args=list(ctx.args), prog_name="avsbridge data make-demo", standalone_mode=True)
