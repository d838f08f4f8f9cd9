"""Walk a report back to its sources and check every file on the way.

``avsbridge audit reports/table1.csv`` follows report cell -> metrics JSON ->
mask shards -> text shards (prompts, LLM answers, cache keys) -> ALM shards ->
audio files and frames, using the provenance records every job writes
(:mod:`avsbridge.provenance.records`). Three kinds of problem are found:

- **modified** / **missing**: a file's sha256 differs from the one its record
  holds, or the file (or its record, or an LLM cache entry it used) is gone;
- **stale: input**: an input's content changed after the artifact was built;
- **stale: params / code**: Snakemake itself (``snakemake --summary``, run with
  the report's config) says the artifact is out of date against the current
  params or code. The rules carry a code-hash param, so a code change shows up
  as a changed ``code`` param and is reported as ``stale: code``.

The result is a structured :class:`AuditResult` (text and JSON renderings); a
non-empty ``problems`` list means the report cannot be trusted as it stands.
"""

from __future__ import annotations

import ast
import csv
import os
import re
import subprocess
import sys
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from avsbridge.io import ArtifactError, content_key, read_json, sha256_file
from avsbridge.provenance.records import NOT_CONTENT, code_version, record_path
from avsbridge.stages import REPORT_RULES, STAGES

# rule of a record -> the artifact family it belongs to (stage rules from avsbridge.stages)
FAMILY_OF_RULE = {
    **{name: st.family for name, st in STAGES.items()},
    **dict.fromkeys(REPORT_RULES, "report"),
}
# families whose records name LLM cache keys besides the translations (answers, scenes, cues)
MODEL_CALL_FAMILIES = {
    STAGES[n].family for n in ("mllm_answers", "scene_description", "text_cues") if n in STAGES
}
# families whose artifact is one metrics JSON (the terminal stage of each chain)
METRIC_FAMILIES = ("metrics", "zs_metrics", "stmetrics", "recognition")
# per-sample records worth showing, by family (BAaV zero-shot chain)
SAMPLE_FIELDS: dict[str, tuple[str, ...]] = {
    "zs_audio": ("sample", "audio", "tags", "top_class", "caption"),
    "zs_image": ("sample", "image", "caption", "detections"),
    "zs_query": ("sample", "strategy", "source_text", "noun_phrases", "scores", "chosen", "query"),
    "zs_masks": ("sample", "query", "prompt", "detections"),
}
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# Snakemake --summary status -> our staleness cause
SUMMARY_STATUS = {
    "missing": ("missing", ""),
    "updated input files": ("stale", "input"),
    "set of input files changed": ("stale", "input"),
    "rule implementation changed": ("stale", "code"),
    "params changed": ("stale", "params"),
}
SNAKEMAKE_TIMEOUT_S = 300


class AuditError(ValueError):
    """The audit cannot start (bad report path, unknown row/column): nothing was checked."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file."""

    path: str
    kind: str  # modified | missing | stale | unverified
    cause: str  # stale: params | code | input; otherwise ""
    detail: str
    artifact: str  # the lineage node where it was found

    def line(self) -> str:
        label = f"{self.kind}: {self.cause}" if self.cause else self.kind
        return f"{label}: {self.path} -- {self.detail}"


@dataclass
class Node:
    """One artifact (or source file) on the lineage."""

    path: str
    family: str  # report | metrics | masks | text | alm | audio | frame | file
    rule: str | None = None
    record: str | None = None
    inputs: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"


@dataclass
class AuditResult:
    """Lineage of the selected cells plus every problem found on it."""

    report: str
    project_dir: str
    cells: list[dict[str, Any]]
    nodes: dict[str, Node]
    problems: list[Problem]
    snakemake: dict[str, Any]
    code_now: dict[str, Any]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "report": self.report,
            "project_dir": self.project_dir,
            "ok": self.ok,
            "code_now": self.code_now,
            "cells": self.cells,
            "lineage": {path: asdict(node) for path, node in self.nodes.items()},
            "snakemake": self.snakemake,
            "problems": [{**asdict(p), "line": p.line()} for p in self.problems],
        }

    def render_text(self) -> str:
        return _render_text(self)


