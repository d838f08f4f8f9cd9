"""GPU slot pool: one device per concurrent GPU job on a simulated multi-GPU machine.

Real processes (not threads) take the slots, as Snakemake jobs would; the device
count is simulated with AVSBRIDGE_GPU_COUNT.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from avsbridge.backends.slots import VISIBLE, device_count, gpu_slot

REPO = Path(__file__).resolve().parents[1]

JOB = textwrap.dedent(
    """
    import json, os, sys, time
    from avsbridge.backends.slots import gpu_slot
    out, hold_s, wanted = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    release = sys.argv[4] if len(sys.argv) > 4 else None  # hold until this file exists
    with gpu_slot(wanted, label=f"job{os.getpid()}", poll_s=0.02) as value:
        start = time.time()
        seen = os.environ.get("CUDA_VISIBLE_DEVICES")
        print("HOLDING", flush=True)
        deadline = time.monotonic() + hold_s
        while time.monotonic() < deadline and not (release and os.path.exists(release)):
            time.sleep(0.02)
        end = time.time()
    after = os.environ.get("CUDA_VISIBLE_DEVICES")
    with open(out, "w") as fh:
        json.dump({"value": value, "seen": seen, "start": start, "end": end, "after": after}, fh)
    """
)


def _env(tmp_path: Path, count: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {VISIBLE, "SLURM_JOB_ID"}}
    env.update(
        AVSBRIDGE_GPU_COUNT=str(count),
        AVSBRIDGE_GPU_SLOT_DIR=str(tmp_path / "slots"),
        PYTHONPATH=str(REPO / "src"),
        **extra,
    )
    return env


def _jobs(tmp_path: Path, n: int, count: int, hold_s: float, wanted: int = 1) -> list[dict]:
    env = _env(tmp_path, count)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", JOB, str(tmp_path / f"job{i}.json"), str(hold_s), str(wanted)],
            env=env,
        )
        for i in range(n)
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    return [json.loads((tmp_path / f"job{i}.json").read_text()) for i in range(n)]


def _hold_together(tmp_path: Path, n: int, count: int, wanted: int = 1) -> list[dict]:
    """n jobs that all hold their slots at the same time before any lets go."""
    env = _env(tmp_path, count)
    release = tmp_path / "release"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", JOB, str(tmp_path / f"job{i}.json"), "60", str(wanted),
             str(release)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]  # fmt: skip
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "HOLDING"
    release.touch()
    assert all(proc.wait(timeout=60) == 0 for proc in procs)
    return [json.loads((tmp_path / f"job{i}.json").read_text()) for i in range(n)]


def test_concurrent_jobs_get_distinct_devices(tmp_path: Path) -> None:
    results = _hold_together(tmp_path, n=4, count=4)
    assert sorted(r["value"] for r in results) == ["0", "1", "2", "3"]
    assert all(r["seen"] == r["value"] for r in results)  # the job's own environment
    assert all(r["after"] is None for r in results)  # restored on exit
    holders = sorted(p.read_text().split()[0] for p in (tmp_path / "slots").glob("gpu*.lock"))
    assert len(holders) == 4 and all(h.startswith("pid=") for h in holders)


def test_more_jobs_than_devices_wait_and_never_share_a_device(tmp_path: Path) -> None:
    results = _jobs(tmp_path, n=5, count=2, hold_s=0.4)
    by_device: dict[str, list[tuple[float, float]]] = {}
    for r in results:
        by_device.setdefault(r["value"], []).append((r["start"], r["end"]))
    assert set(by_device) == {"0", "1"}
    for spans in by_device.values():
        spans.sort()
        assert all(
            a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False)
        ), spans


def test_multi_gpu_jobs_get_disjoint_sets(tmp_path: Path) -> None:
    results = _hold_together(tmp_path, n=2, count=4, wanted=2)
    sets = [set(r["value"].split(",")) for r in results]
    assert all(len(s) == 2 for s in sets) and not sets[0] & sets[1]


def test_a_killed_job_frees_its_device(tmp_path: Path) -> None:
    env = _env(tmp_path, 1)
    victim = subprocess.Popen(
        [sys.executable, "-c", JOB, str(tmp_path / "victim.json"), "60", "1"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert victim.stdout is not None and victim.stdout.readline().strip() == "HOLDING"
    # the only device is held: a second job cannot get it
    with pytest.raises(TimeoutError, match="no 1 free GPU"):
        with gpu_slot(env=dict(env), timeout_s=0.3, poll_s=0.05):
            pass
    os.kill(victim.pid, signal.SIGKILL)  # a crash: no cleanup code runs
    victim.wait(timeout=10)
    t0 = time.monotonic()
    job_env = dict(env)
    with gpu_slot(env=job_env, timeout_s=5, poll_s=0.05) as value:
        assert value == "0" and job_env[VISIBLE] == "0"
    assert time.monotonic() - t0 < 1.0
    assert VISIBLE not in job_env


@pytest.mark.parametrize(
    "preset",
    [{"SLURM_JOB_ID": "42", VISIBLE: "3"}, {VISIBLE: "1"}, {"SLURM_JOB_ID": "42"}],
)
def test_an_assignment_made_by_slurm_or_the_caller_is_left_alone(
    tmp_path: Path, preset: dict[str, str]
) -> None:
    env = {**_env(tmp_path, 4), **preset}
    before = dict(env)
    with gpu_slot(env=env) as value:
        assert value == preset.get(VISIBLE) and env == before
    assert env == before
    assert not (tmp_path / "slots").exists(), "no slot taken under SLURM"


def test_no_gpu_wanted_or_none_present(tmp_path: Path) -> None:
    env = _env(tmp_path, 0)
    with gpu_slot(env=env) as value:
        assert value is None and VISIBLE not in env
    env = _env(tmp_path, 4)
    with gpu_slot(0, env=env) as value:
        assert value is None and VISIBLE not in env
    with pytest.raises(ValueError, match="wants 5 GPUs, this machine has 4"):
        with gpu_slot(5, env=env):
            pass


def test_device_count_from_env_and_dev_files(tmp_path: Path) -> None:
    assert device_count({"AVSBRIDGE_GPU_COUNT": "3"}) == 3
    with pytest.raises(ValueError, match="AVSBRIDGE_GPU_COUNT='x'"):
        device_count({"AVSBRIDGE_GPU_COUNT": "x"})
    dev = tmp_path / "dev"
    dev.mkdir()
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "null"):
        (dev / name).touch()
    assert device_count({}, dev=dev) == 2
