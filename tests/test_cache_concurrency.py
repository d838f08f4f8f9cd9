"""The call cache under concurrent writers (``--cores 8``) and under kill -9.

Writers race on shared keys with answers that differ per process (a
non-deterministic API): the first writer must win and every process must use
the answer the cache keeps. A reader polls the stats while they write. A
translation job that kills itself (SIGKILL) just before its Nth write step
leaves only complete cache entries; its re-run calls the server for exactly the
missing keys and every record's prompts are those of the entries the cache keeps.
"""

from __future__ import annotations

import itertools
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
from test_translate_openai import (
    CLIPS_CAPTION,
    CLIPS_METADATA,
    FRAME_RE,
    FakeChatServer,
    tree_bytes,
)

from avsbridge.io import atomic_write_json, read_json
from avsbridge.translate.backends import Completion
from avsbridge.translate.cache import (
    CallCache,
    cache_stats,
    load_entries,
    translation_records,
    usage_stats,
)
from avsbridge.translate.run import translate_shard
from avsbridge.translate.strategies import build_requests, parse_answers

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

# The job kills itself with SIGKILL just before its Nth write step under ``root``:
# a ``write()`` on a file (seen by a profile hook, so a write split in two is two
# steps) or an ``os.link`` / ``os.replace`` (seen by an audit hook). Only this test
# job installs the hooks; the product has none. The step sequence of a fresh run
# is deterministic (clips are translated in order), so step N is the same point in
# every run: a count run lists the steps, the killed runs stop at chosen ones.
_JOB = """
import json, os, signal, sys
from pathlib import Path
from avsbridge.translate.run import translate_shard
args = json.loads(sys.argv[1])
root, kill_at, steps = args["root"], args.get("kill_at", 0), []

def target(name):
    if isinstance(name, int):
        try:
            name = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            return None
    name = os.fsdecode(name)
    return name if name.startswith(root) else None

def step(kind, path):
    steps.append(f"{kind} {os.path.relpath(path, root)}")
    if len(steps) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

def audit(event, event_args):
    if event in ("os.link", "os.rename") and (dst := target(event_args[1])):
        step(event, dst)

def profile(frame, event, arg):
    if event == "c_call" and getattr(arg, "__name__", "") == "write":
        name = getattr(getattr(arg, "__self__", None), "name", None)
        if isinstance(name, int | str | bytes) and (path := target(name)):
            step("write", path)

sys.addaudithook(audit)
sys.setprofile(profile)
translate_shard(
    alm_dirs={k: Path(v) for k, v in args["alm_dirs"].items()},
    clip_ids=args["clips"],
    backend="openai",
    backend_options={"base_url": args["base_url"], "backoff_base_s": 0.01},
    strategy="pc",
    cache_dir=Path(args["cache"]),
    out_dir=Path(args["out"]),
)
sys.setprofile(None)
if args.get("steps_file"):
    Path(args["steps_file"]).write_text("\\n".join(steps) + "\\n")
"""

N_CLIPS = 3  # x 5 frames, per-frame (pc) requests: 15 requests, 14 distinct keys


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


def _job_args(root: Path, server: FakeChatServer, **extra: Any) -> dict[str, Any]:
    alm_dirs, slugs = _alm_dirs(root, N_CLIPS)
    return {
        "root": str(root),
        "alm_dirs": alm_dirs,
        "clips": slugs,
        "base_url": server.base_url,
        "cache": str(root / "cache"),
        "out": str(root / "out"),
        **extra,
    }


