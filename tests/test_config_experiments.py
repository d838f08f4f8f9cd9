"""Config loading/validation and the table -> variant mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from avsbridge import paths
from avsbridge.config import ConfigError, load_config
from avsbridge.experiments import (
    Variant,
    complete_variant,
    report_tables,
    report_variants,
    reports,
    row_cells,
)
from avsbridge.papers import table


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
    assert {"v3_0shot", "v3_1shot", "v3_3shot", "v3_5shot"} <= set(config["datasets"])


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


def _row(paper: str, table_id: str, method: str, **info):
    t = table(paper, table_id)
    return t, next(
        r for r in t.rows if r.method == method and all(r.info.get(k) == v for k, v in info.items())
    )


def test_paper_numbers_are_data():
    t1, ours = _row("openavs", "table1", "OpenAVS, Ours")
    assert (ours.values["s4_miou"], ours.values["ms3_fscore"]) == (0.582, 0.565)
    t4 = table("openavs", "table4")
    assert [r.values["api_calls_per_instance"] for r in t4.rows] == [5, 5, 15, 15]


def test_complete_variant_uses_all_prompts_for_prompt_consistency(demo_config):
    v = complete_variant(demo_config, {"dataset": "s4"})
    assert v.strategy == "pcfc" and v.aprompts == ("soundof", "metadata", "caption")
    v = complete_variant(demo_config, {"dataset": "s4", "strategy": "fc"})
    assert v.aprompts == ("caption",)
    config = {**demo_config, "results_dir": "R"}
    assert paths.metrics_path(config, v) == "R/metrics/s4/yamnet/caption/local/fc/sam/0.25.json"


def test_cells_without_a_backend_say_why(demo_config):
    t1, sam2 = _row("openavs", "table1", "OpenAVS (SAM2)")
    cells = row_cells(demo_config, t1, sam2)
    assert all(c.variant is None and "SAM2" in c.reason for c in cells.values())
    demo_config["datasets"].pop("v3_0shot", None)
    t5 = table("openavs", "table5")
    cells = row_cells(demo_config, t5, t5.rows[0])
    assert cells["v3_miou"].variant is None and "v3_0shot" in cells["v3_miou"].reason
    assert cells["s4_miou"].variant is not None


def test_missing_stage_is_named(demo_config, monkeypatch):
    from avsbridge import experiments, stages

    # a copy without two stages (deleting in place would reorder the dict on restore)
    fewer = {k: v for k, v in stages.STAGES.items() if k not in ("train", "predict")}
    monkeypatch.setattr(experiments, "STAGES", fewer)
    t1, st = _row("openavs", "table1", "OpenAVS-ST")
    cells = row_cells(demo_config, t1, st)
    assert all(c.variant is None for c in cells.values())
    assert "needs stages train, predict (not built yet)" == next(iter(cells.values())).reason


def test_student_cells_train_on_the_teachers_pseudo_labels(demo_config):
    t6 = table("openavs", "table6")
    nollm, gpt, sam2 = t6.rows[0], t6.rows[1], t6.rows[2]
    v = row_cells(demo_config, t6, gpt)["s4_miou"].variant
    assert (v.student, v.train_dataset, v.terminal) == ("demo", "s4_train", "evaluate_st")
    assert v.teacher().dataset == "s4_train" and v.teacher().llm == "local"
    raw = row_cells(demo_config, t6, nollm)["s4_miou"].variant.teacher()
    assert (raw.llm, raw.strategy, raw.aprompts) == ("none", "none", ("caption",))
    assert "no SAM2 backend" in row_cells(demo_config, t6, sam2)["s4_miou"].reason
    # the three students of a teacher share one demo training (the stand-in)
    same = {
        row_cells(demo_config, t6, r)["s4_miou"].variant
        for r in t6.rows
        if r.set.get("teacher") == "openavs_sam"
    }
    assert len(same) == 1


def test_table3_and_table4_variants(demo_config):
    t3 = report_variants(demo_config, table("openavs", "table3"))
    assert {(v.aprompts, v.llm, v.strategy) for v in t3} == {
        ((p,), llm, "none") for p in ("soundof", "metadata", "caption") for llm in ("none", "local")
    }
    t4 = table("openavs", "table4")
    assert [v.strategy for v in report_variants(demo_config, t4)] == ["none", "fc", "pc", "pcfc"]
    cell = row_cells(demo_config, t4, t4.rows[0])["api_calls_per_instance"]
    assert (cell.metric, cell.protocol) == ("alm_calls_per_instance", "calls")


def test_weak_label_variant(demo_config):
    t5 = report_variants(demo_config, table("openavs", "table5"))
    assert Variant("s4", "weaklabel", ("label",), "none", "none", "sam", 0.25) in t5


def test_ms3_weak_labels_come_from_the_configured_csv(demo_config, tmp_path: Path):
    from avsbridge.pipeline import dataset_clips

    t5 = table("openavs", "table5")
    assert Variant("ms3", "weaklabel", ("label",), "none", "none", "sam", 0.25) in report_variants(
        demo_config, t5
    )
    clips = dataset_clips(demo_config, "ms3")
    assert clips and all(c.labels for c in clips)  # the official MS3 CSV has none
    # without the CSV the MS3 OpenAVS* cell is empty and says why, never a crash later
    demo_config["datasets"]["ms3"].pop("weak_labels")
    _, weak = _row("openavs", "table5", "OpenAVS*")
    cells = row_cells(demo_config, t5, weak)
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
    f5 = report_variants(demo_config, table("openavs", "figure5"))
    assert sorted({v.box_threshold for v in f5}) == demo_config["vfm"]["sweep"]
    assert {v.dataset for v in f5} == {"s4", "ms3"}


def test_every_paper_has_its_tables_as_reports(demo_config):
    keys = report_tables(demo_config)
    assert {"table1", "table2", "table3", "table4", "table5", "table6", "figure5"} <= set(keys)
    assert {"baav/table1", "baav/table2", "baav/table3"} <= set(keys)
    assert {t.paper for t in reports()} == {"openavs", "baav", "ssp", "teso"}


def test_unknown_config_keys_and_backends_fail_at_dag_build(demo_config):
    from avsbridge.config import prepare_workflow_config

    bad = {**demo_config, "vfmm": {}}
    with pytest.raises(ConfigError, match="vfmm"):
        prepare_workflow_config(bad)
    demo_config["backends"]["vfm"]["sam"]["options"]["box_treshold"] = 0.3
    with pytest.raises(ConfigError, match=r"backends.vfm.sam.options.box_treshold"):
        prepare_workflow_config(demo_config)
    demo_config["backends"]["vfm"]["sam"]["options"].pop("box_treshold")
    demo_config["backends"]["llm"]["name"] = "gpt5-local"
    with pytest.raises(ConfigError, match=r"unknown translator backend 'gpt5-local'"):
        prepare_workflow_config(demo_config)


def test_cli_values_are_typed_and_any_key_can_be_set(demo_config):
    from avsbridge.config import prepare_workflow_config

    demo_config["llm_offline"] = "true"
    demo_config["set"] = "vfm.box_threshold=0.3;llm.strategy=pc;evaluation.batch_size=2"
    prepare_workflow_config(demo_config)
    assert demo_config["llm_offline"] is True
    assert demo_config["vfm"]["box_threshold"] == 0.3
    assert (demo_config["llm"]["strategy"], demo_config["evaluation"]["batch_size"]) == ("pc", 2)
    with pytest.raises(ConfigError, match="not KEY=VALUE"):
        prepare_workflow_config({**demo_config, "set": "vfm.box_threshold"})


def test_missing_dataset_roots_are_listed_at_once(repo_root):
    from avsbridge.config import check_dataset_roots

    config = load_config(repo_root / "config" / "paper.yaml")
    config["datasets"]["s4"]["root"] = "/nowhere/AVSBench_object"
    problems = check_dataset_roots(config)
    assert len(problems) == len(config["datasets"])
    assert problems[0].startswith("datasets.s4.root: no s4 split list under /nowhere")
    assert "opennlplab" in problems[0]
    assert check_dataset_roots(load_config()) == []  # the demo ships its data
