"""TPAVI (AVSBench, Zhou et al., ECCV 2022), implemented natively: PVT-v2-B5 + VGGish.

Re-implemented from the description of the official code (OpenNLPLab/AVSBench,
``avs_scripts/avs_s4|avs_ms3/model/PVT_AVSModel.py``, ``TPAVI.py``, ``loss.py``,
commit f7414af, Apache-2.0), with the same parameter names so an official
checkpoint loads through :func:`load_official_state_dict` and the equivalence
test (tests/test_train_tpavi.py) can compare the two on the same weights:

* backbone: timm's PVT-v2 (official ``pvt.py`` keys map through timm's
  ``checkpoint_filter_fn``); VGGish features are precomputed and frozen
  (the audio_features stage), as the official ``FREEZE_AUDIO_EXTRACTOR``;
* four dilated-conv heads (dilations 3/6/12/18) to ``channel`` features,
  TPAVI audio-visual attention ("dot" mode) at the configured stages, a
  refine-net style fusion decoder and a two-conv output head at the input size;
* losses: S4 supervises the first frame of each clip (``F1_IoU_BCELoss``), MS3
  all five (``F5_IoU_BCELoss``) plus the masked audio-visual matching loss
  with the KL option (λ = 0.5, official ``train.sh``).

Two behaviours of the official code are reproduced on purpose because they
change the numbers: its residual units use an *in-place* ReLU, so the skip
connection carries ``relu(x)`` and the feature maps the MS3 loss reads are
rectified; and the TPAVI attention matrix (THW x THW) is factorised here
(audio keys are constant over H, W), which is the same sum in another order:
memory O(THW * C') instead of O((THW)^2) at stage 1.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avsbridge.train import STUDENTS
from avsbridge.train.base import Batch, Student, StudentOutput
from avsbridge.train.students._pvt import (
    PVT_B5,
    build_pvt,
    load_imagenet,
    official_to_timm,
    pvt_features,
)

log = logging.getLogger("avsbridge.train.tpavi")


class TPAVIBlock(nn.Module):
    """Temporal pixel-wise audio-visual interaction, "dot" mode, with audio (TPAVI)."""

    def __init__(self, channels: int, audio_dim: int = 128) -> None:
        super().__init__()
        inter = max(channels // 2, 1)
        self.inter_channels = inter
        self.align_channel = nn.Linear(audio_dim, channels)
        self.norm_layer = nn.LayerNorm(channels)
        self.g = nn.Conv3d(channels, inter, kernel_size=1)
        self.W_z = nn.Sequential(
            nn.Conv3d(inter, channels, kernel_size=1), nn.BatchNorm3d(channels)
        )
        nn.init.zeros_(self.W_z[1].weight)  # the block starts as the identity (residual)
        nn.init.zeros_(self.W_z[1].bias)
        self.theta = nn.Conv3d(channels, inter, kernel_size=1)
        self.phi = nn.Conv3d(channels, inter, kernel_size=1)

    def forward(self, x: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, T, H, W], audio [B, T, D] -> (z [B, C, T, H, W], aligned audio [B, T, C])."""
        b, _, t, h, w = x.shape
        aligned = self.align_channel(audio)  # [B, T, C]
        keys = self.phi(aligned.permute(0, 2, 1)[..., None, None]).flatten(2)  # [B, C', T]
        values = self.g(x).sum(dim=(-2, -1))  # [B, C', T]: g summed over each frame's pixels
        queries = self.theta(x)  # [B, C', T, H, W]
        # y_i = 1/N sum_j <theta_i, phi_j> g_j with phi_j constant over a frame's pixels
        mix = torch.einsum("bct,bdt->bcd", keys, values) / float(t * h * w)
        y = torch.einsum("bcthw,bcd->bdthw", queries, mix)
        z = self.W_z(y) + x
        z = self.norm_layer(z.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)
        return z, aligned


class AtrousHead(nn.Module):
    """Sum of four 3x3 convs with dilations 3/6/12/18 (the official Classifier_Module)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv2d_list = nn.ModuleList(
            nn.Conv2d(in_channels, out_channels, 3, padding=d, dilation=d) for d in (3, 6, 12, 18)
        )
        for conv in self.conv2d_list:
            nn.init.normal_(conv.weight, 0.0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum((conv(x) for conv in self.conv2d_list), torch.zeros((), device=x.device))


class ResidualUnit(nn.Module):
    """conv(relu(conv(relu(x)))) + relu(x): the official unit, whose in-place ReLU rectifies
    its own skip input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = F.relu(x)
        return self.conv2(F.relu(self.conv1(skip))) + skip


