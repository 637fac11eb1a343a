"""More than one node: each host's role from the inventory's groups, the cluster's shape, what
k0s was installed as on a node, and the join token's id. Pure: no pyinfra.

A host in the ``controllers`` group is k0s's controller + worker with etcd (it can take
workers); one in ``workers`` joins that controller with a token; a host in neither is a single
node (``--single``: kine, never takes another node). k0s cannot change what a node is in place:
its storage and role are chosen at install time (k0sproject/k0s v1.36.3+k0s.2
cmd/token/create.go ensureTokenCreationAcceptable refuses tokens on a single node).
"""

from __future__ import annotations

import base64
import gzip
import ipaddress
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

CONTROLLERS = "controllers"
WORKERS = "workers"
SINGLE, CONTROLLER, WORKER = "single", "controller", "worker"
# What a worker must reach on its controller (k0sproject/k0s v1.36.3+k0s.2 docs/networking.md,
# "Required ports and protocols": kube-apiserver 6443, konnectivity 8132, worker -> controller).
CONTROLLER_PORTS = (6443, 8132)
# The join token on a worker between `k0s install worker --token-file` and its first start: k0s
# reads it only while /var/lib/k0s/kubelet.conf does not exist yet (pkg/component/worker/
# utils.go BootstrapKubeletClientConfig), so it is removed once the node has joined. Its
# directory is root's alone: the token never sits where another user can read it.
TOKEN_DIR = "/etc/k0s/join"
TOKEN_FILE = f"{TOKEN_DIR}/worker-token"
TOKEN_EXPIRY = "1h"
KUBELET_CONF = "/var/lib/k0s/kubelet.conf"
# The cluster's CA: the controller's ca.crt, which every join token carries as its kubeconfig's
# certificate-authority-data (k0sproject/k0s v1.36.3+k0s.2 pkg/token/kubeconfig.go loadCACert,
# GenerateKubeconfig), and which the kubelet's TLS bootstrap copies into the kubelet.conf it
# writes at the join (kubernetes v1.34 pkg/kubelet/certificate/bootstrap/bootstrap.go
# writeKubeconfigFromBootstrapping: CertificateAuthorityData from the bootstrap kubeconfig).
# A worker whose kubelet.conf holds another CA joined a cluster its controller no longer runs.
CLUSTER_CA = "/var/lib/k0s/pki/ca.crt"
CLUSTER_CA_READ = f"[ -e {CLUSTER_CA} ] && sha256sum < {CLUSTER_CA} | cut -c1-64 || true"
KUBELET_CA_READ = (
    f"ca=$(sed -n 's/^ *certificate-authority-data: *//p' {KUBELET_CONF} 2>/dev/null | "
    'head -n 1); [ -n "$ca" ] && printf %s "$ca" | base64 -d | sha256sum | cut -c1-64 || true'
)
# how the deploy reaches the other way out of a node's role: teardown keeps the model store
TEARDOWN = "pyinfra INVENTORY deploys/teardown.py --limit {host}"


def role(groups: Iterable[str]) -> str:
    """single, controller or worker, from the names of the groups a host is in."""
    g = set(groups)
    if CONTROLLERS in g:
        return CONTROLLER
    if WORKERS in g:
        return WORKER
    return SINGLE


@dataclass(frozen=True)
class Shape:
    """The cluster a run deploys: its controller (None: only single nodes) and its workers."""

    controller: str | None
    workers: tuple[str, ...]

    @property
    def nodes(self) -> tuple[str, ...]:
        return ((self.controller,) if self.controller else ()) + self.workers


