"""What the CRIS and ETRIS backends share: ETRIS is built on CRIS's code (the same
``utils/dataset.py``, ``utils/config.py`` and ``engine.inference``), so both are run the same way.

The official checkout (never vendored) is imported from its home folder with its top-level
``model``/``utils`` packages isolated: ASDA, CRIS and ETRIS all have packages of those names,
so each build pops any loaded ``model*``/``utils*``/``engine*`` modules, imports the
checkout's, keeps references to the functions it needs and restores the previous modules.

Inference replicates CRIS's ``engine.inference`` for one sentence, through the checkout's
own functions where they exist: ``RefDataset.getTransformMat`` (letterbox: aspect kept,
centred, into ``TRAIN.input_size`` = 416), ``cv2.warpAffine`` INTER_CUBIC with CLIP's mean
as border (``RefDataset.__getitem__``), ``RefDataset.convert`` (/255, CLIP mean/std),
``tokenize(sent, TRAIN.word_len = 17, truncate=True)``, ``model(img, text)`` ->
``sigmoid`` -> bicubic (align_corners) to the input size -> the inverse affine warp
(INTER_CUBIC, border 0) back to the image size. The engine then thresholds at 0.35; here
that threshold is data (``resources/ris_thresholds.yaml``) and the map is returned, clipped
to [0, 1] (bicubic overshoot; the > 0.35 mask is unchanged).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.backends import resolve_device
from avsbridge.io import ArtifactError, sha256_file

ISOLATED = ("model", "utils", "engine")
# Imported at the top of utils/dataset.py, used only to read the training LMDBs
# (RefDataset._init_db); never on the inference path.
LMDB_ONLY = ("lmdb", "pyarrow")
UPSTREAM_ENV = "AVSBRIDGE_UPSTREAM"
CHECKPOINT_PREFIX = "module."  # train.py saves the DistributedDataParallel state dict
MESSAGE_CHARS = 400  # torch's shape-mismatch message lists every tensor


def default_home(env: str, folder: str) -> Path:
    """``$env``, else ``$AVSBRIDGE_UPSTREAM/<folder>``, else ``../shared/upstream/<folder>``."""
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    if os.environ.get(UPSTREAM_ENV):
        return Path(os.environ[UPSTREAM_ENV]) / folder
    from avsbridge.weights import project_root

    root = project_root()
    return (root.parent if root else Path.cwd()) / "shared" / "upstream" / folder


def checked_file(path: str | os.PathLike[str], sha256: str | None, what: str) -> Path:
    """The file, after its sha256 matched the pin (checked before anything loads it)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ArtifactError(p, f"{what} is missing")
    if sha256 and sha256_file(p) != sha256.lower():
        raise ArtifactError(p, f"{what}: sha256 differs from the pinned {sha256}")
    return p


def _lmdb_only_stand_in(name: str) -> types.ModuleType:
    module = types.ModuleType(name)

    def missing(attr: str) -> Any:
        raise ImportError(
            f"{name} is not installed: the CRIS/ETRIS code needs it only to read its training "
            f"LMDB datasets ({name}.{attr}); avsbridge's RIS inference does not"
        )

    module.__getattr__ = missing  # type: ignore[method-assign]
    return module


@contextlib.contextmanager
def official_code(home: Path, marker: str, what: str, key: str) -> Iterator[None]:
    """The checkout at ``home`` importable as top-level ``model``/``utils``, for a while."""
    if not (home / marker).is_file():
        raise ArtifactError(
            home, f"not a {what} checkout (no {marker}); set the backend option {key}"
        )
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k.split(".")[0] in ISOLATED}
    stand_ins = {}
    for name in LMDB_ONLY:
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            stand_ins[name] = sys.modules[name] = _lmdb_only_stand_in(name)
    sys.path.insert(0, str(home))
    try:
        yield
    finally:
        sys.path.remove(str(home))
        for k in [k for k in sys.modules if k.split(".")[0] in ISOLATED]:
            sys.modules.pop(k)
        sys.modules.update(saved)
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


def _config_path(home: Path, config: str) -> Path:
    path = Path(config).expanduser()
    path = path if path.is_absolute() else home / path
    if not path.is_file():
        raise ArtifactError(path, "config YAML is missing (option config)")
    return path


def _strip_prefix(state: dict[str, Any]) -> dict[str, Any]:
    if state and all(k.startswith(CHECKPOINT_PREFIX) for k in state):
        return {k[len(CHECKPOINT_PREFIX) :]: v for k, v in state.items()}
    return state


