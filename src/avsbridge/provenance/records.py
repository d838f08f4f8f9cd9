"""Provenance records written beside every artifact family.

Each artifact folder gets ``_provenance.json``: the code version, the rule and
its params, the backend identity (model ids, weight sha256s, prompts), and the
content hash of every input. ``avsbridge audit`` walks these records back from a
report cell to the audio and frames, re-hashing files on the way.

Records are deterministic (no wall-clock field): a rerun of the same code on the
same inputs writes byte-identical artifacts, records included. When a job ran
lives in Snakemake's metadata and logs.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from avsbridge.io import atomic_write_json, content_key, read_json, sha256_file

RECORD_NAME = "_provenance.json"
# A job's run ledger (model calls, cache hits): it depends on what the shared caches held
# when the job ran, not on what the job produced, so hashes, records and byte-identity
# checks skip it like the record itself.
LEDGER_NAME = "_calls.json"
NOT_CONTENT = (RECORD_NAME, LEDGER_NAME)  # files of an artifact folder that no hash covers
SECRET_MARKERS = ("api_key", "apikey", "authorization", "secret", "password", "credential")
# "token" names a secret (hf_token, access_token) but also counts (max_new_tokens,
# prompt_tokens) that a record must keep: only a key *ending* in "token" is dropped.
_TOKEN_KEY = re.compile(r"(^|[_-])token$")


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


def _is_secret_key(key: str) -> bool:
    lower = key.lower()
    if lower == "api_key_env":  # the *name* of the variable holding the key, not the key
        return False
    return any(marker in lower for marker in SECRET_MARKERS) or bool(_TOKEN_KEY.search(lower))


def scrub(obj: Any) -> Any:
    """Drop any key that looks like a secret, recursively (defence in depth)."""
    if isinstance(obj, dict):
        return {k: scrub(v) for k, v in obj.items() if not _is_secret_key(str(k))}
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
        if p.is_file() and p.name not in NOT_CONTENT
    }


def tree_hash(path: Path) -> str:
    """One key over :func:`tree_hashes`: how a record pins an input (file or folder)."""
    return content_key(tree_hashes(path))


def record_path(artifact: Path) -> Path:
    """Where the record of ``artifact`` lives: inside a folder, beside a file."""
    artifact = Path(artifact)
    if artifact.is_dir():
        return artifact / RECORD_NAME
    return artifact.with_name(artifact.name + ".prov.json")


def write_record(
    artifact: Path,
    *,
    rule: str,
    params: dict[str, Any],
    inputs: Iterable[Path],
    extra: dict[str, Any] | None = None,
    siblings: Iterable[Path] = (),
) -> dict[str, Any]:
    """Write the provenance record of ``artifact`` (a folder, or a file's sidecar).

    ``siblings`` are further files one job wrote beside a file artifact (a report's
    .md/.json next to its .csv); their hashes join ``outputs`` so audit checks them.
    No timestamp: the record is a pure function of code, params and inputs.
    """
    artifact = Path(artifact)
    if artifact.is_dir():
        outputs = tree_hashes(artifact)
    else:
        outputs = {p.name: sha256_file(p) for p in (artifact, *map(Path, siblings))}
    record = {
        "rule": rule,
        "code": code_version(),
        "params": scrub(params),
        "inputs": {str(p): tree_hash(Path(p)) for p in inputs},
        "outputs": outputs,
    }
    if extra:
        record.update(scrub(extra))
    atomic_write_json(record_path(artifact), record)
    return record


def read_record(artifact: Path) -> dict[str, Any]:
    return read_json(record_path(artifact))


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in {"1", "true", "yes"}
