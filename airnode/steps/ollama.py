"""Ollama installed offline from the release tarball in the bundle: one directory per version,
a stable `current` link, a system user and group; nothing is downloaded. A new Ollama version in
the bundle switches the node on the next run (the model server rolls onto it)."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Command
from pyinfra.operations import files, server

from airnode import ollama as logic
from airnode.steps import bundle
from airnode.steps._common import AirnodeError, settings

DEFAULTS = {
    # One directory per Ollama version under it, and `current` pointing at the one in use.
    "ollama_install_dir": "/opt/airnode/ollama",
}


def artifact(b: bundle.Bundle) -> dict:
    found = b.artifacts("ollama")
    if not found:
        raise AirnodeError(f"bundle {b.root} holds no Ollama release tarball: add [ollama] to "
                           "the spec and re-fetch")
    return found[0]


def account() -> tuple[int, int]:
    """uid and gid of the `ollama` system user: the existing ones, or those useradd would pick
    (so that the model server's manifest, which runs as that uid, is known before any change)."""
    users, groups = logic.parse_ids((host.get_fact(
        Command, "getent passwd; echo @@group; getent group") or "").splitlines())
    if logic.USER in users:
        return users[logic.USER], groups.get(logic.USER, users[logic.USER])
    if logic.USER in groups:
        return logic.pick_system_id(set(users.values()), set()), groups[logic.USER]
    free = logic.pick_system_id(set(users.values()), set(groups.values()))
    return free, free


def version_dir(version: str) -> str:
    return f"{settings(DEFAULTS)['ollama_install_dir']}/{version}"


@deploy("Ollama (offline, from the release tarball)", data_defaults=DEFAULTS)
def ollama():
    s = settings(DEFAULTS)
    b = bundle.current("Ollama comes from the offline bundle")
    if b is None:
        return
    tarball = artifact(b)
    version, base = tarball["version"], s["ollama_install_dir"]
    uid, gid = account()
    server.group(name=f"System group {logic.USER}", group=logic.USER, system=True, gid=gid)
    server.user(name=f"System user {logic.USER} (home {logic.HOME})", user=logic.USER,
                group=logic.USER, system=True, uid=uid, home=logic.HOME, shell="/bin/false",
                create_home=True)

    mark = host.get_fact(Command, f"cat {version_dir(version)}/.airnode-sha256 2>/dev/null || true")
    if (mark or "").strip() != tarball["sha256"]:
        server.shell(
            name=f"Unpack Ollama {version} ({logic.tarball_kind(tarball['file'])}) into "
                 f"{version_dir(version)}",
            commands=[logic.install_script(f"{b.remote}/{tarball['file']}", tarball["sha256"],
                                           base, version)])
    files.link(name=f"{base}/current -> {version}", path=f"{base}/current", target=version)
    files.link(name="/usr/local/bin/ollama on the current version", path="/usr/local/bin/ollama",
               target=f"{base}/current/bin/ollama")
