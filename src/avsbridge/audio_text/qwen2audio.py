"""Qwen2-Audio-Instruct through transformers: an ALM prompt-able like Pengi, natively maintained.

The ALM prompt goes in the user's text turn after the audio (the processor's chat
template), decoding is greedy so a re-run gives the same text. With
``model_path`` the model and processor load from a local folder (the offline
tests use a tiny random model saved there); otherwise ``model_id`` at the pinned
``revision`` loads from the Hugging Face cache (``HF_HUB_OFFLINE=1`` keeps it local).
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.audio_text.base import (
    AUDIO_TEXTERS,
)
from avsbridge.backends import hf_snapshot_dir, model_folder_digest, resolve_device

QWEN2_AUDIO_RATE = 16_000
DEFAULT_MODEL_ID = "Qwen/Qwen2-Audio-7B-Instruct"
# A commit of the model repo's history (its "Update README.md" after the weights were
# uploaded); loading by commit keeps later pushes from changing results silently.
DEFAULT_REVISION = "7a028b553989e86d5ffb4673457a85491e5a0e26"


def torch_dtype(name: str, device: str) -> Any:
    """ "auto" -> bfloat16 on GPU (7B fits), float32 on CPU; else the named torch dtype."""
    import torch

    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        return getattr(torch, name)
    except AttributeError:
        raise ValueError(f"unknown torch dtype {name!r}") from None


@AUDIO_TEXTERS.register("qwen2audio", gpu=True, mem_mb=24000)
class Qwen2AudioTexter:
    """Qwen2-Audio generate(): one chat turn per window (audio + ALM prompt), batched."""

    name = "qwen2audio"
    sample_rate = QWEN2_AUDIO_RATE

    def __init__(
        self,
        model_id: str = DEFAULT_MODEL_ID,
        revision: str | None = DEFAULT_REVISION,
        model_path: PathLike[str] | str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        max_new_tokens: int = 48,
        batch_size: int = 8,
        seed: int = 0,
    ) -> None:
        from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration

        self.model_id = model_id if model_path is None else str(model_path)
        self.revision = revision if model_path is None else None
        self.device = resolve_device(device)
        self.max_new_tokens = int(max_new_tokens)
        self.batch_size = max(1, int(batch_size))
        self.seed = int(seed)
        folder = Path(model_path) if model_path is not None else hf_snapshot_dir(model_id, revision)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder}: no config.json (not a transformers model folder)")
        self.weights_sha256 = model_folder_digest(folder)
        self.dtype = torch_dtype(dtype, self.device)
        self.processor = AutoProcessor.from_pretrained(folder)
        self.processor.tokenizer.padding_side = "left"  # batched generation continues on the right
        self.model = Qwen2AudioForConditionalGeneration.from_pretrained(folder, dtype=self.dtype)
        self.model.to(self.device)
        self.model.eval()

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model_id,
            "revision": self.revision,
            "weights_sha256": self.weights_sha256,
            "decoding": {
                "strategy": "greedy",
                "max_new_tokens": self.max_new_tokens,
                "dtype": str(self.dtype).removeprefix("torch."),
                "input_rate": QWEN2_AUDIO_RATE,
            },
        }

    def _chat_text(self, prompt: str) -> str:
        conversation = [
            {
                "role": "user",
                "content": [
                    {"type": "audio", "audio": "window"},
                    {"type": "text", "text": prompt},
                ],
            }
        ]
        return self.processor.apply_chat_template(
            conversation, add_generation_prompt=True, tokenize=False
        )

    def describe(self, windows: list[np.ndarray], prompt: str) -> list[str]:
        import torch

        chat = self._chat_text(prompt)
        texts: list[str] = []
        for start in range(0, len(windows), self.batch_size):
            batch = [
                np.asarray(w, dtype=np.float32).reshape(-1)
                for w in windows[start : start + self.batch_size]
            ]
            inputs = self.processor(
                text=[chat] * len(batch),
                audio=batch,
                sampling_rate=QWEN2_AUDIO_RATE,
                return_tensors="pt",
                padding=True,
            )
            inputs = inputs.to(self.device)
            if "input_features" in inputs:
                inputs["input_features"] = inputs["input_features"].to(self.dtype)
            torch.manual_seed(self.seed)
            with torch.inference_mode():
                generated = self.model.generate(
                    **inputs, max_new_tokens=self.max_new_tokens, do_sample=False
                )
            new_tokens = generated[:, inputs["input_ids"].shape[1] :]
            decoded = self.processor.batch_decode(new_tokens, skip_special_tokens=True)
            texts.extend(" ".join(text.split()) for text in decoded)
        return texts
