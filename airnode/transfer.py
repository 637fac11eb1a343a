"""Large files to the node: streamed into ``cat >> <dest>`` there, resumed where a cut
transfer stopped, with progress (bytes, rate, time left). No pyinfra here: give it the
paramiko Transport of the connection that is open, and the system ``ssh`` command line for the
same host when there is one (``ssh_argv``).

The bytes go through OpenSSH's own ``ssh`` when it can log in without a prompt: paramiko,
whichever way it is used, is held by its packet handling in Python (bench/transfer.py: SFTP
put and a channel stream both about 0.6x scp); ``ssh`` streams as fast as scp. Otherwise (a
password, or ``ssh`` refused) the same stream goes over paramiko. Why not pyinfra's sudo
upload: it stages the file in /tmp first (often a tmpfs too small for a model); here
``sudo -n`` runs the ``cat`` itself. The destination is a temporary name (the caller checks the
sha256 and renames it): a cut transfer leaves a shorter file there, and the next one appends
what is missing.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHUNK = 1 << 20
# Below this, a file goes over the open paramiko connection: a new ssh login costs more than
# the speed it buys (each login is a key exchange; a second or two on a slow node).
SSH_MIN = 16 << 20
PROGRESS_EVERY = 5.0  # seconds between progress lines


class TransferError(RuntimeError):
    pass


@dataclass
class Result:
    sent: int  # bytes sent this time
    resumed_at: int  # bytes that were there already
    seconds: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def ssh_argv(data: Any, hostname: str) -> list[str] | None:
    """OpenSSH's ``ssh`` for the host pyinfra connects to, from the same connection data
    (pyinfra's ssh connector keys); None when it would need a password or passphrase it cannot
    be given without a prompt (then paramiko carries the bytes)."""
    if data.get("ssh_password") or data.get("ssh_key_password"):
        return None
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "-T"]
    if data.get("ssh_config_file"):
        argv += ["-F", str(data.get("ssh_config_file"))]
    if data.get("ssh_port"):
        argv += ["-p", str(data.get("ssh_port"))]
    if data.get("ssh_user"):
        argv += ["-l", str(data.get("ssh_user"))]
    if data.get("ssh_key"):
        argv += ["-i", str(data.get("ssh_key"))]
    if data.get("ssh_look_for_keys") is False and data.get("ssh_key"):
        argv += ["-o", "IdentitiesOnly=yes"]
    if data.get("ssh_allow_agent") is False:
        argv += ["-o", "IdentityAgent=none"]
    if data.get("ssh_known_hosts_file"):
        argv += ["-o", "UserKnownHostsFile=" + str(data.get("ssh_known_hosts_file"))]
    # pyinfra's default is accept-new; "off" is its spelling of no
    strict = str(data.get("ssh_strict_host_key_checking") or "accept-new")
    argv += ["-o", f"StrictHostKeyChecking={'no' if strict == 'off' else strict}"]
    return [*argv, "--", str(data.get("ssh_hostname") or hostname)]


class _SshUnavailable(Exception):
    pass


def _sudo(command: str, sudo: bool) -> str:
    return f"sudo -n sh -c {shlex.quote(command)}" if sudo else command


def start_offset(remote_size: int | None, size: int) -> int:
    """Where to resume: the bytes already there, unless there are none or more than the file
    (another file's leftover: start over)."""
    if remote_size is None or remote_size > size:
        return 0
    return remote_size


def progress_line(name: str, done: int, size: int, elapsed: float, sent: int) -> str:
    from airnode.bundle.manifest import human

    rate = sent / elapsed if elapsed > 0 else 0.0
    left = (size - done) / rate if rate > 0 else 0.0
    pct = 100.0 * done / size if size else 100.0
    return (
        f"{name}: {human(done)} of {human(size)} ({pct:.0f}%), {human(rate)}/s, "
        f"{int(left) // 60}m{int(left) % 60:02d}s left"
    )


def done_line(name: str, r: Result) -> str:
    from airnode.bundle.manifest import human

    resumed = f", resumed at {human(r.resumed_at)}" if r.resumed_at else ""
    return f"{name}: {human(r.sent)} sent in {r.seconds:.1f}s ({human(r.rate)}/s{resumed})"


def _run(transport, command: str, stdin: bytes = b"") -> tuple[int, str]:
    chan = transport.open_session()
    try:
        chan.exec_command(command)
        if stdin:
            chan.sendall(stdin)
            chan.shutdown_write()
        out = b""
        while True:
            data = chan.recv(65536)
            if not data:
                break
            out += data
        err = b""
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
        status = chan.recv_exit_status()
        return status, (out + err).decode(errors="replace")
    finally:
        chan.close()


def run(transport, command: str, sudo: bool = False, stdin: bytes = b"") -> tuple[int, str]:
    """``command`` on the node over its own channel (``sudo -n`` when asked), ``stdin`` fed to
    it: a secret travels this way, never on a command line, a temporary file or in a log.
    Returns (exit status, stdout + stderr)."""
    return _run(transport, _sudo(command, sudo), stdin)


def remote_size(transport, path: str, sudo: bool = False) -> int | None:
    status, out = _run(
        transport, _sudo(f"stat -c %s {shlex.quote(path)} 2>/dev/null || echo none", sudo)
    )
    text = out.strip()
    return int(text) if status == 0 and text.isdigit() else None


def send(
    transport,
    src: Path,
    dest: str,
    sudo: bool = False,
    log: Callable[[str], None] = lambda line: None,
    name: str = "",
    ssh: list[str] | None = None,
    ssh_min: int = SSH_MIN,
) -> Result:
    """Stream src into dest on the node, appending to what a cut transfer left there: through
    ``ssh`` (argv from ssh_argv) when given, it logs in and at least ``ssh_min`` bytes are to
    go; else over the paramiko transport."""
    size = src.stat().st_size
    name = name or src.name
    offset = start_offset(remote_size(transport, dest, sudo), size)
    if offset:
        log(f"{name}: resuming at {offset} of {size} bytes")
    q = shlex.quote(dest)
    command = _sudo(f"umask 077; {'cat >>' if offset else 'cat >'} {q}", sudo)
    started = time.monotonic()
    if ssh and size - offset >= ssh_min:
        try:
            sent = _pump_ssh(ssh, command, src, offset, size, log, name, started)
            return Result(sent, offset, time.monotonic() - started)
        except _SshUnavailable as e:
            log(f"{name}: ssh did not log in ({e}): sending over pyinfra's connection instead")
            return send(transport, src, dest, sudo, log, name)
    sent = _pump_channel(transport, command, src, offset, size, log, name, started, dest)
    return Result(sent, offset, time.monotonic() - started)


def _chunks(src: Path, offset: int, size: int, log, name: str, started: float):
    last = started
    sent = 0
    with open(src, "rb") as f:
        f.seek(offset)
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                return
            yield chunk
            sent += len(chunk)
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY:
                last = now
                log(progress_line(name, offset + sent, size, now - started, sent))


def _pump_ssh(ssh, command, src, offset, size, log, name, started) -> int:
    """ssh reads the file itself (its stdin is the file, at the offset): no byte passes through
    Python. Progress comes from the file position the two share."""
    with open(src, "rb") as f:
        f.seek(offset)
        p = subprocess.Popen(
            [*ssh, command], stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        last = started
        while p.poll() is None:
            time.sleep(0.2)
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY:
                last = now
                done = os.lseek(f.fileno(), 0, os.SEEK_CUR)
                log(progress_line(name, done, size, now - started, done - offset))
        sent = os.lseek(f.fileno(), 0, os.SEEK_CUR) - offset
    assert p.stderr is not None
    err = p.stderr.read().decode(errors="replace").strip()
    status = p.returncode
    if status == 255:  # ssh's own failure (login, connection), not the remote command's
        raise _SshUnavailable(err.splitlines()[-1] if err else "exit 255")
    if status != 0:
        raise TransferError(f"{name}: writing on the node failed (exit {status}): {err}")
    return sent


def _pump_channel(transport, command, src, offset, size, log, name, started, dest) -> int:
    chan = transport.open_session()
    sent = 0
    cut: OSError | None = None
    try:
        chan.exec_command(command)
        try:
            for chunk in _chunks(src, offset, size, log, name, started):
                chan.sendall(chunk)
                sent += len(chunk)
            chan.shutdown_write()
        except OSError as e:  # the node's end went away: its exit status says why, if it can
            cut = e
        deadline = time.monotonic() + 2.0
        while cut is not None and not chan.exit_status_ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        if cut is None or chan.exit_status_ready():
            status = chan.recv_exit_status()
            err = b""
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
            if status != 0:
                raise TransferError(
                    f"{name}: writing {dest} on the node failed (exit {status}): "
                    + err.decode(errors="replace").strip()
                )
        if cut is not None:
            raise TransferError(f"{name}: the transfer was cut at {offset + sent} bytes: {cut}")
    finally:
        chan.close()
    return sent
