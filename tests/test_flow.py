"""Optical-flow stage: .flo files, a known shift, SSP Eq. 1-2 / post-mask, the neural
backends through their real loaders (tiny random models), the shard runner, the GT guard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tiny_models
from PIL import Image

from avsbridge.data.records import Clip
from avsbridge.flow import backend_needs_gpu, load_flow_backend
from avsbridge.flow.artifacts import flow_colour, read_flo, write_flo, write_flow_preview
from avsbridge.flow.masks import (
    BinarizeRule,
    GroundTruthOnTestSplitError,
    binarize,
    is_training_split,
    magnitude,
    post_mask,
    pre_mask,
    read_gt_foreground,
    read_training_gt,
    stack_eq1,
)
from avsbridge.flow.perceiver import stack_patches, tile_origins, upscale_size
from avsbridge.flow.run import flo_name, flow_shard, frame_name, preview_name
from avsbridge.io import ArtifactError
from avsbridge.registry import UnknownBackendError

# Synthetic shift: DIS must recover an integer translation of a smooth texture to
# a mean end-point error below this (px), away from the 16-px border it cannot see past.
SHIFT_EPE_MAX = 0.05  # measured 0.012-0.018 px (OpenCV 4.14, DIS medium)


def _texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth random RGB texture (blurred noise): trackable at every pixel."""
    import cv2

    noise = np.random.default_rng(seed).uniform(0, 255, (height, width, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 2.0) * 3 - 255, 0, 255).astype(np.uint8)


