"""What the scheduler adds up, counted by preflight (airnode.scheduling) and by the k0s stand-in's
scheduler (tests/doubles/k0s, written apart from it after kube-scheduler): both over the real
kube-prometheus v0.18.0 manifests, and both must agree."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import types
from pathlib import Path

import pytest

from airnode import monitoring, scheduling
from airnode.render import render
from airnode.steps.monitoring import dashboards
from tests.upstream import kube_prometheus_tarball

MIB = scheduling.MIB
GIB = 1024 * MIB
DOUBLE = Path(__file__).resolve().parents[1] / "doubles" / "k0s"


def load_double() -> types.ModuleType:
    loader = importlib.machinery.SourceFileLoader("k0s_double", str(DOUBLE))
    spec = importlib.util.spec_from_loader("k0s_double", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    path = tmp_path_factory.mktemp("kp") / "kp.tar.gz"
    path.write_bytes(kube_prometheus_tarball())
    return path


def kp_docs(tarball, high_availability: bool) -> list[dict]:
    docs = monitoring.render(tarball, dashboards("airnode"), high_availability).documents()
    return [i for d in docs for i in (d["items"] if d["kind"].endswith("List") else [d])]


def model_server(cpu: str = "1", memory: str = "512Mi") -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "model-server", "namespace": "airnode"},
        "spec": {
            "replicas": 1,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "ollama",
                            "resources": {"requests": {"cpu": cpu, "memory": memory}},
                        }
                    ]
                }
            },
        },
    }


@pytest.mark.parametrize(
    "text,millis",
    [("500m", 500), ("1", 1000), ("0.25", 250), ("100n", 1), ("2", 2000), ("1e-1", 100)],
)
def test_cpu_quantities(text, millis):
    assert scheduling.cpu_millis(text) == millis


@pytest.mark.parametrize(
    "text,size",
    [
        ("512Mi", 512 * MIB),
        ("1G", 10**9),
        ("1Gi", GIB),
        ("70Mi", 70 * MIB),
        ("1e3", 1000),
        ("128974848", 128974848),
    ],
)
def test_memory_quantities(text, size):
    assert scheduling.memory_bytes(text) == size


def test_a_bad_quantity_is_named():
    with pytest.raises(scheduling.QuantityError, match="'lots'"):
        scheduling.cpu_millis("lots")


def test_init_containers_count_as_a_maximum_sidecars_add_up():
    def c(cpu, mem, **kw):
        return {"resources": {"requests": {"cpu": cpu, "memory": mem}}, **kw}

    spec = {
        "containers": [c("100m", "100Mi"), c("50m", "50Mi")],
        "initContainers": [c("500m", "10Mi")],
    }
    assert scheduling.pod_requests(spec) == (500, 150 * MIB)
    spec["initContainers"].insert(0, c("10m", "20Mi", restartPolicy="Always"))
    # the sidecar runs beside both the init container after it and the main containers
    assert scheduling.pod_requests(spec) == (510, 170 * MIB)
    # a limit without a request: the API server makes the request the limit
    assert scheduling.pod_requests({"containers": [{"resources": {"limits": {"cpu": "1"}}}]}) == (
        1000,
        0,
    )


def test_upstreams_high_availability_does_not_fit_two_cpus_one_replica_each_does(tarball):
    system = scheduling.k0s_system_pods("kuberouter")
    ha = system + [
        p for d in kp_docs(tarball, True) + [model_server()] for p in scheduling.workload_pods(d)
    ]
    one = system + [
        p for d in kp_docs(tarball, False) + [model_server()] for p in scheduling.workload_pods(d)
    ]
    # the figures the issue measured: 608m of containers, 5 config-reloaders, k0s's 350m
    f = scheduling.fit(ha, 2, 4 * GIB)
    assert (f.cpu_requested, f.ok, f.short) == (608 + 50 + 350 + 1000, False, ["cpu"])
    assert f.memory_requested == (2170 + 250 + 86 + 512) * MIB
    g = scheduling.fit(one, 2, 4 * GIB)
    assert g.ok and g.cpu_requested == 1868 and g.memory_requested == (1490 + 86 + 512) * MIB
    assert "node allocatable" in scheduling.table(f) and "2000m" in scheduling.table(f)
    # and on a 2 GiB node the memory is short too
    assert scheduling.fit(one, 2, 2 * GIB).short == ["memory"]


def test_the_stand_ins_scheduler_agrees_and_leaves_the_last_pod_pending(tarball, monkeypatch):
    k0s = load_double()
    docs = kp_docs(tarball, True) + [model_server()]
    c = {"objects": {}, "order": [], "network_provider": "kuberouter"}
    for d in docs:
        k = k0s.key(d)
        c["objects"][k] = d
        c["order"].append(k)
    ours = [p for d in docs for p in scheduling.workload_pods(d)]
    ours += scheduling.k0s_system_pods("kuberouter")
    theirs = k0s.wanted_pods(c)
    assert sum(w["cpu"] for w in theirs) == sum(p.cpu_m * p.replicas for p in ours)
    assert sum(w["mem"] for w in theirs) == sum(p.memory * p.replicas for p in ours)

    monkeypatch.setattr(k0s, "allocatable", lambda: (2000, 4 * GIB - 100 * MIB))
    k0s.schedule(c)
    assert list(c["pending"]) == ["airnode/model-server-0"]
    assert "1 Insufficient cpu" in c["pending"]["airnode/model-server-0"]
    # one replica of each: everything is bound, the model server too
    c = {"objects": {}, "order": [], "network_provider": "kuberouter"}
    for d in kp_docs(tarball, False) + [model_server()]:
        c["objects"][k0s.key(d)] = d
        c["order"].append(k0s.key(d))
    k0s.schedule(c)
    assert c["pending"] == {} and "airnode/model-server-0" in c["scheduled"]
    # a StatefulSet's new template replaces its pod (deleted first): it still fits
    c["objects"]["StatefulSet/airnode/model-server"] = model_server(cpu="1100m")
    k0s.schedule(c)
    assert c["pending"] == {} and c["scheduled"]["airnode/model-server-0"]["cpu"] == 1100
    # a request beyond what is left stays Pending, and says so
    c["objects"]["StatefulSet/airnode/model-server"] = model_server(cpu="1500m")
    k0s.schedule(c)
    assert "airnode/model-server-0" in c["pending"]


def test_k0s_own_pods_are_counted_alike_for_every_network_provider():
    k0s = load_double()
    for provider in ("kuberouter", "calico", "custom"):
        ours = scheduling.k0s_system_pods(provider)
        assert ours, provider
        assert sorted((p.name.split("/")[1], p.cpu_m, p.memory) for p in ours) == sorted(
            k0s.SYSTEM_PODS[provider]
        ), provider


def test_a_rolling_deployment_needs_room_for_both_pods(monkeypatch):
    k0s = load_double()
    monkeypatch.setattr(k0s, "allocatable", lambda: (1000, GIB))
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "template": {"spec": {"containers": [{"resources": {"requests": {"cpu": "400m"}}}]}}
        },
    }
    c = {"objects": {"Deployment/default/web": dep}, "order": [], "network_provider": "custom"}
    k0s.schedule(c)  # coredns 100m + web 400m
    assert c["pending"] == {}
    dep["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "500m"
    k0s.schedule(c)  # 100 + 400 (old) + 500 (new) = 1000: fits, then the old one goes
    assert c["pending"] == {} and sum(b["cpu"] for b in c["scheduled"].values()) == 600
    dep["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "600m"
    k0s.schedule(c)  # 100 + 500 + 600 > 1000: the new pod waits, the old one keeps running
    assert len(c["pending"]) == 1 and sum(b["cpu"] for b in c["scheduled"].values()) == 600
    dep["spec"]["strategy"] = {"type": "Recreate"}
    k0s.schedule(c)  # Recreate deletes first
    assert c["pending"] == {} and sum(b["cpu"] for b in c["scheduled"].values()) == 700


def test_the_stand_in_validates_k0s_yaml_as_strictly_as_k0s(tmp_path):
    k0s = load_double()
    good = tmp_path / "k0s.yaml"
    good.write_text(
        render(
            "k0s.yaml.j2",
            network_provider="kuberouter",
            pull_policy="Never",
            node_ports_on_lan=False,
        )
    )
    assert k0s.validate_config(str(good)) == []
    cases = {
        "spec:\n  networking: {}\n": 'unknown field "networking"',
        "spec:\n  network:\n    provider: flannel\n": 'provider: Unsupported value: "flannel"',
        "spec:\n  images:\n    default_pull_policy: never\n": "default_pull_policy: Unsupported",
        "spec:\n  telemetry:\n    enable: false\n": 'unknown field "enable"',
        "spec:\n  workerProfiles:\n  - name: Default\n    values: {}\n": "RFC 1123 label",
        "spec:\n  workerProfiles:\n  - name: a\n    values: {clusterDNS: [x]}\n": "Forbidden",
    }
    head = "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nmetadata: {name: k0s}\n"
    for body, message in cases.items():
        bad = tmp_path / "bad.yaml"
        bad.write_text(head + body)
        assert any(message in e for e in k0s.validate_config(str(bad))), (body, message)


def test_a_worker_counts_the_daemonsets_and_one_replica_the_controller_the_rest(tarball):
    docs = kp_docs(tarball, False) + [dict(model_server(), spec={**model_server()["spec"]})]
    docs[-1]["spec"]["replicas"] = 2
    worker = scheduling.node_pods(docs, "kuberouter", "airnode/model-server", worker=True, nodes=1)
    names = {p.name: p.replicas for p in worker}
    # kube-prometheus's only DaemonSet (node-exporter), k0s's own, one model server replica
    assert names == {
        "kube-system/coredns": 1,
        "kube-system/kube-router": 1,
        "monitoring/node-exporter": 1,
        "airnode/model-server": 1,
    }
    controller = scheduling.node_pods(
        docs, "kuberouter", "airnode/model-server", worker=False, nodes=2
    )
    assert {p.name: p.replicas for p in controller}["airnode/model-server"] == 1
    assert "monitoring/k8s" in {p.name for p in controller}  # the Prometheus
    single = scheduling.node_pods(docs, "kuberouter", "airnode/model-server", worker=False, nodes=1)
    assert {p.name: p.replicas for p in single}["airnode/model-server"] == 2
    # a worker too small for its replica is refused like the controller: 1 CPU, 1 GiB
    f = scheduling.fit(worker, 1, GIB)
    assert f.cpu_requested == 100 + 250 + 112 + 1000 and f.short == ["cpu"]
