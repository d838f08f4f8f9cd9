"""AST (Audio Spectrogram Transformer) AudioSet tagger via transformers -- a tagger, not an ALM.

Like YAMNet it cannot follow a prompt: its AudioSet scores (sigmoid of the logits,
AudioSet being multi-label) are turned into prompt-shaped text by the shared
:func:`avsbridge.audio_text.base.tags_to_text`. It is the paper-profile tagger:
stronger than YAMNet, natively maintained in transformers, labels from
``config.id2label``.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.audio_text.base import (
    AUDIO_TEXTERS,
    rms,
    select_tags,
    tags_to_text,
)
from avsbridge.audio_text.prompts import prompt_key_of
from avsbridge.backends import hf_snapshot_dir, model_folder_digest, resolve_device

AST_RATE = 16_000
DEFAULT_MODEL_ID = "MIT/ast-finetuned-audioset-10-10-0.4593"
# No commit of this repo could be confirmed offline; "main" is recorded as such in the
# identity together with the weights' sha256, which is what pins the result.
DEFAULT_REVISION = "main"


@AUDIO_TEXTERS.register("ast", mem_mb=3000)
class ASTTagger:
    """ASTForAudioClassification over a batch of 1-s windows, tags templated per prompt."""

    name = "ast"
    sample_rate = AST_RATE

    def __init__(
        self,
        model_id: str = DEFAULT_MODEL_ID,
        revision: str | None = DEFAULT_REVISION,
        model_path: PathLike[str] | str | None = None,
        device: str = "auto",
        top_k: int = 3,
        threshold: float = 0.1,
        silence_rms: float = 1e-4,
        batch_size: int = 16,
    ) -> None:
        import torch
        from transformers import ASTFeatureExtractor, ASTForAudioClassification

        self.model_id = model_id if model_path is None else str(model_path)
        self.revision = revision if model_path is None else None
        self.device = resolve_device(device)
        self.top_k = int(top_k)
        self.threshold = float(threshold)
        self.silence_rms = float(silence_rms)
        self.batch_size = max(1, int(batch_size))
        folder = Path(model_path) if model_path is not None else hf_snapshot_dir(model_id, revision)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder}: no config.json (not a transformers model folder)")
        self.weights_sha256 = model_folder_digest(folder)
        self.extractor = ASTFeatureExtractor.from_pretrained(folder)
        self.model = ASTForAudioClassification.from_pretrained(folder, dtype=torch.float32)
        self.model.to(self.device)
        self.model.eval()
        id2label = self.model.config.id2label
        self.labels = [str(id2label[i]) for i in range(len(id2label))]

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model_id,
            "revision": self.revision,
            "weights_sha256": self.weights_sha256,
            "decoding": {
                "top_k": self.top_k,
                "threshold": self.threshold,
                "silence_rms": self.silence_rms,
                "scores": "sigmoid(logits)",
                "text": "tags_to_text templates",
            },
        }

    def scores(self, windows: list[np.ndarray]) -> np.ndarray:
        """AudioSet scores (n_windows, n_classes) of windows at 16 kHz."""
        import torch

        batch = [np.asarray(w, dtype=np.float32).reshape(-1) for w in windows]
        features = self.extractor(batch, sampling_rate=AST_RATE, return_tensors="pt")
        features = {k: v.to(self.device) for k, v in features.items()}
        with torch.inference_mode():
            logits = self.model(**features).logits
        return torch.sigmoid(logits).float().cpu().numpy()

    def describe(self, windows: list[np.ndarray], prompt: str) -> list[str]:
        prompt_key = prompt_key_of(prompt)
        texts: list[str] = [""] * len(windows)
        audible = [i for i, w in enumerate(windows) if rms(w) >= self.silence_rms]
        for start in range(0, len(audible), self.batch_size):
            chunk = audible[start : start + self.batch_size]
            for index, row in zip(chunk, self.scores([windows[i] for i in chunk]), strict=True):
                tags = select_tags(row, self.labels, self.top_k, self.threshold)
                texts[index] = tags_to_text(tags, prompt_key)
        return texts
