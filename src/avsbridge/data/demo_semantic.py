"""The demo benchmark's AVSBench-semantic subset, with V3 seen/unseen and k-shot lists.

Written by :func:`avsbridge.data.demo.generate_demo` under ``AVSBench_semantic/`` in
the official AVSBench-semantic layout (``metadata.csv``, ``label2idx.json``,
``{label}/{uid}/frames/{i}.jpg``, ``labels_rgb/{i}.png``, ``audio.wav``), so
:func:`avsbridge.data.avsbench.load_avss` / ``load_v3`` read it unchanged. Frames are
composited like the AVSBench-object demo (same sprites, scenes and sounds); a frame's
label map colours each object sounding >= 50% of the frame's 1-s window with its
class's official palette colour, from the exact visible alpha -- never a model.

Everything here draws from its own random stream (``[seed, 0x5E3A]``), so adding or
changing this subset never changes a byte of the Single-source / Multi-sources clips.
The V3 lists follow the official derivation rules (:mod:`avsbridge.data.v3_splits`)
over this subset's ``metadata.csv``; the seen / unseen / k-shot classes are the
official V3 ones restricted to the classes the demo can show and play.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from avsbridge.data import v3_splits
from avsbridge.data.avsbench import avss_palette
from avsbridge.data.demo_assets import scenes, sounds
from avsbridge.data.demo_assets.catalogue import (
    AVSS_CLASSES,
    SEMANTIC_CLASSES,
    SEMANTIC_DISTRACTORS,
    semantic_class_of_object,
    semantic_objects,
)
from avsbridge.io import atomic_path, atomic_write_json, atomic_write_text, write_png, write_wav

SUBDIR = "AVSBench_semantic"
SEED_STREAM = 0x5E3A
FRAMES = {"v1s": 5, "v1m": 5, "v2": 10}  # 1 fps: v1s/v1m clips are 5 s, v2 clips 10 s
JPEG_QUALITY = 85
MIN_SOUNDING_PIXELS = 400
MIN_VISIBLE_PIXELS = 20

# The official V3 class split (checked against the real files by tests/test_v3_splits.py).
REAL_V3_UNSEEN: frozenset[str] = frozenset(
    {
        "baby", "bell", "boy", "clock", "donkey", "emergency-car", "girl", "guzheng", "harp",
        "helicopter", "hen", "leopard", "squirrel", "tiger",
    }
)  # fmt: skip
REAL_V3_KSHOT_DROPPED: frozenset[str] = frozenset({"bell", "harp", "squirrel"})

SEEN_CLASSES: tuple[str, ...] = tuple(c for c in SEMANTIC_CLASSES if c not in REAL_V3_UNSEEN)
UNSEEN_CLASSES: tuple[str, ...] = tuple(c for c in SEMANTIC_CLASSES if c in REAL_V3_UNSEEN)
# Unseen classes with single-class V3 clips: enough for 5-shot training plus test clips.
KSHOT_CLIP_CLASSES: tuple[str, ...] = ("baby", "helicopter", "hen")
KSHOT_CLIPS_PER_CLASS = 7
DROPPED_CLIP_CLASSES: tuple[str, ...] = ("bell",)
DROPPED_CLIPS_PER_CLASS = 2
N_SEEN_CLIPS = 16
N_SEEN_SINGLE = 5
V1S_CLASSES: tuple[str, ...] = ("dog", "emergency-car", "piano", "cat", "guitar", "baby")
V1S_SPLITS: tuple[str, ...] = ("train", "train", "train", "val", "test", "test")
# Per label: how many clips of each metadata split (the rest are train).
SPLIT_SHARES = {"v2": {"test": 3, "val": 2}, "v1m": {"test": 8, "val": 5}}
N_V2 = {"unseen": 4, "seen": 5, "mixed": 1}

Interval = tuple[float, float]


def _iv(a: float, b: float) -> Interval:
    """An interval with its ends rounded to ms (scaled times stay exact in timeline.json)."""
    return (round(a, 3), round(b, 3))


@dataclass(frozen=True)
class SemanticClipPlan:
    """One AVSS clip before rendering: which sprite sounds when, as which class."""

    uid: str
    vid: str
    label: str  # v1s, v1m, v2
    split: str  # metadata.csv split: train, val, test
    start_s: int  # offset in the (fictional) source video
    group: str  # seen, unseen, mixed (seen + unseen classes), v1s
    sounding: dict[str, tuple[Interval, ...]]  # sprite -> sounding intervals (s)
    silent: tuple[str, ...]  # visible sprites that never sound
    clip_seed: int

    @property
    def n_frames(self) -> int:
        return FRAMES[self.label]

    @property
    def seconds(self) -> float:
        return float(self.n_frames)

    @property
    def objects(self) -> list[str]:
        return [*self.sounding, *self.silent]

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(semantic_class_of_object(o) for o in self.sounding))

    @property
    def a_obj(self) -> str:
        return "_".join(self.classes)

    @property
    def n_masks(self) -> int:
        # v1s training clips annotate the first frame only, as in the official release.
        return 1 if (self.label == "v1s" and self.split == "train") else self.n_frames

    def sounding_in_frame(self, k: int) -> list[str]:
        """Sprites sounding >= 50% of window [k, k+1) s (0-based k)."""
        return [
            obj
            for obj, ivs in self.sounding.items()
            if sum(max(0.0, min(b, k + 1.0) - max(a, float(k))) for a, b in ivs) >= 0.5
        ]

    def metadata_row(self) -> dict[str, str]:
        if self.label == "v1m":  # official v1m rows: vid == uid, no start time
            s_min = s_sec = "0"
            vid = self.uid
        else:
            s_min, s_sec = str(self.start_s // 60), str(self.start_s % 60)
            vid = self.vid
        return {
            "vid": vid,
            "uid": self.uid,
            "s_min": s_min,
            "s_sec": s_sec,
            "a_obj": self.a_obj,
            "split": self.split,
            "label": self.label,
        }


# ------------------------------------------------------------------ planning

# Boundaries (for a 5-s clip, scaled to the clip length) avoid x.5 so the 50% rule never ties.
_STOP_TIMES = (2.2, 3.0, 3.8, 4.0)
_START_TIMES = (0.8, 1.0, 2.0, 1.3)


def _single_intervals(
    rng: np.random.Generator, seconds: float, annotate_first_only: bool
) -> tuple[Interval, ...]:
    scale = seconds / 5.0
    kinds = ("full", "stops", "gap") if annotate_first_only else ("full", "stops", "starts", "gap")
    kind = str(rng.choice(kinds))
    if kind == "full":
        return (_iv(0.0, seconds),)
    if kind == "stops":
        return (_iv(0.0, float(rng.choice(_STOP_TIMES)) * scale),)
    if kind == "starts":
        return (_iv(float(rng.choice(_START_TIMES)) * scale, seconds),)
    a = float(rng.choice((1.8, 2.0, 1.2)))
    b = a + float(rng.choice((1.2, 2.0)))
    return (_iv(0.0, a * scale), _iv(b * scale, seconds))


def _multi_intervals(rng: np.random.Generator, seconds: float) -> tuple[Interval, ...]:
    scale = seconds / 5.0
    kind = int(rng.integers(0, 4))
    if kind == 0:
        return (_iv(0.0, seconds),)
    if kind == 1:
        return (_iv(0.0, float(rng.choice(_STOP_TIMES)) * scale),)
    if kind == 2:
        return (_iv(float(rng.choice(_START_TIMES)) * scale, seconds),)
    a = float(rng.choice((0.8, 1.0, 1.2)))
    return (_iv(a * scale, (a + float(rng.choice((2.0, 2.2, 3.0)))) * scale),)


def _obj(cls: str) -> str:
    return SEMANTIC_CLASSES[cls].obj


def _silent(rng: np.random.Generator, sounding: Sequence[str], n: int) -> tuple[str, ...]:
    """Silent visible sprites: pure distractors or sprites of classes that do not sound."""
    pool = [
        o for o in (*SEMANTIC_DISTRACTORS, *(c.obj for c in SEMANTIC_CLASSES.values()))
        if o not in set(sounding)
    ]  # fmt: skip
    return tuple(str(x) for x in rng.choice(pool, size=n, replace=False))


def _multi_sounding(
    rng: np.random.Generator, classes: Sequence[str], seconds: float
) -> dict[str, tuple[Interval, ...]]:
    """Intervals for several classes with at least one frame where two sound together."""
    n_frames = int(seconds)
    while True:
        sounding = {_obj(c): _multi_intervals(rng, seconds) for c in classes}
        probe = SemanticClipPlan("probe", "probe", "v2", "test", 0, "", sounding, (), 0)
        if max(len(probe.sounding_in_frame(k)) for k in range(n_frames)) >= 2:
            return sounding


@dataclass(frozen=True)
class _Draft:
    group: str
    classes: tuple[str, ...]


def _drafts(rng: np.random.Generator) -> list[_Draft]:
    """Which classes each clip holds, before labels, splits and timing."""
    drafts: list[_Draft] = []
    for cls in KSHOT_CLIP_CLASSES:
        drafts += [_Draft("unseen", (cls,))] * KSHOT_CLIPS_PER_CLASS
    for cls in DROPPED_CLIP_CLASSES:
        drafts += [_Draft("unseen", (cls,))] * DROPPED_CLIPS_PER_CLASS
    drafts.append(_Draft("unseen", tuple(str(c) for c in rng.permutation(KSHOT_CLIP_CLASSES)[:2])))
    firsts = [str(c) for c in rng.permutation(SEEN_CLASSES)]
    firsts += [str(c) for c in rng.choice(SEEN_CLASSES, N_SEEN_CLIPS - len(firsts), False)]
    for i, first in enumerate(firsts):
        if i < N_SEEN_SINGLE:
            drafts.append(_Draft("seen", (first,)))
            continue
        others = [c for c in SEEN_CLASSES if c != first]
        n_more = int(rng.choice((1, 2)))
        drafts.append(_Draft("seen", (first, *(str(c) for c in rng.choice(others, n_more, False)))))
    drafts.append(_Draft("mixed", ("man", "emergency-car")))
    drafts.append(_Draft("mixed", (str(rng.choice(SEEN_CLASSES)), "hen")))
    return drafts


def _labels(rng: np.random.Generator, drafts: Sequence[_Draft]) -> list[str]:
    labels = ["v1m"] * len(drafts)
    for group, n in N_V2.items():
        members = [i for i, d in enumerate(drafts) if d.group == group]
        for i in rng.choice(members, n, replace=False):
            labels[int(i)] = "v2"
    return labels


def _splits(rng: np.random.Generator, labels: Sequence[str]) -> list[str]:
    splits = ["train"] * len(labels)
    for label, shares in SPLIT_SHARES.items():
        members = [int(i) for i in rng.permutation([i for i, x in enumerate(labels) if x == label])]
        start = 0
        for split, n in shares.items():
            for i in members[start : start + n]:
                splits[i] = split
            start += n
    return splits


def plan_semantic(seed: int) -> list[SemanticClipPlan]:
    """The subset's plan for ``seed``, in ``metadata.csv`` order: cheap, no rendering."""
    rng = np.random.default_rng([seed, SEED_STREAM])
    drafts = _drafts(rng)
    labels = _labels(rng, drafts)
    splits = _splits(rng, labels)
    drafts += [_Draft("v1s", (c,)) for c in V1S_CLASSES]
    labels += ["v1s"] * len(V1S_CLASSES)
    splits += list(V1S_SPLITS)
    plans: list[SemanticClipPlan] = []
    for idx, (draft, label, split) in enumerate(zip(drafts, labels, splits, strict=True)):
        seconds = float(FRAMES[label])
        if len(draft.classes) == 1:
            first_only = label == "v1s" and split == "train"
            sounding = {_obj(draft.classes[0]): _single_intervals(rng, seconds, first_only)}
        else:
            sounding = _multi_sounding(rng, draft.classes, seconds)
        silent = _silent(rng, list(sounding), int(rng.integers(0, 3)))
        vid = f"demoavss{idx:03d}"
        start = int(rng.integers(0, 300))
        if label == "v1m":
            uid = f"{vid}_{int(rng.integers(0, 4))}"
        else:
            uid = f"{vid}_{start * 1000}_{(start + int(seconds)) * 1000}"
        plans.append(
            SemanticClipPlan(
                uid, vid, label, split, start, draft.group, sounding, silent,
                int(rng.integers(0, 2**31)),
            )
        )  # fmt: skip
    order = [int(i) for i in rng.permutation(len(plans))]
    return [plans[i] for i in order]