def shape(members: Mapping[str, Iterable[str]]) -> tuple[Shape, list[str]]:
    """``members``: {host name: its groups}, every host of the inventory. Returns the cluster
    and what is wrong with it (each problem names the hosts and what is allowed)."""
    problems = []
    controllers = [h for h, g in members.items() if CONTROLLERS in set(g)]
    workers = [h for h, g in members.items() if WORKERS in set(g)]
    both = sorted(set(controllers) & set(workers))
    for h in both:
        problems.append(
            f"{h} is in both the {CONTROLLERS} and the {WORKERS} group: a node is one or the "
            "other (the controller runs workloads too: --enable-worker --no-taints)"
        )
    workers = [h for h in workers if h not in both]
    if len(controllers) > 1:
        problems.append(
            f"the {CONTROLLERS} group has {len(controllers)} hosts ({', '.join(controllers)}): "
            "airnode installs exactly one controller (more need an etcd quorum of three and a "
            "load balancer in front of the API, not built)"
        )
    if workers and not controllers:
        problems.append(
            f"the {WORKERS} group ({', '.join(workers)}) has no controller to join: put one "
            f"host in a {CONTROLLERS} group"
        )
    controller = controllers[0] if len(controllers) == 1 else None
    return Shape(controller, tuple(workers)), problems


def address_problem(key: str, value: str) -> str | None:
    """A node address k0s accepts as spec.api.address: an IP, not 0.0.0.0/:: (k0sproject/k0s
    v1.36.3+k0s.2 pkg/apis/k0s/v1beta1/api.go APISpec.Validate: "invalid IP address",
    "invalid INADDR_ANY")."""
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return f"{key} = {value!r}: not an IP address (k0s takes an IP, not a name)"
    if ip.is_unspecified:
        return f"{key} = {value!r}: the any-address; name the one address other nodes reach"
    if ip.is_loopback:
        return f"{key} = {value!r}: a loopback address, which other nodes cannot reach"
    return None


def local_addresses(ip_addr_output: str) -> set[str]:
    """The IP addresses of `ip -o addr show` (one line per address: `2: eth0 inet
    10.77.0.2/24 ...`)."""
    out = set()
    for line in ip_addr_output.splitlines():
        words = line.split()
        for i, w in enumerate(words[:-1]):
            if w in ("inet", "inet6"):
                out.add(words[i + 1].split("/", 1)[0])
    return out


def not_local_problem(host: str, address: str, given: bool, ip_addr_output: str) -> str | None:
    """A node address that is none of the node's own: k0s's API (a controller's
    spec.api.address) and the kubelet (--node-ip) bind or advertise it, and neither starts
    with an address the host does not have. ``given``: it came from k0s_node_address (else
    from the inventory). None when it is one of them, or when `ip` said nothing."""
    have = local_addresses(ip_addr_output)
    if not have:
        return None
    try:
        mine = {ipaddress.ip_address(a) for a in have}
        if ipaddress.ip_address(address) in mine:
            return None
    except ValueError:
        return None
    listed = ", ".join(sorted(a for a in have if not ipaddress.ip_address(a).is_loopback))
    what = (
        f"k0s_node_address = {address!r}"
        if given
        else f"{address} (its inventory address, used as its node address: "
        "k0s_node_address is empty)"
    )
    return (
        f"{what} is not an address of {host} (it has: {listed or 'none but loopback'}): "
        "k0s's API and the kubelet bind and advertise this address; set k0s_node_address "
        f"to the IP of {host} that the other nodes reach"
    )


def controller_address(node_address: str, inventory_address: str) -> str | None:
    """The address workers reach the controller on (its k0s.yaml spec.api.address, and so the
    server in every join token): ``k0s_node_address`` when set, else the inventory's address
    for the host when that is an IP other nodes can reach; None when neither says."""
    for candidate in (node_address, inventory_address):
        if candidate and address_problem("", candidate) is None:
            return candidate
    return None


def installed_role(controller_unit: str, worker_unit: str) -> str:
    """What k0s was installed as on a node, from its service units' ExecStart lines ("" when
    none): `k0s install controller --single` -> single, without it -> controller, `k0s install
    worker` -> worker (k0sproject/k0s v1.36.3+k0s.2 cmd/install: the unit runs `k0s
    controller|worker FLAGS`)."""
    for text, kind in ((controller_unit, CONTROLLER), (worker_unit, WORKER)):
        for line in (text or "").splitlines():
            if line.startswith("ExecStart="):
                args = shlex.split(line[len("ExecStart=") :])
                if kind == CONTROLLER and any(re.fullmatch(r"--single(=true)?", a) for a in args):
                    return SINGLE
                return kind
    return ""


