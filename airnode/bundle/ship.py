"""How to check bundle files on the node, and whether the node can take the bundle. Pure: no
pyinfra. (Which files the node lacks: airnode/bundle/digests.py.)"""

from __future__ import annotations

import shlex


def check_command(remote_dir: str, artifacts: list[dict]) -> str:
    """A sha256sum -c on the node for these artifacts; fails naming any bad file."""
    lines = "\n".join(f"{a['sha256']}  {a['file']}" for a in artifacts)
    return (
        f"cd {shlex.quote(remote_dir)} && "
        f"printf '%s\\n' {shlex.quote(lines)} | sha256sum -c --quiet -"
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
