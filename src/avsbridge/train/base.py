"""What every student is: a model builder, its loss, its optimiser and its official recipe.

A student is a plain object created from its registry options. The training
loop (:mod:`avsbridge.train.loop`) knows nothing model-specific: it asks the
student for a module, calls it on a :class:`Batch` and hands the output back
to the student's :meth:`Student.loss`. Later students (SSP, TeSO) that take
extra per-frame inputs (text features, flow masks) read them from
``Batch.extra``; the data pipeline fills it from the artifact folders a
student's :attr:`Student.extra_inputs` names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

# ImageNet statistics: every PVT/timm backbone's normalisation (AVSBench dataloader too)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Batch:
    """One batch of clips: ``frames`` [B, T, 3, H, W] (normalised), ``audio`` [B, T, D],
    ``masks`` [B, T, 1, H, W] in {0, 1} (None at prediction time)."""

    frames: torch.Tensor
    audio: torch.Tensor
    masks: torch.Tensor | None = None
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    def to(self, device: str | torch.device) -> Batch:
        return Batch(
            frames=self.frames.to(device),
            audio=self.audio.to(device),
            masks=None if self.masks is None else self.masks.to(device),
            extra={k: v.to(device) for k, v in self.extra.items()},
        )


@dataclass
class StudentOutput:
    """``logits`` [B*T, 1, h, w] (any h, w: resized to the frame when predicting) and
    whatever intermediate tensors the student's loss needs."""

    logits: torch.Tensor
    aux: dict[str, Any] = field(default_factory=dict)


class Student:
    """Base of every student; subclasses set the class facts and implement the three methods.

    ``options`` are architecture and loss settings (checked by the registry:
    only the keyword parameters of ``__init__`` are accepted); training
    hyper-parameters (epochs, batch size, learning rate) come from
    :meth:`recipe`, overridable in params.yaml.
    """

    name: ClassVar[str] = "student"
    audio_features: ClassVar[str] = "vggish"  # the audio_features backend it reads
    audio_dim: ClassVar[int] = 128
    extra_inputs: ClassVar[tuple[str, ...]] = ()
    mean: ClassVar[tuple[float, float, float]] = IMAGENET_MEAN
    std: ClassVar[tuple[float, float, float]] = IMAGENET_STD

    image_size: int = 224
    options: dict[str, Any]

    def build(self) -> nn.Module:
        """A fresh model (random or pretrained backbone as the options say)."""
        raise NotImplementedError

    def forward(self, model: nn.Module, batch: Batch) -> StudentOutput:
        """Run ``model`` on a batch (the default: ``model(frames, audio)``)."""
        out = model(batch.frames, batch.audio)
        return out if isinstance(out, StudentOutput) else StudentOutput(out)

    def loss(self, output: StudentOutput, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss and its named parts (logged per epoch)."""
        raise NotImplementedError

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        """Per-epoch schedule (0-based ``epoch``): e.g. a backbone frozen for the first epochs.
        A pure function of the epoch, so a resumed run schedules like an uninterrupted one."""

    def lr_at(self, epoch: int, epochs: int, lr: float) -> float:
        """The learning rate of (0-based) ``epoch``; constant unless a student schedules it."""
        return lr

    def optimizer(self, params: Any, lr: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=lr)

    @classmethod
    def recipe(cls, kind: str) -> dict[str, Any]:
        """The official training hyper-parameters for a dataset kind (s4, ms3, ...):
        ``{"epochs", "batch_size", "lr", "options": {...}}``."""
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        """What a checkpoint records about the student (checked again when it is loaded)."""
        return {"student": self.name, "options": dict(self.options)}
