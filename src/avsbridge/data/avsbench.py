"""Adapters for the official AVSBench on-disk layouts: S4, MS3, AVSS and the V3 splits.

Every adapter reads only the metadata CSV unless ``validate=True``: the DAG is
built over the real split lists (thousands of clips) before any media exists,
so touching media at load time would make planning slow and would fail on
placeholder trees. Metadata-level problems (unknown split, duplicate id, a name
that would escape the dataset root) are always errors, because a wrong list
silently changes what a reported number means.

Layouts (relative to the root a caller passes in):

- S4: ``Single-source/s4_meta_data.csv`` and ``Single-source/s4_data/
  {visual_frames,gt_masks}/{split}/{category}/{name}/{name}_{1..5}.png``,
  ``audio_wav/{split}/{category}/{name}.wav``. Train annotates frame 1 only.
- MS3: ``Multi-sources/ms3_meta_data.csv``, ``ms3_data/visual_frames/{name}/
  {name}.mp4_{1..5}.png``, ``gt_masks/{split}/{name}/{name}_{k}.png``,
  ``audio_wav/{split}/{name}.wav``. All 5 frames annotated in every split.
- AVSS: ``metadata.csv`` (vid,uid,s_min,s_sec,a_obj,split,label),
  ``{label}/{uid}/frames/{i}.jpg``, ``labels_rgb/{i}.png`` (i from 0),
  ``audio.wav``, ``label2idx.json``; v1s/v1m 5 frames, v2 10 frames.
- V3: split files with the AVSS columns, media in the AVSS tree.
"""

from __future__ import annotations

import csv
import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.data.records import Clip
from avsbridge.io import ArtifactError, read_image, read_json, read_wav

SPLITS: tuple[str, ...] = ("train", "val", "test")
AVSS_SUBSETS: tuple[str, ...] = ("v1s", "v1m", "v2")
AVSS_FRAMES: dict[str, int] = {"v1s": 5, "v1m": 5, "v2": 10}
AVSS_NUM_CLASSES = 71
BENCHMARK_KINDS: tuple[str, ...] = ("s4", "ms3", "avss", "v3")
V3_SPLIT_FILES: tuple[str, ...] = (
    "meta_v3_seen",
    "meta_v3_seen_train",
    "meta_v3_seen_val",
    "meta_v3_unseen",
    "v3_1_shot/train",
    "v3_1_shot/test",
    "v3_3_shot/train",
    "v3_3_shot/test",
    "v3_5_shot/train",
    "v3_5_shot/test",
)

S4_META = Path("Single-source") / "s4_meta_data.csv"
MS3_META = Path("Multi-sources") / "ms3_meta_data.csv"
AVSS_META = Path("metadata.csv")
AVSS_LABEL2IDX = Path("label2idx.json")

_OBJECT_FRAMES = 5
_KSHOT_DIR = re.compile(r"^v3_\d+_shot$")


class AudioShortWarning(UserWarning):
    """Audio shorter than its frames: padded the way the official preprocessing does."""


# --------------------------------------------------------------------------- metadata CSV


@dataclass(frozen=True)
class MetaRow:
    """One data row of a metadata CSV, with where it came from (for error messages)."""

    number: int  # 1-based data row number (the header is row 0)
    line: int  # line number in the file
    values: dict[str, str]

    @property
    def where(self) -> str:
        return f"row {self.number} (line {self.line})"


