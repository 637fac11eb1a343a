"""Throughput of a large upload over SSH, side by side on the same sshd: OpenSSH's scp,
paramiko's SFTP put (what pyinfra's files.put does) and airnode/transfer.py's stream into
`cat` on the node, over a paramiko channel (its fallback) and through OpenSSH's `ssh` (what the
models step uses when ssh logs in without a prompt), alternated round by round.

    .venv/bin/python bench/transfer.py --gib 1 --rounds 3

Needs OpenSSH's sshd (Debian: openssh-server) on this machine: it starts its own on
127.0.0.1:2222 as root, with keys made for the run, and stops it at the end. The destination
is on the same disk as the source (/var/tmp); the source is in the page cache after round 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import paramiko

from airnode import transfer

PORT = 2222


def sshd(work: Path) -> subprocess.Popen:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "host")], check=True
    )
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "client")], check=True
    )
    shutil.copy(work / "client.pub", work / "authorized_keys")
    (work / "sshd_config").write_text(
        f"Port {PORT}\nListenAddress 127.0.0.1\nHostKey {work}/host\n"
        f"AuthorizedKeysFile {work}/authorized_keys\nPermitRootLogin yes\nStrictModes no\n"
        f"UsePAM no\nPidFile {work}/sshd.pid\nSubsystem sftp internal-sftp\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    p = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(work / "sshd_config")])
    for _ in range(50):
        try:
            with paramiko.Transport(("127.0.0.1", PORT)):
                return p
        except (OSError, paramiko.SSHException):
            time.sleep(0.1)
    raise SystemExit("sshd did not start")


def client(work: Path) -> paramiko.SSHClient:
    c = paramiko.SSHClient()
    c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    c.connect("127.0.0.1", PORT, "root", key_filename=str(work / "client"), allow_agent=False)
    return c


def timed(fn) -> float:
    t = time.monotonic()
    fn()
    return time.monotonic() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if not Path("/usr/sbin/sshd").exists():
        raise SystemExit("needs OpenSSH's sshd: apt-get install openssh-server")
    work = Path(tempfile.mkdtemp(prefix="airnode-bench-ssh-"))
    data = Path(tempfile.mkdtemp(prefix="airnode-bench-xfer-", dir="/var/tmp"))
    src, dest = data / "model.gguf", data / "dest.partial"
    chunk = os.urandom(1 << 20)
    with open(src, "wb") as f:
        for _ in range(int(args.gib * 1024)):
            f.write(chunk)
    size = src.stat().st_size
    server = sshd(work)
    c = client(work)
    key = str(work / "client")

    def scp():
        subprocess.run(
            [
                "scp",
                "-q",
                "-P",
                str(PORT),
                "-i",
                key,
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                str(src),
                f"root@127.0.0.1:{dest}",
            ],
            check=True,
        )

    def sftp():
        s = c.open_sftp()
        s.put(str(src), str(dest))
        s.close()

    def stream():
        transfer.send(c.get_transport(), src, str(dest))

    ssh = transfer.ssh_argv(
        {
            "ssh_hostname": "127.0.0.1",
            "ssh_port": PORT,
            "ssh_user": "root",
            "ssh_key": key,
            "ssh_known_hosts_file": "/dev/null",
            "ssh_strict_host_key_checking": "no",
            "ssh_look_for_keys": False,
            "ssh_allow_agent": False,
        },
        "bench",
    )

    def stream_ssh():
        transfer.send(c.get_transport(), src, str(dest), ssh=ssh)

    methods = {
        "OpenSSH scp": scp,
        "paramiko SFTP (files.put)": sftp,
        "airnode, paramiko channel": stream,
        "airnode, system ssh": stream_ssh,
    }
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    cipher = c.get_transport().local_cipher
    try:
        for _ in range(args.rounds):
            for name, fn in methods.items():
                dest.unlink(missing_ok=True)
                seconds[name].append(timed(fn))
                assert dest.stat().st_size == size, name
    finally:
        c.close()
        server.terminate()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
    mb = size / 1e6
    base = mb / statistics.median(seconds["OpenSSH scp"])
    print(f"{args.gib:g} GiB over ssh to 127.0.0.1, {args.rounds} rounds alternated")
    print(f"paramiko's cipher: {cipher}; scp: OpenSSH's default")
    print(f"{'method':28} {'MB/s (median)':>14} {'runs MB/s':>28} {'vs scp':>7}")
    for name, s in seconds.items():
        rates = [mb / x for x in s]
        med = mb / statistics.median(s)
        runs = ", ".join(f"{r:.0f}" for r in rates)
        print(f"{name:28} {med:14.0f} {runs:>28} {med / base:7.2f}")


if __name__ == "__main__":
    main()
