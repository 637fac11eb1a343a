"""Ollama on a node: where the release tarball goes, how it is unpacked, the on-disk model store
and the server's environment. Pure: imports nothing from pyinfra.

Layout on the node (install.sh's conventions where they fit an offline, versioned install):
    /opt/airnode/ollama/<version>/{bin/ollama,lib/ollama/...}   one directory per version
    /opt/airnode/ollama/current -> <version>                     the stable path
    /usr/local/bin/ollama -> /opt/airnode/ollama/current/bin/ollama
    system user and group `ollama`, home /usr/share/ollama
    /var/lib/airnode/models                                      the model store (OLLAMA_MODELS)
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from dataclasses import dataclass
from typing import Any

from airnode.bundle.unpack import TAR_SAFE

USER = "ollama"
HOME = "/usr/share/ollama"
REGISTRY = "registry.ollama.ai"
MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
# useradd --system takes the highest free id in [SYS_UID_MIN, SYS_UID_MAX] (login.defs)
SYS_ID_MIN, SYS_ID_MAX = 100, 999
# Ollama model names: [namespace/]model[:tag]
NAME_RE = re.compile(r"^(?:[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*(?::[A-Za-z0-9._-]+)?$")


def tarball_kind(file: str) -> str:
    """'.tgz' (Ollama up to v0.13.x) or '.tar.zst' (from v0.14.0)."""
    for ext in (".tar.zst", ".tgz", ".tar.gz"):
        if file.endswith(ext):
            return ".tgz" if ext == ".tar.gz" else ext
    raise ValueError(f"{file}: not an Ollama release tarball (.tgz or .tar.zst)")


def extract_command(tarball: str, dest: str) -> str:
    """Unpack a release tarball into dest (plain `tar -x` cannot read .tar.zst)."""
    t, d = shlex.quote(tarball), shlex.quote(dest)
    if tarball_kind(tarball) == ".tar.zst":
        return f"zstd -dc {t} | tar -x {TAR_SAFE} -C {d}"
    return f"tar -xz {TAR_SAFE} -f {t} -C {d}"


def install_script(tarball: str, sha256: str, base: str, version: str) -> str:
    """Unpack into <base>/<version>.tmp, check the layout, then rename into place: a run cut
    half-way never leaves a half-unpacked version behind under its final name."""
    final = f"{base}/{version}"
    tmp = shlex.quote(final + ".tmp")
    return " && ".join(
        [
            f"rm -rf {tmp}",
            f"mkdir -p {tmp}",
            extract_command(tarball, final + ".tmp"),
            f"{{ test -x {tmp}/bin/ollama || {{ echo "
            + shlex.quote(
                f"{tarball}: no executable bin/ollama in the tarball (not an Ollama release?)"
            )
            + " >&2; exit 1; }; }",
            f"echo {shlex.quote(sha256)} > {tmp}/.airnode-sha256",
            f"rm -rf {shlex.quote(final)}",
            f"mv {tmp} {shlex.quote(final)}",
        ]
    )


def split_name(name: str) -> tuple[str, str, str]:
    """'smollm2:135m' -> ('library', 'smollm2', '135m'); 'me/x' -> ('me', 'x', 'latest')."""
    if not NAME_RE.match(name):
        raise ValueError(
            f"model name {name!r}: expected [namespace/]model[:tag] "
            "(lowercase letters, digits, '.', '_', '-')"
        )
    path, _, tag = name.partition(":")
    ns, _, model = path.rpartition("/")
    return ns or "library", model, tag or "latest"


def manifest_path(store: str, name: str) -> str:
    ns, model, tag = split_name(name)
    return f"{store}/manifests/{REGISTRY}/{ns}/{model}/{tag}"


def model_digest(manifest_text: str | None) -> str | None:
    """The sha256 (hex) of the GGUF layer an Ollama manifest points at; None if unreadable."""
    try:
        layers = json.loads(manifest_text or "")["layers"]
        digest = next(la["digest"] for la in layers if la["mediaType"] == MODEL_MEDIA_TYPE)
    except (ValueError, KeyError, TypeError, StopIteration):
        return None
    return digest.removeprefix("sha256:")


def layer_digests(manifest_text: str | None) -> set[str]:
    """Every layer's sha256 (hex) in an Ollama manifest, whatever its media type (a GGUF with
    vision tensors is stored as a projector layer, not a model layer)."""
    try:
        return {
            la["digest"].removeprefix("sha256:") for la in json.loads(manifest_text or "")["layers"]
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return set()


def blob_file(sha256: str) -> str:
    """The name of a GGUF's blob in the store's blobs/ (the GGUF itself, byte for byte)."""
    return f"sha256-{sha256}"


def blobs_missing(models: list[dict], blobs: dict[str, int]) -> list[dict]:
    """Models (artifacts with sha256, size) whose blob is missing from the store, or short."""
    return [m for m in models if blobs.get(blob_file(m["sha256"])) != m["size"]]


def config_digest(manifest_text: str | None) -> str | None:
    """The sha256 (hex) of an Ollama manifest's config blob; None if it names none."""
    try:
        digest = json.loads(manifest_text or "")["config"]["digest"]
    except (ValueError, KeyError, TypeError):
        return None
    return digest.removeprefix("sha256:") if isinstance(digest, str) and digest else None