def read_metadata_csv(path: Path) -> tuple[list[str], list[MetaRow]]:
    """Read a metadata CSV into (header, rows); every problem names the file and row."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(path, "metadata file is missing")
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise ArtifactError(path, "metadata file is empty (no header row)")
            header = [h.strip() for h in header]
            if not any(header):
                raise ArtifactError(path, "metadata header row is empty")
            rows: list[MetaRow] = []
            for fields in reader:
                if not fields or all(not f.strip() for f in fields):
                    continue
                number = len(rows) + 1
                if len(fields) != len(header):
                    raise ArtifactError(
                        path,
                        f"row {number} (line {reader.line_num}): {len(fields)} fields, "
                        f"header has {len(header)}",
                    )
                values = {h: f.strip() for h, f in zip(header, fields, strict=True)}
                rows.append(MetaRow(number, reader.line_num, values))
    except UnicodeDecodeError as exc:
        raise ArtifactError(path, f"metadata is not UTF-8 text ({exc})") from None
    except csv.Error as exc:
        raise ArtifactError(path, f"malformed CSV ({exc})") from None
    return header, rows


def _column(
    header: Sequence[str], names: Iterable[str], meta: Path, *, required: bool
) -> str | None:
    """Pick the first of ``names`` present in the header (case-insensitive)."""
    lowered = {h.lower(): h for h in header}
    for name in names:
        if name in lowered:
            return lowered[name]
    if required:
        wanted = " or ".join(names)
        raise ArtifactError(meta, f"header {list(header)} has no column {wanted}")
    return None


def _safe_component(value: str, meta: Path, row: MetaRow, what: str) -> str:
    """A metadata value used as one path component; never lets it leave the root."""
    if not value:
        raise ArtifactError(meta, f"{row.where}: empty {what}")
    unified = value.replace("\\", "/")
    if unified.startswith("/") or re.match(r"^[A-Za-z]:", value) or ".." in unified.split("/"):
        raise ArtifactError(
            meta,
            f"{row.where}: {what} {value!r} would escape the dataset root (absolute path or '..')",
        )
    if "/" in unified or value in (".",) or "\x00" in value:
        raise ArtifactError(
            meta, f"{row.where}: {what} {value!r} must be a single file-name component"
        )
    return value


def _check_split(value: str, meta: Path, row: MetaRow, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ArtifactError(
            meta, f"{row.where}: unknown split {value!r} (expected one of {', '.join(allowed)})"
        )
    return value


def _check_unique(seen: dict[str, int], clip_id: str, meta: Path, row: MetaRow) -> None:
    first = seen.setdefault(clip_id, row.number)
    if first != row.number:
        raise ArtifactError(meta, f"{row.where}: duplicate id {clip_id!r} (first at row {first})")


def _want_split(split: str | None) -> str | None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return split


# --------------------------------------------------------------------------- S4 / MS3


def _object_rows(meta: Path) -> tuple[list[str], list[tuple[MetaRow, str, str]]]:
    """Header and every row of an S4/MS3 CSV as (row, name, split), name/split/unique checked."""
    header, rows = read_metadata_csv(meta)
    name_col = _column(header, ("name", "video_name", "vid"), meta, required=False) or header[0]
    split_col = _column(header, ("split",), meta, required=True)
    assert split_col is not None
    seen: dict[str, int] = {}
    checked: list[tuple[MetaRow, str, str]] = []
    for row in rows:
        name = _safe_component(row.values[name_col], meta, row, "name")
        row_split = _check_split(row.values[split_col], meta, row, SPLITS)
        _check_unique(seen, name, meta, row)
        checked.append((row, name, row_split))
    return header, checked


def _media_dirs(base: Path) -> tuple[Path, Path, Path]:
    """Frames, GT masks and audio folders of an AVSBench-object subset."""
    return base / "visual_frames", base / "gt_masks", base / "audio_wav"


def _validated(clips: list[Clip], validate: bool, palette_root: Path | None = None) -> list[Clip]:
    """``clips``, each checked on disk when ``validate`` (AVSS masks against the root's palette)."""
    if validate:
        palette = avss_root_palette(palette_root) if palette_root is not None else None
        for clip in clips:
            validate_clip(clip, palette=palette)
    return clips


def load_s4(
    root: Path,
    split: str | None = None,
    validate: bool = False,
    metadata: Path | None = None,
    subset_name: str = "s4",
) -> list[Clip]:
    """AVSBench-object single-source clips; ``root`` holds ``Single-source/``.

    ``metadata`` overrides where the CSV is read from (default
    ``root/Single-source/s4_meta_data.csv``); media paths always follow ``root``.
    ``subset_name`` labels the clips (``demo-s4`` for the demo benchmark, which
    uses the same layout).
    """
    root = Path(root)
    want = _want_split(split)
    meta = Path(metadata) if metadata is not None else root / S4_META
    header, rows = _object_rows(meta)
    cat_col = _column(header, ("category",), meta, required=True)
    assert cat_col is not None
    frames_dir, masks_dir, audio_dir = _media_dirs(root / "Single-source" / "s4_data")
    clips: list[Clip] = []
    for row, name, row_split in rows:
        category = _safe_component(row.values[cat_col], meta, row, "category")
        if want is not None and row_split != want:
            continue
        clip_frames = frames_dir / row_split / category / name
        clip_masks = masks_dir / row_split / category / name
        n_masks = 1 if row_split == "train" else _OBJECT_FRAMES
        clips.append(
            Clip(
                id=name,
                subset=subset_name,
                split=row_split,
                category=category,
                frames=tuple(clip_frames / f"{name}_{k}.png" for k in range(1, _OBJECT_FRAMES + 1)),
                audio=audio_dir / row_split / category / f"{name}.wav",
                masks=tuple(
                    clip_masks / f"{name}_{k}.png" if k <= n_masks else None
                    for k in range(1, _OBJECT_FRAMES + 1)
                ),
                fps=1.0,
                labels=(category,),
            )
        )
    return _validated(clips, validate)


def load_ms3(
    root: Path,
    split: str | None = None,
    validate: bool = False,
    metadata: Path | None = None,
    subset_name: str = "ms3",
) -> list[Clip]:
    """AVSBench-object multi-source clips; ``root`` holds ``Multi-sources/``.

    MS3 has no clip label in the official CSV; a ``category``/``label`` column is
    used when present. ``metadata`` overrides the CSV location; ``subset_name``
    labels the clips (``demo-ms3`` for the demo benchmark).
    """
    root = Path(root)
    want = _want_split(split)
    meta = Path(metadata) if metadata is not None else root / MS3_META
    header, rows = _object_rows(meta)
    label_col = _column(header, ("category", "label"), meta, required=False)
    frames_dir, masks_dir, audio_dir = _media_dirs(root / "Multi-sources" / "ms3_data")
    clips: list[Clip] = []
    for row, name, row_split in rows:
        if want is not None and row_split != want:
            continue
        category = row.values[label_col] if label_col else ""
        clip_frames = frames_dir / name
        clip_masks = masks_dir / row_split / name
        clips.append(
            Clip(
                id=name,
                subset=subset_name,
                split=row_split,
                category=category,
                frames=tuple(
                    clip_frames / f"{name}.mp4_{k}.png" for k in range(1, _OBJECT_FRAMES + 1)
                ),
                audio=audio_dir / row_split / f"{name}.wav",
                masks=tuple(clip_masks / f"{name}_{k}.png" for k in range(1, _OBJECT_FRAMES + 1)),
                fps=1.0,
                labels=_split_objects(category),
            )
        )
    return _validated(clips, validate)


# --------------------------------------------------------------------------- AVSS palette


def avss_palette(n_classes: int = AVSS_NUM_CLASSES) -> np.ndarray:
    """The official AVSBench colour palette: class id ``j`` -> RGB, as (n, 3) uint8.

    Same bit-interleaving as the official ``_getpallete`` (PASCAL-VOC style), so
    colour label PNGs of AVSBench-semantic map back to the official class ids.
    """
    palette = np.zeros((n_classes, 3), dtype=np.uint8)
    for j in range(n_classes):
        lab, i = j, 0
        r = g = b = 0
        while lab > 0:
            r |= ((lab >> 0) & 1) << (7 - i)
            g |= ((lab >> 1) & 1) << (7 - i)
            b |= ((lab >> 2) & 1) << (7 - i)
            i += 1
            lab >>= 3
        palette[j] = (r, g, b)
    return palette


def avss_class_map(root: Path) -> dict[str, int]:
    """``label2idx.json`` of an AVSS root: class name -> class id (0 = background)."""
    path = Path(root) / AVSS_LABEL2IDX
    data = read_json(path)
    if not isinstance(data, dict) or not data:
        raise ArtifactError(path, "expected a non-empty JSON object {class name: class id}")
    mapping: dict[str, int] = {}
    for name, idx in data.items():
        if not isinstance(idx, int) or isinstance(idx, bool) or idx < 0:
            raise ArtifactError(path, f"class {name!r} has id {idx!r}; expected an int >= 0")
        mapping[str(name)] = idx
    ids = sorted(mapping.values())
    if ids != list(range(len(ids))):
        raise ArtifactError(path, f"class ids must be 0..{len(ids) - 1} without gaps or repeats")
    return mapping


def avss_root_palette(root: Path) -> np.ndarray:
    """Palette sized by the root's ``label2idx.json`` (71 classes in the official release)."""
    return avss_palette(len(avss_class_map(root)))


def read_avss_label(
    path: os.PathLike[str] | str, palette: np.ndarray, strict: bool = True
) -> np.ndarray:
    """Colour label PNG -> class-id map (H, W) int64 via the palette.

    ``strict`` makes a colour outside the palette an error naming the file; the
    official loader silently maps such pixels to background, which would hide a
    corrupt label.
    """
    path = Path(path)
    rgb = read_image(path, mode="RGB").astype(np.uint32)
    keys = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    pal = np.asarray(palette, dtype=np.uint32).reshape(-1, 3)
    pal_keys = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]
    order = np.argsort(pal_keys, kind="stable")
    sorted_keys = pal_keys[order]
    pos = np.clip(np.searchsorted(sorted_keys, keys), 0, len(sorted_keys) - 1)
    known = sorted_keys[pos] == keys
    label = np.where(known, order[pos], 0).astype(np.int64)
    if strict and not known.all():
        bad = keys[~known]
        first = int(bad[0])
        raise ArtifactError(
            path,
            f"{bad.size} pixels have colours outside the AVSS palette, e.g. RGB "
            f"({first >> 16}, {(first >> 8) & 255}, {first & 255})",
        )
    return label


