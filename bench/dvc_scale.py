"""Time DVC on the full paper-profile artifact tree (real S4 / MS3 test sizes).

Builds the paper DAG over placeholder media like ``bench/dag_scale.py``, fills
every planned output with per-frame placeholder files (one JSON per clip in ALM
and text shards, a mask PNG + boxes JSON per frame in mask shards, a metrics
JSON per variant, the reports), puts the project's own ``dvc.yaml`` over it,
records the hashes with ``dvc commit`` and then times what a researcher waits
for: ``dvc status`` and a no-op ``dvc repro``. Target on 2 cores: <= 15 s each.
Prints ``{"files": N, "commit_s": t, "status_s": t, "noop_repro_s": t}``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dag_scale  # noqa: E402  (sibling bench script)

REPO = dag_scale.REPO
FRAMES_PER_CLIP = 5


def _clip_counts(config: dict) -> dict[str, int]:
    from avsbridge.data.avsbench import load_benchmark

    return {
        name: len(load_benchmark(spec["kind"], Path(spec["root"]), split=spec["split"]))
        for name, spec in config["datasets"].items()
    }


def _shard_size(config: dict, dataset: str, shard: str, n_clips: int) -> int:
    size = int(config["datasets"][dataset]["shard_size"])
    index = int(shard.removeprefix("s"))
    return max(0, min(size, n_clips - index * size))


def fill_outputs(workdir: Path, results: str, config: dict, listing: str) -> int:
    """Placeholder artifacts with the real number of files; returns the file count."""
    counts = _clip_counts(config)
    outputs: set[str] = set()
    for line in listing.splitlines():
        line = line.strip()
        if line.startswith("output:"):
            outputs.update(p.strip() for p in line.removeprefix("output:").split(","))
    n_files = 0
    pattern = re.compile(rf"^{re.escape(results)}/(alm|text|masks)/([a-z0-9_]+)/.*/(s\d{{4}})$")
    for out in sorted(outputs):
        path = workdir / out
        match = pattern.match(out)
        if match:
            family, dataset, shard = match.groups()
            n = _shard_size(config, dataset, shard, counts[dataset])
            path.mkdir(parents=True, exist_ok=True)
            for c in range(n):
                if family == "masks":
                    clip = path / f"clip{c:03d}"
                    clip.mkdir(exist_ok=True)
                    for k in range(1, FRAMES_PER_CLIP + 1):
                        (clip / f"{k}.png").write_bytes(os.urandom(1500))
                        (clip / f"{k}.boxes.json").write_bytes(os.urandom(200))
                    n_files += 2 * FRAMES_PER_CLIP
                else:
                    (path / f"clip{c:03d}.json").write_bytes(os.urandom(600))
                    n_files += 1
            for name in ("_provenance.json", ".snakemake_timestamp"):
                (path / name).write_bytes(os.urandom(300) if name.endswith("json") else b"")
                n_files += 1
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(800))
            n_files += 1
    state = workdir / results / "_snakemake_state.json"
    state.write_text(json.dumps({"format": 1, "records": {}}))
    (workdir / results / "llm_cache").mkdir(parents=True, exist_ok=True)
    return n_files + 1


def _timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"{' '.join(cmd)} failed")
    return elapsed, proc.stdout + proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    dvc = str(Path(sys.executable).with_name("dvc"))
    with tempfile.TemporaryDirectory(prefix="avsbridge-dvc-") as tmp:
        tmp_path = Path(tmp)
        data_root = tmp_path / "AVSBench_object"
        dag_scale.build_placeholder_tree(data_root)
        paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
        paper["datasets"] = {k: v for k, v in paper["datasets"].items() if k in ("s4", "ms3")}
        for ds in paper["datasets"].values():
            ds["root"] = str(data_root)
        results = paper["results_dir"]  # relative: DVC outputs live inside the project
        workdir = tmp_path / "work"
        for rel in ("src/avsbridge", "workflow", "data/demo"):
            shutil.copytree(REPO / rel, workdir / rel, ignore=shutil.ignore_patterns("__pycache__"))
        for rel in ("Snakefile", "params.yaml", "dvc.yaml"):
            shutil.copy2(REPO / rel, workdir / rel)
        configfile = workdir / "config" / "config.yaml"
        configfile.parent.mkdir(parents=True)
        configfile.write_text(yaml.safe_dump(paper))
        _, listing = dag_scale.snakemake(workdir, configfile, "-n", "--verbose")
        n_files = fill_outputs(workdir, results, paper, listing)
        subprocess.run(["git", "init", "-q"], cwd=workdir, check=True)
        _timed([dvc, "init", "-q"], workdir)
        _timed([dvc, "config", "core.analytics", "false"], workdir)
        commit_s, _ = _timed([dvc, "commit", "-f", "-q"], workdir)
        status_s, status = _timed([dvc, "status"], workdir)
        repro_s, repro = _timed([dvc, "repro"], workdir)
        result = {
            "files": n_files,
            "dvc_stages": 5,
            "commit_s": round(commit_s, 2),
            "status_s": round(status_s, 2),
            "noop_repro_s": round(repro_s, 2),
            "status_clean": "up to date" in status,
            "repro_ran_nothing": "didn't change" in repro or "up to date" in repro,
        }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>18}: {value}")


if __name__ == "__main__":
    main()
