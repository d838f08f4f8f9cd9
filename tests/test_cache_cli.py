"""``avsbridge cache stats`` on a small project: per backend, per report, bad input.

The project is built the way the workflow leaves it: cache entries, translation
folders of per-clip records, metrics files with ``.prov.json`` records naming
their inputs, and a report CSV whose ``metrics_files`` column names them.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from avsbridge import paths
from avsbridge.cli import app
from avsbridge.config import load_config
from avsbridge.experiments import report_variants
from avsbridge.io import atomic_write_json
from avsbridge.papers import table
from avsbridge.reports.tables import build_table
from avsbridge.translate.backends import Completion
from avsbridge.translate.cache import CallCache

REPO = Path(__file__).resolve().parents[1]


class Backend:
    passthrough = False

    def __init__(self, backend: str, model: str) -> None:
        self._identity = {"backend": backend, "model": model}

    def identity(self) -> dict[str, Any]:
        return self._identity

    def complete(self, system: str, user: str) -> Completion:
        return Completion(f"<answer>{user}</answer>", 1000, 100, 0.5)


GPT = Backend("openai", "gpt-4o")
LOCAL = Backend("local", "smol")


def _text_dir(root: Path, cache: CallCache, backend: Backend, clips: dict[str, list[str]]) -> Path:
    """A translation folder whose clips asked ``users`` (repeats are cache hits)."""
    for slug, users in clips.items():
        keys = [cache.complete(backend, "sys", u, clip=slug).key for u in users]
        atomic_write_json(
            root / f"{slug}.json",
            {
                "prompts": ["x"] * len(users),
                "llm_requests": len(keys) + 1,
                "cache_keys": keys,
                "failed_keys": ["f" * 64],
                "fallback_frames": [0],
            },
        )
    atomic_write_json(root / "_summary.json", {"clips": len(clips)})
    atomic_write_json(root / "_provenance.json", {"rule": "translate", "inputs": {}})
    return root


def _metrics(project: Path, name: str, inputs: list[Path]) -> str:
    rel = f"results/metrics/{name}.json"
    atomic_write_json(project / rel, {"miou": 0.5})
    atomic_write_json(
        project / f"{rel}.prov.json",
        {"rule": "evaluate", "inputs": {str(p.relative_to(project)): "h" for p in inputs}},
    )
    return rel


def _report(project: Path, name: str, metrics_files: list[str]) -> None:
    path = project / "reports" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["method", "source", "metrics_files", "note"])
        writer.writeheader()
        writer.writerow({"method": "paper", "source": "paper", "metrics_files": ""})
        writer.writerow(
            {"method": "ours", "source": "reproduced", "metrics_files": ";".join(metrics_files)}
        )


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    cache = CallCache(project / "results" / "llm_cache")
    masks = project / "results" / "masks" / "s0000"
    masks.mkdir(parents=True)
    # a mask shard as the segment rule leaves it: JSON files that are not translations
    atomic_write_json(masks / "_summary.json", {"clips": {}})
    atomic_write_json(masks / "_provenance.json", {"rule": "segment", "inputs": {}})
    atomic_write_json(masks / "c1.boxes.json", {"frames": {}})
    gpt_a = _text_dir(project / "results/text/a/s0000", cache, GPT, {"c1": ["u1", "u2", "u1"]})
    gpt_b = _text_dir(project / "results/text/b/s0000", cache, GPT, {"c1": ["u2", "u3"]})
    local = _text_dir(project / "results/text/c/s0000", cache, LOCAL, {"c1": ["u1"], "c2": ["u1"]})
    m_a = _metrics(project, "a", [masks, gpt_a])
    m_b = _metrics(project, "b", [masks, gpt_b])
    m_c = _metrics(project, "c", [masks, local])
    _report(project, "table3.csv", [m_a, m_b])
    _report(project, "table4.csv", [m_b, m_c])
    (project / "config").mkdir()
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["results_dir"] = "results"
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    (project / "params.yaml").write_text((REPO / "params.yaml").read_text())
    return project


def _stats(project: Path, *args: str) -> Any:
    result = CliRunner().invoke(app, ["cache", "stats", "--project-dir", str(project), *args])
    return result


def test_stats_per_backend_and_per_report(project: Path) -> None:
    result = _stats(
        project, "--json", "--report", "reports/table3.csv", "--report", "reports/table4.csv"
    )
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["cache_dir"] == str(project / "results" / "llm_cache")  # the workflow's default
    assert stats["calls"] == 4  # gpt u1 u2 u3, local u1
    gpt = stats["by_backend"]["openai/gpt-4o"]
    assert gpt["calls"] == 3 and gpt["prompt_tokens"] == 3000
    assert gpt["cost_usd"] == pytest.approx(3 * (1000 * 2.5 + 100 * 10.0) / 1e6)
    assert stats["by_backend"]["local/smol"]["cost_usd"] == 0.0
    t3 = stats["reports"]["reports/table3.csv"]
    # a: u1 u2 u1 (+1 failed), b: u2 u3 (+1 failed) -> 7 requests, 3 distinct keys
    assert (t3["requests"], t3["calls"], t3["hits"], t3["failed_calls"]) == (7, 3, 2, 2)
    assert t3["fallback_frames"] == 2 and t3["prompt_tokens"] == 3000 and t3["clips"] == 2
    t4 = stats["reports"]["reports/table4.csv"]
    # b: u2 u3 (+1 failed); c: two clips asking local u1 (+1 failed each)
    assert (t4["requests"], t4["calls"], t4["hits"], t4["failed_calls"]) == (7, 3, 1, 3)
    assert set(t4["by_backend"]) == {"openai/gpt-4o", "local/smol"}
    assert t4["cost_usd"] == pytest.approx(2 * (1000 * 2.5 + 100 * 10.0) / 1e6)

    text = _stats(project, "--report", "reports/table3.csv").output
    assert "openai/gpt-4o: 3 calls" in text
    assert "report reports/table3.csv: 7 requests = 3 calls + 2 hits + 2 failed" in text


def test_corrupt_entry_is_an_error_naming_the_file(project: Path) -> None:
    entry = next((project / "results" / "llm_cache").glob("*/*.json"))
    entry.write_text('{"key": "cut')
    result = _stats(project)
    assert result.exit_code == 1
    assert str(entry) in result.output and "not valid JSON" in result.output


def test_missing_provenance_is_an_error_naming_the_file(project: Path) -> None:
    prov = project / "results" / "metrics" / "a.json.prov.json"
    prov.unlink()
    result = _stats(project, "--report", "reports/table3.csv")
    assert result.exit_code == 1 and str(prov) in result.output


def test_record_inconsistent_with_its_keys_is_an_error(project: Path) -> None:
    record = project / "results" / "text" / "b" / "s0000" / "c1.json"
    doc = json.loads(record.read_text())
    doc["llm_requests"] = 9
    record.write_text(json.dumps(doc))
    result = _stats(project, "--report", "reports/table4.csv")
    assert result.exit_code == 1 and str(record) in result.output


def test_explicit_cache_dir_and_empty_cache(tmp_path: Path) -> None:
    result = _stats(tmp_path, "--cache-dir", str(tmp_path / "none"))
    assert result.exit_code == 0 and "0 calls" in result.output


def test_report_note_counts_llm_fallbacks_and_failed_calls(tmp_path: Path) -> None:
    config = load_config(overrides={"results_dir": str(tmp_path / "results")})
    t4 = table("openavs", "table4")
    for v in report_variants(config, t4):
        atomic_write_json(
            paths.metrics_path(config, v),
            {
                "miou": 0.5,
                "fscore": 0.6,
                "alm_calls_per_instance": 5.0,
                "total_fallback_frames": 10 if v.strategy == "fc" else 0,
                "total_failed_calls": 2 if v.strategy == "fc" else 0,
            },
        )
    _, rows = build_table(config, t4)
    notes = {r["method"]: r["note"] for r in rows if r["source"] == "reproduced"}
    assert notes["frame consistency"] == (
        "LLM fallback: 10 frame(s) used the raw ALM text, 2 failed call(s)"
    )
    assert notes["basic"] == ""


def _vfm_summary(folder: Path, det_calls: int, hits: int, misses: int) -> None:
    calls = {
        "staged": True,
        "frames": 5,
        "batch_size": 1,
        "detector_calls": det_calls,
        "detector_batches": det_calls,
        "encoder_calls": 0,
        "encoder_batches": 0,
        "cache": {
            "detections": {
                "hits": hits,
                "misses": misses,
                "corrupt": 0,
                "stored": misses,
                "evicted": 0,
            },
            "embeddings": {"hits": 0, "misses": 0, "corrupt": 0, "stored": 0, "evicted": 0},
        },
    }
    atomic_write_json(folder / "_summary.json", {"clips": {}})
    atomic_write_json(folder / "_calls.json", {"vfm_calls": calls})
    atomic_write_json(folder / "_provenance.json", {"rule": "segment", "inputs": {}})


def test_stats_vfm_caches_entries_and_hits(project: Path) -> None:
    import numpy as np

    from avsbridge.segment.vfm_cache import (
        EMBEDDINGS,
        EntryStore,
        decode_embedding_entry,
        encode_embedding_entry,
    )

    # two threshold jobs of one variant: the first computed, the second only hit
    cold = project / "results" / "masks" / "v" / "0.25" / "s0000"
    warm = project / "results" / "masks" / "v" / "0.35" / "s0000"
    _vfm_summary(cold, det_calls=4, hits=0, misses=4)
    _vfm_summary(warm, det_calls=0, hits=4, misses=0)
    store = EntryStore(
        project / "results" / "vfm_cache", EMBEDDINGS, ".emb", decode_embedding_entry
    )
    key = "ab" + "5" * 62
    arrays = {"image_embed": ("float16", np.zeros((1, 4, 2, 2), np.float16))}
    store.store(key, encode_embedding_entry(key, {"encoder": {"model": "sam-vit_h"}}, arrays))
    m = _metrics(project, "v", [warm])
    _report(project, "fig5.csv", [m])

    result = _stats(project, "--json", "--report", "reports/fig5.csv")
    assert result.exit_code == 0, result.output
    vfm = json.loads(result.output)["vfm"]
    assert vfm["cache_dir"] == str(project / "results" / "vfm_cache")
    assert vfm["embeddings"]["entries"] == 1
    assert vfm["embeddings"]["by_model"]["sam-vit_h"]["entries"] == 1
    runs = vfm["runs"]
    assert runs["jobs"] == 3 and runs["jobs_without_counts"] == 1  # the fixture's old shard
    assert runs["detector_calls"] == 4
    assert runs["cache"]["detections"] == {
        "hits": 4,
        "misses": 4,
        "corrupt": 0,
        "stored": 4,
        "evicted": 0,
    }
    fig5 = vfm["reports"]["reports/fig5.csv"]
    assert fig5["jobs"] == 1 and fig5["detector_calls"] == 0
    assert fig5["cache"]["detections"]["hits"] == 4

    text = _stats(project, "--report", "reports/fig5.csv").output
    assert "embeddings 1 entries" in text
    assert "runs: 3 segment jobs, 10 frames; 4 detector + 0 encoder calls" in text
    assert "detections 4 hits / 4 misses" in text

    # a summary with garbage counts is an error naming it
    doc = json.loads((warm / "_calls.json").read_text())
    doc["vfm_calls"]["detector_calls"] = "many"
    (warm / "_calls.json").write_text(json.dumps(doc))
    bad = _stats(project)
    assert bad.exit_code == 1 and str(warm / "_calls.json") in bad.output
