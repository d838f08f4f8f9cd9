"""Pinned weight sources, a local cache, and an offline mirror.

Every model file the project loads is named here with the URL it comes from and
its sha256 (or, where the publisher lists only that, its md5). ``resolve(name)``
finds it, in order, in the offline mirror (``AVSBRIDGE_WEIGHTS_MIRROR``), the
cache dir (``AVSBRIDGE_WEIGHTS_CACHE``, default ``~/.cache/avsbridge/weights``),
or downloads it into the cache when downloads are allowed. Whatever the source,
the pinned hash must match: a mirror file with another hash is an error naming
the file, never silently used.

Hugging Face hub models that third-party code loads by id (Pengi's ``gpt2`` and
CLIP) are pinned the same way, by commit: :func:`resolve_hub_model` finds the
snapshot folder of that revision in the mirror's ``hub/`` folder (the hub cache
layout, ``models--ORG--NAME/snapshots/REVISION``), then the Hugging Face cache,
and downloads only when allowed.
"""

from __future__ import annotations

import hashlib
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
    md5: str | None = None  # the publisher's md5 where it lists no sha256 (Zenodo does this)

    @property
    def pinned(self) -> bool:
        """Whether a published hash checks the file (sha256 or md5)."""
        return bool(self.sha256 or self.md5)


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


def mirror_dir() -> Path | None:
    value = os.environ.get("AVSBRIDGE_WEIGHTS_MIRROR")
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    value = os.environ.get("AVSBRIDGE_WEIGHTS_CACHE")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "avsbridge" / "weights"


def downloads_allowed() -> bool:
    return os.environ.get("AVSBRIDGE_OFFLINE", "0") not in {"1", "true", "yes"}


def md5_file(path: os.PathLike[str] | str, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _verified(path: Path, source: WeightSource) -> Path:
    if source.sha256 is not None:
        actual = sha256_file(path)
        if actual != source.sha256:
            raise ArtifactError(
                path,
                f"sha256 {actual} does not match the pinned {source.sha256} for {source.name!r}",
            )
    if source.md5 is not None:
        actual = md5_file(path)
        if actual != source.md5:
            raise ArtifactError(
                path, f"md5 {actual} does not match the published {source.md5} for {source.name!r}"
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


# --- hub models pinned by commit ---------------------------------------------------------


@dataclass(frozen=True)
class HubModel:
    """One Hugging Face hub model repository at a pinned commit."""

    name: str
    model_id: str
    revision: str  # a commit of the model repo: a later push cannot change what loads
    licence: str = ""
    note: str = ""

    @property
    def cache_folder(self) -> str:
        """The hub cache's folder name for this repo (``models--ORG--NAME``)."""
        return "models--" + self.model_id.replace("/", "--")


HUB_MODELS: dict[str, HubModel] = {}


def register_hub_model(model: HubModel) -> HubModel:
    if model.name in HUB_MODELS and HUB_MODELS[model.name] != model:
        raise ValueError(f"hub model {model.name!r} registered twice with different pins")
    HUB_MODELS[model.name] = model
    return model


def hub_mirror_dir() -> Path | None:
    """The mirror's hub cache (``$AVSBRIDGE_WEIGHTS_MIRROR/hub``), if a mirror is set."""
    mirror = mirror_dir()
    return mirror / "hub" if mirror is not None else None


def resolve_hub_model(name: str) -> Path:
    """Local snapshot folder of a pinned hub model: mirror, then HF cache, then download."""
    try:
        model = HUB_MODELS[name]
    except KeyError:
        raise KeyError(f"no pinned hub model {name!r} (known: {sorted(HUB_MODELS)})") from None
    hub = hub_mirror_dir()
    if hub is not None:
        folder = hub / model.cache_folder / "snapshots" / model.revision
        if (folder / "config.json").is_file():
            return folder
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    offline = not downloads_allowed() or os.environ.get("HF_HUB_OFFLINE", "0") in {"1", "true"}
    try:
        return Path(
            snapshot_download(
                repo_id=model.model_id,
                revision=model.revision,
                local_files_only=offline,
                cache_dir=os.environ.get("HF_HUB_CACHE") or None,  # read now, not at import
            )
        )
    except LocalEntryNotFoundError:
        where = f"mirror {hub}" if hub is not None else "no mirror set (AVSBRIDGE_WEIGHTS_MIRROR)"
        raise FileNotFoundError(
            f"hub model {model.model_id}@{model.revision} for {name!r} not found ({where}, "
            "Hugging Face cache) and downloads are off"
        ) from None


def hub_model_ref(name: str) -> dict[str, str]:
    """What provenance records of a pinned hub model: id and commit."""
    model = HUB_MODELS[name]
    return {"id": model.model_id, "revision": model.revision}
