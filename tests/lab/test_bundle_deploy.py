"""The node's runtime from the offline bundle, on a real, air-gapped guest.

The bundle holds Debian's real containerd and runc .debs, a tiny real image (built from
busybox-static, fetched with skopeo from a real registry) and, in place of k0s, the test double
tests/doubles/k0s. The bundle step verifies it locally before any change, ships it once and
verifies it on the node; containerd is installed offline with dpkg and runs the image; k0s's
install flags, re-install and restart logic are checked against the double's call log. Every
re-run reports zero changes."""

from __future__ import annotations

import shlex
import shutil

import pytest

from airnode.bundle import manifest
from tests.oci import busybox_layout
from tests.registry import Registry
from tests.upstream import K0S, K0S_IMAGES, make_runtime_bundle

K0S_FILE = f"k0s/k0s-{K0S}-amd64"

pytestmark = pytest.mark.lab
REMOTE = "/var/lib/airnode/bundle"
RUNS: dict = {}  # runs shared between the ordered tests of this module


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    work = tmp_path_factory.mktemp("runtime")
    with Registry(work / "registry") as reg:
        ref = reg.push_layout(busybox_layout(work / "layout", tag="1"), "1", "airnode/busybox:1")
        data = make_runtime_bundle(work / "bundle", ref, reg.host)
        make_runtime_bundle(work / "static", ref, reg.host, containerd_source="static")
    return {"dir": work / "bundle", "static": work / "static", "ref": ref, "data": data}


@pytest.fixture(scope="module")
def bundle_dir(runtime):
    return runtime["dir"]


def remote_sums(node) -> dict[str, str]:
    out = node.sh(f"cd {REMOTE} 2>/dev/null && find . -type f | sort | xargs -r sha256sum; true")
    return {line.split()[1].removeprefix("./"): line.split()[0] for line in out.splitlines()}


