"""``avsbridge data``: split statistics, a media check, and the demo generator.

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
    help="Benchmark data: split statistics, media check and the demo benchmark.",
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


@app.command("check")
def check_command(
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", help="A dataset of the profile (repeatable; default: all)."),
    ] = None,
    configfile: Annotated[
        Path | None,
        typer.Option("--configfile", help="Profile (default config/config.yaml, the demo)."),
    ] = None,
    root: Annotated[
        Path | None, typer.Option("--root", help="A dataset root instead of a profile.")
    ] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="With --root: s4, ms3, avss or v3.")
    ] = None,
    split: Annotated[
        str | None,
        typer.Option("--split", help="With --root: train/val/test (V3: the split file name)."),
    ] = None,
    sample_rate: Annotated[
        int | None,
        typer.Option("--sample-rate", help="Expected wav rate (default: the most common)."),
    ] = None,
    channels: Annotated[
        int | None,
        typer.Option("--channels", help="Expected channel count (default: the most common)."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Parallel readers (default: CPUs+4).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Read every frame, mask and wav once; print every problem; exit 1 if there is any."""
    import json

    from avsbridge.data.check import check_config_datasets, check_dataset

    try:
        if root is not None:
            if kind is None or dataset or configfile:
                typer.echo("--root needs --kind, and excludes --dataset/--configfile", err=True)
                raise typer.Exit(2)
            spec = {"kind": kind, "root": str(root), "split": split}
            reports = [
                check_dataset(
                    spec,
                    name=kind,
                    workers=workers,
                    sample_rate=sample_rate,
                    channels=channels,
                )
            ]
        else:
            from avsbridge.config import REPO_ROOT, load_config

            config = load_config(configfile or REPO_ROOT / "config" / "config.yaml")
            # relative dataset paths are relative to the project root, as in Snakemake
            reports = check_config_datasets(config, dataset or None, workers, base=REPO_ROOT)
    except ValueError as exc:  # ConfigError, unknown dataset, ArtifactError
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in reports], indent=2, sort_keys=True))
    else:
        for report in reports:
            typer.echo(report.render())
    raise typer.Exit(0 if all(r.ok for r in reports) else 1)


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
