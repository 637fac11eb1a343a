"""The second backend on a real, air-gapped guest: deploys/node.py with model_server =
llama-server from a fresh VM to a model server that passes its health and smoke check over the
OpenAI API, then a switch to Ollama and back on the same model store.

Real here: the guest, containerd, the real kube-prometheus manifests, the real tiny model
(SmolLM2-135M from PyPI) copied into the store by airnode and generating text through the real
llama.cpp HTTP server (xllamacpp) behind the NodePort and the SSH tunnel; its /metrics. Stand-ins:
the k0s double, Ollama's double, and tests/doubles/llama-server/llama-server (a launcher at
/app/llama-server taking llama-server's flags: the k0s double runs a pod's command on the VM's
own filesystem, and llama-server's binary cannot be had here)."""

from __future__ import annotations

import base64
import json
import os

import pytest

from airnode.paths import ROOT
from tests.conftest import TIMINGS
from tests.ggufs import smollm2, tiny_llama
from tests.node.conftest import http
from tests.oci import busybox_layout
from tests.registry import Registry
from tests.upstream import OLLAMA, make_runtime_bundle, xllamacpp_paths

pytestmark = pytest.mark.lab
SMOLLM2 = smollm2()
LAUNCHER = ROOT / "tests" / "doubles" / "llama-server" / "llama-server"
SETTINGS = ("--data", "preflight_reserved_mb=256")
LLAMA = (
    "--data",
    "model_server=llama-server",
    "--data",
    "llama_server_model=smollm2:135m",
    "--data",
    "llama_server_context_length=512",
    "--data",
    "llama_server_threads=2",
)
POD_UNIT = "k0s-double-pod-airnode-model-server-0.service"
STORE = "/var/lib/airnode/models"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    work = tmp_path_factory.mktemp("llama")
    models = {
        "smollm2:135m": SMOLLM2.read_bytes(),
        "tiny:1": tiny_llama(work / "tiny.gguf").read_bytes(),
    }
    with Registry(work / "registry") as reg:
        layout = busybox_layout(work / "layout", tag="1")
        ref = reg.push_layout(layout, "1", "airnode/busybox:1")
        # stands for ghcr.io/ggml-org/llama.cpp:server-<build>: the k0s double only checks
        # that the image is in containerd; the pod's command comes from /app on the VM
        server_ref = reg.push_layout(layout, "1", "ggml-org/llama.cpp:server-b0")
        webui_ref = reg.push_layout(layout, "1", "open-webui/open-webui:v0.7.0")
        data = make_runtime_bundle(
            work / "bundle",
            ref,
            reg.host,
            models=models,
            llama_server_ref=server_ref,
            open_webui_ref=webui_ref,
        )
    sha = {a["name"]: a["sha256"] for a in data["artifacts"] if a["kind"] == "model"}
    # Open WebUI's admin password, as an operator keeps it: a root-only file on this machine
    password = work / "webui-admin-password"
    password.write_text("lab-admin-" + base64.b32encode(os.urandom(10)).decode() + "\n")
    password.chmod(0o600)
    return {"dir": work / "bundle", "sha": sha, "webui_password": password}


@pytest.fixture(scope="module")
def llama_node(node):
    """The lab VM with the llama-server stand-in at /app (what the image would hold)."""
    cfg = str(node.inst.ssh_config)
    import subprocess

    node.sh("mkdir -p /app/python/xllamacpp")
    files = [str(p) for p in xllamacpp_paths()]
    subprocess.run(
        ["scp", "-q", "-F", cfg, *files, "airnode-lab:/app/python/xllamacpp/"], check=True
    )
    subprocess.run(
        ["scp", "-q", "-F", cfg, str(LAUNCHER), "airnode-lab:/app/llama-server"], check=True
    )
    node.sh("chmod -R a+rX /app && chmod 755 /app/llama-server")
    return node


def deploy(node, bundle, *extra, label=""):
    return node.deploy("--data", f"bundle_dir={bundle['dir']}", *SETTINGS, *extra, label=label)


