"""Which run fills each table cell: variant = defaults <- recipe <- column <- row.

A *variant* is one path through the stage chain (dataset, ALM + prompts, LLM +
strategy, VFM + box threshold). A reproduced cell's variant is the merge of the
table's defaults, the row's recipe, the column's settings and the row's own
overrides (``avsbridge.papers`` reads them from data), completed with the
profile's defaults. One generic function: nothing here knows a table's, row's
or recipe's name. A cell whose recipe needs a stage family that is not built,
a dataset or backend the profile lacks, or a protocol the evaluate stage does
not compute for that dataset, is empty with that reason.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from avsbridge import paths
from avsbridge.papers import Column, PaperDataError, Row, Table, all_tables, load_paper
from avsbridge.stages import PROTOCOLS_OF_KIND, STAGES

WEAK_LABEL = "weaklabel"
NO_LLM = "none"
STRATEGIES = ("none", "pc", "fc", "pcfc")
# Fields a recipe may set that no stage consumes: what the cell is read with.
CELL_FIELDS = ("dataset", "protocol")
PAPER_ONLY = "reported by the paper only (another method)"
ST_STAGES = ("pseudo_labels", "audio_features", "train", "predict", "evaluate_st")
STUDENT_FIELDS = ("student", "teacher", "seed")
# ``teacher: gt``: the student trained on the train split's ground truth (an upper bound)
GT_TEACHER = "gt"
NOT_A_METRIC = "not a metric column"


@dataclass(frozen=True)
class Variant:
    """One configuration of the stage chain on one dataset."""

    dataset: str
    alm: str
    aprompts: tuple[str, ...]
    llm: str
    strategy: str
    vfm: str
    box_threshold: float
    perturbation: str = "none"  # audio control: none | mute | wgn10 | wgn40
    terminal: str = "evaluate"  # the stage whose output the cell reads
    # OpenAVS-ST: a student trained on the teacher's masks of ``train_dataset`` (the
    # fields above then describe the teacher; ``dataset`` is the test dataset)
    student: str = ""
    seed: int = 0
    afeat: str = ""  # the student's audio-feature backend
    train_dataset: str = ""

    @property
    def text_key(self) -> str:
        return f"{self.alm}/{'+'.join(self.aprompts)}/{self.llm}/{self.strategy}"

    @property
    def threshold_key(self) -> str:
        return paths.threshold_key(self.box_threshold)

    @property
    def stages(self) -> tuple[str, ...]:
        """The stage families this variant runs through, in order."""
        first = ("weak_labels",) if self.alm == WEAK_LABEL else ("audio_text", "translate")
        if self.student and self.alm == GT_TEACHER:
            return ("data_check", *ST_STAGES[1:])
        if self.student:
            return ("data_check", *first, "segment", *ST_STAGES)
        return ("data_check", *first, "segment", "evaluate")

    def teacher(self) -> Variant:
        """The OpenAVS variant whose masks on the train split are the pseudo labels."""
        return dataclasses.replace(
            self,
            dataset=self.train_dataset,
            student="",
            seed=0,
            afeat="",
            train_dataset="",
            terminal="evaluate",
        )

    def describe(self, config: dict[str, Any]) -> str:
        """The variant's own configuration, for a report's ``config`` column."""
        vfm = config["backends"]["vfm"].get(self.vfm) or {}
        parts = [
            f"dataset={self.dataset}",
            f"alm={self.alm}",
            f"aprompts={'+'.join(self.aprompts)}",
            f"llm={self.llm}",
            f"strategy={self.strategy}",
            f"vfm={self.vfm}:{vfm.get('name', '?')}",
            f"box_threshold={self.box_threshold}",
            *([f"audio={self.perturbation}"] if self.perturbation != "none" else []),
        ]
        if self.student:
            parts = [
                f"dataset={self.dataset}",
                f"student={self.student}",
                f"seed={self.seed}",
                f"teacher=({'; '.join(parts[1:])}) on {self.train_dataset}",
            ]
        return "; ".join(parts)


@dataclass(frozen=True)
class ZeroShotVariant:
    """One configuration of the BAaV zero-shot chain on one dataset.

    ``query`` is the strategy, ``ris`` the RIS role (backends.ris.<role>); the audio
    model, image captioner and phrase matcher are the profile's, or "none" where the
    strategy does not use them (so a path says exactly which models made it).
    """

    dataset: str
    query: str
    ris: str
    audio_model: str
    image_model: str
    matcher: str
    terminal: str = "evaluate_zeroshot"
    FIELDS = ("dataset", "query", "ris", "audio_model", "image_model", "matcher")

    def path_values(self) -> dict[str, str]:
        return {f: str(getattr(self, f)) for f in self.FIELDS}

    @property
    def stages(self) -> tuple[str, ...]:
        first = ("zeroshot_audio",) if self.audio_model != NO_MODEL else ()
        image = ("zeroshot_image",) if self.image_model != NO_MODEL else ()
        return ("data_check", *first, *image, "zeroshot_query", "ris", "evaluate_zeroshot")

    def describe(self, config: dict[str, Any]) -> str:
        ris = (config["backends"].get("ris") or {}).get(self.ris) or {}
        return "; ".join(
            [
                f"dataset={self.dataset}",
                f"query={self.query}",
                f"audio_model={self.audio_model}",
                f"image_model={self.image_model}",
                f"matcher={self.matcher}",
                f"ris={self.ris}:{ris.get('name', '?')}",
            ]
        )


NO_MODEL = "none"
ZEROSHOT_FIELDS = frozenset(ZeroShotVariant.FIELDS)


def is_zeroshot_fields(fields: dict[str, Any]) -> bool:
    """A partial variant of the zero-shot chain: it sets a field only that chain consumes."""
    return bool((set(fields) - set(CELL_FIELDS)) & (ZEROSHOT_FIELDS - {"dataset"}))


def complete_zeroshot_variant(config: dict[str, Any], fields: dict[str, Any]) -> ZeroShotVariant:
    from avsbridge.zeroshot_query.strategies import strategy

    st = strategy(fields["query"])
    backends = config["backends"]

    def model(key: str, used: bool, field: str) -> str:
        if not used:
            return NO_MODEL
        return str(fields.get(field) or backends[key]["name"])

    return ZeroShotVariant(
        dataset=fields["dataset"],
        query=st.name,
        ris=str(fields.get("ris", "asda")),
        audio_model=model("zs_audio", st.needs_audio, "audio_model"),
        image_model=model("zs_image", st.needs_image, "image_model"),
        matcher=model("zs_match", st.uses_matcher, "matcher"),
    )


def _zeroshot_reason(config: dict[str, Any], fields: dict[str, Any]) -> str:
    """Why a zero-shot cell is empty on this profile (a missing backend), or ""."""
    from avsbridge.zeroshot_query.strategies import STRATEGIES

    st = STRATEGIES.get(fields.get("query", ""))
    if st is None:
        return ""  # the query stage's precondition names it
    backends = config["backends"]
    needed = [("zs_audio", st.needs_audio), ("zs_image", st.needs_image)]
    needed.append(("zs_match", st.uses_matcher))
    for key, used in needed:
        if used and backends.get(key) is None:
            return f"profile {config['profile']!r} has no backends.{key}"
    role = str(fields.get("ris", "asda"))
    if (backends.get("ris") or {}).get(role) is None:
        return (
            f"profile {config['profile']!r} has no {role.upper()} RIS backend (backends.ris.{role})"
        )
    return ""


@dataclass(frozen=True)
class Cell:
    """What fills one reproduced cell: a variant + a metric, or why it stays empty."""

    variant: Variant | ZeroShotVariant | None
    metric: str
    reason: str = ""
    protocol: str = ""

    @property
    def reproducible(self) -> bool:
        """A cell this project reproduces (filled now, or empty for a reason of the profile)."""
        return self.reason not in (PAPER_ONLY, NOT_A_METRIC)


def _stage_fields() -> set[str]:
    return {f for st in STAGES.values() for f in st.fields}


def merged_fields(
    table: Table, row: Row, column: Column, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """defaults <- recipe <- column <- row (<- a figure's swept value): one partial variant."""
    recipe = load_paper(table.paper).recipes[row.recipe] if row.recipe else None
    fields: dict[str, Any] = {}
    for layer in (
        table.defaults,
        recipe.set if recipe else {},
        {k: v for k, v in (("dataset", column.dataset), ("protocol", column.protocol)) if v},
        column.set,
        row.set,
        extra or {},
    ):
        fields.update(layer)
    return fields


def complete_variant(config: dict[str, Any], fields: dict[str, Any]) -> Variant:
    """A partial variant completed with the profile's defaults (params.yaml, backends)."""
    strategy = fields.get("strategy", config["llm"]["strategy"])
    if "aprompts" in fields:
        aprompts = tuple(fields["aprompts"])
    elif strategy in ("pc", "pcfc"):  # prompt consistency asks every ALM prompt
        aprompts = tuple(config["alm"]["prompts"])
    else:
        aprompts = (config["alm"]["default_prompt"],)
    alm = fields.get("alm", config["backends"]["alm"]["name"])
    return Variant(
        dataset=fields["dataset"],
        alm=alm,
        aprompts=aprompts,
        llm=fields.get("llm", config["backends"]["llm"]["name"]),
        strategy=strategy,
        vfm=fields.get("vfm", "sam"),
        box_threshold=float(fields.get("box_threshold", config["vfm"]["box_threshold"])),
        # clip-level weak labels never hear the audio: a perturbed run is the normal run
        perturbation="none" if alm == WEAK_LABEL else str(fields.get("perturbation", "none")),
    )


def _profile_reason(config: dict[str, Any], fields: dict[str, Any], needs: tuple[str, ...]) -> str:
    dataset = fields.get("dataset")
    if dataset is None:
        return "the column names no dataset"
    if dataset not in config["datasets"]:
        return f"dataset {dataset!r} is not part of profile {config['profile']!r}"
    vfm = fields.get("vfm", "sam")
    if "segment" in needs and config["backends"]["vfm"].get(vfm) is None:
        return f"profile {config['profile']!r} has no {vfm.upper()} backend (backends.vfm.{vfm})"
    protocol = fields.get("protocol")
    kind = config["datasets"][dataset]["kind"]
    if protocol and protocol not in PROTOCOLS_OF_KIND.get(kind, ()):
        return f"protocol {protocol!r} is not computed for {kind} datasets"
    zeroshot = is_zeroshot_fields(fields)
    chain = needs
    if zeroshot:
        reason = _zeroshot_reason(config, fields)
        if reason:
            return reason
        chain = tuple(dict.fromkeys((*needs, "zeroshot_query")))
    for name in chain:
        check = STAGES[name].precondition
        reason = check(config, fields) if check else ""
        if reason:
            return reason
    return ""


def cell(
    config: dict[str, Any],
    table: Table,
    row: Row,
    column: Column,
    extra: dict[str, Any] | None = None,
) -> Cell:
    """What reproduces one cell of a paper table on this profile."""
    metric = column.metric or ""
    if row.recipe is None:
        return Cell(None, metric, PAPER_ONLY)
    if column.metric is None:
        return Cell(None, metric, NOT_A_METRIC)
    recipe = load_paper(table.paper).recipes[row.recipe]
    fields = merged_fields(table, row, column, extra)
    protocol = str(fields.get("protocol") or "")
    if column.needs:  # a column measured before the recipe's last stages (TeSO REC#1)
        return _column_chain_cell(config, column, fields, metric, protocol)
    missing = [s for s in recipe.needs if s not in STAGES]
    if missing:
        return Cell(
            None,
            metric,
            f"needs stage{'s' if len(missing) > 1 else ''} {', '.join(missing)} (not built yet)",
            protocol,
        )
    unknown = sorted(set(fields) - _stage_fields() - set(CELL_FIELDS))
    if unknown:
        raise PaperDataError(
            f"resources/papers/{table.paper}.yaml: {table.id} row {row.method!r} column "
            f"{column.id}: variant field(s) {', '.join(unknown)} are consumed by none of the "
            f"stages {', '.join(recipe.needs)}"
        )
    reason = _profile_reason(config, fields, recipe.needs)
    if reason:
        return Cell(None, metric, reason, protocol)
    if is_zeroshot_fields(fields):
        return Cell(complete_zeroshot_variant(config, fields), metric, "", protocol)
    if "student" in fields:
        if extra and not config.get("train_sweeps", True):
            return Cell(
                None,
                metric,
                f"profile {config['profile']!r} trains no students for a figure's sweep "
                "(train_sweeps: false; one training per point)",
                protocol,
            )
        return _student_cell(config, table, fields, metric, protocol)
    return Cell(complete_variant(config, fields), metric, "", protocol)


@dataclass(frozen=True)
class CueVariant:
    """TeSO's text cues on one dataset, scored against the clips' categories (REC#1)."""

    dataset: str
    scene_description: str  # the profile's describer backend
    text_cues: str  # the profile's cue LLM backend
    cues: str  # template: cot | oneshot | noun
    terminal: str = "cue_recognition"

    def path_values(self) -> dict[str, str]:
        return {
            "dataset": self.dataset,
            "scene_description": self.scene_description,
            "text_cues": self.text_cues,
        }

    @property
    def stages(self) -> tuple[str, ...]:
        return ("data_check", "scene_description", "text_cues", "cue_recognition")

    def describe(self, config: dict[str, Any]) -> str:
        return (
            f"dataset={self.dataset}; scene_description={self.scene_description}; "
            f"text_cues={self.text_cues}; cues={self.cues}"
        )


def _column_chain_cell(
    config: dict[str, Any], column: Column, fields: dict[str, Any], metric: str, protocol: str
) -> Cell:
    """A column whose own ``needs`` stop before the recipe's model (REC#1 of the cues)."""
    from avsbridge.stages import backend_spec

    missing = [s for s in column.needs if s not in STAGES]
    if missing:
        return Cell(None, metric, f"needs stage(s) {', '.join(missing)} (not built yet)", protocol)
    reason = _profile_reason(config, {**fields, "vfm": "sam"}, column.needs)
    if reason:
        return Cell(None, metric, reason, protocol)
    if column.needs[-1] != "cue_recognition":
        raise PaperDataError(f"column {column.id}: no variant type ends in {column.needs[-1]!r}")
    for key in ("scene_description", "text_cues"):
        if config["backends"].get(key) is None:
            return Cell(
                None, metric, f"profile {config['profile']!r} has no backends.{key}", protocol
            )
    cues = str(fields.get("cues", "cot"))
    variant = CueVariant(
        dataset=fields["dataset"],
        scene_description=backend_spec(config, "scene_description")["name"],
        text_cues=backend_spec(config, "text_cues")["name"],
        cues=cues,
    )
    return Cell(variant, f"by_cues.{cues}.{metric}", "", protocol)


def metric_value(metrics: dict[str, Any], key: str) -> Any:
    """A metric of a metrics JSON; dotted keys reach nested ones (``by_cues.cot.ap``)."""
    node: Any = metrics
    for part in key.split("."):
        node = node[part]
    return node


def train_split_of(config: dict[str, Any], dataset: str) -> str:
    return str(config["datasets"][dataset].get("train_dataset", f"{dataset}_train"))


def _student_cell(
    config: dict[str, Any], table: Table, fields: dict[str, Any], metric: str, protocol: str
) -> Cell:
    """An OpenAVS-ST cell: the teacher recipe on the train split, then the student."""
    from avsbridge.stages import student_backend
    from avsbridge.train import STUDENTS

    recipes = load_paper(table.paper).recipes
    teacher_name = str(fields.get("teacher", ""))
    if teacher_name != GT_TEACHER and teacher_name not in recipes:
        raise PaperDataError(
            f"resources/papers/{table.paper}.yaml: {table.id}: teacher {teacher_name!r} "
            "names no recipe"
        )
    train_ds = train_split_of(config, fields["dataset"])
    if train_ds not in config["datasets"]:
        return Cell(
            None,
            metric,
            f"the train split of {fields['dataset']} ({train_ds}) is not part of profile "
            f"{config['profile']!r}",
            protocol,
        )
    if teacher_name == GT_TEACHER:  # the upper bound: the same student on ground truth
        teacher = Variant(train_ds, GT_TEACHER, (GT_TEACHER,), NO_LLM, "none", GT_TEACHER, 0.0)
    else:
        teacher_recipe = recipes[teacher_name]
        # what the row, column or a figure's sweep sets for the chain (a box threshold...)
        # is the teacher's: the student only adds student / seed
        chain = {k: v for k, v in fields.items() if k not in (*STUDENT_FIELDS, *CELL_FIELDS)}
        teacher_fields = {**teacher_recipe.set, **chain, "dataset": train_ds}
        reason = _profile_reason(config, teacher_fields, teacher_recipe.needs)
        if reason:
            return Cell(None, metric, f"teacher {teacher_name}: {reason}", protocol)
        teacher = complete_variant(config, teacher_fields)
    student = student_backend(config, str(fields["student"]))
    registry = STUDENTS.load_all()
    if student not in registry:
        raise PaperDataError(f"student {student!r} is not registered (known: {registry.names()})")
    seeds = (config.get("train") or {}).get("seeds") or [0]
    variant = dataclasses.replace(
        teacher,
        dataset=fields["dataset"],
        student=student,
        seed=int(fields.get("seed", seeds[0])),
        afeat=str(getattr(registry.get(student), "audio_features", "")),
        train_dataset=train_ds,
        terminal="evaluate_st",
    )
    return Cell(variant, metric, "", protocol)


def row_cells(config: dict[str, Any], table: Table, row: Row) -> dict[str, Cell]:
    """Each metric column of a paper row -> what reproduces it."""
    return {c.id: cell(config, table, row, c) for c in table.columns}


NO_X_VALUES = "the paper's text gives no x values for this figure (a plot only)"


def sweep_values(config: dict[str, Any], table: Table) -> list[Any]:
    """The x values of a figure: ``x.values`` as data, or the config list ``x.values_from`` names."""
    if table.x.get("values"):
        return list(table.x["values"])
    source = table.x.get("values_from")
    if not source:
        return []
    node: Any = config
    for key in str(source).split("."):
        node = node[key]
    return list(node)


def figure_cells(config: dict[str, Any], table: Table) -> list[tuple[Row, Column, Any, Cell]]:
    """(row, column, x, cell) for every point a figure plots."""
    x_field = table.x.get("id")
    xs = sweep_values(config, table)
    if not xs:
        return [
            (row, column, None, Cell(None, column.metric or "", NO_X_VALUES, column.protocol or ""))
            for row in table.rows
            for column in table.columns
        ]
    return [
        (row, column, x, cell(config, table, row, column, {x_field: x}))
        for row in table.rows
        for column in table.columns
        for x in xs
    ]


def table_cells(config: dict[str, Any], table: Table) -> list[Cell]:
    if table.kind == "figure":
        return [c for *_, c in figure_cells(config, table)]
    return [c for row in table.rows for c in row_cells(config, table, row).values()]


def report_variants(config: dict[str, Any], table: Table) -> list[Variant | ZeroShotVariant]:
    """Every variant whose metrics a report reads (deduplicated, ordered)."""
    return list(dict.fromkeys(c.variant for c in table_cells(config, table) if c.variant))


def reports() -> tuple[Table, ...]:
    """Every table and figure of every paper: the one list targets, DVC and bench derive from."""
    return tuple(all_tables())


def report_tables(config: dict[str, Any]) -> dict[str, Table]:
    """Report key (its path under the reports dir, no suffix: ``table1``, ``baav/table2``) -> table."""
    base = paths.reports_dir(config) + "/"
    return {paths.report_stem(config, t.paper, t.id).removeprefix(base): t for t in reports()}


def all_variants(config: dict[str, Any]) -> list[Variant | ZeroShotVariant]:
    return list(dict.fromkeys(v for t in reports() for v in report_variants(config, t)))


def metrics_path(config: dict[str, Any], variant: Variant | ZeroShotVariant) -> str:
    return paths.metrics_path(config, variant)
