"""Object sprites: Noto Color Emoji glyphs whose alpha channel is the exact mask.

The generator renders every glyph once (needs the Debian font) and writes it to
``vocabulary/``; scenes are composited from those RGBA arrays, so frames and
masks can be re-rendered from the committed vocabulary alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from avsbridge.data.demo_assets.catalogue import OBJECTS, VisualObject
from avsbridge.io import ArtifactError, read_image

EMOJI_FONT_CANDIDATES: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"),
    Path("/usr/share/fonts/noto/NotoColorEmoji.ttf"),
    Path("/usr/share/fonts/google-noto-emoji/NotoColorEmoji.ttf"),
)
# CBDT bitmap strikes exist only at 109 px; other sizes fail to load.
GLYPH_SIZE = 109


def find_emoji_font() -> Path | None:
    """The Noto Color Emoji font file if installed (Debian fonts-noto-color-emoji)."""
    for path in EMOJI_FONT_CANDIDATES:
        if path.is_file():
            return path
    return None


def render_glyph(obj: VisualObject, font_path: Path) -> np.ndarray:
    """Render one glyph as a tightly cropped RGBA uint8 array."""
    font = ImageFont.truetype(str(font_path), GLYPH_SIZE)
    canvas = Image.new("RGBA", (GLYPH_SIZE * 2, GLYPH_SIZE * 2), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((8, 8), obj.text, font=font, embedded_color=True)
    bbox = canvas.getchannel("A").getbbox()
    if bbox is None:
        raise ArtifactError(font_path, f"glyph {obj.emoji_label} ({obj.name}) renders empty")
    return np.asarray(canvas.crop(bbox)).copy()


def render_all_sprites(
    font_path: Path, objects: Mapping[str, VisualObject] = OBJECTS
) -> dict[str, np.ndarray]:
    return {name: render_glyph(obj, font_path) for name, obj in objects.items()}


def load_sprites(vocabulary_dir: Path, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Read the committed vocabulary renders (no font needed); ``names`` default: OBJECTS."""
    sprites: dict[str, np.ndarray] = {}
    for name in OBJECTS if names is None else names:
        arr = read_image(vocabulary_dir / f"{name}.png", mode="RGBA")
        if arr.shape[2] != 4:
            raise ArtifactError(vocabulary_dir / f"{name}.png", "expected an RGBA sprite")
        sprites[name] = arr
    return sprites
