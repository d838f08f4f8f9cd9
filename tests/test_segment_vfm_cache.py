"""VFM caches (detections before thresholds, image embeddings): store rules and the runner.

The store: content keys, first writer wins under 8 concurrent processes, a corrupt
entry (payload hash) is never used and is replaced, the embedding budget evicts.
The runner: the same mask bytes with and without the caches (demo matcher, real;
the tiny random-weight paper backends), and a re-run with another box threshold or
another strategy with the same prompts runs no detector and no encoder.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_segment_demo import background, compose, make_vocabulary, to_uint8

from avsbridge.data.records import Clip
from avsbridge.io import read_json, write_png
from avsbridge.segment.run import segment_shard
from avsbridge.segment.vfm_cache import (
    DETECTIONS,
    EMBEDDINGS,
    EntryStore,
    VfmCaches,
    VfmCacheSettings,
    decode_detection_entry,
    decode_embedding_entry,
    encode_detection_entry,
    encode_embedding_entry,
    folder_stats,
    frame_sha256,
)

# --- the store ---------------------------------------------------------------------------


def _det_store(root: Path) -> EntryStore:
    return EntryStore(root, DETECTIONS, ".json", decode_detection_entry)


def _emb_store(root: Path, lru: bool = False) -> EntryStore:
    return EntryStore(root, EMBEDDINGS, ".emb", decode_embedding_entry, touch_on_hit=lru)


def test_frame_hash_is_of_pixels() -> None:
    a = np.zeros((4, 5, 3), np.uint8)
    b = a.copy()
    assert frame_sha256(a) == frame_sha256(b)
    b[0, 0, 0] = 1
    assert frame_sha256(a) != frame_sha256(b)
    assert frame_sha256(a) != frame_sha256(np.zeros((5, 4, 3), np.uint8))  # shape counts


def test_detection_entry_roundtrip_and_first_writer_wins(tmp_path: Path) -> None:
    store = _det_store(tmp_path)
    key = "ab" + "0" * 62
    assert store.lookup(key) == (False, None)
    first = store.store(key, encode_detection_entry(key, {"q": 1}, [{"score": 0.1 + 0.2}]))
    assert first == [{"score": 0.1 + 0.2}]  # floats round-trip exactly
    # a second writer with another value adopts the stored one
    second = store.store(key, encode_detection_entry(key, {"q": 1}, [{"score": 0.5}]))
    assert second == first
    assert store.lookup(key) == (True, first)
    assert store.counts.hits == 1 and store.counts.misses == 1 and store.counts.stored == 1


@pytest.mark.parametrize("damage", ["truncate", "payload", "garbage"])
def test_corrupt_detection_entry_is_never_used(tmp_path: Path, damage: str) -> None:
    store = _det_store(tmp_path)
    key = "cd" + "1" * 62
    store.store(key, encode_detection_entry(key, {}, [{"score": 0.9}]))
    path = store.entry_path(key)
    text = path.read_text()
    if damage == "truncate":
        path.write_text(text[: len(text) // 2])
    elif damage == "payload":  # valid JSON, but not the payload its hash names
        path.write_text(text.replace("0.9", "0.8"))
    else:
        path.write_bytes(b"\x00\xff" * 10)
    hit, value = store.lookup(key)
    assert not hit and value is not None  # a corrupt entry reads as a miss
    assert store.counts.corrupt == 1
    # recomputed value replaces the corrupt file, and is what the cache holds now
    assert store.store(key, encode_detection_entry(key, {}, [{"score": 0.9}])) == [{"score": 0.9}]
    assert store.lookup(key) == (True, [{"score": 0.9}])


def _arrays(seed: int) -> dict[str, tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {
        "image_embed": ("float16", rng.standard_normal((1, 8, 4, 4)).astype(np.float16)),
        "high_res_0": ("bfloat16", rng.integers(0, 2**16, (1, 2, 8, 8), dtype=np.uint16)),
    }


def test_embedding_entry_roundtrip_and_corruption(tmp_path: Path) -> None:
    store = _emb_store(tmp_path)
    key = "ef" + "2" * 62
    arrays = _arrays(0)
    stored = store.store(key, encode_embedding_entry(key, {"encoder": {}}, arrays))
    for name, (label, array) in arrays.items():
        assert stored[name][0] == label
        assert stored[name][1].dtype == array.dtype and np.array_equal(stored[name][1], array)
    path = store.entry_path(key)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40  # one flipped bit in the payload
    path.write_bytes(bytes(data))
    assert store.lookup(key)[0] is False and store.counts.corrupt == 1
    store.store(key, encode_embedding_entry(key, {"encoder": {}}, arrays))
    assert store.lookup(key)[0] is True


def test_embedding_budget_fifo_and_lru(tmp_path: Path) -> None:
    for lru in (False, True):
        root = tmp_path / ("lru" if lru else "fifo")
        store = _emb_store(root, lru=lru)
        keys = [f"{i:02d}" + "3" * 62 for i in range(4)]
        for n, key in enumerate(keys):
            store.store(key, encode_embedding_entry(key, {}, _arrays(n)))
            os.utime(store.entry_path(key), ns=(10**18 + n * 10**9,) * 2)
        size = store.entry_path(keys[0]).stat().st_size
        if lru:
            time.sleep(0.01)
            assert store.lookup(keys[0])[0]  # a hit makes the oldest the newest
        assert store.prune(budget_bytes=2 * size) == 2
        left = {p.name.split(".")[0] for p, _ in store.entries()}
        assert left == ({keys[0], keys[3]} if lru else {keys[2], keys[3]})
        assert store.counts.evicted == 2


def _writer(root: str, keys: list[str], worker: int, queue: Any) -> None:
    """One of 8 processes: stores its own value for every key, reports what it got back."""
    store = _det_store(Path(root))
    got = {}
    for key in keys:
        hit, value = store.lookup(key)
        if not hit:
            value = store.store(key, encode_detection_entry(key, {}, {"worker": worker}))
        got[key] = value["worker"]
    queue.put(got)


def test_eight_processes_share_one_entry_per_key(tmp_path: Path) -> None:
    keys = [f"{i:02x}" + "4" * 62 for i in range(40)]
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), keys, w, queue)) for w in range(8)]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    store = _det_store(tmp_path)
    for key in keys:
        hit, value = store.lookup(key)
        assert hit  # every entry verifies
        # every process used the value the cache keeps (the first writer's)
        assert {r[key] for r in results} == {value["worker"]}
    assert not list(tmp_path.glob("**/.*.tmp"))  # no temp file left behind


def test_settings_reject_bad_values(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="eviction"):
        VfmCacheSettings(root=tmp_path, eviction="random")
    with pytest.raises(ValueError, match="embedding_dtype"):
        VfmCacheSettings(root=tmp_path, embedding_dtype="int8")
    with pytest.raises(ValueError, match="budget"):
        VfmCacheSettings(root=tmp_path, embedding_budget_gb=-1)
    settings = VfmCacheSettings.from_config(
        {"results_dir": "results/x", "vfm_cache": {"eviction": "lru"}}
    )
    assert settings.root == Path("results/x/vfm_cache") and settings.eviction == "lru"
    assert not VfmCaches(VfmCacheSettings(root=tmp_path, embedding_budget_gb=0)).embeddings_on


# --- the runner on the demo matcher (real) -----------------------------------------------


def _demo_clip(tmp_path: Path) -> tuple[Clip, Path]:
    frames = []
    for k in range(4):
        img = background(40 + k)
        img, _ = compose(img, "dog", 10 + 15 * k, 20, 96)
        img, _ = compose(img, "car", 90, 140 - 10 * k, 110)
        path = tmp_path / "frames" / f"clip_v_{k + 1}.png"
        write_png(path, to_uint8(img))
        frames.append(path)
    clip = Clip(
        id="cat/clip_v",
        subset="demo-s4",
        split="test",
        category="dog_barking",
        frames=tuple(frames),
        audio=None,
        masks=(None,) * 4,
    )
    return clip, make_vocabulary(tmp_path / "vocabulary")


def _prompts(folder: Path, clip: Clip, prompts: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{clip.slug}.json").write_text(
        json.dumps({"clip": clip.id, "prompts": prompts}), encoding="utf-8"
    )
    return folder


def _mask_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.png"))}


def _boxes(out: Path) -> dict[str, Any]:
    return {p.name: read_json(p) for p in sorted(out.glob("*.boxes.json"))}


def _sweep_job(args: tuple[str, str, str, str, float]) -> dict[str, Any]:
    """One of 8 concurrent segment jobs (a threshold each) sharing one cache."""
    clip_json, text, vocab, out, thr = args
    clip_doc = json.loads(clip_json)
    clip = Clip(
        **{
            **clip_doc,
            "frames": tuple(map(Path, clip_doc["frames"])),
            "masks": tuple(clip_doc["masks"]),
        }
    )
    cache = VfmCacheSettings(root=Path(out).parent / "vfm_cache")
    segment_shard(
        [clip], Path(text), "demo-matcher", {"vocabulary": vocab}, thr, 0.25, Path(out), cache
    )
    return read_json(Path(out) / "_calls.json")["vfm_calls"]


def test_demo_masks_identical_and_sweep_runs_no_detector(tmp_path: Path) -> None:
    clip, vocab = _demo_clip(tmp_path)
    prompts = _prompts(tmp_path / "text_pcfc", clip, ["dog", "", "dog, car", "the dogs"])
    options = {"vocabulary": str(vocab)}
    cache = VfmCacheSettings(root=tmp_path / "vfm_cache")

    def run(out: str, thr: float, settings: VfmCacheSettings | None, text: Path = prompts) -> dict:
        segment_shard([clip], text, "demo-matcher", options, thr, 0.25, tmp_path / out, settings)
        return read_json(tmp_path / out / "_calls.json")["vfm_calls"]

    plain = run("plain_025", 0.25, None)
    assert plain["detector_calls"] == 4 and plain["cache"] is None  # dog, dog, car, dog
    cold = run("cached_025", 0.25, cache)
    assert cold["detector_calls"] == 4 and cold["cache"]["detections"]["stored"] == 4
    assert cold["encoder_calls"] == 0  # the matcher has no image encoder
    assert _mask_bytes(tmp_path / "plain_025") == _mask_bytes(tmp_path / "cached_025")
    assert _boxes(tmp_path / "plain_025") == _boxes(tmp_path / "cached_025")
    # a new box threshold: a filter over cached candidates, no template matching at all
    for thr in (0.0, 0.15, 0.55, 0.75):
        warm = run(f"cached_{thr}", thr, cache)
        assert warm["detector_calls"] == 0 and warm["cache"]["detections"]["hits"] == 4
        run(f"plain_{thr}", thr, None)
        assert _mask_bytes(tmp_path / f"plain_{thr}") == _mask_bytes(tmp_path / f"cached_{thr}")
        assert _boxes(tmp_path / f"plain_{thr}") == _boxes(tmp_path / f"cached_{thr}")
    # threshold 0 keeps the background peaks the others drop: the filter is not a no-op
    kept = {
        thr: sum(
            len(f["detections"])
            for doc in _boxes(tmp_path / f"cached_{thr}").values()
            for f in doc["frames"].values()
        )
        for thr in (0.0, 0.75)
    }
    assert kept[0.0] > kept[0.75] > 0
    # another strategy whose prompts name the same objects shares the detector calls
    other = _prompts(tmp_path / "text_fc", clip, ["Dog.", "", "car ; dog", "dog"])
    shared = run("fc_025", 0.25, cache, text=other)
    assert shared["detector_calls"] == 0
    stats = folder_stats(tmp_path / "vfm_cache")
    assert stats["detections"]["entries"] == 4 and stats["embeddings"]["entries"] == 0


def test_demo_corrupt_entry_recomputed_same_masks(tmp_path: Path) -> None:
    clip, vocab = _demo_clip(tmp_path)
    prompts = _prompts(tmp_path / "text", clip, ["dog", "car", "dog, car", "dog"])
    cache = VfmCacheSettings(root=tmp_path / "vfm_cache")
    args = ([clip], prompts, "demo-matcher", {"vocabulary": str(vocab)}, 0.25, 0.25)
    segment_shard(*args, tmp_path / "first", cache)
    entries = sorted((tmp_path / "vfm_cache" / DETECTIONS).glob("*/*.json"))
    for entry in entries[:2]:  # a candidate added: valid JSON, but not the hashed payload
        record = json.loads(entry.read_text())
        record["raw"].append(
            {
                "x": 0,
                "y": 0,
                "long_side": 64,
                "sigma": 0.7,
                "flipped": False,
                "score": 1.0,
                "ncc": 1.0,
                "colour": 1.0,
                "margin": 0.3,
            }
        )
        entry.write_text(json.dumps(record))
    segment_shard(*args, tmp_path / "second", cache)
    calls = read_json(tmp_path / "second" / "_calls.json")["vfm_calls"]
    assert calls["cache"]["detections"]["corrupt"] == 2 and calls["detector_calls"] == 2
    assert _mask_bytes(tmp_path / "first") == _mask_bytes(tmp_path / "second")
    assert _boxes(tmp_path / "first") == _boxes(tmp_path / "second")


def test_eight_concurrent_jobs_compute_each_detection_once(tmp_path: Path) -> None:
    clip, vocab = _demo_clip(tmp_path)
    text = _prompts(tmp_path / "text", clip, ["dog", "", "dog, car", "car"])
    doc = {
        "id": clip.id,
        "subset": clip.subset,
        "split": clip.split,
        "category": clip.category,
        "frames": [str(f) for f in clip.frames],
        "audio": None,
        "masks": list(clip.masks),
    }
    thresholds = [0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85]
    jobs = [
        (json.dumps(doc), str(text), str(vocab), str(tmp_path / "runs" / f"{t:.2f}"), t)
        for t in thresholds
    ]
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        calls = pool.map(_sweep_job, jobs)
    # 4 distinct (frame, object) detections for the whole sweep, whoever computed them
    assert sum(c["detector_calls"] for c in calls) == 4
    assert sum(c["cache"]["detections"]["hits"] for c in calls) == 8 * 4 - 4
    assert not list((tmp_path / "runs" / "vfm_cache").glob("**/.*.tmp"))
    for thr in (0.25, 0.75):  # and the masks are those of a run without any cache
        segment_shard(
            [clip],
            text,
            "demo-matcher",
            {"vocabulary": str(vocab)},
            thr,
            0.25,
            tmp_path / f"p{thr}",
        )
        assert _mask_bytes(tmp_path / f"p{thr}") == _mask_bytes(tmp_path / "runs" / f"{thr:.2f}")


def test_config_schema_knows_vfm_cache() -> None:
    from avsbridge.config import ConfigError, load_config

    config = load_config(
        overrides={"vfm_cache": {"eviction": "lru", "embedding_budget_gb": 5, "dir": "/x"}}
    )
    assert VfmCacheSettings.from_config(config).root == Path("/x")
    with pytest.raises(ConfigError, match="evict"):
        load_config(overrides={"vfm_cache": {"evict": "lru"}})


def test_cache_keys_carry_the_code_that_computed_them() -> None:
    from avsbridge.segment.run import code_fingerprint

    assert code_fingerprint("avsbridge.segment.gdino_sam") != code_fingerprint(
        "avsbridge.segment.demo_detector"
    )


def test_batches_span_clips_of_a_shard(tmp_path: Path) -> None:
    clip, vocab = _demo_clip(tmp_path)
    second = Clip(**{**clip.__dict__, "id": "cat/clip_w", "frames": clip.frames[::-1]})
    text = _prompts(tmp_path / "text", clip, ["dog", "car", "dog, car", "dog"])
    _prompts(text, second, ["car", "dog", "", "dog"])
    options = {"vocabulary": str(vocab)}
    segment_shard([clip, second], text, "demo-matcher", options, 0.25, 0.25, tmp_path / "one")
    segment_shard(
        [clip, second],
        text,
        "demo-matcher",
        {**options, "batch_size": 3},
        0.25,
        0.25,
        tmp_path / "three",
    )
    calls = read_json(tmp_path / "three" / "_calls.json")["vfm_calls"]
    assert calls["frames"] == 8 and calls["batch_size"] == 3
    # 8 frames in chunks of 3 across the clip boundary: 3 chunks; 8 (frame, object) queries
    assert calls["detector_calls"] == 8 and calls["detector_batches"] == 4
    assert _mask_bytes(tmp_path / "one") == _mask_bytes(tmp_path / "three")
    assert _boxes(tmp_path / "one") == _boxes(tmp_path / "three")
    assert (
        read_json(tmp_path / "one" / "_summary.json")["clips"]
        == read_json(tmp_path / "three" / "_summary.json")["clips"]
    )
