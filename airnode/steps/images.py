"""Container images from the bundle imported into containerd's k8s.io namespace; an image
already present at the same digest is not imported again."""

from __future__ import annotations

import shlex
from functools import cache

from pyinfra.api import deploy
from pyinfra.operations import server

from airnode import containerd as logic
from airnode.bundle.images import archive_images as _read_archive
from airnode.bundle.rules import BundleValueError
from airnode.sizing import Need
from airnode.steps import bundle
from airnode.steps._common import AirnodeError, remote

DEFAULTS: dict = {}
IMAGE_KINDS = ("image", "k0s-airgap")
CTR_IMAGES = "ctr -n k8s.io images ls 2>/dev/null || true"
CONTAINERD_ROOT = "/var/lib/containerd"
archive_images = cache(_read_archive)  # read once per run: preflight counts, the step imports


def reads(b=None) -> list[str]:
    return [CTR_IMAGES] if b else []


def to_import(b: bundle.Bundle) -> tuple[dict[str, dict[str, str | None]], list[str]]:
    """The bundle's image archives ({file: {name: digest}}) and those containerd lacks."""
    try:
        archives = {
            a["file"]: archive_images(b.root / a["file"]) for a in b.artifacts(*IMAGE_KINDS)
        }
    except BundleValueError as e:
        raise AirnodeError(f"bundle {b.root}: {e}; nothing was changed") from None
    present = logic.parse_ctr_images(remote(CTR_IMAGES).splitlines())
    return archives, logic.archives_to_import(archives, present)


def disk_needs(b: bundle.Bundle) -> list[Need]:
    """The image archives containerd lacks, at their size: its content store keeps their
    compressed layers (the snapshots it unpacks them into come on top, and are not known
    before unpacking: this need is a floor)."""
    _, todo = to_import(b)
    sizes = {a["file"]: a["size"] for a in b.artifacts(*IMAGE_KINDS)}
    n = sum(sizes[f] for f in todo)
    return [Need(CONTAINERD_ROOT, n, "images (compressed; unpacked layers come on top)")]


@deploy("Images into containerd", data_defaults=DEFAULTS)
def images():
    b = bundle.current("no images to import")
    if b is None:
        return
    archives, todo = to_import(b)
    for file in todo:
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
