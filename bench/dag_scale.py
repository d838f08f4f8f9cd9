"""Build the full paper-profile DAG at real benchmark size and time it.

Media are replaced by empty placeholder files in a temp dir laid out like the
official AVSBench-object tree (the real S4 / MS3 test lists,
``$AVSBRIDGE_FIXTURES/avsbench-meta/sslalign``) and the AVSBench-semantic tree
(the real V3 split files, ``avsbench-meta/v3``). Prints ``{"jobs": N,
"dryrun_s": t, "noop_s": t, ...}``: dry-run of every report of all four papers
(the list comes from the paper files), then, after ``--touch`` marks every
output done, the dry-run that must find nothing to do. Targets on 2 cores:
jobs <= 10,000, dry-run and no-op <= 15 s each.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
V3_DATASETS = ("v3_0shot", "v3_1shot", "v3_3shot", "v3_5shot")


def targets(config: dict) -> list[str]:
    """Every report of every paper (the paper files' list) plus reports/index.md."""
    from avsbridge import paths
    from avsbridge.experiments import report_tables

    rd = paths.reports_dir(config)
    out = [
        f"{rd}/{key}.{'png' if t.kind == 'figure' else 'csv'}"
        for key, t in report_tables(config).items()
    ]
    return [*out, paths.index_path(config)]


def meta_dir() -> Path:
    default = REPO.parent / "shared" / "fixtures"
    return Path(os.environ.get("AVSBRIDGE_FIXTURES", default)) / "avsbench-meta"


def fixtures_dir() -> Path:
    return meta_dir() / "sslalign"


def build_semantic_tree(root: Path) -> dict[str, int]:
    """AVSBench-semantic layout for the real V3 split files: the files + empty audio."""
    import csv
    import shutil

    v3 = meta_dir() / "v3"
    shutil.copytree(v3, root / "v3")
    shutil.copy(v3 / "metadata.csv", root / "metadata.csv")
    (root / "label2idx.json").write_text(json.dumps({"background": 0}))
    counts: dict[str, int] = {}
    for name, split in (
        ("v3_0shot", "meta_v3_unseen"),
        ("v3_1shot", "v3_1_shot/test"),
        ("v3_3shot", "v3_3_shot/test"),
        ("v3_5shot", "v3_5_shot/test"),
    ):
        with (v3 / f"{split}.csv").open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        counts[name] = len(rows)
        for row in rows:
            clip = root / row["label"] / row["uid"]
            clip.mkdir(parents=True, exist_ok=True)
            (clip / "audio.wav").touch()
    return counts


def _tail(path: str, marker: str) -> str:
    return path.split(marker, 1)[1]


def build_placeholder_tree(root: Path) -> tuple[int, int]:
    """Official S4/MS3 layout with empty files; returns (#S4 clips, #MS3 clips)."""
    lists = fixtures_dir()
    s4 = json.loads((lists / "s4_seg.json").read_text())
    ms3 = json.loads((lists / "ms3_seg.json").read_text())
    s4_rows: dict[str, str] = {}
    for item in s4:
        tail = _tail(
            item["image"], "AVSbench/"
        )  # Single-source/s4_data/visual_frames/test/cat/name/name_k.png
        parts = tail.split("/")
        category, name = parts[4], parts[5]
        s4_rows[name] = category
        for key in ("image", "gt_box", "audio"):
            p = root / _tail(item[key], "AVSbench/")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.touch()
    ms3_names: set[str] = set()
    for item in ms3:
        tail = _tail(item["image"], "AVSbench/")
        ms3_names.add(tail.split("/")[3])
        for key in ("image", "gt_box", "audio"):
            p = root / _tail(item[key], "AVSbench/")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.touch()
    # S4 frames 1..5 / MS3 frames 1..5 exist for every clip (lists hold all 5).
    (root / "Single-source").mkdir(parents=True, exist_ok=True)
    (root / "Single-source" / "s4_meta_data.csv").write_text(
        "name,category,split\n" + "".join(f"{n},{c},test\n" for n, c in sorted(s4_rows.items()))
    )
    (root / "Multi-sources" / "ms3_meta_data.csv").write_text(
        "name,split\n" + "".join(f"{n},test\n" for n in sorted(ms3_names))
    )
    return len(s4_rows), len(ms3_names)


ZEROSHOT_LISTS = {  # BAaV zero-shot datasets: (list file, marker, placeholder root)
    "is3": ("synthetic3240_seg.json", "synthetic3241/", "IS3"),
    "s4_zeroshot": ("s4_seg.json", "AVSbench/", "AVSBench_object"),
    "vpo_ss": ("vpo_ss_seg.json", "COCO_AV/", "COCO_AV"),
}


def build_zeroshot_trees(tmp: Path) -> dict[str, int]:
    """IS3 / VPO-SS placeholder media for the real SSLalign lists (S4 reuses the object tree)."""
    counts = {}
    for name, (list_name, marker, folder) in ZEROSHOT_LISTS.items():
        items = json.loads((fixtures_dir() / list_name).read_text())
        counts[name] = len(items)
        for item in items:
            for key in ("image", "gt_box", "gt", "gt_mask", "audio"):
                if key in item:
                    p = tmp / folder / _tail(item[key], marker)
                    p.parent.mkdir(parents=True, exist_ok=True)
                    p.touch()
    return counts


def paper_bench_config(data_root: Path, semantic_root: Path, results_dir: str) -> dict:
    """The paper profile over the placeholder AVSBench-object and -semantic trees."""
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    for name, ds in paper["datasets"].items():
        if name in ZEROSHOT_LISTS:
            list_name, _, folder = ZEROSHOT_LISTS[name]
            ds["root"] = str(data_root.parent / folder)
            ds["list"] = str(fixtures_dir() / list_name)
            continue
        semantic = name in V3_DATASETS or ds["kind"] == "avss"
        ds["root"] = str(semantic_root if semantic else data_root)
    paper["results_dir"] = results_dir
    return paper


def snakemake(workdir: Path, configfile: Path, *extra: str) -> tuple[float, str]:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        "--cores",
        "2",
        *(["--quiet", "rules"] if "--verbose" not in extra else []),
        *[e for e in extra if e != "--verbose"],
        *targets(yaml.safe_load(configfile.read_text())),
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"snakemake failed ({' '.join(extra)})")
    return elapsed, proc.stdout + proc.stderr


