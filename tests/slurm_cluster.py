"""A throw-away single-node SLURM cluster for integration tests (munge + slurmctld + slurmd).

Everything lives in one temporary folder: a generated ``slurm.conf`` (random ports,
its own munge socket, no accounting database), state, spool, logs and pid files.
``/etc/slurm/slurm.conf`` and ``gres.conf`` become symlinks to it while the cluster
runs (removed at stop): the SLURM executor plugin's job step drops ``SLURM_CONF``
before its nested ``srun``, which then only finds the default path. A host that
already has its own ``/etc/slurm/slurm.conf`` is refused.
The daemons are started directly (no systemd on CI machines) as root and stopped
by the pids this module started, never by name. Clients find the cluster through
``SLURM_CONF`` (see :meth:`SlurmCluster.env`).

The node declares two GPUs backed by harmless character devices, so a job asking
``--gpus=1`` is scheduled (and gets ``CUDA_VISIBLE_DEVICES``) like on a GPU node.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DEBIAN_PACKAGES = ("slurm-wlm", "munge")
SYSTEM_CONF_DIR = Path("/etc/slurm")
MARKER = ".avsbridge-test-cluster"  # in the config folder of a cluster this helper made
LINKED = ("slurm.conf", "gres.conf")
# Character devices standing in for two GPUs: slurmd wants a device file per GPU, and
# then sets CUDA_VISIBLE_DEVICES for a job like on a real GPU node.
FAKE_GPU_DEVICES = ("/dev/null", "/dev/zero")
DAEMONS = ("munged", "slurmctld", "slurmd", "srun", "sbatch", "squeue", "scontrol")


def missing_binaries() -> list[str]:
    return [name for name in DAEMONS if shutil.which(name) is None]


def install_packages(timeout_s: float = 600) -> float:
    """``apt-get install`` the Debian packages (root only); returns the seconds it took."""
    started = time.monotonic()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["apt-get", "update", "-q"], check=True, env=env, timeout=timeout_s, capture_output=True
    )
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *DEBIAN_PACKAGES],
        check=True,
        env=env,
        timeout=timeout_s,
        capture_output=True,
    )
    return time.monotonic() - started


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _node_line() -> str:
    """This host as slurmd detects it (``slurmd -C``): a node declaring more is drained."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0].strip()


