"""Is this the bundle the operator meant? A bundle crossed an air gap on removable media; its
sha256 sums live in bundle.json, the file anyone who edits the bundle also edits. So the deploy
trusts a bundle only if

- bundle.json's own sha256 equals the digest pinned in the inventory (``bundle_sha256``), which
  `airnode bundle fetch` prints on the connected machine; or
- bundle.json carries a valid SSH signature (bundle.json.sig, `airnode bundle sign`) by a key
  listed in the allowed-signers file the inventory names (``bundle_allowed_signers``).

bundle.json lists every artifact's size and sha256, so trusting it trusts every byte the
artifacts' own check then verifies. Signatures are OpenSSH's (`ssh-keygen -Y sign/verify`,
namespace "airnode-bundle"): nothing new to install on either side. Checked on the machine
running pyinfra, before any change and under --dry.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from airnode.bundle.manifest import MANIFEST

SIGNATURE = MANIFEST + ".sig"
NAMESPACE = "airnode-bundle"
IDENTITY = "airnode-bundle"  # the principal allowed-signers lines name


class TrustError(ValueError):
    pass


def digest(root: Path) -> str:
    """sha256 of bundle.json: what an operator pins (bundle_sha256)."""
    with open(Path(root) / MANIFEST, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def pin_line(root: Path) -> str:
    return f'bundle_sha256 = "{digest(root)}"'


def sign(root: Path, key: Path) -> Path:
    """bundle.json.sig by the SSH private key (ssh-keygen -Y sign)."""
    root = Path(root)
    sig = root / SIGNATURE
    sig.unlink(missing_ok=True)
    r = subprocess.run(
        [_ssh_keygen(), "-Y", "sign", "-q", "-f", str(key), "-n", NAMESPACE, str(root / MANIFEST)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise TrustError(f"ssh-keygen -Y sign with {key} failed: {r.stderr.strip()[-300:]}")
    return sig


def _ssh_keygen() -> str:
    found = shutil.which("ssh-keygen")
    if not found:
        raise TrustError("ssh-keygen not found (Debian: apt-get install openssh-client)")
    return found


def check(root: Path, pinned_sha256: str, allowed_signers: str) -> str:
    """How the bundle at root is trusted ("pinned sha256 ..." or "signed by ..."), or
    TrustError saying what is wrong and what to do."""
    root = Path(root)
    if not pinned_sha256 and not allowed_signers:
        raise TrustError(
            "the bundle is not pinned: set bundle_sha256 to the digest `airnode bundle fetch` "
            f"printed on the connected machine (`airnode bundle digest {root}` shows it here - "
            "compare the two), or sign it (`airnode bundle sign`) and set "
            "bundle_allowed_signers"
        )
    got = digest(root)
    if pinned_sha256:
        if got == pinned_sha256:
            return f"pinned sha256 {got[:16]}..."
        if not allowed_signers:
            raise TrustError(
                f"bundle.json has sha256 {got}, but bundle_sha256 = "
                f"{pinned_sha256!r}: this is not the bundle the inventory pins "
                "(changed since it was fetched, or another bundle)"
            )
    signers = Path(allowed_signers)
    if not signers.is_file():
        raise TrustError(f"bundle_allowed_signers = {allowed_signers!r}: no such file")
    sig = root / SIGNATURE
    if not sig.is_file():
        raise TrustError(f"{sig} is missing: the bundle is not signed (airnode bundle sign)")
    with open(root / MANIFEST, "rb") as data:
        r = subprocess.run(
            [
                _ssh_keygen(),
                "-Y",
                "verify",
                "-f",
                str(signers),
                "-I",
                IDENTITY,
                "-n",
                NAMESPACE,
                "-s",
                str(sig),
            ],
            stdin=data,
            capture_output=True,
            text=True,
        )
    if r.returncode != 0:
        raise TrustError(
            f"{sig} is not a valid signature of bundle.json by a key of "
            f"{allowed_signers} (identity {IDENTITY}, namespace {NAMESPACE}): "
            f"{(r.stderr or r.stdout).strip()[-300:]}"
        )
    return f"signed ({r.stdout.strip()[-120:]})"
