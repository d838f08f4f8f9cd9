"""Per-frame audio windows: alignment, resampling, official-style padding of short audio."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from avsbridge.data.audio import AudioShortWarning, frame_windows, load_clip_windows
from avsbridge.data.records import Clip
from avsbridge.io import ArtifactError, write_wav

RATE = 16000


def ramp(seconds: float, rate: int = RATE) -> np.ndarray:
    """Distinct value per sample so any misalignment shows."""
    return np.arange(int(round(seconds * rate)), dtype=np.float32) / (seconds * rate)


def test_windows_align_with_frames() -> None:
    audio = ramp(5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        windows = frame_windows(audio, RATE, n_frames=5)
    assert len(windows) == 5
    for k, window in enumerate(windows):
        assert window.dtype == np.float32 and window.shape == (RATE,)
        np.testing.assert_array_equal(window, audio[k * RATE : (k + 1) * RATE])


def test_fps_sets_window_length_and_longer_audio_is_cut() -> None:
    audio = ramp(12.0)
    windows = frame_windows(audio, RATE, n_frames=10, fps=2.0)
    assert [len(w) for w in windows] == [RATE // 2] * 10
    np.testing.assert_array_equal(windows[3], audio[3 * RATE // 2 : 4 * RATE // 2])
    assert windows[-1][-1] == audio[5 * RATE - 1]  # nothing after 5 s is used


@pytest.mark.parametrize(("src", "dst"), [(16000, 8000), (44100, 16000), (8000, 16000)])
def test_resampling_keeps_pitch_and_lengths(src: int, dst: int) -> None:
    t = np.arange(5 * src) / src
    tone = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    windows = frame_windows(tone, src, n_frames=5, target_rate=dst)
    assert [len(w) for w in windows] == [dst] * 5
    spectrum = np.abs(np.fft.rfft(windows[2]))
    peak_hz = np.argmax(spectrum) * dst / len(windows[2])
    assert abs(peak_hz - 440.0) <= 1.0
    assert 0.45 < np.max(np.abs(windows[2])) < 0.55


def test_short_audio_repeats_last_full_window_and_warns() -> None:
    audio = ramp(3.2)  # frame 4 would hear 0.2 s, frame 5 nothing
    wav = Path("/data/clip/short.wav")
    with pytest.warns(AudioShortWarning, match=re.escape(str(wav))):
        windows = frame_windows(audio, RATE, n_frames=5, path=wav)
    for k in range(3):
        np.testing.assert_array_equal(windows[k], audio[k * RATE : (k + 1) * RATE])
    np.testing.assert_array_equal(windows[3], windows[2])
    np.testing.assert_array_equal(windows[4], windows[2])
    assert windows[3] is not windows[2]


def test_mostly_covered_last_window_keeps_its_own_sound() -> None:
    audio = ramp(4.6)
    with pytest.warns(AudioShortWarning, match="4.600 s"):
        windows = frame_windows(audio, RATE, n_frames=5)
    own = int(0.6 * RATE)
    np.testing.assert_array_equal(windows[4][:own], audio[4 * RATE :])
    assert not windows[4][own:].any()


def test_empty_audio_gives_silence_with_warning() -> None:
    with pytest.warns(AudioShortWarning):
        windows = frame_windows(np.zeros(0, dtype=np.float32), RATE, n_frames=3)
    assert len(windows) == 3 and all(w.shape == (RATE,) and not w.any() for w in windows)


def test_bad_requests() -> None:
    with pytest.raises(ValueError, match="mono"):
        frame_windows(np.zeros((2, RATE)), RATE, n_frames=1)
    with pytest.raises(ValueError):
        frame_windows(ramp(1.0), RATE, n_frames=0)
    with pytest.raises(ValueError):
        frame_windows(ramp(1.0), RATE, n_frames=1, fps=0)


def _clip(audio: Path | None, n_frames: int = 5) -> Clip:
    return Clip(
        id="c",
        subset="s4",
        split="test",
        category="dog",
        frames=tuple(Path(f"f{i}.png") for i in range(n_frames)),
        audio=audio,
        masks=(None,) * n_frames,
    )


def test_load_clip_windows_reads_the_wav(tmp_path: Path) -> None:
    wav = tmp_path / "clip.wav"
    t = np.arange(10 * 22050) / 22050
    write_wav(wav, 0.25 * np.sin(2 * np.pi * 300.0 * t), 22050)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        windows = load_clip_windows(_clip(wav, n_frames=10), target_rate=16000)
    assert len(windows) == 10 and {len(w) for w in windows} == {16000}
    short = tmp_path / "short.wav"
    write_wav(short, np.zeros(22050 * 2), 22050)
    with pytest.warns(AudioShortWarning, match=re.escape(str(short))):
        load_clip_windows(_clip(short), target_rate=16000)
    with pytest.raises(ArtifactError, match=re.escape(str(tmp_path / "none.wav"))):
        load_clip_windows(_clip(tmp_path / "none.wav"))
    with pytest.raises(ValueError, match="no audio"):
        load_clip_windows(_clip(None))
