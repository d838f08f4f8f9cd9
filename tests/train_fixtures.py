"""Tiny on-disk clips, pseudo-label shards and feature shards for the train tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from avsbridge.data.records import Clip
from avsbridge.io import write_png, write_prob_png
from avsbridge.segment.run import boxes_name, mask_name
from avsbridge.train.audio_features import feature_name, write_npy

FRAMES, SIZE = 3, 40


def make_clips(root: Path, n: int, frames: int = FRAMES, size: int = SIZE, seed: int = 0):
    """Clips whose frames show a bright square; its mask is the square (exact labels)."""
    rng = np.random.default_rng(seed)
    clips, truth = [], {}
    for i in range(n):
        cid = f"clip_{i:02d}"
        paths, masks = [], []
        for k in range(1, frames + 1):
            img = (rng.random((size, size + 8, 3)) * 60).astype(np.uint8)
            mask = np.zeros((size, size + 8), np.float32)
            y, x = rng.integers(0, size // 2, 2)
            mask[y : y + size // 2, x : x + size // 2] = 1.0
            img[mask > 0] = 220
            path = root / "frames" / cid / f"{k}.png"
            write_png(path, img)
            paths.append(path)
            masks.append(mask)
        clips.append(Clip(cid, "demo-s4", "train", "square", tuple(paths), None, (None,) * frames))
        truth[cid] = masks
    return clips, truth


def write_label_shards(root: Path, clips, truth, shard_size: int = 2) -> list[Path]:
    """Pseudo labels in the segment stage's layout, ``shard_size`` clips per folder."""
    dirs = []
    for s in range(0, len(clips), shard_size):
        shard = root / f"s{s // shard_size:04d}"
        for clip in clips[s : s + shard_size]:
            for k, mask in enumerate(truth[clip.id], start=1):
                write_prob_png(shard / mask_name(clip.slug, k), mask)
            frames = {str(k): {"prompt": "square", "detections": []} for k in range(1, 4)}
            (shard / boxes_name(clip.slug)).write_text(json.dumps({"frames": frames}))
        dirs.append(shard)
    return dirs


def write_feature_shards(root: Path, clips, dim: int, shard_size: int = 2) -> list[Path]:
    rng = np.random.default_rng(1)
    dirs = []
    for s in range(0, len(clips), shard_size):
        shard = root / f"s{s // shard_size:04d}"
        shard.mkdir(parents=True, exist_ok=True)
        for clip in clips[s : s + shard_size]:
            write_npy(shard / feature_name(clip.slug), rng.random((clip.n_frames, dim), np.float32))
        dirs.append(shard)
    return dirs