class CRISFamilyRIS:
    """One CRIS-code RIS model (CRIS, ETRIS) built and run through its own checkout."""

    name = ""
    model_class = ""  # the class the checkout's model/__init__.py exports
    what = ""  # the checkout's name, for messages
    marker = "model/segmenter.py"
    home_env = ""
    home_folder = ""
    default_config = ""  # the repo's YAML (relative to home) used when option config is unset

    def __init__(
        self,
        checkpoint: str,
        clip_pretrain: str,
        config: str | None = None,
        checkpoint_sha256: str | None = None,
        clip_sha256: str | None = None,
        home: str | None = None,
        opts: list[str] | None = None,
        device: str = "auto",
    ) -> None:
        import torch

        self._torch = torch
        self.device = resolve_device(device)
        self.home = (
            Path(home).expanduser() if home else default_home(self.home_env, self.home_folder)
        )
        ckpt = checked_file(checkpoint, checkpoint_sha256, f"{self.what} checkpoint")
        clip_file = checked_file(clip_pretrain, clip_sha256, "CLIP weights (clip_pretrain)")
        key = f"home (or env {self.home_env})"
        with official_code(self.home, self.marker, self.what, key):
            cfg_file = _config_path(self.home, config or self.default_config)
            cfg_module = importlib.import_module("utils.config")
            try:
                cfg = cfg_module.load_cfg_from_cfg_file(str(cfg_file))
                if opts:
                    cfg = cfg_module.merge_cfg_from_list(cfg, [str(o) for o in opts])
            except (AssertionError, KeyError, ValueError, SyntaxError) as exc:
                raise ArtifactError(cfg_file, f"config or option opts refused ({exc!r})") from None
            self.check_clip_file(cfg, clip_file, cfg_file)
            cfg.clip_pretrain = str(clip_file)
            dataset = importlib.import_module("utils.dataset")
            self._tokenize = dataset.tokenize
            # only its transform methods are used; dataset/split pick a known length entry
            known = cfg.dataset if cfg.dataset in dataset.info else "refcoco"
            self._data = dataset.RefDataset(
                lmdb_dir=None,
                mask_dir=None,
                dataset=known,
                split="val",
                mode="test",
                input_size=cfg.input_size,
                word_length=cfg.word_len,
            )
            package = importlib.import_module("model")
            if not hasattr(package, self.model_class):
                raise ArtifactError(
                    self.home,
                    f"not a {self.what} checkout (its model package has no "
                    f"{self.model_class}); set the backend option {key}",
                )
            try:
                model, _ = package.build_segmenter(cfg)
            except RuntimeError as exc:  # torch.jit.load of a file that is not TorchScript
                raise ArtifactError(
                    clip_file, f"{self.what} cannot build from it ({exc})"
                ) from None
        self.cfg = cfg
        self.model = self._load(model, ckpt).eval().to(self.device)
        self.weights = {
            "checkpoint": ckpt.name,
            "checkpoint_sha256": checkpoint_sha256 or sha256_file(ckpt),
            "clip_pretrain": clip_file.name,
            "clip_sha256": clip_sha256 or sha256_file(clip_file),
        }
        shown = cfg_file.relative_to(self.home) if cfg_file.is_relative_to(self.home) else cfg_file
        self.config = {"file": str(shown), "opts": [str(o) for o in opts or []]}

    def check_clip_file(self, cfg: Any, clip_file: Path, cfg_file: Path) -> None:
        """Backend-specific checks of the CLIP file against the config (none for CRIS)."""

    def _load(self, model: Any, ckpt: Path) -> Any:
        """train.py's checkpoint: ``{"state_dict": ...}`` of the DDP model, loaded strictly as
        test.py loads it (there into ``DataParallel(model)``: the same ``module.`` keys)."""
        torch = self._torch
        try:
            saved = torch.load(ckpt, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 -- pickle errors come in many types
            raise ArtifactError(ckpt, f"not a tensors-only checkpoint ({exc})") from None
        state = saved.get("state_dict") if isinstance(saved, dict) else None
        if not isinstance(state, dict):
            raise ArtifactError(ckpt, f"expected {{'state_dict': ...}} ({self.what}'s train.py)")
        try:
            result = model.load_state_dict(_strip_prefix(state), strict=False)
        except RuntimeError as exc:  # tensor shapes that differ from the config's model
            raise ArtifactError(
                ckpt, f"does not fit the {self.what} model ({str(exc)[:MESSAGE_CHARS]})"
            ) from None
        if result.missing_keys or result.unexpected_keys:
            raise ArtifactError(
                ckpt,
                f"does not fit the {self.what} model of this config: "
                f"{len(result.missing_keys)} missing keys (e.g. {result.missing_keys[:2]}), "
                f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[:2]})",
            )
        self.n_loaded = len(state)
        return model

    def identity(self) -> dict[str, Any]:
        from avsbridge.ris import threshold_of

        return {
            "backend": self.name,
            "code": self.home.name,
            "config": self.config,
            "weights": self.weights,
            "input_size": int(self.cfg.input_size),
            "word_length": int(self.cfg.word_len),
            "threshold": threshold_of(self.name),
        }

    def tokens(self, query: str) -> Any:
        return self._tokenize(query, int(self.cfg.word_len), True)

    def predict(self, image: np.ndarray, query: str) -> dict[str, Any]:
        import cv2

        torch = self._torch
        img = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
        height, width = img.shape[:2]
        mat, mat_inv = self._data.getTransformMat((height, width), True)
        warped = cv2.warpAffine(
            img,
            mat,
            self._data.input_size,
            flags=cv2.INTER_CUBIC,
            borderValue=[0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255],
        )
        x = self._data.convert(warped)[0].unsqueeze(0).to(self.device)
        text = self.tokens(query).to(self.device)
        with torch.no_grad():
            pred = torch.sigmoid(self.model(x, text))
            if pred.shape[-2:] != x.shape[-2:]:
                pred = torch.nn.functional.interpolate(
                    pred, size=x.shape[-2:], mode="bicubic", align_corners=True
                )
        pred_np = pred[0, 0].float().cpu().numpy()
        prob = cv2.warpAffine(
            pred_np, mat_inv, (width, height), flags=cv2.INTER_CUBIC, borderValue=0.0
        )
        return {"prob": np.clip(prob, 0.0, 1.0).astype(np.float32), "prompt": query}
