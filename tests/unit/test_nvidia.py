"""GPU nodes (issue 18): the NVIDIA Container Toolkit from NVIDIA's apt repository, containerd's
nvidia runtime, the RuntimeClass, device plugin and the model server's GPU request."""

from __future__ import annotations

import subprocess
import tomllib

import pytest

from airnode import containerd, llama_server, nvidia
from airnode.bundle import fetch, manifest, spec
from airnode.render import render
from airnode.serving import manifests
from tests.httpserver import FixtureServer
from tests.upstream import (
    KP_FIXTURE,
    TOOLKIT,
    Upstream,
    debian_debs,
    nvidia_repo,
    sha,
    toolkit_debs,
)

V = f"{TOOLKIT}-1"


@pytest.fixture(scope="module")
def crds():
    return manifests.crd_schemas(KP_FIXTURE / "manifests" / "setup")


def stanza(name: str, version: str = V, arch: str = "amd64", **over) -> dict[str, str]:
    s = {
        "Package": name,
        "Architecture": arch,
        "Version": version,
        "Filename": f"./{name}_{version}_{arch}.deb",
        "Size": "1234",
        "SHA256": sha(f"{name}{version}".encode()),
    }
    return {**s, **over}


INDEX = (
    [stanza(n) for n in nvidia.PACKAGES]
    + [stanza(n, "1.19.0-1") for n in nvidia.PACKAGES]
    + [stanza("libnvidia-container-dev"), stanza("nvidia-container-toolkit", "1.20.0~rc.1-1")]
)


def test_the_packages_index_is_read_stanza_by_stanza():
    text = (
        "Package: a\nVersion: 1.0-1\nDescription: first\n continued: not a field\n\n"
        "Package: b\nVersion: 2.0-1\nSHA256: " + "0" * 64 + "\n"
    )
    assert nvidia.parse_packages(text) == [
        {"Package": "a", "Version": "1.0-1", "Description": "first"},
        {"Package": "b", "Version": "2.0-1", "SHA256": "0" * 64},
    ]


@pytest.mark.parametrize("version", [TOOLKIT, V])
def test_the_four_packages_are_picked_at_the_version_asked(version):
    got = nvidia.pick(INDEX, version, "amd64", "idx")
    assert [p["package"] for p in got] == list(nvidia.PACKAGES)
    assert {p["version"] for p in got} == {V}  # not 1.19.0, not the rc, not -dev
    assert got[0]["filename"] == f"libnvidia-container1_{V}_amd64.deb"  # ./ dropped
    assert got[0]["sha256"] == sha(f"libnvidia-container1{V}".encode())


@pytest.mark.parametrize(
    "index, version, error",
    [
        (INDEX, "1.21.0", "idx: no libnvidia-container1 1.21.0 for amd64 (the index has"),
        # the versions the index has, listed whatever their form (an rc beside releases)
        (
            [s for s in INDEX if s["Package"] != "libnvidia-container1"]
            + [stanza("libnvidia-container1", v) for v in ("1.20.0~rc.1-1", "1.9.0-1", V)],
            "1.21.0",
            f"(the index has 1.9.0-1, {V}, 1.20.0~rc.1-1)",
        ),
        (
            [s for s in INDEX if s["Package"] != "nvidia-container-toolkit-base"],
            TOOLKIT,
            "no nvidia-container-toolkit-base",
        ),
        (
            INDEX + [stanza(n, f"{TOOLKIT}-2") for n in nvidia.PACKAGES],
            TOOLKIT,
            f"has several Debian revisions ({V}, {TOOLKIT}-2): pin one",
        ),
        (
            [stanza(n, Filename=f"../../{n}_{V}_amd64.deb") for n in nvidia.PACKAGES],
            TOOLKIT,
            "leaves the repo",
        ),
        ([stanza(n, Filename="./x.sh") for n in nvidia.PACKAGES], TOOLKIT, "is not a .deb"),
        ([stanza(n, SHA256="") for n in nvidia.PACKAGES], TOOLKIT, "has no SHA256"),
        ([stanza(n, arch="arm64") for n in nvidia.PACKAGES], TOOLKIT, "for amd64"),
    ],
)
def test_an_index_without_what_is_asked_is_refused_by_name(index, version, error):
    with pytest.raises(nvidia.RepoError) as e:
        nvidia.pick(index, version, "amd64", "idx")
    assert error in str(e.value)


def base_spec(**over):
    data = {
        "k0s": {"version": "v1.36.3+k0s.2"},
        "containerd": {"source": "static", "version": "2.3.4", "runc_version": "1.4.3"},
        "ollama": {"version": "v0.32.15"},
        "kube_prometheus": {"version": "v0.18.0"},
        "model_server": {"image": "debian:bookworm-slim"},
    }
    return spec.parse({**data, **over})


