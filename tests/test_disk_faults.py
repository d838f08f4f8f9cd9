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

import numpy as np
import pytest
from test_audio_text_run import CountingTexter, make_clip

from avsbridge.audio_text.run import describe_shard
from avsbridge.data.records import Clip
from avsbridge.io import WriteError, atomic_dir, atomic_write_json


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _no_temps(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp") or ".old-" in p.name]


@pytest.fixture()
def three_clips(tmp_path: Path) -> list[Clip]:
    """Three 2-frame clips: a shard writes 3 records + a summary (4 writes)."""
    assert CountingTexter.name == "test-counting"  # registered by its module
    return [
        make_clip(tmp_path / "media", f"s4/clip{i}", np.full(32_000, 0.1, np.float32), 16_000, 2)
        for i in range(3)
    ]


@pytest.mark.parametrize("nth_write", [1, 2, 3, 4])
def test_disk_full_at_the_nth_write_keeps_the_earlier_artifact(
    nth_write: int, three_clips: list[Clip], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "results" / "alm" / "s0000"
    describe_shard(three_clips, "test-counting", {}, "caption", out)
    before = _snapshot(out)
    real_fsync, fsyncs = os.fsync, [0]

    def fsync_disk_full_at_nth(fd: int) -> None:  # where a full disk surfaces
        fsyncs[0] += 1
        if fsyncs[0] == nth_write:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr("avsbridge.io.os.fsync", fsync_disk_full_at_nth)
    with pytest.raises(WriteError) as caught:  # the new run writes other texts
        describe_shard(three_clips, "test-counting", {}, "metadata", out)
    assert fsyncs[0] == nth_write  # the writes before the failing one did happen
    message = str(caught.value)
    assert message.startswith(f"{out}: cannot write") and "No space left on device" in message
    assert _snapshot(out) == before
    assert _no_temps(out.parent)
    # what the failed run would have written differs from the earlier artifact in
    # every file, so any file of it reaching the folder would have shown above
    monkeypatch.undo()
    describe_shard(three_clips, "test-counting", {}, "metadata", out)
    after = _snapshot(out)
    assert after.keys() == before.keys() and all(after[k] != before[k] for k in before)


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
