"""Stage 2 runner: one shard of clips -> one folder of per-clip audio texts.

A Snakemake job calls :func:`describe_shard` once per shard: the backend is loaded
once, every clip's wav is read and checked before any model work, the 1-s frame
windows of all clips are described in batches, and the folder appears atomically
(a killed job leaves only a ``.tmp`` folder that no later run trusts).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.audio_text.base import AUDIO_TEXTERS, AudioTexter
from avsbridge.audio_text.prompts import prompt_text
from avsbridge.data.records import Clip
from avsbridge.io import (
    ArtifactError,
    atomic_dir,
    atomic_write_json,
    read_wav_channels,
    sha256_file,
)
from avsbridge.progress import Progress

SUMMARY_NAME = "_summary.json"
FRAMES_PER_CALL = 64

log = logging.getLogger("avsbridge.audio_text")


def _read_clip_audio(clip: Clip) -> tuple[np.ndarray, int, str, int]:
    """Samples (mono), rate, sha256 and channel count of a clip's wav; problems name the file."""
    if clip.audio is None:
        raise ArtifactError(clip.id, "clip has no audio file")
    samples, rate, channels = read_wav_channels(clip.audio)
    if samples.size == 0:
        raise ArtifactError(clip.audio, "wav holds no samples")
    if not np.all(np.isfinite(samples)):
        raise ArtifactError(clip.audio, "wav holds non-finite samples")
    return samples, rate, sha256_file(clip.audio), channels


def audio_conversions(
    rates: list[int], channels: list[int], target_rate: int, target: str
) -> list[str]:
    """What the windows do to a shard's audio, said once per job (never silently, never
    per clip): resampling to the backend's rate and down-mixing to mono."""
    said: list[str] = []
    resampled = collections.Counter(r for r in rates if r != target_rate)
    if resampled:
        froms = ", ".join(f"{n} from {r} Hz" for r, n in sorted(resampled.items()))
        said.append(f"audio resampled to {target_rate} Hz for {target}: {froms} (of {len(rates)})")
    multi = collections.Counter(c for c in channels if c > 1)
    if multi:
        what = ", ".join(f"{n} with {c} channels" for c, n in sorted(multi.items()))
        said.append(f"audio down-mixed to mono (mean of channels): {what} (of {len(channels)})")
    return said


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
    texter: AudioTexter,
    windows: list[np.ndarray],
    prompt: str,
    frames_per_call: int,
    on_batch: Callable[[int], None] | None = None,
) -> list[str]:
    """Describe windows in batches of ``frames_per_call``; checks one text per window.

    ``on_batch(windows_done)`` runs after each batch (progress reporting).
    """
    texts: list[str] = []
    for start in range(0, len(windows), max(1, frames_per_call)):
        batch = windows[start : start + max(1, frames_per_call)]
        answer = texter.describe(batch, prompt)
        if len(answer) != len(batch):
            raise RuntimeError(
                f"{texter.name} returned {len(answer)} texts for {len(batch)} windows"
            )
        texts.extend(str(text) for text in answer)
        if on_batch is not None:
            on_batch(len(texts))
    return texts


def describe_shard(
    clips: list[Clip],
    backend: str,
    backend_options: dict[str, Any],
    prompt_key: str,
    out_dir: Path,
    frames_per_call: int = FRAMES_PER_CALL,
    perturbation: str = "none",
) -> None:
    """Write ``out_dir/{clip.slug}.json`` per clip and ``out_dir/_summary.json``, atomically.

    Each clip record: clip id, backend identity, prompt key and text, one text per
    frame, ``alm_calls`` (= frames described) and the wav's sha256. ``perturbation``
    (mute | wgn10 | wgn40; the audio-control test) replaces each clip's waveform before
    the backend hears it (avsbridge.data.perturb: seeded by clip, reproducible).
    """
    from avsbridge.data.perturb import perturb

    out_dir = Path(out_dir)
    prompt = prompt_text(prompt_key)
    audio = [_read_clip_audio(clip) for clip in clips]  # fail on bad input before loading a model
    if perturbation != "none":
        audio = [
            (perturb(samples, perturbation, clip.id), rate, sha, channels)
            for clip, (samples, rate, sha, channels) in zip(clips, audio, strict=True)
        ]

    started = time.perf_counter()
    texter: AudioTexter = AUDIO_TEXTERS.create(backend, **dict(backend_options))
    load_s = time.perf_counter() - started
    identity = texter.identity()

    windows: list[np.ndarray] = []
    spans: list[tuple[int, int]] = []
    for notice in audio_conversions(
        [a[1] for a in audio], [a[3] for a in audio], texter.sample_rate, backend
    ):
        log.info("%s: %s", out_dir.name, notice)
    for clip, (samples, rate, _sha, _ch) in zip(clips, audio, strict=True):
        clip_windows = _cut_windows(clip, samples, rate, texter.sample_rate)
        spans.append((len(windows), len(windows) + len(clip_windows)))
        windows.extend(clip_windows)

    progress = Progress(f"audio_text {backend}/{prompt_key} {out_dir.name}", len(clips), logger=log)
    clip_ends = [hi for _lo, hi in spans]

    def clips_done(n_windows: int) -> None:
        progress.set(sum(1 for hi in clip_ends if hi <= n_windows))

    started = time.perf_counter()
    texts = describe_windows(texter, windows, prompt, frames_per_call, on_batch=clips_done)
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
        for clip, (_s, _r, audio_sha, _c), (lo, hi) in zip(clips, audio, spans, strict=True):
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
                    **({"audio_perturbation": perturbation} if perturbation != "none" else {}),
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
