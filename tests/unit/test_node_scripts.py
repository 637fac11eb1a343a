"""The shell scripts airnode runs on the node (files/*.sh), run here for real with sh against a
fake kubectl that records its arguments and answers as told."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from airnode.paths import FILES


@pytest.fixture
def kubectl(tmp_path):
    """A fake `k0s kubectl`: logs each call's arguments; fails the calls whose joined arguments
    contain a word listed in $FAIL (space-separated)."""
    fake = tmp_path / "kubectl"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {tmp_path}/calls\n'
        'for w in $FAIL; do case "$*" in *"$w"*) echo "error: $w" >&2; exit 1;; esac; done\n'
        "exit 0\n"
    )
    fake.chmod(0o755)
    return fake


def run(name: str, *args: str, fail: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sh", "-c", (FILES / name).read_text(), name, *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "FAIL": fail},
        check=False,
    )


def calls(kubectl: Path) -> list[str]:
    log = kubectl.parent / "calls"
    return log.read_text().splitlines() if log.exists() else []


def test_the_migration_does_nothing_without_an_old_statefulset(kubectl):
    r = run("migrate-model-server.sh", str(kubectl), "airnode", "lab", fail="statefulset ollama")
    assert r.returncode == 0
    assert calls(kubectl) == ["-n airnode get statefulset ollama"]


def test_the_migration_replaces_the_old_objects_and_frees_the_volume(kubectl):
    r = run("migrate-model-server.sh", str(kubectl), "airnode", "lab")
    assert r.returncode == 0
    assert calls(kubectl) == [
        "-n airnode get statefulset ollama",
        "-n airnode delete statefulset ollama --wait=true",
        "-n airnode delete service ollama --ignore-not-found",
        "-n airnode delete probe ollama --ignore-not-found",
        "-n airnode delete pvc models-ollama-0 --ignore-not-found --wait=true",
        'patch pv airnode-models-lab --type=json -p [{"op":"remove","path":"/spec/claimRef"}]',
    ]


def test_a_rollout_that_times_out_says_why_and_fails(kubectl):
    r = run("rollout-wait.sh", str(kubectl), "airnode", "model-server", "30", fail="rollout")
    assert r.returncode == 1
    assert "statefulset/model-server in airnode not ready after 30s" in r.stderr
    assert calls(kubectl)[1:] == [
        "-n airnode get pods",
        "-n airnode get events --field-selector involvedObject.name=model-server-0",
        "-n airnode logs model-server-0 --tail=20",
    ]
    ok = run("rollout-wait.sh", str(kubectl), "airnode", "model-server", "30")
    assert ok.returncode == 0


def test_the_removals_wait_names_its_replica_and_what_set_the_time(kubectl):
    r = run(
        "rollout-wait.sh",
        str(kubectl),
        "airnode",
        "model-server",
        "300",
        "model-server-1",
        "the removal's wait for the moved replica",
        fail="rollout",
    )
    assert r.returncode == 1
    assert "not ready after 300s (the removal's wait for the moved replica)" in r.stderr
    assert calls(kubectl)[-2:] == [
        "-n airnode get events --field-selector involvedObject.name=model-server-1",
        "-n airnode logs model-server-1 --tail=20",
    ]


def test_crds_not_established_fail_naming_the_setting(kubectl):
    r = run("crds-wait.sh", str(kubectl), "120", fail="Established")
    assert r.returncode == 1 and "monitoring_crd_timeout" in r.stderr
    assert run("crds-wait.sh", str(kubectl), "120").returncode == 0


@pytest.mark.parametrize("fail, rc", [("", 0), ("create", 1)])
def test_the_admin_secret_file_is_removed_whatever_happens(kubectl, tmp_path, fail, rc):
    secret = tmp_path / "pw"
    secret.write_text("hunter2")
    r = run(
        "admin-secret.sh",
        str(kubectl),
        "airnode",
        "open-webui-admin",
        "password",
        str(secret),
        fail=f"get {fail}".strip() if fail else "get",
    )
    assert r.returncode == rc and not secret.exists()
    assert calls(kubectl)[-1] == (
        f"-n airnode create secret generic open-webui-admin --from-file=password={secret}"
    )
    assert "hunter2" not in "".join(calls(kubectl)) + r.stdout + r.stderr


def test_an_existing_admin_secret_is_kept(kubectl, tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("hunter2")
    r = run("admin-secret.sh", str(kubectl), "airnode", "open-webui-admin", "password", str(secret))
    assert r.returncode == 0 and not secret.exists()
    assert calls(kubectl) == ["-n airnode get secret open-webui-admin"]


def test_a_node_never_ready_fails_bounded_naming_where_to_look(tmp_path):
    k0s = tmp_path / "k0s"
    k0s.write_text("#!/bin/sh\nexit 1\n")
    k0s.chmod(0o755)
    r = run("k0s-ready-wait.sh", str(k0s), "k0scontroller.service", "0")
    assert r.returncode == 1
    assert "k0s node (all) not Ready after 0s: see journalctl -u k0scontroller.service" in r.stderr
    # one node by name (a worker, waited for on its controller)
    r = run("k0s-ready-wait.sh", str(k0s), "k0sworker.service on w1", "0", "w1")
    assert r.returncode == 1
    assert "k0s node w1 not Ready after 0s: see journalctl -u k0sworker.service on w1" in r.stderr
    k0s.write_text('#!/bin/sh\necho "$@" >> "$0.calls"\n')
    assert run("k0s-ready-wait.sh", str(k0s), "k0scontroller.service", "0").returncode == 0
    assert run("k0s-ready-wait.sh", str(k0s), "k0scontroller.service", "0", "w1").returncode == 0
    assert (tmp_path / "k0s.calls").read_text().splitlines() == [
        "kubectl wait node --all --for=condition=Ready --timeout=10s",
        "kubectl wait node/w1 --for=condition=Ready --timeout=10s",
    ]


def test_place_files_checks_all_then_renames_with_owner_and_mode(tmp_path):
    import hashlib
    import os

    owner = f"{os.getuid()}:{os.getgid()}"
    a, b = b"first", b"second"
    (tmp_path / "sha256-a.partial").write_bytes(a)
    (tmp_path / "b.partial").write_bytes(b)
    pairs = [
        f"{hashlib.sha256(a).hexdigest()}=sha256-a",
        f"{hashlib.sha256(b).hexdigest()}=b",
    ]
    r = run("place-files.sh", str(tmp_path), owner, "640", *pairs)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "sha256-a").read_bytes() == a and (tmp_path / "b").read_bytes() == b
    assert oct((tmp_path / "b").stat().st_mode & 0o777) == "0o640"
    assert not list(tmp_path.glob("*.partial"))


def test_place_files_renames_nothing_when_one_is_bad_and_removes_the_partials(tmp_path):
    import hashlib
    import os

    owner = f"{os.getuid()}:{os.getgid()}"
    (tmp_path / "a").write_bytes(b"old")
    (tmp_path / "a.partial").write_bytes(b"new")
    (tmp_path / "b.partial").write_bytes(b"rotten")
    pairs = [f"{hashlib.sha256(b'new').hexdigest()}=a", f"{hashlib.sha256(b'b').hexdigest()}=b"]
    r = run("place-files.sh", str(tmp_path), owner, "644", *pairs)
    assert r.returncode == 1
    assert "b.partial: FAILED" in r.stderr
    assert (tmp_path / "a").read_bytes() == b"old"  # the good one was not renamed either
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("name", ["../etc/passwd", "/etc/passwd", ""])
def test_place_files_refuses_a_name_outside_its_directory(tmp_path, name):
    r = run("place-files.sh", str(tmp_path), "0:0", "644", f"{'0' * 64}={name}")
    assert r.returncode == 2 and "bad name" in r.stderr


def test_k0s_reset_is_retried_while_it_fails_then_fails_naming_the_mounts(tmp_path):
    # a fake k0s failing its first $FAILS resets (mounts busy), logging each call's arguments
    k0s = tmp_path / "k0s"
    k0s.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {tmp_path}/calls\n'
        f'n=$(wc -l < {tmp_path}/calls); [ "$n" -gt "$FAILS" ]\n'
    )
    k0s.chmod(0o755)
    args = ("k0s-reset.sh", str(k0s), "unix:///run/containerd/containerd.sock", "/etc/k0s/k0s.yaml")

    def reset(attempts: str, fails: int) -> subprocess.CompletedProcess:
        (tmp_path / "calls").unlink(missing_ok=True)
        return subprocess.run(
            ["sh", "-c", (FILES / "k0s-reset.sh").read_text(), *args, attempts, "0"],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "FAILS": str(fails)},
            check=False,
        )

    r = reset("3", 2)
    assert r.returncode == 0, r.stderr
    assert (
        calls(k0s)
        == ["reset --cri-socket=unix:///run/containerd/containerd.sock --config=/etc/k0s/k0s.yaml"]
        * 3
    )
    assert "k0s reset failed (attempt 2 of 3): retrying" in r.stderr
    r = reset("3", 3)
    assert r.returncode == 1 and len(calls(k0s)) == 3
    assert "k0s reset failed 3 times: see the mounts under /var/lib/k0s" in r.stderr


def test_a_workers_k0s_reset_names_no_config(tmp_path):
    # a worker has no k0s.yaml (its config is the controller's): CONFIG "" drops --config
    k0s = tmp_path / "k0s"
    k0s.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/calls\n')
    k0s.chmod(0o755)
    r = subprocess.run(
        [
            "sh",
            "-c",
            (FILES / "k0s-reset.sh").read_text(),
            "k0s-reset.sh",
            str(k0s),
            "unix:///s",
            "",
            "1",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert calls(k0s) == ["reset --cri-socket=unix:///s"]
