"""The four paper files (resources/papers/*.yaml) follow schema v1 and quote their paper verbatim.

Plain yaml + pytest on purpose: these checks must not depend on the loader that consumes the
files, so a loader bug cannot hide a transcription error (and vice versa).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PAPER_FILES = REPO / "src" / "avsbridge" / "resources" / "papers"
PAPERS_DIR = Path(
    os.environ.get("AVSBRIDGE_PAPERS", str(REPO.parent / "shared" / "papers"))
).expanduser()
PAPER_IDS = ("openavs", "baav", "ssp", "teso")

STAGES = {
    "audio_text",
    "translate",
    "weak_labels",
    "segment",
    "evaluate",
    "evaluate_zeroshot",
    "evaluate_st",
    "zeroshot_audio",
    "zeroshot_image",
    "cue_recognition",
    "pseudo_labels",
    "audio_features",
    "train",
    "predict",
    "zeroshot_query",
    "ris",
    "flow",
    "mllm_answers",
    "scene_description",
    "text_cues",
    "audio_perturbation",
    "ssp_model",
    "teso_model",
}
TOP_KEYS = {"paper", "title", "citation", "text", "recipes", "tables"}
TABLE_KEYS = {"kind", "caption", "columns", "rows"}
ID = re.compile(r"^[a-z0-9_]+$")
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: same result, faster


def _safe_load(source: str) -> Any:
    return yaml.load(source, Loader=LOADER)


def _paper_text(paper: str, name: str) -> str:
    path = PAPERS_DIR / name
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"paper text {path} not found; CI must run with ../shared beside the clone")
        pytest.skip(f"paper text {path} not found")
    return path.read_text(encoding="utf-8")


def _load(paper: str) -> dict[str, Any]:
    return _safe_load((PAPER_FILES / f"{paper}.yaml").read_text(encoding="utf-8"))


def _child(node: yaml.Node, key: str) -> yaml.Node | None:
    for key_node, value_node in node.value:
        if key_node.value == key:
            return value_node
    return None


def raw_values(source: str) -> dict[tuple[str, int], dict[str, str]]:
    """(table id, row index) -> {column id: the value's text exactly as written in the YAML}.

    yaml.safe_load turns 0.380 into 0.38; the composed node keeps "0.380", which is what the
    paper prints and what the cross-check must compare.
    """
    root = yaml.compose(source, Loader=LOADER)
    tables = _child(root, "tables")
    out: dict[tuple[str, int], dict[str, str]] = {}
    for table_key, table_node in tables.value:
        rows = _child(table_node, "rows")
        for index, row in enumerate(rows.value if rows is not None else []):
            values = _child(row, "values")
            out[(table_key.value, index)] = (
                {k.value: v.value for k, v in values.value} if values is not None else {}
            )
    return out


def _token(value: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\d.])" + re.escape(value) + r"(?!\d)")


def number_problems(source: str, text: str) -> list[str]:
    """Every printed value must occur in the paper text as a whole number token."""
    problems = []
    for (table, index), values in raw_values(source).items():
        for column, value in values.items():
            if not re.fullmatch(r"-?\d+(\.\d+)?", value):
                problems.append(f"{table} row {index} {column}: {value!r} is not a number")
            elif not _token(value).search(text):
                problems.append(f"{table} row {index} {column}: {value} not in the paper text")
    return problems


def _in_order(values: list[str]) -> re.Pattern[str]:
    within = r"(?!\d)[^\n]*?(?<![\d.])"
    return re.compile(r"(?<![\d.])" + within.join(re.escape(v) for v in values) + r"(?!\d)")


def _transposed_problems(
    table_id: str, table: dict[str, Any], raw: dict[tuple[str, int], dict[str, str]], text: str
) -> list[str]:
    """A table printed with one column per row (layout: transposed): each metric's cells, in row
    order, share one text line."""
    problems = []
    for column in table["columns"]:
        cells = [
            raw[(table_id, index)][column["id"]]
            for index in range(len(table["rows"]))
            if column["id"] in raw[(table_id, index)]
        ]
        if cells and not _in_order(cells).search(text):
            problems.append(f"{table_id} column {column['id']}: {cells} not on one text line")
    return problems


def row_line_problems(data: dict[str, Any], source: str, text: str) -> list[str]:
    """A table row's values must appear in column order on one text line.

    Tables printed as one block of lines per dataset (`layout: blocks`, BAaV) need each dataset's
    cells on one line, the blocks following each other closely; `layout: transposed` tables need
    each column's cells on one line. This catches a number put in the wrong column or row, which
    the token check alone cannot. Figure rows and rows whose values the text gives in prose (row
    `source: prose`) are exempt.
    """
    problems = []
    raw = raw_values(source)
    for table_id, table in data["tables"].items():
        if table["kind"] != "table":
            continue
        if table.get("layout") == "transposed":
            problems += _transposed_problems(table_id, table, raw, text)
            continue
        blocks = table.get("layout") == "blocks"
        for index, row in enumerate(table["rows"]):
            if row.get("source") == "prose":
                continue
            values = raw[(table_id, index)]
            groups: list[list[str]] = []
            last = None
            for column in table["columns"]:
                if column["id"] not in values:
                    continue
                if column["dataset"] != last and (not groups or blocks):
                    groups.append([])
                    last = column["dataset"]
                groups[-1].append(values[column["id"]])
            if not groups:
                continue
            within = r"(?!\d)[^\n]*?(?<![\d.])"
            between = r"(?!\d)[\s\S]{0,1500}?(?<![\d.])"
            pattern = (
                r"(?<![\d.])"
                + between.join(within.join(re.escape(v) for v in group) for group in groups)
                + r"(?!\d)"
            )
            if not re.search(pattern, text):
                problems.append(
                    f"{table_id} row {index} ({row['method']}): {groups} not found in column order"
                )
    return problems


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.fixture(params=PAPER_IDS)
def paper(request: pytest.FixtureRequest) -> str:
    return request.param


def test_package_folder_is_importable() -> None:
    from importlib import resources

    folder = resources.files("avsbridge.resources.papers")
    assert {f"{p}.yaml" for p in PAPER_IDS} <= {entry.name for entry in folder.iterdir()}


def test_schema(paper: str) -> None:
    data = _load(paper)
    assert TOP_KEYS <= set(data), f"{paper}.yaml lacks {TOP_KEYS - set(data)}"
    assert data["paper"] == paper
    for name, recipe in data["recipes"].items():
        assert ID.match(name), f"{paper}: recipe id {name!r}"
        assert set(recipe) == {"needs", "set"}, f"{paper}: recipe {name} keys {set(recipe)}"
        assert recipe["needs"], f"{paper}: recipe {name} needs no stage"
        unknown = set(recipe["needs"]) - STAGES
        assert not unknown, f"{paper}: recipe {name} needs unknown stages {unknown}"
        assert isinstance(recipe["set"], dict), f"{paper}: recipe {name} set"
    assert data["tables"], f"{paper}: no tables"
    for table_id, table in data["tables"].items():
        where = f"{paper}.{table_id}"
        assert ID.match(table_id), where
        assert TABLE_KEYS <= set(table), f"{where} lacks {TABLE_KEYS - set(table)}"
        assert table["kind"] in ("table", "figure"), where
        if table["kind"] == "figure":
            assert ID.match(table["x"]["id"]) and table["x"]["label"], f"{where}: x"
        assert table.get("scale", 1) in (1, 100), f"{where}: scale"
        assert table.get("layout", "rows") in ("rows", "blocks", "transposed"), f"{where}: layout"
        assert isinstance(table.get("caption_printed", True), bool), f"{where}: caption_printed"
        ids = [column["id"] for column in table["columns"]]
        assert len(ids) == len(set(ids)), f"{where}: duplicate column ids {ids}"
        for column in table["columns"]:
            assert ID.match(column["id"]), f"{where}: column id {column['id']!r}"
            for key in ("label", "metric", "dataset", "protocol"):
                assert column.get(key), f"{where}.{column['id']} lacks {key}"
            assert isinstance(column.get("set", {}), dict), f"{where}.{column['id']} set"
            assert column.get("scale", 1) in (1, 100), f"{where}.{column['id']} scale"
        info_ids = {column["id"] for column in table.get("info_columns") or []}
        assert not info_ids & set(ids), f"{where}: info and value columns share ids"
        for index, row in enumerate(table["rows"]):
            at = f"{where} row {index} ({row.get('method')})"
            assert row.get("method"), at
            assert isinstance(row.get("values", {}), dict), at
            keys = set(row.get("values") or {})
            if table["kind"] == "figure":
                x_ok = all(k.partition("@")[0] in ids and k.partition("@")[2] for k in keys)
                assert x_ok, f"{at}: figure values must be keyed column@x, got {sorted(keys)}"
            else:
                assert keys <= set(ids), f"{at}: values {keys - set(ids)} are not column ids"
            assert set(row.get("info") or {}) <= info_ids, f"{at}: unknown info keys"
            if "recipe" in row:
                assert row["recipe"] in data["recipes"], f"{at}: recipe {row['recipe']} missing"
            assert isinstance(row.get("set", {}), dict), at
            assert "set" not in row or "recipe" in row, f"{at}: set without recipe"


def test_every_printed_number_is_in_the_paper_text(paper: str) -> None:
    data = _load(paper)
    text = _paper_text(paper, data["text"])
    source = (PAPER_FILES / f"{paper}.yaml").read_text(encoding="utf-8")
    problems = number_problems(source, text) + row_line_problems(data, source, text)
    assert not problems, f"{paper}.yaml:\n" + "\n".join(problems)


def test_captions_are_quoted_from_the_text(paper: str) -> None:
    data = _load(paper)
    text = _squash(_paper_text(paper, data["text"]))
    for table_id, table in data["tables"].items():
        if table.get("caption_printed", True) is False:
            # The extraction lost this caption: the file must say so instead of inventing one.
            assert "caption not in the text" in table["caption"], f"{paper}.{table_id}"
            assert table.get("note"), f"{paper}.{table_id}: say in the note how it was numbered"
            continue
        head = _squash(table["caption"])[:30]
        assert head in text, f"{paper}.{table_id}: caption start {head!r} not in {data['text']}"


def test_a_mistyped_number_is_caught() -> None:
    """The cross-check itself must fail on a one-digit typo or a swapped pair of cells."""
    source = (PAPER_FILES / "openavs.yaml").read_text(encoding="utf-8")
    text = _paper_text("openavs", "openavs.txt")
    data = _safe_load(source)
    assert not number_problems(source, text)
    typo = source.replace("s4_miou: 0.403,", "s4_miou: 0.413,", 1)
    assert typo != source and number_problems(typo, text)
    swapped = source.replace(
        "s4_miou: 0.403, s4_fscore: 0.515", "s4_miou: 0.515, s4_fscore: 0.403", 1
    )
    assert swapped != source and not number_problems(swapped, text)
    assert row_line_problems(_safe_load(swapped), swapped, text)
    assert not row_line_problems(data, source, text)


def test_a_one_digit_typo_in_any_table_is_caught(paper: str) -> None:
    """Bump the last digit of the first and the last printed value of every table: each such
    typo must be reported. (A full sweep over every value passes too but takes minutes.)"""
    source = (PAPER_FILES / f"{paper}.yaml").read_text(encoding="utf-8")
    text = _paper_text(paper, _load(paper)["text"])
    tables = _child(yaml.compose(source, Loader=LOADER), "tables")
    checked = 0
    for table_key, table_node in tables.value:
        scalars = [
            value
            for row in _child(table_node, "rows").value
            if (values := _child(row, "values")) is not None
            for _, value in values.value
        ]
        for node in {id(n): n for n in scalars[:1] + scalars[-1:]}.values():
            start, end = node.start_mark.index, node.end_mark.index
            old = source[start:end]
            assert old == node.value, f"{paper}.{table_key.value}: mark offsets drifted"
            typo = source[:start] + old[:-1] + str((int(old[-1]) + 1) % 10) + source[end:]
            problems = number_problems(typo, text) + row_line_problems(_safe_load(typo), typo, text)
            assert problems, f"{paper}.{table_key.value}: typo {old} -> ... not caught"
            checked += 1
    assert checked
