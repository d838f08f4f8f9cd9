"""RAFT (torchvision ``raft_large`` / ``raft_small``): the neural reference backend.

Weights come through :mod:`avsbridge.weights` (pinned URL + full sha256, offline
mirror first); ``weights_path`` points at another state dict (a fine-tune, or the
random-initialised file tests and ``bench/`` save) and its sha256 is recorded.
Frames go in at [-1, 1] (torchvision's ``Raft_*_Weights.transforms()``), padded
by edge replication to a multiple of 8 and at least 128 px a side (RAFT's 1/8
feature grid and its 4-level correlation pyramid; edge replication is what RAFT's
own ``InputPadder`` does) and the flow is cropped back.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge import weights
from avsbridge.backends import resolve_device
from avsbridge.flow import FLOW_BACKENDS
from avsbridge.flow.base import FramePair, group_by_shape, to_unit_range
from avsbridge.io import sha256_file

MODELS = {"raft_large": "raft-large", "raft_small": "raft-small"}  # torchvision fn -> source
# torchvision's correlation pyramid needs a 16x16 feature map at 1/8 scale: 128 px a side.
MIN_SIDE = 128


@FLOW_BACKENDS.register("raft", gpu=True, mem_mb=6000)
class RAFTFlow:
    """torchvision RAFT, one model load per job, pairs batched per frame size."""

    name = "raft"
    needs_gpu = True

    def __init__(
        self,
        model: str = "raft_large",
        weights_path: PathLike[str] | str | None = None,
        num_flow_updates: int = 12,
        batch_size: int = 8,
        device: str = "auto",
    ) -> None:
        import torch
        import torchvision.models.optical_flow as tv_flow

        if model not in MODELS:
            raise ValueError(f"unknown RAFT model {model!r} (known: {', '.join(MODELS)})")
        self.model_name = model
        self.num_flow_updates = int(num_flow_updates)
        self.batch_size = max(1, int(batch_size))
        self.device = resolve_device(device)
        if weights_path is None:
            path = weights.resolve(MODELS[model])
            self.weights_source = MODELS[model]
            self.weights_sha256 = weights.sha256_of(MODELS[model])
        else:
            path = Path(weights_path)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: RAFT weights file is missing")
            self.weights_source = str(path)
            self.weights_sha256 = sha256_file(path)
        net = getattr(tv_flow, model)(weights=None, progress=False)
        state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"{path}: not a torchvision {model} state dict ({exc})") from None
        self.model = net.to(self.device).eval()

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": f"torchvision.{self.model_name}",
            "weights": self.weights_source,
            "weights_sha256": self.weights_sha256,
            "num_flow_updates": self.num_flow_updates,
            "input": f"RGB in [-1, 1], edge-padded to a multiple of 8, >= {MIN_SIDE} px",
        }

    def flow(self, pairs: Sequence[FramePair]) -> list[np.ndarray]:
        import torch
        import torch.nn.functional as F

        out: list[np.ndarray | None] = [None] * len(pairs)
        for batch in group_by_shape(pairs, self.batch_size):
            first = to_unit_range(np.stack([pairs[i][0] for i in batch]))
            second = to_unit_range(np.stack([pairs[i][1] for i in batch]))
            height, width = first.shape[-2:]
            pad_h = max(MIN_SIDE, height + (-height) % 8) - height
            pad_w = max(MIN_SIDE, width + (-width) % 8) - width
            pad = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
            if pad_h or pad_w:
                first = F.pad(first, pad, mode="replicate")
                second = F.pad(second, pad, mode="replicate")
            with torch.inference_mode():
                predictions = self.model(
                    first.to(self.device),
                    second.to(self.device),
                    num_flow_updates=self.num_flow_updates,
                )
            field = predictions[-1][..., pad[2] : pad[2] + height, pad[0] : pad[0] + width]
            field = field.permute(0, 2, 3, 1).float().cpu().numpy()
            for index, one in zip(batch, field, strict=True):
                out[index] = np.ascontiguousarray(one, dtype=np.float32)
        return [f for f in out if f is not None]
