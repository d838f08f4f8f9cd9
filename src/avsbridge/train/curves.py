"""Training curves of checkpoint folders: the report's per-student figure.

Reads each folder's ``metrics.json`` (one entry per epoch, written by
:mod:`avsbridge.train.loop`) and plots training loss and validation mIoU per
epoch, one line per checkpoint. PNG metadata carries no version or date, so the
same checkpoints give the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from avsbridge.io import ArtifactError, atomic_path, read_json
from avsbridge.train import checkpoint as ck


def read_history(folder: Path) -> list[dict[str, float]]:
    history = read_json(Path(folder) / ck.METRICS)
    if not isinstance(history, list) or not all(
        isinstance(e, dict) and "epoch" in e for e in history
    ):
        raise ArtifactError(Path(folder) / ck.METRICS, "not a per-epoch metrics list")
    return history


def plot_training_curves(checkpoints: Mapping[str, Path], out_png: Path, title: str = "") -> None:
    """One PNG: train/loss (left) and val/miou (right) per epoch for every labelled folder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    for label, folder in checkpoints.items():
        history = read_history(folder)
        epochs = [e["epoch"] for e in history]
        left.plot(epochs, [e.get("train/loss", float("nan")) for e in history], label=label)
        if any("val/miou" in e for e in history):
            right.plot(epochs, [e.get("val/miou", float("nan")) for e in history], label=label)
    left.set(xlabel="epoch", ylabel="training loss", title="train/loss")
    right.set(xlabel="epoch", ylabel="mIoU (held-out clips, their labels)", title="val/miou")
    right.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
