"""Which bundle files a node lacks, and how to check them there. Pure: no pyinfra."""

from __future__ import annotations

import shlex


def to_upload(artifacts: list[dict], remote: dict[str, str]) -> list[dict]:
    """Artifacts whose sha256 on the node differs from the manifest (or that are absent)."""
    return [a for a in artifacts if remote.get(a["file"]) != a["sha256"]]


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
