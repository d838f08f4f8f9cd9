"""profiles/slurm on a real single-node SLURM cluster, against a local run of the same slice.

Brings up munge + slurmctld + slurmd (Debian packages, installed when missing) in a
temporary folder, runs one mask shard and its metrics of the demo slice through
``--executor slurm --profile profiles/slurm`` with the segment rule declared a GPU
rule, and checks the artifacts equal a local run's byte for byte. The cluster has
no accounting database, so the plugin's ``squeue`` status check is what is tested.
Deselect locally with ``-m "not slurm"``; CI runs it (needs root for the daemons).

Measured per-job overhead is printed (``-s``) and written to ``$AVSBRIDGE_SLURM_TIMINGS``
when that is set.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from slurm_cluster import SlurmCluster, install_packages, missing_binaries
from workflow_helpers import REPO, slice_config, snakemake_cmd

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# Short status-check delay for a test cluster (MinJobAge 300 s >= 3 x this);
# AVSBRIDGE_SLURM_FIRST_CHECK_S=20 measures the profile's own setting.
FIRST_CHECK_S = int(os.environ.get("AVSBRIDGE_SLURM_FIRST_CHECK_S", "2"))
_STAMP_RE = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_SUBMITTED_RE = re.compile(r"SLURM jobid (\d+) \(log: (.+?)\)")
_FINISHED_RE = re.compile(r"Finished jobid: \d+ \(Rule: (\w+)\)")


def _need_cluster_tools() -> float | None:
    """Install slurm-wlm + munge when missing (root); the seconds it took, None if present."""
    missing = missing_binaries()
    if not missing:
        return None
    why = f"SLURM binaries missing ({', '.join(missing)})"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI must run as root with apt-get to install them")
        pytest.skip(f"{why} and not root: cannot install slurm-wlm/munge")
    seconds = install_packages()
    still = missing_binaries()
    assert not still, f"apt-get installed slurm-wlm munge but {still} are still missing"
    return seconds


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the SLURM test starts slurmctld/slurmd as root; CI runs as root")
        pytest.skip("starting slurmctld/slurmd needs root")
    install_s = _need_cluster_tools()
    c = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        c.start()
        if install_s is not None:
            c.timings["apt_install_s"] = install_s
        yield c
    finally:
        c.stop()


def _slice(tmp: Path) -> tuple[Path, Path]:
    """A work folder with the demo slice, the segment rule's backend a GPU backend."""
    work = tmp / "work"
    (work / "config").mkdir(parents=True)
    shutil.copy(REPO / "params.yaml", work / "params.yaml")
    path = slice_config(tmp)
    config = yaml.safe_load(path.read_text())
    config["backends"]["vfm"]["sam"]["gpu"] = True  # a GPU job, as a paper VFM is
    path.write_text(yaml.safe_dump(config))
    shutil.copy(path, work / "config" / "config.yaml")
    return work, path


def _target(results: Path) -> str:
    """One mask shard's metrics (audio_text -> translate -> segment -> evaluate)."""
    return str(results / "metrics/s4/yamnet/caption/none/none/sam/0.25.json")


def _site_overrides(cluster: SlurmCluster) -> list[str]:
    """What a user of a small node passes (README): the profile's set-resources, capped.

    A command-line ``--set-resources`` replaces the profile's whole list, so the
    profile's entries are repeated with this node's CPUs and memory as ceilings.
    """
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    node = dict(kv.split("=", 1) for kv in cluster.run(["slurmd", "-C"]).split()[:7] if "=" in kv)
    cpus, mem = int(node["CPUs"]), int(node["RealMemory"]) // 4
    pairs = []
    for rule, res in profile["set-resources"].items():
        for key, value in res.items():
            if key == "mem_mb":
                value = min(value, mem)
            elif key == "cpus_per_task":
                value = min(value, cpus)
            pairs.append(f"{rule}:{key}={value}")
    return ["--set-resources", *pairs]


