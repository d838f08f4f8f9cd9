"""``gdino-sam``: Grounded-SAM as OpenAVS runs it (paper §3.5, §4.1.3).

GroundingDINO 1.0 (groundingdino-py, Swin-T OGC checkpoint) turns the translated
prompt into boxes; every box whose best token score exceeds the box threshold
(0.25 in the paper) becomes a box prompt for SAM ViT-H; the frame's mask is the
union of SAM's single-mask outputs. :class:`GroundingDinoDetector` is shared with
``gdino-sam2``.

groundingdino-py 0.4.0 is pure Python (its deformable attention has a PyTorch
path), so it runs offline on CPU; its BERT wrapper calls three ``BertModel``
helpers that transformers 5 removed, which :func:`_bert_compat` restores.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.backends import resolve_device
from avsbridge.io import ArtifactError, sha256_file
from avsbridge.segment import SEGMENTERS
from avsbridge.segment._boxes import (
    WeightFile,
    check_thresholds,
    clean_phrase,
    cxcywh_norm_to_xyxy_pixels,
    gdino_caption,
    to_detections,
    union_masks,
)
from avsbridge.segment._torch_stages import (
    autocast,
    check_precision,
    export_features,
    group_by_shape,
    import_features,
)
from avsbridge.segment.base import (
    Detection,
    SegResult,
    check_image,
    segment_staged,
    split_prompt,
)
from avsbridge.weights import WeightSource, register_source

GDINO_SOURCE = register_source(
    WeightSource(
        name="groundingdino-swint-ogc",
        filename="groundingdino_swint_ogc.pth",
        url=(
            "https://github.com/IDEA-Research/GroundingDINO/releases/download/"
            "v0.1.0-alpha/groundingdino_swint_ogc.pth"
        ),
        sha256="3b3ca2563c77c69f651d7bd133e97139c186df06231157a64c507099c52bc799",
        licence="Apache-2.0",
        note="GroundingDINO-T (Swin-T, O365+GoldG+Cap4M); config GroundingDINO_SwinT_OGC",
    )
)
SAM_VIT_H_SOURCE = register_source(
    WeightSource(
        name="sam-vit-h",
        filename="sam_vit_h_4b8939.pth",
        url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
        sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        licence="Apache-2.0",
        note="Segment Anything ViT-H",
    )
)

DEFAULT_TEXT_ENCODER = "bert-base-uncased"
GDINO_IMAGE_SIZE = 800  # groundingdino.util.inference.load_image: RandomResize([800], 1333)
GDINO_MAX_SIZE = 1333


def default_gdino_config() -> Path:
    """The SwinT-OGC SLConfig file shipped inside groundingdino-py."""
    import groundingdino.config

    return Path(groundingdino.config.__file__).parent / "GroundingDINO_SwinT_OGC.py"


def _bert_helpers(bert: Any) -> None:
    """Give a transformers-5 ``BertModel`` the helpers GroundingDINO's wrapper calls.

    ``BertModelWarper`` copies ``get_extended_attention_mask``,
    ``invert_attention_mask`` and ``get_head_mask`` from the model; transformers
    5 dropped them. These re-implement the transformers 4 behaviour: a 2-D or
    3-D {0,1} mask becomes an additive mask broadcast over heads; head masks
    (never used at inference) are refused.
    """
    import torch

    def extended_mask(
        attention_mask: torch.Tensor, input_shape: Any = None, device: Any = None, dtype: Any = None
    ) -> torch.Tensor:
        dtype = dtype or bert.dtype
        if attention_mask.dim() == 3:
            extended = attention_mask[:, None, :, :]
        elif attention_mask.dim() == 2:
            extended = attention_mask[:, None, None, :]
        else:
            raise ValueError(f"attention mask of shape {tuple(attention_mask.shape)}")
        extended = extended.to(dtype=dtype)
        return (1.0 - extended) * torch.finfo(dtype).min

    def head_mask(mask: Any, num_hidden_layers: int, is_attention_chunked: bool = False) -> None:
        if mask is not None:
            raise ValueError("head masks are not supported by the transformers-5 shim")
        return None

    if not hasattr(bert, "get_extended_attention_mask"):
        bert.get_extended_attention_mask = extended_mask
    if not hasattr(bert, "invert_attention_mask"):
        bert.invert_attention_mask = extended_mask
    if not hasattr(bert, "get_head_mask"):
        bert.get_head_mask = head_mask


@contextlib.contextmanager
def _bert_compat() -> Iterator[None]:
    """While GroundingDINO builds, patch the BERT it loads with :func:`_bert_helpers`."""
    from groundingdino.util import get_tokenlizer

    original = get_tokenlizer.get_pretrained_language_model

    def load_language_model(text_encoder_type: str) -> Any:
        model = original(text_encoder_type)
        _bert_helpers(model)
        return model

    get_tokenlizer.get_pretrained_language_model = load_language_model
    try:
        yield
    finally:
        get_tokenlizer.get_pretrained_language_model = original


def _load_checkpoint(weight: WeightFile) -> dict[str, Any]:
    """Read a GroundingDINO ``.pth`` (``{"model": state_dict}``), safely where possible.

    ``weights_only=True`` first; the official file may pickle extra objects, so a
    full unpickle is allowed only for a file whose sha256 is the published pin.
    """
    import torch

    try:
        checkpoint = torch.load(weight.path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not weight.is_pinned():
            raise ArtifactError(
                weight.path, f"not a weights-only checkpoint and not the pinned file ({exc})"
            ) from None
        checkpoint = torch.load(weight.path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError) as exc:
        raise ArtifactError(weight.path, f"unreadable checkpoint ({exc})") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise ArtifactError(weight.path, "GroundingDINO checkpoint has no 'model' state dict")
    return checkpoint["model"]


class GroundingDinoDetector:
    """GroundingDINO through groundingdino-py's own build, preprocessing and phrase code.

    ``config``: an SLConfig ``.py`` (default: the packaged SwinT-OGC one);
    ``checkpoint``: overrides the pinned ``groundingdino_swint_ogc.pth``;
    ``text_encoder``: a local BERT folder (or hub name) replacing the config's
    ``text_encoder_type`` so offline runs work; ``image_size`` / ``max_size``:
    the short/long-side resize (official 800 / 1333).
    """

    def __init__(
        self,
        device: str,
        config: str | os.PathLike[str] | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        text_encoder: str | os.PathLike[str] | None = None,
        image_size: int = GDINO_IMAGE_SIZE,
        max_size: int = GDINO_MAX_SIZE,
        precision: str = "fp32",
    ) -> None:
        import groundingdino.datasets.transforms as gdino_transforms
        import torch
        from groundingdino.models import build_model
        from groundingdino.util.misc import clean_state_dict
        from groundingdino.util.slconfig import SLConfig

        self.device = device
        self.config_path = Path(config).expanduser() if config else default_gdino_config()
        if not self.config_path.is_file():
            raise ArtifactError(self.config_path, "GroundingDINO config is missing")
        self.weight = WeightFile.locate(checkpoint, GDINO_SOURCE.name)
        self.text_encoder = str(text_encoder) if text_encoder else DEFAULT_TEXT_ENCODER
        self.image_size = int(image_size)
        self.max_size = int(max_size)
        self.precision = check_precision(precision, device)

        args = SLConfig.fromfile(str(self.config_path))
        args.device = device
        args.text_encoder_type = self.text_encoder
        # Activation checkpointing only saves training memory; at inference it is a no-op
        # that warns, so it is switched off whatever the config says.
        args.use_checkpoint = False
        args.use_transformer_ckpt = False
        with _bert_compat(), contextlib.redirect_stdout(None):
            model = build_model(args)
        state = clean_state_dict(_load_checkpoint(self.weight))
        try:
            result = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise ArtifactError(
                self.weight.path, f"does not fit {self.config_path.name}: {exc}"
            ) from None
        if result.missing_keys:
            missing = ", ".join(result.missing_keys[:5])
            raise ArtifactError(
                self.weight.path,
                f"lacks {len(result.missing_keys)} weights of {self.config_path.name} ({missing}...)",
            )
        self.model = model.to(device).eval()
        self.tokenizer = model.tokenizer
        self.transform = gdino_transforms.Compose(
            [
                gdino_transforms.RandomResize([self.image_size], max_size=self.max_size),
                gdino_transforms.ToTensor(),
                gdino_transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
            ]
        )
        self._torch = torch

    def identity(self) -> dict[str, Any]:
        return {
            "detector": "groundingdino-py",
            "gdino_config": self.config_path.name,
            "gdino_config_sha256": sha256_file(self.config_path),
            "gdino_checkpoint_sha256": self.weight.sha256(),
            "text_encoder": Path(self.text_encoder).name,
            "gdino_image_size": [self.image_size, self.max_size],
            **({"precision": self.precision} if self.precision != "fp32" else {}),
        }

    def detect(
        self, image: np.ndarray, phrases: list[str], box_threshold: float, text_threshold: float
    ) -> tuple[np.ndarray, list[float], list[str]]:
        """Boxes (pixel xyxy), scores and phrases for one RGB frame, as ``predict`` does."""
        caption = gdino_caption(phrases)
        if not caption:
            return np.zeros((0, 4)), [], []
        floor = raw_floor(DEFAULT_DETECTION_FLOOR, box_threshold)
        raw = self.detect_raw([image], [caption], floor)[0]
        return self.select_raw(image, raw, box_threshold, text_threshold)

    def detect_raw(
        self, images: list[np.ndarray], captions: list[str], floor: float | None
    ) -> list[dict[str, Any]]:
        """Every query scoring >= ``floor`` of each (frame, caption): token probs + boxes.

        The probabilities are computed exactly as ``predict`` computes them (sigmoid of
        the logits of all queries, in float32); caption tokens beyond the caption are
        -inf logits, so only the caption's columns are stored. Frames of one size share
        one forward pass.
        """
        from PIL import Image

        torch = self._torch
        raws: list[dict[str, Any]] = [{} for _ in images]
        for group in group_by_shape(images):
            tensors = [self.transform(Image.fromarray(images[i]), None)[0] for i in group]
            with torch.no_grad(), autocast(self.device, self.precision):
                outputs = self.model(
                    torch.stack(tensors).to(self.device), captions=[captions[i] for i in group]
                )
            probs_all = outputs["pred_logits"].float().sigmoid().cpu()  # (B, queries, 256)
            boxes_all = outputs["pred_boxes"].float().cpu()  # (B, queries, 4) cxcywh
            for j, i in enumerate(group):
                raws[i] = _raw_entry(
                    captions[i],
                    probs_all[j],
                    boxes_all[j],
                    len(self.tokenizer(captions[i])["input_ids"]),
                    floor,
                    tail=0.0,
                )
        return raws

    def select_raw(
        self, image: np.ndarray, raw: dict[str, Any], box_threshold: float, text_threshold: float
    ) -> tuple[np.ndarray, list[float], list[str]]:
        """``predict``'s filtering over a raw entry: queries > box_threshold, their phrases.

        Mirrors ``groundingdino.util.inference.predict``: a query is kept when its
        best token probability exceeds ``box_threshold``; its phrase is the caption
        tokens whose probability exceeds ``text_threshold``, dots removed.
        """
        from groundingdino.util.utils import get_phrases_from_posmap

        torch = self._torch
        height, width = image.shape[:2]
        probs = _rows_tensor(torch, raw, "probs", 0.0)
        boxes = torch.tensor(raw["boxes"], dtype=torch.float32).reshape(-1, 4)
        keep = probs.max(dim=1)[0] > box_threshold if len(probs) else torch.zeros(0, dtype=bool)
        probs, boxes = probs[keep], boxes[keep]
        caption = raw["caption"]
        tokenized = self.tokenizer(caption)
        found = [
            clean_phrase(get_phrases_from_posmap(p > text_threshold, tokenized, self.tokenizer))
            for p in probs
        ]
        scores = probs.max(dim=1)[0].tolist() if len(probs) else []
        xyxy = cxcywh_norm_to_xyxy_pixels(boxes.numpy(), width, height)
        return xyxy, scores, found


DEFAULT_DETECTION_FLOOR = 0.1


def raw_floor(detection_floor: float, box_threshold: float) -> float:
    """Lowest score a raw entry keeps: the backend's floor, or 0 (every query) below it.

    Two floors only, so entries are shared: every threshold >= ``detection_floor``
    (the whole Figure 5 sweep) reads the floor entry, any lower one the complete entry,
    which also serves the higher thresholds (the runner looks there second).
    """
    return float(detection_floor) if float(box_threshold) >= float(detection_floor) else 0.0


def _raw_entry(
    caption: str,
    scores_or_logits: Any,
    boxes: Any,
    n_tokens: int,
    floor: float | None,
    tail: float,
    probs: Any = None,
    input_ids: list[int] | None = None,
) -> dict[str, Any]:
    """A JSON raw-detections entry: the rows (queries) whose best probability >= floor.

    ``scores_or_logits`` is (queries, text_len); only its first ``n_tokens`` columns are
    kept when every later column equals ``tail`` (-inf logits / 0 probabilities), else all.
    ``probs`` (default: the rows themselves) decides which rows reach the floor.
    """
    rows = scores_or_logits
    best = (rows if probs is None else probs).max(dim=1)[0]
    keep = best >= floor if floor is not None else best == best
    width = rows.shape[1]
    stored = n_tokens if bool((rows[:, n_tokens:] == tail).all()) else width
    entry = {
        "caption": caption,
        "queries": int(rows.shape[0]),
        "text_len": int(width),
        "columns": int(stored),
        "floor": floor,
        "rows": rows[keep][:, :stored].tolist(),
        "boxes": boxes[keep].tolist(),
    }
    if input_ids is not None:
        entry["input_ids"] = input_ids
    return entry


def _rows_tensor(torch: Any, raw: dict[str, Any], kind: str, tail: float) -> Any:
    """The stored rows back at full text width (``tail`` in the columns not stored)."""
    rows = torch.full((len(raw["rows"]), int(raw["text_len"])), tail, dtype=torch.float32)
    if raw["rows"]:
        rows[:, : int(raw["columns"])] = torch.tensor(raw["rows"], dtype=torch.float32)
    return rows


class CaptionStaged:
    """Staged calls shared by every GroundingDINO-captioned backend (both packages).

    One caption query per prompt, the raw floor, the threshold selection and the
    feature storage are the same whichever GroundingDINO runs; a subclass gives
    ``detect_batch`` and ``_select_raw`` (its own post-processing over a raw entry).
    """

    detection_floor: float
    device: str
    precision: str

    def detection_queries(self, prompt: str, text_threshold: float) -> list[str]:
        caption = gdino_caption(split_prompt(prompt))
        return [caption] if caption else []

    def raw_floor(self, box_threshold: float) -> float | None:
        return raw_floor(self.detection_floor, box_threshold)

    def _select_raw(
        self, image: np.ndarray, raw: dict[str, Any], box_threshold: float, text_threshold: float
    ) -> tuple[np.ndarray, list[float], list[str]]:
        raise NotImplementedError

    def select(
        self,
        image: np.ndarray,
        prompt: str,
        raw: dict[str, Any],
        box_threshold: float,
        text_threshold: float,
    ) -> list[Detection]:
        check_thresholds(box_threshold, text_threshold)
        queries = self.detection_queries(prompt, text_threshold)
        if not queries:
            return []
        boxes, scores, found = self._select_raw(
            image, raw[queries[0]], box_threshold, text_threshold
        )
        return to_detections(boxes, scores, found) if len(boxes) else []

    def export_features(self, features: Any, storage_dtype: str) -> dict[str, tuple[str, Any]]:
        return export_features(features, storage_dtype)

    def import_features(self, arrays: dict[str, tuple[str, Any]]) -> Any:
        return import_features(arrays, self.device, self.precision)

    def segment(
        self,
        image: np.ndarray,
        prompt: str,
        box_threshold: float = 0.25,
        text_threshold: float = 0.25,
    ) -> SegResult:
        """Mask of the prompt's objects in an HxWx3 uint8 RGB frame (empty prompt -> empty)."""
        return segment_staged(self, image, prompt, box_threshold, text_threshold)


