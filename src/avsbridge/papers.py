"""The four papers' tables and figures, read from data.

One YAML per paper under ``avsbridge/resources/papers/``: every main-text table
and figure with its caption, columns (metric, dataset, protocol), rows (method,
descriptive columns, the printed numbers) and, for rows this project
reproduces, a recipe: a partial variant plus the stage families it needs. Code
never branches on a table's, row's or recipe's name; a new row is a data edit.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

PAPERS_PACKAGE = "avsbridge.resources.papers"
PAPER_IDS = ("openavs", "baav", "ssp", "teso")
PAPERS_DIR_ENV = "AVSBRIDGE_PAPERS_DIR"


class PaperDataError(ValueError):
    """A paper file breaks the schema; the message names the file and the entry."""


@dataclass(frozen=True)
class Column:
    id: str
    label: str
    metric: str | None  # None: not a reproduced metric (a count, a descriptive number)
    dataset: str | None
    protocol: str | None
    set: dict[str, Any] = field(default_factory=dict)
    higher_is_better: bool = True
    scale: float | None = None  # printed unit of this column when it differs from the table's
    needs: tuple[str, ...] = ()  # a column measured by an earlier stage than its recipe's last


@dataclass(frozen=True)
class Row:
    method: str
    info: dict[str, Any]
    values: dict[str, Any]
    recipe: str | None = None
    set: dict[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Recipe:
    name: str
    needs: tuple[str, ...]
    set: dict[str, Any]


@dataclass(frozen=True)
class Table:
    paper: str
    id: str
    kind: str  # table | figure
    caption: str
    columns: tuple[Column, ...]
    info_columns: tuple[tuple[str, str], ...]  # (id, label)
    rows: tuple[Row, ...]
    defaults: dict[str, Any] = field(default_factory=dict)
    scale: float = 1.0  # printed value = metric in [0, 1] x scale
    note: str = ""
    x: dict[str, Any] = field(default_factory=dict)  # figures: the swept variant field
    recipe: str | None = None  # figures: the recipe whose sweep is plotted

    @property
    def key(self) -> str:
        return f"{self.paper}/{self.id}"

    def scale_of(self, column: Column) -> float:
        """Printed value = metric in [0, 1] x this (a column's own scale wins)."""
        return column.scale if column.scale is not None else self.scale

    def column(self, column_id: str) -> Column:
        for c in self.columns:
            if c.id == column_id:
                return c
        raise KeyError(f"{self.key}: no column {column_id!r}")


@dataclass(frozen=True)
class Paper:
    id: str
    title: str
    citation: str
    text: str
    recipes: dict[str, Recipe]
    tables: dict[str, Table]


def _fail(paper: str, where: str, problem: str) -> PaperDataError:
    return PaperDataError(f"resources/papers/{paper}.yaml: {where}: {problem}")


def _column(paper: str, table: str, raw: dict[str, Any]) -> Column:
    if "id" not in raw:
        raise _fail(paper, f"tables.{table}.columns", f"column without id: {raw}")
    return Column(
        id=str(raw["id"]),
        label=str(raw.get("label", raw["id"])),
        metric=raw.get("metric"),
        dataset=raw.get("dataset"),
        protocol=raw.get("protocol"),
        set=dict(raw.get("set") or {}),
        higher_is_better=bool(raw.get("higher_is_better", True)),
        scale=float(raw["scale"]) if raw.get("scale") is not None else None,
        needs=tuple(raw.get("needs") or ()),
    )


def _info_columns(raw: list[Any]) -> tuple[tuple[str, str], ...]:
    out = []
    for item in raw or []:
        if isinstance(item, dict):
            out.append((str(item["id"]), str(item.get("label", item["id"]))))
        else:
            out.append((str(item), str(item)))
    return tuple(out)


def parse_paper(paper_id: str, data: dict[str, Any]) -> Paper:
    """Check one paper file's structure and build its tables (errors name the entry)."""
    recipes = {
        name: Recipe(name, tuple(spec.get("needs") or ()), dict(spec.get("set") or {}))
        for name, spec in (data.get("recipes") or {}).items()
    }
    tables: dict[str, Table] = {}
    for table_id, spec in (data.get("tables") or {}).items():
        where = f"tables.{table_id}"
        columns = tuple(_column(paper_id, table_id, c) for c in spec.get("columns") or ())
        ids = [c.id for c in columns]
        if len(set(ids)) != len(ids):
            raise _fail(paper_id, where, f"duplicate column ids in {ids}")
        info = _info_columns(spec.get("info_columns") or [])
        rows = []
        for i, raw in enumerate(spec.get("rows") or ()):
            row_where = f"{where}.rows[{i}] ({raw.get('method', '?')})"
            if "method" not in raw:
                raise _fail(paper_id, row_where, "row without method")
            values = dict(raw.get("values") or {})
            for key in values:
                column_id = key.split("@", 1)[0]
                if column_id not in ids:
                    raise _fail(paper_id, row_where, f"value for unknown column {key!r}")
            recipe = raw.get("recipe")
            if recipe is not None and recipe not in recipes:
                raise _fail(paper_id, row_where, f"unknown recipe {recipe!r}")
            rows.append(
                Row(
                    method=str(raw["method"]),
                    info=dict(raw.get("info") or {}),
                    values=values,
                    recipe=recipe,
                    set=dict(raw.get("set") or {}),
                    note=str(raw.get("note") or ""),
                )
            )
        recipe = spec.get("recipe")
        if recipe is not None and recipe not in recipes:
            raise _fail(paper_id, where, f"unknown recipe {recipe!r}")
        tables[table_id] = Table(
            paper=paper_id,
            id=str(table_id),
            kind=str(spec.get("kind", "table")),
            caption=str(spec.get("caption") or spec.get("title") or table_id),
            columns=columns,
            info_columns=info,
            rows=tuple(rows),
            defaults=dict(spec.get("defaults") or {}),
            scale=float(spec.get("scale", 1.0)),
            note=str(spec.get("note") or ""),
            x=dict(spec.get("x") or {}),
            recipe=recipe,
        )
    return Paper(
        id=paper_id,
        title=str(data.get("title", paper_id)),
        citation=str(data.get("citation", "")),
        text=str(data.get("text", f"{paper_id}.txt")),
        recipes=recipes,
        tables=tables,
    )


def papers_dir() -> str:
    """Where paper files are read: the package's, or ``AVSBRIDGE_PAPERS_DIR`` (a researcher's
    own edited copies: a new row or table is a data edit there)."""
    return os.environ.get(PAPERS_DIR_ENV, "")


def load_paper(paper_id: str) -> Paper:
    return _load_paper(paper_id, papers_dir())


@functools.cache
def _load_paper(paper_id: str, folder: str) -> Paper:
    if paper_id not in PAPER_IDS:
        raise PaperDataError(f"unknown paper {paper_id!r} (known: {', '.join(PAPER_IDS)})")
    name = f"{paper_id}.yaml"
    source = Path(folder) / name if folder else resources.files(PAPERS_PACKAGE).joinpath(name)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PaperDataError(f"{source}: paper file is missing") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise PaperDataError(f"{source}: not valid YAML ({exc})") from None
    return parse_paper(paper_id, data)


def papers() -> list[Paper]:
    return [load_paper(p) for p in PAPER_IDS]


def all_tables() -> list[Table]:
    """Every table and figure of every paper, in paper then document order."""
    return [t for p in papers() for t in p.tables.values()]


def table(paper_id: str, table_id: str) -> Table:
    try:
        return load_paper(paper_id).tables[table_id]
    except KeyError:
        known = ", ".join(load_paper(paper_id).tables)
        raise PaperDataError(f"{paper_id} has no table {table_id!r} (known: {known})") from None
