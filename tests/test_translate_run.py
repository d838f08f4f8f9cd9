"""Shard runner without an LLM: the w/o-LLM column, OpenAVS* weak labels, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from avsbridge.data.records import Clip
from avsbridge.io import ArtifactError, atomic_write_json, read_json
from avsbridge.registry import UnknownBackendError
from avsbridge.translate import TRANSLATORS
from avsbridge.translate.run import raw_prompt, translate_shard, weak_label_shard


def alm_folder(root: Path, key: str, texts: list[str], slug: str = "v__a", **extra: object) -> Path:
    folder = root / key
    atomic_write_json(folder / f"{slug}.json", {"clip": "v/a", "texts": texts, **extra})
    return folder


def test_registry_names() -> None:
    # (other test modules may register fakes of their own)
    assert {"local", "none", "openai"} <= set(TRANSLATORS.names())
    with pytest.raises(UnknownBackendError, match=r"known: (.*, )?local, none, openai"):
        TRANSLATORS.create("gpt5")


def test_none_backend_passes_raw_text_with_zero_calls(tmp_path: Path) -> None:
    texts = ["A dog is barking. ", "", "a man speaks"]
    caption = alm_folder(tmp_path, "caption", texts, alm_calls=3)
    meta = alm_folder(tmp_path, "meta", ["dog", "", "a man speaks"])
    out = tmp_path / "out"
    translate_shard(
        {"caption": caption, "meta": meta}, ["v__a"], "none", {}, "pcfc", tmp_path / "cache", out
    )
    record = read_json(out / "v__a.json")
    assert record["prompts"] == ["A dog is barking.. dog", "", "a man speaks"]
    assert record["failed_calls"] == record["llm_requests"] == 0 and record["alm_calls"] == 6
    assert record["backend"] == {"backend": "none"} and record["fallback_frames"] == []
    assert not (tmp_path / "cache").exists()
    translate_shard({"caption": caption}, ["v__a"], "none", {}, "none", tmp_path / "cache", out)
    assert read_json(out / "v__a.json")["prompts"] == ["A dog is barking.", "", "a man speaks"]


def test_none_backend_complete_wraps_frames() -> None:
    backend = TRANSLATORS.create("none")
    reply = backend.complete(
        "s", "<frame0>\n<exp1>dog</exp1>\n<exp2>x</exp2>\n</frame0>\n<frame1>\ncat\n</frame1>"
    )
    assert reply.text == "<answer>dog</answer>\n<answer>cat</answer>"


def test_raw_prompt_dedupes() -> None:
    assert raw_prompt(["engine ", "engine", "", "wind"]) == "engine. wind"


def test_n_frames_keeps_first_frames(tmp_path: Path) -> None:
    caption = alm_folder(tmp_path, "caption", ["a", "b", "c", "d"], alm_calls=4)
    translate_shard(
        {"c": caption}, ["v__a"], "none", {}, "fc", tmp_path / "cache", tmp_path / "o", n_frames=2
    )
    record = read_json(tmp_path / "o" / "v__a.json")
    assert record["prompts"] == ["a", "b"] and record["alm_calls"] == 2


def test_single_prompt_strategy_rejects_two_prompts(tmp_path: Path) -> None:
    one = alm_folder(tmp_path, "one", ["a"])
    two = alm_folder(tmp_path, "two", ["b"])
    with pytest.raises(ValueError, match="exactly one ALM prompt"):
        translate_shard(
            {"1": one, "2": two}, ["v__a"], "none", {}, "fc", tmp_path / "c", tmp_path / "o"
        )


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (None, "not valid JSON"),
        ({"clip": "v/a"}, "'texts' must be"),
        ({"clip": "v/a", "texts": []}, "empty"),
        ({"texts": ["a"]}, "'clip' id"),
        ({"clip": "v/a", "texts": ["a"], "alm_calls": -1}, "alm_calls"),
    ],
)
def test_bad_alm_record_names_the_file(tmp_path: Path, payload: object, problem: str) -> None:
    folder = tmp_path / "alm"
    folder.mkdir()
    path = folder / "v__a.json"
    if payload is None:
        path.write_text("{broken")
    else:
        atomic_write_json(path, payload)
    with pytest.raises(ArtifactError, match=problem) as info:
        translate_shard({"c": folder}, ["v__a"], "none", {}, "none", tmp_path / "c", tmp_path / "o")
    assert info.value.path == path
    assert not (tmp_path / "o").exists()


def test_prompts_disagreeing_on_frames(tmp_path: Path) -> None:
    one = alm_folder(tmp_path, "one", ["a", "b"])
    two = alm_folder(tmp_path, "two", ["b"])
    with pytest.raises(ArtifactError, match="disagree"):
        translate_shard(
            {"1": one, "2": two}, ["v__a"], "none", {}, "pc", tmp_path / "c", tmp_path / "o"
        )


def test_missing_alm_record(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="missing"):
        translate_shard(
            {"c": tmp_path}, ["nope"], "none", {}, "none", tmp_path / "c", tmp_path / "o"
        )


def _clip(cid: str, category: str, labels: tuple[str, ...] = (), n: int = 5) -> Clip:
    frames = tuple(Path(f"/x/{cid}_{i}.png") for i in range(n))
    return Clip(
        id=cid,
        subset="s4",
        split="test",
        category=category,
        frames=frames,
        audio=None,
        masks=(None,) * n,
        labels=labels,
    )


def test_weak_label_shard(tmp_path: Path) -> None:
    clips = [_clip("dog_barking/abc", "dog_barking"), _clip("v3/x", "", ("baby_hair-dryer",), n=10)]
    weak_label_shard(clips, tmp_path / "weak")
    dog = read_json(tmp_path / "weak" / "dog_barking__abc.json")
    assert dog["prompts"] == ["dog"] * 5 and dog["strategy"] == "weak-label"
    assert dog["llm_requests"] == dog["alm_calls"] == 0
    v3 = read_json(tmp_path / "weak" / "v3__x.json")
    assert v3["prompts"] == ["baby, hair dryer"] * 10
    summary = read_json(tmp_path / "weak" / "_summary.json")
    assert summary["clips"] == 2 and summary["frames"] == 15 and summary["llm_requests"] == 0
    with pytest.raises(ValueError, match="no weak label"):
        weak_label_shard([_clip("z", "")], tmp_path / "weak2")
