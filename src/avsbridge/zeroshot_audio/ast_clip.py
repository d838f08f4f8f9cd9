"""``ast-clip``: AST (AudioSet) on the whole file in one pass, the transformers classifier
offered in place of BEATs (which transformers does not implement).

BAaV's classification branch gives BEATs the whole wav (mono, 16 kHz) and takes the
argmax class. Here ``ASTForAudioClassification`` scores the whole file (its feature
extractor pads or truncates to the model's ``max_length`` frames, 10.24 s for the
AudioSet checkpoint), sigmoid scores; the top class is the argmax (Silence excluded),
the tags and the templated caption (a stand-in for WavCaps, named in the identity) as
in :mod:`avsbridge.zeroshot_audio.yamnet_clip`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.audio_text.base import SILENCE_LABEL, rms, select_tags, tags_to_text
from avsbridge.data.audio import resample
from avsbridge.io import ArtifactError, read_wav
from avsbridge.zeroshot_audio import AUDIO_ANALYSERS


class ASTClipAnalyser:
    name = "ast-clip"

    def __init__(
        self,
        model_path: str | None = None,
        model_id: str | None = None,
        revision: str | None = None,
        top_k: int = 3,
        threshold: float = 0.1,
        silence_rms: float = 1e-4,
        device: str = "auto",
    ) -> None:
        from avsbridge.audio_text.ast_tagger import DEFAULT_MODEL_ID, DEFAULT_REVISION, ASTTagger

        self._tagger = ASTTagger(
            model_id=model_id or DEFAULT_MODEL_ID,
            revision=revision or DEFAULT_REVISION,
            model_path=model_path,
            device=device,
            top_k=top_k,
            threshold=threshold,
        )
        self.top_k, self.threshold, self.silence_rms = int(top_k), float(threshold), silence_rms

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "tagger": self._tagger.identity(),
            "pooling": "whole file in one pass (feature extractor pads / truncates)",
            "classifier_stands_in_for": "BEATs (AudioSet)",
            "caption_stands_in_for": "WavCaps (tags_to_text caption template)",
        }

    def analyse(self, audio: Path) -> dict[str, Any]:
        samples, rate = read_wav(audio)
        if samples.size == 0:
            raise ArtifactError(audio, "wav holds no samples")
        if samples.ndim > 1:
            samples = samples.mean(axis=1)
        samples = resample(samples, rate, self._tagger.sample_rate)
        if rms(samples) < self.silence_rms:
            return {"tags": [], "top_class": "", "caption": "", "n_windows": 0}
        scores = np.asarray(self._tagger.scores([samples])[0])
        labels = self._tagger.labels
        tags = select_tags(scores, labels, self.top_k, self.threshold)
        ranked = [int(i) for i in np.argsort(-scores) if labels[int(i)] != SILENCE_LABEL]
        return {
            "tags": [{"label": t.label, "score": round(t.score, 6)} for t in tags],
            "top_class": labels[ranked[0]] if ranked else "",
            "caption": tags_to_text(tags, "caption"),
            "n_windows": 1,
        }


AUDIO_ANALYSERS.register("ast-clip", gpu=True, env="audio_text", mem_mb=3000)(ASTClipAnalyser)
