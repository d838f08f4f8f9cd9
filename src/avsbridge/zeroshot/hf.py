"""Transformers model folders for the zero-shot backends: a local folder or a hub snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def model_folder(model: str, revision: str | None) -> tuple[Path, dict[str, Any]]:
    """(folder, provenance): a ``save_pretrained`` folder as is, else the hub snapshot at
    ``revision`` (``HF_HUB_OFFLINE=1`` never downloads); provenance = id@revision + digest."""
    from avsbridge.backends import hf_snapshot_dir, model_folder_digest

    path = Path(model).expanduser()
    if path.is_dir():
        return path, {"path": path.name, "sha256": model_folder_digest(path)}
    folder = hf_snapshot_dir(model, revision)
    return folder, {"id": model, "revision": revision, "sha256": model_folder_digest(folder)}
