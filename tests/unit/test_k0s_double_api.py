"""The k0s stand-in's API server rules, checked on their own (the lab VM runs them for real):
immutable fields refused with the API server's messages, server-side apply keeping the binder's
fields, and PersistentVolume binding with claimRef as the PV controller does it — including the
`ollama` -> `model-server` migration airnode performs (delete the claim, remove the claimRef)."""

from __future__ import annotations

import copy

import pytest
import yaml

from tests.unit.test_scheduling import load_double

k0s = load_double()


def model_server_docs(**over) -> dict:
    values = dict(
        backend="ollama",
        image="docker.io/library/debian:bookworm-slim",
        server_version="v0.13.5",
        env={},
        ollama_dir="/opt/airnode/ollama/v0.13.5",
        node="airnode-lab",
        uid=999,
        gid=999,
        namespace="airnode",
        model_store="/var/lib/airnode/models",
        store_size="50Gi",
        node_port=31434,
        cpu_request="1",
        memory_request="512Mi",
        open_webui=None,
    )
    values.update(over)
    from airnode.serving import manifests

    text = manifests.model_server_text(**values)
    return {f"{d['kind']}": d for d in yaml.safe_load_all(text) if d}


def test_a_statefulset_may_change_its_template_not_its_claims():
    old = model_server_docs()["StatefulSet"]
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "other:1"
    new["spec"]["replicas"] = 1
    assert k0s.update_problem(old, new) is None
    bigger = model_server_docs(store_size="80Gi")["StatefulSet"]
    assert (
        "spec: Forbidden: updates to statefulset spec for fields other than 'replicas'"
        in k0s.update_problem(old, bigger)
    )
    # a default spelt out is no change (the API server stores the defaulted object)
    implicit = copy.deepcopy(old)
    implicit["spec"].pop("podManagementPolicy", None)
    explicit = copy.deepcopy(implicit)
    explicit["spec"]["podManagementPolicy"] = "OrderedReady"
    assert k0s.update_problem(implicit, explicit) is None
    parallel = copy.deepcopy(implicit)
    parallel["spec"]["podManagementPolicy"] = "Parallel"
    assert k0s.update_problem(implicit, parallel) is not None


def test_a_persistent_volumes_path_and_node_are_immutable():
    old = model_server_docs()["PersistentVolume"]
    moved = model_server_docs(model_store="/srv/models")["PersistentVolume"]
    assert "spec.persistentvolumesource is immutable after creation" in k0s.update_problem(
        old, moved
    )
    other_node = model_server_docs(node="elsewhere")["PersistentVolume"]
    assert "field is immutable" in k0s.update_problem(old, other_node)
    assert k0s.update_problem(old, copy.deepcopy(old)) is None


def test_a_deployments_selector_is_immutable():
    d = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "w"},
        "spec": {"selector": {"matchLabels": {"a": "1"}}},
    }
    e = copy.deepcopy(d)
    e["spec"]["selector"]["matchLabels"]["a"] = "2"
    assert 'Deployment.apps "w" is invalid: spec.selector' in k0s.update_problem(d, e)


def cluster_with(pv: dict) -> dict:
    pv = copy.deepcopy(pv)
    return {"objects": {k0s.key(pv): pv}, "order": []}


def claim(name: str, uid: str, size: str = "50Gi") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "airnode", "uid": uid},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "airnode-models",
            "resources": {"requests": {"storage": size}},
        },
    }


def test_binding_sets_the_claimref_and_a_released_volume_binds_nothing_until_it_is_removed():
    docs = model_server_docs()
    pv = docs["PersistentVolume"]
    sc_name = docs["StatefulSet"]["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"]
    c = cluster_with(pv)
    old = claim("models-ollama-0", "uid-old")
    old["spec"]["storageClassName"] = sc_name
    bound = k0s.bind(c, old)
    assert bound is not None and bound["spec"]["claimRef"]["uid"] == "uid-old"
    assert old["spec"]["volumeName"] == pv["metadata"]["name"]
    # too big a claim binds nothing
    big = claim("x", "uid-x", size="1Ti")
    big["spec"]["storageClassName"] = sc_name
    assert k0s.bind(cluster_with(pv), big) is None
    # airnode's apply of the PV again (no claimRef in it) keeps the binder's claimRef
    applied = k0s.kept_on_apply(bound, copy.deepcopy(pv))
    assert applied["spec"]["claimRef"]["uid"] == "uid-old"
    # the claim deleted: the volume is Released and a new claim cannot have it
    k0s.release(c, old)
    pv_now = next(iter(c["objects"].values()))
    assert pv_now["status"]["phase"] == "Released"
    new = claim("models-model-server-0", "uid-new")
    new["spec"]["storageClassName"] = sc_name
    assert k0s.bind(c, new) is None
    # ... until its claimRef is removed (airnode's migration patch)
    del pv_now["spec"]["claimRef"]
    assert k0s.bind(c, new)["spec"]["claimRef"]["uid"] == "uid-new"
    # a bound claim whose volume lost its claimRef gets it back
    del pv_now["spec"]["claimRef"]
    assert k0s.bind(c, new)["spec"]["claimRef"]["name"] == "models-model-server-0"