class FusionBlock(nn.Module):
    """Refine a coarser map, add a finer lateral one, upsample x2 (align_corners=True)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.resConfUnit1 = ResidualUnit(channels)
        self.resConfUnit2 = ResidualUnit(channels)

    def forward(self, x: torch.Tensor, lateral: torch.Tensor | None = None) -> torch.Tensor:
        if lateral is not None:
            x = x + self.resConfUnit1(lateral)
        x = self.resConfUnit2(x)
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class TPAVINet(nn.Module):
    """PVT-v2 encoder, TPAVI at ``tpavi_stages``, fusion decoder; logits at the input size."""

    def __init__(
        self,
        channel: int = 256,
        tpavi_stages: tuple[int, ...] = (0, 1, 2, 3),
        audio_dim: int = 128,
        backbone: dict[str, Any] | None = None,
        drop_path_rate: float = 0.1,
    ) -> None:
        super().__init__()
        spec = {**PVT_B5, **(backbone or {})}
        self.encoder_backbone = build_pvt(spec, drop_path_rate)
        dims = tuple(spec["embed_dims"])
        self.tpavi_stages = tuple(int(s) for s in tpavi_stages)
        for i, dim in enumerate(dims, start=1):
            setattr(self, f"conv{i}", AtrousHead(dim, channel))
            setattr(self, f"path{i}", FusionBlock(channel))
        for i in self.tpavi_stages:
            setattr(self, f"tpavi_b{i + 1}", TPAVIBlock(channel, audio_dim))
        self.output_conv = nn.Sequential(
            nn.Conv2d(channel, 128, 3, padding=1),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(128, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 1, 1),
        )

    def forward(self, frames: torch.Tensor, audio: torch.Tensor) -> StudentOutput:
        """frames [B, T, 3, H, W], audio [B, T, D] -> logits [B*T, 1, H, W] (+ loss inputs)."""
        b, t = frames.shape[:2]
        feats = pvt_features(self.encoder_backbone, frames.flatten(0, 1))
        maps = [getattr(self, f"conv{i + 1}")(f) for i, f in enumerate(feats)]
        audio_maps: list[torch.Tensor | None] = [None] * len(maps)
        for i in self.tpavi_stages:
            x = maps[i]
            video = x.unflatten(0, (b, t)).permute(0, 2, 1, 3, 4)  # [B, C, T, H, W]
            z, aligned = getattr(self, f"tpavi_b{i + 1}")(video, audio)
            maps[i] = z.permute(0, 2, 1, 3, 4).flatten(0, 1)
            audio_maps[i] = aligned
        out = self.path4(maps[3])
        out = self.path3(out, maps[2])
        out = self.path2(out, maps[1])
        out = self.path1(out, maps[0])
        logits = self.output_conv(out)
        # the official decoder rectifies these maps in place before its loss reads them
        return StudentOutput(
            logits, {"v_maps": [F.relu(m) for m in maps], "a_feas": audio_maps, "frames": t}
        )


def load_official_state_dict(model: TPAVINet, state_dict: dict[str, torch.Tensor]) -> None:
    """Load an official AVSBench ``Pred_endecoder`` state dict (DataParallel prefix ok)."""
    sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
    prefix = "encoder_backbone."
    backbone = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    rest = {k: v for k, v in sd.items() if not k.startswith(prefix)}
    backbone = official_to_timm(backbone, model.encoder_backbone)
    model.load_state_dict({**rest, **{prefix + k: v for k, v in backbone.items()}})


# --- losses (official loss.py of avs_s4 and avs_ms3) -------------------------------------


def bce_loss(logits: torch.Tensor, masks: torch.Tensor, frames: int, which: str) -> torch.Tensor:
    """BCE of sigmoid(logits) on the first frame of each clip (S4) or on all frames (MS3)."""
    probs = torch.sigmoid(logits)
    if which == "first":
        return F.binary_cross_entropy(probs[::frames], masks[::frames])
    if which == "all":
        return F.binary_cross_entropy(probs, masks)
    raise ValueError(f"supervised_frames must be 'first' or 'all', got {which!r}")


def masked_av_loss(
    logits: torch.Tensor,
    a_feas: list[torch.Tensor | None],
    v_maps: list[torch.Tensor],
    stages: tuple[int, ...],
    pooling: str = "avg",
    norm_fea: bool = False,
    threshold: bool = False,
    distance: str = "kl",
) -> torch.Tensor:
    """Audio vs mask-pooled visual feature matching (Loss_AVM_AV of AVSBench, MS3 variant)."""
    total = torch.zeros((), device=logits.device)
    for stage in stages:
        a_fea, v_map = a_feas[stage], v_maps[stage]
        if a_fea is None:
            raise ValueError(f"masked_av_stages has stage {stage}, which has no TPAVI block")
        a_fea = a_fea.reshape(-1, a_fea.shape[-1])
        size = v_map.shape[-2:]
        pool = F.adaptive_avg_pool2d if pooling == "avg" else F.adaptive_max_pool2d
        weight = torch.sigmoid(pool(logits, size))
        if threshold:
            weight = (weight > 0.5).float()
            pooled = (v_map * weight).sum(dim=(-2, -1)) / (weight.sum(dim=(-2, -1)) + 1e-6)
        else:
            pooled = (v_map * weight).mean(dim=(-2, -1))
        if norm_fea:
            a_fea, pooled = F.normalize(a_fea, dim=-1), F.normalize(pooled, dim=-1)
        if distance == "kl":
            loss = F.kl_div(pooled.softmax(-1).log(), a_fea.softmax(-1), reduction="sum")
        elif distance == "euclidean":
            loss = F.pairwise_distance(a_fea, pooled, p=2).mean()
        else:
            raise ValueError(f"masked_av_distance must be 'kl' or 'euclidean', got {distance!r}")
        total = total + loss
    return total / len(stages)


@STUDENTS.register("tpavi", gpu=True)
class TPAVIStudent(Student):
    """AVSBench TPAVI on PVT-v2 (B5 by default) + precomputed VGGish features."""

    name = "tpavi"
    audio_features = "vggish"
    audio_dim = 128

    def __init__(
        self,
        image_size: int = 224,
        channel: int = 256,
        tpavi_stages: tuple[int, ...] | list[int] = (0, 1, 2, 3),
        backbone: dict[str, Any] | None = None,
        drop_path_rate: float = 0.1,
        pretrained: bool = True,
        pvt_weights: str | None = None,
        supervised_frames: str = "first",
        masked_av: bool = False,
        masked_av_stages: tuple[int, ...] | list[int] = (0, 1, 2, 3),
        lambda_1: float = 0.5,
        masked_av_distance: str = "kl",
        mask_pooling: str = "avg",
        norm_fea: bool = False,
        threshold: bool = False,
    ) -> None:
        if supervised_frames not in ("first", "all"):
            raise ValueError(
                f"tpavi: supervised_frames must be first|all, not {supervised_frames!r}"
            )
        self.image_size = int(image_size)
        if self.image_size % 32:
            raise ValueError(f"tpavi: image_size must be a multiple of 32, got {image_size}")
        self.options = {
            "image_size": self.image_size,
            "channel": int(channel),
            "tpavi_stages": [int(s) for s in tpavi_stages],
            "backbone": {k: list(v) for k, v in {**PVT_B5, **(backbone or {})}.items()},
            "drop_path_rate": float(drop_path_rate),
            "pretrained": bool(pretrained),
            "supervised_frames": supervised_frames,
            "masked_av": bool(masked_av),
            "masked_av_stages": [int(s) for s in masked_av_stages],
            "lambda_1": float(lambda_1),
            "masked_av_distance": masked_av_distance,
            "mask_pooling": mask_pooling,
            "norm_fea": bool(norm_fea),
            "threshold": bool(threshold),
        }
        self.pvt_weights = pvt_weights

    def build(self) -> nn.Module:
        o = self.options
        model = TPAVINet(
            channel=o["channel"],
            tpavi_stages=tuple(o["tpavi_stages"]),
            audio_dim=self.audio_dim,
            backbone=o["backbone"],
            drop_path_rate=o["drop_path_rate"],
        )
        if o["pretrained"]:
            load_imagenet(model.encoder_backbone, self.pvt_weights)
        return model

    def loss(self, output: StudentOutput, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        assert batch.masks is not None
        o = self.options
        t = int(output.aux["frames"])
        masks = batch.masks.flatten(0, 1).to(output.logits.dtype)
        if masks.shape[-2:] != output.logits.shape[-2:]:
            masks = F.interpolate(masks, size=output.logits.shape[-2:], mode="nearest")
        bce = bce_loss(output.logits, masks, t, o["supervised_frames"])
        parts = {"bce": float(bce.detach())}
        total = bce
        if o["masked_av"]:
            av = masked_av_loss(
                output.logits,
                output.aux["a_feas"],
                output.aux["v_maps"],
                tuple(o["masked_av_stages"]),
                o["mask_pooling"],
                o["norm_fea"],
                o["threshold"],
                o["masked_av_distance"],
            )
            total = total + o["lambda_1"] * av
            parts["masked_av"] = float(av.detach())
        return total, parts

    @classmethod
    def recipe(cls, kind: str) -> dict[str, Any]:
        """Official train.sh: S4 15 epochs, batch 4, Adam 1e-4, first-frame BCE; MS3 30
        epochs with the masked audio-visual KL loss (λ 0.5) at stages 0-3."""
        if kind == "s4":
            return {"epochs": 15, "batch_size": 4, "lr": 1e-4, "options": {}}
        masked = kind == "ms3"
        return {
            "epochs": 30,
            "batch_size": 4,
            "lr": 1e-4,
            "options": {"supervised_frames": "all", "masked_av": masked, "lambda_1": 0.5},
        }
