"""``avsbridge cache``: what the LLM call cache holds and what each report cost.

It also reports the VFM caches (:mod:`avsbridge.segment.vfm_cache`): entries and bytes
of the detections and embeddings folders per model, and the hits/misses and
detector/encoder invocations the segment jobs recorded in their ``_summary.json``
(``vfm_calls``), over every mask shard of the results and per report.

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
from avsbridge.provenance.records import LEDGER_NAME

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help=(
        "The LLM call cache (calls, hits, tokens, estimated $ per backend and per report) "
        "and the VFM caches (entries, bytes, hits/misses, detector/encoder calls)."
    ),
)

TRANSLATION_RULES = ("translate", "weak_labels")
SEGMENT_RULES = ("segment",)


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


def _config(base: Path) -> dict[str, Any]:
    from avsbridge.config import load_config

    profile, params = base / "config" / "config.yaml", base / "params.yaml"
    return load_config(profile, params) if profile.is_file() and params.is_file() else load_config()


def default_vfm_dirs(base: Path) -> tuple[Path, Path]:
    """(VFM cache folder, masks root) of the workflow's profile (see :func:`default_cache_dir`)."""
    from avsbridge import paths

    config = _config(base)
    return (
        _resolve(paths.vfm_cache_dir(config), base),
        _resolve(paths.family_root(config, "masks"), base),
    )


def _resolve(path: str, base: Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else base / p


def report_text_dirs(
    report: Path, base: Path, rules: tuple[str, ...] = TRANSLATION_RULES
) -> list[Path]:
    """Translation folders (or, with ``rules=SEGMENT_RULES``, mask shards) behind a
    report's reproduced rows, in first-use order."""
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
                and read_json(record).get("rule") in rules
            ):
                folders[folder] = None
    return list(folders)


def collect_stats(
    cache_dir: Path,
    reports: list[Path],
    base: Path,
    vfm_cache_dir: Path | None = None,
    masks_dirs: list[Path] | None = None,
) -> dict[str, Any]:
    """The numbers ``stats`` prints: cache totals, then one usage block per report.

    ``vfm``: the VFM cache folder's entries, and the segment jobs' calls and cache
    hits/misses over ``masks_dirs`` (every ``_summary.json`` below them) and per report.
    """
    from avsbridge.segment.vfm_cache import folder_stats
    from avsbridge.translate.cache import cache_stats, load_entries, usage_stats

    stats = cache_stats(cache_dir)
    if reports:
        entries = load_entries(cache_dir)
        stats["reports"] = {
            str(report): usage_stats(entries, report_text_dirs(_resolve(str(report), base), base))
            for report in reports
        }
    if vfm_cache_dir is None or masks_dirs is None:
        default_cache, default_masks = default_vfm_dirs(base)
        vfm_cache_dir = vfm_cache_dir or default_cache
        masks_dirs = masks_dirs if masks_dirs is not None else [default_masks]
    vfm = folder_stats(vfm_cache_dir)
    shards = [s.parent for m in masks_dirs if m.is_dir() for s in sorted(m.rglob(SUMMARY))]
    vfm["runs"] = segment_usage(shards)
    if reports:
        vfm["reports"] = {
            str(report): segment_usage(
                report_text_dirs(_resolve(str(report), base), base, SEGMENT_RULES)
            )
            for report in reports
        }
    stats["vfm"] = vfm
    return stats


SUMMARY = "_summary.json"
_CALL_FIELDS = ("frames", "detector_calls", "encoder_calls", "detector_batches", "encoder_batches")
_COUNT_FIELDS = ("hits", "misses", "corrupt", "stored", "evicted")


def segment_usage(shards: list[Path]) -> dict[str, Any]:
    """Detector/encoder calls and cache hits/misses the given mask shards' jobs recorded.

    The counts are each shard's run ledger (``_calls.json``; older shards kept them in
    ``_summary.json``). Shards written before the counts existed are counted apart.
    """
    usage: dict[str, Any] = {"jobs": 0, "jobs_without_counts": 0, "unstaged_frames": 0}
    usage.update(dict.fromkeys(_CALL_FIELDS, 0))
    usage["cache"] = {
        kind: dict.fromkeys(_COUNT_FIELDS, 0) for kind in ("detections", "embeddings")
    }
    for shard in shards:
        ledger_file = shard / LEDGER_NAME
        source = ledger_file if ledger_file.is_file() else shard / SUMMARY  # older shards
        doc = read_json(source)
        calls = doc.get("vfm_calls") if isinstance(doc, dict) else None
        usage["jobs"] += 1
        if not isinstance(calls, dict):
            usage["jobs_without_counts"] += 1
            continue
        if not calls.get("staged"):
            usage["unstaged_frames"] += int(calls.get("segment_calls", 0))
            continue
        try:
            for name in _CALL_FIELDS:
                usage[name] += int(calls.get(name, 0))
            for kind, counts in (calls.get("cache") or {}).items():
                for name in _COUNT_FIELDS:
                    usage["cache"][kind][name] += int(counts.get(name, 0))
        except (TypeError, ValueError, AttributeError, KeyError):
            raise ArtifactError(source, "'vfm_calls' holds non-numeric counts") from None
    return usage


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
    lines.extend(_render_vfm(stats.get("vfm")))
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


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _usage_line(label: str, usage: dict[str, Any]) -> str:
    det, emb = usage["cache"]["detections"], usage["cache"]["embeddings"]
    return (
        f"{label}: {usage['jobs']} segment jobs, {usage['frames']} frames; "
        f"{usage['detector_calls']} detector + {usage['encoder_calls']} encoder calls; "
        f"detections {det['hits']} hits / {det['misses']} misses, "
        f"embeddings {emb['hits']} hits / {emb['misses']} misses"
        + (
            f", {det['corrupt'] + emb['corrupt']} corrupt recomputed"
            if det["corrupt"] + emb["corrupt"]
            else ""
        )
    )


def _render_vfm(vfm: dict[str, Any] | None) -> list[str]:
    if not vfm:
        return []
    det, emb = vfm["detections"], vfm["embeddings"]
    lines = [
        f"vfm cache {vfm['cache_dir']}: detections {det['entries']} entries ({_mb(det['bytes'])}), "
        f"embeddings {emb['entries']} entries ({_mb(emb['bytes'])})"
    ]
    for kind, block in (("detections", det), ("embeddings", emb)):
        for model, slot in sorted(block["by_model"].items()):
            lines.append(f"  {kind} {model}: {slot['entries']} entries, {_mb(slot['bytes'])}")
    lines.append("  " + _usage_line("runs", vfm["runs"]))
    for report, usage in vfm.get("reports", {}).items():
        lines.append("  " + _usage_line(f"report {report}", usage))
    return lines


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
    vfm_cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--vfm-cache-dir",
            help="The VFM cache folder (default: the workflow's, {results_dir}/vfm_cache).",
        ),
    ] = None,
    masks_dir: Annotated[
        list[Path] | None,
        typer.Option(
            "--masks-dir",
            help="Mask shards whose segment jobs' calls to count (default: {results_dir}/masks).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Calls, hits, tokens and estimated $ per backend/model and per report; VFM cache use."""
    from avsbridge.cli_output import emit

    base = project_dir or Path.cwd()
    emit(
        lambda: collect_stats(
            cache_dir if cache_dir is not None else default_cache_dir(base),
            list(report or []),
            base,
            vfm_cache_dir,
            list(masks_dir) if masks_dir else None,
        ),
        as_json,
        render,
    )
