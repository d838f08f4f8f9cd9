"""OpenAVS-ST: pseudo-label self-training of supervised AVS students (OpenAVS §3.6).

The stage family is four jobs (:mod:`avsbridge.train.jobs`): pseudo labels (the
segment stage on train splits), audio features (frozen, cached per shard),
train (one checkpoint folder per student x teacher x dataset x seed) and predict
(masks in the segment stage's shard layout, so evaluate/audit/reports read them
unchanged). Students register in :data:`STUDENTS`, one module each under
``avsbridge.train.students``; the same registry is meant for the SSP and TeSO
students (extra per-frame inputs arrive through :class:`~avsbridge.train.base.Batch`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from avsbridge.registry import Registry

if TYPE_CHECKING:
    from avsbridge.train.base import Student

STUDENTS: Registry[Student] = Registry("train", package="avsbridge.train.students")

__all__ = ["STUDENTS"]
