"""Pure runtime logic: containerd config schema, dpkg/ctr parsing, image digests, k0s flags."""

from __future__ import annotations

import tomllib

import pytest

from airnode import containerd, k0s
from airnode.render import render


@pytest.mark.parametrize(
    "version, template, schema",
    [
        ("1.6.20~ds1-1+deb12u3", "containerd-config-v2.toml.j2", 2),
        ("1.7.24", "containerd-config-v2.toml.j2", 2),
        ("2.1.4", "containerd-config-v3.toml.j2", 3),
        ("v2.0.0", "containerd-config-v3.toml.j2", 3),
    ],
)
def test_config_schema_follows_the_version(version, template, schema):
    assert containerd.config_template(version) == template
    cfg = tomllib.loads(
        render(
            template,
            version=version,
            sandbox_image="registry.k8s.io/pause:3.10",
            cni_bin_dir="/opt/cni/bin",
            nvidia_runtime="",
        )
    )
    assert cfg["version"] == schema
    flat = repr(cfg)
    assert "'SystemdCgroup': True" in flat and "registry.k8s.io/pause:3.10" in flat


def test_deb_version():
    assert containerd.deb_version("containerd/debs/containerd_1.6.20~ds1-1+deb12u3_amd64.deb") == (
        "containerd",
        "1.6.20~ds1-1+deb12u3",
    )


def test_debs_to_install_compares_exact_versions():
    debs = ["d/containerd_1.6.20~ds1-1+deb12u3_amd64.deb", "d/runc_1.1.5+ds1-1+deb12u1_amd64.deb"]
    status = containerd.parse_dpkg_status(
        ["containerd 1.6.20~ds1-1+deb12u3 ii ", "runc 1.1.5+ds1-1 ii ", "docker.io 20.10 rc "]
    )
    assert status == {"containerd": "1.6.20~ds1-1+deb12u3", "runc": "1.1.5+ds1-1"}
    assert containerd.debs_to_install(debs, status) == [debs[1]]
    assert containerd.debs_to_install(debs, {}) == debs


def test_parse_ctr_images():
    out = [
        "REF TYPE DIGEST SIZE PLATFORMS LABELS",
        "docker.io/library/busybox:1 application/vnd.oci.image.manifest.v1+json "
        "sha256:abc 1.0 MiB linux/amd64 -",
    ]
    assert containerd.parse_ctr_images(out) == {"docker.io/library/busybox:1": "sha256:abc"}


def test_archives_to_import_by_name_and_digest(tmp_path):
    from tests.oci import busybox_layout, layout_tar

    archive = tmp_path / "a.tar"
    archive.write_bytes(
        layout_tar(
            busybox_layout(
                tmp_path / "l",
                names=["registry.k8s.io/pause:3.10", "quay.io/k0sproject/kube-proxy:v1.34.1"],
            )
        )
    )
    from airnode.bundle.images import archive_images

    images = archive_images(archive)
    assert set(images) == {"registry.k8s.io/pause:3.10", "quay.io/k0sproject/kube-proxy:v1.34.1"}
    digest = images["registry.k8s.io/pause:3.10"]
    archives = {"a.tar": images}
    assert containerd.archives_to_import(archives, {}) == ["a.tar"]
    assert containerd.archives_to_import(archives, dict.fromkeys(images, digest)) == []
    stale = {**dict.fromkeys(images, digest), "registry.k8s.io/pause:3.10": "sha256:old"}
    assert containerd.archives_to_import(archives, stale) == ["a.tar"]


WANTED = k0s.install_flags(["metrics-server"], [])


def test_install_flags():
    assert WANTED == [
        "--single",
        "--config=/etc/k0s/k0s.yaml",
        "--cri-socket=remote:unix:///run/containerd/containerd.sock",
        "--disable-components=metrics-server",
    ]


@pytest.mark.parametrize(
    "args",
    [
        [
            "/usr/local/bin/k0s",
            "controller",
            "--single=true",
            "--config=/etc/k0s/k0s.yaml",
            "--cri-socket=remote:unix:///run/containerd/containerd.sock",
            "--disable-components=metrics-server",
        ],
        [
            "/usr/local/bin/k0s",
            "controller",
            "--disable-components",
            "metrics-server",
            "-c",
            "/etc/k0s/k0s.yaml",
            "--single",
            "--cri-socket",
            "remote:unix:///run/containerd/containerd.sock",
            "--force",
        ],
    ],
)
def test_same_flags_in_another_spelling_need_no_reinstall(args):
    assert not k0s.needs_reinstall(WANTED, {"Args": args})


def test_changed_flags_need_a_reinstall():
    status = {"Args": ["/usr/local/bin/k0s", "controller", *WANTED]}
    assert k0s.needs_reinstall(k0s.install_flags(["metrics-server", "helm"], []), status)
    assert k0s.needs_reinstall(k0s.install_flags(["metrics-server"], ["--debug"]), status)
    assert not k0s.needs_reinstall(k0s.install_flags(["metrics-server"], []), status)


def test_component_lists_compare_as_sets():
    a = k0s.normalize(["--disable-components=helm,metrics-server"])
    assert a == k0s.normalize(["--disable-components", "metrics-server,helm"])


def test_parse_status():
    assert k0s.parse_status("") is None
    assert k0s.parse_status("Error: k0s not running") is None
    assert k0s.parse_status('{"Args": ["k0s"], "Pid": 1}') == {"Args": ["k0s"], "Pid": 1}
    assert not k0s.needs_reinstall(WANTED, None)  # not installed: install, not reinstall


def test_flags_of_a_stopped_k0s_come_from_its_unit():
    unit = (
        "[Unit]\nDescription=k0s\n[Service]\nExecStart=/usr/local/bin/k0s controller "
        + " ".join(WANTED)
        + "\nRestart=always\n"
    )
    assert not k0s.needs_reinstall(WANTED, None, unit)
    assert k0s.needs_reinstall(k0s.install_flags(["metrics-server"], ["--debug"]), None, unit)
    assert not k0s.needs_reinstall(WANTED, None, "")  # not installed


def test_dpkg_epochs_do_not_force_a_reinstall_every_run():
    status = containerd.parse_dpkg_status(["conntrack 1:1.4.7-1 ii "])
    assert containerd.debs_to_install(["d/conntrack_1.4.7-1_amd64.deb"], status) == []


def test_bad_names_are_named():
    with pytest.raises(ValueError, match="x.deb: not a Debian package file name"):
        containerd.deb_version("d/x.deb")
    with pytest.raises(ValueError, match="containerd version 'latest'"):
        containerd.config_template("latest")


def test_an_archive_without_digests_is_always_imported():
    archives = {"d.tar": {"docker.io/library/x:1": None}}
    assert containerd.archives_to_import(archives, {}) == ["d.tar"]
    assert containerd.archives_to_import(archives, {"docker.io/library/x:1": "sha256:a"}) == [
        "d.tar"
    ]