def create_outputs(workdir: Path, dryrun_output: str) -> int:
    """Make every planned output exist (folders for directory() outputs, else files)."""
    outputs: set[str] = set()
    for line in dryrun_output.splitlines():
        line = line.strip()
        if line.startswith("output:"):
            outputs.update(p.strip() for p in line.removeprefix("output:").split(","))
    from avsbridge import paths
    from avsbridge.stages import STAGES

    # folder outputs: every stage family whose job writes a folder (with its summary)
    folders = {paths.ROOTS[st.family] for st in STAGES.values() if st.summary is not None}
    for out in sorted(outputs):
        path = Path(out) if Path(out).is_absolute() else workdir / out
        if any(f"/{family}/" in out for family in folders):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    return len(outputs)


def count_jobs(output: str) -> int:
    match = re.search(r"^total\s+(\d+)", output, flags=re.M)
    return int(match.group(1)) if match else 0


def print_result(result: dict, as_json: bool) -> None:
    """One JSON object (``--json``) or aligned ``key: value`` lines."""
    if as_json:
        print(json.dumps(result))
        return
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:>{width}}: {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="avsbridge-dag-") as tmp:
        tmp_path = Path(tmp)
        data_root = tmp_path / "AVSBench_object"
        n_s4, n_ms3 = build_placeholder_tree(data_root)
        v3_counts = build_semantic_tree(tmp_path / "AVSBench_semantic")
        zeroshot_counts = build_zeroshot_trees(tmp_path)
        paper = paper_bench_config(
            data_root, tmp_path / "AVSBench_semantic", str(tmp_path / "results")
        )
        configfile = tmp_path / "paper-bench.yaml"
        configfile.write_text(yaml.safe_dump(paper))
        workdir = tmp_path / "work"
        workdir.mkdir()
        (workdir / "params.yaml").write_text((REPO / "params.yaml").read_text())
        (workdir / "config").mkdir()
        (workdir / "config" / "config.yaml").write_text(
            (REPO / "config" / "config.yaml").read_text()
        )
        dry_s, out = snakemake(workdir, configfile, "-n")
        jobs = count_jobs(out)
        _, listing = snakemake(workdir, configfile, "-n", "--verbose")
        create_outputs(workdir, listing)
        touch_s, _ = snakemake(workdir, configfile, "--touch")
        noop_s, noop_out = snakemake(workdir, configfile, "-n")
        result = {
            "jobs": jobs,
            "dryrun_s": round(dry_s, 2),
            "noop_s": round(noop_s, 2),
            "touch_s": round(touch_s, 2),
            "s4_clips": n_s4,
            "ms3_clips": n_ms3,
            **{f"{k}_clips": v for k, v in v3_counts.items()},
            **{f"{k}_samples": v for k, v in zeroshot_counts.items()},
            "reports": len(targets(paper)),
            "noop_jobs": count_jobs(noop_out),
        }
    print_result(result, args.json)


if __name__ == "__main__":
    main()