def v3_classes(plans: Sequence[SemanticClipPlan]) -> tuple[list[str], list[str]]:
    """(unseen, k-shot) classes: the official V3 ones, restricted to what the subset holds.

    Unseen = the demo's classes that V3 calls unseen (they decide which clips are seen,
    unseen or mixed); k-shot = the classes of the 0-shot clips minus those V3 drops.
    """
    unseen = set(UNSEEN_CLASSES)
    in_zero_shot = {
        c
        for p in plans
        if p.label in v3_splits.V3_LABELS and set(p.classes) <= unseen
        for c in p.classes
    }
    return sorted(unseen), sorted(in_zero_shot - REAL_V3_KSHOT_DROPPED)


def v3_lists(plans: Sequence[SemanticClipPlan], seed: int) -> dict[str, list[dict[str, str]]]:
    """Every V3 split file of the subset, derived by the official rules."""
    unseen, kshot = v3_classes(plans)
    rows = [p.metadata_row() for p in plans]
    return v3_splits.v3_lists(rows, unseen, kshot, np.random.default_rng([seed, SEED_STREAM, 3]))


# ------------------------------------------------------------------ rendering


def clip_layout(
    plan: SemanticClipPlan, sprites: dict[str, np.ndarray]
) -> tuple[list[np.ndarray], list[dict[str, np.ndarray]]]:
    """Draw layouts until every sounding sprite stays clearly visible in every frame."""
    rng = np.random.default_rng([plan.clip_seed, 1])
    for _ in range(300):
        layout = scenes.random_layout(rng, plan.objects, sprites, n_frames=plan.n_frames)
        frames, masks = scenes.render_frames(layout, sprites)
        if all(
            int(masks[k][obj].sum()) >= MIN_SOUNDING_PIXELS
            for k in range(plan.n_frames)
            for obj in plan.sounding
        ):
            return frames, masks
    raise RuntimeError(f"{plan.uid}: no layout keeps the sounding objects visible")


