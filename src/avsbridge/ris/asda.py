"""``asda``: BAaV's default RIS model, ASDA (swagger-coder/ASDA), through its own model code.

The code is not vendored: ``asda_home`` (default ``$AVSBRIDGE_UPSTREAM/ASDA``, else
``../shared/upstream/ASDA`` beside the checkout) is put on ``sys.path`` and its
``model.model.Model`` is built exactly as ASDA's ``test.py`` and BAaV's
``utils/evaluator.py`` build it (CLIP ViT-B/16, ``tunelang``, ``num_query`` 16,
``fusion_dim`` 768: the --fusion_dim default of both). Its constructor calls ``clip.load(clip_model)`` (the ``clip``
module: PyPI ``clip-anytorch``, OpenAI's CLIP code) -- here with a local CLIP file, so
nothing is downloaded -- and then ``.cuda()`` unconditionally; on a CPU host that one
call is made a no-op from outside while the model is built. Weights: ``checkpoint`` (an
ASDA training checkpoint, ``{"state_dict": ...}``, keys filtered as ASDA's
``load_pretrain``) and ``clip_weights``, each checked against its sha256 option when
given. Inference follows BAaV's ``evalutate``: the image resized to ``size`` (416) with
INTER_AREA, CLIP normalisation, ``clip.tokenize(query, 17, truncate=True)``, mask =
``word_id != 0``, output sigmoid resized bilinearly to 224 x 224.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.backends import resolve_device
from avsbridge.io import ArtifactError, sha256_file
from avsbridge.ris import RIS_MODELS

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
WORD_LENGTH = 17
INPUT_SIZE = 416
OUTPUT_SIZE = 224
UPSTREAM_ENV = "AVSBRIDGE_UPSTREAM"


def default_asda_home() -> Path:
    if os.environ.get(UPSTREAM_ENV):
        return Path(os.environ[UPSTREAM_ENV]) / "ASDA"
    from avsbridge.weights import project_root

    root = project_root()
    return (root.parent if root else Path.cwd()) / "shared" / "upstream" / "ASDA"


def _checked(path: str | os.PathLike[str], sha256: str | None, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise ArtifactError(p, f"{what} is missing")
    if sha256 and sha256_file(p) != sha256:
        raise ArtifactError(p, f"{what}: sha256 differs from the pinned {sha256}")
    return p


def import_clip() -> Any:
    """OpenAI's ``clip`` module. It does ``from pkg_resources import packaging`` (only for a
    version compare), and setuptools >= 81 no longer ships pkg_resources: where it is
    missing, a stand-in module holding just ``packaging`` is registered while ``clip``
    imports, and removed right after (other code asking for pkg_resources must not get it)."""
    shim = None
    if "pkg_resources" not in sys.modules:
        try:
            importlib.import_module("pkg_resources")
        except ImportError:
            import types

            shim = types.ModuleType("pkg_resources")
            shim.packaging = importlib.import_module("packaging")  # type: ignore[attr-defined]
            sys.modules["pkg_resources"] = shim
    try:
        return importlib.import_module("clip")
    finally:
        if shim is not None and sys.modules.get("pkg_resources") is shim:
            del sys.modules["pkg_resources"]


@contextlib.contextmanager
def _asda_on_path(home: Path, cpu: bool) -> Iterator[Any]:
    """ASDA's ``model`` package importable, and ``Module.cuda`` a no-op on CPU hosts."""
    import torch

    if not (home / "model" / "model.py").is_file():
        raise ArtifactError(home, "not an ASDA checkout (no model/model.py); set asda_home")
    import_clip()
    sys.path.insert(0, str(home))
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k in ("model", "utils")}
    cuda = torch.nn.Module.cuda
    if cpu:
        torch.nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    try:
        yield importlib.import_module("model.model")
    finally:
        torch.nn.Module.cuda = cuda  # type: ignore[method-assign]
        sys.path.remove(str(home))
        for k in [k for k in sys.modules if k.split(".")[0] in ("model", "utils")]:
            sys.modules.pop(k)
        sys.modules.update(saved)


class ASDARIS:
    name = "asda"

    def __init__(
        self,
        checkpoint: str,
        clip_weights: str,
        checkpoint_sha256: str | None = None,
        clip_sha256: str | None = None,
        asda_home: str | None = None,
        device: str = "auto",
        size: int = INPUT_SIZE,
        fusion_dim: int = 768,
        num_query: int = 16,
        tunelang: bool = True,
    ) -> None:
        import torch

        self._torch = torch
        self.device = resolve_device(device)
        self.home = Path(asda_home).expanduser() if asda_home else default_asda_home()
        ckpt = _checked(checkpoint, checkpoint_sha256, "ASDA checkpoint")
        clip_file = _checked(clip_weights, clip_sha256, "CLIP ViT-B/16 weights")
        with _asda_on_path(self.home, cpu=not self.device.startswith("cuda")) as module:
            model = module.Model(
                clip_model=str(clip_file),
                tunelang=tunelang,
                num_query=num_query,
                fusion_dim=fusion_dim,
            )
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 -- pickle errors come in many types
            raise ArtifactError(ckpt, f"not a tensors-only checkpoint ({exc})") from None
        pretrained = state.get("state_dict", state) if isinstance(state, dict) else None
        if not isinstance(pretrained, dict):
            raise ArtifactError(ckpt, "expected {'state_dict': {...}} (ASDA's checkpoint format)")
        own = model.state_dict()
        kept = {k: v for k, v in pretrained.items() if k in own}
        if not kept:
            raise ArtifactError(ckpt, "no key of the checkpoint belongs to ASDA's Model")
        own.update(kept)
        model.load_state_dict(own)
        self.model = model.eval().to(self.device)
        self.size = int(size)
        self.n_loaded, self.n_params = len(kept), len(own)
        self.weights = {
            "checkpoint": ckpt.name,
            "checkpoint_sha256": checkpoint_sha256 or sha256_file(ckpt),
            "clip_weights": clip_file.name,
            "clip_sha256": clip_sha256 or sha256_file(clip_file),
        }

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "code": str(self.home.name),
            "weights": self.weights,
            "loaded_tensors": f"{self.n_loaded}/{self.n_params}",
            "input_size": self.size,
            "word_length": WORD_LENGTH,
        }

    def tokens(self, query: str) -> tuple[Any, Any]:
        clip = import_clip()
        word_id = clip.tokenize(query, WORD_LENGTH, truncate=True)
        return word_id, ~(word_id == 0)

    def predict(self, image: np.ndarray, query: str) -> dict[str, Any]:
        import cv2

        torch = self._torch
        resized = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_AREA)
        x = torch.from_numpy(resized).permute(2, 0, 1).float().div(255.0)
        mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
        std = torch.tensor(CLIP_STD).view(3, 1, 1)
        x = ((x - mean) / std).unsqueeze(0).to(self.device)
        word_id, word_mask = self.tokens(query)
        with torch.no_grad():
            out = self.model(x, word_id.to(self.device), word_mask.to(self.device))
            prob = torch.nn.functional.interpolate(
                out.sigmoid(), size=(OUTPUT_SIZE, OUTPUT_SIZE), mode="bilinear", align_corners=False
            )
        return {"prob": prob[0, 0].float().cpu().numpy(), "prompt": query}


RIS_MODELS.register("asda", gpu=True, env="asda", mem_mb=6000)(ASDARIS)
