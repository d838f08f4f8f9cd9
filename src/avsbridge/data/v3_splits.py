"""How the AVSBench V3 zero-/few-shot split files are derived from ``metadata.csv``.

V3 (the GAVS re-split of AVSBench-semantic v1m + v2 into seen and unseen classes)
ships ten CSV files with the ``metadata.csv`` columns. Read off the official files
(``tests/test_v3_splits.py`` asserts every point on them):

- ``meta_v3_seen`` / ``meta_v3_unseen``: the v1m/v2 rows of ``metadata.csv`` whose
  classes are all seen / all unseen, verbatim and in ``metadata.csv`` order, with
  ``split`` set to ``seen`` / ``unseen``. Clips mixing seen and unseen classes are in
  neither list.
- ``meta_v3_seen_train`` / ``meta_v3_seen_val``: a shuffled partition of the seen
  rows, ``floor(0.9 n)`` for training (4807 of 5342), ``split`` ``seen_train`` /
  ``seen_val``.
- ``v3_{k}_shot/train``: for every k-shot class, the first ``k`` rows of
  ``meta_v3_unseen`` whose ``a_obj`` is exactly that class, in ``meta_v3_unseen``
  order (so the 1-shot clips are among the 3-shot ones, and those among the 5-shot).
- ``v3_{k}_shot/test``: the ``meta_v3_unseen`` rows whose classes are all k-shot
  classes, in order, without that k's training rows. The k-shot classes are not
  all unseen classes: the official lists keep 11 of the 14 and drop harp, bell and
  squirrel entirely, so a k-shot test list is *not* the 0-shot list.
- every k-shot row: ``vid`` = ``uid`` without its last two ``_`` fields, empty
  ``s_min``, ``s_sec`` and ``a_obj``, ``split`` ``v3_1_shot_train`` (in all six
  files), ``label`` kept.

The functions below apply exactly these rules (the demo benchmark's V3 lists are made
with them) and :func:`kshot_relations` measures them on any set of split files.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avsbridge.data.avsbench import read_metadata_csv
from avsbridge.io import ArtifactError

AVSS_COLUMNS: tuple[str, ...] = ("vid", "uid", "s_min", "s_sec", "a_obj", "split", "label")
SHOTS: tuple[int, ...] = (1, 3, 5)
SEEN_TRAIN_FRACTION = 0.9
KSHOT_SPLIT_VALUE = "v3_1_shot_train"  # what the official files say in every k-shot row
V3_LABELS: tuple[str, ...] = ("v1m", "v2")  # v1s (AVSBench-object S4) is not part of V3

Row = dict[str, str]


def row_classes(row: Mapping[str, str]) -> tuple[str, ...]:
    """The classes of a row's ``a_obj`` (joined with '_'; '-' stays inside a name)."""
    return tuple(dict.fromkeys(t for t in row["a_obj"].split("_") if t))


def read_rows(path: Path) -> list[Row]:
    """A metadata-style CSV as plain dicts, checked for the AVSS columns."""
    header, rows = read_metadata_csv(Path(path))
    if tuple(header) != AVSS_COLUMNS:
        raise ArtifactError(path, f"header {header} is not {','.join(AVSS_COLUMNS)}")
    return [dict(r.values) for r in rows]


