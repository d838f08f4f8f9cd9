"""Native TPAVI == official AVSBench TPAVI (commit f7414af) on the same weights and inputs.

The official model is imported by path from ../shared/upstream/AVSBench (never
copied). Test-only shims: ``Tensor.cuda`` is the identity (the official forward and
S4 loss call ``.cuda()``), its ``pvt_v2_b5`` is swapped for a tiny PVT-v2 built by its
own ``PyramidVisionTransformerV2`` class, and its ``@register_model`` is a no-op so it
does not overwrite timm's registry entries.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from avsbridge.train.base import Batch
from avsbridge.train.students.tpavi import TPAVIStudent, load_official_state_dict

UPSTREAM = Path(
    os.environ.get(
        "AVSBRIDGE_UPSTREAM", Path(__file__).resolve().parents[2] / "shared" / "upstream"
    )
)
AVS = UPSTREAM / "AVSBench" / "avs_scripts"
TINY = {
    "depths": (1, 1, 1, 1),
    "embed_dims": (16, 32, 40, 64),
    "num_heads": (1, 2, 5, 8),
    "mlp_ratios": (4, 4, 4, 4),
    "sr_ratios": (8, 4, 2, 1),
}
CHANNEL, B, T, SIZE = 16, 2, 5, 64


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    if not (AVS / "avs_s4" / "model" / "PVT_AVSModel.py").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"official AVSBench code not found under {AVS}")
        pytest.skip(f"official AVSBench code not found under {AVS}")
    mp = pytest.MonkeyPatch()
    import timm.models.registry

    mp.setattr(timm.models.registry, "register_model", lambda fn: fn)
    mp.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)
    mp.syspath_prepend(str(AVS / "avs_s4"))
    saved = {k: v for k, v in sys.modules.items() if k == "model" or k.startswith("model.")}
    for k in saved:
        del sys.modules[k]
    import model.pvt as pvt  # the official modules, by path
    import model.PVT_AVSModel as avs_model

    def tiny_pvt():
        return pvt.PyramidVisionTransformerV2(
            patch_size=4,
            qkv_bias=True,
            norm_layer=lambda d: torch.nn.LayerNorm(d, eps=1e-6),
            drop_path_rate=0.0,
            **{k: list(v) for k, v in TINY.items()},
        )

    mp.setattr(avs_model, "pvt_v2_b5", tiny_pvt)
    torch.manual_seed(0)
    init = tmp_path_factory.mktemp("pvt") / "pvt_tiny.pth"
    torch.save(tiny_pvt().state_dict(), init)  # its constructor loads "ImageNet" weights
    cfg = SimpleNamespace(TRAIN=SimpleNamespace(PRETRAINED_PVTV2_PATH=str(init)))
    net = avs_model.Pred_endecoder(
        channel=CHANNEL,
        config=cfg,
        vis_dim=list(TINY["embed_dims"]),
        tpavi_stages=[0, 1, 2, 3],
        tpavi_va_flag=True,
    )
    for p in net.parameters():  # random everywhere (BN/LayerNorm too), not just at init
        torch.nn.init.normal_(p, 0.0, 0.05) if p.dim() > 1 else torch.nn.init.uniform_(p, 0.5, 1.5)
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    losses = {
        "s4": _load("avs_s4_loss", AVS / "avs_s4" / "loss.py"),
        "ms3": _load("avs_ms3_loss", AVS / "avs_ms3" / "loss.py"),
    }
    yield SimpleNamespace(net=net, losses=losses)
    for k in [k for k in sys.modules if k == "model" or k.startswith("model.")]:
        del sys.modules[k]
    sys.modules.update(saved)
    mp.undo()


def _native(official_net, **options):
    student = TPAVIStudent(
        image_size=SIZE,
        channel=CHANNEL,
        backbone=TINY,
        drop_path_rate=0.0,
        pretrained=False,
        **options,
    )
    net = student.build()
    load_official_state_dict(net, official_net.state_dict())
    return student, net


def _inputs():
    g = torch.Generator().manual_seed(1)
    frames = torch.randn(B, T, 3, SIZE, SIZE, generator=g)
    audio = torch.randn(B, T, 128, generator=g)
    masks = (torch.rand(B, T, 1, SIZE, SIZE, generator=g) > 0.6).float()
    return frames, audio, masks


def test_forward_equals_official(official):
    student, native = _native(official.net)
    frames, audio, _ = _inputs()
    official.net.eval()
    native.eval()
    with torch.no_grad():
        ref, ref_maps, ref_audio = official.net(frames.flatten(0, 1), audio.flatten(0, 1))
        out = native(frames, audio)
    assert out.logits.shape == ref.shape == (B * T, 1, SIZE, SIZE)
    torch.testing.assert_close(out.logits, ref, rtol=1e-4, atol=1e-5)
    for mine, theirs in zip(out.aux["v_maps"], ref_maps, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)
    for mine, theirs in zip(out.aux["a_feas"], ref_audio, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)
    assert ref.abs().max() > 1e-3  # not a trivially zero output


@pytest.mark.parametrize("kind", ["s4", "ms3"])
def test_training_loss_equals_official(official, kind):
    """Train mode (batch-norm batch statistics): the S4 first-frame BCE and the MS3 BCE +
    masked audio-visual KL loss (λ 0.5, stages 0-3) equal the official loss functions."""
    options = TPAVIStudent.recipe(kind)["options"]
    student, native = _native(official.net, **options)
    frames, audio, masks = _inputs()
    official.net.train()
    native.train()
    ref, ref_maps, ref_audio = official.net(frames.flatten(0, 1), audio.flatten(0, 1))
    if kind == "s4":
        ref_loss, _ = official.losses["s4"].IouSemanticAwareLoss(
            ref, masks[:, :1], ref_audio, ref_maps
        )
    else:
        ref_loss, _ = official.losses["ms3"].IouSemanticAwareLoss(
            ref,
            masks.flatten(0, 1),
            ref_audio,
            ref_maps,
            sa_loss_flag=True,
            count_stages=[0, 1, 2, 3],
            lambda_1=0.5,
            mask_pooling_type="avg",
            threshold=False,
            norm_fea=False,  # train.py passes args.norm_fea_flag (off in train.sh)
            kl_flag=True,
        )
    out = native(frames, audio)
    loss, parts = student.loss(out, Batch(frames, audio, masks))
    torch.testing.assert_close(loss, ref_loss, rtol=1e-4, atol=1e-5)
    assert ("masked_av" in parts) == (kind == "ms3")
    loss.backward()  # the native graph trains
    assert native.tpavi_b1.align_channel.weight.grad is not None
