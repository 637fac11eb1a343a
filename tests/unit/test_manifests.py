"""Model-server manifests: rendered, then validated offline against the Kubernetes 1.34 schemas
(strict) and the real kube-prometheus v0.18.0 CRD schemas."""

from __future__ import annotations

import copy

import pytest

from airnode.ollama import server_env
from airnode.serving import manifests
from airnode.steps import node_defaults
from tests.upstream import KP_FIXTURE

DEFAULTS = node_defaults()  # the model server's settings with Ollama's


@pytest.fixture(scope="module")
def crds():
    return manifests.crd_schemas(KP_FIXTURE / "manifests" / "setup")


def docs(settings=None, **over):
    values = dict(
        node="airnode-lab",
        image="docker.io/library/debian:bookworm-slim",
        server_version="v0.13.5",
        uid=999,
        gid=999,
        env=server_env({**DEFAULTS, **(settings or {})}),
    )
    values.update(over)
    return manifests.render_model_server(**values)


def by_kind(ds, kind):
    return next(d for d in ds if d["kind"] == kind)


def test_every_document_is_valid(crds):
    ds = docs()
    assert [d["kind"] for d in ds] == [
        "Namespace",
        "StorageClass",
        "PersistentVolume",
        "Service",
        "StatefulSet",
        "Role",
        "RoleBinding",
        "ServiceMonitor",
    ]
    assert manifests.validate(ds, crds) == []


def test_a_typo_in_a_core_kind_is_caught(crds):
    ds = docs()
    ss = by_kind(ds, "StatefulSet")
    ss["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    problems = manifests.validate(ds, crds)
    assert len(problems) == 1 and problems[0].startswith("StatefulSet/model-server: ")
    assert "readinesProbe" in problems[0]


def test_a_bad_service_monitor_is_caught_by_the_crd_schema(crds):
    ds = docs()
    by_kind(ds, "ServiceMonitor")["spec"]["endpoints"][0]["interval"] = 30  # a duration string
    problems = manifests.validate(ds, crds)
    assert len(problems) == 1 and problems[0].startswith("ServiceMonitor/model-server: ")


def test_an_unknown_kind_is_reported(crds):
    problems = manifests.validate(
        [{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}], crds
    )
    assert problems and "no schema for example.com/v1 Widget" in problems[0]


def test_statefulset_shape():
    ss = by_kind(
        docs(
            {
                "ollama_num_parallel": 4,
                "ollama_flash_attention": True,
                "ollama_extra_env": {"OLLAMA_DEBUG": 1, "OLLAMA_ORIGINS": 'a"b'},
            }
        ),
        "StatefulSet",
    )
    pod = ss["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["OLLAMA_NUM_PARALLEL"] == "4" and env["OLLAMA_KEEP_ALIVE"] == "5m"
    assert env["OLLAMA_FLASH_ATTENTION"] == "1" and env["OLLAMA_NOPRUNE"] == "1"
    assert env["OLLAMA_DEBUG"] == "1" and env["OLLAMA_ORIGINS"] == 'a"b'  # quoted safely
    assert env["OLLAMA_MODELS"] == "/models" and env["OLLAMA_HOST"] == "0.0.0.0:11434"
    assert c["readinessProbe"]["httpGet"]["path"] == "/"
    assert c["livenessProbe"]["httpGet"]["path"] == "/api/version"
    assert c["imagePullPolicy"] == "Never"
    assert (
        pod["securityContext"]["runAsNonRoot"] is True
        and pod["securityContext"]["runAsUser"] == 999
    )
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}
    assert ss["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "airnode-local"


def test_model_store_is_bound_to_this_node_and_outside_k0s():
    pv = by_kind(docs(), "PersistentVolume")
    assert pv["spec"]["local"]["path"] == "/var/lib/airnode/models"
    assert not pv["spec"]["local"]["path"].startswith("/var/lib/k0s")
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == ["airnode-lab"]


def test_a_new_ollama_version_rolls_the_statefulset():
    a = by_kind(docs(), "StatefulSet")["spec"]["template"]
    b = by_kind(docs(server_version="v0.14.0"), "StatefulSet")["spec"]["template"]
    assert a != b
    assert b["metadata"]["annotations"]["airnode/server-version"] == "v0.14.0"
    assert copy.deepcopy(a) == by_kind(docs(), "StatefulSet")["spec"]["template"]  # deterministic


def test_prometheus_may_read_the_namespace():
    rb = by_kind(docs(), "RoleBinding")
    assert rb["subjects"] == [
        {"kind": "ServiceAccount", "name": "prometheus-k8s", "namespace": "monitoring"}
    ]
    role = by_kind(docs(), "Role")
    assert {"endpointslices"} <= set(role["rules"][1]["resources"])
