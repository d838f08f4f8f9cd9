"""Stage 4 (text -> masks): the segmenter interface and its backend registry.

Backends register themselves with ``@SEGMENTERS.register("name")`` when their
module is imported; :func:`avsbridge.segment.run.load_segmenter` imports them.
"""

from __future__ import annotations

from avsbridge.backends import resolve_device
from avsbridge.registry import Registry
from avsbridge.segment.base import (
    Detection,
    Segmenter,
    SegResult,
    check_image,
    empty_result,
    split_prompt,
)

SEGMENTERS: Registry[Segmenter] = Registry("segment", "avsbridge.segment")

__all__ = [
    "SEGMENTERS",
    "Detection",
    "SegResult",
    "Segmenter",
    "check_image",
    "empty_result",
    "resolve_device",
    "split_prompt",
]
