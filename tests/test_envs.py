"""Conda env files (envs/*.yaml) agree with the pinned Python requirements.

``--sdm conda`` cannot run on CI (no conda binary, no conda channels), so the env
files are checked statically: the Python version is the project's, every pip pin
equals the pin in pyproject.toml and in requirements.lock (the resolved venv CI
tests), each env installs avsbridge itself, and every rule's ``conda:`` file exists.
envs/pengi.yaml runs Pengi's code on the main stack (avsbridge.audio_text.pengi_compat),
so it is checked like every other env.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENVS = REPO / "envs"
# Envs that would pin another project's stack on purpose: Python version and --no-deps only.
# minicpm.yaml: MiniCPM-o-2.6 remote code needs transformers 4.44 / torch 2.3 (its model card)
OWN_STACK: set[str] = {"minicpm.yaml"}
_PIN_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._\-]*)(\[[^\]]*\])?==([^\s;]+)$")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        specs += extra
    pins = {}
    for spec in specs:
        match = _PIN_RE.match(spec.strip())
        assert match, f"pyproject.toml: {spec!r} is not pinned with =="
        pins[norm(match.group(1))] = match.group(3)
    return pins


def lock_pins(path: Path = REPO / "requirements.lock") -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN_RE.match(line)
        assert match, f"{path.name}: {line!r} is not a name==version pin"
        pins[norm(match.group(1))] = match.group(3)
    return pins


def env_spec(path: Path) -> tuple[str | None, dict[str, str], list[str]]:
    """(python version, pip pins, other pip lines) of one conda env file."""
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict) and isinstance(doc.get("dependencies"), list), (
        f"{path}: no dependencies list"
    )
    python = None
    pins: dict[str, str] = {}
    other: list[str] = []
    for dep in doc["dependencies"]:
        if isinstance(dep, str) and re.match(r"^python[=<> ]", dep):
            python = re.split(r"[=<> ]+", dep, maxsplit=1)[1]
        elif isinstance(dep, dict) and "pip" in dep:
            for line in dep["pip"]:
                match = _PIN_RE.match(str(line).strip())
                if match:
                    pins[norm(match.group(1))] = match.group(3)
                else:
                    other.append(str(line).strip())
    return python, pins, other


def env_problems(path: Path, project: dict[str, str], lock: dict[str, str]) -> list[str]:
    """Every way one env file disagrees with the project's pins (empty: consistent)."""
    problems = []
    python, pins, other = env_spec(path)
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    if python is None or not re.fullmatch(r"3\.11(\.\d+)?", python) or "3.11" not in requires:
        problems.append(f"{path.name}: python={python}, the project needs {requires}")
    if path.name in OWN_STACK:
        if "--no-deps -e .." not in other:
            problems.append(f"{path.name}: must install avsbridge with --no-deps -e ..")
        return problems
    if "-e .." not in other:
        problems.append(f"{path.name}: does not install avsbridge (-e ..)")
    for name, version in sorted(pins.items()):
        if name in project and project[name] != version:
            problems.append(f"{path.name}: {name}=={version}, pyproject.toml pins {project[name]}")
        if name not in lock:
            problems.append(f"{path.name}: {name} is not in requirements.lock")
        elif lock[name] != version:
            problems.append(f"{path.name}: {name}=={version}, requirements.lock has {lock[name]}")
    return problems


ENV_FILES = sorted(ENVS.glob("*.yaml"))


def test_there_are_env_files() -> None:
    assert {p.name for p in ENV_FILES} >= {"core.yaml", "audio_text.yaml", "segment.yaml"}


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_file_matches_the_pinned_requirements(path: Path) -> None:
    assert env_problems(path, pyproject_pins(), lock_pins()) == []


def test_every_project_pin_is_the_locked_version() -> None:
    lock = lock_pins()
    mismatched = {n: (v, lock.get(n)) for n, v in pyproject_pins().items() if lock.get(n) != v}
    assert mismatched == {}, "pyproject.toml and requirements.lock disagree"


def test_every_rule_conda_env_exists() -> None:
    referenced = set()
    for rule_file in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for match in re.finditer(r"conda:\s*\n\s*\"([^\"]+)\"", rule_file.read_text()):
            env = (rule_file.parent / match.group(1)).resolve()
            assert env.is_file(), f"{rule_file.name}: conda env {match.group(1)} is missing"
            referenced.add(env.name)
    assert referenced, "no rule declares a conda env"


def test_a_drifted_pin_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "core.yaml"
    bad.write_text(
        "dependencies:\n  - python=3.12\n  - pip:\n      - numpy==1.0.0\n"
        "      - not-locked-pkg==1.0\n"
    )
    problems = env_problems(bad, {"numpy": "2.4.6"}, {"numpy": "2.4.6"})
    assert any("python=3.12" in p for p in problems)
    assert any("numpy==1.0.0, pyproject.toml pins 2.4.6" in p for p in problems)
    assert any("not-locked-pkg is not in requirements.lock" in p for p in problems)
    assert any("does not install avsbridge" in p for p in problems)
