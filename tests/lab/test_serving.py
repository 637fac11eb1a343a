"""A whole node on a real, air-gapped guest: deploys/node.py from a fresh VM to a model server
that passes its health and smoke check, then re-runs, lost and added models, an Ollama upgrade
to a .tar.zst release (airnode's former pin to today's), and a rollout that never gets ready.

Real here: the guest (kernel, systemd, users, files), containerd and the image it must hold,
the real kube-prometheus v0.18.0 manifests, the GGUF files and their digests, the SSH tunnel the
health check goes through. Doubles (tests/doubles/): k0s (a toy cluster that runs the
StatefulSet's pod as a systemd unit with the manifest's mounts, user and env) and Ollama's
binary (its CLI and HTTP API over the real on-disk store layout)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tomllib

import pytest

from airnode import lab, nvidia, ollama
from airnode.bundle.manifest import human
from airnode.paths import ROOT
from tests.conftest import TIMINGS
from tests.ggufs import tiny_llama
from tests.lab.conftest import gpu_driver, gpu_on_pci, no_gpu
from tests.oci import busybox_layout
from tests.registry import Registry
from tests.upstream import OLLAMA, make_runtime_bundle

pytestmark = pytest.mark.lab
SETTINGS = ("--data", "preflight_reserved_mb=256")  # the doubles' models need little
STORE = "/var/lib/airnode/models/manifests/registry.ollama.ai"
POD_UNIT = "k0s-double-pod-airnode-model-server-0.service"
SEED_UNIT = "airnode-ollama-seed.service"  # how airnode seeded models before
FORMER = "v0.13.5"  # airnode's Ollama pin before v0.32.15
CALLS = "/run/k0s-double/calls.log"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    work = tmp_path_factory.mktemp("serving")
    ggufs = {
        name: tiny_llama(work / f"m{i}.gguf", seed=i).read_bytes()
        for i, name in enumerate(["tiny:1", "airnode/tiny:2", "tiny:3"])
    }
    two = {k: ggufs[k] for k in ("tiny:1", "airnode/tiny:2")}
    out = {"ggufs": ggufs}
    with Registry(work / "registry") as reg:
        ref = reg.push_layout(busybox_layout(work / "layout", tag="1"), "1", "airnode/busybox:1")
        # the first two at airnode's former pin (a .tgz), the third at today's (.tar.zst)
        for which, models in (("first", two), ("more", ggufs)):
            out[which] = make_runtime_bundle(
                work / which, ref, reg.host, ollama=FORMER, models=models
            )
        out["zst"] = make_runtime_bundle(work / "zst", ref, reg.host, models=ggufs)
        # for a GPU node: [nvidia], busybox standing for NVIDIA's two images
        layout = work / "layout"
        nvidia_refs = (
            reg.push_layout(layout, "1", "nvidia/k8s-device-plugin:v0.20.0"),
            reg.push_layout(layout, "1", "nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-distroless"),
        )
        out["gpu"] = make_runtime_bundle(
            work / "gpu", ref, reg.host, models=ggufs, nvidia_refs=nvidia_refs
        )
    out["dirs"] = {k: work / k for k in ("first", "more", "zst", "gpu")}
    return out


def deploy(node, bundles, which, *extra, label=""):
    return node.deploy(
        "--data", f"bundle_dir={bundles['dirs'][which]}", *SETTINGS, *extra, label=label
    )


def cluster(node) -> dict:
    return json.loads(node.sh("cat /var/lib/k0s/double-cluster.json"))


def pod_env(node) -> dict[str, str]:
    """What the model server's last start was given (the Ollama double logs it)."""
    out = {}
    for line in node.sh(f"journalctl -u {POD_UNIT} -o cat --no-pager | grep '^env '").splitlines():
        k, _, v = line[4:].partition("=")
        out[k] = v
    return out


def manifest_of(node, name: str) -> dict:
    ns, _, rest = name.rpartition("/")
    model, _, tag = rest.partition(":")
    return json.loads(node.sh(f"cat {STORE}/{ns or 'library'}/{model}/{tag or 'latest'}"))


RUNS: dict = {}


