"""Checkpoint x test shard -> masks in exactly the segment stage's shard layout.

``{slug}.{k}.png`` (probability maps at the frame's own size) and one
``{slug}.boxes.json`` per clip (no detections: a student predicts masks only),
plus ``_summary.json``: the evaluate stage, audit and reports read these
folders as they read OpenAVS masks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from avsbridge.data.records import Clip
from avsbridge.io import atomic_dir, atomic_write_json, read_image, sha256_file, write_prob_png
from avsbridge.progress import Progress
from avsbridge.segment.run import boxes_name, mask_name
from avsbridge.train import STUDENTS
from avsbridge.train import checkpoint as ck
from avsbridge.train.base import Batch
from avsbridge.train.data import ClipDataset, make_samples

log = logging.getLogger("avsbridge.train.predict")


def load_student(checkpoint: Path, student_name: str) -> tuple[Any, torch.nn.Module]:
    """The student and its trained model from a checkpoint folder (checked)."""
    config = ck.read_config(checkpoint, student_name)
    options = dict(config.get("options") or {})
    if "pretrained" in options:  # the checkpoint holds every weight: no ImageNet/SAM init file
        options["pretrained"] = False
    student = STUDENTS.load_all().create(student_name, **options)
    model = student.build()
    ck.load_weights(checkpoint, model, student_name)
    return student, model


def predict_shard(
    clips: Sequence[Clip],
    checkpoint: Path,
    student_name: str,
    feature_dirs: Sequence[Path],
    out_dir: Path,
    device: str = "cpu",
) -> dict[str, Any]:
    samples = make_samples(clips, feature_dirs)  # features only: no labels at test time
    return _predict(samples, checkpoint, student_name, out_dir, device)


def _predict(
    samples: Sequence[Any], checkpoint: Path, student_name: str, out_dir: Path, device: str
) -> dict[str, Any]:
    student, model = load_student(Path(checkpoint), student_name)
    model = model.to(device).eval()
    dataset = ClipDataset(
        samples, student.image_size, student.mean, student.std, student.audio_dim, with_masks=False
    )
    progress = Progress(f"predict {student_name} {Path(out_dir).name}", len(samples), logger=log)
    clips_summary: dict[str, Any] = {}
    with atomic_dir(out_dir) as tmp, torch.no_grad():
        for index, sample in enumerate(samples):
            clip = sample.clip
            item = dataset[index]
            batch = Batch(item["frames"][None], item["audio"][None]).to(device)
            probs = torch.sigmoid(student.forward(model, batch).logits).cpu()
            frames: dict[str, Any] = {}
            for k, frame_path in enumerate(clip.frames, start=1):
                h, w = read_image(frame_path).shape[:2]
                prob = F.interpolate(probs[k - 1 : k], size=(h, w), mode="bilinear")[0, 0]
                write_prob_png(tmp / mask_name(clip.slug, k), prob.numpy())
                frames[str(k)] = {"prompt": None, "detections": []}
            atomic_write_json(
                tmp / boxes_name(clip.slug),
                {"source": f"student {student_name}", "frames": frames},
            )
            clips_summary[clip.id] = {"slug": clip.slug, "frames": clip.n_frames}
            progress.update()
        summary = {
            "backend": student_name,
            "identity": {
                **student.identity(),
                "checkpoint": str(checkpoint),
                "weights_sha256": sha256_file(Path(checkpoint) / ck.WEIGHTS),
            },
            "clips": clips_summary,
        }
        atomic_write_json(tmp / "_summary.json", summary)
    return summary