def switch_problem(host: str, installed: str, wanted: str) -> str | None:
    """A node installed as one role that the inventory now gives another: k0s cannot change it
    in place. The way out: teardown (the model store is kept), then deploy again."""
    if not installed or installed == wanted:
        return None
    what = {
        SINGLE: "a single node (--single: kine storage, takes no other node)",
        CONTROLLER: "a controller (etcd, takes workers)",
        WORKER: "a worker of another controller",
    }
    where = {
        SINGLE: f"in neither the {CONTROLLERS} nor the {WORKERS} group",
        CONTROLLER: f"in the {CONTROLLERS} group",
        WORKER: f"in the {WORKERS} group",
    }
    return (
        f"{host}: k0s was installed here as {what[installed]}, and the inventory now puts it "
        f"{where[wanted]} ({wanted}): k0s cannot change a node's role or storage in place. "
        f"The way out: `{TEARDOWN.format(host=host)}` (models are kept), then deploy again; "
        f"or put {host} back {where[installed]}"
    )


def stale_join_problem(
    worker: str, controller: str, worker_ca: str, controller_ca: str
) -> str | None:
    """A joined worker (``worker_ca``: the sha256 of the CA in its kubelet.conf, "" when it has
    not joined) whose controller runs no cluster, or another one (``controller_ca``: its
    ca.crt's sha256, "" when none): the controller was rebuilt or reset, the worker's kubelet
    credential is no good there, and k0s never joins again while kubelet.conf exists."""
    if not worker_ca or worker_ca == controller_ca:
        return None
    now = (
        "has no cluster now (reset, or a new host)"
        if not controller_ca
        else "runs another cluster (its CA is not the one the worker joined: rebuilt or reset)"
    )
    return (
        f"{worker} joined a cluster its controller {controller} no longer runs: {controller} "
        f"{now}, so {worker}'s kubelet credential is no good there and it would never get "
        f"Ready. The way out: `{TEARDOWN.format(host=worker)}` (models are kept), then deploy "
        "again: it joins anew"
    )


def token_id(join_token: str) -> str:
    """The bootstrap token's id in a k0s join token (base64 of a gzipped kubeconfig whose
    user's token is ``<id>.<secret>``: k0sproject/k0s v1.36.3+k0s.2 pkg/token/joinencode.go,
    kubeconfig.go GenerateKubeconfig): what `k0s token invalidate` takes. Not secret."""
    try:
        text = gzip.decompress(base64.b64decode(join_token.strip(), validate=True)).decode()
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"not a k0s join token ({type(e).__name__})") from None
    m = re.search(r"^\s*token:\s*([a-z0-9]{6})\.[a-z0-9]{16}\s*$", text, re.M)
    if not m:
        raise ValueError("not a k0s join token (no bootstrap token in its kubeconfig)")
    return m.group(1)


def reach_problems(worker: str, controller: str, address: str, lines: list[str]) -> list[str]:
    """files/reach.sh's lines, run on a worker toward its controller: every port k0s needs must
    answer (open, or refused while k0s is not running there yet: the host answered)."""
    seen: dict[str, str] = {}
    for line in lines:
        port, _, state = line.partition(" ")
        seen[port] = state
    problems = []
    for number in CONTROLLER_PORTS:
        state = seen.get(str(number), "unreachable: not tried")
        if state not in ("open", "refused"):
            problems.append(
                f"{worker} cannot reach its controller {controller} at {address}:{number} "
                f"({state.removeprefix('unreachable: ')}): workers need TCP "
                f"{' and '.join(map(str, CONTROLLER_PORTS))} to the controller (k0s "
                "docs/networking.md); check the firewall and k0s_node_address"
            )
    return problems
