"""kube-prometheus from its release tarball, with airnode's Grafana dashboards. Pure: no pyinfra.

The tarball's ``manifests/setup/`` (namespace and CRDs) and ``manifests/`` (everything else) are
concatenated into two multi-document files, in upstream's file order and byte for byte, except
``grafana-deployment.yaml``: kube-prometheus provisions dashboards as ConfigMaps mounted into
the grafana Deployment (no sidecar), so airnode's dashboards are added the same way - one
ConfigMap each, plus its volume and volumeMount under ``/grafana-dashboard-definitions/0/``.

On one node (the default, ``monitoring_high_availability = false``) the replicas kube-prometheus
runs for high availability buy nothing and cost 2,170 MiB of requests (v0.18.0: Alertmanager x3,
Prometheus x2, prometheus-adapter x2): SINGLE_NODE sets each to one replica, the way upstream's
jsonnet would generate them with ``replicas: 1`` - the ``replicas:`` line changed and, as
upstream emits a PodDisruptionBudget only when replicas > 1
(prometheus-operator/kube-prometheus v0.18.0 jsonnet/kube-prometheus/components/
{alertmanager,prometheus,prometheus-adapter}.libsonnet: ``[if replicas > 1 then
'podDisruptionBudget']``), their PodDisruptionBudget files left out. A budget of
``minAvailable: 1`` over one replica would also block ``kubectl drain`` (teardown).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from airnode.bundle.images import load_all
from airnode.bundle.unpack import read_member

NAMESPACE = "monitoring"
GRAFANA_DEPLOYMENT = "grafana-deployment.yaml"
DASHBOARD_DIR = "/grafana-dashboard-definitions/0"


# file -> the kind whose spec.replicas becomes 1; the budgets upstream omits at one replica.
SINGLE_NODE = {
    "alertmanager-alertmanager.yaml": "Alertmanager",
    "prometheus-prometheus.yaml": "Prometheus",
    "prometheusAdapter-deployment.yaml": "Deployment",
}
SINGLE_NODE_DROPPED = {
    "alertmanager-podDisruptionBudget.yaml": "alertmanager-main",
    "prometheus-podDisruptionBudget.yaml": "prometheus-k8s",
    "prometheusAdapter-podDisruptionBudget.yaml": "prometheus-adapter",
}
_REPLICAS = re.compile(r"^  replicas: [0-9]+$", re.M)


class MonitoringError(ValueError):
    pass


def single_replica(name: str, text: str) -> str:
    """Upstream's file with its one top-level ``spec.replicas`` line set to 1, nothing else
    changed (every other byte stays upstream's)."""
    docs = [d for d in load_all(text) if d]
    if (
        len(docs) != 1
        or docs[0].get("kind") != SINGLE_NODE[name]
        or len(_REPLICAS.findall(text)) != 1
    ):
        raise MonitoringError(
            f"{name}: not one {SINGLE_NODE[name]} with one 'spec.replicas' "
            "line: this kube-prometheus release is laid out differently; set "
            "monitoring_high_availability = true to apply it unchanged"
        )
    return _REPLICAS.sub("  replicas: 1", text)


@dataclass(frozen=True)
class Rendered:
    setup: str  # namespace + CRDs: applied first, then wait for Established
    main: str  # the rest

    @property
    def sha256(self) -> str:
        h = hashlib.sha256(self.setup.encode())
        h.update(b"\0")
        h.update(self.main.encode())
        return h.hexdigest()

    def documents(self) -> list[dict]:
        return self.setup_documents() + copy.deepcopy(_parsed(self.main))

    def setup_documents(self) -> list[dict]:
        return copy.deepcopy(_parsed(self.setup))


@functools.lru_cache(maxsize=4)
def _parsed(text: str) -> list[dict]:
    """The documents of a manifest text, parsed once per run (callers get copies): preflight's
    scheduling and the model server's CRD check both read kube-prometheus's 4 MB of YAML,
    2.4 s of the control machine's CPU each time (cProfile of a lab deploy's plan phase)."""
    return [d for d in load_all(text) if d]


def read_tarball(path: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """([(name, text)] of manifests/setup/, [(name, text)] of manifests/), in name order."""
    setup, main = [], []
    with tarfile.open(path) as tar:
        for member in tar:
            parts = PurePosixPath(member.name).parts
            if not (
                member.isfile()
                and len(parts) >= 3
                and parts[1] == "manifests"
                and member.name.endswith((".yaml", ".yml"))
            ):
                continue
            text = read_member(tar, member).decode()
            if len(parts) == 4 and parts[2] == "setup":
                setup.append((parts[3], text))
            elif len(parts) == 3:
                main.append((parts[2], text))
    if not setup or not main:
        raise MonitoringError(
            f"{path}: no manifests/setup/ and manifests/ inside: is this a "
            "kube-prometheus release tarball?"
        )
    return sorted(setup), sorted(main)


def dashboard_configmap(name: str, dashboard_json: str) -> dict:
    json.loads(dashboard_json)  # must be JSON
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"grafana-dashboard-{name}",
            "namespace": NAMESPACE,
            "labels": {
                "app.kubernetes.io/component": "grafana",
                "app.kubernetes.io/name": "grafana",
                "app.kubernetes.io/part-of": "airnode",
            },
        },
        "data": {f"{name}.json": dashboard_json},
    }


