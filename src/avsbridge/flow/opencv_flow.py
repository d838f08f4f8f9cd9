"""Classical dense flow from OpenCV: DIS (default) or Farneback -- the demo backend.

No weights and no GPU, so the whole flow family builds offline on a laptop CPU.
DIS ("medium" preset, variational refinement on) is the default because it is
both faster and more accurate than Farneback on moving objects; Farneback stays
selectable for comparison. Both run on the grey frames (OpenCV's own convention).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from avsbridge.flow import FLOW_BACKENDS
from avsbridge.flow.base import FramePair, check_pair

DIS_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}
# Farneback settings of OpenCV's own dense-flow sample (samples/python/opt_flow.py).
FARNEBACK_DEFAULTS: dict[str, Any] = {
    "pyr_scale": 0.5,
    "levels": 3,
    "winsize": 15,
    "iterations": 3,
    "poly_n": 5,
    "poly_sigma": 1.2,
}


@FLOW_BACKENDS.register("opencv", mem_mb=1000)
class OpenCVFlow:
    """cv2.DISOpticalFlow or cv2.calcOpticalFlowFarneback over each pair (CPU)."""

    name = "opencv"
    needs_gpu = False

    def __init__(
        self,
        method: str = "dis",
        preset: str = "medium",
        farneback: dict[str, Any] | None = None,
        threads: int | None = None,
    ) -> None:
        import cv2

        self._cv2 = cv2
        self.method = str(method).lower()
        if self.method not in {"dis", "farneback"}:
            raise ValueError(f"opencv flow method must be 'dis' or 'farneback', got {method!r}")
        if preset not in DIS_PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r} (known: {', '.join(DIS_PRESETS)})")
        self.preset = preset
        self.farneback = {**FARNEBACK_DEFAULTS, **(farneback or {})}
        if threads is not None:
            cv2.setNumThreads(int(threads))
        self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset]) if self.method == "dis" else None

    def identity(self) -> dict[str, Any]:
        settings: dict[str, Any] = (
            {"preset": self.preset} if self.method == "dis" else dict(self.farneback)
        )
        return {
            "backend": self.name,
            "method": self.method,
            "model": f"opencv-{self.method}",
            "opencv": self._cv2.__version__,
            "settings": settings,
        }

    def flow(self, pairs: Sequence[FramePair]) -> list[np.ndarray]:
        cv2 = self._cv2
        out: list[np.ndarray] = []
        for pair in pairs:
            check_pair(pair)
            first = cv2.cvtColor(np.ascontiguousarray(pair[0]), cv2.COLOR_RGB2GRAY)
            second = cv2.cvtColor(np.ascontiguousarray(pair[1]), cv2.COLOR_RGB2GRAY)
            if self._dis is not None:
                field = self._dis.calc(first, second, None)
            else:
                f = self.farneback
                field = cv2.calcOpticalFlowFarneback(
                    first,
                    second,
                    None,
                    f["pyr_scale"],
                    f["levels"],
                    f["winsize"],
                    f["iterations"],
                    f["poly_n"],
                    f["poly_sigma"],
                    0,
                )
            out.append(np.asarray(field, dtype=np.float32))
        return out
