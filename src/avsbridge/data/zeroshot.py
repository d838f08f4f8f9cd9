"""Per-frame test lists of the zero-shot protocol (SSLalign / BAaV): S4, MS3, VPO-SS, IS3.

The published lists (kaistmm/SSLalignment ``metadata/*_seg.json``) hold the
authors' absolute paths, e.g. ``/mnt/lynx3/datasets/AVSbench/Single-source/...``.
Only the tail after the dataset root's folder name is meaningful, so each path
is cut after a marker (``AVSbench/``, ``COCO_AV/``, ``synthetic3241/``) and
re-rooted under the caller's dataset root.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from avsbridge.io import ArtifactError, read_json

# Marker (dataset folder name + "/") of each published list, by file stem.
SSLALIGN_MARKERS: dict[str, str] = {
    "s4_seg": "AVSbench/",
    "ms3_seg": "AVSbench/",
    "vpo_ss_seg": "COCO_AV/",
    "vpo_ms_seg": "COCO_AV/",
    "synthetic3240_seg": "synthetic3241/",
}

_GT_KEYS = ("gt_box", "gt", "gt_mask")


@dataclass(frozen=True)
class FrameItem:
    """One evaluated frame: image, the clip's audio, the GT mask and the list's offset."""

    image: Path
    audio: Path
    gt: Path
    offset: int

    @property
    def clip_key(self) -> str:
        """Items of one clip share the audio file; its stem names the clip."""
        return self.audio.stem


def sslalign_marker(json_path: os.PathLike[str] | str) -> str:
    """The dataset-root marker of a published list, from its file name."""
    stem = Path(json_path).stem
    try:
        return SSLALIGN_MARKERS[stem]
    except KeyError:
        raise ValueError(
            f"no default marker for {stem!r}; pass one of {sorted(set(SSLALIGN_MARKERS.values()))}"
        ) from None


def _tail(value: object, marker: str, json_path: Path, index: int, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ArtifactError(json_path, f"item {index}: {key!r} is not a path string")
    unified = value.replace("\\", "/")
    at = unified.find(marker)
    if at < 0:
        raise ArtifactError(json_path, f"item {index}: {key} path {value!r} lacks {marker!r}")
    tail = unified[at + len(marker) :]
    parts = tail.split("/")
    if not tail or tail.startswith("/") or ".." in parts or "" in parts:
        raise ArtifactError(
            json_path, f"item {index}: {key} path {value!r} would escape the dataset root"
        )
    return tail


def load_sslalign_list(
    json_path: Path, dataset_root: Path, marker: str | None = None
) -> list[FrameItem]:
    """Read a per-frame JSON list and re-root every path under ``dataset_root``.

    ``marker`` is the dataset folder name the tail starts after (``AVSbench/``
    for S4/MS3, ``synthetic3241/`` for IS3, ``COCO_AV/`` for VPO); default: by
    file name. Never touches the media.
    """
    json_path = Path(json_path)
    dataset_root = Path(dataset_root)
    marker = marker if marker is not None else sslalign_marker(json_path)
    marker = marker.replace("\\", "/")
    if not marker.endswith("/"):
        marker += "/"
    data = read_json(json_path)
    if not isinstance(data, list):
        raise ArtifactError(json_path, "expected a JSON list of frame items")
    items: list[FrameItem] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise ArtifactError(json_path, f"item {index}: expected an object")
        gt_key = next((k for k in _GT_KEYS if k in entry), None)
        missing = [k for k in ("image", "audio") if k not in entry] + ([] if gt_key else ["gt_box"])
        if missing:
            raise ArtifactError(json_path, f"item {index}: missing key(s) {', '.join(missing)}")
        assert gt_key is not None
        image = _tail(entry["image"], marker, json_path, index, "image")
        first = seen.setdefault(image, index)
        if first != index:
            raise ArtifactError(
                json_path, f"item {index}: duplicate image {image!r} (first at item {first})"
            )
        offset = entry.get("offset", 0)
        if not isinstance(offset, int) or isinstance(offset, bool):
            raise ArtifactError(json_path, f"item {index}: offset {offset!r} is not an integer")
        items.append(
            FrameItem(
                image=dataset_root / image,
                audio=dataset_root / _tail(entry["audio"], marker, json_path, index, "audio"),
                gt=dataset_root / _tail(entry[gt_key], marker, json_path, index, gt_key),
                offset=offset,
            )
        )
    return items


def group_by_clip(items: Iterable[FrameItem]) -> dict[str, list[FrameItem]]:
    """Frames grouped per clip (same audio file), in first-seen order.

    The key is the audio file's stem (the clip name in every published list);
    two different audio files with one stem are an error, not a silent merge.
    """
    groups: dict[str, list[FrameItem]] = {}
    audio_of: dict[str, Path] = {}
    for item in items:
        key = item.clip_key
        known = audio_of.setdefault(key, item.audio)
        if known != item.audio:
            raise ValueError(f"clip key {key!r} names two audio files: {known} and {item.audio}")
        groups.setdefault(key, []).append(item)
    return groups
