"""File helpers every stage shares: atomic writes, images, wavs, content hashes.

Every artifact is written to a temp file in the destination folder and renamed
into place, so a job killed mid-way never leaves a file that a later run trusts.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import socket
import struct
import tempfile
import urllib.error
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError


class ArtifactError(ValueError):
    """Bad input: names the file and what is wrong with it."""

    def __init__(self, path: os.PathLike[str] | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class WriteError(ArtifactError):
    """An output could not be written (disk full, read-only or unwritable folder).

    Raised instead of a bare OSError so the message names the artifact; whatever
    was there before is left as it was (writes are atomic).
    """


# errnos that mean "the destination cannot take the write", whatever the caller did
_WRITE_SIDE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


# OSErrors raised inside a writer's body that say nothing about the destination:
# a failed download is a network problem, not a write error (it names its own cause).
_NOT_WRITE_SIDE: tuple[type[OSError], ...] = (
    FileNotFoundError,
    urllib.error.URLError,
    ConnectionError,
    TimeoutError,
    socket.gaierror,
)


def _write_error(dest: Path, exc: OSError) -> WriteError:
    return WriteError(dest, f"cannot write ({exc.strerror or exc}); earlier artifacts are intact")


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (thread-safe)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _normal_mode(path: Path | int, directory: bool = False) -> None:
    """Give a mkstemp/mkdtemp result the mode a plain open()/mkdir() would (0644/0755).

    tempfile creates 0600 files and 0700 folders; renamed into place they would
    make reports and artifacts unreadable to the group and to other users.
    """
    mode = (0o777 if directory else 0o666) & ~current_umask()
    if isinstance(path, int):
        os.fchmod(path, mode)
    else:
        os.chmod(path, mode)


@contextlib.contextmanager
def atomic_path(dest: os.PathLike[str] | str) -> Iterator[Path]:
    """Yield a temp path beside ``dest``; rename it onto ``dest`` only on success."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    except OSError as exc:
        raise _write_error(dest, exc) from exc
    try:
        _normal_mode(fd)
    finally:
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, _NOT_WRITE_SIDE):
            raise _write_error(dest, exc) from exc
        raise


