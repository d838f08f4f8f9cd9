"""Frames/s of the optical-flow backends: OpenCV DIS, RAFT and Perceiver IO at full size.

No checkpoint is downloaded: RAFT (torchvision ``raft_large`` by default) and
Perceiver IO (``deepmind/optical-flow-perceiver``'s architecture, 2048 latents x
24 self-attention layers, 368x496 tiles) are built with random weights, saved in
their official formats to a temp dir and loaded through the backends' normal
paths (``weights_path`` / ``model_path``). Speed does not depend on the weights.
Frames are synthetic textures of ``--size`` (AVSBench: 224x224) shifted by a few
pixels; one "frame" is one flow field (frame t -> t+1). A warm-up batch is run
and not timed; model load time is reported apart.

    nice python bench/flow_throughput.py --frames 4 --device cpu
    python bench/flow_throughput.py --backends raft,perceiver --frames 64 --device cuda
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ALL_BACKENDS = ["opencv", "raft", "perceiver"]


def _tiny_models() -> Any:
    """The model builders shared with the tests (tests/tiny_models.py), full-size mode."""
    spec = importlib.util.spec_from_file_location("tiny_models", REPO / "tests" / "tiny_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_options(name: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Backend options with random full-size weights written under ``workdir``."""
    models = _tiny_models()
    if name == "opencv":
        return {"method": args.opencv_method}
    if name == "raft":
        path = models.write_raft_checkpoint(workdir / f"{args.raft_model}.pth", args.raft_model)
        return {
            "model": args.raft_model,
            "weights_path": str(path),
            "device": args.device,
            "batch_size": args.batch,
            "num_flow_updates": args.raft_updates,
        }
    if name == "perceiver":
        folder = models.write_perceiver_flow(workdir / "perceiver", full=not args.tiny)
        options = {"model_path": str(folder), "device": args.device, "batch_size": args.batch}
        return {**options, "min_overlap": 4} if args.tiny else options  # tiny tiles: 16x24
    raise ValueError(f"unknown backend {name!r} (known: {', '.join(ALL_BACKENDS)})")


def synthetic_pairs(n: int, size: tuple[int, int], seed: int = 0) -> list[tuple[np.ndarray, ...]]:
    import cv2

    rng = np.random.default_rng(seed)
    height, width = size
    base = cv2.GaussianBlur(rng.uniform(0, 255, (height + 16, width + 16, 3)), (0, 0), 2.0)
    base = np.clip(base * 3 - 255, 0, 255).astype(np.uint8)
    pairs = []
    for i in range(n):
        dx, dy = (i % 5) - 2, (i % 3) - 1
        first = base[8 : 8 + height, 8 : 8 + width]
        second = base[8 - dy : 8 - dy + height, 8 - dx : 8 - dx + width]
        pairs.append((np.ascontiguousarray(first), np.ascontiguousarray(second)))
    return pairs


def bench_one(name: str, args: argparse.Namespace, size: tuple[int, int]) -> dict[str, Any]:
    from avsbridge.flow import load_flow_backend

    with tempfile.TemporaryDirectory(prefix=f"flowbench-{name}-") as tmp:
        options = build_options(name, Path(tmp), args)
        start = time.perf_counter()
        backend = load_flow_backend(name, options)
        load_s = time.perf_counter() - start
        warm = synthetic_pairs(max(1, min(args.batch, args.frames)), size, seed=1)
        backend.flow(warm)
        pairs = synthetic_pairs(args.frames, size)
        _sync(getattr(backend, "device", "cpu"))
        start = time.perf_counter()
        fields = backend.flow(pairs)
        _sync(getattr(backend, "device", "cpu"))
        elapsed = time.perf_counter() - start
        identity = backend.identity()
    assert len(fields) == len(pairs) and fields[0].shape == (*size, 2)
    return {
        "backend": name,
        "model": (
            "deepmind/optical-flow-perceiver architecture (random weights)"
            if name == "perceiver" and not args.tiny
            else identity.get("model")
        ),
        "device": getattr(backend, "device", "cpu"),
        "frames": len(pairs),
        "size": list(size),
        "batch": args.batch,
        "load_s": round(load_s, 2),
        "seconds": round(elapsed, 3),
        "frames_per_s": round(len(pairs) / elapsed, 3),
        "weights": "none"
        if name == "opencv"
        else ("random, TINY" if args.tiny else "random, full-size"),
        **({"tiles": identity["inference"]["tile"]} if name == "perceiver" else {}),
    }


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(ALL_BACKENDS))
    parser.add_argument("--frames", type=int, default=8, help="flow fields timed per backend")
    parser.add_argument("--size", default="224x224", help="HxW of the frames (AVSBench: 224x224)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (neural backends)")
    parser.add_argument(
        "--batch", type=int, default=1, help="pairs (RAFT) / tiles (Perceiver) per forward"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--raft-model", default="raft_large", choices=["raft_large", "raft_small"])
    parser.add_argument("--raft-updates", type=int, default=12)
    parser.add_argument("--opencv-method", default="dis", choices=["dis", "farneback"])
    parser.add_argument("--tiny", action="store_true", help="tiny Perceiver (smoke test only)")
    args = parser.parse_args(argv)
    height, width = (int(v) for v in args.size.lower().split("x"))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    results = [bench_one(name, args, (height, width)) for name in args.backends.split(",") if name]
    import torch

    print(
        json.dumps(
            {
                "bench": "flow_throughput",
                "python": platform.python_version(),
                "torch": torch.__version__,
                "torch_threads": torch.get_num_threads(),
                "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                "results": results,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
