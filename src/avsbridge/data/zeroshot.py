"""Per-frame test lists of the zero-shot protocol (SSLalign / BAaV): S4, MS3, VPO-SS, IS3.

The published lists (kaistmm/SSLalignment ``metadata/*_seg.json``) hold the
authors' absolute paths, e.g. ``/mnt/lynx3/datasets/AVSbench/Single-source/...``.
Only the tail after the dataset root's folder name is meaningful, so each path
is cut after a marker (``AVSbench/``, ``COCO_AV/``, ``synthetic3241/``) and
re-rooted under the caller's dataset root.

On top of the generic :func:`load_sslalign_list`, the adapters of the BAaV tables
(:data:`ZEROSHOT_KINDS`) return :class:`ZeroShotSample` records and check each list's
own layout:

- ``is3``: ``synthetic3240_seg.json``; root = the ``synthetic3241/`` folder
  (``visual_frames/``, ``audio_wav/``, ``gt_masks/``). 6,480 samples = 3,240 images x
  their 2 sound sources; a sample's stem is ``{image}_{source}`` (the image name
  carries both classes, the suffix names the one that sounds), and image, audio and
  GT share it.
- ``s4-zeroshot``: ``s4_seg.json``; root = the AVSBench root (``Single-source/``).
  3,700 samples = the 740 test clips x frames 1..5, every frame with its clip's
  whole audio file.
- ``vpo-ss``: ``vpo_ss_seg.json``; root = the ``COCO_AV/`` folder
  (``visual_frames/``, ``audio_wav/``, ``gray_masks/``). 890 samples.

Why a record of its own rather than :class:`~avsbridge.data.records.Clip` with one
frame: a zero-shot sample is scored alone (one IoU per sample, no clip batches); it
hears the *whole* audio file, as BAaV's ``eval.py`` passes the wav path to the audio
models, whereas a Clip's audio is cut into one ``1/fps`` window per frame (a
one-frame Clip would hear only its first second); and IS3 pairs one image scene with
two different audios and GTs, which one Clip (one audio) cannot hold. The
``group`` field keeps what belongs together (an IS3 image's two pairs, an S4 clip's
five frames).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from avsbridge.data.records import Clip
from avsbridge.io import ArtifactError, read_image, read_json, read_wav

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


# --------------------------------------------------------------------------- BAaV datasets

ZEROSHOT_KINDS: tuple[str, ...] = ("is3", "s4-zeroshot", "vpo-ss")
#: File name of each kind's published list (kaistmm/SSLalignment ``metadata/``).
ZEROSHOT_LISTS: dict[str, str] = {
    "is3": "synthetic3240_seg.json",
    "s4-zeroshot": "s4_seg.json",
    "vpo-ss": "vpo_ss_seg.json",
}


@dataclass(frozen=True)
class ZeroShotSample:
    """One scored sample of the zero-shot tables: one image, one whole audio file, one GT.

    ``group`` ties samples of one scene together (IS3: the image's two sources; S4:
    the clip's frames; VPO-SS: the sample itself). ``source`` is the sounding class
    where the list names it (IS3 stem suffix, S4 category), else empty. ``frame`` is
    the S4 frame number (1..5). ``offset`` is the list's value, kept verbatim (BAaV's
    eval.py does not use it).
    """

    dataset: str
    id: str
    group: str
    image: Path
    audio: Path
    gt: Path
    source: str = ""
    frame: int | None = None
    offset: int = 0

    @property
    def slug(self) -> str:
        """File-name-safe id, unique within its dataset (artifact file names)."""
        return self.id.replace("/", "__")


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _stems_agree(item: FrameItem, index: int, json_path: Path) -> str:
    stems = {item.image.stem, item.audio.stem, item.gt.stem}
    if len(stems) != 1:
        raise ArtifactError(
            json_path,
            f"item {index}: image, audio and GT name different samples"
            f" ({item.image.name}, {item.audio.name}, {item.gt.name})",
        )
    return item.image.stem


def _check_folders(
    item: FrameItem, index: int, json_path: Path, root: Path, folders: tuple[str, str, str]
) -> None:
    for key, path, folder in zip(
        ("image", "audio", "gt"), (item.image, item.audio, item.gt), folders, strict=True
    ):
        if path.parent != root / folder:
            raise ArtifactError(
                json_path, f"item {index}: {key} {_rel(path, root)!r} is not directly in {folder}/"
            )


def _unique(samples: list[ZeroShotSample], json_path: Path) -> list[ZeroShotSample]:
    seen: dict[str, int] = {}
    for index, sample in enumerate(samples):
        first = seen.setdefault(sample.id, index)
        if first != index:
            raise ArtifactError(
                json_path,
                f"item {index}: duplicate sample id {sample.id!r} (first at item {first})",
            )
    return samples


def load_is3(json_path: Path, root: Path, validate: bool = False) -> list[ZeroShotSample]:
    """IS3 pairs; ``root`` replaces the authors' ``.../synthetic3241/`` folder."""
    json_path, root = Path(json_path), Path(root)
    samples = []
    for index, item in enumerate(load_sslalign_list(json_path, root, "synthetic3241/")):
        _check_folders(item, index, json_path, root, ("visual_frames", "audio_wav", "gt_masks"))
        stem = _stems_agree(item, index, json_path)
        image_name, sep, source = stem.rpartition("_")
        if not sep or not image_name or not source:
            raise ArtifactError(
                json_path, f"item {index}: IS3 name {stem!r} is not {{image}}_{{source}}"
            )
        samples.append(
            ZeroShotSample(
                dataset="is3",
                id=stem,
                group=image_name,
                image=item.image,
                audio=item.audio,
                gt=item.gt,
                source=source,
                offset=item.offset,
            )
        )
    return _validated_samples(_unique(samples, json_path), validate)


