"""How to check bundle files on the node, and whether the node can take the bundle. Pure: no
pyinfra. (Which files the node lacks: airnode/bundle/digests.py.)"""

from __future__ import annotations

PARTIAL = ".partial"  # what an upload is written to until its sha256 is checked


def place_command(remote_dir: str, artifacts: list[dict]) -> str:
    """On the node: the uploaded ``<file>.partial`` of each artifact checked (sha256), then
    made root's, 644, and renamed (files/place-files.sh: nothing renamed unless all passed; a
    bad one is removed, so the next run uploads it again rather than resuming onto it)."""
    from airnode.scripts import place_files

    return place_files(
        remote_dir, "root:root", "644", [(a["sha256"], a["file"]) for a in artifacts]
    )


def arch_problem(bundle_arch: str, uname_arch: str) -> str | None:
    from airnode.bundle.spec import UNAME_TO_ARCH

    host_arch = UNAME_TO_ARCH.get(uname_arch, uname_arch)
    if bundle_arch != host_arch:
        return (
            f"the bundle was built for {bundle_arch}, this host is {uname_arch} "
            f'({host_arch}): fetch a bundle with arch = "{host_arch}" in its spec'
        )
    return None
