"""A bundle is deployed only if bundle.json is the one the inventory pins (its sha256) or is
signed by a key the inventory allows (ssh-keygen -Y); anything else is refused before any
change, --dry included, saying what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airnode.bundle import manifest, trust
from airnode.paths import ROOT


@pytest.fixture
def bundle(tmp_path):
    root = tmp_path / "bundle"
    (root / "models").mkdir(parents=True)
    (root / "models" / "m.gguf").write_bytes(b"GGUF model bytes")
    a = manifest.entry("model", "m:1", "", "models/m.gguf", root, None, "test")
    manifest.write(root, "amd64", [a], {}, {})
    return root


@pytest.fixture
def signer(tmp_path):
    key = tmp_path / "signing-key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "site", "-f", str(key)], check=True
    )
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(
        f'{trust.IDENTITY} namespaces="{trust.NAMESPACE}" '
        f"{(tmp_path / 'signing-key.pub').read_text()}"
    )
    return key, allowed


def test_the_pinned_digest_is_trusted(bundle):
    assert trust.check(bundle, trust.digest(bundle), "").startswith("pinned sha256 ")


def test_an_unpinned_bundle_is_refused_saying_how_to_pin(bundle):
    with pytest.raises(trust.TrustError, match="not pinned: set bundle_sha256"):
        trust.check(bundle, "", "")


def test_an_edited_manifest_no_longer_matches_its_pin(bundle):
    pin = trust.digest(bundle)
    data = json.loads((bundle / "bundle.json").read_text())
    (bundle / "models" / "m.gguf").write_bytes(b"evil")  # the artifact and its sum replaced
    data["artifacts"][0]["sha256"] = manifest.sha256_file(bundle / "models" / "m.gguf")
    data["artifacts"][0]["size"] = 4
    (bundle / "bundle.json").write_text(json.dumps(data))
    assert manifest.verify(bundle).ok  # the sums alone cannot tell
    with pytest.raises(trust.TrustError, match="this is not the bundle the inventory pins"):
        trust.check(bundle, pin, "")


def test_a_signed_bundle_is_trusted_by_its_allowed_signer(bundle, signer):
    key, allowed = signer
    trust.sign(bundle, key)
    assert trust.check(bundle, "", str(allowed)).startswith("signed")
    assert manifest.verify(bundle).ok  # the signature is not an "extra" file


def test_a_signature_by_another_key_or_of_another_manifest_is_refused(bundle, signer, tmp_path):
    key, allowed = signer
    other = tmp_path / "other-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    trust.sign(bundle, other)
    with pytest.raises(trust.TrustError, match="not a valid signature"):
        trust.check(bundle, "", str(allowed))
    trust.sign(bundle, key)
    (bundle / "bundle.json").write_text((bundle / "bundle.json").read_text() + " ")
    with pytest.raises(trust.TrustError, match="not a valid signature"):
        trust.check(bundle, "", str(allowed))


def test_an_unsigned_bundle_with_allowed_signers_is_refused(bundle, signer):
    with pytest.raises(trust.TrustError, match="bundle.json.sig is missing"):
        trust.check(bundle, "", str(signer[1]))


def test_a_dry_run_of_an_unpinned_bundle_stops_before_reading_the_node(bundle, tmp_path):
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
    assert r.returncode != 0
    assert "the bundle is not pinned: set bundle_sha256" in r.stderr, r.stderr[-2000:]
    assert "nothing was changed" in r.stderr


def test_the_cli_prints_the_digest_and_signs(bundle, signer):
    cli = [sys.executable, "-m", "airnode.cli", "bundle"]
    out = subprocess.run([*cli, "digest", str(bundle)], capture_output=True, text=True)
    assert out.stdout.strip() == trust.digest(bundle)
    signed = subprocess.run(
        [*cli, "sign", "--key", str(signer[0]), str(bundle)], capture_output=True, text=True
    )
    assert signed.returncode == 0, signed.stderr
    assert (bundle / trust.SIGNATURE).is_file()
