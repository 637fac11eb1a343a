"""The bundle step on a real, air-gapped guest: verified locally before any change, shipped
once, verified on the node; an unchanged bundle transfers nothing; a corrupt one stops all."""

from __future__ import annotations

import shutil

import pytest

from airnode.bundle import manifest
from tests.upstream import make_bundle

pytestmark = pytest.mark.lab
REMOTE = "/var/lib/airnode/bundle"


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("bundle")
    make_bundle(d)
    return d


def remote_sums(node) -> dict[str, str]:
    out = node.sh(f"cd {REMOTE} 2>/dev/null && find . -type f | sort | xargs -r sha256sum; true")
    return {line.split()[1].removeprefix("./"): line.split()[0] for line in out.splitlines()}


def test_corrupt_local_bundle_stops_before_any_change(node, bundle_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(bundle_dir, bad)
    with open(bad / "containerd" / "runc.amd64", "ab") as f:
        f.write(b"!")
    node.mark()
    before = node.fingerprint()
    run = node.deploy("--data", f"bundle_dir={bad}", label="deploy with a corrupt bundle (refused)")
    assert run.rc != 0
    assert "corrupt: containerd/runc.amd64 (runc runc 1.3.0): size" in run.stderr
    assert "nothing was changed" in run.stderr
    assert node.fingerprint() == before
    assert "airnode" not in node.sh("ls /var/lib /etc/systemd/system")


def test_first_run_ships_and_verifies_every_file(node, bundle_dir):
    data = manifest.load(bundle_dir)
    run = node.deploy("--data", f"bundle_dir={bundle_dir}", label="deploy #1 with bundle")
    assert run.rc == 0, run.stderr[-3000:]
    uploads = [n for n in run.changed if n.startswith("Offline bundle | Upload ")]
    assert len(uploads) == len(data["artifacts"])
    assert "Offline bundle | Verify 7 uploaded file(s) on the node (sha256)" in run.changed
    sums = remote_sums(node)
    for a in data["artifacts"]:
        assert sums[a["file"]] == a["sha256"], a["file"]
    assert sums["bundle.json"] == manifest.sha256_file(bundle_dir / "bundle.json")


def test_unchanged_bundle_transfers_nothing(node, bundle_dir):
    run = node.deploy("--data", f"bundle_dir={bundle_dir}", label="deploy #2 with bundle (no-op)")
    assert run.rc == 0, run.stderr[-3000:]
    assert run.changed == []


def test_a_file_damaged_on_the_node_is_shipped_again(node, bundle_dir):
    node.sh(f"echo x >> {REMOTE}/k0s/k0s-v1.34.1+k0s.0-amd64")
    run = node.deploy("--data", f"bundle_dir={bundle_dir}")
    assert run.rc == 0, run.stderr[-3000:]
    assert [n for n in run.changed if "Upload" in n] == [
        "Offline bundle | Upload k0s/k0s-v1.34.1+k0s.0-amd64 (3.0 MiB)"]
    assert remote_sums(node)["k0s/k0s-v1.34.1+k0s.0-amd64"] == next(
        a["sha256"] for a in manifest.load(bundle_dir)["artifacts"] if a["kind"] == "k0s")


def test_bundle_for_another_architecture_is_refused(node, bundle_dir, tmp_path):
    other = tmp_path / "arm"
    shutil.copytree(bundle_dir, other)
    data = manifest.load(other)
    manifest.write(other, "arm64", data["artifacts"], data["images"], data["spec"])
    run = node.deploy("--data", f"bundle_dir={other}")
    assert run.rc != 0
    assert "the bundle was built for arm64, this host is x86_64 (amd64)" in run.stderr
