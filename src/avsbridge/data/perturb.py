"""Audio-control perturbations (TeSO §4.4, Tab. 4): mute and white Gaussian noise at 10 / 40 dB.

TeSO evaluates models "using muted audio and noise-only audio (at 10 dB and 40 dB)
INSTEAD OF the corresponding audio signals", visual features unchanged; its
appendix calls the input "pure Gaussian white noise". So:

* ``mute``: the clip's samples replaced by zeros (same length and rate).
* ``wgn10`` / ``wgn40``: the samples REPLACED by white Gaussian noise (no signal
  left). The only reference TeSO's text leaves for "10 dB" is the audio the noise
  stands in for, so the level is an SNR against that clip: noise power
  P_n = P_s / 10^(dB / 10), with P_s = mean(x^2) over the whole clip's waveform
  (float samples in [-1, 1], as :func:`avsbridge.io.read_wav` returns them). The
  noise is rescaled to exactly P_n, so 10 * log10(P_s / mean(n^2)) is the nominal
  dB up to float32 rounding. 10 dB noise is louder than 40 dB noise. A silent
  clip (P_s = 0) gets zero noise: nothing to be 10 dB below.
* ``mode="add"`` (not TeSO's test, for robustness studies) returns x + n for the
  noise perturbations instead; mute is zeros in both modes.

Reproducible: the noise seed is sha256("{clip_id}|{perturbation}") -> 64-bit, so a
clip's noise is the same in every run, shard and process, and differs between
clips and between wgn10 and wgn40. The generator is numpy's PCG64 ``Generator``
(``standard_normal``), pinned with numpy in requirements.lock.
"""

from __future__ import annotations

import hashlib

import numpy as np

PERTURBATIONS: dict[str, float | None] = {"none": None, "mute": None, "wgn10": 10.0, "wgn40": 40.0}
MODES = ("replace", "add")


def noise_seed(clip_id: str, perturbation: str) -> int:
    """Stable 64-bit seed of a clip's noise (independent of shard, run, process, hash seed)."""
    digest = hashlib.sha256(f"{clip_id}|{perturbation}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def signal_power(samples: np.ndarray) -> float:
    """Mean square of the waveform (the dB reference); 0.0 for an empty clip."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    return float(np.mean(np.square(x))) if x.size else 0.0


def snr_db(signal: np.ndarray, noise: np.ndarray) -> float:
    """10 * log10(P_signal / P_noise): how the perturbation's level is defined and tested."""
    return 10.0 * float(np.log10(signal_power(signal) / signal_power(noise)))


def white_noise(reference: np.ndarray, db: float, seed: int) -> np.ndarray:
    """Gaussian noise as long as ``reference``, with power exactly P_ref / 10^(db/10)."""
    x = np.asarray(reference, dtype=np.float64).reshape(-1)
    target = signal_power(x) / 10.0 ** (db / 10.0)
    if x.size == 0 or target == 0.0:
        return np.zeros(x.shape, dtype=np.float32)
    draw = np.random.default_rng(seed).standard_normal(x.size)
    draw *= np.sqrt(target / np.mean(np.square(draw)))
    return draw.astype(np.float32)


def perturb(
    samples: np.ndarray, perturbation: str, clip_id: str, mode: str = "replace"
) -> np.ndarray:
    """The clip's waveform under ``perturbation`` (none | mute | wgn10 | wgn40), float32 1-D."""
    if perturbation not in PERTURBATIONS:
        raise ValueError(
            f"unknown audio perturbation {perturbation!r} (known: {', '.join(PERTURBATIONS)})"
        )
    if mode not in MODES:
        raise ValueError(f"perturbation mode must be one of {', '.join(MODES)}, got {mode!r}")
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if perturbation == "none":
        return x.copy()
    if perturbation == "mute":
        return np.zeros_like(x)  # in either mode: nothing is left to add to
    db = PERTURBATIONS[perturbation]
    assert db is not None
    noise = white_noise(x, db, noise_seed(clip_id, perturbation))
    return noise if mode == "replace" else (x + noise).astype(np.float32)
