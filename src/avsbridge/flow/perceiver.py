"""Perceiver IO optical flow (transformers ``PerceiverForOpticalFlow``): SSP's flow model.

The network only takes a patch-stacked pair at its training size
(``config.train_size``, 368x496 for ``deepmind/optical-flow-perceiver``): each
pixel carries the 3x3x3 patch around it (TF "SAME" zero padding, (kh, kw, c)
order), both frames stacked -> ``(B, 2, 27, 368, 496)``; the logits times 20
(``FLOW_SCALE_FACTOR``) are the flow in pixels.

Other sizes, as the model card's own inference does it (the tutorial notebook the
card links, NielsRogge/Transformers-Tutorials Perceiver_for_Optical_Flow.ipynb, a
port of DeepMind's colab): TILE. The frame is covered by train-size tiles that
overlap by at least ``min_overlap`` = 20 px, the last tile flush with the border;
each tile's flow is weighted by its distance to the tile edge and the weighted
sum is normalised. That code refuses frames smaller than one tile ("pad or resize
your image to the minimum dimension"); we RESIZE those up by one aspect-keeping
factor until a tile fits (AVSBench's 224x224 frames -> 496x496, two tiles), then
resize the flow back and divide it by the same factor. Padding is not used: a
zero border would be stationary content the model sees as a scene edge.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.backends import hf_snapshot_dir, model_folder_digest, resolve_device
from avsbridge.flow import FLOW_BACKENDS
from avsbridge.flow.base import FramePair, group_by_shape, to_unit_range

DEFAULT_MODEL_ID = "deepmind/optical-flow-perceiver"
# Newest commit of the model repo seen in its public history ("Fix typo", 2021-12-11);
# the identity also records the weights' digest, which is what pins the result.
DEFAULT_REVISION = "dd4bf60748100842873f4c74660f409889989faf"
FLOW_SCALE_FACTOR = 20.0  # DeepMind colab / model-card notebook: flow = logits * 20
MIN_OVERLAP = 20


def tile_origins(
    size: tuple[int, int], tile: tuple[int, int], min_overlap: int
) -> list[tuple[int, int]]:
    """Upper-left corners of the tiles covering ``size`` (the card's ``compute_grid_indices``).

    Steps of ``tile - min_overlap``, the last tile moved flush with the border;
    duplicates (a side exactly one tile long) are dropped, which leaves the
    weighted average unchanged.
    """
    if min_overlap >= tile[0] or min_overlap >= tile[1]:
        raise ValueError(f"min_overlap {min_overlap} must be smaller than the tile {tile}")
    if size[0] < tile[0] or size[1] < tile[1]:
        raise ValueError(f"frame {size} is smaller than one tile {tile}")
    axes = []
    for extent, length in zip(size, tile, strict=True):
        starts = list(range(0, extent, length - min_overlap))
        starts[-1] = extent - length
        axes.append(sorted(set(starts)))
    return list(itertools.product(*axes))


def tile_weights(tile: tuple[int, int]) -> np.ndarray:
    """Per-pixel weight of a tile's flow: distance (1-based) to the nearest tile edge."""
    ys, xs = np.meshgrid(np.arange(tile[0]), np.arange(tile[1]), indexing="ij")
    wy = np.minimum(ys + 1, tile[0] - ys)
    wx = np.minimum(xs + 1, tile[1] - xs)
    return np.minimum(wy, wx).astype(np.float32)


def upscale_size(size: tuple[int, int], tile: tuple[int, int]) -> tuple[int, int]:
    """Smallest aspect-keeping size >= ``size`` into which one tile fits (``size`` if it does)."""
    factor = max(tile[0] / size[0], tile[1] / size[1], 1.0)
    if factor == 1.0:
        return size
    return (
        max(tile[0], math.ceil(size[0] * factor - 1e-9)),
        max(tile[1], math.ceil(size[1] * factor - 1e-9)),
    )


def stack_patches(frames: Any) -> Any:
    """(N, 3, H, W) -> (N, 27, H, W): each pixel's 3x3 neighbourhood, TF SAME zero padding,
    channels in TF ``extract_patches`` order (kh, kw, c) -- what the weights were trained on."""
    import torch.nn.functional as F

    n, c, h, w = frames.shape
    padded = F.pad(frames, (1, 1, 1, 1))
    patches = padded.unfold(2, 3, 1).unfold(3, 3, 1)  # N, C, H, W, kh, kw
    return patches.permute(0, 4, 5, 1, 2, 3).reshape(n, 9 * c, h, w)


@FLOW_BACKENDS.register("perceiver", gpu=True, mem_mb=8000)
class PerceiverFlow:
    """PerceiverForOpticalFlow with the card's tiling; tiles of all pairs batched together."""

    name = "perceiver"
    needs_gpu = True

    def __init__(
        self,
        model_id: str = DEFAULT_MODEL_ID,
        revision: str | None = DEFAULT_REVISION,
        model_path: PathLike[str] | str | None = None,
        batch_size: int = 4,
        min_overlap: int = MIN_OVERLAP,
        device: str = "auto",
    ) -> None:
        import torch
        from transformers import PerceiverForOpticalFlow

        self.model_id = model_id if model_path is None else str(model_path)
        self.revision = revision if model_path is None else None
        folder = Path(model_path) if model_path is not None else hf_snapshot_dir(model_id, revision)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder}: no config.json (not a transformers model folder)")
        self.weights_sha256 = model_folder_digest(folder)
        self.device = resolve_device(device)
        self.batch_size = max(1, int(batch_size))
        self.min_overlap = int(min_overlap)
        self.model = PerceiverForOpticalFlow.from_pretrained(folder, dtype=torch.float32)
        self.model.to(self.device).eval()
        self.tile = (int(self.model.config.train_size[0]), int(self.model.config.train_size[1]))
        tile_origins(self.tile, self.tile, self.min_overlap)  # overlap check, early
        self._weights = tile_weights(self.tile)

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model_id,
            "revision": self.revision,
            "weights_sha256": self.weights_sha256,
            "inference": {
                "tile": list(self.tile),
                "min_overlap": self.min_overlap,
                "flow_scale_factor": FLOW_SCALE_FACTOR,
                "small_frames": "resized up (aspect kept) until one tile fits, flow scaled back",
            },
        }

    def _forward(self, inputs: Any) -> np.ndarray:
        """(n, 2, 27, th, tw) -> flow (n, th, tw, 2) in pixels, in chunks of batch_size."""
        import torch

        pieces = []
        with torch.inference_mode():
            for start in range(0, inputs.shape[0], self.batch_size):
                chunk = inputs[start : start + self.batch_size].to(self.device)
                pieces.append(self.model(inputs=chunk).logits.float().cpu().numpy())
        return np.concatenate(pieces) * FLOW_SCALE_FACTOR

    def flow(self, pairs: Sequence[FramePair]) -> list[np.ndarray]:
        import torch
        import torch.nn.functional as F

        out: list[np.ndarray | None] = [None] * len(pairs)
        th, tw = self.tile
        for batch in group_by_shape(pairs, self.batch_size):
            first = to_unit_range(np.stack([pairs[i][0] for i in batch]))
            second = to_unit_range(np.stack([pairs[i][1] for i in batch]))
            size = (int(first.shape[-2]), int(first.shape[-1]))
            work = upscale_size(size, self.tile)
            if work != size:
                first = F.interpolate(first, size=work, mode="bilinear", align_corners=False)
                second = F.interpolate(second, size=work, mode="bilinear", align_corners=False)
            n = first.shape[0]
            patched = torch.stack([stack_patches(first), stack_patches(second)], dim=1)
            origins = tile_origins(work, self.tile, self.min_overlap)
            tiles = torch.cat([patched[..., y : y + th, x : x + tw] for y, x in origins])
            predicted = self._forward(tiles).reshape(len(origins), n, th, tw, 2)
            total = np.zeros((n, *work, 2), dtype=np.float32)
            count = np.zeros((1, *work, 1), dtype=np.float32)
            weight = self._weights[None, :, :, None]
            for (y, x), piece in zip(origins, predicted, strict=True):
                total[:, y : y + th, x : x + tw] += piece * weight
                count[:, y : y + th, x : x + tw] += weight
            fields = total / count
            if work != size:
                back = F.interpolate(
                    torch.from_numpy(fields).permute(0, 3, 1, 2),
                    size=size,
                    mode="bilinear",
                    align_corners=False,
                )
                fields = back.permute(0, 2, 3, 1).numpy().copy()
                fields[..., 0] *= size[1] / work[1]
                fields[..., 1] *= size[0] / work[0]
            for index, one in zip(batch, fields, strict=True):
                out[index] = np.ascontiguousarray(one, dtype=np.float32)
        return [f for f in out if f is not None]
