"""Flow previews for the HTML report: a few clips as RGB frame | flow colour | M_O side by side.

The sheet is drawn from the files the flow stage already wrote (``flow/run.py``
layout), never by re-running a flow backend, so what the report shows is what
SSP's network will read. For clip ``slug`` and frame ``k`` a row shows the
dataset's frame ``k``, the flowiz preview of pair ``k`` (frame ``k`` -> ``k+1``,
``{slug}.{k}.flow.png``; rendered from ``{slug}.{k}.flo`` with the same flowiz
call when the profile writes no previews) and the binary M_O of frame ``k``
(``{slug}.{k}.mo.png``, Eq. 1 + the ``params.yaml`` binarisation rule).

Choice of clips (deterministic, metadata only, so the DAG stays cheap): round
robin over the profile's flow datasets (``families: flow``), each dataset's clips
in split-list order; ``flow_previews.clips`` (default 3) rows. Frame ``k`` is the
clip's middle frame, capped at T-1 so pair ``k`` exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from avsbridge import paths, pipeline, stages
from avsbridge.data.records import Clip
from avsbridge.flow.artifacts import flow_colour, read_flo
from avsbridge.flow.run import flo_name, frame_name, preview_name
from avsbridge.io import ArtifactError, atomic_path, atomic_write_json, read_image, sha256_file

DEFAULT_CLIPS = 3
TILE_HEIGHT = 160  # px of every tile; widths keep each frame's aspect ratio
GAP = 4  # px between tiles and rows
LABEL_HEIGHT = 14  # px of the text strip above each row (and of the column titles)
BACKGROUND = 255
COLUMNS = ("frame", "flow", "mo")
COLUMN_TITLES = {
    "frame": "RGB frame k",
    "flow": "flow k->k+1 (flowiz colour)",
    "mo": "M_O of frame k (binary)",
}
FLOW_STAGE = "flow"
BUILT_BY = "built by rule flow (snakemake flow_outputs)"


@dataclass(frozen=True)
class PreviewRow:
    """One clip of the sheet and the three files its tiles come from."""

    dataset: str
    clip: str
    frame: int  # 1-based frame k (pair k is frame k -> k+1)
    rgb: Path
    flow: Path  # the preview PNG, or the .flo when the profile writes no previews
    mo: Path

    def label(self) -> str:
        return f"{self.dataset} {self.clip}  frame {self.frame}"

    def files(self) -> dict[str, Path]:
        """The source file of each tile (column name -> path)."""
        return {"frame": self.rgb, "flow": self.flow, "mo": self.mo}


def preview_count(config: dict[str, Any]) -> int:
    count = int((config.get("flow_previews") or {}).get("clips", DEFAULT_CLIPS))
    if count < 0:
        raise ValueError(f"flow_previews.clips must be >= 0, got {count}")
    return count


def preview_frame(clip: Clip) -> int:
    """The clip's middle frame (1-based), capped at T-1 so its pair k -> k+1 exists."""
    return max(1, min((clip.n_frames + 1) // 2, clip.n_frames - 1))


def flow_datasets(config: dict[str, Any]) -> list[str]:
    """Datasets the profile builds the flow family on (``families: flow``)."""
    return stages.extra_outputs(config).get(FLOW_STAGE, [])


def _shard_of(config: dict[str, Any], dataset: str) -> dict[str, str]:
    return {
        clip.id: shard
        for shard in pipeline.shard_names(config, dataset)
        for clip in pipeline.shard_clips(config, dataset, shard)
    }


def preview_rows(config: dict[str, Any]) -> list[PreviewRow]:
    """The clips of the sheet (module docstring: which, and which frame) and their files."""
    count = preview_count(config)
    datasets = flow_datasets(config)
    if not count or not datasets:
        return []
    backend = stages.backend_spec(config, FLOW_STAGE)["name"]
    use_previews = bool((config.get("flow") or {}).get("previews", True))
    per_dataset = [pipeline.dataset_clips(config, d) for d in datasets]
    chosen: list[tuple[str, Clip]] = []
    for layer in zip_longest(*per_dataset):
        chosen += [(d, c) for d, c in zip(datasets, layer, strict=True) if c is not None]
    rows = []
    shards: dict[str, dict[str, str]] = {}
    for dataset, clip in chosen[:count]:
        if dataset not in shards:
            shards[dataset] = _shard_of(config, dataset)
        folder = Path(
            paths.path(
                config, FLOW_STAGE, dataset=dataset, flow=backend, shard=shards[dataset][clip.id]
            )
        )
        k = preview_frame(clip)
        flow = folder / (preview_name(clip.slug, k) if use_previews else flo_name(clip.slug, k))
        rows.append(
            PreviewRow(
                dataset=dataset,
                clip=clip.id,
                frame=k,
                rgb=Path(clip.frames[k - 1]),
                flow=flow,
                mo=folder / frame_name(clip.slug, k, "mo"),
            )
        )
    return rows


def preview_inputs(config: dict[str, Any]) -> list[str]:
    """The flow shard folders the sheet reads (the rule's inputs), deduplicated, in order."""
    return list(dict.fromkeys(str(row.mo.parent) for row in preview_rows(config)))


def _read(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise ArtifactError(path, f"{what} is missing ({BUILT_BY})")
    return read_image(path)


def row_images(row: PreviewRow) -> dict[str, np.ndarray]:
    """The three HxWx3 uint8 tiles of a row at their stored size; a missing file is named."""
    if not row.rgb.is_file():
        raise ArtifactError(row.rgb, f"frame {row.frame} of clip {row.clip!r} is missing")
    rgb = read_image(row.rgb)
    if row.flow.suffix == ".flo":
        if not row.flow.is_file():
            raise ArtifactError(row.flow, f"flow field is missing ({BUILT_BY})")
        flow = flow_colour(read_flo(row.flow))
    else:
        flow = _read(row.flow, "flow preview")
    mo = _read(row.mo, "M_O mask")
    for path, image in ((row.flow, flow), (row.mo, mo)):
        if image.shape[:2] != rgb.shape[:2]:
            raise ArtifactError(
                path, f"is {image.shape[:2]}, frame {row.frame} ({row.rgb}) is {rgb.shape[:2]}"
            )
    return {"frame": rgb, "flow": flow, "mo": mo}


def _fit(image: np.ndarray, height: int, nearest: bool) -> np.ndarray:
    if image.shape[0] == height:
        return image
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(image).resize((width, height), resample))


def compose_sheet(
    rows: list[tuple[str, dict[str, np.ndarray]]], tile_height: int = TILE_HEIGHT
) -> tuple[np.ndarray, list[dict[str, list[int]]]]:
    """Rows of (label, {frame, flow, mo}) -> the sheet and each tile's box [y0, x0, y1, x1].

    Tiles are scaled to ``tile_height`` (masks and flow colours nearest-neighbour, so
    M_O stays binary), placed left to right in ``COLUMNS`` order under a label strip.
    """
    fitted = [
        (label, {c: _fit(images[c], tile_height, nearest=c != "frame") for c in COLUMNS})
        for label, images in rows
    ]
    width = GAP + max(
        (sum(t[c].shape[1] + GAP for c in COLUMNS) for _, t in fitted), default=3 * (64 + GAP)
    )
    row_height = LABEL_HEIGHT + tile_height + GAP
    height = GAP + LABEL_HEIGHT + (len(fitted) * row_height if fitted else LABEL_HEIGHT + GAP)
    sheet = np.full((height, width, 3), BACKGROUND, np.uint8)
    boxes: list[dict[str, list[int]]] = []
    titles: list[tuple[int, int, str]] = []
    for r, (_, tiles) in enumerate(fitted):
        y0 = GAP + LABEL_HEIGHT + r * row_height + LABEL_HEIGHT
        x0 = GAP
        box = {}
        for c in COLUMNS:
            tile = tiles[c]
            sheet[y0 : y0 + tile.shape[0], x0 : x0 + tile.shape[1]] = tile
            box[c] = [y0, x0, y0 + tile.shape[0], x0 + tile.shape[1]]
            if r == 0:
                titles.append((x0, GAP, COLUMN_TITLES[c]))
            x0 += tile.shape[1] + GAP
        boxes.append(box)
    image = Image.fromarray(sheet)
    draw = ImageDraw.Draw(image)
    for x, y, text in titles:
        draw.text((x, y), text, fill=(0, 0, 0))
    for (label, _), box in zip(fitted, boxes, strict=True):
        draw.text((GAP, box["frame"][0] - LABEL_HEIGHT + 1), label, fill=(0, 0, 96))
    if not fitted:
        draw.text((GAP, GAP + LABEL_HEIGHT), "no flow on this profile", fill=(0, 0, 0))
    # text is drawn in the strips only: the tiles stay the artifacts' own pixels
    return np.asarray(image).copy(), boxes


def write_flow_previews(config: dict[str, Any], out_png: Path, out_json: Path) -> dict[str, Any]:
    """Write the sheet and a JSON record of which files each row's tiles are."""
    rows = preview_rows(config)
    sheet, boxes = compose_sheet([(row.label(), row_images(row)) for row in rows])
    record = {
        "profile": config["profile"],
        "backend": stages.backend_spec(config, FLOW_STAGE)["name"] if rows else None,
        "binarize": (config.get("flow") or {}).get("binarize"),
        "columns": {c: COLUMN_TITLES[c] for c in COLUMNS},
        "rows": [
            {
                "dataset": row.dataset,
                "clip": row.clip,
                "frame": row.frame,
                "pair": [row.frame, row.frame + 1],
                "files": {c: str(p) for c, p in row.files().items()},
                "sha256": {c: sha256_file(p) for c, p in row.files().items()},
                "boxes": box,
            }
            for row, box in zip(rows, boxes, strict=True)
        ],
    }
    with atomic_path(out_png) as tmp:
        Image.fromarray(sheet).save(tmp, format="PNG")
    atomic_write_json(out_json, record)
    return record
