"""Stage 2 runner: one shard of clips -> one folder of per-clip audio texts.

A Snakemake job calls :func:`describe_shard` once per shard: the backend is loaded
once, every clip's wav is read and checked before any model work, the 1-s frame
windows of all clips are described in batches, and the folder appears atomically
(a killed job leaves only a ``.tmp`` folder that no later run trusts).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.audio_text.base import AUDIO_TEXTERS, AudioTexter
from avsbridge.audio_text.prompts import prompt_text
from avsbridge.data.records import Clip
from avsbridge.io import ArtifactError, atomic_dir, atomic_write_json, read_wav, sha256_file

SUMMARY_NAME = "_summary.json"
FRAMES_PER_CALL = 64

log = logging.getLogger("avsbridge.audio_text")


def _read_clip_audio(clip: Clip) -> tuple[np.ndarray, int, str]:
    """Samples, rate and sha256 of a clip's wav; every problem names the file."""
    if clip.audio is None:
        raise ArtifactError(clip.id, "clip has no audio file")
    samples, rate = read_wav(clip.audio)
    if samples.size == 0:
        raise ArtifactError(clip.audio, "wav holds no samples")
    if not np.all(np.isfinite(samples)):
        raise ArtifactError(clip.audio, "wav holds non-finite samples")
    return samples, rate, sha256_file(clip.audio)


def _cut_windows(clip: Clip, samples: np.ndarray, rate: int, target_rate: int) -> list[np.ndarray]:
    from avsbridge.data.audio import frame_windows

    windows = frame_windows(
        samples, rate, clip.n_frames, fps=clip.fps, target_rate=target_rate, path=clip.audio
    )
    if len(windows) != clip.n_frames:
        raise ArtifactError(
            clip.audio or clip.id, f"{len(windows)} audio windows for {clip.n_frames} frames"
        )
    return windows


def describe_windows(
    texter: AudioTexter, windows: list[np.ndarray], prompt: str, frames_per_call: int
) -> list[str]:
    """Describe windows in batches of ``frames_per_call``; checks one text per window."""
    texts: list[str] = []
    for start in range(0, len(windows), max(1, frames_per_call)):
        batch = windows[start : start + max(1, frames_per_call)]
        answer = texter.describe(batch, prompt)
        if len(answer) != len(batch):
            raise RuntimeError(
                f"{texter.name} returned {len(answer)} texts for {len(batch)} windows"
            )
        texts.extend(str(text) for text in answer)
    return texts


def describe_shard(
    clips: list[Clip],
    backend: str,
    backend_options: dict[str, Any],
    prompt_key: str,
    out_dir: Path,
    frames_per_call: int = FRAMES_PER_CALL,
) -> None:
    """Write ``out_dir/{clip.slug}.json`` per clip and ``out_dir/_summary.json``, atomically.

    Each clip record: clip id, backend identity, prompt key and text, one text per
    frame, ``alm_calls`` (= frames described) and the wav's sha256.
    """
    out_dir = Path(out_dir)
    prompt = prompt_text(prompt_key)
    audio = [_read_clip_audio(clip) for clip in clips]  # fail on bad input before loading a model

    started = time.perf_counter()
    texter: AudioTexter = AUDIO_TEXTERS.create(backend, **dict(backend_options))
    load_s = time.perf_counter() - started
    identity = texter.identity()

    windows: list[np.ndarray] = []
    spans: list[tuple[int, int]] = []
    for clip, (samples, rate, _sha) in zip(clips, audio, strict=True):
        clip_windows = _cut_windows(clip, samples, rate, texter.sample_rate)
        spans.append((len(windows), len(windows) + len(clip_windows)))
        windows.extend(clip_windows)

    started = time.perf_counter()
    texts = describe_windows(texter, windows, prompt, frames_per_call)
    describe_s = time.perf_counter() - started
    # timings go to the log, not the artifact: a re-run must give the same bytes
    log.info(
        "%s/%s: %d windows, model load %.2f s, %.4f s per window",
        backend,
        prompt_key,
        len(windows),
        load_s,
        describe_s / max(len(windows), 1),
    )

    with atomic_dir(out_dir) as tmp:
        for clip, (_s, _r, audio_sha), (lo, hi) in zip(clips, audio, spans, strict=True):
            atomic_write_json(
                tmp / f"{clip.slug}.json",
                {
                    "clip": clip.id,
                    "backend": identity,
                    "prompt_key": prompt_key,
                    "prompt": prompt,
                    "texts": texts[lo:hi],
                    "alm_calls": hi - lo,
                    "audio_sha256": audio_sha,
                },
            )
        atomic_write_json(
            tmp / SUMMARY_NAME,
            {
                "backend": identity,
                "prompt_key": prompt_key,
                "prompt": prompt,
                "clips": [clip.id for clip in clips],
                "n_clips": len(clips),
                "n_frames": len(windows),
                "alm_calls": len(windows),
                "empty_texts": sum(1 for text in texts if not text),
            },
        )