@dataclass
class SlurmCluster:
    """One node (this host), one partition ``debug``; see the module docstring."""

    root: Path
    min_job_age_s: int = 300
    started: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    linked: list[Path] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "munge.socket"

    def env(self) -> dict[str, str]:
        """Environment for clients (sbatch, srun, squeue, Snakemake's plugin) of this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def write_config(self) -> None:
        host = socket.gethostname().split(".")[0]
        for sub in ("munge", "state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / MARKER).write_text("avsbridge test cluster\n")
        os.chmod(self.root / "munge", 0o700)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(128))
        os.chmod(key, 0o400)
        r = self.root
        lines = [
            "ClusterName=avsbtest",
            f"SlurmctldHost={host}",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}",
            f"SlurmdPidFile={r / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "MpiDefault=none",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            # squeue-based status checks need finished jobs kept this long (>= 3x the
            # plugin's first status-check delay).
            f"MinJobAge={self.min_job_age_s}",
            "ReturnToService=2",
            "SlurmdTimeout=30",
            "InactiveLimit=0",
            "KillWait=5",
            "GresTypes=gpu",
            f"{_node_line()} Gres=gpu:{len(FAKE_GPU_DEVICES)} State=UNKNOWN",
            f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        (self.root / "gres.conf").write_text(
            "".join(f"Name=gpu File={dev}\n" for dev in FAKE_GPU_DEVICES)
        )

    def _spawn(self, name: str, argv: list[str], pid_file: Path, timeout_s: float = 20) -> None:
        """Start a daemon that forks; record the pid from its pid file."""
        subprocess.run(argv, check=True, env=self.env(), timeout=timeout_s, capture_output=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError, ValueError):
                pid = int(pid_file.read_text().split()[0])
                self.started[name] = pid
                return
            time.sleep(0.05)
        raise RuntimeError(f"{name} wrote no pid file {pid_file}; see {self.root / 'log'}")

    @staticmethod
    def _sweep_stale_links() -> None:
        """Links left by an earlier test cluster that was killed before it stopped: stop the
        daemons its pid files name (only munged/slurmctld/slurmd) and remove the links."""
        for name in LINKED:
            link = SYSTEM_CONF_DIR / name
            if not link.is_symlink():
                continue
            old_root = Path(os.readlink(link)).parent
            if not (old_root / MARKER).is_file() and old_root.exists():
                continue  # someone else's configuration: leave it
            for pid_file in old_root.rglob("*.pid") if old_root.exists() else ():
                try:
                    pid = int(pid_file.read_text().split()[0])
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
                except (OSError, ValueError, IndexError):
                    continue
                if Path(cmd.decode(errors="replace")).name in ("munged", "slurmctld", "slurmd"):
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGTERM)
            link.unlink()

    def _link_system_config(self) -> None:
        self._sweep_stale_links()
        for name in LINKED:
            link = SYSTEM_CONF_DIR / name
            if link.exists() or link.is_symlink():
                raise RuntimeError(
                    f"{link} exists: this host has its own SLURM configuration; "
                    "the test cluster will not replace it"
                )
        SYSTEM_CONF_DIR.mkdir(parents=True, exist_ok=True)
        for name in LINKED:
            (SYSTEM_CONF_DIR / name).symlink_to(self.root / name)
            self.linked.append(SYSTEM_CONF_DIR / name)

    def _unlink_system_config(self) -> None:
        for link in self.linked:
            if link.is_symlink() and Path(os.readlink(link)).parent == self.root:
                link.unlink()
        self.linked.clear()

    def start(self, timeout_s: float = 60) -> None:
        t0 = time.monotonic()
        self.write_config()
        self._link_system_config()
        m = self.root / "munge"
        self._spawn(
            "munged",
            [
                "munged",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={m / 'munge.key'}",
                f"--pid-file={m / 'munged.pid'}",
                f"--log-file={self.root / 'log' / 'munged.log'}",
                f"--seed-file={m / 'munged.seed'}",
            ],
            m / "munged.pid",
        )
        self._spawn("slurmctld", ["slurmctld", "-i"], self.root / "slurmctld.pid")
        self._spawn("slurmd", ["slurmd"], self.root / "slurmd.pid")
        self.timings["daemons_s"] = time.monotonic() - t0
        self.wait_until_idle(timeout_s)
        self.timings["node_idle_s"] = time.monotonic() - t0
        t1 = time.monotonic()
        out = self.run(["srun", "-N1", "-n1", "hostname"], timeout_s=timeout_s)
        self.timings["srun_health_s"] = time.monotonic() - t1
        if not out.strip():
            raise RuntimeError("srun health check printed nothing")

    def run(self, argv: list[str], timeout_s: float = 60) -> str:
        proc = subprocess.run(
            argv, env=self.env(), capture_output=True, text=True, timeout=timeout_s
        )
        if proc.returncode:
            raise RuntimeError(
                f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}; "
                f"logs in {self.root / 'log'}"
            )
        return proc.stdout

    def wait_until_idle(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        state = ""
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                state = self.run(["sinfo", "-h", "-N", "-o", "%T"], timeout_s=10).strip()
                if state in {"idle", "mixed", "allocated"}:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"node not idle after {timeout_s}s (state {state!r})")

    def stop(self) -> None:
        """SIGTERM the daemons this object started (slurmd first), then SIGKILL leftovers."""
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self.started.get(name)
            if pid is None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.05)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.started.pop(name)
        self._unlink_system_config()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (our own child not yet reaped) counts as gone.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return False
    return True
