"""The llama-server backend and Open WebUI: arguments, which model is served, settings rules,
manifests (valid against the Kubernetes 1.34 schemas and the real kube-prometheus CRDs), the
switch between backends as a rollout of one StatefulSet, and the dashboard's queries."""

from __future__ import annotations

import json

import pytest

from airnode import config, llama_server, monitoring, steps
from airnode.bundle import spec as bundlespec
from airnode.ollama import server_env
from airnode.serving import manifests
from airnode.steps import node_defaults
from airnode.steps.model_server import sizing_settings
from airnode.steps.monitoring import dashboards
from tests.upstream import KP_FIXTURE

DEFAULTS = node_defaults()  # the model server's settings with Ollama's

IMAGE = "ghcr.io/ggml-org/llama.cpp:server-b10488"
WEBUI = {
    "image": "ghcr.io/open-webui/open-webui:v0.7.0",
    "node_port": 31080,
    "data_dir": "/var/lib/airnode/open-webui",
    "store_size": "5Gi",
    "admin_email": "admin@example.com",
}
MODELS = [
    {"name": "tiny:1", "sha256": "a" * 64, "size": 10},
    {"name": "smollm2:135m", "sha256": "b" * 64, "size": 20},
]


@pytest.fixture(scope="module")
def crds():
    return manifests.crd_schemas(KP_FIXTURE / "manifests" / "setup")


def llama_docs(open_webui=None, **over):
    values = dict(
        node="airnode-lab",
        image=IMAGE,
        backend="llama-server",
        server_version="server-b10488",
        uid=999,
        gid=999,
        args=llama_server.server_args(
            model_file=llama_server.blob_name("a" * 64),
            alias="tiny:1",
            context_length=2048,
            parallel=2,
        ),
        open_webui=open_webui,
    )
    values.update(over)
    return manifests.render_model_server(**values)


def ollama_docs(open_webui=None):
    return manifests.render_model_server(
        node="airnode-lab",
        image="docker.io/library/debian:bookworm-slim",
        server_version="v0.13.5",
        uid=999,
        gid=999,
        env=server_env(DEFAULTS),
        open_webui=open_webui,
    )


def by_kind(ds, kind, name=None):
    return next(
        d for d in ds if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    )


# -- arguments and the served model ------------------------------------------------------------
def test_arguments_give_the_whole_kv_cache_and_the_slots():
    args = llama_server.server_args(
        model_file="blobs/sha256-" + "a" * 64, alias="tiny:1", context_length=4096, parallel=3
    )
    assert args == [
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
        "--metrics",
        "--model",
        "/models/blobs/sha256-" + "a" * 64,
        "--alias",
        "tiny:1",
        "--ctx-size",
        "12288",
        "--parallel",
        "3",
    ]
    with_threads = llama_server.server_args(
        model_file="m",
        alias="a",
        context_length=512,
        parallel=1,
        threads=6,
        extra=["--flash-attn", "on"],
    )
    assert with_threads[-4:] == ["--threads", "6", "--flash-attn", "on"]


def test_the_served_model_is_the_only_one_or_the_named_one():
    assert llama_server.served_model(MODELS[:1], "")["name"] == "tiny:1"
    assert llama_server.served_model(MODELS, "smollm2:135m")["sha256"] == "b" * 64
    with pytest.raises(ValueError, match=r"several models \(smollm2:135m, tiny:1\).*name it"):
        llama_server.served_model(MODELS, "")
    with pytest.raises(
        ValueError,
        match=r"llama_server_model = 'big' is not a model of the "
        r"bundle: one of smollm2:135m, tiny:1",
    ):
        llama_server.served_model(MODELS, "big")
    with pytest.raises(ValueError, match="holds no models"):
        llama_server.served_model([], "")