def test_a_fresh_node_ends_with_a_healthy_model_server(node, bundles):
    run = deploy(node, bundles, "first", label="deploy #1, whole node (fresh VM)")
    assert run.rc == 0, run.stderr[-4000:]
    RUNS["first"] = run
    assert (
        "Model server (StatefulSet) | Health check: API, 2 model(s) listed, one generation "
        "each" in run.changed
    )
    # the check went through the SSH tunnel to the NodePort and each model generated text
    assert (
        "airnode-lab port 31434 (the Service's NodePort) (ollama, 0.13.5): healthy, "
        "2 model(s) listed" in run.stderr
    )
    for model in ("tiny:1", "airnode/tiny:2"):
        # real generation (llama.cpp on tiny_llama's random weights): a run of its words
        assert re.search(rf"{re.escape(model)}: '[a-z][a-z ]*'", run.stderr), run.stderr[-3000:]


def test_the_second_run_reports_zero_changes(node, bundles):
    run = deploy(node, bundles, "first", label="deploy #2, whole node (no-op)")
    assert run.rc == 0, run.stderr[-3000:]
    assert run.changed == []
    # the prefetch contract: every read of the no-op re-run came from preflight's one batch
    TIMINGS.append((f"prefetch misses, no-op re-run (whole node): {len(run.misses)}", 0.0))
    assert run.misses == [], run.misses


