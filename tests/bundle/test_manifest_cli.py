"""airnode bundle verify / show, through the real CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest

from airnode.bundle import fetch
from airnode.bundle.fetch import Fetcher
from tests.upstream import K0S, OLLAMA, RUNC


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "airnode.cli", "bundle", *args], capture_output=True, text=True
    )


@pytest.fixture
def bundle(upstream, tmp_path):
    fetch.fetch(
        upstream.spec(),
        tmp_path,
        with_images=False,
        fetcher=Fetcher(retries=1, backoff=0.01, progress=False),
    )
    return tmp_path


def test_verify_intact_bundle(bundle):
    r = cli("verify", str(bundle))
    assert r.returncode == 0, r.stderr
    assert "7 artifacts verified" in r.stdout


def test_verify_names_every_missing_extra_and_corrupt_file(bundle):
    (bundle / "containerd" / "runc.amd64").unlink()
    with open(bundle / "k0s" / f"k0s-{K0S}-amd64", "r+b") as f:
        f.write(b"X")  # same size, different bytes
    (bundle / "ollama" / OLLAMA / "ollama-linux-amd64.tar.zst").write_bytes(b"short")
    (bundle / "stray.bin").write_bytes(b"?")
    r = cli("verify", str(bundle))
    assert r.returncode == 1
    err = r.stderr
    assert f"missing: containerd/runc.amd64 (runc runc {RUNC})" in err
    assert f"corrupt: k0s/k0s-{K0S}-amd64 (k0s k0s {K0S}): sha256" in err
    tarball = f"ollama/{OLLAMA}/ollama-linux-amd64.tar.zst"
    assert f"corrupt: {tarball} (ollama ollama {OLLAMA}): size 5" in err
    assert "extra:   stray.bin" in err


def test_verify_something_that_is_not_a_bundle(tmp_path):
    r = cli("verify", str(tmp_path))
    assert r.returncode == 1 and "bundle.json not found" in r.stderr


def test_show_prints_a_table(bundle):
    r = cli("show", str(bundle))
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].split() == [
        "KIND",
        "NAME",
        "VERSION",
        "SIZE",
        "SHA256",
        "VERIFIED",
        "BY",
        "FILE",
    ]
    k0s = next(line for line in lines if line.startswith("k0s "))
    assert K0S in k0s and "3.0 MiB" in k0s and "sha256sums.txt" in k0s
    assert "7 artifacts" in r.stdout
    assert "  quay.io/prometheus-operator/prometheus-config-reloader:v0.92.0" in lines
