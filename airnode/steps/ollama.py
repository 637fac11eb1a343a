"""Ollama installed offline from the release tarball in the bundle: one directory per version,
a stable `current` link, a system user and group; nothing is downloaded. A new Ollama version in
the bundle switches the node on the next run (the model server rolls onto it)."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import server

from airnode import ollama as logic
from airnode.config import Rule, Setting, extra_env, integer, one_of, owned_dir, pattern
from airnode.sizing import Need
from airnode.steps import bundle
from airnode.steps._common import (
    AirnodeError,
    cluster_hosts,
    declare,
    dir_state_read,
    link,
    link_read,
    remote,
    remote_on,
    setting,
    settings,
)

DEFAULTS = declare(
    "ollama",
    {
        "ollama_install_dir": Setting(
            "/opt/airnode/ollama",
            owned_dir("where Ollama's versions are unpacked"),
            (
                "one directory per Ollama version, plus `current`; airnode only ever removes "
                "the version directories it unpacked"
            ),
        ),
        "ollama_context_length": Setting(
            4096,
            integer(ge=256, le=1048576),
            "context per slot, as sizing counts it (Ollama's `OLLAMA_CONTEXT_LENGTH`)",
        ),
        "ollama_num_parallel": Setting(
            1,
            integer(ge=1, le=64),
            "parallel slots per model (`OLLAMA_NUM_PARALLEL`)",
        ),
        "ollama_kv_cache_type": Setting(
            "f16",
            one_of("f16", "q8_0", "q4_0"),
            "KV cache precision (`OLLAMA_KV_CACHE_TYPE`)",
        ),
        "ollama_keep_alive": Setting(
            "5m",
            pattern(
                r"-1|0|([0-9]+(\.[0-9]+)?(ms|s|m|h))+",
                "a duration like 5m, 1h30m, 0 (unload at once) or -1 (never)",
            ),
            "how long a model stays loaded after its last request (`OLLAMA_KEEP_ALIVE`)",
        ),
        "ollama_max_loaded_models": Setting(
            1,
            integer(ge=0, le=64, note="0 lets Ollama decide"),
            "`OLLAMA_MAX_LOADED_MODELS`",
        ),
        "ollama_flash_attention": Setting(
            "auto",
            Rule(
                "auto (Ollama decides per model), true or false",
                lambda v: v == "auto" or isinstance(v, bool),
            ),
            (
                "`OLLAMA_FLASH_ATTENTION`; `auto` leaves it unset (Ollama decides per model)."
                " A quantized KV cache needs it: `false` with `ollama_kv_cache_type` other "
                "than `f16` is refused"
            ),
        ),
        "ollama_extra_env": Setting(
            {},
            extra_env(),
            (
                'any other Ollama variable, e.g. `{"OLLAMA_DEBUG": "1"}`; `OLLAMA_NOPRUNE=1` '
                "is always set (offline-seeded blobs must never be pruned)"
            ),
        ),
    },
)


GETENT = "getent passwd; echo @@group; getent group"
LINK = "/usr/local/bin/ollama"


def mark_read(version: str) -> str:
    return f"cat {version_dir(version)}/.airnode-sha256 2>/dev/null || true"


def backend() -> str:
    return str(setting("model_server"))  # the model server's (a later step)


def reads(b: bundle.Bundle | None) -> list[str]:
    if b is None:
        return []
    if backend() != "ollama" or not b.artifacts("ollama"):
        return [GETENT, dir_state_read(logic.HOME)]
    base = settings(DEFAULTS)["ollama_install_dir"]
    return [
        GETENT,
        mark_read(artifact(b)["version"]),
        link_read(f"{base}/current"),
        link_read(LINK),
        dir_state_read(logic.HOME),
    ]


def disk_needs(b: bundle.Bundle) -> list[Need]:
    """Unpacking a new Ollama version: its tarball's files (counted from the tarball here, whose
    members are checked at the same time: an unsafe one stops the run before any change)."""
    if backend() != "ollama" or not b.artifacts("ollama"):
        return []
    t = artifact(b)
    if remote(mark_read(t["version"])).strip() == t["sha256"]:
        return []
    size = bundle.safe_to_unpack(b, t)
    return [Need(settings(DEFAULTS)["ollama_install_dir"], size, f"Ollama {t['version']} unpacked")]


def artifact(b: bundle.Bundle) -> dict:
    found = b.artifacts("ollama")
    if not found:
        raise AirnodeError(
            f"bundle {b.root} holds no Ollama release tarball: add [ollama] to "
            "the spec and re-fetch"
        )
    return found[0]


def account() -> tuple[int, int]:
    """uid and gid of the `ollama` system user: the existing ones, or those useradd would pick
    (so that the model server's manifest, which runs as that uid, is known before any change)."""
    members = cluster_hosts()
    if len(members) > 1:
        nodes = {h.name: logic.parse_ids(remote_on(h, GETENT).splitlines()) for h in members}
        try:
            return logic.cluster_ids(nodes)
        except ValueError as e:
            raise AirnodeError(str(e)) from None
    users, groups = logic.parse_ids(remote(GETENT).splitlines())
    if logic.USER in users:
        return users[logic.USER], groups.get(logic.USER, users[logic.USER])
    if logic.USER in groups:
        return logic.pick_system_id(set(users.values()), set()), groups[logic.USER]
    free = logic.pick_system_id(set(users.values()), set(groups.values()))
    return free, free


def account_in_place(uid: int, gid: int) -> bool:
    """The ollama user and group exist as server.user/server.group would leave them."""
    text = remote(GETENT)
    want_user = f"{logic.USER}:x:{uid}:{gid}:"
    users = [line for line in text.split("@@group")[0].splitlines() if line.startswith(want_user)]
    groups = [
        line
        for line in text.split("@@group")[-1].splitlines()
        if line.startswith(f"{logic.USER}:x:{gid}:")
    ]
    home = remote(dir_state_read(logic.HOME)).split()
    home_ok = home[:1] == ["directory"] and home[2:3] == [logic.USER]
    return bool(
        users and groups and home_ok and users[0].split(":")[5:7] == [logic.HOME, "/bin/false"]
    )


def version_dir(version: str) -> str:
    return f"{settings(DEFAULTS)['ollama_install_dir']}/{version}"


@deploy("Ollama (offline, from the release tarball)", data_defaults=DEFAULTS)
def ollama():
    """The system user `ollama` owns the model store whichever backend serves it; Ollama itself
    is installed when it is the model server (model_server: ollama)."""
    s = settings(DEFAULTS)
    b = bundle.current("Ollama comes from the offline bundle")
    if b is None:
        return
    uid, gid = account()
    if not account_in_place(uid, gid):
        server.shell(
            name=f"System group and user {logic.USER} ({uid}:{gid}, home {logic.HOME})",
            commands=logic.account_commands(uid, gid),
        )
    if backend() != "ollama":
        host.noop(
            "model_server is llama-server: Ollama not installed (the ollama user owns "
            "the model store)"
        )
        return
    tarball = artifact(b)
    version, base = tarball["version"], s["ollama_install_dir"]

    if remote(mark_read(version)).strip() != tarball["sha256"]:
        bundle.safe_to_unpack(b, tarball)
        server.shell(
            name=f"Unpack Ollama {version} ({logic.tarball_kind(tarball['file'])}) into "
            f"{version_dir(version)}",
            commands=[
                logic.install_script(
                    f"{b.remote}/{tarball['file']}", tarball["sha256"], base, version
                )
            ],
        )
    link(f"{base}/current", version, f"{base}/current -> {version}")
    link(LINK, f"{base}/current/bin/ollama", f"{LINK} on the current version")
