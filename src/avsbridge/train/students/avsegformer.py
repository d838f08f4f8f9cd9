"""AVSegFormer (Gao et al., AAAI 2024), implemented natively: PVT-v2-B5 + VGGish.

Written from the architecture of the official code (vvvb-github/AVSegFormer,
commit 7083cb6; the repository carries no licence, so nothing of it is copied
or redistributed here) with the same parameter names, so an official
checkpoint loads through :func:`load_official_state_dict`. Per frame:

* PVT-v2 features at strides 4/8/16/32, each projected to ``embed_dim``
  (1x1 conv + GroupNorm 32);
* a deformable-attention transformer encoder over the stride 8/16/32 levels
  (multi-scale deformable attention in pure PyTorch via ``grid_sample``: the
  same sampling as the repository's CUDA op and its PyTorch fallback);
* audio queries: ``query_num`` learned queries refined by self- and cross-
  attention to the projected VGGish feature (AttentionGenerator), plus
  learnable queries; a transformer decoder attends them to the encoder memory;
* mask feature: stride-8 memory upsampled onto the stride-4 lateral, refined,
  then channel-gated by the audio (CrossModalMixer); the last decoder queries
  are dotted with it, mixed by 1x1 convs and added; a conv head upsamples x4.

Loss (official configs): Dice (``loss_type='dice'``) on the mask plus 0.1 x
Dice of the channel-mean mask feature ("mix loss"); S4 supervises frame 1, MS3
all frames. Training: AdamW lr 2e-5, batch 2, S4 30 epochs (backbone frozen
for the first 5), MS3 60 (frozen for 10).

Not verified against the official code by a test: its repository cannot be
placed in ../shared (no licence), so only the shapes, the training loop and the
checkpoint round trip are tested here.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avsbridge.train import STUDENTS
from avsbridge.train.base import Batch, Student, StudentOutput
from avsbridge.train.students._pvt import (
    build_pvt,
    load_imagenet,
    official_to_timm,
    pvt_features,
    pvt_spec,
)


def ms_deform_attn(
    value: torch.Tensor,
    shapes: list[tuple[int, int]],
    locations: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """Multi-scale deformable attention by bilinear sampling.

    value [N, S, M, D] (S = sum of H*W over levels), locations [N, Q, M, L, P, 2] in
    [0, 1] (x, y), weights [N, Q, M, L, P] -> [N, Q, M*D].
    """
    n, _, m, d = value.shape
    _, q, _, n_levels, n_points, _ = locations.shape
    per_level = value.split([h * w for h, w in shapes], dim=1)
    grids = 2 * locations - 1
    sampled = []
    for level, (h, w) in enumerate(shapes):
        v = per_level[level].flatten(2).transpose(1, 2).reshape(n * m, d, h, w)
        g = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)  # [N*M, Q, P, 2]
        sampled.append(
            F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False)
        )
    stacked = torch.stack(sampled, dim=-2).flatten(-2)  # [N*M, D, Q, L*P]
    w = weights.transpose(1, 2).reshape(n * m, 1, q, n_levels * n_points)
    return (stacked * w).sum(-1).view(n, m * d, q).transpose(1, 2).contiguous()


class MSDeformAttn(nn.Module):
    """Deformable DETR's multi-scale deformable attention module (standard init)."""

    def __init__(self, dim: int = 256, n_levels: int = 3, n_heads: int = 8, n_points: int = 4):
        super().__init__()
        self.dim, self.n_levels, self.n_heads, self.n_points = dim, n_levels, n_heads, n_points
        self.sampling_offsets = nn.Linear(dim, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(dim, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([angles.cos(), angles.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.n_heads, 1, 1, 2)
        grid = grid.repeat(1, self.n_levels, self.n_points, 1)
        for i in range(self.n_points):
            grid[:, :, i, :] *= i + 1
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.view(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(
        self,
        query: torch.Tensor,
        reference: torch.Tensor,
        source: torch.Tensor,
        shapes: list[tuple[int, int]],
    ) -> torch.Tensor:
        n, q, _ = query.shape
        m, lv, p = self.n_heads, self.n_levels, self.n_points
        value = self.value_proj(source).view(n, source.shape[1], m, self.dim // m)
        offsets = self.sampling_offsets(query).view(n, q, m, lv, p, 2)
        attn = self.attention_weights(query).view(n, q, m, lv * p).softmax(-1).view(n, q, m, lv, p)
        normaliser = torch.tensor(
            [[w, h] for h, w in shapes], dtype=query.dtype, device=query.device
        )
        locations = (
            reference[:, :, None, :, None, :] + offsets / normaliser[None, None, None, :, None, :]
        )
        return self.output_proj(ms_deform_attn(value, shapes, locations, attn))


class EncoderLayer(nn.Module):
    def __init__(self, dim: int, ffn_dim: int, dropout: float, n_levels: int, n_heads: int):
        super().__init__()
        self.self_attn = MSDeformAttn(dim, n_levels, n_heads, 4)
        self.dropout1, self.norm1 = nn.Dropout(dropout), nn.LayerNorm(dim)
        self.linear1, self.linear2 = nn.Linear(dim, ffn_dim), nn.Linear(ffn_dim, dim)
        self.dropout2, self.dropout3 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, src, pos, reference, shapes):  # type: ignore[no-untyped-def]
        src = self.norm1(src + self.dropout1(self.self_attn(src + pos, reference, src, shapes)))
        ffn = self.linear2(self.dropout2(F.gelu(self.linear1(src))))
        return self.norm2(src + self.dropout3(ffn))


class DecoderLayer(nn.Module):
    def __init__(self, dim: int, ffn_dim: int, dropout: float, n_heads: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, n_heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, n_heads, dropout=dropout, batch_first=True)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.linear1, self.linear2 = nn.Linear(dim, ffn_dim), nn.Linear(ffn_dim, dim)
        self.dropout3, self.dropout4 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        query = self.norm1(query + self.dropout1(self.self_attn(query, query, query)[0]))
        query = self.norm2(query + self.dropout2(self.cross_attn(query, memory, memory)[0]))
        ffn = self.linear2(self.dropout3(F.gelu(self.linear1(query))))
        return self.norm3(query + self.dropout4(ffn))


class _Layers(nn.Module):
    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)


class Transformer(nn.Module):
    def __init__(self, dim, ffn_dim, dropout, n_levels, n_heads, enc_layers, dec_layers):  # type: ignore[no-untyped-def]
        super().__init__()
        self.encoder = _Layers(
            [EncoderLayer(dim, ffn_dim, dropout, n_levels, n_heads) for _ in range(enc_layers)]
        )
        self.decoder = _Layers(
            [DecoderLayer(dim, ffn_dim, dropout, n_heads) for _ in range(dec_layers)]
        )

    @staticmethod
    def reference_points(shapes: list[tuple[int, int]], n: int, device: Any) -> torch.Tensor:
        """Pixel centres of every level in [0, 1] (no padding: valid ratios are 1)."""
        refs = []
        for h, w in shapes:
            y, x = torch.meshgrid(
                torch.linspace(0.5, h - 0.5, h, device=device) / h,
                torch.linspace(0.5, w - 0.5, w, device=device) / w,
                indexing="ij",
            )
            refs.append(torch.stack((x.reshape(-1), y.reshape(-1)), -1))
        ref = torch.cat(refs, 0)[None, :, None, :].expand(n, -1, len(shapes), -1)
        return ref

    def forward(self, query, src, shapes, pos):  # type: ignore[no-untyped-def]
        reference = self.reference_points(shapes, src.shape[0], src.device)
        memory = src
        for layer in self.encoder.layers:
            memory = layer(memory, pos, reference, shapes)
        out = query
        for layer in self.decoder.layers:
            out = layer(out, memory)
        return memory, out


def sine_position(h: int, w: int, num_feats: int, device: Any, temperature: float = 10000.0):  # type: ignore[no-untyped-def]
    """DETR sine embedding (unnormalised, 1-based positions): [2*num_feats, h, w]."""
    y = torch.arange(1, h + 1, dtype=torch.float32, device=device)[:, None].expand(h, w)
    x = torch.arange(1, w + 1, dtype=torch.float32, device=device)[None, :].expand(h, w)
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=device)
    dim_t = temperature ** (2 * (dim_t // 2) / num_feats)
    px, py = x[..., None] / dim_t, y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=3).flatten(2)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=3).flatten(2)
    return torch.cat((py, px), dim=2).permute(2, 0, 1)


class QueryLayer(nn.Module):
    def __init__(self, dim: int, n_heads: int, hidden: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, n_heads, bias=False, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, n_heads, bias=False, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, query: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        query = self.norm1(query + self.self_attn(query, query, query)[0])
        query = self.norm2(query + self.cross_attn(query, audio, audio)[0])
        return self.norm3(query + self.ffn(query))


class QueryGenerator(nn.Module):
    def __init__(self, layers: int, query_num: int, dim: int, n_heads: int, hidden: int) -> None:
        super().__init__()
        self.query = nn.Embedding(query_num, dim)
        self.layers = nn.ModuleList(QueryLayer(dim, n_heads, hidden) for _ in range(layers))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        query = self.query.weight[None].expand(audio.shape[0], -1, -1)
        for layer in self.layers:
            query = layer(query, audio)
        return query


class CrossModalMixer(nn.Module):
    """Audio-conditioned channel gate of the mask feature (one audio query, pixel keys)."""

    def __init__(self, dim: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.kv_proj = nn.Linear(dim, 2 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, feature: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        b, c = feature.shape[:2]
        pixels = feature.flatten(2).transpose(1, 2)  # [B, HW, C]
        q = self.q_proj(audio).view(b, 1, self.n_heads, c // self.n_heads).transpose(1, 2)
        k, v = (
            self.kv_proj(pixels)
            .view(b, -1, 2, self.n_heads, c // self.n_heads)
            .permute(2, 0, 3, 1, 4)
        )
        attn = (q @ k.transpose(-2, -1) * (c // self.n_heads) ** -0.5).softmax(-1)
        gate = self.proj((attn @ v).transpose(1, 2).reshape(b, 1, c)).sigmoid()
        return feature * gate.view(b, c, 1, 1)


def _up_head(dim: int, scale: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(dim, 128, 3, padding=1),
        nn.Upsample(scale_factor=scale, mode="bilinear", align_corners=False),
        nn.Conv2d(128, 32, 3, padding=1),
        nn.ReLU(True),
        nn.Conv2d(32, 1, 1, bias=False),
    )


class _FPN(nn.Module):
    """Present in official checkpoints (``head.fpn``, ``head.attn_fc``) but unused in the
    forward pass; kept so their state dicts load strictly."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        for name in ("up1", "up2", "up3"):
            setattr(
                self,
                name,
                nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(dim, dim, 3, padding=1)),
            )


class AVSegHead(nn.Module):
    def __init__(self, in_channels, dim, query_num, n_heads, ffn_dim, dropout, enc_layers,
                 dec_layers, gen_layers, gen_hidden, mlp_hidden):  # type: ignore[no-untyped-def]  # fmt: skip
        super().__init__()
        self.dim, self.valid = dim, (1, 2, 3)
        self.level_embed = nn.Parameter(torch.empty(3, dim))
        self.learnable_query = nn.Embedding(query_num, dim)
        self.query_generator = QueryGenerator(gen_layers, query_num, dim, n_heads, gen_hidden)
        self.transformer = Transformer(dim, ffn_dim, dropout, 3, n_heads, enc_layers, dec_layers)
        self.in_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, dim, 1), nn.GroupNorm(32, dim)) for c in in_channels
        )
        self.mlp = _Layers(
            [
                nn.Conv2d(query_num, mlp_hidden, 1),
                nn.Conv2d(mlp_hidden, mlp_hidden, 1),
                nn.Conv2d(mlp_hidden, dim, 1),
            ]  # fmt: skip
        )
        self.fusion_block = CrossModalMixer(dim, n_heads)
        self.lateral_conv = nn.Sequential(nn.Conv2d(dim, dim, 1), nn.GroupNorm(32, dim))
        self.out_conv = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1), nn.GroupNorm(32, dim), nn.ReLU(True)
        )
        self.fpn = _FPN(dim)
        self.attn_fc = _up_head(dim, 4)
        self.fc = _up_head(dim, 4)
        for p in self.parameters():  # official: xavier on every matrix ...
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():  # ... then the deformable attention's own init
            if isinstance(m, MSDeformAttn):
                m._reset_parameters()
        nn.init.normal_(self.level_embed)

    def forward(self, feats: list[torch.Tensor], audio: torch.Tensor):  # type: ignore[no-untyped-def]
        lateral = self.lateral_conv(self.in_proj[0](feats[0]))
        srcs = [self.in_proj[i](feats[i]) for i in self.valid]
        shapes = [(int(s.shape[-2]), int(s.shape[-1])) for s in srcs]
        flat = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], 1)
        pos = torch.cat(
            [
                sine_position(h, w, self.dim // 2, flat.device).flatten(1).T + self.level_embed[i]
                for i, (h, w) in enumerate(shapes)
            ]
        )[None]
        query = self.query_generator(audio) + self.learnable_query.weight[None]
        memory, queries = self.transformer(query, flat, shapes, pos)
        h8, w8 = shapes[0]
        stride8 = memory[:, : h8 * w8].transpose(1, 2).reshape(-1, self.dim, h8, w8)
        mask_feature = lateral + F.interpolate(
            stride8, size=lateral.shape[-2:], mode="bilinear", align_corners=False
        )
        mask_feature = self.fusion_block(self.out_conv(mask_feature), audio)
        mixed = torch.einsum("bqc,bchw->bqhw", queries, mask_feature)
        for i, layer in enumerate(self.mlp.layers):
            mixed = layer(mixed) if i == len(self.mlp.layers) - 1 else F.relu(layer(mixed))
        return self.fc(mask_feature + mixed), mask_feature


class AVSegFormerNet(nn.Module):
    def __init__(
        self, backbone: dict[str, Any], drop_path_rate: float, audio_dim: int, **head: Any
    ):
        super().__init__()
        spec = pvt_spec(backbone)
        self.backbone = build_pvt(spec, drop_path_rate)
        self.audio_proj = nn.Linear(audio_dim, head["dim"])
        self.head = AVSegHead(in_channels=spec["embed_dims"], **head)

    def forward(self, frames: torch.Tensor, audio: torch.Tensor) -> StudentOutput:
        t = frames.shape[1]
        feats = pvt_features(self.backbone, frames.flatten(0, 1))
        logits, mask_feature = self.head(feats, self.audio_proj(audio.flatten(0, 1))[:, None])
        return StudentOutput(logits, {"mask_feature": mask_feature, "frames": t})


def load_official_state_dict(model: AVSegFormerNet, state_dict: dict[str, torch.Tensor]) -> None:
    """An official AVSegFormer checkpoint (its VGGish weights are dropped: features are
    precomputed; DataParallel prefix ok). Names follow the official modules."""
    sd = {k.removeprefix("module."): v for k, v in state_dict.items() if "vggish" not in k}
    backbone = {k[len("backbone.") :]: v for k, v in sd.items() if k.startswith("backbone.")}
    rest = {k: v for k, v in sd.items() if not k.startswith("backbone.")}
    timm_keys = official_to_timm(backbone, model.backbone)
    model.load_state_dict({**rest, **{f"backbone.{k}": v for k, v in timm_keys.items()}})


def dice_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Official ``F1/F5_Dice_loss``: 1 - 2<p, g> / (|p|^2 + |g|^2 + 0.002), mean over frames."""
    p, g = torch.sigmoid(logits).flatten(1), masks.flatten(1)
    return (1 - 2 * (p * g).sum(-1) / ((p * p).sum(-1) + 0.001 + (g * g).sum(-1) + 0.001)).mean()


@STUDENTS.register("avsegformer", gpu=True)
class AVSegFormerStudent(Student):
    """AVSegFormer on PVT-v2 (B5 by default) + precomputed VGGish features."""

    name = "avsegformer"
    audio_features = "vggish"
    audio_dim = 128

    def __init__(
        self,
        image_size: int = 224,
        embed_dim: int = 256,
        query_num: int = 300,
        num_heads: int = 8,
        ffn_dim: int = 2048,
        dropout: float = 0.1,
        encoder_layers: int = 6,
        decoder_layers: int = 6,
        generator_layers: int = 6,
        generator_hidden: int = 1024,
        mlp_hidden: int = 2048,
        backbone: dict[str, Any] | None = None,
        drop_path_rate: float = 0.1,
        pretrained: bool = True,
        pvt_weights: str | None = None,
        supervised_frames: str = "first",
        mix_weight: float = 0.1,
        freeze_epochs: int = 5,
    ) -> None:
        if supervised_frames not in ("first", "all"):
            raise ValueError(
                f"avsegformer: supervised_frames must be first|all, not {supervised_frames!r}"
            )
        if embed_dim % 32 or embed_dim % num_heads:
            raise ValueError("avsegformer: embed_dim must be a multiple of 32 and of num_heads")
        self.image_size = int(image_size)
        self.options = {
            "image_size": self.image_size,
            "embed_dim": int(embed_dim),
            "query_num": int(query_num),
            "num_heads": int(num_heads),
            "ffn_dim": int(ffn_dim),
            "dropout": float(dropout),
            "encoder_layers": int(encoder_layers),
            "decoder_layers": int(decoder_layers),
            "generator_layers": int(generator_layers),
            "generator_hidden": int(generator_hidden),
            "mlp_hidden": int(mlp_hidden),
            "backbone": {k: list(v) for k, v in pvt_spec(backbone).items()},
            "drop_path_rate": float(drop_path_rate),
            "pretrained": bool(pretrained),
            "supervised_frames": supervised_frames,
            "mix_weight": float(mix_weight),
            "freeze_epochs": int(freeze_epochs),
        }
        self.pvt_weights = pvt_weights

    def build(self) -> nn.Module:
        o = self.options
        model = AVSegFormerNet(
            o["backbone"],
            o["drop_path_rate"],
            self.audio_dim,
            dim=o["embed_dim"],
            query_num=o["query_num"],
            n_heads=o["num_heads"],
            ffn_dim=o["ffn_dim"],
            dropout=o["dropout"],
            enc_layers=o["encoder_layers"],
            dec_layers=o["decoder_layers"],
            gen_layers=o["generator_layers"],
            gen_hidden=o["generator_hidden"],
            mlp_hidden=o["mlp_hidden"],
        )
        if o["pretrained"]:
            load_imagenet(model.backbone, self.pvt_weights)
        return model

    def optimizer(self, params: Any, lr: float) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=lr)

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        """The official schedule: the backbone is frozen for the first ``freeze_epochs``."""
        frozen = epoch < self.options["freeze_epochs"]
        for p in model.backbone.parameters():  # type: ignore[union-attr]
            p.requires_grad = not frozen

    def loss(self, output: StudentOutput, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        assert batch.masks is not None
        t = int(output.aux["frames"])
        masks = batch.masks.flatten(0, 1).to(output.logits.dtype)
        step = t if self.options["supervised_frames"] == "first" else 1
        target = masks[::step]
        if target.shape[-2:] != output.logits.shape[-2:]:
            target = F.interpolate(target, size=output.logits.shape[-2:], mode="nearest")
        mask_loss = dice_loss(output.logits[::step], target)
        feature = output.aux["mask_feature"][::step].mean(dim=1, keepdim=True)
        feature = F.interpolate(
            feature, size=target.shape[-2:], mode="bilinear", align_corners=False
        )
        mix = self.options["mix_weight"] * dice_loss(feature, target)
        return mask_loss + mix, {"dice": float(mask_loss.detach()), "mix": float(mix.detach())}

    @classmethod
    def recipe(cls, kind: str) -> dict[str, Any]:
        if kind == "s4":
            return {"epochs": 30, "batch_size": 2, "lr": 2e-5, "options": {"freeze_epochs": 5}}
        return {
            "epochs": 60,
            "batch_size": 2,
            "lr": 2e-5,
            "options": {"supervised_frames": "all", "freeze_epochs": 10},
        }
