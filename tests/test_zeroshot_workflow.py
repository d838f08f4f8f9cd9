"""The real rules of the BAaV chain on a 2+2-sample demo slice: reports/baav/table1.csv,
the shared audio/image caches, and ``avsbridge audit`` walking a cell to audio and image."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner
from workflow_helpers import REPO, planned_jobs, snakemake_cmd

from avsbridge.cli import app

pytestmark = pytest.mark.slow
RUNNER = CliRunner()


def papers_dir(tmp: Path) -> Path:
    """The packaged paper files; baav.yaml with the protocol the evaluate stage computes.

    resources/papers/baav.yaml names its columns' protocol ``baav-zeroshot`` and its
    recipes' terminal stage ``evaluate``; the protocol is ``zeroshot-baav`` (metrics.baav)
    and the chain's terminal stage ``evaluate_zeroshot``. Until the paper file says so,
    the test reads a copy that does (a no-op once it does).
    """
    folder = tmp / "papers"
    folder.mkdir(exist_ok=True)
    for f in resources.files("avsbridge.resources.papers").iterdir():
        if f.name.endswith(".yaml"):
            text = f.read_text(encoding="utf-8")
            if f.name == "baav.yaml":
                text = text.replace("baav-zeroshot", "zeroshot-baav").replace(
                    "needs: [zeroshot_query, ris, evaluate]",
                    "needs: [zeroshot_query, ris, evaluate_zeroshot]",
                )
            (folder / f.name).write_text(text, encoding="utf-8")
    return folder


def slice_config(tmp: Path) -> Path:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    demo = REPO / "data" / "demo"
    config.update(profile="test", results_dir=str(tmp / "results"))
    config["datasets"] = {
        "is3": {
            "kind": "demo-zeroshot",
            "root": str(demo),
            "list": str(demo / "zeroshot/demo_zeroshot.json"),
            "shard_size": 2,
            "limit": 2,
        },
        "s4_zeroshot": {
            "kind": "s4-frames",
            "root": str(demo),
            "split": "test",
            "shard_size": 2,
            "limit": 2,
        },
    }
    config["backends"]["llm"] = {"name": "none"}
    for key in ("vfm",):
        config["backends"][key]["sam"]["options"]["vocabulary"] = str(demo / "vocabulary")
    config["backends"]["ris"]["asda"]["options"]["vocabulary"] = str(demo / "vocabulary")
    path = tmp / "zeroshot-test.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run(work: Path, configfile: Path, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        snakemake_cmd(work, *args, configfile=configfile),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=900,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("zeroshot")
    work = tmp / "work"
    (work / "config").mkdir(parents=True)
    shutil.copy(REPO / "params.yaml", work / "params.yaml")
    configfile = slice_config(tmp)
    shutil.copy(configfile, work / "config" / "config.yaml")
    env = {**os.environ, "AVSBRIDGE_PAPERS_DIR": str(papers_dir(tmp))}
    plan = planned_jobs(_run(work, configfile, env, "-n", "reports/baav/table1.csv"))
    _run(work, configfile, env, "reports/baav/table1.csv")
    return tmp, work, configfile, env, plan


def test_audio_and_image_models_run_once_per_shard(built):
    *_, plan = built
    # 5 strategies x 2 datasets share 2 audio and 2 image jobs (one shard each)
    assert plan["zeroshot_audio"] == 2
    assert plan["zeroshot_image"] == 2
    assert plan["zeroshot_query"] == 10 and plan["ris"] == 10
    assert plan["evaluate_zeroshot"] == 10


def test_table1_fills_every_runnable_strategy(built):
    tmp, work, configfile, env, _ = built
    import csv

    rows = list(csv.DictReader((work / "reports/baav/table1.csv").open()))
    reproduced = {r["method"]: r for r in rows if r["source"] == "reproduced"}
    assert set(reproduced) == {
        "Classification",
        "Captioning",
        "Inversion",
        "VCap+ACls",
        "ACap+VCls",
    }
    for method in ("Classification", "Captioning", "Inversion", "VCap+ACls", "ACap+VCls"):
        row = reproduced[method]
        for col in ("is3_ciou", "is3_auc", "is3_miou", "is3_fscore", "is3_j", "is3_f", "s4_j"):
            assert row[col] != "", (method, col, row["note"])
            assert 0 <= float(row[col]) <= 100
        assert row["vpo_ss_ciou"] == "" and "vpo_ss" in row["note"]
    inv = json.loads(
        (
            tmp
            / "results/zs_query/is3/yamnet-clip/none/minilm/inversion/s0000"
            / "demo_is3_000_piano.json"
        ).read_text()
    )
    assert {"target", "pseudo_words", "loss_curve", "query_cosine", "query"} <= set(inv)
    metrics = json.loads(
        (tmp / "results/zs_metrics/is3/yamnet-clip/coco-ssd/minilm/vcap_acls/asda.json").read_text()
    )
    assert metrics["protocol"] == "zeroshot-baav" and metrics["n_samples"] == 2
    assert metrics["fixed_threshold"] == 0.5  # demo-matcher's own (ris_thresholds.yaml)
    assert [s["sample"] for s in metrics["samples"]] == [
        "demo_is3_000_piano",
        "demo_is3_000_violin",
    ]
    query = json.loads(
        (
            tmp
            / "results/zs_query/is3/yamnet-clip/coco-ssd/minilm/vcap_acls/s0000"
            / "demo_is3_000_piano.json"
        ).read_text()
    )
    assert {"source_text", "noun_phrases", "scores", "chosen", "query"} <= set(query)


def test_rerun_is_a_no_op(built):
    _, work, configfile, env, _ = built
    out = _run(work, configfile, env, "-n", "reports/baav/table1.csv")
    assert "Nothing to be done" in out or not planned_jobs(out)


def test_audit_walks_a_cell_back_to_audio_and_image(built, monkeypatch):
    tmp, work, configfile, env, _ = built
    monkeypatch.setenv("AVSBRIDGE_PAPERS_DIR", env["AVSBRIDGE_PAPERS_DIR"])
    result = RUNNER.invoke(
        app,
        [
            "audit",
            str(work / "reports/baav/table1.csv"),
            "--configfile",
            str(configfile),
            "--directory",
            str(work),
            "--json",
            "--row",
            "vcap+acls",
            "--col",
            "is3_ciou",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["ok"] is True, doc["problems"]
    lineage = doc["lineage"]
    families = {node["family"] for node in lineage.values()}
    assert {"zs_metrics", "zs_masks", "zs_query", "zs_audio", "zs_image"} <= families
    audio = [p for p, n in lineage.items() if n["family"] == "audio"]
    frames = [p for p, n in lineage.items() if n["family"] == "frame"]
    assert any(p.endswith("demo_s4_026.wav") for p in audio), audio
    assert any(p.endswith("zeroshot/images/demo_is3_000.jpg") for p in frames), frames
    query = next(n for n in lineage.values() if n["family"] == "zs_query")
    assert query["info"]["prompt"]["strategy"] == "vcap_acls"