def test_node_ports_answer_where_kube_proxys_node_port_addresses_say():
    k0s = load_double()
    assert k0s.node_port_bind(None) == "0.0.0.0"  # k0s's default: null, every address
    assert k0s.node_port_bind(["127.0.0.0/8"]) == "127.0.0.1"
    assert k0s.node_port_bind(["127.0.0.1/32"]) == "127.0.0.1"
    assert k0s.node_port_bind(["127.0.0.0/8", "10.0.0.0/8"]) == "0.0.0.0"


# -- GPUs: what the stand-in holds a GPU node to -----------------------------------------------
PLUGIN = "nvcr.io/nvidia/k8s-device-plugin:v0.20.0"
DCGM = "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-distroless"
H200 = "0, GPU-1, NVIDIA H200, 143771, 550.54.14"


def gpu_cluster(docs) -> dict:
    c = {"objects": {}, "order": [], "network_provider": "kuberouter"}
    for d in docs:
        c["objects"][k0s.key(d)] = d
        c["order"].append(k0s.key(d))
    return c


def fake_node(monkeypatch, handlers=("runc", "nvidia"), images=(PLUGIN, DCGM), gpus=(H200,)):
    """containerd's config dump, its images and nvidia-smi, as the stand-in reads them."""
    import subprocess

    runtimes = "".join(
        f"[plugins.'io.containerd.grpc.v1.cri'.containerd.runtimes.{h}]\n"
        'runtime_type = "io.containerd.runc.v2"\n'
        for h in handlers
    )

    def sh(*argv, **kw):
        out = ""
        if argv[:3] == ("containerd", "config", "dump"):
            out = runtimes
        elif argv[:1] == ("ctr",):
            out = "\n".join(k0s.normalize_image(i) for i in images)
        elif argv[:2] == ("sh", "-c") and "nvidia-smi" in argv[2]:
            out = "\n".join(gpus)
            return subprocess.CompletedProcess(argv, 0 if gpus else 1, out, "")
        return subprocess.CompletedProcess(argv, 0, out, "")

    monkeypatch.setattr(k0s, "sh", sh)
    monkeypatch.setattr(k0s, "allocatable", lambda: (16000, 64 << 30))
    # the node the manifests name (their local PV is pinned to it)
    monkeypatch.setattr(k0s, "this_node", lambda: "airnode-lab")


def gpu_docs(**over) -> list[dict]:
    from airnode.serving import manifests

    values = dict(
        node="airnode-lab",
        image="docker.io/library/debian:bookworm-slim",
        uid=999,
        gid=999,
        gpus=1,
        device_plugin_image=PLUGIN,
        dcgm_exporter_image=DCGM,
    )
    return manifests.render_model_server(**{**values, **over})


def test_a_gpu_pod_is_bound_once_airnodes_device_plugin_registers_the_gpus(monkeypatch):
    fake_node(monkeypatch)
    c = gpu_cluster(gpu_docs())
    assert k0s.gpu_allocatable(c) == 1
    k0s.schedule(c)
    assert c["pending"] == {} and c["scheduled"]["airnode/model-server-0"]["gpu"] == 1
    # two GPUs asked for, one on the node: Pending with the scheduler's message
    c = gpu_cluster(gpu_docs(gpus=2))
    k0s.schedule(c)
    assert "1 Insufficient nvidia.com/gpu" in c["pending"]["airnode/model-server-0"]


