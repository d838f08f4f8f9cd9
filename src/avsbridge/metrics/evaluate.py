"""``avsbridge evaluate``: score a folder of predicted PNGs against a folder of GT PNGs.

The metric modules are pure numpy; this module owns the protocol registry
(:data:`PROTOCOLS`: name -> what it equals) and the file side: pairing the two
trees by relative path, reading PNGs (probability maps, binary masks, AVSS labels,
raw grey GTs for ``zeroshot-baav``), naming the offending file on any mismatch, and
printing one JSON object.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from PIL import Image

from avsbridge.data.records import Clip
from avsbridge.io import ArtifactError, read_image
from avsbridge.metrics import baav
from avsbridge.metrics.avsbench import DEFAULT_BATCH_SIZE, score_avsbench
from avsbridge.metrics.avss import N_CLASSES, score_avss
from avsbridge.metrics.zeroshot import TOPK_RULES, score_zeroshot


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol: the official code it equals and what its inputs are."""

    name: str
    reference: str  # the official code (file, commit) whose numbers it reproduces
    inputs: str  # "probability" (maps in [0, 1] + binary GT), "labels" (AVSS class ids)


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            "avsbench",
            "AVSBench avs_scripts/avs_{s4,ms3}/test.py + utils/utility.py (f7414af), batched F",
            "probability",
        ),
        Protocol(
            "avsbench-frame", "AVSBench mIoU with a batch-independent pooled F", "probability"
        ),
        Protocol(
            "avss",
            "AVSBench avs_scripts/avss/test.py + utils/compute_color_metrics.py (f7414af)",
            "labels",
        ),
        Protocol(
            "zeroshot-sslalign",
            "SSLalign Evaluator_iiou / Evaluator_miou: F over a threshold sweep, empty GT"
            " skipped in F, empty-GT J = background accuracy",
            "probability",
        ),
        Protocol(
            baav.PROTOCOL,
            "BAaV eval.py + utils/utils.py (149358d): GT resized to 224, single-mask F over"
            " all samples; the protocol of BAaV Tables 1-3",
            "probability",
        ),
    )
}
#: Retired names -> the message that says what to use instead.
RETIRED_PROTOCOLS: dict[str, str] = {
    "zeroshot": "'zeroshot' was split: use 'zeroshot-baav' (BAaV's eval.py, the BAaV tables) or"
    " 'zeroshot-sslalign' (the earlier SSLalign-code variant)",
}
_SINGLE_CHANNEL_MODES = ("L", "P", "1")
_COLOUR_MODES = ("RGB", "RGBA")
_MAX_LISTED = 3  # how many missing/extra files an error message names


def avss_palette(n_classes: int = N_CLASSES) -> np.ndarray:
    """(n_classes, 3) uint8 colours of AVSBench-semantic ``labels_rgb`` (VOC-style bit palette).

    Class j spreads its bits over the channels, three at a time from the most
    significant bit down: bit 3i -> R, 3i+1 -> G, 3i+2 -> B, at bit position 7 - i.
    """
    palette = np.zeros((n_classes, 3), dtype=np.uint8)
    for class_id in range(n_classes):
        rest, shift = class_id, 7
        while rest:
            for channel in range(3):
                palette[class_id, channel] |= ((rest >> channel) & 1) << shift
            rest >>= 3
            shift -= 1
    return palette


def _png_mode(path: Path) -> str:
    """PIL mode of an image already read successfully by :func:`read_image`."""
    with Image.open(path) as img:
        return img.mode


def _grey_or_fail(path: Path, what: str, hint: str = "") -> np.ndarray:
    """8-bit grey values of a single-channel PNG (or an RGB(A) PNG whose channels agree)."""
    raw = read_image(path, mode="keep")
    mode = _png_mode(path)
    if mode == "L":
        return raw
    if mode in _SINGLE_CHANNEL_MODES:
        return read_image(path, mode="L")  # palette / bilevel: grey through the palette
    if (
        mode in _COLOUR_MODES
        and np.array_equal(raw[..., 0], raw[..., 1])
        and np.array_equal(raw[..., 1], raw[..., 2])
    ):
        return np.ascontiguousarray(raw[..., 0])
    raise ArtifactError(path, f"expected a single-channel 8-bit {what} PNG, got mode {mode}{hint}")