@pytest.mark.parametrize(
    "key,value,allowed",
    [
        ("model_server", "vllm", "one of ollama, llama-server"),
        ("llama_server_parallel", 0, "an integer >= 1 and <= 64"),
        ("llama_server_context_length", 100, "an integer >= 256"),
        ("llama_server_threads", -1, "0 lets llama-server decide"),
        ("llama_server_extra_args", ["--port", "9000"], "without the flags airnode sets"),
        ("llama_server_extra_args", "--flash-attn on", "a list of llama-server arguments"),
        ("llama_server_extra_args", ["on", "--flash-attn"], "starting with a flag"),
        ("open_webui", "yes", "true or false"),
        ("open_webui_data_dir", "/opt", "at least 2 levels deep"),
    ],
)
def test_bad_values_are_named_with_what_is_allowed(key, value, allowed):
    with pytest.raises(config.SettingError) as e:
        steps.check({key: value})
    assert str(e.value).startswith(f"{key} = {value!r} is not allowed: ")
    assert allowed in str(e.value)


def test_good_values_pass():
    assert steps.check(
        {
            "model_server": "llama-server",
            "llama_server_extra_args": ["--flash-attn", "on", "--no-webui"],
            "open_webui": True,
        }
    )


def test_sizing_counts_the_backends_own_settings():
    s = {
        **DEFAULTS,
        "model_server": "llama-server",
        "llama_server_context_length": 1024,
        "llama_server_parallel": 4,
    }
    assert sizing_settings(s) == (1024, 4, "f16")
    assert sizing_settings(DEFAULTS) == (
        DEFAULTS["ollama_context_length"],
        DEFAULTS["ollama_num_parallel"],
        DEFAULTS["ollama_kv_cache_type"],
    )


# -- manifests -------------------------------------------------------------------------------
def test_llama_server_manifests_are_valid(crds):
    ds = llama_docs()
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


