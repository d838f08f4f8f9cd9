"""An API key set during a real workflow run ends up in no file of the project.

Runs the real Snakemake rules (YAMNet, translate through the openai backend
against a local fake Chat Completions server, demo VFM, evaluate, report) on two
demo clips with ``OPENAI_API_KEY`` set to a random marker, then reads every file
under the temp project (results, LLM cache, logs, reports, .snakemake) for it.
The server fails one request persistently, so the same run checks that a failed
call is counted in the metrics, the report note and ``avsbridge cache stats``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from test_translate_openai import FakeChatServer
from typer.testing import CliRunner
from workflow_helpers import slice_datasets, snakemake_cmd

from avsbridge.cli import app

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def flaky_server():
    """Answers well, except that the first distinct request always gets HTTP 500."""
    fake = FakeChatServer()
    first: list[str] = []

    def rule(user: str):
        if not first:
            first.append(user)
        return ("status", 500, {}) if user == first[0] else None

    fake.rule = rule
    fake.thread.start()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


def _project(tmp: Path, base_url: str) -> Path:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["profile"] = "secrets-test"
    config["results_dir"] = "results"
    config["datasets"] = slice_datasets()
    config["backends"]["llm"] = {
        "name": "openai",
        "options": {
            "base_url": base_url,
            "seed": 0,
            "max_attempts": 2,
            "backoff_base_s": 0.01,
            # this run checks that fallbacks are counted downstream: keep the job going
            "failure_policy": "fallback",
        },
    }
    config["backends"]["vfm"]["sam"]["options"]["vocabulary"] = str(REPO / "data/demo/vocabulary")
    config["llm"] = {"strategy": "fc"}
    work = tmp / "project"
    (work / "config").mkdir(parents=True)
    shutil.copy(REPO / "params.yaml", work / "params.yaml")
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return work


def test_api_key_is_in_no_file_of_a_real_run(
    tmp_path: Path, flaky_server: FakeChatServer, weights_mirror: Path
) -> None:
    marker = f"sk-proj-{uuid.uuid4().hex}{uuid.uuid4().hex}"
    work = _project(tmp_path, flaky_server.base_url)
    env = {**os.environ, "OPENAI_API_KEY": marker}
    cmd = snakemake_cmd(work, "reports/table1.csv")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work, env=env, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert marker not in proc.stdout + proc.stderr
    # the key really was used: every request carried it
    assert flaky_server.calls >= 3
    assert all(r["headers"]["authorization"] == f"Bearer {marker}" for r in flaky_server.requests)

    files = [p for p in work.rglob("*") if p.is_file()]
    assert any(".snakemake" in p.parts for p in files) and any(
        "llm_cache" in p.parts for p in files
    )
    assert any(p.suffix == ".log" for p in files)
    needles = (marker.encode(), marker[-16:].encode())
    leaked = [str(p) for p in files if any(n in p.read_bytes() for n in needles)]
    assert leaked == []

    # the failed call is recorded, never a silent empty prompt, and counted downstream
    (metrics_file,) = [
        p for p in (work / "results" / "metrics").rglob("fc/sam/*.json") if "prov" not in p.name
    ]
    metrics = json.loads(metrics_file.read_text())
    assert metrics["total_failed_calls"] == 1 and metrics["total_fallback_frames"] >= 1
    assert metrics["total_llm_requests"] == 2 and metrics["llm_requests_per_instance"] == 1.0
    report = (work / "reports" / "table1.csv").read_text()
    assert "LLM fallback:" in report and "1 failed call(s)" in report
    logs = "".join(p.read_text() for p in (work / "logs" / "translate").rglob("*.log"))
    assert "llm failed" in logs and "llm call" in logs  # run-dependent facts go to the log

    result = CliRunner().invoke(
        app,
        ["cache", "stats", "--json", "--report", "reports/table1.csv", "--project-dir", str(work)],
    )
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["cache_dir"] == str(work / "results" / "llm_cache")
    usage = stats["reports"]["reports/table1.csv"]
    assert (usage["requests"], usage["failed_calls"], usage["calls"]) == (2, 1, 1)
    assert usage["by_backend"]["openai/gpt-4o"]["prompt_tokens"] == 100
