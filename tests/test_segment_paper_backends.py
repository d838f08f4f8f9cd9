"""Paper-profile VFM backends through their real loading and inference code, offline.

Tiny random-weight models are built once per module from the real configs
(tests/tiny_models.py), saved in the official formats, and loaded by the
backends exactly as the paper profile loads the published checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tiny_models

from avsbridge.io import ArtifactError, sha256_file
from avsbridge.segment import SEGMENTERS, SegResult, gdino_sam, gdino_sam2, hf_grounded_sam  # noqa: F401 - registers
from avsbridge.segment import _boxes as boxes_mod
from avsbridge.weights import SOURCES

PROMPT = "dog, guitar"


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """A deterministic 96x128 RGB frame (not square, so H/W mix-ups show)."""
    rng = np.random.default_rng(7)
    image = rng.integers(0, 255, size=(96, 128, 3), dtype=np.uint8)
    image[20:70, 30:90] = (200, 40, 40)
    return image


@pytest.fixture(scope="module")
def gdino_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gdino")
    bert = tiny_models.write_bert(root / "bert")
    config = tiny_models.write_gdino_config(root / "GroundingDINO_SwinT_OGC_tiny.py")
    checkpoint = tiny_models.write_gdino_checkpoint(root / "gdino.pth", config, bert)
    return {"config": config, "checkpoint": checkpoint, "text_encoder": bert}


def _gdino_options(files: dict[str, Path]) -> dict[str, Any]:
    return {
        "device": "cpu",
        "gdino_config": str(files["config"]),
        "gdino_checkpoint": str(files["checkpoint"]),
        "text_encoder": str(files["text_encoder"]),
        "gdino_image_size": 128,
        "gdino_max_size": 160,
    }


@pytest.fixture(scope="module")
def sam_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_models.write_sam_checkpoint(tmp_path_factory.mktemp("sam") / "sam_tiny.pth")


@pytest.fixture(scope="module")
def sam2_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_models.write_sam2_checkpoint(tmp_path_factory.mktemp("sam2") / "sam2_tiny.pt")


@pytest.fixture(scope="module")
def gdino_sam_backend(gdino_files: dict[str, Path], sam_checkpoint: Path) -> Any:
    return SEGMENTERS.create(
        "gdino-sam",
        **_gdino_options(gdino_files),
        sam_checkpoint=str(sam_checkpoint),
        sam_encoder=tiny_models.TINY_SAM_ENCODER,
    )


@pytest.fixture(scope="module")
def gdino_sam2_backend(gdino_files: dict[str, Path], sam2_checkpoint: Path) -> Any:
    return SEGMENTERS.create(
        "gdino-sam2",
        **_gdino_options(gdino_files),
        sam2_checkpoint=str(sam2_checkpoint),
        sam2_overrides=tiny_models.TINY_SAM2_OVERRIDES,
    )


@pytest.fixture(scope="module")
def hf_backend(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("hf")
    return SEGMENTERS.create(
        "hf-gdino-sam",
        device="cpu",
        gdino_model=str(tiny_models.write_hf_gdino(root / "gdino")),
        sam_model=str(tiny_models.write_hf_sam(root / "sam")),
    )


BACKENDS = ["gdino_sam_backend", "gdino_sam2_backend", "hf_backend"]


def _check_result(result: SegResult, frame: np.ndarray) -> None:
    assert isinstance(result, SegResult)
    assert result.mask.shape == frame.shape[:2]
    assert result.mask.dtype == np.float32
    assert float(result.mask.min()) >= 0.0 and float(result.mask.max()) <= 1.0
    height, width = frame.shape[:2]
    for det in result.detections:
        x0, y0, x1, y1 = det.box
        assert 0.0 <= x0 <= x1 <= width and 0.0 <= y0 <= y1 <= height
        assert 0.0 <= det.score <= 1.0


# --- shared helpers ---------------------------------------------------------------------


def test_caption_is_groundingdino_form() -> None:
    assert boxes_mod.gdino_caption(["Dog", "Acoustic  Guitar"]) == "dog . acoustic guitar ."
    assert boxes_mod.gdino_caption(["man."]) == "man ."
    assert boxes_mod.gdino_caption([]) == ""
    assert boxes_mod.gdino_caption(["  ", "."]) == ""


def test_clean_phrase() -> None:
    assert boxes_mod.clean_phrase("[CLS] dog. acoustic guitar. [SEP]") == "dog acoustic guitar"
    assert boxes_mod.clean_phrase(" . ") == ""


def test_box_conversion_and_clipping() -> None:
    xyxy = boxes_mod.cxcywh_norm_to_xyxy_pixels(
        np.array([[0.5, 0.5, 0.5, 0.5], [0.95, 0.1, 0.3, 0.4]]), width=200, height=100
    )
    np.testing.assert_allclose(xyxy[0], [50, 25, 150, 75])
    np.testing.assert_allclose(xyxy[1], [160, 0, 200, 30])  # clipped to the frame


def test_union_masks() -> None:
    masks = np.zeros((2, 1, 4, 5), dtype=bool)
    masks[0, 0, 0, 0] = True
    masks[1, 0, 3, 4] = True
    union = boxes_mod.union_masks(masks, 4, 5)
    assert union.dtype == np.float32 and union.sum() == 2 and union[3, 4] == 1.0
    assert boxes_mod.union_masks(np.zeros((0, 4, 5)), 4, 5).sum() == 0
    with pytest.raises(ValueError):
        boxes_mod.union_masks(masks, 5, 4)


def test_pinned_sources_registered() -> None:
    for name, filename in [
        ("groundingdino-swint-ogc", "groundingdino_swint_ogc.pth"),
        ("sam-vit-h", "sam_vit_h_4b8939.pth"),
        ("sam2.1-hiera-large", "sam2.1_hiera_large.pt"),
    ]:
        source = SOURCES[name]
        assert source.filename == filename and source.url.endswith(filename)
        assert source.sha256 is not None and len(source.sha256) == 64
    assert {"gdino-sam", "gdino-sam2", "hf-gdino-sam"} <= set(SEGMENTERS.names())


def test_bert_shim_matches_bert(tmp_path: Path) -> None:
    """GroundingDINO's BERT wrapper with the transformers-5 shim equals plain BertModel."""
    import torch
    from groundingdino.models.GroundingDINO.bertwarper import BertModelWarper
    from transformers import BertModel

    bert = BertModel.from_pretrained(tiny_models.write_bert(tmp_path / "bert")).eval()
    gdino_sam._bert_helpers(bert)
    wrapped = BertModelWarper(bert_model=bert)
    ids = torch.tensor([[2, 10, 5, 14, 5, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0]])
    with torch.no_grad():
        got = wrapped(input_ids=ids, attention_mask=mask)["last_hidden_state"]
        want = bert(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(got[:, :6], want[:, :6])


# --- the three backends -----------------------------------------------------------------


@pytest.mark.parametrize("backend_fixture", BACKENDS)
def test_threshold_zero_detects(
    backend_fixture: str, request: pytest.FixtureRequest, frame: np.ndarray
) -> None:
    backend = request.getfixturevalue(backend_fixture)
    result = backend.segment(frame, PROMPT, box_threshold=0.0, text_threshold=0.25)
    _check_result(result, frame)
    assert len(result.detections) >= 1
    assert set(np.unique(result.mask)) <= {0.0, 1.0}


@pytest.mark.parametrize("backend_fixture", BACKENDS)
def test_threshold_one_is_empty(
    backend_fixture: str, request: pytest.FixtureRequest, frame: np.ndarray
) -> None:
    backend = request.getfixturevalue(backend_fixture)
    result = backend.segment(frame, PROMPT, box_threshold=1.0, text_threshold=0.25)
    _check_result(result, frame)
    assert result.detections == []
    assert not result.mask.any()


@pytest.mark.parametrize("backend_fixture", BACKENDS)
@pytest.mark.parametrize("prompt", ["", "  ", " , ."])
def test_empty_prompt_is_empty_mask(
    backend_fixture: str, prompt: str, request: pytest.FixtureRequest, frame: np.ndarray
) -> None:
    backend = request.getfixturevalue(backend_fixture)
    result = backend.segment(frame, prompt, box_threshold=0.0, text_threshold=0.0)
    _check_result(result, frame)
    assert result.detections == [] and not result.mask.any()


@pytest.mark.parametrize("backend_fixture", BACKENDS)
def test_phrases_follow_text_threshold(
    backend_fixture: str, request: pytest.FixtureRequest, frame: np.ndarray
) -> None:
    """Text threshold 0 keeps every caption token in the phrase; 1 keeps none."""
    backend = request.getfixturevalue(backend_fixture)
    loose = backend.segment(frame, PROMPT, box_threshold=0.0, text_threshold=0.0)
    assert loose.detections
    for det in loose.detections:
        assert "dog" in det.phrase.split() and "guitar" in det.phrase.split()
        assert "." not in det.phrase
    strict = backend.segment(frame, PROMPT, box_threshold=0.0, text_threshold=1.0)
    assert strict.detections and all(det.phrase == "" for det in strict.detections)


@pytest.mark.parametrize("backend_fixture", BACKENDS)
def test_box_threshold_filters_by_score(
    backend_fixture: str, request: pytest.FixtureRequest, frame: np.ndarray
) -> None:
    backend = request.getfixturevalue(backend_fixture)
    every = backend.segment(frame, PROMPT, box_threshold=0.0, text_threshold=0.25)
    scores = sorted(det.score for det in every.detections)
    cut = scores[len(scores) // 2]
    kept = backend.segment(frame, PROMPT, box_threshold=cut, text_threshold=0.25)
    assert sorted(det.score for det in kept.detections) == pytest.approx(
        [s for s in scores if s > cut]
    )


@pytest.mark.parametrize("backend_fixture", BACKENDS)
def test_deterministic_and_checks_input(
    backend_fixture: str, request: pytest.FixtureRequest, frame: np.ndarray
) -> None:
    backend = request.getfixturevalue(backend_fixture)
    first = backend.segment(frame, PROMPT, box_threshold=0.0, text_threshold=0.25)
    second = backend.segment(frame, PROMPT, box_threshold=0.0, text_threshold=0.25)
    np.testing.assert_array_equal(first.mask, second.mask)
    assert [d.to_json() for d in first.detections] == [d.to_json() for d in second.detections]
    with pytest.raises(ValueError):
        backend.segment(frame[..., 0], PROMPT, box_threshold=0.25, text_threshold=0.25)
    with pytest.raises(ValueError):
        backend.segment(frame, PROMPT, box_threshold=1.5, text_threshold=0.25)


def test_identity_records_weights(
    gdino_sam_backend: Any,
    gdino_sam2_backend: Any,
    hf_backend: Any,
    gdino_files: dict[str, Path],
    sam_checkpoint: Path,
    sam2_checkpoint: Path,
) -> None:
    gdino_sha = sha256_file(gdino_files["checkpoint"])
    ident = gdino_sam_backend.identity()
    assert ident["backend"] == "gdino-sam" and ident["gdino_checkpoint_sha256"] == gdino_sha
    assert ident["sam_checkpoint_sha256"] == sha256_file(sam_checkpoint)
    ident2 = gdino_sam2_backend.identity()
    assert ident2["backend"] == "gdino-sam2" and ident2["gdino_checkpoint_sha256"] == gdino_sha
    assert ident2["sam2_checkpoint_sha256"] == sha256_file(sam2_checkpoint)
    ident_hf = hf_backend.identity()
    assert ident_hf["backend"] == "hf-gdino-sam"
    assert len(ident_hf["gdino_model"]["sha256"]) == 64
    assert ident_hf["gdino_model"]["sha256"] != ident_hf["sam_model"]["sha256"]


# --- bad weights name the file ----------------------------------------------------------


def test_missing_checkpoint_names_file(gdino_files: dict[str, Path], tmp_path: Path) -> None:
    missing = tmp_path / "nope.pth"
    options = _gdino_options(gdino_files) | {"gdino_checkpoint": str(missing)}
    with pytest.raises(ArtifactError) as err:
        SEGMENTERS.create("gdino-sam", **options)
    assert err.value.path == missing


def test_corrupt_checkpoint_names_file(gdino_files: dict[str, Path], tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a torch file")
    options = _gdino_options(gdino_files) | {"gdino_checkpoint": str(corrupt)}
    with pytest.raises(ArtifactError) as err:
        SEGMENTERS.create("gdino-sam", **options)
    assert err.value.path == corrupt


def test_unsafe_pickle_refused_unless_pinned(gdino_files: dict[str, Path], tmp_path: Path) -> None:
    """A checkpoint that needs full unpickling is loaded only when it is the pinned file."""
    import argparse

    import torch

    state = torch.load(gdino_files["checkpoint"], map_location="cpu", weights_only=True)
    pickled = tmp_path / "with_args.pth"
    torch.save({"model": state["model"], "args": argparse.Namespace(x=1)}, pickled)
    options = _gdino_options(gdino_files) | {"gdino_checkpoint": str(pickled)}
    with pytest.raises(ArtifactError, match="not the pinned file") as err:
        SEGMENTERS.create("gdino-sam", **options)
    assert err.value.path == pickled


def test_wrong_architecture_names_file(
    gdino_files: dict[str, Path], sam2_checkpoint: Path, tmp_path: Path
) -> None:
    """A SAM 2 checkpoint given as the GroundingDINO one is refused, naming it."""
    options = _gdino_options(gdino_files) | {"gdino_checkpoint": str(sam2_checkpoint)}
    with pytest.raises(ArtifactError) as err:
        SEGMENTERS.create("gdino-sam", **options)
    assert err.value.path == sam2_checkpoint


def test_corrupt_sam_checkpoints_name_file(gdino_files: dict[str, Path], tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt_sam.pt"
    corrupt.write_bytes(b"\x80\x02garbage")
    with pytest.raises(ArtifactError) as err:
        SEGMENTERS.create(
            "gdino-sam",
            **_gdino_options(gdino_files),
            sam_checkpoint=str(corrupt),
            sam_encoder=tiny_models.TINY_SAM_ENCODER,
        )
    assert err.value.path == corrupt
    with pytest.raises(ArtifactError) as err2:
        SEGMENTERS.create(
            "gdino-sam2",
            **_gdino_options(gdino_files),
            sam2_checkpoint=str(corrupt),
            sam2_overrides=tiny_models.TINY_SAM2_OVERRIDES,
        )
    assert err2.value.path == corrupt


def test_pinned_weights_missing_offline(
    gdino_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without an override the pinned file is required; offline it is a clear error."""
    monkeypatch.setenv("AVSBRIDGE_WEIGHTS_MIRROR", str(tmp_path / "empty-mirror"))
    monkeypatch.setenv("AVSBRIDGE_WEIGHTS_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("AVSBRIDGE_OFFLINE", "1")
    options = _gdino_options(gdino_files)
    del options["gdino_checkpoint"]
    with pytest.raises(FileNotFoundError, match="groundingdino_swint_ogc.pth"):
        SEGMENTERS.create("gdino-sam", **options)


def test_hf_missing_local_model(tmp_path: Path) -> None:
    missing = tmp_path / "no-model"
    with pytest.raises(ArtifactError):
        SEGMENTERS.create("hf-gdino-sam", device="cpu", gdino_model=str(missing))


# --- wiring: the detected boxes, in frame pixels, are what SAM is prompted with ---------

BOX_THRESHOLD = 0.0  # keep every query: many boxes, so a mix-up of rows or axes shows


class _Spy:
    """Wraps a callable, recording each call's arguments and result."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any], Any]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self.target(*args, **kwargs)
        self.calls.append((args, kwargs, result))
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


def _kept_pixel_boxes(
    logits: Any, boxes: Any, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """The model's raw output, thresholded and mapped to frame pixels independently."""
    probs = logits.float().sigmoid()[0]
    scores = probs.max(dim=1)[0]
    keep = (scores > BOX_THRESHOLD).numpy()
    cx, cy, w, h = boxes.float()[0].numpy()[keep].T
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    xyxy = np.clip(xyxy * [width, height, width, height], 0, [width, height, width, height])
    return xyxy, scores.numpy()[keep]


def _hook_outputs(module: Any) -> tuple[list[Any], Any]:
    outputs: list[Any] = []
    handle = module.register_forward_hook(lambda _m, _i, out: outputs.append(out))
    return outputs, handle


def _det_boxes(result: SegResult) -> np.ndarray:
    return np.array([d.box for d in result.detections], dtype=np.float64)


def _expected_union(masks: np.ndarray, frame: np.ndarray) -> np.ndarray:
    return np.asarray(masks, dtype=bool).reshape(-1, *frame.shape[:2]).any(axis=0)


def test_gdino_sam_prompts_sam_with_the_detected_boxes(
    gdino_sam_backend: Any, frame: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = gdino_sam_backend
    height, width = frame.shape[:2]
    predictor = backend.predictor
    # the image encoder's input: the frame resized by SAM's own transform (encode_batch)
    apply_image, predict = _Spy(predictor.transform.apply_image), _Spy(predictor.predict_torch)
    monkeypatch.setattr(predictor.transform, "apply_image", apply_image)
    monkeypatch.setattr(predictor, "predict_torch", predict)
    outputs, handle = _hook_outputs(backend.detector.model)
    try:
        result = backend.segment(frame, PROMPT, box_threshold=BOX_THRESHOLD, text_threshold=0.25)
    finally:
        handle.remove()
    (raw,) = outputs
    boxes, scores = _kept_pixel_boxes(raw["pred_logits"], raw["pred_boxes"], width, height)
    assert len(boxes) >= 2
    np.testing.assert_allclose(_det_boxes(result), boxes, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose([d.score for d in result.detections], scores, rtol=1e-5)
    # SAM sees the frame itself, and the boxes in its own input frame: the frame's
    # pixel boxes scaled by the resize of the longest side to SAM's image size
    ((image,), _, _) = apply_image.calls[0]
    assert image is frame  # RGB as read, no channel flip
    ((), kwargs, (masks, _, _)) = predict.calls[0]
    assert kwargs["multimask_output"] is False and kwargs["point_coords"] is None
    side = predictor.transform.target_length
    scale = side / max(height, width)
    new_h, new_w = int(height * scale + 0.5), int(width * scale + 0.5)
    expected = boxes * [new_w / width, new_h / height, new_w / width, new_h / height]
    np.testing.assert_allclose(kwargs["boxes"].cpu().numpy(), expected, rtol=1e-5, atol=1e-3)
    # one mask per box, and the frame's mask is their union
    assert masks.shape[:2] == (len(boxes), 1)
    np.testing.assert_array_equal(result.mask > 0.5, _expected_union(masks.cpu().numpy(), frame))


def test_gdino_sam2_prompts_sam2_with_the_detected_boxes(
    gdino_sam2_backend: Any, frame: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = gdino_sam2_backend
    height, width = frame.shape[:2]
    predictor = backend.predictor
    # the image encoder's input: the frame through SAM2's own transforms (encode_batch)
    transforms, predict = _Spy(predictor._transforms), _Spy(predictor.predict)
    monkeypatch.setattr(predictor, "_transforms", transforms)
    monkeypatch.setattr(predictor, "predict", predict)
    outputs, handle = _hook_outputs(backend.detector.model)
    try:
        result = backend.segment(frame, PROMPT, box_threshold=BOX_THRESHOLD, text_threshold=0.25)
    finally:
        handle.remove()
    (raw,) = outputs
    boxes, scores = _kept_pixel_boxes(raw["pred_logits"], raw["pred_boxes"], width, height)
    assert len(boxes) >= 2
    np.testing.assert_allclose(_det_boxes(result), boxes, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose([d.score for d in result.detections], scores, rtol=1e-5)
    ((image,), _, _) = transforms.calls[0]
    assert image is frame
    # SAM2's predictor takes boxes in the frame's pixels (it normalises them itself)
    ((), kwargs, (masks, _, _)) = predict.calls[0]
    assert kwargs["multimask_output"] is False
    assert kwargs.get("normalize_coords", True) is True
    np.testing.assert_allclose(kwargs["box"], boxes, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(result.mask > 0.5, _expected_union(masks, frame))


def test_hf_gdino_sam_prompts_sam_with_the_detected_boxes(
    hf_backend: Any, frame: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = hf_backend
    height, width = frame.shape[:2]
    processor, sam = _Spy(backend.sam_processor), _Spy(backend.sam)
    monkeypatch.setattr(backend, "sam_processor", processor)
    monkeypatch.setattr(backend, "sam", sam)
    outputs, handle = _hook_outputs(backend.gdino)
    try:
        result = backend.segment(frame, PROMPT, box_threshold=BOX_THRESHOLD, text_threshold=0.25)
    finally:
        handle.remove()
    (raw,) = outputs
    boxes, scores = _kept_pixel_boxes(raw.logits, raw.pred_boxes, width, height)
    assert len(boxes) >= 2
    np.testing.assert_allclose(_det_boxes(result), boxes, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose([d.score for d in result.detections], scores, rtol=1e-5)
    # the SAM processor gets the frame and the pixel boxes of that one image ...
    # (the first processor call prepares the encoder's pixels; the decoder's call has boxes)
    (_, proc_kwargs, inputs) = next(c for c in processor.calls if "input_boxes" in c[1])
    np.testing.assert_array_equal(np.asarray(proc_kwargs["images"]), frame)
    np.testing.assert_allclose(proc_kwargs["input_boxes"], [boxes], rtol=1e-5, atol=1e-3)
    # ... and SAM the same boxes rescaled to the processor's resized frame
    (_, sam_kwargs, sam_out) = next(c for c in sam.calls if "input_boxes" in c[1])
    assert sam_kwargs["multimask_output"] is False
    assert tuple(inputs["original_sizes"][0].tolist()) == (height, width)
    new_h, new_w = inputs["reshaped_input_sizes"][0].tolist()
    expected = boxes * [new_w / width, new_h / height, new_w / width, new_h / height]
    got = sam_kwargs["input_boxes"].cpu().numpy()
    np.testing.assert_allclose(got[0], expected, rtol=1e-5, atol=1e-3)
    assert sam_out.pred_masks.shape[1] == len(boxes)
