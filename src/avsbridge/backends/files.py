"""One digest for a model folder (transformers save dirs, hub snapshots, GGUF conversions).

Files in a Hugging Face cache snapshot are links to blobs named by their sha256,
so those hashes come for free; other files are hashed. Names and contents both
count: a renamed or changed file changes the digest, and with it every cache
key and provenance record that names the model.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from avsbridge.io import ArtifactError, content_key, sha256_file

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
MODEL_FILE_SUFFIXES = (
    ".json",
    ".safetensors",
    ".bin",
    ".pth",
    ".pt",
    ".ckpt",
    ".tflite",
    ".gguf",
    ".model",
    ".txt",
    ".jinja",
    ".tiktoken",
)


def model_folder_digest(folder: os.PathLike[str] | str) -> str:
    """sha256 over (relative path, file sha256) of a folder's model files, recursively."""
    folder = Path(folder)
    hashes: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or not path.name.endswith(MODEL_FILE_SUFFIXES):
            continue
        if "__pycache__" in path.parts or ".cache" in path.relative_to(folder).parts:
            continue
        blob = Path(os.path.realpath(path)).name
        hashes[path.relative_to(folder).as_posix()] = (
            blob if _HEX64.match(blob) else sha256_file(path)
        )
    if not hashes:
        raise ArtifactError(folder, f"no model files ({', '.join(MODEL_FILE_SUFFIXES)}) found")
    return content_key(hashes)


def hf_snapshot_dir(
    model_id: str,
    revision: str | None,
    cache_dir: os.PathLike[str] | str | None = None,
    local_files_only: bool = False,
) -> Path:
    """Local folder of a hub model at a revision (cache first; HF_HUB_OFFLINE=1 never downloads).

    ``local_files_only``: never ask the hub (a backend that must not download says so).
    """
    from huggingface_hub import snapshot_download

    return Path(
        snapshot_download(
            repo_id=model_id,
            revision=revision,
            cache_dir=None if cache_dir is None else str(cache_dir),
            local_files_only=local_files_only,
        )
    )


def hf_cache_snapshot_path(
    model_id: str, revision: str, cache_dir: os.PathLike[str] | str | None = None
) -> Path:
    """Where the hub cache keeps ``model_id`` at commit ``revision`` (for error messages)."""
    from huggingface_hub import constants

    root = Path(cache_dir) if cache_dir is not None else Path(constants.HF_HUB_CACHE)
    return root / f"models--{model_id.replace('/', '--')}" / "snapshots" / revision
