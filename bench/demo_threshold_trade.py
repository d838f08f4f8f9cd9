"""Why the demo's Figure 5 looks as it does: per box threshold, who the kept boxes are.

For every frame of the chosen demo split (S4 + MS3) and its prompt, the demo matcher's
threshold-free candidates (the staged detector's output) are labelled against the
exact per-object masks the generator renders (``avsbridge.data.demo.clip_layout``):

- ``tp``: the box is on the named object and that object sounds in the frame;
- ``silent``: on the named object, which is visible but silent (a prompt error);
- ``lookalike``: on another vocabulary object (box IoU >= 0.5 with its mask's box);
- ``background``: on nothing.

Then, per threshold of the params' ``vfm.sweep``: box counts per label and their score
quantiles, the union mask's pixels inside / outside the GT, GT pixels lost against the
lowest threshold, and S4 / MS3 mIoU and F (``score_avsbench``, official variant) -- the
numbers Figure 5 plots. Prompts: ``--prompts DIR`` (the translate stage's folder of
``<slug>.json``; one per dataset, ``s4=DIR ms3=DIR``), or ``labels`` (each clip's
sounding objects' names on every frame, as ``bench/vfm_cache.py demo``), or
``--prompts oracle`` (the names of the objects sounding in that frame: a perfect
translator, so every kept box off them is a detector error).

    nice -n 10 python bench/demo_threshold_trade.py --split val --json
    nice -n 10 python bench/demo_threshold_trade.py --split test \
        --prompts s4=results/demo/text/s4/... --prompts ms3=results/demo/text/ms3/...
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from _demo_boxes import box_iou, mask_box

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo"


def label_candidate(
    box: tuple[float, ...], name: str, object_masks: dict[str, np.ndarray], sounding: list[str]
) -> str:
    """tp / silent / lookalike / background for one candidate box (see module doc)."""
    best, best_iou = None, 0.0
    for obj, mask in object_masks.items():
        obj_box = mask_box(mask)
        if obj_box is not None and (iou := box_iou(box, obj_box)) > best_iou:
            best, best_iou = obj, iou
    if best is None or best_iou < 0.5:
        return "background"
    if best != name:
        return "lookalike"
    return "tp" if name in sounding else "silent"


def _prompts(spec: list[str] | None, clips: list[Any], dataset: str) -> dict[str, list[str]]:
    from avsbridge.segment.run import read_prompts

    folders = dict(s.split("=", 1) for s in spec or [] if "=" in s)
    if dataset in folders:
        return {c.id: read_prompts(Path(folders[dataset]), c) for c in clips}
    return {}


def collect(split: str, prompt_spec: list[str] | None, root: Path = DEMO) -> list[dict[str, Any]]:
    """One record per frame: GT, per-candidate (score, label, mask) for its prompt."""
    from avsbridge.data import demo
    from avsbridge.data.avsbench import load_ms3, load_s4
    from avsbridge.data.demo_assets.sprites import load_sprites
    from avsbridge.io import read_image
    from avsbridge.segment.demo_detector import DemoMatcher, grabcut_mask

    plans = {p.name: p for p in demo.plan_demo(0)}
    sprites = load_sprites(root / "vocabulary")
    matcher = DemoMatcher(root / "vocabulary")
    frames: list[dict[str, Any]] = []
    for dataset, loader in (("s4", load_s4), ("ms3", load_ms3)):
        clips = [c for one in split.split(",") for c in loader(root, split=one)]
        given = _prompts(prompt_spec, clips, dataset)
        for clip in clips:
            plan = plans[clip.id]
            _, rendered, masks = demo.clip_layout(plan, sprites)
            for k, (frame_path, mask_path) in enumerate(zip(clip.frames, clip.masks, strict=True)):
                image = read_image(frame_path)
                assert np.array_equal(image, rendered[k]), f"{clip.id} frame {k} re-renders"
                sounding = plan.sounding_in_frame(k)
                if clip.id in given:
                    prompt = given[clip.id][k]
                elif prompt_spec == ["oracle"]:  # a perfect translator: who sounds now
                    prompt = ", ".join(sounding)
                else:
                    prompt = ", ".join(sorted(plan.sounding))
                # the generator's GT: the published mask where there is one (train: frame 1)
                gt = demo.gt_mask(masks[k], sounding) > 127
                if mask_path is not None:
                    assert np.array_equal(gt, read_image(mask_path, mode="L") > 127), mask_path
                names = matcher.detection_queries(prompt, 0.25)
                raws = matcher.detect_batch([image] * len(names), names) if names else []
                cands = []
                for name, raw in zip(names, raws, strict=True):
                    for rank, r in enumerate(raw):
                        cand = matcher._candidate(name, r)
                        box = cand.clipped_box(image.shape[1], image.shape[0])
                        cands.append(
                            {
                                "name": name,
                                "rank": rank,
                                "score": cand.score,
                                "label": label_candidate(box, name, masks[k], sounding),
                                "mask": grabcut_mask(image, cand, matcher.grabcut_iterations),
                            }
                        )
                frames.append(
                    {
                        "dataset": dataset,
                        "clip": clip.id,
                        "frame": k,
                        "prompt": prompt,
                        "gt": gt,
                        "cands": cands,
                    }
                )
    return frames


def _quantiles(values: list[float]) -> list[float] | None:
    if not values:
        return None
    return [round(float(q), 3) for q in np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0])]


def trade(frames: list[dict[str, Any]], thresholds: list[float], max_det: int = 5) -> dict:
    """Per threshold: box counts and scores per label, pixel areas, mIoU / F per dataset."""
    from avsbridge.metrics.avsbench import score_avsbench

    out: dict[str, Any] = {"frames": len(frames), "thresholds": {}}
    base_union = None
    for thr in thresholds:
        counts: Counter[str] = Counter()
        scores: dict[str, list[float]] = {}
        inside = outside = lost = 0
        preds: dict[str, list[np.ndarray]] = {"s4": [], "ms3": []}
        gts: dict[str, list[np.ndarray]] = {"s4": [], "ms3": []}
        unions = []
        for f in frames:
            per_name: Counter[str] = Counter()
            union = np.zeros(f["gt"].shape, bool)
            for c in f["cands"]:  # best first per name, as keep_candidates
                if c["score"] >= thr and per_name[c["name"]] < max_det:
                    per_name[c["name"]] += 1
                    counts[c["label"]] += 1
                    scores.setdefault(c["label"], []).append(c["score"])
                    union |= c["mask"]
            unions.append(union)
            inside += int((union & f["gt"]).sum())
            outside += int((union & ~f["gt"]).sum())
            preds[f["dataset"]].append(union.astype(np.float32))
            gts[f["dataset"]].append(f["gt"].astype(np.float32))
        if base_union is None:
            base_union = unions
        lost = sum(
            int((b & f["gt"] & ~u).sum())
            for b, u, f in zip(base_union, unions, frames, strict=True)
        )
        removed_fp = sum(
            int((b & ~f["gt"] & ~u).sum())
            for b, u, f in zip(base_union, unions, frames, strict=True)
        )
        row: dict[str, Any] = {
            "boxes": dict(sorted(counts.items())),
            "score_quantiles": {k: _quantiles(v) for k, v in sorted(scores.items())},
            "pixels_in_gt": inside,
            "pixels_outside_gt": outside,
            "gt_pixels_lost_vs_lowest": lost,
            "fp_pixels_removed_vs_lowest": removed_fp,
        }
        for ds in ("s4", "ms3"):
            if preds[ds]:
                s = score_avsbench(preds[ds], gts[ds])
                row[f"{ds}_miou"] = round(s.miou, 4)
                row[f"{ds}_fscore"] = round(s.fscore, 4)
        out["thresholds"][f"{thr:.2f}"] = row
    cands = [c for f in frames for c in f["cands"]]
    out["gt_pixels"] = int(sum(f["gt"].sum() for f in frames))
    out["empty_gt_frames"] = sum(1 for f in frames if not f["gt"].any())
    out["candidates"] = dict(Counter(c["label"] for c in cands))
    # reliability: P(label == tp or silent, i.e. the named object) per score bin
    bins = [0.0, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 1.0001]
    rel = {}
    for lo, hi in zip(bins[:-1], bins[1:], strict=True):
        sel = [c for c in cands if lo <= c["score"] < hi]
        if sel:
            rel[f"{lo:.2f}-{min(hi, 1.0):.2f}"] = {
                "n": len(sel),
                "named_object": round(
                    sum(c["label"] in ("tp", "silent") for c in sel) / len(sel), 3
                ),
                "tp": round(sum(c["label"] == "tp" for c in sel) / len(sel), 3),
                "mean_score": round(float(np.mean([c["score"] for c in sel])), 3),
            }
    out["reliability"] = rel
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", default="test", help="split(s), comma-separated")
    parser.add_argument("--prompts", action="append", help="DATASET=DIR of translate outputs")
    parser.add_argument("--demo", type=Path, default=DEMO, help="demo root (data/demo)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import yaml

    thresholds = [
        float(t) for t in yaml.safe_load((REPO / "params.yaml").read_text())["vfm"]["sweep"]
    ]
    result = trade(collect(args.split, args.prompts, args.demo), thresholds)
    result["split"] = args.split
    result["prompts"] = args.prompts or "labels"
    print(json.dumps(result, indent=1 if args.json else None))


if __name__ == "__main__":
    main()
