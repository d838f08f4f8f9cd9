"""The call cache under concurrent writers (``--cores 8``) and under kill -9.

Writers race on shared keys with answers that differ per process (a
non-deterministic API): the first writer must win and every process must use
the answer the cache keeps. A reader polls the stats while they write. A
translation job killed at a random point and re-run must write the same bytes
as an uninterrupted run.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_translate_openai import CLIPS_CAPTION, CLIPS_METADATA, FakeChatServer, tree_bytes

from avsbridge.io import atomic_write_json, read_json
from avsbridge.translate.backends import Completion
from avsbridge.translate.cache import CallCache, cache_stats, load_entries, usage_stats

N_WORKERS = 8
N_KEYS = 25


class NoisyBackend:
    """Answers that differ per process and per call, as a sampling API's may."""

    passthrough = False

    def __init__(self, worker: int) -> None:
        self.worker = worker
        self.rng = random.Random()

    def identity(self) -> dict[str, Any]:
        return {"backend": "noisy", "model": "n-1"}

    def complete(self, system: str, user: str) -> Completion:
        time.sleep(self.rng.random() * 0.002)  # widen the race window
        # long body: a torn write would be invalid JSON
        text = f"<answer>{user}</answer> worker={self.worker} r={self.rng.random()}" + " pad" * 3000
        return Completion(text, 7, 3, 0.001)


def _writer(cache_dir: str, worker: int, barrier: Any, out: str) -> None:
    cache = CallCache(Path(cache_dir))
    backend = NoisyBackend(worker)
    barrier.wait()
    used: dict[str, str] = {}
    for i in range(N_KEYS):
        for user in (f"shared-{i}", f"own-{worker}-{i}"):
            answer = cache.complete(backend, "sys", user, clip=f"c{i}")
            used[answer.key] = answer.completion.text
    atomic_write_json(out, used)


