"""Benchmark adapters on the real split lists and on small trees in the official layouts.

The tree builders here are also used by tests/test_data_badinput.py.
"""

from __future__ import annotations

import json
import sys
import types
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from avsbridge.data.avsbench import (
    AVSS_NUM_CLASSES,
    V3_SPLIT_FILES,
    avss_binary_mask,
    avss_class_map,
    avss_palette,
    load_avss,
    load_benchmark,
    load_ms3,
    load_s4,
    load_v3,
    metadata_stats,
    read_avss_label,
    root_stats,
    v3_split_name,
)
from avsbridge.data.cli import app
from avsbridge.data.zeroshot import group_by_clip, load_sslalign_list
from avsbridge.io import write_png, write_wav

FRAME_W, FRAME_H = 32, 24
RATE = 16000

# --------------------------------------------------------------------------- tree builders


def write_frame(path: Path, seed: int, size: tuple[int, int] = (FRAME_W, FRAME_H)) -> None:
    rng = np.random.default_rng(seed)
    write_png(path, rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))


def write_mask(path: Path, size: tuple[int, int] = (FRAME_W, FRAME_H)) -> None:
    mask = np.zeros((size[1], size[0]), dtype=np.uint8)
    mask[4:12, 8:20] = 255
    write_png(path, mask)


def write_audio(path: Path, seconds: float = 5.0) -> None:
    t = np.arange(int(round(seconds * RATE))) / RATE
    write_wav(path, 0.3 * np.sin(2 * np.pi * 440.0 * t), RATE)


def make_s4_tree(
    root: Path,
    rows: list[tuple[str, str, str]],
    *,
    header: str = "name,start_time,category,split",
    media: bool = True,
) -> Path:
    """S4 in the official layout: rows are (name, category, split)."""
    meta = root / "Single-source" / "s4_meta_data.csv"
    meta.parent.mkdir(parents=True, exist_ok=True)
    lines = [header] + [f"{n},0,{c},{s}" for n, c, s in rows]
    meta.write_text("\n".join(lines) + "\n")
    if media:
        base = root / "Single-source" / "s4_data"
        for i, (name, cat, split) in enumerate(rows):
            for k in range(1, 6):
                write_frame(
                    base / "visual_frames" / split / cat / name / f"{name}_{k}.png", i * 10 + k
                )
                if split != "train" or k == 1:
                    write_mask(base / "gt_masks" / split / cat / name / f"{name}_{k}.png")
            write_audio(base / "audio_wav" / split / cat / f"{name}.wav")
    return meta


def make_ms3_tree(
    root: Path,
    rows: list[tuple[str, str]],
    *,
    header: str = "name,split",
    extra: list[str] | None = None,
    media: bool = True,
) -> Path:
    """MS3 in the official layout: rows are (name, split); ``extra`` adds a column value."""
    meta = root / "Multi-sources" / "ms3_meta_data.csv"
    meta.parent.mkdir(parents=True, exist_ok=True)
    body = [f"{n},{s}" + (f",{extra[i]}" if extra else "") for i, (n, s) in enumerate(rows)]
    meta.write_text("\n".join([header, *body]) + "\n")
    if media:
        base = root / "Multi-sources" / "ms3_data"
        for i, (name, split) in enumerate(rows):
            for k in range(1, 6):
                write_frame(base / "visual_frames" / name / f"{name}.mp4_{k}.png", i * 10 + k)
                write_mask(base / "gt_masks" / split / name / f"{name}_{k}.png")
            write_audio(base / "audio_wav" / split / f"{name}.wav")
    return meta


AVSS_HEADER = "vid,uid,s_min,s_sec,a_obj,split,label"


def class_names() -> list[str]:
    return ["background"] + [f"class{i:02d}" for i in range(1, AVSS_NUM_CLASSES)]


def write_avss_label(path: Path, label: np.ndarray, as_palette_png: bool = False) -> None:
    palette = avss_palette()
    if as_palette_png:
        img = Image.fromarray(label.astype(np.uint8), mode="P")
        img.putpalette(palette.reshape(-1).tolist())
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path)
    else:
        write_png(path, palette[label])


def avss_label_for(index: int, cls: int, size: tuple[int, int] = (FRAME_W, FRAME_H)) -> np.ndarray:
    label = np.zeros((size[1], size[0]), dtype=np.int64)
    label[2 + index % 5 : 10, 3:15] = cls
    return label


