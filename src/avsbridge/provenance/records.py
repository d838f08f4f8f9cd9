"""Provenance records written beside every artifact family.

Each artifact folder gets ``_provenance.json``: the code version, the rule and
its params, the backend identity (model ids, weight sha256s, prompts), and the
content hash of every input. ``avsbridge audit`` walks these records back from a
report cell to the audio and frames, re-hashing files on the way.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from avsbridge.io import atomic_write_json, content_key, read_json, sha256_file

RECORD_NAME = "_provenance.json"
SECRET_MARKERS = ("api_key", "apikey", "authorization", "token", "secret", "password")


@functools.cache
def code_version(repo: str | None = None) -> dict[str, Any]:
    """git commit and dirty flag of the checkout the code runs from."""
    cwd = repo or str(Path(__file__).resolve().parents[3])
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "src", "workflow"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return {"git_commit": commit, "dirty": bool(status.strip())}
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": None, "dirty": None}


def scrub(obj: Any) -> Any:
    """Drop any key that looks like a secret, recursively (defence in depth)."""
    if isinstance(obj, dict):
        return {
            k: scrub(v)
            for k, v in obj.items()
            if not any(marker in str(k).lower() for marker in SECRET_MARKERS) or k == "api_key_env"
        }
    if isinstance(obj, list | tuple):
        return [scrub(v) for v in obj]
    return obj


def tree_hashes(path: Path) -> dict[str, str]:
    """sha256 of every file below ``path`` (or of ``path`` itself), by relative path."""
    if path.is_file():
        return {path.name: sha256_file(path)}
    return {
        str(p.relative_to(path)): sha256_file(p)
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name != RECORD_NAME
    }


def tree_hash(path: Path) -> str:
    return content_key(tree_hashes(path))


def write_record(
    artifact: Path,
    *,
    rule: str,
    params: dict[str, Any],
    inputs: Iterable[Path],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the provenance record of ``artifact`` (a folder, or a file's sidecar)."""
    record = {
        "rule": rule,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "code": code_version(),
        "params": scrub(params),
        "inputs": {str(p): tree_hash(Path(p)) for p in inputs},
        "outputs": tree_hashes(artifact) if artifact.is_dir() else {artifact.name: sha256_file(artifact)},
    }
    if extra:
        record.update(scrub(extra))
    target = artifact / RECORD_NAME if artifact.is_dir() else artifact.with_name(artifact.name + ".prov.json")
    atomic_write_json(target, record)
    return record


def read_record(artifact: Path) -> dict[str, Any]:
    target = artifact / RECORD_NAME if artifact.is_dir() else artifact.with_name(artifact.name + ".prov.json")
    return read_json(target)


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in {"1", "true", "yes"}