def acceptance(node, *args):
    """The acceptance suite users run against a real node (tests/node), here against the lab
    VM, without the checks that need a real Kubernetes API."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(ROOT / "tests/node"),
            f"--hosts=ssh://{lab.SSH_ALIAS}",
            f"--ssh-config={node.inst.ssh_config}",
            "-m",
            "not cluster",
            "-p",
            "no:cacheprovider",
            "-q",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )


def test_the_acceptance_suite_passes_on_the_deployed_node(node):
    r = acceptance(node)
    assert r.returncode == 0, r.stdout[-4000:]
    passed = re.search(r"(\d+) passed", r.stdout)
    assert passed and int(passed.group(1)) >= 14, r.stdout[-2000:]


def test_ollama_is_installed_from_the_tarball_in_its_own_version_directory(node):
    h = node.host
    assert h.file("/opt/airnode/ollama/v0.13.5/bin/ollama").mode & 0o111
    assert h.file("/opt/airnode/ollama/current").linked_to == "/opt/airnode/ollama/v0.13.5"
    assert h.file("/usr/local/bin/ollama").linked_to == "/opt/airnode/ollama/v0.13.5/bin/ollama"
    assert "client version is 0.13.5" in node.sh("ollama -v")
    user = h.user("ollama")
    assert user.exists and user.uid < 1000 and user.shell == "/bin/false"
    assert user.home == "/usr/share/ollama" and user.group == "ollama"
    assert h.file("/usr/share/ollama").user == "ollama"


def test_models_are_in_the_store_in_ollamas_layout_with_the_bundles_digests(node, bundles):
    h = node.host
    store = h.file("/var/lib/airnode/models")
    assert (store.user, store.group, store.mode) == ("ollama", "ollama", 0o750)
    for name in ("tiny:1", "airnode/tiny:2"):
        digest = hashlib.sha256(bundles["ggufs"][name]).hexdigest()
        m = manifest_of(node, name)
        layer = next(
            la for la in m["layers"] if la["mediaType"] == "application/vnd.ollama.image.model"
        )
        assert layer["digest"] == f"sha256:{digest}"
        blob = h.file(f"/var/lib/airnode/models/blobs/sha256-{digest}")
        assert blob.size == len(bundles["ggufs"][name]) and blob.user == "ollama"
        assert node.sh(f"sha256sum {blob.path}").split()[0] == digest
        # airnode registered the blob it placed as the model's layer, as it is (no "from":
        # that is create's record of a source path), and the config blob is there
        assert layer == {"mediaType": ollama.MODEL_MEDIA_TYPE, "digest": f"sha256:{digest}",
                         "size": blob.size}  # fmt: skip
        config = m["config"]["digest"].replace(":", "-")
        assert (
            json.loads(node.sh(f"cat /var/lib/airnode/models/blobs/{config}"))["model_format"]
            == "gguf"
        )


def test_each_model_is_stored_once_on_the_node(node, bundles):
    """Models go straight into the store: none in the bundle directory, no .partial left, and
    each GGUF once among the blobs; every other blob is a small JSON config."""
    assert node.sh("find /var/lib/airnode/bundle -name '*.gguf'") == ""
    blobs = dict(
        line.split()
        for line in node.sh(
            "find /var/lib/airnode/models/blobs -type f -printf '%f %s\\n'"
        ).splitlines()
    )
    assert not [b for b in blobs if not re.fullmatch(r"sha256-[0-9a-f]{64}", b)], blobs
    ggufs = {
        "sha256-" + hashlib.sha256(data).hexdigest(): len(data)
        for name, data in bundles["ggufs"].items()
        if name in ("tiny:1", "airnode/tiny:2")
    }
    assert {b: int(blobs[b]) for b in ggufs} == ggufs
    others = [b for b in blobs if b not in ggufs]
    assert others and all(int(blobs[b]) < 4096 for b in others), blobs
    for b in others:
        json.loads(node.sh(f"cat /var/lib/airnode/models/blobs/{b}"))


def test_models_were_registered_without_running_an_ollama(node):
    # airnode writes the config blob and manifest itself: no seeding server, no Modelfiles
    assert node.sh(f"journalctl -u {SEED_UNIT} -q -o cat --no-pager | wc -l").strip() == "0"
    assert not node.host.file("/var/lib/airnode/modelfiles").exists
    store = "/var/lib/airnode/models"
    assert node.sh(f"stat -c %U {store}/manifests/registry.ollama.ai/airnode/tiny").strip() == (
        "ollama"
    )
    assert node.sh(f"stat -c '%U %a' {STORE}/library/tiny/1").strip() == "ollama 644"
    assert node.sh(f"ls -A {store} | grep -c airnode-register || true").strip() == "0"


def test_the_statefulset_pod_runs_the_tarballs_ollama_as_the_manifest_says(node):
    env = pod_env(node)
    uid = node.host.user("ollama").uid
    assert env["uid"] == str(uid)  # runAsUser: the host's ollama user, which owns the store
    assert env["OLLAMA_HOST"] == "0.0.0.0:11434" and env["OLLAMA_MODELS"] == "/models"
    assert env["OLLAMA_KEEP_ALIVE"] == "5m" and env["OLLAMA_NUM_PARALLEL"] == "1"
    assert env["OLLAMA_CONTEXT_LENGTH"] == "4096" and env["OLLAMA_NOPRUNE"] == "1"
    c = cluster(node)
    sts = c["objects"]["StatefulSet/airnode/model-server"]
    vols = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert vols["ollama"]["hostPath"]["path"] == "/opt/airnode/ollama/v0.13.5"
    assert (
        c["objects"]["PersistentVolume//airnode-models-airnode-lab"]["spec"]["local"]["path"]
        == "/var/lib/airnode/models"
    )
    assert c["bound"]["airnode/models-model-server-0"] == "airnode-models-airnode-lab"
    monitor = c["objects"]["ServiceMonitor/airnode/model-server"]["spec"]["endpoints"][0]
    assert monitor["path"] == "/probe" and monitor["params"] == {"module": ["http_2xx"]}
    assert "RoleBinding/airnode/prometheus-k8s" in c["objects"]


def test_kube_prometheus_setup_then_established_crds_then_the_rest_with_our_dashboard(node):
    calls = node.sh(f"cat {CALLS}").splitlines()

    def first(fragment):
        return next(i for i, c in enumerate(calls) if fragment in c)

    setup = first("kube-prometheus/setup.yaml")
    wait = first("wait --for condition=Established --all CustomResourceDefinition")
    main = first("kube-prometheus/main.yaml")
    server = first("-f /var/lib/airnode/manifests/model-server.yaml")
    assert setup < wait < main < server
    assert "--server-side" in calls[setup] and "--server-side" in calls[main]
    assert sum("kube-prometheus/main.yaml" in c for c in calls) == 1  # the no-op run: no apply
    c = cluster(node)
    assert len(c["established"]) == 10  # every CRD of kube-prometheus v0.18.0
    grafana = c["objects"]["Deployment/monitoring/grafana"]["spec"]["template"]["spec"]
    assert {
        "name": "grafana-dashboard-airnode-ollama",
        "configMap": {"name": "grafana-dashboard-airnode-ollama"},
    } in grafana["volumes"]
    mounts = grafana["containers"][0]["volumeMounts"]
    assert any(m["mountPath"] == "/grafana-dashboard-definitions/0/airnode-ollama" for m in mounts)
    board = json.loads(
        c["objects"]["ConfigMap/monitoring/grafana-dashboard-airnode-ollama"]["data"][
            "airnode-ollama.json"
        ]
    )
    assert board["uid"] == "airnode-ollama"


K0S_USERS = ("etcd", "konnectivity-server", "kube-apiserver", "kube-scheduler")


def test_k0s_made_its_controller_users_and_ollama_kept_ids_of_its_own(node):
    # k0s install controller runs useradd for these (the stand-in as upstream does); the ollama
    # user, whose uid was chosen before any change (the model server's runAsUser), was made
    # first, so nobody took its id
    ids = {}
    for user in (*K0S_USERS, "ollama"):
        u = node.host.user(user)
        assert u.exists, user
        ids[user] = (u.uid, u.gid)
    assert len({uid for uid, _ in ids.values()}) == 5
    assert node.host.user("etcd").home == "/var/lib/k0s"
    assert pod_env(node)["uid"] == str(ids["ollama"][0])


def test_the_model_api_answers_on_127_0_0_1_only_not_on_the_lan(node):
    # k0s_node_ports_on_lan = false: kube-proxy's nodePortAddresses = 127.0.0.0/8
    assert 'nodePortAddresses: ["127.0.0.0/8"]' in node.sh("cat /etc/k0s/k0s.yaml")
    listening = node.sh("ss -Htln 'sport = :31434'")
    assert "127.0.0.1:31434" in listening and "0.0.0.0:31434" not in listening, listening
    lan = node.sh("ip -4 -o addr show scope global | awk '{print $4}' | cut -d/ -f1").split()
    assert lan, "the VM has a network address"
    probe = (
        "python3.11 -c 'import socket,sys; s=socket.socket(); s.settimeout(3); "
        "print(s.connect_ex((sys.argv[1], 31434)))' "
    )
    assert node.sh(probe + "127.0.0.1").strip() == "0"
    assert node.sh(probe + lan[0]).strip() != "0"  # refused on the node's own LAN address


def test_the_kubelet_and_containerd_agree_on_systemd_cgroups(node):
    # Debian's containerd 1.6 does not tell the kubelet its cgroup driver (CRI RuntimeConfig
    # came with 2.0): k0s.yaml's default worker profile does
    assert re.match(r"containerd \S+ 1\.", node.sh("containerd --version"))
    assert "SystemdCgroup = true" in node.sh("containerd config dump")
    cfg = node.sh("cat /etc/k0s/k0s.yaml")
    assert "cgroupDriver: systemd" in cfg
    assert node.sh("k0s kubectl get nodes").split()[-4] == "Ready"
    assert node.sh("test -e /run/k0s-double/node-not-ready || echo none").strip() == "none"


def test_every_pod_the_node_runs_was_scheduled_within_its_allocatable(node):
    c = cluster(node)
    assert c["pending"] == {}
    scheduled = c["scheduled"]
    # one replica of each of kube-prometheus's, k0s's own, and the model server
    for pod in (
        "monitoring/prometheus-k8s-0",
        "monitoring/alertmanager-main-0",
        "kube-system/coredns-0",
        "kube-system/kube-router-0",
        "airnode/model-server-0",
    ):
        assert pod in scheduled, pod
    assert "monitoring/prometheus-k8s-1" not in scheduled
    cpus = int(node.sh("nproc"))
    mem = int(node.sh("awk '/^MemTotal:/ {print $2}' /proc/meminfo")) * 1024
    assert sum(p["cpu"] for p in scheduled.values()) <= cpus * 1000
    assert sum(p["mem"] for p in scheduled.values()) <= mem - 100 * 1024 * 1024
    status = json.loads(node.sh("k0s status -o json"))
    assert {
        "Version",
        "Pid",
        "PPid",
        "Role",
        "SysInit",
        "StubFile",
        "Output",
        "Workloads",
        "SingleNode",
        "Args",
        "WorkerToAPIConnectionStatus",
        "ClusterConfig",
        "K0sVars",
    } == set(status)
    assert status["Role"] == "controller" and status["SingleNode"] is True


def refused(node, bundles, which, *extra) -> str:
    """A deploy that must stop before any change (the node's fingerprint the same): its
    stderr."""
    node.mark()
    before = node.fingerprint()
    run = deploy(node, bundles, which, *extra)
    assert run.rc != 0
    assert node.fingerprint() == before
    return run.stderr


def test_pods_that_would_not_fit_are_refused_before_any_change(node, bundles):
    err = refused(node, bundles, "first", "--data", "model_server_cpu_request=1500m")
    assert "ask for more cpu than it has" in err
    assert "airnode/model-server" in err and "model_server_cpu_request" in err
    assert "node allocatable" in err and "nothing was changed" in err


def test_a_model_lost_from_the_store_is_seeded_again_alone(node, bundles):
    other = f"{STORE}/airnode/tiny/2"
    before = node.sh(f"stat -c %Y {other}")
    node.sh(f"rm {STORE}/library/tiny/1")
    run = deploy(node, bundles, "first")
    assert run.rc == 0, run.stderr[-3000:]
    assert run.changed == ["Models (seeded offline) | Seed models offline: tiny:1"]
    assert manifest_of(node, "tiny:1")["layers"]
    assert node.sh(f"stat -c %Y {other}") == before  # the other model was not touched


def test_a_damaged_blob_that_keeps_its_size_is_found_by_the_deep_check(node, bundles):
    """A blob is trusted by its size on a normal run (the stat check's blind spot); with
    bundle_deep_check it is hashed, found damaged, and shipped again."""
    digest = hashlib.sha256(bundles["ggufs"]["tiny:1"]).hexdigest()
    blob = f"/var/lib/airnode/models/blobs/sha256-{digest}"
    node.sh(f"printf X | dd of={blob} bs=1 seek=4000 conv=notrunc status=none")
    assert deploy(node, bundles, "first").changed == []
    run = deploy(node, bundles, "first", "--data", "bundle_deep_check=true", label="deep check")
    assert run.rc == 0, run.stderr[-3000:]
    assert [c for c in run.changed if c.startswith("Models")] == [
        "Models (seeded offline) | Model tiny:1 into the store: upload "
        + human(len(bundles["ggufs"]["tiny:1"])),
        f"Models (seeded offline) | Model tiny:1 into the store: sha256 checked, then {blob}",
    ]
    assert node.sh(f"sha256sum {blob}").split()[0] == digest
    assert deploy(node, bundles, "first", "--data", "bundle_deep_check=true").changed == []


def test_a_model_added_to_the_bundle_is_seeded_alone_and_checked(node, bundles):
    run = deploy(node, bundles, "more", label="deploy: one model added")
    assert run.rc == 0, run.stderr[-3000:]
    seeded = [n for n in run.changed if n.startswith("Models (seeded offline) | Seed")]
    assert seeded == ["Models (seeded offline) | Seed models offline: tiny:3"]
    assert (
        "Model server (StatefulSet) | Health check: API, 3 model(s) listed, one generation "
        "each" in run.changed
    )
    assert not [
        n for n in run.changed if n.startswith(("k0s", "containerd", "kube-prometheus", "Ollama"))
    ]
    assert deploy(node, bundles, "more").changed == []


def test_an_ollama_upgrade_to_a_tar_zst_release_rolls_the_server_and_keeps_the_models(
    node, bundles
):
    starts = node.sh("grep -c 'start airnode/model-server-0' /run/k0s-double/pods.log").strip()
    manifests = node.sh(f"find {STORE} -type f | sort | xargs sha256sum")
    run = deploy(node, bundles, "zst", label=f"deploy: Ollama {FORMER} -> {OLLAMA} (.tar.zst)")
    assert run.rc == 0, run.stderr[-3000:]
    assert (
        f"Ollama (offline, from the release tarball) | Unpack Ollama {OLLAMA} (.tar.zst) into "
        f"/opt/airnode/ollama/{OLLAMA}" in run.changed
    )
    assert (
        "Model server (StatefulSet) | Wait for the rollout of statefulset/model-server (at most "
        "600s)" in run.changed
    )
    assert f"(ollama, {OLLAMA[1:]}): healthy, 3 model(s) listed" in run.stderr
    assert (
        f"Model server (StatefulSet) | Remove Ollama versions no longer in use: {FORMER}"
        in run.changed
    )
    assert not [
        n for n in run.changed if n.startswith(("k0s", "containerd", "kube-prometheus", "Models"))
    ]
    assert (
        node.host.file("/opt/airnode/ollama/current").linked_to == f"/opt/airnode/ollama/{OLLAMA}"
    )
    assert not node.host.file(f"/opt/airnode/ollama/{FORMER}").exists
    assert (
        int(node.sh("grep -c 'start airnode/model-server-0' /run/k0s-double/pods.log"))
        == int(starts) + 1
    )  # rolled once
    assert node.sh(f"find {STORE} -type f | sort | xargs sha256sum") == manifests
    assert deploy(node, bundles, "zst").changed == []


def test_a_setting_kubernetes_cannot_change_in_place_is_refused_before_any_change(node, bundles):
    err = refused(node, bundles, "zst", "--data", "model_server_store_size=80Gi")
    assert "model_server_store_size '50Gi' -> '80Gi': Kubernetes cannot change these" in err
    assert "deploys/teardown.py" in err and "nothing was changed" in err


def test_a_server_that_never_gets_ready_fails_the_run_bounded_and_says_why(node, bundles):
    stuck = (
        "--data",
        'ollama_extra_env={"OLLAMA_DOUBLE_NEVER_READY": "1"}',
        "--data",
        "model_server_rollout_timeout=30",
    )
    run = deploy(node, bundles, "zst", *stuck, label="deploy: rollout never ready (30 s)")
    assert run.rc != 0
    assert (
        "statefulset/model-server in airnode not ready after 30s (model_server_rollout_timeout)"
        in run.stderr
    )
    assert "the double was told never to get ready" in run.stderr  # the pod's log is shown
    assert run.seconds < 240
    # back to good settings: the next run applies again (the failed one was not recorded)
    run = deploy(node, bundles, "zst")
    assert run.rc == 0, run.stderr[-3000:]
    assert f"(ollama, {OLLAMA[1:]}): healthy, 3 model(s) listed" in run.stderr
    assert deploy(node, bundles, "zst").changed == []


def test_after_k0s_reset_the_next_run_rebuilds_the_cluster_and_keeps_the_models(node, bundles):
    store = node.sh("find /var/lib/airnode/models -type f | sort | xargs sha256sum")
    # wipes /var/lib/k0s: the cluster and what it recorded (the socket, as k0s's docs say for
    # an external containerd)
    node.sh("k0s stop && k0s reset --cri-socket=remote:unix:///run/containerd/containerd.sock")
    run = deploy(node, bundles, "zst", label="deploy after k0s reset")
    assert run.rc == 0, run.stderr[-3000:]
    for op in (
        "kube-prometheus | Apply kube-prometheus v0.18.0 (server-side): setup, CRDs "
        "Established, the rest",
        "Model server (StatefulSet) | Apply the model server (ollama, server-side) in namespace "
        "airnode",
    ):
        assert op in run.changed
    assert any(n.startswith("k0s | k0s install controller") for n in run.changed)
    assert f"(ollama, {OLLAMA[1:]}): healthy, 3 model(s) listed" in run.stderr
    assert not [n for n in run.changed if n.startswith("Models")]  # the store survived
    assert node.sh("find /var/lib/airnode/models -type f | sort | xargs sha256sum") == store
    assert deploy(node, bundles, "zst").changed == []


def test_the_acceptance_suite_fails_naming_what_is_wrong(node):
    node.sh(f"systemctl stop {POD_UNIT}")  # the model server is down
    r = acceptance(node, "-k", "serving or runtime")
    assert r.returncode != 0
    assert "test_the_api_answers" in r.stdout and "FAILED" in r.stdout
    assert re.search(r"\d+ failed", r.stdout)


@pytest.mark.extended
def test_a_gpu_node_gets_the_toolkit_the_nvidia_runtime_and_its_model_server_on_the_gpu(
    node, bundles
):
    """A stand-in GPU (its PCI function, driver files, nvidia-smi: tests/lab/conftest.py) and a
    bundle with [nvidia]: the toolkit's stand-in .debs installed by the real dpkg, the nvidia
    runtime read by the real containerd, and the k0s stand-in's rules for a GPU pod (the
    RuntimeClass, containerd's handler, nvidia.com/gpu from a device plugin that registers
    with k0s's kubelet) met. Last in the module: the node stays a GPU node. (Teardown's purge of
    the toolkit packages ran here once, 67 s; in the suite it is left to the unit tests of what
    is recorded and purged, to keep the suite's time.)"""
    try:
        gpu_on_pci(node)
        gpu_driver(node)
        gpu = ("--data", "model_server_gpus=1")
        # a bundle without [nvidia]: refused before any change, saying what to add
        refused = deploy(node, bundles, "zst", *gpu, label="deploy: GPUs, no [nvidia] (refused)")
        assert refused.rc != 0 and "nothing was changed" in refused.stderr
        assert "the bundle lacks the NVIDIA Container Toolkit" in refused.stderr
        assert "lacks NVIDIA's device plugin and dcgm-exporter images" in refused.stderr
        run = deploy(node, bundles, "gpu", *gpu, label="deploy: a GPU node (stand-in GPU)")
        assert run.rc == 0, run.stderr[-4000:]
        [install] = [
            n for n in run.changed if n.startswith("containerd | Install the NVIDIA Container")
        ]
        assert all(f"{p} 1.20.0-1" in install for p in nvidia.PACKAGES), install
        assert "containerd | containerd config (CRI, SystemdCgroup, nvidia runtime)" in run.changed
        assert "containerd | Restart containerd (installed or config changed)" in run.changed
        status = node.sh(
            "dpkg-query -W -f='${Package} ${db:Status-Abbrev}\\n' " + " ".join(nvidia.PACKAGES)
        )
        assert sorted(line.split()[0] for line in status.splitlines() if " ii" in line) == sorted(
            nvidia.PACKAGES
        )
        assert sorted(node.sh(f"cat {nvidia.INSTALLED}").split()) == sorted(nvidia.PACKAGES)
        cri = tomllib.loads(node.sh("containerd config dump"))["plugins"][
            "io.containerd.grpc.v1.cri"
        ]["containerd"]
        assert cri["runtimes"]["nvidia"]["options"]["BinaryName"] == nvidia.RUNTIME_BINARY
        assert cri["default_runtime_name"] == "runc"
        c = cluster(node)
        assert c["objects"]["RuntimeClass//nvidia"]["handler"] == "nvidia"
        assert {
            "DaemonSet/kube-system/nvidia-device-plugin-daemonset",
            "DaemonSet/kube-system/dcgm-exporter",
            "ServiceMonitor/kube-system/dcgm-exporter",
        } <= set(c["objects"])
        assert c["scheduled"]["airnode/model-server-0"]["gpu"] == 1
        assert c["pods"]["airnode/model-server-0"]["status"] == "Running"
        spec = c["objects"]["StatefulSet/airnode/model-server"]["spec"]["template"]["spec"]
        assert spec["runtimeClassName"] == "nvidia"
        assert spec["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": 1}
        env = node.sh(f"systemctl show -p Environment --value {POD_UNIT}")
        assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in env
        assert f"(ollama, {OLLAMA[1:]}): healthy, 3 model(s) listed" in run.stderr
        again = deploy(node, bundles, "gpu", *gpu, label="deploy: a GPU node (no-op)")
        assert again.rc == 0, again.stderr[-3000:]
        assert again.changed == []
    finally:
        no_gpu(node)