def test_the_spec_takes_an_nvidia_section_with_the_device_plugin_pinned_by_default():
    s = base_spec(nvidia={"toolkit_version": TOOLKIT})
    assert s.nvidia == {
        "toolkit_version": TOOLKIT,
        "device_plugin_image": nvidia.DEVICE_PLUGIN_IMAGE,
        "dcgm_exporter_image": nvidia.DCGM_EXPORTER_IMAGE,
    }
    assert s.sources["nvidia_apt"] == "https://nvidia.github.io/libnvidia-container"
    assert base_spec().nvidia == {}


@pytest.mark.parametrize(
    "section, error",
    [
        ({}, "nvidia.toolkit_version is missing"),
        ({"toolkit_version": "latest"}, "nvidia.toolkit_version = 'latest' is not allowed"),
        ({"toolkit_version": "1.20.0; rm -rf /"}, "is not allowed"),
        ({"toolkit_version": TOOLKIT, "driver": "550"}, "nvidia.driver: no such key"),
        ({"toolkit_version": TOOLKIT, "device_plugin_image": "a b"}, "device_plugin_image"),
        ({"toolkit_version": TOOLKIT, "dcgm_exporter_image": "$(x)"}, "dcgm_exporter_image"),
    ],
)
def test_a_bad_nvidia_section_is_refused_by_key(section, error):
    with pytest.raises(spec.SpecError) as e:
        base_spec(nvidia=section)
    assert error in str(e.value)


@pytest.fixture(scope="module")
def debs(tmp_path_factory):
    return toolkit_debs(tmp_path_factory.mktemp("toolkit"))


def test_fetch_takes_the_toolkit_from_the_apt_index_and_verifies_it(debs, tmp_path):
    with FixtureServer() as server:
        up = Upstream(server)
        repo = nvidia_repo(server, debs)
        s = up.spec(nvidia={"toolkit_version": TOOLKIT})
        s.sources["nvidia_apt"] = repo
        f = fetch.Fetcher(retries=1, backoff=0.01, progress=False)
        data = fetch.fetch(s, tmp_path, with_images=False, fetcher=f)
        got = {a["name"]: a for a in data["artifacts"] if a["kind"] == "nvidia-deb"}
        assert sorted(got) == sorted(nvidia.PACKAGES)
        for name, deb in debs.items():
            assert got[name]["file"] == f"nvidia/debs/{deb.name}"
            assert got[name]["sha256"] == sha(deb.read_bytes()) and got[name]["version"] == V
            assert got[name]["verified_by"] == "SHA256 in NVIDIA's apt Packages index"
        assert data["images"]["nvidia"] == [nvidia.DEVICE_PLUGIN_IMAGE, nvidia.DCGM_EXPORTER_IMAGE]
        assert manifest.verify(tmp_path).ok
        # a .deb that is not what the index says is refused, named
        path = f"/nvidia/stable/deb/amd64/{debs['nvidia-container-toolkit'].name}"
        server.files[path] += b"tampered"
        (tmp_path / "nvidia/debs" / debs["nvidia-container-toolkit"].name).unlink()
        with pytest.raises(fetch.FetchError) as e:
            fetch.fetch(s, tmp_path, with_images=False, fetcher=f)
        assert "does not match" in str(e.value) and "SHA256 in NVIDIA's apt Packages" in str(
            e.value
        )
        s2 = up.spec(nvidia={"toolkit_version": "1.99.0"})
        s2.sources["nvidia_apt"] = repo
        with pytest.raises(fetch.FetchError) as e:
            fetch.fetch(s2, tmp_path / "other", with_images=False, fetcher=f)
        assert str(e.value).startswith("nvidia.toolkit_version: ") and "1.99.0" in str(e.value)


@pytest.mark.parametrize("version", ["1.6.20", "2.3.4"])
def test_the_nvidia_runtime_is_in_containerds_cri_config_only_when_asked(version):
    template = containerd.config_template(version)
    values = dict(version=version, sandbox_image="p/pause:1", cni_bin_dir="/opt/cni/bin")
    plain = tomllib.loads(render(template, **values, nvidia_runtime=""))
    gpu = tomllib.loads(render(template, **values, nvidia_runtime=nvidia.RUNTIME_BINARY))
    plugin = (
        "io.containerd.grpc.v1.cri"
        if version.startswith("1.")
        else ("io.containerd.cri.v1.runtime")
    )
    runtimes = gpu["plugins"][plugin]["containerd"]["runtimes"]
    assert runtimes["nvidia"] == {
        "runtime_type": "io.containerd.runc.v2",
        "options": {"BinaryName": "/usr/bin/nvidia-container-runtime", "SystemdCgroup": True},
    }
    assert gpu["plugins"][plugin]["containerd"]["default_runtime_name"] == "runc"
    assert "nvidia" not in plain["plugins"][plugin]["containerd"]["runtimes"]