def test_llama_server_runs_from_its_image_with_metrics_and_health_probes():
    pod = by_kind(llama_docs(), "StatefulSet")["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["name"] == "llama-server" and c["image"] == IMAGE
    assert c["imagePullPolicy"] == "Never"  # from the bundle, never pulled
    assert c["command"] == ["/app/llama-server"]
    assert "--metrics" in c["args"] and c["args"][c["args"].index("--ctx-size") + 1] == "4096"
    assert c["ports"] == [{"name": "http", "containerPort": 8080}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "http"}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["models"] == {"name": "models", "mountPath": "/models", "readOnly": True}
    assert c["args"][c["args"].index("--model") + 1].startswith("/models/blobs/sha256-")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True


def test_switching_backends_is_a_rollout_of_the_same_statefulset():
    """What Kubernetes will not change on a StatefulSet (selector, serviceName, claim templates)
    is the same for both backends, and the model store's volume is the same: a switch rolls the
    pod and keeps the store."""
    a, b = by_kind(ollama_docs(), "StatefulSet"), by_kind(llama_docs(), "StatefulSet")
    assert a["metadata"]["name"] == b["metadata"]["name"] == "model-server"
    for field in ("selector", "serviceName", "volumeClaimTemplates", "podManagementPolicy"):
        assert a["spec"][field] == b["spec"][field], field
    assert a["spec"]["template"] != b["spec"]["template"]
    assert by_kind(ollama_docs(), "PersistentVolume") == by_kind(llama_docs(), "PersistentVolume")
    # the Service too: same port 80 (clients in the cluster keep their URL), same NodePort
    assert by_kind(ollama_docs(), "Service")["spec"] == by_kind(llama_docs(), "Service")["spec"]
    assert by_kind(llama_docs(), "Service")["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "nodePort": 31434}
    ]


def test_prometheus_scrapes_llama_server_as_job_llama_server():
    ds = llama_docs()
    sm, svc = by_kind(ds, "ServiceMonitor"), by_kind(ds, "Service")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    assert svc["metadata"]["labels"][sm["spec"]["jobLabel"]] == "llama-server"
    assert not [d for d in ds if d["kind"] == "Probe"]
    board = json.loads(dashboards("airnode", "llama-server")["airnode-llama-server"])
    jobs = {
        t["expr"].split('job="', 1)[1].split('"', 1)[0]
        for p in board["panels"]
        for t in p["targets"]
        if 'job="' in t["expr"]
    }
    assert jobs == {"llama-server"}


def test_open_webui_is_valid_bound_to_its_own_volume_and_points_at_the_server(crds):
    for ds in (llama_docs(open_webui=WEBUI), ollama_docs(open_webui=WEBUI)):
        assert manifests.validate(ds, crds) == []
        pv = by_kind(ds, "PersistentVolume", "airnode-open-webui-airnode-lab")
        pvc = by_kind(ds, "PersistentVolumeClaim", "open-webui-data")
        store = by_kind(ds, "PersistentVolume", "airnode-models-airnode-lab")
        claim = by_kind(ds, "StatefulSet")["spec"]["volumeClaimTemplates"][0]["spec"]
        # no claimRef in what is applied (server-side apply would drop the binder's uid); the
        # store's claim cannot take Open WebUI's volume: another storage class
        assert "claimRef" not in pv["spec"] and "claimRef" not in store["spec"]
        assert (
            pvc["spec"]["storageClassName"]
            == pv["spec"]["storageClassName"]
            != claim["storageClassName"]
            == store["spec"]["storageClassName"]
        )
        assert pvc["spec"]["volumeName"] == pv["metadata"]["name"]
        assert pv["spec"]["local"]["path"] == "/var/lib/airnode/open-webui"
        pod = by_kind(ds, "Deployment")["spec"]["template"]["spec"]
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        # the OpenAI API under /v1 for either backend: a switch needs no new connection
        assert env["OPENAI_API_BASE_URL"]["value"] == "http://model-server.airnode.svc/v1"
        assert env["ENABLE_OLLAMA_API"]["value"] == "false"
        assert env["OFFLINE_MODE"]["value"] == "true"
        assert env["WEBUI_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "open-webui"
        # sign-up closed; the admin from the operator's email and a Secret made on the node
        assert env["ENABLE_SIGNUP"]["value"] == "false"
        assert env["WEBUI_ADMIN_EMAIL"]["value"] == "admin@example.com"
        assert env["WEBUI_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "open-webui-admin",
            "key": "password",
        }
        init = pod["initContainers"][0]
        assert (
            init["image"] == WEBUI["image"]
            and "cp -R -n /app/backend/data/." in init["command"][-1]
        )
        assert by_kind(ds, "Service", "open-webui")["spec"]["ports"][0]["nodePort"] == 31080
    assert not [d for d in llama_docs() if d["metadata"]["name"].startswith("open-webui")]


@pytest.mark.parametrize(
    "ref,version",
    [
        ("ghcr.io/ggml-org/llama.cpp:server-b10488", "server-b10488"),
        ("ghcr.io/ggml-org/llama.cpp@sha256:" + "ab" * 32, "sha256-" + "ab" * 6),
        ("127.0.0.1:5000/ggml-org/llama.cpp:server-b0", "server-b0"),
    ],
)
def test_the_version_label_of_an_image_is_short_and_label_safe(ref, version):
    assert llama_server.image_version(ref) == version
    assert len(version) <= 63


def test_an_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="model_server = 'vllm': one of ollama, llama-server"):
        llama_docs(backend="vllm")


# -- dashboard -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "expr,names",
    [
        (
            'sum(rate(llamacpp:tokens_predicted_total{job="x"}[5m]))',
            {"llamacpp:tokens_predicted_total"},
        ),
        (
            'sum by (reason) (kube_pod_container_status_waiting_reason{namespace="a"})',
            {"kube_pod_container_status_waiting_reason"},
        ),
        ('min(up{job="llama-server"}) / on (job) group_left foo:bar', {"up", "foo:bar"}),
        ("avg_over_time(x_total[1h] offset 5m) > 0.5", {"x_total"}),
    ],
)
def test_metric_names_of_a_query(expr, names):
    assert monitoring.query_metrics(expr) == names


