"""The one interface every vision-language backend implements, and what backends share.

A backend is created once per job (its model loads lazily, on the first call, so a
shard answered entirely from the call cache never loads it) and answers a
conversation about a few images: ``answer(images, turns)``. ``turns`` alternate
user / assistant, starting and ending with a user turn; the images belong to the
first user turn (SSP's Q2 is asked after Q1 and its answer A1, in one conversation).
The runners only talk to this interface, and every call goes through the shared
LLM call cache (:mod:`avsbridge.mllm.calls`).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from avsbridge.translate.backends import Completion

Turn = tuple[str, str]  # (role, text): role is "user" or "assistant"

__all__ = [
    "Completion",
    "Turn",
    "VisionChat",
    "check_turns",
    "image_data_url",
    "pick_frames",
    "turns_text",
]


@runtime_checkable
class VisionChat(Protocol):
    """Images + a user/assistant conversation -> the next assistant reply."""

    name: str
    #: how many images one request may carry (a video model: many; LLaVA-1.5: one)
    max_images: int

    def identity(self) -> dict[str, Any]:
        """What the answer depends on: backend, model id + revision / weight sha256, decoding."""
        ...

    def answer(self, images: Sequence[np.ndarray], turns: Sequence[Turn]) -> Completion: ...


def check_turns(turns: Sequence[Turn]) -> None:
    """Reject a conversation that does not alternate user/assistant from and to a user turn."""
    if not turns:
        raise ValueError("a conversation needs at least one user turn")
    for index, (role, text) in enumerate(turns):
        want = "user" if index % 2 == 0 else "assistant"
        if role != want:
            raise ValueError(f"turn {index + 1} is {role!r}, expected {want!r}")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"turn {index + 1} ({role}) is empty")
    if turns[-1][0] != "user":
        raise ValueError("a conversation must end with a user turn")


def turns_text(turns: Sequence[Turn]) -> str:
    """The conversation as the cache's ``user`` string (stable JSON, one key per content)."""
    return json.dumps([list(t) for t in turns], ensure_ascii=False)


def pick_frames(n_frames: int, max_images: int) -> list[int]:
    """0-based indices of at most ``max_images`` frames, evenly spread, middle first for one.

    One image (LLaVA-1.5) is the middle frame of the clip; more are spread over the clip
    including its ends, as video MLLMs sample a video uniformly.
    """
    if n_frames < 1:
        raise ValueError("a clip without frames cannot be shown to a vision model")
    k = max(1, min(int(max_images), n_frames))
    if k == 1:
        return [(n_frames - 1) // 2]
    return sorted({round(i * (n_frames - 1) / (k - 1)) for i in range(k)})


def image_data_url(image: np.ndarray) -> str:
    """An RGB frame as a PNG data URL (OpenAI-style ``image_url`` content parts)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def frame_paths(frames: Sequence[Path], indices: Sequence[int]) -> list[Path]:
    return [Path(frames[i]) for i in indices]
