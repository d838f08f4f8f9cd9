"""Shared test fixtures: where ../shared lives, offline settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_path(env: str, default: Path) -> Path:
    return Path(os.environ.get(env, str(default))).expanduser()


SHARED_FIXTURES = _shared_path("AVSBRIDGE_FIXTURES", REPO.parent / "shared" / "fixtures")
WEIGHTS_MIRROR = _shared_path("AVSBRIDGE_WEIGHTS_MIRROR", REPO.parent / "shared" / "weights")
SHARED_UPSTREAM = _shared_path("AVSBRIDGE_UPSTREAM", REPO.parent / "shared" / "upstream")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("AVSBRIDGE_OFFLINE", "1")
os.environ.setdefault("AVSBRIDGE_WEIGHTS_MIRROR", str(WEIGHTS_MIRROR))


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{what} not found at {path}; CI must run with ../shared beside the clone")
        pytest.skip(f"{what} not found at {path}")
    return path


@pytest.fixture(scope="session")
def avsbench_meta() -> Path:
    """The real AVSBench split lists (no pixels)."""
    return _need(SHARED_FIXTURES / "avsbench-meta", "AVSBench split lists")


@pytest.fixture(scope="session")
def shared_media() -> Path:
    return _need(SHARED_FIXTURES / "media", "shared media fixtures")


@pytest.fixture(scope="session")
def weights_mirror() -> Path:
    return _need(WEIGHTS_MIRROR, "weights mirror")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def baav_upstream() -> Path:
    """BAaV's own code (cid2rrrr/BAaV @ 149358d, MIT): read by path, never copied."""
    return _need(SHARED_UPSTREAM / "BAaV" / "eval.py", "BAaV upstream code").parent


@pytest.fixture(scope="session")
def avsbench_upstream() -> Path:
    """The official AVSBench AVSS scripts (OpenNLPLab/AVSBench @ f7414af): read by path."""
    avss = SHARED_UPSTREAM / "AVSBench" / "avs_scripts" / "avss"
    _need(avss / "utils" / "compute_color_metrics.py", "AVSBench upstream code")
    return avss


@pytest.fixture(scope="session")
def demo_slice(tmp_path_factory, weights_mirror):
    """The real rules run once per session on a 2-clip demo slice (workflow + audit tests)."""
    from workflow_helpers import build_slice

    return build_slice(tmp_path_factory.mktemp("slice"))