def csv_text(rows: Iterable[Mapping[str, str]]) -> str:
    """Rows in the official V3 file format: AVSS header, LF line ends, no quoting needed."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(AVSS_COLUMNS)
    writer.writerows([[r[c] for c in AVSS_COLUMNS] for r in rows])
    return buf.getvalue()


# --------------------------------------------------------------------------- the rules


def _with_split(row: Mapping[str, str], split: str) -> Row:
    return {**row, "split": split}


def zero_shot_lists(
    metadata: Sequence[Mapping[str, str]], unseen_classes: Iterable[str]
) -> tuple[list[Row], list[Row]]:
    """(``meta_v3_seen``, ``meta_v3_unseen``) rows from ``metadata.csv`` rows."""
    unseen = set(unseen_classes)
    seen_rows: list[Row] = []
    unseen_rows: list[Row] = []
    for row in metadata:
        if row["label"] not in V3_LABELS:
            continue
        classes = set(row_classes(row))
        if classes and classes <= unseen:
            unseen_rows.append(_with_split(row, "unseen"))
        elif classes and not classes & unseen:
            seen_rows.append(_with_split(row, "seen"))
    return seen_rows, unseen_rows


def split_seen(
    seen: Sequence[Mapping[str, str]], rng: np.random.Generator
) -> tuple[list[Row], list[Row]]:
    """(``meta_v3_seen_train``, ``meta_v3_seen_val``): shuffled, floor(0.9 n) for training."""
    order = [int(i) for i in rng.permutation(len(seen))]
    n_train = math.floor(SEEN_TRAIN_FRACTION * len(seen))
    train = [_with_split(seen[i], "seen_train") for i in order[:n_train]]
    val = [_with_split(seen[i], "seen_val") for i in order[n_train:]]
    return train, val


def kshot_row(row: Mapping[str, str]) -> Row:
    """A row as the k-shot files write it (vid from the uid, times and a_obj blank)."""
    return {
        "vid": row["uid"].rsplit("_", 2)[0],
        "uid": row["uid"],
        "s_min": "",
        "s_sec": "",
        "a_obj": "",
        "split": KSHOT_SPLIT_VALUE,
        "label": row["label"],
    }


def kshot_lists(
    unseen: Sequence[Mapping[str, str]], kshot_classes: Iterable[str], k: int
) -> tuple[list[Row], list[Row]]:
    """(``v3_{k}_shot/train``, ``v3_{k}_shot/test``) from the ``meta_v3_unseen`` rows."""
    keep = set(kshot_classes)
    taken: dict[str, int] = {c: 0 for c in keep}
    train_uids: set[str] = set()
    for row in unseen:
        cls = row["a_obj"]
        if cls in keep and taken[cls] < k:
            taken[cls] += 1
            train_uids.add(row["uid"])
    short = sorted(c for c, n in taken.items() if n < k)
    if short:
        raise ValueError(f"{k}-shot: classes with fewer than {k} single-class clips: {short}")
    pool = [r for r in unseen if row_classes(r) and set(row_classes(r)) <= keep]
    train = [kshot_row(r) for r in pool if r["uid"] in train_uids]
    test = [kshot_row(r) for r in pool if r["uid"] not in train_uids]
    return train, test


def v3_lists(
    metadata: Sequence[Mapping[str, str]],
    unseen_classes: Iterable[str],
    kshot_classes: Iterable[str],
    rng: np.random.Generator,
    shots: Sequence[int] = SHOTS,
) -> dict[str, list[Row]]:
    """Every V3 split file (name -> rows) for a ``metadata.csv``, by the official rules."""
    unseen_classes = set(unseen_classes)
    kshot_classes = set(kshot_classes)
    if not kshot_classes <= unseen_classes:
        raise ValueError(f"k-shot classes {sorted(kshot_classes - unseen_classes)} are not unseen")
    seen, unseen = zero_shot_lists(metadata, unseen_classes)
    seen_train, seen_val = split_seen(seen, rng)
    lists: dict[str, list[Row]] = {
        "meta_v3_seen": seen,
        "meta_v3_seen_train": seen_train,
        "meta_v3_seen_val": seen_val,
        "meta_v3_unseen": unseen,
    }
    for k in shots:
        train, test = kshot_lists(unseen, kshot_classes, k)
        lists[f"v3_{k}_shot/train"] = train
        lists[f"v3_{k}_shot/test"] = test
    return lists


# --------------------------------------------------------------------------- measuring


def kshot_relations(split_dir: Path, shots: Sequence[int] = SHOTS) -> dict[str, Any]:
    """How the k-shot lists in ``split_dir`` relate to its ``meta_v3_unseen.csv``.

    Returns the unseen and k-shot classes, the dropped ones, and per k the counts,
    the clips per class in train, and whether train and test are exactly what
    :func:`kshot_lists` derives (the official rule) -- measured, not assumed.
    """
    split_dir = Path(split_dir)
    unseen = read_rows(split_dir / "meta_v3_unseen.csv")
    by_uid = {r["uid"]: r for r in unseen}
    unseen_classes = {c for r in unseen for c in row_classes(r)}
    per_k: dict[int, dict[str, Any]] = {}
    kshot_classes: set[str] = set()
    for k in shots:
        folder = split_dir / f"v3_{k}_shot"
        train = read_rows(folder / "train.csv")
        test = read_rows(folder / "test.csv")
        missing = [r["uid"] for r in train + test if r["uid"] not in by_uid]
        if missing:
            raise ArtifactError(folder, f"{len(missing)} k-shot clips are not in meta_v3_unseen")
        train_classes = [by_uid[r["uid"]]["a_obj"] for r in train]
        classes = set(train_classes)
        kshot_classes |= classes
        rule_train, rule_test = kshot_lists(unseen, classes, k)
        test_uids = [r["uid"] for r in test]
        train_uids = {r["uid"] for r in train}
        zero_shot_uids = [r["uid"] for r in unseen]
        per_k[k] = {
            "n_train": len(train),
            "n_test": len(test),
            "classes": sorted(classes),
            "dropped": sorted(unseen_classes - classes),
            "train_per_class": {c: train_classes.count(c) for c in sorted(classes)},
            "train_in_test": len(train_uids & set(test_uids)),
            "zero_shot_not_in_test": len(set(zero_shot_uids) - set(test_uids)),
            "dropped_clips": sum(
                1 for r in unseen if set(row_classes(r)) & (unseen_classes - classes)
            ),
            "train_is_rule": train == rule_train,
            "test_is_rule": test == rule_test,
            "test_in_zero_shot_order": [u for u in zero_shot_uids if u in set(test_uids)]
            == test_uids,
        }
    return {
        "n_unseen": len(unseen),
        "unseen_classes": sorted(unseen_classes),
        "kshot_classes": sorted(kshot_classes),
        "dropped": sorted(unseen_classes - kshot_classes),
        "shots": per_k,
    }