def read_prediction(path: Path) -> np.ndarray:
    """Predicted probability map: 8-bit PNG value / 255 as float32."""
    return _grey_or_fail(path, "probability map").astype(np.float32) / 255.0


def read_binary_gt(path: Path) -> np.ndarray:
    """Binary GT mask: pixel > 127 is foreground."""
    hint = " (a colour label map? use --protocol avss)"
    return _grey_or_fail(path, "binary mask", hint) > 127


def read_label_map(path: Path, n_classes: int = N_CLASSES) -> np.ndarray:
    """AVSS class ids from a palette PNG (indices), a grey PNG (values) or ``labels_rgb`` colours."""
    raw = read_image(path, mode="keep")
    mode = _png_mode(path)
    if mode in ("P", "L"):
        labels = raw.astype(np.int64)
    elif mode in _COLOUR_MODES:
        rgb = raw[..., :3].astype(np.int64)
        keys = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        palette = avss_palette(n_classes).astype(np.int64)
        palette_keys = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
        order = np.argsort(palette_keys)
        sorted_keys = palette_keys[order]
        pos = np.clip(np.searchsorted(sorted_keys, keys), 0, len(sorted_keys) - 1)
        known = sorted_keys[pos] == keys
        if not known.all():
            bad = rgb[~known][0]
            raise ArtifactError(
                path,
                f"{int((~known).sum())} pixels have colours outside the {n_classes}-class AVSS palette"
                f" (e.g. RGB {tuple(int(v) for v in bad)})",
            )
        labels = order[pos]
    else:
        raise ArtifactError(path, f"expected a palette, grey or RGB label PNG, got mode {mode}")
    if labels.size and labels.max() >= n_classes:
        raise ArtifactError(path, f"class id {int(labels.max())} outside 0..{n_classes - 1}")
    return labels.astype(np.uint8 if n_classes <= 256 else np.int64)


def _png_tree(root: Path, role: str) -> dict[str, Path]:
    """Relative posix path -> file for every PNG under ``root``."""
    if not root.is_dir():
        raise ArtifactError(root, f"{role} folder is missing or not a folder")
    found = {
        path.relative_to(root).as_posix(): path
        for path in root.rglob("*")
        if path.is_file() and path.suffix.lower() == ".png"
    }
    return dict(sorted(found.items()))


def paired_files(pred_dir: Path, gt_dir: Path) -> list[tuple[Path, Path]]:
    """(prediction, GT) file pairs in sorted relative-path order; errors name what is unpaired."""
    gt_files = _png_tree(Path(gt_dir), "GT")
    pred_files = _png_tree(Path(pred_dir), "prediction")
    if not gt_files:
        raise ArtifactError(gt_dir, "GT folder holds no PNG files")
    missing = [rel for rel in gt_files if rel not in pred_files]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ArtifactError(
            Path(pred_dir) / missing[0], f"missing prediction for GT {gt_files[missing[0]]}{more}"
        )
    extra = [rel for rel in pred_files if rel not in gt_files]
    if extra:
        listed = ", ".join(extra[:_MAX_LISTED]) + (" ..." if len(extra) > _MAX_LISTED else "")
        raise ArtifactError(
            pred_files[extra[0]],
            f"{len(extra)} prediction(s) without a GT under {gt_dir}: {listed}",
        )
    return [(pred_files[rel], gt_files[rel]) for rel in gt_files]


def _png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG's header, or None when it cannot be opened."""
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, SyntaxError):
        return None