def cluster(node) -> dict:
    return json.loads(node.sh("cat /var/lib/k0s/double-cluster.json"))


def test_two_models_and_none_named_is_refused_before_any_change(llama_node, bundle):
    llama_node.mark()
    run = deploy(llama_node, bundle, "--data", "model_server=llama-server")
    assert run.rc != 0
    assert (
        "llama_server_model is empty but the bundle holds several models (smollm2:135m, "
        "tiny:1): llama-server serves one, name it"
    ) in run.stderr
    assert llama_node.sh("ls /var/lib/airnode 2>/dev/null; true").strip() == ""


def test_a_fresh_node_serves_with_llama_server(llama_node, bundle):
    run = deploy(llama_node, bundle, *LLAMA, label="deploy #1, llama-server (fresh VM)")
    assert run.rc == 0, run.stderr[-4000:]
    assert (
        "Model server (StatefulSet) | Health check: API, 1 model(s) listed, one generation "
        "each" in run.changed
    )
    assert "(openai): healthy, 1 model(s) listed" in run.stderr
    assert "smollm2:135m: '" in run.stderr  # the real model's answer, quoted
    assert any(
        c.startswith("Models (seeded offline) | Model smollm2:135m into the store")
        for c in run.changed
    )
    # no Ollama installed for this backend; its user owns the store
    assert not llama_node.host.file("/opt/airnode/ollama").exists


def test_the_second_run_reports_zero_changes(llama_node, bundle):
    run = deploy(llama_node, bundle, *LLAMA, label="deploy #2, llama-server (no-op)")
    assert run.rc == 0, run.stderr[-3000:]
    assert run.changed == []
    # the prefetch contract: every read of the no-op re-run came from preflight's one batch
    TIMINGS.append((f"prefetch misses, no-op re-run (llama-server): {len(run.misses)}", 0.0))
    assert run.misses == [], run.misses


def test_the_gguf_is_a_blob_of_the_store_and_the_server_is_given_our_flags(llama_node, bundle):
    sha = bundle["sha"]["smollm2:135m"]
    blob = llama_node.host.file(f"{STORE}/blobs/sha256-{sha}")
    assert blob.exists and blob.user == "ollama" and blob.mode == 0o644
    assert llama_node.sh(f"sha256sum {STORE}/blobs/sha256-{sha}").split()[0] == sha
    assert not llama_node.host.file(f"{STORE}/blobs/sha256-{sha}.tmp").exists
    args = llama_node.sh(f"journalctl -u {POD_UNIT} -o cat --no-pager | grep '^args ' | tail -1")
    assert args.split()[1:] == [
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
        "--metrics",
        "--model",
        f"/models/blobs/sha256-{sha}",
        "--alias",
        "smollm2:135m",
        "--ctx-size",
        "512",
        "--parallel",
        "1",
        "--threads",
        "2",
    ]
    uid = llama_node.sh("id -u ollama").strip()
    pid = llama_node.sh(f"systemctl show -p MainPID --value {POD_UNIT}").strip()
    assert llama_node.sh(f"stat -c %u /proc/{pid}").strip() == uid  # runs as the store's owner


def test_prometheus_gets_llamacpp_metrics_from_the_service(llama_node):
    c = cluster(llama_node)
    assert "ServiceMonitor/airnode/model-server" in c["objects"]
    assert "Probe/airnode/model-server" not in c["objects"]
    status, metrics = http(llama_node.host, "GET", 31434, "/metrics")  # from the node itself
    assert status == 200
    assert "llamacpp:tokens_predicted_total" in metrics
    assert "llamacpp:requests_processing" in metrics
    assert "ConfigMap/monitoring/grafana-dashboard-airnode-llama-server" in c["objects"]
    assert "ConfigMap/monitoring/grafana-dashboard-airnode-ollama" not in c["objects"]


