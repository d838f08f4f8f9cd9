"""``clipseg``: CLIPSeg (Lüddecke & Ecker, CVPR 2022) through transformers' native classes.

Query text + image -> sigmoid of CLIPSeg's logits, resized bilinearly to the image.
The image is fed as BAaV feeds its RIS model: resized to ``size`` x ``size`` (plain
resize, BAaV's ``center_crop_resize``), the processor's CLIP normalisation. ``model``
takes a hub id (at a pinned revision, ``HF_HUB_OFFLINE=1`` honoured) or a local
``save_pretrained`` folder (its files' digest is the provenance).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.backends import model_folder_digest, resolve_device
from avsbridge.io import ArtifactError
from avsbridge.ris import RIS_MODELS

DEFAULT_MODEL = "CIDAS/clipseg-rd64-refined"
INPUT_SIZE = 352  # CLIPSeg's training resolution


class CLIPSegRIS:
    name = "clipseg"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        revision: str | None = None,
        device: str = "auto",
        size: int = INPUT_SIZE,
    ) -> None:
        import torch
        from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor

        self._torch = torch
        self.device = resolve_device(device)
        from avsbridge.zeroshot.hf import pinned_revision

        path = Path(model).expanduser()
        local = path.is_dir()
        revision = None if local else pinned_revision(model, revision)
        kwargs: dict[str, Any] = {} if local else {"revision": revision}
        try:
            self.processor = CLIPSegProcessor.from_pretrained(
                str(path) if local else model, **kwargs
            )
            self.model = CLIPSegForImageSegmentation.from_pretrained(
                str(path) if local else model, **kwargs
            )
        except OSError as exc:
            raise ArtifactError(model, f"cannot load CLIPSeg ({exc})") from None
        self.model.eval().to(self.device)
        self.size = int(size)
        self.ref = (
            {"path": path.name, "sha256": model_folder_digest(path)}
            if local
            else {"id": model, "revision": revision}
        )

    def identity(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.ref, "input_size": self.size}

    def predict(self, image: np.ndarray, query: str) -> dict[str, Any]:
        from PIL import Image

        height, width = image.shape[:2]
        resized = Image.fromarray(image).resize((self.size, self.size))
        inputs = self.processor(
            text=[query], images=[resized], return_tensors="pt", padding=True
        ).to(self.device)
        with self._torch.no_grad():
            logits = self.model(**inputs).logits
        logits = logits.reshape(1, 1, *logits.shape[-2:])
        prob = self._torch.nn.functional.interpolate(
            logits.sigmoid(), size=(height, width), mode="bilinear", align_corners=False
        )
        return {"prob": prob[0, 0].float().cpu().numpy(), "prompt": query}


RIS_MODELS.register("clipseg", gpu=True, env="segment", mem_mb=3000)(CLIPSegRIS)
