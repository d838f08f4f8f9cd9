"""Scene rendering: procedural backgrounds plus moving, occluding object sprites.

A frame is composited back to front in premultiplied alpha; each object's
*visible* alpha (its alpha times the transparency of everything in front of it)
thresholded at 0.5 is its exact mask, so occluded pixels never count as the
object's and GT masks need no model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

SIZE = 224
N_FRAMES = 5
_PAD = 32  # background margin the camera pans over


@dataclass(frozen=True)
class ObjectLayout:
    """Where one object is in every frame and how it looks."""

    name: str
    centres: tuple[tuple[float, float], ...]  # (x, y) per frame
    scales: tuple[float, ...]
    flip: bool
    colour_gain: tuple[float, float, float]


@dataclass(frozen=True)
class SceneLayout:
    background_seed: int
    pan: tuple[tuple[int, int], ...]  # camera offset per frame
    brightness: tuple[float, ...]
    objects: tuple[ObjectLayout, ...]  # back to front


def background(rng: np.random.Generator) -> np.ndarray:
    """A varied, PNG-friendly procedural background (float32 HxWx3 in 0..255)."""
    side = SIZE + 2 * _PAD
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    c0, c1 = rng.uniform(30, 230, size=(2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.clip(0.5 + (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)), 0, 1)
    img = c0 * (1 - ramp[..., None]) + c1 * ramp[..., None]
    # low-frequency value noise: cloud-like variation
    grid = rng.uniform(-1, 1, size=(int(rng.integers(3, 8)),) * 2 + (3,)).astype(np.float32)
    noise = np.stack(
        [
            np.asarray(Image.fromarray(grid[..., c]).resize((side, side), Image.BICUBIC))
            for c in range(3)
        ],
        axis=-1,
    )
    img = img + noise * rng.uniform(10, 35)
    kind = int(rng.integers(0, 4))
    if kind == 1:  # ground plane below a horizon
        horizon = rng.uniform(0.45, 0.75)
        ground = rng.uniform(30, 200, size=3).astype(np.float32)
        blend = np.clip((yy - horizon) * 40, 0, 1)[..., None]
        img = img * (1 - blend) + (ground + noise * 15) * blend
    elif kind == 2:  # soft stripes (wallpaper, fields)
        period = rng.uniform(0.08, 0.25)
        phase = np.sin(2 * np.pi * ((xx if rng.random() < 0.5 else yy) / period))
        img = img + (phase[..., None] * rng.uniform(8, 20))
    elif kind == 3:  # tiled floor
        tiles = int(rng.integers(4, 9))
        checker = ((np.floor(xx * tiles) + np.floor(yy * tiles)) % 2)[..., None]
        img = img + (checker - 0.5) * rng.uniform(10, 30)
    return np.clip(img, 0, 255).astype(np.float32)


def _prepared_sprite(
    sprite: np.ndarray, scale: float, flip: bool, gain: tuple[float, float, float]
) -> np.ndarray:
    """Resize in premultiplied alpha (no dark fringes); returns float32 RGBa."""
    arr = sprite[:, ::-1] if flip else sprite
    img = Image.fromarray(np.ascontiguousarray(arr), "RGBA").convert("RGBa")
    w = max(8, int(round(arr.shape[1] * scale)))
    h = max(8, int(round(arr.shape[0] * scale)))
    out = np.asarray(img.resize((w, h), Image.LANCZOS)).astype(np.float32)
    out[..., :3] = np.minimum(out[..., :3] * np.asarray(gain, dtype=np.float32), out[..., 3:4])
    return out


def _place(layer: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
    """Put a sprite on a full-size transparent canvas, cropping at the borders."""
    canvas = np.zeros((SIZE, SIZE, 4), dtype=np.float32)
    h, w = layer.shape[:2]
    x0 = int(round(centre[0] - w / 2))
    y0 = int(round(centre[1] - h / 2))
    xs, ys = max(x0, 0), max(y0, 0)
    xe, ye = min(x0 + w, SIZE), min(y0 + h, SIZE)
    if xe > xs and ye > ys:
        canvas[ys:ye, xs:xe] = layer[ys - y0 : ye - y0, xs - x0 : xe - x0]
    return canvas


def render_frames(
    layout: SceneLayout, sprites: dict[str, np.ndarray]
) -> tuple[list[np.ndarray], list[dict[str, np.ndarray]]]:
    """Frames (uint8 RGB) and, per frame, each object's visible binary mask.

    As many frames as the layout has camera offsets (5 for AVSBench-object clips,
    10 for AVSBench-semantic v2 clips).
    """
    bg_full = background(np.random.default_rng(layout.background_seed))
    frames: list[np.ndarray] = []
    masks: list[dict[str, np.ndarray]] = []
    for k in range(len(layout.pan)):
        dx, dy = layout.pan[k]
        img = bg_full[_PAD + dy : _PAD + dy + SIZE, _PAD + dx : _PAD + dx + SIZE].copy()
        alphas: list[np.ndarray] = []
        for obj in layout.objects:
            layer = _place(
                _prepared_sprite(sprites[obj.name], obj.scales[k], obj.flip, obj.colour_gain),
                obj.centres[k],
            )
            a = layer[..., 3:4] / 255.0
            img = img * (1 - a) + layer[..., :3]
            alphas.append(a[..., 0])
        img = np.clip(img * layout.brightness[k], 0, 255)
        frames.append(np.round(img).astype(np.uint8))
        front = np.ones((SIZE, SIZE), dtype=np.float32)
        frame_masks: dict[str, np.ndarray] = {}
        for obj, a in zip(reversed(layout.objects), reversed(alphas), strict=True):
            frame_masks[obj.name] = (a * front) >= 0.5
            front = front * (1 - a)
        masks.append(frame_masks)
    return frames, masks


def random_layout(
    rng: np.random.Generator,
    names: list[str],
    sprites: dict[str, np.ndarray],
    n_frames: int = N_FRAMES,
) -> SceneLayout:
    """Random motion, scale, flip, colour jitter and depth order for ``names``.

    With the default ``n_frames`` the random draws are exactly those the committed
    AVSBench-object demo clips were made with; longer clips spread the same motion
    range over more frames.
    """
    last = n_frames - 1
    order = list(rng.permutation(names))
    objects = []
    for name in order:
        scale0 = float(rng.uniform(0.5, 0.95))
        drift = float(rng.uniform(0.94, 1.06))
        speed = float(rng.uniform(6, 16))
        heading = float(rng.uniform(0, 2 * np.pi))
        vel = np.array([np.cos(heading), np.sin(heading)]) * speed
        lo, hi = 40.0, SIZE - 40.0
        start = rng.uniform(lo, hi, size=2)
        end = np.clip(start + last * vel, lo, hi)
        vel = (end - start) / last
        if float(np.hypot(*vel)) < 4:  # pinned at a border: move the other way
            vel = -np.array([np.cos(heading), np.sin(heading)]) * speed
        centres = tuple(
            (
                float(start[0] + vel[0] * k + rng.normal(0, 1.5)),
                float(start[1] + vel[1] * k + rng.normal(0, 1.5)),
            )
            for k in range(n_frames)
        )
        objects.append(
            ObjectLayout(
                name=str(name),
                centres=centres,
                scales=tuple(float(scale0 * drift ** (k * 4 / last)) for k in range(n_frames)),
                flip=bool(rng.random() < 0.5),
                colour_gain=tuple(float(g) for g in rng.uniform(0.85, 1.15, size=3)),  # type: ignore[arg-type]
            )
        )
    pan_v = rng.integers(-6, 7, size=2)
    steps = [round(k * 4 / last, 6) for k in range(n_frames)]  # 0..4 camera steps
    pan = tuple(
        (
            int(np.clip(round(pan_v[0] * t) - 12, -_PAD, _PAD)),
            int(np.clip(round(pan_v[1] * t) - 12, -_PAD, _PAD)),
        )
        for t in steps
    )
    return SceneLayout(
        background_seed=int(rng.integers(0, 2**31)),
        pan=pan,
        brightness=tuple(float(b) for b in rng.uniform(0.93, 1.07, size=n_frames)),
        objects=tuple(objects),
    )
