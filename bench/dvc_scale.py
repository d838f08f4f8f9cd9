"""Time DVC on the full paper-profile artifact tree (real S4 / MS3 test sizes).

Builds the paper DAG over placeholder media like ``bench/dag_scale.py``, fills
every planned output with per-frame placeholder files (one JSON per clip in ALM
and text shards, a mask PNG per frame + one boxes JSON per clip in mask shards, a metrics
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

from avsbridge.segment.run import boxes_name, mask_name  # noqa: E402

REPO = dag_scale.REPO
FRAMES_PER_CLIP = 5
FAMILY_FILES: dict[str, int] = {}  # files per artifact family, filled by fill_outputs


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


def fill_outputs(workdir: Path, results: str, config: dict, listing: str, llm_entries: int) -> int:
    """Placeholder artifacts with the real number of files; returns the file count."""
    counts = _clip_counts(config)
    outputs: set[str] = set()
    for line in listing.splitlines():
        line = line.strip()
        if line.startswith("output:"):
            outputs.update(p.strip() for p in line.removeprefix("output:").split(","))
    n_files = 0
    by_family: dict[str, int] = {}
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
                    slug = f"clip{c:03d}"  # the segment rule's own file names
                    for k in range(1, FRAMES_PER_CLIP + 1):
                        (path / mask_name(slug, k)).write_bytes(os.urandom(1500))
                    (path / boxes_name(slug)).write_bytes(os.urandom(1000))
                    n_files += FRAMES_PER_CLIP + 1
                else:
                    (path / f"clip{c:03d}.json").write_bytes(os.urandom(600))
                    n_files += 1
            for name in ("_provenance.json", ".snakemake_timestamp"):
                (path / name).write_bytes(os.urandom(300) if name.endswith("json") else b"")
                n_files += 1
            by_family[family] = (
                by_family.get(family, 0) + (FRAMES_PER_CLIP + 1 if family == "masks" else 1) * n + 2
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == ".png":
                path.write_bytes(os.urandom(800))
            else:  # reports and metrics are text that DVC parses
                path.write_text(json.dumps({"miou": 0.5, "fill": os.urandom(300).hex()}))
            n_files += 1
    state = workdir / results / "_snakemake_state.json"
    state.write_text(json.dumps({"format": 1, "records": {}}))
    cache = workdir / results / "llm_cache"
    for _ in range(llm_entries):  # one entry per LLM call ever made
        key = os.urandom(32).hex()
        (cache / key[:2]).mkdir(parents=True, exist_ok=True)
        (cache / key[:2] / f"{key}.json").write_bytes(os.urandom(1200))
    by_family["llm_cache"] = llm_entries
    FAMILY_FILES.update(by_family)
    return n_files + 1 + llm_entries


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
    parser.add_argument(
        "--llm-entries",
        type=int,
        default=10_000,
        help="LLM cache entries (Table 4 alone: ~(5+5+1+1) calls x 804 test clips)",
    )
    args = parser.parse_args()
    dvc = str(Path(sys.executable).with_name("dvc"))
    with tempfile.TemporaryDirectory(prefix="avsbridge-dvc-") as tmp:
        tmp_path = Path(tmp)
        data_root = tmp_path / "AVSBench_object"
        dag_scale.build_placeholder_tree(data_root)
        # relative results folder: DVC outputs live inside the project
        paper = dag_scale.paper_bench_config(data_root, "results/paper")
        results = paper["results_dir"]
        workdir = tmp_path / "work"
        for rel in ("src/avsbridge", "workflow", "data/demo"):
            shutil.copytree(REPO / rel, workdir / rel, ignore=shutil.ignore_patterns("__pycache__"))
        for rel in ("Snakefile", "params.yaml", "dvc.yaml"):
            shutil.copy2(REPO / rel, workdir / rel)
        configfile = workdir / "config" / "config.yaml"
        configfile.parent.mkdir(parents=True)
        configfile.write_text(yaml.safe_dump(paper))
        _, listing = dag_scale.snakemake(workdir, configfile, "-n", "--verbose")
        n_files = fill_outputs(workdir, results, paper, listing, args.llm_entries)
        subprocess.run(["git", "init", "-q"], cwd=workdir, check=True)
        _timed([dvc, "init", "-q"], workdir)
        _timed([dvc, "config", "core.analytics", "false"], workdir)
        commit_s, _ = _timed([dvc, "commit", "-f"], workdir)
        status_s, status = _timed([dvc, "status"], workdir)
        repro_s, repro = _timed([dvc, "repro"], workdir)
        result = {
            "files": n_files,
            "files_by_family": FAMILY_FILES,
            "dvc_stages": 5,
            "commit_s": round(commit_s, 2),
            "status_s": round(status_s, 2),
            "noop_repro_s": round(repro_s, 2),
            "status_clean": "up to date" in status,
            "repro_ran_nothing": "didn't change" in repro or "up to date" in repro,
        }
    dag_scale.print_result(result, args.json)


if __name__ == "__main__":
    main()
