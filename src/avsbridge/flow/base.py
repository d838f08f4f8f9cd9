"""The one interface every optical-flow backend implements, and what backends share.

A backend is created once per job (its model loads in ``__init__``) and then
asked for the flow of many consecutive frame pairs at once, so neural backends
batch them. The stage runner (:mod:`avsbridge.flow.run`) only talks to this
interface: a new estimator is one module plus ``@FLOW_BACKENDS.register(name)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

# The device rule every torch backend of the project follows ("auto" honours
# CUDA_VISIBLE_DEVICES): one helper, reused, not a third copy.

FramePair = tuple[np.ndarray, np.ndarray]

__all__ = [
    "FlowEstimator",
    "FramePair",
    "check_pair",
    "group_by_shape",
    "to_unit_range",
]


@runtime_checkable
class FlowEstimator(Protocol):
    """Consecutive RGB frame pairs -> dense forward flow (frame t -> frame t+1)."""

    name: str

    def identity(self) -> dict[str, Any]:
        """What the flow depends on: backend, model ids, weight sha256s, inference settings."""
        ...

    def flow(self, pairs: Sequence[FramePair]) -> list[np.ndarray]:
        """One HxWx2 float32 field per pair, (u, v) in pixels of the first frame's grid."""
        ...


def check_pair(pair: FramePair) -> tuple[int, int]:
    """Reject pairs that are not two HxWx3 uint8 frames of one size (a caller bug)."""
    first, second = pair
    for image in (first, second):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"flow wants HxWx3 uint8 RGB frames, got {image.shape} {image.dtype}")
    if first.shape != second.shape:
        raise ValueError(f"frames of one pair differ in size: {first.shape} vs {second.shape}")
    return int(first.shape[0]), int(first.shape[1])


def group_by_shape(pairs: Sequence[FramePair], batch_size: int) -> Iterator[list[int]]:
    """Indices of ``pairs`` in batches of one frame size (a tensor batch needs one size)."""
    by_shape: dict[tuple[int, int], list[int]] = {}
    for index, pair in enumerate(pairs):
        by_shape.setdefault(check_pair(pair), []).append(index)
    for indices in by_shape.values():
        for start in range(0, len(indices), max(1, batch_size)):
            yield indices[start : start + max(1, batch_size)]


def to_unit_range(frames: np.ndarray) -> Any:
    """uint8 NxHxWx3 -> float32 torch Nx3xHxW in [-1, 1] (RAFT's and Perceiver IO's input range)."""
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    return tensor / 255.0 * 2.0 - 1.0
