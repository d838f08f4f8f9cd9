"""One GPU per GPU job on a multi-GPU machine: a slot pool of file locks.

Snakemake's ``resources: gpu=1`` only bounds how many GPU jobs run at once; it
assigns no device, so without this every job would use device 0. A job enters
:func:`gpu_slot` before its model touches CUDA: it takes an exclusive
``flock`` on ``gpu{i}.lock`` for a free device ``i`` under the slot folder and sets
``CUDA_VISIBLE_DEVICES=i`` for itself (and its children). The lock belongs to an
open file, so the kernel frees it when the job exits, however it exits (a crash,
``kill -9``, OOM): no stale slot survives a dead job.

Left alone: a SLURM job (``SLURM_JOB_ID`` set; SLURM assigns the devices) and a
job whose ``CUDA_VISIBLE_DEVICES`` is already set by whoever started it.

Device count: ``AVSBRIDGE_GPU_COUNT`` (tests simulate a 4-GPU box with it), else
the ``/dev/nvidiaN`` device files (no CUDA initialisation). Slot folder:
``AVSBRIDGE_GPU_SLOT_DIR``, else one per user in the temp folder, so two
checkouts on the same machine share the pool.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path

log = logging.getLogger("avsbridge.backends.slots")

COUNT_ENV = "AVSBRIDGE_GPU_COUNT"
SLOT_DIR_ENV = "AVSBRIDGE_GPU_SLOT_DIR"
VISIBLE = "CUDA_VISIBLE_DEVICES"
_NVIDIA_DEV_RE = re.compile(r"nvidia(\d+)$")


def device_count(env: MutableMapping[str, str] | None = None, dev: Path = Path("/dev")) -> int:
    """GPUs on this machine: ``AVSBRIDGE_GPU_COUNT`` if set, else ``/dev/nvidiaN`` files."""
    env = os.environ if env is None else env
    value = env.get(COUNT_ENV)
    if value is not None:
        try:
            count = int(value)
        except ValueError:
            raise ValueError(f"{COUNT_ENV}={value!r} is not an integer") from None
        if count < 0:
            raise ValueError(f"{COUNT_ENV}={value!r} must be >= 0")
        return count
    with contextlib.suppress(OSError):
        return sum(1 for p in dev.iterdir() if _NVIDIA_DEV_RE.match(p.name))
    return 0


def slot_dir(env: MutableMapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get(SLOT_DIR_ENV):
        return Path(env[SLOT_DIR_ENV])
    return Path(tempfile.gettempdir()) / f"avsbridge-gpu-slots-{os.getuid()}"


def assigned_elsewhere(env: MutableMapping[str, str] | None = None) -> bool:
    """True when SLURM (or whoever started the job) already chose its devices."""
    env = os.environ if env is None else env
    return bool(env.get("SLURM_JOB_ID")) or VISIBLE in env


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _release(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


@contextlib.contextmanager
def gpu_slot(
    wanted: int = 1,
    label: str = "",
    *,
    env: MutableMapping[str, str] | None = None,
    folder: Path | None = None,
    poll_s: float = 0.2,
    timeout_s: float | None = None,
) -> Iterator[str | None]:
    """Hold ``wanted`` free devices for the ``with`` block; yields ``CUDA_VISIBLE_DEVICES``.

    Yields the value in force: the one SLURM or the caller set (untouched), the
    devices taken here, or None when the job wants none or the machine has none.
    Waits while every device is taken (more GPU jobs than GPUs), logging once;
    ``timeout_s`` turns the wait into a :class:`TimeoutError`.
    """
    env = os.environ if env is None else env
    if wanted < 0:
        raise ValueError(f"wanted must be >= 0, got {wanted}")
    if wanted == 0:
        yield env.get(VISIBLE)
        return
    if assigned_elsewhere(env):
        yield env.get(VISIBLE)
        return
    count = device_count(env)
    if count == 0:
        yield None
        return
    if wanted > count:
        raise ValueError(f"job wants {wanted} GPUs, this machine has {count}")
    root = slot_dir(env) if folder is None else Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    fds: list[int] = []
    taken: list[int] = []
    started = time.monotonic()
    waited = False
    try:
        while True:
            for index in range(count):
                fd = _try_lock(root / f"gpu{index}.lock")
                if fd is not None:
                    fds.append(fd)
                    taken.append(index)
                    if len(taken) == wanted:
                        break
            if len(taken) == wanted:
                break
            # not enough free devices: give back what we hold (no hold-and-wait deadlock)
            _release(fds)
            taken.clear()
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                raise TimeoutError(
                    f"no {wanted} free GPU(s) of {count} after {timeout_s:g}s (slots in {root})"
                )
            if not waited:
                log.info("all %d GPU slots in %s are taken; waiting", count, root)
                waited = True
            time.sleep(poll_s)
        for fd in fds:  # who holds the slot, for people looking at the folder
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid={os.getpid()} job={label}\n".encode(), 0)
        value = ",".join(map(str, taken))
        env[VISIBLE] = value
        log.info("GPU slot %s (%s) for %s", value, root, label or f"pid {os.getpid()}")
        try:
            yield value
        finally:
            env.pop(VISIBLE, None)
    finally:
        _release(fds)
