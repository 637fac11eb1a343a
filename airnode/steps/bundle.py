"""The offline bundle: verified on this machine before any change, then shipped to the node
(only files whose sha256 differs there) and verified again on the node."""

from __future__ import annotations

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


def local_bundle(bundle_dir: str) -> tuple[Path, dict]:
    """The verified local bundle; raises AirnodeError naming every missing or corrupt file."""
    root = (ROOT / bundle_dir).resolve()
    try:
        data = manifest.load(root)
    except manifest.ManifestError as e:
        raise AirnodeError(f"bundle_dir = {bundle_dir!r}: {e}") from None
    report = manifest.verify(root, data, check_extra=False)
    if not report.ok:
        raise AirnodeError(f"bundle {root} is not intact; nothing was changed:\n  - "
                           + "\n  - ".join(report.lines())
                           + "\n  (re-run `airnode bundle fetch` on the connected machine)")
    return root, data


@deploy("Offline bundle", data_defaults=DEFAULTS)
def bundle():
    s = settings(DEFAULTS)
    if not s["bundle_dir"]:
        host.noop("no bundle_dir set: skipping the offline bundle")
        return
    root, data = local_bundle(s["bundle_dir"])
    problem = ship.arch_problem(data["arch"], host.get_fact(HostProfile).arch)
    if problem:
        raise AirnodeError(f"{host.name}: {problem}; nothing was changed")

    remote_dir = s["bundle_remote_dir"]
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