def avss_binary_mask(label: np.ndarray) -> np.ndarray:
    """Object mask from a class-id map: min(label, 1) (OpenAVS Eq. 10), uint8 0/1."""
    return np.minimum(np.asarray(label), 1).astype(np.uint8)


# --------------------------------------------------------------------------- AVSS / V3


WEAK_LABEL_SEPARATOR = ";"


def read_weak_labels(path: Path) -> dict[str, tuple[str, ...]]:
    """Clip-level labels (OpenAVS* / Table 5) from a ``name,labels`` CSV, labels ';'-joined.

    The official MS3 metadata carries no clip label; this file supplies one (the
    demo ships it; on AVSBench it can be derived from AVSBench-semantic's ``a_obj``).
    """
    path = Path(path)
    header, rows = read_metadata_csv(path)
    name_col = _column(header, ("name",), path, required=True)
    labels_col = _column(header, ("labels",), path, required=True)
    assert name_col is not None and labels_col is not None
    labels: dict[str, tuple[str, ...]] = {}
    for row in rows:
        name = row.values[name_col].strip()
        values = tuple(
            v.strip() for v in row.values[labels_col].split(WEAK_LABEL_SEPARATOR) if v.strip()
        )
        if not values:
            raise ArtifactError(path, f"line {row.line}: clip {name!r} has no label")
        if name in labels:
            raise ArtifactError(path, f"line {row.line}: clip {name!r} is listed twice")
        labels[name] = values
    return labels


