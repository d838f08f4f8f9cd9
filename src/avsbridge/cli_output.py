"""How every ``avsbridge`` sub-command reports: JSON or text, and bad input as exit 1."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import typer


def emit(compute: Callable[[], Any], as_json: bool, render: Callable[[Any], str]) -> None:
    """Run ``compute``; print its result as sorted JSON or ``render(result)``.

    A bad input file (ArtifactError, ValueError) becomes ``error: <file>: <what>``
    on stderr and exit code 1, never a traceback.
    """
    from avsbridge.io import ArtifactError

    try:
        result = compute()
    except (ArtifactError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(result, indent=2, sort_keys=True) if as_json else render(result))