# --- hashing helpers -----------------------------------------------------------------------


class _Hasher:
    """sha256 per file, each file read once per audit (inputs are shared by many records)."""

    def __init__(self) -> None:
        self._memo: dict[Path, str] = {}

    def file(self, path: Path) -> str:
        if path not in self._memo:
            self._memo[path] = sha256_file(path)
        return self._memo[path]

    def tree(self, path: Path) -> str:
        """Same key as :func:`avsbridge.provenance.records.tree_hash`."""
        if path.is_file():
            return content_key({path.name: self.file(path)})
        return content_key(
            {
                str(p.relative_to(path)): self.file(p)
                for p in sorted(path.rglob("*"))
                if p.is_file() and p.name not in NOT_CONTENT
            }
        )


# --- the walk ------------------------------------------------------------------------------


class _Auditor:
    def __init__(self, project_dir: Path) -> None:
        self.root = project_dir
        self.hash = _Hasher()
        self.nodes: dict[str, Node] = {}
        self.problems: list[Problem] = []

    def resolve(self, path: str | Path) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self.root / p

    def display(self, path: str | Path) -> str:
        """Paths as the records write them; relative ones stay relative to the project dir."""
        p = Path(path)
        try:
            return str(p.relative_to(self.root)) if p.is_absolute() else str(p)
        except ValueError:
            return str(p)

    def problem(self, path: str | Path, kind: str, cause: str, detail: str, artifact: str) -> None:
        shown = self.display(path)
        self.problems.append(Problem(shown, kind, cause, detail, artifact))
        node = self.nodes.get(artifact)
        if node is not None and node.status == "ok":
            node.status = f"{kind}: {cause}" if cause else kind

    # records ----------------------------------------------------------------------------

    def check_outputs(self, node: Node, artifact: Path, record: dict[str, Any]) -> None:
        outputs: dict[str, str] = record.get("outputs") or {}
        base = artifact if artifact.is_dir() else artifact.parent
        for name, digest in sorted(outputs.items()):
            f = base / name
            if not f.is_file():
                self.problem(
                    f, "missing", "", f"listed in {self.display(node.record or '')}", node.path
                )
            elif self.hash.file(f) != digest:
                self.problem(
                    f,
                    "modified",
                    "",
                    f"sha256 differs from its provenance record {self.display(node.record or '')}",
                    node.path,
                )
        if artifact.is_dir():
            for f in sorted(artifact.rglob("*")):
                rel = str(f.relative_to(artifact))
                if (
                    f.is_file()
                    and f.name not in NOT_CONTENT
                    and not f.name.startswith(".")
                    and rel not in outputs
                ):
                    self.problem(
                        f,
                        "modified",
                        "",
                        "file is not in the provenance record (added later)",
                        node.path,
                    )

    def check_inputs(self, node: Node, record: dict[str, Any]) -> list[str]:
        """Compare recorded input hashes with the inputs now; returns the inputs to walk."""
        follow: list[str] = []
        for name, digest in sorted((record.get("inputs") or {}).items()):
            p = self.resolve(name)
            node.inputs.append(name)
            if not p.exists():
                self.problem(p, "missing", "", f"input of {node.path}", node.path)
                continue
            if self.hash.tree(p) != digest:
                self.problem(
                    node.path,
                    "stale",
                    "input",
                    f"input {self.display(p)} changed since this was built",
                    node.path,
                )
            follow.append(name)
        return follow

    def visit(self, name: str) -> list[str]:
        """Check one lineage entry; returns the inputs to visit next."""
        path = self.resolve(name)
        rec = record_path(path) if path.exists() else None
        if rec is None or not rec.is_file():
            if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
                self.nodes[name] = Node(name, "audio")
                return []
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                self.nodes[name] = Node(name, "frame")
                return []
            node = Node(name, "file")
            self.nodes[name] = node
            if not path.exists():
                self.problem(path, "missing", "", "artifact on the lineage is gone", name)
            elif path.is_dir() or path.suffix == ".json":
                # a results artifact without its record: it cannot be traced further
                self.problem(rec or path, "missing", "", "no provenance record", name)
            return []
        try:
            record = read_json(rec)
        except ArtifactError as exc:
            self.nodes[name] = Node(name, "file", record=str(rec))
            self.problem(rec, "modified", "", exc.problem, name)
            return []
        rule = str(record.get("rule", ""))
        node = Node(name, FAMILY_OF_RULE.get(rule, "file"), rule=rule, record=self.display(rec))
        self.nodes[name] = node
        node.info = _describe(record)
        self.check_outputs(node, path, record)
        follow = self.check_inputs(node, record)
        if node.family == "text" and path.is_dir():
            self.text_details(node, path, record)
        elif node.family in MODEL_CALL_FAMILIES and path.is_dir():
            self.text_details(node, path, record, ("clip", "cache_keys", "failed_keys"))
        elif node.family == "alm" and path.is_dir():
            node.info["clips"] = _clip_records(path, ("clip", "texts"))
        elif node.family in METRIC_FAMILIES and path.is_file():
            node.info["values"] = _metric_values(path)
        elif node.family in SAMPLE_FIELDS and path.is_dir():
            node.info["samples"] = _clip_records(path, SAMPLE_FIELDS[node.family])
        return follow

    def text_details(
        self,
        node: Node,
        path: Path,
        record: dict[str, Any],
        fields: Sequence[str] = (
            "clip",
            "strategy",
            "prompts",
            "raw_texts",
            "cache_keys",
            "fallback_frames",
        ),
    ) -> None:
        """Per-clip prompts and LLM answers; every cache key must have its entry."""
        from avsbridge.translate.cache import CallCache, request_key

        cache_dir = (record.get("params") or {}).get("cache_dir") or (
            record.get("llm_cache") or {}
        ).get("dir")
        cache = CallCache(self.resolve(cache_dir)) if cache_dir else None
        clips = _clip_records(path, fields)
        for slug, clip in clips.items():
            answers: dict[str, str | None] = {}
            for key in clip.get("cache_keys") or []:
                answers[key] = None
                if cache is None:
                    self.problem(
                        path / f"{slug}.json",
                        "missing",
                        "",
                        f"cache key {key} but no cache_dir recorded",
                        node.path,
                    )
                    continue
                entry_path = cache.entry_path(key)
                if not entry_path.is_file():
                    self.problem(
                        entry_path,
                        "missing",
                        "",
                        f"LLM cache entry of key {key} used by {slug}.json",
                        node.path,
                    )
                    continue
                try:
                    entry = read_json(entry_path)
                    req = entry["request"]
                    attachments = req.get("attachments")  # image hashes of a vision request
                    if request_key(req["backend"], req["system"], req["user"], attachments) != key:
                        raise KeyError("request does not hash to its key")
                    answers[key] = str(entry["response"]["text"])
                except (ArtifactError, KeyError, TypeError) as exc:
                    self.problem(
                        entry_path,
                        "modified",
                        "",
                        f"LLM cache entry does not match key {key} ({exc})",
                        node.path,
                    )
            clip["answers"] = answers
        node.info["clips"] = clips
        if cache_dir:
            node.info["llm_cache_dir"] = str(cache_dir)


