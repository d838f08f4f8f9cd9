"""``avsbridge cache``: what the LLM call cache holds and what each report cost.

``stats`` totals the cache per backend/model (every entry is one call really
made), and per report follows the provenance chain a report cell already
carries: report CSV -> ``metrics_files`` column -> each metrics file's
``.prov.json`` inputs -> translation folders -> the cache keys their records
used. Requests minus distinct keys are the report's cache hits.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Any

import typer

from avsbridge.io import ArtifactError, read_json

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The LLM call cache: calls, hits, tokens and estimated $ per backend and per report.",
)

TRANSLATION_RULES = ("translate", "weak_labels")


def default_cache_dir(base: Path) -> Path:
    """The workflow's cache folder: config ``llm_cache_dir``, else ``{results_dir}/llm_cache``.

    Reads ``base``'s ``config/config.yaml`` + ``params.yaml`` (as the Snakefile does)
    when the project has them, else the package's default profile.
    """
    from avsbridge.config import load_config

    profile, params = base / "config" / "config.yaml", base / "params.yaml"
    config = (
        load_config(profile, params) if profile.is_file() and params.is_file() else load_config()
    )
    return _resolve(config.get("llm_cache_dir") or f"{config['results_dir']}/llm_cache", base)


def _resolve(path: str, base: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else base / p


def report_text_dirs(report: Path, base: Path) -> list[Path]:
    """Translation folders behind a report's reproduced rows, in first-use order."""
    report = Path(report)
    try:
        with report.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or "metrics_files" not in reader.fieldnames:
                raise ArtifactError(report, "no 'metrics_files' column: not a report table")
            metrics_files = [
                name
                for row in reader
                for name in (row.get("metrics_files") or "").split(";")
                if name.strip()
            ]
    except FileNotFoundError:
        raise ArtifactError(report, "report is missing") from None
    folders: dict[Path, None] = {}
    for name in dict.fromkeys(metrics_files):
        metrics = _resolve(name.strip(), base)
        prov_path = metrics.with_name(metrics.name + ".prov.json")
        prov = read_json(prov_path)
        inputs = prov.get("inputs") if isinstance(prov, dict) else None
        if not isinstance(inputs, dict):
            raise ArtifactError(prov_path, "provenance record has no 'inputs' mapping")
        for item in inputs:
            folder = _resolve(item, base)
            record = folder / "_provenance.json"
            # mask shards carry a summary too: only translation shards hold cache keys
            if (
                (folder / "_summary.json").is_file()
                and record.is_file()
                and read_json(record).get("rule") in TRANSLATION_RULES
            ):
                folders[folder] = None
    return list(folders)


def collect_stats(cache_dir: Path, reports: list[Path], base: Path) -> dict[str, Any]:
    """The numbers ``stats`` prints: cache totals, then one usage block per report."""
    from avsbridge.translate.cache import cache_stats, load_entries, usage_stats

    stats = cache_stats(cache_dir)
    if reports:
        entries = load_entries(cache_dir)
        stats["reports"] = {
            str(report): usage_stats(entries, report_text_dirs(_resolve(str(report), base), base))
            for report in reports
        }
    return stats


def _money(value: float, unpriced: int) -> str:
    text = f"${value:.4f}"
    return f"{text} (+{unpriced} unpriced)" if unpriced else text


def render(stats: dict[str, Any]) -> str:
    """Plain-text summary: one line per backend, one block per report."""
    lines = [
        f"cache {stats['cache_dir']}: {stats['calls']} calls, "
        f"{stats['prompt_tokens']} prompt + {stats['completion_tokens']} completion tokens, "
        f"{_money(stats['cost_usd'], stats['calls_without_price'])}"
    ]
    if stats.get("temp_files"):
        lines.append(f"  {stats['temp_files']} temp file(s) of interrupted writers (ignored)")
    for label, totals in sorted(stats["by_backend"].items()):
        lines.append(
            f"  {label}: {totals['calls']} calls, {totals['prompt_tokens']} + "
            f"{totals['completion_tokens']} tokens, "
            f"{_money(totals['cost_usd'], totals['calls_without_price'])}"
        )
    for report, usage in stats.get("reports", {}).items():
        lines.append(
            f"report {report}: {usage['requests']} requests = {usage['calls']} calls + "
            f"{usage['hits']} hits + {usage['failed_calls']} failed; "
            f"{usage['prompt_tokens']} + {usage['completion_tokens']} tokens, "
            f"{_money(usage['cost_usd'], usage['calls_without_price'])}; "
            f"{usage['fallback_frames']} fallback frames"
        )
        if usage["entries_missing"]:
            lines.append(f"  {usage['entries_missing']} used key(s) not in the cache (dvc pull?)")
        for label, totals in sorted(usage["by_backend"].items()):
            lines.append(
                f"  {label}: {totals['calls']} calls, {totals['prompt_tokens']} + "
                f"{totals['completion_tokens']} tokens, "
                f"{_money(totals['cost_usd'], totals['calls_without_price'])}"
            )
    return "\n".join(lines)


@app.command("stats")
def stats_command(
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir",
            help="The cache folder (default: the workflow's, {results_dir}/llm_cache).",
        ),
    ] = None,
    report: Annotated[
        list[Path] | None,
        typer.Option("--report", help="A report table (reports/tableN.csv); repeatable."),
    ] = None,
    project_dir: Annotated[
        Path | None,
        typer.Option(
            "--project-dir",
            help="Folder the report's relative paths start from (default: current folder).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Calls, hits, tokens and estimated $ per backend/model and per report."""
    from avsbridge.cli_output import emit

    base = project_dir or Path.cwd()
    emit(
        lambda: collect_stats(
            cache_dir if cache_dir is not None else default_cache_dir(base),
            list(report or []),
            base,
        ),
        as_json,
        render,
    )