def class_ids() -> dict[str, int]:
    """``label2idx.json``: the official 71 AVSS class ids."""
    return {name: i for i, name in enumerate(AVSS_CLASSES)}


def label_map(masks: dict[str, np.ndarray], sounding: Sequence[str]) -> np.ndarray:
    """Class-id map (H, W): each sounding sprite's visible pixels get its class id."""
    ids = class_ids()
    out = np.zeros((scenes.SIZE, scenes.SIZE), dtype=np.int64)
    for obj in sounding:
        out[masks[obj]] = ids[semantic_class_of_object(obj)]
    return out


def label_rgb(label: np.ndarray) -> np.ndarray:
    """Class-id map -> official palette colours (uint8 RGB), as ``labels_rgb`` stores it."""
    return avss_palette(len(AVSS_CLASSES))[label]


def mix_audio(plan: SemanticClipPlan, bank: sounds.SoundBank) -> np.ndarray:
    """Each sounding sprite's source on its intervals over faint room tone."""
    rng = np.random.default_rng([plan.clip_seed, 2])
    n = int(plan.seconds * sounds.RATE)
    mix = (rng.standard_normal(n) * 0.002).astype(np.float32)
    fade = int(0.015 * sounds.RATE)
    for obj, intervals in plan.sounding.items():
        key = SEMANTIC_CLASSES[semantic_class_of_object(obj)].source
        gain = float(rng.uniform(0.6, 1.0))
        for a, b in intervals:
            s0, s1 = int(round(a * sounds.RATE)), int(round(b * sounds.RATE))
            seg = bank.excerpt(key, (s1 - s0) / sounds.RATE, rng) * gain
            ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
            seg[:fade] *= ramp
            seg[-fade:] *= ramp[::-1]
            mix[s0:s1] += seg[: s1 - s0]
    peak = float(np.max(np.abs(mix)))
    if peak > 0.95:
        mix *= 0.95 / peak
    return mix