@pytest.mark.extended
def test_switching_to_ollama_keeps_the_store(llama_node, bundle):
    sha = bundle["sha"]["smollm2:135m"]
    run = deploy(llama_node, bundle, label="deploy #3, switch to Ollama")
    assert run.rc == 0, run.stderr[-4000:]
    assert f"(ollama, {OLLAMA[1:]}): healthy, 2 model(s) listed" in run.stderr
    assert llama_node.sh(f"sha256sum {STORE}/blobs/sha256-{sha}").split()[0] == sha
    c = cluster(llama_node)
    # the one ServiceMonitor now has the exporter probe each replica
    endpoints = c["objects"]["ServiceMonitor/airnode/model-server"]["spec"]["endpoints"]
    assert [e["path"] for e in endpoints] == ["/probe"]
    assert "Probe/airnode/model-server" not in c["objects"]
    assert "ConfigMap/monitoring/grafana-dashboard-airnode-ollama" in c["objects"]
    assert c["bound"]["airnode/models-model-server-0"] == "airnode-models-airnode-lab"
    sts = c["objects"]["StatefulSet/airnode/model-server"]
    assert sts["spec"]["template"]["spec"]["containers"][0]["name"] == "ollama"


@pytest.mark.extended
def test_switching_back_copies_nothing_and_serves_again(llama_node, bundle):
    sha = bundle["sha"]["smollm2:135m"]
    run = deploy(llama_node, bundle, *LLAMA, label="deploy #4, back to llama-server")
    assert run.rc == 0, run.stderr[-4000:]
    assert not [c for c in run.changed if "into the store" in c]
    assert "(openai): healthy, 1 model(s) listed" in run.stderr
    assert llama_node.sh(f"sha256sum {STORE}/blobs/sha256-{sha}").split()[0] == sha
    again = deploy(llama_node, bundle, *LLAMA)
    assert again.rc == 0 and again.changed == []


def test_the_acceptance_suite_passes_on_the_llama_server_node(llama_node):
    from tests.lab.test_serving import acceptance

    r = acceptance(llama_node)
    assert r.returncode == 0, r.stdout[-4000:]
    assert "passed" in r.stdout and " failed" not in r.stdout


def webui(bundle) -> tuple[str, ...]:
    return (
        "--data",
        "open_webui=true",
        "--data",
        "open_webui_admin_email=admin@lab.local",
        "--data",
        f"open_webui_admin_password_file={bundle['webui_password']}",
    )


def test_open_webui_is_applied_with_its_data_volume_and_a_key_made_on_the_node(llama_node, bundle):
    """The k0s double runs no Deployment: what is checked is what the deploy applies and makes
    on the node; Open WebUI's pod itself is checked only on a real node (tests/node). The run
    prints every command it runs (-vv): the admin's password is on none of them."""
    WEBUI = webui(bundle)
    password = bundle["webui_password"].read_text().strip()
    run = deploy(llama_node, bundle, "-vv", *LLAMA, *WEBUI, label="deploy #5, Open WebUI on")
    assert run.rc == 0, run.stderr[-4000:]
    # the command that made the Secret, as -vv printed it: the file's path, not its content
    assert (
        "admin-secret.sh" in run.stderr and "/run/airnode/open-webui-admin-password" in run.stderr
    )
    assert password not in run.stdout + run.stderr
    admin = cluster(llama_node)["objects"]["Secret/airnode/open-webui-admin"]["data"]
    assert base64.b64decode(admin["password"]).decode() == password
    # the uploaded file is gone; its directory root's only
    assert llama_node.sh("ls -A /run/airnode; stat -c %a /run/airnode").split() == ["700"]
    c = cluster(llama_node)
    for key in (
        "Deployment/airnode/open-webui",
        "Service/airnode/open-webui",
        "PersistentVolumeClaim/airnode/open-webui-data",
        "PersistentVolume//airnode-open-webui-airnode-lab",
        "Secret/airnode/open-webui",
    ):
        assert key in c["objects"], key
    d = c["objects"]["Deployment/airnode/open-webui"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in d["env"]}
    assert env["OPENAI_API_BASE_URL"] == "http://model-server.airnode.svc/v1"
    assert env["ENABLE_SIGNUP"] == "false" and env["WEBUI_ADMIN_EMAIL"] == "admin@lab.local"
    assert d["image"].endswith("/open-webui/open-webui:v0.7.0")
    key = c["objects"]["Secret/airnode/open-webui"]["data"]["secret-key"]
    raw = base64.b64decode(key).decode()
    assert len(base64.b64decode(raw)) == 32  # 32 random bytes, made on the node
    assert raw not in run.stdout + run.stderr  # and never printed
    data = llama_node.host.file("/var/lib/airnode/open-webui")
    assert data.is_directory and data.mode == 0o700
    again = deploy(llama_node, bundle, *LLAMA, *WEBUI)
    assert again.rc == 0 and again.changed == []
    assert cluster(llama_node)["objects"]["Secret/airnode/open-webui"]["data"]["secret-key"] == key


