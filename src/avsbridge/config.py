"""Load and validate the configuration: a profile file merged with params.yaml.

The profile (``config/config.yaml`` = demo, ``config/paper.yaml``) says what runs
where; ``params.yaml`` holds the experiment parameters DVC tracks. Snakemake
merges the same two files, so the CLI, tests and the DAG see one config.
"""

from __future__ import annotations

import copy
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


def validate_config(config: dict[str, Any], source: str = "config") -> dict[str, Any]:
    schema = yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))
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
