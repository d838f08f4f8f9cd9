"""``hf-gdino-sam``: Grounded-SAM with the models transformers implements natively.

``GroundingDinoForObjectDetection`` + its ``AutoProcessor`` find the boxes
(``post_process_grounded_object_detection`` with the box and text thresholds);
``SamModel`` + ``SamProcessor`` segment all boxes of a frame in one forward
pass; the mask is their union. It keeps the paper profile independent of the
unmaintained groundingdino-py repository and loads through the Hugging Face
cache (``HF_HUB_OFFLINE=1`` honoured). ``gdino_model`` / ``sam_model`` take a hub
id (at a pinned revision) or a local ``save_pretrained`` folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.backends import model_folder_digest, resolve_device
from avsbridge.io import ArtifactError
from avsbridge.segment import SEGMENTERS
from avsbridge.segment._boxes import (
    clean_phrase,
    clip_boxes,
    detect_prompt,
    gdino_caption,
    to_detections,
    union_masks,
)
from avsbridge.segment.base import (
    SegResult,
    empty_result,
)

DEFAULT_GDINO_MODEL = "IDEA-Research/grounding-dino-tiny"
DEFAULT_GDINO_REVISION = "a2bb814dd30d776dcf7e30523b00659f4f141c71"
DEFAULT_SAM_MODEL = "facebook/sam-vit-huge"
DEFAULT_SAM_REVISION = "87aecf0df4ce6b30cd7de76e87673c49644bdf67"


def _model_ref(model: str, revision: str | None) -> dict[str, Any]:
    """Provenance of a transformers model: a local folder's fingerprint or hub id@revision."""
    path = Path(model).expanduser()
    if path.is_dir():
        return {"path": path.name, "sha256": model_folder_digest(path)}
    return {"id": model, "revision": revision}


def _load(loader: Any, model: str, revision: str | None) -> Any:
    """``loader.from_pretrained`` with a local folder checked first and errors naming it."""
    path = Path(model).expanduser()
    local = path.is_dir()
    if not local and model.startswith((".", "/", "~")):
        raise ArtifactError(path, "model folder is missing")
    try:
        if local:
            return loader.from_pretrained(str(path))
        return loader.from_pretrained(model, revision=revision)
    except (OSError, ValueError) as exc:
        if local:
            raise ArtifactError(path, f"not a loadable {loader.__name__} folder ({exc})") from None
        raise


@SEGMENTERS.register("hf-gdino-sam", gpu=True, mem_mb=16000)
class HfGroundedSam:
    """transformers GroundingDINO -> SAM (all boxes in one pass) -> union mask.

    Options: ``device`` ("auto"), ``gdino_model`` / ``gdino_revision`` (default
    IDEA-Research/grounding-dino-tiny at a pinned commit), ``sam_model`` /
    ``sam_revision`` (default facebook/sam-vit-huge at a pinned commit).
    """

    name = "hf-gdino-sam"

    def __init__(
        self,
        device: str = "auto",
        gdino_model: str = DEFAULT_GDINO_MODEL,
        gdino_revision: str | None = DEFAULT_GDINO_REVISION,
        sam_model: str = DEFAULT_SAM_MODEL,
        sam_revision: str | None = DEFAULT_SAM_REVISION,
    ) -> None:
        from transformers import (
            AutoProcessor,
            GroundingDinoForObjectDetection,
            SamModel,
            SamProcessor,
        )

        self.device = resolve_device(device)
        self.gdino_model_name, self.gdino_revision = str(gdino_model), gdino_revision
        self.sam_model_name, self.sam_revision = str(sam_model), sam_revision
        self.gdino_processor = _load(AutoProcessor, self.gdino_model_name, gdino_revision)
        self.gdino = _load(GroundingDinoForObjectDetection, self.gdino_model_name, gdino_revision)
        self.gdino = self.gdino.to(self.device).eval()
        self.sam_processor = _load(SamProcessor, self.sam_model_name, sam_revision)
        self.sam = _load(SamModel, self.sam_model_name, sam_revision).to(self.device).eval()
        self._identity: dict[str, Any] | None = None

    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            self._identity = {
                "backend": self.name,
                "detector": "transformers GroundingDinoForObjectDetection",
                "gdino_model": _model_ref(self.gdino_model_name, self.gdino_revision),
                "segmenter": "transformers SamModel",
                "sam_model": _model_ref(self.sam_model_name, self.sam_revision),
                "mask": "union of single-mask box prompts (binary)",
            }
        return self._identity

    def detect(
        self, image: np.ndarray, phrases: list[str], box_threshold: float, text_threshold: float
    ) -> tuple[np.ndarray, list[float], list[str]]:
        """Pixel xyxy boxes, scores and phrases kept by the processor's post-processing."""
        import torch
        from PIL import Image

        caption = gdino_caption(phrases)
        height, width = image.shape[:2]
        inputs = self.gdino_processor(
            images=Image.fromarray(image), text=caption, return_tensors="pt"
        ).to(self.device)
        with torch.no_grad():
            outputs = self.gdino(**inputs)
        result = self.gdino_processor.post_process_grounded_object_detection(
            outputs,
            inputs["input_ids"],
            threshold=box_threshold,
            text_threshold=text_threshold,
            target_sizes=[(height, width)],
        )[0]
        boxes = clip_boxes(result["boxes"].float().cpu().numpy(), width, height)
        scores = result["scores"].float().cpu().tolist()
        labels = [clean_phrase(str(label)) for label in result["text_labels"]]
        return boxes, scores, labels

    def segment(
        self,
        image: np.ndarray,
        prompt: str,
        box_threshold: float = 0.25,
        text_threshold: float = 0.25,
    ) -> SegResult:
        """Mask of the prompt's objects in an HxWx3 uint8 RGB frame (empty prompt -> empty)."""
        import torch
        from PIL import Image

        detected = detect_prompt(self.detect, image, prompt, box_threshold, text_threshold)
        if detected is None:
            return empty_result(image)
        boxes, scores, found = detected
        height, width = image.shape[:2]
        inputs = self.sam_processor(
            images=Image.fromarray(image), input_boxes=[boxes.tolist()], return_tensors="pt"
        ).to(self.device)
        with torch.no_grad():
            outputs = self.sam(**inputs, multimask_output=False)
        masks = self.sam_processor.image_processor.post_process_masks(
            outputs.pred_masks.cpu(),
            inputs["original_sizes"].cpu(),
            inputs["reshaped_input_sizes"].cpu(),
        )[0]
        return SegResult(
            mask=union_masks(masks.numpy(), height, width),
            detections=to_detections(boxes, scores, found),
        )