def models_to_seed(
    models: list[dict], manifests: dict[str, str | None], blobs: dict[str, int]
) -> list[dict]:
    """Bundle models (artifacts with name, sha256, size) that the store lacks: no manifest, a
    manifest without that GGUF among its layers or naming a blob the store lacks (Ollama
    answers "model not found" without its config blob), or the GGUF's blob missing/short."""
    short = blobs_missing(models, blobs)
    out = []
    for m in models:
        text = manifests.get(m["name"])
        layers = layer_digests(text)
        cfg = config_digest(text)  # a manifest without one: GetModel reads none
        needed = (layers | {cfg}) if cfg else layers
        if (
            m in short
            or m["sha256"] not in layers
            or any(blob_file(d) not in blobs for d in needed)
        ):
            out.append(m)
    return out


def store_listing_command(store: str, names: list[str]) -> str:
    """One command that prints each model's manifest and the store's blob sizes."""
    parts = []
    for name in names:
        parts.append(
            f"echo {shlex.quote('@@manifest ' + name)}; "
            f"cat {shlex.quote(manifest_path(store, name))} 2>/dev/null; echo"
        )
    parts.append(
        f"echo @@blobs; find {shlex.quote(store + '/blobs')} -maxdepth 1 -type f "
        "-printf '%f %s\\n' 2>/dev/null"
    )
    return "; ".join(parts) + "; true"


def parse_store_listing(lines: list[str]) -> tuple[dict[str, str | None], dict[str, int]]:
    manifests: dict[str, str | None] = {}
    blobs: dict[str, int] = {}
    current: str | None = None
    section = ""
    for line in lines:
        if line.startswith("@@manifest "):
            current, section = line[len("@@manifest ") :], "manifest"
            manifests[current] = None
        elif line == "@@blobs":
            section = "blobs"
        elif section == "manifest" and line.strip() and current is not None:
            manifests[current] = (manifests[current] or "") + line + "\n"
        elif section == "blobs" and line.strip():
            name, _, size = line.rpartition(" ")
            if size.isdigit():
                blobs[name] = int(size)
    return manifests, blobs


# -- models registered the way `ollama create` leaves them, without running it ---------------
# At the pinned Ollama (v0.32.15) `ollama create FROM <gguf>` rewrites the GGUF with
# `llama-quantize --allow-requantize in out COPY` into a new blob (server/create.go
# copyLayerWithLlamaQuantize, server/quantization.go): the store would hold every model twice,
# and its CLI reads the whole file to hash it first. airnode writes what create writes around
# the GGUF instead, the GGUF blob left as shipped: a config blob and the manifest. v0.32.15 loads
# such a model as it loads its own: server/images.go GetModel reads the manifest and the config
# blob and verifies no digest (verifyBlob runs on pull only), and every request re-reads the
# manifest (server/model_inference_cache.go), so a running server sees it without a restart.
MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"
PARAMS_MEDIA_TYPE = "application/vnd.ollama.image.params"
# ollama/ollama v0.32.15 fs/ggml/type.go FileType.String(), by llama_ftype value; 0 (F32) and
# any value not listed read as "unknown" (fs/ggml/ggml.go KV.FileType takes values > 0 only)
FILE_TYPES = {
    1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0",
}  # fmt: skip
# server/create.go (v0.32.15) createModel: the renderer, parser and stop words create sets from
# the GGUF's architecture (the model is then rendered by Ollama, not by the GGUF's template)
ARCH_CHAT: dict[str, tuple[str, str, list[str] | None]] = {
    "gemma4": ("gemma4", "gemma4", ["<turn|>"]),
    "laguna": ("laguna", "laguna", None),
    "nemotron_h": ("nemotron-3-nano", "nemotron-3-nano", None),
    "nemotron_h_moe": ("nemotron-3-nano", "nemotron-3-nano", None),
    "nemotron_h_omni": ("nemotron-3-nano", "nemotron-3-nano", None),
}


