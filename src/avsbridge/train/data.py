"""Training samples: (frames, audio features, pseudo-label masks) per clip, as tensors.

A sample is one clip: its T frames resized to the student's input size and
normalised, its [T, D] audio features (the audio_features stage) and its T
masks -- the teacher's pseudo labels (the segment stage's ``{slug}.{k}.png``
probability maps, binarised at 0.5) or, for the ground-truth upper bound, the
benchmark masks (frames without a GT mask are marked invalid). Every source
file is located before any training starts, so a missing shard fails at once
with the clip and the folders searched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from avsbridge.data.records import Clip
from avsbridge.io import ArtifactError, read_image, read_prob_png
from avsbridge.train.audio_features import feature_name, read_features
from avsbridge.train.base import Batch

BOXES_SUFFIX = ".boxes.json"  # one per clip in every segment shard (segment.run.boxes_name)


class MissingInputError(ArtifactError):
    """Some clips have no pseudo labels / features in the given shard folders."""


@dataclass(frozen=True)
class Sample:
    clip: Clip
    features: Path  # the shard folder holding {slug}.npy
    labels: Path | None  # the shard folder holding the pseudo labels; None: GT masks


def index_by_slug(folders: Sequence[Path], suffix: str) -> dict[str, Path]:
    """slug -> the shard folder holding ``{slug}{suffix}``."""
    found: dict[str, Path] = {}
    for folder in folders:
        for path in Path(folder).glob(f"*{suffix}"):
            found[path.name.removesuffix(suffix)] = Path(folder)
    return found


def _missing(what: str, clips: list[Clip], folders: Sequence[Path]) -> MissingInputError:
    where = ", ".join(str(f) for f in folders) or "(no folders given)"
    names = ", ".join(c.id for c in clips[:5]) + (
        f" (+{len(clips) - 5} more)" if len(clips) > 5 else ""
    )
    first = Path(folders[0]) if folders else Path(".")
    return MissingInputError(
        first, f"{what} missing for {len(clips)} clip(s): {names}; searched {where}"
    )


def make_samples(
    clips: Sequence[Clip],
    feature_dirs: Sequence[Path],
    label_dirs: Sequence[Path] | None = None,
    ground_truth: bool = False,
) -> list[Sample]:
    """Locate every clip's features and labels: pseudo labels in ``label_dirs``, else the
    benchmark masks (``ground_truth``), else none (prediction)."""
    features = index_by_slug(feature_dirs, ".npy")
    lost = [c for c in clips if c.slug not in features]
    if lost:
        raise _missing("audio features", lost, feature_dirs)
    labels: dict[str, Path] = {}
    if label_dirs is not None:
        labels = index_by_slug(label_dirs, BOXES_SUFFIX)
        lost = [c for c in clips if c.slug not in labels]
        if lost:
            raise _missing("pseudo labels", lost, label_dirs)
        for c in clips:  # every frame's mask, not just the clip's boxes file
            for k in range(1, c.n_frames + 1):
                if not (labels[c.slug] / f"{c.slug}.{k}.png").is_file():
                    raise ArtifactError(
                        labels[c.slug] / f"{c.slug}.{k}.png",
                        f"pseudo label of frame {k} of clip {c.id!r} is missing",
                    )
    elif ground_truth:
        lost = [c for c in clips if not c.annotated]
        if lost:
            raise _missing("ground-truth masks", lost, [])
    return [Sample(c, features[c.slug], labels.get(c.slug)) for c in clips]


def _resize(image: np.ndarray, size: int, resample: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size), resample=resample))


class ClipDataset(torch.utils.data.Dataset):
    """Samples as tensors; ``gt_reader`` reads a benchmark mask (GT training only)."""

    def __init__(
        self,
        samples: Sequence[Sample],
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        audio_dim: int,
        gt_reader: Callable[[Path], np.ndarray] | None = None,
        with_masks: bool = True,
    ) -> None:
        self.samples = list(samples)
        self.size = int(image_size)
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, 1, 3)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, 1, 3)
        self.audio_dim = int(audio_dim)
        self.gt_reader = gt_reader
        self.with_masks = with_masks

    def __len__(self) -> int:
        return len(self.samples)

    def frames(self, clip: Clip) -> torch.Tensor:
        out = []
        for path in clip.frames:
            rgb = _resize(read_image(path), self.size, Image.BILINEAR).astype(np.float32) / 255.0
            out.append(((rgb - self.mean) / self.std).transpose(2, 0, 1))
        return torch.from_numpy(np.stack(out))

    def masks(self, sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
        clip = sample.clip
        masks, valid = [], []
        for k in range(1, clip.n_frames + 1):
            if sample.labels is not None:
                prob = read_prob_png(sample.labels / f"{clip.slug}.{k}.png")
                binary, ok = (prob >= 0.5).astype(np.uint8), True
            else:
                gt = clip.masks[k - 1]
                ok = gt is not None and self.gt_reader is not None
                binary = (
                    (self.gt_reader(gt) > 0.5).astype(np.uint8)  # type: ignore[misc]
                    if ok
                    else np.zeros((self.size, self.size), np.uint8)
                )
            masks.append(_resize(binary * 255, self.size, Image.NEAREST) > 127)
            valid.append(ok)
        return (
            torch.from_numpy(np.stack(masks)[:, None].astype(np.float32)),
            torch.tensor(valid, dtype=torch.bool),
        )

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = self.samples[index]
        item = {
            "frames": self.frames(sample.clip),
            "audio": torch.from_numpy(read_features(sample.features, sample.clip, self.audio_dim)),
        }
        if self.with_masks:
            item["masks"], item["valid"] = self.masks(sample)
        return item


def collate(items: list[dict[str, torch.Tensor]]) -> Batch:
    frames = torch.stack([i["frames"] for i in items])
    audio = torch.stack([i["audio"] for i in items])
    masks = torch.stack([i["masks"] for i in items]) if "masks" in items[0] else None
    extra = {"valid": torch.stack([i["valid"] for i in items])} if "valid" in items[0] else {}
    return Batch(frames, audio, masks, extra)


__all__ = ["ClipDataset", "MissingInputError", "Sample", "collate", "feature_name", "make_samples"]
