"""``avsbridge state``: export / adopt Snakemake's job records beside DVC artifacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Snakemake job records that travel with DVC-tracked artifacts (export after a run, adopt after a pull).",
)

ResultsOpt = Annotated[
    str | None, typer.Option(help="results folder (default: results_dir of the config)")
]
ConfigOpt = Annotated[Path, typer.Option(help="profile config holding results_dir")]
WorkdirOpt = Annotated[Path, typer.Option(help="the workflow's working directory")]


def _results_dir(results: str | None, config: Path) -> str:
    if results:
        return results
    from avsbridge.io import ArtifactError, read_yaml

    try:
        return str(read_yaml(config)["results_dir"])
    except ArtifactError as exc:
        raise typer.BadParameter(str(exc)) from None
    except (OSError, KeyError, TypeError) as exc:
        raise typer.BadParameter(f"{config}: cannot read results_dir ({exc})") from None


@app.command("export")
def export_command(
    results: ResultsOpt = None,
    config: ConfigOpt = Path("config/config.yaml"),
    workdir: WorkdirOpt = Path("."),
) -> None:
    """Write the records of the results and reports to <results>/_snakemake_state.json."""
    from avsbridge.provenance.snakemake_state import export_state

    typer.echo(export_state(workdir, _results_dir(results, config)))


@app.command("adopt")
def adopt_command(
    results: ResultsOpt = None,
    config: ConfigOpt = Path("config/config.yaml"),
    workdir: WorkdirOpt = Path("."),
    force: Annotated[bool, typer.Option(help="adopt again even if this state was adopted")] = False,
) -> None:
    """Adopt pulled records (done automatically when the workflow starts)."""
    from avsbridge.provenance.snakemake_state import adopt_state

    typer.echo(json.dumps(adopt_state(workdir, _results_dir(results, config), force=force)))
