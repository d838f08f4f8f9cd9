"""Device choice for every backend.

Snakemake's ``resources: gpu=1`` assigns no device: a job takes what
``CUDA_VISIBLE_DEVICES`` leaves visible (set by SLURM, or by the job's device
slot), which is what torch reports. An explicit ``cuda:N`` is kept as asked.
"""

from __future__ import annotations

import os


class DeviceError(RuntimeError):
    """A configured device cannot be used on this machine."""


def cuda_hidden() -> bool:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return visible is not None and visible.strip() in {"", "-1"}


def resolve_device(device: str = "auto", *, strict: bool = False) -> str:
    """``auto`` -> ``cuda`` when a visible GPU exists, else ``cpu``; others unchanged.

    ``strict``: an explicit ``cuda[:N]`` on a machine without a visible GPU is an
    error (instead of failing later inside the model).
    """
    if device != "auto" and not (strict and device.startswith("cuda")):
        return device
    if cuda_hidden():
        available = False
    else:
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a project dependency
            available = False
        else:
            available = bool(torch.cuda.is_available())
    if device == "auto":
        return "cuda" if available else "cpu"
    if not available:
        raise DeviceError(f"device {device!r} asked but no CUDA device is visible")
    return device
