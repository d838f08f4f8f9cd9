"""The demo student: a small FiLM-conditioned conv net that trains on the demo in minutes.

Not a published model. It exists so the demo profile runs the whole OpenAVS-ST
loop (pseudo labels -> train -> predict -> tables) on 2 CPU cores: a 4-stage
conv encoder from random init (no pretrained visual weights in the offline
mirror), the YAMNet AudioSet scores of each 1-s window (real, offline: the
``yamnet-scores`` audio features) mapped by a small MLP to FiLM scale/shift of
the bottleneck, and a U-Net style decoder. Loss: BCE + soft Dice on every
labelled frame.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avsbridge.train import STUDENTS
from avsbridge.train.base import Batch, Student, StudentOutput


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class DemoFiLMNet(nn.Module):
    def __init__(self, widths: tuple[int, ...], audio_dim: int, audio_hidden: int) -> None:
        super().__init__()
        chans = (3, *widths)
        self.down = nn.ModuleList(
            nn.Sequential(_conv(chans[i], chans[i + 1], 2), _conv(chans[i + 1], chans[i + 1]))
            for i in range(len(widths))
        )
        self.audio = nn.Sequential(
            nn.Linear(audio_dim, audio_hidden), nn.ReLU(), nn.Linear(audio_hidden, 2 * widths[-1])
        )
        nn.init.zeros_(self.audio[-1].weight)  # FiLM starts as the identity
        nn.init.zeros_(self.audio[-1].bias)
        self.up = nn.ModuleList(
            _conv(widths[i] + widths[i - 1], widths[i - 1]) for i in range(len(widths) - 1, 0, -1)
        )
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, frames: torch.Tensor, audio: torch.Tensor) -> StudentOutput:
        b, t = frames.shape[:2]
        x = frames.flatten(0, 1)
        skips = []
        for stage in self.down:
            x = stage(x)
            skips.append(x)
        gamma, beta = self.audio(audio.flatten(0, 1)).chunk(2, dim=-1)
        x = x * (1 + gamma[..., None, None]) + beta[..., None, None]
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        logits = F.interpolate(
            self.head(x), size=frames.shape[-2:], mode="bilinear", align_corners=False
        )
        return StudentOutput(logits, {"frames": t})


@STUDENTS.register("demo", gpu=False)
class DemoStudent(Student):
    """FiLM conv net on YAMNet scores (random-init visual encoder); the demo's student."""

    name = "demo"
    audio_features = "yamnet-scores"
    audio_dim = 521
    mean = (0.5, 0.5, 0.5)
    std = (0.25, 0.25, 0.25)

    def __init__(
        self,
        image_size: int = 96,
        widths: tuple[int, ...] | list[int] = (16, 32, 48, 64),
        audio_hidden: int = 64,
        dice_weight: float = 1.0,
        audio_dim: int = 521,
    ) -> None:
        self.image_size = int(image_size)
        self.audio_dim = int(audio_dim)  # type: ignore[misc]  # tests feed smaller features
        self.options = {
            "image_size": self.image_size,
            "widths": [int(w) for w in widths],
            "audio_hidden": int(audio_hidden),
            "dice_weight": float(dice_weight),
            "audio_dim": self.audio_dim,
        }

    def build(self) -> nn.Module:
        o = self.options
        return DemoFiLMNet(tuple(o["widths"]), self.audio_dim, o["audio_hidden"])

    def loss(self, output: StudentOutput, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        assert batch.masks is not None
        masks = batch.masks.flatten(0, 1)
        valid = batch.extra.get("valid")
        weight = (
            valid.flatten().to(masks.dtype)[:, None, None, None]
            if valid is not None
            else torch.ones_like(masks[:, :1, :1, :1])
        )
        n = weight.sum().clamp(min=1.0)
        per_frame = F.binary_cross_entropy_with_logits(output.logits, masks, reduction="none")
        bce = (per_frame.mean(dim=(1, 2, 3), keepdim=True) * weight).sum() / n
        probs = torch.sigmoid(output.logits)
        inter = (probs * masks).sum(dim=(1, 2, 3))
        dice = 1 - (2 * inter + 1) / (probs.sum(dim=(1, 2, 3)) + masks.sum(dim=(1, 2, 3)) + 1)
        dice = (dice * weight.flatten()).sum() / n
        total = bce + self.options["dice_weight"] * dice
        return total, {"bce": float(bce.detach()), "dice": float(dice.detach())}

    @classmethod
    def recipe(cls, kind: str) -> dict[str, Any]:
        # measured on the demo S4 train split (10 clips, GT frame 1): 12 epochs -> test mIoU
        # 0.19, 40 -> 0.34; 30 keeps the demo DAG inside its time budget
        return {"epochs": 30, "batch_size": 4, "lr": 2e-3, "options": {}}