def _describe(record: dict[str, Any]) -> dict[str, Any]:
    """The record fields worth showing: code, params, backend, models, weights, prompts."""
    keep = (
        "code",
        "params",
        "backend",
        "identity",
        "model_ids",
        "weights_sha256",
        "prompt",
        "thresholds",
        "llm_cache",
    )
    info = {k: record[k] for k in keep if k in record}
    if "cells" in record:
        info["n_cells"] = len(record["cells"])
    return info


def _clip_records(folder: Path, fields: Sequence[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for f in sorted(folder.glob("*.json")):
        if f.name.startswith("_"):
            continue
        try:
            doc = read_json(f)
        except ArtifactError:
            continue  # reported by the output check
        if isinstance(doc, dict):
            out[f.stem] = {k: doc[k] for k in fields if k in doc}
    return out


def _metric_values(path: Path) -> dict[str, Any]:
    try:
        doc = read_json(path)
    except ArtifactError:
        return {}
    return {k: v for k, v in doc.items() if isinstance(v, int | float) and not isinstance(v, bool)}


# --- report cells ---------------------------------------------------------------------------


def _report_csv(report: Path) -> Path:
    if report.suffix in (".json", ".md"):
        report = report.with_suffix(".csv")
    if report.suffix != ".csv":
        raise AuditError(f"{report}: not a report table (expected reports/<table>.csv)")
    if not report.is_file():
        raise AuditError(f"{report}: report is missing (build it: snakemake {report})")
    return report


def _csv_rows(report: Path) -> list[dict[str, str]]:
    try:
        with report.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AuditError(f"{report}: unreadable report ({exc})") from None
    if not rows or "method" not in rows[0]:
        raise AuditError(f"{report}: not a report table (no 'method' column)")
    return rows


def _fallback_cells(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Without the report's record: one entry per metrics file a reproduced row names."""
    return [
        {
            "row_index": i,
            "method": row["method"],
            "column": None,
            "metric": None,
            "value": None,
            "metrics_file": f,
        }
        for i, row in enumerate(rows)
        if row.get("source") == "reproduced"
        for f in filter(None, (row.get("metrics_files") or "").split(";"))
    ]


def select_cells(
    cells: list[dict[str, Any]], row: str | None, col: str | None
) -> list[dict[str, Any]]:
    """Cells matching ``row`` (method name, case-insensitive, or CSV row index) and ``col``."""
    chosen = cells
    if row is not None:
        wanted = row.strip()
        by_index = wanted.isdigit()
        chosen = [
            c
            for c in chosen
            if (by_index and c["row_index"] == int(wanted))
            or c["method"].casefold() == wanted.casefold()
        ]
        if not chosen:
            known = sorted({f"{c['row_index']}: {c['method']}" for c in cells})
            raise AuditError(
                f"no reproduced cell in row {row!r} (rows: {'; '.join(known) or 'none'})"
            )
    if col is not None:
        narrowed = [c for c in chosen if c["column"] == col]
        if not narrowed:
            known = sorted({str(c["column"]) for c in chosen})
            raise AuditError(
                f"no reproduced cell in column {col!r} (columns: {', '.join(known) or 'none'})"
            )
        chosen = narrowed
    return chosen


# --- Snakemake ------------------------------------------------------------------------------


def default_snakefile(project_dir: Path) -> Path | None:
    for candidate in (project_dir / "Snakefile", Path(__file__).resolve().parents[3] / "Snakefile"):
        if candidate.is_file():
            return candidate
    return None


def _snakemake(
    project_dir: Path, snakefile: Path, configfiles: Sequence[Path], *args: str
) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(snakefile),
        "--directory",
        str(project_dir),
    ]
    if configfiles:
        cmd += ["--configfile", *map(str, configfiles)]
    cmd += list(args)
    return subprocess.run(
        cmd, capture_output=True, text=True, cwd=project_dir, timeout=SNAKEMAKE_TIMEOUT_S
    )


def snakemake_summary(
    project_dir: Path, snakefile: Path, configfiles: Sequence[Path], target: str
) -> dict[str, dict[str, str]]:
    """``snakemake --summary target``: output path (absolute) -> rule, status, plan."""
    proc = _snakemake(project_dir, snakefile, configfiles, "--summary", target)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError("snakemake --summary failed: " + " | ".join(tail))
    table: dict[str, dict[str, str]] = {}
    header_seen = False
    for line in proc.stdout.splitlines():
        parts = line.split("\t")
        if parts[0] == "output_file":
            header_seen = True
            continue
        if header_seen and len(parts) >= 6:
            out = os.path.normpath(project_dir / parts[0])
            table[out] = {"rule": parts[2], "status": parts[-2], "plan": parts[-1]}
    return table


_REASON = re.compile(r"^\s*output: (?P<out>.*)$|^\s*reason: (?P<reason>.*)$")


def changed_params(
    project_dir: Path, snakefile: Path, configfiles: Sequence[Path], target: str
) -> dict[str, str]:
    """Dry-run reasons for params changes: output path (absolute) -> 'before: ... now: ...'."""
    proc = _snakemake(project_dir, snakefile, configfiles, "--dry-run", target)
    reasons: dict[str, str] = {}
    outputs: list[str] = []
    for line in proc.stdout.splitlines():
        m = _REASON.match(line)
        if not m:
            continue
        if m.group("out") is not None:
            outputs = [o.strip() for o in m.group("out").split(",")]
        elif "Params have changed" in m.group("reason"):
            for out in outputs:
                reasons[os.path.normpath(project_dir / out)] = m.group("reason")
    return reasons


def _params_named(reason: str, params: dict[str, Any]) -> list[str]:
    """Which recorded params hold a value Snakemake lists as gone ('before: ...')."""
    before = reason.split("before:", 1)[1].split(" now:", 1)[0] if "before:" in reason else ""
    olds: set[str] = set()
    for token in re.findall(r"'[^']*'|[-+0-9.eE]+|\S+", before):
        try:
            olds.add(repr(ast.literal_eval(token)))
        except (ValueError, SyntaxError):
            olds.add(token)
    return [name for name, value in params.items() if repr(value) in olds]


def check_snakemake(
    auditor: _Auditor,
    report: Path,
    snakefile: Path | None,
    configfiles: Sequence[Path],
) -> dict[str, Any]:
    """Flag lineage artifacts Snakemake would rebuild (params, code, inputs) or no longer builds."""
    info: dict[str, Any] = {"ran": False, "configfiles": [str(c) for c in configfiles]}
    if snakefile is None:
        auditor.problem(
            report,
            "unverified",
            "",
            "no Snakefile found: pass --snakefile to check params/code",
            auditor.display(report),
        )
        return info
    target = auditor.display(report)
    info.update(snakefile=str(snakefile), target=target)
    try:
        table = snakemake_summary(auditor.root, snakefile, configfiles, target)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        auditor.problem(report, "unverified", "", f"cannot check params/code: {exc}", target)
        return info
    info["ran"] = True
    reasons: dict[str, str] | None = None
    for name, node in auditor.nodes.items():
        if node.rule is None:
            continue
        key = os.path.normpath(auditor.resolve(name))
        row = table.get(key)
        if row is None:
            auditor.problem(
                name,
                "stale",
                "params",
                f"the current config does not build this for {target} (other variants or paths; "
                "pass the --configfile the report was built with)",
                name,
            )
            continue
        node.info["snakemake"] = row
        kind_cause = SUMMARY_STATUS.get(row["status"])
        if row["status"] == "ok" or kind_cause is None:
            continue
        kind, cause = kind_cause
        detail = f"Snakemake: {row['status']}"
        if cause == "params":
            if reasons is None:
                reasons = changed_params(auditor.root, snakefile, configfiles, target)
            reason = reasons.get(key, "")
            record = read_json(auditor.resolve(node.record or "")) if node.record else {}
            names = _params_named(reason, record.get("params") or {})
            if names == ["code"]:
                cause, detail = (
                    "code",
                    f"Snakemake: params changed: code hash of the rule's modules ({reason})",
                )
            elif names:
                detail = f"Snakemake: params changed: {', '.join(names)} ({reason})"
            elif reason:
                detail = f"Snakemake: {reason}"
        auditor.problem(name, kind, cause, detail, name)
    return info


# --- entry point ----------------------------------------------------------------------------


def _project_of(report: Path) -> Path:
    """The workflow's working folder a report belongs to: the nearest parent holding a
    Snakefile, params.yaml or Snakemake's .snakemake folder (reports may sit deeper,
    e.g. reports/baav/table1.csv)."""
    for parent in report.parents:
        if any((parent / name).exists() for name in ("Snakefile", "params.yaml", ".snakemake")):
            return parent
    return Path.cwd()


def audit_report(
    report: Path | str,
    *,
    row: str | None = None,
    col: str | None = None,
    project_dir: Path | str | None = None,
    configfiles: Iterable[Path | str] = (),
    snakefile: Path | str | None = None,
    use_snakemake: bool = True,
) -> AuditResult:
    """Audit the reproduced cells of ``report`` (all, or those ``row``/``col`` pick)."""
    report = _report_csv(Path(report).absolute())
    if project_dir is None:
        project_dir = _project_of(report)
    root = Path(project_dir).absolute()
    auditor = _Auditor(root)
    rows = _csv_rows(report)
    report_name = auditor.display(report)

    rec = record_path(report)
    report_node = Node(report_name, "report", rule="report_table", record=auditor.display(rec))
    auditor.nodes[report_name] = report_node
    if rec.is_file():
        record = read_json(rec)
        cells = [dict(c) for c in record.get("cells", [])]
        report_node.info = _describe(record)
        auditor.check_outputs(report_node, report, record)
        auditor.check_inputs(report_node, record)
    else:
        cells = _fallback_cells(rows)
        auditor.problem(
            rec,
            "missing",
            "",
            "report has no provenance record: cells cannot be traced exactly",
            report_name,
        )
    chosen = select_cells(cells, row, col)
    scale = _report_scale(record if rec.is_file() else {})
    for cell in chosen:
        _check_cell_value(auditor, report_name, rows, cell, scale)

    queue = deque(dict.fromkeys(c["metrics_file"] for c in chosen))
    report_node.inputs = list(queue) if not rec.is_file() else report_node.inputs
    seen: set[str] = set()
    while queue:
        name = queue.popleft()
        if name in seen:
            continue
        seen.add(name)
        queue.extend(n for n in auditor.visit(name) if n not in seen)

    info: dict[str, Any] = {"ran": False}
    if use_snakemake:
        sf = Path(snakefile) if snakefile else default_snakefile(root)
        info = check_snakemake(auditor, report, sf, [Path(c).absolute() for c in configfiles])
    return AuditResult(
        report=report_name,
        project_dir=str(root),
        cells=chosen,
        nodes=auditor.nodes,
        problems=auditor.problems,
        snakemake=info,
        code_now=code_version(),
    )


def audit_artifacts(artifacts: Iterable[Path | str], project_dir: Path | str) -> AuditResult:
    """Walk artifacts that no report reads yet (``families:`` outputs: answers, cues, flow)
    back to their sources with the same checks as a report's lineage (no Snakemake run)."""
    root = Path(project_dir).absolute()
    auditor = _Auditor(root)
    queue = deque(dict.fromkeys(auditor.display(Path(a).absolute()) for a in artifacts))
    seen: set[str] = set()
    while queue:
        name = queue.popleft()
        if name in seen:
            continue
        seen.add(name)
        queue.extend(n for n in auditor.visit(name) if n not in seen)
    return AuditResult(
        report="",
        project_dir=str(root),
        cells=[],
        nodes=auditor.nodes,
        problems=auditor.problems,
        snakemake={"ran": False},
        code_now=code_version(),
    )


def _report_scale(record: dict[str, Any]) -> float:
    """The printed-unit factor of the report's table (BAaV prints percent: 100)."""
    params = record.get("params") or {}
    try:
        from avsbridge.papers import table

        return float(table(str(params["paper"]), str(params["table"])).scale)
    except (KeyError, ValueError):
        return 1.0


def _check_cell_value(
    auditor: _Auditor,
    report_name: str,
    rows: list[dict[str, str]],
    cell: dict[str, Any],
    scale: float = 1.0,
) -> None:
    """The CSV cell must hold the metric its metrics file holds (scaled and rounded as the
    writer does: ``calls`` columns are counts, never scaled)."""
    if cell.get("column") is None:
        return
    index = cell["row_index"]
    shown = rows[index].get(cell["column"], "") if index < len(rows) else ""
    metrics = auditor.resolve(cell["metrics_file"])
    try:
        from avsbridge.experiments import metric_value

        value = metric_value(read_json(metrics), cell["metric"])
    except (ArtifactError, KeyError, TypeError):
        return  # the metrics node reports a missing/modified file
    cell["metrics_value"] = value
    factor = 1.0 if cell.get("protocol") == "calls" else scale
    try:
        # the writer prints metric x scale (percent tables: 100), rounded to 4 decimals
        same = round(float(value) * float(cell.get("scale", factor)), 4) == float(shown)
    except ValueError:
        same = False
    if not same:
        auditor.problem(
            report_name,
            "modified",
            "",
            f"row {index} ({cell['method']}) {cell['column']} = {shown!r} but "
            f"{cell['metrics_file']} [{cell['metric']}] = {value}"
            + (f" (x{cell['scale']:g})" if cell.get("scale", 1) != 1 else ""),
            report_name,
        )


# --- text rendering -------------------------------------------------------------------------


def _short(value: Any, width: int = 100) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _node_lines(node: Node) -> list[str]:
    info = node.info
    lines: list[str] = []
    code = info.get("code") or {}
    head = f"{node.family} {node.path}"
    if node.rule:
        head += f"  [rule {node.rule}; code {str(code.get('git_commit') or '?')[:10]}{' dirty' if code.get('dirty') else ''}]"
    if node.status != "ok":
        head += f"  <{node.status}>"
    lines.append(head)
    params = {k: v for k, v in (info.get("params") or {}).items() if k != "backend"}
    if params:
        lines.append("  params: " + _short(", ".join(f"{k}={v}" for k, v in params.items()), 140))
    backend = info.get("backend")
    if isinstance(backend, dict):
        lines.append(f"  backend: {backend.get('name')} {_short(backend.get('options', {}), 80)}")
    for key in ("model_ids", "weights_sha256"):
        for name, value in (info.get(key) or {}).items():
            lines.append(f"  {key.split('_')[0]} {name}: {value}")
    prompt = info.get("prompt")
    if isinstance(prompt, dict):
        for name, value in prompt.items():
            lines.append(f"  prompt {name}: {_short(value, 120)}")
    if "values" in info:
        lines.append("  metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in info["values"].items()))
    for slug, clip in (info.get("clips") or {}).items():
        texts = clip.get("prompts") or clip.get("texts") or []
        lines.append(f"  clip {slug}: " + _short(" | ".join(map(str, texts)), 140))
        for key, answer in (clip.get("answers") or {}).items():
            lines.append(
                f"    llm {key[:12]}: "
                + _short(answer if answer is not None else "<no cache entry>", 120)
            )
    return lines


def _render_text(result: AuditResult) -> str:
    out = [f"audit {result.report}  (project {result.project_dir})"]
    children = {name: node.inputs for name, node in result.nodes.items()}
    printed: set[str] = set()

    def walk(name: str, depth: int) -> None:
        node = result.nodes.get(name)
        pad = "  " * depth
        if node is None:
            return
        if name in printed:
            out.append(f"{pad}{node.family} {name}  (see above)")
            return
        printed.add(name)
        if node.family in ("audio", "frame", "file") and not node.rule:
            out.append(f"{pad}{node.family} {name}")
            return
        out.extend(pad + line for line in _node_lines(node))
        leaves = [
            c
            for c in children.get(name, [])
            if c in result.nodes and result.nodes[c].family == "frame"
        ]
        for child in children.get(name, []):
            if child not in leaves:
                walk(child, depth + 1)
        if leaves:
            out.append(f"{pad}  frames: {len(leaves)} files, e.g. {leaves[0]}")
            printed.update(leaves)

    for cell in result.cells:
        col = (
            f" {cell['column']} = {cell['value']} <- [{cell['metric']}]"
            if cell.get("column")
            else ""
        )
        out.append(
            f"cell row {cell['row_index']} ({cell['method']}){col} of {cell['metrics_file']}"
        )
    walk(result.report, 0)
    snake = result.snakemake
    if snake.get("ran"):
        cfg = ", ".join(snake.get("configfiles") or []) or "the Snakefile's default config"
        out.append(f"snakemake --summary {snake.get('target')} with {cfg}: checked params/code")
    if result.problems:
        out.append(f"FAILED: {len(result.problems)} problem(s)")
        out.extend(p.line() for p in result.problems)
    else:
        out.append(f"OK: {len(result.nodes)} lineage entries verified")
    return "\n".join(out)
