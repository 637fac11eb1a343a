"""Will every pod fit? The CPU and memory requests of every pod the node will run, added up the
way the scheduler adds them, against the node's allocatable. Pure: imports nothing from pyinfra.

A single node runs: k0s's own system pods, kube-prometheus (its Deployments and DaemonSets, and
the StatefulSets prometheus-operator makes of the Prometheus and Alertmanager resources), the
model server and, when enabled, Open WebUI. A pod whose requests do not fit what is left stays
Pending ("0/1 nodes are available: 1 Insufficient cpu"), so a deploy would wait for a rollout
that never comes: preflight refuses that before any change, with a table of who asks for what.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import Decimal

MIB = 1024 * 1024

# Kubernetes resource.Quantity suffixes (k8s.io/apimachinery pkg/api/resource/suffix.go).
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE]?)$")

# --- k0s's own pods on a single node (k0s v1.34.1+k0s.0; the same at v1.36.3+k0s.2) -----
# k0sproject/k0s v1.34.1+k0s.0 pkg/component/controller/coredns.go: the coredns container
# requests cpu 100m, memory 70Mi; one replica per node up to two (a single node: one).
# pkg/component/controller/kuberouter.go: the kube-router container requests cpu 250m, memory
# 16Mi (DaemonSet). Provider calico: static/manifests/calico/DaemonSet/calico-node.yaml requests
# cpu 250m (no memory), calico-kube-controllers nothing. kube-proxy (pkg/component/controller/
# kubeproxy.go): no requests. With --single there is no konnectivity-agent (cmd/controller/
# controller.go); metrics-server is disabled by airnode.
K0S_SYSTEM_PODS = {
    "kuberouter": [
        ("kube-system/coredns", 100, 70 * MIB),
        ("kube-system/kube-router", 250, 16 * MIB),
    ],
    "calico": [("kube-system/coredns", 100, 70 * MIB), ("kube-system/calico-node", 250, 0)],
    "custom": [("kube-system/coredns", 100, 70 * MIB)],  # the CNI is the operator's own
}
# prometheus-operator (v0.92.0, as pinned by kube-prometheus v0.18.0) adds a config-reloader
# sidecar to every Prometheus and Alertmanager pod with its default requests
# (--config-reloader-cpu-request=10m, --config-reloader-memory-request=50Mi;
# prometheus-operator cmd/operator/main.go, pkg/operator/config.go), and an init container of
# the same size (which adds nothing: init containers count as a maximum, not a sum).
RELOADER_CPU_M, RELOADER_MEMORY = 10, 50 * MIB
# The kubelet's default hard eviction threshold memory.available<100Mi
# (kubernetes v1.34 pkg/kubelet/apis/config/v1beta1/defaults_linux.go DefaultEvictionHard):
# allocatable = capacity - reserved - eviction threshold. k0s sets no kubeReserved,
# systemReserved or evictionHard (k0s v1.34.1+k0s.0 pkg/component/controller/workerconfig/
# reconciler.go buildProfile), so cpu = capacity, memory = capacity - 100Mi.
EVICTION_HARD_MEMORY = 100 * MIB


class QuantityError(ValueError):
    pass


def _quantity(text) -> Decimal:
    s = str(text).strip()
    m = _QUANTITY.match(s)
    if not m:
        raise QuantityError(f"{text!r} is not a Kubernetes quantity")
    number, suffix = Decimal(m.group(1)), m.group(2)
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix[:1] in ("e", "E"):
        return number * Decimal(10) ** int(suffix[1:])
    return number * _DECIMAL[suffix]


def cpu_millis(text) -> int:
    """'500m' -> 500, '1' -> 1000, '0.25' -> 250 (rounded up, as the API server does)."""
    v = _quantity(text) * 1000
    return int(v.to_integral_value(rounding="ROUND_CEILING"))


def memory_bytes(text) -> int:
    """'512Mi' -> 536870912, '1G' -> 10**9."""
    v = _quantity(text)
    return int(v.to_integral_value(rounding="ROUND_CEILING"))


@dataclass(frozen=True)
class Pod:
    name: str  # namespace/workload
    cpu_m: int
    memory: int  # bytes
    replicas: int = 1


def _container_requests(c: dict) -> tuple[int, int]:
    req = (c.get("resources") or {}).get("requests") or {}
    # a limit with no request: the API server defaults the request to the limit
    lim = (c.get("resources") or {}).get("limits") or {}
    cpu = req.get("cpu", lim.get("cpu"))
    mem = req.get("memory", lim.get("memory"))
    return (cpu_millis(cpu) if cpu is not None else 0, memory_bytes(mem) if mem is not None else 0)


def pod_requests(spec: dict) -> tuple[int, int]:
    """A pod's effective requests, as the scheduler counts them (k8s.io/component-helpers
    v0.34 resource/helpers.go PodRequests): the sum over containers and restartable (sidecar)
    init containers, or the largest plain init container (plus the sidecars started before it)
    if that is more."""
    cpu = mem = 0
    for c in spec.get("containers") or []:
        a, b = _container_requests(c)
        cpu, mem = cpu + a, mem + b
    side_cpu = side_mem = init_cpu = init_mem = 0
    for c in spec.get("initContainers") or []:
        a, b = _container_requests(c)
        if c.get("restartPolicy") == "Always":
            side_cpu, side_mem = side_cpu + a, side_mem + b
            init_cpu, init_mem = max(init_cpu, side_cpu), max(init_mem, side_mem)
        else:
            init_cpu, init_mem = max(init_cpu, side_cpu + a), max(init_mem, side_mem + b)
    return max(cpu + side_cpu, init_cpu), max(mem + side_mem, init_mem)


def workload_pods(doc: dict) -> list[Pod]:
    """The pods one object makes on a single node (none for objects that make no pods)."""
    kind, md, spec = doc.get("kind"), doc.get("metadata") or {}, doc.get("spec") or {}
    name = f"{md.get('namespace', 'default')}/{md.get('name', '?')}"
    if kind in ("Deployment", "StatefulSet", "ReplicaSet", "DaemonSet"):
        replicas = 1 if kind == "DaemonSet" else int(spec.get("replicas", 1))
        cpu, mem = pod_requests((spec.get("template") or {}).get("spec") or {})
        return [Pod(name, cpu, mem, replicas)] if replicas else []
    if kind in ("Prometheus", "Alertmanager") and doc.get("apiVersion", "").startswith(
        "monitoring.coreos.com/"
    ):
        replicas = int(spec.get("replicas", 1)) * int(spec.get("shards", 1) or 1)
        cpu, mem = _container_requests({"resources": spec.get("resources") or {}})
        return (
            [Pod(name, cpu + RELOADER_CPU_M, mem + RELOADER_MEMORY, replicas)] if replicas else []
        )
    return []


def k0s_system_pods(network_provider: str) -> list[Pod]:
    return [Pod(n, c, m) for n, c, m in K0S_SYSTEM_PODS.get(network_provider, [])]


def node_pods(
    docs: list[dict], network_provider: str, model_server: str, *, worker: bool, nodes: int
) -> list[Pod]:
    """The pods the scheduler may put on one node. The controller's node (``worker`` false):
    k0s's own, every pod of ``docs`` (kube-prometheus, the model server, Open WebUI), with one
    replica of ``model_server`` ("NS/NAME") when the cluster has more than one node (they
    spread one per node: required anti-affinity). A worker: k0s's own (CoreDNS may be
    scheduled there too), the DaemonSets of ``docs`` (one pod on every node), and one replica
    of the model server (every node has a local volume for one: the scheduler may place any
    replica there); kube-prometheus's Deployments and StatefulSets are counted on the
    controller."""
    pods = k0s_system_pods(network_provider)
    for d in docs:
        if worker and d.get("kind") == "DaemonSet":
            pods += workload_pods(d)
        elif worker:
            pods += [replace(p, replicas=1) for p in workload_pods(d) if p.name == model_server]
        else:
            pods += [
                replace(p, replicas=1) if p.name == model_server and nodes > 1 else p
                for p in workload_pods(d)
            ]
    return pods


def allocatable(cpus: int, memory_bytes_total: int) -> tuple[int, int]:
    """A node's allocatable cpu (millicores) and memory (bytes) under k0s's kubelet."""
    return cpus * 1000, memory_bytes_total - EVICTION_HARD_MEMORY


@dataclass(frozen=True)
class Fit:
    pods: list[Pod]
    cpu_m: int  # allocatable
    memory: int

    @property
    def cpu_requested(self) -> int:
        return sum(p.cpu_m * p.replicas for p in self.pods)

    @property
    def memory_requested(self) -> int:
        return sum(p.memory * p.replicas for p in self.pods)

    @property
    def short(self) -> list[str]:
        out = []
        if self.cpu_requested > self.cpu_m:
            out.append("cpu")
        if self.memory_requested > self.memory:
            out.append("memory")
        return out

    @property
    def ok(self) -> bool:
        return not self.short


def fit(pods: list[Pod], cpus: int, memory_total: int) -> Fit:
    cpu, mem = allocatable(cpus, memory_total)
    return Fit(list(pods), cpu, mem)


def table(f: Fit, advice: dict[str, str] | None = None) -> str:
    """Who asks for what, the total against allocatable, and what to change."""
    rows = [("POD", "REPLICAS", "CPU", "MEMORY", "WHAT TO CHANGE")]
    advice = advice or {}
    for p in f.pods:
        rows.append(
            (
                p.name,
                str(p.replicas),
                f"{p.cpu_m * p.replicas}m",
                f"{p.memory * p.replicas // MIB}Mi",
                advice.get(p.name, ""),
            )
        )
    rows.append(
        ("total requested", "", f"{f.cpu_requested}m", f"{f.memory_requested // MIB}Mi", "")
    )
    rows.append(("node allocatable", "", f"{f.cpu_m}m", f"{f.memory // MIB}Mi", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows
    )
