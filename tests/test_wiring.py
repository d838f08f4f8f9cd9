"""Every stage has its rule, script, env, DVC stage, schema entry and audit family."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from avsbridge import stages
from avsbridge.wiring import check_wiring

REPO = Path(__file__).resolve().parents[1]


def test_the_checkout_is_wired():
    assert check_wiring() == []


def test_a_stage_without_its_parts_is_named(monkeypatch):
    flow = dataclasses.replace(
        stages.STAGES["segment"], name="fakeflow", env="fakeflow", registry=None, backend="fakeflow"
    )
    monkeypatch.setitem(stages.STAGES, "fakeflow", flow)
    monkeypatch.setitem(stages.paths.FAMILY_OF_STAGE, "fakeflow", "fakeflow")
    problems = "\n".join(check_wiring())
    assert "no `rule fakeflow:`" in problems
    assert "workflow/scripts/fakeflow.py: missing" in problems
    assert "no path pattern for stage fakeflow" in problems
    assert "envs/fakeflow.yaml: missing" in problems
    assert "backends.fakeflow (stage fakeflow) has no schema entry" in problems
    assert "no audit family for rule fakeflow" in problems


def test_a_report_missing_from_dvc_yaml_is_named(tmp_path: Path):
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "workflow", repo / "workflow")
    shutil.copytree(REPO / "envs", repo / "envs")
    text = (REPO / "dvc.yaml").read_text()
    (repo / "dvc.yaml").write_text(text.replace("- ${dvc.reports_dir}/baav/table2.csv\n", ""))
    assert any(p.startswith("dvc.yaml: differs") for p in check_wiring(repo))
