"""Container images from the bundle imported into containerd's k8s.io namespace; an image
already present at the same digest is not imported again."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Command
from pyinfra.operations import server

from airnode import containerd as logic
from airnode.steps._common import settings
from airnode.steps.bundle import DEFAULTS as BUNDLE_DEFAULTS
from airnode.steps.bundle import local_bundle

DEFAULTS: dict = {}
IMAGE_KINDS = ("image", "k0s-airgap")


@deploy("Images into containerd", data_defaults=DEFAULTS)
def images():
    b = settings(BUNDLE_DEFAULTS)
    if not b["bundle_dir"]:
        host.noop("no bundle_dir set: no images to import")
        return
    root, data = local_bundle(b["bundle_dir"])
    archives = {a["file"]: logic.archive_images(root / a["file"])
                for a in data["artifacts"] if a["kind"] in IMAGE_KINDS}
    present = logic.parse_ctr_images(
        (host.get_fact(Command, "ctr -n k8s.io images ls 2>/dev/null || true") or "").splitlines())
    for file in logic.archives_to_import(archives, present):
        names = ", ".join(sorted(archives[file])) or file
        server.shell(name=f"Import {names}", commands=[
            "ctr -n k8s.io images import "
            + shlex.quote(f"{b['bundle_remote_dir']}/{file}")])
