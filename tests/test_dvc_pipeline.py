"""DVC around the Snakemake DAG, on a 2-clip copy of the project.

- ``dvc repro`` builds every report; ``dvc status`` is then clean;
- a second clone pulls the artifacts from a local DVC remote and Snakemake plans
  nothing, yet a params change still re-runs exactly the VFM and what follows;
- a run killed with SIGKILL at a random point and re-run leaves byte-identical
  artifacts to the uninterrupted run.

Slow (~4-6 min on 2 cores): it runs the real rules three times over.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from workflow_helpers import planned_jobs

from avsbridge.provenance.records import tree_hashes

pytestmark = pytest.mark.slow  # real Snakemake/DVC runs: `pytest -m 'not slow'` skips them

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS = "results/demo"
# Families whose bytes must not depend on how the run went. The LLM cache (wall-clock
# latency per entry) and the exported Snakemake records (start/end times) are the
# two stores that carry timings on purpose.
DETERMINISTIC = [
    f"{RESULTS}/alm",
    f"{RESULTS}/text",
    f"{RESULTS}/masks",
    f"{RESULTS}/metrics",
    "reports",
]
GIT_ENV = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.org",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.org",
    "GIT_AUTHOR_DATE": "1767225600 +0000",
    "GIT_COMMITTER_DATE": "1767225600 +0000",
}


def _env(weights_mirror: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(GIT_ENV)
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        AVSBRIDGE_WEIGHTS_MIRROR=str(weights_mirror),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        DVC_NO_ANALYTICS="1",
    )
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str], ok: bool = True) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    out = proc.stdout + proc.stderr
    if ok:
        assert proc.returncode == 0, f"{' '.join(cmd)} failed in {cwd}:\n{out[-5000:]}"
    return out


def _make_project(dst: Path, env: dict[str, str]) -> Path:
    """The project's files (as git sees them) with a 2-clip S4 demo profile, committed."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = REPO / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    config = yaml.safe_load((dst / "config/config.yaml").read_text())
    config["datasets"] = {
        "s4": {"kind": "s4", "root": "data/demo", "split": "test", "shard_size": 2, "limit": 2}
    }
    config["backends"]["llm"] = {"name": "none"}  # the LLM path has its own tests
    config["families"] = {}
    (dst / "config/config.yaml").write_text(yaml.safe_dump(config))
    params = yaml.safe_load((dst / "params.yaml").read_text())
    params["vfm"]["sweep"] = [0.25, 0.45]
    # keep the three repros lean: the audio-control report and the flow family have
    # their own tests; here they would only multiply the slice's jobs
    params["audio_control"]["rows"] = []
    (dst / "params.yaml").write_text(yaml.safe_dump(params))
    _run(["git", "init", "-q", "-b", "main"], dst, env)
    _run(["git", "add", "-A"], dst, env)
    _run(["git", "commit", "-q", "-m", "project"], dst, env)
    return dst


def _artifact_hashes(project: Path) -> dict[str, str]:
    hashes: dict[str, str] = {}
    for family in DETERMINISTIC:
        root = project / family
        for rel, digest in tree_hashes(root).items():
            hashes[f"{family}/{rel}"] = digest
        # provenance records are artifacts too (tree_hashes skips them)
        for record in sorted(root.rglob("_provenance.json")):
            hashes[str(record.relative_to(project))] = tree_hashes(record)[record.name]
    return hashes


@pytest.fixture(scope="module")
def projects(tmp_path_factory, weights_mirror):
    tmp = tmp_path_factory.mktemp("dvc")
    env = _env(weights_mirror)
    origin = _make_project(tmp / "origin", env)
    killed = tmp / "killed"
    _run(["git", "clone", "-q", str(origin), str(killed)], tmp, env)
    remote = tmp / "remote"
    _run(["dvc", "remote", "add", "-d", "local", str(remote)], origin, env)
    t0 = time.monotonic()
    _run(["dvc", "repro"], origin, env)
    repro_s = time.monotonic() - t0
    _run(["git", "add", "-A"], origin, env)
    _run(["git", "add", "dvc.lock"], origin, env)  # sharing a run: its lock, on purpose
    _run(["git", "commit", "-q", "-m", "dvc repro"], origin, env)
    _run(["dvc", "push"], origin, env)
    return {"tmp": tmp, "env": env, "origin": origin, "killed": killed, "repro_s": repro_s}