def test_eight_writers_share_one_cache_without_corruption(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(N_WORKERS)
    outs = [tmp_path / f"used-{w}.json" for w in range(N_WORKERS)]
    workers = [
        ctx.Process(target=_writer, args=(str(cache_dir), w, barrier, str(outs[w])))
        for w in range(N_WORKERS)
    ]
    for proc in workers:
        proc.start()
    polls, seen = 0, 0
    while any(proc.is_alive() for proc in workers):  # a reader never trips on a writer
        stats = cache_stats(cache_dir)
        assert stats["calls"] >= seen
        seen, polls = stats["calls"], polls + 1
    for proc in workers:
        proc.join(60)
        assert proc.exitcode == 0
    assert polls > 0

    files = [p for p in cache_dir.rglob("*") if p.is_file()]
    assert len(files) == N_KEYS * (1 + N_WORKERS), "one entry per key and no temp leftovers"
    entries = load_entries(cache_dir)
    for key, entry in entries.items():
        user = entry["request"]["user"]
        assert entry["response"]["text"].startswith(f"<answer>{user}</answer>")
        assert json.loads(CallCache(cache_dir).entry_path(key).read_text()) == entry
    # first writer wins: every process used exactly the answer the cache keeps
    for out in outs:
        used = read_json(out)
        assert len(used) == 2 * N_KEYS
        for key, text in used.items():
            assert entries[key]["response"]["text"] == text
    stats = cache_stats(cache_dir)
    assert stats["calls"] == N_KEYS * (1 + N_WORKERS) and stats["temp_files"] == 0
    assert stats["by_backend"]["noisy/n-1"]["prompt_tokens"] == 7 * stats["calls"]
    # usage as a report would derive it: 8 x 50 requests, distinct keys called once
    record_dir = tmp_path / "text"
    for w, out in enumerate(outs):
        keys = list(read_json(out))
        atomic_write_json(
            record_dir / f"w{w}.json",
            {"prompts": [], "llm_requests": len(keys), "cache_keys": keys, "failed_keys": []},
        )
    usage = usage_stats(entries, [record_dir])
    assert usage["requests"] == 2 * N_KEYS * N_WORKERS
    assert usage["calls"] == N_KEYS * (1 + N_WORKERS)
    assert usage["hits"] == usage["requests"] - usage["calls"]


def test_leftover_temp_file_of_a_killed_writer_is_never_read(tmp_path: Path) -> None:
    cache = CallCache(tmp_path)
    backend = NoisyBackend(0)
    first = cache.complete(backend, "s", "u", clip="a")
    path = cache.entry_path(first.key)
    (path.parent / f".{path.name}.x1y2.tmp").write_text('{"key": "torn')  # kill -9 mid-write
    (path.parent / f".{'e' * 64}.json.z9.tmp").write_text("{")
    assert cache.complete(backend, "s", "u", clip="a").hit
    stats = cache_stats(tmp_path)
    assert stats["calls"] == 1 and stats["temp_files"] == 2


# ------------------------------------------------------------------ kill -9

_JOB = """
import json, sys
from pathlib import Path
from avsbridge.translate.run import translate_shard
args = json.loads(sys.argv[1])
translate_shard(
    alm_dirs={k: Path(v) for k, v in args["alm_dirs"].items()},
    clip_ids=args["clips"],
    backend="openai",
    backend_options={"base_url": args["base_url"], "backoff_base_s": 0.01},
    strategy="pc",
    cache_dir=Path(args["cache"]),
    out_dir=Path(args["out"]),
)
"""


def _alm_dirs(root: Path, n_clips: int) -> tuple[dict[str, str], list[str]]:
    """n clips (variants of the two test clips), caption + metadata ALM records."""
    slugs = [f"s4__clip{i}" for i in range(n_clips)]
    dirs: dict[str, str] = {}
    for key, source in (("caption", CLIPS_CAPTION), ("metadata", CLIPS_METADATA)):
        texts = list(source.values())
        for i, slug in enumerate(slugs):
            atomic_write_json(
                root / "alm" / key / f"{slug}.json",
                {"clip": f"s4/clip{i}", "texts": [f"{t} {i}" for t in texts[i % 2]]},
            )
        dirs[key] = str(root / "alm" / key)
    return dirs, slugs


def _job(args: dict[str, Any]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OPENAI_API_KEY": ""}
    return subprocess.Popen(
        [sys.executable, "-c", _JOB, json.dumps(args)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.fixture()
def slow_server() -> Any:
    fake = FakeChatServer()
    fake.rule = lambda user: ("sleep", 0.02)
    fake.thread.start()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


def test_kill_9_then_rerun_is_byte_identical(tmp_path: Path, slow_server: FakeChatServer) -> None:
    alm_dirs, slugs = _alm_dirs(tmp_path, 6)  # 6 clips x 5 frames = 30 requests, ~0.7 s
    common = {"alm_dirs": alm_dirs, "clips": slugs, "base_url": slow_server.base_url}
    reference = {**common, "cache": str(tmp_path / "cache-ref"), "out": str(tmp_path / "ref")}
    job = _job(reference)
    assert job.wait(120) == 0, job.stderr.read().decode()[-2000:] if job.stderr else ""

    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    killed = {**common, "cache": str(tmp_path / "cache"), "out": str(tmp_path / "out")}
    kills = 0
    for _ in range(2):
        before = slow_server.calls
        job = _job(killed)
        deadline = time.monotonic() + 60
        while slow_server.calls == before and time.monotonic() < deadline:
            time.sleep(0.005)  # wait for the job to reach the LLM stage
        time.sleep(rng.uniform(0.0, 0.5))
        if job.poll() is None:
            job.send_signal(signal.SIGKILL)
            kills += 1
        job.wait(60)
        out = tmp_path / "out"
        # a killed job leaves no output folder, or a complete one from an earlier try
        assert not out.exists() or (out / "_summary.json").is_file(), f"seed {seed}"
        load_entries(tmp_path / "cache")  # every entry left behind parses
    assert kills >= 1, f"the job finished before any kill (seed {seed})"
    job = _job(killed)
    assert job.wait(120) == 0, job.stderr.read().decode()[-2000:] if job.stderr else ""
    assert tree_bytes(tmp_path / "out") == tree_bytes(tmp_path / "ref"), f"seed {seed}"
    leftovers = [p for p in (tmp_path).iterdir() if p.name.startswith(".out.")]
    assert all(not p.is_dir() or p.name.endswith(".tmp") for p in leftovers)
