"""``llava``: LLaVA through transformers' native ``LlavaForConditionalGeneration``.

TeSO's captioner is LLaVA-1.5-7b (``llava-hf/llava-1.5-7b-hf``); the same backend
answers SSP's questions about a clip's middle frame (LLaVA-1.5 sees one image; more
with ``max_images``, one ``<image>`` per frame). Weights come from ``model_path`` (a
``save_pretrained`` folder) or the hub cache at a pinned ``revision`` (downloads only
when allowed); the identity records the folder's weight digest, which is what pins
the answers. Greedy decoding, the processor's own chat template. Tested offline with
a tiny random LLaVA config saved and loaded through this code path.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.backends import hf_snapshot_dir, model_folder_digest, resolve_device
from avsbridge.io import ArtifactError
from avsbridge.mllm import MLLM_ANSWERERS, SCENE_DESCRIBERS
from avsbridge.mllm.base import Completion, Turn, check_turns
from avsbridge.translate.cache import FREE

DEFAULT_MODEL_ID = "llava-hf/llava-1.5-7b-hf"


class LlavaVision:
    """Images + conversation -> reply with a transformers LLaVA model (loaded on first use)."""

    name = "llava"

    def __init__(
        self,
        model_path: str | None = None,
        model_id: str = DEFAULT_MODEL_ID,
        revision: str | None = None,
        max_new_tokens: int = 256,
        max_images: int = 1,
        device: str = "auto",
        dtype: str = "auto",
        torch_threads: int | None = None,
    ) -> None:
        if model_path is not None:
            self.folder = Path(model_path).expanduser()
            if not (self.folder / "config.json").is_file():
                raise ArtifactError(self.folder, "model_path is not a LLaVA save_pretrained folder")
            self.model_id, self.revision = self.folder.name, None
        else:
            if not revision:
                raise ValueError(
                    f"llava: loading {model_id} from the hub needs a pinned revision (a commit "
                    "of the model repo), or set model_path to a local save_pretrained folder"
                )
            self.folder = hf_snapshot_dir(model_id, revision)
            self.model_id, self.revision = model_id, revision
        self.weights_sha256 = model_folder_digest(self.folder)
        self.max_new_tokens = int(max_new_tokens)
        self.max_images = int(max_images)
        self.device_request = device
        self.dtype = dtype
        self.torch_threads = torch_threads
        self._model: Any = None
        self._processor: Any = None

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": self.model_id,
            "revision": self.revision,
            "weights_sha256": self.weights_sha256,
            "decoding": {"do_sample": False, "max_new_tokens": self.max_new_tokens},
            "max_images": self.max_images,
        }

    def pricing(self, completion: Completion) -> str:
        return FREE

    def _load(self) -> None:
        import torch
        from transformers import AutoProcessor, LlavaForConditionalGeneration

        if self.torch_threads:
            torch.set_num_threads(int(self.torch_threads))
        self._device = resolve_device(self.device_request, strict=True)
        dtype: Any = self.dtype
        if self.dtype == "auto":
            dtype = torch.float16 if self._device.startswith("cuda") else torch.float32
        elif isinstance(self.dtype, str):
            dtype = getattr(torch, self.dtype)
        try:
            self._processor = AutoProcessor.from_pretrained(str(self.folder))
            model = LlavaForConditionalGeneration.from_pretrained(str(self.folder), dtype=dtype)
        except (OSError, ValueError) as exc:
            raise ArtifactError(self.folder, f"cannot load LLaVA ({exc})") from None
        self._model = model.to(self._device).eval()

    def messages(self, n_images: int, turns: Sequence[Turn]) -> list[dict[str, Any]]:
        """Chat-template messages: the images lead the first user turn."""
        out: list[dict[str, Any]] = []
        for index, (role, text) in enumerate(turns):
            content: list[dict[str, Any]] = []
            if index == 0:
                content += [{"type": "image"}] * n_images
            content.append({"type": "text", "text": text})
            out.append({"role": role, "content": content})
        return out

    def answer(self, images: Sequence[np.ndarray], turns: Sequence[Turn]) -> Completion:
        import torch
        from PIL import Image

        check_turns(turns)
        if not images or len(images) > self.max_images:
            raise ValueError(f"llava takes 1..{self.max_images} images, got {len(images)}")
        if self._model is None:
            self._load()
        t0 = time.monotonic()
        prompt = self._processor.apply_chat_template(
            self.messages(len(images), turns), add_generation_prompt=True
        )
        pil = [Image.fromarray(np.ascontiguousarray(i)).convert("RGB") for i in images]
        inputs = self._processor(images=pil, text=prompt, return_tensors="pt").to(self._device)
        n_in = int(inputs["input_ids"].shape[1])
        with torch.inference_mode():
            output = self._model.generate(
                **inputs, do_sample=False, max_new_tokens=self.max_new_tokens
            )
        new = output[0, n_in:]
        text = self._processor.decode(new, skip_special_tokens=True).strip()
        return Completion(text, n_in, int(new.shape[0]), time.monotonic() - t0)


MLLM_ANSWERERS.register("llava", gpu=True, mem_mb=16000)(LlavaVision)
SCENE_DESCRIBERS.register("llava", gpu=True, mem_mb=16000)(LlavaVision)
