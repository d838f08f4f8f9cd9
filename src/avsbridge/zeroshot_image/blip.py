"""``blip``: BLIP image captioning through transformers, as BAaV's ``utils/evaluator.py``.

``BlipForConditionalGeneration`` + ``BlipProcessor`` (BAaV: Salesforce/blip-image-captioning-base),
decoded with BAaV's settings: ``generate(max_length=17, repetition_penalty=2.5,
early_stopping=True)``, ``skip_special_tokens=True``. ``model``: hub id (pinned
``revision``) or a local ``save_pretrained`` folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avsbridge.backends import resolve_device
from avsbridge.io import read_image
from avsbridge.zeroshot_image import IMAGE_CAPTIONERS

DEFAULT_MODEL = "Salesforce/blip-image-captioning-base"
MAX_LENGTH = 17
REPETITION_PENALTY = 2.5


class BlipCaptioner:
    name = "blip"

    def __init__(
        self, model: str = DEFAULT_MODEL, revision: str | None = None, device: str = "auto"
    ) -> None:
        import torch
        from transformers import BlipForConditionalGeneration, BlipProcessor

        from avsbridge.zeroshot.hf import model_folder

        self._torch = torch
        self.device = resolve_device(device)
        folder, self.ref = model_folder(model, revision)
        self.processor = BlipProcessor.from_pretrained(folder)
        self.model = BlipForConditionalGeneration.from_pretrained(folder).eval().to(self.device)

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.ref,
            "generate": {
                "max_length": MAX_LENGTH,
                "repetition_penalty": REPETITION_PENALTY,
                "early_stopping": True,
            },
        }

    def caption(self, image_path: Path) -> dict[str, Any]:
        from PIL import Image

        image = Image.fromarray(read_image(image_path, mode="RGB"))
        inputs = self.processor(images=image, return_tensors="pt").to(self.device)
        with self._torch.no_grad():
            out = self.model.generate(
                **inputs,
                max_length=MAX_LENGTH,
                repetition_penalty=REPETITION_PENALTY,
                early_stopping=True,
            )
        return {"caption": self.processor.decode(out[0], skip_special_tokens=True).strip()}


IMAGE_CAPTIONERS.register("blip", gpu=True, env="zeroshot", mem_mb=3000)(BlipCaptioner)
