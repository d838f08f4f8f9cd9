"""Zero-shot datasets of a profile as :class:`ZeroShotSample` lists, and their shards.

Kinds (``datasets.<name>.kind``): the published lists ``is3`` / ``s4-zeroshot`` /
``vpo-ss`` (:func:`avsbridge.data.zeroshot.load_zeroshot`, ``root`` + ``list``);
``demo-zeroshot``, the committed IS3-like demo list (:mod:`avsbridge.data.demo_zeroshot`);
``s4-frames``, an AVSBench-S4 layout (``root`` + ``split``) whose annotated frames are
scored one by one with their clip's whole audio (``samples_from_clips``: the demo S4
clips). Input functions of the DAG call these, so they read lists, never media.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from avsbridge.data.zeroshot import ZEROSHOT_KINDS, ZeroShotSample

LIST_KINDS: tuple[str, ...] = (*ZEROSHOT_KINDS, "demo-zeroshot")
CLIP_KINDS: tuple[str, ...] = ("s4-frames",)
KINDS: tuple[str, ...] = (*LIST_KINDS, *CLIP_KINDS)
SHARD_PREFIX = "s"


def is_zeroshot(config: dict[str, Any], dataset: str) -> bool:
    return config["datasets"][dataset]["kind"] in KINDS


@functools.cache
def _load(kind: str, root: str, list_or_split: str) -> tuple[ZeroShotSample, ...]:
    if kind == "demo-zeroshot":
        from avsbridge.data.demo_zeroshot import load_demo_zeroshot

        return tuple(load_demo_zeroshot(Path(list_or_split), Path(root)))
    if kind in ZEROSHOT_KINDS:
        from avsbridge.data.zeroshot import load_zeroshot

        return tuple(load_zeroshot(kind, Path(root), Path(list_or_split)))
    if kind == "s4-frames":
        from avsbridge.data.avsbench import load_benchmark
        from avsbridge.data.zeroshot import samples_from_clips

        clips = load_benchmark("s4", Path(root), split=list_or_split)
        return tuple(samples_from_clips(clips, "s4-frames"))
    raise ValueError(f"unknown zero-shot dataset kind {kind!r} (known: {', '.join(KINDS)})")


def dataset_samples(config: dict[str, Any], dataset: str) -> list[ZeroShotSample]:
    """Samples of a configured zero-shot dataset, in list order (``limit`` honoured)."""
    spec = config["datasets"][dataset]
    kind = spec["kind"]
    if kind not in KINDS:
        raise ValueError(f"datasets.{dataset}: kind {kind!r} is not a zero-shot dataset")
    key = spec.get("split") if kind in CLIP_KINDS else spec.get("list")
    if not key:
        field = "split" if kind in CLIP_KINDS else "list"
        raise ValueError(f"datasets.{dataset}: a {kind} dataset needs {field}")
    samples = list(_load(kind, str(spec["root"]), str(key)))
    if spec.get("limit"):
        samples = samples[: spec["limit"]]
    return samples


def list_file(config: dict[str, Any], dataset: str) -> str:
    """The file a zero-shot dataset's samples come from (the DAG's dependency on it)."""
    spec = config["datasets"][dataset]
    if spec["kind"] in CLIP_KINDS:
        return str(Path(spec["root"]) / "Single-source" / "s4_meta_data.csv")
    return str(spec["list"])


def shard_names(config: dict[str, Any], dataset: str) -> list[str]:
    size = int(config["datasets"][dataset].get("shard_size", 32))
    n = len(dataset_samples(config, dataset))
    return [f"{SHARD_PREFIX}{i:04d}" for i in range((n + size - 1) // size)]


def shard_samples(config: dict[str, Any], dataset: str, shard: str) -> list[ZeroShotSample]:
    size = int(config["datasets"][dataset].get("shard_size", 32))
    index = int(shard.removeprefix(SHARD_PREFIX))
    return dataset_samples(config, dataset)[index * size : (index + 1) * size]
