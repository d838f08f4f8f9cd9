"""SAMA-AVS (Liu et al., "Annotation-free audio-visual segmentation", WACV 2024), native.

Written from the architecture of the official code (jinxiang-liu/anno-free-AVS,
commit 15e6b04; no licence, so nothing of it is copied or redistributed) on the
``segment_anything`` package's own SAM modules, with the official parameter
names so its checkpoints load (:func:`load_official_state_dict`):

* SAM's ViT image encoder (ViT-H, 1024x1024 input), **frozen**, with an audio
  adapter: before every block ``i`` the feature map is shifted by
  ``shared_mlp(GELU(Linear_i(vggish)))`` (the only encoder weights trained);
* SAM's mask decoder (two-way transformer), trained, prompted by a learned
  dense "no mask" embedding and no sparse prompt; random-Fourier positional
  encoding (a fixed buffer, as in the official model it is not loaded from SAM);
* loss: BCE-with-logits + soft IoU (``loss: iou``); S4 trains on frame 1 of each
  clip (the official loader reads one frame per training clip), MS3 on all;
  AdamW lr 2e-4, 80 epochs, cosine annealing to 1e-7, batch 2.

The official training script calls ``init_process_group('nccl')`` at import;
nothing here does (single process, CPU or one GPU). Not verified against the
official code by a test (its repository cannot be placed in ../shared).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avsbridge.io import ArtifactError
from avsbridge.train import STUDENTS
from avsbridge.train.base import Batch, Student, StudentOutput

SAM_VIT_H = {
    "embed_dim": 1280,
    "depth": 32,
    "num_heads": 16,
    "global_attn_indexes": (7, 15, 23, 31),
    "window_size": 14,
    "patch_size": 16,
    "out_chans": 256,
    "mlp_ratio": 4.0,
}


class AudioPromptGenerator(nn.Module):
    """One audio prompt per encoder block: shared_mlp(GELU(Linear_i(audio)))."""

    def __init__(self, embed_dim: int, depth: int, audio_dim: int, hidden: int) -> None:
        super().__init__()
        self.depth = depth
        self.shared_mlp = nn.Linear(hidden, embed_dim)
        for i in range(depth):
            setattr(
                self, f"lightweight_mlp_{i}", nn.Sequential(nn.Linear(audio_dim, hidden), nn.GELU())
            )
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, audio: torch.Tensor) -> list[torch.Tensor]:
        return [
            self.shared_mlp(getattr(self, f"lightweight_mlp_{i}")(audio)) for i in range(self.depth)
        ]


def _encoder_class() -> type[nn.Module]:
    from segment_anything.modeling import ImageEncoderViT

    class AudioPromptedEncoder(ImageEncoderViT):  # type: ignore[misc, valid-type]
        """SAM's ViT whose blocks each see the feature map shifted by an audio prompt."""

        def __init__(self, audio_dim: int, audio_hidden: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.prompt_generator = AudioPromptGenerator(
                kwargs["embed_dim"], kwargs["depth"], audio_dim, audio_hidden
            )

        def forward(self, x: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
            x = self.patch_embed(x)
            if self.pos_embed is not None:
                x = x + self.pos_embed
            for prompt, block in zip(self.prompt_generator(audio), self.blocks, strict=True):
                x = block(x + prompt[:, None, None, :])
            return self.neck(x.permute(0, 3, 1, 2))

    return AudioPromptedEncoder


class SAMANet(nn.Module):
    def __init__(self, image_size: int, encoder: dict[str, Any], audio_dim: int, audio_hidden: int,
                 decoder_mlp: int, decoder_heads: int, iou_hidden: int) -> None:  # fmt: skip
        super().__init__()
        from functools import partial

        from segment_anything.modeling import MaskDecoder, TwoWayTransformer
        from segment_anything.modeling.prompt_encoder import PositionEmbeddingRandom

        dim = int(encoder["out_chans"])
        self.image_size = image_size
        self.grid = image_size // int(encoder["patch_size"])
        self.image_encoder = _encoder_class()(
            audio_dim=audio_dim,
            audio_hidden=audio_hidden,
            img_size=image_size,
            patch_size=int(encoder["patch_size"]),
            in_chans=3,
            embed_dim=int(encoder["embed_dim"]),
            depth=int(encoder["depth"]),
            num_heads=int(encoder["num_heads"]),
            mlp_ratio=float(encoder["mlp_ratio"]),
            out_chans=dim,
            qkv_bias=True,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            act_layer=nn.GELU,
            use_rel_pos=True,
            rel_pos_zero_init=True,
            window_size=int(encoder["window_size"]),
            global_attn_indexes=tuple(encoder["global_attn_indexes"]),
        )
        self.mask_decoder = MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=2, embedding_dim=dim, mlp_dim=decoder_mlp, num_heads=decoder_heads
            ),
            transformer_dim=dim,
            iou_head_depth=3,
            iou_head_hidden_dim=iou_hidden,
        )
        self.pe_layer = PositionEmbeddingRandom(dim // 2)
        self.no_mask_embed = nn.Embedding(1, dim)
        for name, p in self.image_encoder.named_parameters():  # official: only the adapter trains
            p.requires_grad = name.startswith("prompt_generator.")

    def forward(self, frames: torch.Tensor, audio: torch.Tensor) -> StudentOutput:
        t = frames.shape[1]
        features = self.image_encoder(frames.flatten(0, 1), audio.flatten(0, 1))
        dim = features.shape[1]
        sparse = features.new_zeros((1, 0, dim))  # no point/box prompt (batch 1, broadcast)
        dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(1, -1, self.grid, self.grid)
        low_res, _ = self.mask_decoder(
            image_embeddings=features,
            image_pe=self.pe_layer((self.grid, self.grid)).unsqueeze(0),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        logits = F.interpolate(
            low_res, (self.image_size, self.image_size), mode="bilinear", align_corners=False
        )
        return StudentOutput(logits, {"frames": t})


def load_official_state_dict(model: SAMANet, state_dict: dict[str, torch.Tensor]) -> None:
    """An official SAMA-AVS checkpoint (its VGGish ``audio_encoder`` weights dropped)."""
    sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
    model.load_state_dict({k: v for k, v in sd.items() if not k.startswith("audio_encoder.")})


def load_sam(model: SAMANet, path: str) -> list[str]:
    """SAM's image encoder and mask decoder weights (the official ``strict=False`` load);
    returns the model keys SAM does not provide (the audio adapter, prompts)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ArtifactError(path, f"cannot read SAM weights ({exc})") from None
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not any(k.startswith("image_encoder.") for k in usable):
        raise ArtifactError(path, "no SAM image-encoder weights of this size")
    model.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))


def soft_iou_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits)
    inter = (p * masks).sum(dim=(2, 3))
    union = (p + masks).sum(dim=(2, 3)) - inter
    return (1 - inter / union).mean()


@STUDENTS.register("sama_avs", gpu=True)  # the name OpenAVS Table 6 rows use
class SAMAStudent(Student):
    """SAM ViT-H (frozen) with per-block audio adapters + SAM mask decoder, VGGish features."""

    name = "sama_avs"
    audio_features = "vggish"
    audio_dim = 128

    def __init__(
        self,
        image_size: int = 1024,
        encoder: dict[str, Any] | None = None,
        audio_hidden: int = 512,
        decoder_mlp: int = 2048,
        decoder_heads: int = 8,
        iou_hidden: int = 256,
        pretrained: bool = True,
        sam_checkpoint: str | None = None,
        supervised_frames: str = "first",
        lr_min: float = 1e-7,
    ) -> None:
        if supervised_frames not in ("first", "all"):
            raise ValueError(
                f"sama-avs: supervised_frames must be first|all, not {supervised_frames!r}"
            )
        spec = {**SAM_VIT_H, **(encoder or {})}
        if int(image_size) % int(spec["patch_size"]):
            raise ValueError("sama-avs: image_size must be a multiple of the patch size")
        self.image_size = int(image_size)
        self.options = {
            "image_size": self.image_size,
            "encoder": {k: list(v) if isinstance(v, tuple | list) else v for k, v in spec.items()},
            "audio_hidden": int(audio_hidden),
            "decoder_mlp": int(decoder_mlp),
            "decoder_heads": int(decoder_heads),
            "iou_hidden": int(iou_hidden),
            "pretrained": bool(pretrained),
            "supervised_frames": supervised_frames,
            "lr_min": float(lr_min),
        }
        self.sam_checkpoint = sam_checkpoint

    def build(self) -> nn.Module:
        o = self.options
        model = SAMANet(
            o["image_size"], o["encoder"], self.audio_dim, o["audio_hidden"], o["decoder_mlp"],
            o["decoder_heads"], o["iou_hidden"],
        )  # fmt: skip
        if o["pretrained"]:
            from avsbridge import weights
            from avsbridge.segment import gdino_sam  # noqa: F401  (registers "sam-vit-h")

            load_sam(model, self.sam_checkpoint or str(weights.resolve("sam-vit-h")))
        return model

    def forward(self, model: nn.Module, batch: Batch) -> StudentOutput:
        """Training on frame 1 only (S4) runs the ViT on frame 1 only, as the official loader."""
        frames, audio = batch.frames, batch.audio
        if model.training and self.options["supervised_frames"] == "first":
            frames, audio = frames[:, :1], audio[:, :1]
        return model(frames, audio)

    def loss(self, output: StudentOutput, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        assert batch.masks is not None
        masks = batch.masks[:, : int(output.aux["frames"])].flatten(0, 1).to(output.logits.dtype)
        if masks.shape[-2:] != output.logits.shape[-2:]:
            masks = F.interpolate(masks, size=output.logits.shape[-2:], mode="nearest")
        bce = F.binary_cross_entropy_with_logits(output.logits, masks)
        iou = soft_iou_loss(output.logits, masks)
        return bce + iou, {"bce": float(bce.detach()), "iou": float(iou.detach())}

    def optimizer(self, params: Any, lr: float) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=lr)

    def lr_at(self, epoch: int, epochs: int, lr: float) -> float:
        """Cosine annealing per epoch to ``lr_min`` (official CosineAnnealingLR, T_max=epochs)."""
        low = self.options["lr_min"]
        return low + (lr - low) * (1 + math.cos(math.pi * epoch / max(epochs, 1))) / 2

    @classmethod
    def recipe(cls, kind: str) -> dict[str, Any]:
        options = {} if kind == "s4" else {"supervised_frames": "all"}
        return {"epochs": 80, "batch_size": 2, "lr": 2e-4, "options": options}
