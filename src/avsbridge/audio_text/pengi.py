"""Pengi, the ALM of the OpenAVS paper (§3.3, Eq. 4), through its official wrapper.

Pengi is not on PyPI: this adapter imports ``wrapper.PengiWrapper`` from a checkout
of github.com/microsoft/Pengi given by the ``pengi_home`` option (run it in the
``envs/pengi.yaml`` environment). Pengi reads audio from files at 44.1 kHz, so
each window is written to a temporary 16-bit wav and handed over by path; Pengi
itself repeats a short clip to fill its 7-s input (its ``load_audio_into_tensor``).
The weights ``base.pth`` belong in ``<pengi_home>/configs/``; when missing there
they are resolved through :mod:`avsbridge.weights` (source ``pengi-base``) and
linked in.
"""

from __future__ import annotations

import importlib
import os
import random
import subprocess
import sys
import tempfile
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge import weights
from avsbridge.audio_text.base import AUDIO_TEXTERS
from avsbridge.backends import resolve_device
from avsbridge.io import sha256_file, write_wav

PENGI_RATE = 44_100
PENGI_CONFIGS = {"base": "base.pth", "base_no_text_enc": "base_no_text_enc.pth"}
PENGI_CODE_URL = "https://github.com/microsoft/Pengi"

weights.register_source(
    weights.WeightSource(
        name="pengi-base",
        filename="base.pth",
        url="https://zenodo.org/records/8387083/files/base.pth?download=1",
        sha256=None,
        licence="MIT (microsoft/Pengi)",
        note="Pengi base checkpoint (Zenodo record 8387083); no sha256 is published there",
    )
)
weights.register_source(
    weights.WeightSource(
        name="pengi-base_no_text_enc",
        filename="base_no_text_enc.pth",
        url="https://zenodo.org/records/8387083/files/base_no_text_enc.pth?download=1",
        sha256=None,
        licence="MIT (microsoft/Pengi)",
        note="Pengi checkpoint without text encoder (Zenodo record 8387083); no published sha256",
    )
)


def _git_commit(folder: Path) -> str | None:
    """The checkout's commit, recorded in the identity so a code change is visible."""
    try:
        out = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _strip_generated(text: str, stop_token: str) -> str:
    """Pengi's decoded beam keeps the stop token; drop it and surrounding blanks."""
    text = text.replace(stop_token.strip(), "") if stop_token.strip() else text
    return " ".join(text.split())


@AUDIO_TEXTERS.register("pengi", gpu=True, env="pengi", mem_mb=12000)
class PengiTexter:
    """Pengi ``generate`` with one ALM prompt per window, beam search, best beam kept."""

    name = "pengi"
    sample_rate = PENGI_RATE

    def __init__(
        self,
        pengi_home: PathLike[str] | str | None = None,
        config: str = "base",
        max_len: int = 30,
        beam_size: int = 3,
        temperature: float = 1.0,
        stop_token: str = " <|endoftext|>",
        batch_size: int = 16,
        device: str = "auto",
        seed: int = 0,
        link_weights: bool = True,
    ) -> None:
        home = pengi_home or os.environ.get("AVSBRIDGE_PENGI_HOME")
        if not home:
            raise ValueError(
                "pengi backend needs option pengi_home (a checkout of "
                f"{PENGI_CODE_URL}) or env AVSBRIDGE_PENGI_HOME"
            )
        self.pengi_home = Path(home).expanduser().resolve()
        if not (self.pengi_home / "wrapper.py").is_file():
            raise FileNotFoundError(f"{self.pengi_home}: no wrapper.py (not a Pengi checkout)")
        if config not in PENGI_CONFIGS:
            raise ValueError(f"unknown Pengi config {config!r} (known: {sorted(PENGI_CONFIGS)})")
        self.config = config
        self.max_len = int(max_len)
        self.beam_size = int(beam_size)
        self.temperature = float(temperature)
        self.stop_token = stop_token
        self.batch_size = max(1, int(batch_size))
        self.device = resolve_device(device)
        self.seed = int(seed)

        checkpoint = self.pengi_home / "configs" / PENGI_CONFIGS[config]
        if not checkpoint.is_file():
            if not link_weights:
                raise FileNotFoundError(f"{checkpoint}: Pengi weights missing")
            source = weights.resolve(f"pengi-{config}")
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            if checkpoint.is_symlink():
                checkpoint.unlink()
            checkpoint.symlink_to(source)
        self.checkpoint = checkpoint
        self.weights_sha256 = sha256_file(checkpoint)
        self.code_commit = _git_commit(self.pengi_home)

        if str(self.pengi_home) not in sys.path:
            sys.path.insert(0, str(self.pengi_home))
        wrapper = importlib.import_module("wrapper")
        self._seed_everything()
        self._pengi = wrapper.PengiWrapper(config=config, use_cuda=self.device.startswith("cuda"))

    def _seed_everything(self) -> None:
        random.seed(self.seed)
        np.random.seed(self.seed)
        try:
            import torch
        except ImportError:
            return
        torch.manual_seed(self.seed)

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": f"microsoft/Pengi config={self.config}",
            "code": {"url": PENGI_CODE_URL, "commit": self.code_commit},
            "weights_sha256": self.weights_sha256,
            "decoding": {
                "max_len": self.max_len,
                "beam_size": self.beam_size,
                "temperature": self.temperature,
                "stop_token": self.stop_token,
                "input_rate": PENGI_RATE,
            },
        }

    def describe(self, windows: list[np.ndarray], prompt: str) -> list[str]:
        texts: list[str] = []
        with tempfile.TemporaryDirectory(prefix="pengi-windows-") as tmp:
            for start in range(0, len(windows), self.batch_size):
                batch = windows[start : start + self.batch_size]
                paths = []
                for offset, window in enumerate(batch):
                    path = Path(tmp) / f"window_{start + offset:05d}.wav"
                    write_wav(path, np.asarray(window, dtype=np.float32), PENGI_RATE)
                    paths.append(str(path))
                self._seed_everything()
                preds = self._pengi.generate(
                    audio_paths=paths,
                    text_prompts=[prompt] * len(paths),
                    add_texts=[""] * len(paths),
                    max_len=self.max_len,
                    beam_size=self.beam_size,
                    temperature=self.temperature,
                    stop_token=self.stop_token,
                )
                if len(preds) != len(paths):
                    raise RuntimeError(
                        f"Pengi returned {len(preds)} answers for {len(paths)} windows"
                    )
                for beams, _scores in preds:
                    texts.append(_strip_generated(beams[0] if beams else "", self.stop_token))
        return texts