def test_the_llama_server_dashboard_reads_llamacpp_and_kube_prometheus_metrics():
    """The llamacpp:* names are checked against a real server in tests/serving; the others must
    be metrics kube-prometheus itself queries (cAdvisor, kube-state-metrics)."""
    board = dashboards("airnode", "llama-server")["airnode-llama-server"]
    used = monitoring.dashboard_metrics(board)
    llamacpp = {m for m in used if m.startswith("llamacpp:")}
    assert {
        "llamacpp:tokens_predicted_total",
        "llamacpp:prompt_tokens_total",
        "llamacpp:requests_processing",
        "llamacpp:requests_deferred",
        "llamacpp:n_busy_slots_per_decode",
    } <= llamacpp
    upstream = "".join(p.read_text() for p in (KP_FIXTURE / "manifests").glob("*.yaml"))
    for metric in used - llamacpp - {"up"}:
        assert metric in upstream, f"{metric} is not a metric kube-prometheus knows"


def test_one_dashboard_per_backend():
    assert list(dashboards("airnode", "ollama")) == ["airnode-ollama"]
    assert list(dashboards("airnode", "llama-server")) == ["airnode-llama-server"]


# -- bundle spec -----------------------------------------------------------------------------
BASE = {
    "k0s": {"version": "v1.34.1+k0s.0"},
    "containerd": {"version": "2.1.4", "runc_version": "1.3.0"},
    "kube_prometheus": {"version": "v0.18.0"},
    "model_server": {"image": "docker.io/library/debian:bookworm-slim"},
}


def test_llama_server_and_open_webui_images_go_into_the_bundle():
    s = bundlespec.parse(
        {
            **BASE,
            "ollama": {"version": "v0.13.5"},
            "llama_server": {"image": IMAGE},
            "open_webui": {"image": WEBUI["image"]},
        }
    )
    assert IMAGE in s.extra_images and WEBUI["image"] in s.extra_images


def test_a_llama_server_only_bundle_needs_no_ollama():
    s = bundlespec.parse({**BASE, "llama_server": {"image": IMAGE}})
    assert s.ollama == ""
    assert "ollama" not in {a.kind for a in bundlespec.artifacts(s)}
    with pytest.raises(
        bundlespec.SpecError,
        match=r"\[ollama\] table is missing \(or "
        r"\[llama_server\]",
    ):
        bundlespec.parse(BASE)


def test_an_unpinned_server_image_is_refused():
    with pytest.raises(
        bundlespec.SpecError, match="llama_server.image = 'ghcr.io/ggml-org/llama.cpp': pin a tag"
    ):
        bundlespec.parse({**BASE, "llama_server": {"image": "ghcr.io/ggml-org/llama.cpp"}})


def test_open_webui_settings_that_clash_are_refused(tmp_path):
    from airnode.steps import node_defaults
    from airnode.steps.preflight import cross_checks

    ALL_DEFAULTS = node_defaults()
    password = tmp_path / "pw"
    password.write_text("s3cret\n")
    base = {
        **ALL_DEFAULTS,
        "open_webui": True,
        "open_webui_admin_email": "admin@example.com",
        "open_webui_admin_password_file": str(password),
    }
    assert cross_checks(base) == []
    same_port = cross_checks({**base, "open_webui_node_port": 31434})
    assert same_port == [
        "open_webui_node_port = 31434 is model_server_node_port too: give Open WebUI another port"
    ]
    inside = cross_checks({**base, "open_webui_data_dir": "/var/lib/airnode/models/webui"})
    assert "overlap" in inside[0] and "/var/lib/airnode/models/webui" in inside[0]
    assert cross_checks({**base, "open_webui": False, "open_webui_node_port": 31434}) == []
    with pytest.raises(
        config.SettingError, match="outside system and home directories .*/var/lib/k0s"
    ):
        steps.check({"open_webui_data_dir": "/var/lib/k0s/webui"})


def test_a_blob_missing_or_short_is_what_the_store_lacks():
    from airnode.ollama import blob_file, blobs_missing

    blobs = {blob_file("a" * 64): 10, blob_file("b" * 64): 5}  # tiny's whole, smollm2's short
    assert blobs_missing(MODELS, blobs) == [MODELS[1]]
    assert blobs_missing(MODELS, {}) == MODELS
    assert llama_server.blob_name("a" * 64) == "blobs/" + blob_file("a" * 64)