@pytest.mark.parametrize(
    "change, why",
    [
        # upstream's own hostPath: the plugin dials a kubelet.sock k0s's kubelet does not serve
        ("hostpath", "/var/lib/kubelet/device-plugins"),
        ("image", "the plugin's image not in containerd"),
        ("handler", "containerd without the nvidia runtime"),
        ("nvml", "no GPU NVML can see"),
    ],
)
def test_no_gpu_is_allocatable_when_the_device_plugin_cannot_register(monkeypatch, change, why):
    docs = gpu_docs()
    if change == "hostpath":
        plugin = next(d for d in docs if d["metadata"]["name"].startswith("nvidia-device"))
        plugin["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"] = why
    fake_node(
        monkeypatch,
        handlers=("runc",) if change == "handler" else ("runc", "nvidia"),
        images=(DCGM,) if change == "image" else (PLUGIN, DCGM),
        gpus=() if change == "nvml" else (H200,),
    )
    c = gpu_cluster(docs)
    assert k0s.gpu_allocatable(c) == 0, why
    k0s.schedule(c)
    assert "1 Insufficient nvidia.com/gpu" in c["pending"]["airnode/model-server-0"]


def test_a_pod_naming_a_runtime_class_needs_the_class_and_containerds_handler(monkeypatch):
    docs = gpu_docs()
    spec = next(d for d in docs if d["kind"] == "StatefulSet")["spec"]["template"]["spec"]
    fake_node(monkeypatch)
    assert k0s.runtime_class_problem(gpu_cluster(docs), spec) is None
    without_class = [d for d in docs if d["kind"] != "RuntimeClass"]
    assert k0s.runtime_class_problem(gpu_cluster(without_class), spec) == (
        'FailedCreate: pods is forbidden: pod rejected: RuntimeClass "nvidia" not found'
    )
    fake_node(monkeypatch, handlers=("runc",))
    assert k0s.runtime_class_problem(gpu_cluster(docs), spec) == (
        'CreatePodSandboxError: failed to get sandbox runtime: no runtime for "nvidia" is '
        "configured"
    )
    assert k0s.runtime_class_problem(gpu_cluster(docs), {}) is None  # no class named


# -- more than one node: the stand-in's scheduler, join and sync ------------------------------
def cluster_docs(nodes, replicas, **over) -> list[dict]:
    from airnode.serving import manifests

    values = dict(
        node=nodes[0],
        replicas=replicas,
        image="docker.io/library/debian:bookworm-slim",
        uid=999,
        gid=999,
    )
    # the controller's manifests, then each worker's own volume (as its deploy applies it)
    return manifests.render_model_server(**{**values, **over}) + [
        d
        for n in nodes[1:]
        for d in manifests.documents(
            manifests.store_volume_text(n, "/var/lib/airnode/models", "50Gi")
        )
    ]


def worker_node(c, name="airnode-lab-2", seen=None, **over):
    import time

    c.setdefault("nodes", {})[name] = {
        "address": "10.77.0.2",
        "cpu": 2000,
        "mem": 4 << 30,
        "credential": "x",
        "seen": time.time() if seen is None else seen,
        **over,
    }


def test_replicas_go_one_per_node_each_where_its_volume_is(monkeypatch):
    fake_node(monkeypatch)
    c = gpu_cluster(cluster_docs(["airnode-lab", "airnode-lab-2"], 2))
    worker_node(c)
    c["pods"] = {}
    k0s.schedule(c)
    assert c["pending"] == {}
    assert "node" not in c["scheduled"]["airnode/model-server-0"]  # this node
    assert c["scheduled"]["airnode/model-server-1"]["node"] == "airnode-lab-2"
    # the worker runs kube-router too (a DaemonSet), the controller coredns alone
    assert c["scheduled"]["kube-system/kube-router-airnode-lab-2"]["node"] == "airnode-lab-2"
    assert not any(
        k.startswith("kube-system/coredns") and "node" in b for k, b in c["scheduled"].items()
    )


def test_a_third_replica_on_two_nodes_stays_pending_with_the_schedulers_reasons(monkeypatch):
    fake_node(monkeypatch)
    docs = cluster_docs(["airnode-lab", "airnode-lab-2", "airnode-lab-3"], 3)
    c = gpu_cluster(docs)
    worker_node(c, cpu=16000, mem=64 << 30)  # lab-3 never joined: its PV has no node to be used on
    k0s.schedule(c)
    assert set(c["scheduled"]) >= {"airnode/model-server-0", "airnode/model-server-1"}
    assert c["pending"]["airnode/model-server-2"] == (
        "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules. preemption: "
        "0/2 nodes are available: 2 No preemption victims found for incoming pod."
    )
    # a node's first failing filter is its reason, resources before anti-affinity (the
    # default profile's order): a small worker says so
    c = gpu_cluster(docs)
    worker_node(c)
    k0s.schedule(c)
    assert c["pending"]["airnode/model-server-2"].startswith(
        "0/2 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, 1 node(s) didn't "
        "match pod anti-affinity rules."
    )
    # cordoned: counted, unschedulable; its replica stays until drained (evicted)
    c["nodes"]["airnode-lab-2"]["cordoned"] = True
    k0s.schedule(c)
    assert c["scheduled"]["airnode/model-server-1"]["node"] == "airnode-lab-2"
    assert k0s.evict(c, "airnode-lab-2") == ["airnode/model-server-1"]
    k0s.schedule(c)
    assert c["pending"]["airnode/model-server-1"].startswith(
        "0/2 nodes are available: 1 node(s) didn't match pod anti-affinity rules, 1 node(s) "
        "were unschedulable."
    )


