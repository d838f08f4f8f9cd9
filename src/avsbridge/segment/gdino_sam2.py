"""``gdino-sam2``: GroundingDINO 1.0 boxes segmented by SAM 2.1 (OpenAVS (SAM2), Table 1).

Same detector as ``gdino-sam`` (:class:`~avsbridge.segment.gdino_sam.GroundingDinoDetector`);
the segmenter is the ``sam2`` package's ``build_sam2`` (hydra config
``configs/sam2.1/sam2.1_hiera_l.yaml``, checkpoint ``sam2.1_hiera_large.pt``) and
``SAM2ImagePredictor``, all boxes of a frame in one batched ``predict`` call.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np

from avsbridge.backends import resolve_device
from avsbridge.io import ArtifactError
from avsbridge.segment import SEGMENTERS
from avsbridge.segment._boxes import WeightFile, union_masks
from avsbridge.segment._torch_stages import (
    autocast,
    group_by_shape,
)
from avsbridge.segment.base import Detection, check_image
from avsbridge.segment.gdino_sam import (
    DEFAULT_DETECTION_FLOOR,
    GDINO_IMAGE_SIZE,
    GDINO_MAX_SIZE,
    GdinoDetection,
    GroundingDinoDetector,
)
from avsbridge.weights import WeightSource, register_source

SAM2_LARGE_SOURCE = register_source(
    WeightSource(
        name="sam2.1-hiera-large",
        filename="sam2.1_hiera_large.pt",
        url="https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_large.pt",
        sha256="2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318",
        licence="Apache-2.0",
        note="SAM 2.1 Hiera-L; hydra config configs/sam2.1/sam2.1_hiera_l.yaml",
    )
)
DEFAULT_SAM2_CONFIG = "configs/sam2.1/sam2.1_hiera_l.yaml"


@SEGMENTERS.register("gdino-sam2", gpu=True, mem_mb=16000)
class GdinoSam2(GdinoDetection):
    """GroundingDINO boxes -> SAM 2.1 box prompts (one batched call) -> union mask.

    Options: ``device`` ("auto"), the detector options of ``gdino-sam``
    (``gdino_config``, ``gdino_checkpoint``, ``text_encoder``,
    ``gdino_image_size``, ``gdino_max_size``), ``sam2_checkpoint`` (overrides the
    pinned ``sam2.1_hiera_large.pt``), ``sam2_config`` (a hydra config name inside
    the sam2 package) and ``sam2_overrides`` (extra hydra overrides, e.g. the
    reduced dims of a tiny test model).
    """

    name = "gdino-sam2"

    def __init__(
        self,
        device: str = "auto",
        gdino_config: str | os.PathLike[str] | None = None,
        gdino_checkpoint: str | os.PathLike[str] | None = None,
        text_encoder: str | os.PathLike[str] | None = None,
        gdino_image_size: int = GDINO_IMAGE_SIZE,
        gdino_max_size: int = GDINO_MAX_SIZE,
        sam2_checkpoint: str | os.PathLike[str] | None = None,
        sam2_config: str = DEFAULT_SAM2_CONFIG,
        sam2_overrides: Sequence[str] = (),
        precision: str = "fp32",
        detection_floor: float = DEFAULT_DETECTION_FLOOR,
    ) -> None:
        from sam2.build_sam import build_sam2
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        self.device = resolve_device(device)
        self.detector = GroundingDinoDetector(
            self.device,
            config=gdino_config,
            checkpoint=gdino_checkpoint,
            text_encoder=text_encoder,
            image_size=gdino_image_size,
            max_size=gdino_max_size,
            precision=precision,
        )
        self.precision = self.detector.precision
        self.detection_floor = float(detection_floor)
        self.sam2_weight = WeightFile.locate(sam2_checkpoint, SAM2_LARGE_SOURCE.name)
        self.sam2_config = sam2_config
        self.sam2_overrides = list(sam2_overrides)
        try:
            model = build_sam2(
                sam2_config,
                str(self.sam2_weight.path),
                device=self.device,
                mode="eval",
                hydra_overrides_extra=self.sam2_overrides,
            )
        except (RuntimeError, KeyError, EOFError, pickle.UnpicklingError) as exc:
            raise ArtifactError(
                self.sam2_weight.path, f"does not load into {sam2_config} ({exc})"
            ) from None
        self.predictor = SAM2ImagePredictor(model)

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            **self.detector.identity(),
            "segmenter": "sam2",
            "sam2_config": self.sam2_config,
            "sam2_overrides": self.sam2_overrides,
            "sam2_checkpoint_sha256": self.sam2_weight.sha256(),
            "mask": "union of single-mask box prompts (binary)",
            **({"precision": self.precision} if self.precision != "fp32" else {}),
        }

    def encoder_identity(self) -> dict[str, Any] | None:
        return {
            "encoder": "sam2 forward_image",
            "model": "sam2",
            "sam2_config": self.sam2_config,
            "sam2_overrides": self.sam2_overrides,
            "sam2_checkpoint_sha256": self.sam2_weight.sha256(),
            "precision": self.precision,
        }

    def encode_batch(self, images: list[np.ndarray]) -> list[Any]:
        """SAM2 features (image_embed + two high-res maps), as ``SAM2ImagePredictor.set_image``."""
        import torch

        predictor = self.predictor
        model = predictor.model
        features: list[Any] = [None] * len(images)
        for group in group_by_shape(images):
            for i in group:
                check_image(images[i])
            batch = torch.stack([predictor._transforms(images[i]) for i in group]).to(self.device)
            with torch.inference_mode(), autocast(self.device, self.precision):
                backbone_out = model.forward_image(batch)
                _, vision_feats, _, _ = model._prepare_backbone_features(backbone_out)
                if model.directly_add_no_mem_embed:
                    vision_feats[-1] = vision_feats[-1] + model.no_mem_embed
                feats = [
                    feat.permute(1, 2, 0).view(len(group), -1, *feat_size)
                    for feat, feat_size in zip(
                        vision_feats[::-1], predictor._bb_feat_sizes[::-1], strict=True
                    )
                ][::-1]
            for j, i in enumerate(group):
                features[i] = {
                    "image_embed": feats[-1][j : j + 1],
                    **{f"high_res_{n}": f[j : j + 1] for n, f in enumerate(feats[:-1])},
                }
        return features

    def decode(self, image: np.ndarray, features: Any, detections: list[Detection]) -> np.ndarray:
        """SAM2's prompt encoder + mask decoder on the frame's features, all boxes at once."""
        import torch

        height, width = image.shape[:2]
        predictor = self.predictor
        predictor.reset_predictor()
        high_res = sorted(k for k in features if k.startswith("high_res_"))
        predictor._orig_hw = [image.shape[:2]]
        predictor._features = {
            "image_embed": features["image_embed"],
            "high_res_feats": [features[k] for k in high_res],
        }
        predictor._is_image_set = True
        predictor._is_batch = False
        boxes = np.asarray([d.box for d in detections], dtype=np.float32).reshape(-1, 4)
        with torch.inference_mode(), autocast(self.device, self.precision):
            masks, _, _ = predictor.predict(box=boxes, multimask_output=False)
        predictor.reset_predictor()
        return union_masks(masks, height, width)
