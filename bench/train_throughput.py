"""Does data loading starve training? Clips/s of the input pipeline vs the training step.

The input pipeline is the train stage's own (``avsbridge.train.data``: frame PNGs
resized + normalised, pseudo-label PNGs, audio feature .npy) over the committed
demo benchmark's S4 train split (224x224 frames); pseudo labels are the GT
frame-1 masks written in the segment stage's layout. The training step is the
student's forward + loss + backward + optimiser step on one batch already in
(device) memory, repeated. Students: ``demo`` (its real YAMNet-score features,
from the weights mirror) and ``tpavi`` (full PVT-v2-B5 + TPAVI, random weights,
random 128-d VGGish-shaped features; ``--device cuda`` on a GPU machine), and
``avsegformer`` / ``sama_avs`` (full PVT-v2-B5 / SAM ViT-H, random weights) likewise.

    python bench/train_throughput.py --student demo --json
    python bench/train_throughput.py --student tpavi --device cuda --batch 4 --steps 20 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def _prepare(tmp: Path, student: Any, clips: list[Any], real_audio: bool) -> list[Any]:
    import json as _json

    import numpy as np

    from avsbridge.io import write_prob_png
    from avsbridge.pipeline import object_mask_reader
    from avsbridge.segment.run import boxes_name, mask_name
    from avsbridge.train.audio_features import feature_name, features_shard, write_npy
    from avsbridge.train.data import make_samples

    labels, feats = tmp / "labels", tmp / "feats"
    read_gt = object_mask_reader({"datasets": {"d": {"kind": "s4", "root": "x"}}}, "d")
    for c in clips:
        mask = read_gt(c.masks[0])
        for k in range(1, c.n_frames + 1):
            write_prob_png(labels / mask_name(c.slug, k), mask)
        (labels / boxes_name(c.slug)).write_text(_json.dumps({"frames": {}}))
    if real_audio:
        features_shard(clips, student.audio_features, {}, feats)
    else:
        rng = np.random.default_rng(0)
        feats.mkdir(parents=True, exist_ok=True)
        for c in clips:
            write_npy(
                feats / feature_name(c.slug),
                rng.random((c.n_frames, student.audio_dim), np.float32),
            )
    return make_samples(clips, [feats], [labels])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--student", default="demo", choices=["demo", "tpavi", "avsegformer", "sama_avs"]
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--passes", type=int, default=1, help="passes over the clips (input)")
    parser.add_argument("--tiny", action="store_true", help="tiny configs (smoke test only)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import torch

    from avsbridge.pipeline import dataset_clips
    from avsbridge.train import STUDENTS
    from avsbridge.train.data import ClipDataset, collate

    torch.set_num_threads(args.threads)
    tiny_pvt = {"depths": (1, 1, 1, 1), "embed_dims": (16, 32, 40, 64)}
    options: dict[str, Any] = {
        "demo": {},
        # the MS3 recipes (every frame supervised): the heavier of the two
        "tpavi": {"pretrained": False, "supervised_frames": "all", "masked_av": True},
        "avsegformer": {"pretrained": False, "supervised_frames": "all", "freeze_epochs": 0},
        "sama_avs": {"pretrained": False, "supervised_frames": "all"},
    }[args.student]
    if args.tiny:
        options.update(
            {
                "demo": {},
                "tpavi": {"image_size": 64, "channel": 16, "backbone": tiny_pvt},
                "avsegformer": {
                    "image_size": 64,
                    "embed_dim": 32,
                    "query_num": 8,
                    "ffn_dim": 64,
                    "mlp_hidden": 16,
                    "generator_hidden": 64,
                    "encoder_layers": 1,
                    "decoder_layers": 1,
                    "generator_layers": 1,
                    "backbone": tiny_pvt,
                },
                "sama_avs": {
                    "image_size": 64,
                    "encoder": {
                        "embed_dim": 32,
                        "depth": 2,
                        "num_heads": 2,
                        "global_attn_indexes": [1],
                        "window_size": 2,
                        "out_chans": 32,
                    },
                    "decoder_mlp": 64,
                    "decoder_heads": 2,
                    "iou_hidden": 32,
                },
            }[args.student]
        )
    student = STUDENTS.load_all().create(args.student, **options)
    config = {"datasets": {"d": {"kind": "s4", "root": str(REPO / "data/demo"), "split": "train"}}}
    clips = dataset_clips(config, "d")
    with tempfile.TemporaryDirectory() as tmp:
        samples = _prepare(Path(tmp), student, clips, real_audio=args.student == "demo")
        dataset = ClipDataset(
            samples, student.image_size, student.mean, student.std, student.audio_dim
        )
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=args.batch, collate_fn=collate, num_workers=args.workers
        )
        n = 0
        start = time.perf_counter()
        for _ in range(args.passes):
            for batch in loader:
                n += int(batch.frames.shape[0])
        input_s = time.perf_counter() - start
        batch = next(iter(loader)).to(args.device)

    model = student.build().to(args.device)
    model.train()
    optimizer = student.optimizer(model.parameters(), 1e-4)

    def step() -> None:
        out = student.forward(model, batch)
        loss, _ = student.loss(out, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up (allocations, cuDNN autotune)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    step_s = time.perf_counter() - start
    clips_per_step = int(batch.frames.shape[0])
    result = {
        "student": args.student,
        "device": args.device,
        "image_size": student.image_size,
        "frames_per_clip": int(batch.frames.shape[1]),
        "batch_clips": clips_per_step,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "input_workers": args.workers,
        "torch_threads": args.threads,
        "input_clips_per_s": round(n / input_s, 2),
        "train_step_clips_per_s": round(args.steps * clips_per_step / step_s, 2),
    }
    result["input_over_step"] = round(
        result["input_clips_per_s"] / result["train_step_clips_per_s"], 2
    )
    if args.device.startswith("cuda"):
        result["peak_gpu_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return result


if __name__ == "__main__":
    main()
