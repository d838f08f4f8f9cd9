"""Frozen audio features per 1-s window: the students' audio input, cached per shard.

The official students take VGGish embeddings of each second, computed by a
frozen VGGish (AVSBench ``FREEZE_AUDIO_EXTRACTOR``, no PCA post-processing:
``POSTPROCESS_LOG_MEL_WITH_PCA = False``). Computing them once per shard as
their own artifact family lets every student, seed and teacher (and later SSP
and TeSO) reuse them, and keeps the training step free of audio work.

Layout: ``{slug}.npy`` (float32 [frames, dim]) per clip + ``_summary.json``
(backend identity: weights sha256, dim) in each shard folder.

Backends: ``vggish`` (torchvggish's port of the TF model; weights pinned in
:mod:`avsbridge.weights`) and ``yamnet-scores``: the demo's stand-in, the 521
AudioSet class scores of the offline YAMNet TFLite model (its embedding layer
is not an output of that file, so the scores are the feature, honestly named).
"""

from __future__ import annotations

import io as _io
import logging
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from avsbridge import weights
from avsbridge.data.records import Clip
from avsbridge.io import ArtifactError, atomic_dir, atomic_write_bytes, atomic_write_json
from avsbridge.progress import Progress
from avsbridge.registry import Registry

log = logging.getLogger("avsbridge.audio_features")
SUMMARY = "_summary.json"

weights.register_source(
    weights.WeightSource(
        name="vggish",
        filename="vggish-10086976.pth",
        url="https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth",
        # torch-hub file names carry the first 8 hex digits of the file's sha256; the
        # full hash is recorded on first fetch (no published full hash)
        sha256=None,
        licence="Apache-2.0",
        note="VGGish (AudioSet) PyTorch port, the AVSBench audio backbone; sha256 starts 10086976",
    )
)
VGGISH_SHA256_PREFIX = "10086976"


class AudioFeaturizer(Protocol):
    name: str
    dim: int

    def features(self, clip: Clip) -> np.ndarray: ...  # [n_frames, dim] float32

    def identity(self) -> dict[str, Any]: ...


AUDIO_FEATURES: Registry[AudioFeaturizer] = Registry("audio_features")


def feature_name(slug: str) -> str:
    return f"{slug}.npy"


@AUDIO_FEATURES.register("vggish")
class VGGishFeatures:
    """128-d VGGish embedding (before PCA) of each frame's 1-s window at 16 kHz."""

    name = "vggish"
    dim = 128
    sample_rate = 16_000

    def __init__(
        self, model_path: PathLike[str] | str | None = None, device: str = "cpu", batch: int = 64
    ) -> None:
        import torch
        from torchvggish.torchvggish import VGG, make_layers

        from avsbridge.backends.device import resolve_device
        from avsbridge.io import sha256_file

        path = Path(model_path) if model_path else weights.resolve("vggish")
        if not path.is_file():
            raise ArtifactError(path, "VGGish weights are missing")
        self.weights_sha256 = sha256_file(path)
        if model_path is None and not self.weights_sha256.startswith(VGGISH_SHA256_PREFIX):
            raise ArtifactError(path, f"sha256 {self.weights_sha256} is not the pinned VGGish file")
        self.device = resolve_device(device)
        model = VGG(make_layers(), postprocess=False)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except (RuntimeError, OSError, ValueError, KeyError) as exc:
            raise ArtifactError(path, f"not VGGish weights ({exc})") from None
        self.model = model.eval().to(self.device)
        self.batch = int(batch)
        self.model_path = path

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model_path.name,
            "weights_sha256": self.weights_sha256,
            "dim": self.dim,
            "window": "1 s per frame @16 kHz -> one 0.96 s log-mel example (96x64), no PCA",
        }

    def features(self, clip: Clip) -> np.ndarray:
        import torch
        from torchvggish.vggish_input import waveform_to_examples

        from avsbridge.data.audio import load_clip_windows

        windows = load_clip_windows(clip, target_rate=self.sample_rate)
        examples = []
        for window in windows:
            ex = waveform_to_examples(window.astype(np.float64), self.sample_rate, True)
            examples.append(ex[:1].detach())  # [1, 1, 96, 64]: the window's first 0.96 s
        with torch.no_grad():
            x = torch.cat(examples).to(self.device)
            out = self.model(x).cpu().numpy().astype(np.float32)
        return out.reshape(len(windows), self.dim)


@AUDIO_FEATURES.register("yamnet-scores")
class YamnetScoreFeatures:
    """The 521 AudioSet scores of YAMNet per 1-s window (the demo's stand-in for VGGish)."""

    name = "yamnet-scores"
    dim = 521
    sample_rate = 16_000

    def __init__(self, model_path: PathLike[str] | str | None = None, num_threads: int = 1) -> None:
        from avsbridge.audio_text.yamnet import YamnetTexter

        self._tagger = YamnetTexter(model_path=model_path, num_threads=num_threads)

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self._tagger.model_path.name,
            "weights_sha256": self._tagger.weights_sha256,
            "dim": self.dim,
            "window": "1 s per frame, centre-cropped to 15600 samples @16 kHz",
        }

    def features(self, clip: Clip) -> np.ndarray:
        from avsbridge.data.audio import load_clip_windows

        windows = load_clip_windows(clip, target_rate=self.sample_rate)
        return np.stack([self._tagger.scores(w) for w in windows]).astype(np.float32)


def write_npy(dest: Path, array: np.ndarray) -> None:
    buffer = _io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    atomic_write_bytes(dest, buffer.getvalue())


def read_features(folder: Path, clip: Clip, dim: int | None = None) -> np.ndarray:
    """One clip's [frames, dim] features; errors name the file and what is wrong."""
    path = Path(folder) / feature_name(clip.slug)
    if not path.is_file():
        raise ArtifactError(path, f"audio features of clip {clip.id!r} are missing")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ArtifactError(path, f"unreadable .npy ({exc})") from None
    if array.ndim != 2 or array.shape[0] != clip.n_frames or (dim and array.shape[1] != dim):
        want = f"[{clip.n_frames}, {dim or 'dim'}]"
        raise ArtifactError(path, f"features have shape {list(array.shape)}, expected {want}")
    if not np.isfinite(array).all():
        raise ArtifactError(path, "features contain NaN or inf")
    return array.astype(np.float32)


def features_shard(
    clips: Sequence[Clip], backend: str, options: dict[str, Any], out_dir: Path
) -> dict[str, Any]:
    """Write every clip's features into ``out_dir`` (atomically, as one folder)."""
    featurizer = AUDIO_FEATURES.create(backend, **options)
    progress = Progress(f"audio_features {backend} {Path(out_dir).name}", len(clips), logger=log)
    summary: dict[str, Any] = {"backend": backend, "identity": featurizer.identity(), "clips": {}}
    with atomic_dir(out_dir) as tmp:
        for clip in clips:
            array = featurizer.features(clip)
            write_npy(tmp / feature_name(clip.slug), array)
            summary["clips"][clip.id] = {"slug": clip.slug, "frames": int(array.shape[0])}
            progress.update()
        atomic_write_json(tmp / SUMMARY, summary)
    return summary