_S4_FRAME = re.compile(
    r"^Single-source/s4_data/(?P<kind>visual_frames|gt_masks)/test/(?P<cat>[^/]+)/"
    r"(?P<clip>[^/]+)/(?P=clip)_(?P<frame>[1-5])\.png$"
)
_S4_AUDIO = re.compile(
    r"^Single-source/s4_data/audio_wav/test/(?P<cat>[^/]+)/(?P<clip>[^/]+)\.wav$"
)


def load_s4_zeroshot(json_path: Path, root: Path, validate: bool = False) -> list[ZeroShotSample]:
    """AVSBench-S4 test frames as single samples; ``root`` holds ``Single-source/``."""
    json_path, root = Path(json_path), Path(root)
    samples = []
    for index, item in enumerate(load_sslalign_list(json_path, root, "AVSbench/")):
        image = _S4_FRAME.match(_rel(item.image, root))
        gt = _S4_FRAME.match(_rel(item.gt, root))
        audio = _S4_AUDIO.match(_rel(item.audio, root))
        if not (image and image["kind"] == "visual_frames"):
            raise ArtifactError(
                json_path,
                f"item {index}: image {_rel(item.image, root)!r} is not an S4 test frame"
                " (Single-source/s4_data/visual_frames/test/{category}/{clip}/{clip}_{1..5}.png)",
            )
        key = (image["cat"], image["clip"])
        if not (
            gt
            and gt["kind"] == "gt_masks"
            and (gt["cat"], gt["clip"], gt["frame"]) == (*key, image["frame"])
        ):
            raise ArtifactError(
                json_path,
                f"item {index}: GT {_rel(item.gt, root)!r} is not the mask of {_rel(item.image, root)!r}",
            )
        if not (audio and (audio["cat"], audio["clip"]) == key):
            raise ArtifactError(
                json_path,
                f"item {index}: audio {_rel(item.audio, root)!r} is not the wav of clip {image['clip']!r}",
            )
        frame = int(image["frame"])
        samples.append(
            ZeroShotSample(
                dataset="s4-zeroshot",
                id=f"{image['clip']}_{frame}",
                group=image["clip"],
                image=item.image,
                audio=item.audio,
                gt=item.gt,
                source=image["cat"],
                frame=frame,
                offset=item.offset,
            )
        )
    return _validated_samples(_unique(samples, json_path), validate)


def load_vpo_ss(json_path: Path, root: Path, validate: bool = False) -> list[ZeroShotSample]:
    """VPO-SS (single-source) samples; ``root`` replaces the authors' ``.../COCO_AV/`` folder."""
    json_path, root = Path(json_path), Path(root)
    samples = []
    for index, item in enumerate(load_sslalign_list(json_path, root, "COCO_AV/")):
        _check_folders(item, index, json_path, root, ("visual_frames", "audio_wav", "gray_masks"))
        stem = _stems_agree(item, index, json_path)
        samples.append(
            ZeroShotSample(
                dataset="vpo-ss",
                id=stem,
                group=stem,
                image=item.image,
                audio=item.audio,
                gt=item.gt,
                offset=item.offset,
            )
        )
    return _validated_samples(_unique(samples, json_path), validate)


_LOADERS = {"is3": load_is3, "s4-zeroshot": load_s4_zeroshot, "vpo-ss": load_vpo_ss}


def load_zeroshot(
    kind: str, root: Path, list_path: Path, validate: bool = False
) -> list[ZeroShotSample]:
    """One entry point for rules: ``kind`` in :data:`ZEROSHOT_KINDS`, the dataset root, its list."""
    try:
        loader = _LOADERS[kind.lower()]
    except KeyError:
        raise ValueError(
            f"unknown zero-shot dataset kind {kind!r}; expected one of {ZEROSHOT_KINDS}"
        ) from None
    return loader(Path(list_path), Path(root), validate=validate)


def validate_sample(sample: ZeroShotSample) -> None:
    """Check a sample's media: image and GT decode, audio is a readable wav (errors name it)."""
    read_image(sample.image, mode="RGB")
    read_image(sample.gt, mode="L")
    read_wav(sample.audio)


def _validated_samples(samples: list[ZeroShotSample], validate: bool) -> list[ZeroShotSample]:
    if validate:
        for sample in samples:
            validate_sample(sample)
    return samples


def group_samples(samples: Iterable[ZeroShotSample]) -> dict[str, list[ZeroShotSample]]:
    """Samples per ``group`` (IS3 image, S4 clip), in first-seen order."""
    groups: dict[str, list[ZeroShotSample]] = {}
    for sample in samples:
        groups.setdefault(sample.group, []).append(sample)
    return groups


def samples_from_clips(clips: Sequence[Clip], dataset: str) -> list[ZeroShotSample]:
    """Every annotated frame of ``clips`` as a single sample with its clip's whole audio.

    For benchmarks laid out as clips (the demo S4 clips) scored under the zero-shot
    protocol; un-annotated frames are skipped, a clip without audio is an error.
    """
    samples = []
    for clip in clips:
        if clip.audio is None:
            raise ValueError(f"clip {clip.id!r} has no audio file: no zero-shot sample")
        for k in clip.annotated:
            mask = clip.masks[k]
            assert mask is not None
            samples.append(
                ZeroShotSample(
                    dataset=dataset,
                    id=f"{clip.id}_{k + 1}",
                    group=clip.id,
                    image=clip.frames[k],
                    audio=clip.audio,
                    gt=mask,
                    source=clip.category,
                    frame=k + 1,
                )
            )
    return samples