def _digest(root: Path) -> dict[str, str]:
    """sha256 of every artifact under results/ (provenance records carry hosts and times)."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.endswith((".prov.json", "_provenance.json")):
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _run(cmd: list[str], env: dict[str, str], timeout: float = 900) -> tuple[str, float]:
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    return out, time.monotonic() - t0


def _jobs(cluster: SlurmCluster) -> list[dict[str, str]]:
    """Finished jobs still held by slurmctld (MinJobAge), as key=value dicts."""
    rows = []
    for line in cluster.run(["scontrol", "show", "job", "-o"]).splitlines():
        fields = {}
        for item in line.split():
            if "=" in item:
                key, value = item.split("=", 1)
                fields[key] = value
        if fields:
            rows.append(fields)
    return rows


def _epoch(stamp: str) -> float:
    return time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S"))


def test_slice_through_slurm_equals_local_run(cluster: SlurmCluster, tmp_path: Path) -> None:
    env = {
        **cluster.env(),
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    local_work, local_cfg = _slice(tmp_path / "local")
    _, local_s = _run(
        snakemake_cmd(local_work, _target(tmp_path / "local/results"), configfile=local_cfg), env
    )
    slurm_work, slurm_cfg = _slice(tmp_path / "slurm")
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(slurm_work),
        _target(tmp_path / "slurm/results"),  # before the flags that take lists
        "--configfile",
        str(slurm_cfg),
        "--profile",
        str(REPO / "profiles/slurm"),
        "--slurm-init-seconds-before-status-checks",
        str(FIRST_CHECK_S),
        "--latency-wait",
        "5",
        "--slurm-keep-successful-logs",  # read below for the in-job start time
        *_site_overrides(cluster),
    ]
    out, slurm_s = _run(cmd, env)
    assert "SLURM run ID" in out and "has been submitted with SLURM jobid" in out

    local = _digest(tmp_path / "local/results")
    remote = _digest(tmp_path / "slurm/results")
    assert any(k.startswith("masks/") for k in local) and any(
        k.startswith("metrics/") for k in local
    )
    assert remote == local, "a SLURM run must write the same artifacts as a local run"

    jobs = [j for j in _jobs(cluster) if "rule_" in j.get("Comment", "")]
    by_rule = {j["Comment"].split("_wildcards")[0].removeprefix("rule_"): j for j in jobs}
    assert set(by_rule) == {
        "data_check",
        "audio_text",
        "translate",
        "segment",
        "evaluate",
    }, by_rule.keys()
    assert all(j["JobState"] == "COMPLETED" for j in jobs), [j["JobState"] for j in jobs]
    # The rule's gpu resource reached SLURM as a GPU request; CPU rules asked for none.
    segment = by_rule["segment"]
    assert "gres/gpu=1" in segment.get("TRES", "") or "gpu:1" in segment.get("TresPerJob", "")
    assert "gpu" not in by_rule["evaluate"].get("TresPerJob", "")

    timings = _overhead(cluster, jobs, slurm_s, local_s, out)
    print("\nSLURM timings:", json.dumps(timings, indent=2))
    if os.environ.get("AVSBRIDGE_SLURM_TIMINGS"):
        Path(os.environ["AVSBRIDGE_SLURM_TIMINGS"]).write_text(json.dumps(timings, indent=2))


def _stamp(text: str) -> float:
    return time.mktime(time.strptime(text, "%a %b %d %H:%M:%S %Y"))


def _log_events(out: str) -> tuple[dict[str, str], dict[str, float]]:
    """(slurm job id -> its log file, rule -> when Snakemake saw it finish) from the run log."""
    logs, finished, stamp = {}, {}, None
    for line in out.splitlines():
        if m := _STAMP_RE.match(line.strip()):
            stamp = _stamp(m.group(1))
        elif m := _SUBMITTED_RE.search(line):
            logs[m.group(1)] = m.group(2)
        elif (m := _FINISHED_RE.search(line)) and stamp is not None:
            finished[m.group(1)] = stamp
    return logs, finished


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 1) if values else float("nan")


def _overhead(
    cluster: SlurmCluster,
    jobs: list[dict[str, str]],
    slurm_s: float,
    local_s: float,
    out: str,
) -> dict[str, float]:
    """Where a SLURM run's time goes, from slurmctld's job records and the logs (1 s steps).

    queued: submit -> start; in_job_start: SLURM start -> the rule starting inside
    the job (job-step Snakemake parsing the workflow); noticed: SLURM end -> the
    main Snakemake seeing the job finish (status polling).
    """
    queued = [_epoch(j["StartTime"]) - _epoch(j["SubmitTime"]) for j in jobs]
    in_job = [_epoch(j["EndTime"]) - _epoch(j["StartTime"]) for j in jobs]
    logs, finished = _log_events(out)
    starts, noticed = [], []
    for job in jobs:
        rule = job["Comment"].split("_wildcards")[0].removeprefix("rule_")
        log_file = Path(logs.get(job["JobId"], "/nonexistent"))
        if log_file.is_file():
            stamps = [
                _stamp(m.group(1))
                for line in log_file.read_text().splitlines()
                if (m := _STAMP_RE.match(line.strip()))
            ]
            if stamps:
                starts.append(stamps[0] - _epoch(job["StartTime"]))
        if rule in finished:
            noticed.append(finished[rule] - _epoch(job["EndTime"]))
    t0 = time.monotonic()
    job_id = cluster.run(["sbatch", "--parsable", "--wrap", "true"]).strip()
    submit_s = time.monotonic() - t0
    t0 = time.monotonic()
    cluster.run(["squeue", "-h", "-j", job_id])
    squeue_s = time.monotonic() - t0
    return {
        **{k: round(v, 3) for k, v in cluster.timings.items()},
        "jobs": len(jobs),
        "local_run_s": round(local_s, 1),
        "slurm_run_s": round(slurm_s, 1),
        "per_job_extra_s": round((slurm_s - local_s) / len(jobs), 1),
        "sbatch_s": round(submit_s, 3),
        "squeue_s": round(squeue_s, 3),
        "queued_mean_s": _mean(queued),
        "in_job_mean_s": _mean(in_job),
        "in_job_start_mean_s": _mean(starts),
        "noticed_after_end_mean_s": _mean(noticed),
        "first_status_check_s": FIRST_CHECK_S,
    }