def human_number(n: int) -> str:
    """ollama/ollama format/format.go HumanNumber: the config's model_type ("134.52M")."""
    for unit, size, whole, frac in (
        ("B", 10**9, "{:.0f}", "{:.1f}"),
        ("M", 10**6, "{:.0f}", "{:.2f}"),
    ):
        if n >= size:
            x = n / size
            return (whole if x == int(x) else frac).format(x) + unit
    return f"{n / 1000:.0f}K" if n >= 1000 else str(n)


@dataclass(frozen=True)
class Registration:
    """What registering one model writes: blobs (sha256 hex, bytes) first, then the manifest
    (its path under manifests/, bytes)."""

    blobs: list[tuple[str, bytes]]
    manifest_path: str
    manifest: bytes


def _layer(media_type: str, digest: str, size: int) -> dict:
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": size}


def _blob(data: bytes) -> tuple[str, bytes]:
    return hashlib.sha256(data).hexdigest(), data


def registration(model: dict, arch: str, params: int, file_type: int | None) -> Registration:
    """The config blob, the params blob (only for architectures create gives stop words) and
    the manifest `ollama create` (v0.32.15 server/create.go CreateHandler, createModel) writes
    for a GGUF: the GGUF is the model layer as it is (model: an artifact with name, sha256,
    size; arch, params, file_type: from its header)."""
    config: dict[str, Any] = {
        "model_format": "gguf",
        "model_family": arch,
        "model_families": [arch],
        "model_type": human_number(params),
        "file_type": FILE_TYPES.get(file_type or 0, "unknown"),
    }
    renderer, parser, stop = ARCH_CHAT.get(arch, ("", "", None))
    if renderer:
        config.update(renderer=renderer, parser=parser)
    config.update(architecture="amd64", os="linux")  # CreateHandler's, whatever the node
    layers = [_layer(MODEL_MEDIA_TYPE, model["sha256"], model["size"])]
    blobs = []
    if stop:
        blobs.append(_blob(json.dumps({"stop": stop}).encode()))
        layers.append(_layer(PARAMS_MEDIA_TYPE, blobs[-1][0], len(blobs[-1][1])))
    cfg = _blob(json.dumps(config).encode())
    blobs.insert(0, cfg)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": _layer(CONFIG_MEDIA_TYPE, cfg[0], len(cfg[1])),
        "layers": layers,
    }
    ns, name, tag = split_name(model["name"])
    return Registration(blobs, f"{REGISTRY}/{ns}/{name}/{tag}", json.dumps(manifest).encode())


def register_args(regs: list[Registration]) -> list[str]:
    """files/ollama-register.sh's arguments: every blob first, then every manifest."""
    args = []
    for r in regs:
        for digest, data in r.blobs:
            args += ["blob", digest, data.decode()]
    for r in regs:
        args += ["manifest", r.manifest_path, r.manifest.decode()]
    return args


def account_commands(uid: int, gid: int) -> list[str]:
    """Shell commands that leave the `ollama` system group and user as Ollama's install.sh
    makes them (group and user `ollama`, home HOME, no login shell), with the ids ``uid`` and
    ``gid``: each part made only where missing, an existing user given our home, shell and
    group. One command instead of pyinfra's server.group/server.user, whose facts list every
    user and group of the host with a process or more per entry (14 s of a fresh deploy on the
    lab's TCG guest, measured by bench/deploy_profile.py)."""
    u, g, home = shlex.quote(USER), int(gid), shlex.quote(HOME)
    return [
        f"getent group {u} >/dev/null || groupadd --system --gid {g} {u}",
        f"if getent passwd {u} >/dev/null; then usermod --gid {g} --home {home} "
        f"--shell /bin/false {u}; else useradd --system --uid {int(uid)} --gid {g} "
        f"--home-dir {home} --create-home --shell /bin/false {u}; fi",
        f"[ -d {home} ] || install -d -m 755 {home}",
        f"chown {u}:{u} {home}",
    ]


def pick_system_id(used_uids: set[int], used_gids: set[int]) -> int:
    """The id `useradd --system --user-group` would take: the highest one free as uid and gid."""
    for i in range(SYS_ID_MAX, SYS_ID_MIN - 1, -1):
        if i not in used_uids and i not in used_gids:
            return i
    raise ValueError(f"no free system uid/gid in {SYS_ID_MIN}-{SYS_ID_MAX}")


