"""``minicpm-o-2.6``: SSP's MLLM, openbmb/MiniCPM-o-2_6 through its own remote code.

The model's Python code ships in the model repository (``trust_remote_code``) and
needs its own stack: the model card's "Requirements tested on python 3.10"
(Pillow 10.1.0, torch 2.3.1, torchaudio 2.3.1, torchvision 0.18.1, transformers
4.44.2 -- "other versions may have compatibility issues" --, librosa 0.9.0,
soundfile 0.12.1, vector-quantize-pytorch 1.18.5, vocos 0.1.0, decord, moviepy),
pinned in ``envs/minicpm.yaml`` (Python 3.11 there: the project's).

Pinning: code and weights live in one hub repo, so the revision is one commit,
:data:`DEFAULT_REVISION` unless the option ``revision`` names another 40-hex
commit. The job never downloads: it resolves the snapshot already in the local
hub cache (``hf_snapshot_dir(..., local_files_only=True)``) and refuses to run,
naming the folder it looked for and the command that fetches it, when there is
none. A local ``model_path`` is pinned by the digest of its weight files and of
its Python files (the remote code), both in the identity.

Tested offline (tests/test_minicpm.py): the pin, the refusal, the snapshot
resolution, and the calls this adapter makes, against a stand-in remote-code
package in a temporary snapshot folder loaded through transformers' real
``trust_remote_code`` path (``AutoModel`` / ``AutoTokenizer`` get ``revision`` and
``trust_remote_code``; ``model.chat(image=None, msgs=...)`` gets the frames in the
first user turn as the model card's video example does). NOT tested: the real
remote code (no tiny config of it can run without its own stack), the env itself
(no conda here) and the answers' quality.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.backends import hf_snapshot_dir, model_folder_digest, resolve_device
from avsbridge.backends.files import hf_cache_snapshot_path
from avsbridge.io import ArtifactError, content_key, sha256_file
from avsbridge.mllm import MLLM_ANSWERERS
from avsbridge.mllm.base import Completion, Turn, check_turns
from avsbridge.translate.cache import FREE

MODEL_ID = "openbmb/MiniCPM-o-2_6"
# A commit of the hub repo with the weights (4 safetensors shards), the remote code
# (modeling_minicpmo.py ...) and the model card asking for transformers 4.44.2:
# https://huggingface.co/openbmb/MiniCPM-o-2_6/tree/cac55956a6efb7456cf5bbcad4e3e4f14d2e7ea9
DEFAULT_REVISION = "cac55956a6efb7456cf5bbcad4e3e4f14d2e7ea9"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def local_snapshot(revision: str, cache_dir: str | Path | None = None) -> Path:
    """The hub-cache snapshot of MiniCPM-o-2_6 at ``revision``; never downloads.

    No snapshot there is an error naming the folder and how to fetch it.
    """
    expected = hf_cache_snapshot_path(MODEL_ID, revision, cache_dir)
    how = (
        f"fetch it where the hub is reachable with `hf download {MODEL_ID} --revision "
        f"{revision}` (huggingface_hub < 1.0: `huggingface-cli download`; same HF_HOME / "
        "HF_HUB_CACHE as the job), or set the option model_path to a local copy"
    )
    try:
        folder = hf_snapshot_dir(MODEL_ID, revision, cache_dir=cache_dir, local_files_only=True)
    except FileNotFoundError:  # huggingface_hub's LocalEntryNotFoundError, in every version
        raise ArtifactError(
            expected, f"no local snapshot of {MODEL_ID} at revision {revision}: {how}"
        ) from None
    if not (folder / "config.json").is_file():
        raise ArtifactError(folder / "config.json", f"incomplete snapshot of {MODEL_ID}: {how}")
    return folder


def code_digest(folder: Path) -> str:
    """One key over the model folder's Python files: the remote code that runs."""
    return content_key(
        {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*.py"))}
    )


class MiniCPMO26:
    """Video (sampled frames) + conversation -> reply, with the model card's ``model.chat``."""

    name = "minicpm-o-2.6"

    def __init__(
        self,
        model_path: str | None = None,
        revision: str | None = DEFAULT_REVISION,
        cache_dir: str | None = None,
        max_images: int = 64,
        max_new_tokens: int = 512,
        max_slice_nums: int = 1,
        device: str = "auto",
    ) -> None:
        if model_path is not None:
            self.folder = Path(model_path).expanduser()
            if not (self.folder / "config.json").is_file():
                raise ArtifactError(self.folder, "model_path is not a MiniCPM-o-2_6 model folder")
            self.revision = None
        else:
            if not revision or not _COMMIT.match(str(revision)):
                raise ValueError(
                    f"minicpm-o-2.6: {MODEL_ID} runs remote code, so its revision must be pinned "
                    f"to a 40-hex commit (option revision, default {DEFAULT_REVISION}), "
                    f"got {revision!r}; or set model_path"
                )
            self.revision = str(revision)
            self.folder = local_snapshot(self.revision, cache_dir)
        self.weights_sha256 = model_folder_digest(self.folder)
        self.code_sha256 = code_digest(self.folder)
        self.max_images = int(max_images)
        self.max_new_tokens = int(max_new_tokens)
        self.max_slice_nums = int(max_slice_nums)
        self.device_request = device
        self._model: Any = None

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": MODEL_ID,
            "revision": self.revision,
            "weights_sha256": self.weights_sha256,
            "code_sha256": self.code_sha256,
            "decoding": {
                "sampling": False,
                "max_new_tokens": self.max_new_tokens,
                "max_slice_nums": self.max_slice_nums,
                "use_image_id": False,
            },
            "max_images": self.max_images,
        }

    def pricing(self, completion: Completion) -> str:
        return FREE

    def _load(self) -> None:
        """The model card's loading, vision only, from the resolved folder at the pinned commit."""
        import torch
        from transformers import AutoModel, AutoTokenizer

        device = resolve_device(self.device_request, strict=True)
        pinned = {"trust_remote_code": True, "revision": self.revision}
        self._tokenizer = AutoTokenizer.from_pretrained(str(self.folder), **pinned)
        model = AutoModel.from_pretrained(
            str(self.folder),
            attn_implementation="sdpa",
            torch_dtype=torch.bfloat16,
            init_vision=True,
            init_audio=False,
            init_tts=False,
            **pinned,
        )
        self._model = model.eval().to(device)

    def answer(self, images: Sequence[np.ndarray], turns: Sequence[Turn]) -> Completion:
        from PIL import Image

        check_turns(turns)
        if not images or len(images) > self.max_images:
            raise ValueError(f"minicpm-o-2.6 takes 1..{self.max_images} frames, got {len(images)}")
        if self._model is None:
            self._load()
        frames = [Image.fromarray(np.ascontiguousarray(i)).convert("RGB") for i in images]
        msgs: list[dict[str, Any]] = []
        for index, (role, text) in enumerate(turns):
            msgs.append({"role": role, "content": ([*frames] if index == 0 else []) + [text]})
        t0 = time.monotonic()
        text = self._model.chat(
            image=None,  # the frames are in the first user turn (the model card's video use)
            msgs=msgs,
            tokenizer=self._tokenizer,
            sampling=False,
            max_new_tokens=self.max_new_tokens,
            use_image_id=False,
            max_slice_nums=self.max_slice_nums,
        )
        return Completion(str(text).strip(), 0, 0, time.monotonic() - t0)


MLLM_ANSWERERS.register("minicpm-o-2.6", gpu=True, env="minicpm", mem_mb=24000)(MiniCPMO26)
