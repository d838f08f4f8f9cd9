"""Disk full / unwritable output: a clear error naming the artifact, earlier artifacts intact.

The faults are injected where the OS would raise them (``os.fsync`` / ``mkdtemp``):
this machine runs tests as root, so permission bits alone cannot make a folder
unwritable, and filling a real disk is not something a test should do.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import pytest
from test_audio_text_run import demo_clip  # noqa: F401  (fixture)

from avsbridge.audio_text.run import describe_shard
from avsbridge.data.records import Clip
from avsbridge.io import WriteError, atomic_dir, atomic_write_json


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _no_temps(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp") or ".old-" in p.name]


def _disk_full(*_args: object, **_kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_mid_shard_keeps_the_earlier_artifact(
    demo_clip: Clip,  # noqa: F811
    tmp_path: Path,
    weights_mirror: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "results" / "alm" / "s0000"
    describe_shard([demo_clip], "yamnet", {"top_k": 3}, "caption", out)
    before = _snapshot(out)
    monkeypatch.setattr("avsbridge.io.os.fsync", _disk_full)
    with pytest.raises(WriteError) as caught:
        describe_shard([demo_clip], "yamnet", {"top_k": 3}, "metadata", out)
    message = str(caught.value)
    assert message.startswith(f"{out}: cannot write") and "No space left on device" in message
    assert _snapshot(out) == before
    assert _no_temps(out.parent)


def test_unwritable_output_folder_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*_args: object, **_kwargs: object) -> str:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkdtemp", denied)
    monkeypatch.setattr(tempfile, "mkstemp", denied)
    out = tmp_path / "masks" / "s0000"
    with pytest.raises(WriteError, match=r"s0000: cannot write \(Permission denied\)"):
        with atomic_dir(out):
            pass
    with pytest.raises(WriteError, match=r"m\.json: cannot write \(Permission denied\)"):
        atomic_write_json(tmp_path / "metrics" / "m.json", {"miou": 0.5})


def test_output_folder_that_is_a_file_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    with pytest.raises(WriteError, match="results/alm/s0000: cannot write"):
        with atomic_dir(blocker / "alm" / "s0000"):
            pass
    assert blocker.read_text() == "not a folder"


def test_failed_swap_puts_the_earlier_folder_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "text" / "s0000"
    with atomic_dir(out) as tmp:
        (tmp / "a.json").write_text("first")
    real_replace = os.replace

    def replace(src: str | Path, dst: str | Path) -> None:
        if Path(src).name.endswith(".tmp"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        real_replace(src, dst)

    monkeypatch.setattr("avsbridge.io.os.replace", replace)
    with pytest.raises(WriteError, match="Read-only file system"):
        with atomic_dir(out) as tmp:
            (tmp / "a.json").write_text("second")
    assert (out / "a.json").read_text() == "first"
    assert _no_temps(out.parent)
