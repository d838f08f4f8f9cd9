"""Optical-flow stage: the estimator interface, its backend registry, the SSP masks.

Backends register with ``@FLOW_BACKENDS.register("name", gpu=...)`` when their module
is imported, declaring there whether their job needs a GPU, so the workflow asks the
registry (``avsbridge.stages``) for a rule's GPU resource without loading any model.
Heavy libraries (torch, torchvision, transformers) load only when a backend is
created.

========== ==================================== ========= ===============================
name       estimator                            needs_gpu weights
========== ==================================== ========= ===============================
opencv     OpenCV DIS (default) or Farneback    no        none (classical)
raft       torchvision RAFT small / large       yes       pinned .pth (avsbridge.weights)
perceiver  transformers PerceiverForOpticalFlow yes       HF folder, pinned revision
========== ==================================== ========= ===============================
"""

from __future__ import annotations

import importlib
from typing import Any

from avsbridge.flow.base import FlowEstimator, FramePair
from avsbridge.registry import Registry

FLOW_BACKENDS: Registry[FlowEstimator] = Registry("flow", "avsbridge.flow")

# config name -> module that registers it (imported on first use only)
BACKEND_MODULES = {
    "opencv": "avsbridge.flow.opencv_flow",
    "raft": "avsbridge.flow.raft",
    "perceiver": "avsbridge.flow.perceiver",
}


def _import_backend(name: str) -> None:
    if name not in FLOW_BACKENDS and name in BACKEND_MODULES:
        importlib.import_module(BACKEND_MODULES[name])


def load_flow_backend(name: str, options: dict[str, Any] | None = None) -> FlowEstimator:
    """Create the configured backend (its model loads now, once for the job)."""
    _import_backend(name)
    return FLOW_BACKENDS.create(name, **(options or {}))


def backend_needs_gpu(name: str) -> bool:
    """Whether the rule running ``name`` should request a GPU (read off the class, no load)."""
    _import_backend(name)
    return FLOW_BACKENDS.needs(name).gpu


__all__ = [
    "BACKEND_MODULES",
    "FLOW_BACKENDS",
    "FlowEstimator",
    "FramePair",
    "backend_needs_gpu",
    "load_flow_backend",
]