def clip_paths(root: Path, plan: SemanticClipPlan) -> tuple[list[Path], list[Path | None], Path]:
    """Frame, label (None where not annotated) and audio paths under the subset root."""
    base = Path(root) / plan.label / plan.uid
    frames = [base / "frames" / f"{i}.jpg" for i in range(plan.n_frames)]
    labels: list[Path | None] = [
        base / "labels_rgb" / f"{i}.png" if i < plan.n_masks else None for i in range(plan.n_frames)
    ]
    return frames, labels, base / "audio.wav"


def write_jpeg(dest: Path, frame: np.ndarray) -> None:
    """A frame as baseline JPEG (AVSBench-semantic ships JPEG frames), atomically."""
    with atomic_path(dest) as tmp:
        Image.fromarray(frame).save(tmp, format="JPEG", quality=JPEG_QUALITY)


def write_clip(
    root: Path, plan: SemanticClipPlan, sprites: dict[str, np.ndarray], bank: sounds.SoundBank
) -> dict:
    """Render one clip's frames, label maps and audio; returns its timeline entry."""
    frames, masks = clip_layout(plan, sprites)
    frame_paths, label_paths, audio_path = clip_paths(root, plan)
    per_frame = [plan.sounding_in_frame(k) for k in range(plan.n_frames)]
    for k in range(plan.n_frames):
        write_jpeg(frame_paths[k], frames[k])
        path = label_paths[k]
        if path is not None:
            write_png(path, label_rgb(label_map(masks[k], per_frame[k])))
    write_wav(audio_path, mix_audio(plan, bank), sounds.RATE)
    return {
        "label": plan.label,
        "split": plan.split,
        "group": plan.group,
        "a_obj": plan.a_obj,
        "frames": [sorted({semantic_class_of_object(o) for o in f}) for f in per_frame],
        "sounding_objects": per_frame,
        "visible": [
            sorted(o for o in plan.objects if int(masks[k][o].sum()) >= MIN_VISIBLE_PIXELS)
            for k in range(plan.n_frames)
        ],
        "intervals": {o: [list(iv) for iv in ivs] for o, ivs in plan.sounding.items()},
        "silent_objects": list(plan.silent),
    }