def _split_objects(a_obj: str) -> tuple[str, ...]:
    """``a_obj`` joins the sounding classes with '_' (class names use '-' inside)."""
    out: list[str] = []
    for token in a_obj.split("_"):
        token = token.strip()
        if token and token not in out:
            out.append(token)
    return tuple(out)


def _normalise_subset(subset: str | None) -> str | None:
    if subset is None:
        return None
    short = subset.removeprefix("avss-")
    if short not in AVSS_SUBSETS:
        raise ValueError(f"unknown AVSS subset {subset!r}; expected one of {AVSS_SUBSETS}")
    return short


def _avss_clip(
    root: Path,
    row: MetaRow,
    meta: Path,
    *,
    uid_col: str,
    label_col: str,
    obj_col: str | None,
    subset_name: str | None,
    split_name: str,
    train_like: bool,
) -> Clip:
    uid = _safe_component(row.values[uid_col], meta, row, "uid")
    label = row.values[label_col]
    if label not in AVSS_SUBSETS:
        raise ArtifactError(
            meta,
            f"{row.where}: unknown subset label {label!r} (expected one of "
            f"{', '.join(AVSS_SUBSETS)})",
        )
    n_frames = AVSS_FRAMES[label]
    # v1s training clips annotate the first frame only, as in AVSBench-object S4.
    n_masks = 1 if (label == "v1s" and train_like) else n_frames
    # Child joins (dir / name) parse one component instead of the whole path:
    # this keeps loading the 11k-row metadata.csv well under a second.
    clip_dir = root / label / uid
    frames_dir = clip_dir / "frames"
    labels_dir = clip_dir / "labels_rgb"
    a_obj = row.values[obj_col] if obj_col else ""
    return Clip(
        id=uid,
        subset=subset_name or f"avss-{label}",
        split=split_name,
        category=a_obj,
        frames=tuple(frames_dir / f"{i}.jpg" for i in range(n_frames)),
        audio=clip_dir / "audio.wav",
        masks=tuple(labels_dir / f"{i}.png" if i < n_masks else None for i in range(n_frames)),
        fps=1.0,
        labels=_split_objects(a_obj),
    )


