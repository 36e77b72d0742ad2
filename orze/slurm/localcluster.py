"""A one-node Slurm cluster on localhost, started from nothing in a temporary directory.

For the tests and `scripts/slurm_campaign.py`: a real munged, slurmctld and slurmd (Debian
`slurm-wlm`, `munge`), every path and port private to one directory, so several can run on one
machine at once. Needs root (slurmd runs jobs as their user) and the binaries on PATH.

Contract: `LocalSlurm(base).start()` returns once `sinfo` reports the node idle; `.env()` is the
environment a client command needs (`SLURM_CONF`); `.stop()` stops the daemons by their pids
(SIGTERM, then SIGKILL: a slurmd that has lost its controller ignores SIGTERM). Fake GPUs are
character devices made with mknod, declared as `gres/gpu`, so `--gres=gpu:N` schedules and sets
`CUDA_VISIBLE_DEVICES` without any real GPU.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

REQUIRED = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")


def missing_binaries() -> list[str]:
    """The Slurm/munge programs this machine lacks ([] when a local cluster can start)."""
    return [b for b in REQUIRED if shutil.which(b) is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalSlurm:
    def __init__(self, base: Path, cpus: int = 8, gpus: int = 2, kill_wait_s: int = 5,
                 cred_expire_s: int = 10):
        self.base = Path(base)
        self.cpus, self.gpus = cpus, gpus
        self.kill_wait_s, self.cred_expire_s = kill_wait_s, cred_expire_s
        self.node = socket.gethostname().split(".")[0]
        self.procs: dict[str, subprocess.Popen] = {}
        self.conf = self.base / "slurm.conf"

    # --- configuration ----------------------------------------------------------------------
    def write_config(self) -> None:
        b = self.base
        for d in ("state", "spool", "log", "dev"):
            (b / d).mkdir(parents=True, exist_ok=True)
        for i in range(self.gpus):
            dev = b / "dev" / f"nvidia{i}"
            if not dev.exists():
                os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))  # a /dev/null twin
        ctl, slurmd = _free_port(), _free_port()
        sock = b / "munge.sock"
        gres = f" Gres=gpu:{self.gpus}" if self.gpus else ""
        lines = [
            "ClusterName=orzetest",
            "SlurmctldHost=localhost(127.0.0.1)",
            f"SlurmctldPort={ctl}", f"SlurmdPort={slurmd}",
            f"AuthInfo=socket={sock},cred_expire={self.cred_expire_s}",
            "AuthType=auth/munge", "CredType=cred/munge",
            "SlurmUser=root", "SlurmdUser=root",
            f"StateSaveLocation={b / 'state'}", f"SlurmdSpoolDir={b / 'spool'}",
            f"SlurmctldPidFile={b / 'slurmctld.pid'}", f"SlurmdPidFile={b / 'slurmd.pid'}",
            f"SlurmctldLogFile={b / 'log' / 'slurmctld.log'}", f"SlurmdLogFile={b / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
            "JobAcctGatherType=jobacct_gather/none", "MpiDefault=none",
            "SlurmdParameters=config_overrides",   # more CPUs than cores: several pilots per node
            f"KillWait={self.kill_wait_s}", "MinJobAge=600", "ReturnToService=2",
            "SchedulerType=sched/backfill", "SchedulerParameters=sched_interval=2",
            "MessageTimeout=10", "SlurmctldTimeout=30", "SlurmdTimeout=60",
            "GresTypes=gpu" if self.gpus else "",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory=1000 State=UNKNOWN{gres}",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(x for x in lines if x) + "\n")
        if self.gpus:
            last = self.gpus - 1
            files = f"{b / 'dev'}/nvidia[0-{last}]" if last else f"{b / 'dev'}/nvidia0"
            (b / "gres.conf").write_text(f"Name=gpu File={files}\n")

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        return env

    # --- daemons ----------------------------------------------------------------------------
    def start(self, timeout_s: float = 60.0) -> "LocalSlurm":
        self.write_config()
        b = self.base
        key = b / "munge.key"
        if not key.exists():
            subprocess.run(["mungekey", "-c", "-b", "1024", "-k", str(key)], check=True,
                           capture_output=True, timeout=30)
        self._spawn("munged", ["munged", "--foreground", "--force", f"--key-file={key}",
                               f"--socket={b / 'munge.sock'}", f"--pid-file={b / 'munged.pid'}",
                               f"--log-file={b / 'log' / 'munged.log'}", f"--seed-file={b / 'munge.seed'}"])
        self._wait(lambda: (b / "munge.sock").exists(), 10, "munged did not create its socket")
        self._spawn("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)])
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf), "-N", self.node])
        self._wait(self._node_ready, timeout_s, "the local Slurm node did not become idle")
        return self

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.base / "log" / f"{name}.stdout", "ab")
        try:
            self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, env=self.env(),
                                                start_new_session=True)
        finally:
            log.close()

    def _node_ready(self) -> bool:
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with {p.returncode}; see {self.base / 'log'}")
        try:
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], env=self.env(), capture_output=True,
                                 text=True, timeout=5).stdout.split()
        except subprocess.TimeoutExpired:
            return False
        return bool(out) and all(s.rstrip("*") in ("idle", "mix", "alloc") for s in out)

    @staticmethod
    def _wait(cond, timeout_s: float, message: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not cond():
            if time.monotonic() > deadline:
                raise RuntimeError(message)
            time.sleep(0.2)

    def alive(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs.values())

    def stop(self) -> None:
        # Reverse order: slurmd first (it would otherwise wait for a gone controller).
        for name in ("slurmd", "slurmctld", "munged"):
            p = self.procs.get(name)
            if p is None or p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        self.procs.clear()