def make_avss_tree(
    root: Path,
    rows: list[tuple[str, str, str, str]],
    *,
    media: bool = True,
    label2idx: bool = True,
) -> Path:
    """AVSS in the official layout: rows are (uid, a_obj, split, label)."""
    root.mkdir(parents=True, exist_ok=True)
    meta = root / "metadata.csv"
    lines = [AVSS_HEADER] + [f"{u[:11]},{u},0,0,{o},{s},{lab}" for u, o, s, lab in rows]
    meta.write_text("\n".join(lines) + "\n")
    if label2idx:
        (root / "label2idx.json").write_text(
            json.dumps({n: i for i, n in enumerate(class_names())})
        )
    if media:
        for j, (uid, _obj, split, lab) in enumerate(rows):
            n = 10 if lab == "v2" else 5
            n_masks = 1 if (lab == "v1s" and split == "train") else n
            for i in range(n):
                frame = root / lab / uid / "frames" / f"{i}.jpg"
                frame.parent.mkdir(parents=True, exist_ok=True)
                rng = np.random.default_rng(j * 100 + i)
                Image.fromarray(
                    rng.integers(0, 256, size=(FRAME_H, FRAME_W, 3), dtype=np.uint8)
                ).save(frame, format="JPEG")
                if i < n_masks:
                    write_avss_label(
                        root / lab / uid / "labels_rgb" / f"{i}.png",
                        avss_label_for(i, 1 + j % 70),
                        as_palette_png=(i % 2 == 1),
                    )
            write_audio(root / lab / uid / "audio.wav", seconds=float(n))
    return meta


S4_ROWS = [
    ("dogA", "dog_barking", "train"),
    ("dogB", "dog_barking", "val"),
    ("pianoA", "playing_piano", "test"),
    ("pianoB", "playing_piano", "test"),
]
MS3_ROWS = [("mixA_1", "train"), ("mixB_0", "val"), ("mixC_2", "test")]
AVSS_ROWS = [
    ("aaaaaaaaaaa_0_5000", "dog", "train", "v1s"),
    ("bbbbbbbbbbb_0_5000", "piano", "test", "v1s"),
    ("ccccccccccc_1", "guitar_man", "val", "v1m"),
    ("ddddddddddd_0_10000", "hair-dryer_man", "test", "v2"),
]

# --------------------------------------------------------------------------- real split lists


def test_avss_metadata_real_counts(avsbench_meta: Path) -> None:
    root = avsbench_meta / "v3"
    stats = metadata_stats(root / "metadata.csv")
    assert stats == {
        "v1s": {"train": 3452, "val": 740, "test": 740},
        "v1m": {"train": 296, "val": 64, "test": 64},
        "v2": {"train": 4750, "val": 500, "test": 750},
    }
    test_s4 = load_avss(root, subset="v1s", split="test")
    assert len(test_s4) == 740
    assert {c.subset for c in test_s4} == {"avss-v1s"}
    v2 = load_avss(root, subset="avss-v2", split="train")
    assert len(v2) == 4750 and all(c.n_frames == 10 and len(c.annotated) == 10 for c in v2)
    v1s_train = load_avss(root, subset="v1s", split="train")
    assert all(c.annotated == [0] for c in v1s_train)


