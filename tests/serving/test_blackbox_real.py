"""Ollama's monitoring, every replica probed, against the real Prometheus and the real blackbox
exporter (Debian's `prometheus` and `prometheus-blackbox-exporter` packages).

Ollama has no /metrics: airnode's ServiceMonitor asks kube-prometheus's blackbox exporter to
probe every endpoint of the model server's Service, so that each replica has its own
probe_success (a Probe of the Service, as before, saw whichever replica the Service picked).
Here the rendered ServiceMonitor's endpoint (path, params, relabelings) becomes the scrape
config prometheus-operator v0.92.0 makes of it (pkg/prometheus/promcfg.go,
generateServiceMonitorConfig: params as they stand, the endpoint's relabelings after the
operator's target labels), for two replicas (two HTTP servers answering / as Ollama does), with
the modules of kube-prometheus's own blackbox configuration. One change: the exporter's
in-cluster address (checked against kube-prometheus's Service in tests/unit/test_monitoring.py)
is this exporter's local one."""

from __future__ import annotations

import pytest
import yaml

from tests.httpserver import FixtureServer
from tests.serving import prometheus as prom
from tests.serving import test_prometheus_real as real
from tests.serving.test_prometheus_real import NAMESPACE, of_kind, shipped, wait_for
from tests.upstream import KP_FIXTURE

IN_CLUSTER = "blackbox-exporter.monitoring.svc:19115"


@pytest.fixture(scope="module", autouse=True)
def _installed():
    prom.require()
    prom.require_blackbox()


def scrape_config(exporter: str, replicas: dict[str, str]) -> dict:
    """What prometheus-operator makes of airnode's ServiceMonitor for the ollama backend, its
    endpoints being ``replicas`` ({pod: address}), with this exporter's address for the
    in-cluster one."""
    config = real.scrape_config(shipped("ollama"), replicas)
    local = [r for r in config["relabel_configs"] if r.get("replacement") == IN_CLUSTER]
    assert len(local) == 1, config["relabel_configs"]
    local[0]["replacement"] = exporter
    return config


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    work = tmp_path_factory.mktemp("blackbox")
    config = yaml.safe_load(
        (KP_FIXTURE / "manifests/blackboxExporter-configuration.yaml").read_text()
    )["data"]["config.yml"]
    sts = of_kind(shipped("ollama"), "StatefulSet")["metadata"]["name"]
    with FixtureServer() as a, FixtureServer() as b:
        for s in (a, b):
            s.files["/"] = b"Ollama is running"
        servers = {f"{sts}-0": a, f"{sts}-1": b}
        replicas = {pod: s.url.split("://", 1)[1] for pod, s in servers.items()}
        with prom.BlackboxExporter(work, config) as exporter:
            job = scrape_config(exporter.address, replicas)
            with prom.Prometheus(work, [job]) as server:
                yield server, servers, replicas


def test_each_replica_is_probed_and_is_a_series_of_its_own(probed):
    server, _, replicas = probed
    found = wait_for(server, 'probe_success{job="ollama"}', lambda f: len(f) == 2)
    assert {(s["metric"]["pod"], s["metric"]["instance"]) for s in found} == set(replicas.items())
    assert all(s["value"][1] == "1" for s in found), found
    assert all(s["metric"]["namespace"] == NAMESPACE for s in found)
    # what the exporter reports besides: the HTTP status of each replica's /
    codes = wait_for(server, 'probe_http_status_code{job="ollama"}', lambda f: len(f) == 2)
    assert {s["value"][1] for s in codes} == {"200"}


def test_a_replica_that_stops_answering_is_0_while_its_scrape_stays_up(probed):
    """Why the dashboards read probe_success: the scrape (of the exporter) stays up."""
    server, servers, _ = probed
    wait_for(server, 'probe_success{job="ollama"}', lambda f: len(f) == 2)
    servers["model-server-1"].files.clear()  # answers 404: not a 2xx
    gone = wait_for(
        server,
        'probe_success{job="ollama", pod="model-server-1"}',
        lambda f: f[0]["value"][1] == "0",
    )
    assert gone[0]["metric"]["instance"].startswith("127.0.0.1:")
    assert server.series('up{job="ollama", pod="model-server-1"}')[0]["value"][1] == "1"
    # the dashboard's stat: replicas answering, replicas probed
    from airnode.steps.monitoring import dashboards

    board = dashboards(NAMESPACE, "ollama")["airnode-ollama"]
    stat = [t for t in prom.targets(board) if t.expr.startswith(("sum(probe", "count(probe"))]
    assert len(stat) == 2
    values = {t.expr.split("(", 1)[0]: server.series(t.expr)[0]["value"][1] for t in stat}
    assert values == {"sum": "1", "count": "2"}
