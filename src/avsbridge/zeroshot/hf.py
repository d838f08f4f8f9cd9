"""Transformers model folders for the zero-shot backends: a local folder or a hub snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Hub commits the defaults load (a hub id with no ``revision`` option gets its pin here, so
# the paper profile never follows a moving ``main``). Found on the hub's tree pages.
PINNED_REVISIONS: dict[str, str] = {
    "Salesforce/blip-image-captioning-base": "82a37760796d32b1411fe092ab5d4e227313294b",
    "laion/clap-htsat-unfused": "8fa0f1c6d0433df6e97c127f64b2a1d6c0dcda8a",
    "openai/clip-vit-base-patch16": "57c216476eefef5ab752ec549e440a49ae4ae5f3",
    "CIDAS/clipseg-rd64-refined": "999e0328d9e10b484360c477313983f9afdd7050",
}


def pinned_revision(model: str, revision: str | None) -> str | None:
    """``revision`` when given, else the pinned commit of a known hub id (None otherwise)."""
    return revision or PINNED_REVISIONS.get(model)


def model_folder(model: str, revision: str | None) -> tuple[Path, dict[str, Any]]:
    """(folder, provenance): a ``save_pretrained`` folder as is, else the hub snapshot at
    ``revision`` (``HF_HUB_OFFLINE=1`` never downloads); provenance = id@revision + digest."""
    from avsbridge.backends import hf_snapshot_dir, model_folder_digest

    path = Path(model).expanduser()
    if path.is_dir():
        return path, {"path": path.name, "sha256": model_folder_digest(path)}
    revision = pinned_revision(model, revision)
    folder = hf_snapshot_dir(model, revision)
    return folder, {"id": model, "revision": revision, "sha256": model_folder_digest(folder)}
