"""Carry Snakemake's job records across clones, so pulled artifacts stay trusted.

DVC moves the artifact folders between clones but neither Snakemake's metadata
(``.snakemake/metadata``: params, code and input records per output) nor file
modification times. In a fresh clone after ``dvc pull`` Snakemake 9 would re-run
every job (no metadata record), and restamping alone would make pulled outputs
blind to later params/code changes (measured in ../shared/NOTES-snakemake-dvc.md).

So the last DVC stage **exports** the metadata records of every output under the
results folder and ``reports/`` into one JSON file that DVC tracks beside the
artifacts, and the workflow **adopts** it at start-up in a clone that lacks them:

- an output is adopted only when its ``_provenance.json`` input hashes match the
  current inputs (or, for outputs without a provenance record such as reports,
  when all its inputs are adopted outputs); an unverified output gets no record,
  so Snakemake re-runs it, the safe default;
- its Snakemake record is written where Snakemake's file backend reads it, so
  later params/code changes are detected as usual;
- adopted outputs are restamped in dependency order (inputs before outputs), so
  Snakemake's mtime trigger sees a consistent tree.

Adoption never overwrites a local record and runs once per state file (a stamp
under ``.snakemake`` holds the state's hash), so it costs one hash at start-up.
"""

from __future__ import annotations

import logging
import os
import time
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from avsbridge.io import ArtifactError, atomic_write_json, read_json, sha256_file
from avsbridge.provenance.records import RECORD_NAME, tree_hash

log = logging.getLogger("avsbridge.state")

STATE_FORMAT = 1
STATE_FILE = "_snakemake_state.json"
SNAKEMAKE_DIR = ".snakemake"
METADATA_DIR = f"{SNAKEMAKE_DIR}/metadata"
STAMP_FILE = f"{SNAKEMAKE_DIR}/avsbridge-adopted.json"
TIMESTAMP_FILE = ".snakemake_timestamp"  # Snakemake's mtime carrier inside directory outputs


def state_path(results_dir: str | Path) -> Path:
    return Path(results_dir) / STATE_FILE


# --- Snakemake's file-backend record naming (snakemake/persistence/file.py) -----


def _decode_record_name(relative: Path) -> str:
    """Output path of a record file: base64 chunks, all but the last prefixed by '@'."""
    chunks = [part.removeprefix("@") for part in relative.parts]
    return urlsafe_b64decode("".join(chunks).encode()).decode()


def _record_file(workdir: Path, key: str) -> Path:
    root = workdir / METADATA_DIR
    max_len = os.pathconf(root, "PC_NAME_MAX") if root.exists() else 255
    encoded = urlsafe_b64encode(key.encode()).decode()
    step = (max_len or 255) - 1
    chunks = [encoded[i : i + step] for i in range(0, len(encoded), step)]
    chunks = ["@" + c for c in chunks[:-1]] + [chunks[-1]]
    return root.joinpath(*chunks)


def read_metadata(workdir: Path) -> dict[str, dict[str, Any]]:
    """All Snakemake metadata records of ``workdir``, by output path."""
    root = workdir / METADATA_DIR
    records: dict[str, dict[str, Any]] = {}
    if not root.is_dir():
        return records
    for path in root.rglob("*"):
        if path.is_file():
            try:
                key = _decode_record_name(path.relative_to(root))
            except (ValueError, UnicodeDecodeError):
                continue  # not a record written by Snakemake
            records[key] = read_json(path)
    return records


# --- export / adopt ---------------------------------------------------------------


def _tracked(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p.rstrip("/") + "/") for p in prefixes)


def export_state(
    workdir: Path, results_dir: str, extra_prefixes: Iterable[str] = ("reports",)
) -> Path:
    """Write the records of every output under ``results_dir`` and ``reports/`` to the state file.

    Records are sorted by output path so an unchanged DAG exports the same bytes.
    """
    workdir = Path(workdir)
    prefixes = [results_dir, *extra_prefixes]
    records = {
        key: rec
        for key, rec in sorted(read_metadata(workdir).items())
        if _tracked(key, prefixes) and not rec.get("incomplete") and (workdir / key).exists()
    }
    target = workdir / state_path(results_dir)
    atomic_write_json(target, {"format": STATE_FORMAT, "records": records})
    log.info("exported %d Snakemake records to %s", len(records), target)
    return target


def _provenance_file(output: Path) -> Path | None:
    if output.is_dir():
        candidate = output / RECORD_NAME
    else:
        candidate = output.with_name(output.name + ".prov.json")
    return candidate if candidate.is_file() else None


def _inputs_match(workdir: Path, output: Path) -> bool | None:
    """True/False: the provenance record's input hashes (mis)match; None: no record."""
    record_file = _provenance_file(output)
    if record_file is None:
        return None
    inputs = read_json(record_file).get("inputs", {})
    for name, recorded in inputs.items():
        path = Path(name) if Path(name).is_absolute() else workdir / name
        if not path.exists() or tree_hash(path) != recorded:
            log.warning("not adopting %s: its input %s differs from the recorded one", output, name)
            return False
    return True


def _restamp(output: Path, when: float) -> None:
    targets = [output]
    if output.is_dir():
        carrier = output / TIMESTAMP_FILE
        carrier.touch(exist_ok=True)
        targets.insert(0, carrier)
    for target in targets:
        os.utime(target, (when, when))


def adopt_state(workdir: Path, results_dir: str, force: bool = False) -> dict[str, int]:
    """Adopt the exported records for outputs that have none here (see module docstring).

    Returns counts: ``adopted``, ``kept`` (local record already there), ``rejected``
    (inputs differ), ``missing`` (output not present). No state file: nothing to do.
    """
    workdir = Path(workdir)
    source = workdir / state_path(results_dir)
    counts = {"adopted": 0, "kept": 0, "rejected": 0, "missing": 0}
    if not source.is_file():
        return counts
    stamp = workdir / STAMP_FILE
    digest = sha256_file(source)
    if not force and stamp.is_file() and read_json(stamp).get("state_sha256") == digest:
        return counts
    state = read_json(source)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ArtifactError(
            source, f"not a Snakemake state export (format {STATE_FORMAT} expected)"
        )
    records: dict[str, dict[str, Any]] = state.get("records", {})
    local = read_metadata(workdir)

    # dependency rank of each exported output: 1 + the highest rank among its inputs
    rank: dict[str, int] = {}

    def rank_of(key: str, seen: frozenset[str] = frozenset()) -> int:
        if key not in rank:
            deps = [
                i for i in records.get(key, {}).get("input", []) if i in records and i not in seen
            ]
            rank[key] = 1 + max((rank_of(d, seen | {key}) for d in deps), default=0)
        return rank[key]

    accepted: set[str] = set()
    for key in sorted(records, key=rank_of):
        output = workdir / key
        if not output.exists():
            counts["missing"] += 1
            continue
        if key in local:
            counts["kept"] += 1
            accepted.add(key)
            continue
        verdict = _inputs_match(workdir, output)
        if verdict is None:
            inputs = records[key].get("input", [])
            verdict = all(i in accepted for i in inputs) and bool(inputs)
        if not verdict:
            counts["rejected"] += 1
            continue
        record_file = _record_file(workdir, key)
        record_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(record_file, records[key])
        accepted.add(key)
        counts["adopted"] += 1

    now = time.time()
    for key in sorted(accepted - set(local), key=rank_of):
        _restamp(workdir / key, now + rank_of(key))
    atomic_write_json(stamp, {"state_sha256": digest, **counts})
    if counts["adopted"] or counts["rejected"]:
        log.info("adopted Snakemake records from %s: %s", source, counts)
    return counts
