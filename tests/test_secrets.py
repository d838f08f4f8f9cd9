"""API keys set during a real workflow run end up in no file the run writes.

Runs the real Snakemake rules (YAMNet, translate through the openai backend
against a local fake Chat Completions server, demo VFM, evaluate, report) on two
demo clips with ``OPENAI_API_KEY`` set to one random marker and, where a user
might put one, another in the config (``backends.llm.options.api_key``). The
server fails one request persistently with an error body that echoes the key it
was sent, whole and masked (as real APIs do for a bad key), so the key reaches
exception messages and the log path. Then every file under the temp project
(results, LLM cache, provenance, logs, reports, .snakemake) except the user's own
config is read for either key, whole, a 16-character tail, or masked. The same
run checks that the failed call is counted in the metrics, the report note and
``avsbridge cache stats``.
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


def masked(key: str) -> str:
    """A key as an API masks it in a 401 body: prefix, stars, last four."""
    return f"{key[:8]}{'*' * 20}{key[-4:]}"


@pytest.fixture()
def flaky_server():
    """Answers well, except that the first distinct request always gets HTTP 500,
    whose body echoes the bearer key of the request, whole and masked."""
    fake = FakeChatServer()
    first: list[str] = []

    def rule(user: str):
        if not first:
            first.append(user)
        if user != first[0]:
            return None
        with fake.lock:
            sent = fake.requests[-1]["headers"].get("authorization", "").removeprefix("Bearer ")
        return ("status", 500, {}, f"upstream refused key {sent} ({masked(sent)}); retry later")

    fake.rule = rule
    fake.thread.start()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


def _project(tmp: Path, base_url: str, config_key: str) -> Path:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["profile"] = "secrets-test"
    config["results_dir"] = "results"
    config["datasets"] = slice_datasets()
    config["backends"]["llm"] = {
        "name": "openai",
        "options": {
            "base_url": base_url,
            "api_key": config_key,  # where a user might put it (the variable is safer)
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


def _marker(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}{uuid.uuid4().hex}"


def test_api_key_is_in_no_file_of_a_real_run(
    tmp_path: Path, flaky_server: FakeChatServer, weights_mirror: Path
) -> None:
    env_key, config_key = _marker("sk-proj"), _marker("sk-cfg")
    work = _project(tmp_path, flaky_server.base_url, config_key)
    env = {**os.environ, "OPENAI_API_KEY": env_key}
    cmd = snakemake_cmd(work, "reports/table1.csv")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work, env=env, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    # the config's key really was used (it wins over the variable), and echoed back
    assert flaky_server.calls >= 3
    assert all(
        r["headers"]["authorization"] == f"Bearer {config_key}" for r in flaky_server.requests
    )
    needles = {
        f"{name} {form}": text.encode()
        for name, key in (("env key", env_key), ("config key", config_key))
        for form, text in (("whole", key), ("tail", key[-16:]), ("masked", masked(key)))
    }
    output = (proc.stdout + proc.stderr).encode()
    assert not [n for n, text in needles.items() if text in output], "secret in Snakemake's output"

    user_config = work / "config" / "config.yaml"  # the user's own file holds it, nothing else
    assert config_key in user_config.read_text()
    files = [p for p in work.rglob("*") if p.is_file() and p != user_config]
    assert any(".snakemake" in p.parts for p in files) and any(
        "llm_cache" in p.parts for p in files
    )
    assert any(p.suffix == ".log" for p in files)
    assert any(p.name == "_provenance.json" and "text" in p.parts for p in files)
    leaked = [
        f"{p.relative_to(work)}: {n}"
        for p in files
        for n, text in needles.items()
        if text in p.read_bytes()
    ]
    assert not leaked, "secrets in:\n" + "\n".join(leaked)
    logs = "".join(p.read_text() for p in (work / "logs").rglob("*.log") if "translate" in p.parts)
    assert "upstream refused key <redacted>" in logs  # the echo reached the log, redacted

    # the failed call is recorded, never a silent empty prompt, and counted downstream
    (metrics_file,) = [
        p for p in (work / "results" / "metrics").rglob("fc/sam/*.json") if "prov" not in p.name
    ]
    metrics = json.loads(metrics_file.read_text())
    assert metrics["total_failed_calls"] == 1 and metrics["total_fallback_frames"] >= 1
    assert metrics["total_llm_requests"] == 2 and metrics["llm_requests_per_instance"] == 1.0
    report = (work / "reports" / "table1.csv").read_text()
    assert "LLM fallback:" in report and "1 failed call(s)" in report
    logs = "".join(p.read_text() for p in (work / "logs").rglob("*.log") if "translate" in p.parts)
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
