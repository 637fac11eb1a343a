"""Images fetched with the real skopeo from a real registry on 127.0.0.1, as OCI archives."""

from __future__ import annotations

import json
import shutil
import tarfile

import pytest

from airnode.bundle import fetch, images, manifest
from airnode.bundle.fetch import Fetcher, FetchError
from tests.oci import busybox_layout
from tests.registry import Registry

needs_tools = pytest.mark.skipif(
    not (shutil.which("skopeo") and shutil.which("docker-registry")),
    reason="skopeo and docker-registry are installed by ./dev",
)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    work = tmp_path_factory.mktemp("registry")
    with Registry(work) as reg:
        layout = busybox_layout(work / "layout", tag="1.36")
        reg.ref = reg.push_layout(layout, "1.36", "airnode/busybox:1.36")
        yield reg


@needs_tools
def test_image_becomes_a_named_oci_archive(registry, tmp_path):
    f = Fetcher(retries=1, backoff=0.01, progress=False, insecure_registries=(registry.host,))
    entry = f.fetch_image(registry.ref, "amd64", tmp_path, {})
    archive = tmp_path / entry["file"]
    assert entry["file"] == f"images/127.0.0.1_{registry.port}_airnode_busybox_1.36.oci.tar"
    assert entry["sha256"] == manifest.sha256_file(archive)
    with tarfile.open(archive) as t:
        index = json.load(t.extractfile("index.json"))
        assert "oci-layout" in t.getnames()
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == registry.ref
    assert images.images_in_oci_archive(archive) == [registry.ref]
    # fetched again with the previous manifest: nothing to do
    assert f.fetch_image(registry.ref, "amd64", tmp_path, {entry["file"]: entry}) == entry


@needs_tools
def test_fetch_includes_the_model_server_image(registry, tmp_path, monkeypatch):
    from tests.httpserver import FixtureServer
    from tests.upstream import Upstream

    with FixtureServer() as server:
        up = Upstream(server)
        s = up.spec(model_server={"image": registry.ref}, insecure_registries=[registry.host])
        # the kube-prometheus images live on registries this machine cannot reach: fetch the
        # model server's image for real and check the kube-prometheus ones were requested
        asked = []
        real = Fetcher.fetch_image

        def fetch_image(self, ref, arch, root, previous):
            asked.append(ref)
            if ref == registry.ref:
                return real(self, ref, arch, root, previous)
            return {
                "kind": "image",
                "name": ref,
                "file": f"unreachable/{ref}",
                "size": 0,
                "sha256": "0" * 64,
            }

        monkeypatch.setattr(Fetcher, "fetch_image", fetch_image)
        data = fetch.fetch(s, tmp_path)
    assert registry.ref in asked
    real_entry = next(a for a in data["artifacts"] if a["name"] == registry.ref)
    assert real_entry["verified_by"] == "registry digest (skopeo)"
    assert "quay.io/prometheus-operator/prometheus-config-reloader:v0.92.0" in asked
    assert len(asked) == 12  # 11 kube-prometheus images + the model server's
    assert not any("k0sproject" in r for r in asked)  # those travel in the airgap bundle
    assert (tmp_path / "images" / images.archive_name(registry.ref)).exists()


def test_missing_skopeo_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    f = Fetcher(retries=0, progress=False)
    with pytest.raises(FetchError, match="skopeo is needed .* apt-get install skopeo"):
        f.fetch_image("quay.io/x/y:1", "amd64", tmp_path, {})


@needs_tools
def test_unreachable_image_is_named(registry, tmp_path):
    f = Fetcher(retries=1, backoff=0.01, progress=False, insecure_registries=(registry.host,))
    with pytest.raises(FetchError, match=rf"{registry.host}/airnode/nope:1: .*gave up"):
        f.fetch_image(f"{registry.host}/airnode/nope:1", "amd64", tmp_path, {})