def read_clip_frames(
    clips: Sequence[Clip],
    mask_dirs: Mapping[str, Path],
    read_gt: Callable[[Path], np.ndarray] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Predicted maps, binary GTs and frame names of every annotated frame, in clip order.

    The pipeline's evaluate step: ``mask_dirs`` maps a clip slug to the shard
    folder holding its predicted masks. A GT whose size differs from its
    prediction is an :class:`ArtifactError` naming the GT file, the clip, the
    frame, both sizes and the frame image's size, so the user knows which file
    is wrong (``avsbridge data check`` finds the same before any model runs).
    """
    from avsbridge.io import read_prob_png
    from avsbridge.segment.run import mask_name

    preds: list[np.ndarray] = []
    gts: list[np.ndarray] = []
    names: list[str] = []
    for clip in clips:
        folder = mask_dirs.get(clip.slug)
        if folder is None:
            raise FileNotFoundError(
                f"no predicted masks for clip {clip.id} in {sorted(map(str, set(mask_dirs.values())))}"
            )
        for k in clip.annotated:
            gt_path = Path(str(clip.masks[k]))
            pred_path = Path(folder) / mask_name(clip.slug, k + 1)
            where = f"clip {clip.id}, frame {k + 1}"
            pred = read_prob_png(pred_path)
            gt = (
                read_gt(gt_path)
                if read_gt is not None
                else (read_image(gt_path, mode="L") > 127).astype(np.float32)
            )
            if pred.shape != gt.shape:
                frame = _png_size(Path(clip.frames[k]))
                shown = f"{frame[0]}x{frame[1]}" if frame else "unreadable"
                raise ArtifactError(
                    gt_path,
                    f"{where}: GT mask is {gt.shape[1]}x{gt.shape[0]} but the prediction "
                    f"{pred_path} is {pred.shape[1]}x{pred.shape[0]} (frame {clip.frames[k]}: "
                    f"{shown}); run `avsbridge data check` to list every such file",
                )
            preds.append(pred)
            gts.append(gt)
            names.append(f"{gt_path} ({where})")
    return preds, gts, names


def _check_protocol(protocol: str) -> None:
    if protocol in RETIRED_PROTOCOLS:
        raise ValueError(RETIRED_PROTOCOLS[protocol])
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")


def score_baav_frames(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    fixed_threshold: float = baav.FIXED_THRESHOLD,
) -> dict[str, Any]:
    """``zeroshot-baav`` over (probability map, raw GT) samples, streamed one at a time.

    The GT is the mask as read from its file: 8-bit grey (or bool, read as 0/255) at
    any size; it is resized to 224 x 224 and binarised at 128 as eval.py does. A
    prediction not at 224 x 224 is resized bilinearly like BAaV's model output.
    """
    if not 0.0 <= fixed_threshold <= 1.0:
        raise ValueError(f"fixed_threshold must lie in [0, 1], got {fixed_threshold}")
    samples = (
        baav.score_sample(
            baav.resize_prediction(pred), baav.prepare_gt(gt), fixed_threshold, index=i
        )
        for i, (pred, gt) in enumerate(pairs)
    )
    return baav.summarize(samples, fixed_threshold)


def score_frames(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    protocol: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    topk_rule: str = "official",
    fixed_threshold: float | None = None,
) -> dict[str, Any]:
    """Score in-memory (prediction, GT) frames under one protocol; the pipeline's entry point.

    avsbench / avsbench-frame / zeroshot-sslalign: probability maps in [0, 1] and binary
    GT; zeroshot-baav: probability maps and the raw GT (see :func:`score_baav_frames`);
    avss: integer label maps. ``batch_size`` (frames per official batch) only affects
    ``avsbench``; ``topk_rule`` only ``zeroshot-sslalign`` (see
    :mod:`avsbridge.metrics.zeroshot`); ``fixed_threshold`` (default: the protocol's, 0.5)
    the two zero-shot protocols. The dict always has ``protocol``, ``miou``, ``fscore``,
    ``fscore_variant``, ``batch_size`` and ``n_frames``.
    """
    _check_protocol(protocol)
    threshold = 0.5 if fixed_threshold is None else float(fixed_threshold)
    if protocol == baav.PROTOCOL:
        return {"protocol": protocol, **score_baav_frames(pairs, threshold)}
    frames = list(pairs)
    preds = [p for p, _ in frames]
    gts = [g for _, g in frames]
    if protocol == "avsbench":
        result = score_avsbench(preds, gts, variant="official", batch_size=batch_size).to_dict()
    elif protocol == "avsbench-frame":
        result = score_avsbench(preds, gts, variant="pooled").to_dict()
    elif protocol == "avss":
        result = score_avss(preds, gts)
        result["batch_size"] = None
    else:
        result = score_zeroshot(preds, gts, threshold=threshold, topk_rule=topk_rule)
    return {"protocol": protocol, **result}


def read_grey_gt(path: Path) -> np.ndarray:
    """An 8-bit grey GT as stored, for ``zeroshot-baav`` (eval.py resizes it before binarising).

    Only mode ``L`` files: eval.py reads other modes wrongly (a bilevel or palette PNG
    becomes an empty or index mask; a colour GT crashes it), so they are refused here.
    """
    raw = read_image(path, mode="keep")
    mode = _png_mode(path)
    if mode != "L":
        raise ArtifactError(
            path,
            f"zeroshot-baav needs an 8-bit grey (mode L) GT, got mode {mode}; BAaV's eval.py"
            " resizes and thresholds the stored values, so convert the mask to 0/255 grey",
        )
    return raw


def _read_pairs(
    pairs: list[tuple[Path, Path]], protocol: str
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    inputs = PROTOCOLS[protocol].inputs
    for pred_path, gt_path in pairs:
        if inputs == "labels":
            gt = read_label_map(gt_path)
            pred = read_label_map(pred_path)
        elif protocol == baav.PROTOCOL:
            yield read_prediction(pred_path), read_grey_gt(gt_path)
            continue  # sizes may differ: both go to 224 x 224
        else:
            gt = read_binary_gt(gt_path)
            pred = read_prediction(pred_path)
        if pred.shape != gt.shape:
            raise ArtifactError(
                pred_path,
                f"size {pred.shape[1]}x{pred.shape[0]} differs from GT {gt_path}"
                f" size {gt.shape[1]}x{gt.shape[0]}",
            )
        yield pred, gt


def evaluate_dirs(
    pred_dir: Path,
    gt_dir: Path,
    protocol: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    topk_rule: str = "official",
    fixed_threshold: float | None = None,
) -> dict[str, Any]:
    """Read and pair two PNG trees, then :func:`score_frames` them (frames in sorted path order)."""
    _check_protocol(protocol)
    pairs = paired_files(Path(pred_dir), Path(gt_dir))
    return score_frames(
        _read_pairs(pairs, protocol), protocol, batch_size, topk_rule, fixed_threshold
    )


def _json_safe(value: Any) -> Any:
    """NaN (the adaptive mean IoU of zeroshot-baav can be NaN) becomes null in JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def evaluate_command(
    pred: Annotated[Path, typer.Option("--pred", help="Folder of predicted PNGs.")],
    gt: Annotated[Path, typer.Option("--gt", help="Folder of GT PNGs (same relative paths).")],
    protocol: Annotated[
        str,
        typer.Option("--protocol", help=f"One of: {', '.join(PROTOCOLS)}."),
    ],
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            min=1,
            help="Frames per batch of the official batched F (avsbench only); "
            "the official S4/MS3 test batch is 4 clips x 5 frames = 20.",
        ),
    ] = DEFAULT_BATCH_SIZE,
    topk_rule: Annotated[
        str,
        typer.Option(
            "--topk-rule",
            help="zeroshot-sslalign only: 'official' (SSLalign: pred > k-th largest; drops "
            "ties) or 'exact' (exactly k pixels; use for binary or 8-bit tied maps).",
        ),
    ] = "official",
    fixed_threshold: Annotated[
        float,
        typer.Option(
            "--fixed-threshold",
            min=0.0,
            max=1.0,
            help="zero-shot protocols: threshold of the fixed masks (J, F); 0.5 is eval.py's. "
            "BAaV's paper uses each RIS model's own threshold.",
        ),
    ] = 0.5,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Score predicted masks against GT masks under a benchmark protocol."""
    if protocol in RETIRED_PROTOCOLS:
        raise typer.BadParameter(RETIRED_PROTOCOLS[protocol], param_hint="--protocol")
    if protocol not in PROTOCOLS:
        raise typer.BadParameter(f"use one of {', '.join(PROTOCOLS)}", param_hint="--protocol")
    if topk_rule not in TOPK_RULES:
        raise typer.BadParameter(f"use one of {', '.join(TOPK_RULES)}", param_hint="--topk-rule")
    try:
        scores = evaluate_dirs(pred, gt, protocol, batch_size, topk_rule, fixed_threshold)
    except ArtifactError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    if json_out:
        safe = {key: _json_safe(value) for key, value in scores.items()}
        typer.echo(json.dumps(safe, sort_keys=True, allow_nan=False))
        return
    for key, value in scores.items():
        if isinstance(value, list):
            continue  # per-class lists are only in the JSON output
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        typer.echo(f"{key}: {shown}")
