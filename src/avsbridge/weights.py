"""Pinned weight sources, a local cache, and an offline mirror.

Every model file the project loads is named here with the URL it comes from and
its sha256. ``resolve(name)`` finds it, in order, in the offline mirror
(``AVSBRIDGE_WEIGHTS_MIRROR``), the cache dir (``AVSBRIDGE_WEIGHTS_CACHE``,
default ``~/.cache/avsbridge/weights``), or downloads it into the cache when
downloads are allowed. Whatever the source, the sha256 must match: a mirror file
with another hash is an error naming the file, never silently used.
"""

from __future__ import annotations

import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from avsbridge.io import ArtifactError, atomic_path, sha256_file

TFLITE_SUPPORT = (
    "https://raw.githubusercontent.com/tensorflow/tflite-support/"
    "dd3362ea685bb7ab1f7268c81ec567d3b720ae57/tensorflow_lite_support/cc/test/testdata/task"
)


@dataclass(frozen=True)
class WeightSource:
    """One pinned model file."""

    name: str
    filename: str
    url: str
    sha256: str | None  # None only where no published hash exists: recorded on first fetch
    licence: str = ""
    note: str = ""


SOURCES: dict[str, WeightSource] = {}


def register_source(source: WeightSource) -> WeightSource:
    if source.name in SOURCES and SOURCES[source.name] != source:
        raise ValueError(f"weight source {source.name!r} registered twice with different pins")
    SOURCES[source.name] = source
    return source


register_source(
    WeightSource(
        name="yamnet",
        filename="yamnet_audio_classifier_with_metadata.tflite",
        url=f"{TFLITE_SUPPORT}/audio/yamnet_audio_classifier_with_metadata.tflite",
        sha256="10c95ea3eb9a7bb4cb8bddf6feb023250381008177ac162ce169694d05c317de",
        licence="Apache-2.0",
        note="YAMNet AudioSet tagger, 15600 samples @16 kHz in, 521 scores out",
    )
)
register_source(
    WeightSource(
        name="coco-ssd",
        filename="coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite",
        url=f"{TFLITE_SUPPORT}/vision/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite",
        sha256="61d598093ed03ed41aa47c3a39a28ac01e960d6a810a5419b9a5016a1e9c469b",
        licence="Apache-2.0",
    )
)
register_source(
    WeightSource(
        name="deeplabv3",
        filename="deeplabv3.tflite",
        url=f"{TFLITE_SUPPORT}/vision/deeplabv3.tflite",
        sha256="9711334db2b01d5894feb8ed0f5cb3e97d125b8d229f8d8692f625801818f5ef",
        licence="Apache-2.0",
    )
)


# torchvision RAFT checkpoints (BSD-3-Clause). torchvision itself pins only the first 8 hex
# digits of the sha256 in the file name; the full digests below start with those digits.
register_source(
    WeightSource(
        name="raft-large",
        filename="raft_large_C_T_SKHT_V2-ff5fadd5.pth",
        url="https://download.pytorch.org/models/raft_large_C_T_SKHT_V2-ff5fadd5.pth",
        sha256="ff5fadd56d26b40647388883af1547351ea17868b765c05b27231e72dd16a322",
        licence="BSD-3-Clause",
        note="torchvision Raft_Large_Weights.C_T_SKHT_V2 (the DEFAULT): Chairs+Things+Sintel mix",
    )
)
register_source(
    WeightSource(
        name="raft-small",
        filename="raft_small_C_T_V2-01064c6d.pth",
        url="https://download.pytorch.org/models/raft_small_C_T_V2-01064c6d.pth",
        sha256="01064c6dba73b0fc9fc8edf772248560a00a3acfd62ac6677e9eeebad9680e27",
        licence="BSD-3-Clause",
        note="torchvision Raft_Small_Weights.C_T_V2 (the DEFAULT): FlyingChairs + FlyingThings3D",
    )
)


def mirror_dir() -> Path | None:
    value = os.environ.get("AVSBRIDGE_WEIGHTS_MIRROR")
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    value = os.environ.get("AVSBRIDGE_WEIGHTS_CACHE")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "avsbridge" / "weights"


def downloads_allowed() -> bool:
    return os.environ.get("AVSBRIDGE_OFFLINE", "0") not in {"1", "true", "yes"}


def _verified(path: Path, source: WeightSource) -> Path:
    if source.sha256 is None:
        return path
    actual = sha256_file(path)
    if actual != source.sha256:
        raise ArtifactError(
            path, f"sha256 {actual} does not match the pinned {source.sha256} for {source.name!r}"
        )
    return path


def resolve(name: str) -> Path:
    """Local path of a pinned weight file, verified against its sha256."""
    try:
        source = SOURCES[name]
    except KeyError:
        raise KeyError(f"no pinned weight source {name!r} (known: {sorted(SOURCES)})") from None
    mirror = mirror_dir()
    if mirror is not None and (mirror / source.filename).is_file():
        return _verified(mirror / source.filename, source)
    cached = cache_dir() / source.filename
    if cached.is_file():
        return _verified(cached, source)
    if not downloads_allowed():
        where = f"mirror {mirror}" if mirror else "no mirror set (AVSBRIDGE_WEIGHTS_MIRROR)"
        raise FileNotFoundError(
            f"weight file {source.filename} for {name!r} not found ({where}, cache {cache_dir()}) "
            "and downloads are off (AVSBRIDGE_OFFLINE=1)"
        )
    with atomic_path(cached) as tmp:
        urllib.request.urlretrieve(source.url, tmp)  # noqa: S310 - pinned https URL
        _verified(tmp, source)
    return cached


def sha256_of(name: str) -> str:
    """The pinned sha256 (or the actual one, where none is published)."""
    source = SOURCES[name]
    return source.sha256 or sha256_file(resolve(name))