def load_avss(
    root: Path,
    subset: str | None = None,
    split: str | None = None,
    validate: bool = False,
    metadata: Path | None = None,
) -> list[Clip]:
    """AVSBench-semantic clips from ``root/metadata.csv`` (subsets v1s, v1m, v2).

    Clip subsets are ``avss-v1s`` / ``avss-v1m`` / ``avss-v2``; masks point at
    the colour label PNGs (read them with :func:`read_avss_label`). ``metadata``
    overrides the CSV location.
    """
    root = Path(root)
    want_subset = _normalise_subset(subset)
    want_split = _want_split(split)
    meta = Path(metadata) if metadata is not None else root / AVSS_META
    header, rows = read_metadata_csv(meta)
    uid_col = _column(header, ("uid",), meta, required=True)
    label_col = _column(header, ("label",), meta, required=True)
    split_col = _column(header, ("split",), meta, required=True)
    obj_col = _column(header, ("a_obj",), meta, required=False)
    assert uid_col is not None and label_col is not None and split_col is not None
    clips: list[Clip] = []
    seen: dict[str, int] = {}
    for row in rows:
        row_split = _check_split(row.values[split_col], meta, row, SPLITS)
        clip = _avss_clip(
            root,
            row,
            meta,
            uid_col=uid_col,
            label_col=label_col,
            obj_col=obj_col,
            subset_name=None,
            split_name=row_split,
            train_like=row_split == "train",
        )
        _check_unique(seen, clip.id, meta, row)
        if want_split is not None and row_split != want_split:
            continue
        if want_subset is not None and clip.subset != f"avss-{want_subset}":
            continue
        clips.append(clip)
    return _validated(clips, validate, palette_root=root)


def v3_split_name(split_file: os.PathLike[str] | str) -> str:
    """Canonical V3 split name of a split file: ``meta_v3_unseen``, ``v3_1_shot/test``.

    Derived from the file name because the ``split`` column of the upstream
    k-shot files says ``v3_1_shot_train`` even in the 3/5-shot test files.
    """
    path = Path(str(split_file).replace("\\", "/"))
    stem = path.name.removesuffix(".csv")
    if _KSHOT_DIR.match(path.parent.name):
        return f"{path.parent.name}/{stem}"
    return stem


def find_v3_split_file(root: Path, split_file: str, split_dir: Path | None = None) -> Path:
    """Locate a V3 split file: an existing path, else ``{split_dir|root/v3|root}/{name}.csv``."""
    direct = Path(split_file)
    if direct.suffix == ".csv" and direct.is_file():
        return direct
    name = split_file.removesuffix(".csv")
    parts = name.replace("\\", "/").split("/")
    if Path(name).is_absolute() or ".." in parts or not all(parts):
        raise ValueError(
            f"V3 split name {split_file!r} must be a relative name like 'v3_1_shot/test'"
        )
    candidates = [split_dir] if split_dir is not None else [Path(root) / "v3", Path(root)]
    for folder in candidates:
        path = Path(folder) / f"{name}.csv"
        if path.is_file():
            return path
    raise ArtifactError(Path(candidates[0]) / f"{name}.csv", "V3 split file is missing")


