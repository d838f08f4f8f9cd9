"""Frames/s of the paper-profile VFM backends at full size, with random weights.

No checkpoint is downloaded: each backend's published architecture (GroundingDINO
SwinT-OGC + bert-base, SAM ViT-H, SAM 2.1 Hiera-L, transformers
grounding-dino-tiny + sam-vit-huge) is built from its real config with random
weights, saved in the official format to a temp dir, and loaded through the
backend's normal path; then ``segment()`` runs on N synthetic 224x224 frames.
Random weights make the number of boxes arbitrary, so the box threshold is 0.0
and the detector's top ``--boxes`` queries are segmented (default 3, a typical
AVSBench frame), which keeps the SAM cost per frame comparable across runs.

    python bench/vfm_throughput.py --backends hf-gdino-sam --frames 2 --device cpu --json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ALL_BACKENDS = ["gdino-sam", "gdino-sam2", "hf-gdino-sam"]


def _tiny_models() -> Any:
    """The model builders shared with the tests (tests/tiny_models.py), full-size mode."""
    spec = importlib.util.spec_from_file_location("tiny_models", REPO / "tests" / "tiny_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def backend_options(name: str, workdir: Path, device: str, full: bool = True) -> dict[str, Any]:
    """Options of the backend ``name`` with random weights written under ``workdir``
    (``full``: real size; ``full=False`` builds the tiny test models, a smoke test only)."""
    models = _tiny_models()
    if name in ("gdino-sam", "gdino-sam2"):
        bert = workdir / "bert-base"
        if not bert.exists():
            models.write_bert(bert, full=full)
        config = models.write_gdino_config(workdir / "GroundingDINO_SwinT_OGC.py", full=full)
        gdino = workdir / "groundingdino_swint_ogc.pth"
        if not gdino.exists():
            models.write_gdino_checkpoint(gdino, config, bert)
        common = {
            "device": device,
            "gdino_config": str(config),
            "gdino_checkpoint": str(gdino),
            "text_encoder": str(bert),
        }
        if name == "gdino-sam":
            sam = models.write_sam_checkpoint(workdir / "sam_vit_h.pth", full=full)
            sam_size = {} if full else {"sam_encoder": models.TINY_SAM_ENCODER}
            return {**common, "sam_checkpoint": str(sam), **sam_size}
        sam2 = models.write_sam2_checkpoint(workdir / "sam2.1_hiera_large.pt", full=full)
        sam2_size = {} if full else {"sam2_overrides": models.TINY_SAM2_OVERRIDES}
        return {**common, "sam2_checkpoint": str(sam2), **sam2_size}
    if name == "hf-gdino-sam":
        gdino_dir = models.write_hf_gdino(workdir / "hf-gdino", full=full)
        sam_dir = models.write_hf_sam(workdir / "hf-sam", full=full)
        return {"device": device, "gdino_model": str(gdino_dir), "sam_model": str(sam_dir)}
    raise SystemExit(f"unknown backend {name!r} (known: {', '.join(ALL_BACKENDS)})")


def build_backend(name: str, workdir: Path, device: str, full: bool = True) -> Any:
    """The backend ``name`` with random weights written under ``workdir`` (``full``: real size)."""
    from avsbridge.segment import SEGMENTERS, gdino_sam, gdino_sam2, hf_grounded_sam  # noqa: F401

    return SEGMENTERS.create(name, **backend_options(name, workdir, device, full))


def _cap_boxes(backend: Any, max_boxes: int) -> None:
    """Keep only the ``max_boxes`` best-scoring boxes of a frame (random weights find many)."""
    original = backend.select

    def select(*args: Any, **kwargs: Any) -> Any:
        detections = original(*args, **kwargs)
        return sorted(detections, key=lambda d: -d.score)[:max_boxes]

    backend.select = select


def measure(
    name: str, device: str, frames: int, max_boxes: int, workdir: Path, full: bool = True
) -> dict[str, Any]:
    import torch

    t0 = time.perf_counter()
    backend = build_backend(name, workdir, device, full)
    load_s = time.perf_counter() - t0
    _cap_boxes(backend, max_boxes)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, size=(224, 224, 3), dtype=np.uint8) for _ in range(frames + 1)]
    backend.segment(images[0], "dog, guitar", box_threshold=0.0, text_threshold=0.25)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t1 = time.perf_counter()
    boxes = 0
    for image in images[1:]:
        boxes += len(backend.segment(image, "dog, guitar", 0.0, 0.25).detections)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    run_s = time.perf_counter() - t1
    return {
        "backend": name,
        "device": device,
        "frames": frames,
        "boxes_per_frame": boxes / max(frames, 1),
        "load_s": round(load_s, 2),
        "run_s": round(run_s, 3),
        "frames_per_s": round(frames / run_s, 3) if run_s > 0 else None,
        "torch_threads": torch.get_num_threads(),
        "size": "full" if full else "tiny (smoke test, not a throughput figure)",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=ALL_BACKENDS, choices=ALL_BACKENDS)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--boxes", type=int, default=3, help="boxes segmented per frame")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--tiny", action="store_true", help="tiny test-size models: checks this script, not speed"
    )
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "src"))
    from avsbridge.segment.base import resolve_device

    device = resolve_device(args.device)
    results = []
    with tempfile.TemporaryDirectory(prefix="vfm-bench-") as tmp:
        for name in args.backends:
            results.append(
                measure(name, device, args.frames, args.boxes, Path(tmp), full=not args.tiny)
            )
            if not args.json:
                r = results[-1]
                print(
                    f"{r['backend']} on {r['device']}: {r['frames_per_s']} frames/s "
                    f"({r['frames']} frames, {r['boxes_per_frame']:.1f} boxes/frame, "
                    f"load {r['load_s']} s)"
                )
    if args.json:
        print(json.dumps({"results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
