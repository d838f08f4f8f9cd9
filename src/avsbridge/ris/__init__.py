"""Stage ``ris``: referring image segmentation, query + image -> probability mask.

Backends register in :data:`RIS_MODELS`; each RIS model's own foreground threshold
(BAaV: "the thresholds selected for the original RIS models") is data in
``resources/ris_thresholds.yaml``, read by :func:`threshold_of`.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml

from avsbridge.registry import Registry

RIS_MODELS: Registry = Registry("ris", "avsbridge.ris")
THRESHOLDS_FILE = "ris_thresholds.yaml"


@functools.cache
def thresholds() -> dict[str, dict[str, Any]]:
    text = resources.files("avsbridge.resources").joinpath(THRESHOLDS_FILE).read_text("utf-8")
    data = yaml.safe_load(text) or {}
    for name, entry in data.items():
        if not isinstance(entry, dict) or not 0.0 <= float(entry.get("threshold", -1)) <= 1.0:
            raise ValueError(
                f"resources/{THRESHOLDS_FILE}: {name}: needs threshold in [0, 1] and a source"
            )
    return data


def threshold_of(backend: str) -> float:
    """The fixed foreground threshold (J, F columns) of a RIS backend."""
    try:
        return float(thresholds()[backend]["threshold"])
    except KeyError:
        raise KeyError(
            f"resources/{THRESHOLDS_FILE} has no threshold for RIS backend {backend!r}"
        ) from None
