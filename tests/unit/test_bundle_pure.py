"""Pure bundle logic: spec parsing and expansion, checksum files, image references, shipping."""

from __future__ import annotations

import pytest

from airnode.bundle import images, ship, spec
from airnode.paths import ROOT

BASE = {
    "k0s": {"version": "v1.34.1+k0s.0"},
    "ollama": {"version": "v0.13.5"},
    "containerd": {"source": "static", "version": "2.1.4", "runc_version": "1.3.0"},
    "kube_prometheus": {"version": "v0.18.0"},
    "model_server": {"image": "debian:12"},
}


def files(data):
    return {a.kind: a.file for a in spec.artifacts(spec.parse(data))}


def test_project_spec_parses():
    s = spec.load(ROOT / "bundle.toml")
    assert s.arch == "amd64" and s.k0s.startswith("v1.")


def test_asset_names_follow_upstream_across_versions():
    old = files(BASE)
    assert old["k0s"] == "k0s/k0s-v1.34.1+k0s.0-amd64"
    assert old["k0s-airgap"] == "k0s/k0s-airgap-bundle-v1.34.1+k0s.0-amd64"
    assert old["ollama"] == "ollama/v0.13.5/ollama-linux-amd64.tgz"
    new = files(
        {
            **BASE,
            "arch": "arm64",
            "k0s": {"version": "v1.36.1+k0s.0"},
            "ollama": {"version": "v0.14.0"},
        }
    )
    assert new["k0s-airgap"] == "k0s/k0s-airgap-bundle-v1.36.1+k0s.0-linux-arm64.tar"
    assert new["ollama"] == "ollama/v0.14.0/ollama-linux-arm64.tar.zst"
    assert new["runc"] == "containerd/runc.arm64"


def test_debian_containerd_source_takes_listed_debs():
    deb = {
        "url": "http://deb.example/pool/c/containerd/containerd_1.6.20~ds1-1%2Bb1_amd64.deb",
        "sha256": "a" * 64,
    }
    arts = spec.artifacts(spec.parse({**BASE, "containerd": {"source": "debian", "debs": [deb]}}))
    d = next(a for a in arts if a.kind == "deb")
    assert (d.name, d.version, d.sha256) == ("containerd", "1.6.20~ds1-1+b1", "a" * 64)
    assert not any(a.kind in ("containerd", "runc") for a in arts)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"arch": "riscv64"}, "arch = 'riscv64' is not allowed: one of amd64, arm64"),
        ({"containerd": {"source": "snap"}}, "containerd.source = 'snap' is not allowed"),
        ({"containerd": {"source": "debian"}}, "needs [[containerd.debs]]"),
        ({"k0s": {}}, "k0s.version is missing"),
        (
            {"ollama": {"version": "latest"}},
            "ollama.version = 'latest' is not allowed: an Ollama release tag like v0.13.5",
        ),
        ({"models": [{"name": "m", "url": "http://x/m.bin"}]}, "expected a .gguf file"),
        (
            {"models": [{"name": "m", "url": "http://x/m.gguf", "sha256": "xyz"}]},
            "64 lowercase hex",
        ),
        ({"model_server": None}, "[model_server] table is missing"),
    ],
)
def test_bad_spec_is_named(change, message):
    data = {**BASE, **change}
    if change.get("model_server", 1) is None:
        del data["model_server"]
    with pytest.raises(spec.SpecError) as e:
        spec.parse(data)
    assert message in str(e.value)


def test_parse_checksums_upstream_formats():
    text = (
        f"{'a' * 64} *k0s-v1-amd64\n{'b' * 64}  ./ollama-linux-amd64.tgz\n"
        f"{'C' * 64}  runc.amd64\nnot a line\n"
    )
    assert spec.parse_checksums(text) == {
        "k0s-v1-amd64": "a" * 64,
        "ollama-linux-amd64.tgz": "b" * 64,
        "runc.amd64": "c" * 64,
    }


