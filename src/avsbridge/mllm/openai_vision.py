"""``openai-vision``: any OpenAI-compatible vision chat endpoint (GPT-4o style).

The translator's client (:class:`avsbridge.translate.openai_backend.OpenAITranslator`)
with its retry policy, fail-fast, key handling and identity; the frames travel as
PNG data URLs in ``image_url`` content parts of the first user message, the answer
turns as assistant messages. The images are not in the identity: the call cache keys
them by content hash (``attachments``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from avsbridge.mllm import MLLM_ANSWERERS, SCENE_DESCRIBERS
from avsbridge.mllm.base import Completion, Turn, check_turns, image_data_url
from avsbridge.translate.openai_backend import OpenAITranslator


class OpenAIVision(OpenAITranslator):
    """Chat Completions with images (``detail`` low | high | auto)."""

    name = "openai-vision"

    def __init__(self, max_images: int = 5, detail: str = "auto", **options: Any) -> None:
        if detail not in ("low", "high", "auto"):
            raise ValueError(f"openai-vision: detail must be low, high or auto, got {detail!r}")
        super().__init__(**options)
        self.max_images = int(max_images)
        self.detail = detail

    def identity(self) -> dict[str, Any]:
        return {
            **super().identity(),
            "backend": self.name,
            "detail": self.detail,
            "max_images": self.max_images,
        }

    def chat_messages(self, images: Sequence[np.ndarray], turns: Sequence[Turn]) -> list[dict]:
        messages: list[dict[str, Any]] = []
        for index, (role, text) in enumerate(turns):
            if index == 0:
                parts: list[dict[str, Any]] = [
                    {
                        "type": "image_url",
                        "image_url": {"url": image_data_url(i), "detail": self.detail},
                    }
                    for i in images
                ]
                parts.append({"type": "text", "text": text})
                messages.append({"role": role, "content": parts})
            else:
                messages.append({"role": role, "content": text})
        return messages

    def answer(self, images: Sequence[np.ndarray], turns: Sequence[Turn]) -> Completion:
        check_turns(turns)
        if len(images) > self.max_images:
            raise ValueError(f"openai-vision takes at most {self.max_images} images")
        return self.complete_messages(self.chat_messages(images, turns))


_OPTIONS = (
    "max_images detail model base_url api_key_env api_key temperature seed max_tokens stop "
    "response_format extra_body price_as max_connection_failures timeout_s max_attempts "
    "backoff_base_s backoff_max_s max_total_s sleep"
).split()
MLLM_ANSWERERS.register("openai-vision", mem_mb=500, options=_OPTIONS)(OpenAIVision)
SCENE_DESCRIBERS.register("openai-vision", mem_mb=500, options=_OPTIONS)(OpenAIVision)
