"""What Pengi's code (commit 31d5e37, written for torch 2.0 / transformers 4.28) needs on this stack.

Pengi's own files are never edited; the adapter applies these from outside:

* **torchaudio**: Pengi's ``wrapper.py`` imports it only to read a wav and resample.
  torchaudio has no release for torch 2.14 (and from 2.9 decoding needs torchcodec
  plus FFmpeg), so :func:`torchaudio_shim` gives Pengi a module with the two names it
  uses -- ``load`` (PCM wav, normalised like torchaudio: int16 / 32768) and
  ``transforms.Resample`` -- installed only while ``wrapper.py`` is imported.
* **encode_plus**: removed in transformers 5; Pengi tokenises prompts with
  ``encode_plus(..., max_length=, pad_to_max_length=True)``. :func:`add_encode_plus`
  puts the 4.28 meaning of that call back on the two tokenizer *instances* Pengi
  made (pad to and truncate at ``max_length``), nothing global.
* **checkpoint**: a checkpoint saved under transformers 4.28 carries buffers that
  later versions no longer persist (GPT-2 ``attn.bias`` / ``attn.masked_bias``, CLIP
  ``embeddings.position_ids``); Pengi loads strictly, so they are dropped
  (:func:`drop_stale_buffers`). torch >= 2.6 loads with ``weights_only=True``; a
  checkpoint holding other objects is unpickled fully only after its hash matched a
  pin (:func:`load_checkpoint_state`).
"""

from __future__ import annotations

import re
import types
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.io import ArtifactError

# Buffers transformers 4.28 saved and >= 4.31 / 5.x no longer has in state_dict().
STALE_BUFFER_KEYS = (
    re.compile(r"(^|\.)gpt\.transformer\.h\.\d+\.attn\.(bias|masked_bias)$"),
    re.compile(r"(^|\.)embeddings\.position_ids$"),
)


def drop_stale_buffers(state: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The state dict without the stale transformers buffers, and the keys dropped."""
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in state.items():
        if any(pattern.search(key) for pattern in STALE_BUFFER_KEYS):
            dropped.append(key)
        else:
            kept[key] = value
    return kept, dropped


def load_checkpoint_state(path: Path, hash_verified: bool) -> dict[str, Any]:
    """Pengi's ``{"model": state_dict}`` from ``path``, unpickled fully only when verified.

    An unverified file goes through ``weights_only=True`` (tensors and plain
    containers only); if it holds anything else the error says to pin its hash.
    """
    import pickle

    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=not hash_verified)
    except pickle.UnpicklingError as exc:
        if hash_verified:
            raise ArtifactError(path, f"not a readable torch checkpoint ({exc})") from None
        raise ArtifactError(
            path,
            "holds objects other than tensors, which torch.load(weights_only=True) refuses; "
            "pin the file's sha256 (option checkpoint_sha256) or its published md5 so it "
            "can be unpickled fully",
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise ArtifactError(path, f"not a readable torch checkpoint ({exc})") from None
    state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state:
        raise ArtifactError(path, "not a Pengi checkpoint (no non-empty 'model' state dict)")
    return state


def _encode_plus(
    self: Any,
    text: str,
    add_special_tokens: bool = True,
    max_length: int | None = None,
    pad_to_max_length: bool = False,
    return_tensors: str | None = None,
    **kwargs: Any,
) -> Any:
    """transformers 4.28's ``encode_plus`` as Pengi calls it (one text).

    There, ``pad_to_max_length=True`` meant ``padding="max_length"``, and a
    ``max_length`` without an explicit truncation meant ``truncation=True``.
    """
    padding = kwargs.pop("padding", "max_length" if pad_to_max_length else False)
    truncation = kwargs.pop("truncation", max_length is not None)
    return self(
        text=text,
        add_special_tokens=add_special_tokens,
        max_length=max_length,
        padding=padding,
        truncation=truncation,
        return_tensors=return_tensors,
        **kwargs,
    )


def add_encode_plus(tokenizer: Any) -> Any:
    """Give one tokenizer instance Pengi's ``encode_plus`` where transformers removed it."""
    if not hasattr(tokenizer, "encode_plus"):
        tokenizer.encode_plus = types.MethodType(_encode_plus, tokenizer)
    return tokenizer


# --- torchaudio ---------------------------------------------------------------------------


def _load_wav(path: str, *args: Any, **kwargs: Any) -> tuple[Any, int]:
    """torchaudio.load for PCM wav: (channels, frames) float32 in [-1, 1], rate."""
    import torch

    try:
        with wave.open(str(path), "rb") as wf:
            channels, width, rate = wf.getnchannels(), wf.getsampwidth(), wf.getframerate()
            raw = wf.readframes(wf.getnframes())
    except (wave.Error, EOFError, OSError) as exc:
        raise ArtifactError(path, f"unreadable wav for Pengi ({exc})") from None
    if width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 4:
        data = np.frombuffer(raw, dtype="<i4").astype(np.float32) / 2147483648.0
    else:
        raise ArtifactError(path, f"unsupported sample width {width} bytes for Pengi")
    frames = len(data) // channels
    data = data[: frames * channels].reshape(frames, channels).T
    return torch.from_numpy(np.ascontiguousarray(data)), rate


class _Resample:
    """torchaudio.transforms.Resample's call shape, by polyphase filtering (scipy)."""

    def __init__(self, orig_freq: int, new_freq: int) -> None:
        from math import gcd

        step = gcd(int(orig_freq), int(new_freq))
        self.up, self.down = int(new_freq) // step, int(orig_freq) // step

    def __call__(self, waveform: Any) -> Any:
        import torch
        from scipy.signal import resample_poly

        out = resample_poly(waveform.numpy(), self.up, self.down, axis=-1)
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))


def torchaudio_shim() -> types.ModuleType:
    """A ``torchaudio`` with what Pengi's wrapper uses: ``load`` and ``transforms.Resample``."""
    module = types.ModuleType("torchaudio")
    transforms = types.ModuleType("torchaudio.transforms")
    transforms.Resample = _Resample  # type: ignore[attr-defined]
    module.load = _load_wav  # type: ignore[attr-defined]
    module.transforms = transforms  # type: ignore[attr-defined]
    module.__avsbridge_shim__ = True  # type: ignore[attr-defined]
    return module


@contextmanager
def shimmed_modules(replacements: dict[str, types.ModuleType]) -> Iterator[None]:
    """Put modules in ``sys.modules`` for one import, then restore what was there."""
    import sys

    saved = {name: sys.modules.get(name) for name in replacements}
    sys.modules.update(replacements)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