def _run_job(args: dict[str, Any]) -> tuple[int, str]:
    env = {**os.environ, "OPENAI_API_KEY": ""}
    proc = subprocess.run(
        [sys.executable, "-c", _JOB, json.dumps(args)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=120,
    )
    return proc.returncode, proc.stderr.decode(errors="replace")[-2000:]


@pytest.fixture(scope="module")
def counting_server() -> Any:
    """Every answer differs (a call counter in it), so a re-asked key would show."""
    fake = FakeChatServer()
    counter = itertools.count()

    def reply(user: str) -> str:
        n = next(counter)
        frames = FRAME_RE.findall(user)
        return "\n".join(f"<answer>thing{i} call{n}</answer>" for i in range(len(frames)))

    fake.reply = reply
    fake.thread.start()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


@pytest.fixture(scope="module")
def write_steps(tmp_path_factory: pytest.TempPathFactory, counting_server: FakeChatServer):
    """The write steps of an uninterrupted fresh run, in order."""
    root = tmp_path_factory.mktemp("count")
    steps_file = root / "steps.txt"
    code, err = _run_job(_job_args(root, counting_server, steps_file=str(steps_file)))
    assert code == 0, err
    steps = steps_file.read_text().splitlines()
    assert any(s.startswith("write cache/") for s in steps)  # the kills land in the cache
    assert steps[-1].startswith("os.rename out")  # the shard folder is swapped in last
    return steps


def _cache_files(cache: Path) -> dict[str, bytes]:
    return {str(p.relative_to(cache)): p.read_bytes() for p in sorted(cache.glob("*/*.json"))}


def _prompts_from_cache(record: dict[str, Any], entries: dict[str, dict[str, Any]]) -> list[str]:
    """The prompts a record must hold: its requests answered by the entries it names."""
    requests = build_requests(record["strategy"], list(record["raw_texts"].values()))
    assert len(record["cache_keys"]) == len(requests) and not record["failed_keys"]
    prompts: list[str] = [""] * len(record["prompts"])
    for request, key in zip(requests, record["cache_keys"], strict=True):
        entry = entries[key]
        assert entry["request"]["user"] == request.user
        answers = parse_answers(entry["response"]["text"], len(request.frame_indices))
        assert answers is not None
        for frame, answer in zip(request.frame_indices, answers, strict=True):
            prompts[frame] = answer
    return prompts


# step positions (1-based) in the count run: before the first entry's write, before
# its link, the middle of the cache (a link and a write), before the last record
# write (the summary) and before the final folder swap
KILL_POINTS = {
    "first": lambda n: 1,
    "second": lambda n: 2,
    "middle": lambda n: n // 2,
    "middle+1": lambda n: n // 2 + 1,
    "last-record": lambda n: n - 2,
    "swap": lambda n: n,
}


@pytest.mark.parametrize("where", list(KILL_POINTS))
def test_kill_9_inside_a_write_then_rerun_calls_only_missing_keys(
    where: str, tmp_path: Path, counting_server: FakeChatServer, write_steps: list[str]
) -> None:
    kill_at = KILL_POINTS[where](len(write_steps))
    args = _job_args(tmp_path, counting_server)
    cache, out = Path(args["cache"]), Path(args["out"])
    code, err = _run_job({**args, "kill_at": kill_at})
    assert code == -signal.SIGKILL, f"not killed at step {kill_at}: {err}"
    # killed before its last step: no output folder; every entry left behind is complete
    assert not out.exists()
    kept = load_entries(cache)
    kept_bytes = _cache_files(cache)

    asked_before = counting_server.calls
    code, err = _run_job(args)
    assert code == 0, err
    rerun_users = [
        r["body"]["messages"][-1]["content"] for r in counting_server.requests[asked_before:]
    ]
    entries = load_entries(cache)
    missing = set(entries) - set(kept)
    # the re-run called the server once per missing key and never for a kept one
    assert sorted(rerun_users) == sorted(entries[k]["request"]["user"] for k in missing)
    assert {k: v for k, v in _cache_files(cache).items() if k in kept_bytes} == kept_bytes
    for path, record in translation_records(out):
        assert record["prompts"] == _prompts_from_cache(record, entries), path.name
    # the output is a function of the cache: an offline replay writes the same bytes
    translate_shard(
        alm_dirs={k: Path(v) for k, v in args["alm_dirs"].items()},
        clip_ids=args["clips"],
        backend="openai",
        backend_options={"base_url": counting_server.base_url},
        strategy="pc",
        cache_dir=cache,
        out_dir=tmp_path / "replay",
        offline=True,
    )
    assert tree_bytes(tmp_path / "replay") == tree_bytes(out)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]
