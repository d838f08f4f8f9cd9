"""Does every declared stage have its rule, script, env, DVC stage, schema entry and audit family?

The wiring test runs :func:`check_wiring` on the checkout; each problem names
the place to fix, so adding a stage family without one of its parts fails
loudly instead of at a user's first run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
import yaml

from avsbridge import paths
from avsbridge.config import REPO_ROOT, SCHEMA_PATH
from avsbridge.dvc_stages import dvc_yaml_text
from avsbridge.stages import STAGES

app = typer.Typer(no_args_is_help=True, help="Check and generate the workflow's wiring.")


def check_wiring(repo: Path = REPO_ROOT) -> list[str]:
    problems: list[str] = []
    rules_text = "\n".join(p.read_text() for p in sorted((repo / "workflow/rules").glob("*.smk")))
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    backend_schema = schema["properties"]["backends"]["properties"]
    from avsbridge.provenance.audit import FAMILY_OF_RULE

    for st in STAGES.values():
        if not re.search(rf"^rule {st.name}:", rules_text, re.M):
            problems.append(f"workflow/rules/*.smk: no `rule {st.name}:` for stage {st.name}")
        script = repo / "workflow/scripts" / f"{st.name}.py"
        if not script.is_file() or f'run_stage("{st.name}"' not in script.read_text():
            problems.append(
                f"{script.relative_to(repo)}: missing or not run_stage({st.name!r}, ...)"
            )
        if f'paths.pattern(config, "{st.name}")' not in rules_text:
            problems.append(
                f"workflow/rules: rule {st.name} does not take its output from avsbridge.paths"
            )
        if st.name not in paths.PATTERNS:
            problems.append(f"src/avsbridge/paths.py: no path pattern for stage {st.name}")
        if st.family not in paths.ROOTS:
            problems.append(f"src/avsbridge/paths.py: no ROOTS entry for family {st.family}")
        envs = {st.env}
        registry = st.load_registry()
        if registry is not None:
            envs |= {registry.needs(n).env for n in registry.names() if registry.needs(n).env}
        for env in envs:
            if not (repo / "envs" / f"{env}.yaml").is_file():
                problems.append(f"envs/{env}.yaml: missing (conda env of stage {st.name})")
        if st.backend is not None and st.backend not in backend_schema:
            problems.append(
                f"{SCHEMA_PATH.relative_to(REPO_ROOT)}: backends.{st.backend} (stage {st.name}) "
                "has no schema entry"
            )
        if FAMILY_OF_RULE.get(st.name) != st.family:
            problems.append(
                f"src/avsbridge/provenance/audit.py: no audit family for rule {st.name}"
            )
    dvc = repo / "dvc.yaml"
    if not dvc.is_file() or dvc.read_text() != dvc_yaml_text():
        problems.append(
            "dvc.yaml: differs from the stage declarations and paper files "
            "(run `avsbridge wiring dvc-yaml --write`)"
        )
    return problems


@app.command("check")
def check_command() -> None:
    """Print one line per wiring problem; exit 1 when there is any."""
    problems = check_wiring()
    for line in problems:
        typer.echo(line)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"wiring ok: {len(STAGES)} stages")


@app.command("dvc-yaml")
def dvc_yaml_command(
    write: Annotated[bool, typer.Option(help="Write dvc.yaml instead of printing it.")] = False,
) -> None:
    """dvc.yaml as the stage declarations and paper files define it."""
    text = dvc_yaml_text()
    if write:
        from avsbridge.io import atomic_write_text

        atomic_write_text(REPO_ROOT / "dvc.yaml", text)
    else:
        typer.echo(text, nl=False)
