"""The k0s stand-in's API server rules, checked on their own (the lab VM runs them for real):
immutable fields refused with the API server's messages, server-side apply keeping the binder's
fields, and PersistentVolume binding with claimRef as the PV controller does it — including the
`ollama` -> `model-server` migration airnode performs (delete the claim, remove the claimRef)."""

from __future__ import annotations

import copy

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
