"""``minicpm-o-2.6``: SSP's MLLM, openbmb/MiniCPM-o-2_6 through its own remote code.

NOT TESTED OFFLINE: the model's Python code ships in the model repository
(``trust_remote_code``), it needs its own stack (transformers 4.44.2, torch 2.3.1,
vector-quantize-pytorch, vocos, decord: ``envs/minicpm.yaml``, not the project's
transformers 5.x), and no tiny random config of it can be built without that code.
The tests check only the registration (GPU, env, memory) and the input checks here;
the loading and ``chat`` calls below follow the model card's video example and run
only where the model folder and the env exist.

Pinning: the code and the weights live in one repo, so a hub load needs
``revision`` (a 40-hex commit; there is deliberately no default -- none was
verified here); a local ``model_path`` is pinned by the digest of its weight files
and of its Python files (the remote code), both in the identity.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.backends import hf_snapshot_dir, model_folder_digest, resolve_device
from avsbridge.io import ArtifactError, content_key, sha256_file
from avsbridge.mllm import MLLM_ANSWERERS
from avsbridge.mllm.base import Completion, Turn, check_turns
from avsbridge.translate.cache import FREE

MODEL_ID = "openbmb/MiniCPM-o-2_6"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


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
        revision: str | None = None,
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
                    f"to a 40-hex commit (option revision), got {revision!r}; or set model_path"
                )
            self.folder = hf_snapshot_dir(MODEL_ID, revision)
            self.revision = str(revision)
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
        import torch
        from transformers import AutoModel, AutoTokenizer

        device = resolve_device(self.device_request, strict=True)
        kwargs = {"trust_remote_code": True, "attn_implementation": "sdpa"}
        self._tokenizer = AutoTokenizer.from_pretrained(str(self.folder), trust_remote_code=True)
        model = AutoModel.from_pretrained(
            str(self.folder),
            torch_dtype=torch.bfloat16,
            init_vision=True,
            init_audio=False,
            init_tts=False,
            **kwargs,
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
            msgs=msgs,
            tokenizer=self._tokenizer,
            sampling=False,
            max_new_tokens=self.max_new_tokens,
            use_image_id=False,
            max_slice_nums=self.max_slice_nums,
        )
        return Completion(str(text).strip(), 0, 0, time.monotonic() - t0)


MLLM_ANSWERERS.register("minicpm-o-2.6", gpu=True, env="minicpm", mem_mb=24000)(MiniCPMO26)