def atomic_write_bytes(dest: os.PathLike[str] | str, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_text(dest: os.PathLike[str] | str, text: str) -> None:
    atomic_write_bytes(dest, text.encode("utf-8"))


def canonical_json(obj: Any) -> str:
    """Stable JSON (sorted keys, no spaces) used for hashing and cache keys."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def atomic_write_json(dest: os.PathLike[str] | str, obj: Any) -> None:
    atomic_write_text(dest, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_json(path: os.PathLike[str] | str) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(path, "file is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(path, f"not valid JSON ({exc})") from None


def yaml_problem(exc: Exception) -> str:
    """A YAML parse error as ``line L, column C: not valid YAML (what)`` (1-based).

    Where the parser names an opening construct (``while parsing a flow mapping``),
    its line is given too: that is often where the typo is.
    """
    mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    context = getattr(exc, "context", None)
    problem = getattr(exc, "problem", None)
    parts = []
    if context:
        opened = f" started at line {context_mark.line + 1}" if context_mark is not None else ""
        parts.append(f"{context}{opened}:")
    if problem:
        parts.append(str(problem))
    what = " ".join(parts) or (str(exc).splitlines() or [type(exc).__name__])[0]
    mark = mark or context_mark
    if mark is None:
        return f"not valid YAML ({what})"
    return f"line {mark.line + 1}, column {mark.column + 1}: not valid YAML ({what})"


def parse_yaml(text: str, source: os.PathLike[str] | str) -> Any:
    """``yaml.safe_load`` whose syntax errors name ``source`` and the line."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ArtifactError(source, yaml_problem(exc)) from None


def read_yaml(path: os.PathLike[str] | str) -> Any:
    """Read a YAML file; a missing file or a syntax error names the file (and line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtifactError(path, "file is missing") from None
    except UnicodeDecodeError as exc:
        raise ArtifactError(path, f"not UTF-8 text ({exc})") from None
    return parse_yaml(text, path)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: os.PathLike[str] | str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def content_key(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj``: the key of caches and records."""
    return sha256_bytes(canonical_json(obj).encode("utf-8"))


def read_image(path: os.PathLike[str] | str, mode: str = "RGB") -> np.ndarray:
    """Read an image as a numpy array; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(path, "image is missing")
    try:
        with Image.open(path) as img:
            img.load()
            if mode == "keep":
                return np.asarray(img)
            return np.asarray(img.convert(mode))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ArtifactError(path, f"unreadable image ({exc})") from None


def read_palette_png(path: os.PathLike[str] | str) -> np.ndarray:
    """Read a label PNG keeping palette indices (AVSS labels) or raw values."""
    return read_image(path, mode="keep")


def write_png(dest: os.PathLike[str] | str, array: np.ndarray) -> None:
    """Write a uint8 array (HxW or HxWx3/4) as PNG, atomically."""
    if array.dtype != np.uint8:
        raise TypeError(f"write_png wants uint8, got {array.dtype}")
    with atomic_path(dest) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def write_prob_png(dest: os.PathLike[str] | str, prob: np.ndarray) -> None:
    """Write a probability map in [0, 1] as an 8-bit PNG (value = round(p*255))."""
    clipped = np.clip(np.nan_to_num(prob.astype(np.float64)), 0.0, 1.0)
    write_png(dest, np.round(clipped * 255.0).astype(np.uint8))


def read_prob_png(path: os.PathLike[str] | str) -> np.ndarray:
    """Inverse of :func:`write_prob_png`: float32 map in [0, 1]."""
    arr = read_image(path, mode="L")
    return arr.astype(np.float32) / 255.0


def _read_wav_frames(path: Path) -> tuple[int, int, int, bytes]:
    """(channels, sample width, rate, raw frames) of a wav; every failure says what is wrong."""
    if not path.is_file():
        raise ArtifactError(path, "audio is missing")
    size = path.stat().st_size
    if size == 0:
        raise ArtifactError(path, "wav is empty (0 bytes)")
    try:
        with wave.open(str(path), "rb") as wf:
            n_channels = wf.getnchannels()
            width = wf.getsampwidth()
            rate = wf.getframerate()
            raw = wf.readframes(wf.getnframes())
    except EOFError:
        raise ArtifactError(path, f"truncated wav ({size} bytes: the header ends early)") from None
    except (wave.Error, OSError, RuntimeError, struct.error) as exc:
        detail = str(exc) or type(exc).__name__
        raise ArtifactError(path, f"unreadable wav ({detail})") from None
    if rate <= 0:
        raise ArtifactError(path, f"wav header gives sample rate {rate}")
    return n_channels, width, rate, raw


def read_wav(path: os.PathLike[str] | str) -> tuple[np.ndarray, int]:
    """Read a PCM wav as float32 mono in [-1, 1] and its sample rate."""
    samples, rate, _channels = read_wav_channels(path)
    return samples, rate


def read_wav_channels(path: os.PathLike[str] | str) -> tuple[np.ndarray, int, int]:
    """:func:`read_wav` plus the file's channel count (callers announce a down-mix)."""
    path = Path(path)
    n_channels, width, rate, raw = _read_wav_frames(path)
    if width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 4:
        data = np.frombuffer(raw, dtype="<i4").astype(np.float32) / 2147483648.0
    elif width == 1:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    else:
        raise ArtifactError(path, f"unsupported sample width {width} bytes")
    if n_channels > 1:
        usable = len(data) - len(data) % n_channels
        data = data[:usable].reshape(-1, n_channels).mean(axis=1)
    return data, rate, n_channels


def write_wav(dest: os.PathLike[str] | str, samples: np.ndarray, rate: int) -> None:
    """Write float samples in [-1, 1] as 16-bit PCM mono wav, atomically."""
    pcm = np.clip(samples, -1.0, 1.0)
    pcm16 = np.round(pcm * 32767.0).astype("<i2")
    with atomic_path(dest) as tmp:
        with wave.open(str(tmp), "wb") as wf:
            wf.setnchannels(1)
            wf.setsampwidth(2)
            wf.setframerate(rate)
            wf.writeframes(pcm16.tobytes())


def sweep_stale_temps(dest: os.PathLike[str] | str) -> list[Path]:
    """Remove what a killed writer of ``dest`` left beside it (temp and swap-out copies).

    Only for outputs with ONE writer at a time (a Snakemake job owns its output):
    the leftovers sit in folders DVC hashes, so a re-run after ``kill -9`` must
    leave exactly what an uninterrupted run leaves.
    """
    import shutil

    dest = Path(dest)
    removed: list[Path] = []
    if not dest.parent.is_dir():
        return removed
    for pattern in (f".{dest.name}.*.tmp", f".{dest.name}.old-*"):
        for stale in dest.parent.glob(pattern):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed


@contextlib.contextmanager
def atomic_dir(dest: os.PathLike[str] | str) -> Iterator[Path]:
    """Yield a fresh temp folder beside ``dest``; swap it onto ``dest`` on success.

    Snakemake ``directory()`` outputs are built this way so a killed job leaves
    only a ``.tmp`` folder that no later run mistakes for a finished artifact
    (and the next writer of ``dest`` sweeps it away).
    """
    import shutil

    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_temps(dest)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
        _normal_mode(tmp, directory=True)
    except OSError as exc:
        raise _write_error(dest, exc) from exc
    try:
        yield tmp
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
            try:
                os.replace(tmp, dest)
            except OSError:
                os.replace(old, dest)  # put the earlier artifact back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, WriteError):  # a file inside: name the artifact, not the temp
            raise WriteError(dest, exc.problem) from exc
        if isinstance(exc, OSError) and exc.errno in _WRITE_SIDE_ERRNOS:
            raise _write_error(dest, exc) from exc
        raise
