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
    gdino_caption,
    union_masks,
)
from avsbridge.segment._torch_stages import (
    autocast,
    check_precision,
)
from avsbridge.segment.base import (
    Detection,
    check_image,
)
from avsbridge.segment.gdino_sam import (
    DEFAULT_DETECTION_FLOOR,
    CaptionStaged,
    _raw_entry,
    _rows_tensor,
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
class HfGroundedSam(CaptionStaged):
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
        precision: str = "fp32",
        detection_floor: float = DEFAULT_DETECTION_FLOOR,
    ) -> None:
        from transformers import (
            AutoProcessor,
            GroundingDinoForObjectDetection,
            SamModel,
            SamProcessor,
        )

        self.device = resolve_device(device)
        self.precision = check_precision(precision, self.device)
        self.detection_floor = float(detection_floor)
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
                **({"precision": self.precision} if self.precision != "fp32" else {}),
            }
        return self._identity

    def detect(
        self, image: np.ndarray, phrases: list[str], box_threshold: float, text_threshold: float
    ) -> tuple[np.ndarray, list[float], list[str]]:
        """Pixel xyxy boxes, scores and phrases kept by the processor's post-processing."""
        caption = gdino_caption(phrases)
        if not caption:
            return np.zeros((0, 4)), [], []
        raw = self.detect_batch([image], [caption], self.raw_floor(box_threshold))[0]
        return self._select_raw(image, raw, box_threshold, text_threshold)

    # --- staged calls (the runner caches detections and image embeddings)

    def detector_identity(self) -> dict[str, Any]:
        return {
            "backend_family": "transformers-gdino",
            "detector": "transformers GroundingDinoForObjectDetection",
            "gdino_model": _model_ref(self.gdino_model_name, self.gdino_revision),
            "precision": self.precision,
        }

    def detect_batch(
        self, images: list[np.ndarray], queries: list[str], floor: float | None
    ) -> list[Any]:
        """Logits (caption columns) and boxes of every query >= floor, per (frame, caption)."""
        import torch
        from PIL import Image

        if len(images) == 1:  # the processor's single-image call, as before batching
            inputs = self.gdino_processor(
                images=Image.fromarray(images[0]), text=queries[0], return_tensors="pt"
            )
        else:
            inputs = self.gdino_processor(
                images=[Image.fromarray(im) for im in images],
                text=list(queries),
                padding=True,
                return_tensors="pt",
            )
        inputs = inputs.to(self.device)
        with torch.no_grad(), autocast(self.device, self.precision):
            outputs = self.gdino(**inputs)
        logits_all = outputs.logits.float().cpu()
        boxes_all = outputs.pred_boxes.float().cpu()
        mask = inputs.get("attention_mask")
        raws = []
        for j, caption in enumerate(queries):
            n_tokens = int(mask[j].sum()) if mask is not None else inputs["input_ids"].shape[1]
            raws.append(
                _raw_entry(
                    caption,
                    logits_all[j],
                    boxes_all[j],
                    n_tokens,
                    floor,
                    tail=float("-inf"),
                    probs=torch.sigmoid(logits_all[j]),
                    input_ids=inputs["input_ids"][j][:n_tokens].cpu().tolist(),
                )
            )
        return raws

    def _select_raw(
        self, image: np.ndarray, raw: dict[str, Any], box_threshold: float, text_threshold: float
    ) -> tuple[np.ndarray, list[float], list[str]]:
        """The processor's post-processing over the stored queries (thresholds applied here)."""
        from types import SimpleNamespace

        import torch

        height, width = image.shape[:2]
        if not raw["rows"]:
            return np.zeros((0, 4)), [], []
        logits = _rows_tensor(torch, raw, "logits", float("-inf"))[None]
        boxes = torch.tensor(raw["boxes"], dtype=torch.float32).reshape(1, -1, 4)
        result = self.gdino_processor.post_process_grounded_object_detection(
            SimpleNamespace(logits=logits, pred_boxes=boxes),
            torch.tensor([raw["input_ids"]]),
            threshold=box_threshold,
            text_threshold=text_threshold,
            target_sizes=[(height, width)],
        )[0]
        xyxy = clip_boxes(result["boxes"].float().cpu().numpy(), width, height)
        scores = result["scores"].float().cpu().tolist()
        labels = [clean_phrase(str(label)) for label in result["text_labels"]]
        return xyxy, scores, labels

    def encoder_identity(self) -> dict[str, Any] | None:
        return {
            "encoder": "transformers SamModel.get_image_embeddings",
            "model": str(_model_ref(self.sam_model_name, self.sam_revision)),
            "sam_model": _model_ref(self.sam_model_name, self.sam_revision),
            "precision": self.precision,
        }

    def encode_batch(self, images: list[np.ndarray]) -> list[Any]:
        """SAM image embeddings (B x 256 x 64 x 64) of frames padded to 1024 by the processor."""
        import torch
        from PIL import Image

        for image in images:
            check_image(image)
        pixels = self.sam_processor(
            images=[Image.fromarray(im) for im in images], return_tensors="pt"
        )["pixel_values"].to(self.device)
        with torch.no_grad(), autocast(self.device, self.precision):
            embedded = self.sam.get_image_embeddings(pixels)
        return [{"image_embed": embedded[j : j + 1]} for j in range(len(images))]

    def decode(self, image: np.ndarray, features: Any, detections: list[Detection]) -> np.ndarray:
        """SAM's prompt encoder + mask decoder on the stored embedding, all boxes at once."""
        import torch
        from PIL import Image

        height, width = image.shape[:2]
        boxes = np.asarray([d.box for d in detections], dtype=np.float64).reshape(-1, 4)
        inputs = self.sam_processor(
            images=Image.fromarray(image), input_boxes=[boxes.tolist()], return_tensors="pt"
        )
        with torch.no_grad(), autocast(self.device, self.precision):
            outputs = self.sam(
                image_embeddings=features["image_embed"],
                input_boxes=inputs["input_boxes"].to(self.device),
                multimask_output=False,
            )
        masks = self.sam_processor.image_processor.post_process_masks(
            outputs.pred_masks.float().cpu(),
            inputs["original_sizes"].cpu(),
            inputs["reshaped_input_sizes"].cpu(),
        )[0]
        return union_masks(masks.numpy(), height, width)
