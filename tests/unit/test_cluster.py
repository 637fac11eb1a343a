"""More than one node (airnode/cluster.py, the k0s flags and plan of each role, the model
server's replicas): case by case."""

from __future__ import annotations

import base64
import gzip
import shlex

import pytest

from airnode import cluster, k0s
from airnode.serving import manifests
from tests.unit.test_manifests import by_kind, docs


def members(**groups: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for group, hosts in groups.items():
        for h in hosts:
            out.setdefault(h, []).append(group)
    return out


@pytest.mark.parametrize(
    "groups, role",
    [
        ([], cluster.SINGLE),
        (["lab_vm"], cluster.SINGLE),
        (["controllers"], cluster.CONTROLLER),
        (["workers", "gpu"], cluster.WORKER),
    ],
)
def test_a_hosts_role_comes_from_its_groups(groups, role):
    assert cluster.role(groups) == role


def test_one_controller_and_its_workers_make_a_cluster():
    shape, problems = cluster.shape(members(controllers=["c"], workers=["w1", "w2"], nodes=["x"]))
    assert problems == []
    assert shape == cluster.Shape("c", ("w1", "w2"))
    assert shape.nodes == ("c", "w1", "w2")
    # a controller alone is a cluster that can grow; no groups at all: single nodes
    assert cluster.shape(members(controllers=["c"])) == (cluster.Shape("c", ()), [])
    assert cluster.shape(members(nodes=["a", "b"])) == (cluster.Shape(None, ()), [])


def test_a_broken_shape_is_named_host_by_host():
    _, problems = cluster.shape(members(workers=["w1", "w2"]))
    assert problems == [
        "the workers group (w1, w2) has no controller to join: put one host in a controllers group"
    ]
    _, problems = cluster.shape(members(controllers=["c1", "c2"], workers=["w"]))
    assert problems == [
        "the controllers group has 2 hosts (c1, c2): airnode installs exactly one controller "
        "(more need an etcd quorum of three and a load balancer in front of the API, not built)"
    ]
    shape, problems = cluster.shape(members(controllers=["c"], workers=["c", "w"]))
    assert shape.workers == ("w",)
    assert problems and problems[0].startswith(
        "c is in both the controllers and the workers group: a node is one or the other"
    )


@pytest.mark.parametrize(
    "value, problem",
    [
        ("10.77.0.1", None),
        ("fd00::1", None),
        ("node1.lan", "not an IP address (k0s takes an IP, not a name)"),
        ("0.0.0.0", "the any-address"),
        ("::", "the any-address"),
        ("127.0.0.1", "a loopback address"),
    ],
)
def test_a_node_address_is_an_ip_other_nodes_can_reach(value, problem):
    got = cluster.address_problem("k0s_node_address", value)
    if problem is None:
        assert got is None
    else:
        assert got is not None and got.startswith(f"k0s_node_address = {value!r}: {problem}")


def test_the_controllers_address_is_the_setting_then_the_inventorys_ip():
    assert cluster.controller_address("10.77.0.1", "192.168.1.5") == "10.77.0.1"
    assert cluster.controller_address("", "192.168.1.5") == "192.168.1.5"
    # the lab reaches its VMs on 127.0.0.1 (an SSH port forward): not an address for workers
    assert cluster.controller_address("", "127.0.0.1") is None
    assert cluster.controller_address("", "node1.example.internal") is None


def unit(kind: str, flags: list[str]) -> str:
    # as `k0s install` writes it: the flags as --flag=value (cmd/install/util.go cmdFlagsToArgs)
    return f"[Service]\nExecStart=/usr/local/bin/k0s {kind} {shlex.join(flags)}\nRestart=always\n"


def test_what_k0s_was_installed_as_is_read_from_its_unit():
    single = k0s.install_flags(["metrics-server"], [], cluster.SINGLE)
    ctrl = k0s.install_flags(["metrics-server"], [], cluster.CONTROLLER)
    work = k0s.install_flags([], [], cluster.WORKER)
    assert cluster.installed_role(unit("controller", single), "") == cluster.SINGLE
    assert cluster.installed_role(unit("controller", ["--single=true"]), "") == cluster.SINGLE
    assert cluster.installed_role(unit("controller", ctrl), "") == cluster.CONTROLLER
    assert cluster.installed_role("", unit("worker", work)) == cluster.WORKER
    assert cluster.installed_role("", "") == ""


def test_switching_an_installed_node_is_refused_naming_the_way_out():
    assert cluster.switch_problem("n1", "", cluster.CONTROLLER) is None
    assert cluster.switch_problem("n1", cluster.SINGLE, cluster.SINGLE) is None
    p = cluster.switch_problem("n1", cluster.SINGLE, cluster.CONTROLLER)
    assert p is not None
    assert p.startswith(
        "n1: k0s was installed here as a single node (--single: kine storage, takes no other "
        "node), and the inventory now puts it in the controllers group (controller)"
    )
    assert "`pyinfra INVENTORY deploys/teardown.py --limit n1` (models are kept)" in p
    assert p.endswith("or put n1 back in neither the controllers nor the workers group")
    p = cluster.switch_problem("w1", cluster.WORKER, cluster.SINGLE)
    assert p is not None and "installed here as a worker of another controller" in p


def join_token(kubeconfig: str) -> str:
    # k0s's encoding: gzip (best compression) then standard base64 (pkg/token/joinencode.go)
    return base64.b64encode(gzip.compress(kubeconfig.encode(), 9)).decode()


KUBECONFIG = """apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTi==
    server: https://10.77.0.1:6443
  name: k0s
contexts:
- context:
    cluster: k0s
    user: kubelet-bootstrap
  name: k0s
current-context: k0s
kind: Config
users:
- name: kubelet-bootstrap
  user:
    token: a1b2c3.0123456789abcdef
"""


def test_the_join_tokens_id_is_what_invalidate_takes():
    assert cluster.token_id(join_token(KUBECONFIG)) == "a1b2c3"
    assert cluster.token_id(join_token(KUBECONFIG) + "\n") == "a1b2c3"
    for bad in ("", "not base64!", base64.b64encode(b"plain").decode()):
        with pytest.raises(ValueError, match="not a k0s join token"):
            cluster.token_id(bad)
    with pytest.raises(ValueError, match="no bootstrap token"):
        cluster.token_id(join_token(KUBECONFIG.replace("a1b2c3.", "")))


def test_a_worker_reaches_its_controller_or_is_told_what_to_open():
    ok = ["6443 refused", "8132 open"]
    assert cluster.reach_problems("w1", "c", "10.77.0.1", ok) == []
    problems = cluster.reach_problems(
        "w1", "c", "10.77.0.1", ["6443 unreachable: timed out after 3s", "8132 refused"]
    )
    assert problems == [
        "w1 cannot reach its controller c at 10.77.0.1:6443 (timed out after 3s): workers need "
        "TCP 6443 and 8132 to the controller (k0s docs/networking.md); check the firewall and "
        "k0s_node_address"
    ]
    assert len(cluster.reach_problems("w1", "c", "10.77.0.1", [])) == 2


def test_each_role_installs_with_its_own_flags():
    cfg, cri = f"--config={k0s.CONFIG}", f"--cri-socket={k0s.CRI_SOCKET}"
    assert k0s.install_flags(["metrics-server"], [], cluster.SINGLE) == [
        "--single",
        cfg,
        cri,
        "--disable-components=metrics-server",
    ]
    assert k0s.install_flags(["metrics-server"], [], cluster.CONTROLLER, "10.77.0.1") == [
        "--enable-worker",
        "--no-taints",
        cfg,
        cri,
        "--disable-components=metrics-server",
        "--kubelet-extra-args=--node-ip=10.77.0.1",
    ]
    assert k0s.install_flags(["metrics-server"], ["--debug"], cluster.WORKER, "10.77.0.2") == [
        f"--token-file={cluster.TOKEN_FILE}",
        cri,
        "--kubelet-extra-args=--node-ip=10.77.0.2",
        "--debug",
    ]
    # the operator's own kubelet arguments and the node IP share the one flag k0s keeps (the
    # last --kubelet-extra-args given would otherwise drop the node IP)
    assert k0s.install_flags(
        [], ["--kubelet-extra-args", "--max-pods=50", "--debug"], cluster.WORKER, "10.77.0.2"
    )[-2:] == ["--kubelet-extra-args=--node-ip=10.77.0.2 --max-pods=50", "--debug"]
    mine = k0s.install_flags(
        [], ["--kubelet-extra-args=--node-ip=10.0.0.9"], cluster.WORKER, "10.77.0.2"
    )
    assert mine[-1] == "--kubelet-extra-args=--node-ip=10.0.0.9"
    assert sum(f.startswith("--kubelet-extra-args") for f in mine) == 1
    # without a node address, the operator's flag passes through untouched
    assert k0s.install_flags([], ["--kubelet-extra-args=--max-pods=50"], cluster.SINGLE)[-1] == (
        "--kubelet-extra-args=--max-pods=50"
    )
    assert k0s.unit(cluster.WORKER) == "k0sworker.service"
    assert k0s.unit(cluster.CONTROLLER) == k0s.unit(cluster.SINGLE) == "k0scontroller.service"
    # a single node that becomes a controller is not "flags changed: re-install": preflight
    # refuses the switch before (k0s keeps its storage)
    single = k0s.install_flags(["metrics-server"], [], cluster.SINGLE)
    assert k0s.needs_reinstall(single, {"Args": ["k0s", "controller", *single]}) is False


def test_a_worker_that_has_not_joined_joins_whatever_else_holds():
    flags = k0s.install_flags([], [], cluster.WORKER)
    installed = unit("worker", flags)
    running = {"Args": ["/usr/local/bin/k0s", "worker", *flags]}
    fresh = k0s.plan("a" * 64, "", flags, None, "", False, "w", "", joined=False)
    assert fresh.join and fresh.install == "install" and fresh.install_binary and fresh.wait
    # installed, but its kubelet never got a kubeconfig (the run was cut, the token expired)
    again = k0s.plan("a" * 64, "a" * 64, flags, running, installed, False, "w", "w", joined=False)
    assert again.join and again.install == "" and not again.install_binary
    joined = k0s.plan("a" * 64, "a" * 64, flags, running, installed, False, "w", "w")
    assert not joined.join and not joined.wait and not joined.restart


def test_replicas_spread_one_per_node_each_on_its_own_store(crds):
    import yaml

    ds = docs(replicas=2, node="c")
    # the controller's manifests hold its own volume; each worker applies its own
    pvs = [d for d in ds if d["kind"] == "PersistentVolume"]
    assert [pv["metadata"]["name"] for pv in pvs] == ["airnode-models-c"]
    worker = yaml.safe_load(manifests.store_volume_text("w1", "/srv/models", "80Gi"))
    assert worker["metadata"]["name"] == "airnode-models-w1"
    assert worker["spec"]["local"]["path"] == "/srv/models"
    assert worker["spec"]["capacity"]["storage"] == "80Gi"
    terms = worker["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == ["w1"]
    # the worker's volume is the controller's, but for its node
    assert {**pvs[0], "metadata": {}, "spec": {}} == {**worker, "metadata": {}, "spec": {}}
    sts = by_kind(ds, "StatefulSet")
    assert sts["spec"]["replicas"] == 2
    anti = sts["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert anti["requiredDuringSchedulingIgnoredDuringExecution"] == [
        {
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "model-server"}},
            "topologyKey": "kubernetes.io/hostname",
        }
    ]
    assert manifests.validate([*ds, worker], crds) == []
    # one replica: no affinity at all (a single node's manifests stay as they were)
    assert "affinity" not in by_kind(docs(), "StatefulSet")["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def crds():
    from tests.upstream import KP_FIXTURE

    return manifests.crd_schemas(KP_FIXTURE / "manifests" / "setup")


IP_ADDR = """1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
1: lo    inet6 ::1/128 scope host noprefixroute \\       valid_lft forever preferred_lft forever
2: eth0    inet 10.0.2.15/24 brd 10.0.2.255 scope global dynamic eth0\\       valid_lft 86000sec
3: eth1    inet 10.77.0.2/24 brd 10.77.0.255 scope global eth1\\       valid_lft forever
3: eth1    inet6 fe80::5054:ff:fe12:3402/64 scope link \\       valid_lft forever
"""


def test_a_node_address_must_be_one_of_the_nodes_own():
    assert cluster.local_addresses(IP_ADDR) == {
        "127.0.0.1",
        "::1",
        "10.0.2.15",
        "10.77.0.2",
        "fe80::5054:ff:fe12:3402",
    }
    assert cluster.not_local_problem("w1", "10.77.0.2", True, IP_ADDR) is None
    given = cluster.not_local_problem("w1", "10.77.0.9", True, IP_ADDR)
    assert given == (
        "k0s_node_address = '10.77.0.9' is not an address of w1 (it has: 10.0.2.15, "
        "10.77.0.2, fe80::5054:ff:fe12:3402): k0s's API and the kubelet bind and advertise "
        "this address; set k0s_node_address to the IP of w1 that the other nodes reach"
    )
    # a controller behind NAT: its inventory address is not on the host
    nat = cluster.not_local_problem("c1", "203.0.113.7", False, IP_ADDR)
    assert nat is not None and nat.startswith(
        "203.0.113.7 (its inventory address, used as its node address: k0s_node_address is "
        "empty) is not an address of c1"
    )
    # `ip` missing or silent: nothing to say (k0s will)
    assert cluster.not_local_problem("w1", "10.77.0.9", True, "") is None


def test_a_worker_whose_controller_runs_another_cluster_or_none_is_named():
    assert cluster.stale_join_problem("w1", "c1", "", "b" * 64) is None  # not joined yet
    assert cluster.stale_join_problem("w1", "c1", "", "") is None
    assert cluster.stale_join_problem("w1", "c1", "a" * 64, "a" * 64) is None
    other = cluster.stale_join_problem("w1", "c1", "a" * 64, "b" * 64)
    assert other and "c1 runs another cluster" in other and "--limit w1" in other
    none = cluster.stale_join_problem("w1", "c1", "a" * 64, "")
    assert none and "c1 has no cluster now" in none


def test_the_ca_reads_give_the_same_digest_for_the_same_ca(tmp_path):
    """The worker's read (base64 in kubelet.conf) and the controller's (ca.crt's bytes) agree
    on one CA and differ on another; no CA data in kubelet.conf reads as not joined."""
    import base64
    import hashlib
    import subprocess

    ca = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    conf = tmp_path / "kubelet.conf"
    conf.write_text(
        "apiVersion: v1\nclusters:\n- cluster:\n"
        f"    certificate-authority-data: {base64.b64encode(ca).decode()}\n"
        "    server: https://10.77.0.1:6443\n  name: default-cluster\n"
    )
    (tmp_path / "ca.crt").write_bytes(ca)

    def read(command: str) -> str:
        command = command.replace(cluster.KUBELET_CONF, str(conf))
        command = command.replace(cluster.CLUSTER_CA, str(tmp_path / "ca.crt"))
        return subprocess.run(["sh", "-c", command], capture_output=True, text=True).stdout.strip()

    assert read(cluster.KUBELET_CA_READ) == read(cluster.CLUSTER_CA_READ)
    assert read(cluster.CLUSTER_CA_READ) == hashlib.sha256(ca).hexdigest()
    (tmp_path / "ca.crt").write_bytes(ca.replace(b"MIIB", b"MIIC"))
    assert read(cluster.KUBELET_CA_READ) != read(cluster.CLUSTER_CA_READ)
    conf.write_text("apiVersion: v1\nclusters: []\n")
    assert read(cluster.KUBELET_CA_READ) == ""
    conf.unlink()
    assert read(cluster.KUBELET_CA_READ) == ""
