"""The Snakemake DAG end to end on a slice of the demo benchmark.

Runs the real rules (YAMNet, demo matcher, evaluation, report) on two demo
clips, then checks with dry-runs what a parameter change re-runs.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from avsbridge.provenance.code import code_hash

REPO = Path(__file__).resolve().parents[1]


def _config(tmp: Path, **vfm: float) -> Path:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["profile"] = "test"
    config["results_dir"] = str(tmp / "results")
    config["datasets"] = {
        "s4": {
            "kind": "s4",
            "root": str(REPO / "data" / "demo"),
            "split": "test",
            "shard_size": 2,
            "limit": 2,
        },
    }
    config["backends"]["llm"] = {"name": "none"}
    config["backends"]["vfm"]["sam"]["options"]["vocabulary"] = str(REPO / "data/demo/vocabulary")
    config["llm"] = {"strategy": vfm.pop("strategy", "none")}
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    config["vfm"] = {**params["vfm"], **vfm}
    path = tmp / f"test-{abs(hash(str(sorted(vfm.items())) + config['llm']['strategy']))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _snakemake(workdir: Path, configfile: Path, *args: str) -> str:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        "--cores",
        "2",
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def _planned(out: str) -> dict[str, int]:
    table = out.split("Job stats:", 1)[1] if "Job stats:" in out else ""
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)
        if m.group(1) != "total"
    }


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, weights_mirror):
    tmp = tmp_path_factory.mktemp("wf")
    work = tmp / "work"
    (work / "config").mkdir(parents=True)
    shutil.copy(REPO / "params.yaml", work / "params.yaml")
    configfile = _config(tmp)
    # The workflow's own config/config.yaml is the test profile (a --configfile
    # merges into it and could not drop the demo's MS3 dataset).
    shutil.copy(configfile, work / "config" / "config.yaml")
    _snakemake(work, configfile, "reports/table1.csv")
    return tmp, work, configfile


def test_table1_from_real_rules(finished_run):
    tmp, work, _ = finished_run
    with (work / "reports" / "table1.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    ours = [r for r in rows if r["method"] == "OpenAVS, Ours" and r["source"] == "reproduced"]
    assert len(ours) == 1
    assert 0.0 <= float(ours[0]["s4_miou"]) <= 1.0 and 0.0 <= float(ours[0]["s4_fscore"]) <= 1.0
    assert ours[0]["ms3_miou"] == "" and "not part of profile" in ours[0]["note"]
    metrics = list((tmp / "results" / "metrics").rglob("*.json"))
    assert metrics and all(not m.name.endswith(".prov.json") or m.stat().st_size for m in metrics)
    alm = list((tmp / "results" / "alm").rglob("_provenance.json"))
    assert alm, "every artifact folder carries a provenance record"


def test_second_run_has_nothing_to_do(finished_run):
    _, work, configfile = finished_run
    out = _snakemake(work, configfile, "-n", "reports/table1.csv")
    assert "Nothing to be done" in out


def test_box_threshold_change_reruns_only_vfm_and_after(finished_run):
    tmp, work, _ = finished_run
    out = _snakemake(work, _config(tmp, box_threshold=0.35), "-n", "reports/table1.csv")
    planned = _planned(out)
    assert planned.get("segment", 0) >= 1
    assert set(planned) <= {"segment", "evaluate", "report_table"}, planned


def test_strategy_change_never_reruns_the_alm(finished_run):
    tmp, work, _ = finished_run
    out = _snakemake(work, _config(tmp, strategy="fc"), "-n", "reports/table1.csv")
    planned = _planned(out)
    assert planned.get("translate", 0) >= 1
    assert "audio_text" not in planned, planned


def test_code_hash_follows_module_source(tmp_path, monkeypatch):
    pkg = tmp_path / "fakestage"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = code_hash("fakestage")
    code_hash.cache_clear()
    (pkg / "__init__.py").write_text("X = 2\n")
    assert code_hash("fakestage") != before
    code_hash.cache_clear()
