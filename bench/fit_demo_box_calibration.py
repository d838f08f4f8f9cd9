"""Fit the demo matcher's BOX_CALIBRATION on the demo's train + val clips (never test).

Candidates: for every frame (train frames 2-5 too: the generator knows every object's
mask, only the published GT skips them) of the train and val S4 / MS3 clips, the
threshold-free candidates (``detect_candidates`` with the other objects as rivals) of
the templates of every object the clip shows (sounding, silent, look-alikes) and of 4
other vocabulary objects drawn per clip (seeded). A candidate is true when its box has
IoU >= 0.5 with the named object's exact-mask box (the generator's per-object masks).
Features: (1, ncc, colour, clipped margin); logistic regression by IRLS with a small
ridge. Prints the weights, the train-only fit's reliability on val (held out), and the
train + val fit's reliability on train + val, as JSON.

    nice -n 10 python bench/fit_demo_box_calibration.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from _demo_boxes import box_iou, mask_box

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo"
BINS = (0.0, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.9, 1.0001)


def collect(splits: tuple[str, ...], root: Path = DEMO) -> list[dict[str, Any]]:
    """(split, ncc, colour, margin, true) of every candidate (see module doc)."""
    from avsbridge.data import demo
    from avsbridge.data.demo_assets.sprites import load_sprites
    from avsbridge.io import read_image
    from avsbridge.segment.demo_detector import RIVAL_MARGIN_CAP, DemoMatcher

    sprites = load_sprites(root / "vocabulary")
    matcher = DemoMatcher(root / "vocabulary", encoder_factory=lambda: None)  # type: ignore[arg-type,return-value]
    vocabulary = sorted(matcher.vocabulary)
    rows: list[dict[str, Any]] = []
    for plan in demo.plan_demo(0):
        if plan.split not in splits:
            continue
        rng = np.random.default_rng([plan.clip_seed, 77])
        others = [o for o in vocabulary if o not in plan.objects]
        names = [*plan.objects, *(str(o) for o in rng.choice(others, size=4, replace=False))]
        _, frames, masks = demo.clip_layout(plan, sprites)
        frame_paths, _, _ = demo.clip_paths(root, plan)
        for k, frame_path in enumerate(frame_paths):  # every frame: the generator's masks
            image = read_image(frame_path)
            assert np.array_equal(image, frames[k]), f"{plan.name} frame {k} re-renders"
            raws = matcher.detect_batch([image] * len(names), names)
            for name, raw in zip(names, raws, strict=True):
                target = mask_box(masks[k][name]) if name in masks[k] else None
                for r in raw:
                    cand = matcher._candidate(name, r)
                    box = cand.clipped_box(image.shape[1], image.shape[0])
                    rows.append(
                        {
                            "split": plan.split,
                            "ncc": cand.ncc,
                            "colour": cand.colour,
                            "margin": float(
                                np.clip(cand.margin, -RIVAL_MARGIN_CAP, RIVAL_MARGIN_CAP)
                            ),
                            "true": target is not None and box_iou(box, target) >= 0.5,
                        }
                    )
    return rows


def _design(rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([[1.0, r["ncc"], r["colour"], r["margin"]] for r in rows], dtype=np.float64)
    y = np.array([float(r["true"]) for r in rows], dtype=np.float64)
    return x, y


def fit_logistic(x: np.ndarray, y: np.ndarray, ridge: float = 1e-2, steps: int = 100) -> np.ndarray:
    """IRLS (Newton) for logistic regression; ``ridge`` on the non-bias weights."""
    w = np.zeros(x.shape[1])
    penalty = np.eye(x.shape[1]) * ridge
    penalty[0, 0] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        grad = x.T @ (p - y) + penalty @ w
        hess = (x * (p * (1 - p))[:, None]).T @ x + penalty
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return w


def reliability(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    p = 1.0 / (1.0 + np.exp(-(x @ w)))
    out: dict[str, Any] = {}
    for lo, hi in zip(BINS[:-1], BINS[1:], strict=True):
        sel = (p >= lo) & (p < hi)
        if sel.any():
            out[f"{lo:.2f}-{min(hi, 1.0):.2f}"] = {
                "n": int(sel.sum()),
                "true_rate": round(float(y[sel].mean()), 3),
                "mean_score": round(float(p[sel].mean()), 3),
            }
    eps = 1e-12
    out["log_loss"] = round(float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))), 4)
    return out


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demo", type=Path, default=DEMO, help="demo root (data/demo)")
    rows = collect(("train", "val"), parser.parse_args().demo)
    train = [r for r in rows if r["split"] == "train"]
    val = [r for r in rows if r["split"] == "val"]
    w_train = fit_logistic(*_design(train))
    w_all = fit_logistic(*_design(rows))
    print(
        json.dumps(
            {
                "candidates": {"train": len(train), "val": len(val)},
                "true": {
                    "train": sum(r["true"] for r in train),
                    "val": sum(r["true"] for r in val),
                },
                "weights_train_only": [round(float(v), 3) for v in w_train],
                "val_reliability_of_train_fit": reliability(w_train, *_design(val)),
                "weights_train_val": [round(float(v), 3) for v in w_all],
                "train_val_reliability": reliability(w_all, *_design(rows)),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
