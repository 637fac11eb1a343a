"""The offline bundle: verified on this machine before any change, then shipped to the node
(only files whose sha256 differs there) and verified again on the node."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server

from airnode.bundle import manifest, ship
from airnode.facts import HostProfile, RemoteSha256
from airnode.paths import ROOT
from airnode.steps._common import AirnodeError, settings

DEFAULTS = {
    # The bundle directory made by `airnode bundle fetch`, on the machine running pyinfra.
    # Relative paths are taken from the project root. Empty: no bundle (host preparation only).
    "bundle_dir": "",
    # Where the bundle lives on the node.
    "bundle_remote_dir": "/var/lib/airnode/bundle",
}


@dataclass(frozen=True)
class Bundle:
    root: Path      # on the machine running pyinfra
    data: dict      # its verified manifest
    remote: str     # where it lives on the node

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
    return Bundle(root, local_bundle(root, s["bundle_dir"]), s["bundle_remote_dir"])


@cache
def local_bundle(root: Path, bundle_dir: str) -> dict:
    """The verified local manifest; raises AirnodeError naming every missing or corrupt file.
    Cached: every file is hashed once per run, however many steps and hosts use it."""
    try:
        data = manifest.load(root)
    except manifest.ManifestError as e:
        raise AirnodeError(f"bundle_dir = {bundle_dir!r}: {e}") from None
    report = manifest.verify(root, data, check_extra=False)
    if not report.ok:
        raise AirnodeError(f"bundle {root} is not intact; nothing was changed:\n  - "
                           + "\n  - ".join(report.lines())
                           + "\n  (re-run `airnode bundle fetch` on the connected machine)")
    return data


@deploy("Offline bundle", data_defaults=DEFAULTS)
def bundle():
    b = current("skipping the offline bundle")
    if b is None:
        return
    root, data, remote_dir = b.root, b.data, b.remote
    problem = ship.arch_problem(data["arch"], host.get_fact(HostProfile).arch)
    if problem:
        raise AirnodeError(f"{host.name}: {problem}; nothing was changed")

    todo = ship.to_upload(data["artifacts"], host.get_fact(RemoteSha256, path=remote_dir))
    if todo:
        files.directory(name="Bundle directory", path=remote_dir, mode="755")
    for a in todo:
        files.put(name=f"Upload {a['file']} ({manifest.human(a['size'])})", src=str(root / a["file"]),
                  dest=f"{remote_dir}/{a['file']}", mode="644", user="root", group="root")
    if todo:
        server.shell(name=f"Verify {len(todo)} uploaded file(s) on the node (sha256)",
                     commands=[ship.check_command(remote_dir, todo)])
    # The manifest goes last: on the node it means "everything listed here arrived intact".
    files.put(name="Bundle manifest", src=str(root / manifest.MANIFEST),
              dest=f"{remote_dir}/{manifest.MANIFEST}", mode="644", user="root", group="root")
