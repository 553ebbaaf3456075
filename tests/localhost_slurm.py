"""A SLURM cluster on this machine: munge, one controller and N single-CPU nodes on localhost, for trying the
SLURM backend (docs/cluster.md) where no cluster is at hand, and for tests/test_slurm.py.

    python tests/localhost_slurm.py start DIR [--nodes 2]   # prints: export SLURM_CONF=DIR/slurm.conf
    python tests/localhost_slurm.py stop DIR                # stops every daemon it started

Debian's packages, root, no systemd: apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, what: str, timeout: float = 30) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if check():
            return
        time.sleep(0.3)
    raise RuntimeError(f"timed out waiting for {what}")


def config(d: Path, nodes: list[str], ports: list[int]) -> str:
    munge = d / "munge"
    lines = [f"NodeName={n} NodeHostname=localhost Port={p} CPUs=1 RealMemory=1000 State=UNKNOWN"
             for n, p in zip(nodes, ports[2:])]
    return textwrap.dedent(f"""\
        ClusterName=erclocal
        SlurmctldHost=localhost
        SlurmctldPort={ports[0]}
        SlurmdPort={ports[1]}
        AuthType=auth/munge
        AuthInfo=socket={munge / 'sock'}
        CredType=cred/munge
        SlurmUser=root
        SlurmdUser=root
        StateSaveLocation={d / 'state'}
        SlurmdSpoolDir={d / 'spool'}/%n
        SlurmctldPidFile={d / 'slurmctld.pid'}
        SlurmdPidFile={d}/slurmd-%n.pid
        SlurmctldLogFile={d / 'log' / 'slurmctld.log'}
        SlurmdLogFile={d / 'log'}/slurmd-%n.log
        ProctrackType=proctrack/linuxproc
        TaskPlugin=task/none
        SchedulerType=sched/backfill
        SelectType=select/cons_tres
        SelectTypeParameters=CR_Core
        ReturnToService=2
        MpiDefault=none
        JobAcctGatherType=jobacct_gather/none
        AccountingStorageType=accounting_storage/none
        """) + "\n".join(lines) + f"\nPartitionName=debug Nodes={','.join(nodes)} Default=YES MaxTime=INFINITE State=UP\n"


def start(d: str | Path, n_nodes: int = 2) -> Path:
    """Start the cluster under ``d``; returns its slurm.conf (set SLURM_CONF to it). The daemons' pids are in
    ``d/pids``; on a failure every daemon started so far is stopped."""
    d = Path(d).resolve()
    nodes = [f"n{k + 1}" for k in range(n_nodes)]
    for sub in ("munge", "state", "log", *(f"spool/{n}" for n in nodes)):
        (d / sub).mkdir(parents=True, exist_ok=True)
    munge = d / "munge"
    key = munge / "munge.key"
    if not key.exists():
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
    (d / "pids").write_text("")

    def started(pidfile: Path) -> None:
        wait_for(pidfile.is_file, pidfile.name)
        with open(d / "pids", "a") as f:
            f.write(pidfile.read_text().strip() + "\n")

    conf = d / "slurm.conf"
    conf.write_text(config(d, nodes, [free_port() for _ in range(2 + n_nodes)]))
    env = dict(os.environ, SLURM_CONF=str(conf))
    try:
        subprocess.run(["munged", f"--key-file={key}", f"--socket={munge / 'sock'}", "-f", f"--pid-file={munge / 'pid'}",
                        f"--log-file={munge / 'log'}", f"--seed-file={munge / 'seed'}"], check=True)
        started(munge / "pid")
        subprocess.run(["slurmctld", "-f", str(conf)], check=True, env=env)
        started(d / "slurmctld.pid")
        for node in nodes:
            subprocess.run(["slurmd", "-f", str(conf), "-N", node], check=True, env=env)
            started(d / f"slurmd-{node}.pid")
        wait_for(lambda: subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True)
                 .stdout.split() == ["idle"], f"{n_nodes} idle nodes")
    except BaseException:
        stop(d)
        raise
    return conf


def stop(d: str | Path) -> None:
    """SIGTERM every daemon ``start`` recorded under ``d``, the last started first."""
    pids = Path(d) / "pids"
    for pid in reversed(pids.read_text().split() if pids.is_file() else []):
        try:
            os.kill(int(pid), signal.SIGTERM)
        except ProcessLookupError:
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("dir")
    parser.add_argument("--nodes", type=int, default=2, help="single-CPU nodes (one per core you give it)")
    args = parser.parse_args()
    try:
        if args.action == "start":
            print(f"export SLURM_CONF={start(args.dir, args.nodes)}")
        else:
            stop(args.dir)
    except (OSError, subprocess.CalledProcessError, RuntimeError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
