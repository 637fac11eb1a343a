"""airnode/transfer.py against a stand-in for paramiko's Transport whose channels run their
command in a real local `sh` (the commands are the ones the node runs): a fresh transfer, a
resumed one, another file's leftover, a failing write, progress lines."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from airnode import transfer


class Channel:
    """The parts of paramiko.Channel transfer.py uses, over a local `sh -c`."""

    def __init__(self, log):
        self.p = None
        self.log = log

    def exec_command(self, command):
        self.log.append(command)
        self.p = subprocess.Popen(
            ["sh", "-c", command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._out = None

    def sendall(self, data):
        self.p.stdin.write(data)

    def shutdown_write(self):
        self.p.stdin.close()

    def _finish(self):
        if self._out is None:
            if not self.p.stdin.closed:
                self.p.stdin.close()
            self._out, self._err = self.p.stdout.read(), self.p.stderr.read()
            self.p.wait()

    def recv(self, n):
        self._finish()
        out, self._out = self._out, b""
        return out

    def recv_stderr_ready(self):
        self._finish()
        return bool(self._err)

    def recv_stderr(self, n):
        err, self._err = self._err, b""
        return err

    def exit_status_ready(self):
        return self.p.poll() is not None

    def recv_exit_status(self):
        self._finish()
        return self.p.returncode

    def close(self):
        pass


class Transport:
    def __init__(self):
        self.commands = []

    def open_session(self):
        return Channel(self.commands)


@pytest.fixture
def src(tmp_path):
    f = tmp_path / "model.gguf"
    f.write_bytes(os.urandom(3 * transfer.CHUNK + 12345))
    return f


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_fresh_transfer_writes_the_whole_file(src, tmp_path):
    dest = tmp_path / "node" / "sha256-x.partial"
    dest.parent.mkdir()
    t = Transport()
    r = transfer.send(t, src, str(dest))
    assert sha(dest) == sha(src)
    assert (r.sent, r.resumed_at) == (src.stat().st_size, 0)
    assert oct(dest.stat().st_mode & 0o777) == "0o600"  # umask 077 until checked and placed
    assert any(c.endswith(f"cat > {dest}") for c in t.commands)


def test_a_cut_transfer_resumes_where_it_stopped(src, tmp_path):
    dest = tmp_path / "sha256-x.partial"
    cut = 2 * transfer.CHUNK + 7
    dest.write_bytes(src.read_bytes()[:cut])
    lines = []
    r = transfer.send(Transport(), src, str(dest), log=lines.append, name="model m")
    assert sha(dest) == sha(src)
    assert (r.resumed_at, r.sent) == (cut, src.stat().st_size - cut)
    assert lines[0] == f"model m: resuming at {cut} of {src.stat().st_size} bytes"
    assert "resumed at 2.0 MiB" in transfer.done_line("model m", r)


def test_a_leftover_longer_than_the_file_is_replaced(src, tmp_path):
    dest = tmp_path / "sha256-x.partial"
    dest.write_bytes(b"x" * (src.stat().st_size + 1))
    r = transfer.send(Transport(), src, str(dest))
    assert r.resumed_at == 0 and sha(dest) == sha(src)


def test_a_write_that_fails_on_the_node_is_an_error_naming_the_destination(src, tmp_path):
    dest = tmp_path / "no-such-dir" / "sha256-x.partial"
    with pytest.raises(transfer.TransferError, match=r"writing .*no-such-dir.* failed \(exit"):
        transfer.send(Transport(), src, str(dest))


def test_sudo_runs_the_write_itself_and_the_path_is_quoted(tmp_path):
    cmd = transfer._sudo("umask 077; cat > '/a b/x'", True)
    assert cmd == "sudo -n sh -c 'umask 077; cat > '\"'\"'/a b/x'\"'\"''"
    assert transfer._sudo("true", False) == "true"


@pytest.mark.parametrize(
    "remote, size, want", [(None, 10, 0), (0, 10, 0), (4, 10, 4), (10, 10, 10), (11, 10, 0)]
)
def test_where_a_transfer_starts(remote, size, want):
    assert transfer.start_offset(remote, size) == want


def test_progress_says_bytes_rate_and_time_left():
    line = transfer.progress_line("model m", 512 << 20, 2 << 30, 4.0, 512 << 20)
    assert line == "model m: 512.0 MiB of 2.0 GiB (25%), 128.0 MiB/s, 0m12s left"


def test_through_ssh_the_bytes_go_to_the_remote_command(src, tmp_path):
    """`sh -c` stands for `ssh ... host`: the remote command is its last argument."""
    dest = tmp_path / "sha256-x.partial"
    dest.write_bytes(src.read_bytes()[:1000])
    t = Transport()
    r = transfer.send(t, src, str(dest), ssh=["sh", "-c"], ssh_min=0)
    assert sha(dest) == sha(src) and r.resumed_at == 1000
    assert all("cat" not in c for c in t.commands)  # paramiko only asked the size


def test_when_ssh_cannot_log_in_the_bytes_go_over_paramiko(src, tmp_path):
    dest = tmp_path / "sha256-x.partial"
    lines = []
    t = Transport()
    denied = ["sh", "-c", "echo denied >&2; exit 255"]
    transfer.send(t, src, str(dest), ssh=denied, log=lines.append, ssh_min=0)
    assert sha(dest) == sha(src)
    assert any("ssh did not log in (denied)" in line for line in lines)
    assert any(c.endswith(f"cat > {dest}") for c in t.commands)


def test_a_failing_remote_command_through_ssh_is_an_error_not_a_fallback(src, tmp_path):
    dest = tmp_path / "no-such-dir" / "x.partial"
    with pytest.raises(transfer.TransferError, match="writing on the node failed"):
        transfer.send(Transport(), src, str(dest), ssh=["sh", "-c"], ssh_min=0)


class Data:
    """pyinfra's HostData: .get only, not subscriptable."""

    def __init__(self, d):
        self._d = d

    def get(self, key, default=None):
        return self._d.get(key, default)


def test_the_ssh_command_line_follows_pyinfras_connection_data():
    data = {
        "ssh_hostname": "10.0.0.5",
        "ssh_port": 2222,
        "ssh_user": "admin",
        "ssh_key": "/keys/id",
        "ssh_known_hosts_file": "/dev/null",
        "ssh_strict_host_key_checking": "off",
        "ssh_allow_agent": False,
        "ssh_look_for_keys": False,
    }
    argv = transfer.ssh_argv(Data(data), "node1")
    assert argv[0] == "ssh" and argv[-2:] == ["--", "10.0.0.5"]
    assert "BatchMode=yes" in argv  # never a prompt: a refusal falls back to paramiko
    for pair in (["-p", "2222"], ["-l", "admin"], ["-i", "/keys/id"]):
        i = argv.index(pair[0])
        assert argv[i : i + 2] == pair
    assert "StrictHostKeyChecking=no" in argv and "UserKnownHostsFile=/dev/null" in argv
    assert "IdentitiesOnly=yes" in argv and "IdentityAgent=none" in argv
    assert transfer.ssh_argv({}, "node1")[-1] == "node1"
    assert "StrictHostKeyChecking=accept-new" in transfer.ssh_argv({}, "node1")
    assert transfer.ssh_argv({"ssh_password": "x"}, "node1") is None


def test_a_small_file_goes_over_the_open_connection_not_a_new_ssh_login(src, tmp_path):
    dest = tmp_path / "x.partial"
    t = Transport()
    transfer.send(t, src, str(dest), ssh=["sh", "-c", "exit 99"])  # would fail if used
    assert sha(dest) == sha(src) and any("cat >" in c for c in t.commands)
