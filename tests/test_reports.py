"""Tables keep the paper rows and fill reproduced cells only from metrics files.

Every metrics file of the fixture holds values no other file has, so a cell that
reads another variant's file, another key or the wrong scale fails exactly.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from avsbridge import paths
from avsbridge.config import load_config
from avsbridge.experiments import metric_value, report_variants, reports, row_cells, table_cells
from avsbridge.io import atomic_write_json
from avsbridge.papers import PAPERS_DIR_ENV, load_paper, table
from avsbridge.reports.figures import write_figure
from avsbridge.reports.index import index_markdown
from avsbridge.reports.tables import build_table, write_table


def _metrics_of(index: int) -> dict:
    """Distinct values per file: mIoU 0.1xxx, F 0.2xxx, calls 3xxx (x = the file's index)."""
    return {
        "miou": 0.1 + index / 10_000,
        "fscore": 0.2 + index / 10_000,
        "fscore_pooled": 0.3 + index / 10_000,
        "alm_calls_per_instance": 3000 + index,
    }


def _nested(metrics: dict, key: str, value: float) -> None:
    *parents, leaf = key.split(".")
    for part in parents:
        metrics = metrics.setdefault(part, {})
    metrics[leaf] = value


@pytest.fixture()
def config_with_metrics(tmp_path: Path) -> dict:
    """Every metrics file any cell reads, each key of each file a value no other has."""
    config = load_config(overrides={"results_dir": str(tmp_path / "results")})
    config["written"] = {}
    keys: dict[str, set[str]] = {}
    for t in reports():
        for c in table_cells(config, t):
            if c.variant is not None:
                keys.setdefault(paths.metrics_path(config, c.variant), set()).add(c.metric)
    for i, (path, metric_keys) in enumerate(keys.items()):
        metrics = _metrics_of(i)
        for j, key in enumerate(sorted(metric_keys - set(metrics))):
            _nested(metrics, key, 0.4 + i / 10_000 + j / 1_000_000)
        atomic_write_json(path, metrics)
        config["written"][path] = metrics
    return config


def _expected(config: dict, t, row, column_id: str):
    c = row_cells(config, t, row)[column_id]
    value = metric_value(config["written"][paths.metrics_path(config, c.variant)], c.metric)
    return value if c.protocol == "calls" else round(value * t.scale_of(t.column(column_id)), 4)


def test_every_reproduced_cell_reads_its_own_metrics_file(config_with_metrics):
    checked = 0
    for t in reports():
        if t.kind != "table":
            continue
        _, rows = build_table(config_with_metrics, t)
        repro = iter(r for r in rows if r["source"] == "reproduced")
        for paper_row in (r for r in t.rows if r.recipe):
            out = next(repro)
            for column_id, c in row_cells(config_with_metrics, t, paper_row).items():
                if c.variant is None:
                    assert out[column_id] == "" and c.reason in out["note"]
                else:
                    assert out[column_id] == _expected(config_with_metrics, t, paper_row, column_id)
                    checked += 1
    assert checked >= 36  # Tables 1 (4), 3 (12), 4 (12), 5 (8) of the demo at least


def test_table1_rows(config_with_metrics):
    t1 = table("openavs", "table1")
    header, rows = build_table(config_with_metrics, t1)
    assert len([r for r in rows if r["source"] == "paper"]) == 20
    repro = {r["method"]: r for r in rows if r["source"] == "reproduced"}
    assert set(repro) == {"OpenAVS, Ours", "OpenAVS (SAM2)", "OpenAVS-ST", "OpenAVS-ST (SAM2)"}
    ours = repro["OpenAVS, Ours"]
    assert ours["profile"] == "demo" and ours["note"] == ""
    assert "vfm=sam:demo-matcher" in ours["config"] and "strategy=pcfc" in ours["config"]
    assert repro["OpenAVS (SAM2)"]["s4_miou"] == "" and "SAM2" in repro["OpenAVS (SAM2)"]["note"]
    assert "vfm=sam2" not in repro["OpenAVS (SAM2)"]["config"]  # no cell: no variant to name
    st = repro["OpenAVS-ST"]
    assert st["note"] == "" and "student=demo" in st["config"] and "on s4_train" in st["config"]
    assert "stmetrics/s4/demo/" in st["metrics_files"]


def test_config_column_names_each_rows_own_variant(config_with_metrics):
    t3 = table("openavs", "table3")
    _, rows = build_table(config_with_metrics, t3)
    repro = [r for r in rows if r["source"] == "reproduced"]
    assert "aprompts=soundof; llm=none" in repro[0]["config"]
    assert "aprompts=soundof; llm=local" in repro[0]["config"]
    assert "aprompts=caption" in repro[2]["config"]


def test_table4_calls_are_measured(config_with_metrics):
    t4 = table("openavs", "table4")
    _, rows = build_table(config_with_metrics, t4)
    repro = [r for r in rows if r["source"] == "reproduced"]
    for paper_row, out in zip([r for r in t4.rows if r.recipe], repro, strict=True):
        assert out["api_calls_per_instance"] == _expected(
            config_with_metrics, t4, paper_row, "api_calls_per_instance"
        )
    assert len({r["api_calls_per_instance"] for r in repro}) == 4  # four distinct files


def test_scaled_tables_print_percent(config_with_metrics, monkeypatch, tmp_path: Path):
    """A table printed in percent gets reproduced values x100 (Table 6 style)."""
    data = yaml.safe_load(
        (Path(__file__).parents[1] / "src/avsbridge/resources/papers/openavs.yaml").read_text()
    )
    data["tables"]["table1"]["scale"] = 100
    folder = tmp_path / "papers"
    folder.mkdir()
    for paper in ("baav", "ssp", "teso"):
        (folder / f"{paper}.yaml").write_text(
            yaml.safe_dump({"paper": paper, "tables": {}}), encoding="utf-8"
        )
    (folder / "openavs.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    monkeypatch.setenv(PAPERS_DIR_ENV, str(folder))
    t1 = table("openavs", "table1")
    _, rows = build_table(config_with_metrics, t1)
    ours = next(r for r in rows if r["method"] == "OpenAVS, Ours" and r["source"] == "reproduced")
    c = row_cells(config_with_metrics, t1, t1.rows[6])["s4_miou"]
    raw = config_with_metrics["written"][paths.metrics_path(config_with_metrics, c.variant)]["miou"]
    assert ours["s4_miou"] == round(raw * 100, 4)


def test_adding_a_row_is_one_data_edit(config_with_metrics, monkeypatch, tmp_path: Path):
    data = yaml.safe_load(
        (Path(__file__).parents[1] / "src/avsbridge/resources/papers/openavs.yaml").read_text()
    )
    data["tables"]["table4"]["rows"].append(
        {
            "method": "prompt consistency, box 0.45",
            "values": {},
            "recipe": "table4_row",
            "set": {"strategy": "pc", "box_threshold": 0.45},
        }
    )
    folder = tmp_path / "papers"
    folder.mkdir()
    for paper in ("baav", "ssp", "teso"):
        (folder / f"{paper}.yaml").write_text(yaml.safe_dump({"paper": paper, "tables": {}}))
    (folder / "openavs.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    monkeypatch.setenv(PAPERS_DIR_ENV, str(folder))
    t4 = load_paper("openavs").tables["table4"]
    new = report_variants(config_with_metrics, t4)[-1]
    assert (new.strategy, new.box_threshold) == ("pc", 0.45)
    # the DAG would build it; here its metrics file is written by hand
    atomic_write_json(paths.metrics_path(config_with_metrics, new), _metrics_of(9999))
    _, rows = build_table(config_with_metrics, t4)
    out = next(r for r in rows if r["method"] == "prompt consistency, box 0.45" and r["profile"])
    assert out["s4_miou"] == round(_metrics_of(9999)["miou"], 4)


def test_missing_metrics_file_is_an_error(config_with_metrics):
    t5 = table("openavs", "table5")
    Path(
        paths.metrics_path(config_with_metrics, report_variants(config_with_metrics, t5)[0])
    ).unlink()
    with pytest.raises(ValueError, match="missing"):
        build_table(config_with_metrics, t5)


def test_write_table_figure_and_index(config_with_metrics, tmp_path: Path):
    config_with_metrics["datasets"].pop("v3_0shot", None)
    out = tmp_path / "reports" / "table5.csv"
    write_table(config_with_metrics, table("openavs", "table5"), out)
    rows = list(csv.DictReader(out.open()))
    weak = next(r for r in rows if r["method"] == "OpenAVS*" and r["source"] == "reproduced")
    assert weak["v3_miou"] == "" and "v3_0shot" in weak["note"]
    md = out.with_suffix(".md").read_text()
    assert md.startswith("# Table 5") and "not comparable with the paper" in md
    metrics = json.loads(out.with_suffix(".json").read_text())
    assert "OpenAVS*" in metrics["rows"]
    png, fcsv = tmp_path / "reports" / "figure5.png", tmp_path / "reports" / "figure5.csv"
    write_figure(config_with_metrics, table("openavs", "figure5"), png, fcsv)
    assert png.read_bytes()[:4] == b"\x89PNG"
    points = list(csv.DictReader(fcsv.open()))
    sweep = config_with_metrics["vfm"]["sweep"]
    filled = [p for p in points if p["miou"] != ""]
    # OpenAVS and OpenAVS* (weak labels) on S4 and MS3; the ST series is empty
    assert len(filled) == 4 * len(sweep)
    assert {p["method"] for p in filled} == {"OpenAVS", "OpenAVS* (not in paper)"}
    assert {p["note"] for p in points if p["miou"] == ""} == {
        "profile 'demo' trains no students for a figure's sweep (train_sweeps: false; "
        "one training per point)"
    }
    index = index_markdown(config_with_metrics)
    assert "| openavs | Table 1 |" in index and "baav" in index
    assert "Filled" in index
