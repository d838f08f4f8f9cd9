"""The V3 seen/unseen and k-shot split files: facts of the official lists, same rules on the demo.

The official facts are asserted as numbers and names read off
``../shared/fixtures/avsbench-meta/v3`` (OpenAVS Table 2 evaluates each k-shot column on
that column's own test list, so how those lists differ from the 0-shot list matters).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from avsbridge.data import demo_semantic, v3_splits
from avsbridge.data.demo_assets.catalogue import AVSS_CLASSES

REAL_COUNTS = {
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
REAL_UNSEEN = {
    "baby", "bell", "boy", "clock", "donkey", "emergency-car", "girl", "guzheng", "harp",
    "helicopter", "hen", "leopard", "squirrel", "tiger",
}  # fmt: skip
REAL_DROPPED = {"bell", "harp", "squirrel"}
# All-unseen clips of metadata.csv that the official meta_v3_unseen leaves out (no rule
# in the files says why; the 5 girl_boy clips, also multi-class, are in it).
REAL_UNSEEN_LEFT_OUT = {
    "3fh5-bL4H6w_240000_250000": "clock_girl",
    "gZiZXCyy1Fc_5000_15000": "girl_donkey",
    "p8f-dwURY20_18000_28000": "baby_tiger",
}


@pytest.fixture(scope="module")
def real_dir(avsbench_meta: Path) -> Path:
    return avsbench_meta / "v3"


@pytest.fixture(scope="module")
def demo_dir(repo_root: Path) -> Path:
    root = repo_root / "data" / "demo" / demo_semantic.SUBDIR / "v3"
    if not (root / "meta_v3_unseen.csv").is_file():
        pytest.fail(f"the demo V3 split files are not committed under {root}")
    return root


def _rows(folder: Path, name: str) -> list[dict[str, str]]:
    return v3_splits.read_rows(folder / f"{name}.csv")


# --------------------------------------------------------------------------- official lists


@pytest.mark.parametrize(("name", "count"), sorted(REAL_COUNTS.items()))
def test_real_row_counts(real_dir: Path, name: str, count: int) -> None:
    assert len(_rows(real_dir, name)) == count


def test_real_kshot_test_lists_are_not_the_zero_shot_list(real_dir: Path) -> None:
    rel = v3_splits.kshot_relations(real_dir)
    assert rel["n_unseen"] == 758
    assert set(rel["unseen_classes"]) == REAL_UNSEEN
    assert set(rel["dropped"]) == REAL_DROPPED
    assert len(rel["kshot_classes"]) == 11
    for k, facts in rel["shots"].items():
        assert facts["dropped"] == sorted(REAL_DROPPED), k
        assert facts["dropped_clips"] == 215  # harp 80 + bell 77 + squirrel 58
        assert facts["n_train"] == 11 * k
        assert set(facts["train_per_class"].values()) == {k}
        assert facts["train_in_test"] == 0
        assert facts["n_train"] + facts["n_test"] == 758 - 215 == 543
        # the k-shot test list = 0-shot list - dropped classes' clips - k-shot train clips
        assert facts["zero_shot_not_in_test"] == 215 + 11 * k
        assert facts["train_is_rule"] and facts["test_is_rule"]
        assert facts["test_in_zero_shot_order"]
    assert {k: f["n_test"] for k, f in rel["shots"].items()} == {1: 532, 3: 510, 5: 488}


def test_real_kshot_files_are_reproduced_byte_for_byte(real_dir: Path) -> None:
    unseen = _rows(real_dir, "meta_v3_unseen")
    kshot = sorted(REAL_UNSEEN - REAL_DROPPED)
    for k in v3_splits.SHOTS:
        train, test = v3_splits.kshot_lists(unseen, kshot, k)
        for name, rows in (("train", train), ("test", test)):
            path = real_dir / f"v3_{k}_shot" / f"{name}.csv"
            assert v3_splits.csv_text(rows) == path.read_text(), path


def test_real_kshot_rows_format_and_nesting(real_dir: Path) -> None:
    meta = {r["uid"]: r for r in _rows(real_dir, "metadata")}
    previous: set[str] = set()
    for k in v3_splits.SHOTS:
        train = _rows(real_dir, f"v3_{k}_shot/train")
        rows = train + _rows(real_dir, f"v3_{k}_shot/test")
        assert {r["split"] for r in rows} == {"v3_1_shot_train"}
        assert all(r["s_min"] == r["s_sec"] == r["a_obj"] == "" for r in rows)
        assert all(r["vid"] == r["uid"].rsplit("_", 2)[0] for r in rows)
        assert all(r["label"] == meta[r["uid"]]["label"] for r in rows)
        # metadata.csv writes vid = uid for v1m clips; the k-shot files do not
        v1m = [r for r in rows if r["label"] == "v1m"]
        assert v1m and all(r["vid"] != meta[r["uid"]]["vid"] for r in v1m)
        uids = {r["uid"] for r in train}
        assert previous < uids
        previous = uids


def test_real_seen_unseen_lists_follow_metadata(real_dir: Path) -> None:
    meta = _rows(real_dir, "metadata")
    seen, unseen = v3_splits.zero_shot_lists(meta, REAL_UNSEEN)
    real_seen = _rows(real_dir, "meta_v3_seen")
    real_unseen = _rows(real_dir, "meta_v3_unseen")
    assert seen == real_seen
    extra = {r["uid"]: r["a_obj"] for r in unseen if r not in real_unseen}
    assert extra == REAL_UNSEEN_LEFT_OUT
    assert [r for r in unseen if r["uid"] not in extra] == real_unseen
    mixed = [
        r
        for r in meta
        if r["label"] != "v1s"
        and set(v3_splits.row_classes(r)) & REAL_UNSEEN
        and set(v3_splits.row_classes(r)) - REAL_UNSEEN
    ]
    assert len(mixed) == 321
    assert not {r["uid"] for r in mixed} & {r["uid"] for r in real_seen + real_unseen}
    train = _rows(real_dir, "meta_v3_seen_train")
    val = _rows(real_dir, "meta_v3_seen_val")
    assert len(train) == math.floor(0.9 * len(real_seen))
    by_uid = {r["uid"]: r for r in real_seen}
    assert all({**by_uid[r["uid"]], "split": "seen_train"} == r for r in train)
    assert all({**by_uid[r["uid"]], "split": "seen_val"} == r for r in val)
    assert {r["uid"] for r in train} | {r["uid"] for r in val} == set(by_uid)
    assert not {r["uid"] for r in train} & {r["uid"] for r in val}


def test_demo_constants_match_the_official_split(real_dir: Path) -> None:
    rel = v3_splits.kshot_relations(real_dir)
    assert demo_semantic.REAL_V3_UNSEEN == set(rel["unseen_classes"])
    assert demo_semantic.REAL_V3_KSHOT_DROPPED == set(rel["dropped"])
    tokens = {t for r in _rows(real_dir, "metadata") for t in r["a_obj"].split("_")}
    non_classes = {"background", "off-the-screen", "h orse"}
    assert non_classes <= tokens
    assert AVSS_CLASSES == ("background", *sorted(tokens - non_classes))
    assert len(AVSS_CLASSES) == 71


def test_kshot_lists_refuse_too_few_clips() -> None:
    rows = [{"vid": "a", "uid": "a_0_10000", "a_obj": "bell", "label": "v2"}]
    with pytest.raises(ValueError, match="bell"):
        v3_splits.kshot_lists(rows, ["bell"], 3)


# --------------------------------------------------------------------------- demo lists


def test_demo_kshot_lists_obey_the_official_relations(demo_dir: Path) -> None:
    rel = v3_splits.kshot_relations(demo_dir)
    assert rel["dropped"] and set(rel["dropped"]) <= REAL_DROPPED
    assert set(rel["unseen_classes"]) <= REAL_UNSEEN
    assert set(rel["kshot_classes"]) <= REAL_UNSEEN - REAL_DROPPED
    assert len(rel["kshot_classes"]) >= 2
    pool = {k: f["n_train"] + f["n_test"] for k, f in rel["shots"].items()}
    assert len(set(pool.values())) == 1  # every k splits the same clips
    for k, facts in rel["shots"].items():
        assert facts["dropped"] == rel["dropped"]
        assert facts["dropped_clips"] >= 1
        assert facts["n_train"] == k * len(rel["kshot_classes"])
        assert set(facts["train_per_class"].values()) == {k}
        assert facts["train_in_test"] == 0 and facts["n_test"] >= 5
        assert facts["zero_shot_not_in_test"] == facts["dropped_clips"] + facts["n_train"]
        assert facts["train_is_rule"] and facts["test_is_rule"]
        assert facts["test_in_zero_shot_order"]
    demo_root = demo_dir.parent
    meta = v3_splits.read_rows(demo_root / "metadata.csv")
    for k in v3_splits.SHOTS:
        rows = _rows(demo_dir, f"v3_{k}_shot/train") + _rows(demo_dir, f"v3_{k}_shot/test")
        assert {r["split"] for r in rows} == {"v3_1_shot_train"}
        assert all(r["s_min"] == r["s_sec"] == r["a_obj"] == "" for r in rows)
        assert all(r["vid"] == r["uid"].rsplit("_", 2)[0] for r in rows)
    assert {r["label"] for r in meta} == {"v1s", "v1m", "v2"}


def test_demo_seen_unseen_lists_follow_metadata(demo_dir: Path) -> None:
    meta = v3_splits.read_rows(demo_dir.parent / "metadata.csv")
    unseen_classes = demo_semantic.UNSEEN_CLASSES
    seen, unseen = v3_splits.zero_shot_lists(meta, unseen_classes)
    assert seen == _rows(demo_dir, "meta_v3_seen")
    assert unseen == _rows(demo_dir, "meta_v3_unseen")
    assert seen and unseen
    mixed = [
        r
        for r in meta
        if r["label"] != "v1s"
        and set(v3_splits.row_classes(r)) & set(unseen_classes)
        and set(v3_splits.row_classes(r)) - set(unseen_classes)
    ]
    assert mixed  # clips mixing seen and unseen classes exist and are in no V3 list
    listed = {r["uid"] for r in seen + unseen}
    assert not {r["uid"] for r in mixed} & listed
    assert not {r["uid"] for r in meta if r["label"] == "v1s"} & listed
    train = _rows(demo_dir, "meta_v3_seen_train")
    val = _rows(demo_dir, "meta_v3_seen_val")
    assert len(train) == math.floor(0.9 * len(seen)) and val
    by_uid = {r["uid"]: r for r in seen}
    assert all({**by_uid[r["uid"]], "split": "seen_train"} == r for r in train)
    assert all({**by_uid[r["uid"]], "split": "seen_val"} == r for r in val)
    assert {r["uid"] for r in train + val} == set(by_uid) and len(train + val) == len(seen)


def test_demo_lists_regenerate_from_the_plan(demo_dir: Path, repo_root: Path) -> None:
    from avsbridge.io import read_json

    seed = int(read_json(repo_root / "data" / "demo" / "manifest.json")["seed"])
    plans = demo_semantic.plan_semantic(seed)
    for name, rows in demo_semantic.v3_lists(plans, seed).items():
        path = demo_dir / f"{name}.csv"
        assert v3_splits.csv_text(rows) == path.read_text(), path
    assert sorted(p.relative_to(demo_dir).as_posix() for p in demo_dir.rglob("*.csv")) == sorted(
        f"{n}.csv" for n in demo_semantic.v3_lists(plans, seed)
    )


def test_v3_lists_rule_on_a_small_table() -> None:
    def row(uid: str, a_obj: str, label: str = "v2") -> dict[str, str]:
        return {"vid": uid.rsplit("_", 2)[0], "uid": uid, "s_min": "0", "s_sec": "1",
                "a_obj": a_obj, "split": "train", "label": label}  # fmt: skip

    meta = [
        row("a_0_10000", "hen"), row("b_0_10000", "dog"), row("c_1", "hen", "v1m"),
        row("d_0_10000", "bell"), row("e_0_10000", "hen_baby"), row("f_0_10000", "baby"),
        row("g_0_10000", "dog_hen"), row("h_0_5000", "hen", "v1s"), row("i_0_10000", "baby"),
    ]  # fmt: skip
    lists = v3_splits.v3_lists(
        meta, {"hen", "baby", "bell"}, {"hen", "baby"}, np.random.default_rng(0), shots=(1,)
    )
    assert [r["uid"] for r in lists["meta_v3_seen"]] == ["b_0_10000"]
    assert [r["uid"] for r in lists["meta_v3_unseen"]] == [
        "a_0_10000", "c_1", "d_0_10000", "e_0_10000", "f_0_10000", "i_0_10000",
    ]  # fmt: skip
    assert [r["uid"] for r in lists["v3_1_shot/train"]] == ["a_0_10000", "f_0_10000"]
    assert [r["uid"] for r in lists["v3_1_shot/test"]] == ["c_1", "e_0_10000", "i_0_10000"]
    assert lists["v3_1_shot/test"][0]["vid"] == "c"
    with pytest.raises(ValueError, match="not unseen"):
        v3_splits.v3_lists(meta, {"hen"}, {"dog"}, np.random.default_rng(0))
