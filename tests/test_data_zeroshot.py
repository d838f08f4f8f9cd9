"""Zero-shot dataset adapters of the BAaV tables: IS3, AVSBench-S4 (zero-shot), VPO-SS."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from avsbridge.data.records import Clip
from avsbridge.data.zeroshot import (
    ZEROSHOT_KINDS,
    ZEROSHOT_LISTS,
    ZeroShotSample,
    group_samples,
    load_is3,
    load_s4_zeroshot,
    load_vpo_ss,
    load_zeroshot,
    samples_from_clips,
)
from avsbridge.io import ArtifactError, write_png

IS3_AUTHOR = "/mnt/lynx2/users/arda/synthetic3241"
S4_AUTHOR = "/mnt/lynx3/datasets/AVSbench/Single-source/s4_data"
VPO_AUTHOR = "/mnt/lynx2/users/arda/SSL_COCO/COCO_AV"


def _raises_naming(path: Path, *words: str) -> pytest.RaisesExc[ArtifactError]:
    return pytest.raises(ArtifactError, match=".*".join(re.escape(w) for w in (str(path), *words)))


def _is3(stem: str) -> dict[str, object]:
    return {
        "image": f"{IS3_AUTHOR}/visual_frames/{stem}.jpg",
        "audio": f"{IS3_AUTHOR}/audio_wav/{stem}.wav",
        "gt_box": f"{IS3_AUTHOR}/gt_masks/{stem}.jpg",
        "offset": 1,
    }


def _s4(cat: str, clip: str, k: int) -> dict[str, object]:
    return {
        "image": f"{S4_AUTHOR}/visual_frames/test/{cat}/{clip}/{clip}_{k}.png",
        "audio": f"{S4_AUTHOR}/audio_wav/test/{cat}/{clip}.wav",
        "gt_box": f"{S4_AUTHOR}/gt_masks/test/{cat}/{clip}/{clip}_{k}.png",
        "offset": 1,
    }


def _vpo(stem: str) -> dict[str, object]:
    return {
        "image": f"{VPO_AUTHOR}/visual_frames/{stem}.jpg",
        "audio": f"{VPO_AUTHOR}/audio_wav/{stem}.wav",
        "gt_box": f"{VPO_AUTHOR}/gray_masks/{stem}.jpg",
        "offset": 0,
    }


def _write(path: Path, items: object) -> Path:
    path.write_text(json.dumps(items))
    return path


# --------------------------------------------------------------------------- real lists


def test_is3_real_list(avsbench_meta: Path, tmp_path: Path) -> None:
    samples = load_is3(avsbench_meta / "sslalign" / "synthetic3240_seg.json", tmp_path)
    assert len(samples) == 6480  # 3,240 images x 2 sound sources, one GT each
    groups = group_samples(samples)
    assert len(groups) == 3240
    assert Counter(len(v) for v in groups.values()) == {2: 3240}
    assert all(len({s.source for s in pair}) == 2 for pair in groups.values())
    assert len({s.gt for s in samples}) == 6480 and len({s.audio for s in samples}) == 6480
    first = samples[0]
    assert first == ZeroShotSample(
        dataset="is3",
        id="accordion_female_10438_accordion",
        group="accordion_female_10438",
        image=tmp_path / "visual_frames" / "accordion_female_10438_accordion.jpg",
        audio=tmp_path / "audio_wav" / "accordion_female_10438_accordion.wav",
        gt=tmp_path / "gt_masks" / "accordion_female_10438_accordion.jpg",
        source="accordion",
        offset=1,
    )
    assert [s.source for s in groups["accordion_female_10438"]] == ["accordion", "female"]


def test_s4_zeroshot_real_list(avsbench_meta: Path, tmp_path: Path) -> None:
    samples = load_s4_zeroshot(avsbench_meta / "sslalign" / "s4_seg.json", tmp_path)
    assert len(samples) == 3700
    groups = group_samples(samples)
    assert len(groups) == 740  # the AVSBench-S4 test clips
    assert all([s.frame for s in clip] == [1, 2, 3, 4, 5] for clip in groups.values())
    assert all(len({s.audio for s in clip}) == 1 for clip in groups.values())  # whole clip wav
    assert len({s.source for s in samples}) == 23  # the S4 categories
    first = samples[0]
    assert first.id == "0d9u2CymIxc_1" and first.group == "0d9u2CymIxc"
    assert first.source == "helicopter" and first.frame == 1
    assert first.image.relative_to(tmp_path).as_posix() == (
        "Single-source/s4_data/visual_frames/test/helicopter/0d9u2CymIxc/0d9u2CymIxc_1.png"
    )
    assert first.audio.relative_to(tmp_path).as_posix() == (
        "Single-source/s4_data/audio_wav/test/helicopter/0d9u2CymIxc.wav"
    )


def test_vpo_ss_real_list(avsbench_meta: Path, tmp_path: Path) -> None:
    samples = load_vpo_ss(avsbench_meta / "sslalign" / "vpo_ss_seg.json", tmp_path)
    assert len(samples) == 890
    assert len(group_samples(samples)) == 890
    first = samples[0]
    assert first.id == "000000062491_432356" and first.source == "" and first.frame is None
    assert first.gt == tmp_path / "gray_masks" / "000000062491_432356.jpg"


def test_load_zeroshot_dispatch(avsbench_meta: Path, tmp_path: Path) -> None:
    counts = {
        kind: len(load_zeroshot(kind, tmp_path, avsbench_meta / "sslalign" / ZEROSHOT_LISTS[kind]))
        for kind in ZEROSHOT_KINDS
    }
    assert counts == {"is3": 6480, "s4-zeroshot": 3700, "vpo-ss": 890}
    with pytest.raises(ValueError, match="unknown zero-shot dataset kind 'flickr'"):
        load_zeroshot("flickr", tmp_path, tmp_path / "x.json")


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("loader", "good", "marker"),
    [
        (load_is3, _is3("cat_dog_7_cat"), "synthetic3241/"),
        (load_s4_zeroshot, _s4("bird", "abc", 1), "AVSbench/"),
        (load_vpo_ss, _vpo("0001_02"), "COCO_AV/"),
    ],
)
def test_bad_lists_name_the_file(
    loader: object, good: dict[str, object], marker: str, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    missing = tmp_path / "absent.json"
    with _raises_naming(missing, "file is missing"):
        loader(missing, root)  # type: ignore[operator]
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('[{"image": ')
    with _raises_naming(corrupt, "not valid JSON"):
        loader(corrupt, root)  # type: ignore[operator]
    path = tmp_path / "list.json"
    escaping = dict(good)
    escaping["gt_box"] = f"/mnt/{marker}../../etc/passwd"
    with _raises_naming(_write(path, [escaping]), "item 0", "escape the dataset root"):
        loader(path, root)  # type: ignore[operator]
    elsewhere = dict(good, audio="/data/other/x.wav")
    with _raises_naming(_write(path, [elsewhere]), "item 0", "lacks"):
        loader(path, root)  # type: ignore[operator]
    with _raises_naming(_write(path, [good, good]), "item 1", "duplicate"):
        loader(path, root)  # type: ignore[operator]
    (sample,) = loader(_write(path, [good]), root)  # type: ignore[operator]
    assert sample.image.is_relative_to(root)


def test_is3_and_vpo_layout_errors(tmp_path: Path) -> None:
    path = tmp_path / "synthetic3240_seg.json"
    other_audio = dict(_is3("cat_dog_7_cat"), audio=f"{IS3_AUTHOR}/audio_wav/cat_dog_7_dog.wav")
    with _raises_naming(_write(path, [other_audio]), "item 0", "different samples"):
        load_is3(path, tmp_path)
    with _raises_naming(_write(path, [_is3("catdog")]), "item 0", "{image}_{source}"):
        load_is3(path, tmp_path)
    wrong_folder = dict(_is3("cat_dog_7_cat"), gt_box=f"{IS3_AUTHOR}/masks/cat_dog_7_cat.jpg")
    with _raises_naming(_write(path, [wrong_folder]), "item 0", "not directly in gt_masks/"):
        load_is3(path, tmp_path)
    vpo = tmp_path / "vpo_ss_seg.json"
    bad_gt = dict(_vpo("0001_02"), gt_box=f"{VPO_AUTHOR}/gray_masks/0001_03.jpg")
    with _raises_naming(_write(vpo, [bad_gt]), "item 0", "different samples"):
        load_vpo_ss(vpo, tmp_path)


def test_s4_layout_errors(tmp_path: Path) -> None:
    path = tmp_path / "s4_seg.json"
    good = _s4("bird", "abc", 2)
    cases = [
        (dict(good, image=f"{S4_AUTHOR}/visual_frames/train/bird/abc/abc_2.png"), "S4 test frame"),
        (dict(good, image=f"{S4_AUTHOR}/visual_frames/test/bird/abc/abc_6.png"), "S4 test frame"),
        (dict(good, gt_box=f"{S4_AUTHOR}/gt_masks/test/bird/abc/abc_3.png"), "not the mask"),
        (dict(good, audio=f"{S4_AUTHOR}/audio_wav/test/bird/xyz.wav"), "not the wav of clip"),
    ]
    for item, problem in cases:
        with _raises_naming(_write(path, [_s4("dog", "zzz", 1), item]), "item 1", problem):
            load_s4_zeroshot(path, tmp_path)
    # one clip name in two categories: distinct files, but one sample id
    twice = [_s4("bird", "abc", 1), _s4("dog", "abc", 1)]
    with _raises_naming(_write(path, twice), "item 1", "duplicate sample id 'abc_1'"):
        load_s4_zeroshot(path, tmp_path)


def test_validate_checks_media(tmp_path: Path) -> None:
    import wave

    path = _write(tmp_path / "vpo_ss_seg.json", [_vpo("0001_02")])
    root = tmp_path / "COCO_AV"
    (sample,) = load_vpo_ss(path, root)  # lazy: no media needed
    with _raises_naming(sample.image, "missing"):
        load_vpo_ss(path, root, validate=True)
    write_png(sample.image.with_suffix(".png"), np.zeros((4, 4, 3), np.uint8))
    sample.image.parent.mkdir(parents=True, exist_ok=True)
    sample.image.with_suffix(".png").rename(sample.image)
    sample.gt.parent.mkdir(parents=True)
    sample.gt.write_bytes(b"not an image")
    with _raises_naming(sample.gt, "unreadable image"):
        load_vpo_ss(path, root, validate=True)
    write_png(sample.gt.with_suffix(".png"), np.zeros((4, 4), np.uint8))
    sample.gt.with_suffix(".png").rename(sample.gt)
    sample.audio.parent.mkdir(parents=True)
    with wave.open(str(sample.audio), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(16000)
        wf.writeframes(np.zeros(1600, np.int16).tobytes())
    assert load_vpo_ss(path, root, validate=True) == [sample]


def test_samples_from_clips(tmp_path: Path) -> None:
    clip = Clip(
        id="demo_s4_001",
        subset="demo-s4",
        split="test",
        category="dog",
        frames=tuple(tmp_path / f"f{k}.png" for k in range(1, 4)),
        audio=tmp_path / "a.wav",
        masks=(tmp_path / "m1.png", None, tmp_path / "m3.png"),
    )
    samples = samples_from_clips([clip], "demo-s4")
    assert [(s.id, s.frame, s.image.name, s.gt.name) for s in samples] == [
        ("demo_s4_001_1", 1, "f1.png", "m1.png"),
        ("demo_s4_001_3", 3, "f3.png", "m3.png"),
    ]
    assert {s.audio for s in samples} == {tmp_path / "a.wav"} and samples[0].group == clip.id
    with pytest.raises(ValueError, match="no audio"):
        samples_from_clips([Clip(**{**clip.__dict__, "audio": None})], "demo-s4")
