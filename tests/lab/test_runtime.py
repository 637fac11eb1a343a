"""containerd from the bundle on a real, air-gapped guest: Debian's real containerd and runc
.debs installed offline with dpkg, configured for CRI with SystemdCgroup, a tiny real image
(built from busybox-static, fetched with skopeo) imported and run. Re-runs change nothing."""

from __future__ import annotations

import pytest

from tests.oci import busybox_layout
from tests.registry import Registry
from tests.upstream import make_runtime_bundle

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    work = tmp_path_factory.mktemp("runtime")
    with Registry(work / "registry") as reg:
        ref = reg.push_layout(busybox_layout(work / "layout", tag="1"), "1", "airnode/busybox:1")
        data = make_runtime_bundle(work / "bundle", ref, reg.host)
    return {"dir": work / "bundle", "ref": ref, "data": data}


def test_first_run_installs_containerd_and_imports_the_images(node, runtime):
    run = node.deploy("--data", f"bundle_dir={runtime['dir']}", label="deploy #1 with runtime")
    assert run.rc == 0, run.stderr[-3000:]
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
    assert 'sandbox_image = "registry.k8s.io/pause:3.10"' in dump
    plugins = h.check_output("ctr plugins ls")
    assert any(line.split()[:2] == ["io.containerd.grpc.v1", "cri"] and line.split()[-1] == "ok"
               for line in plugins.splitlines())


def test_the_imported_image_runs(node, runtime):
    out = node.sh(f"ctr -n k8s.io run --rm {runtime['ref']} airnode-smoke "
                  "/bin/echo hello from an air-gapped airnode")
    assert out.strip() == "hello from an air-gapped airnode"


def test_second_run_changes_nothing_and_imports_nothing(node, runtime):
    pid = node.sh("systemctl show -p MainPID --value containerd")
    run = node.deploy("--data", f"bundle_dir={runtime['dir']}", label="deploy #2 with runtime (no-op)")
    assert run.rc == 0, run.stderr[-3000:]
    assert run.changed == []
    assert node.sh("systemctl show -p MainPID --value containerd") == pid  # not restarted


def test_config_change_restarts_containerd_once(node, runtime):
    pid = node.sh("systemctl show -p MainPID --value containerd")
    args = ("--data", f"bundle_dir={runtime['dir']}",
            "--data", "containerd_sandbox_image=registry.k8s.io/pause:3.9")
    run = node.deploy(*args)
    assert run.rc == 0, run.stderr[-3000:]
    assert sorted(run.changed) == ["containerd | Restart containerd (installed or config changed)",
                                   "containerd | containerd config (CRI, SystemdCgroup)"]
    assert node.sh("systemctl show -p MainPID --value containerd") != pid
    assert 'sandbox_image = "registry.k8s.io/pause:3.9"' in node.sh("containerd config dump")
    assert node.deploy(*args).changed == []
