"""Running the real Snakemake rules on a 2-clip slice of the demo benchmark (shared by tests)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def slice_datasets() -> dict:
    """The slice: the first 2 S4 test clips of the demo benchmark, one shard."""
    root = str(REPO / "data" / "demo")
    return {"s4": {"kind": "s4", "root": root, "split": "test", "shard_size": 2, "limit": 2}}


def slice_config(tmp: Path, **vfm: float) -> Path:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["profile"] = "test"
    config["results_dir"] = str(tmp / "results")
    config["datasets"] = slice_datasets()
    config["backends"]["llm"] = {"name": "none"}
    config["backends"]["vfm"]["sam"]["options"]["vocabulary"] = str(REPO / "data/demo/vocabulary")
    config["llm"] = {"strategy": vfm.pop("strategy", "none")}
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    config["vfm"] = {**params["vfm"], **vfm}
    path = tmp / f"test-{abs(hash(str(sorted(vfm.items())) + config['llm']['strategy']))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake_cmd(workdir: Path, *args: str, configfile: Path | None = None) -> list[str]:
    """This checkout's Snakefile run in ``workdir`` on 2 cores."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        *(["--configfile", str(configfile)] if configfile else []),
        "--cores",
        "2",
        *args,
    ]


def run_snakemake(workdir: Path, configfile: Path, *args: str) -> str:
    cmd = snakemake_cmd(workdir, *args, configfile=configfile)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def planned_jobs(out: str) -> dict[str, int]:
    table = out.split("Job stats:", 1)[1] if "Job stats:" in out else ""
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)
        if m.group(1) != "total"
    }


def build_slice(tmp: Path) -> tuple[Path, Path, Path]:
    """Run reports/table1.csv on the slice in ``tmp/work``; returns (tmp, work, configfile)."""
    work = tmp / "work"
    (work / "config").mkdir(parents=True)
    shutil.copy(REPO / "params.yaml", work / "params.yaml")
    configfile = slice_config(tmp)
    # The workflow's own config/config.yaml is the test profile (a --configfile
    # merges into it and could not drop the demo's MS3 dataset).
    shutil.copy(configfile, work / "config" / "config.yaml")
    run_snakemake(work, configfile, "reports/table1.csv")
    return tmp, work, configfile