def test_corrupt_local_bundle_stops_before_any_change(node, bundle_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(bundle_dir, bad)
    runc = next((bad / "containerd" / "debs").glob("runc_*.deb"))
    with open(runc, "ab") as f:
        f.write(b"!")
    node.mark()
    before = node.fingerprint()
    run = node.deploy("--data", f"bundle_dir={bad}", label="deploy with a corrupt bundle (refused)")
    assert run.rc != 0
    assert f"corrupt: containerd/debs/{runc.name} (deb runc " in run.stderr
    assert "nothing was changed" in run.stderr
    assert node.fingerprint() == before
    assert "airnode" not in node.sh("ls /var/lib /etc/systemd/system")


def test_first_run_ships_and_verifies_every_file(node, bundle_dir):
    data = manifest.load(bundle_dir)
    run = node.deploy("--data", f"bundle_dir={bundle_dir}", label="deploy #1 with bundle (node)")
    assert run.rc == 0, run.stderr[-3000:]
    RUNS["first"] = run
    uploads = [n for n in run.changed if n.startswith("Offline bundle | Upload ")]
    assert len(uploads) == len(data["artifacts"])
    assert (
        f"Offline bundle | Verify {len(data['artifacts'])} uploaded file(s) on the node (sha256) "
        "and record them" in run.changed
    )
    # the record of what passed there: every artifact, with its status and sha256
    record = node.sh("cat /var/lib/airnode/bundle-verified").splitlines()
    assert sorted(line.split("\t")[1] for line in record) == sorted(
        a["file"] for a in data["artifacts"]
    )
    assert {line.split("\t")[6] for line in record} == {a["sha256"] for a in data["artifacts"]}
    sums = remote_sums(node)
    for a in data["artifacts"]:
        assert sums[a["file"]] == a["sha256"], a["file"]
    assert sums["bundle.json"] == manifest.sha256_file(bundle_dir / "bundle.json")


def test_unchanged_bundle_transfers_nothing(node, bundle_dir):
    run = node.deploy("--data", f"bundle_dir={bundle_dir}", label="deploy #2 with bundle (no-op)")
    pid = node.sh("systemctl show -p MainPID --value containerd")
    assert run.rc == 0, run.stderr[-3000:]
    assert run.changed == []
    assert node.sh("systemctl show -p MainPID --value containerd") == pid  # not restarted


def test_first_run_installed_containerd_and_imported_the_images(node, runtime):
    run = RUNS["first"]
    installs = [n for n in run.changed if n.startswith("containerd | Install ")]
    assert len(installs) == 1 and "containerd 1." in installs[0] and "runc 1." in installs[0]
    assert f"Images into containerd | Import {runtime['ref']}" in run.changed
    assert "containerd | Restart containerd (installed or config changed)" in run.changed


def test_containerd_runs_with_cri_and_systemd_cgroups(node):
    h = node.host
    svc = h.service("containerd.service")
    assert svc.is_running and svc.is_enabled
    dump = h.check_output("containerd config dump")
    assert "SystemdCgroup = true" in dump
    assert f'sandbox_image = "{K0S_IMAGES[1]}"' in dump  # k0s's own pause image
    plugins = h.check_output("ctr plugins ls")
    assert any(
        line.split()[:2] == ["io.containerd.grpc.v1", "cri"] and line.split()[-1] == "ok"
        for line in plugins.splitlines()
    )


def test_the_imported_image_runs(node, runtime):
    out = node.sh(
        f"ctr -n k8s.io run --rm {runtime['ref']} airnode-smoke "
        "/bin/echo hello from an air-gapped airnode"
    )
    assert out.strip() == "hello from an air-gapped airnode"


def test_config_change_restarts_containerd_once(node, runtime):
    pid = node.sh("systemctl show -p MainPID --value containerd")
    args = (
        "--data",
        f"bundle_dir={runtime['dir']}",
        "--data",
        "containerd_sandbox_image=registry.k8s.io/pause:3.9",
    )
    run = node.deploy(*args)
    assert run.rc == 0, run.stderr[-3000:]
    assert sorted(run.changed) == [
        "containerd | Restart containerd (installed or config changed)",
        "containerd | containerd config (CRI, SystemdCgroup)",
    ]
    assert node.sh("systemctl show -p MainPID --value containerd") != pid
    assert 'sandbox_image = "registry.k8s.io/pause:3.9"' in node.sh("containerd config dump")
    assert node.deploy(*args).changed == []


def test_a_file_damaged_on_the_node_is_shipped_again(node, bundle_dir):
    node.sh(f"echo x >> {REMOTE}/{K0S_FILE}")
    run = node.deploy("--data", f"bundle_dir={bundle_dir}")
    assert run.rc == 0, run.stderr[-3000:]
    uploads = [n for n in run.changed if "Upload" in n]
    assert len(uploads) == 1
    assert uploads[0].startswith(f"Offline bundle | Upload {K0S_FILE} (")
    assert remote_sums(node)[K0S_FILE] == next(
        a["sha256"] for a in manifest.load(bundle_dir)["artifacts"] if a["kind"] == "k0s"
    )


def test_a_same_size_change_on_the_node_is_hashed_there_and_shipped_again(node, bundle_dir):
    node.sh(f"printf X | dd of={REMOTE}/{K0S_FILE} bs=1 seek=100 conv=notrunc 2>/dev/null")
    run = node.deploy("--data", f"bundle_dir={bundle_dir}")
    assert run.rc == 0, run.stderr[-3000:]
    assert [n for n in run.changed if "Upload" in n] == [
        n for n in run.changed if n.startswith(f"Offline bundle | Upload {K0S_FILE} (")
    ]
    assert len([n for n in run.changed if "Upload" in n]) == 1
    assert node.deploy("--data", f"bundle_dir={bundle_dir}").changed == []


def test_damage_that_keeps_a_files_status_is_found_by_the_deep_check(node, bundle_dir):
    """The stat check's blind spot (docs/air-gapped.md): bytes changed under the recorded
    status - bit rot - are taken as they are; bundle_deep_check hashes every byte."""
    node.sh(f"printf Y | dd of={REMOTE}/{K0S_FILE} bs=1 seek=200 conv=notrunc 2>/dev/null")
    # what undetected rot looks like: the record's status is the file's current one
    now = node.sh(f"cd {REMOTE} && find ./{K0S_FILE} -printf '%s\\t%T@\\t%C@\\t%i'").strip()
    lines = node.sh("cat /var/lib/airnode/bundle-verified").splitlines()
    lines = [
        "\t".join(["v1", K0S_FILE, now, line.split("\t")[6]])
        if line.split("\t")[1] == K0S_FILE
        else line
        for line in lines
    ]
    node.sh(
        "printf '%s\\n' "
        + " ".join(shlex.quote(line) for line in lines)
        + " > /var/lib/airnode/bundle-verified"
    )
    blind = node.deploy("--data", f"bundle_dir={bundle_dir}")
    assert blind.rc == 0 and blind.changed == []
    deep = node.deploy("--data", f"bundle_dir={bundle_dir}", "--data", "bundle_deep_check=true")
    assert deep.rc == 0, deep.stderr[-3000:]
    assert (
        len([n for n in deep.changed if n.startswith(f"Offline bundle | Upload {K0S_FILE}")]) == 1
    )
    sha = next(a["sha256"] for a in manifest.load(bundle_dir)["artifacts"] if a["kind"] == "k0s")
    assert remote_sums(node)[K0S_FILE] == sha


def test_a_cut_upload_resumes_where_it_stopped_and_a_bad_one_starts_over(node, bundle_dir):
    """A transfer cut half-way leaves <file>.partial (never the file's own name); the next run
    sends only the rest. A whole-size partial that is wrong fails the check naming it and is
    removed, so the run after ships the file whole."""
    size = (bundle_dir / K0S_FILE).stat().st_size
    half = size // 2
    sha = next(a["sha256"] for a in manifest.load(bundle_dir)["artifacts"] if a["kind"] == "k0s")
    node.sh(f"cd {REMOTE} && head -c {half} {K0S_FILE} > {K0S_FILE}.partial && rm {K0S_FILE}")
    run = node.deploy("--data", f"bundle_dir={bundle_dir}", label="deploy: resume a cut upload")
    assert run.rc == 0, run.stderr[-3000:]
    assert f"{K0S_FILE}: resuming at {half} of {size} bytes" in run.stderr
    assert "sent in" in run.stderr and "resumed at" in run.stderr
    sums = remote_sums(node)
    assert sums[K0S_FILE] == sha and f"{K0S_FILE}.partial" not in sums

    node.sh(f"cd {REMOTE} && head -c {size} /dev/urandom > {K0S_FILE}.partial && rm {K0S_FILE}")
    bad = node.deploy("--data", f"bundle_dir={bundle_dir}")
    assert bad.rc != 0
    assert f"{K0S_FILE}.partial: FAILED" in bad.stderr
    assert f"{K0S_FILE}.partial" not in remote_sums(node)
    again = node.deploy("--data", f"bundle_dir={bundle_dir}")
    assert again.rc == 0, again.stderr[-3000:]
    assert "resuming" not in again.stderr and remote_sums(node)[K0S_FILE] == sha
    assert node.deploy("--data", f"bundle_dir={bundle_dir}").changed == []


def test_a_sudo_user_ships_large_files_without_staging_them_in_tmp(node, bundle_dir):
    """A non-root SSH user with sudo (pyinfra --sudo): the upload runs `sudo -n` on the node
    and writes in place. /tmp is a 1 MiB tmpfs here: pyinfra's own sudo upload, which stages
    every file in /tmp first, could not ship the bundle's largest file."""
    big = max(manifest.load(bundle_dir)["artifacts"], key=lambda a: a["size"])
    assert big["size"] > 1 << 20
    node.sh(
        "useradd -m -s /bin/sh deployer && install -d -m 700 -o deployer -g deployer "
        "/home/deployer/.ssh && install -m 600 -o deployer -g deployer "
        "/root/.ssh/authorized_keys /home/deployer/.ssh/ && "
        "echo 'deployer ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/deployer && "
        "chmod 440 /etc/sudoers.d/deployer && mount -t tmpfs -o size=1m tmpfs /tmp && "
        f"rm {REMOTE}/{shlex.quote(big['file'])}"
    )
    try:
        run = node.deploy(
            "--data",
            f"bundle_dir={bundle_dir}",
            "--data",
            "ssh_user=deployer",
            "--sudo",
            label="deploy as a sudo user, /tmp 1 MiB",
        )
        assert run.rc == 0, run.stderr[-3000:]
        assert [n for n in run.changed if "Upload" in n] == [
            f"Offline bundle | Upload {big['file']} ({manifest.human(big['size'])})"
        ]
        assert remote_sums(node)[big["file"]] == big["sha256"]
        assert node.sh(f"stat -c '%U %a' {REMOTE}/{shlex.quote(big['file'])}").split() == [
            "root",
            "644",
        ]
        assert node.sh("ls -A /tmp") == ""
    finally:
        node.sh(
            "umount /tmp; rm -f /etc/sudoers.d/deployer; pkill -u deployer; "
            "userdel -r deployer 2>/dev/null; true"
        )
    assert node.deploy("--data", f"bundle_dir={bundle_dir}").changed == []


def test_bundle_for_another_architecture_is_refused(node, bundle_dir, tmp_path):
    other = tmp_path / "arm"
    shutil.copytree(bundle_dir, other)
    data = manifest.load(other)
    manifest.write(other, "arm64", data["artifacts"], data["images"], data["spec"])
    run = node.deploy("--data", f"bundle_dir={other}")
    assert run.rc != 0
    assert "the bundle was built for arm64, this host is x86_64 (amd64)" in run.stderr


# k0s, against the test double (tests/doubles/k0s) that records every call it gets.
CALLS = "/run/k0s-double/calls.log"
WANTED = (
    "install controller --single --config=/etc/k0s/k0s.yaml "
    "--cri-socket=remote:unix:///run/containerd/containerd.sock "
    "--disable-components=metrics-server"
)


def calls(node) -> list[str]:
    return node.sh(f"cat {CALLS} 2>/dev/null || true").splitlines()


def test_k0s_installed_once_with_the_exact_flags_and_the_node_ready(node):
    log = calls(node)
    installs = [c for c in log if c.startswith("install ")]
    assert installs == [WANTED]
    assert "config validate --config /etc/k0s/k0s.yaml" in log
    # its own node by name (a controller's workers have their own wait)
    name = node.sh("uname -n").strip().lower()
    assert any(c.startswith(f"kubectl wait node/{name} --for=condition=Ready") for c in log)
    assert node.sh(
        "systemctl is-active k0scontroller; systemctl is-enabled k0scontroller"
    ).split() == ["active", "enabled"]
    assert node.sh("stat -c '%a %U' /var/lib/k0s/pki/admin.conf /etc/k0s/k0s.yaml").split() == [
        "600",
        "root",
        "600",
        "root",
    ]
    assert "kind: ClusterConfig" in node.sh("cat /etc/k0s/k0s.yaml")


def test_k0s_unchanged_means_no_reinstall_no_restart(node, bundle_dir):
    before, pid = len(calls(node)), node.sh("systemctl show -p MainPID --value k0scontroller")
    run = node.deploy("--data", f"bundle_dir={bundle_dir}")
    assert run.rc == 0 and run.changed == []
    new = calls(node)[before:]
    assert not [c for c in new if c.startswith(("install", "start", "stop"))]
    assert node.sh("systemctl show -p MainPID --value k0scontroller") == pid


def test_k0s_changed_flags_force_a_reinstall_and_restart(node, bundle_dir):
    before, pid = len(calls(node)), node.sh("systemctl show -p MainPID --value k0scontroller")
    args = (
        "--data",
        f"bundle_dir={bundle_dir}",
        "--data",
        'k0s_disable_components=["metrics-server","helm"]',
    )
    run = node.deploy(*args)
    assert run.rc == 0, run.stderr[-3000:]
    assert "k0s | k0s flags changed: install controller --force" in run.changed
    new = [c for c in calls(node)[before:] if c.startswith("install")]
    assert new == [WANTED.replace("metrics-server", "helm,metrics-server") + " --force"]
    assert node.sh("systemctl show -p MainPID --value k0scontroller") != pid
    assert node.deploy(*args).changed == []


def test_k0s_changed_config_restarts_without_reinstall(node, bundle_dir):
    before, pid = len(calls(node)), node.sh("systemctl show -p MainPID --value k0scontroller")
    args = (
        "--data",
        f"bundle_dir={bundle_dir}",
        "--data",
        'k0s_disable_components=["metrics-server","helm"]',
        "--data",
        "k0s_network_provider=calico",
    )
    run = node.deploy(*args)
    assert run.rc == 0, run.stderr[-3000:]
    assert "k0s | Restart k0s (binary, flags or config changed)" in run.changed
    new = calls(node)[before:]
    assert not [c for c in new if c.startswith("install")]
    assert "config validate --config /etc/k0s/k0s.yaml" in new
    assert node.sh("systemctl show -p MainPID --value k0scontroller") != pid
    assert "provider: calico" in node.sh("cat /etc/k0s/k0s.yaml")


def test_conflicting_runtime_is_stopped_and_disabled(node, bundle_dir):
    node.sh(
        "printf '[Service]\\nExecStart=/bin/sleep infinity\\n[Install]\\n"
        "WantedBy=multi-user.target\\n' > /etc/systemd/system/docker.service && "
        "systemctl daemon-reload && systemctl enable -q --now docker.service"
    )
    args = (
        "--data",
        f"bundle_dir={bundle_dir}",
        "--data",
        'k0s_disable_components=["metrics-server","helm"]',
        "--data",
        "k0s_network_provider=calico",
    )
    run = node.deploy(*args)
    assert run.rc == 0, run.stderr[-3000:]
    assert run.changed == ["containerd | Conflicting runtime docker.service stopped and disabled"]
    assert node.sh("systemctl is-active docker; systemctl is-enabled docker; true").split() == [
        "inactive",
        "disabled",
    ]
    assert node.deploy(*args).changed == []


@pytest.mark.extended
def test_switching_to_the_static_release_keeps_everything_running(node, runtime):
    args = (
        "--data",
        f"bundle_dir={runtime['static']}",
        "--data",
        "containerd_source=static",
        "--data",
        'k0s_disable_components=["metrics-server","helm"]',
        "--data",
        "k0s_network_provider=calico",
    )
    run = node.deploy(*args, label="deploy: containerd debian -> static")
    assert run.rc == 0, run.stderr[-3000:]
    assert any(
        n.startswith("containerd | Install containerd 1.6.20 (static) and runc 1.1.5")
        for n in run.changed
    ), run.changed
    assert "containerd | Restart containerd (installed or config changed)" in run.changed
    assert "/usr/local/bin/containerd" in node.sh("systemctl show -p ExecStart containerd")
    assert node.sh("systemctl is-active containerd").strip() == "active"
    assert "SystemdCgroup = true" in node.sh("/usr/local/bin/containerd config dump")
    out = node.sh(
        f"/usr/local/bin/ctr -n k8s.io run --rm {runtime['ref']} airnode-static "
        "/bin/echo still here"
    )
    assert out.strip() == "still here"
    assert node.deploy(*args).changed == []


@pytest.mark.extended
def test_a_node_that_never_gets_ready_fails_with_a_bounded_clear_timeout(node, runtime):
    node.sh("touch /run/k0s-double/never-ready")
    args = (
        "--data",
        f"bundle_dir={runtime['static']}",
        "--data",
        "containerd_source=static",
        "--data",
        'k0s_disable_components=["metrics-server","helm"]',
        "--data",
        "k0s_ready_timeout=30",
    )  # network provider back to kuberouter: a restart
    run = node.deploy(*args)
    assert run.rc != 0
    name = node.sh("uname -n").strip().lower()  # the node is waited for by name
    assert (
        f"k0s node {name} not Ready after 30s: see journalctl -u k0scontroller.service"
        in run.stderr
    )
    assert run.seconds < 180
    node.sh("rm /run/k0s-double/never-ready")


@pytest.mark.extended
def test_teardown_of_a_static_install_removes_what_it_listed_and_nothing_else(node, runtime):
    """containerd_source = static: the install lists the files it wrote; teardown removes that
    list and leaves a file of the site's that merely shares a name's beginning (the former
    `rm -f /usr/local/bin/containerd-shim*` took it)."""
    listed = node.sh("cat /usr/local/lib/airnode/containerd-static.files").split()
    assert {
        "/usr/local/bin/containerd",
        "/usr/local/bin/ctr",
        "/usr/local/sbin/runc",
        "/etc/systemd/system/containerd.service",
    } <= set(listed), listed
    assert node.sh("for f in " + " ".join(listed) + ' ; do [ -f "$f" ] || echo "$f"; done') == ""
    node.sh("echo site > /usr/local/bin/containerd-shim-site")
    args = (
        "--data",
        f"bundle_dir={runtime['static']}",
        "--data",
        "containerd_source=static",
    )
    run = node.deploy(*args, deploy="deploys/teardown.py", label="teardown (static containerd)")
    assert run.rc == 0, run.stderr[-3000:]
    left = node.sh("for f in " + " ".join(listed) + ' ; do [ -e "$f" ] && echo "$f"; done; true')
    assert left.strip() == ""
    assert node.sh("cat /usr/local/bin/containerd-shim-site").strip() == "site"
    assert (
        node.sh("ls /usr/local/lib/airnode 2>&1; true")
        .strip()
        .endswith("No such file or directory")
    )
