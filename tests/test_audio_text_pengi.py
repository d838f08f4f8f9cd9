"""Pengi adapter logic against a minimal fake ``wrapper`` module (Pengi's own code is not here).

The fake mirrors the real ``PengiWrapper`` surface the adapter uses -- the
constructor's ``config``/``use_cuda`` and ``generate(audio_paths, text_prompts,
add_texts, max_len, beam_size, temperature, stop_token)`` returning one
``(beam_texts, scores)`` pair per file with the stop token still attached -- and
reads the wavs it is given, so paths, rate and batching are checked for real.
Pengi's actual inference is NOT exercised by this test.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from avsbridge import weights
from avsbridge.audio_text import AUDIO_TEXTERS, prompt_text

FAKE_WRAPPER = """
import wave

CALLS = []


class PengiWrapper:
    def __init__(self, config, use_cuda=False):
        self.config = config
        self.use_cuda = use_cuda

    def generate(self, audio_paths, text_prompts, add_texts, max_len, beam_size,
                 temperature, stop_token, audio_resample=True):
        CALLS.append(dict(paths=list(audio_paths), prompts=list(text_prompts),
                          add_texts=list(add_texts), max_len=max_len, beam_size=beam_size,
                          temperature=temperature, stop_token=stop_token))
        preds = []
        for path, prompt in zip(audio_paths, text_prompts):
            with wave.open(path, "rb") as wf:
                rate, n = wf.getframerate(), wf.getnframes()
            best = f"{prompt.lower()} at {rate} hz for {n} samples{stop_token}"
            preds.append(([best, "second beam" + stop_token], [0.9, 0.1]))
        return preds
"""


@pytest.fixture
def fake_pengi_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "Pengi"
    (home / "configs").mkdir(parents=True)
    (home / "wrapper.py").write_text(FAKE_WRAPPER)
    (home / "configs" / "base.pth").write_bytes(b"fake checkpoint")
    monkeypatch.delitem(sys.modules, "wrapper", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield home
    sys.modules.pop("wrapper", None)


def test_pengi_adapter_writes_44k_windows_and_parses_best_beam(fake_pengi_home: Path) -> None:
    texter = AUDIO_TEXTERS.create(
        "pengi", pengi_home=fake_pengi_home, device="cpu", batch_size=2, beam_size=3
    )
    assert texter.sample_rate == 44_100
    windows = [np.full(44_100, 0.1 * (i + 1), dtype=np.float32) for i in range(3)]
    texts = texter.describe(windows, prompt_text("caption"))
    assert texts == ["generate audio caption at 44100 hz for 44100 samples"] * 3
    calls = importlib.import_module("wrapper").CALLS
    assert [len(call["paths"]) for call in calls] == [2, 1]  # batch_size respected
    first = calls[0]
    assert first["prompts"] == ["Generate audio caption"] * 2
    assert first["add_texts"] == ["", ""]
    assert (first["max_len"], first["beam_size"], first["temperature"]) == (30, 3, 1.0)
    assert first["stop_token"] == " <|endoftext|>"
    assert not Path(first["paths"][0]).exists(), "temporary window files are cleaned up"
    identity = texter.identity()
    assert identity["backend"] == "pengi"
    assert identity["model"] == "microsoft/Pengi config=base"
    assert identity["weights_sha256"] == hashlib.sha256(b"fake checkpoint").hexdigest()
    assert identity["decoding"]["beam_size"] == 3


def test_pengi_needs_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AVSBRIDGE_PENGI_HOME", raising=False)
    with pytest.raises(ValueError, match="pengi_home"):
        AUDIO_TEXTERS.create("pengi")
    with pytest.raises(FileNotFoundError, match="wrapper.py"):
        AUDIO_TEXTERS.create("pengi", pengi_home=tmp_path)


def test_pengi_weights_linked_from_mirror(
    fake_pengi_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (fake_pengi_home / "configs" / "base.pth").unlink()
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "base.pth").write_bytes(b"mirrored checkpoint")
    monkeypatch.setenv("AVSBRIDGE_WEIGHTS_MIRROR", str(mirror))
    assert weights.SOURCES["pengi-base"].sha256 is None  # no published hash to pin
    texter = AUDIO_TEXTERS.create("pengi", pengi_home=fake_pengi_home, device="cpu")
    linked = fake_pengi_home / "configs" / "base.pth"
    assert linked.is_symlink() and linked.resolve() == (mirror / "base.pth").resolve()
    assert texter.identity()["weights_sha256"] == (
        hashlib.sha256(b"mirrored checkpoint").hexdigest()
    )
    with pytest.raises(FileNotFoundError, match="weights missing"):
        linked.unlink()
        AUDIO_TEXTERS.create("pengi", pengi_home=fake_pengi_home, device="cpu", link_weights=False)
