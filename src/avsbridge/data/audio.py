"""Audio windows aligned with frames: frame k hears ``[k/fps, (k+1)/fps)``.

Language-bridged AVS describes the sound of each frame separately (OpenAVS
feeds one 1-s window per frame to the audio-language model), so every stage
that turns audio into text cuts windows here, the same way.

Short audio is padded the way the official AVSBench preprocessing does: its
VGGish step makes one example per whole second and, when a clip yields fewer
than 5, repeats the last complete example for the missing seconds
(``preprocess_scripts/preprocess_s4.py``, ``extract_one_log_mel``). Here a
window that is at least half covered keeps its own samples (zero-padded tail);
every later window repeats the last such window. Either way a warning names
the file, since the frames after the end then hear a copy, not their own sound.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from avsbridge.data.avsbench import AudioShortWarning
from avsbridge.data.records import Clip
from avsbridge.io import read_wav

__all__ = ["AudioShortWarning", "frame_windows", "load_clip_windows", "resample"]


def resample(samples: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling by the exact rational ratio target_rate/rate."""
    if target_rate == rate:
        return np.asarray(samples, dtype=np.float32)
    g = math.gcd(int(rate), int(target_rate))
    out = resample_poly(np.asarray(samples, dtype=np.float64), target_rate // g, rate // g)
    return out.astype(np.float32)


def frame_windows(
    samples: np.ndarray,
    rate: int,
    n_frames: int,
    fps: float = 1.0,
    target_rate: int | None = None,
    path: os.PathLike[str] | str | None = None,
) -> list[np.ndarray]:
    """Cut one window of ``1/fps`` s per frame, resampled to ``target_rate``.

    Returns ``n_frames`` float32 arrays of equal length. Audio longer than the
    frames is cut; shorter audio is padded (see the module doc) with an
    :class:`AudioShortWarning` naming ``path``.
    """
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(f"{path or 'audio'}: expected mono samples (1-D), got {samples.shape}")
    if rate <= 0 or n_frames < 1 or fps <= 0:
        raise ValueError(f"bad window request: rate={rate}, n_frames={n_frames}, fps={fps}")
    out_rate = int(target_rate or rate)
    if out_rate <= 0:
        raise ValueError(f"bad target_rate {target_rate}")

    needed_s = n_frames / fps
    short = len(samples) < round(needed_s * rate)
    signal = resample(samples, int(rate), out_rate)

    win = max(1, round(out_rate / fps))
    starts = [round(k * out_rate / fps) for k in range(n_frames)]
    total = starts[-1] + win
    if not short and len(signal) < total:
        # Only resampling rounding left us a few samples short: pad silently.
        signal = np.pad(signal, (0, total - len(signal)))

    windows: list[np.ndarray] = []
    last_own = np.zeros(win, dtype=np.float32)
    for k, start in enumerate(starts):
        covered = max(0, min(win, len(signal) - start))
        if covered * 2 >= win or k == 0:
            # The frame's own sound; a partly covered window gets a silent tail.
            last_own = np.zeros(win, dtype=np.float32)
            last_own[:covered] = signal[start : start + covered]
            windows.append(last_own)
        else:
            windows.append(last_own.copy())

    if short:
        where = str(path) if path is not None else "audio"
        warnings.warn(
            f"{where}: audio is {len(samples) / rate:.3f} s, shorter than {n_frames} frames "
            f"at {fps:g} fps ({needed_s:g} s); padded by repeating the last full window",
            AudioShortWarning,
            stacklevel=2,
        )
    return windows


def load_clip_windows(clip: Clip, target_rate: int | None = None) -> list[np.ndarray]:
    """Read a clip's wav and cut one window per frame (errors name the wav)."""
    if clip.audio is None:
        raise ValueError(f"clip {clip.id!r} has no audio file")
    samples, rate = read_wav(Path(clip.audio))
    return frame_windows(
        samples,
        rate,
        clip.n_frames,
        fps=clip.fps,
        target_rate=target_rate,
        path=clip.audio,
    )
