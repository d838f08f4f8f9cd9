"""Every bad-input case of the adapters raises ArtifactError naming the offending file."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_data_adapters import (
    AVSS_HEADER,
    AVSS_ROWS,
    MS3_ROWS,
    S4_ROWS,
    make_avss_tree,
    make_ms3_tree,
    make_s4_tree,
    write_audio,
    write_mask,
)

from avsbridge.data.avsbench import (
    AudioShortWarning,
    avss_class_map,
    avss_palette,
    load_avss,
    load_ms3,
    load_s4,
    load_v3,
    read_avss_label,
)
from avsbridge.data.zeroshot import load_sslalign_list, sslalign_marker
from avsbridge.io import ArtifactError, write_png


def _raises_naming(path: Path, *words: str) -> pytest.RaisesExc[ArtifactError]:
    """pytest.raises that also checks the message names ``path`` (then ``words``, in order)."""
    return pytest.raises(ArtifactError, match=".*".join(re.escape(w) for w in (str(path), *words)))


S4_BASE = Path("Single-source") / "s4_data"


# --------------------------------------------------------------------------- media (validate=True)


def test_lazy_load_never_touches_missing_media(tmp_path: Path) -> None:
    make_s4_tree(tmp_path, S4_ROWS, media=False)
    make_ms3_tree(tmp_path, MS3_ROWS, media=False)
    make_avss_tree(tmp_path, AVSS_ROWS, media=False, label2idx=False)
    assert len(load_s4(tmp_path)) == 4
    assert len(load_ms3(tmp_path)) == 3
    assert len(load_avss(tmp_path)) == 4
    with pytest.raises(ArtifactError):
        load_s4(tmp_path, validate=True)


@pytest.mark.parametrize(
    "victim",
    [
        S4_BASE / "visual_frames/val/dog_barking/dogB/dogB_3.png",
        S4_BASE / "gt_masks/test/playing_piano/pianoA/pianoA_5.png",
        S4_BASE / "gt_masks/train/dog_barking/dogA/dogA_1.png",
        S4_BASE / "audio_wav/test/playing_piano/pianoB.wav",
    ],
    ids=["frame", "mask", "train-mask", "audio"],
)
def test_s4_missing_media(tmp_path: Path, victim: Path) -> None:
    make_s4_tree(tmp_path, S4_ROWS)
    (tmp_path / victim).unlink()
    with _raises_naming(tmp_path / victim, "missing") as info:
        load_s4(tmp_path, validate=True)
    assert info.value.path == tmp_path / victim


def test_s4_train_needs_no_masks_beyond_frame_1(tmp_path: Path) -> None:
    make_s4_tree(tmp_path, S4_ROWS[:1])
    # only frame 1 is annotated in train: no other mask is looked for
    assert not (tmp_path / S4_BASE / "gt_masks/train/dog_barking/dogA/dogA_2.png").exists()
    assert len(load_s4(tmp_path, validate=True)) == 1


def test_ms3_missing_mask_and_audio(tmp_path: Path) -> None:
    make_ms3_tree(tmp_path, MS3_ROWS)
    base = tmp_path / "Multi-sources" / "ms3_data"
    mask = base / "gt_masks/train/mixA_1/mixA_1_4.png"  # MS3 train annotates all 5
    mask.unlink()
    with _raises_naming(mask, "missing"):
        load_ms3(tmp_path, validate=True)
    write_mask(mask)
    audio = base / "audio_wav/test/mixC_2.wav"
    audio.unlink()
    with _raises_naming(audio, "missing"):
        load_ms3(tmp_path, validate=True)


def test_unreadable_image_and_wav(tmp_path: Path) -> None:
    make_s4_tree(tmp_path, S4_ROWS)
    frame = tmp_path / S4_BASE / "visual_frames/test/playing_piano/pianoA/pianoA_2.png"
    frame.write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    with _raises_naming(frame, "unreadable image"):
        load_s4(tmp_path, validate=True)
    frame.unlink()
    frame.write_bytes(b"")
    with _raises_naming(frame, "unreadable image"):
        load_s4(tmp_path, "test", validate=True)

    make_s4_tree(tmp_path, S4_ROWS)  # restore media
    wav = tmp_path / S4_BASE / "audio_wav/val/dog_barking/dogB.wav"
    wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with _raises_naming(wav, "unreadable wav"):
        load_s4(tmp_path, validate=True)


def test_mask_size_differs_from_frame(tmp_path: Path) -> None:
    make_s4_tree(tmp_path, S4_ROWS)
    mask = tmp_path / S4_BASE / "gt_masks/val/dog_barking/dogB/dogB_2.png"
    write_mask(mask, size=(40, 24))
    with _raises_naming(mask, "mask size 40x24 differs from frame size 32x24") as info:
        load_s4(tmp_path, "val", validate=True)
    assert "dogB_2.png" in str(info.value)


def test_short_audio_warns_naming_the_file(tmp_path: Path) -> None:
    make_s4_tree(tmp_path, S4_ROWS)
    wav = tmp_path / S4_BASE / "audio_wav/test/playing_piano/pianoA.wav"
    write_audio(wav, seconds=3.2)
    with pytest.warns(AudioShortWarning, match=re.escape(str(wav))):
        clips = load_s4(tmp_path, "test", validate=True)
    assert len(clips) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # full-length audio: no warning at all
        load_s4(tmp_path, "val", validate=True)


def test_avss_bad_media(tmp_path: Path) -> None:
    make_avss_tree(tmp_path, AVSS_ROWS)
    label = tmp_path / "v2" / "ddddddddddd_0_10000" / "labels_rgb" / "7.png"
    rgb = avss_palette()[np.zeros((24, 32), dtype=np.int64)]
    rgb[0, 0] = (1, 2, 3)  # not a palette colour
    write_png(label, rgb)
    with _raises_naming(label, "outside the AVSS palette"):
        load_avss(tmp_path, validate=True)
    # non-strict reading maps it to background, as the official loader does
    assert read_avss_label(label, avss_palette(), strict=False).max() == 0
    write_png(label, avss_palette()[np.zeros((20, 32), dtype=np.int64)])
    with _raises_naming(label, "mask size 32x20 differs"):
        load_avss(tmp_path, validate=True)
    label.unlink()
    with _raises_naming(label, "missing"):
        load_avss(tmp_path, validate=True)


def test_avss_bad_label2idx(tmp_path: Path) -> None:
    make_avss_tree(tmp_path, AVSS_ROWS, media=False)
    path = tmp_path / "label2idx.json"
    path.write_text(json.dumps({"background": 0, "dog": 2}))
    with _raises_naming(path, "without gaps"):
        avss_class_map(tmp_path)
    path.write_text(json.dumps(["background", "dog"]))
    with _raises_naming(path, "JSON object"):
        avss_class_map(tmp_path)
    path.write_text("{not json")
    with _raises_naming(path, "not valid JSON"):
        avss_class_map(tmp_path)
    path.unlink()
    with _raises_naming(path, "missing"):
        load_avss(tmp_path, validate=True)


# --------------------------------------------------------------------------- metadata (always)


@pytest.mark.parametrize(
    ("name", "category", "problem"),
    [
        ("../../etc", "dog", "would escape the dataset root"),
        ("/abs/clip", "dog", "would escape the dataset root"),
        ("ok", "..", "would escape the dataset root"),
        ("a/b", "dog", "single file-name component"),
        ("", "dog", "empty name"),
    ],
)
def test_s4_escaping_or_bad_ids(tmp_path: Path, name: str, category: str, problem: str) -> None:
    meta = make_s4_tree(tmp_path, [S4_ROWS[0], (name, category, "test")], media=False)
    with _raises_naming(meta, "row 2", problem):
        load_s4(tmp_path)


def test_unknown_split_and_duplicates(tmp_path: Path) -> None:
    meta = make_s4_tree(tmp_path, [*S4_ROWS, ("dogC", "dog_barking", "dev")], media=False)
    with _raises_naming(meta, "row 5", "unknown split 'dev'"):
        load_s4(tmp_path, split="train")  # checked even when filtering another split
    meta = make_s4_tree(tmp_path, [*S4_ROWS, ("dogA", "dog_barking", "test")], media=False)
    with _raises_naming(meta, "row 5", "duplicate id 'dogA'", "first at row 1"):
        load_s4(tmp_path)
    ms3 = make_ms3_tree(tmp_path, [*MS3_ROWS, ("mixB_0", "train")], media=False)
    with _raises_naming(ms3, "row 4", "duplicate id"):
        load_ms3(tmp_path)
    ms3 = make_ms3_tree(tmp_path, [("..", "train")], media=False)
    with _raises_naming(ms3, "row 1", "escape"):
        load_ms3(tmp_path)


def test_avss_metadata_problems(tmp_path: Path) -> None:
    meta = make_avss_tree(
        tmp_path, [*AVSS_ROWS, ("eeeeeeeeeee_1", "dog", "test", "v9")], media=False
    )
    with _raises_naming(meta, "row 5", "unknown subset label 'v9'"):
        load_avss(tmp_path)
    meta = make_avss_tree(tmp_path, [*AVSS_ROWS, ("../x", "dog", "test", "v2")], media=False)
    with _raises_naming(meta, "row 5", "escape"):
        load_avss(tmp_path)
    meta = make_avss_tree(
        tmp_path, [*AVSS_ROWS, (AVSS_ROWS[0][0], "dog", "val", "v1s")], media=False
    )
    with _raises_naming(meta, "row 5", "duplicate id"):
        load_avss(tmp_path)
    meta = make_avss_tree(tmp_path, [("fffffffffff_1", "dog", "testing", "v1m")], media=False)
    with _raises_naming(meta, "row 1", "unknown split 'testing'"):
        load_avss(tmp_path)


def test_malformed_metadata_files(tmp_path: Path) -> None:
    missing = tmp_path / "Single-source" / "s4_meta_data.csv"
    with _raises_naming(missing, "metadata file is missing"):
        load_s4(tmp_path)
    missing.parent.mkdir(parents=True)
    missing.write_text("")
    with _raises_naming(missing, "empty"):
        load_s4(tmp_path)
    missing.write_text("name,start_time,category,split\ndogA,0,dog,train,extra\n")
    with _raises_naming(missing, "row 1", "5 fields, header has 4"):
        load_s4(tmp_path)
    missing.write_text("name,start_time,split\ndogA,0,train\n")
    with _raises_naming(missing, "no column category"):
        load_s4(tmp_path)
    missing.write_bytes(b"name,category,split\n\xff\xfe,dog,train\n")
    with _raises_naming(missing, "not UTF-8"):
        load_s4(tmp_path)


def test_v3_problems(tmp_path: Path) -> None:
    with _raises_naming(tmp_path / "v3" / "meta_v3_unseen.csv", "missing"):
        load_v3(tmp_path, "meta_v3_unseen")
    with pytest.raises(ValueError, match="relative name"):
        load_v3(tmp_path, "../meta_v3_unseen")
    split = tmp_path / "v3" / "meta_v3_unseen.csv"
    split.parent.mkdir()
    split.write_text(AVSS_HEADER + "\na,a_1,,,,unseen,v2\nb,a_1,,,,unseen,v2\n")
    with _raises_naming(split, "row 2", "duplicate id 'a_1'"):
        load_v3(tmp_path, "meta_v3_unseen")


def test_sslalign_bad_lists(tmp_path: Path) -> None:
    path = tmp_path / "s4_seg.json"
    good = {
        "image": "/mnt/x/AVSbench/Single-source/s4_data/visual_frames/test/c/v/v_1.png",
        "audio": "/mnt/x/AVSbench/Single-source/s4_data/audio_wav/test/c/v.wav",
        "gt_box": "/mnt/x/AVSbench/Single-source/s4_data/gt_masks/test/c/v/v_1.png",
        "offset": 1,
    }
    cases = [
        ({"not": "a list"}, "JSON list"),
        ([good, "oops"], "item 1: expected an object"),
        ([{k: v for k, v in good.items() if k != "gt_box"}], "missing key"),
        ([good | {"image": "/data/elsewhere/v_1.png"}], "lacks 'AVSbench/'"),
        ([good | {"audio": "/mnt/AVSbench/../../etc/passwd"}], "escape"),
        ([good | {"offset": "1"}], "not an integer"),
        ([good, good], "item 1: duplicate image"),
    ]
    for data, problem in cases:
        path.write_text(json.dumps(data))
        with _raises_naming(path, problem):
            load_sslalign_list(path, tmp_path / "root", "AVSbench/")
    path.write_text(json.dumps([good]))
    (item,) = load_sslalign_list(path, tmp_path / "root", "AVSbench")  # marker slash optional
    assert item.gt == tmp_path / "root/Single-source/s4_data/gt_masks/test/c/v/v_1.png"
    assert item.offset == 1
    with pytest.raises(ValueError, match="no default marker"):
        sslalign_marker(tmp_path / "flickr_test.json")