def vocabulary_json() -> dict:
    """The subset's visual vocabulary (``demo-matcher`` format) and class -> sprite map."""
    objects = semantic_objects()
    return {
        "objects": {
            n: {"file": f"{n}.png", "emoji": o.emoji_label, "synonyms": list(o.synonyms)}
            for n, o in objects.items()
        },
        "classes": {c.name: c.obj for c in SEMANTIC_CLASSES.values()},
        "distractors": list(SEMANTIC_DISTRACTORS),
    }


def counts(plans: Sequence[SemanticClipPlan], lists: dict[str, list[dict[str, str]]]) -> dict:
    """Clip counts per label and split, and rows per V3 list (manifest and MANIFEST.md)."""
    per_label: dict[str, dict[str, int]] = {}
    for p in plans:
        split_counts = per_label.setdefault(p.label, {})
        split_counts[p.split] = split_counts.get(p.split, 0) + 1
    return {"metadata": per_label, "v3": {name: len(rows) for name, rows in lists.items()}}


def write_semantic(
    out_root: Path,
    seed: int,
    sprites: dict[str, np.ndarray],
    bank: sounds.SoundBank,
    only: Sequence[str] | None = None,
) -> dict:
    """Write the whole subset under ``out_root/AVSBench_semantic`` (clips: all or ``only``).

    Metadata, label2idx, V3 lists and vocabulary are always written in full; only
    the media of clips outside ``only`` are skipped. Returns the manifest section.
    """
    root = Path(out_root) / SUBDIR
    plans = plan_semantic(seed)
    lists = v3_lists(plans, seed)
    chosen = [p for p in plans if only is None or p.uid in set(only)]
    for name in semantic_objects():
        write_png(root / "vocabulary" / f"{name}.png", sprites[name])
    atomic_write_json(root / "vocabulary" / "vocabulary.json", vocabulary_json())
    timeline = {p.uid: write_clip(root, p, sprites, bank) for p in chosen}
    atomic_write_json(root / "timeline.json", timeline)
    atomic_write_text(root / "metadata.csv", v3_splits.csv_text(p.metadata_row() for p in plans))
    # In class-id order, like the official file (atomic_write_json would sort the keys).
    atomic_write_text(root / "label2idx.json", json.dumps(class_ids(), indent=2) + "\n")
    for name, rows in lists.items():
        atomic_write_text(root / "v3" / f"{name}.csv", v3_splits.csv_text(rows))
    unseen, kshot = v3_classes(plans)
    return {
        "root": SUBDIR,
        "seed_stream": SEED_STREAM,
        "clips": [p.uid for p in chosen],
        "counts": counts(plans, lists),
        "seen_classes": sorted({c for p in plans if p.group == "seen" for c in p.classes}),
        "unseen_classes": unseen,
        "kshot_classes": kshot,
        "jpeg_quality": JPEG_QUALITY,
    }