def load_v3(
    root: Path,
    split_file: str,
    split_dir: Path | None = None,
    validate: bool = False,
) -> list[Clip]:
    """Clips of one V3 zero/few-shot split file; media live in the AVSS tree at ``root``.

    ``split_file`` is a name such as ``meta_v3_unseen`` or ``v3_1_shot/test`` (looked
    up in ``split_dir``, else ``root/v3`` then ``root``) or a path to the CSV.
    Clip ``subset`` is ``v3`` and ``split`` the canonical split name. k-shot rows
    have empty ``a_obj``: their category is ``""`` and labels ``()``.
    """
    root = Path(root)
    meta = find_v3_split_file(root, split_file, split_dir)
    split_name = v3_split_name(meta)
    header, rows = read_metadata_csv(meta)
    uid_col = _column(header, ("uid",), meta, required=True)
    label_col = _column(header, ("label",), meta, required=True)
    obj_col = _column(header, ("a_obj",), meta, required=False)
    assert uid_col is not None and label_col is not None
    train_like = split_name.rsplit("_", 1)[-1].split("/")[-1] == "train"
    clips: list[Clip] = []
    seen: dict[str, int] = {}
    for row in rows:
        clip = _avss_clip(
            root,
            row,
            meta,
            uid_col=uid_col,
            label_col=label_col,
            obj_col=obj_col,
            subset_name="v3",
            split_name=split_name,
            train_like=train_like,
        )
        _check_unique(seen, clip.id, meta, row)
        clips.append(clip)
    return _validated(clips, validate, palette_root=root)


# --------------------------------------------------------------------------- dispatch


def load_benchmark(kind: str, root: Path, split: str | None = None, **kw: Any) -> list[Clip]:
    """One entry point for Snakemake rules: ``kind`` in s4, ms3, avss, v3.

    For ``v3`` the ``split`` is the split-file name (``meta_v3_unseen``,
    ``v3_1_shot/test``); ``split_file=`` may be given instead.
    """
    kind = kind.lower()
    if kind == "s4":
        return load_s4(root, split, **kw)
    if kind == "ms3":
        return load_ms3(root, split, **kw)
    if kind == "avss":
        return load_avss(root, split=split, **kw)
    if kind == "v3":
        split_file = kw.pop("split_file", None) or split
        if not split_file:
            raise ValueError("V3 needs a split file name, e.g. split='meta_v3_unseen'")
        return load_v3(root, split_file, **kw)
    raise ValueError(f"unknown benchmark kind {kind!r}; expected one of {BENCHMARK_KINDS}")


# --------------------------------------------------------------------------- validation


def _image_size(path: Path, mode: str) -> tuple[int, int]:
    arr = read_image(path, mode=mode)
    return int(arr.shape[1]), int(arr.shape[0])


def validate_clip(clip: Clip, palette: np.ndarray | None = None) -> None:
    """Check every media file of a clip; raise ArtifactError naming the first bad one.

    Frames and masks must exist and decode, each mask must match its frame's
    size, and the audio must be a readable wav. Audio shorter than the frames is
    not an error (the windows pad it) but is warned about here too. With a
    ``palette``, mask PNGs are AVSS colour labels and every colour must be known.
    """
    sizes: list[tuple[int, int]] = []
    for frame in clip.frames:
        sizes.append(_image_size(frame, "RGB"))
    for frame, size, mask in zip(clip.frames, sizes, clip.masks, strict=True):
        if mask is None:
            continue
        if palette is not None:
            label = read_avss_label(mask, palette)
            mask_size = (int(label.shape[1]), int(label.shape[0]))
        else:
            mask_size = _image_size(mask, "L")
        if mask_size != size:
            raise ArtifactError(
                mask,
                f"mask size {mask_size[0]}x{mask_size[1]} differs from frame size "
                f"{size[0]}x{size[1]} of {frame}",
            )
    if clip.audio is not None:
        samples, rate = read_wav(clip.audio)
        needed = clip.n_frames / clip.fps
        if len(samples) < round(needed * rate):
            warnings.warn(
                f"{clip.audio}: audio is {len(samples) / rate:.3f} s, shorter than the "
                f"{clip.n_frames} frames at {clip.fps:g} fps ({needed:g} s); it will be padded",
                AudioShortWarning,
                stacklevel=2,
            )


