"""Flow previews of the HTML report: which clips, the three tiles at their places, the files
they come from (the demo's own flow artifacts, built here by the real flow runner), and
a missing artifact named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avsbridge import paths, pipeline
from avsbridge.config import load_config
from avsbridge.flow.artifacts import flow_colour, read_flo
from avsbridge.flow.run import flow_shard
from avsbridge.io import ArtifactError, read_image, sha256_file
from avsbridge.reports.flow_previews import (
    BACKGROUND,
    GAP,
    LABEL_HEIGHT,
    _fit,
    compose_sheet,
    preview_frame,
    preview_inputs,
    preview_rows,
    write_flow_previews,
)

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ("frame", "flow", "mo")  # left to right, as the issue asks


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **overrides) -> dict:
    monkeypatch.chdir(REPO)  # the demo's dataset roots are relative to the project
    return load_config(overrides={"results_dir": str(tmp_path / "results"), **overrides})


def _build_flow(config: dict) -> None:
    """The demo flow shards the sheet reads, through the real runner (OpenCV DIS)."""
    spec = config["backends"]["flow"]
    for folder in preview_inputs(config):
        dataset, shard = Path(folder).parts[-3], Path(folder).parts[-1]
        clips = pipeline.shard_clips(config, dataset, shard)
        flow_shard(clips, spec["name"], spec["options"], config["flow"], Path(folder))


def _tiles(n: int, height: int, widths: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """Three tiles of distinct constant colours per row (row n), M_O a binary pattern."""
    mo = np.zeros((height, widths[2], 3), np.uint8)
    mo[: height // 2] = 255
    return {
        "frame": np.full((height, widths[0], 3), (200, 10 + n, 30), np.uint8),
        "flow": np.full((height, widths[1], 3), (20, 150, 40 + n), np.uint8),
        "mo": mo,
    }


def test_sheet_puts_frame_flow_and_mo_side_by_side() -> None:
    rows = [(f"row {n}", _tiles(n, 40, (50, 50, 50))) for n in range(2)]
    sheet, boxes = compose_sheet(rows, tile_height=40)
    assert len(boxes) == 2
    for (_, tiles), box in zip(rows, boxes, strict=True):
        ys = {box[c][0] for c in COLUMNS}
        assert len(ys) == 1  # one row: same top
        xs = [box[c][1] for c in COLUMNS]
        assert xs == sorted(xs) and xs[0] == GAP  # frame | flow | mo, left to right
        for left, right in zip(COLUMNS, COLUMNS[1:], strict=False):
            assert box[right][1] == box[left][3] + GAP  # a gap, no overlap
        for c in COLUMNS:
            y0, x0, y1, x1 = box[c]
            np.testing.assert_array_equal(sheet[y0:y1, x0:x1], tiles[c])  # no text on tiles
    # rows stacked top to bottom under a title strip, each with its label strip
    assert boxes[0]["frame"][0] == GAP + 2 * LABEL_HEIGHT
    assert boxes[1]["frame"][0] == boxes[0]["frame"][2] + GAP + LABEL_HEIGHT
    assert sheet.shape == (boxes[1]["mo"][2] + GAP, boxes[0]["mo"][3] + GAP, 3)
    # the label strips carry text (the titles and the row labels)
    assert (sheet[GAP : GAP + LABEL_HEIGHT] != BACKGROUND).any()
    assert (sheet[boxes[1]["frame"][0] - LABEL_HEIGHT : boxes[1]["frame"][0]] != BACKGROUND).any()


def test_sheet_scales_tiles_and_keeps_mo_binary() -> None:
    sheet, boxes = compose_sheet([("r", _tiles(0, 30, (45, 45, 45)))], tile_height=60)
    y0, x0, y1, x1 = boxes[0]["mo"]
    assert (y1 - y0, x1 - x0) == (60, 90)  # aspect ratio kept
    assert set(np.unique(sheet[y0:y1, x0:x1])) == {0, 255}  # nearest: M_O stays binary


def test_clip_choice_is_deterministic_round_robin(tmp_path, monkeypatch) -> None:
    config = _config(tmp_path, monkeypatch)
    rows = preview_rows(config)
    s4 = pipeline.dataset_clips(config, "s4")
    ms3 = pipeline.dataset_clips(config, "ms3")
    assert [(r.dataset, r.clip) for r in rows] == [
        ("s4", s4[0].id),
        ("ms3", ms3[0].id),
        ("s4", s4[1].id),
    ]
    assert rows == preview_rows(config)
    assert [r.frame for r in rows] == [preview_frame(s4[0])] * 3 == [3] * 3  # T = 5: middle
    assert rows[0].rgb == Path(s4[0].frames[2])
    folder = paths.path(config, "flow", dataset="s4", flow="opencv", shard="s0000")
    assert rows[0].flow == Path(folder) / f"{s4[0].slug}.3.flow.png"
    assert rows[0].mo == Path(folder) / f"{s4[0].slug}.3.mo.png"
    assert len(preview_rows(_config(tmp_path, monkeypatch, flow_previews={"clips": 5}))) == 5
    config["families"] = {}
    assert preview_rows(config) == []


def test_middle_frame_keeps_its_pair() -> None:
    from avsbridge.data.records import Clip

    def clip(n: int) -> Clip:
        frames = tuple(Path(f"{k}.png") for k in range(n))
        return Clip("c", "s4", "test", "x", frames, None, (None,) * n)

    assert [preview_frame(clip(n)) for n in (2, 3, 5, 10)] == [1, 2, 3, 5]


def test_demo_sheet_shows_the_flow_stage_files(tmp_path, monkeypatch) -> None:
    config = _config(tmp_path, monkeypatch)
    _build_flow(config)
    png, record_path = tmp_path / "reports" / "flow_previews.png", tmp_path / "fp.json"
    record = write_flow_previews(config, png, record_path)
    sheet = read_image(png)
    assert len(record["rows"]) == 3 and record["backend"] == "opencv"
    for row in record["rows"]:
        files, boxes = row["files"], row["boxes"]
        expected = {
            "frame": _fit(read_image(files["frame"]), 160, nearest=False),
            "flow": _fit(read_image(files["flow"]), 160, nearest=True),
            "mo": _fit(read_image(files["mo"]), 160, nearest=True),
        }
        for c in COLUMNS:
            y0, x0, y1, x1 = boxes[c]
            np.testing.assert_array_equal(sheet[y0:y1, x0:x1], expected[c])
        assert files["flow"].endswith(f".{row['frame']}.flow.png")
        assert row["sha256"]["mo"] == sha256_file(files["mo"])  # which bytes each tile shows
    # the moving demo objects are in M_O somewhere on the sheet
    mo_tiles = [sheet[b[0] : b[2], b[1] : b[3]] for b in (r["boxes"]["mo"] for r in record["rows"])]
    assert any((t == 255).any() for t in mo_tiles)


def test_missing_artifact_names_the_file(tmp_path, monkeypatch) -> None:
    config = _config(tmp_path, monkeypatch)
    out = tmp_path / "reports" / "flow_previews.png"
    first = preview_rows(config)[0]
    with pytest.raises(ArtifactError, match=r"flow preview is missing.*snakemake flow_outputs"):
        write_flow_previews(config, out, tmp_path / "fp.json")  # no flow built yet
    _build_flow(config)
    first.mo.unlink()
    with pytest.raises(ArtifactError) as info:
        write_flow_previews(config, out, tmp_path / "fp.json")
    assert info.value.path == first.mo and "M_O mask is missing" in str(info.value)
    assert not out.exists()  # nothing half-written


def test_without_previews_the_flo_is_rendered(tmp_path, monkeypatch) -> None:
    config = _config(tmp_path, monkeypatch, flow_previews={"clips": 1})
    config["flow"]["previews"] = False
    _build_flow(config)
    row = preview_rows(config)[0]
    assert row.flow.suffix == ".flo" and not list(row.flow.parent.glob("*.flow.png"))
    record = write_flow_previews(config, tmp_path / "fp.png", tmp_path / "fp.json")
    y0, x0, y1, x1 = record["rows"][0]["boxes"]["flow"]
    expected = _fit(flow_colour(read_flo(row.flow)), 160, nearest=True)
    np.testing.assert_array_equal(read_image(tmp_path / "fp.png")[y0:y1, x0:x1], expected)


def test_profile_without_flow_gets_a_placeholder(tmp_path, monkeypatch) -> None:
    config = _config(tmp_path, monkeypatch)
    config["families"] = {}  # a slice of the profile that builds no flow
    assert preview_inputs(config) == []
    record = write_flow_previews(config, tmp_path / "fp.png", tmp_path / "fp.json")
    assert record["rows"] == [] and record["backend"] is None
    with Image.open(tmp_path / "fp.png") as image:
        assert image.size[0] > 0 and (np.asarray(image) != BACKGROUND).any()  # says why