class GdinoDetection(CaptionStaged):
    """The staged detection calls of the two groundingdino-py backends (needs ``self.detector``)."""

    detector: GroundingDinoDetector

    def detector_identity(self) -> dict[str, Any]:
        return {"backend_family": "groundingdino-py", **self.detector.identity()}

    def detect_batch(
        self, images: list[np.ndarray], queries: list[str], floor: float | None
    ) -> list[Any]:
        return self.detector.detect_raw(images, queries, floor)

    def _select_raw(
        self, image: np.ndarray, raw: dict[str, Any], box_threshold: float, text_threshold: float
    ) -> tuple[np.ndarray, list[float], list[str]]:
        return self.detector.select_raw(image, raw, box_threshold, text_threshold)


@SEGMENTERS.register("gdino-sam", gpu=True, mem_mb=16000)
class GdinoSam(GdinoDetection):
    """GroundingDINO boxes -> SAM box prompts (batched) -> union mask. Models load once.

    Options: ``device`` ("auto"), ``gdino_config``, ``gdino_checkpoint``,
    ``text_encoder``, ``gdino_image_size``, ``gdino_max_size`` (see
    :class:`GroundingDinoDetector`), ``sam_checkpoint`` (overrides the pinned
    ``sam_vit_h_4b8939.pth``), ``sam_model_type`` ("vit_h", "vit_l", "vit_b"),
    ``sam_encoder`` (a dict of ``_build_sam`` encoder dims for non-registry sizes,
    e.g. tiny test models; it replaces ``sam_model_type``).
    """

    name = "gdino-sam"

    def __init__(
        self,
        device: str = "auto",
        gdino_config: str | os.PathLike[str] | None = None,
        gdino_checkpoint: str | os.PathLike[str] | None = None,
        text_encoder: str | os.PathLike[str] | None = None,
        gdino_image_size: int = GDINO_IMAGE_SIZE,
        gdino_max_size: int = GDINO_MAX_SIZE,
        sam_checkpoint: str | os.PathLike[str] | None = None,
        sam_model_type: str = "vit_h",
        sam_encoder: dict[str, Any] | None = None,
        precision: str = "fp32",
        detection_floor: float = DEFAULT_DETECTION_FLOOR,
    ) -> None:
        from segment_anything import SamPredictor, sam_model_registry
        from segment_anything.build_sam import _build_sam

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
        self.sam_weight = WeightFile.locate(sam_checkpoint, SAM_VIT_H_SOURCE.name)
        self.sam_model_type = "custom" if sam_encoder else sam_model_type
        self.sam_encoder = dict(sam_encoder) if sam_encoder else None
        try:
            if self.sam_encoder is not None:
                sam = _build_sam(**self.sam_encoder, checkpoint=str(self.sam_weight.path))
            elif sam_model_type in sam_model_registry:
                sam = sam_model_registry[sam_model_type](checkpoint=str(self.sam_weight.path))
            else:
                known = ", ".join(sorted(sam_model_registry))
                raise ValueError(f"unknown sam_model_type {sam_model_type!r} (known: {known})")
        except (RuntimeError, EOFError, pickle.UnpicklingError) as exc:
            raise ArtifactError(
                self.sam_weight.path, f"not a SAM {self.sam_model_type} checkpoint ({exc})"
            ) from None
        self.predictor = SamPredictor(sam.to(self.device).eval())

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            **self.detector.identity(),
            "segmenter": "segment-anything",
            "sam_model_type": self.sam_model_type,
            "sam_encoder": self.sam_encoder,
            "sam_checkpoint_sha256": self.sam_weight.sha256(),
            "mask": "union of single-mask box prompts (binary)",
            **({"precision": self.precision} if self.precision != "fp32" else {}),
        }

    def encoder_identity(self) -> dict[str, Any] | None:
        return {
            "encoder": "segment-anything image_encoder",
            "model": f"sam-{self.sam_model_type}",
            "sam_encoder": self.sam_encoder,
            "sam_checkpoint_sha256": self.sam_weight.sha256(),
            "img_size": int(self.predictor.model.image_encoder.img_size),
            "precision": self.precision,
        }

    def encode_batch(self, images: list[np.ndarray]) -> list[Any]:
        """SAM image features ({"image_embed": 1x256x64x64}), as ``SamPredictor.set_image``."""
        import torch

        model, transform = self.predictor.model, self.predictor.transform
        features: list[Any] = [None] * len(images)
        for group in group_by_shape(images):
            batch = []
            for i in group:
                check_image(images[i])
                tensor = torch.as_tensor(transform.apply_image(images[i]), device=self.device)
                batch.append(model.preprocess(tensor.permute(2, 0, 1).contiguous()[None, :, :, :]))
            with torch.no_grad(), autocast(self.device, self.precision):
                embedded = model.image_encoder(torch.cat(batch))
            for j, i in enumerate(group):
                features[i] = {"image_embed": embedded[j : j + 1]}
        return features

    def decode(self, image: np.ndarray, features: Any, detections: list[Detection]) -> np.ndarray:
        """SAM's prompt encoder + mask decoder on the frame's features, all boxes at once."""
        import torch

        height, width = image.shape[:2]
        predictor = self.predictor
        predictor.reset_image()
        predictor.original_size = (height, width)
        predictor.input_size = predictor.transform.get_preprocess_shape(
            height, width, predictor.transform.target_length
        )
        predictor.features = features["image_embed"]
        predictor.is_image_set = True
        boxes = np.asarray([d.box for d in detections], dtype=np.float64).reshape(-1, 4)
        box_tensor = torch.as_tensor(boxes, dtype=torch.float32, device=self.device)
        prompts = predictor.transform.apply_boxes_torch(box_tensor, (height, width))
        with torch.no_grad(), autocast(self.device, self.precision):
            masks, _, _ = predictor.predict_torch(
                point_coords=None, point_labels=None, boxes=prompts, multimask_output=False
            )
        predictor.reset_image()
        return union_masks(masks.cpu().numpy(), height, width)