@pytest.mark.parametrize(
    "ref, full",
    [
        ("grafana/grafana:13.0.2", "docker.io/grafana/grafana:13.0.2"),
        ("debian", "docker.io/library/debian:latest"),
        ("docker.io/debian:12", "docker.io/library/debian:12"),
        ("quay.io/prometheus/prometheus:v3.12.0", "quay.io/prometheus/prometheus:v3.12.0"),
        ("localhost:5000/x/y", "localhost:5000/x/y:latest"),
        ("127.0.0.1:5000/busybox:1", "127.0.0.1:5000/busybox:1"),
        ("ghcr.io/a/b@sha256:" + "0" * 64, "ghcr.io/a/b@sha256:" + "0" * 64),
    ],
)
def test_normalize(ref, full):
    assert images.normalize(ref) == full


def test_images_passed_as_flags_are_found_and_paths_are_not():
    doc = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "image": "quay.io/prometheus-operator/prometheus-operator:v0.92.0",
                            "args": [
                                "--kubelet-service=kube-system/kubelet",
                                "--config=/etc/adapter/config.yaml",
                                "--prometheus-config-reloader=quay.io/prometheus-operator/"
                                "prometheus-config-reloader:v0.92.0",
                                "--log-level=info",
                            ],
                        }
                    ]
                }
            }
        }
    }
    assert images.images_in_documents([doc]) == {
        "quay.io/prometheus-operator/prometheus-operator:v0.92.0",
        "quay.io/prometheus-operator/prometheus-config-reloader:v0.92.0",
    }


def test_images_in_the_real_kube_prometheus_manifests():
    from tests.upstream import KP_FIXTURE

    found = images.images_in_manifests(KP_FIXTURE / "manifests")
    assert found == [
        "docker.io/grafana/grafana:13.0.2",
        "ghcr.io/jimmidyson/configmap-reload:v0.15.0",
        "quay.io/brancz/kube-rbac-proxy:v0.22.0",
        "quay.io/prometheus-operator/prometheus-config-reloader:v0.92.0",  # a flag only
        "quay.io/prometheus-operator/prometheus-operator:v0.92.0",
        "quay.io/prometheus/alertmanager:v0.33.0",  # in the Alertmanager custom resource
        "quay.io/prometheus/blackbox-exporter:v0.28.0",
        "quay.io/prometheus/node-exporter:v1.11.1",
        "quay.io/prometheus/prometheus:v3.12.0",  # in the Prometheus custom resource
        "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.19.0",
        "registry.k8s.io/prometheus-adapter/prometheus-adapter:v0.12.0",
    ]


def test_archive_name_is_a_plain_file_name():
    assert (
        images.archive_name("grafana/grafana:13.0.2") == "docker.io_grafana_grafana_13.0.2.oci.tar"
    )


def test_the_place_command_checks_every_partial_then_renames_them(tmp_path):
    import subprocess

    (tmp_path / "sub").mkdir()
    hello = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    (tmp_path / "sub" / "f.partial").write_bytes(b"hello")
    (tmp_path / "g.partial").write_bytes(b"hello")
    good = [{"file": "sub/f", "sha256": hello}, {"file": "g", "sha256": hello}]
    assert subprocess.run(ship.place_command(str(tmp_path), good), shell=True).returncode == 0
    assert (tmp_path / "sub" / "f").read_bytes() == b"hello" and (tmp_path / "g").exists()
    assert not list(tmp_path.rglob("*.partial"))
    assert oct((tmp_path / "g").stat().st_mode & 0o777) == "0o644"

    (tmp_path / "sub" / "f.partial").write_bytes(b"hellO")
    (tmp_path / "g.partial").write_bytes(b"hello")
    r = subprocess.run(
        ship.place_command(str(tmp_path), good), shell=True, capture_output=True, text=True
    )
    assert r.returncode != 0 and "sub/f.partial: FAILED" in r.stderr
    # nothing renamed, and the partials are gone: the next run uploads, not resumes onto them
    assert (tmp_path / "sub" / "f").read_bytes() == b"hello"
    assert not list(tmp_path.rglob("*.partial"))


def test_arch_problem():
    assert ship.arch_problem("amd64", "x86_64") is None
    assert ship.arch_problem("arm64", "aarch64") is None
    assert "built for arm64, this host is x86_64 (amd64)" in ship.arch_problem("arm64", "x86_64")
