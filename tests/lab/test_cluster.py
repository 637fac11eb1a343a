"""More than one node in the lab: lab VMs on an isolated network of their own (a QEMU socket
network between the guests, beside each guest's SSH port forward; still no egress), deployed
through inventories/lab_cluster.py (the first VM the controller, the others its workers).

Verified here: the guests reach one another on the cluster network and nothing else;
preflight checks the topology on the real guests (a worker's way to its controller's ports
6443 and 8132, read by files/reach.sh on the worker) before any change; a worker joins with a
token that is gone from both nodes afterwards; two replicas run one per node, each on its own
node's model store, and both answer through the one Service; a re-run changes nothing on any
node; a worker whose kubelet.conf holds another cluster's CA (its controller rebuilt) is
refused before any change; a third node added changes only it; draining a node moves nothing
else; removing the node of a replica (deploys/remove_node.py) starts that replica on the third
node, tears the node down and changes nothing else, and a re-run of either deploy changes
nothing. The cluster itself is the k0s stand-in's (tests/doubles/README.md)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import threading
import time

import pytest

from airnode import lab
from airnode.bundle import trust
from airnode.paths import ROOT
from tests.conftest import TIMINGS
from tests.ggufs import tiny_llama
from tests.lab.conftest import PYINFRA
from tests.oci import busybox_layout
from tests.registry import Registry
from tests.upstream import make_runtime_bundle

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    home = tmp_path_factory.mktemp("cluster")
    name = f"t{os.getpid()}{home.name}"  # its own multicast port: no other test run's guests
    lab.ensure_image()
    vms: dict[int, lab.Instance] = {}
    errors = []

    def boot(i: int) -> None:
        try:
            vms[i] = lab.start(str(home / f"vm{i}"), net=lab.ClusterNet(name, i))
        except Exception as e:  # reported below
            errors.append(e)

    try:
        started = time.monotonic()
        threads = [threading.Thread(target=boot, args=(i,)) for i in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        TIMINGS.append(("lab cluster: two VMs booted to SSH", time.monotonic() - started))
        if errors:
            raise errors[0]
        yield {"home": home, "name": name, "vms": [vms[1], vms[2]], "boot": boot, "all": vms}
    finally:
        for vm in vms.values():
            vm.stop()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    work = tmp_path_factory.mktemp("cluster-bundle")
    with Registry(work / "registry") as reg:
        ref = reg.push_layout(busybox_layout(work / "layout", tag="1"), "1", "airnode/busybox:1")
        make_runtime_bundle(
            work / "bundle",
            ref,
            reg.host,
            models={"tiny:1": tiny_llama(work / "m.gguf").read_bytes()},
        )
    return work / "bundle"


def deploy(
    cluster, *extra: str, label: str = "", file: str = "deploys/node.py"
) -> subprocess.CompletedProcess:
    env = dict(
        os.environ, AIRNODE_LAB_HOME=str(cluster["home"]), AIRNODE_LAB_CLUSTER=cluster["name"]
    )
    started = time.monotonic()
    r = subprocess.run(
        [
            PYINFRA,
            "-y",
            *extra,
            str(ROOT / "inventories/lab_cluster.py"),
            str(ROOT / file),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=1800,
    )
    if label:
        TIMINGS.append((label, time.monotonic() - started))
    return r


SETTINGS = ("--data", "preflight_reserved_mb=256", "--data", "model_server_replicas=2")


def deploy_bundle(cluster, bundle, *extra: str, label: str = "") -> dict:
    """A deploy with --json: {host: [names of the operations that changed it]}."""
    r = deploy(
        cluster,
        "--json",
        "--data",
        f"bundle_dir={bundle}",
        "--data",
        f"bundle_sha256={trust.digest(bundle)}",
        *SETTINGS,
        *extra,
        label=label,
    )
    return {"changed": changes(r), "stderr": r.stderr}


def changes(r: subprocess.CompletedProcess) -> dict[str, list[str]]:
    """What a run with --json changed: {host: [names of the operations that changed it]}."""
    assert r.returncode == 0, r.stderr[-5000:]
    changed: dict[str, list[str]] = {}
    for op in json.loads(r.stdout)["results"]["operations"]:
        for h in op["success"]:
            changed.setdefault(h, []).append(op["name"])
    return changed


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
    # the controller's address: one of its own (preflight refuses any other) that the worker
    # has no route to
    one.ssh("ip addr add 10.77.1.1/32 dev lo")
    try:
        r = deploy(cluster, "--data", "k0s_node_address=10.77.1.1")
    finally:
        one.ssh("ip addr del 10.77.1.1/32 dev lo")
    assert r.returncode != 0
    text = " ".join(r.stderr.split())
    assert "airnode-lab-2 cannot reach its controller airnode-lab-1 at 10.77.1.1:6443" in text
    # the same setting on the worker names an address the worker does not have
    assert "k0s_node_address = '10.77.1.1' is not an address of airnode-lab-2" in text
    assert "not an address of airnode-lab-1" not in text
    assert "Beginning operation run" not in r.stderr
    for vm in (one, two):
        assert vm.ssh("ls /var/lib/airnode 2>/dev/null; true").stdout.strip() == ""


def double_cluster(vm: lab.Instance) -> dict:
    return json.loads(vm.ssh("cat /var/lib/k0s/double-cluster.json").stdout)


RUNS: dict = {}


def test_a_worker_joins_and_two_replicas_serve_one_per_node(cluster, bundle):
    one, two = cluster["vms"]
    run = deploy_bundle(cluster, bundle, label="cluster: deploy #1, controller + worker (fresh)")
    RUNS["first"] = run
    nodes = one.ssh("k0s kubectl get nodes").stdout
    assert "airnode-lab-1 Ready" in nodes and "airnode-lab-2 Ready" in nodes, nodes
    c = double_cluster(one)
    assert "node" not in c["scheduled"]["airnode/model-server-0"]
    assert c["scheduled"]["airnode/model-server-1"]["node"] == "airnode-lab-2"
    # each on its own node's store: the worker's pod bound the worker's local volume
    assert c["pods"]["airnode/model-server-1"]["sources"] == {"models": "/var/lib/airnode/models"}
    assert c["bound"]["airnode/models-model-server-1"] == "airnode-models-airnode-lab-2"
    unit = "k0s-double-pod-airnode-model-server-1.service"
    assert two.ssh(f"systemctl is-active {unit}").stdout.strip() == "active"
    assert "model-server-1" not in one.ssh("systemctl list-units 'k0s-double-pod-*'").stdout


def test_the_join_token_is_gone_from_both_nodes(cluster):
    one, two = cluster["vms"]
    assert two.ssh("ls -A /etc/k0s/join 2>/dev/null; true").stdout.strip() == ""
    assert double_cluster(one).get("tokens") == {}  # invalidated once the worker joined
    unit = two.ssh("cat /etc/systemd/system/k0sworker.service").stdout
    assert "k0s worker --token-file=/etc/k0s/join/worker-token" in unit
    # what the deploy printed holds no token: the join token's kubeconfig says "token: ID.SECRET"
    assert "token:" not in RUNS["first"]["stderr"]


# a request to the NodePort on the controller (no curl in the guest: bash's /dev/tcp)
GET_TAGS = (
    "exec 3<>/dev/tcp/127.0.0.1/31434; printf 'GET /api/tags HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3"
)


def ask_the_service(controller: lab.Instance, times: int = 4) -> None:
    for _ in range(times):
        assert '"models"' in controller.ssh(f"bash -c {shlex.quote(GET_TAGS)}").stdout


def served(vm: lab.Instance) -> int:
    """How many requests the replica on that node has served (its server logs each)."""
    return int(
        vm.ssh(
            "journalctl -o cat --no-pager -u 'k0s-double-pod-airnode-model-server-*' | "
            "grep -c '/api/tags' || true"
        ).stdout.strip()
        or 0
    )


def test_both_replicas_answer_through_the_one_service(cluster):
    one, two = cluster["vms"]
    ask_the_service(one)
    assert served(one) > 0 and served(two) > 0, (served(one), served(two))


def test_a_re_run_changes_nothing_on_any_node(cluster, bundle):
    run = deploy_bundle(cluster, bundle, label="cluster: deploy #2 (no-op)")
    assert run["changed"] == {}, run["changed"]


def test_a_join_token_left_by_a_cut_run_is_removed_and_nothing_else_changes(cluster, bundle):
    _, two = cluster["vms"]
    # what a run killed between writing the token and its cleanup leaves on a joined worker
    two.ssh("umask 077; mkdir -p /etc/k0s/join && echo left-behind > /etc/k0s/join/worker-token")
    run = deploy_bundle(cluster, bundle, label="cluster: a leftover join token removed")
    assert run["changed"] == {
        "airnode-lab-2": ["k0s | Remove the join token a cut run left (/etc/k0s/join/worker-token)"]
    }, run["changed"]
    assert two.ssh("ls -A /etc/k0s/join").stdout.strip() == ""


def test_a_worker_whose_controller_runs_another_cluster_is_refused_before_any_change(
    cluster, bundle
):
    one, two = cluster["vms"]
    conf = "/var/lib/k0s/kubelet.conf"
    # the controller's CA and the worker's copy agree after the join (the stand-in's token
    # carried the one, its kubelet.conf keeps the other, as upstream's do)
    assert "certificate-authority-data: " in two.ssh(f"cat {conf}").stdout
    # the worker as it would be had its controller been rebuilt: a CA of another cluster
    two.ssh(f"cp -p {conf} /root/kubelet.conf.keep")
    other = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCm90aGVyCi0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K"
    two.ssh(
        f"sed -i 's/certificate-authority-data: .*/certificate-authority-data: {other}/' {conf}"
    )
    try:
        r = deploy(
            cluster,
            "--data",
            f"bundle_dir={bundle}",
            "--data",
            f"bundle_sha256={trust.digest(bundle)}",
            *SETTINGS,
        )
    finally:
        two.ssh(f"mv /root/kubelet.conf.keep {conf}")
    assert r.returncode != 0
    text = " ".join(r.stderr.split())
    assert (
        "airnode-lab-2 joined a cluster its controller airnode-lab-1 no longer runs: "
        "airnode-lab-1 runs another cluster" in text
    ), r.stderr[-3000:]
    assert "deploys/teardown.py --limit airnode-lab-2` (models are kept)" in text
    assert "Beginning operation run" not in r.stderr


def pod_log(vm: lab.Instance) -> list[str]:
    return vm.ssh("cat /run/k0s-double/pods.log 2>/dev/null; true").stdout.splitlines()


def invocation(vm: lab.Instance, pod: str) -> str:
    unit = f"k0s-double-pod-airnode-{pod}.service"
    return vm.ssh(f"systemctl show -p InvocationID --value {unit}").stdout.strip()


def test_adding_a_third_node_changes_only_it(cluster, bundle):
    one, two = cluster["vms"]
    started = time.monotonic()
    cluster["boot"](3)
    TIMINGS.append(("lab cluster: third VM booted to SSH", time.monotonic() - started))
    three = cluster["all"][3]
    before = {vm.info["hostname"]: pod_log(vm) for vm in (one, two)}
    ids = (invocation(one, "model-server-0"), invocation(two, "model-server-1"))
    run = deploy_bundle(cluster, bundle, label="cluster: deploy, a third node added")
    assert set(run["changed"]) == {"airnode-lab-3"}, run["changed"]
    nodes = one.ssh("k0s kubectl get nodes").stdout
    assert "airnode-lab-3 Ready" in nodes, nodes
    # nothing else moved: no pod started anywhere, the two replicas the same processes
    assert {vm.info["hostname"]: pod_log(vm) for vm in (one, two)} == before
    assert (invocation(one, "model-server-0"), invocation(two, "model-server-1")) == ids
    assert "model-server" not in three.ssh("systemctl list-units 'k0s-double-pod-*'").stdout


def wait_unit(vm: lab.Instance, unit: str, active: bool, failure: str) -> None:
    """Until the unit is active (or no longer is), a minute at most: the worker's stand-in
    kubelet acts at its syncs, every 2 s."""
    for _ in range(30):
        state = vm.ssh(f"systemctl is-active {unit}", check=False).stdout.strip()
        if (state == "active") == active:
            return
        time.sleep(2)
    raise AssertionError(failure)


def test_draining_a_node_moves_nothing_else(cluster):
    one, two = cluster["vms"]
    first = invocation(one, "model-server-0")
    # the model server's pod has an emptyDir (/tmp): kubectl drain wants that said, and
    # refuses after it has cordoned the node (its pods keep running)
    running = invocation(two, "model-server-1")
    r = one.ssh("k0s kubectl drain airnode-lab-2 --ignore-daemonsets", check=False)
    assert r.returncode != 0 and "use --delete-emptydir-data to override" in r.stderr, r
    time.sleep(5)  # two of the worker's syncs: a cordon alone stops nothing
    assert running and invocation(two, "model-server-1") == running
    drain = "k0s kubectl drain airnode-lab-2 --ignore-daemonsets --delete-emptydir-data"
    out = one.ssh(drain).stdout
    assert "node/airnode-lab-2 already cordoned" in out and "node/airnode-lab-2 drained" in out
    assert "pod/model-server-1 evicted" in out
    c = double_cluster(one)
    # its replica stays with its volume (pinned to the drained node): Pending, not moved
    why = c["pending"]["airnode/model-server-1"]
    assert why.startswith("0/3 nodes are available: "), why
    assert "node(s) had volume node affinity conflict" in why  # airnode-lab-3 at least
    assert "1 node(s) were unschedulable" in why, why
    assert invocation(one, "model-server-0") == first  # the other replica never restarted
    unit = "k0s-double-pod-airnode-model-server-1"
    # the worker's kubelet stops it at its next sync
    wait_unit(two, unit, False, "the drained node still runs its replica")
    one.ssh("k0s kubectl uncordon airnode-lab-2")
    assert double_cluster(one)["scheduled"]["airnode/model-server-1"]["node"] == "airnode-lab-2"
    # back on its node at the worker's next sync: the next test starts there
    wait_unit(two, unit, True, "the uncordoned node did not start its replica again")


def remove_node(cluster, host: str, label: str) -> dict[str, list[str]]:
    """deploys/remove_node.py for ``host``: what it changed, per host."""
    r = deploy(
        cluster,
        "--json",
        "--data",
        f"remove_node={host}",
        *SETTINGS,
        file="deploys/remove_node.py",
        label=label,
    )
    return changes(r)


def test_removing_the_node_of_a_replica_moves_that_replica_and_nothing_else(cluster, bundle):
    one, two = cluster["vms"]
    three = cluster["all"][3]
    first = invocation(one, "model-server-0")
    changed = remove_node(cluster, "airnode-lab-2", "cluster: remove_node, the node of replica 1")
    assert set(changed) == {"airnode-lab-1", "airnode-lab-2"}, changed
    assert changed["airnode-lab-1"] == [
        "Take the node out of its cluster | Drain airnode-lab-2",
        "Take the node out of its cluster | Delete the claims on airnode-lab-2's model store "
        "(models-model-server-1)",
        "Take the node out of its cluster | Delete airnode-lab-2's model store volume (its data "
        "stays on airnode-lab-2)",
        "Take the node out of its cluster | Delete node airnode-lab-2",
        "Take the node out of its cluster | Wait for replica 1 on a node that stays",
    ], changed["airnode-lab-1"]
    # replica 1 runs on the third node now, on its store; replica 0 never restarted
    c = double_cluster(one)
    assert c["scheduled"]["airnode/model-server-1"]["node"] == "airnode-lab-3"
    assert c["bound"]["airnode/models-model-server-1"] == "airnode-models-airnode-lab-3"
    assert "airnode-lab-2" not in c.get("nodes", {})
    assert "PersistentVolume//airnode-models-airnode-lab-2" not in c["objects"]
    unit = "k0s-double-pod-airnode-model-server-1.service"
    assert three.ssh(f"systemctl is-active {unit}").stdout.strip() == "active"
    assert invocation(one, "model-server-0") == first
    assert "airnode-lab-2" not in one.ssh("k0s kubectl get nodes").stdout
    # the node left is torn down; its model store kept
    gone = two.ssh("ls /etc/systemd/system/k0sworker.service /usr/local/bin/k0s 2>&1; true")
    assert gone.stdout.count("No such file") == 2, gone.stdout
    assert two.ssh("ls /var/lib/airnode/models/blobs | wc -l").stdout.strip() != "0"
    # the removal run again: nothing left to do anywhere
    assert remove_node(cluster, "airnode-lab-2", "cluster: remove_node again (no-op)") == {}
    # out of the inventory (inventories/lab_cluster.py lists the running VMs): a re-run of the
    # node deploy changes nothing, and both replicas answer through the one Service
    two.stop()
    run = deploy_bundle(cluster, bundle, label="cluster: re-run, a node removed")
    assert run["changed"] == {}, run["changed"]
    before = served(one)
    ask_the_service(one)
    assert served(three) > 0 and served(one) > before, (served(one), served(three))