def cluster_ids(nodes: dict[str, tuple[dict[str, int], dict[str, int]]]) -> tuple[int, int]:
    """The uid and gid of `ollama` on every node of a cluster ({node: (users, groups)} as
    parse_ids reads them): a replica may run on any node, as one runAsUser, over that node's
    store. The ids a node has already; else the highest system id free on every node. Nodes
    that disagree: ValueError naming them."""
    have = {
        n: (users[USER], groups.get(USER, users[USER]))
        for n, (users, groups) in nodes.items()
        if USER in users
    }
    if len(set(have.values())) > 1:
        raise ValueError(
            f"the {USER} user has other ids on the nodes of this cluster ("
            + ", ".join(f"{n}: {u}:{g}" for n, (u, g) in sorted(have.items()))
            + "): the model server runs as one uid on every node; give it the same uid and gid "
            "everywhere (usermod -u, groupmod -g, then chown its store) or remove it where it "
            "owns nothing"
        )
    # nodes with an `ollama` group and no user (useradd would join it, as on one node)
    grouped = {
        n: groups[USER]
        for n, (users, groups) in nodes.items()
        if USER not in users and USER in groups
    }
    if have:
        uid, gid = next(iter(have.values()))
        for n, g in sorted(grouped.items()):
            if g != gid:
                raise ValueError(
                    f"{n}: the {USER} group has gid {g} there, the {USER} user on the other "
                    f"nodes gid {gid}: give the group gid {gid} there (groupmod -g {gid} {USER})"
                )
        for n, (users, groups) in sorted(nodes.items()):
            taken = {u for name, u in users.items() if name != USER} | {
                g for name, g in groups.items() if name != USER
            }
            if n not in have and (uid in taken or gid in taken):
                raise ValueError(
                    f"{n}: uid/gid {uid}:{gid} of the {USER} user on the other nodes is taken "
                    f"there: free it, or give {USER} other ids on every node"
                )
        return uid, gid
    used = set().union(*(set(u.values()) | set(g.values()) for u, g in nodes.values()))
    if not grouped:
        free = pick_system_id(used, used)
        return free, free
    if len(set(grouped.values())) > 1:
        raise ValueError(
            f"the {USER} group has other gids on the nodes of this cluster ("
            + ", ".join(f"{n}: {g}" for n, g in sorted(grouped.items()))
            + "): the model server runs as one gid on every node; give it the same gid "
            "everywhere (groupmod -g)"
        )
    gid = next(iter(grouped.values()))
    for n, (_, groups) in sorted(nodes.items()):
        if n not in grouped and gid in {g for name, g in groups.items() if name != USER}:
            raise ValueError(
                f"{n}: gid {gid} of the {USER} group on the other nodes is taken there: free "
                f"it, or give {USER} another gid on every node"
            )
    uids = set().union(*(set(u.values()) for u, _ in nodes.values()))
    return pick_system_id(uids, set()), gid


def parse_ids(lines: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """`getent passwd; echo @@group; getent group` -> ({user: uid}, {group: gid})."""
    users: dict[str, int] = {}
    groups: dict[str, int] = {}
    target = users
    for line in lines:
        if line == "@@group":
            target = groups
            continue
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].isdigit():
            target[fields[0]] = int(fields[2])
    return users, groups


def server_env(settings: dict[str, Any]) -> dict[str, str]:
    """OLLAMA_* environment of the model server, from inventory settings."""
    env = {
        "OLLAMA_KEEP_ALIVE": str(settings["ollama_keep_alive"]),
        "OLLAMA_NUM_PARALLEL": str(settings["ollama_num_parallel"]),
        "OLLAMA_MAX_LOADED_MODELS": str(settings["ollama_max_loaded_models"]),
        "OLLAMA_CONTEXT_LENGTH": str(settings["ollama_context_length"]),
        "OLLAMA_KV_CACHE_TYPE": str(settings["ollama_kv_cache_type"]),
        "OLLAMA_NOPRUNE": "1",  # never prune blobs seeded offline
    }
    if settings["ollama_flash_attention"] != "auto":  # unset: Ollama decides per model
        env["OLLAMA_FLASH_ATTENTION"] = "1" if settings["ollama_flash_attention"] else "0"
    env.update({k: str(v) for k, v in settings.get("ollama_extra_env", {}).items()})
    return env


# What airnode left on nodes before it wrote Ollama's manifests itself (teardown removes them):
# the transient unit of the Ollama server models were seeded through, and its Modelfiles.
SEED_UNIT = "airnode-ollama-seed.service"
MODELFILES = "/var/lib/airnode/modelfiles"


def versions_command(base: str) -> str:
    """The version directories airnode unpacked under base (those carrying .airnode-sha256, and
    leftovers of cut unpacks, *.tmp), one name per line: nothing else there is ever removed."""
    b = shlex.quote(base)
    return (
        f'for d in {b}/*; do [ -d "$d" ] && [ ! -L "$d" ] || continue; '
        'case "$d" in *.tmp) basename "$d"; continue;; esac; '
        '[ -e "$d/.airnode-sha256" ] && basename "$d"; done; true'
    )
