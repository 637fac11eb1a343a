"""How to check bundle files on the node, and whether the node can take the bundle. Pure: no
pyinfra. (Which files the node lacks: airnode/bundle/digests.py.)"""

from __future__ import annotations

import shlex

PARTIAL = ".partial"  # what an upload is written to until its sha256 is checked


def place_command(remote_dir: str, artifacts: list[dict]) -> str:
    """On the node: the uploaded ``<file>.partial`` of each artifact checked (sha256sum -c,
    naming any bad file), then made 644 and renamed to its name. A bad one is removed (the next
    run uploads it again rather than resuming onto it); nothing is renamed unless all passed."""
    q = shlex.quote
    lines = "\n".join(f"{a['sha256']}  {a['file']}{PARTIAL}" for a in artifacts)
    partials = " ".join(q(a["file"] + PARTIAL) for a in artifacts)
    moves = " && ".join(f"mv -f {q(a['file'] + PARTIAL)} {q(a['file'])}" for a in artifacts)
    return (
        f"cd {q(remote_dir)} && "
        f"{{ printf '%s\\n' {q(lines)} | sha256sum -c --quiet - >&2 || "
        f"{{ rm -f {partials}; exit 1; }}; }} && chmod 644 {partials} && {moves}"
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
