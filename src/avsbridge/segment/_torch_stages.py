"""Torch helpers shared by the paper VFM pairs' staged calls: precision and feature storage.

``precision`` is a backend option: ``fp32`` (default; bit-identical to the per-frame
path on CPU), ``bf16`` or ``fp16`` (autocast of the detector, encoder and decoder
forwards where the device supports it: bf16 on CPU and recent GPUs, fp16 on GPU).
It is part of the detector and encoder identities, so cached results of one
precision are never served to another.

Embedding features are stored as (dtype label, numpy array) pairs; bf16 has no
numpy dtype and travels as its raw uint16 bits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

PRECISIONS = ("fp32", "bf16", "fp16")


def check_precision(precision: str, device: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and not str(device).startswith("cuda"):
        raise ValueError("precision fp16 needs a CUDA device (use bf16 on CPU)")
    return precision


def torch_dtype(precision: str) -> Any:
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


@contextlib.contextmanager
def autocast(device: str, precision: str) -> Iterator[None]:
    """Mixed precision for a forward pass (a no-op in fp32)."""
    import torch

    if precision == "fp32":
        yield
        return
    device_type = "cuda" if str(device).startswith("cuda") else str(device).split(":")[0]
    with torch.autocast(device_type=device_type, dtype=torch_dtype(precision)):
        yield


_LABEL_OF = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


def tensor_to_array(tensor: Any, storage_dtype: str) -> tuple[str, np.ndarray]:
    """A feature tensor as (dtype label, numpy array) in the storage dtype ("same": its own)."""
    import torch

    tensor = tensor.detach()
    label = str(tensor.dtype).removeprefix("torch.") if storage_dtype == "same" else storage_dtype
    if label not in _LABEL_OF:
        raise ValueError(f"cannot store {tensor.dtype} features")
    tensor = tensor.to(device="cpu", dtype=getattr(torch, label)).contiguous()
    if label == "bfloat16":
        return label, tensor.view(torch.int16).numpy().view(np.uint16)
    return label, tensor.numpy()


def array_to_tensor(label: str, array: np.ndarray, device: str, dtype: Any) -> Any:
    """The inverse of :func:`tensor_to_array`, cast to ``dtype`` on ``device``."""
    import torch

    if label == "bfloat16":
        tensor = torch.from_numpy(np.ascontiguousarray(array).view(np.int16)).view(torch.bfloat16)
    elif label in ("float32", "float16"):
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    else:
        raise ValueError(f"unknown stored feature dtype {label!r}")
    return tensor.to(device=device, dtype=dtype)


def export_features(features: dict[str, Any], storage_dtype: str) -> dict[str, tuple[str, Any]]:
    return {name: tensor_to_array(t, storage_dtype) for name, t in features.items()}


def import_features(
    arrays: dict[str, tuple[str, Any]], device: str, precision: str
) -> dict[str, Any]:
    """Stored features on the device, in fp32 (fp32 runs) or the autocast dtype."""
    dtype = torch_dtype(precision)
    return {name: array_to_tensor(label, a, device, dtype) for name, (label, a) in arrays.items()}


def group_by_shape(images: list[np.ndarray]) -> list[list[int]]:
    """Indices of the images of each size, in order (a batch never pads one frame)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(tuple(image.shape), []).append(i)
    return list(groups.values())
