"""Multimodal-LLM stages: SSP's answers A1/A2 (``mllm_answers``) and TeSO's dense scene
descriptions (``scene_description``), one backend registry per stage.

Backends register with ``@REGISTRY.register("name", gpu=..., env=..., mem_mb=...)``
when their module is imported, so the workflow asks the registry for a rule's GPU,
conda env and memory without loading any model. Heavy libraries load only when a
backend answers its first request.

=================== ================ ===== =========================================
name                stage(s)         gpu   model
=================== ================ ===== =========================================
minicpm-o-2.6       mllm_answers     yes   openbmb/MiniCPM-o-2_6, remote code, own env
llava               both             yes   transformers LlavaForConditionalGeneration
openai-vision       both             no    any OpenAI-compatible vision chat endpoint
coco-ssd-smollm2    mllm_answers     no    demo: COCO-SSD sentences (A1) + SmolLM2 (A2)
coco-ssd            scene_description no   demo: COCO-SSD detections as a sentence
=================== ================ ===== =========================================
"""

from __future__ import annotations

import importlib
from typing import Any

from avsbridge.mllm.base import Turn, VisionChat
from avsbridge.registry import Registry

MLLM_ANSWERERS: Registry[VisionChat] = Registry("mllm_answers", "avsbridge.mllm")
SCENE_DESCRIBERS: Registry[VisionChat] = Registry("scene_description", "avsbridge.mllm")

# config name -> module that registers it (imported on first use only)
BACKEND_MODULES = {
    "minicpm-o-2.6": "avsbridge.mllm.minicpm",
    "llava": "avsbridge.mllm.llava",
    "openai-vision": "avsbridge.mllm.openai_vision",
    "coco-ssd-smollm2": "avsbridge.mllm.coco_ssd",
    "coco-ssd": "avsbridge.mllm.coco_ssd",
}


def _import_backend(name: str) -> None:
    if name in BACKEND_MODULES:
        importlib.import_module(BACKEND_MODULES[name])


def load_answerer(name: str, options: dict[str, Any] | None = None) -> VisionChat:
    _import_backend(name)
    return MLLM_ANSWERERS.create(name, **(options or {}))


def load_describer(name: str, options: dict[str, Any] | None = None) -> VisionChat:
    _import_backend(name)
    return SCENE_DESCRIBERS.create(name, **(options or {}))


__all__ = [
    "BACKEND_MODULES",
    "MLLM_ANSWERERS",
    "SCENE_DESCRIBERS",
    "Turn",
    "VisionChat",
    "load_answerer",
    "load_describer",
]