def test_repro_builds_reports_and_status_is_clean(projects):
    origin, env = projects["origin"], projects["env"]
    for name in ("table1.csv", "table3.csv", "table4.csv", "table5.csv", "figure5.png"):
        assert (origin / "reports" / name).stat().st_size > 0
    assert (origin / "dvc.lock").is_file()
    assert "up to date" in _run(["dvc", "status"], origin, env)
    assert "Nothing to be done" in _run(["snakemake", "-n"], origin, env)
    shown = _run(["dvc", "metrics", "show"], origin, env)
    assert "reports/table1.json" in shown


def test_second_clone_pulls_and_is_up_to_date(projects):
    tmp, env, origin = projects["tmp"], projects["env"], projects["origin"]
    clone = tmp / "clone"
    _run(["git", "clone", "-q", str(origin), str(clone)], tmp, env)
    _run(["dvc", "pull"], clone, env)
    assert (clone / "reports/table1.csv").read_bytes() == (
        origin / "reports/table1.csv"
    ).read_bytes()
    out = _run(["snakemake", "-n"], clone, env)
    assert "Nothing to be done" in out, out[-3000:]
    assert "up to date" in _run(["dvc", "status"], clone, env)
    # a params change still reaches Snakemake through the adopted records
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["vfm"]["box_threshold"] = 0.45  # a threshold whose masks exist (Figure 5 sweep)
    params["vfm"]["text_threshold"] = 0.3
    (clone / "params.yaml").write_text(yaml.safe_dump(params))
    planned = planned_jobs(_run(["snakemake", "-n"], clone, env))
    assert planned.get("segment", 0) >= 1, planned
    assert set(planned) <= {
        "segment",
        "evaluate",
        "report_table",
        "report_figure",
        "report_audio_control",
        "all",
    }, planned
    assert "changed" in _run(["dvc", "status"], clone, env)


def test_kill_minus_nine_then_rerun_is_byte_identical(projects):
    env, origin, killed = projects["env"], projects["origin"], projects["killed"]
    seed = random.randrange(1 << 16)
    delay = random.Random(seed).uniform(0.0, 2.0)
    proc = subprocess.Popen(
        ["snakemake", "--cores", "2"],
        cwd=killed,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and proc.poll() is None:
        if any((killed / RESULTS / "masks").rglob("_provenance.json")):
            break
        time.sleep(0.2)
    time.sleep(delay)
    assert proc.poll() is None, f"the run finished before the kill (seed {seed})"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # a SIGKILLed Snakemake leaves its lock: the documented recovery is --unlock,
    # then the profile's rerun-incomplete re-runs the jobs that were cut off
    _run(["snakemake", "--unlock"], killed, env)
    out = _run(["snakemake", "--cores", "2"], killed, env)
    assert "Nothing to be done" not in out
    ours, theirs = _artifact_hashes(killed), _artifact_hashes(origin)
    differing = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
    assert not differing, f"seed {seed}: differ after kill -9 + re-run: {differing[:20]}"
    leftovers = [p for p in (killed / RESULTS).rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, leftovers


def test_exp_run_sets_a_param_and_reruns_from_the_vfm(projects):
    """`dvc exp run -S vfm.box_threshold=0.3`: a comparable experiment (runs last: it
    changes the origin's workspace)."""
    env, origin = projects["env"], projects["origin"]
    out = _run(["dvc", "exp", "run", "-S", "vfm.box_threshold=0.3", "-n", "thr030"], origin, env)
    assert "audio_text' didn't change" in out or "Stage 'audio_text' didn't change" in out, out[
        -3000:
    ]
    assert "Running stage 'segment'" in out
    reproduced = [
        line
        for line in (origin / "reports/table1.csv").read_text().splitlines()
        if ",reproduced," in line and "OpenAVS, Ours" in line
    ]
    assert reproduced and all("box_threshold=0.3" in line for line in reproduced)
    params = _run(["dvc", "params", "diff"], origin, env)
    assert "vfm.box_threshold" in params and "0.25" in params and "0.3" in params
    shown = _run(["dvc", "exp", "show", "--no-pager", "--csv"], origin, env)
    assert "thr030" in shown
    assert list((origin / RESULTS / "masks").rglob("0.30")), "masks at the new threshold"
