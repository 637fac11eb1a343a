"""Container images from the bundle imported into containerd's k8s.io namespace; an image
already present at the same digest is not imported again."""

from __future__ import annotations

import shlex

from pyinfra.api import deploy
from pyinfra.operations import server

from airnode import containerd as logic
from airnode.bundle.images import archive_images
from airnode.bundle.rules import BundleValueError
from airnode.steps import bundle
from airnode.steps._common import AirnodeError, remote

DEFAULTS: dict = {}
IMAGE_KINDS = ("image", "k0s-airgap")
CTR_IMAGES = "ctr -n k8s.io images ls 2>/dev/null || true"


def reads(b=None) -> list[str]:
    return [CTR_IMAGES] if b else []


@deploy("Images into containerd", data_defaults=DEFAULTS)
def images():
    b = bundle.current("no images to import")
    if b is None:
        return
    try:
        archives = {
            a["file"]: archive_images(b.root / a["file"]) for a in b.artifacts(*IMAGE_KINDS)
        }
    except BundleValueError as e:
        raise AirnodeError(f"bundle {b.root}: {e}; nothing was changed") from None
    present = logic.parse_ctr_images(remote(CTR_IMAGES).splitlines())
    for file in logic.archives_to_import(archives, present):
        names = ", ".join(sorted(archives[file])) or file
        # pinned: kubelet's image garbage collection must never delete what cannot be pulled
        # again on an air-gapped node (containerd >= 1.7 honours the label)
        server.shell(
            name=f"Import {names}",
            commands=[
                "ctr -n k8s.io images import " + shlex.quote(f"{b.remote}/{file}"),
                *[
                    f"ctr -n k8s.io images label {shlex.quote(n)} io.cri-containerd.pinned=pinned "
                    f">/dev/null 2>&1 || echo {shlex.quote(f'note: could not pin {n}')} >&2"
                    for n in sorted(archives[file])
                ],
            ],
        )