def test_a_worker_that_stops_syncing_leaves_and_its_pods_with_it(monkeypatch):
    fake_node(monkeypatch)
    c = gpu_cluster(cluster_docs(["airnode-lab", "airnode-lab-2"], 2))
    worker_node(c)
    k0s.schedule(c)
    assert c["scheduled"]["airnode/model-server-1"]["node"] == "airnode-lab-2"
    worker_node(c, seen=0)  # NotReady: no sync for longer than the grace period
    k0s.schedule(c)
    assert "airnode/model-server-1" not in c["scheduled"]
    # one node left, holding replica 0 already
    assert c["pending"]["airnode/model-server-1"].startswith(
        "0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules."
    )


def test_a_join_token_buys_a_credential_once_and_only_while_valid(monkeypatch, tmp_path):
    import time

    monkeypatch.setattr(k0s, "this_node", lambda: "airnode-lab")
    monkeypatch.setattr(k0s, "STATE", tmp_path)
    c = {
        "objects": {},
        "pods": {},
        "tokens": {"abc123": {"secret": "s" * 16, "role": "worker", "expires": 0}},
    }
    req = {
        "token": "abc123." + "s" * 16,
        "node": "airnode-lab-2",
        "address": "10.77.0.2",
        "cpu": 2000,
        "mem": 1 << 30,
    }
    assert k0s.api_join(c, {**req, "token": "abc123." + "x" * 16})[0] == 401
    assert k0s.api_join(c, {**req, "node": "airnode-lab"})[0] == 409  # the controller's name
    code, body = k0s.api_join(c, req)
    assert code == 200 and c["nodes"]["airnode-lab-2"]["credential"] == body["credential"]
    c["tokens"]["abc123"]["expires"] = time.time() - 1
    assert k0s.api_join(c, {**req, "node": "airnode-lab-3"})[0] == 401
    # a sync with the credential is a heartbeat; without it, refused
    assert k0s.api_sync(c, {"node": "airnode-lab-2", "credential": "nope"})[0] == 401
    c["nodes"]["airnode-lab-2"]["seen"] = 0
    monkeypatch.setattr(k0s, "reconcile", lambda c: None)
    code, reply, changed = k0s.api_sync(
        c, {"node": "airnode-lab-2", "credential": body["credential"], "pods": {}}
    )
    assert code == 200 and reply["pods"] == [] and c["nodes"]["airnode-lab-2"]["seen"] > 0
    assert changed  # back from NotReady: the scheduler looked again, the cluster is saved
    # a heartbeat that changes nothing else is kept apart from the cluster file, and merged in
    # by whoever loads it
    c["nodes"]["airnode-lab-2"]["seen"] = time.time()
    _, _, changed = k0s.api_sync(
        c, {"node": "airnode-lab-2", "credential": body["credential"], "pods": {}}
    )
    assert not changed
    stale = {"nodes": {"airnode-lab-2": {"seen": 1.0}, "airnode-lab-3": {"seen": 2.0}}}
    merged = k0s.with_seen(stale)
    assert merged["nodes"]["airnode-lab-2"]["seen"] == c["nodes"]["airnode-lab-2"]["seen"]
    assert merged["nodes"]["airnode-lab-3"]["seen"] == 2.0


def test_a_pods_status_from_its_worker_is_a_change_worth_saving(monkeypatch, tmp_path):
    import time

    monkeypatch.setattr(k0s, "STATE", tmp_path)
    pod = {"node": "airnode-lab-2", "hash": "h1", "ready": False, "ran": None}
    c = {
        "objects": {},
        "pods": {"airnode/model-server-1": pod},
        "nodes": {"airnode-lab-2": {"credential": "c", "seen": time.time()}},
    }
    report = {"airnode/model-server-1": {"hash": "h1", "status": "Running", "ready": True}}
    req = {"node": "airnode-lab-2", "credential": "c", "pods": report}
    assert k0s.api_sync(c, req)[2]
    assert pod["ready"] and pod["ran"] == "h1" and pod["reported"] == "Running"
    assert not k0s.api_sync(c, req)[2]  # the same again: nothing to save