def add_dashboards(deployment: dict, names: list[str]) -> dict:
    """The grafana Deployment with one ConfigMap volume and mount per dashboard name."""
    d = copy.deepcopy(deployment)
    pod = d["spec"]["template"]["spec"]
    container = next((c for c in pod["containers"] if c["name"] == "grafana"), None)
    if container is None:
        raise MonitoringError("grafana Deployment has no container named grafana")
    for name in names:
        vol = f"grafana-dashboard-{name}"
        if any(v["name"] == vol for v in pod["volumes"]):
            raise MonitoringError(f"dashboard {name!r}: kube-prometheus already has a volume {vol}")
        pod["volumes"].append({"name": vol, "configMap": {"name": vol}})
        container["volumeMounts"].append(
            {"name": vol, "mountPath": f"{DASHBOARD_DIR}/{name}", "readOnly": False}
        )
    return d


def render(tarball: Path, dashboards: dict[str, str], high_availability: bool = False) -> Rendered:
    """setup and main multi-document YAML, with ``dashboards`` ({name: JSON text}) provisioned,
    and, unless ``high_availability``, one replica of everything (SINGLE_NODE)."""
    setup, main = read_tarball(tarball)
    out = []
    found = False
    for name, text in main:
        if not high_availability and name in SINGLE_NODE_DROPPED:
            continue
        if not high_availability and name in SINGLE_NODE:
            text = single_replica(name, text)
        if name == GRAFANA_DEPLOYMENT and dashboards:
            found = True
            docs = [d for d in load_all(text) if d]
            text = yaml.safe_dump_all(
                [add_dashboards(docs[0], sorted(dashboards))] + docs[1:], sort_keys=False
            )
        out.append((name, text))
    if dashboards and not found:
        raise MonitoringError(
            f"{tarball}: no manifests/{GRAFANA_DEPLOYMENT}: cannot provision dashboards"
        )
    for name, body in sorted(dashboards.items()):
        out.append(
            (
                f"airnode-dashboard-{name}.yaml",
                yaml.safe_dump(dashboard_configmap(name, body), sort_keys=False),
            )
        )

    def join(files):
        return "".join(f"# {name}\n---\n{text.rstrip()}\n" for name, text in files)

    return Rendered(join(setup), join(out))


def crd_schemas(docs: list[dict]) -> dict[tuple[str, str], dict]:
    """{(apiVersion, kind): openAPIV3Schema} of the CustomResourceDefinitions among docs."""
    out = {}
    for doc in docs:
        if doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        for v in spec["versions"]:
            out[(f"{spec['group']}/{v['name']}", spec["names"]["kind"])] = v["schema"][
                "openAPIV3Schema"
            ]
    return out


# PromQL words that are not metric names: functions and aggregations are followed by "(", so
# only keywords and the by/without label lists need naming here.
_PROMQL_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
}


def query_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (for checking dashboards against what a
    server really exports): label matchers, strings, durations, label lists after by/without
    and function names are not metrics."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"(?<![A-Za-z0-9_:])[0-9][0-9.]*[a-z]*", " ", text)  # numbers, durations
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        rest = text[m.end() :].lstrip()
        word = m.group(0)
        if rest.startswith("(") or word in _PROMQL_KEYWORDS:
            continue
        names.add(word)
    return names


def dashboard_metrics(dashboard_json: str) -> set[str]:
    """Every metric a Grafana dashboard's panel queries read."""
    board = json.loads(dashboard_json)
    return {
        name
        for panel in board.get("panels", [])
        for t in panel.get("targets", [])
        for name in query_metrics(t.get("expr", ""))
    }