def test_avss_metadata_loads_lazily(avsbench_meta: Path, monkeypatch) -> None:
    """The media are absent: lazy loading must not touch them (speed: bench/local_speed.py)."""
    root = avsbench_meta / "v3"
    opened: list[str] = []
    real_open = Path.open

    def spy(self, *args, **kwargs):
        opened.append(str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", spy)
    clips = load_avss(root)
    monkeypatch.undo()
    assert all(p.endswith((".csv", ".json")) for p in opened), opened
    assert len(clips) == 11356
    assert not clips[0].frames[0].exists()


V3_COUNTS = {
    "meta_v3_seen": 5342,
    "meta_v3_seen_train": 4807,
    "meta_v3_seen_val": 535,
    "meta_v3_unseen": 758,
    "v3_1_shot/train": 11,
    "v3_1_shot/test": 532,
    "v3_3_shot/train": 33,
    "v3_3_shot/test": 510,
    "v3_5_shot/train": 55,
    "v3_5_shot/test": 488,
}


@pytest.mark.parametrize("split_file", V3_SPLIT_FILES)
def test_v3_split_files_real_counts(avsbench_meta: Path, tmp_path: Path, split_file: str) -> None:
    clips = load_v3(tmp_path, split_file, split_dir=avsbench_meta / "v3")
    assert len(clips) == V3_COUNTS[split_file]
    assert {c.subset for c in clips} == {"v3"}
    assert {c.split for c in clips} == {split_file}
    for clip in clips:
        assert clip.n_frames in (5, 10)
        assert clip.frames[0].is_relative_to(tmp_path)
    if "shot" in split_file:  # k-shot rows have empty s_min/s_sec/a_obj
        assert all(c.category == "" and c.labels == () for c in clips)
    else:
        assert all(c.category and c.labels for c in clips)


def test_v3_found_under_root_and_by_path(avsbench_meta: Path) -> None:
    root = avsbench_meta / "v3"
    by_name = load_v3(root, "meta_v3_unseen")
    by_path = load_v3(root, str(root / "meta_v3_unseen.csv"))
    assert by_name == by_path
    assert load_benchmark("v3", root, split="v3_1_shot/test") == load_v3(root, "v3_1_shot/test")
    assert v3_split_name(root / "v3_5_shot" / "train.csv") == "v3_5_shot/train"
    mixed = Counter(c.n_frames for c in by_name)
    assert mixed == {10: 726, 5: 32}


def test_v3_stats_use_label_column(avsbench_meta: Path) -> None:
    stats = metadata_stats(avsbench_meta / "v3" / "v3_1_shot" / "test.csv")
    assert stats == {"v2": {"v3_1_shot/test": 500}, "v1m": {"v3_1_shot/test": 32}}


@pytest.mark.parametrize(
    ("name", "marker", "n_items", "n_clips", "tail"),
    [
        ("s4_seg", "AVSbench/", 3700, 740, "Single-source/s4_data/visual_frames/test/"),
        ("ms3_seg", "AVSbench/", 320, 64, "Multi-sources/ms3_data/visual_frames/"),
        ("vpo_ss_seg", "COCO_AV/", 890, 890, "visual_frames/"),
        ("synthetic3240_seg", "synthetic3241/", 6480, 6480, "visual_frames/"),
    ],
)
def test_sslalign_lists_real_counts(
    avsbench_meta: Path,
    tmp_path: Path,
    name: str,
    marker: str,
    n_items: int,
    n_clips: int,
    tail: str,
) -> None:
    json_path = avsbench_meta / "sslalign" / f"{name}.json"
    items = load_sslalign_list(json_path, tmp_path, marker)
    assert len(items) == n_items
    groups = group_by_clip(items)
    assert len(groups) == n_clips
    assert str(items[0].image.relative_to(tmp_path)).startswith(tail)
    assert all(i.audio.is_relative_to(tmp_path) and i.gt.is_relative_to(tmp_path) for i in items)
    if name == "s4_seg":
        assert {len(v) for v in groups.values()} == {5}
        assert items[0].gt.relative_to(tmp_path).parts[:3] == (
            "Single-source",
            "s4_data",
            "gt_masks",
        )
    # default marker by file name gives the same result
    assert load_sslalign_list(json_path, tmp_path) == items


# --------------------------------------------------------------------------- S4 / MS3 trees


def test_s4_tree_layout_and_validation(tmp_path: Path) -> None:
    make_s4_tree(tmp_path, S4_ROWS)
    clips = load_s4(tmp_path, validate=True)
    assert [c.id for c in clips] == ["dogA", "dogB", "pianoA", "pianoB"]
    train = clips[0]
    assert (train.subset, train.split, train.category, train.labels) == (
        "s4",
        "train",
        "dog_barking",
        ("dog_barking",),
    )
    base = tmp_path / "Single-source" / "s4_data"
    assert train.frames == tuple(
        base / "visual_frames/train/dog_barking/dogA" / f"dogA_{k}.png" for k in range(1, 6)
    )
    assert (
        train.annotated == [0]
        and train.masks[0] == base / "gt_masks/train/dog_barking/dogA/dogA_1.png"
    )
    assert train.audio == base / "audio_wav/train/dog_barking/dogA.wav"
    assert all(c.annotated == [0, 1, 2, 3, 4] for c in clips[1:])
    assert [c.id for c in load_s4(tmp_path, "test")] == ["pianoA", "pianoB"]
    assert load_benchmark("s4", tmp_path, "val") == [clips[1]]


def test_demo_subset_name_in_official_layout(tmp_path: Path) -> None:
    make_s4_tree(tmp_path, S4_ROWS[:1], media=False)
    make_ms3_tree(tmp_path, MS3_ROWS[:1], media=False)
    assert load_s4(tmp_path, subset_name="demo-s4")[0].subset == "demo-s4"
    assert load_benchmark("ms3", tmp_path, subset_name="demo-ms3")[0].subset == "demo-ms3"


def test_s4_header_without_name_column_uses_first_column(tmp_path: Path) -> None:
    make_s4_tree(tmp_path, S4_ROWS[:2], header="video_id,start,category,split", media=False)
    assert [c.id for c in load_s4(tmp_path)] == ["dogA", "dogB"]


def test_ms3_tree_layout_and_validation(tmp_path: Path) -> None:
    make_ms3_tree(tmp_path, MS3_ROWS)
    clips = load_ms3(tmp_path, validate=True)
    assert [(c.id, c.split, c.subset, c.category, c.labels) for c in clips] == [
        ("mixA_1", "train", "ms3", "", ()),
        ("mixB_0", "val", "ms3", "", ()),
        ("mixC_2", "test", "ms3", "", ()),
    ]
    base = tmp_path / "Multi-sources" / "ms3_data"
    first = clips[0]
    assert first.frames[2] == base / "visual_frames/mixA_1/mixA_1.mp4_3.png"
    assert first.masks[4] == base / "gt_masks/train/mixA_1/mixA_1_5.png"
    assert first.audio == base / "audio_wav/train/mixA_1.wav"
    assert all(c.annotated == [0, 1, 2, 3, 4] for c in clips)
    assert load_benchmark("ms3", tmp_path, "test") == [clips[2]]


def test_ms3_uses_label_column_when_present(tmp_path: Path) -> None:
    make_ms3_tree(
        tmp_path, MS3_ROWS[:2], header="name,split,label", extra=["guitar_man", "dog"], media=False
    )
    clips = load_ms3(tmp_path)
    assert [(c.category, c.labels) for c in clips] == [
        ("guitar_man", ("guitar", "man")),
        ("dog", ("dog",)),
    ]


# --------------------------------------------------------------------------- AVSS trees


def test_avss_palette_known_colours() -> None:
    palette = avss_palette()
    assert palette.shape == (71, 3) and palette.dtype == np.uint8
    assert palette[0].tolist() == [0, 0, 0]
    assert palette[1].tolist() == [128, 0, 0]
    assert palette[2].tolist() == [0, 128, 0]
    assert palette[4].tolist() == [0, 0, 128]
    assert palette[15].tolist() == [192, 128, 128]  # PASCAL VOC "person"
    assert len({tuple(c) for c in palette.tolist()}) == 71


def test_avss_tree_layout_labels_and_masks(tmp_path: Path) -> None:
    make_avss_tree(tmp_path, AVSS_ROWS)
    clips = load_avss(tmp_path, validate=True)
    assert [(c.id, c.subset, c.split, c.n_frames, c.annotated) for c in clips] == [
        ("aaaaaaaaaaa_0_5000", "avss-v1s", "train", 5, [0]),
        ("bbbbbbbbbbb_0_5000", "avss-v1s", "test", 5, [0, 1, 2, 3, 4]),
        ("ccccccccccc_1", "avss-v1m", "val", 5, [0, 1, 2, 3, 4]),
        ("ddddddddddd_0_10000", "avss-v2", "test", 10, list(range(10))),
    ]
    v2 = clips[3]
    assert v2.labels == ("hair-dryer", "man")
    assert v2.frames[9] == tmp_path / "v2" / "ddddddddddd_0_10000" / "frames" / "9.jpg"
    assert v2.masks[0] == tmp_path / "v2" / "ddddddddddd_0_10000" / "labels_rgb" / "0.png"
    assert v2.audio == tmp_path / "v2" / "ddddddddddd_0_10000" / "audio.wav"

    class_map = avss_class_map(tmp_path)
    assert len(class_map) == 71 and class_map["background"] == 0
    palette = avss_palette(len(class_map))
    for i in (0, 1):  # RGB PNG and palette-mode PNG decode the same way
        label = read_avss_label(v2.masks[i], palette)
        expected = avss_label_for(i, 1 + 3 % 70)
        np.testing.assert_array_equal(label, expected)
        np.testing.assert_array_equal(avss_binary_mask(label), (expected > 0).astype(np.uint8))
    assert [c.id for c in load_avss(tmp_path, subset="v1s")] == [
        "aaaaaaaaaaa_0_5000",
        "bbbbbbbbbbb_0_5000",
    ]
    assert load_benchmark("avss", tmp_path, "val") == [clips[2]]


def test_v3_over_avss_tree(tmp_path: Path) -> None:
    make_avss_tree(tmp_path, AVSS_ROWS)
    split = tmp_path / "v3" / "v3_1_shot" / "test.csv"
    split.parent.mkdir(parents=True)
    split.write_text(
        AVSS_HEADER
        + "\nddddddddddd,ddddddddddd_0_10000,,,,v3_1_shot_train,v2"
        + "\nccccccccccc,ccccccccccc_1,,,,v3_1_shot_train,v1m\n"
    )
    clips = load_v3(tmp_path, "v3_1_shot/test", validate=True)
    assert [(c.id, c.n_frames, c.split, c.category) for c in clips] == [
        ("ddddddddddd_0_10000", 10, "v3_1_shot/test", ""),
        ("ccccccccccc_1", 5, "v3_1_shot/test", ""),
    ]


def test_load_benchmark_rejects_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown benchmark kind"):
        load_benchmark("kitti", tmp_path)
    with pytest.raises(ValueError, match="unknown split"):
        load_s4(tmp_path, split="dev")


# --------------------------------------------------------------------------- CLI


runner = CliRunner()


def test_cli_stats_metadata_json(avsbench_meta: Path) -> None:
    result = runner.invoke(
        app, ["stats", "--metadata", str(avsbench_meta / "v3" / "metadata.csv"), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "v1m": {"test": 64, "train": 296, "val": 64},
        "v1s": {"test": 740, "train": 3452, "val": 740},
        "v2": {"test": 750, "train": 4750, "val": 500},
    }


def test_cli_stats_s4_ms3_and_root(tmp_path: Path) -> None:
    make_s4_tree(tmp_path, S4_ROWS, media=False)
    make_ms3_tree(tmp_path, MS3_ROWS, media=False)
    make_avss_tree(tmp_path, AVSS_ROWS, media=False)
    s4 = runner.invoke(
        app, ["stats", "--metadata", str(tmp_path / "Single-source" / "s4_meta_data.csv"), "--json"]
    )
    assert s4.exit_code == 0, s4.output
    assert json.loads(s4.output) == {"s4": {"train": 1, "val": 1, "test": 2}}
    ms3 = runner.invoke(
        app,
        ["stats", "--metadata", str(tmp_path / "Multi-sources" / "ms3_meta_data.csv"), "--json"],
    )
    assert json.loads(ms3.output) == {"ms3": {"train": 1, "val": 1, "test": 1}}
    whole = runner.invoke(app, ["stats", "--root", str(tmp_path), "--json"])
    assert whole.exit_code == 0, whole.output
    summary = json.loads(whole.output)
    assert summary["layouts"] == ["s4", "ms3", "avss"]
    assert summary["avss"] == {"v1s": {"train": 1, "test": 1}, "v1m": {"val": 1}, "v2": {"test": 1}}
    assert summary == root_stats(tmp_path) | {"root": str(tmp_path)}
    text = runner.invoke(app, ["stats", "--root", str(tmp_path)])
    assert text.exit_code == 0 and "s4:" in text.output and "test: 2" in text.output


def test_cli_stats_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "metadata.csv"
    result = runner.invoke(app, ["stats", "--metadata", str(missing), "--json"])
    assert result.exit_code == 1
    assert str(missing) in result.output
    assert runner.invoke(app, ["stats", "--json"]).exit_code == 2
    both = runner.invoke(app, ["stats", "--metadata", str(missing), "--root", str(tmp_path)])
    assert both.exit_code == 2
    empty = runner.invoke(app, ["stats", "--root", str(tmp_path)])
    assert empty.exit_code == 1 and "no benchmark layout" in empty.output


def test_cli_make_demo_passes_options_through(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    fake = types.ModuleType("avsbridge.data.demo")

    def make_demo_command(seed: int = 0) -> None:
        """Fake demo generator."""
        calls.append(seed)

    fake.make_demo_command = make_demo_command  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "avsbridge.data.demo", fake)
    result = runner.invoke(app, ["make-demo", "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert calls == [7]
    assert "--seed" in runner.invoke(app, ["make-demo", "--help"]).output


def test_cli_make_demo_broken_module_leaves_stats_working(
    monkeypatch: pytest.MonkeyPatch, avsbench_meta: Path
) -> None:
    monkeypatch.setitem(sys.modules, "avsbridge.data.demo", None)  # import now fails
    broken = runner.invoke(app, ["make-demo", "--seed", "1"])
    assert broken.exit_code == 1 and "unavailable" in broken.output
    stats = runner.invoke(
        app, ["stats", "--metadata", str(avsbench_meta / "v3" / "meta_v3_unseen.csv"), "--json"]
    )
    assert stats.exit_code == 0
    assert json.loads(stats.output) == {
        "v2": {"meta_v3_unseen": 726},
        "v1m": {"meta_v3_unseen": 32},
    }