def _shift(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Second frame of a pure translation: content at (x, y) moves to (x + dx, y + dy)."""
    return np.roll(image, (dy, dx), axis=(0, 1))


# --- .flo and previews ----------------------------------------------------------------


def test_flo_round_trips_through_flowiz(tmp_path: Path) -> None:
    import flowiz

    field = np.random.default_rng(1).normal(0, 5, (7, 11, 2)).astype(np.float32)
    path = tmp_path / "pair.flo"
    write_flo(path, field)
    assert path.stat().st_size == 12 + 7 * 11 * 2 * 4
    np.testing.assert_array_equal(flowiz.read_flow(str(path)), field)
    np.testing.assert_array_equal(read_flo(path), field)


def test_read_flo_names_the_file_on_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.flo"
    bad.write_bytes(b"PIEX" + b"\x00" * 20)
    with pytest.raises(ArtifactError, match="bad.flo.*tag"):
        read_flo(bad)
    short = tmp_path / "short.flo"
    write_flo(short, np.zeros((4, 4, 2), np.float32))
    short.write_bytes(short.read_bytes()[:-4])
    with pytest.raises(ArtifactError, match="short.flo.*bytes"):
        read_flo(short)
    with pytest.raises(ArtifactError, match="missing"):
        read_flo(tmp_path / "none.flo")


def test_preview_is_flowiz_middlebury_colour(tmp_path: Path) -> None:
    field = np.zeros((6, 8, 2), np.float32)
    field[2:4, 2:4, 0] = 3.0  # a patch moving right
    write_flow_preview(tmp_path / "p.png", field)
    png = np.asarray(Image.open(tmp_path / "p.png"))
    assert png.shape == (6, 8, 3) and png.dtype == np.uint8
    assert (png[0, 0] == 255).all()  # no motion is white in the Middlebury code
    assert not (png[2, 2] == 255).all()
    np.testing.assert_array_equal(png, flow_colour(field))


# --- a known shift ------------------------------------------------------------------------


@pytest.mark.parametrize("dx,dy", [(3, -2), (-1, 4)])
def test_opencv_recovers_a_known_integer_shift(tmp_path: Path, dx: int, dy: int) -> None:
    first = _texture(128, 160)
    second = _shift(first, dx, dy)
    backend = load_flow_backend("opencv", {})
    (field,) = backend.flow([(first, second)])
    assert field.shape == (128, 160, 2) and field.dtype == np.float32
    write_flo(tmp_path / "shift.flo", field)  # and the file keeps it
    inner = read_flo(tmp_path / "shift.flo")[16:-16, 16:-16]
    epe = np.sqrt((inner[..., 0] - dx) ** 2 + (inner[..., 1] - dy) ** 2).mean()
    assert epe < SHIFT_EPE_MAX, f"DIS mean EPE {epe:.3f} px for shift ({dx}, {dy})"


def test_farneback_is_selectable_and_sees_the_direction() -> None:
    first = _texture(96, 96, seed=2)
    (field,) = load_flow_backend("opencv", {"method": "farneback"}).flow(
        [(first, _shift(first, 2, 0))]
    )
    inner = field[16:-16, 16:-16]
    assert abs(float(np.median(inner[..., 0])) - 2.0) < 0.5
    assert abs(float(np.median(inner[..., 1]))) < 0.5


def test_registry_declares_gpu_needs_without_loading() -> None:
    assert backend_needs_gpu("opencv") is False
    assert backend_needs_gpu("raft") is True
    assert backend_needs_gpu("perceiver") is True
    with pytest.raises(UnknownBackendError, match="known: opencv, perceiver, raft"):
        backend_needs_gpu("flownet")


# --- SSP Eq. 1, Eq. 2, post-mask on hand-computed arrays ------------------------------------


def test_magnitude_is_the_vector_length() -> None:
    field = np.array([[[3.0, 4.0], [0.0, -2.0]]], np.float32)
    np.testing.assert_allclose(magnitude(field), [[5.0, 2.0]])


def test_eq1_first_mean_of_adjacent_last() -> None:
    pairs = [np.array([[0.0, 2.0]]), np.array([[4.0, 0.0]]), np.array([[2.0, 2.0]])]  # T = 4
    o_t = stack_eq1(pairs)
    assert len(o_t) == 4
    expected = [[[0.0, 2.0]], [[2.0, 1.0]], [[3.0, 1.0]], [[2.0, 2.0]]]
    for got, want in zip(o_t, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    two = stack_eq1([np.array([[1.0]])])  # T = 2: both frames get the one flow
    assert [float(m[0, 0]) for m in two] == [1.0, 1.0]
    with pytest.raises(ValueError, match="at least one"):
        stack_eq1([])


def test_binarize_rules() -> None:
    o = np.array([[0.0, 0.5, 1.0, 1.5, 4.0]], np.float32)
    fixed = BinarizeRule.from_params({"method": "fixed", "threshold": 1.0})
    assert binarize(o, fixed).tolist() == [[False, False, False, True, True]]
    assert BinarizeRule() == BinarizeRule("otsu", 1.0)  # the documented default
    rel = BinarizeRule.from_params({"method": "relative", "threshold": 0.3})
    assert binarize(o, rel).tolist() == [[False, False, False, True, True]]  # > 1.2
    bimodal = np.array([[0.1, 0.2, 0.1, 9.0, 10.0, 9.5]], np.float32)
    otsu = BinarizeRule.from_params({"method": "otsu", "threshold": 1.0})
    assert binarize(bimodal, otsu).tolist() == [[False, False, False, True, True, True]]
    noise_only = np.array([[0.0, 0.4, 0.5]], np.float32)  # Otsu splits noise; the px floor holds
    assert not binarize(noise_only, otsu).any()
    assert not binarize(np.zeros((2, 2), np.float32), rel).any()
    with pytest.raises(ValueError, match="method"):
        BinarizeRule.from_params({"method": "mean"})
    with pytest.raises(ValueError, match="unknown keys"):
        BinarizeRule.from_params({"thresh": 1})


def test_eq2_pre_mask_and_post_mask() -> None:
    m_o = np.array([[1, 1, 0, 0]], bool)
    m_gt = np.array([[1, 0, 1, 0]], bool)
    np.testing.assert_array_equal(pre_mask(m_o, m_gt), [[1.0, 0.5, 0.5, 0.0]])
    np.testing.assert_array_equal(post_mask(m_o, m_gt), [[True, False, False, False]])
    with pytest.raises(ValueError, match="differ in size"):
        pre_mask(m_o, m_gt[:, :3])


# --- ground truth: training splits only ----------------------------------------------------


def _clip(root: Path, split: str, frames: list[np.ndarray], masks: list[np.ndarray | None]) -> Clip:
    root.mkdir(parents=True, exist_ok=True)
    frame_paths, mask_paths = [], []
    for k, frame in enumerate(frames, start=1):
        Image.fromarray(frame).save(root / f"f{k}.png")
        frame_paths.append(root / f"f{k}.png")
        mask = masks[k - 1] if k <= len(masks) else None
        if mask is None:
            mask_paths.append(None)
        else:
            Image.fromarray(mask).save(root / f"m{k}.png")
            mask_paths.append(root / f"m{k}.png")
    return Clip(
        id=f"{split}/clip_{root.name}",
        subset="s4",
        split=split,
        category="dog",
        frames=tuple(frame_paths),
        audio=None,
        masks=tuple(mask_paths),
    )


def test_split_rule() -> None:
    assert is_training_split("train")
    assert is_training_split("meta_v3_seen_train") and is_training_split("v3_1_shot/train")
    assert not any(map(is_training_split, ["test", "val", "meta_v3_unseen", "v3_1_shot/test"]))


def test_gt_reader_refuses_test_split(tmp_path: Path) -> None:
    frame = _texture(32, 32)
    mask = np.zeros((32, 32), np.uint8)
    test_clip = _clip(tmp_path / "t", "test", [frame, frame], [mask, mask])
    with pytest.raises(GroundTruthOnTestSplitError, match="split 'test'.*training"):
        read_training_gt(test_clip, 1)
    palette = Image.fromarray(np.array([[0, 3], [0, 0]], np.uint8), mode="P")
    palette.putpalette([0, 0, 0, 10, 10, 10, 20, 20, 20, 0, 0, 1] + [0] * 756)
    palette.save(tmp_path / "avss.png")  # class 3 is nearly black: foreground by index, not luma
    assert read_gt_foreground(tmp_path / "avss.png").tolist() == [[False, True], [False, False]]


def _moving_square_clip(root: Path, split: str, n: int = 3, missing_gt: bool = False) -> Clip:
    """A textured square moving 3 px right per frame over a static texture; GT = the square."""
    background = _texture(64, 64, seed=5)
    square = _texture(20, 20, seed=6)
    frames, masks = [], []
    for t in range(n):
        frame = background.copy()
        x = 10 + 3 * t
        frame[20:40, x : x + 20] = square
        mask = np.zeros((64, 64), np.uint8)
        mask[20:40, x : x + 20] = 255
        frames.append(frame)
        masks.append(mask)
    clip = _clip(root, split, frames, masks)
    if missing_gt:  # a test clip whose GT a guarded job must never open
        clip = Clip(**{**clip.__dict__, "masks": tuple(root / f"absent{k}.png" for k in range(n))})
    return clip


def test_flow_shard_train_clip_writes_every_artifact(tmp_path: Path) -> None:
    import flowiz

    clip = _moving_square_clip(tmp_path / "media" / "a", "train")
    out = tmp_path / "flow" / "s0000"
    summary = flow_shard([clip], "opencv", {}, {"binarize": {"threshold": 1.0}}, out)
    slug = clip.slug
    for k in (1, 2):
        np.testing.assert_array_equal(
            read_flo(out / flo_name(slug, k)), flowiz.read_flow(str(out / flo_name(slug, k)))
        )
        assert (out / preview_name(slug, k)).is_file()
    for k in (1, 2, 3):
        mo = np.asarray(Image.open(out / frame_name(slug, k, "mo")))
        pre = np.asarray(Image.open(out / frame_name(slug, k, "pre")))
        post = np.asarray(Image.open(out / frame_name(slug, k, "post")))
        gt = np.asarray(Image.open(clip.masks[k - 1])) > 127
        assert set(np.unique(pre)) <= {0, 128, 255}
        assert set(np.unique(mo)) <= {0, 255}
        np.testing.assert_array_equal(post == 255, (mo == 255) & gt)
        np.testing.assert_array_equal(pre == 255, post == 255)
        assert (mo[gt] == 255).mean() > 0.5  # the moving square is mostly in M_O
        assert (mo[:, 50:] == 0).all()  # the static right side is not
    entry = summary["clips"][clip.id]
    assert entry["gt_frames"] == [1, 2, 3] and entry["pairs"] == 2
    assert summary["identity"]["backend"] == "opencv"
    assert summary["params"]["binarize"] == {"method": "otsu", "threshold": 1.0}
    assert not list(out.parent.glob(".*tmp"))  # atomic: no temp folder left


def test_test_split_job_never_reads_gt(tmp_path: Path) -> None:
    clip = _moving_square_clip(tmp_path / "media" / "b", "test", missing_gt=True)
    out = tmp_path / "flow" / "s0001"
    summary = flow_shard([clip], "opencv", {}, {"previews": False}, out)  # GT paths do not exist
    assert summary["clips"][clip.id]["gt_frames"] == []
    assert not list(out.glob("*.pre.png")) and not list(out.glob("*.post.png"))
    assert len(list(out.glob("*.mo.png"))) == 3 and not list(out.glob("*.flow.png"))
    with pytest.raises(GroundTruthOnTestSplitError, match="flow.gt=require"):
        flow_shard([clip], "no-such-backend", {}, {"gt": "require"}, tmp_path / "flow" / "s0002")
    assert not (tmp_path / "flow" / "s0002").exists()  # refused before any backend or write


def test_bad_params_fail_before_the_backend_loads(tmp_path: Path) -> None:
    clip = _moving_square_clip(tmp_path / "media" / "c", "train")
    with pytest.raises(ValueError, match="unknown keys"):
        flow_shard([clip], "no-such-backend", {}, {"binarise": {}}, tmp_path / "o")
    gone = Clip(
        **{**clip.__dict__, "frames": (clip.frames[0], tmp_path / "lost.png", clip.frames[2])}
    )
    with pytest.raises(ArtifactError, match="lost.png.*missing"):
        flow_shard([gone], "no-such-backend", {}, {}, tmp_path / "o")


# --- neural backends through their real loaders (tiny random models) ------------------------


def _pairs(shapes: list[tuple[int, int]], seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        (
            rng.integers(0, 256, (*s, 3), dtype=np.uint8),
            rng.integers(0, 256, (*s, 3), dtype=np.uint8),
        )
        for s in shapes
    ]


def test_raft_loads_a_state_dict_and_batches_pairs(tmp_path: Path) -> None:
    path = tiny_models.write_raft_checkpoint(tmp_path / "raft_small.pth", "raft_small")
    backend = load_flow_backend(
        "raft",
        {
            "model": "raft_small",
            "weights_path": str(path),
            "num_flow_updates": 2,
            "device": "cpu",
            "batch_size": 2,
        },
    )
    fields = backend.flow(_pairs([(60, 68), (40, 48), (60, 68)]))  # 2 sizes, 1 batch each
    assert [f.shape for f in fields] == [(60, 68, 2), (40, 48, 2), (60, 68, 2)]
    assert all(f.dtype == np.float32 and np.isfinite(f).all() for f in fields)
    ident = backend.identity()
    assert ident["model"] == "torchvision.raft_small" and len(ident["weights_sha256"]) == 64
    with pytest.raises(ValueError, match="not a torchvision raft_large state dict"):
        load_flow_backend(
            "raft", {"model": "raft_large", "weights_path": str(path), "device": "cpu"}
        )


def test_raft_default_weights_come_from_the_pinned_source() -> None:
    from avsbridge import weights

    for name in ("raft-large", "raft-small"):
        source = weights.SOURCES[name]
        assert source.url.endswith(source.filename)
        prefix = source.filename.rsplit("-", 1)[-1].removesuffix(".pth")
        assert source.sha256 is not None and source.sha256.startswith(prefix)  # torchvision's pin
    with pytest.raises(FileNotFoundError, match="raft_large_C_T_SKHT_V2-ff5fadd5.pth"):
        load_flow_backend("raft", {"device": "cpu"})  # offline, not in the mirror


def test_perceiver_tiling_helpers() -> None:
    assert tile_origins((20, 30), (16, 24), 4) == [(0, 0), (0, 6), (4, 0), (4, 6)]
    assert tile_origins((368, 496), (368, 496), 20) == [(0, 0)]
    assert upscale_size((224, 224), (368, 496)) == (496, 496)
    assert upscale_size((480, 640), (368, 496)) == (480, 640)
    image = np.arange(2 * 3 * 3, dtype=np.float32).reshape(1, 2, 3, 3)  # 2 channels
    import torch

    patches = stack_patches(torch.from_numpy(image))[0, :, 1, 1].numpy()  # centre pixel
    # (kh, kw, c) order: first the top-left neighbour's two channels, then top-centre ...
    assert patches[:4].tolist() == [
        image[0, 0, 0, 0],
        image[0, 1, 0, 0],
        image[0, 0, 0, 1],
        image[0, 1, 0, 1],
    ]


def test_perceiver_loads_save_pretrained_folder_and_tiles(tmp_path: Path) -> None:
    import torch

    folder = tiny_models.write_perceiver_flow(tmp_path / "perceiver")
    backend = load_flow_backend(
        "perceiver", {"model_path": str(folder), "min_overlap": 4, "device": "cpu"}
    )
    assert backend.tile == (16, 24)
    pairs = _pairs([(20, 30), (20, 30), (10, 12), (16, 24)], seed=3)
    fields = backend.flow(pairs)
    assert [f.shape for f in fields] == [(20, 30, 2), (20, 30, 2), (10, 12, 2), (16, 24, 2)]
    assert all(f.dtype == np.float32 and np.isfinite(f).all() for f in fields)
    # one tile exactly: the stitched flow is the model's logits x 20 on the patch stack
    from avsbridge.flow.base import to_unit_range

    first, second = (to_unit_range(p[None]) for p in pairs[3])
    inputs = torch.stack([stack_patches(first), stack_patches(second)], dim=1)
    with torch.inference_mode():
        direct = backend.model(inputs=inputs).logits[0].numpy() * 20.0
    np.testing.assert_allclose(fields[3], direct, rtol=1e-4, atol=1e-4)
    assert backend.identity()["inference"]["tile"] == [16, 24]
    with pytest.raises(ValueError, match="min_overlap"):
        load_flow_backend(
            "perceiver", {"model_path": str(folder), "min_overlap": 20, "device": "cpu"}
        )


# --- audit: a flow mask back to its frames ---------------------------------------------------


def test_audit_walks_a_flow_mask_back_to_its_frames_and_gt(tmp_path: Path, monkeypatch) -> None:
    """A training-split shard: audit finds every frame and the GT its M_Pre read, and
    names a frame whose bytes changed since the job ran."""
    import shutil

    from avsbridge.config import load_config
    from avsbridge.flow.job import flow_stage
    from avsbridge.provenance.audit import audit_artifacts
    from avsbridge.stages import JobContext

    repo = Path(__file__).resolve().parents[1]
    config = load_config()
    train = config["datasets"]["s4_train"]
    media = tmp_path / "demo"  # a private copy: the test edits a frame below
    shutil.copytree(repo / train["root"], media)
    config["datasets"] = {"s4_train": {**train, "root": str(media), "shard_size": 1, "limit": 1}}
    config["backends"]["flow"] = {"name": "opencv"}
    monkeypatch.chdir(repo)
    out = tmp_path / "flow" / "s4_train" / "opencv" / "s0000"
    ctx = JobContext(
        config=config,
        wildcards={"dataset": "s4_train", "shard": "s0000"},
        input={},
        output=out,
        params={"flow": {"previews": False}},
        log=None,
    )
    flow_stage(ctx)
    result = audit_artifacts([out], repo)
    assert result.problems == []
    assert result.nodes[str(out)].rule == "flow"
    pixels = sorted(n.path for n in result.nodes.values() if n.family == "frame")
    (clip_id,) = read_summary_clips(out)
    frames = [p for p in pixels if "/visual_frames/" in p]
    gt = [p for p in pixels if "/gt_masks/" in p]
    assert len(frames) == 5 and all(clip_id.split("/")[-1] in f for f in frames)
    assert len(gt) == 1 and gt[0].endswith("_1.png")  # S4 train GT: frame 1 only (M_Pre)
    Path(frames[2]).write_bytes(Path(frames[2]).read_bytes() + b"\0")
    problems = audit_artifacts([out], repo).problems
    assert [(p.kind, p.cause) for p in problems] == [("stale", "input")], problems
    assert Path(frames[2]).name in problems[0].detail


def read_summary_clips(out: Path) -> list[str]:
    import json

    return list(json.loads((out / "_summary.json").read_text())["clips"])
