"""``cris``: CRIS (Wang et al., CVPR 2022; DerrickWang005/CRIS.pytorch), BAaV Table 3's
third RIS model, through its own code.

The code is not vendored: option ``home`` (default: env ``AVSBRIDGE_CRIS_HOME``, else
``$AVSBRIDGE_UPSTREAM/CRIS.pytorch``, else ``../shared/upstream/CRIS.pytorch`` beside the
checkout) is imported as :mod:`avsbridge.ris._cris_family` describes, and the model is
built as CRIS's ``test.py`` builds it: ``utils.config.load_cfg_from_cfg_file(config)``
(default ``config/refcoco/cris_r50.yaml``; ``opts`` as test.py's ``--opts``), then
``model.build_segmenter(cfg)``, whose ``CRIS.__init__`` reads the CLIP weights with
``torch.jit.load(cfg.clip_pretrain)`` (OpenAI's TorchScript ``RN50.pt``; set from option
``clip_pretrain``). ``checkpoint``: train.py's ``best_model.pth`` (``{"state_dict": ...}``
of the DDP model), loaded strictly. Both files are checked against their sha256 options
before anything loads them. The authors released no CRIS weights (issues #3 and #13 of
the repository are still open): pin the sha256 of the copy you train or obtain.
"""

from __future__ import annotations

from avsbridge.ris import RIS_MODELS
from avsbridge.ris._cris_family import CRISFamilyRIS

DEFAULT_CONFIG = "config/refcoco/cris_r50.yaml"


class CRISRIS(CRISFamilyRIS):
    name = "cris"
    model_class = "CRIS"
    what = "CRIS.pytorch"
    home_env = "AVSBRIDGE_CRIS_HOME"
    home_folder = "CRIS.pytorch"
    default_config = DEFAULT_CONFIG


RIS_MODELS.register("cris", gpu=True, env="cris", mem_mb=4000)(CRISRIS)
