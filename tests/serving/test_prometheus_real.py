"""airnode's Grafana dashboards and the rule files it ships, against the real Prometheus (Debian's
`prometheus` package: the server and promtool, 2.42 on bookworm).

Every panel query of both dashboards, rendered by airnode's own `dashboards()`, must parse and
return at least one series, by one of two paths:
- real scrape: the queries over llama.cpp's own metrics (``llamacpp:*``, and ``up`` of its
  scrape) are sent to /api/v1/query of a real Prometheus that scrapes the real llama.cpp server
  (xllamacpp with SmolLM2-135M, tests/serving/conftest.py) every second, under the target
  labels prometheus-operator gives a ServiceMonitor target (job from the Service's `airnode/job`
  label, namespace, service, pod, container, endpoint), taken from airnode's rendered manifests;
- promtool: the queries over what no local process exports here (cAdvisor through the kubelet,
  kube-state-metrics, blackbox-exporter probes) are evaluated by `promtool test rules`, each
  query verbatim as a recording rule, over series with the label sets those exporters give
  under kube-prometheus's ServiceMonitors and airnode's (names from the rendered manifests:
  namespace, pod, container, job, each replica probed).
Every rule file shipped (kube-prometheus's PrometheusRules, as airnode renders them, and any of
airnode's own) passes `promtool check rules`."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml

from airnode import llama_server as llamalogic
from airnode import monitoring
from airnode.ollama import server_env
from airnode.serving import manifests
from airnode.serving.health import Client, check
from airnode.steps import node_defaults
from airnode.steps.monitoring import dashboards
from tests.serving import prometheus as prom
from tests.upstream import KP_FIXTURE, kube_prometheus_tarball

REPO = Path(__file__).resolve().parents[2]
DEFAULTS = node_defaults()  # the model server's settings with Ollama's
NAMESPACE = DEFAULTS["model_server_namespace"]
NODE = "airnode-lab"
IMAGES = {
    "llama-server": "ghcr.io/ggml-org/llama.cpp:server-b10488",
    "ollama": "docker.io/library/debian:bookworm-slim",
}
BOARDS = {"llama-server": "airnode-llama-server", "ollama": "airnode-ollama"}
# the metrics of the scrape itself: Prometheus writes them for every target
SCRAPE_METRICS = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


@pytest.fixture(scope="module", autouse=True)
def _prometheus_installed():
    prom.require()


def shipped(backend: str) -> list[dict]:
    """airnode's model-server manifests for a backend, rendered as the step renders them."""
    if backend == "llama-server":
        return manifests.render_model_server(
            node=NODE,
            image=IMAGES[backend],
            backend=backend,
            namespace=NAMESPACE,
            server_version=llamalogic.image_version(IMAGES[backend]),
            uid=999,
            gid=999,
            args=llamalogic.server_args(
                model_file=llamalogic.blob_name("a" * 64),
                alias="smollm2",
                context_length=2048,
                parallel=2,
            ),
        )
    return manifests.render_model_server(
        node=NODE,
        image=IMAGES[backend],
        namespace=NAMESPACE,
        server_version="v0.13.5",
        uid=999,
        gid=999,
        env=server_env(DEFAULTS),
    )


def of_kind(docs: list[dict], kind: str) -> dict:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} in the model-server manifests"
    return found[0]


def pod_of(docs: list[dict]) -> tuple[str, str, str]:
    """(namespace, pod, container) of the model server: the StatefulSet's first pod and the
    container serving the Service's port."""
    service, sts = of_kind(docs, "Service"), of_kind(docs, "StatefulSet")
    target_port = service["spec"]["ports"][0]["targetPort"]
    container = next(
        c["name"]
        for c in sts["spec"]["template"]["spec"]["containers"]
        if any(p.get("name") == target_port for p in c.get("ports", []))
    )
    return sts["metadata"]["namespace"], f"{sts['metadata']['name']}-0", container


