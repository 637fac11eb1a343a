"""More than one node in the lab: lab VMs on an isolated network of their own (a QEMU socket
network between the guests, beside each guest's SSH port forward; still no egress), deployed
through inventories/lab_cluster.py (the first VM the controller, the others its workers).

Verified here: the guests reach one another on the cluster network and nothing else, and
preflight checks the topology on the real guests (a worker's way to its controller's ports
6443 and 8132, read by files/reach.sh on the worker) before any change. Not yet here: the join
and the replicas (the k0s stand-in's toy cluster is one node; see tests/doubles/README.md)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from airnode import lab
from airnode.paths import ROOT
from tests.conftest import TIMINGS
from tests.lab.conftest import PYINFRA

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    home = tmp_path_factory.mktemp("cluster")
    name = f"t{os.getpid()}{home.name}"  # its own multicast port: no other test run's guests
    lab.ensure_image()
    vms = []
    try:
        for i in (1, 2):
            started = time.monotonic()
            vms.append(lab.start(str(home / f"vm{i}"), net=lab.ClusterNet(name, i)))
            TIMINGS.append((f"lab cluster VM {i} boot to SSH", time.monotonic() - started))
        yield {"home": home, "name": name, "vms": vms}
    finally:
        for vm in vms:
            vm.stop()


def deploy(cluster, *extra: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ, AIRNODE_LAB_HOME=str(cluster["home"]), AIRNODE_LAB_CLUSTER=cluster["name"]
    )
    return subprocess.run(
        [
            PYINFRA,
            "-y",
            *extra,
            str(ROOT / "inventories/lab_cluster.py"),
            str(ROOT / "deploys/node.py"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=900,
    )


def test_the_guests_reach_one_another_on_their_own_network_and_nothing_else(cluster):
    one, two = cluster["vms"]
    assert one.ssh("uname -n").stdout.strip() == "airnode-lab-1"
    assert two.ssh("uname -n").stdout.strip() == "airnode-lab-2"
    assert "inet 10.77.0.2/24" in two.ssh("ip -4 addr show").stdout
    reach = (ROOT / "files/reach.sh").read_text()
    # sshd listens on every address: the other guest's port 22 answers over the cluster NIC
    out = two.ssh(f"sh -s 10.77.0.1 5 22 6443 <<'EOF'\n{reach}EOF").stdout
    assert out.splitlines() == ["22 open", "6443 refused"]
    # and the cluster network leads nowhere else
    out = two.ssh(f"sh -s 10.77.0.99 3 22 <<'EOF'\n{reach}EOF").stdout
    assert out.startswith("22 unreachable: "), out


def test_preflight_passes_a_worker_that_reaches_its_controller(cluster):
    r = deploy(cluster, "--dry")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "nothing was changed" not in r.stderr


def test_a_worker_that_cannot_reach_its_controller_is_refused_before_any_change(cluster):
    one, two = cluster["vms"]
    one.ssh("touch /run/airnode-test.marker")
    # every node told the controller is at an address nobody has
    r = deploy(cluster, "--data", "k0s_node_address=10.77.0.99")
    assert r.returncode != 0
    text = " ".join(r.stderr.split())
    assert "airnode-lab-2 cannot reach its controller airnode-lab-1 at 10.77.0.99:6443" in text
    assert "Beginning operation run" not in r.stderr
    for vm in (one, two):
        assert vm.ssh("ls /var/lib/airnode 2>/dev/null; true").stdout.strip() == ""
