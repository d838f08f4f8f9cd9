"""Demo zero-shot subset in the spirit of IS3: composites of two objects, one sounding.

IS3 (SSLalign's synthetic set) pastes two sound sources into one image and pairs the
image with each source's audio, each pair with its own GT mask. The demo does the
same with the committed demo assets: two vocabulary renders (``data/demo/vocabulary``)
on a procedural background (:func:`avsbridge.data.demo_assets.scenes.background`),
each paired with the whole wav of a demo S4 *test* clip in which only that object
sounds (read from ``timeline.json``), and its GT = the render's exact alpha where it
is visible (the other object may overlap it). Images are 224 px JPEG (small), GTs
0/255 mode-L PNG; audio is referenced, not copied. Deterministic for one seed.

List file (``zeroshot/demo_zeroshot.json``): ``{"samples": [{id, group, image, audio,
gt, source}]}``, paths relative to the dataset root (``data/demo``).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from avsbridge.data.zeroshot import ZeroShotSample
from avsbridge.io import ArtifactError, atomic_write_bytes, atomic_write_json, read_json, write_png

LIST_NAME = "zeroshot/demo_zeroshot.json"
SEED = 13
N_IMAGES = 6
JPEG_QUALITY = 90
ALPHA_VISIBLE = 128  # GT pixel: the sounding render's alpha >= 128 and not covered


def single_source_test_clips(root: Path) -> dict[str, str]:
    """Demo S4 test clip -> the one object that sounds in it (clips with one source only)."""
    timeline = read_json(root / "timeline.json")
    out: dict[str, str] = {}
    for clip, entry in sorted(timeline.items()):
        if entry.get("subset") != "s4" or entry.get("split") != "test":
            continue
        sounding = {name for frame in entry["frames"] for name in frame}
        if len(sounding) == 1:
            out[clip] = sounding.pop()
    return out


def _audio_path(root: Path, clip: str) -> str:
    matches = sorted((root / "Single-source/s4_data/audio_wav/test").glob(f"*/{clip}.wav"))
    if len(matches) != 1:
        raise ArtifactError(root, f"demo S4 test clip {clip!r}: expected one wav, found {matches}")
    return matches[0].relative_to(root).as_posix()


def _render(
    rng: np.random.Generator, sprites: list[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Composite two RGBA sprites left/right; returns the RGB image and each one's visible GT."""
    from avsbridge.data.demo_assets import scenes

    size = scenes.SIZE
    bg = scenes.background(rng)
    pad = (bg.shape[0] - size) // 2
    img = bg[pad : pad + size, pad : pad + size].copy()
    alphas = []
    for side, sprite in enumerate(sprites):
        long_side = int(rng.integers(80, 120))
        scale = long_side / max(sprite.shape[:2])
        pil = Image.fromarray(sprite, "RGBA")
        w, h = (max(8, round(d * scale)) for d in pil.size)
        layer = np.asarray(pil.resize((w, h), Image.LANCZOS)).astype(np.float32)
        cx = int(rng.integers(size // 4 - 12, size // 4 + 12)) + side * size // 2
        cy = int(rng.integers(size // 2 - 40, size // 2 + 40))
        canvas = np.zeros((size, size, 4), np.float32)
        x0, y0 = cx - w // 2, cy - h // 2
        xs, ys, xe, ye = max(x0, 0), max(y0, 0), min(x0 + w, size), min(y0 + h, size)
        canvas[ys:ye, xs:xe] = layer[ys - y0 : ye - y0, xs - x0 : xe - x0]
        a = canvas[..., 3:4] / 255.0
        img = img * (1 - a) + canvas[..., :3] * a
        alphas.append(canvas[..., 3])
    visible = []
    for i, alpha in enumerate(alphas):
        mask = alpha >= ALPHA_VISIBLE
        for later in alphas[i + 1 :]:
            mask &= later < ALPHA_VISIBLE
        visible.append(mask)
    return np.clip(np.round(img), 0, 255).astype(np.uint8), visible


def generate_demo_zeroshot(root: Path, seed: int = SEED, n_images: int = N_IMAGES) -> Path:
    """Write ``zeroshot/`` under the demo root (images, GTs, list); returns the list path."""
    root = Path(root)
    clips = single_source_test_clips(root)
    by_object: dict[str, list[str]] = {}
    for clip, obj in clips.items():
        by_object.setdefault(obj, []).append(clip)
    objects = sorted(by_object)
    if len(objects) < 2:
        raise ArtifactError(root, "fewer than two single-source demo S4 test clips")
    rng = np.random.default_rng(seed)
    samples: list[dict[str, Any]] = []
    for index in range(n_images):
        pair = [str(o) for o in rng.choice(objects, size=2, replace=False)]
        sprites = [
            np.asarray(Image.open(root / "vocabulary" / f"{o}.png").convert("RGBA")) for o in pair
        ]
        image, visible = _render(rng, sprites)
        group = f"demo_is3_{index:03d}"
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=JPEG_QUALITY)
        image_rel = f"zeroshot/images/{group}.jpg"
        atomic_write_bytes(root / image_rel, buf.getvalue())
        for obj, mask in zip(pair, visible, strict=True):
            gt_rel = f"zeroshot/gt_masks/{group}_{obj}.png"
            write_png(root / gt_rel, mask.astype(np.uint8) * np.uint8(255))
            samples.append(
                {
                    "id": f"{group}_{obj}",
                    "group": group,
                    "image": image_rel,
                    "audio": _audio_path(root, by_object[obj][0]),
                    "gt": gt_rel,
                    "source": obj,
                }
            )
    list_path = root / LIST_NAME
    atomic_write_json(list_path, {"seed": seed, "samples": samples})
    return list_path


_KEYS = ("id", "group", "image", "audio", "gt", "source")


def load_demo_zeroshot(list_path: Path, root: Path) -> list[ZeroShotSample]:
    """The demo list as samples; paths re-rooted under ``root`` (errors name the list)."""
    list_path, root = Path(list_path), Path(root)
    doc = read_json(list_path)
    if not isinstance(doc, dict) or not isinstance(doc.get("samples"), list):
        raise ArtifactError(list_path, 'expected {"samples": [...]}')
    out: list[ZeroShotSample] = []
    seen: set[str] = set()
    for index, entry in enumerate(doc["samples"]):
        if not isinstance(entry, dict):
            raise ArtifactError(list_path, f"item {index}: expected an object")
        missing = [k for k in _KEYS if not isinstance(entry.get(k), str) or not entry[k]]
        if missing:
            raise ArtifactError(list_path, f"item {index}: missing key(s) {', '.join(missing)}")
        for key in ("image", "audio", "gt"):
            parts = entry[key].split("/")
            if entry[key].startswith("/") or ".." in parts:
                raise ArtifactError(list_path, f"item {index}: {key} escapes the dataset root")
        if entry["id"] in seen:
            raise ArtifactError(list_path, f"item {index}: duplicate sample id {entry['id']!r}")
        seen.add(entry["id"])
        out.append(
            ZeroShotSample(
                dataset="demo-zeroshot",
                id=entry["id"],
                group=entry["group"],
                image=root / entry["image"],
                audio=root / entry["audio"],
                gt=root / entry["gt"],
                source=entry["source"],
            )
        )
    return out
