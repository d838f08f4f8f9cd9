"""``avsbridge audit``: a report walked back to audio and frames, every file re-hashed.

The real rules run once on a two-clip demo slice (module fixture); each test then
breaks one thing (a mask PNG, a text record, a param) and checks that the audit
fails naming exactly that file, and restores it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner
from workflow_helpers import slice_config

from avsbridge.cli import app
from avsbridge.io import atomic_write_json
from avsbridge.provenance.audit import _Auditor
from avsbridge.provenance.records import scrub, write_record

pytestmark = pytest.mark.slow  # real Snakemake/DVC runs: `pytest -m 'not slow'` skips them

RUNNER = CliRunner()


@pytest.fixture()
def built(demo_slice):
    return demo_slice


def _audit(work: Path, configfile: Path, *args: str) -> tuple[int, str]:
    result = RUNNER.invoke(
        app,
        ["audit", str(work / "reports" / "table1.csv"), "--configfile", str(configfile), *args],
    )
    return result.exit_code, result.output


@contextlib.contextmanager
def _restored(path: Path) -> Iterator[Path]:
    """Break ``path`` inside the block; put the original bytes and mtime back after."""
    backup = path.with_name(path.name + ".bak-test")
    shutil.copy2(path, backup)
    try:
        yield path
    finally:
        shutil.copy2(backup, path)
        backup.unlink()


def _one(root: Path, pattern: str) -> Path:
    found = sorted(root.glob(pattern))
    assert found, pattern
    return found[0]


def test_fresh_run_passes(built):
    """(Its speed is a figure of bench/local_speed.py --audit, not a timed test.)"""
    _, work, configfile = built
    code, out = _audit(work, configfile)
    assert code == 0, out
    assert "OK:" in out and "s4_miou" in out and "Generate audio caption" in out


def test_json_lineage_reaches_audio_and_frames(built):
    tmp, work, configfile = built
    code, out = _audit(work, configfile, "--json", "--row", "openavs, ours", "--col", "s4_miou")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["ok"] is True and doc["problems"] == [] and doc["snakemake"]["ran"] is True
    assert [(c["column"], c["metric"]) for c in doc["cells"]] == [("s4_miou", "miou")]
    assert doc["cells"][0]["value"] == pytest.approx(doc["cells"][0]["metrics_value"], abs=1e-4)
    lineage = doc["lineage"]
    families = {node["family"] for node in lineage.values()}
    assert families == {"report", "metrics", "masks", "text", "alm", "audio", "frame"}
    masks = next(n for n in lineage.values() if n["family"] == "masks")
    assert sum(lineage[i]["family"] == "frame" for i in masks["inputs"]) == 10  # 2 clips x 5 frames
    assert masks["info"]["weights_sha256"] and masks["info"]["thresholds"]["box"] == 0.25
    alm = next(n for n in lineage.values() if n["family"] == "alm")
    assert alm["info"]["prompt"]["text"] == "Generate audio caption"
    assert len(alm["info"]["weights_sha256"]["weights_sha256"]) == 64
    text = next(n for n in lineage.values() if n["family"] == "text")
    assert set(text["info"]["clips"]) == {"demo_s4_018", "demo_s4_019"}
    assert all(len(c["prompts"]) == 5 for c in text["info"]["clips"].values())


def test_altered_mask_png_is_named(built):
    tmp, work, configfile = built
    png = _one(tmp / "results" / "masks", "**/*demo_s4_018.2.png")
    with _restored(png):
        png.write_bytes(png.read_bytes() + b"\0")
        code, out = _audit(work, configfile)
    assert code == 1
    assert f"modified: {png} -- sha256 differs" in out
    # the metrics built from that shard are stale against it
    assert "stale: input:" in out and "metrics" in out.split("stale: input:")[1].splitlines()[0]
    assert _audit(work, configfile, "--no-snakemake")[0] == 0  # restored -> clean again


def test_deleted_text_record_and_provenance_are_named(built):
    tmp, work, configfile = built
    record = _one(tmp / "results" / "text", "**/demo_s4_019.json")
    with _restored(record):
        record.unlink()
        code, out = _audit(work, configfile, "--no-snakemake")
    assert code == 1 and f"missing: {record} -- listed in" in out
    prov = _one(tmp / "results" / "alm", "**/_provenance.json")
    with _restored(prov):
        prov.unlink()
        code, out = _audit(work, configfile, "--no-snakemake")
    assert code == 1 and f"missing: {prov} -- no provenance record" in out


def test_param_change_makes_lineage_stale(built):
    tmp, work, _ = built
    # a param that keeps paths: Snakemake says the mask shard's params changed
    code, out = _audit(work, slice_config(tmp, text_threshold=0.3))
    assert code == 1
    masks = _one(tmp / "results" / "masks", "**/s0000")
    assert f"stale: params: {masks} -- Snakemake: params changed: text_threshold" in out
    # a param that moves the variant: the report no longer matches the config
    code, out = _audit(work, slice_config(tmp, box_threshold=0.35))
    assert code == 1
    assert "stale: input: reports/table1.csv -- Snakemake: set of input files changed" in out
    assert "stale: params:" in out and "current config does not build this" in out


def test_bad_report_path_and_selection(built, tmp_path):
    _, work, configfile = built
    result = RUNNER.invoke(app, ["audit", str(work / "reports" / "table9.csv")])
    assert result.exit_code == 2 and "report is missing" in result.output
    result = RUNNER.invoke(app, ["audit", str(work / "params.yaml")])
    assert result.exit_code == 2 and "not a report table" in result.output
    code, out = _audit(work, configfile, "--row", "SST [8]")
    assert code == 2 and "no reproduced cell in row 'SST [8]'" in out and "OpenAVS, Ours" in out
    code, out = _audit(work, configfile, "--col", "ms3_miou")
    assert code == 2 and "s4_miou" in out


def test_records_are_deterministic_and_scrubbed(tmp_path):
    art = tmp_path / "shard"
    art.mkdir()
    (art / "a.json").write_text("{}")
    src = tmp_path / "in.wav"
    src.write_bytes(b"RIFF")
    params = {"backend": {"options": {"max_new_tokens": 8, "hf_token": "x", "api_key": "y"}}}
    write_record(art, rule="segment", params=params, inputs=[src])
    first = (art / "_provenance.json").read_bytes()
    write_record(art, rule="segment", params=params, inputs=[src])
    assert (art / "_provenance.json").read_bytes() == first
    doc = json.loads(first)
    assert "created" not in doc and doc["params"]["backend"]["options"] == {"max_new_tokens": 8}
    assert scrub({"api_key_env": "OPENAI_API_KEY", "Authorization": "b"}) == {
        "api_key_env": "OPENAI_API_KEY"
    }


def test_llm_cache_keys_must_have_their_entries(tmp_path):
    from avsbridge.translate.cache import CallCache, request_key

    cache = CallCache(tmp_path / "llm_cache")
    identity = {"backend": "local", "model": "m"}
    good = request_key(identity, "sys", "user 1")
    gone = request_key(identity, "sys", "user 2")
    forged = request_key(identity, "sys", "user 3")
    for key, user in ((good, "user 1"), (forged, "someone else")):
        entry = {"key": key, "request": {"backend": identity, "system": "sys", "user": user},
                 "response": {"text": "<answer>dog</answer>"}, "latency_s": 0.1}  # fmt: skip
        atomic_write_json(cache.entry_path(key), entry)
    shard = tmp_path / "text" / "s0000"
    shard.mkdir(parents=True)
    atomic_write_json(
        shard / "c1.json", {"clip": "c1", "prompts": ["dog"], "cache_keys": [good, gone, forged]}
    )
    write_record(shard, rule="translate", params={"cache_dir": "llm_cache"}, inputs=[])
    auditor = _Auditor(tmp_path)
    auditor.visit("text/s0000")
    lines = [p.line() for p in auditor.problems]
    gone_entry = cache.entry_path(gone).relative_to(tmp_path)  # shown relative to the project
    assert any(line.startswith(f"missing: {gone_entry} -- LLM cache entry") for line in lines)
    assert any(
        line.startswith(f"modified: {cache.entry_path(forged).relative_to(tmp_path)}")
        for line in lines
    )
    assert len(lines) == 2, lines
    answers = auditor.nodes["text/s0000"].info["clips"]["c1"]["answers"]
    assert answers[good] == "<answer>dog</answer>" and answers[gone] is None