def test_debians_real_containerd_reads_the_config_with_the_nvidia_runtime(tmp_path):
    """containerd 1.6.20 (Debian's .deb, unpacked here) parses the rendered file and reports the
    runtime in `config dump` (containerd 2.x cannot be had on this machine: its file is checked
    as TOML above)."""
    deb = next(d for d in debian_debs() if d.name.startswith("containerd_"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path / "root")], check=True)
    binary = tmp_path / "root/usr/bin/containerd"
    version = deb.name.split("_")[1]
    config = tmp_path / "config.toml"
    config.write_text(
        render(
            containerd.config_template(version),
            version=version,
            sandbox_image="p/pause:1",
            cni_bin_dir="/opt/cni/bin",
            nvidia_runtime=nvidia.RUNTIME_BINARY,
        )
    )
    out = subprocess.run(
        [str(binary), "--config", str(config), "config", "dump"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    dumped = tomllib.loads(out)
    cri = dumped["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]
    assert cri["runtimes"]["nvidia"]["runtime_type"] == "io.containerd.runc.v2"
    assert cri["runtimes"]["nvidia"]["options"]["BinaryName"] == nvidia.RUNTIME_BINARY
    assert cri["runtimes"]["nvidia"]["options"]["SystemdCgroup"] is True
    assert cri["default_runtime_name"] == "runc"


def server_docs(gpus: int, backend: str = "ollama", **over):
    extra = (
        dict(
            args=llama_server.server_args(
                model_file="blobs/sha256-x", alias="m", context_length=4096, parallel=1, gpus=gpus
            ),
            image="ghcr.io/ggml-org/llama.cpp:server-cuda-b10488",
        )
        if backend == "llama-server"
        else dict(image="debian:bookworm-slim")
    )
    return manifests.render_model_server(
        node="n1",
        uid=999,
        gid=999,
        backend=backend,
        gpus=gpus,
        device_plugin_image=nvidia.DEVICE_PLUGIN_IMAGE if gpus else "",
        dcgm_exporter_image=nvidia.DCGM_EXPORTER_IMAGE if gpus else "",
        **extra,
        **over,
    )


@pytest.mark.parametrize("backend", ["ollama", "llama-server"])
def test_the_model_server_asks_for_its_gpus_with_the_runtime_class(backend, crds):
    docs = server_docs(2, backend)
    assert manifests.validate(docs, crds) == []  # Kubernetes 1.36 and kube-prometheus's CRDs
    kinds = [d["kind"] for d in docs]
    # before the pod that needs them
    assert kinds[:5] == ["RuntimeClass", "DaemonSet", "DaemonSet", "Service", "ServiceMonitor"]
    rc = docs[0]
    assert rc["metadata"]["name"] == "nvidia" and rc["handler"] == "nvidia"
    pod = next(d for d in docs if d["kind"] == "StatefulSet")["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "nvidia"
    [c] = pod["containers"]
    assert c["resources"]["limits"] == {"nvidia.com/gpu": 2}
    assert {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "compute,utility"} in c["env"]
    if backend == "llama-server":
        assert c["args"][c["args"].index("--n-gpu-layers") + 1] == "all"


def test_dcgm_exporter_is_scraped_and_maps_gpus_to_pods_through_k0s_kubelet():
    docs = server_docs(1)
    ds = next(
        d for d in docs if d["kind"] == "DaemonSet" and d["metadata"]["name"] == "dcgm-exporter"
    )
    pod = ds["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "nvidia"
    [c] = pod["containers"]
    assert c["image"] == nvidia.DCGM_EXPORTER_IMAGE and c["ports"] == [
        {"name": "metrics", "containerPort": 9400}
    ]
    assert {"name": "DCGM_EXPORTER_KUBERNETES", "value": "true"} in c["env"]
    assert c["volumeMounts"][0]["mountPath"] == "/var/lib/kubelet/pod-resources"
    assert pod["volumes"][0]["hostPath"] == {"path": "/var/lib/k0s/kubelet/pod-resources"}
    svc = next(
        d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "dcgm-exporter"
    )
    sm = next(d for d in docs if d["kind"] == "ServiceMonitor")
    # the ServiceMonitor finds the Service, whose name is the job the panels read
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert svc["spec"]["selector"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()
    assert svc["metadata"]["name"] == nvidia.DCGM_JOB
    assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"] == "metrics"
    assert {d["metadata"]["namespace"] for d in (ds, svc, sm)} == {"kube-system"}


@pytest.mark.parametrize("backend", ["ollama", "llama-server"])
def test_gpu_panels_read_dcgm_exporters_default_counters_only_with_gpus(backend):
    import json
    import re

    from airnode.steps.monitoring import dashboards

    [plain] = dashboards("airnode", backend).values()
    [board] = dashboards("airnode", backend, 1).values()
    assert "DCGM" not in plain
    panels = json.loads(board)["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    gpu = [p for p in panels if "DCGM" in json.dumps(p)]
    assert [p["title"] for p in gpu] == [
        "GPU utilisation (%)",
        "GPU memory used (bytes)",
        "GPU power (W)",
        "GPU temperature (°C)",
    ]
    exprs = [t["expr"] for p in gpu for t in p["targets"]]
    names = {n for e in exprs for n in re.findall(r"\b(DCGM_[A-Z_]+)\b", e)}
    assert names == set(nvidia.DCGM_COUNTERS)  # each in 4.5.3-4.8.2's default-counters.csv
    assert all(f'job="{nvidia.DCGM_JOB}"' in e for e in exprs)
    # below every other panel
    top = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels if p not in gpu)
    assert min(p["gridPos"]["y"] for p in panels if p in gpu) >= top - 1


def test_the_device_plugin_registers_with_k0s_kubelet():
    plugin = next(d for d in server_docs(1) if d["metadata"]["name"].startswith("nvidia-device"))
    pod = plugin["spec"]["template"]["spec"]
    assert plugin["metadata"]["namespace"] == "kube-system"
    assert pod["runtimeClassName"] == "nvidia"
    [c] = pod["containers"]
    assert c["image"] == nvidia.DEVICE_PLUGIN_IMAGE and c["imagePullPolicy"] == "Never"
    [mount] = c["volumeMounts"]
    [vol] = pod["volumes"]
    # the plugin looks for the kubelet's socket at the usual place inside its container; on
    # the host that place is k0s's kubelet root
    assert mount["mountPath"] == "/var/lib/kubelet/device-plugins"
    assert vol["hostPath"] == {"path": "/var/lib/k0s/kubelet/device-plugins", "type": "Directory"}


def test_without_gpus_nothing_of_nvidia_is_rendered():
    docs = server_docs(0)
    text = repr(docs)
    assert "nvidia" not in text.lower() and "runtimeClassName" not in text
    assert [d["kind"] for d in docs][0] == "Namespace"
    with pytest.raises(ValueError):
        manifests.model_server_text(node="n", image="i", uid=1, gid=1, gpus=1)


def test_what_the_bundle_lacks_for_gpus_is_named():
    full = list(nvidia.PACKAGES)
    images = {"nvidia": [nvidia.DEVICE_PLUGIN_IMAGE, nvidia.DCGM_EXPORTER_IMAGE]}
    cuda = "ghcr.io/ggml-org/llama.cpp:server-cuda-b10488"
    assert nvidia.bundle_problems(0, [], {}, "ollama", "") == []
    assert nvidia.bundle_problems(1, full, images, "ollama", "") == []
    assert nvidia.bundle_problems(1, full, images, "llama-server", cuda) == []
    [p] = nvidia.bundle_problems(1, full[:3], images, "ollama", "")
    assert "lacks the NVIDIA Container Toolkit (nvidia-container-toolkit)" in p
    assert "[nvidia] toolkit_version" in p
    [p] = nvidia.bundle_problems(2, full, {}, "ollama", "")
    assert p.startswith("model_server_gpus = 2, but the bundle lacks NVIDIA's device plugin and")
    [p] = nvidia.bundle_problems(1, full, images, "llama-server", cuda.replace("cuda-", ""))
    assert "is not a CUDA build" in p and "server-cuda-b<build>" in p


def test_teardown_purges_only_the_toolkit_packages_airnode_recorded(tmp_path):
    record = tmp_path / "nvidia-packages"
    cmd = nvidia.record_installed_command(["libnvidia-container1", "nvidia-container-toolkit"])
    cmd = cmd.replace(nvidia.INSTALLED, str(record)).replace("/var/lib/airnode", str(tmp_path))
    for _ in range(2):  # recorded once, however many runs
        subprocess.run(["sh", "-c", cmd], check=True)
    text = record.read_text()
    assert text.splitlines() == ["libnvidia-container1", "nvidia-container-toolkit"]
    installed = {p: V for p in nvidia.PACKAGES if p != "libnvidia-container1"}
    # dependents first; what the host had before (the tools, the base) stays; gone ones skipped
    assert nvidia.to_purge(text, installed) == ["nvidia-container-toolkit"]
    assert nvidia.to_purge("", installed) == []