def semantic_uids(seed: int) -> list[str]:
    return [p.uid for p in plan_semantic(seed)]


def manifest_md(section: dict) -> list[str]:
    """The MANIFEST.md section of the subset (layout, classes, counts, V3 rules)."""
    objects = semantic_objects()
    meta = section["counts"]["metadata"]
    lines = [
        f"## AVSBench-semantic subset (`{SUBDIR}/`)",
        "",
        "Official AVSBench-semantic layout: `metadata.csv` (vid,uid,s_min,s_sec,a_obj,split,label),",
        "`{label}/{uid}/frames/{i}.jpg` (224x224, JPEG quality "
        f"{section['jpeg_quality']}), `{{label}}/{{uid}}/labels_rgb/{{i}}.png` (i from 0),",
        "`{label}/{uid}/audio.wav` (16 kHz mono 16-bit), `label2idx.json`. v1s and v1m clips are",
        "5 s / 5 frames, v2 clips 10 s / 10 frames, 1 fps; v1s training clips annotate frame 0",
        "only. A label PNG colours the visible alpha mask of every object sounding >= 50% of the",
        "frame's window with its class colour of the official 71-class palette (`label2idx.json`:",
        "background 0, then the 70 official class names alphabetically -- the `a_obj` tokens of",
        "the official metadata.csv); silent objects are background. `timeline.json` says who",
        "sounds when. Generated from its own random stream "
        f"(`[seed, {section['seed_stream']:#x}]`), so the AVSBench-object clips above are",
        "unaffected by it. `vocabulary/` holds every sprite the subset shows (demo-matcher format).",
        "",
        "| AVSS class | sprite | sound source | V3 |",
        "|---|---|---|---|",
    ]
    for cls in SEMANTIC_CLASSES.values():
        group = "unseen" if cls.name in section["unseen_classes"] else "seen"
        if cls.name in section["kshot_classes"]:
            group += ", k-shot"
        elif cls.name in REAL_V3_KSHOT_DROPPED:
            group += ", dropped from k-shot"
        sprite = f"{cls.obj} ({objects[cls.obj].emoji_label})"
        lines.append(f"| {cls.name} | {sprite} | {cls.source} | {group} |")
    lines += [
        "",
        "Clips in `metadata.csv` (label: split counts): "
        + "; ".join(
            f"{label} " + ", ".join(f"{s} {n}" for s, n in sorted(splits.items()))
            for label, splits in sorted(meta.items())
        )
        + ".",
        "",
        "V3 split files (`v3/`), derived by the official rules (`avsbridge.data.v3_splits`):",
        "seen / unseen = v1m+v2 clips whose classes are all seen / all unseen (mixed clips are in",
        "neither), seen_train = floor(0.9 n) of the shuffled seen clips; k-shot classes = the",
        "unseen classes of the 0-shot clips minus those the official lists drop (harp, bell,",
        "squirrel); `v3_{k}_shot/train` = the first k single-class 0-shot clips of each k-shot",
        "class, `v3_{k}_shot/test` = the other 0-shot clips of k-shot classes.",
        "",
        "| split file | clips |",
        "|---|---|",
        *[f"| {name} | {n} |" for name, n in section["counts"]["v3"].items()],
        "",
    ]
    return lines