def test_turning_open_webui_off_keeps_its_data(llama_node, bundle):
    llama_node.sh("echo chats > /var/lib/airnode/open-webui/webui.db")
    run = deploy(llama_node, bundle, *LLAMA, label="deploy #6, Open WebUI off")
    assert run.rc == 0, run.stderr[-4000:]
    c = cluster(llama_node)
    assert "Deployment/airnode/open-webui" not in c["objects"]
    assert "Service/airnode/open-webui" not in c["objects"]
    assert "PersistentVolumeClaim/airnode/open-webui-data" in c["objects"]
    assert llama_node.sh("cat /var/lib/airnode/open-webui/webui.db").strip() == "chats"


OLD_OBJECTS = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: ollama, namespace: airnode}
spec:
  serviceName: ollama
  selector: {matchLabels: {app.kubernetes.io/name: ollama}}
  template:
    metadata: {labels: {app.kubernetes.io/name: ollama}}
    spec:
      containers:
        - {name: ollama, image: IMAGE, imagePullPolicy: Never, command: [/bin/sleep, "3600"]}
---
apiVersion: v1
kind: Service
metadata: {name: ollama, namespace: airnode}
spec:
  type: NodePort
  selector: {app.kubernetes.io/name: ollama}
  ports: [{name: http, port: 11434, targetPort: 11434, nodePort: 31999}]
---
apiVersion: monitoring.coreos.com/v1
kind: Probe
metadata: {name: ollama, namespace: airnode}
spec: {jobName: ollama, prober: {url: "blackbox-exporter.monitoring.svc:19115"}}
---
# Ollama's monitor until session 14: a Probe of the Service (one replica at a time)
apiVersion: monitoring.coreos.com/v1
kind: Probe
metadata: {name: model-server, namespace: airnode}
spec: {jobName: ollama, prober: {url: "blackbox-exporter.monitoring.svc:19115"}}
"""


def test_objects_named_ollama_from_before_the_rename_are_replaced(llama_node, bundle):
    """A node deployed when the model server's objects were named `ollama`: they are deleted
    before the apply (their Service held the NodePort, their claim the store's volume); so is
    the Probe that monitored Ollama before its ServiceMonitor."""
    image = json.loads(llama_node.sh("cat /var/lib/airnode/bundle/bundle.json"))["images"][
        "model-server"
    ][0]
    llama_node.sh(
        "cat > /tmp/old.yaml <<'EOF'\n" + OLD_OBJECTS.replace("IMAGE", image) + "EOF\n"
        "k0s kubectl apply --server-side -f /tmp/old.yaml >/dev/null"
    )
    assert "StatefulSet/airnode/ollama" in cluster(llama_node)["objects"]
    run = deploy(llama_node, bundle, *LLAMA, "--data", "llama_server_threads=1")
    assert run.rc == 0, run.stderr[-4000:]
    objects = cluster(llama_node)["objects"]
    for gone in (
        "StatefulSet/airnode/ollama",
        "Service/airnode/ollama",
        "Probe/airnode/ollama",
        "Probe/airnode/model-server",
    ):
        assert gone not in objects, gone
    assert "StatefulSet/airnode/model-server" in objects
    calls = llama_node.sh("cat /run/k0s-double/calls.log")
    assert "delete pvc models-ollama-0" in calls and "patch pv airnode-models-airnode-lab" in calls