# --------------------------------------------------------------------------- stats


def detect_metadata_kind(path: Path, header: Sequence[str], rows: Sequence[MetaRow]) -> str:
    """Which benchmark a metadata CSV belongs to: s4, ms3, avss or v3."""
    name = Path(path).name
    if name == S4_META.name:
        return "s4"
    if name == MS3_META.name:
        return "ms3"
    lowered = {h.lower() for h in header}
    if {"uid", "label"} <= lowered:
        # AVSS metadata.csv uses train/val/test; V3 split files use their own names.
        split_col = _column(header, ("split",), path, required=False)
        if name == AVSS_META.name or (
            split_col is not None and all(r.values[split_col] in SPLITS for r in rows)
        ):
            return "avss"
        return "v3"
    if "category" in lowered:
        return "s4"
    return "ms3"


def metadata_stats(path: Path, kind: str | None = None) -> dict[str, dict[str, int]]:
    """``{subset: {split: clip_count}}`` of one metadata CSV (checked like the loaders).

    AVSS metadata gives subsets v1s/v1m/v2; S4/MS3 give s4/ms3; a V3 split file
    gives its ``label`` values with the canonical split name of the file.
    """
    path = Path(path)
    header, rows = read_metadata_csv(path)
    kind = kind or detect_metadata_kind(path, header, rows)
    if kind == "s4":
        return _count(load_s4(path.parent.parent, metadata=path), lambda c: c.subset)
    if kind == "ms3":
        return _count(load_ms3(path.parent.parent, metadata=path), lambda c: c.subset)
    if kind == "avss":
        clips = load_avss(path.parent, metadata=path)
        return _count(clips, lambda c: c.subset.removeprefix("avss-"))
    if kind == "v3":
        clips = load_v3(path.parent, str(path))
        label_col = _column(header, ("label",), path, required=True)
        assert label_col is not None
        # load_v3 keeps row order, so clip i came from row i.
        labels = [row.values[label_col] for row in rows]
        return _count(zip(labels, clips, strict=True), None)
    raise ValueError(f"unknown metadata kind {kind!r}; expected one of {BENCHMARK_KINDS}")


def _count(
    items: Iterable[Any], subset_of: Callable[[Clip], str] | None
) -> dict[str, dict[str, int]]:
    """Count clips per subset and split; ``items`` are clips or (subset, clip) pairs."""
    out: dict[str, dict[str, int]] = {}
    for item in items:
        subset, clip = (subset_of(item), item) if subset_of is not None else item
        per_split = out.setdefault(subset, {})
        per_split[clip.split] = per_split.get(clip.split, 0) + 1
    return out


def root_stats(root: Path) -> dict[str, Any]:
    """Summary of every benchmark layout found under a dataset root.

    Returns ``{"root": str, "layouts": [...], "s4"/"ms3"/"avss": {subset: {split: n}},
    "v3": {split_name: {subset: {split: n}}}}`` with only the layouts present.
    """
    root = Path(root)
    if not root.is_dir():
        raise ArtifactError(root, "dataset root is not a folder")
    summary: dict[str, Any] = {"root": str(root), "layouts": []}
    if (root / S4_META).is_file():
        summary["layouts"].append("s4")
        summary["s4"] = metadata_stats(root / S4_META, "s4")
    if (root / MS3_META).is_file():
        summary["layouts"].append("ms3")
        summary["ms3"] = metadata_stats(root / MS3_META, "ms3")
    if (root / AVSS_META).is_file():
        summary["layouts"].append("avss")
        summary["avss"] = metadata_stats(root / AVSS_META, "avss")
    v3: dict[str, Any] = {}
    for folder in (root / "v3", root):
        for name in V3_SPLIT_FILES:
            path = folder / f"{name}.csv"
            if name not in v3 and path.is_file():
                v3[name] = metadata_stats(path, "v3")
    if v3:
        summary["layouts"].append("v3")
        summary["v3"] = v3
    if not summary["layouts"]:
        raise ArtifactError(
            root,
            "no benchmark layout found (expected Single-source/, Multi-sources/, "
            "metadata.csv or V3 split files)",
        )
    return summary
