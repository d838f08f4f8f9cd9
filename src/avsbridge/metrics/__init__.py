"""Benchmark metrics, written from the official formulas (pure numpy, no I/O).

``avsbench``: AVSBench-object S4/MS3 mIoU and F (official batched or pooled F);
``avss``: AVSBench-semantic per-class mIoU and F; ``zeroshot``: BAaV/SSLalign cIoU,
AUC, mIoU, F and J/F at a fixed threshold. File handling and the ``avsbridge
evaluate`` command live in :mod:`avsbridge.metrics.evaluate`.
"""

from __future__ import annotations

from avsbridge.metrics.avsbench import (
    AVSBenchScores,
    frame_miou,
    fscore_official,
    fscore_pooled,
    miou,
    score_avsbench,
)
from avsbridge.metrics.avss import score_avss
from avsbridge.metrics.zeroshot import score_zeroshot

__all__ = [
    "AVSBenchScores",
    "frame_miou",
    "fscore_official",
    "fscore_pooled",
    "miou",
    "score_avsbench",
    "score_avss",
    "score_zeroshot",
]
