"""kube-prometheus rendered from the real v0.18.0 release layout, with airnode's dashboard: file
order and bytes kept, the grafana Deployment extended the way upstream provisions dashboards,
every changed or added document valid against the Kubernetes 1.34 schemas, and the dashboard's
queries naming metrics that exist."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from airnode import monitoring
from airnode.serving import manifests
from airnode.steps.monitoring import dashboards
from tests.upstream import KP_FIXTURE, kube_prometheus_tarball, tar_bytes


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    path = tmp_path_factory.mktemp("kp") / "kube-prometheus-v0.18.0.tar.gz"
    path.write_bytes(kube_prometheus_tarball())
    return path


@pytest.fixture(scope="module")
def rendered(tarball):
    return monitoring.render(tarball, dashboards("airnode"))


def by(docs, kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def test_setup_holds_the_namespace_and_every_crd_and_nothing_else(rendered):
    docs = [d for d in monitoring.load_all(rendered.setup) if d]
    kinds = sorted({d["kind"] for d in docs})
    assert kinds == ["CustomResourceDefinition", "Namespace"]
    assert len([d for d in docs if d["kind"] == "CustomResourceDefinition"]) == 10
    assert not any(
        d["kind"] == "CustomResourceDefinition" for d in monitoring.load_all(rendered.main) if d
    )


@pytest.fixture(scope="module")
def rendered_ha(tarball):
    return monitoring.render(tarball, dashboards("airnode"), high_availability=True)


def test_with_high_availability_every_upstream_file_but_grafanas_is_kept_byte_for_byte(rendered_ha):
    for path in sorted((KP_FIXTURE / "manifests").glob("*.yaml")):
        text = path.read_text().rstrip()
        if path.name == monitoring.GRAFANA_DEPLOYMENT:
            assert text not in rendered_ha.main
        else:
            assert f"# {path.name}\n---\n{text}\n" in rendered_ha.main, path.name
    for path in sorted((KP_FIXTURE / "manifests" / "setup").glob("*.yaml")):
        assert f"# {path.name}\n---\n{path.read_text().rstrip()}\n" in rendered_ha.setup


def test_on_one_node_one_replica_of_each_and_no_budgets_the_rest_byte_for_byte(rendered):
    docs = rendered.documents()
    for kind, name in (
        ("Alertmanager", "main"),
        ("Prometheus", "k8s"),
        ("Deployment", "prometheus-adapter"),
    ):
        assert by(docs, kind, name)["spec"]["replicas"] == 1, name
    assert not [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    for path in sorted((KP_FIXTURE / "manifests").glob("*.yaml")):
        text = path.read_text().rstrip()
        block = f"# {path.name}\n---\n{text}\n"
        if path.name in monitoring.SINGLE_NODE_DROPPED:
            assert f"# {path.name}\n" not in rendered.main
        elif path.name in monitoring.SINGLE_NODE:
            # exactly one line differs: the replicas line
            ours = rendered.main.split(f"# {path.name}\n---\n", 1)[1].split("\n# ", 1)[0]
            diff = [
                (a, b) for a, b in zip(text.splitlines(), ours.splitlines(), strict=False) if a != b
            ]
            assert len(text.splitlines()) == len(ours.rstrip().splitlines())
            assert diff == [(diff[0][0], "  replicas: 1")] and diff[0][0] != "  replicas: 1"
        elif path.name != monitoring.GRAFANA_DEPLOYMENT:
            assert block in rendered.main, path.name


def test_a_release_laid_out_differently_is_refused_with_the_way_out(tmp_path):
    files = {}
    for p in sorted((KP_FIXTURE / "manifests").rglob("*.yaml")):
        text = p.read_text()
        if p.name == "prometheus-prometheus.yaml":
            text = text.replace("  replicas: 2\n", "")
        files[f"kube-prometheus-0.18.0/{p.relative_to(KP_FIXTURE).as_posix()}"] = text.encode()
    path = tmp_path / "kp.tar.gz"
    path.write_bytes(tar_bytes(files, gz=True))
    with pytest.raises(monitoring.MonitoringError, match="monitoring_high_availability = true"):
        monitoring.render(path, {})
    assert "kind: Prometheus" in monitoring.render(path, {}, high_availability=True).main


def test_the_dashboard_is_provisioned_like_upstreams_own(rendered):
    docs = rendered.documents()
    grafana = by(docs, "Deployment", "grafana")
    pod = grafana["spec"]["template"]["spec"]
    upstream = next(
        d
        for d in monitoring.load_all(
            (KP_FIXTURE / "manifests" / "grafana-deployment.yaml").read_text()
        )
        if d
    )
    assert len(pod["volumes"]) == len(upstream["spec"]["template"]["spec"]["volumes"]) + 1
    assert {
        "name": "grafana-dashboard-airnode-ollama",
        "configMap": {"name": "grafana-dashboard-airnode-ollama"},
    } in pod["volumes"]
    assert {
        "name": "grafana-dashboard-airnode-ollama",
        "readOnly": False,
        "mountPath": "/grafana-dashboard-definitions/0/airnode-ollama",
    } in pod["containers"][0]["volumeMounts"]
    cm = by(docs, "ConfigMap", "grafana-dashboard-airnode-ollama")
    assert cm["metadata"]["namespace"] == "monitoring"
    assert json.loads(cm["data"]["airnode-ollama.json"])["uid"] == "airnode-ollama"
    # the grafana provider reads that folder
    sources = by(docs, "ConfigMap", "grafana-dashboards")
    assert '"path": "/grafana-dashboard-definitions/0"' in sources["data"]["dashboards.yaml"]
    assert manifests.validate([grafana, cm], {}) == []


def test_rendering_is_deterministic_and_its_sha_follows_the_content(tarball, rendered):
    again = monitoring.render(tarball, dashboards("airnode"))
    assert again == rendered and again.sha256 == rendered.sha256
    other = monitoring.render(tarball, dashboards("models"))
    assert other.sha256 != rendered.sha256 and other.setup == rendered.setup


def test_not_a_kube_prometheus_tarball_is_named(tmp_path):
    bad = tmp_path / "x.tar.gz"
    bad.write_bytes(tar_bytes({"x/README.md": b"hi"}, gz=True))
    with pytest.raises(monitoring.MonitoringError, match="no manifests/setup/ and manifests/"):
        monitoring.render(bad, {})


def test_a_dashboard_clashing_with_upstreams_is_refused(tarball):
    with pytest.raises(monitoring.MonitoringError, match="already has a volume"):
        monitoring.render(tarball, {"nodes": "{}"})


def test_the_dashboards_queries_name_real_metrics():
    """Pod metrics must be ones kube-prometheus itself queries (cAdvisor, kube-state-metrics);
    probe metrics are the blackbox exporter's http prober's."""
    board = json.loads(dashboards("airnode")["airnode-ollama"])
    used = {
        m
        for p in board["panels"]
        for t in p["targets"]
        for m in re.findall(r"\b([a-z_]+)\{", t["expr"])
    }
    upstream = "".join(p.read_text() for p in (KP_FIXTURE / "manifests").glob("*.yaml"))
    blackbox_http = {"probe_success", "probe_duration_seconds", "probe_http_status_code"}
    assert used - blackbox_http, used
    for metric in used - blackbox_http:
        assert metric in upstream, f"{metric} is not a metric kube-prometheus knows"
    assert all(
        'job="ollama"' in t["expr"]
        for p in board["panels"]
        for t in p["targets"]
        if "probe_" in t["expr"]
    )


def test_the_dashboards_probe_job_is_the_job_of_every_replicas_probe():
    from airnode.ollama import server_env
    from airnode.steps import node_defaults

    DEFAULTS = node_defaults()
    docs = manifests.render_model_server(
        node="n",
        image="docker.io/library/x:1",
        server_version="v0.13.5",
        uid=1,
        gid=1,
        env=server_env(DEFAULTS),
    )
    # kube-prometheus's blackbox exporter, on its plain-HTTP port (named probe)
    exporter = yaml.safe_load((KP_FIXTURE / "manifests/blackboxExporter-service.yaml").read_text())
    (port,) = [p["port"] for p in exporter["spec"]["ports"] if p["name"] == "probe"]
    meta = exporter["metadata"]
    blackbox = f"{meta['name']}.{meta['namespace']}.svc:{port}"
    # one ServiceMonitor endpoint per replica (every endpoint of the Service): the exporter
    # probes the replica's own address, and that address is the series' instance
    sm, svc = (next(d for d in docs if d["kind"] == k) for k in ("ServiceMonitor", "Service"))
    assert not [d for d in docs if d["kind"] == "Probe"]
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    (ep,) = sm["spec"]["endpoints"]
    assert (ep["port"], ep["path"], ep["params"]) == ("http", "/probe", {"module": ["http_2xx"]})
    assert ep["relabelings"] == [
        {"sourceLabels": ["__address__"], "targetLabel": "__param_target"},
        {"sourceLabels": ["__param_target"], "targetLabel": "instance"},
        {"targetLabel": "__address__", "replacement": blackbox},
    ]
    job = svc["metadata"]["labels"][sm["spec"]["jobLabel"]]
    board = dashboards("airnode")["airnode-ollama"]
    assert f'job=\\"{job}\\"' in board
