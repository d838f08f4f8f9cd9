"""``yamnet-clip``: YAMNet AudioSet tags of a whole file, standing in for BEATs and WavCaps.

BAaV classifies the whole wav with BEATs (AudioSet, 527 classes) and captions it with
WavCaps. The demo has neither: YAMNet (521 AudioSet classes, the same ontology) scores
every audible 1-s window, the scores are averaged over those windows, the best class
is the classification, and the top tags worded by
:func:`avsbridge.audio_text.base.tags_to_text` ("caption" form) stand in for an audio
caption. Both stand-ins are named in the table note.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.audio_text.base import SILENCE_LABEL, rms, select_tags, tags_to_text
from avsbridge.data.audio import resample
from avsbridge.io import ArtifactError, read_wav
from avsbridge.zeroshot_audio import AUDIO_ANALYSERS

WINDOW_S = 1.0


class YamnetClipAnalyser:
    """Whole-file AudioSet tags (mean over audible 1-s windows) and a templated caption."""

    name = "yamnet-clip"

    def __init__(
        self,
        top_k: int = 3,
        threshold: float = 0.1,
        silence_rms: float = 1e-4,
        num_threads: int = 1,
        model_path: str | None = None,
    ) -> None:
        from avsbridge.audio_text.yamnet import YamnetTexter

        self._texter = YamnetTexter(
            model_path=model_path, top_k=top_k, threshold=threshold, num_threads=num_threads
        )
        self.top_k, self.threshold, self.silence_rms = int(top_k), float(threshold), silence_rms

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "tagger": self._texter.identity(),
            "pooling": f"mean AudioSet scores over audible {WINDOW_S:g}-s windows",
            "classifier_stands_in_for": "BEATs (AudioSet)",
            "caption_stands_in_for": "WavCaps (tags_to_text caption template)",
        }

    def analyse(self, audio: Path) -> dict[str, Any]:
        samples, rate = read_wav(audio)
        if samples.size == 0:
            raise ArtifactError(audio, "wav holds no samples")
        if samples.ndim > 1:
            samples = samples.mean(axis=1)
        samples = resample(samples, rate, self._texter.sample_rate)
        step = int(WINDOW_S * self._texter.sample_rate)
        windows = [samples[i : i + step] for i in range(0, max(len(samples), 1), step)]
        audible = [w for w in windows if w.size and rms(w) >= self.silence_rms]
        labels = self._texter.labels
        if not audible:
            return {"tags": [], "top_class": "", "caption": "", "n_windows": 0}
        mean = np.mean([self._texter.scores(w) for w in audible], axis=0)
        tags = select_tags(mean, labels, self.top_k, self.threshold)
        ranked = [i for i in np.argsort(-mean) if labels[i] != SILENCE_LABEL]
        return {
            "tags": [{"label": t.label, "score": round(t.score, 6)} for t in tags],
            "top_class": labels[int(ranked[0])] if ranked else "",
            "caption": tags_to_text(tags, "caption"),
            "n_windows": len(audible),
        }


AUDIO_ANALYSERS.register("yamnet-clip", mem_mb=800)(YamnetClipAnalyser)
