"""What needs a real Kubernetes API: pods, and Prometheus' view of the model server."""

import json

import pytest

pytestmark = pytest.mark.cluster


def pods(host, namespace):
    return json.loads(host.check_output(f"k0s kubectl -n {namespace} get pods -o json"))["items"]


@pytest.mark.parametrize("ns", ["monitoring", "MODEL"])
def test_every_pod_is_running_and_ready(host, ns, namespace):
    ns = namespace if ns == "MODEL" else ns
    items = pods(host, ns)
    assert items, f"no pods in {ns}"
    bad = [
        p["metadata"]["name"]
        for p in items
        if p["status"].get("phase") != "Running"
        or not all(c.get("ready") for c in p["status"].get("containerStatuses", []))
    ]
    assert bad == [], f"not Running and Ready in {ns}: {bad}"


def test_prometheus_sees_the_model_server_as_a_healthy_target(host):
    raw = host.check_output(
        "k0s kubectl get --raw "
        "/api/v1/namespaces/monitoring/services/prometheus-k8s:web/proxy"
        "/api/v1/targets?state=active"
    )
    targets = json.loads(raw)["data"]["activeTargets"]
    ours = [t for t in targets if t["labels"].get("job") in ("ollama", "llama-server")]
    assert ours, (
        "Prometheus has no target with job=ollama (the blackbox exporter probing each replica) "
        "nor job=llama-server (each replica's /metrics): airnode's ServiceMonitor"
    )
    assert all(t["health"] == "up" for t in ours), [t["lastError"] for t in ours]
    if any(t["labels"]["job"] == "ollama" for t in ours):
        # a scrape of the exporter is up even when its probe failed: probe_success says
        raw = host.check_output(
            "k0s kubectl get --raw '/api/v1/namespaces/monitoring/services/prometheus-k8s:web"
            "/proxy/api/v1/query?query=probe_success%7Bjob%3D%22ollama%22%7D'"
        )
        probes = {r["metric"].get("pod"): r["value"][1] for r in json.loads(raw)["data"]["result"]}
        assert len(probes) == len(ours) and set(probes.values()) == {"1"}, probes


def test_open_webui_admits_no_sign_up(host, namespace):
    """With Open WebUI on, sign-up is closed (ENABLE_SIGNUP=false; its admin came from the
    operator's secret): a stranger's sign-up through its Service is refused, and nobody got in.
    Skipped when the node runs no Open WebUI."""
    if host.run(f"k0s kubectl -n {namespace} get deployment open-webui").rc != 0:
        pytest.skip("no Open WebUI on this node (open_webui = false)")
    svc = json.loads(
        host.check_output(f"k0s kubectl -n {namespace} get service open-webui -o json")
    )
    port = svc["spec"]["ports"][0]["nodePort"]
    from tests.node.conftest import http

    status, body = http(
        host,
        "POST",
        port,
        "/api/v1/auths/signup",
        {"name": "stranger", "email": "stranger@example.com", "password": "Stranger-1234"},
        timeout=60,
    )
    assert status in (401, 403), (status, body[:500])
    assert '"token"' not in body