def split(backend: str) -> tuple[list[prom.Target], list[prom.Target]]:
    """(queries for the real scrape, queries for promtool) of the backend's dashboard: every
    query in exactly one, by the metrics it reads."""
    real, fixture = [], []
    exporters = set(exporter_series(backend))
    for t in prom.targets(dashboards(NAMESPACE, backend)[BOARDS[backend]]):
        used = monitoring.query_metrics(t.expr)
        assert used, f"{t}: reads no metric"
        if all(m.startswith("llamacpp:") or m in SCRAPE_METRICS for m in used):
            real.append(t)
        elif used <= exporters:
            fixture.append(t)
        else:
            raise AssertionError(
                f"{t}: reads {sorted(used - exporters)}, which neither the "
                "real llama.cpp server nor this test's exporter series give "
                f"for {backend}: add them to exporter_series() with the "
                "exporter's real label set"
            )
    return real, fixture


# -- the exporters no local process runs: their series, with the labels they really carry --
# cAdvisor through the kubelet (kube-prometheus's kubelet ServiceMonitor, /metrics/cadvisor:
# honorLabels, metrics_path added), kube-state-metrics v2 (honorLabels, its pod/service/endpoint/
# namespace target labels dropped), blackbox-exporter through airnode's ServiceMonitor (the
# target labels of each replica's endpoint; instance = the probed address).
KUBELET = {
    "endpoint": "https-metrics",
    "instance": "10.0.2.15:10250",
    "job": "kubelet",
    "metrics_path": "/metrics/cadvisor",
    "node": NODE,
    "service": "kubelet",
}
KSM = {"instance": "10.244.0.7:8443", "job": "kube-state-metrics"}
POD_UID = "0b7c2f4e-3d1a-4a8e-9f6b-2c5d8e1f4a70"
CGROUP = (
    "/kubepods.slice/kubepods-burstable.slice/"
    f"kubepods-burstable-pod{POD_UID.replace('-', '_')}.slice"
)
CID = "5f1e9c3b7a2d4e6f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7"


def labels(metric: str, /, **values: str) -> str:
    return metric + "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(values.items())) + "}"


def cadvisor(
    name: str, values: str, namespace: str, pod: str, container: str, image: str, **extra: str
) -> list[dict]:
    """The container's series and its pod's cgroup (container=""), plus another pod's."""
    return [
        {
            "series": labels(
                name,
                **KUBELET,
                **extra,
                container=container,
                image=image,
                id=f"{CGROUP}/cri-containerd-{CID}.scope",
                name=CID,
                namespace=namespace,
                pod=pod,
            ),
            "values": values,
        },
        {
            "series": labels(
                name,
                **KUBELET,
                **extra,
                container="",
                image="",
                id=CGROUP,
                name="",
                namespace=namespace,
                pod=pod,
            ),
            "values": values,
        },
        {
            "series": labels(
                name,
                **KUBELET,
                **extra,
                container="prometheus",
                image="quay.io/prometheus/prometheus:v3.7.3",
                id="/kubepods.slice/prometheus",
                name="0" * 64,
                namespace="monitoring",
                pod="prometheus-k8s-0",
            ),
            "values": values,
        },
    ]


