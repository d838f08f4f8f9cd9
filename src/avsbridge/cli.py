"""The ``avsbridge`` command: the user's entry point outside Snakemake.

Sub-commands live beside the code they drive; this module only wires them up
and imports lazily, so ``avsbridge --help`` stays fast.
"""

from __future__ import annotations

import typer

from avsbridge.data.cli import app as data_app
from avsbridge.metrics.evaluate import evaluate_command

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Language-bridged audio-visual segmentation: data, evaluation, audit.",
)
app.add_typer(data_app, name="data")
app.command("evaluate")(evaluate_command)


def main() -> None:  # pragma: no cover - console script shim
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
