"""YAMNet demo backend: an AudioSet *tagger standing in for an ALM*.

YAMNet does not understand prompts or generate language. It scores 521 AudioSet
classes; the top tags are worded by :func:`avsbridge.audio_text.base.tags_to_text`
in the form each of the paper's prompts asks for (tag phrase, metadata list,
caption sentence). It runs on CPU through LiteRT in milliseconds per window, which
is what makes the demo profile fast and offline; paper numbers come from Pengi.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge import weights
from avsbridge.audio_text.base import (
    AUDIO_TEXTERS,
    fit_length,
    rms,
    select_tags,
    tags_to_text,
)
from avsbridge.audio_text.prompts import prompt_key_of
from avsbridge.io import ArtifactError, sha256_file

YAMNET_RATE = 16_000
YAMNET_INPUT = 15_600  # 0.975 s: the model's fixed input length
LABEL_FILE = "yamnet_label_list.txt"


# LiteRT prints this from C++ on every interpreter (one per job): noise, not news.
_LITERT_NOISE = re.compile(r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.\s*$")


@contextlib.contextmanager
def quiet_litert_info() -> Iterator[None]:
    """Drop LiteRT's XNNPACK INFO line from fd 2 while an interpreter is built.

    The line comes from native code, so Python's logging cannot filter it: fd 2 is
    pointed at a temp file for the duration and every *other* line is written
    back to stderr afterwards, so real errors stay visible.
    """
    try:
        stderr_fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real fd (pytest capture, notebooks)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(stderr_fd)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), stderr_fd)
        try:
            yield
        finally:
            os.dup2(saved, stderr_fd)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().decode("utf-8", "replace").splitlines(keepends=True)
                if not _LITERT_NOISE.match(line)
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def read_yamnet_labels(model_path: PathLike[str] | str) -> list[str]:
    """The 521 AudioSet class names embedded in the .tflite (it is also a zip archive)."""
    try:
        with zipfile.ZipFile(model_path) as archive:
            text = archive.read(LABEL_FILE).decode("utf-8")
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise ArtifactError(model_path, f"no embedded {LABEL_FILE} ({exc})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


@AUDIO_TEXTERS.register("yamnet", mem_mb=800)
class YamnetTexter:
    """YAMNet TFLite tagger whose tags are templated into prompt-shaped text.

    Windows: each 1-s window (16,000 samples) is centre-cropped (or zero-padded) to
    YAMNet's 15,600-sample input and scored once -- one inference per frame, 97.5 %
    of the window seen, no averaging over hops that would blur short events.
    Windows quieter than ``silence_rms`` (or whose top class is Silence) give "".
    """

    name = "yamnet"
    sample_rate = YAMNET_RATE

    def __init__(
        self,
        model_path: PathLike[str] | str | None = None,
        top_k: int = 3,
        threshold: float = 0.1,
        silence_rms: float = 1e-4,
        num_threads: int = 1,
        device: str = "cpu",  # accepted for a uniform option set; LiteRT runs on CPU
    ) -> None:
        from ai_edge_litert.interpreter import Interpreter

        if model_path is None:
            self.model_path = weights.resolve("yamnet")
            self.weights_sha256 = weights.sha256_of("yamnet")
        else:
            self.model_path = Path(model_path)
            if not self.model_path.is_file():
                raise ArtifactError(self.model_path, "YAMNet model is missing")
            self.weights_sha256 = sha256_file(self.model_path)
        self.labels = read_yamnet_labels(self.model_path)
        self.top_k = int(top_k)
        self.threshold = float(threshold)
        self.silence_rms = float(silence_rms)
        try:
            with quiet_litert_info():
                self._interpreter = Interpreter(
                    model_path=str(self.model_path), num_threads=int(num_threads)
                )
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ArtifactError(self.model_path, f"LiteRT cannot load the model ({exc})") from None
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        if int(np.prod(self._input["shape"])) != YAMNET_INPUT:
            raise ArtifactError(
                self.model_path,
                f"expected a {YAMNET_INPUT}-sample input, got {self._input['shape']}",
            )
        n_scores = int(np.prod(self._output["shape"]))
        if n_scores != len(self.labels):
            raise ArtifactError(
                self.model_path, f"{n_scores} scores but {len(self.labels)} embedded labels"
            )

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model_path.name,
            "weights_sha256": self.weights_sha256,
            "decoding": {
                "top_k": self.top_k,
                "threshold": self.threshold,
                "silence_rms": self.silence_rms,
                "window": f"centre-crop/pad to {YAMNET_INPUT} @ {YAMNET_RATE} Hz",
                "text": "tags_to_text templates",
            },
        }

    def scores(self, window: np.ndarray) -> np.ndarray:
        """AudioSet scores (521,) of one window at 16 kHz."""
        clip = fit_length(window, YAMNET_INPUT).reshape(self._input["shape"])
        self._interpreter.set_tensor(self._input["index"], clip.astype(np.float32))
        self._interpreter.invoke()
        return np.array(self._interpreter.get_tensor(self._output["index"])).reshape(-1)

    def describe(self, windows: list[np.ndarray], prompt: str) -> list[str]:
        prompt_key = prompt_key_of(prompt)
        texts: list[str] = []
        for window in windows:
            if rms(window) < self.silence_rms:
                texts.append("")
                continue
            tags = select_tags(self.scores(window), self.labels, self.top_k, self.threshold)
            texts.append(tags_to_text(tags, prompt_key))
        return texts
