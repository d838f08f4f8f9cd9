"""profiles/slurm without a cluster: what plugin 2.8 accepts and what the README promises.

The real run is tests/test_slurm_cluster.py (marker ``slurm``); these checks are cheap.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm"


@pytest.fixture(scope="module")
def profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


def test_gpus_come_from_the_rules_gpu_resource_never_from_slurm_extra(profile: dict) -> None:
    # plugin 2.8 refuses --gres in slurm_extra; the rules' `gpu` resource becomes --gpus
    for rule, res in profile.get("set-resources", {}).items():
        assert "gres" not in str(res.get("slurm_extra", "")), rule
        assert "gpu" not in res, f"{rule}: GPU use is declared by the rule, not the profile"
    assert "slurm_extra" not in profile.get("default-resources", {})


def test_conda_is_opt_in_and_status_works_without_accounting(profile: dict) -> None:
    assert "software-deployment-method" not in profile and "use-conda" not in profile
    assert profile["slurm-status-command"] == "squeue"
    # squeue needs MinJobAge >= 3 x the first check delay; SLURM's default MinJobAge is 300 s
    assert 3 * int(profile["slurm-init-seconds-before-status-checks"]) <= 300


def test_no_site_values_are_assumed(profile: dict) -> None:
    for res in [profile.get("default-resources", {}), *profile.get("set-resources", {}).values()]:
        assert "slurm_partition" not in res and "slurm_account" not in res


def test_small_jobs_ask_for_little(profile: dict) -> None:
    defaults = profile["default-resources"]
    assert defaults["mem_mb"] <= 2000 and defaults["cpus_per_task"] == 1
    assert defaults["runtime"] <= 30
    heavy = profile["set-resources"]
    assert all(heavy[r]["cpus_per_task"] <= 2 for r in ("audio_text", "segment"))
    assert "report_table" not in heavy and "evaluate" in heavy


def test_partition_example_is_what_the_plugin_reads() -> None:
    partitions = pytest.importorskip("snakemake_executor_plugin_slurm.partitions")
    parsed = partitions.read_partition_file(PROFILE / "partitions.example.yaml")
    by_name = {p.name: p.limits for p in parsed}
    assert by_name["gpu"].max_gpu > 0 and by_name["cpu"].max_gpu == 0
