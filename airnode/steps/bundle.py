"""The offline bundle: verified on this machine before any change, then shipped to the node
(only files whose sha256 differs there) and verified again on the node."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.operations import files, server

from airnode.bundle import manifest, ship, trust, unpack
from airnode.bundle.spec import parse_checksums
from airnode.paths import ROOT
from airnode.steps._common import (
    AirnodeError,
    file_state_read,
    owned_dirs,
    profile,
    put_local,
    remote,
    settings,
)

DEFAULTS = {
    # The bundle directory made by `airnode bundle fetch`, on the machine running pyinfra.
    # Relative paths are taken from the project root. Empty: no bundle (host preparation only).
    "bundle_dir": "",
    # Where the bundle lives on the node.
    "bundle_remote_dir": "/var/lib/airnode/bundle",
    # Trust: the sha256 of bundle.json that `airnode bundle fetch` printed on the connected
    # machine, pinned here; or, for bundles signed with `airnode bundle sign`, an OpenSSH
    # allowed-signers file on this machine (relative paths from the project root). One of the
    # two is required with a bundle: nothing unpinned or unsigned is deployed.
    "bundle_sha256": "",
    "bundle_allowed_signers": "",
}


@dataclass(frozen=True)
class Bundle:
    root: Path  # on the machine running pyinfra
    data: dict  # its verified manifest
    remote: str  # where it lives on the node

    def artifacts(self, *kinds: str) -> list[dict]:
        return [a for a in self.data["artifacts"] if a["kind"] in kinds]


def current(missing: str) -> Bundle | None:
    """The configured bundle, verified (once per run); None, with a noop saying ``missing``,
    when bundle_dir is empty. Steps that install from the bundle start with this."""
    s = settings(DEFAULTS)
    if not s["bundle_dir"]:
        host.noop(f"no bundle_dir set: {missing}")
        return None
    root = (ROOT / s["bundle_dir"]).resolve()
    signers = str(ROOT / s["bundle_allowed_signers"]) if s["bundle_allowed_signers"] else ""
    return Bundle(
        root,
        local_bundle(root, s["bundle_dir"], s["bundle_sha256"], signers),
        s["bundle_remote_dir"],
    )


@cache
def local_bundle(
    root: Path, bundle_dir: str, pinned_sha256: str = "", allowed_signers: str = ""
) -> dict:
    """The verified local manifest: every field valid, the manifest itself pinned or signed,
    then every file's size and sha256; raises AirnodeError naming what is wrong. Cached: every
    file is hashed once per run, however many steps and hosts use it."""
    try:
        data = manifest.load(root)
    except manifest.ManifestError as e:
        raise AirnodeError(f"bundle_dir = {bundle_dir!r}: {e}") from None
    try:
        how = trust.check(root, pinned_sha256, allowed_signers)
    except trust.TrustError as e:
        raise AirnodeError(f"bundle_dir = {bundle_dir!r}: {e}; nothing was changed") from None
    logger.info(f"bundle {root}: trusted ({how})")
    report = manifest.verify(root, data, check_extra=False)
    if not report.ok:
        raise AirnodeError(
            f"bundle {root} is not intact; nothing was changed:\n  - "
            + "\n  - ".join(report.lines())
            + "\n  (re-run `airnode bundle fetch` on the connected machine)"
        )
    return data


@cache
def _tarball_checked(path: Path, sha256: str) -> int:
    return unpack.check_tarball(path)


def safe_to_unpack(b: Bundle, tarball: dict) -> None:
    """Every member of a release tarball checked on this machine before the node unpacks it as
    root (airnode/bundle/unpack.py); once per run and tarball, and only when it is about to be
    unpacked, never on a no-op."""
    try:
        _tarball_checked(b.root / tarball["file"], tarball["sha256"])
    except unpack.UnsafeTarball as e:
        raise AirnodeError(f"bundle {b.root}: {e}; nothing was changed") from None


def remote_sums_command(path: str) -> str:
    return (
        f"cd {shlex.quote(path)} 2>/dev/null && "
        "find . -type f -print0 | xargs -0 -r sha256sum || true"
    )


def remote_sums(b: Bundle) -> dict[str, str]:
    """sha256 of every file of the bundle directory on the node: {relative path: hex}."""
    return parse_checksums(remote(remote_sums_command(b.remote)))


def reads(b: Bundle | None) -> list[str]:
    if b is None:
        return []
    return [remote_sums_command(b.remote), file_state_read(f"{b.remote}/{manifest.MANIFEST}")]


@deploy("Offline bundle", data_defaults=DEFAULTS)
def bundle():
    b = current("skipping the offline bundle")
    if b is None:
        return
    root, data, remote_dir = b.root, b.data, b.remote
    problem = ship.arch_problem(data["arch"], profile().arch)
    if problem:
        raise AirnodeError(f"{host.name}: {problem}; nothing was changed")

    todo = ship.to_upload(data["artifacts"], remote_sums(b))
    if todo:
        # the directory and the sub-directories files go into, recorded when airnode makes
        # them: teardown removes those, and of a directory that was there before only the
        # files shipped into it
        subdirs = sorted(
            {f"{remote_dir}/{a['file'].rsplit('/', 1)[0]}" for a in todo if "/" in a["file"]}
        )
        owned_dirs(
            [remote_dir, *subdirs],
            "Bundle directory",
            "755",
            files_to_come=[
                f"{remote_dir}/{f}" for f in [a["file"] for a in todo] + [manifest.MANIFEST]
            ],
        )
    for a in todo:
        files.put(
            name=f"Upload {a['file']} ({manifest.human(a['size'])})",
            src=str(root / a["file"]),
            dest=f"{remote_dir}/{a['file']}",
            mode="644",
            user="root",
            group="root",
        )
    if todo:
        server.shell(
            name=f"Verify {len(todo)} uploaded file(s) on the node (sha256)",
            commands=[ship.check_command(remote_dir, todo)],
        )
    # The manifest goes last: on the node it means "everything listed here arrived intact".
    put_local(
        root / manifest.MANIFEST,
        f"{remote_dir}/{manifest.MANIFEST}",
        "Bundle manifest",
        manifest.sha256_file(root / manifest.MANIFEST),
    )
