"""PVT-v2 backbones (timm) shared by the PVT students, and the official ImageNet init."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from avsbridge import weights
from avsbridge.io import ArtifactError

weights.register_source(
    weights.WeightSource(
        name="pvt-v2-b5",
        filename="pvt_v2_b5.pth",
        url="https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b5.pth",
        sha256=None,
        licence="Apache-2.0",
        note="PVT-v2-B5 ImageNet-1k weights (official PVT release: the AVSBench/AVSegFormer init)",
    )
)

PVT_B5: dict[str, tuple[int, ...]] = {
    "depths": (3, 6, 40, 3),
    "embed_dims": (64, 128, 320, 512),
    "num_heads": (1, 2, 5, 8),
    "mlp_ratios": (4, 4, 4, 4),
    "sr_ratios": (8, 4, 2, 1),
}


def pvt_spec(backbone: dict[str, Any] | None) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v) for k, v in {**PVT_B5, **(backbone or {})}.items()}


def build_pvt(spec: dict[str, Any], drop_path_rate: float) -> nn.Module:
    """timm's PVT-v2 from its class (``timm.create_model`` names can be shadowed: the official
    AVSBench ``pvt.py`` registers its own ``pvt_v2_b5``)."""
    from timm.models.pvt_v2 import PyramidVisionTransformerV2

    return PyramidVisionTransformerV2(
        num_classes=0, qkv_bias=True, drop_path_rate=drop_path_rate, **pvt_spec(spec)
    )


def pvt_features(backbone: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The four stage outputs (NCHW, strides 4/8/16/32)."""
    return backbone.forward_intermediates(x, intermediates_only=True)  # type: ignore[operator]


def official_to_timm(state: dict[str, torch.Tensor], backbone: nn.Module) -> dict[str, Any]:
    """Official PVT-v2 keys (``patch_embed1``, ``block1.0``...) -> timm's."""
    from timm.models.pvt_v2 import checkpoint_filter_fn

    return checkpoint_filter_fn(state, backbone)


def load_imagenet(backbone: nn.Module, path: str | None) -> None:
    """ImageNet PVT-v2 weights (official release format) into a timm backbone."""
    path = path or str(weights.resolve("pvt-v2-b5"))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ArtifactError(path, f"cannot read PVT-v2 weights ({exc})") from None
    state = official_to_timm(state, backbone)
    own = backbone.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise ArtifactError(path, f"not PVT-v2 weights of this size (missing {missing[:3]})")
    backbone.load_state_dict({k: state[k] for k in own})
