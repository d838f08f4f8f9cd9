"""The checkpoint folder a train job writes, and loading it back with checks.

Layout (one DVC-tracked folder per student x teacher x dataset x seed)::

    model.safetensors   final weights (metadata: student name)
    last_state.pt       the last epoch's full training state (model, optimiser, RNG, history)
    config.json         the resolved training config (student, options, hyper-parameters)
    metrics.json        per-epoch metrics (train loss parts, validation mIoU)
    dvclive/            the same metrics as DVCLive writes them (dvc exp show / dvc plots)
    _summary.json       stage summary (identity, epochs, weights sha256)

While training, the resumable state lives beside the folder in
``.{name}.work/`` (Snakemake deletes a job's declared output before re-running
it; this sibling survives a ``kill -9`` and is removed once the folder is
complete).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from avsbridge.io import ArtifactError, read_json

WEIGHTS = "model.safetensors"
STATE = "last_state.pt"
CONFIG = "config.json"
METRICS = "metrics.json"
DVCLIVE = "dvclive"
SUMMARY = "_summary.json"


class CheckpointError(ArtifactError):
    """A checkpoint folder that is missing parts, corrupt, or of another student."""


def work_dir(out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    return out_dir.with_name(f".{out_dir.name}.work")


def read_config(folder: Path, student: str | None = None) -> dict[str, Any]:
    """``config.json`` of a checkpoint folder, checked to be ``student``'s."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(folder, "checkpoint folder is missing")
    try:
        config = read_json(folder / CONFIG)
    except ArtifactError as exc:
        raise CheckpointError(exc.path, f"checkpoint config: {exc.problem}") from None
    if not isinstance(config, dict) or "student" not in config:
        raise CheckpointError(folder / CONFIG, "not a training config (no 'student')")
    if student is not None and config["student"] != student:
        raise CheckpointError(
            folder / CONFIG,
            f"checkpoint of student {config['student']!r}, not {student!r}",
        )
    return config


def load_weights(folder: Path, model: Any, student: str) -> dict[str, Any]:
    """Load ``model.safetensors`` into ``model``; every failure names the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config = read_config(folder, student)
    path = Path(folder) / WEIGHTS
    if not path.is_file():
        raise CheckpointError(path, "final weights are missing")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(path, f"corrupt safetensors file ({exc})") from None
    if meta.get("student") not in (None, student):
        raise CheckpointError(path, f"weights of student {meta.get('student')!r}, not {student!r}")
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        raise CheckpointError(
            path,
            "weights do not fit the configured model "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}, other shape {shapes[:3]}); "
            "was it trained with other options?",
        )
    model.load_state_dict(state)
    return config


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"
