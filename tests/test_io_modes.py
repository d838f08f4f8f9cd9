"""Atomic writers leave files and folders with normal permissions (the umask), not 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from avsbridge.io import atomic_dir, atomic_write_json, atomic_write_text, current_umask, write_png


@pytest.fixture()
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_get_0644_under_the_default_umask(tmp_path: Path, umask: None) -> None:
    atomic_write_json(tmp_path / "reports" / "table1.json", {"a": 1})
    atomic_write_text(tmp_path / "reports" / "table1.md", "| a |\n")
    write_png(tmp_path / "m.png", np.zeros((2, 2), np.uint8))
    assert _mode(tmp_path / "reports" / "table1.json") == 0o644
    assert _mode(tmp_path / "reports" / "table1.md") == 0o644
    assert _mode(tmp_path / "m.png") == 0o644


def test_folders_get_0755_and_files_inside_0644(tmp_path: Path, umask: None) -> None:
    with atomic_dir(tmp_path / "masks" / "s0000") as tmp:
        atomic_write_json(tmp / "a.json", {})
    assert _mode(tmp_path / "masks" / "s0000") == 0o755
    assert _mode(tmp_path / "masks" / "s0000" / "a.json") == 0o644


def test_a_stricter_umask_is_respected(tmp_path: Path, umask: None) -> None:
    os.umask(0o027)
    assert current_umask() == 0o027
    atomic_write_text(tmp_path / "x.txt", "x")
    with atomic_dir(tmp_path / "d"):
        pass
    assert _mode(tmp_path / "x.txt") == 0o640
    assert _mode(tmp_path / "d") == 0o750
