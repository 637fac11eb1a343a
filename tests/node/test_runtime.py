"""containerd and k0s."""

import json


def test_containerd_runs_with_cri_and_systemd_cgroups(host):
    svc = host.service("containerd.service")
    assert svc.is_running and svc.is_enabled
    assert "SystemdCgroup = true" in host.check_output("containerd config dump")
    plugins = host.check_output("ctr plugins ls")
    assert any(
        line.split()[:2] == ["io.containerd.grpc.v1", "cri"] and line.split()[-1] == "ok"
        for line in plugins.splitlines()
    )


def test_every_image_of_the_bundle_is_in_containerd(host, bundle):
    present = set(host.check_output("ctr -n k8s.io images ls -q").split())
    wanted = {
        ref for group, refs in bundle.get("images", {}).items() for ref in refs if group != "k0s"
    }
    imported = {a["name"] for a in bundle["artifacts"] if a["kind"] == "image"}
    missing = sorted(r for r in wanted & imported if r not in present)
    assert missing == [], f"images of the bundle not in containerd: {missing}"


def test_k0s_runs_as_a_single_node_controller_on_the_system_containerd(host):
    status = json.loads(host.check_output("k0s status -o json"))
    args = " ".join(status.get("Args") or [])
    assert "--single" in args
    assert "--cri-socket=remote:unix:///run/containerd/containerd.sock" in args
    assert "metrics-server" in args  # disabled
    assert host.service("k0scontroller.service").is_enabled


def test_the_node_is_ready(host):
    out = host.run("k0s kubectl wait node --all --for=condition=Ready --timeout=60s")
    assert out.rc == 0, out.stderr


def test_the_admin_kubeconfig_is_root_only(host):
    f = host.file("/var/lib/k0s/pki/admin.conf")
    assert f.mode == 0o600 and f.user == "root"
