"""Config loading/validation and the table -> variant mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from avsbridge.config import ConfigError, load_config
from avsbridge.experiments import (
    REPORTS,
    Variant,
    default_variant,
    paper_tables,
    report_variants,
    row_cells,
)


@pytest.fixture()
def demo_config() -> dict:
    return load_config()


def test_demo_profile_is_default_and_valid(demo_config):
    assert demo_config["profile"] == "demo"
    assert demo_config["vfm"]["box_threshold"] == 0.25  # from params.yaml
    assert demo_config["datasets"]["s4"]["shard_size"] == 4


def test_paper_profile_valid(repo_root):
    config = load_config(repo_root / "config" / "paper.yaml")
    assert config["backends"]["alm"]["name"] == "pengi"
    assert "v3_unseen" in config["datasets"]


def test_invalid_config_names_the_key(tmp_path: Path, repo_root):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (repo_root / "config" / "config.yaml").read_text().replace("split: test", "split: 3")
    )
    with pytest.raises(ConfigError, match=r"datasets/s4/split"):
        load_config(bad)
    with pytest.raises(ConfigError, match="strategy"):
        load_config(overrides={"llm": {"strategy": "both"}})


def test_missing_config_file_named(tmp_path: Path):
    with pytest.raises(ConfigError, match="missing"):
        load_config(tmp_path / "nope.yaml")


def test_paper_numbers_are_data():
    tables = paper_tables()
    row = next(r for r in tables["table1"]["rows"] if r["method"] == "OpenAVS, Ours")
    assert (row["s4_miou"], row["ms3_fscore"]) == (0.582, 0.565)
    assert [r["api_calls_per_instance"] for r in tables["table4"]["rows"]] == [5, 5, 15, 15]


def test_default_variant_uses_all_prompts_for_prompt_consistency(demo_config):
    v = default_variant(demo_config, "s4")
    assert v.strategy == "pcfc" and v.aprompts == ("soundof", "metadata", "caption")
    v = default_variant(demo_config, "s4", strategy="fc")
    assert v.aprompts == ("caption",)
    assert v.metrics_path("R") == "R/metrics/s4/yamnet/caption/local/fc/sam/0.25.json"


def test_cells_without_a_backend_say_why(demo_config):
    rows = paper_tables()["table1"]["rows"]
    sam2 = next(r for r in rows if r["method"] == "OpenAVS (SAM2)")
    cells = row_cells(demo_config, "table1", sam2)
    assert all(c.variant is None and "SAM2" in c.reason for c in cells.values())
    t5 = paper_tables()["table5"]["rows"][0]
    cells = row_cells(demo_config, "table5", t5)
    assert cells["v3_miou"].variant is None and "v3_unseen" in cells["v3_miou"].reason
    assert cells["s4_miou"].variant is not None


def test_table3_and_table4_variants(demo_config):
    t3 = report_variants(demo_config, "table3")
    assert {(v.aprompts, v.llm, v.strategy) for v in t3} == {
        ((p,), llm, "none") for p in ("soundof", "metadata", "caption") for llm in ("none", "local")
    }
    t4 = report_variants(demo_config, "table4")
    assert [v.strategy for v in t4] == ["none", "fc", "pc", "pcfc"]
    row = paper_tables()["table4"]["rows"][0]
    assert (
        row_cells(demo_config, "table4", row)["api_calls_per_instance"].metric
        == "alm_calls_per_instance"
    )


def test_weak_label_variant(demo_config):
    t5 = report_variants(demo_config, "table5")
    assert Variant("s4", "weaklabel", ("label",), "none", "none", "sam", 0.25) in t5


def test_ms3_weak_labels_come_from_the_configured_csv(demo_config, tmp_path: Path):
    from avsbridge.pipeline import dataset_clips

    t5 = report_variants(demo_config, "table5")
    assert Variant("ms3", "weaklabel", ("label",), "none", "none", "sam", 0.25) in t5
    clips = dataset_clips(demo_config, "ms3")
    assert clips and all(c.labels for c in clips)  # the official MS3 CSV has none
    # without the CSV the MS3 OpenAVS* cell is empty and says why, never a crash later
    demo_config["datasets"]["ms3"].pop("weak_labels")
    paper_row = next(
        r for r in paper_tables()["table5"]["rows"] if r.get("reproduce") == "openavs_weak"
    )
    cells = row_cells(demo_config, "table5", paper_row)
    ms3 = [c for name, c in cells.items() if name.startswith("ms3_")]
    assert ms3 and all(c.variant is None and "no clip-level label" in c.reason for c in ms3)


def test_weak_label_csv_errors_name_the_file(tmp_path: Path):
    from avsbridge.data.avsbench import read_weak_labels
    from avsbridge.io import ArtifactError

    good = tmp_path / "ok.csv"
    good.write_text("name,labels\nclip_a,dog_barking;male_speech\n")
    assert read_weak_labels(good) == {"clip_a": ("dog_barking", "male_speech")}
    empty = tmp_path / "empty.csv"
    empty.write_text("name,labels\nclip_a, ; \n")
    with pytest.raises(ArtifactError, match="empty.csv.*clip 'clip_a' has no label"):
        read_weak_labels(empty)
    twice = tmp_path / "twice.csv"
    twice.write_text("name,labels\nclip_a,dog\nclip_a,cat\n")
    with pytest.raises(ArtifactError, match="listed twice"):
        read_weak_labels(twice)
    no_column = tmp_path / "cols.csv"
    no_column.write_text("name,label\nclip_a,dog\n")
    with pytest.raises(ArtifactError, match="cols.csv"):
        read_weak_labels(no_column)


def test_figure5_sweeps_every_threshold(demo_config):
    f5 = report_variants(demo_config, "figure5")
    assert sorted({v.box_threshold for v in f5}) == demo_config["vfm"]["sweep"]
    assert {v.dataset for v in f5} == {"s4", "ms3"}
    assert set(REPORTS) == {"table1", "table3", "table4", "table5", "figure5"}
