"""The one record type every stage consumes: a clip with its frames, audio and masks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Clip:
    """One benchmark clip.

    ``masks[i]`` is None where frame ``i`` is not annotated (S4 train annotates
    frame 1 only). ``labels`` are the clip-level weak labels (category names).
    """

    id: str
    subset: str  # s4, ms3, avss-v1s, avss-v1m, avss-v2, v3, demo-s4, ...
    split: str  # train, val, test (or the V3 split name)
    category: str
    frames: tuple[Path, ...]
    audio: Path | None
    masks: tuple[Path | None, ...]
    fps: float = 1.0
    labels: tuple[str, ...] = field(default_factory=tuple)

    @property
    def slug(self) -> str:
        """File-name-safe id, unique within a benchmark (artifact file names)."""
        return self.id.replace("/", "__")

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    @property
    def annotated(self) -> list[int]:
        return [i for i, m in enumerate(self.masks) if m is not None]
