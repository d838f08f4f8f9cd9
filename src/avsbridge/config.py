"""Load and validate the configuration: a profile file merged with params.yaml.

The profile (``config/config.yaml`` = demo, ``config/paper.yaml``) says what runs
where; ``params.yaml`` holds the experiment parameters DVC tracks. Snakemake
merges the same two files, so the CLI, tests and the DAG see one config.
"""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the file and the key."""


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    """A config file as a mapping; a syntax error names the file and line (``path: line L, ...``)."""
    from avsbridge.io import ArtifactError, read_yaml

    if not Path(path).is_file():
        raise ConfigError(f"{path}: config file is missing")
    try:
        data = read_yaml(path) or {}
    except ArtifactError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


@functools.cache
def _schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))


def _schema_type(path: list[str]) -> str | None:
    """The JSON-schema type at a config key path (None when the schema does not say)."""
    node: Any = _schema()
    for key in path:
        props = node.get("properties", {})
        if key in props:
            node = props[key]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
        if "$ref" in node:
            node = _schema()["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    kind = node.get("type")
    return kind if isinstance(kind, str) else None


def _typed(value: str) -> Any:
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def coerce_cli_values(config: dict[str, Any], path: list[str] | None = None) -> None:
    """``--config llm_offline=true`` arrives as the string "true": type it as the schema says."""
    for key, value in list(config.items()):
        where = [*(path or []), str(key)]
        if isinstance(value, dict):
            coerce_cli_values(value, where)
        elif isinstance(value, str) and _schema_type(where) in (
            "boolean",
            "number",
            "integer",
            "array",
        ):
            config[key] = _typed(value)


def apply_set_overrides(config: dict[str, Any]) -> None:
    """``--config set='vfm.box_threshold=0.3;llm.strategy=pc'``: any key, values typed as YAML.

    The same dotted names ``dvc exp run -S`` takes for params.yaml keys.
    """
    spec = config.pop("set", None)
    if not spec:
        return
    for item in str(spec).split(";"):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(
                f"--config set: {item!r} is not KEY=VALUE (e.g. vfm.box_threshold=0.3)"
            )
        *parents, leaf = key.strip().split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--config set: {key.strip()!r}: {part!r} is not a section")
        node[leaf] = _typed(value.strip())


def validate_config(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    schema = _schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.path))
    if errors:
        lines = [f"{source}: {'/'.join(map(str, e.path)) or '<top>'}: {e.message}" for e in errors]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    for ds in config["datasets"].values():
        ds.setdefault("shard_size", 32)
    return config


def load_config(
    profile: Path | str = REPO_ROOT / "config" / "config.yaml",
    params: Path | str = REPO_ROOT / "params.yaml",
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Profile merged over params (profile wins), then overrides; validated."""
    profile, params = Path(profile), Path(params)
    merged = deep_merge(_read_yaml(params), _read_yaml(profile))
    if overrides:
        merged = deep_merge(merged, overrides)
    return validate_config(merged, source=f"{profile} + {params}")


DVC_RUN_ENV = "AVSBRIDGE_DVC_STAGE"  # set by dvc.yaml's commands


def check_dvc_profile(config: dict[str, Any], configfiles: list[str]) -> list[str]:
    """Under ``dvc repro``: the profile params.yaml names must have the dirs dvc.yaml tracks."""
    dvc = config.get("dvc")
    if not dvc or not os.environ.get(DVC_RUN_ENV):
        return []
    used = [Path(f).resolve() for f in configfiles]
    if Path(dvc["profile_file"]).resolve() not in used:
        return []
    problems = []
    for key in ("results_dir", "reports_dir"):
        own = str(config.get(key, "reports" if key == "reports_dir" else ""))
        if own != dvc[key]:
            problems.append(
                f"params.yaml dvc.{key} is {dvc[key]!r} but {dvc['profile_file']} has "
                f"{key}: {own!r}; set dvc.{key} to the profile's value (dvc.yaml tracks it)"
            )
    return problems


# Where each benchmark layout comes from (the README's "Paper profile" section has the steps).
DATA_SOURCES = {
    "s4": "AVSBench-object (Single-source), https://opennlplab.github.io/AVSBench/",
    "ms3": "AVSBench-object (Multi-sources), https://opennlplab.github.io/AVSBench/",
    "avss": "AVSBench-semantic, https://opennlplab.github.io/AVSBench/",
    "v3": "AVSBench-semantic + the V3 split files (GeWu-Lab/Generalizable-Audio-Visual-Segmentation)",
    "is3": "IS3 (synthetic3241) + metadata/synthetic3240_seg.json, kaistmm/SSLalignment",
    "s4-zeroshot": "AVSBench-object Single-source + metadata/s4_seg.json, kaistmm/SSLalignment",
    "vpo-ss": "VPO (COCO_AV) + metadata/vpo_ss_seg.json, kaistmm/SSLalignment",
    "demo-zeroshot": "the committed demo (avsbridge.data.demo_zeroshot)",
    "s4-frames": "AVSBench-object (Single-source), https://opennlplab.github.io/AVSBench/",
}


def check_dataset_roots(config: dict[str, Any], base: Path | None = None) -> list[str]:
    """Every configured dataset whose split list is missing, all at once, with the key to edit."""
    from avsbridge.pipeline import metadata_file

    problems = []
    for name, spec in config["datasets"].items():
        root = Path(spec["root"])
        if base is not None and not root.is_absolute():
            root = base / root
        moved = {**spec, "root": str(root)}
        if spec.get("list") and base is not None and not Path(spec["list"]).is_absolute():
            moved["list"] = str(base / spec["list"])
        try:
            listed = Path(metadata_file({"datasets": {name: moved}}, name))
            present = listed.is_file()
        except (ValueError, OSError):
            present = False
        if not present:
            problems.append(
                f"datasets.{name}.root: no {spec['kind']} split list under {root} "
                f"(edit datasets.{name}.root in the profile; data: {DATA_SOURCES[spec['kind']]})"
            )
    return problems


def prepare_workflow_config(config: dict[str, Any], workflow: Any = None) -> dict[str, Any]:
    """Everything the Snakefile does with its config before building the DAG.

    Types command-line values, applies ``set`` overrides, validates against the
    schema (unknown keys at any level are errors), checks every configured
    backend name and option against its registry, and the DVC profile choice.
    """
    coerce_cli_values(config)
    apply_set_overrides(config)
    validate_config(config, source="config (params.yaml + profile + --config)")
    from avsbridge.stages import check_backends

    problems = check_backends(config) + check_dataset_roots(config)
    if workflow is not None:
        problems += check_dvc_profile(config, [str(f) for f in workflow.configfiles])
        if _will_run_jobs(workflow):
            from avsbridge.weights import check_weights

            # existence only (each job verifies sha256 when it loads the file)
            problems += [str(p) for p in check_weights(config, verify=False)]
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return config


def _will_run_jobs(workflow: Any) -> bool:
    """A real run (not -n, --touch, --summary, --lint) in the main Snakemake process."""
    return (
        getattr(workflow, "executor_plugin", None) is not None
        and not workflow.dryrun
        and not workflow.touch
        and workflow.is_main_process
    )
