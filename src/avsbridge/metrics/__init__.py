"""Benchmark metrics, written from the official formulas (pure numpy, no I/O).

``avsbench``: AVSBench-object S4/MS3 mIoU and F (official batched or pooled F);
``avss``: AVSBench-semantic per-class mIoU and F (both official class averages);
``baav``: protocol ``zeroshot-baav``, BAaV's ``eval.py`` (the BAaV tables);
``zeroshot``: protocol ``zeroshot-sslalign``, the SSLalign-code variant. The
protocol registry, file handling and the ``avsbridge evaluate`` command live in
:mod:`avsbridge.metrics.evaluate`.
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
from avsbridge.metrics.baav import score_baav
from avsbridge.metrics.zeroshot import score_zeroshot

__all__ = [
    "AVSBenchScores",
    "frame_miou",
    "fscore_official",
    "fscore_pooled",
    "miou",
    "score_avsbench",
    "score_avss",
    "score_baav",
    "score_zeroshot",
]
