"""The real pyinfra CLI over a cluster of @fake hosts (tests/fake_cluster.py): preflight checks
the topology the inventory's groups describe and refuses before any change, naming the hosts,
the settings and the way out."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from airnode import cluster, k0s
from airnode.bundle import trust
from tests.unit.test_preflight_cli import deploy, llama3_shaped_bundle, profile

PYINFRA = str(Path(sys.executable).parent / "pyinfra")
REACHED = ["6443 refused", "8132 refused"]  # the controller answers; k0s not running yet


def node(name: str, reach: list[str] | None = None, unit: str = "", **data) -> dict:
    responses = {
        "echo arch=": profile(mem_kb=str(8 * 1024 * 1024)),
        "uname -n": name,
        "df -P -B1": [f"/dev/vda1 50000000000 {p}" for p in ("/var/lib",) * 2]
        + [f"/dev/vda1 50000000000 {p}" for p in ("/opt", "/usr", "/var/lib")],
    }
    if reach is not None:
        responses["/dev/tcp/"] = reach
    if unit:
        responses[f"cat /etc/systemd/system/{k0s.UNIT}"] = unit
    return {"responses": responses, "data": data}


def run(groups: dict, *extra: str, dry: bool = True) -> subprocess.CompletedProcess:
    env = {"AIRNODE_FAKE_CLUSTER": json.dumps(groups)}
    return deploy("fake_cluster.py", env, *(["--dry"] if dry else []), *extra, timeout=180)


def refused(r: subprocess.CompletedProcess, *messages: str) -> None:
    assert r.returncode != 0, r.stderr[-3000:]
    assert "cannot become an airnode node; nothing was changed" in r.stderr
    assert "Beginning operation run" not in r.stderr  # stopped while preparing: no change
    text = " ".join(r.stderr.split())
    for m in messages:
        assert m in text, r.stderr[-3000:]


def test_a_controller_and_a_worker_that_reaches_it_get_through_preflight():
    r = run(
        {
            "controllers": {"c1": node("c1", k0s_node_address="10.77.0.1")},
            "workers": {"w1": node("w1", REACHED)},
        }
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "nothing was changed" not in r.stderr


def test_two_controllers_are_refused_on_every_member():
    r = run(
        {
            "controllers": {
                "c1": node("c1", k0s_node_address="10.77.0.1"),
                "c2": node("c2", k0s_node_address="10.77.0.2"),
            },
            "workers": {"w1": node("w1", REACHED)},
        }
    )
    refused(r, "the controllers group has 2 hosts (@fake/c1, @fake/c2)")


def test_workers_without_a_controller_are_refused():
    r = run({"workers": {"w1": node("w1", REACHED)}})
    refused(r, "the workers group (@fake/w1) has no controller to join")


def test_a_controller_with_no_address_workers_reach_is_refused_naming_the_setting():
    r = run({"controllers": {"c1": node("c1")}, "workers": {"w1": node("w1", REACHED)}})
    refused(
        r,
        "@fake/c1, the controller, has no address its workers can reach: its inventory "
        "address '@fake/c1' is not an IP other nodes reach, and k0s_node_address is empty",
    )


def test_a_worker_that_cannot_reach_its_controller_is_refused_before_any_change():
    r = run(
        {
            "controllers": {"c1": node("c1", k0s_node_address="10.77.0.1")},
            "workers": {"w1": node("w1", ["6443 unreachable: timed out after 3s", "8132 open"])},
        }
    )
    refused(
        r,
        "@fake/w1 cannot reach its controller @fake/c1 at 10.77.0.1:6443 (timed out after 3s)",
    )


def test_more_replicas_than_nodes_are_refused():
    groups = {
        "controllers": {"c1": node("c1", k0s_node_address="10.77.0.1")},
        "workers": {"w1": node("w1", REACHED)},
    }
    refused(
        run(groups, "--data", "model_server_replicas=3"),
        "model_server_replicas = 3, but the cluster has 2 node(s)",
    )
    assert run(groups, "--data", "model_server_replicas=2").returncode == 0
    refused(
        run({"nodes": {"n1": node("n1")}}, "--data", "model_server_replicas=2"),
        "model_server_replicas = 2, but the cluster has 1 node(s)",
    )


def test_a_single_node_moved_into_the_controllers_group_is_refused_naming_the_way_out(tmp_path):
    bundle = llama3_shaped_bundle(tmp_path)
    flags = k0s.install_flags(["metrics-server"], [], cluster.SINGLE)
    unit = f"[Service]\nExecStart={k0s.BINARY} controller {shlex.join(flags)}\n"
    r = run(
        {"controllers": {"n1": node("n1", unit=unit, k0s_node_address="10.77.0.1")}},
        "--data",
        f"bundle_dir={bundle}",
        "--data",
        f"bundle_sha256={trust.digest(bundle)}",
    )
    refused(
        r,
        "@fake/n1: k0s was installed here as a single node (--single: kine storage, takes no "
        "other node), and the inventory now puts it in the controllers group (controller)",
        "`pyinfra INVENTORY deploys/teardown.py --limit @fake/n1` (models are kept)",
    )


def test_a_node_address_the_node_does_not_have_is_refused_before_any_change():
    c1 = node("c1", k0s_node_address="10.77.0.1")
    c1["responses"]["ip -o addr show"] = (
        "2: eth0    inet 10.0.0.5/24 brd 10.0.0.255 scope global eth0"
    )
    w1 = node("w1", REACHED, k0s_node_address="10.77.0.2")
    w1["responses"]["ip -o addr show"] = "2: eth0    inet 10.77.0.2/24 scope global eth0"
    r = run({"controllers": {"c1": c1}, "workers": {"w1": w1}})
    refused(
        r,
        "k0s_node_address = '10.77.0.1' is not an address of @fake/c1 (it has: 10.0.0.5)",
        "set k0s_node_address to the IP of @fake/c1 that the other nodes reach",
    )
    assert "not an address of @fake/w1" not in r.stderr  # its own address is its own


def test_a_worker_joined_to_a_rebuilt_controller_is_refused_naming_the_way_out():
    """The CA in the worker's kubelet.conf is not its controller's (rebuilt, or reset): the
    kubelet's credential is dead there, and k0s never joins again while kubelet.conf exists."""
    c1 = node("c1", k0s_node_address="10.77.0.1")
    c1["responses"]["pki/ca.crt"] = "b" * 64
    w1 = node("w1", REACHED)
    w1["responses"]["certificate-authority-data"] = "a" * 64
    refused(
        run({"controllers": {"c1": c1}, "workers": {"w1": w1}}),
        "@fake/w1 joined a cluster its controller @fake/c1 no longer runs: @fake/c1 runs "
        "another cluster",
        "`pyinfra INVENTORY deploys/teardown.py --limit @fake/w1` (models are kept)",
    )
    # the same CA on both: joined to this controller, no problem of this kind
    w1["responses"]["certificate-authority-data"] = "b" * 64
    r = run({"controllers": {"c1": c1}, "workers": {"w1": w1}})
    assert r.returncode == 0, r.stderr[-3000:]
