"""``clap-clip``: CLAP (audio side) and CLIP (image side) phrase matching through transformers.

VCap+ACls: each noun phrase's CLAP text embedding against the CLAP audio embedding of the
sample's whole wav (BAaV: msclap 2023 ``compute_similarity``, nouns as they are); ACap+VCls
(not in BAaV's code): each phrase as "a photo of {phrase}" against the CLIP image
embedding. Cosine similarities; each side loads on first use, so VCap+ACls never loads
CLIP. ``clap_model`` / ``clip_model``: hub ids (pinned revisions) or local folders.

Inversion: BAaV's CLAP was trained against the RIS model's frozen CLIP text encoder, so its
pseudo-word embeddings could be injected into the RIS model; that CLAP is not released. Here
the pseudo-words are optimised through the released CLAP's own frozen text encoder (RoBERTa
+ projection: the space its audio embedding lives in) towards the CLAP audio embedding of
the whole wav, and discretised to CLAP's whole-word vocabulary (:mod:`.inversion`); the RIS
model reads those words as its query, through its own text encoder.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from avsbridge.backends import resolve_device
from avsbridge.zeroshot_query import MATCHERS
from avsbridge.zeroshot_query.inversion import (
    InversionSettings,
    clap_text_encoder,
    embedding_digest,
    invert,
    memo_key,
    word_vocabulary,
)

DEFAULT_CLAP = "laion/clap-htsat-unfused"
DEFAULT_CLIP = "openai/clip-vit-base-patch16"
CLIP_TEMPLATE = "a photo of {}"


class ClapClipMatcher:
    name = "clap-clip"
    can_invert = True

    def __init__(
        self,
        clap_model: str = DEFAULT_CLAP,
        clap_revision: str | None = None,
        clip_model: str = DEFAULT_CLIP,
        clip_revision: str | None = None,
        device: str = "auto",
    ) -> None:
        import torch

        self._torch = torch
        self.device = resolve_device(device)
        self._specs = {"clap": (clap_model, clap_revision), "clip": (clip_model, clip_revision)}
        self._loaded: dict[str, tuple[Any, Any]] = {}
        self._refs: dict[str, Any] = {}
        self._inversion: tuple[Any, Any] | None = None  # (encoder, vocabulary)
        self._runs: dict[tuple[str, str], dict[str, Any]] = {}

    def _load(self, side: str) -> tuple[Any, Any]:
        if side not in self._loaded:
            from transformers import ClapModel, ClapProcessor, CLIPModel, CLIPProcessor

            from avsbridge.zeroshot.hf import model_folder

            folder, self._refs[side] = model_folder(*self._specs[side])
            model_cls, proc_cls = (
                (ClapModel, ClapProcessor)
                if side == "clap"
                else (
                    CLIPModel,
                    CLIPProcessor,
                )
            )
            model = model_cls.from_pretrained(folder).eval().to(self.device)
            self._loaded[side] = (model, proc_cls.from_pretrained(folder))
        return self._loaded[side]

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "clap": self._refs.get("clap", {"id": self._specs["clap"][0]}),
            "clip": self._refs.get("clip", {"id": self._specs["clip"][0]}),
            "clip_template": CLIP_TEMPLATE,
            "inversion": (
                "pseudo-words optimised through CLAP's own frozen text encoder towards the CLAP"
                " audio embedding (BAaV: CLAP trained with the RIS model's frozen CLIP text"
                " encoder, not released), discretised to CLAP's whole-word vocabulary"
            ),
        }

    @staticmethod
    def _cos(a: Any, b: Any) -> list[float]:
        a = a / a.norm(dim=-1, keepdim=True)
        b = b / b.norm(dim=-1, keepdim=True)
        return [float(v) for v in (b @ a[0]).cpu().numpy()]

    def _audio_embedding(self, sample: Any) -> Any:
        """CLAP audio embedding of the sample's whole wav (1 x D), resampled to CLAP's rate."""
        from avsbridge.data.audio import resample
        from avsbridge.io import read_wav

        model, processor = self._load("clap")
        rate = int(processor.feature_extractor.sampling_rate)
        wav, sr = read_wav(sample.audio)
        wav = resample(wav.mean(axis=1) if wav.ndim > 1 else wav, sr, rate)
        with self._torch.no_grad():
            a = processor(
                audio=[np.asarray(wav, np.float32)], sampling_rate=rate, return_tensors="pt"
            )
            return _tensor(model.get_audio_features(**a.to(self.device)))

    def score_audio(self, phrases: list[str], audio: dict[str, Any], sample: Any) -> list[float]:
        model, processor = self._load("clap")
        audio_emb = self._audio_embedding(sample)
        with self._torch.no_grad():
            t = processor(text=phrases, return_tensors="pt", padding=True).to(self.device)
            text_emb = model.get_text_features(**t)
        return self._cos(audio_emb, _tensor(text_emb))

    def invert(
        self, sample: Any, audio: dict[str, Any] | None, settings: InversionSettings
    ) -> dict[str, Any]:
        """The CLAP audio embedding inverted through CLAP's frozen text encoder (module doc)."""
        model, processor = self._load("clap")
        if self._inversion is None:
            encoder = clap_text_encoder(model, processor.tokenizer, "clap")
            self._inversion = (encoder, word_vocabulary(processor.tokenizer))
        encoder, vocabulary = self._inversion
        target = self._audio_embedding(sample)[0].detach().cpu().numpy().astype(np.float32)
        key = memo_key(target, settings)
        if key not in self._runs:  # frames of one clip share its wav
            self._torch.manual_seed(settings.seed)
            self._runs[key] = invert(encoder, target, settings, vocabulary)
        run = self._runs[key]
        return {
            "target": embedding_digest(target),
            "target_source": {"about": "CLAP audio embedding of the whole wav"},
            "settings": settings.to_dict(),
            **run,
        }

    def score_image(self, phrases: list[str], image: dict[str, Any], sample: Any) -> list[float]:
        from PIL import Image

        from avsbridge.io import read_image

        model, processor = self._load("clip")
        img = Image.fromarray(read_image(sample.image, mode="RGB"))
        texts = [CLIP_TEMPLATE.format(p) for p in phrases]
        with self._torch.no_grad():
            inputs = processor(text=texts, images=img, return_tensors="pt", padding=True)
            out = model(**inputs.to(self.device))
        return self._cos(out.image_embeds, out.text_embeds)


def _tensor(features: Any) -> Any:
    """transformers 5 may wrap pooled features in an output object."""
    return getattr(features, "pooler_output", features)


MATCHERS.register("clap-clip", gpu=True, env="zeroshot", mem_mb=4000)(ClapClipMatcher)