def exporter_series(backend: str) -> dict[str, list[dict]]:
    """{metric: [{series, values}]}: what those exporters give for the backend's model server
    (promtool's series notation, one sample a minute), names from the rendered manifests."""
    docs = shipped(backend)
    ns, pod, c = pod_of(docs)
    image = of_kind(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["image"]
    out = {
        "container_cpu_usage_seconds_total": cadvisor(
            "container_cpu_usage_seconds_total", "0+30x20", ns, pod, c, image, cpu="total"
        ),
        "container_memory_working_set_bytes": cadvisor(
            "container_memory_working_set_bytes", "734003200+0x20", ns, pod, c, image
        ),
        # kube-state-metrics v2 exports a waiting container's current reason only
        "kube_pod_container_status_waiting_reason": [
            {
                "series": labels(
                    "kube_pod_container_status_waiting_reason",
                    **KSM,
                    container=c,
                    namespace=ns,
                    pod=pod,
                    reason="CrashLoopBackOff",
                    uid=POD_UID,
                ),
                "values": "1x20",
            }
        ],
    }
    # blackbox-exporter's http_2xx module, probing each replica for the ollama backend's
    # ServiceMonitor (its target labels; instance = the replica's address: test_blackbox_real)
    if of_kind(docs, "ServiceMonitor")["spec"]["endpoints"][0]["path"] == "/probe":
        sts = of_kind(docs, "StatefulSet")["metadata"]["name"]
        replicas = [
            {**target_labels(docs, f"{sts}-{i}"), "instance": f"10.244.0.{11 + i}:11434"}
            for i in range(2)
        ]
        for metric, values in (
            ("probe_success", "1x20"),
            ("probe_duration_seconds", "0.004x20"),
            ("probe_http_status_code", "200x20"),
        ):
            out[metric] = [{"series": labels(metric, **r), "values": values} for r in replicas]
    return out


def promtool_failures(backend: str, queries: list[prom.Target], tmp_path) -> str:
    """'' when every query returns a series in promtool, else promtool's words."""
    series = [s for found in exporter_series(backend).values() for s in found]
    done, names = prom.expressions_test(tmp_path, queries, series, "10m")
    if done.returncode == 0:
        return ""
    out = done.stdout + done.stderr
    for name, t in names.items():
        out = out.replace(name, f"{name} <- [{t}]")
    return out


# -- every query in one of the two paths -------------------------------------------------------
@pytest.mark.parametrize("backend", sorted(BOARDS))
def test_every_dashboard_query_is_evaluated_by_one_path(backend):
    real, fixture = split(backend)
    every = prom.targets(dashboards(NAMESPACE, backend)[BOARDS[backend]])
    assert every and sorted(real + fixture, key=every.index) == every
    if backend == "llama-server":
        assert real and any("llamacpp:" in t.expr for t in real)
    print(f"{backend}: {len(real)} real scrape, {len(fixture)} promtool")


# -- promtool: cAdvisor, kube-state-metrics, blackbox-exporter ---------------------------------
@pytest.mark.parametrize("backend", sorted(BOARDS))
def test_kubernetes_and_probe_queries_return_series_in_promtool(backend, tmp_path):
    _, fixture = split(backend)
    assert fixture
    failed = promtool_failures(backend, fixture, tmp_path)
    assert not failed, f"promtool test rules failed for {backend}'s dashboard:\n{failed}"


# dcgm-exporter 4.5.3-4.8.2, one H200 in use by the model server: its own labels (gpu, UUID,
# pci_bus_id, device, modelName, Hostname, DCGM_FI_DRIVER_VERSION; the using pod's namespace,
# pod and container, which the scrape renames exported_* as honorLabels is off) and the
# ServiceMonitor's target labels (job = the Service's name).
DCGM_TARGET = {
    "job": "dcgm-exporter",
    "instance": "10.244.0.9:9400",
    "namespace": "kube-system",
    "pod": "dcgm-exporter-x7k2p",
    "container": "dcgm-exporter",
    "service": "dcgm-exporter",
    "endpoint": "metrics",
}
DCGM_GPU = {
    "gpu": "0",
    "UUID": "GPU-5a8e6b3c-1f2d-4e5a-9b7c-0d1e2f3a4b5c",
    "pci_bus_id": "00000000:01:00.0",
    "device": "nvidia0",
    "modelName": "NVIDIA H200",
    "Hostname": "airnode-lab",
    "DCGM_FI_DRIVER_VERSION": "550.54.14",
    "exported_namespace": "airnode",
    "exported_pod": "model-server-0",
    "exported_container": "ollama",
}


@pytest.mark.parametrize("backend", sorted(BOARDS))
def test_gpu_panel_queries_return_series_in_promtool(backend, tmp_path):
    from airnode import nvidia

    board = dashboards(NAMESPACE, backend, 1)[BOARDS[backend]]
    queries = [t for t in prom.targets(board) if "DCGM_" in t.expr]
    assert len(queries) == 5
    values = {
        "DCGM_FI_DEV_GPU_UTIL": "87x20",
        "DCGM_FI_DEV_FB_USED": "2048+0x20",
        "DCGM_FI_DEV_FB_FREE": "141723+0x20",
        "DCGM_FI_DEV_POWER_USAGE": "412.5x20",
        "DCGM_FI_DEV_GPU_TEMP": "61x20",
    }
    assert set(values) == set(nvidia.DCGM_COUNTERS)
    series = [
        {"series": labels(m, **DCGM_TARGET, **DCGM_GPU), "values": v} for m, v in values.items()
    ]
    done, names = prom.expressions_test(tmp_path, queries, series, "10m")
    assert done.returncode == 0, done.stdout + done.stderr
    # the check can fail: a panel reading another job finds nothing
    other = [prom.Target("x", "other job", "A", queries[0].expr.replace("dcgm-exporter", "dcgm"))]
    (tmp_path / "b").mkdir()
    done, _ = prom.expressions_test(tmp_path / "b", other, series, "10m")
    assert done.returncode != 0 and "got:" in done.stdout + done.stderr


def test_promtool_path_catches_a_malformed_or_empty_query(tmp_path):
    """The check can fail: a query that does not parse, or one whose container matcher names
    no container of the model server, fails promtool."""
    broken = prom.Target("x", "broken", "A", "sum(rate(container_cpu_usage_seconds_total[5m])")
    (tmp_path / "a").mkdir()
    assert "parse error" in promtool_failures("ollama", [broken], tmp_path / "a")
    empty = prom.Target(
        "x",
        "empty",
        "A",
        f'sum(container_memory_working_set_bytes{{namespace="{NAMESPACE}", '
        'container="llama-server"})',
    )
    (tmp_path / "b").mkdir()
    assert "got:" in promtool_failures("ollama", [empty], tmp_path / "b")


# -- the real scrape of the real llama.cpp server -----------------------------------------------
def target_labels(docs: list[dict], pod: str) -> dict[str, str]:
    """The labels prometheus-operator v0.92.0 gives a target of airnode's ServiceMonitor that is
    an endpoint of ``pod`` (pkg/prometheus/promcfg.go, generateServiceMonitorConfig: job from
    the Service's jobLabel, then namespace, service, pod, container, endpoint)."""
    monitor, service = of_kind(docs, "ServiceMonitor"), of_kind(docs, "Service")
    namespace, _, container = pod_of(docs)
    return {
        "job": service["metadata"]["labels"][monitor["spec"]["jobLabel"]],
        "namespace": namespace,
        "service": service["metadata"]["name"],
        "pod": pod,
        "container": container,
        "endpoint": monitor["spec"]["endpoints"][0]["port"],
    }


def scrape_config(docs: list[dict], targets: dict[str, str]) -> dict:
    """What prometheus-operator makes of airnode's ServiceMonitor in ``docs``, its Service's
    endpoints being ``targets`` ({pod: host:port}): the endpoint's path and params, the
    operator's target labels, then the endpoint's relabelings (Prometheus's field names)."""
    monitor = of_kind(docs, "ServiceMonitor")
    namespace = of_kind(docs, "StatefulSet")["metadata"]["namespace"]
    (endpoint,) = monitor["spec"]["endpoints"]
    config = {
        "job_name": f"serviceMonitor/{namespace}/{monitor['metadata']['name']}/0",
        "metrics_path": endpoint.get("path", "/metrics"),
        "static_configs": [
            {"targets": [address], "labels": target_labels(docs, pod)}
            for pod, address in targets.items()
        ],
    }
    if "params" in endpoint:
        config["params"] = endpoint["params"]
    if "relabelings" in endpoint:
        config["relabel_configs"] = [
            {SNAKE[k]: v for k, v in r.items()} for r in endpoint["relabelings"]
        ]
    return config


# a RelabelConfig's fields (monitoring.coreos.com/v1) as Prometheus's relabel_configs names them
SNAKE = {
    "sourceLabels": "source_labels",
    "targetLabel": "target_label",
    "replacement": "replacement",
    "regex": "regex",
    "separator": "separator",
    "modulus": "modulus",
    "action": "action",
}


def wait_for(server: prom.Prometheus, expr: str, want=bool, timeout: float = 30) -> list[dict]:
    """The series of ``expr`` once ``want`` holds of them (by default: once there is one);
    Prometheus scrapes every second."""
    end = time.monotonic() + timeout
    while not (found := server.series(expr)) or not want(found):
        if time.monotonic() > end:
            raise AssertionError(
                f"{expr}: {found} after {timeout}s of scraping every second; "
                f"prometheus said: {server.logs()}"
            )
        time.sleep(0.5)
    return found


@pytest.fixture(scope="module")
def scraped(llama_server, tmp_path_factory):
    """The real Prometheus, having scraped the real llama.cpp server across completions: its
    counters moved between two scrapes, so rate() has something to say."""
    check(llama_server, ["smollm2"], "openai", prompt="Hello")  # a fresh server exports nothing
    docs = shipped("llama-server")
    config = scrape_config(docs, {pod_of(docs)[1]: llama_server.split("://", 1)[1]})
    job = config["static_configs"][0]["labels"]["job"]
    with prom.Prometheus(tmp_path_factory.mktemp("prometheus"), [config]) as server:
        wait_for(server, f'up{{job="{job}"}} == 1')
        wait_for(
            server, f'count_over_time(llamacpp:tokens_predicted_total{{job="{job}"}}[1m]) >= 2'
        )
        Client(llama_server).openai_complete("smollm2", "Count to five:")
        wait_for(server, f'rate(llamacpp:tokens_predicted_total{{job="{job}"}}[1m]) > 0')
        yield server


def test_llamacpp_queries_return_series_from_a_real_prometheus(scraped):
    real, _ = split("llama-server")
    assert real
    failed = []
    for t in real:
        answer = scraped.query(t.expr)
        if answer["status"] != "success":
            failed.append(f"{t}\n  refused: {answer.get('errorType')}: {answer.get('error')}")
        elif answer["data"]["resultType"] != "vector" or not answer["data"]["result"]:
            failed.append(f"{t}\n  no series: {answer['data']}")
    assert not failed, "the real Prometheus, scraping the real llama.cpp server:\n" + "\n".join(
        failed
    )


def test_real_path_catches_a_malformed_or_empty_query(scraped):
    """The check can fail: Prometheus refuses a malformed query, and a metric llama.cpp does
    not export (kv_cache_usage_ratio, dropped upstream) or a wrong job gives no series."""
    answer = scraped.query('sum(rate(llamacpp:prompt_tokens_total{job="llama-server"}[5m])')
    assert answer["status"] == "error" and answer["errorType"] == "bad_data", answer
    assert scraped.series('llamacpp:kv_cache_usage_ratio{job="llama-server"}') == []
    assert scraped.series('llamacpp:prompt_tokens_total{job="ollama"}') == []


# -- rule files: promtool check rules ----------------------------------------------------------
def test_every_rule_file_shipped_passes_promtool_check(tmp_path):
    tarball = tmp_path / "kube-prometheus.tar.gz"
    tarball.write_bytes(kube_prometheus_tarball())
    boards = {**dashboards(NAMESPACE, "ollama"), **dashboards(NAMESPACE, "llama-server")}
    docs = monitoring.render(tarball, boards).documents()
    docs += [d for b in BOARDS for d in shipped(b)]
    rules = [d for d in docs if d.get("kind") == "PrometheusRule"]
    # airnode's own: none so far; one added elsewhere than the manifests rendered above must be
    # rendered here too
    own = sorted(
        str(p.relative_to(REPO))
        for p in [*(REPO / "templates").iterdir(), *(REPO / "airnode").rglob("*.py")]
        if p.is_file() and "PrometheusRule" in p.read_text(errors="replace")
    )
    assert set(own) <= {"templates/model-server.yaml.j2", "airnode/monitoring.py"}, own
    upstream = sorted((KP_FIXTURE / "manifests").glob("*prometheusRule*.yaml"))
    assert upstream and len(rules) >= len(upstream), (len(rules), upstream)
    files = []
    for doc in rules:
        path = tmp_path / f"{doc['metadata']['namespace']}-{doc['metadata']['name']}.rules.yaml"
        path.write_text(yaml.safe_dump(doc["spec"], sort_keys=False))
        files.append(path.name)
    # --lint=none: promtool 2.42's default lint (duplicate-rules) prints "FAILED: lint error"
    # for kube-prometheus's four code_verb:apiserver_request_total:increase1h rules (one per
    # status class: distinct series, by their code label), yet exits 0; parsing and checking
    # every rule is what matters here.
    done = prom.promtool("check", "rules", "--lint=none", *files, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    found = [int(n) for n in re.findall(r"SUCCESS: (\d+) rules found", done.stdout)]
    assert len(found) == len(files) and all(found), done.stdout + done.stderr
    print(f"{len(files)} rule files, {sum(found)} rules: promtool check rules passed")
