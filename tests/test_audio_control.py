"""The audio-control axis: perturbed-audio variants get their own dataset key, nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avsbridge import paths
from avsbridge.config import load_config
from avsbridge.io import atomic_write_json
from avsbridge.reports.audio_control import (
    audio_control_rows,
    audio_control_variants,
    perturbed,
    write_audio_control,
)


@pytest.fixture()
def config(tmp_path: Path) -> dict:
    return load_config(overrides={"results_dir": str(tmp_path / "results")})


def test_dataset_keys_round_trip():
    assert paths.dataset_key("s4") == "s4"
    assert paths.dataset_key("s4", "mute") == "s4~mute"
    assert paths.split_dataset_key("ms3~wgn10") == ("ms3", "wgn10")
    assert paths.split_dataset_key("v3_0shot") == ("v3_0shot", "none")


def test_perturbed_variant_changes_only_the_dataset_level(config):
    variants = audio_control_variants(config)
    normal = next(v for v in variants if v.alm != "weaklabel" and v.perturbation == "none")
    muted = perturbed(normal, "mute")
    assert paths.metrics_path(config, normal).split("/metrics/")[1].startswith("s4/")
    assert paths.metrics_path(config, muted) == paths.metrics_path(config, normal).replace(
        "/metrics/s4/", "/metrics/s4~mute/"
    )
    weak = next(v for v in variants if v.alm == "weaklabel")
    assert perturbed(weak, "mute") is weak  # weak labels never hear the audio
    assert {v.perturbation for v in variants if v.alm != "weaklabel"} == {
        "none",
        "mute",
        "wgn10",
        "wgn40",
    }


def test_rows_and_drops_come_from_the_metrics_files(config, tmp_path: Path):
    for i, v in enumerate(audio_control_variants(config)):
        atomic_write_json(paths.metrics_path(config, v), {"miou": 0.5 - i / 100, "fscore": 0.25})
    config["datasets"].pop("v3_0shot")
    rows = audio_control_rows(config)
    ours = [r for r in rows if r["method"].startswith("OpenAVS, Ours") and r["dataset"] == "s4"]
    assert [r["audio"] for r in ours] == ["none", "mute", "wgn10", "wgn40"]
    assert ours[0]["delta_miou"] == 0 and all(r["delta_miou"] < 0 for r in ours[1:])
    weak = [r for r in rows if r["method"].startswith("OpenAVS*") and r.get("dataset") == "s4"]
    assert {r["delta_miou"] for r in weak} == {0} and "never hear" in weak[1]["note"]
    out = tmp_path / "reports" / "audio_control.csv"
    write_audio_control(config, out)
    assert json.loads(out.with_suffix(".json").read_text())["rows"][1]["audio"] == "mute"
    assert (out.parent / "audio_control.csv.prov.json").is_file()


def test_muted_audio_reaches_the_alm_as_silence(weights_mirror, tmp_path: Path):
    from avsbridge.audio_text.run import describe_shard
    from avsbridge.pipeline import dataset_clips

    config = load_config()
    clip = dataset_clips(config, "s4")[0]
    describe_shard([clip], "yamnet", {}, "caption", tmp_path / "normal")
    describe_shard([clip], "yamnet", {}, "caption", tmp_path / "mute", perturbation="mute")
    normal = json.loads((tmp_path / "normal" / f"{clip.slug}.json").read_text())
    muted = json.loads((tmp_path / "mute" / f"{clip.slug}.json").read_text())
    assert muted["audio_perturbation"] == "mute" and "audio_perturbation" not in normal
    assert muted["texts"] != normal["texts"]
    assert all(t in ("", "silence") or "silence" in t.lower() for t in muted["texts"]), muted
