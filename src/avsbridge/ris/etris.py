"""``etris``: ETRIS (Xu et al., ICCV 2023; kkakkkka/ETRIS), BAaV Table 3's second RIS
model, through its own code.

ETRIS is built on CRIS's code (same dataset transform, tokenizer, config loader and
``engine.inference``), so it runs as :mod:`avsbridge.ris._cris_family` describes. Option
``home``: default env ``AVSBRIDGE_ETRIS_HOME``, else ``$AVSBRIDGE_UPSTREAM/ETRIS``, else
``../shared/upstream/ETRIS``. ``config`` defaults to ``config/refcoco/bridge_r50.yaml``
(``bridge_r101.yaml``, ``bridge_v16.yaml`` for the other backbones). ETRIS's
``__init__`` picks its ResNet bridger when the text ``RN`` occurs in the
``clip_pretrain`` *path*, its ViT bridger otherwise: a CLIP file whose path disagrees with
the config's own ``clip_pretrain`` is refused before the model is built. Weights: the
authors share theirs on Baidu Pan without a checksum; pin the sha256 of your copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avsbridge.io import ArtifactError
from avsbridge.ris import RIS_MODELS
from avsbridge.ris._cris_family import CRISFamilyRIS

DEFAULT_CONFIG = "config/refcoco/bridge_r50.yaml"
RESNET_MARK = "RN"  # ETRIS's model/segmenter.py: `if "RN" in cfg.clip_pretrain`


class ETRISRIS(CRISFamilyRIS):
    name = "etris"
    model_class = "ETRIS"
    what = "ETRIS"
    home_env = "AVSBRIDGE_ETRIS_HOME"
    home_folder = "ETRIS"
    default_config = DEFAULT_CONFIG

    def check_clip_file(self, cfg: Any, clip_file: Path, cfg_file: Path) -> None:
        wants_resnet = RESNET_MARK in str(cfg.clip_pretrain)
        if wants_resnet != (RESNET_MARK in str(clip_file)):
            kind = "ResNet" if wants_resnet else "ViT"
            raise ArtifactError(
                clip_file,
                f"ETRIS chooses its bridger by whether {RESNET_MARK!r} is in the clip_pretrain "
                f"path, and {cfg_file.name} is a {kind} config (clip_pretrain "
                f"{cfg.clip_pretrain}): name the CLIP file so that it "
                f"{'contains' if wants_resnet else 'does not contain'} {RESNET_MARK!r}",
            )


RIS_MODELS.register("etris", gpu=True, env="etris", mem_mb=4000)(ETRISRIS)
