"""The ``avsbridge`` command: the user's entry point outside Snakemake.

Sub-commands live beside the code they drive; this module only wires them up
and imports lazily, so ``avsbridge --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avsbridge.data.cli import app as data_app
from avsbridge.metrics.evaluate import evaluate_command
from avsbridge.provenance.state_cli import app as state_app
from avsbridge.translate.cache_cli import app as cache_app
from avsbridge.wiring import app as wiring_app

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Language-bridged audio-visual segmentation: data, evaluation, audit.",
)
app.add_typer(data_app, name="data")
app.add_typer(cache_app, name="cache")
app.add_typer(state_app, name="state")
app.add_typer(wiring_app, name="wiring")
app.command("evaluate")(evaluate_command)


@app.command("audit")
def audit_command(
    report: Annotated[Path, typer.Argument(help="Report table, e.g. reports/table1.csv.")],
    row: Annotated[str | None, typer.Option(help="Method name or CSV row index (0-based).")] = None,
    col: Annotated[str | None, typer.Option(help="Column name, e.g. s4_miou.")] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print lineage + problems as JSON.")
    ] = False,
    configfile: Annotated[
        list[Path] | None, typer.Option(help="Config file(s) the report was built with.")
    ] = None,
    directory: Annotated[
        Path | None, typer.Option(help="Snakemake working dir (default: the one holding reports/).")
    ] = None,
    snakefile: Annotated[
        Path | None, typer.Option(help="Default: the project's Snakefile.")
    ] = None,
    no_snakemake: Annotated[
        bool, typer.Option("--no-snakemake", help="Skip the params/code check (hashes only).")
    ] = False,
) -> None:
    """Walk a report back to its sources and verify every file; exit 1 on any problem."""
    import json

    from avsbridge.provenance.audit import AuditError, audit_report

    try:
        result = audit_report(
            report,
            row=row,
            col=col,
            project_dir=directory,
            configfiles=configfile or [],
            snakefile=snakefile,
            use_snakemake=not no_snakemake,
        )
    except AuditError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(result.to_json(), indent=2) if json_out else result.render_text())
    raise typer.Exit(0 if result.ok else 1)


def main() -> None:  # pragma: no cover - console script shim
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
